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
