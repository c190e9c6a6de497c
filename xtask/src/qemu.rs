//! Running a firmware ELF in `qemu-system-arm` with semihosting, under a
//! time limit, capturing its stdout (the defmt frames).

use crate::boards::Machine;
use anyhow::{Context, Result};
use std::{
    io::Read,
    path::Path,
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

pub struct Run {
    /// `None` when QEMU was killed at the time limit.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

pub fn run(machine: Machine, elf: &Path, timeout: Duration) -> Result<Run> {
    run_with(machine, elf, timeout, &[])
}

/// Like [`run`], with extra QEMU arguments (e.g. `-plugin ...`) before `-kernel`.
pub fn run_with(
    machine: Machine,
    elf: &Path,
    timeout: Duration,
    extra: &[std::ffi::OsString],
) -> Result<Run> {
    let start = Instant::now();
    let mut child = Command::new("qemu-system-arm")
        .args([
            "-M",
            machine.qemu_machine(),
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
        ])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(extra)
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(
            "starting qemu-system-arm (is it installed? Debian: apt-get install qemu-system-arm)",
        )?;
    let stdout = child.stdout.take().map(|mut pipe| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    });
    let stderr = child.stderr.take().map(|mut pipe| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() >= timeout {
            child.kill().context("killing qemu-system-arm")?;
            child.wait()?;
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let stdout = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(Run {
        status,
        stdout,
        stderr,
        elapsed,
    })
}
