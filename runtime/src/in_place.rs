//! In-place windowed operators: a convolution whose output overlaps its (dying) input runs in bands
//! of output rows, each band written only over input rows that no later band reads.
//!
//! The output sits `shift` bytes before its input (bands run top to bottom) or after it (bottom to
//! top). Each band's output bytes and the input rows it reads are disjoint, so every kernel runs on
//! ordinary non-overlapping slices; [`Rows::min_shift`] is the smallest shift that allows bands of one row.
//! Some convolutions need no bands: their kernels run in one pass over one buffer
//! (`Conv::runs_shifted`, `Conv::runs_over_input`).

use core::ops::Range;

use crate::format::Operand;
use crate::interpreter::{band_views, Views};
use crate::kernels::ConvGeometry;
use crate::Error;

/// What banding needs of an operator: its rows and how output rows map to input rows (batch 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rows {
    /// Input rows (H).
    pub input: usize,
    /// Output rows (H).
    pub output: usize,
    /// Bytes of one input row (W x C x element size).
    pub input_bytes: usize,
    /// Bytes of one output row.
    pub output_bytes: usize,
    /// Stride along H.
    pub stride: usize,
    /// Padding rows above the input.
    pub pad_top: usize,
    /// Input rows one output row spans: `(kernel_h - 1) x dilation_h + 1`.
    pub span: usize,
}

/// One band of output rows and the input rows it reads (rows outside them are padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Band {
    /// Output rows computed.
    pub output: Range<usize>,
    /// Input rows read.
    pub input: Range<usize>,
    /// Padding rows above `input` as this band sees it.
    pub pad_top: usize,
}

/// Which way the output is shifted against its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The output starts `shift` bytes before the input; bands run top to bottom.
    Before,
    /// The output starts `shift` bytes after the input; bands run bottom to top.
    After,
}

/// How an operator runs: whole (`None`), or in bands of these rows on this side of its input.
pub(crate) type Banding = Option<(Rows, (Direction, usize))>;

/// The direction and shift of an output at offset `y` over its source at offset `x`.
pub fn side(x: usize, y: usize) -> (Direction, usize) {
    if y <= x {
        (Direction::Before, x - y)
    } else {
        (Direction::After, y - x)
    }
}

/// Whether two operands' bytes overlap.
pub fn overlaps(x: &Operand, y: &Operand) -> bool {
    let len = |o: &Operand| o.shape.elements().unwrap_or(0) * o.dtype.size();
    let (a, b) = (x.offset as usize, y.offset as usize);
    b < a + len(x) && a < b + len(y)
}

impl Rows {
    /// The rows of a windowed operator of geometry `g` whose output row reads `span` input rows,
    /// with elements of `input_size` and `output_size` bytes.
    pub fn windowed(g: &ConvGeometry, span: usize, input_size: usize, output_size: usize) -> Rows {
        Rows {
            input: g.input.h,
            output: g.output.h,
            input_bytes: g.input.w * g.input.c * input_size,
            output_bytes: g.output.w * g.output.c * output_size,
            stride: g.stride_h,
            pad_top: g.pad_top,
            span,
        }
    }

    /// Whether bands of at least one row fit at this side and shift (checked at load).
    pub fn fits(&self, (direction, shift): (Direction, usize)) -> bool {
        self.bands(direction, shift, |_| Some(())).is_some()
    }

    /// First input row read by output row `a` (clamped to the input).
    fn first_read(&self, a: usize) -> usize {
        (a * self.stride)
            .saturating_sub(self.pad_top)
            .min(self.input)
    }

    /// One past the last input row read by output rows `..b` (`b` at least 1).
    fn end_read(&self, b: usize) -> usize {
        ((b - 1) * self.stride + self.span)
            .saturating_sub(self.pad_top)
            .min(self.input)
    }

    fn band(&self, output: Range<usize>) -> Option<Band> {
        let input = self.first_read(output.start)..self.end_read(output.end);
        if input.is_empty() {
            return None;
        }
        let pad_top = input.start + self.pad_top - output.start * self.stride;
        Some(Band {
            output,
            input,
            pad_top,
        })
    }

    /// The smallest shift, a multiple of `align`, at which bands of one output row can run in
    /// `direction`; `None` when some output row reads no input row.
    pub fn min_shift(&self, direction: Direction, align: usize) -> Option<usize> {
        let mut shift = 0usize;
        for a in 0..self.output {
            self.band(a..a + 1)?;
            let need = match direction {
                // Writing row `a` must end before the first input row it reads.
                Direction::Before => ((a + 1) * self.output_bytes)
                    .saturating_sub(self.first_read(a) * self.input_bytes),
                // Writing row `a` must start after the last input row rows `..=a` read.
                Direction::After => {
                    (self.end_read(a + 1) * self.input_bytes).saturating_sub(a * self.output_bytes)
                }
            };
            shift = shift.max(need);
        }
        Some(shift.div_ceil(align.max(1)) * align.max(1))
    }

    /// Calls `f` with every band, in execution order, for an output `shift` bytes before or after
    /// its input, each band as long as the shift allows; `None` when some band would be empty.
    pub fn bands(
        &self,
        direction: Direction,
        shift: usize,
        mut f: impl FnMut(&Band) -> Option<()>,
    ) -> Option<()> {
        let (rows_in, rows_out) = (self.input_bytes, self.output_bytes.max(1));
        match direction {
            Direction::Before => {
                let mut a = 0;
                while a < self.output {
                    let limit = (shift + self.first_read(a) * rows_in) / rows_out;
                    let b = limit.min(self.output);
                    if b <= a {
                        return None;
                    }
                    f(&self.band(a..b)?)?;
                    a = b;
                }
            }
            Direction::After => {
                let mut b = self.output;
                while b > 0 {
                    let need = (self.end_read(b) * rows_in).saturating_sub(shift);
                    let a = need.div_ceil(rows_out);
                    if a >= b {
                        return None;
                    }
                    f(&self.band(a..b)?)?;
                    b = a;
                }
            }
        }
        Some(())
    }
}

/// How a windowed operator (convolution or pooling) runs: `Ok(None)` when its output does not
/// overlap its input (or the runtime was built without `in-place`), the bands' direction and shift
/// when it does, `Err` when it cannot run in place (a batch above 1). Whether the bands fit is checked at
/// load ([`Rows::fits`]).
pub(crate) fn windowed(
    input: &Operand,
    output: &Operand,
) -> Result<Option<(Direction, usize)>, ()> {
    // Without `in-place` the loader refused every overlap (the kernels' views refuse it again).
    if !cfg!(feature = "in-place") || !overlaps(input, output) {
        return Ok(None);
    }
    if input.shape.nhwc().n != 1 {
        return Err(());
    }
    Ok(Some(side(input.offset as usize, output.offset as usize)))
}

/// A windowed operator's kernel on one band: its geometry, input bytes and output bytes.
pub(crate) type WindowKernel<'k> =
    dyn FnMut(&ConvGeometry, &[u8], &mut [u8]) -> Result<(), Error> + 'k;

/// Runs `kernel` on a windowed operator of geometry `g`, whole or, when its output overlaps its
/// input ([`windowed`]), band by band, each call with its geometry, input bytes and output bytes.
/// Inlined, so that the whole-tensor call is a direct call from the operator (no frame between it
/// and the kernel); the bands run out of line. `rows` gives the bands' rows (computed only for bands).
#[inline(always)]
pub(crate) fn run_windowed(
    arena: &mut [u8],
    input: &Operand,
    output: &Operand,
    g: &ConvGeometry,
    rows: impl FnOnce() -> Rows,
    kernel: &mut WindowKernel<'_>,
) -> Result<(), Error> {
    let corrupt = crate::interpreter::CORRUPT;
    match windowed(input, output).map_err(|()| corrupt)? {
        None => {
            let v = Views::new(arena, output)?;
            kernel(g, v.bytes(input)?, v.out)
        }
        #[cfg(feature = "in-place")]
        Some((direction, shift)) => {
            run_bands(arena, input, output, g, &rows(), (direction, shift), kernel)
        }
        #[cfg(not(feature = "in-place"))]
        Some(_) => {
            let _ = rows;
            Err(corrupt)
        }
    }
}

#[cfg(feature = "in-place")]
#[inline(never)]
fn run_bands(
    arena: &mut [u8],
    input: &Operand,
    output: &Operand,
    g: &ConvGeometry,
    rows: &Rows,
    side: (Direction, usize),
    kernel: &mut WindowKernel<'_>,
) -> Result<(), Error> {
    let (x, y) = (input.offset as usize, output.offset as usize);
    each_band(arena, rows, side, [x], y, |band, w, [r]| {
        let mut bg = *g;
        bg.input.h = band.input.len();
        bg.output.h = band.output.len();
        bg.pad_top = band.pad_top;
        kernel(&bg, r, w)
    })
}

/// Calls `kernel` with each band, its output bytes (the output at offset `write`) and its input
/// rows' bytes in each tensor at the offsets `reads`; stops at an error, or at a band that does not
/// fit (which the load checks rule out).
pub(crate) fn each_band<const N: usize>(
    arena: &mut [u8],
    rows: &Rows,
    (direction, shift): (Direction, usize),
    reads: [usize; N],
    write: usize,
    mut kernel: impl FnMut(&Band, &mut [u8], [&[u8]; N]) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut result = Ok(());
    let walked = rows.bands(direction, shift, |band| {
        let read = |at: usize| {
            at + band.input.start * rows.input_bytes..at + band.input.end * rows.input_bytes
        };
        let out = write + band.output.start * rows.output_bytes
            ..write + band.output.end * rows.output_bytes;
        result = band_views(arena, out, reads.map(read)).and_then(|(w, r)| kernel(band, w, r));
        result.ok()
    });
    result?;
    walked.ok_or(crate::interpreter::CORRUPT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn dw3x3(h: usize, row: usize) -> Rows {
        Rows {
            input: h,
            output: h,
            input_bytes: row,
            output_bytes: row,
            stride: 1,
            pad_top: 1,
            span: 3,
        }
    }

    /// Bands cover every output row once, never overlap the input rows still to be read, and give
    /// each output row the input rows (and padding) it reads.
    fn check(r: &Rows, direction: Direction, shift: usize) {
        let mut covered = vec![false; r.output];
        let mut read_from = if direction == Direction::Before {
            0
        } else {
            usize::MAX
        };
        r.bands(direction, shift, |b| {
            for o in b.output.clone() {
                assert!(!covered[o]);
                covered[o] = true;
            }
            // Input byte ranges relative to the input's start; the output's start is -shift or +shift.
            let in_lo = (b.input.start * r.input_bytes) as isize;
            let in_hi = (b.input.end * r.input_bytes) as isize;
            let s = shift as isize;
            let (out_lo, out_hi) = match direction {
                Direction::Before => (
                    (b.output.start * r.output_bytes) as isize - s,
                    (b.output.end * r.output_bytes) as isize - s,
                ),
                Direction::After => (
                    (b.output.start * r.output_bytes) as isize + s,
                    (b.output.end * r.output_bytes) as isize + s,
                ),
            };
            assert!(
                out_hi <= in_lo || in_hi <= out_lo,
                "band overlaps its input"
            );
            match direction {
                Direction::Before => {
                    assert!(b.input.start >= read_from);
                    read_from = b.input.start;
                    assert!(out_hi <= in_lo);
                }
                Direction::After => {
                    assert!(b.input.end <= read_from);
                    read_from = b.input.end;
                    assert!(out_lo >= in_hi);
                }
            }
            let first = b.output.start * r.stride;
            assert_eq!(b.input.start + r.pad_top - b.pad_top, first);
            Some(())
        })
        .expect("bands");
        assert!(covered.iter().all(|&c| c));
    }

    #[test]
    fn minimal_shifts_give_bands_in_both_directions() {
        for h in 1..12 {
            for row in [1, 5, 64, 320] {
                let r = dw3x3(h, row);
                for d in [Direction::Before, Direction::After] {
                    let s = r.min_shift(d, 1).unwrap();
                    check(&r, d, s);
                    check(&r, d, s + row * 3);
                    if s > 0 && h > 2 {
                        assert!(r.bands(d, s - 1, |_| Some(())).is_none(), "{h} {row} {d:?}");
                    }
                }
            }
        }
        // A 3x3 same convolution needs two rows of room either way.
        assert_eq!(dw3x3(10, 320).min_shift(Direction::Before, 1), Some(640));
        assert_eq!(dw3x3(10, 320).min_shift(Direction::After, 1), Some(640));
    }

    #[test]
    fn strided_and_channel_changing_layers_band() {
        // Stride 2, 3x3, pad 1, channels doubled: 16 rows of 8 bytes to 8 rows of 8 bytes.
        let r = Rows {
            input: 16,
            output: 8,
            input_bytes: 8,
            output_bytes: 8,
            stride: 2,
            pad_top: 1,
            span: 3,
        };
        for d in [Direction::Before, Direction::After] {
            let s = r.min_shift(d, 16).unwrap();
            assert_eq!(s % 16, 0);
            check(&r, d, s);
        }
        // A pointwise layer reads its own row only.
        let pw = Rows {
            input: 25,
            output: 25,
            input_bytes: 320,
            output_bytes: 320,
            stride: 1,
            pad_top: 0,
            span: 1,
        };
        assert_eq!(pw.min_shift(Direction::Before, 16), Some(320));
        check(&pw, Direction::Before, 320);
        check(
            &pw,
            Direction::After,
            pw.min_shift(Direction::After, 16).unwrap(),
        );
    }

    #[test]
    fn rows_reading_only_padding_cannot_band() {
        let r = Rows {
            input: 2,
            output: 6,
            input_bytes: 4,
            output_bytes: 4,
            stride: 1,
            pad_top: 0,
            span: 1,
        };
        assert_eq!(r.min_shift(Direction::Before, 1), None);
    }
}
