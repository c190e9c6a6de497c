//! Pruned int8 filters stored without their zero blocks, and the reference convolution over them.
//!
//! A filter is `rows` rows (one per output channel) of `row_len` weights in the dense kernel's
//! order (Conv2D `[kh, kw, in_c]`, FullyConnected `[in]`). Each row is cut into blocks of `block`
//! weights (the last one shorter when `block` does not divide `row_len`). The mask has
//! `mask_bytes(row_len, block)` bytes per row, bit `j % 8` of byte `j / 8` (least significant
//! first) set when block `j` is stored, unused high bits clear; the values are the stored blocks'
//! weights, row after row, block after block. A block of zeros need not be stored; a stored block
//! may hold zeros.

use super::conv2d::{input_coord, requantize_acc};
use super::{ConvGeometry, LeI32, OutputQuant};

/// A pruned filter (see the module documentation). Checked at load: `values.len()` is the stored
/// weights `mask` describes.
#[derive(Clone, Copy, Debug)]
pub struct SparseFilter<'a> {
    /// Weights per block, at least 1.
    pub block: usize,
    /// Weights per row.
    pub row_len: usize,
    /// `mask_bytes(row_len, block)` bytes per row.
    pub mask: &'a [u8],
    /// The stored blocks' weights.
    pub values: &'a [i8],
}

/// Mask bytes per row: one bit per block.
pub fn mask_bytes(row_len: usize, block: usize) -> usize {
    row_len.div_ceil(block.max(1)).div_ceil(8)
}

/// The weights a mask stores for `rows` rows of `row_len` weights in blocks of `block`, or `None`
/// when the mask has the wrong length or sets a bit past a row's last block.
pub fn stored_weights(mask: &[u8], rows: usize, row_len: usize, block: usize) -> Option<usize> {
    if block == 0 {
        return None;
    }
    let blocks = row_len.div_ceil(block);
    let per_row = blocks.div_ceil(8);
    if Some(mask.len()) != rows.checked_mul(per_row) || (rows > 0 && per_row == 0) {
        return None;
    }
    // Bits past the row's last block in its last mask byte must be clear.
    let unused = if blocks.is_multiple_of(8) {
        0
    } else {
        0xffu8 << (blocks % 8)
    };
    let last_len = row_len - (blocks.saturating_sub(1)) * block;
    let mut total = 0usize;
    for row in mask.chunks_exact(per_row.max(1)) {
        let last = row[per_row - 1];
        if last & unused != 0 {
            return None;
        }
        let set: usize = row.iter().map(|b| b.count_ones() as usize).sum();
        let last_set = usize::from(last >> ((blocks - 1) % 8) & 1 == 1);
        total += (set - last_set) * block + last_set * last_len;
    }
    Some(total)
}

impl SparseFilter<'_> {
    /// Mask bytes per row.
    pub fn mask_per_row(&self) -> usize {
        mask_bytes(self.row_len, self.block)
    }

    /// Calls `f(first, weights)` for each stored block of the row whose mask is `mask` and whose
    /// values start `values` (its first weight's index in the row and its weights, in order), and
    /// returns the weights it used.
    #[inline(always)]
    pub fn for_each_block(
        &self,
        mask: &[u8],
        values: &[i8],
        mut f: impl FnMut(usize, &[i8]),
    ) -> usize {
        let mut used = 0;
        for (byte, &m) in mask.iter().enumerate() {
            let mut m = m;
            while m != 0 {
                let j = byte * 8 + m.trailing_zeros() as usize;
                m &= m - 1;
                let first = j * self.block;
                let len = self.block.min(self.row_len - first);
                f(first, &values[used..used + len]);
                used += len;
            }
        }
        used
    }

    /// The dense row-major filter (tests and tools).
    #[cfg(any(test, feature = "host"))]
    pub fn densify(&self) -> std::vec::Vec<i8> {
        let rows = self.mask.len() / self.mask_per_row().max(1);
        let mut dense = std::vec![0i8; rows * self.row_len];
        let mut start = 0;
        for (r, mask) in self
            .mask
            .chunks_exact(self.mask_per_row().max(1))
            .enumerate()
        {
            let row = &mut dense[r * self.row_len..][..self.row_len];
            start += self.for_each_block(mask, &self.values[start..], |first, w| {
                row[first..first + w.len()].copy_from_slice(w);
            });
        }
        dense
    }
}

/// Int8 2-D convolution with a pruned filter: the same result, bit for bit, as
/// [`super::conv2d::conv2d_s8`] on the dense filter (rows of `kernel_h * kernel_w * in_c`).
/// A FullyConnected layer is the 1x1 case with its batches as positions.
pub fn conv2d_sparse_s8(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &SparseFilter<'_>,
    bias: LeI32<'_>,
    output: &mut [i8],
) {
    let (in_c, kw) = (g.input.c, g.kernel_w);
    let per_row = filter.mask_per_row();
    let mut start = 0;
    for oc in 0..g.output.c {
        let mask = &filter.mask[oc * per_row..][..per_row];
        let values = &filter.values[start..];
        for n in 0..g.output.n {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    let mut acc: i32 = 0;
                    filter.for_each_block(mask, values, |first, w| {
                        for (i, &w) in (first..).zip(w) {
                            let (ky, kx, ic) = (i / (kw * in_c), i / in_c % kw, i % in_c);
                            let iy =
                                input_coord(oy, g.stride_h, ky, g.dilation_h, g.pad_top, g.input.h);
                            let ix = input_coord(
                                ox,
                                g.stride_w,
                                kx,
                                g.dilation_w,
                                g.pad_left,
                                g.input.w,
                            );
                            if let (Some(iy), Some(ix)) = (iy, ix) {
                                let x = input[g.input.index(n, iy, ix, ic)] as i32;
                                acc = acc.wrapping_add(w as i32 * (x + q.input_offset));
                            }
                        }
                    });
                    if !bias.is_empty() {
                        acc = acc.wrapping_add(bias.get(oc));
                    }
                    output[g.output.index(n, oy, ox, oc)] = requantize_acc(q, acc, oc);
                }
            }
        }
        start += filter.for_each_block(mask, values, |_, _| {});
    }
}

/// A filter's sparse encoding (see the module documentation).
#[cfg(any(test, feature = "host"))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Weights per block.
    pub block: usize,
    /// One bit per block of each row.
    pub mask: std::vec::Vec<u8>,
    /// The stored blocks' weights.
    pub values: std::vec::Vec<i8>,
}

/// The encoding of a dense row-major filter (rows of `row_len` weights, at least one) in blocks of
/// `block` weights (at least one): every block holding a nonzero weight is stored.
#[cfg(any(test, feature = "host"))]
pub fn encode_blocks(dense: &[i8], row_len: usize, block: usize) -> Encoded {
    let per_row = mask_bytes(row_len, block);
    let mut mask = std::vec::Vec::with_capacity(dense.len() / row_len * per_row);
    let mut values = std::vec::Vec::new();
    for row in dense.chunks_exact(row_len) {
        let mut bits = std::vec![0u8; per_row];
        for (j, w) in row.chunks(block).enumerate() {
            if w.iter().any(|&v| v != 0) {
                bits[j / 8] |= 1 << (j % 8);
                values.extend_from_slice(w);
            }
        }
        mask.extend_from_slice(&bits);
    }
    Encoded {
        block,
        mask,
        values,
    }
}

/// The smallest encoding of a dense row-major filter (rows of `row_len` weights) among the block
/// sizes `blocks`, when it is smaller than the dense filter; equal sizes go to the larger block
/// (fewer mask bits to walk).
#[cfg(any(test, feature = "host"))]
pub fn encode(dense: &[i8], row_len: usize, blocks: &[usize]) -> Option<Encoded> {
    if row_len == 0 || dense.is_empty() || !dense.len().is_multiple_of(row_len) {
        return None;
    }
    let size = |e: &Encoded| e.mask.len() + e.values.len();
    let mut best: Option<Encoded> = None;
    for &block in blocks.iter().filter(|&&b| b > 0) {
        let e = encode_blocks(dense, row_len, block);
        let best_size = best.as_ref().map_or(dense.len(), size);
        if size(&e) < best_size || (size(&e) == best_size && best.is_some()) {
            best = Some(e);
        }
    }
    best
}
