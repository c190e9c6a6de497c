//! The parts of the TFLite schema (`tensorflow/compiler/mlir/lite/schema/schema.fbs`) the importer reads,
//! decoded into plain structs. Field ids are the schema's declaration order (a union takes two ids: its
//! type, then its value).

use anyhow::{bail, Context, Result};

use super::flatbuf::Table;

/// TensorType values.
pub mod tensor_type {
    pub const FLOAT32: u8 = 0;
    pub const INT32: u8 = 2;
    pub const INT64: u8 = 4;
    pub const INT16: u8 = 7;
    pub const INT8: u8 = 9;

    /// The schema's name of a tensor type.
    pub fn name(t: u8) -> &'static str {
        const NAMES: [&str; 21] = [
            "FLOAT32",
            "FLOAT16",
            "INT32",
            "UINT8",
            "INT64",
            "STRING",
            "BOOL",
            "INT16",
            "COMPLEX64",
            "INT8",
            "FLOAT64",
            "COMPLEX128",
            "UINT64",
            "RESOURCE",
            "VARIANT",
            "UINT32",
            "UINT16",
            "INT4",
            "BFLOAT16",
            "INT2",
            "UINT4",
        ];
        NAMES.get(t as usize).copied().unwrap_or("unknown type")
    }
}

/// BuiltinOperator codes the importer handles.
pub mod op {
    pub const ADD: i32 = 0;
    pub const AVERAGE_POOL_2D: i32 = 1;
    pub const CONCATENATION: i32 = 2;
    pub const CONV_2D: i32 = 3;
    pub const DEPTHWISE_CONV_2D: i32 = 4;
    pub const DEPTH_TO_SPACE: i32 = 5;
    pub const DEQUANTIZE: i32 = 6;
    pub const FULLY_CONNECTED: i32 = 9;
    pub const LOGISTIC: i32 = 14;
    pub const MAX_POOL_2D: i32 = 17;
    pub const MUL: i32 = 18;
    pub const RELU: i32 = 19;
    pub const RELU_N1_TO_1: i32 = 20;
    pub const RELU6: i32 = 21;
    pub const RESHAPE: i32 = 22;
    pub const RESIZE_BILINEAR: i32 = 23;
    pub const SOFTMAX: i32 = 25;
    pub const TANH: i32 = 28;
    pub const PAD: i32 = 34;
    pub const TRANSPOSE: i32 = 39;
    pub const MEAN: i32 = 40;
    pub const SUB: i32 = 41;
    pub const STRIDED_SLICE: i32 = 45;
    pub const SPLIT: i32 = 49;
    pub const SQUEEZE: i32 = 43;
    pub const PRELU: i32 = 54;
    pub const SLICE: i32 = 65;
    pub const MAXIMUM: i32 = 55;
    pub const MINIMUM: i32 = 57;
    pub const RESIZE_NEAREST_NEIGHBOR: i32 = 97;
    pub const TRANSPOSE_CONV: i32 = 67;
    pub const LEAKY_RELU: i32 = 98;
    pub const SPLIT_V: i32 = 102;
    pub const MIRROR_PAD: i32 = 100;
    pub const QUANTIZE: i32 = 114;
    pub const HARD_SWISH: i32 = 117;
    pub const CUSTOM: i32 = 32;

    /// Names of BuiltinOperator 0..=127 (the ones beyond are printed by number).
    const NAMES: [&str; 128] = [
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "DEPTH_TO_SPACE",
        "DEQUANTIZE",
        "EMBEDDING_LOOKUP",
        "FLOOR",
        "FULLY_CONNECTED",
        "HASHTABLE_LOOKUP",
        "L2_NORMALIZATION",
        "L2_POOL_2D",
        "LOCAL_RESPONSE_NORMALIZATION",
        "LOGISTIC",
        "LSH_PROJECTION",
        "LSTM",
        "MAX_POOL_2D",
        "MUL",
        "RELU",
        "RELU_N1_TO_1",
        "RELU6",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RNN",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SVDF",
        "TANH",
        "CONCAT_EMBEDDINGS",
        "SKIP_GRAM",
        "CALL",
        "CUSTOM",
        "EMBEDDING_LOOKUP_SPARSE",
        "PAD",
        "UNIDIRECTIONAL_SEQUENCE_RNN",
        "GATHER",
        "BATCH_TO_SPACE_ND",
        "SPACE_TO_BATCH_ND",
        "TRANSPOSE",
        "MEAN",
        "SUB",
        "DIV",
        "SQUEEZE",
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "STRIDED_SLICE",
        "BIDIRECTIONAL_SEQUENCE_RNN",
        "EXP",
        "TOPK_V2",
        "SPLIT",
        "LOG_SOFTMAX",
        "DELEGATE",
        "BIDIRECTIONAL_SEQUENCE_LSTM",
        "CAST",
        "PRELU",
        "MAXIMUM",
        "ARG_MAX",
        "MINIMUM",
        "LESS",
        "NEG",
        "PADV2",
        "GREATER",
        "GREATER_EQUAL",
        "LESS_EQUAL",
        "SELECT",
        "SLICE",
        "SIN",
        "TRANSPOSE_CONV",
        "SPARSE_TO_DENSE",
        "TILE",
        "EXPAND_DIMS",
        "EQUAL",
        "NOT_EQUAL",
        "LOG",
        "SUM",
        "SQRT",
        "RSQRT",
        "SHAPE",
        "POW",
        "ARG_MIN",
        "FAKE_QUANT",
        "REDUCE_PROD",
        "REDUCE_MAX",
        "PACK",
        "LOGICAL_OR",
        "ONE_HOT",
        "LOGICAL_AND",
        "LOGICAL_NOT",
        "UNPACK",
        "REDUCE_MIN",
        "FLOOR_DIV",
        "REDUCE_ANY",
        "SQUARE",
        "ZEROS_LIKE",
        "FILL",
        "FLOOR_MOD",
        "RANGE",
        "RESIZE_NEAREST_NEIGHBOR",
        "LEAKY_RELU",
        "SQUARED_DIFFERENCE",
        "MIRROR_PAD",
        "ABS",
        "SPLIT_V",
        "UNIQUE",
        "CEIL",
        "REVERSE_V2",
        "ADD_N",
        "GATHER_ND",
        "COS",
        "WHERE",
        "RANK",
        "ELU",
        "REVERSE_SEQUENCE",
        "MATRIX_DIAG",
        "QUANTIZE",
        "MATRIX_SET_DIAG",
        "ROUND",
        "HARD_SWISH",
        "IF",
        "WHILE",
        "NON_MAX_SUPPRESSION_V4",
        "NON_MAX_SUPPRESSION_V5",
        "SCATTER_ND",
        "SELECT_V2",
        "DENSIFY",
        "SEGMENT_SUM",
        "BATCH_MATMUL",
        "PLACEHOLDER_FOR_GREATER_OP_CODES",
    ];

    /// The schema's name of a builtin operator code.
    pub fn name(code: i32) -> String {
        usize::try_from(code)
            .ok()
            .and_then(|c| NAMES.get(c))
            .map_or_else(|| format!("builtin operator {code}"), |n| n.to_string())
    }
}

/// Per-tensor or per-axis affine quantization.
#[derive(Clone, Debug, Default)]
pub struct Quantization {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub quantized_dimension: i32,
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i32>,
    pub dtype: u8,
    pub buffer: u32,
    pub quantization: Option<Quantization>,
    pub is_variable: bool,
    pub sparse: bool,
}

#[derive(Clone)]
pub struct Operator<'a> {
    pub opcode_index: u32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options_type: u8,
    pub options: Option<Table<'a>>,
}

#[derive(Clone, Debug)]
pub struct OperatorCode {
    /// `max(deprecated_builtin_code, builtin_code)`, as the schema prescribes.
    pub builtin: i32,
    pub custom: String,
    pub version: i32,
}

/// A parsed model: its first subgraph, operator codes and buffers (borrowed from the file).
pub struct Model<'a> {
    pub version: u32,
    pub description: String,
    pub operator_codes: Vec<OperatorCode>,
    pub tensors: Vec<Tensor>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub operators: Vec<Operator<'a>>,
    pub buffers: Vec<&'a [u8]>,
}

fn i32s(t: &Table<'_>, id: usize, field: &str) -> Result<Vec<i32>> {
    Ok(t.vector(id, field, 4)?
        .map(|v| v.i32s())
        .unwrap_or_default())
}

impl<'a> Model<'a> {
    /// Reads a `.tflite` file. Only the first subgraph is read; a model with several (control flow) is refused.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < 8 {
            bail!(
                "not a TFLite model: {} bytes is too short for a FlatBuffer",
                bytes.len()
            );
        }
        if &bytes[4..8] != b"TFL3" {
            bail!("not a TFLite model: the FlatBuffer identifier is not TFL3");
        }
        let model = Table::root(bytes, "Model")?;
        let version = model.u32(0, "version", 0)?;
        if version != 3 {
            bail!("unsupported TFLite schema version {version} (expected 3)");
        }
        let mut operator_codes = Vec::new();
        if let Some(v) = model.vector(1, "operator_codes", 4)? {
            for i in 0..v.len() {
                let c = v.table(i, "OperatorCode")?;
                let deprecated = c.i8(0, "deprecated_builtin_code", 0)? as i32;
                let builtin = c.i32(3, "builtin_code", 0)?;
                operator_codes.push(OperatorCode {
                    builtin: deprecated.max(builtin),
                    custom: c.string(1, "custom_code")?,
                    version: c.i32(2, "version", 1)?,
                });
            }
        }
        let subgraphs = model
            .vector(2, "subgraphs", 4)?
            .context("the model has no subgraphs")?;
        match subgraphs.len() {
            0 => bail!("the model has no subgraphs"),
            1 => {}
            n => bail!("the model has {n} subgraphs (control flow); only single-subgraph models are supported"),
        }
        let g = subgraphs.table(0, "SubGraph")?;
        let mut tensors = Vec::new();
        if let Some(v) = g.vector(0, "tensors", 4)? {
            for i in 0..v.len() {
                let t = v.table(i, "Tensor")?;
                let quantization = match t.table(4, "quantization", "QuantizationParameters")? {
                    Some(q) => {
                        let scale = q
                            .vector(2, "scale", 4)?
                            .map(|v| v.f32s())
                            .unwrap_or_default();
                        let zero_point = q
                            .vector(3, "zero_point", 8)?
                            .map(|v| v.i64s())
                            .unwrap_or_default();
                        if q.u8(4, "details_type", 0)? != 0 {
                            bail!("tensor {i} uses custom quantization details, which are not supported");
                        }
                        Some(Quantization {
                            scale,
                            zero_point,
                            quantized_dimension: q.i32(6, "quantized_dimension", 0)?,
                        })
                    }
                    None => None,
                };
                tensors.push(Tensor {
                    name: t.string(3, "name")?,
                    shape: i32s(&t, 0, "shape")?,
                    dtype: t.u8(1, "type", 0)?,
                    buffer: t.u32(2, "buffer", 0)?,
                    quantization,
                    is_variable: t.bool(5, "is_variable")?,
                    sparse: t.table(6, "sparsity", "SparsityParameters")?.is_some(),
                });
            }
        }
        let mut operators = Vec::new();
        if let Some(v) = g.vector(3, "operators", 4)? {
            for i in 0..v.len() {
                let o = v.table(i, "Operator")?;
                let options_type = o.u8(3, "builtin_options_type", 0)?;
                let options = o.table(4, "builtin_options", "BuiltinOptions")?;
                operators.push(Operator {
                    opcode_index: o.u32(0, "opcode_index", 0)?,
                    inputs: i32s(&o, 1, "inputs")?,
                    outputs: i32s(&o, 2, "outputs")?,
                    options_type,
                    options,
                });
            }
        }
        let mut buffers = Vec::new();
        if let Some(v) = model.vector(4, "buffers", 4)? {
            for i in 0..v.len() {
                let b = v.table(i, "Buffer")?;
                let data = b.vector(0, "data", 1)?.map(|d| d.bytes()).unwrap_or(&[]);
                let offset = b.u64(1, "offset", 0)?;
                let size = b.u64(2, "size", 0)?;
                if offset > 1 {
                    // Data stored after the FlatBuffer (models over 2 GB), at an offset from the file start.
                    let slice = usize::try_from(offset)
                        .ok()
                        .zip(usize::try_from(size).ok())
                        .and_then(|(o, s)| bytes.get(o..o.checked_add(s)?));
                    match slice {
                        Some(s) => buffers.push(s),
                        None => bail!("corrupt or truncated file: buffer {i} ({size} bytes at byte {offset}) lies past the end ({} bytes)", bytes.len()),
                    }
                } else {
                    buffers.push(data);
                }
            }
        }
        Ok(Self {
            version,
            description: model.string(3, "description")?,
            operator_codes,
            tensors,
            inputs: i32s(&g, 1, "inputs")?,
            outputs: i32s(&g, 2, "outputs")?,
            operators,
            buffers,
        })
    }

    /// The operator code of operator `i`.
    pub fn code(&self, i: usize) -> Result<&OperatorCode> {
        let idx = self.operators[i].opcode_index as usize;
        self.operator_codes.get(idx).with_context(|| {
            format!(
                "operator {i} uses operator code {idx}, but the model has {}",
                self.operator_codes.len()
            )
        })
    }

    /// The constant data of tensor `t` (empty when it has none).
    pub fn data(&self, t: usize) -> &'a [u8] {
        let b = self.tensors[t].buffer as usize;
        if b == 0 {
            return &[];
        }
        self.buffers.get(b).copied().unwrap_or(&[])
    }
}
