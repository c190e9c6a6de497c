//! Accuracy-controlled quantization: post-training quantization, then, while the validation metric
//! misses its target, the most sensitive layers moved to a wider type one group at a time: first
//! int16 activations (int16x8, int8 weights), then float.
//!
//! The target is on top-1 accuracy (a largest drop from the float model's, in points) or, without
//! labels, on the output SQNR against the float model (a smallest SQNR in dB).
//!
//! What moves is a tensor: its producer and every reader (through reshapes) move together, so that
//! the tensor itself is no longer int8 (a layer moved alone still reads and writes int8 tensors).
//! Each tensor's sensitivity is measured: the output SQNR of the model with that tensor alone
//! widened (int16x8 when every layer of its group runs int16x8 on calibrated ranges, float
//! otherwise), on the
//! whole validation set. The search widens groups to int16x8 in that order first; only if the
//! target still misses does it move groups to float, in the same order.
//!
//! The ranking widens layers of the post-training model without quantizing again (as NNCF
//! reverts them): a try costs a lowering and a validation run. Each move of the search quantizes
//! again, from the one calibration, with the layers widened (ranges chosen and biases corrected
//! around them), which a widened post-training model lacks: there a layer keeps the bias corrected
//! for its neighbours' int8 rounding and its neighbours the ranges chosen for it in int8, and often
//! loses more than it gains. SQNR ranks and judges the moves even when the target is on top-1: it
//! is continuous, where top-1 on a validation set of a few hundred samples moves in steps of a
//! fraction of a point that noise alone can take. A move that does not raise the SQNR is taken back,
//! unless it meets the target; the search stops as soon as the target holds.
//! Every step is recorded.

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::builder::Built;
use crate::ir::float_exec::Tensor;
use crate::ir::{self, Graph, Op};
use crate::lower::Precision;
use crate::npy::Array;
use crate::quantize::ptq::{self, Config, Quantized};
use crate::quantize::sqnr::Sqnr;
use crate::runtime_exec::Runner;

/// What the search must reach on the validation set.
#[derive(Clone, Debug)]
pub enum Target {
    /// Top-1 accuracy at most `max_drop` points below the float model's.
    Top1 { labels: Vec<usize>, max_drop: f64 },
    /// Output SQNR against the float model of at least `min_db`.
    Sqnr { min_db: f64 },
}

/// A model's scores on the validation set.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Score {
    /// Top-1 accuracy (a fraction), with labels.
    pub top1: Option<f64>,
    /// Output SQNR against the float model; `None` when equal to it.
    pub sqnr_db: Option<f64>,
}

/// One tensor's sensitivity: the scores with it alone widened.
#[derive(Clone, Debug, Serialize)]
pub struct Ranked {
    /// The tensor.
    pub tensor: String,
    /// The layers that move with it: its producer and readers.
    pub layers: Vec<String>,
    pub macs: usize,
    /// The type it was measured in: `int16` when every layer has an int16x8 kernel, else `float`.
    pub precision: Precision,
    pub score: Score,
}

/// Multiply-accumulates per sample in each type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Macs {
    pub int8: usize,
    pub int16: usize,
    pub float: usize,
}

/// One step of the search.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// The tensor moved at this step (`None`: the plain int8 model).
    pub moved: Option<String>,
    /// The type it moved to (`None`: the plain int8 model).
    pub to: Option<Precision>,
    /// Every layer in int16x8 in the model this step measured.
    pub int16_layers: Vec<String>,
    /// Every layer in float in the model this step measured.
    pub float_layers: Vec<String>,
    pub score: Score,
    /// Whether the move was kept (a move that does not improve the metric is taken back).
    pub kept: bool,
    pub ferrite_bytes: usize,
    pub arena_bytes: usize,
    /// Multiply-accumulates per sample in each type.
    pub macs: Macs,
    /// Cortex-M4F instructions per sample estimated from `macs` ([`estimated_m4f_instructions`]).
    pub estimated_m4f_instructions: u64,
}

/// The whole search, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct Search {
    /// `top1` or `sqnr`.
    pub metric: &'static str,
    /// The largest drop in points (`top1`) or the smallest SQNR in dB (`sqnr`).
    pub target: f64,
    pub validation_samples: usize,
    /// The float model's top-1 on the validation set (with labels).
    pub float_top1: Option<f64>,
    /// Most helpful first.
    pub ranking: Vec<Ranked>,
    pub steps: Vec<Step>,
    /// Whether the chosen model meets the target.
    pub met: bool,
    /// The layers in int16x8 in the chosen model (beyond `--int16`).
    pub int16_layers: Vec<String>,
    /// The layers in float in the chosen model (beyond `--ignore`).
    pub float_layers: Vec<String>,
    /// Multiply-accumulates per sample in the whole model, and in each type in the chosen model.
    pub macs: usize,
    pub chosen_macs: Macs,
}

/// Cortex-M4F instructions per multiply-accumulate of each type: the cost model each move is
/// reported with (an estimate; `cargo xtask bench --model` measures a model). Whole-model figures of
/// `resnet_fashion_outliers` (1,718,848 MACs) in BENCHMARKS.md's accuracy-control table: all int8
/// 3.67 million instructions, all int16x8 10.8 million, all float 35.0 million.
const M4F_INSTRUCTIONS_PER_MAC: [(Precision, f64); 3] = [
    (Precision::Int8, 2.13),
    (Precision::Int16, 6.3),
    (Precision::Float, 20.3),
];

/// The estimated instructions of one inference with `macs`: each type's MACs times its cost.
pub fn estimated_m4f_instructions(macs: Macs) -> u64 {
    let per = |p: Precision| {
        M4F_INSTRUCTIONS_PER_MAC
            .iter()
            .find(|(q, _)| *q == p)
            .map_or(0.0, |c| c.1)
    };
    (macs.int8 as f64 * per(Precision::Int8)
        + macs.int16 as f64 * per(Precision::Int16)
        + macs.float as f64 * per(Precision::Float))
    .round() as u64
}

/// The chosen model and how it was found.
pub struct Controlled {
    pub quantized: Quantized,
    pub search: Search,
}

/// Scores models on the validation set against the float model's outputs.
struct Judge<'a> {
    val: &'a Array,
    reference: Vec<Array>,
    target: &'a Target,
    float_top1: Option<f64>,
    threads: usize,
}

impl Judge<'_> {
    fn score(&self, bytes: &[u8]) -> Result<Score> {
        let outs = Runner::new(bytes)?.run(std::slice::from_ref(self.val), self.threads)?;
        let mut sqnr = Sqnr::default();
        for (r, x) in self.reference.iter().zip(&outs) {
            sqnr.extend((0..r.len()).map(|i| (r.get_f64(i), x.get_f64(i))));
        }
        // Outputs that are not finite (an overflowing float layer) score nothing, not "identical".
        let sqnr_db = if sqnr.noise.is_finite() && sqnr.signal.is_finite() {
            sqnr.db()
        } else {
            Some(f64::NEG_INFINITY)
        };
        Ok(Score {
            top1: self.top1(&outs[0]),
            sqnr_db,
        })
    }

    fn top1(&self, out: &Array) -> Option<f64> {
        let Target::Top1 { labels, .. } = self.target else {
            return None;
        };
        let predicted = crate::top1::argmax_rows(out);
        let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
        Some(correct as f64 / labels.len() as f64)
    }

    fn met(&self, s: &Score) -> bool {
        match self.target {
            Target::Top1 { max_drop, .. } => {
                100.0 * (self.float_top1.unwrap_or(0.0) - s.top1.unwrap_or(0.0)) <= max_drop + 1e-9
            }
            Target::Sqnr { min_db } => s.sqnr_db.unwrap_or(f64::INFINITY) >= *min_db,
        }
    }
}

/// Output SQNR, equal outputs counting as infinite.
fn sqnr(s: &Score) -> f64 {
    s.sqnr_db.unwrap_or(f64::INFINITY)
}

/// Quantizes `graph` (optimized) on `calib`, keeping layers in float until the metric on `val` (in
/// the source model's layout, batch first) meets `target`. Without a model that meets it, returns
/// the best found (`search.met` false).
pub fn quantize(
    graph: &Graph,
    calib: &[Tensor],
    config: &Config,
    val: &Array,
    target: &Target,
    threads: usize,
) -> Result<Controlled> {
    let samples = val.shape.first().copied().unwrap_or(0);
    ensure!(samples > 0, "the validation set is empty");
    if let Target::Top1 { labels, max_drop } = target {
        ensure!(
            labels.len() == samples,
            "{} labels for {samples} validation samples",
            labels.len()
        );
        ensure!(*max_drop >= 0.0, "the largest drop must be at least 0");
    }
    let reference = ir::io::run_arrays(graph, std::slice::from_ref(val), threads)?;
    let mut judge = Judge {
        val,
        reference,
        target,
        float_top1: None,
        threads,
    };
    judge.float_top1 = judge.top1(&judge.reference[0]);

    // The model with `int16` and `float` layers (beyond the configuration's), quantized again from
    // the one calibration (which does not depend on them).
    let calibrated = ptq::calibrate_graph(graph, calib, config)?;
    let with = |int16: &[String], float: &[String]| -> Result<Quantized> {
        let mut c = config.clone();
        c.int16_nodes.extend(int16.iter().cloned());
        c.float_nodes.extend(float.iter().cloned());
        ptq::quantize_calibrated(&calibrated, calib, &c)
    };
    let macs_of = |q: &Quantized| -> Macs {
        let mut m = Macs::default();
        let precision = q.decided.node_precision();
        for (n, p) in graph.nodes.iter().zip(precision) {
            let k = n.op.macs(graph.values[n.output].elements());
            match p {
                Precision::Int8 => m.int8 += k,
                Precision::Int16 => m.int16 += k,
                Precision::Float => m.float += k,
            }
        }
        m
    };
    let step = |moved: Option<(String, Precision)>,
                int16: &[String],
                float: &[String],
                q: &Quantized,
                score,
                kept| {
        let macs = macs_of(q);
        Step {
            to: moved.as_ref().map(|m| m.1),
            moved: moved.map(|m| m.0),
            int16_layers: int16.to_vec(),
            float_layers: float.to_vec(),
            score,
            kept,
            ferrite_bytes: q.built.bytes.len(),
            arena_bytes: q.built.plan.arena_size,
            macs,
            estimated_m4f_instructions: estimated_m4f_instructions(macs),
        }
    };

    let plain = with(&[], &[])?;
    let plain_score = judge.score(&plain.built.bytes)?;
    let mut steps = vec![step(None, &[], &[], &plain, plain_score, true)];
    // The plain model with layers widened, without quantizing again.
    let widen = |names: &[String], to: Precision| -> Result<Built> {
        let mut d = plain.decided.clone();
        for ((f, w), n) in d
            .float_node
            .iter_mut()
            .zip(d.int16_node.iter_mut())
            .zip(&d.graph.nodes)
        {
            // Table functions (LOOKUP, LOG_SOFTMAX) have neither form and stay int8.
            if names.contains(&n.name) && !*f && n.op.has_float() {
                match to {
                    Precision::Float => (*f, *w) = (true, false),
                    _ => *w |= n.op.int16_from_calibration(),
                }
            }
        }
        ptq::build(&d)
    };
    let mut ranking: Vec<Ranked> = Vec::new();
    let (mut int16, mut float): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let mut best_score = plain_score;
    let mut best = None;
    if !judge.met(&plain_score) {
        // Each tensor alone widened, measured.
        let already = &plain.report.float_nodes;
        for (tensor, layers) in tensor_groups(graph) {
            let layers: Vec<String> = layers
                .into_iter()
                .filter(|l| {
                    !already.contains(l)
                        && graph.nodes.iter().any(|n| &n.name == l && n.op.has_float())
                })
                .collect();
            if layers.is_empty() || ranking.iter().any(|r| r.layers == layers) {
                continue;
            }
            let int16_ok = graph
                .nodes
                .iter()
                .filter(|n| layers.contains(&n.name))
                .all(|n| n.op.int16_from_calibration());
            let precision = if int16_ok {
                Precision::Int16
            } else {
                Precision::Float
            };
            let built = widen(&layers, precision)?;
            ranking.push(Ranked {
                tensor,
                macs: graph
                    .nodes
                    .iter()
                    .filter(|n| layers.contains(&n.name))
                    .map(|n| n.op.macs(graph.values[n.output].elements()))
                    .sum(),
                precision,
                score: judge.score(&built.bytes)?,
                layers,
            });
        }
        ranking.sort_by(|a, b| sqnr(&b.score).total_cmp(&sqnr(&a.score)));
        // Greedy, in that order, each move kept only if it raises the SQNR (or meets the target):
        // first every group that can to int16x8, then to float.
        'passes: for to in [Precision::Int16, Precision::Float] {
            for r in &ranking {
                if to == Precision::Int16 && r.precision != Precision::Int16 {
                    continue;
                }
                let (mut tried16, mut tried_float) = (int16.clone(), float.clone());
                let target = if to == Precision::Int16 {
                    &mut tried16
                } else {
                    tried16.retain(|l| !r.layers.contains(l));
                    &mut tried_float
                };
                let new: Vec<String> = r
                    .layers
                    .iter()
                    .filter(|l| !target.contains(l))
                    .cloned()
                    .collect();
                if new.is_empty() {
                    continue;
                }
                target.extend(new);
                let q = with(&tried16, &tried_float)?;
                let score = judge.score(&q.built.bytes)?;
                let kept = judge.met(&score) || sqnr(&score) > sqnr(&best_score);
                let moved = Some((r.tensor.clone(), to));
                steps.push(step(moved, &tried16, &tried_float, &q, score, kept));
                if kept {
                    (int16, float, best_score, best) = (tried16, tried_float, score, Some(q));
                    if judge.met(&best_score) {
                        break 'passes;
                    }
                }
            }
        }
    }
    let chosen = best.unwrap_or(plain);
    let macs = crate::train::filters::macs(graph);
    let search = Search {
        metric: match target {
            Target::Top1 { .. } => "top1",
            Target::Sqnr { .. } => "sqnr",
        },
        target: match target {
            Target::Top1 { max_drop, .. } => *max_drop,
            Target::Sqnr { min_db } => *min_db,
        },
        validation_samples: samples,
        float_top1: judge.float_top1,
        ranking,
        met: judge.met(&best_score),
        chosen_macs: macs_of(&chosen),
        int16_layers: int16,
        float_layers: float,
        macs,
        steps,
    };
    Ok(Controlled {
        quantized: chosen,
        search,
    })
}

/// Each tensor that a layer computes, with the layers that must be in float for it to be: its
/// producer and its readers, reshapes followed to the layers behind them. In graph order.
fn tensor_groups(g: &Graph) -> Vec<(String, Vec<String>)> {
    let pass_through = |op: &Op| matches!(op, Op::Reshape { .. } | Op::Identity);
    let mut groups = Vec::new();
    for n in g.nodes.iter().filter(|n| !pass_through(&n.op)) {
        let mut layers = vec![n.name.clone()];
        let mut values = vec![n.output];
        while let Some(v) = values.pop() {
            for r in g.nodes.iter().filter(|r| r.inputs.contains(&v)) {
                if pass_through(&r.op) {
                    values.push(r.output);
                }
                if !layers.contains(&r.name) {
                    layers.push(r.name.clone());
                }
            }
        }
        groups.push((g.values[n.output].name.clone(), layers));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Clamp, Param};

    /// A tensor's group: its producer and its readers, through reshapes; reshapes head no group.
    #[test]
    fn a_tensor_moves_with_its_producer_and_readers_through_reshapes() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 4]);
        g.inputs.push(x);
        let fc = |out: usize, inp: usize| Op::FullyConnected {
            filter: Param::new(vec![out, inp], vec![0.5; out * inp]),
            bias: Param::new(vec![out], vec![0.0; out]),
            clamp: Clamp::NONE,
        };
        let a = g.add_node("a", "Gemm", fc(6, 4), vec![x], "a_out").unwrap();
        let r = Op::Reshape {
            shape: vec![1, 2, 3],
        };
        let r = g.add_node("r", "Reshape", r, vec![a], "r_out").unwrap();
        let b = g.add_node("b", "Gemm", fc(2, 3), vec![r], "b_out").unwrap();
        let add = Op::Add { clamp: Clamp::NONE };
        let c = g.add_node("c", "Add", add, vec![a, a], "c_out").unwrap();
        g.outputs = vec![b, c];
        let groups = tensor_groups(&g);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            groups,
            vec![
                ("a_out".to_string(), names(&["a", "r", "c", "b"])),
                ("b_out".to_string(), names(&["b"])),
                ("c_out".to_string(), names(&["c"])),
            ]
        );
    }
}
