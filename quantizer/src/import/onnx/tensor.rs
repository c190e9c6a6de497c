//! Constant tensors of an ONNX model (initializers, `Constant` nodes), in ONNX layout.

use anyhow::{bail, ensure, Context, Result};

use super::proto::{attribute_type as at, data_type as dt, NodeProto, TensorProto};

/// A constant's elements: floats, or integers (shapes, axes, pads).
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A constant in ONNX layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub dims: Vec<usize>,
    pub data: Data,
}

fn chunks<const N: usize>(raw: &[u8]) -> Result<impl Iterator<Item = [u8; N]> + '_> {
    ensure!(
        raw.len().is_multiple_of(N),
        "raw data of {} bytes is not a multiple of {N}",
        raw.len()
    );
    Ok(raw.chunks_exact(N).map(|c| c.try_into().unwrap()))
}

impl Const {
    pub fn from_proto(t: &TensorProto) -> Result<Const> {
        ensure!(
            t.data_location != 1,
            "external data (stored outside the .onnx file) is read only when the model is loaded from its file, next to that data"
        );
        let dims: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).ok().context("negative dimension"))
            .collect::<Result<_>>()?;
        let count = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .context("the size overflows")?;
        let raw = &t.raw_data;
        let data = match t.data_type {
            dt::FLOAT => Data::F32(if raw.is_empty() {
                t.float_data.clone()
            } else {
                chunks::<4>(raw)?.map(f32::from_le_bytes).collect()
            }),
            dt::DOUBLE => Data::F32(if raw.is_empty() {
                t.double_data.iter().map(|&v| v as f32).collect()
            } else {
                chunks::<8>(raw)?
                    .map(|b| f64::from_le_bytes(b) as f32)
                    .collect()
            }),
            dt::INT64 => Data::I64(if raw.is_empty() {
                t.int64_data.clone()
            } else {
                chunks::<8>(raw)?.map(i64::from_le_bytes).collect()
            }),
            dt::INT32 => Data::I64(if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as i64).collect()
            } else {
                chunks::<4>(raw)?
                    .map(|b| i32::from_le_bytes(b) as i64)
                    .collect()
            }),
            dt::INT8 | dt::UINT8 | dt::BOOL => {
                let signed = t.data_type == dt::INT8;
                Data::I64(if raw.is_empty() {
                    t.int32_data.iter().map(|&v| v as i64).collect()
                } else {
                    raw.iter()
                        .map(|&b| if signed { b as i8 as i64 } else { b as i64 })
                        .collect()
                })
            }
            other => bail!(
                "element type {other} is not supported (float, double and integer constants are)"
            ),
        };
        let len = match &data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        };
        ensure!(len == count, "{len} values for shape {dims:?}");
        Ok(Const { dims, data })
    }

    /// The value of a `Constant` node (`value`, `value_float(s)` or `value_int(s)`).
    pub fn from_constant_node(n: &NodeProto) -> Result<Const> {
        let a = n.attribute.first().context("Constant without a value")?;
        Ok(match (a.name.as_str(), a.r#type) {
            ("value", at::TENSOR) => Const::from_proto(a.t.as_ref().context("empty tensor")?)?,
            ("value_float", at::FLOAT) => Const {
                dims: vec![],
                data: Data::F32(vec![a.f]),
            },
            ("value_floats", at::FLOATS) => Const {
                dims: vec![a.floats.len()],
                data: Data::F32(a.floats.clone()),
            },
            ("value_int", at::INT) => Const {
                dims: vec![],
                data: Data::I64(vec![a.i]),
            },
            ("value_ints", at::INTS) => Const {
                dims: vec![a.ints.len()],
                data: Data::I64(a.ints.clone()),
            },
            (name, _) => bail!("Constant with attribute `{name}` is not supported"),
        })
    }

    pub fn f32(&self) -> Result<Vec<f32>> {
        Ok(match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        })
    }

    pub fn i64(&self) -> Result<Vec<i64>> {
        match &self.data {
            Data::I64(v) => Ok(v.clone()),
            Data::F32(_) => bail!("a float constant where integers are expected"),
        }
    }

    /// Checks that the data fills the shape exactly.
    pub fn check(&self) -> Result<()> {
        let len = match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        };
        let count = self.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        ensure!(count == Some(len), "{len} values for shape {:?}", self.dims);
        Ok(())
    }

    pub fn reshaped(&self, dims: Vec<usize>) -> Const {
        Const {
            dims,
            data: self.data.clone(),
        }
    }
}

/// ONNX `Gather` on constants: the entries of `data` along `axis` at `indices` (negative ones count
/// from the end); the result's dims are `data`'s with `axis` replaced by `indices`' dims.
pub fn gather(data: &Const, indices: &Const, axis: usize) -> Result<Const> {
    let size = data.dims[axis];
    let at: Vec<usize> = indices
        .i64()?
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + size as i64 } else { i };
            ensure!(
                (0..size as i64).contains(&j),
                "Gather index {i} is out of range for a dimension of {size}"
            );
            Ok(j as usize)
        })
        .collect::<Result<_>>()?;
    let outer: usize = data.dims[..axis].iter().product();
    let inner: usize = data.dims[axis + 1..].iter().product();
    // Per outer block, the rows `at` of `inner` values each.
    fn take<T: Copy>(v: &[T], outer: usize, size: usize, inner: usize, at: &[usize]) -> Vec<T> {
        (0..outer)
            .flat_map(|o| at.iter().map(move |&j| (o * size + j) * inner))
            .flat_map(|start| v[start..start + inner].iter().copied())
            .collect()
    }
    let mut dims = data.dims[..axis].to_vec();
    dims.extend(&indices.dims);
    dims.extend(&data.dims[axis + 1..]);
    let data = match &data.data {
        Data::F32(v) => Data::F32(take(v, outer, size, inner, &at)),
        Data::I64(v) => Data::I64(take(v, outer, size, inner, &at)),
    };
    let c = Const { dims, data };
    c.check()?;
    Ok(c)
}

/// ONNX `Transpose` of a constant: axis `k` of the result is axis `perm[k]` of `c` (a permutation
/// of its axes).
pub fn transpose(c: &Const, perm: &[usize]) -> Result<Const> {
    let rank = c.dims.len();
    let mut seen = vec![false; rank];
    ensure!(
        perm.len() == rank
            && perm
                .iter()
                .all(|&p| p < rank && !std::mem::replace(&mut seen[p], true)),
        "Transpose perm {perm:?} for a constant of rank {rank}"
    );
    let dims: Vec<usize> = perm.iter().map(|&p| c.dims[p]).collect();
    // Strides of the source, in the result's axis order.
    let mut strides = vec![1usize; rank];
    for k in (0..rank.saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * c.dims[k + 1];
    }
    let along: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let total: usize = dims.iter().product();
    let source = |mut flat: usize| -> usize {
        let mut at = 0;
        for k in (0..rank).rev() {
            at += (flat % dims[k]) * along[k];
            flat /= dims[k];
        }
        at
    };
    let data = match &c.data {
        Data::F32(v) => Data::F32((0..total).map(|i| v[source(i)]).collect()),
        Data::I64(v) => Data::I64((0..total).map(|i| v[source(i)]).collect()),
    };
    Ok(Const { dims, data })
}

/// ONNX `Cast` of a constant to `to` (an ONNX data type): float32, or int32/int64 (float values
/// rounded toward zero).
pub fn cast(c: &Const, to: i64) -> Result<Const> {
    let data = match i32::try_from(to).unwrap_or(-1) {
        dt::FLOAT | dt::DOUBLE => Data::F32(c.f32()?),
        dt::INT32 | dt::INT64 => match &c.data {
            Data::I64(v) => Data::I64(v.clone()),
            Data::F32(v) => Data::I64(v.iter().map(|&x| x as i64).collect()),
        },
        t => bail!("Cast to ONNX data type {t} (supported: float, double, int32, int64)"),
    };
    Ok(Const {
        dims: c.dims.clone(),
        data,
    })
}

/// `f(a, b)` element-wise with NumPy broadcasting, as f32.
pub fn broadcast_f32(a: &Const, b: &Const, f: impl Fn(f32, f32) -> f32) -> Result<Const> {
    let (dims, data) = broadcast(a, &a.f32()?, b, &b.f32()?, |x, y| Ok(f(x, y)))?;
    Ok(Const {
        dims,
        data: Data::F32(data),
    })
}

/// `f(a, b)` element by element on two integer constants, with NumPy broadcasting (shape
/// arithmetic: `(c + 1) / 2`); `f` fails on a division by zero or an overflow.
pub fn broadcast_i64(a: &Const, b: &Const, f: impl Fn(i64, i64) -> Option<i64>) -> Result<Const> {
    let (va, vb) = (a.i64()?, b.i64()?);
    let (dims, data) = broadcast(a, &va, b, &vb, |x, y| {
        f(x, y).with_context(|| format!("integer arithmetic on {x} and {y} fails"))
    })?;
    Ok(Const {
        dims,
        data: Data::I64(data),
    })
}

/// The broadcast shape of `a` and `b` and `f` of their values `va` and `vb` over it.
fn broadcast<T: Copy>(
    a: &Const,
    va: &[T],
    b: &Const,
    vb: &[T],
    f: impl Fn(T, T) -> Result<T>,
) -> Result<(Vec<usize>, Vec<T>)> {
    let rank = a.dims.len().max(b.dims.len());
    let pad = |d: &[usize]| {
        let mut v = vec![1usize; rank - d.len()];
        v.extend(d);
        v
    };
    let (da, db) = (pad(&a.dims), pad(&b.dims));
    let out: Vec<usize> = da
        .iter()
        .zip(&db)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Ok(x),
            (1, _) => Ok(y),
            (_, 1) => Ok(x),
            _ => bail!("shapes {:?} and {:?} do not broadcast", a.dims, b.dims),
        })
        .collect::<Result<_>>()?;
    let total: usize = out.iter().product();
    let index = |d: &[usize], mut flat: usize| {
        let mut idx = 0;
        let mut stride = 1;
        for k in (0..rank).rev() {
            let i = flat % out[k];
            flat /= out[k];
            if d[k] != 1 {
                idx += i * stride;
            }
            stride *= d[k];
        }
        idx
    };
    let data = (0..total)
        .map(|i| f(va[index(&da, i)], vb[index(&db, i)]))
        .collect::<Result<_>>()?;
    Ok((out, data))
}

/// Concatenation of constants along `axis`.
pub fn concat(parts: &[&Const], axis: usize) -> Result<Const> {
    let first = parts[0];
    let mut dims = first.dims.clone();
    dims[axis] = parts
        .iter()
        .map(|p| p.dims.get(axis).copied().unwrap_or(0))
        .sum();
    let outer: usize = first.dims[..axis].iter().product();
    let ints = parts.iter().all(|p| matches!(p.data, Data::I64(_)));
    let mut f = Vec::new();
    let mut i = Vec::new();
    for o in 0..outer {
        for p in parts {
            ensure!(
                p.dims.len() == first.dims.len()
                    && (0..first.dims.len()).all(|d| d == axis || p.dims[d] == first.dims[d]),
                "constants of shapes {:?} and {:?} do not concatenate",
                first.dims,
                p.dims
            );
            let chunk: usize = p.dims[axis..].iter().product();
            if ints {
                i.extend_from_slice(&p.i64()?[o * chunk..(o + 1) * chunk]);
            } else {
                f.extend_from_slice(&p.f32()?[o * chunk..(o + 1) * chunk]);
            }
        }
    }
    Ok(Const {
        dims,
        data: if ints { Data::I64(i) } else { Data::F32(f) },
    })
}

/// ONNX `Slice` of a constant: per listed axis the elements from `start` towards `end` by `step`
/// (negative steps walk backwards; starts and ends clamped as ONNX specifies).
pub fn slice(
    c: &Const,
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    steps: &[i64],
) -> Result<Const> {
    let rank = c.dims.len();
    ensure!(
        ends.len() == starts.len() && axes.len() == starts.len() && steps.len() == starts.len(),
        "Slice with {} starts, {} ends, {} axes and {} steps",
        starts.len(),
        ends.len(),
        axes.len(),
        steps.len()
    );
    // The kept indices of each axis.
    let mut keep: Vec<Vec<usize>> = c.dims.iter().map(|&d| (0..d).collect()).collect();
    for (((&start, &end), &axis), &step) in starts.iter().zip(ends).zip(axes).zip(steps) {
        let a = if axis < 0 { axis + rank as i64 } else { axis };
        ensure!(
            (0..rank as i64).contains(&a),
            "Slice axis {axis} of rank {rank}"
        );
        ensure!(step != 0, "Slice with a step of 0");
        let len = c.dims[a as usize] as i64;
        let wrap = |v: i64| if v < 0 { v.saturating_add(len) } else { v };
        let (mut at, end) = if step > 0 {
            (wrap(start).clamp(0, len), wrap(end).clamp(0, len))
        } else {
            (wrap(start).clamp(0, len - 1), wrap(end).clamp(-1, len - 1))
        };
        let mut kept = Vec::new();
        while (step > 0 && at < end) || (step < 0 && at > end) {
            kept.push(at as usize);
            at += step;
        }
        keep[a as usize] = kept;
    }
    let dims: Vec<usize> = keep.iter().map(Vec::len).collect();
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * c.dims[i + 1];
    }
    let total: usize = dims.iter().product();
    let index = |mut flat: usize| {
        let mut at = 0;
        for k in (0..rank).rev() {
            at += keep[k][flat % dims[k]] * strides[k];
            flat /= dims[k];
        }
        at
    };
    let data = match &c.data {
        Data::F32(v) => Data::F32((0..total).map(|i| v[index(i)]).collect()),
        Data::I64(v) => Data::I64((0..total).map(|i| v[index(i)]).collect()),
    };
    Ok(Const { dims, data })
}

/// Reads the external data of tensor `t` (`data_location` 1: a file named relative to the model's
/// directory `dir`, an offset and a length) into its `raw_data`.
pub fn read_external(t: &mut TensorProto, dir: &std::path::Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let entry = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    };
    let location = entry("location").context("external data without a location")?;
    let relative = std::path::Path::new(&location);
    ensure!(
        relative.is_relative()
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
        "external data location `{location}` is not a file beside the model"
    );
    let number = |key: &str| -> Result<Option<u64>> {
        entry(key)
            .map(|v| {
                v.parse::<u64>()
                    .with_context(|| format!("external data {key} `{v}`"))
            })
            .transpose()
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    let path = dir.join(relative);
    let mut f = std::fs::File::open(&path)
        .with_context(|| format!("reading external data {}", path.display()))?;
    let size = f.metadata()?.len();
    let length = length.unwrap_or(size.saturating_sub(offset));
    ensure!(
        offset.checked_add(length).is_some_and(|end| end <= size),
        "external data {}: bytes {offset}..{} beyond its {size} bytes",
        path.display(),
        offset.saturating_add(length)
    );
    f.seek(SeekFrom::Start(offset))?;
    let mut raw = vec![0u8; usize::try_from(length)?];
    f.read_exact(&mut raw)
        .with_context(|| format!("reading external data {}", path.display()))?;
    t.raw_data = raw;
    t.data_location = 0;
    t.external_data.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(dims: Vec<usize>, v: &[i64]) -> Const {
        Const {
            dims,
            data: Data::I64(v.to_vec()),
        }
    }

    /// numpy's `np.take(data, indices, axis)`, which ONNX `Gather` follows.
    #[test]
    fn gather_takes_along_an_axis_with_negative_indices() {
        let data = ints(vec![2, 3], &[10, 11, 12, 20, 21, 22]);
        // A scalar index drops the axis: the batch entry of a shape.
        let g = gather(&ints(vec![4], &[7, 1, 28, 28]), &ints(vec![], &[0]), 0).unwrap();
        assert_eq!((g.dims, g.data), (vec![], Data::I64(vec![7])));
        let g = gather(&data, &ints(vec![2], &[-1, 0]), 1).unwrap();
        assert_eq!(
            (g.dims, g.data),
            (vec![2, 2], Data::I64(vec![12, 10, 22, 20]))
        );
        let g = gather(&data, &ints(vec![1, 1], &[1]), 0).unwrap();
        assert_eq!(
            (g.dims, g.data),
            (vec![1, 1, 3], Data::I64(vec![20, 21, 22]))
        );
        let e = gather(&data, &ints(vec![1], &[3]), 1).unwrap_err();
        assert!(e.to_string().contains("index 3 is out of range"), "{e}");
    }

    #[test]
    fn cast_converts_between_float_and_integers() {
        let f = Const {
            dims: vec![3],
            data: Data::F32(vec![-1.7, 0.5, 2.9]),
        };
        assert_eq!(
            cast(&f, i64::from(dt::INT64)).unwrap().data,
            Data::I64(vec![-1, 0, 2])
        );
        let i = ints(vec![2], &[3, -4]);
        assert_eq!(
            cast(&i, i64::from(dt::FLOAT)).unwrap().data,
            Data::F32(vec![3.0, -4.0])
        );
        assert!(cast(&i, 16).is_err());
    }
}
