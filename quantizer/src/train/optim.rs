//! Optimizers over flat parameter arrays: Adam (Kingma & Ba 2015) and SGD with momentum, and the
//! cosine learning-rate schedule.

/// Which update rule. Serialized as `ferrite train --optimizer` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Adam,
    /// SGD with momentum 0.9.
    Sgd,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;
const MOMENTUM: f64 = 0.9;

/// The state of one parameter array.
#[derive(Clone, Debug, Default)]
pub struct Slot {
    m: Vec<f64>,
    v: Vec<f64>,
}

/// One optimizer over any number of parameter arrays (one [`Slot`] each, created on first use).
#[derive(Clone, Debug)]
pub struct Optimizer {
    kind: Kind,
    step: u64,
}

impl Optimizer {
    pub fn new(kind: Kind) -> Optimizer {
        Optimizer { kind, step: 0 }
    }

    /// Starts a step: every [`Self::update`] until the next call belongs to it.
    pub fn begin_step(&mut self) {
        self.step += 1;
    }

    /// Moves `params` against `grads` with learning rate `lr`.
    pub fn update(&self, slot: &mut Slot, lr: f64, params: &mut [f32], grads: &[f64]) {
        if slot.m.len() != params.len() {
            slot.m = vec![0.0; params.len()];
            slot.v = vec![0.0; params.len()];
        }
        let t = self.step.max(1) as i32;
        match self.kind {
            Kind::Adam => {
                let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
                for (((p, &g), m), v) in params
                    .iter_mut()
                    .zip(grads)
                    .zip(&mut slot.m)
                    .zip(&mut slot.v)
                {
                    *m = BETA1 * *m + (1.0 - BETA1) * g;
                    *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                    let step = lr * (*m / c1) / ((*v / c2).sqrt() + EPSILON);
                    *p = (*p as f64 - step) as f32;
                }
            }
            Kind::Sgd => {
                for ((p, &g), m) in params.iter_mut().zip(grads).zip(&mut slot.m) {
                    *m = MOMENTUM * *m + g;
                    *p = (*p as f64 - lr * *m) as f32;
                }
            }
        }
    }
}

/// Cosine decay from `base` at step 0 to 0 at `total` steps.
pub fn cosine(base: f64, step: usize, total: usize) -> f64 {
    if total == 0 {
        return base;
    }
    let t = (step as f64 / total as f64).min(1.0);
    base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimizes `sum (p - target)^2` and checks both rules converge.
    fn converges(kind: Kind, lr: f64) {
        let target = [1.5f32, -0.25, 3.0];
        let mut p = [0f32; 3];
        let mut opt = Optimizer::new(kind);
        let mut slot = Slot::default();
        for step in 0..2000 {
            opt.begin_step();
            let lr = cosine(lr, step, 2000);
            let g: Vec<f64> = p
                .iter()
                .zip(&target)
                .map(|(&a, &b)| 2.0 * (a - b) as f64)
                .collect();
            opt.update(&mut slot, lr, &mut p, &g);
        }
        for (a, b) in p.iter().zip(&target) {
            assert!((a - b).abs() < 1e-3, "{kind:?}: {p:?}");
        }
    }

    #[test]
    fn adam_and_sgd_reach_a_quadratic_minimum() {
        converges(Kind::Adam, 0.01);
        converges(Kind::Sgd, 0.01);
    }

    #[test]
    fn cosine_schedule_ends_at_zero() {
        assert_eq!(cosine(0.1, 0, 100), 0.1);
        assert!((cosine(0.1, 50, 100) - 0.05).abs() < 1e-12);
        assert!(cosine(0.1, 100, 100).abs() < 1e-12);
    }
}
