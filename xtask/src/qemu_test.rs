//! `cargo xtask qemu-test` and `cargo xtask size`.

use crate::{
    boards::Machine,
    capi,
    cases::{self, Case},
    defmt_log,
    elf_size::{self, Capacity, Kib, Usage},
    firmware::{self, Build, Built},
    qemu, tflite_cases, toolchain,
};
use anyhow::{bail, Context, Result};
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// RAM left free for the stack when deciding whether an image fits. The optimized convolutions keep
/// their patch buffers on the stack: the Fashion-MNIST DS-CNN's measured high-water mark is 4,980 B
/// on the M4F and 3,852 B on the M3, and on the M0 it overran the 3,808 B left beside its 12,576 B
/// of statics, silently overwriting the arena (the boards now link with flip-link: the stack below
/// the statics, an overflow faults off the start of RAM instead).
pub(crate) const STACK_RESERVE: u64 = 6 * 1024;

#[derive(clap::Args)]
pub struct Options {
    /// Only these machines (repeatable); all by default.
    #[arg(long, value_enum)]
    machine: Vec<Machine>,
    /// Only this case of tests/golden/ (`smoke`: the built-in smoke test; `partition`: only the
    /// model-partition cases; `stack_guard`: only the stack guard's test, a firmware that overflows
    /// its stack and must report it; `fixture_<name>`: a quantized fixture of tests/fixtures/;
    /// `mlperf_<model>`: a converted MLPerf Tiny model (`mlperf_<model>_in_place`: converted with
    /// `--arena in-place`); `tflite_<fixture>`: a TFLite fixture of
    /// tests/tflite/fixtures/ against TFLite Micro's golden output, `tflite_<prefix>*` those whose
    /// name starts so, `tflite` all of them, int8 ones included; a full run has the int16x8 ones).
    #[arg(long)]
    case: Option<String>,
    /// Kill QEMU after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Also check that the harness reports failures: firmware that panics,
    /// faults or mismatches on purpose must fail.
    #[arg(long)]
    selftest: bool,
    /// Which firmware: the Rust one, the C one (the C API through `capi/firmware/`, golden cases of
    /// tests/golden/ only), or both.
    #[arg(long, value_enum, default_value_t = FirmwareKind::Both)]
    firmware: FirmwareKind,
}

/// The firmware `qemu-test` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FirmwareKind {
    /// The Rust firmware of `boards/`.
    Rust,
    /// The C firmware of `capi/firmware/`, linked against the C API's static library.
    C,
    /// Both.
    Both,
}

impl FirmwareKind {
    fn rust(self) -> bool {
        self != FirmwareKind::C
    }

    fn c(self) -> bool {
        self != FirmwareKind::Rust
    }
}

impl Options {
    /// Every machine and case, with the harness self-tests (what `cargo xtask test` runs).
    pub fn full() -> Self {
        Options {
            machine: Vec::new(),
            case: None,
            timeout: 60,
            selftest: true,
            firmware: FirmwareKind::Both,
        }
    }
}

#[derive(clap::Args)]
pub struct SizeOptions {
    /// Only these machines (repeatable); all by default.
    #[arg(long, value_enum)]
    machine: Vec<Machine>,
    /// Build this case instead of the smoke test.
    #[arg(long, default_value = cases::SMOKE)]
    case: String,
    /// The demo firmware (the quantized tests/fixtures/dscnn_fashion model) on every board, QEMU
    /// machines and real boards: flash, static RAM, stack high-water (QEMU).
    #[arg(long)]
    demo: bool,
    /// Like --demo (or with --runtime, like it), and rewrite the matching section of BENCHMARKS.md.
    #[arg(long)]
    write: bool,
    /// The runtime's `.text` by category in the DS-CNN bench firmware on an386 (thumbv7em), built with
    /// every operator and with only the model's.
    #[arg(long)]
    runtime: bool,
    /// With --runtime: print one JSON document (`{"model_ops": {...}, "all_ops": {...}}`, the
    /// table's columns in bytes) instead of the table; progress goes to stderr.
    #[arg(long, requires = "runtime")]
    json: bool,
}

enum Verdict {
    Pass,
    Fail(String),
    Skip(String),
}

fn machines(selected: &[Machine]) -> Vec<Machine> {
    if selected.is_empty() {
        Machine::ALL.to_vec()
    } else {
        selected.to_vec()
    }
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let machines = machines(&options.machine);
    let cases = match options.case.as_deref() {
        Some("partition" | STACK_GUARD) => Vec::new(),
        Some(name) if name.starts_with("mlperf_") => crate::mlperf::cases(root, Some(name))?,
        Some(name) if name.starts_with(crate::fixtures::PREFIX) => {
            crate::fixtures::cases(root, Some(name))?
        }
        Some(name) if name == tflite_cases::ALL || name.starts_with(tflite_cases::PREFIX) => {
            tflite_cases::cases(root, Some(name))?
        }
        Some(name) => cases::discover(root, Some(name))?,
        // The C firmware runs the golden cases and the TFLite fixture cases only: no fixture or
        // MLPerf case is made for it.
        None if !options.firmware.rust() => {
            let mut all = cases::discover(root, None)?;
            all.extend(tflite_cases::cases(root, None)?);
            all
        }
        None => {
            let mut all = cases::discover(root, None)?;
            all.extend(tflite_cases::cases(root, None)?);
            all.extend(crate::fixtures::cases(root, None)?);
            all.extend(crate::mlperf::cases(root, None)?);
            all
        }
    };
    let targets: Vec<_> = machines.iter().map(|m| m.target()).collect();
    toolchain::ensure_targets(root, &targets)?;
    let timeout = Duration::from_secs(options.timeout);

    let (mut passed, mut skipped) = (0usize, 0usize);
    let mut failures = Vec::new();
    let mut record = |label: String, verdict: Verdict| match verdict {
        Verdict::Pass => {
            println!("    PASS {label}");
            passed += 1;
        }
        Verdict::Skip(why) => {
            println!("    SKIP {label}: {why}");
            skipped += 1;
        }
        Verdict::Fail(why) => {
            println!("    FAIL {label}: {why}");
            failures.push(format!("{label}: {why}"));
        }
    };

    let kind = options.firmware;
    // The C API's static library, once per machine's target.
    let c_cases = cases.iter().any(|c| capi::is_golden(root, c));
    let mut c_libs: Vec<(Machine, PathBuf)> = Vec::new();
    if kind.c() && (c_cases || options.selftest) {
        for &machine in &machines {
            println!("--- C API static library for {}", machine.target());
            c_libs.push((machine, capi::staticlib(root, machine.target())?));
        }
    }
    let c_lib = |machine: Machine| {
        c_libs
            .iter()
            .find(|(m, _)| *m == machine)
            .map(|(_, lib)| lib.as_path())
    };
    let mut c_time = Duration::ZERO;
    let mut c_runs = 0usize;

    for case in &cases {
        for &machine in &machines {
            if kind.rust() {
                let label = format!("{} on {}", case.name, machine.name());
                println!("--- {label}");
                let build = Build {
                    root,
                    machine,
                    case,
                    features: Vec::new(),
                    probe: false,
                    model_ops_only: false,
                };
                let verdict = run_one(&build, timeout, true)?;
                record(label, verdict);
            }
            if let (true, Some(lib)) = (capi::is_golden(root, case), c_lib(machine)) {
                let label = format!("{} on {} (C firmware)", case.name, machine.name());
                println!("--- {label}");
                let start = Instant::now();
                let firmware = capi::Firmware {
                    root,
                    machine,
                    case,
                    lib,
                    define: None,
                    probe: false,
                };
                let verdict = run_one_c(&firmware, timeout)?;
                c_time += start.elapsed();
                c_runs += 1;
                record(label, verdict);
            }
        }
    }
    // One partition firmware per machine, two models and four broken partitions.
    if kind.rust() && (options.case.is_none() || options.case.as_deref() == Some("partition")) {
        for &machine in &machines {
            crate::flash_model::qemu_tests(
                root,
                machine,
                options.timeout,
                &mut |label, result| {
                    record(
                        label,
                        match result {
                            Ok(()) => Verdict::Pass,
                            Err(why) => Verdict::Fail(why),
                        },
                    )
                },
            )?;
        }
    }
    if options.selftest && kind.rust() {
        let smoke = Case::smoke();
        for &machine in &machines {
            for feature in firmware::SELFTESTS {
                let label = format!("{feature} on {} (must fail)", machine.name());
                println!("--- {label}");
                let build = Build {
                    root,
                    machine,
                    case: &smoke,
                    features: vec![feature],
                    probe: false,
                    model_ops_only: false,
                };
                let verdict = must_fail(run_one(&build, timeout, true)?);
                record(label, verdict);
            }
        }
    }
    if kind.rust() && (options.selftest || options.case.as_deref() == Some(STACK_GUARD)) {
        let smoke = Case::smoke();
        for &machine in &machines {
            let label = format!(
                "stack guard on {} (must report a stack overflow)",
                machine.name()
            );
            println!("--- {label}");
            let build = Build {
                root,
                machine,
                case: &smoke,
                features: vec![firmware::STACK_OVERFLOW],
                probe: false,
                model_ops_only: false,
            };
            let (verdict, log) = run_logged(&build, timeout, true)?;
            record(label, stack_guard_verdict(verdict, &log));
        }
    }
    if options.selftest && kind.c() {
        let small = cases::discover(root, Some("small_dscnn"))?;
        for &machine in &machines {
            let Some(lib) = c_lib(machine) else { continue };
            for (name, define) in capi::SELFTESTS {
                let label = format!("{name} on {} (must fail)", machine.name());
                println!("--- {label}");
                let firmware = capi::Firmware {
                    root,
                    machine,
                    case: &small[0],
                    lib,
                    define: Some(define),
                    probe: false,
                };
                let verdict = must_fail(run_one_c(&firmware, timeout)?);
                record(label, verdict);
            }
        }
    }
    if c_runs > 0 {
        println!(
            "C firmware: {c_runs} golden case runs in {:.1} s (builds and QEMU)",
            c_time.as_secs_f64()
        );
    }

    if !failures.is_empty() {
        println!("failures:");
        for failure in &failures {
            println!("  {failure}");
        }
    }
    println!(
        "qemu-test: {passed} passed, {} failed, {skipped} skipped",
        failures.len()
    );
    if !failures.is_empty() {
        bail!("{} qemu test(s) failed", failures.len());
    }
    Ok(())
}

/// A self-test's verdict: the firmware must have failed by its exit status.
fn must_fail(verdict: Verdict) -> Verdict {
    match verdict {
        Verdict::Pass => Verdict::Fail("the firmware passed; the harness missed a failure".into()),
        Verdict::Fail(why) if why.starts_with("exit status") => Verdict::Pass,
        other => other,
    }
}

/// `--case stack_guard`: only the stack guard's test.
const STACK_GUARD: &str = "stack_guard";

/// The stack guard test's verdict: the firmware must have exited with failure after its HardFault
/// handler logged a stack overflow; a pass, a hang or any other failure fails the test.
fn stack_guard_verdict(verdict: Verdict, log: &[String]) -> Verdict {
    let reported = log
        .iter()
        .any(|line| line.contains("HardFault: stack overflow"));
    match verdict {
        Verdict::Fail(why) if why.starts_with("exit status 1") && reported => Verdict::Pass,
        Verdict::Fail(why) if why.starts_with("exit status") => Verdict::Fail(format!(
            "{why} without a stack overflow reported (last line: {})",
            log.last().map_or("none", String::as_str)
        )),
        Verdict::Pass => {
            Verdict::Fail("the firmware passed: the stack overflow went unnoticed".into())
        }
        other => other,
    }
}

/// The verdict of a QEMU run, by its exit status.
fn exit_verdict(run: &qemu::Run, timeout: Duration) -> Verdict {
    match run.status {
        Some(status) if status.success() => Verdict::Pass,
        Some(status) => Verdict::Fail(match status.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("exit status {status} (killed by a signal)"),
        }),
        None => Verdict::Fail(format!("timed out after {} s", timeout.as_secs())),
    }
}

/// Builds, sizes and runs one C firmware; prints its output (plain text over semihosting). A build
/// that does not link for lack of memory, or an image that leaves less than [`STACK_RESERVE`] of
/// RAM, is skipped as the Rust firmware's are.
fn run_one_c(firmware: &capi::Firmware, timeout: Duration) -> Result<Verdict> {
    let capacity = elf_size::capacity(&firmware::memory_x(firmware.root, firmware.machine))?;
    let elf = match firmware.build()? {
        Built::Elf(elf) => elf,
        Built::Failed(log) => {
            let probe = capi::Firmware {
                probe: true,
                ..*firmware
            };
            return failed_verdict(probe.build()?, capacity, &log, "gcc");
        }
    };
    let bytes = std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?;
    let usage = elf_size::usage(&bytes, capacity.ram_origin)?;
    println!("    {}  ({})", size_line(usage, capacity), elf.display());
    if let Some(why) = does_not_fit(usage, capacity) {
        return Ok(Verdict::Skip(why));
    }
    let run = qemu::run(firmware.machine, &elf, timeout)?;
    for line in String::from_utf8_lossy(&run.stdout).lines() {
        println!("    | {line}");
    }
    let verdict = exit_verdict(&run, timeout);
    if !matches!(verdict, Verdict::Pass) {
        for line in run.stderr.lines().filter(|l| !l.trim().is_empty()) {
            println!("    qemu: {line}");
        }
    }
    println!("    ({:.2} s in QEMU)", run.elapsed.as_secs_f64());
    Ok(verdict)
}

/// Builds, sizes and runs one firmware; prints its decoded log.
fn run_one(build: &Build, timeout: Duration, show_log: bool) -> Result<Verdict> {
    Ok(run_logged(build, timeout, show_log)?.0)
}

/// [`run_one`], also returning the decoded log (empty when the build failed or was skipped).
fn run_logged(build: &Build, timeout: Duration, show_log: bool) -> Result<(Verdict, Vec<String>)> {
    let capacity = elf_size::capacity(&firmware::memory_x(build.root, build.machine))?;
    let elf = match build.run()? {
        Built::Elf(elf) => elf,
        Built::Failed(log) => return Ok((failed_build(build, capacity, &log)?, Vec::new())),
    };
    let elf = build.keep(&elf)?;
    let bytes = std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?;
    let usage = elf_size::usage(&bytes, capacity.ram_origin)?;
    println!("    {}  ({})", size_line(usage, capacity), elf.display());
    if let Some(why) = does_not_fit(usage, capacity) {
        return Ok((Verdict::Skip(why), Vec::new()));
    }

    let run = qemu::run(build.machine, &elf, timeout)?;
    let log = match defmt_log::decode(&bytes, &run.stdout) {
        Ok(lines) => lines,
        Err(e) => {
            println!("    (could not decode the log: {e:#})");
            Vec::new()
        }
    };
    if show_log {
        log.iter().for_each(|line| println!("    | {line}"));
    }
    let verdict = exit_verdict(&run, timeout);
    if !matches!(verdict, Verdict::Pass) {
        for line in run.stderr.lines().filter(|l| !l.trim().is_empty()) {
            println!("    qemu: {line}");
        }
    }
    println!("    ({:.2} s in QEMU)", run.elapsed.as_secs_f64());
    Ok((verdict, log))
}

/// A build that failed: if it links with unbounded memory and the image is
/// too large for the board, that is a skip; otherwise a failure.
fn failed_build(build: &Build, capacity: Capacity, log: &str) -> Result<Verdict> {
    let probe = Build {
        probe: true,
        features: build.features.clone(),
        ..*build
    };
    failed_verdict(probe.run()?, capacity, log, "cargo")
}

/// The verdict on a failed build (`log`, printed with `tool`'s name) given its unbounded-memory
/// build `probe`: a skip when that image is too large for the board, or when the linker says a
/// section overflows the board's memory (the probe's sizes leave out the alignment padding between
/// sections, a few bytes), otherwise a failure.
fn failed_verdict(probe: Built, capacity: Capacity, log: &str, tool: &str) -> Result<Verdict> {
    if let Built::Elf(elf) = probe {
        let usage = elf_size::usage(&std::fs::read(&elf)?, capacity.ram_origin)?;
        println!(
            "    {}  (unbounded-memory build)",
            size_line(usage, capacity)
        );
        if let Some(why) = does_not_fit(usage, capacity) {
            return Ok(Verdict::Skip(why));
        }
        if let Some(overflow) = log.lines().find_map(region_overflow) {
            return Ok(Verdict::Skip(format!("does not fit: {overflow}")));
        }
    }
    for line in log.lines() {
        println!("    {tool}: {line}");
    }
    Ok(Verdict::Fail("build failed".into()))
}

/// The linker's message that a section overflows a memory region of the board
/// (`section '.rodata' will not fit in region 'FLASH': overflowed by 4 bytes`), from the message on.
fn region_overflow(line: &str) -> Option<&str> {
    let at = line.find("section '")?;
    let message = line[at..].trim_end();
    message
        .contains("will not fit in region")
        .then_some(message)
}

pub(crate) fn size_line(usage: Usage, capacity: Capacity) -> String {
    format!(
        "flash {} of {} ({} B), RAM {} of {} ({} B, stack not counted)",
        Kib(usage.flash),
        Kib(capacity.flash),
        usage.flash,
        Kib(usage.ram),
        Kib(capacity.ram),
        usage.ram
    )
}

pub(crate) fn does_not_fit(usage: Usage, capacity: Capacity) -> Option<String> {
    let flash_fits = usage.flash <= capacity.flash;
    let ram_fits = usage.ram + STACK_RESERVE <= capacity.ram;
    if flash_fits && ram_fits {
        return None;
    }
    Some(format!(
        "does not fit: flash needs {} of {}, RAM needs {} + {} stack reserve of {}",
        Kib(usage.flash),
        Kib(capacity.flash),
        Kib(usage.ram),
        Kib(STACK_RESERVE),
        Kib(capacity.ram)
    ))
}

pub fn size(root: &Path, options: &SizeOptions) -> Result<()> {
    if options.runtime {
        return crate::size_report::runtime(root, options.write, options.json);
    }
    if options.demo || options.write {
        return crate::size_report::run(root, options.write);
    }
    let machines = machines(&options.machine);
    let case = if options.case.starts_with(crate::fixtures::PREFIX) {
        crate::fixtures::cases(root, Some(&options.case))?
    } else if options.case.starts_with("mlperf_") {
        crate::mlperf::cases(root, Some(&options.case))?
    } else if options.case.starts_with(tflite_cases::PREFIX) {
        tflite_cases::cases(root, Some(&options.case))?
    } else {
        cases::discover(root, Some(&options.case))?
    }
    .into_iter()
    .next()
    .context("no such case")?;
    let targets: Vec<_> = machines.iter().map(|m| m.target()).collect();
    toolchain::ensure_targets(root, &targets)?;
    println!(
        "{:<10} {:<16} {:>10} {:>10} {:>10} {:>10}  bench mark",
        "machine", "case", "flash", "of", "RAM", "of"
    );
    for machine in machines {
        let capacity = elf_size::capacity(&firmware::memory_x(root, machine))?;
        let build = Build {
            root,
            machine,
            case: &case,
            features: Vec::new(),
            probe: false,
            model_ops_only: false,
        };
        let (elf, note) = match build.run()? {
            Built::Elf(elf) => (elf, ""),
            Built::Failed(_) => match (Build {
                probe: true,
                ..build
            })
            .run()?
            {
                Built::Elf(elf) => (
                    elf,
                    "  (does not link on the board; unbounded-memory build)",
                ),
                Built::Failed(log) => {
                    bail!("building {} for {}:\n{log}", case.name, machine.name())
                }
            },
        };
        let bytes = std::fs::read(&elf)?;
        let usage = elf_size::usage(&bytes, capacity.ram_origin)?;
        let mark = elf_size::symbol_address(&bytes, "ferrite_bench_mark")?
            .map(|a| format!("{a:#010x}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<10} {:<16} {:>10} {:>10} {:>10} {:>10}  {mark}{note}",
            machine.name(),
            case.name,
            usage.flash,
            capacity.flash,
            usage.ram,
            capacity.ram
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::region_overflow;

    #[test]
    fn a_linker_region_overflow_is_recognised() {
        let line = "    cargo:   = note: rust-lld: error: section '.rodata' will not fit in region 'FLASH': overflowed by 4 bytes";
        assert_eq!(
            region_overflow(line),
            Some("section '.rodata' will not fit in region 'FLASH': overflowed by 4 bytes")
        );
        assert_eq!(
            region_overflow("error: could not compile `qemu-lm3s6965`"),
            None
        );
        assert_eq!(region_overflow("undefined symbol: section 'x'"), None);
    }
}
