//! `cargo xtask demo`: the main job on the bundled example. Quantizes the float DS-CNN of
//! `tests/fixtures/dscnn_fashion` (Fashion-MNIST) with `ferrite quantize`, compares float and int8
//! accuracy with `ferrite eval`, shows the int8 model's predictions beside the true labels on the first
//! test images (the host build of the runtime), then runs it on the emulated Cortex-M4F on the first
//! one: model size, arena, the device's predictions, whether they equal the host's, and the
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
use ferrite_quantizer::npy::Array;
use ferrite_runtime::{Interpreter, Model};
use std::{path::Path, process::Command, time::Duration};

const CASE: &str = "dscnn_fashion";
const TOP_K: usize = 3;
/// Test images whose predictions are shown: the first ones of the bundled test set, in file order (a
/// fixed rule, so the demo shows what the model does, mistakes included).
const SHOWN: usize = 8;
const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

pub fn run(root: &Path) -> Result<()> {
    let fixtures = root.join("tests/fixtures");
    let onnx = fixtures.join("dscnn_fashion/model.onnx");
    let (calib, test_x, test_y) = (
        fixtures.join("data/fashion_calib_x.npy"),
        fixtures.join("data/fashion_test_x.npy"),
        fixtures.join("data/fashion_test_y.npy"),
    );
    let dir = root.join("target/demo").join(CASE);
    std::fs::create_dir_all(&dir)?;
    let ferrite_path = dir.join("model.ferrite");
    println!("Ferrite demo: a DS-CNN trained on Fashion-MNIST, quantized and run on an emulated Cortex-M4F");
    let tool = crate::accuracy::ferrite(root)?;
    let q = Command::new(&tool)
        .arg("quantize")
        .arg(&onnx)
        .arg("--data")
        .arg(&calib)
        .arg("-o")
        .arg(&ferrite_path)
        .output()?;
    if !q.status.success() {
        bail!("ferrite quantize: {}", String::from_utf8_lossy(&q.stderr));
    }
    // The summary line, then the lowest per-layer SQNRs, indented under it.
    let summary = String::from_utf8_lossy(&q.stdout);
    for (i, line) in summary.trim().lines().enumerate() {
        println!("  {:<8}  {line}", if i == 0 { "quantize" } else { "" });
    }
    let acc = crate::accuracy::eval(
        &tool,
        &[onnx.clone(), ferrite_path.clone()],
        &test_x,
        &test_y,
    )?;
    let samples = Array::read(&test_y)?.len();
    println!(
        "  accuracy  float {:.2}%, int8 {:.2}% (top-1 on {samples} test images, `ferrite eval`)",
        100.0 * acc[0],
        100.0 * acc[1]
    );

    // The first test images, quantized by the host runtime as the model's input.
    let model_bytes = std::fs::read(&ferrite_path)?;
    let model = Model::from_bytes(&model_bytes).map_err(|e| anyhow!("{CASE}: {e}"))?;
    let images = Array::read(&test_x)?;
    let labels = Array::read(&test_y)?;
    let per: usize = images.shape[1..].iter().product();
    let pixels = images.to_f32();
    let inp = model.input(0).map_err(|e| anyhow!("{e}"))?;
    let s = inp.shape.nhwc();
    let mut runs = Vec::new();
    for nchw in pixels.chunks(per).take(SHOWN) {
        let nhwc = ferrite_quantizer::runtime_exec::transpose_chw(nchw, s.c, s.h, s.w, false);
        runs.push(host_run(&model, &nhwc)?);
    }
    let (input, host) = runs.first().cloned().context("the test set is empty")?;
    std::fs::write(dir.join("input.bin"), &input)?;
    std::fs::write(
        dir.join("expected.bin"),
        host.iter().map(|&b| b as u8).collect::<Vec<u8>>(),
    )?;
    let label = labels.get_f64(0) as usize;
    let out = model.output(0).map_err(|e| anyhow!("{e}"))?;
    let ops: Vec<&str> = model.ops().map(|op| op.name()).collect();
    println!(
        "  model     {} B ({} operators, int8 only), arena {} B: a static sized at compile time from the model header",
        thousands(model_bytes.len() as u64),
        ops.len(),
        thousands(model.arena_size() as u64)
    );
    let pairs: Vec<(usize, usize)> = runs
        .iter()
        .enumerate()
        .map(|(i, (_, output))| (labels.get_f64(i) as usize, top_k(output)[0].0))
        .collect();
    print!("{}", predictions_table(&pairs));
    println!(
        "  device    test image 0, a {} ({}x{} pixels), on the emulated Cortex-M4F:",
        class_name(label),
        s.h,
        s.w
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
            format!("{} ({p:.3})", CLASSES.get(i).unwrap_or(&"?"))
        })
        .collect();
    println!(
        "  output    top-{TOP_K} (class, logit): {}",
        shown.join(", ")
    );
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

fn class_name(i: usize) -> &'static str {
    CLASSES.get(i).copied().unwrap_or("?")
}

/// The shown images' (true label, prediction) pairs side by side, mistakes marked, and the count
/// right.
fn predictions_table(pairs: &[(usize, usize)]) -> String {
    let indent = " ".repeat(12);
    let mut t = format!(
        "  images    the first {} test images, int8 model on the host runtime:\n{indent}image  true label    int8 prediction\n",
        pairs.len()
    );
    for (i, &(truth, predicted)) in pairs.iter().enumerate() {
        let mark = if truth == predicted { "" } else { "(wrong)" };
        let row = format!(
            "{i:>5}  {:<12}  {:<12}  {mark}",
            class_name(truth),
            class_name(predicted)
        );
        t.push_str(&format!("{indent}{}\n", row.trim_end()));
    }
    let right = pairs.iter().filter(|(t, p)| t == p).count();
    t.push_str(&format!("{indent}{right} of {} right\n", pairs.len()));
    t
}

/// Quantizes `values` into input 0 and runs the model: the input bytes and the int8 output.
fn host_run(model: &Model<'_>, values: &[f32]) -> Result<(Vec<u8>, Vec<i8>)> {
    let mut arena = vec![0u8; model.arena_size() + 16];
    let mut it = Interpreter::new(model, &mut arena).map_err(|e| anyhow!("{e}"))?;
    it.set_input_f32(0, values).map_err(|e| anyhow!("{e}"))?;
    let input = it.input_bytes_mut(0).map_err(|e| anyhow!("{e}"))?.to_vec();
    it.invoke().map_err(|e| anyhow!("{e}"))?;
    Ok((input, it.output_i8(0).map_err(|e| anyhow!("{e}"))?.to_vec()))
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
        model_ops_only: false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_marks_mistakes_and_counts_the_right_ones() {
        let t = predictions_table(&[(2, 6), (0, 0), (9, 9)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 6, "{t}");
        assert!(
            lines[2].ends_with("0  pullover      shirt         (wrong)"),
            "{t}"
        );
        assert!(lines[3].ends_with("1  T-shirt/top   T-shirt/top"), "{t}");
        assert!(lines[5].ends_with("2 of 3 right"), "{t}");
    }
}
