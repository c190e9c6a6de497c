//! Accuracy-controlled quantization: post-training quantization, then, while the validation metric
//! misses its target, the most sensitive layers kept in float one at a time.
//!
//! The target is on top-1 accuracy (a largest drop from the float model's, in points) or, without
//! labels, on the output SQNR against the float model (a smallest SQNR in dB).
//!
//! What moves is a tensor: its producer and every reader (through reshapes) go to float together, so
//! that the tensor itself is no longer int8 (a layer moved alone still reads and writes int8
//! tensors). Each tensor's sensitivity is measured: the output SQNR of the model with that tensor
//! alone in float, on the whole validation set.
//!
//! The ranking reverts layers of the post-training model to float without quantizing again (as NNCF
//! does): a try costs a lowering and a validation run. Each move of the search quantizes again with
//! the layers in float (ranges chosen and biases corrected with them in float), which a reverted
//! model lacks: reverted, a layer keeps the bias corrected for its int8 weights and its neighbours
//! the ranges chosen for it in int8, and often loses more than it gains. SQNR ranks and judges the moves even when the target is on top-1: it is continuous,
//! where top-1 on a validation set of a few hundred samples moves in steps of a fraction of a point
//! that noise alone can take. The layers are tried in that order; a move that does not raise the
//! SQNR is taken back, unless it meets the target; the search stops as soon as the target holds.
//! Every step is recorded.

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::builder::Built;
use crate::ir::float_exec::Tensor;
use crate::ir::{self, Graph, Op};
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

/// One tensor's sensitivity: the scores with it alone in float.
#[derive(Clone, Debug, Serialize)]
pub struct Ranked {
    /// The tensor.
    pub tensor: String,
    /// The layers that move to float with it: its producer and readers.
    pub layers: Vec<String>,
    pub macs: usize,
    pub score: Score,
}

/// One step of the search.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// The tensor moved to float at this step (`None`: the plain int8 model).
    pub moved: Option<String>,
    /// Every layer in float in the model this step measured.
    pub float_layers: Vec<String>,
    pub score: Score,
    /// Whether the move was kept (a move that does not improve the metric is taken back).
    pub kept: bool,
    pub ferrite_bytes: usize,
    pub arena_bytes: usize,
    /// Multiply-accumulates per sample of the layers in float.
    pub float_macs: usize,
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
    /// The layers in float in the chosen model (beyond `--ignore`).
    pub float_layers: Vec<String>,
    /// Multiply-accumulates per sample in the whole model and in its float layers.
    pub macs: usize,
    pub float_macs: usize,
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

    let with_float = |extra: &[String]| -> Result<Quantized> {
        let mut c = config.clone();
        c.float_nodes.extend(extra.iter().cloned());
        ptq::quantize(graph, calib, &c)
    };
    let macs_of = |names: &[String]| -> usize {
        graph
            .nodes
            .iter()
            .filter(|n| names.contains(&n.name))
            .map(|n| n.op.macs(graph.values[n.output].elements()))
            .sum()
    };
    let step = |moved: Option<String>, float: &[String], built: &Built, score, kept| Step {
        moved,
        float_layers: float.to_vec(),
        score,
        kept,
        ferrite_bytes: built.bytes.len(),
        arena_bytes: built.plan.arena_size,
        float_macs: macs_of(float),
    };

    let plain = with_float(&[])?;
    let plain_score = judge.score(&plain.built.bytes)?;
    let mut steps = vec![step(None, &[], &plain.built, plain_score, true)];
    // The plain model with layers reverted to float.
    let revert = |names: &[String]| -> Result<Built> {
        let mut d = plain.decided.clone();
        for (f, n) in d.float_node.iter_mut().zip(&d.graph.nodes) {
            *f |= names.contains(&n.name);
        }
        ptq::build(&d)
    };
    let mut ranking = Vec::new();
    let mut float: Vec<String> = Vec::new();
    let mut best_score = plain_score;
    let mut best = None;
    if !judge.met(&plain_score) {
        // Each tensor alone in float, measured.
        let already = &plain.report.float_nodes;
        for (tensor, layers) in tensor_groups(graph) {
            let layers: Vec<String> = layers
                .into_iter()
                .filter(|l| !already.contains(l))
                .collect();
            if layers.is_empty() || ranking.iter().any(|r: &Ranked| r.layers == layers) {
                continue;
            }
            let built = revert(&layers)?;
            ranking.push(Ranked {
                tensor,
                macs: macs_of(&layers),
                score: judge.score(&built.bytes)?,
                layers,
            });
        }
        ranking.sort_by(|a, b| sqnr(&b.score).total_cmp(&sqnr(&a.score)));
        // Greedy, in that order, each move kept only if it raises the SQNR.
        for r in &ranking {
            let mut tried = float.clone();
            tried.extend(r.layers.iter().filter(|l| !float.contains(l)).cloned());
            if tried.len() == float.len() {
                continue;
            }
            let q = with_float(&tried)?;
            let score = judge.score(&q.built.bytes)?;
            // A move that meets the target is kept even if the SQNR (which ranks the rest) dips.
            let kept = judge.met(&score) || sqnr(&score) > sqnr(&best_score);
            steps.push(step(Some(r.tensor.clone()), &tried, &q.built, score, kept));
            if kept {
                (float, best_score, best) = (tried, score, Some(q));
                if judge.met(&best_score) {
                    break;
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
        float_macs: macs_of(&float),
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
