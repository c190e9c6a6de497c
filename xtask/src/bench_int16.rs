//! `cargo xtask bench --int16`: exact instruction counts of the int16x8 convolution and fully
//! connected layers on the Cortex-M4F (mps2-an386), with the reference kernel (the firmware built
//! with `ferrite-runtime/reference-kernels`) and with the kernel the M4F selects (`SMLAD`), beside the
//! same layer in int8.
//!
//! The layers are the TFLite fixtures `tests/tflite/fixtures/i16_{conv2d,depthwise,fully_connected}_*`
//! with a golden (found by listing `tests/tflite/goldens/`), run as the `tflite_<fixture>` cases of
//! qemu-test (golden sample 0, output compared with TFLite Micro's); the int8 layer is the fixture of
//! the same name without `i16_`, made by the same script with the same shapes.

use crate::bench::{self, BenchMachine, Outcome};
use crate::{tflite_cases, toolchain};
use anyhow::{bail, Result};
use std::{fmt::Write as _, path::Path, time::Duration};

/// BENCHMARKS.md section that `--int16 --write` replaces.
const BEGIN: &str = "<!-- cargo xtask bench --int16 --write: begin -->";
const END: &str = "<!-- cargo xtask bench --int16 --write: end -->";

/// The fixtures' prefixes: the operators with an int16x8 kernel.
const LAYERS: [&str; 3] = ["i16_conv2d", "i16_depthwise", "i16_fully_connected"];

/// The operators measured in a fixture (the others, if any, are left out of the table).
const OPS: [&str; 3] = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"];

/// One measured layer: its instructions, MACs, and whether the output matched TFLite Micro's.
struct Count {
    op: &'static str,
    instructions: u64,
    macs: u64,
    passed: bool,
}

fn count(
    root: &Path,
    plugin: &Path,
    case: &str,
    reference: bool,
    timeout: Duration,
) -> Result<Count> {
    let cases = tflite_cases::cases(root, Some(case))?;
    let Some(case) = cases.first() else {
        bail!("no case {case}");
    };
    eprintln!(
        "--- {} on an386{}",
        case.name,
        if reference {
            " (reference kernels)"
        } else {
            ""
        }
    );
    let features: &[&'static str] = if reference {
        &["ferrite-runtime/reference-kernels"]
    } else {
        &[]
    };
    let m = match bench::measure_with(
        root,
        plugin,
        case,
        BenchMachine::An386,
        timeout,
        features,
        false,
    )? {
        Outcome::Measured(m) => m,
        Outcome::Skipped { why, .. } => bail!("{}: skipped: {why}", case.name),
    };
    let model_bytes = std::fs::read(case.dir.as_ref().unwrap().join("model.ferrite"))?;
    let model = ferrite_runtime::Model::from_bytes(&model_bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", case.name))?;
    let summary = ferrite_quantizer::inspect::summarize(&model, model_bytes.len());
    let Some((layer, op)) = m
        .layers
        .iter()
        .zip(&summary.ops)
        .find(|(l, _)| OPS.contains(&l.op))
    else {
        bail!("{}: no convolution or fully connected operator", case.name);
    };
    Ok(Count {
        op: layer.op,
        instructions: layer.instructions,
        macs: op.macs,
        passed: m.passed,
    })
}

pub fn run(root: &Path, plugin: &Path, write: bool, timeout: u64) -> Result<()> {
    toolchain::ensure_targets(root, &[crate::boards::Machine::An386.target()])?;
    let timeout = Duration::from_secs(timeout);
    let fixtures: Vec<String> =
        tflite_cases::goldens(root, |s| LAYERS.iter().any(|p| s.starts_with(p)))?
            .iter()
            .filter_map(|p| p.file_stem()?.to_str().map(str::to_string))
            .collect();
    let twins: Vec<String> = tflite_cases::goldens(root, |_| true)?
        .iter()
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_string))
        .collect();
    let mut rows = Vec::new();
    for fixture in &fixtures {
        let case = format!("{}{fixture}", tflite_cases::PREFIX);
        let reference = count(root, plugin, &case, true, timeout)?;
        let selected = count(root, plugin, &case, false, timeout)?;
        let twin = fixture.strip_prefix("i16_").unwrap_or(fixture);
        let int8 = if twins.iter().any(|t| t == twin) {
            Some(count(
                root,
                plugin,
                &format!("{}{twin}", tflite_cases::PREFIX),
                false,
                timeout,
            )?)
        } else {
            None
        };
        rows.push((fixture.clone(), reference, selected, twin.to_string(), int8));
    }

    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured at commit `{}` with `cargo xtask bench --int16` (qemu-system-arm -M mps2-an386, \
         Cortex-M4F, exact counts from the qemu-insncount plugin).\n",
        bench::commit(root)
    );
    let _ = writeln!(
        s,
        "The convolution or fully connected operator's run (as in the tables above) of each int16x8 \
         TFLite fixture, on golden sample 0, with the reference kernel (firmware built with \
         `ferrite-runtime/reference-kernels`) and with the kernel the M4F selects (the `SMLAD` kernel \
         for Conv2D and FullyConnected; depthwise keeps the reference), beside the int8 fixture of the \
         same layer with the int8 kernels the M4F selects. Every output equals TFLite Micro's (the \
         golden file's) unless marked.\n"
    );
    let _ = writeln!(
        s,
        "| fixture | op | MACs | int16 reference | ins/MAC | int16 selected | ins/MAC | reference / selected | int8 (same layer) | ins/MAC |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let per_mac = |c: &Count| format!("{:.2}", c.instructions as f64 / c.macs.max(1) as f64);
    let mark = |c: &Count| if c.passed { "" } else { " (output DIFFERS)" };
    for (fixture, reference, selected, twin, int8) in &rows {
        let _ = writeln!(
            s,
            "| `{fixture}` | {} | {} | {}{} | {} | {}{} | {} | {:.2}x | {} | {} |",
            reference.op,
            bench::thousands(reference.macs),
            bench::thousands(reference.instructions),
            mark(reference),
            per_mac(reference),
            bench::thousands(selected.instructions),
            mark(selected),
            per_mac(selected),
            reference.instructions as f64 / selected.instructions as f64,
            int8.as_ref()
                .map(|c| format!("{}{} (`{twin}`)", bench::thousands(c.instructions), mark(c)))
                .unwrap_or_else(|| "-".into()),
            int8.as_ref().map(per_mac).unwrap_or_else(|| "-".into()),
        );
    }
    let _ = writeln!(s);
    print!("{s}");
    if write {
        bench::write_section(root, BEGIN, END, &s)?;
        eprintln!("bench: wrote BENCHMARKS.md");
    }
    let failed: Vec<&String> = rows
        .iter()
        .filter(|(_, r, d, _, i)| !r.passed || !d.passed || i.as_ref().is_some_and(|c| !c.passed))
        .map(|(f, ..)| f)
        .collect();
    if !failed.is_empty() {
        bail!("output differs from TFLite Micro's: {failed:?}");
    }
    Ok(())
}
