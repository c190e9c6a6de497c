//! The top-1 class of an output row: the position of its largest value, the first of ties (as
//! numpy's `argmax`; int8 outputs often tie). One definition for `eval`, `run`, training's
//! validation and the tests.

use crate::npy::Array;

/// The position of the largest value of `row`, the first of ties (a NaN is never larger than
/// anything).
pub fn argmax<T: PartialOrd>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// [`argmax`] of each row of `a` (its first dimension), its values read as f64.
pub fn argmax_rows(a: &Array) -> Vec<usize> {
    let per = a.shape.iter().skip(1).product::<usize>().max(1);
    let values: Vec<f64> = (0..a.len()).map(|i| a.get_f64(i)).collect();
    values.chunks(per).map(argmax).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_first() {
        let a = Array::from_i8(vec![2, 3], &[1, 5, 5, 7, 7, -3]);
        assert_eq!(argmax_rows(&a), [1, 0]);
        assert_eq!(argmax(&[1.0, f32::NAN, 2.0, 2.0]), 2);
        assert_eq!(argmax::<f32>(&[]), 0);
    }
}
