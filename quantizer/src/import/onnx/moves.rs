//! Data movement followed element by element: chains of Unsqueeze, Squeeze, Reshape, Flatten,
//! Transpose, Tile and Expand through tensors of any rank. Keras's `UpSampling2D` reaches ONNX as
//! rank-5 Tiles and PyTorch's `PixelShuffle` as a rank-6 Transpose; the IR has neither, but it has
//! what they compute. The importer follows such a chain on element indices and, where its result
//! is read, recognizes it as one IR operator ([`recognize`]) or a transpose ([`transpose_of`]), or
//! refuses it.

use std::rc::Rc;

use anyhow::{ensure, Context, Result};

use super::proto::NodeProto;
use crate::ir::{Op, SourceLayout};

/// Most elements a followed chain may hold (a microcontroller's tensors are far smaller).
const MAX_ELEMENTS: usize = 1 << 24;

/// An activation computed from another by data movement alone.
#[derive(Clone, Debug)]
pub(super) struct Moved {
    /// The activation the elements come from.
    pub src: crate::ir::ValueId,
    /// This value's ONNX dims.
    pub dims: Vec<usize>,
    /// For each element of this value (row-major over `dims`), the index of the source element it
    /// holds (row-major over the source's ONNX dims); shared by the values of a chain that only
    /// change its dims.
    pub from: Rc<[u32]>,
    /// The operators followed, as `Op \`node\``, for messages.
    pub path: Vec<String>,
    /// Why the IR's own glue refused the first step, if it did.
    pub why: Option<String>,
    /// The last node followed, its label and the name of its input (to place the chain in two
    /// parts when it cannot be placed whole).
    pub last: Option<Box<(NodeProto, String, String)>>,
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Every element of `dims` in row-major order mapped by `f` from its coordinates.
fn each<C: FromIterator<u32>>(dims: &[usize], mut f: impl FnMut(&[usize]) -> u32) -> C {
    let total: usize = dims.iter().product();
    let mut at = vec![0; dims.len()];
    (0..total)
        .map(|_| {
            let v = f(&at);
            for a in (0..dims.len()).rev() {
                at[a] += 1;
                if at[a] < dims[a] {
                    break;
                }
                at[a] = 0;
            }
            v
        })
        .collect()
}

impl Moved {
    /// `src` as it is, with ONNX dims `dims`.
    pub fn start(src: crate::ir::ValueId, dims: &[usize]) -> Result<Moved> {
        let total: usize = dims.iter().product();
        ensure!(
            total <= MAX_ELEMENTS,
            "{total} elements are too many to follow"
        );
        Ok(Moved {
            src,
            dims: dims.to_vec(),
            from: (0..total as u32).collect(),
            path: Vec::new(),
            why: None,
            last: None,
        })
    }

    /// The same elements in the same order, seen with `dims`.
    pub fn reshape(mut self, dims: Vec<usize>) -> Result<Moved> {
        ensure!(
            dims.iter().product::<usize>() == self.from.len(),
            "{dims:?} does not hold the {} elements of {:?}",
            self.from.len(),
            self.dims
        );
        self.dims = dims;
        Ok(self)
    }

    /// ONNX `Transpose` by `perm`.
    pub fn transpose(self, perm: &[usize]) -> Result<Moved> {
        let mut sorted = perm.to_vec();
        sorted.sort_unstable();
        ensure!(
            sorted == (0..self.dims.len()).collect::<Vec<_>>(),
            "perm {perm:?} for rank {}",
            self.dims.len()
        );
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims[p]).collect();
        let st = strides(&self.dims);
        let from = each(&dims, |at| {
            let i: usize = at.iter().zip(perm).map(|(&a, &p)| a * st[p]).sum();
            self.from[i]
        });
        Ok(Moved { dims, from, ..self })
    }

    /// ONNX `Tile`: each axis repeated `repeats` times.
    pub fn tile(self, repeats: &[i64]) -> Result<Moved> {
        ensure!(
            repeats.len() == self.dims.len() && repeats.iter().all(|&r| r >= 1),
            "repeats {repeats:?} for {:?} (one positive count per axis)",
            self.dims
        );
        let dims: Vec<usize> = self
            .dims
            .iter()
            .zip(repeats)
            .map(|(&d, &r)| usize::try_from(r).ok().and_then(|r| d.checked_mul(r)))
            .collect::<Option<_>>()
            .with_context(|| format!("repeats {repeats:?} of {:?} overflow", self.dims))?;
        self.broadcast(dims)
    }

    /// ONNX `Expand` to `shape` (broadcasting both ways, as NumPy does).
    pub fn expand(self, shape: &[i64]) -> Result<Moved> {
        let rank = self.dims.len().max(shape.len());
        let pad = |d: &[usize]| -> Vec<usize> {
            let mut p = vec![1; rank - d.len()];
            p.extend_from_slice(d);
            p
        };
        let shape: Vec<usize> = shape
            .iter()
            .map(|&s| usize::try_from(s).ok())
            .collect::<Option<_>>()
            .with_context(|| format!("Expand to {shape:?}: negative dimension"))?;
        let (a, b) = (pad(&self.dims), pad(&shape));
        let mut dims = Vec::with_capacity(rank);
        for (&x, &y) in a.iter().zip(&b) {
            ensure!(
                x == y || x == 1 || y == 1,
                "{:?} does not broadcast to {shape:?}",
                self.dims
            );
            dims.push(if x == 1 { y } else { x });
        }
        Moved { dims: a, ..self }.broadcast(dims)
    }

    /// Each output coordinate read from the input coordinate modulo the input's dims (Tile, and
    /// Expand where the input's dim is 1).
    fn broadcast(self, dims: Vec<usize>) -> Result<Moved> {
        let total = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        ensure!(
            total.is_some_and(|t| t <= MAX_ELEMENTS),
            "{dims:?} holds too many elements to follow"
        );
        let st = strides(&self.dims);
        let from = each(&dims, |at| {
            let i: usize = at
                .iter()
                .zip(&self.dims)
                .zip(&st)
                .map(|((&a, &d), &s)| (a % d) * s)
                .sum();
            self.from[i]
        });
        Ok(Moved { dims, from, ..self })
    }
}

/// For each element of a value in its ONNX order, its index in the IR's order, for a value of
/// layout `layout` and IR shape `ir`.
pub(super) fn onnx_to_ir(layout: SourceLayout, ir: &[usize]) -> Vec<u32> {
    let nhwc = |n: usize, h: usize, w: usize, c: usize| {
        each(&[n, c, h, w], |a| {
            (((a[0] * h + a[2]) * w + a[3]) * c + a[1]) as u32
        })
    };
    match layout {
        SourceLayout::Nchw => nhwc(ir[0], ir[1], ir[2], ir[3]),
        SourceLayout::Ncl => nhwc(ir[0], 1, ir[2], ir[3]),
        SourceLayout::FlatChw { c, h, w } => {
            let n = ir[0];
            each(&[n, c, h, w], |a| {
                (((a[0] * h + a[2]) * w + a[3]) * c + a[1]) as u32
            })
        }
        SourceLayout::Same => (0..ir.iter().product::<usize>() as u32).collect(),
    }
}

/// The IR operator that computes `map` (for each element of the NHWC output `out`, the index of
/// the element of the NHWC input `input` it holds), if it is one: nearest upsampling by whole
/// factors, or depth to space in either of ONNX's channel orders.
pub(super) fn recognize(input: &[usize], out: &[usize], map: &[u32]) -> Option<Op> {
    let [n, h, w, c] = *input else { return None };
    let [n2, h2, w2, c2] = *out else { return None };
    if n != n2 || h == 0 || w == 0 || c2 == 0 || h2 % h != 0 || w2 % w != 0 {
        return None;
    }
    let (fh, fw) = (h2 / h, w2 / w);
    let reads = |channel: &dyn Fn(usize, usize, usize) -> usize| {
        each::<Vec<u32>>(out, |a| {
            let (y, x) = (a[1], a[2]);
            (((a[0] * h + y / fh) * w + x / fw) * c + channel(y, x, a[3])) as u32
        }) == map
    };
    if c2 == c && reads(&|_, _, ch| ch) {
        return Some(Op::ResizeNearest { size: [h2, w2] });
    }
    if fh == fw && fh >= 2 && c == c2 * fh * fh {
        let b = fh;
        if reads(&|y, x, ch| ((y % b) * b + x % b) * c2 + ch) {
            return Some(Op::DepthToSpace {
                block: [b, b],
                crd: false,
            });
        }
        if reads(&|y, x, ch| ch * b * b + (y % b) * b + x % b) {
            return Some(Op::DepthToSpace {
                block: [b, b],
                crd: true,
            });
        }
    }
    None
}

/// `map` (for each element of the result, the source element it holds) as a transpose: the source
/// seen as dims `src` (outermost first, adjacent axes that stay adjacent merged) with its axes in
/// the order `perm` (result axis `i` is source axis `perm[i]`). `None` when no transpose gives it.
pub(super) fn transpose_of(map: &[u32]) -> Option<(Vec<usize>, Vec<usize>)> {
    let total = map.len();
    if total == 0 || map[0] != 0 {
        return None;
    }
    // The result's axes from the innermost, as (length, source stride): each the longest run of
    // equal steps at the start of the block the inner axes span.
    let mut axes: Vec<(usize, usize)> = Vec::new();
    let mut block = 1;
    while block < total {
        let stride = map[block] as usize;
        let mut len = 2;
        while (len + 1) * block <= total && map[len * block] as usize == len * stride {
            len += 1;
        }
        if stride == 0 || !total.is_multiple_of(len * block) {
            return None;
        }
        match axes.last_mut() {
            // An axis that continues the one inside it: one axis.
            Some((l, s)) if *s * *l == stride => *l *= len,
            _ => axes.push((len, stride)),
        }
        block *= len;
    }
    // Every element where the axes put it.
    let each = |j: usize| {
        let mut rest = j;
        let mut at = 0;
        for &(l, s) in &axes {
            at += (rest % l) * s;
            rest /= l;
        }
        at
    };
    if axes.is_empty() || (0..total).any(|j| each(j) != map[j] as usize) {
        return None;
    }
    // The source's axes are the same ones by stride, each spanning exactly the ones inside it.
    let mut by_stride: Vec<usize> = (0..axes.len()).collect();
    by_stride.sort_by_key(|&a| axes[a].1);
    let mut span = 1;
    for &a in &by_stride {
        if axes[a].1 != span {
            return None;
        }
        span *= axes[a].0;
    }
    // Outermost first: source axis k is `by_stride[last - k]`; result axis i is `axes[last - i]`.
    let last = axes.len() - 1;
    let src: Vec<usize> = (0..axes.len())
        .map(|k| axes[by_stride[last - k]].0)
        .collect();
    let perm = (0..axes.len())
        .map(|i| {
            let axis = last - i;
            last - by_stride.iter().position(|&a| a == axis).unwrap_or(0)
        })
        .collect();
    Some((src, perm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(dims: &[usize]) -> Moved {
        Moved::start(0, dims).unwrap()
    }

    #[test]
    fn onnx_order_maps_to_the_ir_order_of_each_layout() {
        // NCHW [1, 2, 2, 3] is NHWC [1, 2, 3, 2]: ONNX (c, h, w) at IR ((h * 3) + w) * 2 + c.
        let nchw = onnx_to_ir(SourceLayout::Nchw, &[1, 2, 3, 2]);
        assert_eq!(nchw[..4], [0, 2, 4, 6]);
        assert_eq!(nchw[6 + 3 + 2], ((3 + 2) * 2 + 1) as u32);
        // NCL [1, 2, 3] is IR [1, 1, 3, 2]: ONNX (c, l) at IR l * 2 + c.
        assert_eq!(
            onnx_to_ir(SourceLayout::Ncl, &[1, 1, 3, 2]),
            [0, 2, 4, 1, 3, 5]
        );
        // A flattened [2, 1, 3] map: ONNX (c, h, w) at IR (h * 3 + w) * 2 + c.
        let flat = SourceLayout::FlatChw { c: 2, h: 1, w: 3 };
        assert_eq!(onnx_to_ir(flat, &[1, 6]), [0, 2, 4, 1, 3, 5]);
        assert_eq!(onnx_to_ir(SourceLayout::Same, &[1, 3]), [0, 1, 2]);
    }

    #[test]
    fn transpose_reads_the_permuted_coordinates() {
        // [2, 3] transposed: element (j, i) of the result is element (i, j) of the input.
        let m = moved(&[2, 3]).transpose(&[1, 0]).unwrap();
        assert_eq!(m.dims, [3, 2]);
        assert_eq!(m.from[..], [0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn tile_and_expand_repeat_the_input() {
        let t = moved(&[2, 1]).tile(&[1, 3]).unwrap();
        assert_eq!(
            (t.dims.clone(), t.from.to_vec()),
            (vec![2, 3], vec![0, 0, 0, 1, 1, 1])
        );
        let e = moved(&[2, 1]).expand(&[2, 1, 3]).unwrap();
        assert_eq!(e.dims, [2, 2, 3]);
        assert_eq!(e.from[..], [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]);
        assert!(moved(&[2, 3]).expand(&[4]).is_err());
        assert!(moved(&[2, 3]).tile(&[1]).is_err());
    }

    #[test]
    fn transposes_are_found_with_their_axes_merged() {
        // A channel shuffle of two pixels of six channels in two groups: [2, 2, 3] -> [2, 3, 2].
        let m = moved(&[2, 2, 3]).transpose(&[0, 2, 1]).unwrap();
        assert_eq!(transpose_of(&m.from), Some((vec![2, 2, 3], vec![0, 2, 1])));
        // [2, 3, 4, 5] -> [4, 5, 2, 3]: axes 2 and 3 stay together, as do 0 and 1.
        let m = moved(&[2, 3, 4, 5]).transpose(&[2, 3, 0, 1]).unwrap();
        assert_eq!(transpose_of(&m.from), Some((vec![6, 20], vec![1, 0])));
        // The identity is one axis; a repeat is no transpose.
        assert_eq!(transpose_of(&[0, 1, 2, 3]), Some((vec![4], vec![0])));
        assert_eq!(transpose_of(&[0, 0, 1, 1]), None);
        assert_eq!(transpose_of(&[0, 2, 1, 3, 5, 4]), None);
    }

    #[test]
    fn the_nhwc_maps_of_upsampling_and_depth_to_space_are_recognized() {
        // NHWC [1, 2, 2, 4] -> [1, 4, 4, 1]: DCR reads channel (y % 2) * 2 + x % 2.
        let dcr: Vec<u32> = each(&[1, 4, 4, 1], |a| {
            (((a[1] / 2) * 2 + a[2] / 2) * 4 + (a[1] % 2) * 2 + a[2] % 2) as u32
        });
        assert_eq!(
            recognize(&[1, 2, 2, 4], &[1, 4, 4, 1], &dcr),
            Some(Op::DepthToSpace {
                block: [2, 2],
                crd: false
            })
        );
        let near: Vec<u32> = each(&[1, 4, 6, 2], |a| {
            (((a[1] / 2) * 2 + a[2] / 3) * 2 + a[3]) as u32
        });
        assert_eq!(
            recognize(&[1, 2, 2, 2], &[1, 4, 6, 2], &near),
            Some(Op::ResizeNearest { size: [4, 6] })
        );
        let mut wrong = near.clone();
        wrong.swap(0, 1);
        assert_eq!(recognize(&[1, 2, 2, 2], &[1, 4, 6, 2], &wrong), None);
    }
}
