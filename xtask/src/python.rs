//! The Python module's tests in `cargo xtask test`: a virtual environment in `target/venv` (made once,
//! reused) with the pinned tools of `python/requirements-dev.txt`, the module built in release and
//! installed there (`maturin develop --release`, its build in `target/python`), then pytest on
//! `python/tests/`, which compares the module with the `ferrite` CLI built by cargo.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The Python that makes the virtual environment: `$PYTHON`, else `python3`.
fn python() -> OsString {
    std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into())
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown}: {status}");
    }
    Ok(())
}

pub fn test(root: &Path, cargo: &str) -> Result<()> {
    let venv = root.join("target").join("venv");
    let bin = venv.join("bin");
    if !bin.join("python").exists() {
        run(Command::new(python()).args(["-m", "venv"]).arg(&venv))
            .context("making the virtual environment (on Debian: apt-get install python3-venv)")?;
    }
    run(Command::new(bin.join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(root.join("python").join("requirements-dev.txt")))?;
    run(Command::new(cargo)
        .args(["build", "-p", "ferrite-quantizer", "--bin", "ferrite"])
        .current_dir(root))?;
    let mut path = OsString::from(&bin);
    if let Some(p) = std::env::var_os("PATH") {
        path.push(":");
        path.push(p);
    }
    run(Command::new(bin.join("maturin"))
        .args(["develop", "--release", "--manifest-path"])
        .arg(root.join("python").join("Cargo.toml"))
        .env("VIRTUAL_ENV", &venv)
        .env("PATH", &path)
        .env("CARGO_TARGET_DIR", root.join("target").join("python")))?;
    run(Command::new(bin.join("python"))
        .args(["-m", "pytest", "-q"])
        .arg(root.join("python").join("tests"))
        .env(
            "FERRITE_BIN",
            root.join("target").join("debug").join("ferrite"),
        )
        .current_dir(root))
}
