//! `cargo xtask miri`: the runtime's unit tests under Miri, which reports undefined behaviour,
//! out-of-bounds and uninitialized reads and invalid pointer use.
//!
//! Under Miri the runtime takes its portable kernels (Miri runs neither the x86 CPUID detection nor
//! the AVX2 paths; the Arm assembly is not built on the host), and each randomized test runs a few
//! cases instead of hundreds (`MIRI_CASES`, `proptest_cases` in `runtime/src/lib.rs`): Miri
//! interprets every instruction. Proptest keeps no failure file under Miri (no file system).
//! Needs a nightly toolchain with the `miri` component; nothing is
//! installed here.

use anyhow::{ensure, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

pub fn run(root: &Path) -> Result<()> {
    crate::toolchain::ensure_nightly_tool("miri", "`rustup +nightly component add miri rust-src`")?;
    let start = Instant::now();
    // Deterministic floats: Miri otherwise perturbs the last bits of `f32::ln` and the like, which the
    // tests use for their reference values (the runtime's own float math is exact arithmetic).
    let flags = match std::env::var("MIRIFLAGS") {
        Ok(f) if !f.is_empty() => format!("{f} -Zmiri-deterministic-floats"),
        _ => "-Zmiri-deterministic-floats".to_string(),
    };
    let status = Command::new("cargo")
        .current_dir(root)
        .env("MIRIFLAGS", flags)
        .args(["+nightly", "miri", "test", "-p", "ferrite-runtime", "--lib"])
        .status()
        .context("starting cargo miri test")?;
    ensure!(status.success(), "the runtime's unit tests fail under Miri");
    println!(
        "miri: the runtime's unit tests pass ({:.0} s)",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
