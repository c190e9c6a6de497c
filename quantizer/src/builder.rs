//! Assembles a `.ferrite` file from tensors and operators: lifetimes, the memory plan, operand placement.

use anyhow::{bail, Context, Result};
use ferrite_runtime::format::{
    self, DType, Graph, Metadata, Operand, Seq, SeqBuf, Shape, Tensor, ARENA_ALIGN,
};
use ferrite_runtime::ops::{ConcatInput, Concatenation, Op};

use crate::plan::{self, Buffer, Plan};

/// An activation tensor before planning.
#[derive(Clone, Debug)]
pub struct TensorDef {
    pub name: String,
    pub dtype: DType,
    pub shape: Shape,
    /// Quantization scale (0 for f32 tensors).
    pub scale: f32,
    pub zero_point: i32,
}

/// A finished model: its bytes and the plan behind its arena.
#[derive(Clone, Debug)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub plan: Plan,
}

/// Collects tensors and operators (whose operands need only their tensor index), then plans the arena
/// and writes the file. Weights are borrowed for `'a`.
#[derive(Default)]
pub struct ModelBuilder<'a> {
    tensors: Vec<TensorDef>,
    ops: Vec<Op<'a>>,
    /// A Concatenation's inputs, beside its operator (empty for other operators): they are encoded
    /// into the operator once placed.
    lists: Vec<Vec<ConcatInput>>,
    inputs: Vec<u16>,
    outputs: Vec<u16>,
    /// Metadata written into the file.
    pub source_sha256: [u8; 32],
    pub source_layout: String,
}

impl<'a> ModelBuilder<'a> {
    pub fn new() -> Self {
        Self {
            source_layout: "NHWC".into(),
            ..Self::default()
        }
    }

    /// Adds a tensor and returns its index.
    pub fn tensor(&mut self, def: TensorDef) -> u16 {
        self.tensors.push(def);
        (self.tensors.len() - 1) as u16
    }

    /// The definition of tensor `t`.
    pub fn def(&self, t: u16) -> &TensorDef {
        &self.tensors[t as usize]
    }

    /// An operand for tensor `t`; its placement is filled in by [`Self::finish`].
    pub fn operand(&self, t: u16) -> Operand {
        let d = &self.tensors[t as usize];
        Operand {
            tensor: t,
            offset: 0,
            shape: d.shape,
            dtype: d.dtype,
            zero_point: d.zero_point,
        }
    }

    /// Appends an operator (execution order is insertion order). A Concatenation goes through
    /// [`Self::concatenation`].
    pub fn push(&mut self, op: Op<'a>) {
        assert!(
            !matches!(op, Op::Concatenation(_)),
            "ModelBuilder::push: add a Concatenation with ModelBuilder::concatenation"
        );
        self.ops.push(op);
        self.lists.push(Vec::new());
    }

    /// Appends a Concatenation of `inputs` along `axis`.
    pub fn concatenation(&mut self, inputs: Vec<ConcatInput>, output: Operand, axis: u8) {
        self.ops.push(Op::Concatenation(Concatenation {
            inputs: Seq::EMPTY,
            output,
            axis,
        }));
        self.lists.push(inputs);
    }

    /// Calls `f` on every operand of step `s`, with `true` for the output.
    fn operands_mut(&mut self, s: usize, mut f: impl FnMut(&mut Operand, bool)) {
        for part in &mut self.lists[s] {
            f(&mut part.input, false);
        }
        self.ops[s].operands_mut(f);
    }

    /// The graph inputs set so far.
    pub fn inputs(&self) -> &[u16] {
        &self.inputs
    }

    pub fn set_inputs(&mut self, inputs: &[u16]) {
        self.inputs = inputs.to_vec();
    }

    pub fn set_outputs(&mut self, outputs: &[u16]) {
        self.outputs = outputs.to_vec();
    }

    /// Computes lifetimes, plans the arena (in-place Reshape where its input dies there), places every
    /// operand and encodes the file.
    pub fn finish(mut self) -> Result<Built> {
        let n = self.tensors.len();
        let steps = self.ops.len();
        if steps == 0 {
            bail!("the model has no operators");
        }
        let mut first = vec![usize::MAX; n];
        let mut last = vec![0usize; n];
        for &t in &self.inputs {
            first[t as usize] = 0;
        }
        for s in 0..steps {
            self.operands_mut(s, |o, is_output| {
                let t = o.tensor as usize;
                if is_output {
                    first[t] = s;
                }
                last[t] = last[t].max(s);
            });
        }
        for &t in &self.outputs {
            last[t as usize] = steps - 1;
        }
        for t in 0..n {
            if first[t] == usize::MAX {
                bail!(
                    "tensor {t} ({}) is neither a graph input nor produced by an operator",
                    self.tensors[t].name
                );
            }
            last[t] = last[t].max(first[t]);
        }
        // In-place Reshape: the output takes its input's buffer when the input dies at the reshape.
        let mut alias: Vec<Option<usize>> = vec![None; n];
        for (s, op) in self.ops.iter().enumerate() {
            if let Op::Reshape(r) = op {
                let (i, o) = (r.input.tensor as usize, r.output.tensor as usize);
                if last[i] == s {
                    alias[o] = Some(i);
                }
            }
        }
        let root = |mut t: usize| {
            while let Some(a) = alias[t] {
                t = a;
            }
            t
        };
        let sizes: Vec<usize> = self
            .tensors
            .iter()
            .map(|d| d.shape.elements()?.checked_mul(d.dtype.size()))
            .collect::<Option<_>>()
            .context("a tensor's size overflows")?;
        let mut buffer_of = vec![usize::MAX; n];
        let mut buffers: Vec<Buffer> = Vec::new();
        for t in 0..n {
            let r = root(t);
            if buffer_of[r] == usize::MAX {
                buffer_of[r] = buffers.len();
                buffers.push(Buffer {
                    size: 0,
                    first: first[r],
                    last: last[r],
                });
            }
            let b = &mut buffers[buffer_of[r]];
            b.size = b.size.max(sizes[t]);
            b.first = b.first.min(first[t]);
            b.last = b.last.max(last[t]);
            buffer_of[t] = buffer_of[r];
        }
        let plan = plan::greedy(&buffers, ARENA_ALIGN);
        let offset = |t: usize| plan.offsets[buffer_of[t]] as u32;
        for s in 0..steps {
            self.operands_mut(s, |o, _| o.offset = offset(o.tensor as usize));
        }
        let tensors: Vec<Tensor<'_>> = self
            .tensors
            .iter()
            .enumerate()
            .map(|(t, d)| Tensor {
                name: &d.name,
                dtype: d.dtype,
                shape: d.shape,
                scale: d.scale,
                zero_point: d.zero_point,
                offset: offset(t),
                first: first[t] as u16,
                last: last[t] as u16,
                in_place: alias[t].is_some(),
            })
            .collect();
        let uses_float = self.tensors.iter().any(|d| d.dtype == DType::F32);
        let producer = format!("ferrite {}", env!("CARGO_PKG_VERSION"));
        let lists: Vec<SeqBuf<ConcatInput>> = self
            .lists
            .iter()
            .map(|l| SeqBuf::new(l))
            .collect::<Result<_, _>>()?;
        let mut ops: Vec<Op<'_>> = std::mem::take(&mut self.ops);
        for (op, list) in ops.iter_mut().zip(&lists) {
            if let Op::Concatenation(c) = op {
                c.inputs = list.seq();
            }
        }
        let tensors = SeqBuf::new(&tensors)?;
        let ops = SeqBuf::new(&ops)?;
        let inputs = SeqBuf::new(&self.inputs)?;
        let outputs = SeqBuf::new(&self.outputs)?;
        let graph = Graph {
            tensors: tensors.seq(),
            ops: ops.seq(),
            inputs: inputs.seq(),
            outputs: outputs.seq(),
            metadata: Metadata {
                producer: &producer,
                source_sha256: self.source_sha256,
                source_layout: &self.source_layout,
            },
            preprocessing: None,
        };
        let bytes = format::write::to_bytes(&graph, plan.arena_size as u32, uses_float)
            .context("encoding the model")?;
        Ok(Built { bytes, plan })
    }
}
