//! `cargo xtask size --demo [--write]`: flash and RAM of the demo firmware (the Fashion-MNIST DS-CNN of
//! `tests/fixtures/dscnn_fashion`, quantized by the library with the default settings, as the
//! `fixture_dscnn_fashion` case) on every board: the three QEMU machines (the `bench` runner, run once
//! in QEMU for the stack's high-water mark) and the two real boards (the RTT runner with the model
//! embedded through `FERRITE_MODEL`; sizes from the ELF, stack not measured: no hardware here).

use crate::{
    bench::thousands,
    boards::Machine,
    build_boards::{self, REAL_BOARDS},
    defmt_log,
    elf_size::{self, Capacity},
    firmware::{self, Build, Built},
    qemu, qemu_test, toolchain,
};
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};
use std::{fmt::Write as _, path::Path, time::Duration};

const BEGIN: &str = "<!-- cargo xtask size --write: begin -->";
const END: &str = "<!-- cargo xtask size --write: end -->";
const CASE: &str = "fixture_dscnn_fashion";

struct Row {
    board: String,
    cpu: &'static str,
    capacity: Capacity,
    flash: u64,
    static_ram: u64,
    /// Measured high-water mark, `None` where not run.
    stack: Option<u64>,
    note: String,
}

pub fn run(root: &Path, write: bool) -> Result<()> {
    let case = crate::fixtures::cases(root, Some(CASE))?.remove(0);
    let dir = case.dir.clone().expect("a fixture case has a directory");
    let model_path = dir.join("model.ferrite");
    let model_bytes = std::fs::read(&model_path)?;
    let model = ferrite_runtime::Model::from_bytes(&model_bytes).map_err(|e| anyhow!("{e}"))?;
    let arena = model.arena_size() as u64;

    let mut targets: Vec<_> = Machine::ALL.iter().map(|m| m.target()).collect();
    targets.extend(REAL_BOARDS.iter().map(|b| b.target));
    toolchain::ensure_targets(root, &targets)?;

    let mut rows = Vec::new();
    for machine in Machine::ALL {
        eprintln!("--- {CASE} on {} (bench runner)", machine.name());
        let capacity = elf_size::capacity(&firmware::memory_x(root, machine))?;
        let build = Build {
            root,
            machine,
            case: &case,
            features: vec!["bench"],
            probe: false,
            model_ops_only: false,
        };
        let cpu = match machine {
            Machine::An386 => "Cortex-M4F",
            Machine::Lm3s6965 => "Cortex-M3",
            Machine::Microbit => "Cortex-M0",
        };
        let (elf, linked) = match build.run()? {
            Built::Elf(elf) => (elf, true),
            Built::Failed(log) => match (Build {
                probe: true,
                features: vec!["bench"],
                ..build
            })
            .run()?
            {
                Built::Elf(elf) => (elf, false),
                Built::Failed(_) => bail!("building the firmware for {}:\n{log}", machine.name()),
            },
        };
        let bytes = std::fs::read(&elf)?;
        let usage = elf_size::usage(&bytes, capacity.ram_origin)?;
        let mut row = Row {
            board: format!("{} (QEMU `{}`)", machine.name(), machine.qemu_machine()),
            cpu,
            capacity,
            flash: usage.flash,
            static_ram: usage.ram,
            stack: None,
            note: String::new(),
        };
        let unfit = qemu_test::does_not_fit(usage, capacity);
        if !linked || unfit.is_some() {
            row.note = match unfit {
                Some(why) if linked => format!("not run: {why}"),
                _ => "does not link: sizes of the unbounded-memory build, not run".into(),
            };
            rows.push(row);
            continue;
        }
        let run = qemu::run(machine, &elf, Duration::from_secs(60))?;
        let log = defmt_log::decode(&bytes, &run.stdout)?;
        row.stack = log.iter().find_map(|l| {
            l.split("stack high-water ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        });
        row.note = if run.status.is_some_and(|s| s.success()) {
            "run in QEMU: output identical to the host's".into()
        } else {
            "run in QEMU: FAILED".into()
        };
        rows.push(row);
    }
    for board in &REAL_BOARDS {
        eprintln!("--- {CASE} on {} (RTT runner)", board.krate);
        let output = build_boards::build(root, board, Some(&model_path), false)?;
        if !output.status.success() {
            bail!(
                "building {}:\n{}",
                board.krate,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let elf = build_boards::elf_path(root, board);
        let capacity = elf_size::capacity(&root.join("boards").join(board.krate).join("memory.x"))?;
        let usage = elf_size::usage(&std::fs::read(&elf)?, capacity.ram_origin)?;
        rows.push(Row {
            board: board.krate.to_string(),
            cpu: "Cortex-M4F",
            capacity,
            flash: usage.flash,
            static_ram: usage.ram,
            stack: None,
            note: format!(
                "built only (probe-rs chip {}); stack not measured",
                board.chip
            ),
        });
    }

    let section = report(
        &rows,
        model_bytes.len() as u64,
        arena,
        &crate::bench::commit(root),
    );
    print!("{section}");
    if write {
        crate::bench::write_section(root, BEGIN, END, &section)?;
        eprintln!("size: wrote BENCHMARKS.md");
    }
    if rows.iter().any(|r| r.note.contains("FAILED")) {
        bail!("the demo firmware failed in QEMU");
    }
    Ok(())
}

fn report(rows: &[Row], model: u64, arena: u64, commit: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured at commit `{}` with `cargo xtask size --demo --write`. Model: \
         `tests/fixtures/dscnn_fashion/model.onnx` quantized by the library with the default settings on its \
         300 calibration images (the `fixture_dscnn_fashion` case, as `cargo xtask demo` does with `ferrite \
         quantize`): {} B, arena {} B. Flash = text + rodata + data of the ELF (model, test input and expected \
         output included on the QEMU machines); static RAM = data + bss (the arena included); stack = \
         high-water mark by stack painting, measured by running the `bench` runner in QEMU.\n",
        commit,
        thousands(model),
        thousands(arena)
    );
    let _ = writeln!(
        s,
        "| board | CPU | flash | of | static RAM | stack high-water | RAM total | of | |\n|---|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.board,
            r.cpu,
            thousands(r.flash),
            thousands(r.capacity.flash),
            thousands(r.static_ram),
            r.stack.map(thousands).unwrap_or_else(|| "-".into()),
            r.stack
                .map(|st| thousands(r.static_ram + st))
                .unwrap_or_else(|| "-".into()),
            thousands(r.capacity.ram),
            r.note
        );
    }
    let _ = writeln!(s);
    s
}

const RUNTIME_BEGIN: &str = "<!-- cargo xtask size --runtime --write: begin -->";
const RUNTIME_END: &str = "<!-- cargo xtask size --runtime --write: end -->";

/// Where a runtime symbol's code belongs.
const CATEGORIES: [&str; 5] = ["kernels", "validation", "decoding", "interpreter", "other"];

/// `.text` bytes of one firmware: the runtime's per category, and the whole section.
struct TextSize {
    label: &'static str,
    /// Its key in `--json`: `all_ops`, `model_ops` or `model_ops_reference`.
    key: &'static str,
    runtime: [u64; CATEGORIES.len()],
    text: u64,
    /// `ferrite_board::run`, the firmware's runner: LTO inlines the runtime's invoke loop and model
    /// loading into it.
    runner: u64,
    /// Largest runtime symbols, `(bytes, demangled name)`.
    largest: Vec<(u64, String)>,
    /// The stack's high-water mark in QEMU, `None` when the run printed none.
    stack: Option<u64>,
    note: String,
}

/// `cargo xtask size --runtime [--write]`: the runtime's code in the bench firmware of the DS-CNN
/// (MLPerf Tiny KWS, or the bundled Fashion-MNIST DS-CNN without `../shared`: the same operator set) on
/// an386 (thumbv7em), built with every operator and with only the model's. `json`: one JSON document
/// on stdout ([`runtime_json`]), everything else on stderr.
pub fn runtime(root: &Path, write: bool, json: bool) -> Result<()> {
    let mut cases = crate::mlperf::cases(root, Some("mlperf_kws_dscnn_int8"))?;
    if cases.is_empty() {
        cases = crate::fixtures::cases(root, Some(CASE))?;
    }
    let case = cases.remove(0);
    let dir = case.dir.clone().expect("a model case has a directory");
    let ops = firmware::model_op_features(&dir)?;
    let machine = Machine::An386;
    toolchain::ensure_targets(root, &[machine.target()])?;
    let mut rows = Vec::new();
    for (label, key, model_ops_only, reference) in [
        ("every operator", "all_ops", false, false),
        ("the model's operators", "model_ops", true, false),
        (
            "the model's operators, reference kernels",
            "model_ops_reference",
            true,
            true,
        ),
    ] {
        eprintln!("--- {} on {} ({label})", case.name, machine.name());
        let build = Build {
            root,
            machine,
            case: &case,
            features: if reference {
                vec!["bench", "ferrite-runtime/reference-kernels"]
            } else {
                vec!["bench"]
            },
            probe: false,
            model_ops_only,
        };
        let elf = match build.run()? {
            Built::Elf(elf) => build.keep(&elf)?,
            Built::Failed(log) => bail!("building the firmware:\n{log}"),
        };
        let bytes = std::fs::read(&elf)?;
        let run = qemu::run(machine, &elf, Duration::from_secs(60))?;
        let log = defmt_log::decode(&bytes, &run.stdout)?;
        let stack = log.iter().find_map(|l| {
            l.split("stack high-water ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        });
        let note = if run.status.is_some_and(|s| s.success()) {
            format!(
                "output as expected; stack high-water {} B",
                stack.map_or_else(|| "-".to_string(), |n| n.to_string())
            )
        } else {
            "run in QEMU: FAILED".into()
        };
        let mut size = text_size(label, key, &bytes, note)?;
        size.stack = stack;
        rows.push(size);
    }
    let section = runtime_report(&case.name, &ops, &rows, &crate::bench::commit(root));
    if json {
        println!("{}", serde_json::to_string_pretty(&runtime_json(&rows))?);
    } else {
        print!("{section}");
        for row in &rows {
            println!("Largest runtime symbols, {}:", row.label);
            for (size, name) in &row.largest {
                println!("  {size:>6}  {name}");
            }
        }
    }
    if write {
        crate::bench::write_section(root, RUNTIME_BEGIN, RUNTIME_END, &section)?;
        eprintln!("size: wrote BENCHMARKS.md");
    }
    if rows.iter().any(|r| r.note.contains("FAILED")) {
        bail!("the firmware failed in QEMU");
    }
    Ok(())
}

/// Sums the function symbols of `.text`: a symbol is the runtime's when its demangled name contains
/// `ferrite_runtime` (its own functions, and generic code instantiated for its types, e.g. serde's
/// `Deserialize` for the graph types); runtime code inlined into the firmware's functions is not.
fn text_size(label: &'static str, key: &'static str, elf: &[u8], note: String) -> Result<TextSize> {
    use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
    let file = object::File::parse(elf)?;
    let text = file
        .section_by_name(".text")
        .ok_or_else(|| anyhow!("no .text section"))?;
    let mut size = TextSize {
        label,
        key,
        runtime: [0; CATEGORIES.len()],
        text: text.size(),
        runner: 0,
        largest: Vec::new(),
        stack: None,
        note,
    };
    for symbol in file.symbols() {
        if symbol.kind() != SymbolKind::Text || symbol.section_index() != Some(text.index()) {
            continue;
        }
        let name = demangle(symbol.name().unwrap_or_default());
        if name == "ferrite_board::run" {
            size.runner += symbol.size();
        }
        if !name.contains("ferrite_runtime") {
            continue;
        }
        size.runtime[category(&name)] += symbol.size();
        size.largest.push((symbol.size(), name));
    }
    size.largest.sort_by(|a, b| b.cmp(a));
    size.largest.truncate(15);
    Ok(size)
}

/// Index into [`CATEGORIES`] of a runtime symbol.
fn category(name: &str) -> usize {
    let has = |s: &str| name.contains(s);
    if has("Deserialize")
        || has("serde")
        || has("postcard")
        || has("ferrite_runtime::format")
        || has("ferrite_runtime::model")
    {
        2
    } else if has("ferrite_runtime::validate") {
        1
    } else if has("ferrite_runtime::interpreter") {
        3
    } else if has("ferrite_runtime::kernels") || has("ferrite_runtime::quant") {
        0
    } else {
        4
    }
}

/// A symbol's readable name (Rust's legacy and v0 manglings, without the hash); other names as
/// they are.
pub(crate) fn demangle(raw: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(raw))
}

/// `{"model_ops": {...}, "all_ops": {...}}`, each with the columns of [`runtime_report`]'s table:
/// `runtime`, `firmware_text`, the categories, `board_run` (`ferrite_board::run`) and
/// `stack_high_water` (`null` when not measured), in bytes.
fn runtime_json(rows: &[TextSize]) -> Value {
    let mut out = Map::new();
    for r in rows {
        let mut row = Map::new();
        row.insert("runtime".into(), json!(r.runtime.iter().sum::<u64>()));
        row.insert("firmware_text".into(), json!(r.text));
        for (category, bytes) in CATEGORIES.iter().zip(r.runtime) {
            row.insert((*category).into(), json!(bytes));
        }
        row.insert("board_run".into(), json!(r.runner));
        row.insert("stack_high_water".into(), json!(r.stack));
        out.insert(r.key.into(), Value::Object(row));
    }
    Value::Object(out)
}

fn runtime_report(case: &str, ops: &[&str], rows: &[TextSize], commit: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured at commit `{commit}` with `cargo xtask size --runtime --write`: the `bench` firmware of \
         the `{case}` case on an386 (thumbv7em-none-eabihf, the boards' release profile: `opt-level = \"s\"`, \
         fat LTO), built with every operator (the board crate's default `all-ops`), with only the \
         model's operators (`--no-default-features`, runtime features {}), and with only those and \
         the reference kernels (runtime feature `reference-kernels`: the portable kernels of the \
         numeric contract, no optimized path); in each, the runtime's `float` \
         and `int16` kernels only if the model needs them (this int8 model needs neither). Runtime = the `.text` function \
         symbols whose demangled name contains `ferrite_runtime`: its own functions and generic code \
         instantiated for its types; runtime code that LTO inlined into the firmware's own functions \
         is counted as the firmware's: model loading (`Model::from_bytes`) and `Interpreter::new` stay \
         out of line and are counted, the invoke loop is inlined into the runner \
         `ferrite_board::run`, shown beside. Categories \
         by path: decoding = `format`, `model` (and serde or postcard code, none since `from_bytes` reads the graph itself); validation = `validate`; interpreter = `interpreter`; kernels = `kernels`, `quant`; other = `ops` (each operator's checks, dispatch and operand lists since the operators moved to `ops/`). \
         Firmware `.text` (runtime, board runner, defmt, compiler builtins) beside it.\n",
        ops.iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = write!(s, "| operators built |");
    for c in CATEGORIES {
        let _ = write!(s, " {c} |");
    }
    let _ = writeln!(
        s,
        " **runtime** | `ferrite_board::run` | firmware .text | |"
    );
    let _ = writeln!(
        s,
        "|---|{}---:|---:|---:|---|",
        "---:|".repeat(CATEGORIES.len())
    );
    for r in rows {
        let _ = write!(s, "| {} |", r.label);
        for bytes in r.runtime {
            let _ = write!(s, " {} |", thousands(bytes));
        }
        let _ = writeln!(
            s,
            " **{}** | {} | {} | {} |",
            thousands(r.runtime.iter().sum()),
            thousands(r.runner),
            thousands(r.text),
            r.note
        );
    }
    let _ = writeln!(s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of two synthetic builds parses back with both keys and every column.
    #[test]
    fn runtime_json_has_every_key() {
        let row = |label, key, kernels, stack| TextSize {
            label,
            key,
            runtime: [kernels, 2_000, 3_000, 4_000, 5_000],
            text: 60_000,
            runner: 7_000,
            largest: vec![(kernels, "ferrite_runtime::kernels::conv".into())],
            stack,
            note: String::new(),
        };
        let rows = [
            row("every operator", "all_ops", 30_000, Some(5_308)),
            row("the model's operators", "model_ops", 10_000, None),
        ];
        let text = serde_json::to_string_pretty(&runtime_json(&rows)).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let mut top: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        top.sort_unstable();
        assert_eq!(top, ["all_ops", "model_ops"]);
        let mut expected = [
            "runtime",
            "firmware_text",
            "kernels",
            "validation",
            "decoding",
            "interpreter",
            "other",
            "board_run",
            "stack_high_water",
        ];
        expected.sort_unstable();
        for key in ["all_ops", "model_ops"] {
            let mut keys: Vec<&str> = value[key]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            assert_eq!(keys, expected, "{key}");
        }
        assert_eq!(value["all_ops"]["runtime"], 44_000);
        assert_eq!(value["model_ops"]["kernels"], 10_000);
        assert_eq!(value["all_ops"]["board_run"], 7_000);
        assert_eq!(value["all_ops"]["stack_high_water"], 5_308);
        assert!(value["model_ops"]["stack_high_water"].is_null());
    }
}
