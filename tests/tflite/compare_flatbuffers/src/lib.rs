//! Two readers of the same `.tflite` fields, decoded into one [`Summary`] so they can be compared: the
//! importer's hand-written reader (`ferrite_quantizer::import::tflite::Model::parse` plus the option
//! fields the importer reads, by the importer's field ids) and the code flatc generates from the TFLite
//! schema, with its verifier ([`walk_verified`]) or without it ([`walk_unchecked`]).
//!
//! `generated/schema_generated.rs` is written by `run.sh` and is not part of the repository.

use std::hash::{Hash, Hasher};

use anyhow::{anyhow, bail, Context, Result};
use ferrite_quantizer::import::tflite::flatbuf::Table;
use ferrite_quantizer::import::tflite::Model;

#[allow(warnings, clippy::all, clippy::pedantic, clippy::nursery)]
#[rustfmt::skip]
#[path = "../generated/schema_generated.rs"]
mod generated;

use generated::tflite;

/// Quantization of a tensor: scale bits, zero points, quantized dimension.
pub type Quant = (Vec<u32>, Vec<i64>, i32);

#[derive(Debug, Default, PartialEq, Hash)]
pub struct TensorSummary {
    pub name: String,
    pub shape: Vec<i32>,
    pub dtype: u8,
    pub buffer: u32,
    pub quantization: Option<Quant>,
    pub is_variable: bool,
    pub sparse: bool,
}

#[derive(Debug, Default, PartialEq, Hash)]
pub struct OperatorSummary {
    pub opcode_index: u32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options_type: u8,
    pub has_options: bool,
    /// The option fields the importer reads for this options type (f32 as bits).
    pub options: Vec<i64>,
}

/// Everything the importer reads from a model.
#[derive(Debug, Default, PartialEq, Hash)]
pub struct Summary {
    pub version: u32,
    pub description: String,
    /// Per operator code: builtin code (max of the deprecated and the new field), custom code, version.
    pub codes: Vec<(i32, String, i32)>,
    pub tensors: Vec<TensorSummary>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub operators: Vec<OperatorSummary>,
    /// Per buffer: its data's byte offset in the file and its length.
    pub buffers: Vec<(usize, usize)>,
}

impl Summary {
    /// A stable 64-bit digest (FNV-1a over the derived `Hash`).
    pub fn digest(&self) -> u64 {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        self.hash(&mut h);
        h.0
    }
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// Where `data` lies in `file` (empty data: `(0, 0)`, wherever its pointer is).
fn span(file: &[u8], data: &[u8]) -> (usize, usize) {
    if data.is_empty() {
        return (0, 0);
    }
    (
        (data.as_ptr() as usize).wrapping_sub(file.as_ptr() as usize),
        data.len(),
    )
}

// BuiltinOptions union members the importer reads.
const CONV_2D: u8 = 1;
const DEPTHWISE_CONV_2D: u8 = 2;
const POOL_2D: u8 = 5;
const FULLY_CONNECTED: u8 = 8;
const SOFTMAX: u8 = 9;
const CONCATENATION: u8 = 10;
const ADD: u8 = 11;
const MUL: u8 = 21;
const RESIZE_NEAREST_NEIGHBOR: u8 = 74;
const LEAKY_RELU: u8 = 75;

/// The importer's reads of an options table (same field ids as `import::tflite::to_ir`).
fn hand_options(kind: u8, t: &Table<'_>) -> Result<Vec<i64>> {
    let i8f = |id, f| -> Result<i64> { Ok(i64::from(t.i8(id, f, 0)?)) };
    let i32f = |id, f, d| -> Result<i64> { Ok(i64::from(t.i32(id, f, d)?)) };
    Ok(match kind {
        CONV_2D => vec![
            i8f(0, "padding")?,
            i32f(1, "stride_w", 0)?,
            i32f(2, "stride_h", 0)?,
            i8f(3, "fused_activation_function")?,
            i32f(4, "dilation_w_factor", 1)?,
            i32f(5, "dilation_h_factor", 1)?,
        ],
        DEPTHWISE_CONV_2D => vec![
            i8f(0, "padding")?,
            i32f(1, "stride_w", 0)?,
            i32f(2, "stride_h", 0)?,
            i8f(4, "fused_activation_function")?,
            i32f(5, "dilation_w_factor", 1)?,
            i32f(6, "dilation_h_factor", 1)?,
        ],
        POOL_2D => vec![
            i8f(0, "padding")?,
            i32f(1, "stride_w", 0)?,
            i32f(2, "stride_h", 0)?,
            i32f(3, "filter_width", 0)?,
            i32f(4, "filter_height", 0)?,
            i8f(5, "fused_activation_function")?,
        ],
        FULLY_CONNECTED => vec![
            i8f(0, "fused_activation_function")?,
            i8f(1, "weights_format")?,
        ],
        SOFTMAX => vec![i64::from(t.f32(0, "beta", 0.0)?.to_bits())],
        CONCATENATION => vec![i32f(0, "axis", 0)?, i8f(1, "fused_activation_function")?],
        ADD | MUL => vec![i8f(0, "fused_activation_function")?],
        RESIZE_NEAREST_NEIGHBOR => vec![
            i64::from(t.bool(0, "align_corners")?),
            i64::from(t.bool(1, "half_pixel_centers")?),
        ],
        LEAKY_RELU => vec![i64::from(t.f32(0, "alpha", 0.0)?.to_bits())],
        _ => Vec::new(),
    })
}

/// Reads `bytes` with the importer's hand-written reader.
pub fn walk_hand(bytes: &[u8]) -> Result<Summary> {
    let m = Model::parse(bytes)?;
    let mut operators = Vec::with_capacity(m.operators.len());
    for o in &m.operators {
        operators.push(OperatorSummary {
            opcode_index: o.opcode_index,
            inputs: o.inputs.clone(),
            outputs: o.outputs.clone(),
            options_type: o.options_type,
            has_options: o.options.is_some(),
            options: match &o.options {
                Some(t) => hand_options(o.options_type, t)?,
                None => Vec::new(),
            },
        });
    }
    Ok(Summary {
        version: m.version,
        description: m.description.clone(),
        codes: m
            .operator_codes
            .iter()
            .map(|c| (c.builtin, c.custom.clone(), c.version))
            .collect(),
        tensors: m
            .tensors
            .iter()
            .map(|t| TensorSummary {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
                buffer: t.buffer,
                quantization: t.quantization.as_ref().map(|q| {
                    (
                        q.scale.iter().map(|s| s.to_bits()).collect(),
                        q.zero_point.clone(),
                        q.quantized_dimension,
                    )
                }),
                is_variable: t.is_variable,
                sparse: t.sparse,
            })
            .collect(),
        inputs: m.inputs.clone(),
        outputs: m.outputs.clone(),
        operators,
        buffers: m.buffers.iter().map(|b| span(bytes, b)).collect(),
    })
}

fn vec_i32(v: Option<flatbuffers::Vector<'_, i32>>) -> Vec<i32> {
    v.map(|v| v.iter().collect()).unwrap_or_default()
}

fn generated_options(o: &tflite::Operator<'_>) -> Vec<i64> {
    let kind = o.builtin_options_type().0;
    let act = |a: tflite::ActivationFunctionType| i64::from(a.0);
    match kind {
        CONV_2D => o.builtin_options_as_conv_2doptions().map(|t| {
            vec![
                i64::from(t.padding().0),
                i64::from(t.stride_w()),
                i64::from(t.stride_h()),
                act(t.fused_activation_function()),
                i64::from(t.dilation_w_factor()),
                i64::from(t.dilation_h_factor()),
            ]
        }),
        DEPTHWISE_CONV_2D => o.builtin_options_as_depthwise_conv_2doptions().map(|t| {
            vec![
                i64::from(t.padding().0),
                i64::from(t.stride_w()),
                i64::from(t.stride_h()),
                act(t.fused_activation_function()),
                i64::from(t.dilation_w_factor()),
                i64::from(t.dilation_h_factor()),
            ]
        }),
        POOL_2D => o.builtin_options_as_pool_2doptions().map(|t| {
            vec![
                i64::from(t.padding().0),
                i64::from(t.stride_w()),
                i64::from(t.stride_h()),
                i64::from(t.filter_width()),
                i64::from(t.filter_height()),
                act(t.fused_activation_function()),
            ]
        }),
        FULLY_CONNECTED => o.builtin_options_as_fully_connected_options().map(|t| {
            vec![
                act(t.fused_activation_function()),
                i64::from(t.weights_format().0),
            ]
        }),
        SOFTMAX => o
            .builtin_options_as_softmax_options()
            .map(|t| vec![i64::from(t.beta().to_bits())]),
        CONCATENATION => o
            .builtin_options_as_concatenation_options()
            .map(|t| vec![i64::from(t.axis()), act(t.fused_activation_function())]),
        ADD => o
            .builtin_options_as_add_options()
            .map(|t| vec![act(t.fused_activation_function())]),
        MUL => o
            .builtin_options_as_mul_options()
            .map(|t| vec![act(t.fused_activation_function())]),
        RESIZE_NEAREST_NEIGHBOR => {
            o.builtin_options_as_resize_nearest_neighbor_options()
                .map(|t| {
                    vec![
                        i64::from(t.align_corners()),
                        i64::from(t.half_pixel_centers()),
                    ]
                })
        }
        LEAKY_RELU => o
            .builtin_options_as_leaky_relu_options()
            .map(|t| vec![i64::from(t.alpha().to_bits())]),
        _ => None,
    }
    .unwrap_or_default()
}

/// The same reads as [`walk_hand`] through flatc's generated accessors, with the checks `Model::parse`
/// makes on the values (identifier, version, one subgraph, no custom quantization, buffers in range).
fn walk_generated(bytes: &[u8], m: tflite::Model<'_>) -> Result<Summary> {
    let version = m.version();
    if version != 3 {
        bail!("unsupported TFLite schema version {version} (expected 3)");
    }
    let codes = m
        .operator_codes()
        .map(|v| {
            v.iter()
                .map(|c| {
                    (
                        i32::from(c.deprecated_builtin_code()).max(c.builtin_code().0),
                        c.custom_code().unwrap_or_default().to_string(),
                        c.version(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let subgraphs = m.subgraphs().context("the model has no subgraphs")?;
    if subgraphs.len() != 1 {
        bail!("the model has {} subgraphs", subgraphs.len());
    }
    let g = subgraphs.get(0);
    let mut tensors = Vec::new();
    for (i, t) in g.tensors().into_iter().flatten().enumerate() {
        let quantization = match t.quantization() {
            Some(q) => {
                if q.details_type().0 != 0 {
                    bail!("tensor {i} uses custom quantization details");
                }
                Some((
                    q.scale()
                        .map(|v| v.iter().map(f32::to_bits).collect())
                        .unwrap_or_default(),
                    q.zero_point()
                        .map(|v| v.iter().collect())
                        .unwrap_or_default(),
                    q.quantized_dimension(),
                ))
            }
            None => None,
        };
        tensors.push(TensorSummary {
            name: t.name().unwrap_or_default().to_string(),
            shape: vec_i32(t.shape()),
            dtype: t.type_().0 as u8,
            buffer: t.buffer(),
            quantization,
            is_variable: t.is_variable(),
            sparse: t.sparsity().is_some(),
        });
    }
    let operators = g
        .operators()
        .into_iter()
        .flatten()
        .map(|o| OperatorSummary {
            opcode_index: o.opcode_index(),
            inputs: vec_i32(o.inputs()),
            outputs: vec_i32(o.outputs()),
            options_type: o.builtin_options_type().0,
            has_options: o.builtin_options().is_some(),
            options: generated_options(&o),
        })
        .collect();
    let mut buffers = Vec::new();
    for (i, b) in m.buffers().into_iter().flatten().enumerate() {
        let (offset, size) = (b.offset(), b.size_());
        if offset > 1 {
            let slice = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(size).ok())
                .and_then(|(o, s)| bytes.get(o..o.checked_add(s)?))
                .with_context(|| format!("buffer {i} lies past the end"))?;
            buffers.push(span(bytes, slice));
        } else {
            buffers.push(span(bytes, b.data().unwrap_or(&bytes[..0])));
        }
    }
    Ok(Summary {
        version,
        description: m.description().unwrap_or_default().to_string(),
        codes,
        tensors,
        inputs: vec_i32(g.inputs()),
        outputs: vec_i32(g.outputs()),
        operators,
        buffers,
    })
}

fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 {
        bail!("{} bytes is too short for a FlatBuffer", bytes.len());
    }
    if !tflite::model_buffer_has_identifier(bytes) {
        bail!("the FlatBuffer identifier is not TFL3");
    }
    Ok(())
}

/// Reads `bytes` through the generated code after its verifier accepts the whole buffer.
pub fn walk_verified(bytes: &[u8]) -> Result<Summary> {
    check_header(bytes)?;
    let m = tflite::root_as_model(bytes).map_err(|e| anyhow!("verifier: {e}"))?;
    walk_generated(bytes, m)
}

/// Reads `bytes` through the generated code without the verifier (`root_as_model_unchecked`).
///
/// # Safety
/// Only sound for a valid FlatBuffer: on corrupt input the generated accessors read wherever the
/// file's offsets point. Measuring exactly that is this function's purpose.
pub unsafe fn walk_unchecked(bytes: &[u8]) -> Result<Summary> {
    check_header(bytes)?;
    let m = unsafe { tflite::root_as_model_unchecked(bytes) };
    walk_generated(bytes, m)
}

/// The body of the size-measuring binaries: reads the file named by the first argument with `read` and
/// prints the summary's digest, or the error.
pub fn size_main(read: fn(&[u8]) -> Result<Summary>) -> std::process::ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: size_* FILE.tflite");
        return std::process::ExitCode::FAILURE;
    };
    match std::fs::read(&path)
        .with_context(|| format!("reading {path}"))
        .and_then(|b| read(&b).map(|s| s.digest()))
    {
        Ok(d) => {
            println!("{d:016x}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
