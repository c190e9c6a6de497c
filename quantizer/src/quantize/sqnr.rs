//! Signal-to-quantization-noise ratio, the one definition `ferrite eval` and the quantization report
//! share: `10 * log10(sum(ref^2) / sum((x - ref)^2))` in dB over every element compared, accumulated in
//! f64.
//!
//! Identical values have no noise and an infinite SQNR, given as `None` (JSON `null`). A reference
//! that is zero everywhere with a nonzero error gives minus infinity.

/// Running sums of an SQNR measurement.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sqnr {
    /// Sum of the squared reference values.
    pub signal: f64,
    /// Sum of the squared differences.
    pub noise: f64,
}

impl Sqnr {
    /// Adds one compared element.
    pub fn add(&mut self, reference: f64, value: f64) {
        self.signal += reference * reference;
        self.noise += (value - reference) * (value - reference);
    }

    /// Adds pairs of elements.
    pub fn extend(&mut self, pairs: impl IntoIterator<Item = (f64, f64)>) {
        for (r, x) in pairs {
            self.add(r, x);
        }
    }

    /// The ratio in dB; `None` when nothing differs (infinite).
    pub fn db(&self) -> Option<f64> {
        (self.noise > 0.0).then(|| 10.0 * (self.signal / self.noise).log10())
    }
}

/// An SQNR for a table: one decimal, `inf` when identical.
pub fn format_db(db: Option<f64>) -> String {
    db.map_or_else(|| "inf".into(), |d| format!("{d:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_in_db_and_identical_values() {
        let mut s = Sqnr::default();
        s.extend([(1.0, 1.1), (-2.0, -2.0), (3.0, 2.9)]);
        // signal 14, noise 0.02
        assert!((s.db().unwrap() - 10.0 * (14.0f64 / 0.02).log10()).abs() < 1e-9);
        let mut same = Sqnr::default();
        same.extend([(1.0, 1.0), (0.0, 0.0)]);
        assert_eq!(same.db(), None);
        assert_eq!(Sqnr::default().db(), None);
        let mut silent = Sqnr::default();
        silent.add(0.0, 1.0);
        assert_eq!(silent.db(), Some(f64::NEG_INFINITY));
        assert_eq!(format_db(None), "inf");
        assert_eq!(format_db(Some(31.26)), "31.3");
    }
}
