//! `cargo xtask demo`: the bundled example network (`tests/golden/small_dscnn`) on the emulated
//! Cortex-M4F: model size, arena, the device's predictions, whether they equal the host's, and the
//! instruction count of one inference.

use crate::{
    bench::{self, thousands, BenchMachine, Outcome},
    boards::Machine,
    cases::Case,
    defmt_log, elf_size,
    firmware::{self, Build, Built},
    qemu, toolchain,
};
use anyhow::{anyhow, bail, Context, Result};
use ferrite_runtime::{Interpreter, Model};
use std::{path::Path, time::Duration};

const CASE: &str = "small_dscnn";
const TOP_K: usize = 3;

pub fn run(root: &Path) -> Result<()> {
    let dir = root.join("tests").join("golden").join(CASE);
    let read = |f: &str| std::fs::read(dir.join(f)).with_context(|| format!("reading {f}"));
    let (model_bytes, input) = (read("model.ferrite")?, read("input.bin")?);
    let model = Model::from_bytes(&model_bytes).map_err(|e| anyhow!("{CASE}: {e}"))?;
    let host = host_output(&model, &input)?;
    let out = model.output(0).map_err(|e| anyhow!("{e}"))?;
    let dims = |t: &ferrite_runtime::format::Tensor<'_>| {
        let d: Vec<String> = t.shape.dims().iter().map(|d| d.to_string()).collect();
        d.join("x")
    };
    let ops: Vec<&str> = model.ops().map(|op| op.name()).collect();
    let inp = model.input(0).map_err(|e| anyhow!("{e}"))?;

    println!("Ferrite demo: {CASE} on an emulated Cortex-M4F (QEMU mps2-an386)");
    println!(
        "  model     {} B, {} operators ({}); input {} int8, output {} int8",
        thousands(model_bytes.len() as u64),
        ops.len(),
        ops.join(" "),
        dims(&inp),
        dims(&out)
    );
    println!(
        "  arena     {} B, a static sized at compile time from the model header",
        model.arena_size()
    );

    // The device: the bench firmware (output bytes logged, instructions counted when the
    // counter is available).
    let case = Case {
        name: CASE.into(),
        dir: Some(dir.clone()),
    };
    toolchain::ensure_targets(root, &[Machine::An386.target()])?;
    println!("  (building the firmware and running it in qemu-system-arm -M mps2-an386...)");
    let timeout = Duration::from_secs(60);
    let (log, passed, count, sizes) = match bench::build_plugin(root)? {
        Some(plugin) => match bench::measure(root, &plugin, &case, BenchMachine::An386, timeout)? {
            Outcome::Measured(m) => (
                m.log,
                m.passed,
                Some(m.total),
                (m.flash, m.static_ram, m.stack),
            ),
            Outcome::Skipped { why, .. } => bail!("the firmware does not fit: {why}"),
        },
        None => plain_run(root, &case, timeout)?,
    };
    let device = device_output(&log).ok_or_else(|| {
        for line in &log {
            eprintln!("  | {line}");
        }
        anyhow!("the firmware's log has no output line")
    })?;
    println!(
        "  firmware  flash {} B, RAM {} B static + {} B stack (high-water)",
        thousands(sizes.0),
        thousands(sizes.1),
        thousands(sizes.2)
    );
    let top = top_k(&device);
    let shown: Vec<String> = top
        .iter()
        .map(|&(i, q)| {
            let p = out.scale * (q as i32 - out.zero_point) as f32;
            format!("class {i} ({p:.3})")
        })
        .collect();
    println!("  device    top-{TOP_K}: {}", shown.join(", "));
    let same = device == host;
    println!(
        "  host      {} ({} output bytes)",
        if same {
            "identical output on the x86 host"
        } else {
            "DIFFERENT output on the x86 host"
        },
        host.len()
    );
    match count {
        Some(n) => println!(
            "  one inference: {} instructions (exact count, qemu-insncount plugin)",
            thousands(n)
        ),
        None => println!(
            "  one inference: not counted ({} is absent)",
            root.join("../shared/tools/qemu-insncount").display()
        ),
    }
    if !same || !passed {
        bail!("the device's output differs from the host's");
    }
    Ok(())
}

fn host_output(model: &Model<'_>, input: &[u8]) -> Result<Vec<i8>> {
    let mut arena = vec![0u8; model.arena_size() + 16];
    let mut it = Interpreter::new(model, &mut arena).map_err(|e| anyhow!("{e}"))?;
    it.input_bytes_mut(0)
        .map_err(|e| anyhow!("{e}"))?
        .copy_from_slice(input);
    it.invoke().map_err(|e| anyhow!("{e}"))?;
    Ok(it.output_i8(0).map_err(|e| anyhow!("{e}"))?.to_vec())
}

/// The bytes of `output 0: [..]` in the firmware's log, as int8.
fn device_output(log: &[String]) -> Option<Vec<i8>> {
    let line = log.iter().find(|l| l.contains("output 0: ["))?;
    let list = line.split('[').nth(1)?.split(']').next()?;
    list.split(',')
        .map(|v| v.trim().parse::<u8>().ok().map(|b| b as i8))
        .collect()
}

/// The `TOP_K` largest values with their positions, largest first (ties: lower position first).
fn top_k(values: &[i8]) -> Vec<(usize, i8)> {
    let mut v: Vec<(usize, i8)> = values.iter().copied().enumerate().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(TOP_K);
    v
}

/// Without the instruction counter: build and run the same firmware, no count.
type Plain = (Vec<String>, bool, Option<u64>, (u64, u64, u64));

fn plain_run(root: &Path, case: &Case, timeout: Duration) -> Result<Plain> {
    let machine = Machine::An386;
    let build = Build {
        root,
        machine,
        case,
        features: vec!["bench"],
        probe: false,
    };
    let elf = match build.run()? {
        Built::Elf(elf) => elf,
        Built::Failed(log) => bail!("building the firmware:\n{log}"),
    };
    let bytes = std::fs::read(&elf)?;
    let capacity = elf_size::capacity(&firmware::memory_x(root, machine))?;
    let usage = elf_size::usage(&bytes, capacity.ram_origin)?;
    let run = qemu::run(machine, &elf, timeout)?;
    let log = defmt_log::decode(&bytes, &run.stdout)?;
    let stack = log
        .iter()
        .find_map(|l| {
            l.split("stack high-water ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let passed = run.status.is_some_and(|s| s.success());
    Ok((log, passed, None, (usage.flash, usage.ram, stack)))
}
