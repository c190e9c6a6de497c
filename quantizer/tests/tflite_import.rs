//! TFLite import: every fixture in `tests/tflite/fixtures/` and the MLPerf Tiny int8 models in
//! `../shared/models/mlperf-tiny/` are converted and run, and their outputs must equal TFLite Micro's
//! (the goldens `tests/tflite/make_fixtures.py goldens` wrote) byte for byte on every sample.

use ferrite_quantizer::builder::ArenaLayout;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ferrite_quantizer::import::tflite;
use ferrite_runtime::format::DType;
use ferrite_runtime::{Interpreter, Model};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tflite")
}

/// xorshift64* seeded as `make_fixtures.py`'s `draw_words`.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The top 16 bits of the next draw (an int16 element).
    fn next_u16(&mut self) -> u16 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 48) as u16
    }
    /// The top byte of the next draw (an int8 element).
    fn next_u8(&mut self) -> u8 {
        (self.next_u16() >> 8) as u8
    }
}

struct Golden {
    model: String,
    samples: usize,
    outputs: Vec<Vec<u8>>,
}

fn parse_golden(path: &Path) -> Result<Golden> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut model, mut samples, mut outputs) = (None, None, Vec::new());
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(m) = line.strip_prefix("model ") {
            model = Some(m.to_string());
        } else if let Some(n) = line.strip_prefix("samples ") {
            samples = Some(n.parse::<usize>()?);
        } else if line.starts_with("sha256 ")
            || line.starts_with("inputs ")
            || line.starts_with("outputs ")
        {
        } else {
            let bytes = (0..line.len() / 2)
                .map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .with_context(|| format!("{}: bad hex line", path.display()))?;
            outputs.push(bytes);
        }
    }
    let g = Golden {
        model: model.context("no model line")?,
        samples: samples.context("no samples line")?,
        outputs,
    };
    if g.outputs.len() != g.samples {
        bail!(
            "{}: {} data lines for {} samples",
            path.display(),
            g.outputs.len(),
            g.samples
        );
    }
    Ok(g)
}

/// Converts `tflite_bytes` with `layout`, runs every golden sample; returns (matching samples, total,
/// differing bytes, file size, arena size).
fn check(
    tflite_bytes: &[u8],
    golden: &Golden,
    layout: ArenaLayout,
) -> Result<(usize, usize, usize, usize, usize)> {
    let built = tflite::convert(tflite_bytes, layout)?;
    let model =
        Model::from_bytes(&built.bytes).map_err(|e| anyhow!("loading the converted model: {e}"))?;
    let mut arena = vec![0u8; model.arena_size()];
    let mut it = Interpreter::new(&model, &mut arena).map_err(|e| anyhow!("{e}"))?;
    let (mut ok, mut bad_bytes) = (0, 0);
    for (k, want) in golden.outputs.iter().enumerate() {
        let mut rng = Rng::new(k as u64);
        for i in 0..it.inputs() {
            let dtype = model.input(i).map_err(|e| anyhow!("{e}"))?.dtype;
            let dst = it.input_bytes_mut(i).map_err(|e| anyhow!("{e}"))?;
            match dtype {
                DType::F32 => {
                    for c in dst.chunks_exact_mut(4) {
                        let v = (rng.next_u8() as i8) as f32 / 32.0;
                        c.copy_from_slice(&v.to_le_bytes());
                    }
                }
                DType::I16 => {
                    for c in dst.chunks_exact_mut(2) {
                        c.copy_from_slice(&rng.next_u16().to_le_bytes());
                    }
                }
                _ => dst.iter_mut().for_each(|b| *b = rng.next_u8()),
            }
        }
        it.invoke().map_err(|e| anyhow!("invoke: {e}"))?;
        let mut got = Vec::new();
        for i in 0..it.outputs() {
            got.extend_from_slice(it.output_bytes(i).map_err(|e| anyhow!("{e}"))?);
        }
        if got.len() != want.len() {
            bail!(
                "sample {k}: {} output bytes, golden has {}",
                got.len(),
                want.len()
            );
        }
        let diff = got.iter().zip(want).filter(|(a, b)| a != b).count();
        if diff == 0 {
            ok += 1;
        }
        bad_bytes += diff;
    }
    Ok((
        ok,
        golden.outputs.len(),
        bad_bytes,
        built.bytes.len(),
        built.plan.arena_size,
    ))
}

fn goldens(prefix_mlperf: bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("goldens"))
        .expect("tests/tflite/goldens")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".golden") && name.starts_with("mlperf_") == prefix_mlperf
        })
        .collect();
    v.sort();
    v
}

#[test]
fn fixtures_match_tflite_micro_bit_exactly() {
    let mut failures = Vec::new();
    let paths = goldens(false);
    assert!(paths.len() >= 30, "expected the committed goldens");
    let int16 = paths
        .iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("i16_"))
        .count();
    assert!(
        int16 >= 23,
        "expected the 16x8 goldens (i16_*), found {int16}"
    );
    for path in paths {
        let g = parse_golden(&path).unwrap();
        let bytes = std::fs::read(root().join(&g.model)).unwrap();
        for layout in [ArenaLayout::Separate, ArenaLayout::InPlace] {
            match check(&bytes, &g, layout) {
                Ok((ok, n, bad, size, arena)) => {
                    eprintln!("{:<40} {layout:<8} {ok}/{n} samples bit-exact ({bad} bytes differ), .tflite {} B, .ferrite {size} B, arena {arena} B", g.model, bytes.len());
                    if ok != n {
                        failures.push(format!(
                            "{} ({layout}): {ok}/{n} samples bit-exact",
                            g.model
                        ));
                    }
                }
                Err(e) => failures.push(format!("{} ({layout}): {e:#}", g.model)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A TFLite import's int8 TANH and LOGISTIC run by tables of TFLite Micro's own results (which
/// [`fixtures_match_tflite_micro_bit_exactly`] checks on their fixtures); its int16 ones keep the
/// runtime's int16 kernels.
#[test]
fn tflite_tanh_and_logistic_run_by_table_in_int8() {
    let ops = |name: &str| -> Vec<String> {
        let bytes = std::fs::read(root().join("fixtures").join(name)).unwrap();
        let built = tflite::convert(&bytes, ArenaLayout::Separate).unwrap();
        let model = Model::from_bytes(&built.bytes).unwrap();
        model.ops().map(|o| o.name().to_string()).collect()
    };
    let int8 = ops("logistic_tanh_chain.tflite");
    assert_eq!(
        int8.iter().filter(|o| *o == "LOOKUP").count(),
        2,
        "{int8:?}"
    );
    let int16 = ops("i16_tanh.tflite");
    assert!(int16.contains(&"TANH".to_string()), "{int16:?}");
}

/// TFLite Micro's planned arena head (activations), measured with `print_allocations()` (BASELINES.md).
const TFLM_HEAD: &[(&str, usize)] = &[
    ("kws_dscnn_int8", 16_000),
    ("ic_resnet8_int8", 49_152),
    ("vww_mobilenet_int8", 73_728),
    ("ad_autoencoder_int8", 768),
    ("sww_int8", 6_656),
];

/// Needs `../shared/models/mlperf-tiny/` (not part of the repository); passes with a message when absent.
#[test]
fn mlperf_models_match_tflite_micro_bit_exactly() {
    let dir = root().join("../../../shared/models/mlperf-tiny");
    if !dir.is_dir() {
        eprintln!(
            "{} is absent: MLPerf Tiny bit-exactness not checked",
            dir.display()
        );
        return;
    }
    let mut failures = Vec::new();
    for path in goldens(true) {
        let g = parse_golden(&path).unwrap();
        let name = Path::new(&g.model)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(dir.join(format!("{name}.tflite"))).unwrap();
        let tflm = TFLM_HEAD
            .iter()
            .find(|(m, _)| *m == name)
            .map(|p| p.1)
            .unwrap();
        let mut arenas = Vec::new();
        for layout in [ArenaLayout::Separate, ArenaLayout::InPlace] {
            match check(&bytes, &g, layout) {
                Ok((ok, n, bad, size, arena)) => {
                    eprintln!(
                        "{name:<22} {layout:<8} {ok}/{n} samples bit-exact ({bad} bytes differ); .tflite {} B -> .ferrite {size} B; arena {arena} B (TFLM head {tflm} B)",
                        bytes.len()
                    );
                    if ok != n {
                        failures.push(format!("{name} ({layout}): {ok}/{n} samples bit-exact"));
                    }
                    if size > bytes.len() {
                        failures.push(format!(
                            "{name}: .ferrite {size} B larger than .tflite {} B",
                            bytes.len()
                        ));
                    }
                    if arena > tflm {
                        failures.push(format!(
                            "{name} ({layout}): arena {arena} B larger than TFLite Micro's {tflm} B"
                        ));
                    }
                    arenas.push(arena);
                }
                Err(e) => failures.push(format!("{name} ({layout}): {e:#}")),
            }
        }
        if let [separate, in_place] = arenas[..] {
            if in_place > separate {
                failures.push(format!(
                    "{name}: in-place arena {in_place} B above the separate one's {separate} B"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
