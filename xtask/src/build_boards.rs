//! `cargo xtask build-boards`: builds the real-board firmware (no hardware needed) in both variants,
//! the embedded model (`include_bytes!`) and the model partition (feature `partition`, the model read
//! from flash at boot), and, with `--selftest`, checks that a model too large for a board fails the
//! embedded build with both sizes.

use crate::{
    elf_size::{self, Kib},
    toolchain,
};
use anyhow::{bail, Context, Result};
use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// A board flashed with probe-rs: crate under `boards/`, probe-rs chip, Rust target.
pub struct RealBoard {
    pub krate: &'static str,
    pub chip: &'static str,
    pub target: &'static str,
}

impl RealBoard {
    /// The board crate's linker memory map.
    pub fn memory_x(&self, root: &Path) -> PathBuf {
        root.join("boards").join(self.krate).join("memory.x")
    }
}

pub const REAL_BOARDS: [RealBoard; 2] = [
    RealBoard {
        krate: "nrf52840-dk",
        chip: "nRF52840_xxAA",
        target: "thumbv7em-none-eabihf",
    },
    RealBoard {
        krate: "nucleo-l4r5zi",
        chip: "STM32L4R5ZITx",
        target: "thumbv7em-none-eabihf",
    },
];

#[derive(clap::Args)]
pub struct Options {
    /// Also check that oversized stand-in models (arena larger than the RAM, file larger than the
    /// flash) fail the build with a message giving both sizes.
    #[arg(long)]
    selftest: bool,
}

impl Options {
    pub fn full() -> Self {
        Options { selftest: true }
    }
}

/// Builds `board` with `model` embedded (`None`: the bundled one), or with the `partition` feature
/// (no model) when `partition` is set.
pub(crate) fn build(
    root: &Path,
    board: &RealBoard,
    model: Option<&Path>,
    partition: bool,
) -> Result<Output> {
    let boards = root.join("boards");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&boards)
        .args(["build", "--release", "--manifest-path"])
        .arg(boards.join("Cargo.toml"))
        .args(["--package", board.krate, "--target", board.target])
        .env("CARGO_TARGET_DIR", root.join("target").join("boards"));
    if partition {
        command.args(["--features", "partition"]);
    }
    match model {
        Some(path) => command.env("FERRITE_MODEL", path),
        None => command.env_remove("FERRITE_MODEL"),
    };
    if env::var_os("DEFMT_LOG").is_none() {
        command.env("DEFMT_LOG", "info");
    }
    command.output().context("running cargo build")
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let targets: Vec<_> = REAL_BOARDS.iter().map(|b| b.target).collect();
    toolchain::ensure_targets(root, &targets)?;
    let mut failures = Vec::new();
    for board in &REAL_BOARDS {
        for partition in [false, true] {
            if let Err(e) = build_variant(root, board, partition) {
                failures.push(format!("{e:#}"));
            }
        }
    }
    if options.selftest {
        let dir = root.join("target").join("boards").join("standins");
        std::fs::create_dir_all(&dir)?;
        let standins = standins(root, &dir)?;
        for board in &REAL_BOARDS {
            for (what, path) in &standins {
                let label = format!("{} with {what} (must fail)", board.krate);
                println!("--- {label}");
                let output = build(root, board, Some(path), false)?;
                let stderr = String::from_utf8_lossy(&output.stderr);
                let message = stderr
                    .lines()
                    .find(|l| l.contains("model too large for"))
                    .map(str::trim);
                match (output.status.success(), message) {
                    (false, Some(m)) if m.contains("TOO SMALL") => println!("    PASS: {m}"),
                    (true, _) => failures.push(format!("{label}: the build succeeded")),
                    (false, _) => {
                        println!("{stderr}");
                        failures.push(format!("{label}: failed without the size message"));
                    }
                }
            }
        }
    }
    if !failures.is_empty() {
        bail!("build-boards: {}", failures.join("; "));
    }
    println!("build-boards: all passed");
    Ok(())
}

/// Builds one variant of `board` and prints its flash and RAM use and how to run it on hardware.
fn build_variant(root: &Path, board: &RealBoard, partition: bool) -> Result<()> {
    let variant = if partition {
        "model partition: no model in the image, read from flash at boot"
    } else {
        "embedded model: tests/golden/small_dscnn"
    };
    println!("--- {} ({variant})", board.krate);
    let output = build(root, board, None, partition)?;
    if !output.status.success() {
        println!("{}", String::from_utf8_lossy(&output.stderr));
        bail!(
            "{}{} does not build",
            board.krate,
            if partition {
                " --features partition"
            } else {
                ""
            }
        );
    }
    // Both variants link to the same path: keep a copy of each.
    let built = elf_path(root, board);
    let kept = root.join("target/boards/elf");
    std::fs::create_dir_all(&kept)?;
    let elf = kept.join(format!(
        "{}{}.elf",
        board.krate,
        if partition { "-partition" } else { "" }
    ));
    std::fs::copy(&built, &elf).with_context(|| format!("copying {}", built.display()))?;
    let capacity = elf_size::capacity(&board.memory_x(root))?;
    let usage = elf_size::usage(&std::fs::read(&elf)?, capacity.ram_origin)?;
    println!(
        "    built {}: flash {} of {}, RAM {} of {} (stack not counted)",
        elf.display(),
        Kib(usage.flash),
        Kib(capacity.flash),
        Kib(usage.ram),
        Kib(capacity.ram)
    );
    let features = if partition {
        " --features partition"
    } else {
        ""
    };
    println!(
        "    on hardware: (cd boards/{} && cargo run --release{features}), i.e. probe-rs run --chip {} {}",
        board.krate,
        board.chip,
        elf.display()
    );
    if partition {
        let (origin, length) = crate::flash_model::region(&board.memory_x(root))?;
        println!(
            "    model partition: {} at {origin:#010x}; write a model with `cargo xtask flash-model --board {} MODEL.ferrite`",
            Kib(length),
            board.krate
        );
    }
    Ok(())
}

/// The ELF the last real-board build left (either variant).
pub(crate) fn elf_path(root: &Path, board: &RealBoard) -> PathBuf {
    root.join("target/boards")
        .join(board.target)
        .join("release")
        .join(board.krate)
}

/// Stand-in models made from the bundled one: its header claiming a 1 MiB arena (more RAM than
/// either board has), and the file padded to 2.5 MiB (more flash than either).
fn standins(root: &Path, dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    let source = root.join("tests/golden/small_dscnn/model.ferrite");
    let model = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let mut arena = model.clone();
    arena[8..12].copy_from_slice(&(1024u32 * 1024).to_le_bytes());
    let mut flash = model;
    let len = 5 * 512 * 1024;
    flash.resize(len, 0);
    flash[12..16].copy_from_slice(&((len - 24) as u32).to_le_bytes());
    let arena_path = dir.join("arena-1MiB.ferrite");
    let flash_path = dir.join("file-2.5MiB.ferrite");
    std::fs::write(&arena_path, arena)?;
    std::fs::write(&flash_path, flash)?;
    Ok(vec![
        ("a 1 MiB arena", arena_path),
        ("a 2.5 MiB model file", flash_path),
    ])
}
