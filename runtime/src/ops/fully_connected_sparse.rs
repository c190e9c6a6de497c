//! FULLY_CONNECTED_SPARSE: FULLY_CONNECTED, int8, with a pruned filter stored without its zero
//! blocks ([`crate::kernels::sparse`]); it runs as a 1x1 convolution over its batches.

use serde::{Deserialize, Serialize};

use super::conv_2d_sparse::validate_mask;
use super::fully_connected::FullyConnected;
use crate::format::Operand;
use crate::interpreter::{le_i32, output_quant, Views, CORRUPT};
use crate::kernels::sparse::SparseFilter;
use crate::kernels::{self, ConvGeometry, Nhwc};
use crate::validate::{clamp_range, Check, Kind};
use crate::Error;

/// A fully connected layer whose `fc.filter` holds only the stored blocks' weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SparseFullyConnected<'a> {
    /// The layer (int8); `filter` holds the stored blocks, in row order.
    #[serde(borrow)]
    pub fc: FullyConnected<'a>,
    /// Weights per block along a filter row, at least 1.
    pub block: u16,
    /// One bit per block of each row, whether it is stored.
    pub mask: &'a [u8],
}

crate::format::decode_fields!(SparseFullyConnected<'a> { fc, block, mask });

impl super::Operands for SparseFullyConnected<'_> {
    fn inputs(&self, f: &mut dyn FnMut(&Operand) -> Result<(), Error>) -> Result<(), Error> {
        f(&self.fc.input)
    }
    fn output(&self) -> &Operand {
        &self.fc.output
    }
    #[cfg(any(feature = "host", test))]
    fn operands_mut(&mut self, f: &mut dyn FnMut(&mut Operand, bool)) {
        f(&mut self.fc.input, false);
        f(&mut self.fc.output, true);
    }
}

/// `(batches, in_features, out_features)`, or `None` when the shapes disagree.
fn dims(fc: &FullyConnected<'_>) -> Option<(usize, usize, usize)> {
    let out_features = fc.output.shape.last();
    let out_elems = fc.output.shape.elements()?;
    let in_elems = fc.input.shape.elements()?;
    if out_features == 0 || !out_elems.is_multiple_of(out_features) {
        return None;
    }
    let batches = out_elems / out_features;
    if batches == 0 || !in_elems.is_multiple_of(batches) || in_elems == 0 {
        return None;
    }
    Some((batches, in_elems / batches, out_features))
}

impl<'a> SparseFullyConnected<'a> {
    /// The filter as the kernels read it (rows of `in_features`).
    pub fn filter(&self) -> SparseFilter<'a> {
        SparseFilter {
            block: self.block as usize,
            row_len: dims(&self.fc).map_or(0, |(_, in_features, _)| in_features),
            mask: self.mask,
            values: bytemuck::cast_slice(self.fc.filter),
        }
    }
}

pub(crate) fn validate(
    s: &SparseFullyConnected<'_>,
    check: &Check<'_, '_, '_>,
) -> Result<(), Error> {
    let f = &s.fc;
    if check.kind(&f.input, &f.output)? != Kind::Int8 {
        return check.bad("a sparse filter needs int8 operands");
    }
    let Some((_, in_features, out_features)) = dims(f) else {
        return check.bad("input size is not batches x input features");
    };
    let stored = validate_mask(check, s.mask, out_features, in_features, s.block)?;
    check.weights(
        Kind::Int8,
        f.filter,
        f.bias,
        f.multiplier,
        f.shift,
        stored,
        in_features,
        out_features,
    )?;
    clamp_range(f.act_min, f.act_max).map_err(|r| check.fail(r))
}

pub(crate) fn run(s: &SparseFullyConnected<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let f = &s.fc;
    let (batches, in_features, out_features) = dims(f).ok_or(CORRUPT)?;
    let mut v = Views::new(arena, &f.output)?;
    let q = output_quant(
        &f.input,
        &f.output,
        f.act_min,
        f.act_max,
        f.multiplier,
        f.shift,
    )?;
    let g = ConvGeometry {
        input: Nhwc::new(batches, 1, 1, in_features),
        output: Nhwc::new(batches, 1, 1, out_features),
        kernel_h: 1,
        kernel_w: 1,
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: 0,
        pad_left: 0,
    };
    let input = v.i8(&f.input)?;
    kernels::optimized::conv2d_sparse_s8(&g, &q, input, &s.filter(), le_i32(f.bias)?, v.out_i8());
    Ok(())
}
