//! Build script of every QEMU board crate: puts the board's `memory.x` on the linker search path for cortex-m-rt's
//! `link.x`, adds the linker scripts, and passes the RAM region's length to the crate as
//! `FERRITE_RAM_BYTES` (the partition firmware's arena is sized from it).
//!
//! With `FERRITE_MEMORY_PROBE` set, the FLASH and RAM regions' LENGTH is raised to 128M so
//! that an image too large for the board still links: `cargo xtask qemu-test`
//! uses that build to measure how much it overflows, then skips it.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let memory = fs::read_to_string("memory.x").expect("read memory.x");
    let memory = if env::var_os("FERRITE_MEMORY_PROBE").is_some() {
        memory
            .lines()
            .map(|line| {
                let region = line.trim_start();
                match line.find("LENGTH") {
                    Some(at) if region.starts_with("FLASH") || region.starts_with("RAM") => {
                        format!("{}LENGTH = 128M", &line[..at])
                    }
                    _ => line.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        memory
    };
    let ram = memory
        .lines()
        .find(|line| line.trim_start().starts_with("RAM"))
        .and_then(|line| line.split("LENGTH").nth(1))
        .map(|length| parse_length(length.trim_start_matches([' ', '=']).trim()))
        .expect("memory.x: a RAM region with a LENGTH");
    println!("cargo:rustc-env=FERRITE_RAM_BYTES={ram}");
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=../qemu-build.rs");
    println!("cargo:rerun-if-env-changed=FERRITE_MEMORY_PROBE");
}

/// `64K`, `4M` or a plain number of bytes.
fn parse_length(text: &str) -> usize {
    let (digits, unit) = match text.strip_suffix('K') {
        Some(digits) => (digits, 1024),
        None => match text.strip_suffix('M') {
            Some(digits) => (digits, 1024 * 1024),
            None => (text, 1),
        },
    };
    digits
        .trim()
        .parse::<usize>()
        .unwrap_or_else(|e| panic!("memory.x: RAM LENGTH {text:?}: {e}"))
        * unit
}
