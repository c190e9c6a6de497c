//! `cargo xtask miri`: the runtime's unit tests under Miri, which reports undefined behaviour,
//! out-of-bounds and uninitialized reads and invalid pointer use.
//!
//! Under Miri the runtime takes its portable kernels (Miri runs neither the x86 CPUID detection nor
//! the AVX2 paths; the Arm assembly is not built on the host), and each randomized test runs a few
//! cases instead of hundreds (`MIRI_CASES`, `proptest_cases` in `runtime/src/lib.rs`): Miri
//! interprets every instruction. Needs a nightly toolchain with the `miri` component; nothing is
//! installed here.

use anyhow::{ensure, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

pub fn run(root: &Path) -> Result<()> {
    crate::toolchain::ensure_nightly_tool("miri", "`rustup +nightly component add miri rust-src`")?;
    let start = Instant::now();
    let status = Command::new("cargo")
        .current_dir(root)
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
