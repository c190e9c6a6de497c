//! `ferrite report`: a quantization report (the JSON `ferrite quantize --json=FILE` writes) drawn as
//! one SVG document or one self-contained HTML page: per-layer SQNR by precision, each activation's
//! histogram with its chosen range, and the accuracy-control search step by step.
//!
//! The reading ([`Report::parse`]) is tolerant: every field but `quantization.layers` may be missing
//! (reports of older and newer versions), and a precision it does not know (`int16` today) is drawn
//! by name. The drawing (`draw`, on plotters' SVG backend) and the documents (`document`) only read
//! the [`Report`].

mod document;
mod draw;

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use serde::Deserialize;

pub use document::{html, svg};

/// A layer's or a value's number format in the quantized model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precision {
    Int8,
    Int16,
    Float,
    /// A name this version does not know, shown as it is.
    Other(String),
}

impl Precision {
    /// `int8`, `int16`, `float32` (also `float`, `f32`), or any other name.
    pub fn from_name(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "int8" | "i8" => Precision::Int8,
            "int16" | "i16" => Precision::Int16,
            "float32" | "float" | "f32" | "fp32" => Precision::Float,
            _ => Precision::Other(name.to_string()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Precision::Int8 => "int8",
            Precision::Int16 => "int16",
            Precision::Float => "float32",
            Precision::Other(s) => s,
        }
    }

    /// The integer levels of a quantized type, lowest and highest.
    fn levels(&self) -> Option<(f64, f64)> {
        match self {
            Precision::Int8 => Some((-128.0, 127.0)),
            Precision::Int16 => Some((-32768.0, 32767.0)),
            _ => None,
        }
    }
}

/// One layer's output error.
#[derive(Clone, Debug)]
pub struct Layer {
    pub name: String,
    pub op: String,
    pub precision: Precision,
    /// `None`: identical to the float model (or not measured).
    pub sqnr_db: Option<f64>,
}

/// Values counted in equal bins from `min` to `max`.
#[derive(Clone, Debug)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    pub counts: Vec<u64>,
}

/// One quantized activation.
#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    pub precision: Precision,
    /// The range chosen.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub scale: Option<f64>,
    pub zero_point: Option<f64>,
    pub histogram: Option<Histogram>,
}

impl Value {
    /// Where values are clipped: the lowest and highest level of the type at the value's scale and
    /// zero point (`real = scale * (q - zero_point)`), else the range chosen.
    pub fn clip(&self) -> Option<(f64, f64)> {
        if let (Some(s), Some(z), Some((lo, hi))) =
            (self.scale, self.zero_point, self.precision.levels())
        {
            if s.is_finite() && s > 0.0 {
                return Some((s * (lo - z), s * (hi - z)));
            }
        }
        Some((self.min?, self.max?))
    }
}

/// A model's scores on the validation set.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Score {
    pub top1: Option<f64>,
    pub sqnr_db: Option<f64>,
}

/// One step of the accuracy-control search.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Step {
    /// The tensor moved (`None`: the model before any move).
    pub moved: Option<String>,
    /// Every layer in float in the model this step measured.
    pub float_layers: Vec<String>,
    /// Every layer in int16x8 in the model this step measured.
    pub int16_layers: Vec<String>,
    /// The precision the layers moved to (`float32` when the report does not say).
    pub to: Option<String>,
    pub score: Score,
    pub kept: bool,
    pub ferrite_bytes: Option<u64>,
    pub arena_bytes: Option<u64>,
    /// Multiply-accumulates per sample in each type.
    pub macs: Option<Macs>,
    /// Reports before int16x8: the MACs in float.
    pub float_macs: Option<u64>,
    pub estimated_m4f_instructions: Option<u64>,
}

/// Multiply-accumulates per sample in each type.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Macs {
    pub int8: u64,
    pub int16: u64,
    pub float: u64,
}

impl Step {
    /// MACs per sample out of int8 (in int16x8 or float).
    pub fn wide_macs(&self) -> Option<u64> {
        self.macs.map(|m| m.int16 + m.float).or(self.float_macs)
    }

    /// The type `layer` runs in in this step's model: 2 float, 1 int16x8, 0 int8.
    fn rank(&self, layer: &str) -> u8 {
        if self.float_layers.iter().any(|l| l == layer) {
            2
        } else if self.int16_layers.iter().any(|l| l == layer) {
            1
        } else {
            0
        }
    }
}

/// The accuracy-control search.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Search {
    /// `top1` or `sqnr`.
    pub metric: String,
    pub target: Option<f64>,
    pub validation_samples: Option<u64>,
    pub float_top1: Option<f64>,
    pub steps: Vec<Step>,
    pub met: Option<bool>,
    pub float_layers: Vec<String>,
    pub int16_layers: Vec<String>,
    pub macs: Option<u64>,
    /// Reports before int16x8: the MACs in float of the chosen model.
    pub float_macs: Option<u64>,
    pub chosen_macs: Option<Macs>,
}

/// A step of the search as the table shows it.
pub struct StepRow<'a> {
    pub step: &'a Step,
    /// The layers this step moved: those whose type differs from the model it started from.
    pub moved_layers: Vec<&'a str>,
    /// The scores of the model the step started from (the last kept one before it).
    pub before: Option<Score>,
    /// The size of that model.
    pub before_bytes: Option<u64>,
}

impl Search {
    /// Each step with what it moved and the model it started from.
    pub fn rows(&self) -> Vec<StepRow<'_>> {
        let mut base: Option<&Step> = None;
        let mut rows = Vec::new();
        for step in &self.steps {
            let moved_layers = step
                .int16_layers
                .iter()
                .chain(&step.float_layers)
                .filter(|l| base.is_none_or(|b| b.rank(l) != step.rank(l)))
                .map(String::as_str)
                .collect();
            rows.push(StepRow {
                step,
                moved_layers,
                before: base.map(|b| b.score),
                before_bytes: base.and_then(|b| b.ferrite_bytes),
            });
            if step.kept || base.is_none() {
                base = Some(step);
            }
        }
        rows
    }
}

/// What `ferrite report` draws, read from a quantization report.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub model: Option<String>,
    pub output: Option<String>,
    /// The settings (`quantization.config`) as `key: value` text, in the report's order.
    pub settings: Vec<(String, String)>,
    pub calibration_samples: Option<u64>,
    pub layer_sqnr_samples: Option<u64>,
    pub ferrite_bytes: Option<u64>,
    pub arena_bytes: Option<u64>,
    pub layers: Vec<Layer>,
    pub values: Vec<Value>,
    pub search: Option<Search>,
}

/// The JSON document as read (every field optional but the layers).
#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    ferrite_bytes: Option<u64>,
    #[serde(default)]
    arena_bytes: Option<u64>,
    quantization: Quantization,
    #[serde(default)]
    accuracy_control: Option<Search>,
}

#[derive(Deserialize)]
struct Quantization {
    #[serde(default)]
    config: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    calibration_samples: Option<u64>,
    #[serde(default)]
    layer_sqnr_samples: Option<u64>,
    layers: Vec<LayerDoc>,
    #[serde(default)]
    values: Vec<ValueDoc>,
}

/// A layer or value's precision: `precision` when the report has it, else `dtype`.
#[derive(Deserialize)]
struct LayerDoc {
    name: String,
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    precision: Option<String>,
    #[serde(default)]
    dtype: Option<String>,
    #[serde(default)]
    sqnr_db: Option<f64>,
}

#[derive(Deserialize)]
struct ValueDoc {
    name: String,
    #[serde(default)]
    precision: Option<String>,
    #[serde(default)]
    dtype: Option<String>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    zero_point: Option<f64>,
    #[serde(default)]
    histogram: Option<HistogramDoc>,
}

#[derive(Deserialize)]
struct HistogramDoc {
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    counts: Vec<u64>,
}

impl HistogramDoc {
    /// The histogram, if it has bins over a finite range.
    fn histogram(self) -> Option<Histogram> {
        let (min, max) = (self.min?, self.max?);
        (min.is_finite() && max.is_finite() && min <= max && !self.counts.is_empty()).then_some(
            Histogram {
                min,
                max,
                counts: self.counts,
            },
        )
    }
}

fn precision(precision: Option<String>, dtype: Option<String>) -> Precision {
    precision
        .or(dtype)
        .map_or(Precision::Other("unknown".into()), |s| {
            Precision::from_name(&s)
        })
}

/// A setting's value as text: strings as they are, `{"percentile": 99.99}` as `percentile 99.99`,
/// lists joined by commas.
fn setting_text(v: &serde_json::Value) -> String {
    use serde_json::Value as V;
    match v {
        V::String(s) => s.clone(),
        V::Array(a) => a.iter().map(setting_text).collect::<Vec<_>>().join(", "),
        V::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k} {}", setting_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// Settings left out of the header: the source's digest (32 numbers).
const HIDDEN_SETTINGS: [&str; 1] = ["source_sha256"];

impl Report {
    /// Reads a quantization report from its JSON text. The errors say what is wrong, without the
    /// file's name (the caller adds it).
    pub fn parse(text: &str) -> Result<Report> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| anyhow!("not JSON ({e})"))?;
        let not_report = |why: String| {
            anyhow!(
                "not a quantization report ({why}; `ferrite quantize ... --json=FILE` writes one)"
            )
        };
        let Some(obj) = json.as_object() else {
            return Err(not_report("not a JSON object".into()));
        };
        let layers = obj.get("quantization").and_then(|q| q.get("layers"));
        if layers.is_none() {
            return Err(not_report("no `quantization.layers`".into()));
        }
        let doc: Doc = serde_json::from_value(json).map_err(|e| not_report(e.to_string()))?;
        let q = doc.quantization;
        let settings = q
            .config
            .unwrap_or_default()
            .iter()
            .filter(|(k, _)| !HIDDEN_SETTINGS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), setting_text(v)))
            .collect();
        Ok(Report {
            model: doc.model,
            output: doc.output,
            settings,
            calibration_samples: q.calibration_samples,
            layer_sqnr_samples: q.layer_sqnr_samples,
            ferrite_bytes: doc.ferrite_bytes,
            arena_bytes: doc.arena_bytes,
            layers: q
                .layers
                .into_iter()
                .map(|l| Layer {
                    name: l.name,
                    op: l.op.unwrap_or_default(),
                    precision: precision(l.precision, l.dtype),
                    sqnr_db: l.sqnr_db,
                })
                .collect(),
            values: q
                .values
                .into_iter()
                .map(|v| Value {
                    name: v.name,
                    precision: precision(v.precision, v.dtype),
                    min: v.min,
                    max: v.max,
                    scale: v.scale,
                    zero_point: v.zero_point,
                    histogram: v.histogram.and_then(HistogramDoc::histogram),
                })
                .collect(),
            search: doc.accuracy_control,
        })
    }

    /// How many layers of each precision, in the order int8, int16, float32, then others by name.
    pub fn precision_counts(&self) -> Vec<(Precision, usize)> {
        let mut others: BTreeMap<String, usize> = BTreeMap::new();
        let mut known = [
            (Precision::Int8, 0),
            (Precision::Int16, 0),
            (Precision::Float, 0),
        ];
        for l in &self.layers {
            match known.iter_mut().find(|(p, _)| *p == l.precision) {
                Some((_, n)) => *n += 1,
                None => *others.entry(l.precision.name().to_string()).or_default() += 1,
            }
        }
        known
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .chain(others.into_iter().map(|(p, n)| (Precision::Other(p), n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"quantization": {"layers": [
        {"name": "a", "dtype": "int8", "sqnr_db": 30.5},
        {"name": "b", "precision": "int16", "dtype": "int16"},
        {"name": "c", "dtype": "float32", "sqnr_db": null},
        {"name": "d", "precision": "int4"}
    ]}}"#;

    #[test]
    fn a_minimal_report_reads_with_every_precision() {
        let r = Report::parse(MINIMAL).unwrap();
        let p: Vec<&str> = r.layers.iter().map(|l| l.precision.name()).collect();
        assert_eq!(p, ["int8", "int16", "float32", "int4"]);
        assert_eq!(r.layers[0].sqnr_db, Some(30.5));
        assert!(r.values.is_empty() && r.search.is_none() && r.model.is_none());
        assert_eq!(r.precision_counts().len(), 4);
    }

    #[test]
    fn what_is_not_a_report_says_so() {
        for (text, says) in [
            ("{", "not JSON"),
            ("[1, 2]", "not a JSON object"),
            (r#"{"model": "m"}"#, "no `quantization.layers`"),
            (
                r#"{"quantization": {"layers": 3}}"#,
                "not a quantization report",
            ),
            (r#"{"quantization": {"layers": [{"op": "FC"}]}}"#, "name"),
        ] {
            let e = Report::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    /// The layers a step moved are those not in float in the last kept step before it.
    #[test]
    fn each_step_starts_from_the_last_kept_one() {
        let step = |moved: Option<&str>, float: &[&str], kept, sqnr| Step {
            moved: moved.map(str::to_string),
            float_layers: float.iter().map(|s| s.to_string()).collect(),
            kept,
            score: Score {
                top1: None,
                sqnr_db: Some(sqnr),
            },
            ..Step::default()
        };
        let s = Search {
            steps: vec![
                step(None, &[], true, 10.0),
                step(Some("t1"), &["a", "b"], true, 20.0),
                step(Some("t2"), &["a", "b", "c"], false, 15.0),
                step(Some("t3"), &["a", "b", "d"], true, 25.0),
            ],
            ..Search::default()
        };
        let rows = s.rows();
        let moved: Vec<Vec<&str>> = rows.iter().map(|r| r.moved_layers.clone()).collect();
        assert_eq!(moved, [vec![], vec!["a", "b"], vec!["c"], vec!["d"]]);
        let before: Vec<Option<f64>> = rows
            .iter()
            .map(|r| r.before.and_then(|b| b.sqnr_db))
            .collect();
        assert_eq!(before, [None, Some(10.0), Some(20.0), Some(20.0)]);
    }
}
