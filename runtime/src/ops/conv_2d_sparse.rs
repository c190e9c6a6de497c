//! CONV_2D_SPARSE: CONV_2D, int8, with a pruned filter stored without its zero blocks
//! ([`crate::kernels::sparse`] describes the mask and values).

use serde::{Deserialize, Serialize};

use super::conv_2d::{validate_shapes, validate_weights, Conv};
use crate::format::Operand;
use crate::interpreter::{le_i32, Views};
use crate::kernels::sparse::{stored_weights, SparseFilter};
use crate::kernels::{self};
use crate::validate::{Check, Kind};
use crate::Error;

/// A convolution whose `conv.filter` holds only the stored blocks' weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SparseConv<'a> {
    /// The convolution (int8); `filter` holds the stored blocks, in row order.
    #[serde(borrow)]
    pub conv: Conv<'a>,
    /// Weights per block along a filter row (`[kh, kw, in_c]`), at least 1.
    pub block: u16,
    /// One bit per block of each row, whether it is stored.
    pub mask: &'a [u8],
}

crate::format::decode_fields!(SparseConv<'a> { conv, block, mask });

impl super::Operands for SparseConv<'_> {
    fn inputs(&self, f: &mut dyn FnMut(&Operand) -> Result<(), Error>) -> Result<(), Error> {
        f(&self.conv.input)
    }
    fn output(&self) -> &Operand {
        &self.conv.output
    }
    #[cfg(any(feature = "host", test))]
    fn operands_mut(&mut self, f: &mut dyn FnMut(&mut Operand, bool)) {
        f(&mut self.conv.input, false);
        f(&mut self.conv.output, true);
    }
}

impl<'a> SparseConv<'a> {
    /// The filter as the kernels read it.
    pub fn filter(&self) -> SparseFilter<'a> {
        SparseFilter {
            block: self.block as usize,
            row_len: self.conv.kernel_h as usize
                * self.conv.kernel_w as usize
                * self.conv.input.shape.nhwc().c,
            mask: self.mask,
            values: bytemuck::cast_slice(self.conv.filter),
        }
    }
}

pub(crate) fn validate(s: &SparseConv<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let c = &s.conv;
    let (kind, _, reduction) = validate_shapes(c, check, false)?;
    if kind != Kind::Int8 || c.is_wide() {
        return check.bad("a sparse filter needs int8 operands");
    }
    let rows = c.output.shape.nhwc().c;
    let stored = validate_mask(check, s.mask, rows, reduction, s.block)?;
    validate_weights(c, check, kind, stored, reduction)
}

/// The weights a sparse filter's mask stores, or the operator's error when the mask does not fit
/// `rows` rows of `row_len` weights in blocks of `block`.
pub(crate) fn validate_mask(
    check: &Check<'_, '_, '_>,
    mask: &[u8],
    rows: usize,
    row_len: usize,
    block: u16,
) -> Result<usize, Error> {
    if block == 0 {
        return check.bad("sparse filter with blocks of 0 weights");
    }
    stored_weights(mask, rows, row_len, block as usize)
        .ok_or_else(|| check.fail("sparse filter mask does not match the filter's rows and blocks"))
}

pub(crate) fn run(s: &SparseConv<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let c = &s.conv;
    let mut v = Views::new(arena, &c.output)?;
    let (g, q) = (c.geometry(), c.quant()?);
    let filter = s.filter();
    let input = v.i8(&c.input)?;
    kernels::optimized::conv2d_sparse_s8(&g, &q, input, &filter, le_i32(c.bias)?, v.out_i8());
    Ok(())
}
