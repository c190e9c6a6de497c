//! The runtime's single error type.

/// Everything that can go wrong when loading or running a model. No allocation, no strings built at
/// run time: each variant names where the problem is (operator index, tensor index) and a static reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than the header or the payload length it declares.
    Truncated {
        /// Bytes the header or the declared payload needs.
        needed: u32,
        /// Bytes given.
        available: u32,
    },
    /// The first four bytes are not `FRTE`: not a `.ferrite` file.
    BadMagic,
    /// A format version this runtime does not read (it reads exactly `supported`).
    UnsupportedVersion {
        /// The version in the header.
        found: u16,
        /// The one version this runtime reads ([`crate::format::VERSION`]).
        supported: u16,
    },
    /// Header flags this runtime does not know (bits outside [`crate::format::KNOWN_FLAGS`]).
    UnknownFlags {
        /// The header's flags field.
        flags: u16,
    },
    /// The header's reserved field (bytes 20 to 23) is not zero.
    ReservedNotZero {
        /// The field's value.
        value: u32,
    },
    /// The header's arena size is larger than the memory plan needs (the end of the last tensor in
    /// the arena, rounded up to [`crate::format::ARENA_ALIGN`]).
    ArenaLargerThanPlan {
        /// Arena size in the header.
        header: u32,
        /// Bytes the plan needs, rounded up.
        plan: u32,
    },
    /// The model uses f32 kernels but the runtime was built without the `float` feature.
    FloatKernelsDisabled,
    /// Tensor `tensor` is int16 but the runtime was built without the `int16` feature (its int16x8
    /// kernels).
    Int16KernelsDisabled {
        /// Index in the tensor table of the first int16 tensor.
        tensor: u16,
    },
    /// Operator `op` is of a kind this runtime was built without: enable the Cargo feature `feature`.
    OperatorNotBuilt {
        /// Operator index in execution order.
        op: u16,
        /// The operator's name, as TFLite spells it.
        name: &'static str,
        /// The Cargo feature that builds it in.
        feature: &'static str,
    },
    /// Operator `op` has a tag past this runtime's operator table (`known` kinds): the model uses an
    /// operator added to the format after this runtime was built.
    UnknownOperator {
        /// Operator index in execution order.
        op: u16,
        /// The operator's tag in the file.
        tag: u32,
        /// Number of operator kinds this runtime knows (tags `0..known`).
        known: u32,
    },
    /// The payload's CRC-32 differs from the header's: the file is corrupt.
    ChecksumMismatch {
        /// CRC-32 stored in the header.
        expected: u32,
        /// CRC-32 computed over the payload.
        found: u32,
    },
    /// The payload does not decode as the format's structure.
    Malformed {
        /// What does not decode or is missing.
        reason: &'static str,
    },
    /// Tensor `tensor` of the tensor table is invalid.
    InvalidTensor {
        /// Index in the tensor table.
        tensor: u16,
        /// The check that failed.
        reason: &'static str,
    },
    /// Operator `op` (index in execution order) is invalid.
    InvalidOperator {
        /// Operator index in execution order.
        op: u16,
        /// The check that failed.
        reason: &'static str,
    },
    /// Two tensors that are live at the same time share arena bytes.
    PlanOverlap {
        /// Tensor-table index of one tensor.
        first: u16,
        /// Tensor-table index of the other (larger than `first`).
        second: u16,
    },
    /// The arena is smaller than the model's plan (alignment padding included).
    ArenaTooSmall {
        /// Bytes needed: the plan's size plus the padding that aligns the arena's start.
        needed: u32,
        /// Bytes in the arena given.
        available: u32,
    },
    /// No input or output with that index.
    NoSuchTensor {
        /// The input or output index asked for (position in the model's input or output list).
        index: u16,
    },
    /// The tensor's element type is not the one asked for.
    WrongType {
        /// The input or output index asked for (position in the model's input or output list).
        index: u16,
    },
    /// A buffer of the wrong length was passed for a tensor.
    WrongLength {
        /// The tensor's number of elements.
        expected: u32,
        /// The buffer's number of elements.
        found: u32,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Error::Truncated { needed, available } => {
                write!(f, "model truncated: needs {needed} bytes, has {available}")
            }
            Error::BadMagic => write!(f, "not a .ferrite model (bad magic)"),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "model format version {found} is not supported (this runtime reads version {supported})"
            ),
            Error::UnknownFlags { flags } => write!(
                f,
                "unknown header flag bits {:#06x} (flags {flags:#06x}; this runtime knows {:#06x})",
                flags & !crate::format::KNOWN_FLAGS,
                crate::format::KNOWN_FLAGS
            ),
            Error::ReservedNotZero { value } => write!(
                f,
                "header reserved field (bytes 20 to 23) is {value:#010x}; it must be 0"
            ),
            Error::ArenaLargerThanPlan { header, plan } => write!(
                f,
                "header arena size {header} bytes, but the memory plan needs {plan}: inconsistent header"
            ),
            Error::FloatKernelsDisabled => {
                write!(f, "model needs f32 kernels; build the runtime with the `float` feature")
            }
            Error::Int16KernelsDisabled { tensor } => write!(
                f,
                "tensor {tensor} is int16: int16 tensors need the runtime's `int16` feature"
            ),
            Error::OperatorNotBuilt { op, name, feature } => write!(
                f,
                "operator {op}: {name} is not built into this runtime; enable its Cargo feature `{feature}`"
            ),
            Error::UnknownOperator { op, tag, known } => write!(
                f,
                "operator {op}: operator tag {tag} is newer than this runtime (it knows tags 0 to {}); update the runtime",
                known.saturating_sub(1)
            ),
            Error::ChecksumMismatch { expected, found } => write!(
                f,
                "payload checksum mismatch (header {expected:#010x}, payload {found:#010x}): corrupt model"
            ),
            Error::Malformed { reason } => write!(f, "malformed model: {reason}"),
            Error::InvalidTensor { tensor, reason } => write!(f, "tensor {tensor}: {reason}"),
            Error::InvalidOperator { op, reason } => write!(f, "operator {op}: {reason}"),
            Error::PlanOverlap { first, second } => write!(
                f,
                "memory plan: tensors {first} and {second} are live together but overlap in the arena"
            ),
            Error::ArenaTooSmall { needed, available } => {
                write!(f, "arena too small: needs {needed} bytes, has {available}")
            }
            Error::NoSuchTensor { index } => write!(f, "no input or output with index {index}"),
            Error::WrongType { index } => write!(f, "tensor {index} has another element type"),
            Error::WrongLength { expected, found } => {
                write!(f, "wrong buffer length: expected {expected}, found {found}")
            }
        }
    }
}

#[cfg(any(feature = "host", test))]
impl std::error::Error for Error {}
