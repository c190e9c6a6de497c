//! Training losses over a batch `[batch, features]` (features: every dimension after the batch), each
//! the batch mean, with its gradient.
//!
//! - Cross-entropy of `softmax(beta * logits)` against class ids (labels) or against probabilities
//!   (the float model's softmax output, when distilling a classifier).
//! - Mean squared error against the float model's outputs (distilling anything else).
//! - With labels, cross-entropy blended with the float model's softened probabilities (knowledge
//!   distillation, Hinton et al. 2015, "Distilling the Knowledge in a Neural Network").

/// What the network's output is compared with.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// One class id per sample.
    Labels(&'a [usize]),
    /// One probability vector per sample (`[batch, classes]`, rows summing to 1).
    Probabilities(&'a [f32]),
    /// The values the output should have (`[batch, features]`).
    Values(&'a [f32]),
}

/// The loss over `batch` samples of `output` and d loss / d output.
/// Labels and probabilities take `output` as logits scaled by `beta`.
pub fn loss(output: &[f32], batch: usize, beta: f32, target: Target<'_>) -> (f64, Vec<f32>) {
    let per = output.len() / batch.max(1);
    let mut d = vec![0f32; output.len()];
    let mut total = 0f64;
    match target {
        Target::Values(t) => {
            let n = output.len().max(1) as f64;
            for ((g, &y), &t) in d.iter_mut().zip(output).zip(t) {
                let e = (y - t) as f64;
                total += e * e;
                *g = (2.0 * e / n) as f32;
            }
            return (total / n, d);
        }
        Target::Labels(_) | Target::Probabilities(_) => {
            for (b, (z, g)) in output.chunks(per).zip(d.chunks_mut(per)).enumerate() {
                let m = z.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(beta * x));
                let sum: f64 = z.iter().map(|&x| ((beta * x - m) as f64).exp()).sum();
                let log_sum = sum.ln() + m as f64;
                for (k, (gk, &zk)) in g.iter_mut().zip(z).enumerate() {
                    let p = ((beta * zk) as f64 - log_sum).exp();
                    let t = match target {
                        Target::Labels(l) => (l[b] == k) as u8 as f64,
                        Target::Probabilities(t) => t[b * per + k] as f64,
                        Target::Values(_) => unreachable!(),
                    };
                    if t > 0.0 {
                        total -= t * ((beta * zk) as f64 - log_sum);
                    }
                    *gk = (beta as f64 * (p - t) / batch as f64) as f32;
                }
            }
        }
    }
    (total / batch.max(1) as f64, d)
}

/// How training with labels blends in the float model (see [`labels_and_teacher`]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LabelDistillation {
    /// Weight of the float model's term, in `[0, 1]`: 0 is cross-entropy with the labels alone.
    pub weight: f32,
    /// Temperature `T > 0` softening both distributions of that term.
    pub temperature: f32,
}

/// The float model's outputs `teacher` (`[batch, classes]`) softened by `temperature`:
/// `softmax(beta * z / T)` of its logits `z`, or, when the model ends in Softmax and `teacher` holds
/// its probabilities `p`, the same distribution computed as `p^(1 / T)` normalized.
pub fn tempered(
    teacher: &[f32],
    batch: usize,
    beta: f32,
    temperature: f32,
    probabilities: bool,
) -> Vec<f32> {
    let per = teacher.len() / batch.max(1);
    let mut out = teacher.to_vec();
    for row in out.chunks_mut(per.max(1)) {
        // The logarithm of a probability is its logit up to a constant.
        let logit = |v: f32| match probabilities {
            true => (v.max(f32::MIN_POSITIVE) as f64).ln(),
            false => beta as f64 * v as f64,
        };
        let logs: Vec<f64> = row.iter().map(|&v| logit(v) / temperature as f64).collect();
        softmax_into(&logs, row);
    }
    out
}

fn softmax_into(logits: &[f64], out: &mut [f32]) {
    let m = logits.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let sum: f64 = logits.iter().map(|&l| (l - m).exp()).sum();
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = ((l - m).exp() / sum) as f32;
    }
}

/// Cross-entropy with `labels` blended with distillation,
/// `(1 - w) * CE(labels, softmax(beta * z)) + w * T^2 * KL(tempered || softmax(beta * z / T))`,
/// `tempered` from [`tempered`]. The `T^2` keeps the second term's gradient as large as the first's
/// whatever the temperature.
pub fn labels_and_teacher(
    output: &[f32],
    batch: usize,
    beta: f32,
    labels: &[usize],
    tempered: &[f32],
    blend: LabelDistillation,
) -> (f64, Vec<f32>) {
    let LabelDistillation {
        weight: w,
        temperature: t,
    } = blend;
    let (hard, d_hard) = loss(output, batch, beta, Target::Labels(labels));
    if w == 0.0 {
        return (hard, d_hard);
    }
    let (soft, d_soft) = loss(output, batch, beta / t, Target::Probabilities(tempered));
    // Less the softened distribution's own entropy: the Kullback-Leibler divergence, 0 when the
    // model matches the float model (the same gradient), so the loss stays comparable over steps.
    let entropy: f64 = tempered
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| -(p as f64) * (p as f64).ln())
        .sum::<f64>()
        / batch.max(1) as f64;
    let soft = soft - entropy;
    let k = w * t * t;
    let d = d_hard
        .iter()
        .zip(&d_soft)
        .map(|(h, s)| (1.0 - w) * h + k * s)
        .collect();
    ((1.0 - w) as f64 * hard + k as f64 * soft, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_gradient(output: &[f32], batch: usize, beta: f32, target: Target<'_>) {
        let (_, d) = loss(output, batch, beta, target);
        for i in 0..output.len() {
            let h = 1e-3f32;
            let mut up = output.to_vec();
            up[i] += h;
            let mut down = output.to_vec();
            down[i] -= h;
            let num = (loss(&up, batch, beta, target).0 - loss(&down, batch, beta, target).0)
                / (2.0 * h as f64);
            assert!(
                (num - d[i] as f64).abs() < 1e-3,
                "element {i}: {num} vs {}",
                d[i]
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let z = [0.3f32, -1.2, 2.0, 0.1, 0.5, -0.4];
        check_gradient(&z, 2, 1.0, Target::Labels(&[2, 0]));
        check_gradient(&z, 2, 1.7, Target::Labels(&[1, 1]));
        check_gradient(
            &z,
            2,
            1.0,
            Target::Probabilities(&[0.2, 0.3, 0.5, 0.6, 0.4, 0.0]),
        );
        check_gradient(&z, 3, 1.0, Target::Values(&[0.0, 1.0, -1.0, 0.5, 0.5, 2.0]));
    }

    #[test]
    fn blended_gradient_matches_finite_differences() {
        let z = [0.3f32, -1.2, 2.0, 0.1, 0.5, -0.4];
        let teacher = tempered(&[1.0, -0.5, 1.5, 0.2, 0.4, -1.0], 2, 1.7, 4.0, false);
        let blend = LabelDistillation {
            weight: 0.5,
            temperature: 4.0,
        };
        let f = |z: &[f32]| labels_and_teacher(z, 2, 1.7, &[2, 0], &teacher, blend);
        let (_, d) = f(&z);
        for i in 0..z.len() {
            let h = 1e-3f32;
            let (mut up, mut down) = (z.to_vec(), z.to_vec());
            up[i] += h;
            down[i] -= h;
            let num = (f(&up).0 - f(&down).0) / (2.0 * h as f64);
            assert!((num - d[i] as f64).abs() < 1e-3, "{i}: {num} vs {}", d[i]);
        }
        // Weight 0 is cross-entropy with the labels alone.
        let alone = LabelDistillation {
            weight: 0.0,
            ..blend
        };
        assert_eq!(
            labels_and_teacher(&z, 2, 1.7, &[2, 0], &teacher, alone),
            loss(&z, 2, 1.7, Target::Labels(&[2, 0]))
        );
    }

    /// A model ending in Softmax hands over probabilities: softened, they are the distribution its
    /// logits give at the same temperature.
    #[test]
    fn tempered_probabilities_equal_tempered_logits() {
        let logits = [0.3f32, -1.2, 2.0, 0.1, 0.5, -0.4];
        let beta = 1.3;
        let p = tempered(&logits, 2, beta, 1.0, false);
        let sums: Vec<f32> = p.chunks(3).map(|r| r.iter().sum()).collect();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-6), "{sums:?}");
        for t in [1.0, 2.0, 4.0] {
            let a = tempered(&p, 2, beta, t, true);
            let b = tempered(&logits, 2, beta, t, false);
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() < 1e-6, "T {t}: {a} vs {b}");
            }
        }
        // Softer with a higher temperature: the largest probability falls.
        assert!(tempered(&logits, 2, beta, 4.0, false)[2] < p[2]);
    }

    #[test]
    fn cross_entropy_of_a_confident_right_answer_is_small() {
        let (l, _) = loss(&[10.0, -10.0], 1, 1.0, Target::Labels(&[0]));
        assert!(l < 1e-8);
        let (l, _) = loss(&[0.0, 0.0], 1, 1.0, Target::Labels(&[1]));
        assert!((l - 2f64.ln()).abs() < 1e-12);
    }
}
