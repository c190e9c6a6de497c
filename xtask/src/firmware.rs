//! Building a board's firmware with `cargo build` in the `boards/` workspace.

use crate::{boards::Machine, cases::Case};
use anyhow::{Context, Result};
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// Firmware harness self-tests: each must make the firmware fail.
pub const SELFTESTS: [&str; 3] = ["selftest-panic", "selftest-hardfault", "selftest-mismatch"];

/// The stack guard's test: firmware that overflows its stack on purpose, which must fault and
/// report a stack overflow (`boards/common/src/fault.rs`).
pub const STACK_OVERFLOW: &str = "selftest-stack-overflow";

pub struct Build<'a> {
    pub root: &'a Path,
    pub machine: Machine,
    pub case: &'a Case,
    /// Extra cargo features of the board crate (self-tests).
    pub features: Vec<&'a str>,
    /// Link with 128M regions, to measure images too large for the board.
    pub probe: bool,
    /// Build the runtime with only the case model's operators (`--no-default-features` of the board
    /// crate, `ferrite-runtime/<op>` for each operator the model uses) instead of all of them.
    pub model_ops_only: bool,
}

pub enum Built {
    Elf(PathBuf),
    /// The build failed; cargo's output.
    Failed(String),
}

impl Build<'_> {
    fn target_dir(&self) -> PathBuf {
        let dir = self.root.join("target").join("boards");
        if self.probe {
            dir.join("probe")
        } else {
            dir
        }
    }

    pub fn run(&self) -> Result<Built> {
        let boards = self.root.join("boards");
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut features: Vec<String> = self.features.iter().map(|f| f.to_string()).collect();
        if let Some(dir) = &self.case.dir {
            features.push("case".into());
            if model_uses_float(dir)? {
                features.push("float".into());
            }
            if model_uses_int16(dir)? {
                features.push("int16".into());
            }
            if model_runs_in_place(dir)? {
                features.push("in-place".into());
            }
            if self.model_ops_only {
                features.extend(
                    model_op_features(dir)?
                        .into_iter()
                        .map(|f| format!("ferrite-runtime/{f}")),
                );
            }
        }
        let mut command = Command::new(cargo);
        command
            .current_dir(&boards)
            .args(["build", "--release", "--manifest-path"])
            .arg(boards.join("Cargo.toml"))
            .args([
                "--package",
                self.machine.krate(),
                "--target",
                self.machine.target(),
            ])
            .env("CARGO_TARGET_DIR", self.target_dir())
            .env("FERRITE_CASE_NAME", &self.case.name);
        if self.model_ops_only {
            command.arg("--no-default-features");
        }
        if !features.is_empty() {
            command.args(["--features", &features.join(",")]);
        }
        match &self.case.dir {
            Some(dir) => command.env("FERRITE_CASE_DIR", dir),
            None => command.env_remove("FERRITE_CASE_DIR"),
        };
        if self.probe {
            command.env("FERRITE_MEMORY_PROBE", "1");
        } else {
            command.env_remove("FERRITE_MEMORY_PROBE");
        }
        if env::var_os("DEFMT_LOG").is_none() {
            command.env("DEFMT_LOG", "info");
        }
        let output = command
            .output()
            .context("running cargo build for the firmware")?;
        if !output.status.success() {
            return Ok(Built::Failed(
                String::from_utf8_lossy(&output.stderr).into_owned(),
            ));
        }
        let elf = self
            .target_dir()
            .join(self.machine.target())
            .join("release")
            .join(self.machine.krate());
        Ok(Built::Elf(elf))
    }

    /// Copies the ELF to `target/boards/elf/<machine>-<case>[-<features>].elf`,
    /// so each build stays available for inspection after the next one.
    pub fn keep(&self, elf: &Path) -> Result<PathBuf> {
        let dir = self.target_dir().join("elf");
        std::fs::create_dir_all(&dir)?;
        let mut name = format!("{}-{}", self.machine.name(), self.case.name);
        for feature in &self.features {
            name.push('-');
            // `ferrite-runtime/reference-kernels` -> `ferrite-runtime-reference-kernels`.
            name.push_str(&feature.replace('/', "-"));
        }
        if self.model_ops_only {
            name.push_str("-model-ops");
        }
        let kept = dir.join(format!("{name}.elf"));
        std::fs::copy(elf, &kept).with_context(|| format!("copying {}", elf.display()))?;
        Ok(kept)
    }
}

/// The board's `memory.x`.
pub fn memory_x(root: &Path, machine: Machine) -> PathBuf {
    root.join("boards").join(machine.krate()).join("memory.x")
}

/// Whether the case's model has the header flag for f32 kernels (bit 0 of the flags at byte 6).
fn model_uses_float(case_dir: &Path) -> Result<bool> {
    let path = case_dir.join("model.ferrite");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes.get(6).is_some_and(|flags| flags & 1 != 0))
}

/// Whether the case's model has an int16 tensor (it needs the runtime's int16x8 kernels).
fn model_uses_int16(case_dir: &Path) -> Result<bool> {
    let bytes = read_model(case_dir)?;
    let model = load_model(case_dir, &bytes)?;
    let int16 = model
        .graph()
        .tensors
        .iter()
        .any(|t| t.is_ok_and(|t| t.dtype == ferrite_runtime::format::DType::I16));
    Ok(int16)
}

/// Whether an operator other than a Reshape writes over its input (`--arena in-place`).
fn model_runs_in_place(case_dir: &Path) -> Result<bool> {
    let bytes = read_model(case_dir)?;
    let model = load_model(case_dir, &bytes)?;
    let reshapes: Vec<bool> = model
        .ops()
        .map(|op| matches!(op, ferrite_runtime::ops::Op::Reshape(_)))
        .collect();
    let in_place = model.graph().tensors.iter().any(|t| {
        t.is_ok_and(|t| t.in_place && !reshapes.get(t.first as usize).copied().unwrap_or(true))
    });
    Ok(in_place)
}

fn read_model(case_dir: &Path) -> Result<Vec<u8>> {
    let path = case_dir.join("model.ferrite");
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

fn load_model<'a>(case_dir: &Path, bytes: &'a [u8]) -> Result<ferrite_runtime::Model<'a>> {
    ferrite_runtime::Model::from_bytes(bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", case_dir.join("model.ferrite").display()))
}

/// The runtime features the case's model needs: one per operator kind it uses (`Op::feature`), sorted.
pub fn model_op_features(case_dir: &Path) -> Result<Vec<&'static str>> {
    let bytes = read_model(case_dir)?;
    let model = load_model(case_dir, &bytes)?;
    let mut features: Vec<_> = model.ops().map(|op| op.feature()).collect();
    features.sort_unstable();
    features.dedup();
    Ok(features)
}
