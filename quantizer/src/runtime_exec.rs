//! The runtime-backed executor: runs a `.ferrite` model over `.npy` batches on the host build of the
//! int8 runtime, handling layout and (de)quantization.
//!
//! Data is batch first in the source model's layout: a model converted from NCHW (ONNX) takes NCHW
//! arrays, transposed to the runtime's NHWC here. f32 arrays are quantized with each input's scale and
//! outputs dequantized back to f32; int8 arrays are passed through and int8 outputs returned.

use anyhow::{anyhow, bail, ensure, Context, Result};
use ferrite_runtime::format::{DType, Shape, Tensor};
use ferrite_runtime::{Interpreter, Model};

use crate::npy::{Array, Dtype};

/// How a model's source orders one of its graph inputs or outputs, from the `.ferrite` metadata's
/// `source_layout` (written by `lower::source_layout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// As the runtime: NHWC, or any tensor that is not 4-D.
    Nhwc,
    /// An NCHW image.
    Nchw,
    /// An NCL signal: NCHW with the height (1) left out.
    Ncl,
    /// A flattened spatial tensor: the source orders its last axis `(c, h, w)`, the runtime
    /// `(h, w, c)`.
    FlatChw { c: usize, h: usize, w: usize },
}

impl Order {
    /// One word of `source_layout`; anything unknown is the runtime's order.
    fn parse(word: &str) -> Order {
        let flat = || {
            let dims: Vec<usize> = word
                .strip_prefix("CHW")?
                .split('x')
                .map(|d| d.parse().ok())
                .collect::<Option<_>>()?;
            match dims[..] {
                [c, h, w] => Some(Order::FlatChw { c, h, w }),
                _ => None,
            }
        };
        match word {
            "NCHW" => Order::Nchw,
            "NCL" => Order::Ncl,
            _ => flat().unwrap_or(Order::Nhwc),
        }
    }

    /// The orders of the model's inputs and of its outputs: `source_layout` is one word for all, or
    /// a word per input then per output, separated by commas.
    pub fn of(model: &Model<'_>) -> Result<(Vec<Order>, Vec<Order>)> {
        let layout = model.graph().metadata.source_layout;
        let (ins, outs) = (model.inputs(), model.outputs());
        let words: Vec<&str> = layout.split(',').collect();
        let orders: Vec<Order> = match words[..] {
            [one] => vec![Order::parse(one); ins + outs],
            _ if words.len() == ins + outs => words.iter().map(|w| Order::parse(w)).collect(),
            _ => bail!(
                "metadata source_layout `{layout}` names {} layouts for {ins} input(s) and {outs} output(s)",
                words.len()
            ),
        };
        Ok((orders[..ins].to_vec(), orders[ins..].to_vec()))
    }

    /// How messages name the layout.
    pub fn name(self) -> &'static str {
        match self {
            Order::Nhwc => "NHWC",
            Order::Nchw => "NCHW",
            Order::Ncl => "NCL",
            Order::FlatChw { .. } => "flattened CHW",
        }
    }

    /// `(c, h, w)` of the sample transposition between the source's channels-first order and the
    /// runtime's channels-last one, if the tensor of `shape` needs one.
    fn transposition(self, shape: &Shape) -> Option<(usize, usize, usize)> {
        let t = shape.nhwc();
        match self {
            Order::Nchw | Order::Ncl if shape.rank == 4 => Some((t.c, t.h, t.w)),
            Order::FlatChw { c, h, w } if shape.elements() == Some(t.n * c * h * w) => {
                Some((c, h, w))
            }
            _ => None,
        }
    }
}

/// Per-sample dims of a model tensor in the source layout (batch dimension dropped when it is 1).
fn sample_dims(t: &Tensor<'_>, order: Order) -> Vec<usize> {
    let d: Vec<usize> = t.shape.dims().iter().map(|&x| x as usize).collect();
    let d = match order {
        Order::Nchw if d.len() == 4 => vec![d[0], d[3], d[1], d[2]],
        Order::Ncl if d.len() == 4 && d[1] == 1 => vec![d[0], d[3], d[2]],
        _ => d,
    };
    if d.len() > 1 && d[0] == 1 {
        d[1..].to_vec()
    } else {
        d
    }
}

/// NCHW sample `[c, h, w]` to NHWC `[h, w, c]` order (or back with `inverse`).
pub fn transpose_chw<T: Copy>(data: &[T], c: usize, h: usize, w: usize, inverse: bool) -> Vec<T> {
    let mut out = data.to_vec();
    for ci in 0..c {
        for y in 0..h {
            for x in 0..w {
                let chw = (ci * h + y) * w + x;
                let hwc = (y * w + x) * c + ci;
                if inverse {
                    out[chw] = data[hwc];
                } else {
                    out[hwc] = data[chw];
                }
            }
        }
    }
    out
}

/// Threads used when the caller does not choose: the machine's available parallelism.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The runtime's refusal of a model as an error: "invalid model: ..." unless the runtime's message
/// already says the model is malformed.
pub fn invalid_model(e: ferrite_runtime::Error) -> anyhow::Error {
    match e {
        ferrite_runtime::Error::Malformed { .. } => anyhow!("{e}"),
        _ => anyhow!("invalid model: {e}"),
    }
}

/// A parsed and validated `.ferrite` model, ready to run batches of samples.
pub struct Runner<'a> {
    model: Model<'a>,
}

impl<'a> Runner<'a> {
    /// Parses and validates `model_bytes` (once; [`Self::run`] only computes).
    pub fn new(model_bytes: &'a [u8]) -> Result<Self> {
        let model = Model::from_bytes(model_bytes).map_err(invalid_model)?;
        Ok(Runner { model })
    }

    /// Number of model outputs.
    pub fn outputs(&self) -> usize {
        self.model.outputs()
    }

    /// Runs every sample of `inputs` (one array per model input, same batch size) one at a time (batch
    /// 1 per invoke) and returns one array per model output, batch first. The samples are split into
    /// `threads` contiguous chunks, each run by its own interpreter and arena on its own thread; the
    /// outputs do not depend on `threads`.
    pub fn run(&self, inputs: &[Array], threads: usize) -> Result<Vec<Array>> {
        self.run_from(inputs, threads, 0)
    }

    /// [`Self::run`] on a batch of a larger set whose first sample is sample `first` of the set:
    /// errors count samples from there.
    pub fn run_from(&self, inputs: &[Array], threads: usize, first: usize) -> Result<Vec<Array>> {
        ensure!(threads >= 1, "threads must be at least 1");
        let model = &self.model;
        let (in_orders, out_orders) = Order::of(model)?;
        ensure!(
            inputs.len() == model.inputs(),
            "the model has {} input(s), {} array(s) given",
            model.inputs(),
            inputs.len()
        );
        let in_tensors: Vec<Tensor<'_>> = (0..model.inputs())
            .map(|i| model.input(i))
            .collect::<Result<_, _>>()?;
        let out_tensors: Vec<Tensor<'_>> = (0..model.outputs())
            .map(|i| model.output(i))
            .collect::<Result<_, _>>()?;
        let mut batch = None;
        for (i, (a, t)) in inputs.iter().zip(&in_tensors).enumerate() {
            let layout = format!(" ({})", in_orders[i].name());
            let n =
                crate::ir::io::batch_size(i, t.name, a, &sample_dims(t, in_orders[i]), &layout)?;
            match (a.dtype, t.dtype) {
                (Dtype::F32, _) | (Dtype::I8, DType::I8) | (Dtype::I16, DType::I16) => {}
                (d, m) => bail!(
                    "input {i} (`{}`): the array is {d}, the input {m}; use float32 arrays or arrays of the input's type",
                    t.name
                ),
            }
            if *batch.get_or_insert(n) != n {
                bail!("inputs have different batch sizes");
            }
        }
        let batch = batch.unwrap_or(1);
        let float_out = inputs.first().is_some_and(|a| a.dtype == Dtype::F32);
        // Each input once as f32 or i8 values, sliced per sample below.
        let samples: Vec<Samples> = inputs
            .iter()
            .map(|a| match a.dtype {
                Dtype::F32 => Samples::F32(a.to_f32()),
                Dtype::I16 => Samples::I16(
                    a.data
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect(),
                ),
                _ => Samples::I8(a.data.iter().map(|&b| b as i8).collect()),
            })
            .collect();
        let job = Job {
            model,
            in_orders: &in_orders,
            out_orders: &out_orders,
            float_out,
            in_tensors: &in_tensors,
            out_tensors: &out_tensors,
            samples: &samples,
            first,
        };
        let threads = threads.min(batch).max(1);
        let chunk = batch.div_ceil(threads);
        let parts: Vec<Outputs> = if threads == 1 {
            vec![job.run(0..batch)?]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..batch)
                    .step_by(chunk)
                    .map(|start| {
                        let job = &job;
                        s.spawn(move || job.run(start..(start + chunk).min(batch)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("runtime thread panicked"))
                    .collect::<Result<Vec<_>>>()
            })?
        };
        let mut outs: Outputs = vec![(Vec::new(), Vec::new()); out_tensors.len()];
        for part in parts {
            for (o, (f, q)) in part.into_iter().enumerate() {
                outs[o].0.extend(f);
                outs[o].1.extend(q);
            }
        }
        Ok(outs
            .into_iter()
            .zip(out_tensors.iter().zip(&out_orders))
            .map(|((f, q), (t, &order))| {
                let mut shape = vec![batch];
                shape.extend(sample_dims(t, order));
                match (f.is_empty(), t.dtype) {
                    (false, _) => Array::from_f32(shape, &f),
                    (true, DType::I16) => Array {
                        shape,
                        dtype: Dtype::I16,
                        data: q,
                    },
                    (true, _) => Array {
                        shape,
                        dtype: Dtype::I8,
                        data: q,
                    },
                }
            })
            .collect())
    }
}

/// An input's values, converted once.
enum Samples {
    F32(Vec<f32>),
    I8(Vec<i8>),
    I16(Vec<i16>),
}

/// Per model output: its f32 values or its integer values' little-endian bytes, samples concatenated.
type Outputs = Vec<(Vec<f32>, Vec<u8>)>;

/// What one thread needs to run a range of samples.
struct Job<'j> {
    model: &'j Model<'j>,
    /// Each input's and each output's order in the source.
    in_orders: &'j [Order],
    out_orders: &'j [Order],
    float_out: bool,
    in_tensors: &'j [Tensor<'j>],
    out_tensors: &'j [Tensor<'j>],
    samples: &'j [Samples],
    /// Index in the whole set of the batch's first sample (for messages).
    first: usize,
}

impl Job<'_> {
    /// Runs samples `range` in order with one interpreter and arena.
    fn run(&self, range: std::ops::Range<usize>) -> Result<Outputs> {
        let mut arena = vec![0u8; self.model.arena_size() + 16];
        let mut it = Interpreter::new(self.model, &mut arena)?;
        let mut outs: Outputs = vec![(Vec::new(), Vec::new()); self.out_tensors.len()];
        for n in range {
            for (i, (s, t)) in self.samples.iter().zip(self.in_tensors).enumerate() {
                let len = t.shape.elements().unwrap_or(0);
                let reorder = self.in_orders[i].transposition(&t.shape);
                match s {
                    Samples::F32(all) => {
                        let x = &all[n * len..(n + 1) * len];
                        if let Some((c, h, w)) = reorder {
                            let x = transpose_chw(x, c, h, w, false);
                            it.set_input_f32(i, &x)
                        } else {
                            it.set_input_f32(i, x)
                        }
                        .with_context(|| format!("input {i}"))?;
                    }
                    Samples::I8(all) => {
                        let x = &all[n * len..(n + 1) * len];
                        if let Some((c, h, w)) = reorder {
                            let x = transpose_chw(x, c, h, w, false);
                            it.input_i8_mut(i)?.copy_from_slice(&x);
                        } else {
                            it.input_i8_mut(i)?.copy_from_slice(x);
                        }
                    }
                    Samples::I16(all) => {
                        let x = &all[n * len..(n + 1) * len];
                        if let Some((c, h, w)) = reorder {
                            let x = transpose_chw(x, c, h, w, false);
                            it.input_i16_mut(i)?.copy_from_slice(&x);
                        } else {
                            it.input_i16_mut(i)?.copy_from_slice(x);
                        }
                    }
                }
            }
            it.invoke()
                .map_err(|e| anyhow!("sample {}: {e}", self.first + n))?;
            for (o, t) in self.out_tensors.iter().enumerate() {
                let reorder = self.out_orders[o].transposition(&t.shape);
                if self.float_out || t.dtype == DType::F32 {
                    let mut y = vec![0f32; t.shape.elements().unwrap_or(0)];
                    it.output_to_f32(o, &mut y)?;
                    if let Some((c, h, w)) = reorder {
                        y = transpose_chw(&y, c, h, w, true);
                    }
                    outs[o].0.extend(y);
                } else if t.dtype == DType::I16 {
                    let mut y = it.output_i16(o)?.to_vec();
                    if let Some((c, h, w)) = reorder {
                        y = transpose_chw(&y, c, h, w, true);
                    }
                    outs[o].1.extend(y.iter().flat_map(|v| v.to_le_bytes()));
                } else {
                    let mut y = it.output_i8(o)?.to_vec();
                    if let Some((c, h, w)) = reorder {
                        y = transpose_chw(&y, c, h, w, true);
                    }
                    outs[o].1.extend(y.iter().map(|&v| v as u8));
                }
            }
        }
        Ok(outs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_words_parse_as_lower_writes_them() {
        use crate::ir::SourceLayout;
        for (layout, order) in [
            (SourceLayout::Same, Order::Nhwc),
            (SourceLayout::Nchw, Order::Nchw),
            (SourceLayout::Ncl, Order::Ncl),
            (
                SourceLayout::FlatChw { c: 4, h: 3, w: 2 },
                Order::FlatChw { c: 4, h: 3, w: 2 },
            ),
        ] {
            assert_eq!(Order::parse(&layout.word()), order);
        }
        assert_eq!(Order::parse("CHW4x3"), Order::Nhwc);
    }

    #[test]
    fn transpose_round_trips() {
        let x: Vec<u32> = (0..24).collect();
        let y = transpose_chw(&x, 2, 3, 4, false);
        assert_eq!(y[1], 12); // (y=0, x=0, c=1) comes from channel 1's first element
        assert_eq!(transpose_chw(&y, 2, 3, 4, true), x);
    }
}
