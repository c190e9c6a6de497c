//! `cargo xtask accuracy-control [--write]`: `ferrite quantize --max-drop` on the Fashion-MNIST
//! fixtures beside NNCF's `quantize_with_accuracy_control` on the same model, calibration samples,
//! validation set and target (`tests/fixtures/accuracy_control_anchor_results.json`, written by
//! `tests/fixtures/accuracy_control_anchor.py` on this machine). Validation: the first 2,000 images
//! of `fashion_train10k` (disjoint from the calibration samples and the test set); every figure but
//! the search's own is measured on the full 10,000-image test set.
//!
//! Residual-stream equalization (a default) undoes these fixtures' outlier channels, so the search
//! and the settings beside it run with `--no-cle`: they stand for outliers no function-preserving
//! rescaling removes. The first row is the plain default, with equalization.
//!
//! Needs `target/datasets/` (`python3 tests/fixtures/full_testsets.py`).

use anyhow::{Context, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use ferrite_quantizer::npy::Array;

#[derive(clap::Args)]
pub struct Options {
    /// Rewrite the accuracy-control section of BENCHMARKS.md.
    #[arg(long)]
    write: bool,
}

const BEGIN: &str = "<!-- cargo xtask accuracy-control --write: begin -->";
const END: &str = "<!-- cargo xtask accuracy-control --write: end -->";

/// Validation samples: the first of `fashion_train10k` (as the anchor script takes them).
const VALIDATION_SAMPLES: usize = 2000;

/// Fixtures and largest top-1 drops (points), as in the anchor script's RUNS.
/// Every Ferrite run of the search and the settings beside it: equalization off (see above).
const HARD: &str = "--no-cle";

const RUNS: [(&str, f64); 2] = [
    ("resnet_fashion_outliers", 0.3),
    ("resnet_fashion_outliers_wide", 0.5),
];

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let fixtures = root.join("tests/fixtures");
    let anchors: Value = serde_json::from_slice(
        &std::fs::read(fixtures.join("accuracy_control_anchor_results.json"))
            .context("reading tests/fixtures/accuracy_control_anchor_results.json")?,
    )?;
    let data = crate::qat::Data::fashion(root)?;
    let tool = crate::accuracy::ferrite(root)?;
    let plugin = crate::bench::build_plugin(root)?;
    let tmp = root.join("target/accuracy-control");
    std::fs::create_dir_all(&tmp)?;
    let (val_x, val_y) = (tmp.join("val_x.npy"), tmp.join("val_y.npy"));
    for (from, to) in [(&data.train_x, &val_x), (&data.train_y, &val_y)] {
        let (head, _) = Array::read(from)?.split_rows(VALIDATION_SAMPLES);
        head.write(to)?;
    }

    let mut section = format!(
        "Measured at commit `{}` with `cargo xtask accuracy-control`. Ferrite: `ferrite quantize MODEL \
         --data data/fashion_calib_x.npy --no-cle --max-drop D --val-data VAL_X --val-labels VAL_Y` (defaults otherwise; \
         `--no-cle` in every row but the first, whose default equalization undoes these outliers), \
         the validation set the first {VALIDATION_SAMPLES} images of `fashion_train10k` (disjoint from the \
         calibration samples and the test set); its seconds are the whole command. NNCF: \
         `nncf.quantize_with_accuracy_control` on the same ONNX model, calibration samples, validation \
         set and target (preset mixed; `tests/fixtures/accuracy_control_anchor.py`), run by onnxruntime; \
         its float layers are the Conv/Gemm nodes left without a quantized input. Top-1 and SQNR (output, \
         against the float model) on the 10,000-image test set; M4F instructions of one inference under \
         QEMU (`cargo xtask bench --model`).\n\n",
        crate::bench::commit(root)
    );
    for (fixture, max_drop) in RUNS {
        let model = fixtures.join(fixture).join("model.onnx");
        let default = tmp.join(format!("{fixture}_default.ferrite"));
        crate::qat::quantize(&tool, &fixtures, &model, &default, &[])?;
        let plain = tmp.join(format!("{fixture}.ferrite"));
        crate::qat::quantize(&tool, &fixtures, &model, &plain, &[HARD])?;
        let int16 = tmp.join(format!("{fixture}_int16.ferrite"));
        crate::qat::quantize(&tool, &fixtures, &model, &int16, &[HARD, "--int16", "all"])?;
        let float = tmp.join(format!("{fixture}_float.ferrite"));
        crate::qat::quantize(&tool, &fixtures, &model, &float, &[HARD, "--ignore", "all"])?;
        let controlled = tmp.join(format!("{fixture}_controlled.ferrite"));
        let report = tmp.join(format!("{fixture}_controlled.json"));
        let start = Instant::now();
        let drop = max_drop.to_string();
        let json = format!("--json={}", report.display());
        let (vx, vy) = (val_x.to_str().unwrap(), val_y.to_str().unwrap());
        crate::qat::quantize(
            &tool,
            &fixtures,
            &model,
            &controlled,
            &[
                HARD,
                "--max-drop",
                &drop,
                "--val-data",
                vx,
                "--val-labels",
                vy,
                "--best-effort",
                &json,
            ],
        )?;
        let seconds = start.elapsed().as_secs_f64();
        let doc: Value = serde_json::from_slice(&std::fs::read(&report)?)?;
        let search = &doc["accuracy_control"];
        let rows = crate::accuracy::eval_rows(
            &tool,
            &[
                model.clone(),
                plain.clone(),
                controlled.clone(),
                int16.clone(),
                float.clone(),
                default.clone(),
            ],
            &data.test_x,
            &data.test_y,
        )?;
        let float_top1 = rows[0].top1;
        let total = search["macs"].as_u64().unwrap_or(0).max(1);
        let share = |macs: u64| format!("{:.0}%", 100.0 * macs as f64 / total as f64);
        let count = |key: &str| search[key].as_array().map_or(0, Vec::len);
        let chosen = |key: &str| search["chosen_macs"][key].as_u64().unwrap_or(0);
        let m4f = |m: &Path| -> Result<String> {
            Ok(crate::prune::m4f_instructions(root, plugin.as_deref(), m)?
                .map_or("-".into(), crate::bench::thousands))
        };
        let bytes = |m: &Path| -> Result<u64> { Ok(std::fs::metadata(m)?.len()) };
        let db =
            |r: &crate::accuracy::EvalRow| r.sqnr_db.map_or("inf".into(), |d| format!("{d:.2}"));
        write!(
            section,
            "`{fixture}`, largest drop {max_drop} points (float top-1 {:.2}%):\n\n\
             | tool | setting | top-1 | drop (points) | SQNR (dB) | layers in int16x8 / float (share of MACs) | model bytes | arena bytes | M4F instructions | seconds |\n\
             |---|---|---:|---:|---:|---|---:|---:|---:|---:|\n",
            100.0 * float_top1
        )?;
        let controlled_layers = format!(
            "{} / {} ({} / {})",
            count("int16_layers"),
            count("float_layers"),
            share(chosen("int16")),
            share(chosen("float"))
        );
        for (setting, r, path, layers, secs) in [
            (
                "int8, the defaults (residual streams equalized)",
                &rows[5],
                &default,
                "0 / 0".to_string(),
                None,
            ),
            (
                "int8, --no-cle",
                &rows[1],
                &plain,
                "0 / 0".to_string(),
                None,
            ),
            (
                "--max-drop",
                &rows[2],
                &controlled,
                controlled_layers,
                Some(seconds),
            ),
            (
                "--int16 all",
                &rows[3],
                &int16,
                "all with an int16x8 kernel".into(),
                None,
            ),
            (
                "--ignore all (float)",
                &rows[4],
                &float,
                "all in float".into(),
                None,
            ),
        ] {
            writeln!(
                section,
                "| Ferrite | {setting} | {:.2}% | {:.2} | {} | {} | {} | {} | {} | {} |",
                100.0 * r.top1,
                100.0 * (float_top1 - r.top1),
                db(r),
                layers,
                bytes(path)?,
                crate::prune::arena_bytes(&tool, path)?,
                m4f(path)?,
                secs.map_or("-".into(), |s| format!("{s:.1}")),
            )?;
        }
        for a in anchors["runs"].as_array().context("anchor runs")? {
            if a["model"] != fixture {
                continue;
            }
            let top1 = a["top1"].as_f64().context("anchor top1")?;
            let float_layers = a["float_layers"].as_array().map_or(0, Vec::len);
            writeln!(
                section,
                "| NNCF | quantize_with_accuracy_control | {:.2}% | {:.2} | {:.2} | {float_layers} of the Conv/Gemm | - | - | - | {:.1} |",
                100.0 * top1,
                100.0 * (float_top1 - top1),
                a["sqnr_db"].as_f64().unwrap_or(f64::NAN),
                a["seconds"].as_f64().unwrap_or(f64::NAN),
            )?;
        }
        section.push('\n');
    }
    println!("{section}");
    if options.write {
        crate::bench::write_section(root, BEGIN, END, &section)?;
    }
    Ok(())
}
