//! Rust targets: adds the missing ones with `rustup target add`. Nightly tools (cargo-fuzz, Miri):
//! checks that they are there and says how to install them, installing nothing.

use anyhow::{ensure, Context, Result};
use std::{path::Path, process::Command};

/// Makes sure each of `targets` is installed for the toolchain used in `root`.
/// Without rustup, says so and leaves it to the build to fail.
pub fn ensure_targets(root: &Path, targets: &[&str]) -> Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root)
        .output();
    let installed = match listed {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => {
            eprintln!("warning: `rustup target list` failed; assuming the targets are installed");
            return Ok(());
        }
    };
    for target in targets {
        if installed.lines().any(|line| line.trim() == *target) {
            continue;
        }
        eprintln!("adding Rust target {target}");
        let status = Command::new("rustup")
            .args(["target", "add", target])
            .current_dir(root)
            // Its messages on stderr: the JSON of `--json` commands stays alone on stdout.
            .stdout(std::io::stderr())
            .status()
            .context("running rustup target add")?;
        anyhow::ensure!(status.success(), "rustup target add {target} failed");
    }
    Ok(())
}

/// Fails, saying how to install it, unless `cargo +nightly <tool> --version` runs.
pub fn ensure_nightly_tool(tool: &str, install: &str) -> Result<()> {
    let installed = Command::new("cargo")
        .args(["+nightly", tool, "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    ensure!(
        installed,
        "`cargo +nightly {tool}` is needed: `rustup toolchain install nightly` and {install}"
    );
    Ok(())
}
