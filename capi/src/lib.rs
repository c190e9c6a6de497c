//! The C API of the Ferrite runtime: a `no_std`, allocation-free static library.
//!
//! C sees three things: a [`FerriteModel`] (a validated model, in storage the caller provides: a local
//! or a static), a [`FerriteInterpreter`] (opaque, placed by [`ferrite_interpreter_create`] at the
//! 16-byte aligned start of the caller's arena, the rest of which holds the activations) and a
//! [`FerriteStatus`] returned by every call. Nothing allocates; every pointer and length is checked;
//! no call panics (a panic would be a bug: the handler traps, see the end of this file). The header
//! `include/ferrite.h` is generated from this file by `cargo xtask cbindgen`.
#![cfg_attr(not(test), no_std)]

use core::cell::Cell;
use core::ffi::{c_char, c_int, c_void, CStr};
use core::mem::{align_of, size_of, MaybeUninit};
use core::ptr::{self, addr_of, addr_of_mut};

use ferrite_runtime::format::{DType, Tensor, MAX_RANK};
use ferrite_runtime::{Error, Interpreter, Model};

/// Status of every call: `FERRITE_STATUS_OK` or what went wrong (`ferrite_status_message` names it;
/// `ferrite_model_error_message` and `ferrite_interpreter_error_message` give the details of the last
/// model or runtime error).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FerriteStatus {
    /// Success.
    Ok = 0,
    /// A pointer argument is NULL.
    NullPointer = 1,
    /// A pointer argument is not aligned for its type (a `FerriteModel *` to 8 bytes, a `float *` to
    /// 4, a `FerriteInterpreter **` to a pointer).
    Misaligned = 2,
    /// The `FerriteModel` was not loaded (or its load failed), or the `FerriteInterpreter` pointer is
    /// not one `ferrite_interpreter_create` returned.
    InvalidHandle = 3,
    /// The model bytes are shorter than the header or the payload it declares.
    ModelTruncated = 4,
    /// The bytes are not a `.ferrite` model (bad magic).
    ModelNotFerrite = 5,
    /// A format version or header flags this runtime does not read.
    ModelUnsupported = 6,
    /// The payload's checksum does not match: the model is corrupt.
    ModelCorrupt = 7,
    /// The model does not pass validation (payload, tensor, operator or memory plan).
    ModelInvalid = 8,
    /// The model uses an operator (or f32 or int16x8 kernels) this library was built without.
    OperatorNotBuilt = 9,
    /// The arena is smaller than `ferrite_model_arena_size` (plus alignment padding).
    ArenaTooSmall = 10,
    /// No input or output with that index.
    NoSuchTensor = 11,
    /// The tensor's element type is not the one the call reads or writes.
    WrongType = 12,
    /// The buffer's length is not the tensor's (in elements, or bytes for the raw calls).
    WrongLength = 13,
}

/// Element type of an input or output tensor.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FerriteType {
    /// Signed 8-bit integer, quantized: real value = `scale * (q - zero_point)`.
    Int8 = 0,
    /// Signed 16-bit integer.
    Int16 = 1,
    /// Signed 32-bit integer.
    Int32 = 2,
    /// 32-bit float.
    Float32 = 3,
}

/// Largest number of dimensions of a tensor.
pub const FERRITE_MAX_RANK: usize = 4;

/// Alignment the interpreter gives the arena's start: a buffer aligned to it needs exactly
/// `ferrite_model_arena_size` bytes; a less aligned one up to `FERRITE_ARENA_ALIGN - 1` more.
pub const FERRITE_ARENA_ALIGN: usize = 16;

/// Size of `FerriteModel`, in 8-byte words.
pub const FERRITE_MODEL_WORDS: usize = 40;

/// Bytes the interpreter's own state takes at the start of the arena, in pointer-sized words
/// (`FERRITE_ARENA_OVERHEAD` in bytes).
pub const FERRITE_INTERPRETER_WORDS: usize = 48;

/// Shape, type and quantization of an input or output.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FerriteTensorInfo {
    /// Element type.
    pub dtype: FerriteType,
    /// Number of dimensions (1 to `FERRITE_MAX_RANK`).
    pub rank: u32,
    /// The dimensions (NHWC for rank 4); entries past `rank` are 0.
    pub dims: [u32; FERRITE_MAX_RANK],
    /// Number of elements.
    pub elements: usize,
    /// Size in bytes (`elements` times the element size).
    pub bytes: usize,
    /// Quantization scale (0 for float tensors).
    pub scale: f32,
    /// Quantization zero point (0 for float tensors).
    pub zero_point: i32,
}

/// A loaded (validated) model: storage the caller provides, filled by `ferrite_model_load`. Its
/// contents are private. It refers to the model bytes, which must stay where they are, unchanged,
/// as long as the model or any interpreter created from it is used. It may be moved or discarded once
/// the interpreters are created (each keeps its own copy).
#[repr(C)]
pub struct FerriteModel {
    opaque: [u64; FERRITE_MODEL_WORDS],
}

/// An interpreter: a model bound to an arena, created by `ferrite_interpreter_create` inside the
/// arena (no other memory), valid as long as the arena and the model bytes are.
pub struct FerriteInterpreter {
    magic: u32,
    error: Cell<Option<Error>>,
    model: Model<'static>,
    interpreter: MaybeUninit<Interpreter<'static>>,
}

/// What a [`FerriteModel`]'s storage holds.
struct ModelState {
    magic: u32,
    error: Cell<Option<Error>>,
    model: Option<Model<'static>>,
}

const MODEL_MAGIC: u32 = u32::from_le_bytes(*b"FRmd");
const INTERPRETER_MAGIC: u32 = u32::from_le_bytes(*b"FRin");

/// Bytes of the arena before the runtime's part: the interpreter state, rounded to the alignment.
const OVERHEAD: usize = FERRITE_INTERPRETER_WORDS * size_of::<usize>();

const _: () = assert!(size_of::<ModelState>() <= size_of::<FerriteModel>());
const _: () = assert!(align_of::<ModelState>() <= align_of::<FerriteModel>());
const _: () = assert!(size_of::<FerriteInterpreter>() <= OVERHEAD);
const _: () = assert!(align_of::<FerriteInterpreter>() <= FERRITE_ARENA_ALIGN);
const _: () = assert!(OVERHEAD.is_multiple_of(FERRITE_ARENA_ALIGN));
const _: () = assert!(FERRITE_MAX_RANK == MAX_RANK);

// ---------------------------------------------------------------------------------------------------
// Status and messages.

/// The status for a runtime error.
fn status_of(e: &Error) -> FerriteStatus {
    match e {
        Error::Truncated { .. } => FerriteStatus::ModelTruncated,
        Error::BadMagic => FerriteStatus::ModelNotFerrite,
        Error::UnsupportedVersion { .. } | Error::UnknownFlags { .. } => {
            FerriteStatus::ModelUnsupported
        }
        Error::ChecksumMismatch { .. } => FerriteStatus::ModelCorrupt,
        Error::FloatKernelsDisabled
        | Error::Int16KernelsDisabled { .. }
        | Error::OperatorNotBuilt { .. }
        | Error::UnknownOperator { .. } => FerriteStatus::OperatorNotBuilt,
        Error::ArenaTooSmall { .. } => FerriteStatus::ArenaTooSmall,
        Error::NoSuchTensor { .. } => FerriteStatus::NoSuchTensor,
        Error::WrongType { .. } => FerriteStatus::WrongType,
        Error::WrongLength { .. } => FerriteStatus::WrongLength,
        // ReservedNotZero, ArenaLargerThanPlan, Malformed, InvalidTensor, InvalidOperator,
        // PlanOverlap and any later variant.
        _ => FerriteStatus::ModelInvalid,
    }
}

/// A static, NUL-terminated description of a status (of any `int`: values that are not a status
/// give "unknown status"). Never NULL.
#[no_mangle]
pub extern "C" fn ferrite_status_message(status: c_int) -> *const c_char {
    let text: &CStr = match status {
        0 => c"ok",
        1 => c"a pointer argument is NULL",
        2 => c"a pointer argument is misaligned for its type",
        3 => c"not a loaded model or a created interpreter",
        4 => c"model truncated",
        5 => c"not a .ferrite model (bad magic)",
        6 => c"model format version or flags not supported by this runtime",
        7 => c"model checksum mismatch: corrupt model",
        8 => c"invalid model",
        9 => c"the model uses an operator this library was built without",
        10 => c"arena too small",
        11 => c"no input or output with that index",
        12 => c"the tensor has another element type",
        13 => c"wrong buffer length for the tensor",
        _ => c"unknown status",
    };
    text.as_ptr()
}

/// The library's version, a static NUL-terminated string such as "0.1.0".
#[no_mangle]
pub extern "C" fn ferrite_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Writes `text` into a C buffer, truncating, NUL-terminated; counts the whole length.
struct CBuffer {
    buf: *mut u8,
    cap: usize,
    written: usize,
    total: usize,
}

impl core::fmt::Write for CBuffer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.cap.saturating_sub(1).saturating_sub(self.written);
        let n = s.len().min(room);
        if n > 0 {
            // SAFETY: `buf` points to `cap` writable bytes (the caller's contract) and
            // `written + n <= cap - 1`.
            unsafe { ptr::copy_nonoverlapping(s.as_ptr(), self.buf.add(self.written), n) };
            self.written += n;
        }
        self.total += s.len();
        Ok(())
    }
}

/// Formats the recorded error (or nothing) into `buf`, returning its full length.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
unsafe fn write_error(error: Option<Error>, buf: *mut c_char, len: usize) -> usize {
    use core::fmt::Write;
    let mut out = CBuffer {
        buf: buf.cast(),
        cap: if buf.is_null() { 0 } else { len },
        written: 0,
        total: 0,
    };
    if let Some(e) = error {
        let _ = write!(out, "{e}");
    }
    if out.cap > 0 {
        // SAFETY: `written <= cap - 1`, inside the caller's buffer.
        unsafe { *out.buf.add(out.written) = 0 };
    }
    out.total
}

// ---------------------------------------------------------------------------------------------------
// Handles.

/// The model state behind a `FerriteModel *`, if it is one `ferrite_model_load` filled.
///
/// # Safety
/// `model` is NULL or points to a `FerriteModel`.
unsafe fn model_state<'a>(model: *const FerriteModel) -> Result<&'a ModelState, FerriteStatus> {
    if model.is_null() {
        return Err(FerriteStatus::NullPointer);
    }
    if !(model as usize).is_multiple_of(align_of::<FerriteModel>()) {
        return Err(FerriteStatus::Misaligned);
    }
    let state = model.cast::<ModelState>();
    // SAFETY: non-null, aligned, and the storage is large enough (asserted above); the magic is read
    // first so that a never-loaded model is refused before its other fields are looked at.
    if unsafe { ptr::read(addr_of!((*state).magic)) } != MODEL_MAGIC {
        return Err(FerriteStatus::InvalidHandle);
    }
    // SAFETY: the magic says `ferrite_model_load` wrote a `ModelState` there.
    Ok(unsafe { &*state })
}

/// The loaded model behind a `FerriteModel *`.
///
/// # Safety
/// As [`model_state`].
unsafe fn loaded<'a>(model: *const FerriteModel) -> Result<&'a Model<'static>, FerriteStatus> {
    // SAFETY: the caller's contract.
    let state = unsafe { model_state(model)? };
    state.model.as_ref().ok_or(FerriteStatus::InvalidHandle)
}

/// Checks a `FerriteInterpreter *`.
///
/// # Safety
/// `it` is NULL or points to memory `ferrite_interpreter_create` may have written.
unsafe fn checked(it: *const FerriteInterpreter) -> Result<(), FerriteStatus> {
    if it.is_null() {
        return Err(FerriteStatus::NullPointer);
    }
    if !(it as usize).is_multiple_of(FERRITE_ARENA_ALIGN) {
        return Err(FerriteStatus::Misaligned);
    }
    // SAFETY: non-null and aligned; the arena holds at least the state's bytes when created.
    if unsafe { ptr::read(addr_of!((*it).magic)) } != INTERPRETER_MAGIC {
        return Err(FerriteStatus::InvalidHandle);
    }
    Ok(())
}

/// Runs `f` on the interpreter, recording a runtime error in it.
///
/// # Safety
/// `it` is NULL or a pointer `ferrite_interpreter_create` returned, its arena still alive.
unsafe fn with_interpreter(
    it: *mut FerriteInterpreter,
    f: impl FnOnce(&mut Interpreter<'static>) -> Result<(), Error>,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    if let Err(s) = unsafe { checked(it) } {
        return s;
    }
    // SAFETY: checked: a created interpreter. The fields are reached one by one (the interpreter
    // holds a shared reference to `model`, which stays untouched).
    let (error, interpreter) = unsafe {
        (
            &*addr_of!((*it).error),
            (*addr_of_mut!((*it).interpreter)).assume_init_mut(),
        )
    };
    match f(interpreter) {
        Ok(()) => FerriteStatus::Ok,
        Err(e) => {
            error.set(Some(e));
            status_of(&e)
        }
    }
}

/// Like [`with_interpreter`], reading only.
///
/// # Safety
/// As [`with_interpreter`].
unsafe fn with_interpreter_ref(
    it: *const FerriteInterpreter,
    f: impl FnOnce(&Interpreter<'static>) -> Result<(), Error>,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    if let Err(s) = unsafe { checked(it) } {
        return s;
    }
    // SAFETY: checked: a created interpreter.
    let (error, interpreter) = unsafe {
        (
            &*addr_of!((*it).error),
            (*addr_of!((*it).interpreter)).assume_init_ref(),
        )
    };
    match f(interpreter) {
        Ok(()) => FerriteStatus::Ok,
        Err(e) => {
            error.set(Some(e));
            status_of(&e)
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Models.

/// Loads and validates a model (header, checksum, every tensor, operator and the memory plan), once.
/// The bytes are used in place: keep them alive and unchanged while the model or its interpreters
/// are used. They may extend past the file (e.g. a flash partition). On failure the model records the
/// error (`ferrite_model_error_message`) and stays unusable.
///
/// # Safety
/// `model` is NULL or points to a writable `FerriteModel`; `data` is NULL or points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn ferrite_model_load(
    model: *mut FerriteModel,
    data: *const u8,
    len: usize,
) -> FerriteStatus {
    if model.is_null() {
        return FerriteStatus::NullPointer;
    }
    if !(model as usize).is_multiple_of(align_of::<FerriteModel>()) {
        return FerriteStatus::Misaligned;
    }
    let state = model.cast::<ModelState>();
    let (loaded, error, status) = if data.is_null() {
        (None, None, FerriteStatus::NullPointer)
    } else if len > isize::MAX as usize {
        (None, None, FerriteStatus::WrongLength)
    } else {
        // SAFETY: the caller's contract: `len` readable bytes, alive as long as the model is used
        // (hence the 'static the C side promises).
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(data, len) };
        match Model::from_bytes(bytes) {
            Ok(m) => (Some(m), None, FerriteStatus::Ok),
            Err(e) => (None, Some(e), status_of(&e)),
        }
    };
    // SAFETY: non-null, aligned, large enough (asserted); written whole, whatever it held.
    unsafe {
        ptr::write(
            state,
            ModelState {
                magic: MODEL_MAGIC,
                error: Cell::new(error),
                model: loaded,
            },
        )
    };
    status
}

/// The arena `ferrite_interpreter_create` needs for this model, in bytes: the runtime's activations
/// (the model header's arena size) plus `FERRITE_ARENA_OVERHEAD` for the interpreter's own state,
/// for a buffer aligned to `FERRITE_ARENA_ALIGN` (`FERRITE_ARENA_SIZE(header arena size)`).
///
/// # Safety
/// `model` is NULL or points to a `FerriteModel`; `size` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ferrite_model_arena_size(
    model: *const FerriteModel,
    size: *mut usize,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    let m = match unsafe { loaded(model) } {
        Ok(m) => m,
        Err(s) => return s,
    };
    // SAFETY: the caller's contract.
    unsafe { write_out(size, m.arena_size().saturating_add(OVERHEAD)) }
}

/// Writes `value` through an out pointer, checking it.
///
/// # Safety
/// `out` is NULL or points to a writable `T`.
unsafe fn write_out<T>(out: *mut T, value: T) -> FerriteStatus {
    if out.is_null() {
        return FerriteStatus::NullPointer;
    }
    if !(out as usize).is_multiple_of(align_of::<T>()) {
        return FerriteStatus::Misaligned;
    }
    // SAFETY: non-null, aligned, writable (the caller's contract).
    unsafe { out.write(value) };
    FerriteStatus::Ok
}

fn info_of(t: &Tensor<'_>) -> FerriteTensorInfo {
    let mut dims = [0u32; FERRITE_MAX_RANK];
    for (d, &s) in dims.iter_mut().zip(t.shape.dims()) {
        *d = u32::from(s);
    }
    let elements = t.shape.elements().unwrap_or(0);
    FerriteTensorInfo {
        dtype: match t.dtype {
            DType::I8 => FerriteType::Int8,
            DType::I16 => FerriteType::Int16,
            DType::I32 => FerriteType::Int32,
            DType::F32 => FerriteType::Float32,
        },
        rank: t.shape.dims().len() as u32,
        dims,
        elements,
        bytes: elements.saturating_mul(t.dtype.size()),
        scale: t.scale,
        zero_point: t.zero_point,
    }
}

/// Which end of the graph.
#[derive(Clone, Copy)]
enum Side {
    Input,
    Output,
}

fn count_of(m: &Model<'_>, side: Side) -> usize {
    match side {
        Side::Input => m.inputs(),
        Side::Output => m.outputs(),
    }
}

fn tensor_of<'a>(m: &Model<'a>, side: Side, index: usize) -> Result<Tensor<'a>, Error> {
    match side {
        Side::Input => m.input(index),
        Side::Output => m.output(index),
    }
}

/// # Safety
/// As [`ferrite_model_input_count`].
unsafe fn model_count(model: *const FerriteModel, side: Side, count: *mut usize) -> FerriteStatus {
    // SAFETY: the caller's contract.
    match unsafe { loaded(model) } {
        // SAFETY: the caller's contract.
        Ok(m) => unsafe { write_out(count, count_of(m, side)) },
        Err(s) => s,
    }
}

/// # Safety
/// As [`ferrite_model_input_info`].
unsafe fn model_info(
    model: *const FerriteModel,
    side: Side,
    index: usize,
    info: *mut FerriteTensorInfo,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    let state = match unsafe { model_state(model) } {
        Ok(s) => s,
        Err(s) => return s,
    };
    let Some(m) = &state.model else {
        return FerriteStatus::InvalidHandle;
    };
    if info.is_null() {
        return FerriteStatus::NullPointer;
    }
    match tensor_of(m, side, index) {
        // SAFETY: the caller's contract.
        Ok(t) => unsafe { write_out(info, info_of(&t)) },
        Err(e) => {
            state.error.set(Some(e));
            status_of(&e)
        }
    }
}

/// Number of model inputs.
///
/// # Safety
/// `model` is NULL or points to a `FerriteModel`; `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ferrite_model_input_count(
    model: *const FerriteModel,
    count: *mut usize,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe { model_count(model, Side::Input, count) }
}

/// Number of model outputs.
///
/// # Safety
/// As `ferrite_model_input_count`.
#[no_mangle]
pub unsafe extern "C" fn ferrite_model_output_count(
    model: *const FerriteModel,
    count: *mut usize,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe { model_count(model, Side::Output, count) }
}

/// Type, shape, size and quantization of model input `index`.
///
/// # Safety
/// `model` is NULL or points to a `FerriteModel`; `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ferrite_model_input_info(
    model: *const FerriteModel,
    index: usize,
    info: *mut FerriteTensorInfo,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe { model_info(model, Side::Input, index, info) }
}

/// Type, shape, size and quantization of model output `index`.
///
/// # Safety
/// As `ferrite_model_input_info`.
#[no_mangle]
pub unsafe extern "C" fn ferrite_model_output_info(
    model: *const FerriteModel,
    index: usize,
    info: *mut FerriteTensorInfo,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe { model_info(model, Side::Output, index, info) }
}

/// The last error `ferrite_model_load`, `ferrite_interpreter_create` or a model query recorded in
/// `model`, as text ("payload checksum mismatch (header 0x..., payload 0x...): corrupt model", "arena
/// too small: needs 1296 bytes, has 1000"): written into `buf` (at most `len - 1` bytes and a NUL;
/// nothing if `buf` is NULL or `len` is 0). Returns the message's full length (as `snprintf`); 0 when
/// nothing was recorded or `model` is not a model `ferrite_model_load` filled.
///
/// # Safety
/// `model` is NULL or points to a `FerriteModel`; `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ferrite_model_error_message(
    model: *const FerriteModel,
    buf: *mut c_char,
    len: usize,
) -> usize {
    // SAFETY: the caller's contract.
    let error = unsafe { model_state(model) }
        .ok()
        .and_then(|s| s.error.get());
    // SAFETY: the caller's contract.
    unsafe { write_error(error, buf, len) }
}

// ---------------------------------------------------------------------------------------------------
// Interpreters.

/// Creates an interpreter for a loaded model inside `arena`: its state at the arena's first
/// `FERRITE_ARENA_ALIGN`-aligned byte, the activations after it. Needs `ferrite_model_arena_size`
/// bytes from that aligned start: a buffer aligned to `FERRITE_ARENA_ALIGN` (16) needs exactly that,
/// any other up to 15 bytes more. On success `*out` is the interpreter (inside the arena, valid while
/// the arena and the model bytes are; it does not need `model` afterwards); on failure `*out` is NULL
/// and `model` records the error (`ferrite_model_error_message`). Several interpreters may share a
/// model, each in its own arena.
///
/// # Safety
/// `model` is NULL or points to a `FerriteModel`; `arena` is NULL or points to `arena_len` writable
/// bytes that nothing else uses while the interpreter does; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ferrite_interpreter_create(
    model: *mut FerriteModel,
    arena: *mut c_void,
    arena_len: usize,
    out: *mut *mut FerriteInterpreter,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    let status = unsafe { write_out(out, ptr::null_mut()) };
    if status != FerriteStatus::Ok {
        return status;
    }
    // SAFETY: the caller's contract.
    let state = match unsafe { model_state(model) } {
        Ok(s) => s,
        Err(s) => return s,
    };
    let Some(m) = &state.model else {
        return FerriteStatus::InvalidHandle;
    };
    if arena.is_null() {
        return FerriteStatus::NullPointer;
    }
    let fail = |e: Error| {
        state.error.set(Some(e));
        status_of(&e)
    };
    let skip = (arena as usize).wrapping_neg() % FERRITE_ARENA_ALIGN;
    let needed = skip
        .checked_add(OVERHEAD)
        .and_then(|n| n.checked_add(m.arena_size()));
    let short = needed.is_none_or(|n| arena_len < n);
    if short || arena_len > isize::MAX as usize {
        return fail(Error::ArenaTooSmall {
            needed: needed.map_or(u32::MAX, |n| n.min(u32::MAX as usize) as u32),
            available: arena_len.min(u32::MAX as usize) as u32,
        });
    }
    let base = arena.cast::<u8>();
    // SAFETY: `skip + OVERHEAD <= arena_len`: the state fits at the aligned start, the runtime's part
    // follows it, disjoint; the arena is the caller's for the interpreter's life.
    unsafe {
        let it = base.add(skip).cast::<FerriteInterpreter>();
        ptr::write(
            it,
            FerriteInterpreter {
                magic: 0,
                error: Cell::new(None),
                model: m.clone(),
                interpreter: MaybeUninit::uninit(),
            },
        );
        let model_ref: &'static Model<'static> = &*addr_of!((*it).model);
        let rest =
            core::slice::from_raw_parts_mut(base.add(skip + OVERHEAD), arena_len - skip - OVERHEAD);
        match Interpreter::new(model_ref, rest) {
            Ok(interpreter) => {
                (*addr_of_mut!((*it).interpreter)).write(interpreter);
            }
            Err(e) => {
                ptr::write(addr_of_mut!((*it).magic), 0);
                return fail(e);
            }
        }
        ptr::write(addr_of_mut!((*it).magic), INTERPRETER_MAGIC);
        *out = it;
    }
    FerriteStatus::Ok
}

/// # Safety
/// As [`ferrite_input_count`].
unsafe fn interpreter_count(
    it: *const FerriteInterpreter,
    side: Side,
    count: *mut usize,
) -> FerriteStatus {
    let mut n = 0;
    // SAFETY: the caller's contract.
    let status = unsafe {
        with_interpreter_ref(it, |i| {
            n = count_of(i.model(), side);
            Ok(())
        })
    };
    if status != FerriteStatus::Ok {
        return status;
    }
    // SAFETY: the caller's contract.
    unsafe { write_out(count, n) }
}

/// # Safety
/// As [`ferrite_input_info`].
unsafe fn interpreter_info(
    it: *const FerriteInterpreter,
    side: Side,
    index: usize,
    info: *mut FerriteTensorInfo,
) -> FerriteStatus {
    if info.is_null() {
        return FerriteStatus::NullPointer;
    }
    let mut found = None;
    // SAFETY: the caller's contract.
    let status = unsafe {
        with_interpreter_ref(it, |i| {
            found = Some(info_of(&tensor_of(i.model(), side, index)?));
            Ok(())
        })
    };
    match found {
        // SAFETY: the caller's contract.
        Some(value) => unsafe { write_out(info, value) },
        None => status,
    }
}

/// Number of inputs of the interpreter's model.
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ferrite_input_count(
    it: *const FerriteInterpreter,
    count: *mut usize,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe { interpreter_count(it, Side::Input, count) }
}

/// Number of outputs of the interpreter's model.
///
/// # Safety
/// As `ferrite_input_count`.
#[no_mangle]
pub unsafe extern "C" fn ferrite_output_count(
    it: *const FerriteInterpreter,
    count: *mut usize,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe { interpreter_count(it, Side::Output, count) }
}

/// Type, shape, size and quantization of input `index`.
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ferrite_input_info(
    it: *const FerriteInterpreter,
    index: usize,
    info: *mut FerriteTensorInfo,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe { interpreter_info(it, Side::Input, index, info) }
}

/// Type, shape, size and quantization of output `index`.
///
/// # Safety
/// As `ferrite_input_info`.
#[no_mangle]
pub unsafe extern "C" fn ferrite_output_info(
    it: *const FerriteInterpreter,
    index: usize,
    info: *mut FerriteTensorInfo,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe { interpreter_info(it, Side::Output, index, info) }
}

/// The tensor's element count and element type, or the error.
fn expect(
    i: &Interpreter<'_>,
    side: Side,
    index: usize,
    dtype: Option<DType>,
    count: usize,
) -> Result<(), Error> {
    let t = tensor_of(i.model(), side, index)?;
    if dtype.is_some_and(|d| d != t.dtype) {
        return Err(Error::WrongType {
            index: index.min(u16::MAX as usize) as u16,
        });
    }
    let expected = match dtype {
        Some(_) => t.shape.elements(),
        None => t
            .shape
            .elements()
            .and_then(|n| n.checked_mul(t.dtype.size())),
    }
    .unwrap_or(0);
    if expected != count {
        return Err(Error::WrongLength {
            expected: expected.min(u32::MAX as usize) as u32,
            found: count.min(u32::MAX as usize) as u32,
        });
    }
    Ok(())
}

/// Copies `src` into `dst`; different lengths (which [`expect`] has ruled out already) are an error
/// rather than `copy_from_slice`'s panic.
fn copy<T: Copy>(dst: &mut [T], src: &[T]) -> Result<(), Error> {
    if dst.len() != src.len() {
        return Err(Error::WrongLength {
            expected: dst.len().min(u32::MAX as usize) as u32,
            found: src.len().min(u32::MAX as usize) as u32,
        });
    }
    dst.copy_from_slice(src);
    Ok(())
}

/// Copies `bytes` bytes into input `index`, as they are (int8 values, or the floats' native bytes):
/// `bytes` must be the input's size in bytes (`FerriteTensorInfo.bytes`).
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `data` is NULL or points to
/// `bytes` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn ferrite_set_input(
    it: *mut FerriteInterpreter,
    index: usize,
    data: *const c_void,
    bytes: usize,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe {
        with_interpreter(it, |i| {
            expect(i, Side::Input, index, None, bytes)?;
            let dst = i.input_bytes_mut(index)?;
            if data.is_null() {
                return Ok(());
            }
            // `bytes` is the tensor's size, inside the arena: a valid length. The caller's buffer
            // holds `bytes` bytes.
            copy(dst, core::slice::from_raw_parts(data.cast::<u8>(), bytes))
        })
    }
    .or_null(data.is_null())
}

/// Copies `count` int8 values into int8 input `index` (`count` must be its element count).
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `data` is NULL or points to
/// `count` readable values.
#[no_mangle]
pub unsafe extern "C" fn ferrite_set_input_int8(
    it: *mut FerriteInterpreter,
    index: usize,
    data: *const i8,
    count: usize,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe {
        with_interpreter(it, |i| {
            expect(i, Side::Input, index, Some(DType::I8), count)?;
            if data.is_null() {
                return Ok(());
            }
            copy(
                i.input_i8_mut(index)?,
                core::slice::from_raw_parts(data, count),
            )
        })
    }
    .or_null(data.is_null())
}

/// Writes `count` real values into input `index` (`count` must be its element count): quantized
/// with the input's scale and zero point for an int8 input, copied for a float one.
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `data` is NULL or points to
/// `count` readable, 4-byte aligned floats.
#[no_mangle]
pub unsafe extern "C" fn ferrite_set_input_float(
    it: *mut FerriteInterpreter,
    index: usize,
    data: *const f32,
    count: usize,
) -> FerriteStatus {
    if !data.is_null() && !(data as usize).is_multiple_of(align_of::<f32>()) {
        return FerriteStatus::Misaligned;
    }
    // SAFETY: the caller's contract.
    unsafe {
        with_interpreter(it, |i| {
            let elements = tensor_of(i.model(), Side::Input, index)?
                .shape
                .elements()
                .unwrap_or(0);
            if elements != count {
                return Err(Error::WrongLength {
                    expected: elements.min(u32::MAX as usize) as u32,
                    found: count.min(u32::MAX as usize) as u32,
                });
            }
            if data.is_null() {
                return Ok(());
            }
            i.set_input_f32(index, core::slice::from_raw_parts(data, count))
        })
    }
    .or_null(data.is_null())
}

/// Zero-copy access to input `index`: `*data` is its bytes in the arena (`*bytes` of them), to fill
/// before `ferrite_invoke` (which may overwrite them).
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `data` and `bytes` are NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn ferrite_input_data(
    it: *mut FerriteInterpreter,
    index: usize,
    data: *mut *mut c_void,
    bytes: *mut usize,
) -> FerriteStatus {
    if data.is_null() || bytes.is_null() {
        return FerriteStatus::NullPointer;
    }
    let mut found = None;
    // SAFETY: the caller's contract.
    let status = unsafe {
        with_interpreter(it, |i| {
            let b = i.input_bytes_mut(index)?;
            found = Some((b.as_mut_ptr().cast::<c_void>(), b.len()));
            Ok(())
        })
    };
    let Some((p, n)) = found else { return status };
    // SAFETY: the caller's contract.
    unsafe { write_out(data, p).and(write_out(bytes, n)) }
}

/// Runs the model on the inputs set (every operator in order; the model was validated at load, so
/// this only computes).
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned.
#[no_mangle]
pub unsafe extern "C" fn ferrite_invoke(it: *mut FerriteInterpreter) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe { with_interpreter(it, |i| i.invoke()) }
}

/// Copies output `index` as it is (int8 values, or the floats' native bytes) into `out`: `bytes` must
/// be the output's size in bytes (`FerriteTensorInfo.bytes`).
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `out` is NULL or points to
/// `bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ferrite_get_output(
    it: *const FerriteInterpreter,
    index: usize,
    out: *mut c_void,
    bytes: usize,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe {
        with_interpreter_ref(it, |i| {
            expect(i, Side::Output, index, None, bytes)?;
            let src = i.output_bytes(index)?;
            if out.is_null() {
                return Ok(());
            }
            copy(
                core::slice::from_raw_parts_mut(out.cast::<u8>(), bytes),
                src,
            )
        })
    }
    .or_null(out.is_null())
}

/// Copies int8 output `index` into `out` (`count` must be its element count).
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `out` is NULL or points to
/// `count` writable values.
#[no_mangle]
pub unsafe extern "C" fn ferrite_get_output_int8(
    it: *const FerriteInterpreter,
    index: usize,
    out: *mut i8,
    count: usize,
) -> FerriteStatus {
    // SAFETY: the caller's contract.
    unsafe {
        with_interpreter_ref(it, |i| {
            expect(i, Side::Output, index, Some(DType::I8), count)?;
            let src = i.output_i8(index)?;
            if out.is_null() {
                return Ok(());
            }
            copy(core::slice::from_raw_parts_mut(out, count), src)
        })
    }
    .or_null(out.is_null())
}

/// Reads output `index` as `count` real values (its element count): dequantized from an int8 output,
/// copied from a float one.
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `out` is NULL or points to
/// `count` writable, 4-byte aligned floats.
#[no_mangle]
pub unsafe extern "C" fn ferrite_get_output_float(
    it: *const FerriteInterpreter,
    index: usize,
    out: *mut f32,
    count: usize,
) -> FerriteStatus {
    if !out.is_null() && !(out as usize).is_multiple_of(align_of::<f32>()) {
        return FerriteStatus::Misaligned;
    }
    // SAFETY: the caller's contract.
    unsafe {
        with_interpreter_ref(it, |i| {
            let elements = tensor_of(i.model(), Side::Output, index)?
                .shape
                .elements()
                .unwrap_or(0);
            if elements != count {
                return Err(Error::WrongLength {
                    expected: elements.min(u32::MAX as usize) as u32,
                    found: count.min(u32::MAX as usize) as u32,
                });
            }
            if out.is_null() {
                return Ok(());
            }
            i.output_to_f32(index, core::slice::from_raw_parts_mut(out, count))
        })
    }
    .or_null(out.is_null())
}

/// Zero-copy access to output `index`: `*data` is its bytes in the arena (`*bytes` of them), valid
/// until the next `ferrite_invoke` or input write.
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `data` and `bytes` are NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn ferrite_output_data(
    it: *const FerriteInterpreter,
    index: usize,
    data: *mut *const c_void,
    bytes: *mut usize,
) -> FerriteStatus {
    if data.is_null() || bytes.is_null() {
        return FerriteStatus::NullPointer;
    }
    let mut found = None;
    // SAFETY: the caller's contract.
    let status = unsafe {
        with_interpreter_ref(it, |i| {
            let b = i.output_bytes(index)?;
            found = Some((b.as_ptr().cast::<c_void>(), b.len()));
            Ok(())
        })
    };
    let Some((p, n)) = found else { return status };
    // SAFETY: the caller's contract.
    unsafe { write_out(data, p).and(write_out(bytes, n)) }
}

/// The last error a call recorded in the interpreter (a wrong length, type or index, an invoke
/// failure), as text; as `ferrite_model_error_message`.
///
/// # Safety
/// `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `buf` is NULL or points to
/// `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ferrite_interpreter_error_message(
    it: *const FerriteInterpreter,
    buf: *mut c_char,
    len: usize,
) -> usize {
    // SAFETY: the caller's contract.
    let error = match unsafe { checked(it) } {
        // SAFETY: checked: a created interpreter.
        Ok(()) => unsafe { (*addr_of!((*it).error)).get() },
        Err(_) => None,
    };
    // SAFETY: the caller's contract.
    unsafe { write_error(error, buf, len) }
}

impl FerriteStatus {
    /// `NullPointer` when the call's buffer was NULL and nothing else failed first (the checks of the
    /// handle, index, type and length come first, so a NULL buffer is reported after them).
    fn or_null(self, null: bool) -> FerriteStatus {
        if self == FerriteStatus::Ok && null {
            FerriteStatus::NullPointer
        } else {
            self
        }
    }

    /// The first failure of two.
    fn and(self, other: FerriteStatus) -> FerriteStatus {
        if self == FerriteStatus::Ok {
            other
        } else {
            self
        }
    }
}

/// A panic would be a bug (every call checks its arguments and the runtime returns errors, never
/// panics): it cannot unwind into C, so it stops at an undefined instruction, which a Cortex-M takes
/// as a HardFault (a host as SIGILL).
#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        #[cfg(target_arch = "arm")]
        // SAFETY: `udf` only raises the undefined-instruction exception.
        unsafe {
            core::arch::asm!("udf #0xfe")
        };
        #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
        // SAFETY: `ud2` only raises the invalid-opcode exception.
        unsafe {
            core::arch::asm!("ud2")
        };
    }
}

#[cfg(test)]
mod tests;
