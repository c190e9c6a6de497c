//! `cargo xtask bench`: executed-instruction counts of one inference, per operator and in total, under
//! QEMU with the exact counter of `../shared/tools/qemu-insncount` (a TCG plugin built here with the
//! host's gcc), beside the CMSIS-NN figures of `BASELINES.md`; flash, static RAM and the stack's
//! high-water mark.
//!
//! The firmware is the golden-case runner with the `bench` feature, on the models of `tests/bench/`:
//! it calls `ferrite_bench_mark()` twice back to back at boot (calibration: the marker's own cost),
//! once before `invoke_traced`, once before and once after each operator and once after invoke. A
//! layer's count is the difference of its two marks minus the calibration: the operator's run
//! (views of its tensors, parameter set-up, kernel). What lies between an operator's end and the
//! next one's start (decoding the operator from the model, the loop, the callbacks) plus the
//! invoke's entry and exit is the interpreter's own overhead, reported separately.

use crate::{
    baselines::{self, Baseline},
    boards::Machine,
    cases::Case,
    defmt_log,
    elf_size::{self, Capacity},
    firmware::{self, Build, Built},
    profile::{self, Profile},
    qemu, qemu_test, toolchain,
};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::{
    ffi::OsString,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMachine {
    /// mps2-an386, Cortex-M4F (compared with CMSIS-NN on M4 with DSP).
    An386,
    /// lm3s6965evb, Cortex-M3 (compared with CMSIS-NN's pure C on M3).
    Lm3s6965,
}

impl BenchMachine {
    pub(crate) fn machine(self) -> Machine {
        match self {
            BenchMachine::An386 => Machine::An386,
            BenchMachine::Lm3s6965 => Machine::Lm3s6965,
        }
    }
    fn cpu(self) -> &'static str {
        match self {
            BenchMachine::An386 => "Cortex-M4F",
            BenchMachine::Lm3s6965 => "Cortex-M3",
        }
    }
}

#[derive(clap::Args)]
pub struct Options {
    /// Only these machines (repeatable); an386 and lm3s6965 by default.
    #[arg(long, value_enum)]
    machine: Vec<BenchMachine>,
    /// Only these models of tests/bench/ (repeatable); all by default. A fixture case of
    /// qemu-test (`fixture_resnet_fashion`, `fixture_resnet_fashion_pruned`, ...) is made and
    /// measured too, and so is any `.ferrite` file given by its path (seeded random inputs).
    #[arg(long)]
    model: Vec<String>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Rewrite the measured section of BENCHMARKS.md.
    #[arg(long)]
    write: bool,
    /// The real MLPerf Tiny models of `../shared/models/mlperf-tiny/` (KWS DS-CNN, ResNet-8, VWW
    /// MobileNet, AD autoencoder, streaming wake word), converted (the `mlperf_*` cases), instead of
    /// the tests/bench/ models; on a machine whose memory a model's firmware exceeds, a skipped row
    /// with the flash and RAM needed. `--write` rewrites their section.
    #[arg(long)]
    mlperf: bool,
    /// The int16x8 convolution and fully connected TFLite fixtures on the M4F: the reference kernel,
    /// the DSP (`SMLAD`) kernel and the same layer in int8; `--write` rewrites their section.
    #[arg(long)]
    int16: bool,
    /// The stack of each operator instead of instructions: the firmware (board feature
    /// `stack-probe`) paints the stack before each operator and logs its high-water mark after it.
    /// Prints a table per model and machine (its instruction counts would include the probe).
    #[arg(long, conflicts_with_all = ["json", "write", "int16"])]
    stack_per_op: bool,
    /// Also print, per layer, the functions its instructions ran in, most first (the plugin's
    /// per-block histogram attributed by the firmware's symbol table; inlined code counts as its
    /// caller).
    #[arg(long, conflicts_with_all = ["json", "write", "int16", "stack_per_op"])]
    profile: bool,
    /// Kill QEMU after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

impl Options {
    /// The DS-CNN on the M4F only, tables printed: the smoke run of `cargo xtask test`.
    pub fn smoke() -> Self {
        Options {
            machine: vec![BenchMachine::An386],
            model: vec!["kws_dscnn".into()],
            json: false,
            write: false,
            mlperf: false,
            int16: false,
            stack_per_op: false,
            profile: false,
            timeout: 120,
        }
    }
}

/// BENCHMARKS.md section that `--write` replaces.
const BEGIN: &str = "<!-- cargo xtask bench --write: begin -->";
const END: &str = "<!-- cargo xtask bench --write: end -->";
/// BENCHMARKS.md section that `--mlperf --write` replaces.
const MLPERF_BEGIN: &str = "<!-- cargo xtask bench --mlperf --write: begin -->";
const MLPERF_END: &str = "<!-- cargo xtask bench --mlperf --write: end -->";

/// The BASELINES.md row of a layer (by its output tensor's name in tests/bench/).
fn baseline(model: &str, layer: &str) -> Option<&'static Baseline> {
    let layer = layer.trim_end_matches(|c: char| c.is_ascii_digit());
    baselines::layer(key(model), layer)
}

/// The BASELINES.md model a case stands for: `mlperf_kws_dscnn_int8` (the real converted model) and
/// `kws_dscnn` (its layer shapes in tests/bench/) are both `kws_dscnn`.
fn key(model: &str) -> &str {
    let model = model.strip_prefix("mlperf_").unwrap_or(model);
    model.strip_suffix("_int8").unwrap_or(model)
}

/// The MLPerf Tiny models `--mlperf` measures (cases of `crate::mlperf`).
const MLPERF: [&str; 5] = [
    "mlperf_kws_dscnn_int8",
    "mlperf_ic_resnet8_int8",
    "mlperf_vww_mobilenet_int8",
    "mlperf_ad_autoencoder_int8",
    "mlperf_sww_int8",
];

/// The tests/bench/ layer name of operator `step` of a real MLPerf model, from its operator, MACs and
/// output channels, so that its row of BASELINES.md is found; `None` when no layer matches.
fn mlperf_layer(
    model: &str,
    ops: &[ferrite_quantizer::inspect::OpSummary],
    step: usize,
) -> Option<String> {
    let op = &ops[step];
    let channels = *op.output.last()?;
    let earlier = |name: &str| ops[..step].iter().filter(|o| o.op == name).count();
    let name = match (key(model), op.op) {
        (_, "AVERAGE_POOL_2D") => "avgpool".to_string(),
        (_, "RESHAPE") => "reshape".to_string(),
        (_, "FULLY_CONNECTED") => "fc".to_string(),
        (_, "SOFTMAX") => "softmax".to_string(),
        ("kws_dscnn", "CONV_2D") if earlier("CONV_2D") == 0 => "conv1".to_string(),
        ("kws_dscnn", "CONV_2D") => format!("pw{}", earlier("CONV_2D")),
        ("kws_dscnn", "DEPTHWISE_CONV_2D") => format!("dw{}", earlier("DEPTHWISE_CONV_2D") + 1),
        ("ic_resnet8", "CONV_2D") if earlier("CONV_2D") == 0 => "conv1".to_string(),
        ("ic_resnet8", kind) => {
            let stage = match channels {
                16 => 1,
                32 => 2,
                64 => 3,
                _ => return None,
            };
            match kind {
                "ADD" => format!("s{stage}_add"),
                // Stage 1's two convolutions have the same shape, and conv1 also has 16 channels:
                // the first stage-1 convolution is the second one.
                "CONV_2D" if stage == 1 => {
                    let sixteen = ops[..step]
                        .iter()
                        .filter(|o| o.op == "CONV_2D" && o.output.last() == Some(&16))
                        .count();
                    if sixteen <= 1 {
                        "s1_conv_a"
                    } else {
                        "s1_conv_b"
                    }
                    .to_string()
                }
                // The others differ in MACs: the row of this stage with the operator's.
                "CONV_2D" => ["shortcut", "conv_a", "conv_b"]
                    .map(|part| format!("s{stage}_{part}"))
                    .into_iter()
                    .find(|name| baseline(model, name).and_then(|b| b.macs) == Some(op.macs))?,
                _ => return None,
            }
        }
        _ => return None,
    };
    // Only where the shapes match: the same MACs as the BASELINES.md row.
    let b = baseline(model, &name)?;
    if b.macs.is_some_and(|m| m != op.macs) {
        return None;
    }
    Some(name)
}

/// Whole-network row of BASELINES.md.
fn baseline_total(model: &str) -> Option<&'static Baseline> {
    baselines::whole_network(key(model))
}

pub(crate) struct Layer {
    step: usize,
    name: String,
    pub(crate) op: &'static str,
    pub(crate) instructions: u64,
    baseline: Option<&'static Baseline>,
    /// Arena bytes below the end of the highest tensor live at this step (the rest is free).
    in_use: u64,
}

pub(crate) struct Measured {
    pub(crate) model: String,
    pub(crate) machine: BenchMachine,
    pub(crate) layers: Vec<Layer>,
    pub(crate) total: u64,
    /// Instructions of the invoke outside the operators' runs.
    pub(crate) overhead: u64,
    pub(crate) calibration: u64,
    pub(crate) flash: u64,
    pub(crate) model_bytes: u64,
    pub(crate) arena: u64,
    pub(crate) static_ram: u64,
    pub(crate) stack: u64,
    pub(crate) passed: bool,
    /// The firmware's decoded log.
    pub(crate) log: Vec<String>,
    /// Instructions per function and layer (`--profile`).
    pub(crate) profile: Option<Profile>,
}

pub(crate) enum Outcome {
    Measured(Measured),
    Skipped {
        model: String,
        machine: BenchMachine,
        why: String,
    },
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let plugin = match build_plugin(root)? {
        Some(plugin) => plugin,
        None => {
            eprintln!(
                "bench: skipped: {} is absent (the exact instruction counter comes from there)",
                shared_dir(root).display()
            );
            return Ok(());
        }
    };
    if options.int16 {
        return crate::bench_int16::run(root, &plugin, options.write, options.timeout);
    }
    let machines = if options.machine.is_empty() {
        vec![BenchMachine::An386, BenchMachine::Lm3s6965]
    } else {
        options.machine.clone()
    };
    let models = if options.mlperf {
        let mut cases = Vec::new();
        for name in MLPERF {
            if options.model.is_empty() || options.model.iter().any(|m| m == name || m == key(name))
            {
                cases.extend(crate::mlperf::cases(root, Some(name))?);
            }
        }
        if cases.is_empty() {
            eprintln!("bench: no MLPerf model to measure (../shared/models/mlperf-tiny/ absent?)");
            return Ok(());
        }
        cases
    } else {
        // Fixture cases (`fixture_<name>[_qat|_pruned]`) are made as qemu-test makes them.
        let (files, names): (Vec<String>, Vec<String>) = options
            .model
            .iter()
            .cloned()
            .partition(|m| m.ends_with(".ferrite"));
        let (fixtures, bench): (Vec<String>, Vec<String>) = names
            .into_iter()
            .partition(|m| m.starts_with(crate::fixtures::PREFIX));
        let mut cases = Vec::new();
        for name in &fixtures {
            cases.extend(crate::fixtures::cases(root, Some(name))?);
        }
        for file in &files {
            cases.push(crate::cases::from_file(root, Path::new(file))?);
        }
        if (fixtures.is_empty() && files.is_empty()) || !bench.is_empty() {
            cases.extend(discover(root, &bench)?);
        }
        cases
    };
    let targets: Vec<_> = machines.iter().map(|m| m.machine().target()).collect();
    toolchain::ensure_targets(root, &targets)?;
    let timeout = Duration::from_secs(options.timeout);

    if options.stack_per_op {
        for case in &models {
            for &machine in &machines {
                eprintln!("--- {} on {}", case.name, machine.machine().name());
                let outcome = measure_with(
                    root,
                    &plugin,
                    case,
                    machine,
                    timeout,
                    &["stack-probe"],
                    false,
                )?;
                print!("{}", stack_table(&outcome)?);
            }
        }
        return Ok(());
    }
    let mut outcomes = Vec::new();
    for case in &models {
        for &machine in &machines {
            if !options.json {
                eprintln!("--- {} on {}", case.name, machine.machine().name());
            }
            let profile = options.profile;
            outcomes.push(measure_with(
                root,
                &plugin,
                case,
                machine,
                timeout,
                &[],
                profile,
            )?);
        }
    }
    let commit = commit(root);
    if options.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&outcomes, &commit))?
        );
    } else {
        print!("{}", report(&outcomes, &commit));
    }
    if options.profile {
        print!("{}", profiles(&outcomes));
    }
    if options.write && options.mlperf {
        write_section(root, MLPERF_BEGIN, MLPERF_END, &report(&outcomes, &commit))?;
        eprintln!("bench: wrote BENCHMARKS.md");
    } else if options.write {
        write_benchmarks(root, &report(&outcomes, &commit))?;
        eprintln!("bench: wrote BENCHMARKS.md");
    }
    let failed: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Measured(m) if !m.passed => {
                Some(format!("{} on {}", m.model, m.machine.machine().name()))
            }
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        bail!("output differs from the host's: {}", failed.join(", "));
    }
    Ok(())
}

/// The stack of each operator of a `stack-probe` run (`bench --stack-per-op`): a table with the
/// deepest operators marked.
fn stack_table(outcome: &Outcome) -> Result<String> {
    let m = match outcome {
        Outcome::Measured(m) => m,
        Outcome::Skipped {
            model,
            machine,
            why,
        } => {
            return Ok(format!(
                "{model} on {}: skipped: {why}\n\n",
                machine.machine().name()
            ))
        }
    };
    if !m.passed {
        bail!(
            "{} on {}: the firmware failed",
            m.model,
            m.machine.machine().name()
        );
    }
    let stacks = probe_stacks(&m.log);
    if stacks.len() != m.layers.len() {
        bail!(
            "{}: {} stack lines for {} operators",
            m.model,
            stacks.len(),
            m.layers.len()
        );
    }
    let deepest = stacks.iter().copied().max().unwrap_or(0);
    let mut s = format!(
        "### {} on {} ({}): stack high-water of each operator\n\n\
         Arena {} B; \"free above\": the arena's bytes past the end of the highest tensor live at \
         the step (room a kernel's buffers could take there without growing the arena).\n\n\
         | # | layer | op | stack (B) | free above (B) |\n|---:|---|---|---:|---:|\n",
        m.model,
        m.machine.machine().name(),
        m.machine.cpu(),
        thousands(m.arena)
    );
    for (layer, &stack) in m.layers.iter().zip(&stacks) {
        let bytes = thousands(stack);
        let bytes = if stack == deepest {
            format!("**{bytes}**")
        } else {
            bytes
        };
        let name: String = layer.name.chars().take(32).collect();
        s.push_str(&format!(
            "| {} | {} | {} | {bytes} | {} |\n",
            layer.step,
            name,
            layer.op,
            thousands(m.arena.saturating_sub(layer.in_use))
        ));
    }
    s.push('\n');
    Ok(s)
}

/// The stack lines of a `stack-probe` firmware's log, in operator order.
fn probe_stacks(log: &[String]) -> Vec<u64> {
    log.iter()
        .filter_map(|l| {
            let rest = l.split("stack after operator ").nth(1)?;
            let bytes = rest.split(": ").nth(1)?.split(' ').next()?;
            bytes.parse().ok()
        })
        .collect()
}

fn shared_dir(root: &Path) -> PathBuf {
    match std::env::var_os("FERRITE_INSNCOUNT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root
            .join("..")
            .join("shared")
            .join("tools")
            .join("qemu-insncount"),
    }
}

/// Builds `target/qemu-insncount/libinsncount.so` from the shared source if it is missing or older.
/// `None` when the source is absent.
pub(crate) fn build_plugin(root: &Path) -> Result<Option<PathBuf>> {
    let dir = shared_dir(root);
    let source = dir.join("insncount.c");
    if !source.is_file() {
        return Ok(None);
    }
    let out_dir = root.join("target").join("qemu-insncount");
    let plugin = out_dir.join("libinsncount.so");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&plugin).is_some() && modified(&plugin) >= modified(&source) {
        return Ok(Some(plugin));
    }
    std::fs::create_dir_all(&out_dir)?;
    let status = Command::new("gcc")
        .args(["-O2", "-shared", "-fPIC", "-I"])
        .arg(&dir)
        .arg("-o")
        .arg(&plugin)
        .arg(&source)
        .status()
        .context("running gcc to build the QEMU plugin")?;
    if !status.success() {
        bail!("gcc failed to build {}", source.display());
    }
    Ok(Some(plugin))
}

/// The models of `tests/bench/` (or only `only`).
fn discover(root: &Path, only: &[String]) -> Result<Vec<Case>> {
    let dir = root.join("tests").join("bench");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() && (only.is_empty() || only.contains(&name)) {
            cases.push(Case {
                name,
                dir: Some(path),
            });
        }
    }
    // The DS-CNN first, as in BASELINES.md.
    cases.sort_by(|a, b| b.name.cmp(&a.name));
    for name in only {
        if !cases.iter().any(|c| &c.name == name) {
            bail!("no model {name} under {}", dir.display());
        }
    }
    Ok(cases)
}

pub(crate) fn measure(
    root: &Path,
    plugin: &Path,
    case: &Case,
    machine: BenchMachine,
    timeout: Duration,
) -> Result<Outcome> {
    measure_with(root, plugin, case, machine, timeout, &[], false)
}

/// [`measure`] with more cargo features of the board crate (`ferrite-runtime/reference-kernels`),
/// and with `profile`, the instructions of each function ([`Measured::profile`]).
pub(crate) fn measure_with(
    root: &Path,
    plugin: &Path,
    case: &Case,
    machine: BenchMachine,
    timeout: Duration,
    extra_features: &[&'static str],
    profile: bool,
) -> Result<Outcome> {
    let mut features = vec!["bench"];
    features.extend_from_slice(extra_features);
    let m = machine.machine();
    let skip = |why: String| Outcome::Skipped {
        model: case.name.clone(),
        machine,
        why: format!(
            "{why} (the FLASH and RAM regions of boards/{}/memory.x)",
            m.krate()
        ),
    };
    let capacity: Capacity = elf_size::capacity(&firmware::memory_x(root, m))?;
    let build = Build {
        root,
        machine: m,
        case,
        features: features.clone(),
        probe: false,
        model_ops_only: false,
    };
    let elf = match build.run()? {
        Built::Elf(elf) => build.keep(&elf)?,
        Built::Failed(log) => {
            let probe = Build {
                probe: true,
                features,
                ..build
            };
            if let Built::Elf(elf) = probe.run()? {
                let usage = elf_size::usage(&std::fs::read(&elf)?, capacity.ram_origin)?;
                if let Some(why) = qemu_test::does_not_fit(usage, capacity) {
                    return Ok(skip(why));
                }
            }
            bail!("building the bench firmware for {}:\n{log}", m.name());
        }
    };
    let bytes = std::fs::read(&elf)?;
    let usage = elf_size::usage(&bytes, capacity.ram_origin)?;
    if let Some(why) = qemu_test::does_not_fit(usage, capacity) {
        return Ok(skip(why));
    }
    let mark = elf_size::symbol_address(&bytes, "ferrite_bench_mark")?
        .ok_or_else(|| anyhow!("no ferrite_bench_mark in {}", elf.display()))?;

    let marks_file = root.join("target").join("qemu-insncount").join(format!(
        "{}-{}.marks",
        m.name(),
        case.name
    ));
    let mut arg = OsString::from(plugin.as_os_str());
    arg.push(format!(",mark={mark:#x},out="));
    arg.push(marks_file.as_os_str());
    let _ = std::fs::remove_file(&marks_file);
    let hist_file = marks_file.with_extension("hist");
    if profile {
        arg.push(",hist=");
        arg.push(hist_file.as_os_str());
        let _ = std::fs::remove_file(&hist_file);
    }
    let run = qemu::run_with(m, &elf, timeout, &[OsString::from("-plugin"), arg])?;
    let log = defmt_log::decode(&bytes, &run.stdout).unwrap_or_default();
    let passed = run.status.is_some_and(|s| s.success());
    if !passed {
        for line in &log {
            eprintln!("    | {line}");
        }
        for line in run.stderr.lines() {
            eprintln!("    qemu: {line}");
        }
    }
    let marks = parse_marks(
        &std::fs::read_to_string(&marks_file)
            .with_context(|| format!("reading {}", marks_file.display()))?,
    )?;

    // The model's operators and the names of the tensors they produce.
    let model_bytes = std::fs::read(case.dir.as_ref().unwrap().join("model.ferrite"))?;
    let model = ferrite_runtime::Model::from_bytes(&model_bytes)
        .map_err(|e| anyhow!("{}: {e}", case.name))?;
    let ops: Vec<_> = model.ops().collect();
    // Marks: 2 calibration, 1 before invoke, 2 per operator (before, after), 1 after invoke.
    if marks.len() != 2 * ops.len() + 4 {
        bail!(
            "{} on {}: {} marks, expected {} (2 calibration + 2 x {} operators + 2)",
            case.name,
            m.name(),
            marks.len(),
            2 * ops.len() + 4,
            ops.len()
        );
    }
    let calibration = marks[1] - marks[0];
    let profile = match profile {
        true => Some(Profile::attribute(
            &std::fs::read_to_string(&hist_file)
                .with_context(|| format!("reading {}", hist_file.display()))?,
            &bytes,
        )?),
        false => None,
    };
    let names = layer_names(&model);
    let summary = case
        .name
        .starts_with("mlperf_")
        .then(|| ferrite_quantizer::inspect::summarize(&model, model_bytes.len()));
    let mut layers = Vec::new();
    for (step, (op, name)) in ops.iter().zip(names).enumerate() {
        // A real MLPerf model: its layers under the tests/bench/ names where the shapes match.
        let name = match &summary {
            Some(s) => mlperf_layer(&case.name, &s.ops, step).unwrap_or_else(|| {
                let short: String = name.chars().take(32).collect();
                format!("`{short}`")
            }),
            None => name,
        };
        let in_use = (0..)
            .map_while(|i| model.tensor(i))
            .filter(|t| t.first as usize <= step && step <= t.last as usize)
            .map(|t| t.offset as u64 + t.byte_len().unwrap_or(0) as u64)
            .max()
            .unwrap_or(0);
        layers.push(Layer {
            step,
            baseline: baseline(&case.name, &name),
            name,
            op: op.name(),
            instructions: marks[2 * step + 4] - marks[2 * step + 3] - calibration,
            in_use,
        });
    }
    let last = 2 * ops.len() + 3;
    let total = marks[last] - marks[2] - (2 * ops.len() as u64 + 1) * calibration;
    let overhead = total - layers.iter().map(|l| l.instructions).sum::<u64>();
    let stack = log
        .iter()
        .find_map(|line| {
            line.split("stack high-water ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .ok_or_else(|| anyhow!("no stack high-water line in the firmware's log"))?;
    Ok(Outcome::Measured(Measured {
        model: case.name.clone(),
        machine,
        layers,
        total,
        overhead,
        calibration,
        flash: usage.flash,
        model_bytes: model_bytes.len() as u64,
        arena: model.arena_size() as u64,
        static_ram: usage.ram,
        stack,
        passed,
        log,
        profile,
    }))
}

/// Each operator's layer name: the name of the tensor it produces (`op<step>` when it has none).
fn layer_names(model: &ferrite_runtime::Model) -> Vec<String> {
    let inputs: Vec<u16> = model.graph().inputs.iter().filter_map(Result::ok).collect();
    (0..model.ops().count())
        .map(|step| {
            (0..)
                .map_while(|i| model.tensor(i).map(|t| (i, t)))
                .find(|(i, t)| t.first as usize == step && !inputs.contains(&(*i as u16)))
                .map(|(_, t)| t.name.to_string())
                .unwrap_or_else(|| format!("op{step}"))
        })
        .collect()
}

fn parse_marks(text: &str) -> Result<Vec<u64>> {
    text.lines()
        .filter_map(|line| line.strip_prefix("mark "))
        .map(|rest| {
            rest.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| anyhow!("bad marks line {rest:?}"))
        })
        .collect()
}

/// `git rev-parse --short HEAD`, with `+changes` when files other than BENCHMARKS.md differ from it.
pub(crate) fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty = git(&["status", "--porcelain", "--", ".", ":!BENCHMARKS.md"])
        .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head}+changes")
    } else {
        head
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(ours: u64, theirs: u64) -> String {
    format!("{:.2}x", ours as f64 / theirs as f64)
}

/// The reference figure for a machine: CMSIS-NN with DSP on M4, pure C on M3.
fn reference(b: &Baseline, machine: BenchMachine) -> u64 {
    match machine {
        BenchMachine::An386 => b.cmsis_m4,
        BenchMachine::Lm3s6965 => b.cmsis_m3,
    }
}

/// The functions of each layer of every profiled outcome (`--profile`).
fn profiles(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    for outcome in outcomes {
        let Outcome::Measured(m) = outcome else {
            continue;
        };
        let Some(profile) = &m.profile else {
            continue;
        };
        let _ = writeln!(
            s,
            "\n### Functions of each layer: {} on {} ({})\n",
            m.model,
            m.machine.machine().name(),
            m.machine.cpu()
        );
        let layers: Vec<(String, &str)> = m.layers.iter().map(|l| (l.name.clone(), l.op)).collect();
        s.push_str(&profile::table(profile, &layers, 4));
    }
    s
}

fn report(outcomes: &[Outcome], commit: &str) -> String {
    let mlperf = outcomes.iter().any(|o| match o {
        Outcome::Measured(m) => m.model.starts_with("mlperf_"),
        Outcome::Skipped { model, .. } => model.starts_with("mlperf_"),
    });
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured at commit `{commit}` with `cargo xtask bench{}` (qemu-system-arm, exact counts from the \
         qemu-insncount plugin).\n",
        if mlperf { " --mlperf" } else { "" }
    );
    if mlperf {
        let _ = writeln!(
            s,
            "The real models of `../shared/models/mlperf-tiny/`, converted by the TFLite importer, on input \
             sample 0 of `tests/tflite/goldens/` (seeded xorshift64*); the firmware compares its output with \
             TFLite Micro's reference interpreter's, recorded there. Layers are named as in the tests/bench/ \
             models where operator, output channels and MACs match a row of BASELINES.md (whose figures are \
             for these models' shapes); other layers keep their TFLite tensor name. BASELINES.md has \
             per-layer CMSIS-NN rows for the KWS DS-CNN and ResNet-8 only; for VWW MobileNet and the AD \
             autoencoder it has TFLite Micro + CMSIS-NN's whole invoke, and for the streaming wake word \
             model no figure.\n"
        );
        s.push_str(&summary(outcomes));
    }
    for outcome in outcomes {
        let m = match outcome {
            Outcome::Skipped {
                model,
                machine,
                why,
            } => {
                let _ = writeln!(
                    s,
                    "### {model} on {} ({})\n\nskipped: {why}\n",
                    machine.machine().name(),
                    machine.cpu()
                );
                continue;
            }
            Outcome::Measured(m) => m,
        };
        let (cmsis, naive) = match m.machine {
            BenchMachine::An386 => ("CMSIS-NN M4+DSP", true),
            BenchMachine::Lm3s6965 => ("CMSIS-NN pure C, M3", false),
        };
        let _ = writeln!(
            s,
            "### {} on {} ({}), `cargo xtask bench{} --machine {} --model {}`\n",
            m.model,
            m.machine.machine().name(),
            m.machine.cpu(),
            if mlperf { " --mlperf" } else { "" },
            m.machine.machine().name(),
            m.model
        );
        let _ = write!(
            s,
            "| # | layer | op | MACs | Ferrite | ins/MAC | {cmsis} | Ferrite / CMSIS-NN |"
        );
        if naive {
            let _ = write!(s, " naive C, M4 | Ferrite / naive |");
        }
        let _ = writeln!(s);
        let _ = write!(s, "|---:|---|---|---:|---:|---:|---:|---:|");
        if naive {
            let _ = write!(s, "---:|---:|");
        }
        let _ = writeln!(s);
        let row = |s: &mut String, b: Option<&Baseline>, ours: u64, head: String| {
            let macs = b.and_then(|b| b.macs);
            let _ = write!(
                s,
                "{head} | {} | {} | {} | {} | {} |",
                macs.map(thousands).unwrap_or_else(|| "-".into()),
                thousands(ours),
                macs.map(|n| format!("{:.2}", ours as f64 / n as f64))
                    .unwrap_or_else(|| "-".into()),
                b.map(|b| thousands(reference(b, m.machine)))
                    .unwrap_or_else(|| "-".into()),
                b.map(|b| ratio(ours, reference(b, m.machine)))
                    .unwrap_or_else(|| "-".into()),
            );
            if naive {
                let n = b.and_then(|b| b.naive_m4);
                let _ = write!(
                    s,
                    " {} | {} |",
                    n.map(thousands).unwrap_or_else(|| "-".into()),
                    n.map(|n| ratio(ours, n)).unwrap_or_else(|| "-".into())
                );
            }
            let _ = writeln!(s);
        };
        for l in &m.layers {
            let head = format!("| {} | {} | {}", l.step, l.name, l.op);
            row(&mut s, l.baseline, l.instructions, head);
        }
        let total = baseline_total(&m.model);
        row(
            &mut s,
            total,
            m.total,
            "| | **whole network** | ".to_string(),
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Interpreter overhead (outside the operators' runs: decoding each operator from the model, \
             dispatch, invoke entry and exit): {} instructions per inference, {} per operator; \
             included in the whole-network count.",
            thousands(m.overhead),
            thousands(m.overhead / m.layers.len().max(1) as u64)
        );
        match tflm_total(&m.model, m.machine) {
            Some(tflm) => {
                let _ = writeln!(
                    s,
                    "TFLite Micro + CMSIS-NN, whole invoke on this CPU: {} instructions (Ferrite / TFLM = {}).",
                    thousands(tflm),
                    ratio(m.total, tflm)
                );
            }
            None if mlperf => {
                let _ = writeln!(
                    s,
                    "TFLite Micro + CMSIS-NN, whole invoke on this CPU: not measured (no figure in \
                     BASELINES.md)."
                );
            }
            None => {}
        }
        let _ = writeln!(
            s,
            "Flash {} B (firmware image, of which the model {} B). RAM {} B = static {} B (arena {} B) + \
             stack high-water {} B. Output {} {}.\n",
            thousands(m.flash),
            thousands(m.model_bytes),
            thousands(m.static_ram + m.stack),
            thousands(m.static_ram),
            thousands(m.arena),
            thousands(m.stack),
            if m.passed {
                "bit-identical to"
            } else {
                "DIFFERS from"
            },
            if mlperf {
                "TFLite Micro's reference interpreter's"
            } else {
                "the host's"
            }
        );
    }
    s
}

/// TFLite Micro + CMSIS-NN's whole invoke on `machine`'s CPU (BASELINES.md), where measured.
fn tflm_total(model: &str, machine: BenchMachine) -> Option<u64> {
    baselines::tflm_whole_stack(key(model)).map(|stack| match machine {
        BenchMachine::An386 => stack.m4f,
        BenchMachine::Lm3s6965 => stack.m3,
    })
}

/// One row per model and machine: the whole network beside TFLite Micro + CMSIS-NN's whole invoke,
/// flash, RAM and stack; a skipped build with its reason.
fn summary(outcomes: &[Outcome]) -> String {
    let mut s = String::from(
        "| model | machine | Ferrite instructions | TFLM + CMSIS-NN | Ferrite / TFLM | flash | RAM (static + stack) | \
         stack high-water | output |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for outcome in outcomes {
        match outcome {
            Outcome::Skipped {
                model,
                machine,
                why,
            } => {
                let _ = writeln!(
                    s,
                    "| {model} | {} ({}) | skipped: {why} | {} | | | | | |",
                    machine.machine().name(),
                    machine.cpu(),
                    tflm_total(model, *machine)
                        .map(thousands)
                        .unwrap_or_else(|| "not measured".into())
                );
            }
            Outcome::Measured(m) => {
                let tflm = tflm_total(&m.model, m.machine);
                let _ = writeln!(
                    s,
                    "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} |",
                    m.model,
                    m.machine.machine().name(),
                    m.machine.cpu(),
                    thousands(m.total),
                    tflm.map(thousands).unwrap_or_else(|| "not measured".into()),
                    tflm.map(|t| ratio(m.total, t))
                        .unwrap_or_else(|| "-".into()),
                    thousands(m.flash),
                    thousands(m.static_ram + m.stack),
                    thousands(m.stack),
                    if m.passed { "bit-identical" } else { "DIFFERS" }
                );
            }
        }
    }
    s.push('\n');
    s
}

fn to_json(outcomes: &[Outcome], commit: &str) -> Value {
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Skipped {
                model,
                machine,
                why,
            } => json!({
                "model": model,
                "machine": machine.machine().name(),
                "skipped": why,
            }),
            Outcome::Measured(m) => json!({
                "model": m.model,
                "machine": m.machine.machine().name(),
                "cpu": m.machine.cpu(),
                "bit_exact": m.passed,
                "instructions": {
                    "total": m.total,
                    "interpreter_overhead": m.overhead,
                    "marker_calibration": m.calibration,
                    "layers": m.layers.iter().map(|l| json!({
                        "step": l.step,
                        "name": l.name,
                        "op": l.op,
                        "instructions": l.instructions,
                        "macs": l.baseline.and_then(|b| b.macs),
                        "baseline": l.baseline.map(|b| json!({
                            "row": b.label,
                            "cmsis_nn": reference(b, m.machine),
                            "naive_c_m4": b.naive_m4,
                        })),
                    })).collect::<Vec<_>>(),
                    "baseline_total": baseline_total(&m.model).map(|b| json!({
                        "cmsis_nn": reference(b, m.machine),
                        "naive_c_m4": b.naive_m4,
                    })),
                    "tflm_cmsis_nn_whole_invoke": tflm_total(&m.model, m.machine),
                },
                "flash": { "image": m.flash, "model": m.model_bytes },
                "ram": {
                    "static": m.static_ram,
                    "arena": m.arena,
                    "stack_high_water": m.stack,
                    "total": m.static_ram + m.stack,
                },
            }),
        })
        .collect();
    json!({
        "commit": commit,
        "counter": "qemu-insncount (exact retired instructions)",
        "per_layer_note": "marks-delta per operator: kernel plus the interpreter's per-operator decode and dispatch",
        "results": results,
    })
}

fn write_benchmarks(root: &Path, section: &str) -> Result<()> {
    write_section(root, BEGIN, END, section)
}

/// Replaces the text between the markers `begin` and `end` of BENCHMARKS.md with `section`.
pub fn write_section(
    root: &Path,
    begin_marker: &str,
    end_marker: &str,
    section: &str,
) -> Result<()> {
    let path = root.join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (it holds the markers)", path.display()))?;
    let (Some(begin), Some(end)) = (text.find(begin_marker), text.find(end_marker)) else {
        bail!(
            "{} lacks the markers {begin_marker} and {end_marker}",
            path.display()
        );
    };
    if end < begin {
        bail!(
            "{}: the end marker comes before the begin marker",
            path.display()
        );
    }
    let new = format!(
        "{}{begin_marker}\n\n{section}{}",
        &text[..begin],
        &text[end..]
    );
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, new)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_give_each_operators_stack_in_order() {
        let log: Vec<String> = [
            "INFO  stack after operator 0: 4588 B  (case.rs:109)",
            "INFO  something else",
            "INFO  stack after operator 1: 6068 B  (case.rs:109)",
            "INFO  stack high-water 696 B of 65536 B",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(probe_stacks(&log), [4588, 6068]);
    }

    /// Every layer of the tests/bench/ models but the reshape has its BASELINES.md row, and each
    /// model its whole-network and TFLite Micro rows, as `measure` and `report` look them up.
    #[test]
    fn every_bench_layer_has_its_baseline() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cases = discover(&root, &[]).unwrap();
        assert_eq!(cases.len(), 2);
        for case in cases {
            let bytes = std::fs::read(case.dir.unwrap().join("model.ferrite")).unwrap();
            let model = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
            let names = layer_names(&model);
            assert_eq!(names.len(), model.ops().count());
            for (name, op) in names.iter().zip(model.ops()) {
                assert_eq!(
                    baseline(&case.name, name).is_some(),
                    op.name() != "RESHAPE",
                    "{} {name}",
                    case.name
                );
            }
            assert!(baseline_total(&case.name).is_some(), "{}", case.name);
            assert!(baselines::tflm_whole_stack(key(&case.name)).is_some());
        }
        // Per-layer CMSIS-NN rows (and their whole-network sum) for KWS and ResNet-8 only;
        // TFLite Micro + CMSIS-NN's whole invoke for all but the streaming wake word model.
        for name in MLPERF {
            let per_layer = matches!(key(name), "kws_dscnn" | "ic_resnet8");
            assert_eq!(baseline_total(name).is_some(), per_layer, "{name}");
            assert_eq!(
                tflm_total(name, BenchMachine::An386).is_some(),
                key(name) != "sww",
                "{name}"
            );
        }
        assert_eq!(
            tflm_total("mlperf_vww_mobilenet_int8", BenchMachine::An386),
            Some(24_101_962)
        );
        assert_eq!(
            tflm_total("mlperf_ad_autoencoder_int8", BenchMachine::Lm3s6965),
            Some(955_976)
        );
    }

    /// The MLPerf summary: a measured row beside TFLite Micro's whole invoke, "not measured" where
    /// BASELINES.md has no figure, and a skipped row with its reason.
    #[test]
    fn mlperf_summary_rows() {
        let measured = |model: &str, total: u64| {
            Outcome::Measured(Measured {
                model: model.into(),
                machine: BenchMachine::An386,
                layers: Vec::new(),
                total,
                overhead: 0,
                calibration: 0,
                flash: 300_000,
                model_bytes: 250_000,
                arena: 64_512,
                static_ram: 65_000,
                stack: 4_000,
                passed: true,
                log: Vec::new(),
                profile: None,
            })
        };
        let outcomes = [
            measured("mlperf_vww_mobilenet_int8", 12_050_981),
            measured("mlperf_sww_int8", 1_000),
            Outcome::Skipped {
                model: "mlperf_vww_mobilenet_int8".into(),
                machine: BenchMachine::Lm3s6965,
                why: "does not fit: flash needs 300.0 KiB of 192.0 KiB".into(),
            },
        ];
        let table = summary(&outcomes);
        let rows: Vec<&str> = table.lines().skip(2).filter(|l| !l.is_empty()).collect();
        assert_eq!(rows.len(), 3, "{table}");
        assert!(
            rows[0].contains("| 12,050,981 | 24,101,962 | 0.50x |"),
            "{}",
            rows[0]
        );
        assert!(
            rows[0].contains("| 69,000 | 4,000 | bit-identical |"),
            "{}",
            rows[0]
        );
        assert!(rows[1].contains("| not measured | - |"), "{}", rows[1]);
        assert!(
            rows[2].contains("skipped: does not fit: flash needs"),
            "{}",
            rows[2]
        );
        assert!(rows[2].contains("| 31,959,229 |"), "{}", rows[2]);
        let report = report(&outcomes, "abc");
        assert!(report.contains("not measured (no figure in BASELINES.md)"));
        assert!(
            report.contains("### mlperf_vww_mobilenet_int8 on lm3s6965 (Cortex-M3)\n\nskipped: ")
        );
    }

    /// Every operator of the converted MLPerf Tiny models but the reshape is named after its
    /// BASELINES.md row (skipped when `../shared/models/mlperf-tiny/` is absent).
    #[test]
    fn every_mlperf_layer_finds_its_baseline() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/models/mlperf-tiny");
        for case in MLPERF {
            let path = dir.join(format!("{}.tflite", case.strip_prefix("mlperf_").unwrap()));
            let Ok(tflite) = std::fs::read(&path) else {
                eprintln!("{} is absent: skipped", path.display());
                continue;
            };
            let built = ferrite_quantizer::import::tflite::convert(
                &tflite,
                ferrite_quantizer::builder::ArenaLayout::Separate,
            )
            .unwrap();
            let model = ferrite_runtime::Model::from_bytes(&built.bytes).unwrap();
            let ops = ferrite_quantizer::inspect::summarize(&model, built.bytes.len()).ops;
            // BASELINES.md has per-layer rows for KWS and ResNet-8 only: the other models' layers
            // keep their tensor names.
            let per_layer = matches!(key(case), "kws_dscnn" | "ic_resnet8");
            for (step, op) in ops.iter().enumerate() {
                let name = mlperf_layer(case, &ops, step);
                assert_eq!(
                    name.is_some(),
                    per_layer && op.op != "RESHAPE",
                    "{case} {step} {name:?}"
                );
            }
        }
    }
}
