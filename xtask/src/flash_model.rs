//! `cargo xtask flash-model --board B MODEL.ferrite`: puts a model into a board's flash partition and
//! runs the partition firmware on it (QEMU boards: `-device loader`), or prints the probe-rs command
//! that writes only the partition (real boards: it needs a debug probe and the board, so it is
//! printed, not run). Also the partition cases of `cargo xtask qemu-test`: one firmware, built once per
//! machine, running two different models and refusing broken ones with a clear error.

use crate::{
    boards::Machine,
    build_boards::{RealBoard, REAL_BOARDS},
    cases::Case,
    defmt_log, elf_size,
    firmware::{self, Build, Built},
    qemu, toolchain,
};
use anyhow::{anyhow, bail, Context, Result};
use ferrite_runtime::{Interpreter, Model};
use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    time::Duration,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    An386,
    Lm3s6965,
    Microbit,
    #[value(name = "nrf52840-dk")]
    Nrf52840Dk,
    #[value(name = "nucleo-l4r5zi")]
    NucleoL4r5zi,
}

#[derive(clap::Args)]
pub struct Options {
    /// The board whose partition receives the model.
    #[arg(long, value_enum)]
    board: Board,
    /// The `.ferrite` file.
    model: PathBuf,
    /// Kill QEMU after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// The `MODEL` region of a QEMU board's memory.x: (origin, length).
pub fn partition(root: &Path, machine: Machine) -> Result<(u64, u64)> {
    region(&firmware::memory_x(root, machine))
}

/// The `MODEL` region of the linker memory map `memory_x`: (origin, length).
pub fn region(memory_x: &Path) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(memory_x)
        .with_context(|| format!("reading {}", memory_x.display()))?;
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("MODEL"))
        .ok_or_else(|| anyhow!("no MODEL region in {}", memory_x.display()))?;
    Ok((
        elf_size::parse_field(line, "ORIGIN")?,
        elf_size::parse_field(line, "LENGTH")?,
    ))
}

/// RAM the real-board partition firmware keeps for its statics and stack beside the arena
/// (`fit::STACK_RESERVE` in boards/rtt-common): its arena is the rest of the RAM.
const REAL_BOARD_RAM_RESERVE: u64 = 16 * 1024;

/// A real board: checks that the model fits the partition (else an error with both sizes) and prints
/// the probe-rs command that writes only the partition. Nothing is run: that needs the board and a
/// debug probe.
fn real_board(root: &Path, board: &RealBoard, model: &Path, bytes: &[u8]) -> Result<()> {
    let memory_x = board.memory_x(root);
    let (origin, length) = region(&memory_x)?;
    let len = bytes.len() as u64;
    if len > length {
        bail!(
            "{} is {len} B, larger than the {length} B model partition of {} (MODEL in {})",
            model.display(),
            board.krate,
            memory_x.display()
        );
    }
    let arena = elf_size::capacity(&memory_x)?
        .ram
        .saturating_sub(REAL_BOARD_RAM_RESERVE);
    match Model::from_bytes(bytes) {
        Ok(m) if m.arena_size() as u64 > arena => println!(
            "warning: the model needs a {} B arena and the {} partition firmware has {arena} B: \
             it will refuse it (ArenaTooSmall)",
            m.arena_size(),
            board.krate
        ),
        Ok(m) => println!(
            "{}: {len} B of the {length} B partition at {origin:#010x}, arena {} B of {arena} B",
            model.display(),
            m.arena_size()
        ),
        Err(e) => println!(
            "warning: {} is not a valid model ({e}): the partition firmware will refuse it and log why",
            model.display()
        ),
    }
    println!("the model, into the partition only:");
    println!(
        "probe-rs download --chip {} --binary-format bin --base-address {origin:#010x} {}",
        board.chip,
        model.display()
    );
    println!(
        "then the partition firmware, built once for every model (probe-rs erases only the sectors \
         it writes, so the partition is kept), which prints the log over RTT:"
    );
    println!(
        "(cd boards/{} && cargo run --release --features partition)",
        board.krate
    );
    println!(
        "(not run here: writing flash needs the {} board and a debug probe, and none is attached)",
        board.krate
    );
    Ok(())
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let bytes = std::fs::read(&options.model)
        .with_context(|| format!("reading {}", options.model.display()))?;
    let machine = match options.board {
        Board::An386 => Machine::An386,
        Board::Lm3s6965 => Machine::Lm3s6965,
        Board::Microbit => Machine::Microbit,
        Board::Nrf52840Dk | Board::NucleoL4r5zi => {
            let name = match options.board {
                Board::Nrf52840Dk => "nrf52840-dk",
                _ => "nucleo-l4r5zi",
            };
            let board = REAL_BOARDS
                .iter()
                .find(|b| b.krate == name)
                .ok_or_else(|| anyhow!("no real board {name}"))?;
            return real_board(root, board, &options.model, &bytes);
        }
    };
    toolchain::ensure_targets(root, &[machine.target()])?;
    let elf = build(root, machine)?;
    let run = run_partition(
        root,
        machine,
        &elf,
        &options.model,
        bytes.len(),
        options.timeout,
    )?;
    for line in &run.log {
        println!("    | {line}");
    }
    if !run.passed {
        bail!(
            "the firmware refused or failed on {}",
            options.model.display()
        );
    }
    match compare_with_host(&bytes, &run.log) {
        Ok(n) => println!("    output ({n} B) identical to the host's"),
        Err(e) => bail!("{e}"),
    }
    Ok(())
}

/// Builds the partition firmware of `machine` (the same ELF for every model).
fn build(root: &Path, machine: Machine) -> Result<PathBuf> {
    let smoke = Case::smoke();
    let build = Build {
        root,
        machine,
        case: &smoke,
        features: vec!["partition"],
        probe: false,
        model_ops_only: false,
    };
    match build.run()? {
        Built::Elf(elf) => build.keep(&elf),
        Built::Failed(log) => bail!(
            "building the partition firmware for {}:\n{log}",
            machine.name()
        ),
    }
}

struct PartitionRun {
    passed: bool,
    log: Vec<String>,
}

fn run_partition(
    root: &Path,
    machine: Machine,
    elf: &Path,
    model: &Path,
    len: usize,
    timeout: u64,
) -> Result<PartitionRun> {
    let (origin, length) = partition(root, machine)?;
    if len as u64 > length {
        bail!(
            "{} is {len} B, larger than the {length} B partition of {}",
            model.display(),
            machine.name()
        );
    }
    let mut loader = OsString::from("loader,file=");
    loader.push(model.as_os_str());
    loader.push(format!(",addr={origin:#x},force-raw=on"));
    let run = qemu::run_with(
        machine,
        elf,
        Duration::from_secs(timeout),
        &[OsString::from("-device"), loader],
    )?;
    let bytes = std::fs::read(elf)?;
    let log = defmt_log::decode(&bytes, &run.stdout)?;
    Ok(PartitionRun {
        passed: run.status.is_some_and(|s| s.success()),
        log,
    })
}

/// Checks the firmware's output hash and its `output i: [..]` lines (outputs up to 64 B) against the
/// host runtime on the same input (every input filled with its zero point). Returns the number of
/// output bytes.
fn compare_with_host(model_bytes: &[u8], log: &[String]) -> Result<usize> {
    let model = Model::from_bytes(model_bytes).map_err(|e| anyhow!("host: {e}"))?;
    let mut arena = vec![0u8; model.arena_size() + 16];
    let mut it = Interpreter::new(&model, &mut arena).map_err(|e| anyhow!("host: {e}"))?;
    for i in 0..it.inputs() {
        let zp = model.input(i).map(|t| t.zero_point).unwrap_or(0);
        it.input_bytes_mut(i)
            .map_err(|e| anyhow!("{e}"))?
            .fill(zp as i8 as u8);
    }
    it.invoke().map_err(|e| anyhow!("host: {e}"))?;
    // FNV-1a of all outputs, as the firmware logs it.
    let mut hash = 0x811c_9dc5u32;
    for i in 0..it.outputs() {
        for &b in it.output_bytes(i).map_err(|e| anyhow!("{e}"))? {
            hash = (hash ^ b as u32).wrapping_mul(0x0100_0193);
        }
    }
    let logged = log
        .iter()
        .find_map(|l| l.split("output fnv1a=").nth(1))
        .and_then(|h| u32::from_str_radix(h.trim().trim_start_matches("0x").get(..8)?, 16).ok())
        .ok_or_else(|| anyhow!("no output hash in the firmware's log"))?;
    if logged != hash {
        bail!("output hash differs: device {logged:#010x}, host {hash:#010x}");
    }
    let mut compared = 0;
    for i in 0..it.outputs() {
        let host = it.output_bytes(i).map_err(|e| anyhow!("{e}"))?;
        compared += host.len();
        if host.len() > 64 {
            continue; // compared through the hash only
        }
        let prefix = format!("output {i}: [");
        let device: Vec<u8> = log
            .iter()
            .find_map(|l| l.split(&prefix).nth(1))
            .and_then(|rest| rest.split(']').next())
            .ok_or_else(|| anyhow!("no output {i} in the firmware's log"))?
            .split(',')
            .map(|v| v.trim().parse::<u8>())
            .collect::<Result<_, _>>()?;
        if device != host {
            bail!("output {i} differs: device {device:?}, host {host:?}");
        }
    }
    Ok(compared)
}

/// One partition case of qemu-test: a file and what must happen.
struct PartitionCase {
    name: &'static str,
    file: PathBuf,
    /// `None`: must run and match the host; `Some(text)`: must fail with `text` in the log.
    error: Option<&'static str>,
}

fn partition_cases(root: &Path) -> Result<Vec<PartitionCase>> {
    let dir = root.join("target").join("boards").join("partition");
    std::fs::create_dir_all(&dir)?;
    let golden = root.join("tests").join("golden");
    let small = std::fs::read(golden.join("small_dscnn/model.ferrite"))?;
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        Ok(path)
    };
    // xorshift bytes: not a model.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let garbage: Vec<u8> = (0..512)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut version = small.clone();
    version[4..6].copy_from_slice(&2u16.to_le_bytes());
    let mut arena = small.clone();
    arena[8..12].copy_from_slice(&(8u32 << 20).to_le_bytes());
    let large = large_arena_model()?;
    Ok(vec![
        PartitionCase {
            name: "small_dscnn",
            file: golden.join("small_dscnn/model.ferrite"),
            error: None,
        },
        PartitionCase {
            name: "conv2d_3x3_same_relu",
            file: golden.join("conv2d_3x3_same_relu/model.ferrite"),
            error: None,
        },
        PartitionCase {
            name: "garbage",
            file: write("garbage.ferrite", &garbage)?,
            error: Some("BadMagic"),
        },
        // The rest of the partition is erased flash: the payload's checksum fails.
        PartitionCase {
            name: "truncated",
            file: write("truncated.ferrite", &small[..small.len() / 2])?,
            error: Some("ChecksumMismatch"),
        },
        PartitionCase {
            name: "wrong-version",
            file: write("version-2.ferrite", &version)?,
            error: Some("UnsupportedVersion { found: 2, supported: 1 }"),
        },
        // A header claiming more arena than its own plan needs is inconsistent.
        PartitionCase {
            name: "arena-inconsistent",
            file: write("arena-8MiB.ferrite", &arena)?,
            error: Some("ArenaLargerThanPlan { header: 8388608"),
        },
        // A valid model whose plan needs more RAM than any of the emulated boards has.
        PartitionCase {
            name: "arena-too-large",
            file: write("relu-8MiB.ferrite", &large)?,
            error: Some("ArenaTooSmall { needed: 8388608"),
        },
    ])
}

/// A valid one-operator model (ReLU over a 4 MiB int8 tensor into another, both graph outputs so that
/// the ReLU cannot run in place) whose plan needs an 8 MiB arena while the file stays small.
fn large_arena_model() -> Result<Vec<u8>> {
    use ferrite_quantizer::builder::{ModelBuilder, TensorDef};
    use ferrite_runtime::format::{Activation, DType, Shape};
    use ferrite_runtime::ops::{Op, Relu, ReluParams};
    let mut b = ModelBuilder::new();
    let dims = [1, 1024, 1024, 4];
    let mut tensor = |name: &str| {
        b.tensor(TensorDef {
            name: name.into(),
            dtype: DType::I8,
            shape: Shape::new(&dims).expect("a rank-4 shape"),
            scale: 0.05,
            zero_point: -128,
        })
    };
    let (x, y) = (tensor("x"), tensor("y"));
    b.push(Op::Relu(Relu {
        input: b.operand(x),
        output: b.operand(y),
        quant: Some(ReluParams::prepare(
            0.05,
            -128,
            0.05,
            -128,
            Activation::Relu,
        )),
        activation: Activation::Relu,
    }));
    b.set_inputs(&[x]);
    b.set_outputs(&[y, x]);
    Ok(b.finish()?.bytes)
}

/// Runs the partition cases on `machine`, handing each to `record` with its label and `Ok` or why it
/// failed.
pub fn qemu_tests(
    root: &Path,
    machine: Machine,
    timeout: u64,
    record: &mut dyn FnMut(String, Result<(), String>),
) -> Result<()> {
    let elf = build(root, machine)?;
    for case in partition_cases(root)? {
        let label = format!("partition {} on {}", case.name, machine.name());
        println!("--- {label}");
        let bytes = std::fs::read(&case.file)?;
        let run = run_partition(root, machine, &elf, &case.file, bytes.len(), timeout)?;
        for line in &run.log {
            println!("    | {line}");
        }
        let verdict = match (case.error, run.passed) {
            (None, true) => match compare_with_host(&bytes, &run.log) {
                Ok(n) => {
                    println!("    output ({n} B) identical to the host's");
                    Ok(())
                }
                Err(e) => Err(format!("{e:#}")),
            },
            (None, false) => Err("the firmware failed".into()),
            (Some(_), true) => Err("the firmware accepted a broken model".into()),
            (Some(text), false) if run.log.iter().any(|l| l.contains(text)) => Ok(()),
            (Some(text), false) => Err(format!("failed, but the log lacks {text:?}")),
        };
        record(label, verdict);
    }
    Ok(())
}
