//! The quantizer's intermediate representation: a typed, shape-inferred f32 graph in NHWC.
//!
//! Importers build it (`crate::import`), passes simplify it (`passes`), the float reference executor
//! runs it (`float_exec`), and the lowering (`crate::lower`) turns each node into one runtime operator.
//! The operators themselves ([`Op`]) live in `crate::ops`, one file each. Conventions:
//!
//! - Every activation's first dimension is the batch, 1 in the graph; the executor runs any batch size.
//! - Rank-4 activations are NHWC (importers of NCHW formats transpose weights, axes and constants).
//! - Weights live in the node (`Param`), so passes and training can rewrite them in place; other
//!   constants (e.g. the operand of an `Add`) are values with `data`.
//! - After [`passes::optimize`], each node maps to one runtime operator (`Op::name`). Two things the
//!   runtime cannot express may
//!   remain and are for lowering to refuse (or keep in float) by name: a `BatchNorm` that follows no
//!   Conv/FullyConnected (or whose producer's output is also read elsewhere), and an `Add`/`Mul` with
//!   a constant operand that could not be folded into a preceding Conv/FullyConnected (the runtime has
//!   no constant tensors). `Identity` never survives the passes.
//! - Values keep the source model's view of their layout ([`SourceLayout`]) so that graph inputs and
//!   outputs can be fed and read in the source layout (NCHW for ONNX, NCL for 1-D signals), as
//!   `.npy` files are.

pub mod float_exec;
pub mod io;
pub mod passes;
pub mod shape;
pub mod summary;

use std::fmt;

use anyhow::{bail, Result};
use ferrite_runtime::format::Activation;

pub use crate::ops::{ConstArith, ConstOperand, Op, UnaryFn};

/// The most elements a tensor may have (per sample): 2^28, a 1 GiB f32 tensor.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Index of a value in [`Graph::values`].
pub type ValueId = usize;

/// A tensor flowing through the graph: an activation (computed) or a constant (`data` set).
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub name: String,
    /// Dimensions; rank-4 activations are NHWC with batch 1.
    pub shape: Vec<usize>,
    /// The value's elements when it is a constant (C order over `shape`).
    pub data: Option<Vec<f32>>,
    /// How the source model orders this value's elements (what graph inputs and outputs expect).
    pub source: SourceLayout,
}

/// The element order the source model uses for a value, relative to the IR's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SourceLayout {
    /// The same order and shape.
    #[default]
    Same,
    /// The source sees `[n, c, h, w]` where the IR has `[n, h, w, c]`.
    Nchw,
    /// A 1-D signal: the source sees `[n, c, l]` where the IR has `[n, 1, l, c]` (a one-row image,
    /// so 1-D convolutions and pools are the 2-D operators with a kernel of height 1).
    Ncl,
    /// A flattened spatial tensor: the source orders the last axis `(c, h, w)`, the IR `(h, w, c)`.
    FlatChw { c: usize, h: usize, w: usize },
}

impl SourceLayout {
    /// The source's dims of a value whose IR shape is `ir`.
    pub fn source_dims(self, ir: &[usize]) -> Vec<usize> {
        match self {
            SourceLayout::Nchw => vec![ir[0], ir[3], ir[1], ir[2]],
            SourceLayout::Ncl => vec![ir[0], ir[3], ir[2]],
            _ => ir.to_vec(),
        }
    }

    /// Whether the source sees channels before the spatial axes (NCHW or NCL): the IR moves them last.
    pub fn channels_first(self) -> bool {
        matches!(self, SourceLayout::Nchw | SourceLayout::Ncl)
    }

    /// How the `.ferrite` metadata names this layout for a graph input or output (read back by
    /// `runtime_exec::Order::parse`): `NHWC` (the runtime's order, as it is), `NCHW`, `NCL`, or
    /// `CHW<c>x<h>x<w>` for a flattened spatial tensor.
    pub fn word(self) -> String {
        match self {
            SourceLayout::Same => "NHWC".into(),
            SourceLayout::Nchw => "NCHW".into(),
            SourceLayout::Ncl => "NCL".into(),
            SourceLayout::FlatChw { c, h, w } => format!("CHW{c}x{h}x{w}"),
        }
    }
}

impl Value {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A clamp applied to an operator's output: ReLU `[0, inf)`, ReLU6 `[0, 6]`, or any `[min, max]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    pub min: f32,
    pub max: f32,
}

impl Clamp {
    pub const NONE: Clamp = Clamp {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };
    pub const RELU: Clamp = Clamp {
        min: 0.0,
        max: f32::INFINITY,
    };
    pub const RELU6: Clamp = Clamp { min: 0.0, max: 6.0 };

    pub fn new(min: f32, max: f32) -> Clamp {
        Clamp { min, max }
    }

    pub fn is_none(&self) -> bool {
        *self == Clamp::NONE
    }

    /// Both clamps applied one after the other.
    pub fn then(self, next: Clamp) -> Clamp {
        Clamp {
            min: self.min.max(next.min),
            max: self.max.min(next.max),
        }
    }

    #[inline(always)]
    pub fn apply(&self, x: f32) -> f32 {
        x.max(self.min).min(self.max)
    }

    /// The runtime's fused activation with the same range, if there is one. int8 operators can apply any
    /// clamp (their `act_min..=act_max`); f32 operators only these four.
    pub fn activation(&self) -> Option<Activation> {
        [
            Activation::None,
            Activation::Relu,
            Activation::Relu6,
            Activation::ReluN1To1,
        ]
        .into_iter()
        .find(|a| a.range() == (self.min, self.max))
    }
}

impl fmt::Display for Clamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.activation() {
            Some(Activation::None) => write!(f, "none"),
            Some(Activation::Relu) => write!(f, "relu"),
            Some(Activation::Relu6) => write!(f, "relu6"),
            _ => write!(f, "clamp[{}, {}]", self.min, self.max),
        }
    }
}

/// Window of a convolution or pooling: strides, dilations and padding in NHWC's H and W.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

impl std::fmt::Display for Window2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let [t, l, b, r] = self.pads;
        write!(
            f,
            "kernel {kh}x{kw}, stride {sh}x{sw}, dilation {dh}x{dw}, pads {t},{l},{b},{r} (top, left, bottom, right)"
        )
    }
}

impl Window2d {
    /// Output size along H (`axis` 0) or W (`axis` 1) for an input of `size` (floor division; ceil-mode
    /// pooling is expressed by extra bottom/right padding at import).
    pub fn out_size(&self, axis: usize, size: usize) -> Option<usize> {
        let eff = (self.kernel[axis].checked_sub(1)?).checked_mul(self.dilation[axis])? + 1;
        let padded = size
            .checked_add(self.pads[axis])?
            .checked_add(self.pads[axis + 2])?;
        if padded < eff || self.stride[axis] == 0 || self.dilation[axis] == 0 {
            return None;
        }
        Some((padded - eff) / self.stride[axis] + 1)
    }
}

/// A trainable (or foldable) weight array with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Param {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Param {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Param { shape, data }
    }
}

/// One operator application: its op, the values it reads (in order) and the value it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Name in the source model (for messages, reports and `--ignore`).
    pub name: String,
    /// The source operator type (e.g. `Conv`, `Gemm`), kept for reports and `--ignore`.
    pub source_op: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

/// A graph: values, nodes in execution (topological) order, inputs and outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

impl Graph {
    /// Adds an activation value (no data) and returns its id.
    pub fn add_value(&mut self, name: impl Into<String>, shape: Vec<usize>) -> ValueId {
        self.values.push(Value {
            name: name.into(),
            shape,
            data: None,
            source: SourceLayout::Same,
        });
        self.values.len() - 1
    }

    /// Adds a constant value.
    pub fn add_const(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
    ) -> ValueId {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        self.values.push(Value {
            name: name.into(),
            shape,
            data: Some(data),
            source: SourceLayout::Same,
        });
        self.values.len() - 1
    }

    /// Appends a node computing `op` over `inputs`, infers its output shape and returns the output id.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        source_op: impl Into<String>,
        op: Op,
        inputs: Vec<ValueId>,
        output_name: impl Into<String>,
    ) -> Result<ValueId> {
        let name = name.into();
        let shapes: Vec<&[usize]> = inputs.iter().map(|&v| &self.values[v].shape[..]).collect();
        // Errors without the node's name: the caller's context names the node as its source does.
        let shape = op.output_shape(&shapes)?;
        let elements = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if elements.is_none_or(|e| e > MAX_ELEMENTS) {
            bail!("output shape {shape:?} is too large");
        }
        let output = self.add_value(output_name, shape);
        self.nodes.push(Node {
            name,
            source_op: source_op.into(),
            op,
            inputs,
            output,
        });
        Ok(output)
    }

    /// Whether `v` is a constant.
    pub fn is_const(&self, v: ValueId) -> bool {
        self.values[v].data.is_some()
    }

    /// For each value, the indices of the nodes that read it.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut c = vec![Vec::new(); self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &v in &n.inputs {
                if !c[v].contains(&i) {
                    c[v].push(i);
                }
            }
        }
        c
    }

    /// For each value, the index of the node that writes it.
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            p[n.output] = Some(i);
        }
        p
    }

    /// Re-infers every node's output shape from the inputs' and checks the graph is well formed: inputs
    /// defined before use, constants not produced, outputs defined.
    pub fn check(&self) -> Result<()> {
        let mut defined: Vec<bool> = self.values.iter().map(|v| v.data.is_some()).collect();
        for &i in &self.inputs {
            defined[i] = true;
        }
        for n in &self.nodes {
            for &v in &n.inputs {
                if !defined[v] {
                    bail!(
                        "node `{}` reads `{}` before it is computed",
                        n.name,
                        self.values[v].name
                    );
                }
            }
            if defined[n.output] {
                bail!(
                    "node `{}` writes `{}`, which is already defined",
                    n.name,
                    self.values[n.output].name
                );
            }
            let shapes: Vec<&[usize]> = n
                .inputs
                .iter()
                .map(|&v| &self.values[v].shape[..])
                .collect();
            let shape =
                n.op.output_shape(&shapes)
                    .map_err(|e| anyhow::anyhow!("node `{}` ({}): {e}", n.name, n.op.name()))?;
            if shape != self.values[n.output].shape {
                bail!(
                    "node `{}`: output shape {:?} recorded, {:?} inferred",
                    n.name,
                    self.values[n.output].shape,
                    shape
                );
            }
            defined[n.output] = true;
        }
        for &o in &self.outputs {
            if !defined[o] {
                bail!("graph output `{}` is never computed", self.values[o].name);
            }
        }
        Ok(())
    }

    /// Drops nodes whose outputs nobody reads (transitively) and values nothing refers to, renumbering
    /// the rest.
    pub fn prune(&mut self) {
        let mut live = vec![false; self.values.len()];
        for &o in &self.outputs {
            live[o] = true;
        }
        let mut keep = vec![false; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate().rev() {
            if live[n.output] {
                keep[i] = true;
                for &v in &n.inputs {
                    live[v] = true;
                }
            }
        }
        for &i in &self.inputs {
            live[i] = true;
        }
        let mut it = keep.iter();
        self.nodes.retain(|_| *it.next().unwrap());
        let mut map = vec![usize::MAX; self.values.len()];
        let mut values = Vec::new();
        for (i, v) in self.values.drain(..).enumerate() {
            if live[i] {
                map[i] = values.len();
                values.push(v);
            }
        }
        self.values = values;
        for n in &mut self.nodes {
            for v in &mut n.inputs {
                *v = map[*v];
            }
            n.output = map[n.output];
        }
        for v in self.inputs.iter_mut().chain(self.outputs.iter_mut()) {
            *v = map[*v];
        }
    }
}
