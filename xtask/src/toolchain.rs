//! Rust targets: adds the missing ones with `rustup target add`; for a thumb target also installs
//! flip-link, the firmware's linker (`boards/.cargo/config.toml`), with `cargo install`. Nightly
//! tools (cargo-fuzz, Miri): checks that they are there and says how to install them, installing
//! nothing.

use anyhow::{ensure, Context, Result};
use std::{path::Path, process::Command};

/// Makes sure each of `targets` is installed for the toolchain used in `root`, and flip-link too if
/// one is a thumb (Cortex-M) target. Without rustup, says so and leaves it to the build to fail.
pub fn ensure_targets(root: &Path, targets: &[&str]) -> Result<()> {
    if targets.iter().any(|t| t.starts_with("thumb")) {
        ensure_flip_link()?;
    }
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

/// The flip-link version the firmware links with (`boards/.cargo/config.toml` names it as the
/// linker of the thumb targets: the stack at the bottom of RAM, below the statics).
pub const FLIP_LINK_VERSION: &str = "0.1.12";

/// Installs flip-link [`FLIP_LINK_VERSION`] into cargo's bin directory with `cargo install
/// --locked`, unless `cargo install --list` already has that version; then checks that rustc will
/// find it on `PATH`.
pub fn ensure_flip_link() -> Result<()> {
    install_flip_link()?;
    // `flip-link --help` prints its usage and exits 0.
    let found = Command::new("flip-link").arg("--help").output();
    ensure!(
        found.is_ok_and(|o| o.status.success()),
        "flip-link {FLIP_LINK_VERSION} is installed in cargo's bin directory, but `flip-link` is not \
         on PATH, where rustc looks for the firmware's linker: add cargo's bin directory \
         (~/.cargo/bin, or $CARGO_HOME/bin) to PATH"
    );
    Ok(())
}

fn install_flip_link() -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let listed = Command::new(&cargo)
        .args(["install", "--list"])
        .output()
        .context("running cargo install --list")?;
    let wanted = format!("flip-link v{FLIP_LINK_VERSION}:");
    if String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|line| line.trim() == wanted)
    {
        return Ok(());
    }
    eprintln!(
        "installing flip-link {FLIP_LINK_VERSION}, the firmware's linker (stack overflow guard; \
         boards/.cargo/config.toml): cargo install flip-link --version {FLIP_LINK_VERSION} --locked"
    );
    let status = Command::new(&cargo)
        .args([
            "install",
            "flip-link",
            "--locked",
            "--version",
            FLIP_LINK_VERSION,
        ])
        // Its messages on stderr: the JSON of `--json` commands stays alone on stdout.
        .stdout(std::io::stderr())
        .status()
        .context("running cargo install flip-link")?;
    ensure!(
        status.success(),
        "cargo install flip-link --version {FLIP_LINK_VERSION} --locked failed"
    );
    Ok(())
}
