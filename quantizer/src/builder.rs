//! Assembles a `.ferrite` file from tensors and operators: lifetimes, the memory plan, operand placement.

use anyhow::{bail, Context, Result};
use ferrite_runtime::format::{
    self, DType, Graph, Metadata, Operand, Seq, SeqBuf, Shape, Tensor, ARENA_ALIGN,
};
use ferrite_runtime::in_place::Direction;
use ferrite_runtime::ops::{unary_rows, ConcatInput, Concatenation, LeakyRelu, Op, Relu, Unary};

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

/// Where the memory plan may put an operator's output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ArenaLayout {
    /// Every output in bytes of its own (a Reshape's excepted): each kernel runs once over the
    /// whole tensor, the fewest instructions.
    #[default]
    Separate,
    /// Convolutions, poolings and element-wise operators write over their dying input where that
    /// makes the arena smaller: depthwise and pointwise convolutions of no larger output exactly over
    /// it at no cost, the others in bands of rows (`ferrite_runtime::in_place`), each band
    /// repeating its kernel's setup. The least RAM.
    InPlace,
}

impl std::fmt::Display for ArenaLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArenaLayout::Separate => "separate",
            ArenaLayout::InPlace => "in-place",
        })
    }
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
    /// Whether operators may run in place over their dying input.
    pub arena: ArenaLayout,
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

    /// Computes lifetimes, plans the arena (in place where an operator's input dies there: see
    /// `Lifetimes::plan`), places every operand and encodes the file.
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
        let sizes: Vec<usize> = self
            .tensors
            .iter()
            .map(|d| d.shape.elements()?.checked_mul(d.dtype.size()))
            .collect::<Option<_>>()
            .context("a tensor's size overflows")?;
        let life = Lifetimes {
            first: &first,
            last: &last,
            sizes: &sizes,
            outputs: &self.outputs,
        };
        // In place: every operator that can runs in bands, then each in turn does not where that
        // makes the arena smaller, or, for an operator that would run in bands (and repeat its
        // setup for each), no larger; none if that is smaller still. The lower bound stays the one
        // no placement without banded operators can beat.
        let plain = life.plan(&self.ops, &vec![false; steps], false);
        let lower_bound = plain.plan.lower_bound;
        let mut layout = plain.clone();
        if self.arena == ArenaLayout::InPlace {
            // Shifts widened to the room their group already has (fewer, longer bands) or kept
            // at their least, whichever plan is smaller; widened on a tie.
            for widen in [false, true] {
                let mut banded = vec![true; steps];
                let mut candidate = life.plan(&self.ops, &banded, widen);
                for s in 0..steps {
                    let o = self.ops[s].output().tensor as usize;
                    if matches!(self.ops[s], Op::Reshape(_)) || !candidate.in_place[o] {
                        continue;
                    }
                    let one_pass = match &self.ops[s] {
                        Op::Conv2d(c) => c.runs_shifted(),
                        op => op.runs_over_input(),
                    };
                    banded[s] = false;
                    let other = life.plan(&self.ops, &banded, widen);
                    let (smaller, larger) = (
                        other.plan.arena_size < candidate.plan.arena_size,
                        other.plan.arena_size > candidate.plan.arena_size,
                    );
                    if smaller || (!one_pass && !larger) {
                        candidate = other;
                    } else {
                        banded[s] = true;
                    }
                }
                let best = if widen {
                    layout.plan.arena_size + 1
                } else {
                    layout.plan.arena_size
                };
                if candidate.plan.arena_size < best {
                    layout = candidate;
                }
            }
        }
        layout.plan.lower_bound = lower_bound;
        let Layout {
            plan,
            offsets,
            in_place,
        } = layout;
        let offset = |t: usize| offsets[t] as u32;
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
                in_place: in_place[t],
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

/// The tensors' lifetimes (operator steps) and sizes, and the graph outputs.
struct Lifetimes<'l> {
    first: &'l [usize],
    last: &'l [usize],
    sizes: &'l [usize],
    outputs: &'l [u16],
}

/// A placement: the plan of the buffers, each tensor's offset, and which tensors run in place.
#[derive(Clone)]
struct Layout {
    plan: Plan,
    offsets: Vec<usize>,
    in_place: Vec<bool>,
}

impl Lifetimes<'_> {
    /// Places every tensor. A Reshape's output takes its input's bytes when the input dies there; where
    /// `banded[step]`, so does the output of a convolution or pooling (batch 1), an Add, Sub or Mul without
    /// broadcasting or an element-wise activation, shifted before or after the input by the smallest room its bands need
    /// (`ferrite_runtime::in_place`), before it by the room of a convolution that runs in one pass
    /// so (`Conv::runs_shifted`), or exactly over it for a convolution that runs so
    /// (`Op::runs_over_input`), whichever input and side widen the tensors sharing one buffer
    /// least, and with `widen` as far as the group's width allows without growing. Each such group is
    /// one rigid unit to the planner.
    fn plan(&self, ops: &[Op<'_>], banded: &[bool], widen: bool) -> Layout {
        let n = self.sizes.len();
        // Each tensor's group (its first tensor) and its offset relative to that tensor.
        let mut root: Vec<usize> = (0..n).collect();
        let mut rel = vec![0isize; n];
        let mut span: Vec<(isize, isize)> = self.sizes.iter().map(|&b| (0, b as isize)).collect();
        let mut in_place = vec![false; n];
        for (s, op) in ops.iter().enumerate() {
            let o = op.output().tensor as usize;
            let rows = match op {
                Op::Conv2d(c) | Op::DepthwiseConv2d(c) if c.input.shape.nhwc().n == 1 => {
                    Some(c.rows())
                }
                Op::AveragePool2d(p) | Op::MaxPool2d(p) if p.input.shape.nhwc().n == 1 => {
                    Some(p.rows())
                }
                Op::Logistic(Unary { input, output, .. })
                | Op::Tanh(Unary { input, output, .. })
                | Op::Relu(Relu { input, output, .. })
                | Op::LeakyRelu(LeakyRelu { input, output, .. }) => unary_rows(input, output),
                Op::Add(b) | Op::Sub(b) => b.rows(),
                Op::Mul(b) => b.rows(),
                _ => None,
            };
            let shifts = match (op, rows) {
                (Op::Reshape(_), _) => [Some(0), None],
                _ if banded[s] && op.runs_over_input() => [Some(0), None],
                (Op::Conv2d(c), Some(rows)) if banded[s] && c.runs_shifted() => [
                    c.shifted_room()
                        .map(|d| -(d.next_multiple_of(ARENA_ALIGN) as isize)),
                    rows.min_shift(Direction::After, ARENA_ALIGN)
                        .map(|d| d as isize),
                ],
                (_, Some(rows)) if banded[s] => [
                    rows.min_shift(Direction::Before, ARENA_ALIGN)
                        .map(|d| -(d as isize)),
                    rows.min_shift(Direction::After, ARENA_ALIGN)
                        .map(|d| d as isize),
                ],
                _ => continue,
            };
            // The source and shift that widen their group least.
            let size = self.sizes[o] as isize;
            let mut best: Option<(isize, usize, isize, (isize, isize))> = None;
            for src in op.in_place_sources().into_iter().flatten() {
                let i = src.tensor as usize;
                if self.last[i] != s || self.outputs.contains(&src.tensor) {
                    continue;
                }
                let (lo, hi) = span[root[i]];
                for d in shifts.into_iter().flatten() {
                    let at = rel[i] + d;
                    let widened = (lo.min(at), hi.max(at + size));
                    let growth = (widened.1 - widened.0) - (hi - lo);
                    if best.is_none_or(|b| growth < b.0) {
                        best = Some((growth, i, d, widened));
                    }
                }
            }
            let Some((_, i, mut d, widened)) = best else {
                continue;
            };
            if widen {
                // The group's other tensors are dead here: its whole width is free room.
                d = if d < 0 {
                    d.min(widened.0 - rel[i])
                } else if d > 0 {
                    d.max(widened.1 - size - rel[i])
                } else {
                    d
                };
            }
            root[o] = root[i];
            rel[o] = rel[i] + d;
            span[root[i]] = widened;
            in_place[o] = true;
        }
        // One group per root: each tensor at its offset from the group's lowest byte.
        let mut group_of = vec![usize::MAX; n];
        let mut groups: Vec<Vec<Buffer>> = Vec::new();
        for t in 0..n {
            let r = root[t];
            if group_of[r] == usize::MAX {
                group_of[r] = groups.len();
                groups.push(Vec::new());
            }
            groups[group_of[r]].push(Buffer {
                rel: (rel[t] - span[r].0) as usize,
                size: self.sizes[t],
                first: self.first[t],
                last: self.last[t],
            });
        }
        let plan = plan::greedy(&groups, ARENA_ALIGN);
        let offsets = (0..n)
            .map(|t| plan.offsets[group_of[root[t]]] + (rel[t] - span[root[t]].0) as usize)
            .collect();
        Layout {
            plan,
            offsets,
            in_place,
        }
    }
}
