//! The float reference executor: runs an IR graph over a batch of samples in f32.
//!
//! - `mod.rs` (this file): tensors, one operator ([`eval`]), the graph ([`run_observed`], [`run`]).
//! - `kernels.rs`: the host kernels of Conv2d, DepthwiseConv2d and FullyConnected (im2col and a
//!   packed GEMM, a direct depthwise loop), the batch split over rayon's threads.
//!
//! The other operators run the runtime's f32 reference kernels (`ferrite_runtime::kernels::float`),
//! the device's float fallback; the host kernels compute the same functions, with sums in another
//! order (see `kernels.rs`). Graphs are static and topologically ordered, so training (QAT, pruning
//! fine-tuning) needs no autograd engine: keep every activation ([`run_observed`] hands each one out,
//! [`Activations`] keeps them all) and walk the nodes in reverse with one backward function per
//! operator, updating each node's [`Param`](super::Param)s in place.
//!
//! Parallelism: [`eval`] splits the batch over the current rayon pool (the global one, every core,
//! unless called inside [`run`], which uses a pool of the threads it is given).

use anyhow::{bail, ensure, Context, Result};
use ferrite_runtime::format::Activation;
use ferrite_runtime::kernels::{ConvGeometry, Nhwc};
use rayon::prelude::*;

use super::{Clamp, Graph, Node, Op, ValueId, Window2d};

pub(crate) mod kernels;

#[cfg(test)]
mod tests;

/// Samples per piece of the batch in [`run`]: each piece runs the whole graph, pieces in parallel.
const RUN_CHUNK: usize = 64;

/// A dense f32 tensor, C order, batch first.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "tensor shape {shape:?}"
        );
        Tensor { shape, data }
    }

    pub fn zeros(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: vec![0.0; n],
        }
    }

    /// Samples `start..end` of the batch.
    pub fn slice_batch(&self, start: usize, end: usize) -> Tensor {
        let per: usize = self.shape[1..].iter().product();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Tensor {
            shape,
            data: self.data[start * per..end * per].to_vec(),
        }
    }

    /// Concatenation along the batch.
    pub fn cat_batch(parts: Vec<Tensor>) -> Tensor {
        let mut it = parts.into_iter();
        let mut first = it.next().expect("at least one part");
        for p in it {
            first.shape[0] += p.shape[0];
            first.data.extend(p.data);
        }
        first
    }
}

/// A view of a tensor (an activation or a graph constant).
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

/// `shape` (rank at most 4) as NHWC, missing leading dimensions 1.
pub(crate) fn nhwc(shape: &[usize]) -> Result<Nhwc> {
    ensure!(shape.len() <= 4, "rank {} (at most 4)", shape.len());
    let mut d = [1usize; 4];
    d[4 - shape.len()..].copy_from_slice(shape);
    Ok(Nhwc::new(d[0], d[1], d[2], d[3]))
}

/// The kernels' geometry of a window applied to `input` giving `output` (NHWC shapes).
pub(crate) fn geometry(
    window: &Window2d,
    input: &[usize],
    output: &[usize],
) -> Result<ConvGeometry> {
    Ok(ConvGeometry {
        input: nhwc(input)?,
        output: nhwc(output)?,
        kernel_h: window.kernel[0],
        kernel_w: window.kernel[1],
        stride_h: window.stride[0],
        stride_w: window.stride[1],
        dilation_h: window.dilation[0],
        dilation_w: window.dilation[1],
        pad_top: window.pads[0],
        pad_left: window.pads[1],
    })
}

/// The kernel activation for `clamp`, and whether the clamp must still be applied afterwards.
pub(crate) fn split_clamp(clamp: Clamp) -> (Activation, bool) {
    match clamp.activation() {
        Some(a) => (a, false),
        None => (Activation::None, true),
    }
}

/// Applies the rest of a clamp the kernel's activation could not (see [`split_clamp`]).
pub(crate) fn finish(clamp: Clamp, rest: bool, out: &mut [f32]) {
    if rest {
        for v in out {
            *v = clamp.apply(*v);
        }
    }
}

/// Runs one operator on its inputs; the output shape comes from shape inference.
pub fn eval(op: &Op, inputs: &[View<'_>]) -> Result<Tensor> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|v| v.shape).collect();
    let mut out = Tensor::zeros(op.output_shape(&shapes)?);
    op.eval(inputs, &mut out)?;
    Ok(out)
}

/// Every value of one run: inputs, constants (borrowed from the graph) and computed activations.
pub struct Activations<'g> {
    graph: &'g Graph,
    values: Vec<Option<Tensor>>,
}

impl<'g> Activations<'g> {
    /// The computed values of a run of `graph` (indexed by value, `None` for constants), as
    /// [`Activations::into_values`] gave them.
    pub fn from_values(graph: &'g Graph, values: Vec<Option<Tensor>>) -> Self {
        Activations { graph, values }
    }

    /// The computed values and the inputs, indexed by value (`None` for constants and values not kept).
    pub fn into_values(self) -> Vec<Option<Tensor>> {
        self.values
    }

    /// The value `v`, if it was kept.
    pub fn get(&self, v: ValueId) -> Option<View<'_>> {
        if let Some(t) = &self.values[v] {
            return Some(View {
                shape: &t.shape,
                data: &t.data,
            });
        }
        let c = &self.graph.values[v];
        c.data.as_ref().map(|d| View {
            shape: &c.shape,
            data: d,
        })
    }

    /// Takes the computed value `v` out.
    pub fn take(&mut self, v: ValueId) -> Option<Tensor> {
        self.values[v].take()
    }
}

fn check_inputs(graph: &Graph, inputs: &[Tensor]) -> Result<usize> {
    ensure!(
        inputs.len() == graph.inputs.len(),
        "the model has {} input(s), {} given",
        graph.inputs.len(),
        inputs.len()
    );
    let mut batch = None;
    for (i, (t, &v)) in inputs.iter().zip(&graph.inputs).enumerate() {
        let want = &graph.values[v].shape;
        ensure!(
            t.shape.len() == want.len() && t.shape[1..] == want[1..],
            "input {i} (`{}`): shape {:?} given, [batch, {}] expected",
            graph.values[v].name,
            t.shape,
            want[1..]
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        ensure!(
            t.data.len() == t.shape.iter().product::<usize>(),
            "input {i}: data does not fill its shape"
        );
        if *batch.get_or_insert(t.shape[0]) != t.shape[0] {
            bail!("inputs have different batch sizes");
        }
    }
    Ok(batch.unwrap_or(1))
}

/// Runs the graph once on the whole batch, calling `observe(node_index, node, output)` after each node
/// (it may change the output, e.g. round it, before the readers see it).
/// With `keep_all`, every activation stays available in the returned [`Activations`]; otherwise each is
/// freed after its last reader and only the graph outputs remain.
pub fn run_observed<'g>(
    graph: &'g Graph,
    inputs: &[Tensor],
    keep_all: bool,
    mut observe: impl FnMut(usize, &Node, &mut Tensor),
) -> Result<Activations<'g>> {
    check_inputs(graph, inputs)?;
    let mut last_use = vec![usize::MAX; graph.values.len()];
    if !keep_all {
        for (i, n) in graph.nodes.iter().enumerate() {
            for &v in &n.inputs {
                last_use[v] = i;
            }
        }
        for &o in &graph.outputs {
            last_use[o] = usize::MAX;
        }
    }
    let mut acts = Activations {
        graph,
        values: vec![None; graph.values.len()],
    };
    for (t, &v) in inputs.iter().zip(&graph.inputs) {
        acts.values[v] = Some(t.clone());
    }
    for (i, n) in graph.nodes.iter().enumerate() {
        let views: Vec<View<'_>> = n
            .inputs
            .iter()
            .map(|&v| {
                acts.get(v).with_context(|| {
                    format!(
                        "node `{}` reads `{}`, which is not computed",
                        n.name, graph.values[v].name
                    )
                })
            })
            .collect::<Result<_>>()?;
        let mut out =
            eval(&n.op, &views).with_context(|| format!("node `{}` ({})", n.name, n.op.name()))?;
        observe(i, n, &mut out);
        acts.values[n.output] = Some(out);
        for &v in &n.inputs {
            if last_use[v] == i && !graph.inputs.contains(&v) {
                acts.values[v] = None;
            }
        }
    }
    Ok(acts)
}

/// Runs the graph on a batch (every input's first dimension) and returns its outputs. The batch is split
/// into pieces run in parallel on `threads` threads (see [`crate::runtime_exec::available_threads`]).
pub fn run(graph: &Graph, inputs: &[Tensor], threads: usize) -> Result<Vec<Tensor>> {
    ensure!(threads >= 1, "threads must be at least 1");
    let batch = check_inputs(graph, inputs)?;
    let one = |ins: &[Tensor]| -> Result<Vec<Tensor>> {
        let mut acts = run_observed(graph, ins, false, |_, _, _| {})?;
        graph
            .outputs
            .iter()
            .map(|&o| match acts.take(o) {
                Some(t) => Ok(t),
                // An output that is a constant or a graph input.
                None => {
                    let v = acts.get(o).context("output not computed")?;
                    Ok(Tensor::new(v.shape.to_vec(), v.data.to_vec()))
                }
            })
            .collect()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the executor's threads")?;
    if batch <= RUN_CHUNK {
        return pool.install(|| one(inputs));
    }
    let parts: Vec<Vec<Tensor>> = pool.install(|| {
        (0..batch)
            .step_by(RUN_CHUNK)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                let end = (start + RUN_CHUNK).min(batch);
                let ins: Vec<Tensor> = inputs.iter().map(|t| t.slice_batch(start, end)).collect();
                one(&ins)
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut outs: Vec<Vec<Tensor>> = vec![Vec::new(); graph.outputs.len()];
    for part in parts {
        for (o, t) in part.into_iter().enumerate() {
            outs[o].push(t);
        }
    }
    Ok(outs.into_iter().map(Tensor::cat_batch).collect())
}

/// NCHW `[n, c, h, w]` to NHWC `[n, h, w, c]` (`to_nhwc`), or back.
pub fn transpose_4d(t: &Tensor, to_nhwc: bool) -> Tensor {
    assert_eq!(t.shape.len(), 4);
    let (n, a, b, c) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3]);
    // to_nhwc: input [n, C=a, H=b, W=c]; otherwise input [n, H=a, W=b, C=c].
    let (ch, h, w) = if to_nhwc { (a, b, c) } else { (c, a, b) };
    let per = ch * h * w;
    let out: Vec<f32> = t
        .data
        .chunks(per.max(1))
        .take(n)
        .flat_map(|sample| crate::runtime_exec::transpose_chw(sample, ch, h, w, !to_nhwc))
        .collect();
    let shape = if to_nhwc {
        vec![n, h, w, ch]
    } else {
        vec![n, ch, h, w]
    };
    Tensor { shape, data: out }
}
