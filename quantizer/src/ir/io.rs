//! `.npy` arrays in the source model's layout to and from the executor's NHWC tensors.

use anyhow::{bail, ensure, Result};

use super::float_exec::{self, Tensor};
use super::{Graph, SourceLayout, ValueId};
use crate::npy::{Array, Dtype};

/// The dims the source model gives value `v` (batch included).
pub fn source_dims(g: &Graph, v: ValueId) -> Vec<usize> {
    g.values[v].source.source_dims(&g.values[v].shape)
}

/// The number of samples in array `a` for input `i` (named `name`) of a model whose samples have dims
/// `sample`: the array must be `[batch, sample...]`, batch at least 1. A single sample without the batch
/// dimension is refused (taking it as one sample would silently misread a file whose first dimension
/// was dropped). `layout` follows the shape in messages, e.g. ` (NCHW)`.
pub fn batch_size(
    i: usize,
    name: &str,
    a: &Array,
    sample: &[usize],
    layout: &str,
) -> Result<usize> {
    let dims = |d: &[usize]| {
        d.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let want = format!("[batch, {}]{layout}", dims(sample));
    if a.shape == sample {
        bail!(
            "input {i} (`{name}`): array shape {:?} has no batch dimension; the model takes {want} (one sample is [1, {}])",
            a.shape,
            dims(sample)
        );
    }
    ensure!(
        a.shape.len() == sample.len() + 1 && a.shape[1..] == *sample,
        "input {i} (`{name}`): array shape {:?} does not match the model's {want}",
        a.shape
    );
    ensure!(
        a.shape[0] > 0,
        "input {i} (`{name}`): the array holds no samples (shape {:?})",
        a.shape
    );
    Ok(a.shape[0])
}

/// The number of samples in `a` for graph input `i`: float32, `[batch, sample...]` in the source
/// layout, batch at least 1.
pub fn check_input(g: &Graph, i: usize, a: &Array) -> Result<usize> {
    let v = g.inputs[i];
    let want = source_dims(g, v);
    let name = &g.values[v].name;
    ensure!(
        a.dtype == Dtype::F32,
        "input {i} (`{name}`): the array is {}; the model takes float32",
        a.dtype
    );
    let layout = match g.values[v].source {
        SourceLayout::Nchw => " (NCHW)",
        SourceLayout::Ncl => " (NCL)",
        _ => "",
    };
    batch_size(i, name, a, &want[1..], layout)
}

/// Graph input `i` from an array in the source layout, batch first.
pub fn input_tensor(g: &Graph, i: usize, a: &Array) -> Result<Tensor> {
    let v = g.inputs[i];
    check_input(g, i, a)?;
    let t = Tensor::new(a.shape.clone(), a.to_f32());
    Ok(match g.values[v].source {
        SourceLayout::Nchw => float_exec::transpose_4d(&t, true),
        SourceLayout::Ncl => {
            let (n, c, l) = (t.shape[0], t.shape[1], t.shape[2]);
            float_exec::transpose_4d(&Tensor::new(vec![n, c, 1, l], t.data), true)
        }
        _ => t,
    })
}

/// Graph output `o` as an array in the source layout.
pub fn output_array(g: &Graph, o: usize, t: &Tensor) -> Array {
    let v = g.outputs[o];
    match g.values[v].source {
        SourceLayout::Nchw if t.shape.len() == 4 => {
            let s = float_exec::transpose_4d(t, false);
            Array::from_f32(s.shape, &s.data)
        }
        SourceLayout::Ncl if t.shape.len() == 4 => {
            let s = float_exec::transpose_4d(t, false);
            Array::from_f32(vec![s.shape[0], s.shape[1], s.shape[3]], &s.data)
        }
        SourceLayout::FlatChw { c, h, w } if t.shape.len() == 2 => {
            let per = c * h * w;
            let mut out = vec![0.0f32; t.data.len()];
            for (src, dst) in t.data.chunks(per).zip(out.chunks_mut(per)) {
                for ci in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            dst[(ci * h + y) * w + x] = src[(y * w + x) * c + ci];
                        }
                    }
                }
            }
            Array::from_f32(t.shape.clone(), &out)
        }
        _ => Array::from_f32(t.shape.clone(), &t.data),
    }
}

/// Runs a float graph on arrays in the source layout and returns its outputs in the source layout.
pub fn run_arrays(g: &Graph, inputs: &[Array], threads: usize) -> Result<Vec<Array>> {
    ensure!(
        inputs.len() == g.inputs.len(),
        "the model has {} input(s), {} array(s) given",
        g.inputs.len(),
        inputs.len()
    );
    let tensors: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, a)| input_tensor(g, i, a))
        .collect::<Result<_>>()?;
    let outs = float_exec::run(g, &tensors, threads)?;
    Ok(outs
        .iter()
        .enumerate()
        .map(|(o, t)| output_array(g, o, t))
        .collect())
}
