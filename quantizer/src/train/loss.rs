//! Training losses over a batch `[batch, features]` (features: every dimension after the batch), each
//! the batch mean, with its gradient.
//!
//! - Cross-entropy of `softmax(beta * logits)` against class ids (labels) or against probabilities
//!   (the float model's softmax output, when distilling a classifier).
//! - Mean squared error against the float model's outputs (distilling anything else).

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
    fn cross_entropy_of_a_confident_right_answer_is_small() {
        let (l, _) = loss(&[10.0, -10.0], 1, 1.0, Target::Labels(&[0]));
        assert!(l < 1e-8);
        let (l, _) = loss(&[0.0, 0.0], 1, 1.0, Target::Labels(&[1]));
        assert!((l - 2f64.ln()).abs() < 1e-12);
    }
}
