/* The Ferrite runtime's C API. Generated from capi/src/lib.rs by `cargo xtask cbindgen`:
 * do not edit. See capi/README.md. */

#ifndef FERRITE_H
#define FERRITE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes the interpreter's own state takes at the start of the arena (FERRITE_INTERPRETER_WORDS
 * pointer-sized words). */
#define FERRITE_ARENA_OVERHEAD (FERRITE_INTERPRETER_WORDS * sizeof(void *))

/* The arena ferrite_interpreter_create needs, for a buffer aligned to FERRITE_ARENA_ALIGN, given the
 * model header's arena size (`ferrite export --c-array`'s <NAME>_ARENA_SIZE): a compile-time constant,
 * equal to what ferrite_model_arena_size returns. A less aligned buffer needs up to
 * FERRITE_ARENA_ALIGN - 1 bytes more. */
#define FERRITE_ARENA_SIZE(model_arena_size) ((size_t)(model_arena_size) + FERRITE_ARENA_OVERHEAD)

/**
 * Largest number of dimensions of a tensor.
 */
#define FERRITE_MAX_RANK 4

/**
 * Alignment the interpreter gives the arena's start: a buffer aligned to it needs exactly
 * `ferrite_model_arena_size` bytes; a less aligned one up to `FERRITE_ARENA_ALIGN - 1` more.
 */
#define FERRITE_ARENA_ALIGN 16

/**
 * Size of `FerriteModel`, in 8-byte words.
 */
#define FERRITE_MODEL_WORDS 40

/**
 * Bytes the interpreter's own state takes at the start of the arena, in pointer-sized words
 * (`FERRITE_ARENA_OVERHEAD` in bytes).
 */
#define FERRITE_INTERPRETER_WORDS 48

/**
 * Status of every call: `FERRITE_STATUS_OK` or what went wrong (`ferrite_status_message` names it;
 * `ferrite_model_error_message` and `ferrite_interpreter_error_message` give the details of the last
 * model or runtime error).
 */
typedef enum FerriteStatus {
  /**
   * Success.
   */
  FERRITE_STATUS_OK = 0,
  /**
   * A pointer argument is NULL.
   */
  FERRITE_STATUS_NULL_POINTER = 1,
  /**
   * A pointer argument is not aligned for its type (a `FerriteModel *` to 8 bytes, a `float *` to
   * 4, a `FerriteInterpreter **` to a pointer).
   */
  FERRITE_STATUS_MISALIGNED = 2,
  /**
   * The `FerriteModel` was not loaded (or its load failed), or the `FerriteInterpreter` pointer is
   * not one `ferrite_interpreter_create` returned.
   */
  FERRITE_STATUS_INVALID_HANDLE = 3,
  /**
   * The model bytes are shorter than the header or the payload it declares.
   */
  FERRITE_STATUS_MODEL_TRUNCATED = 4,
  /**
   * The bytes are not a `.ferrite` model (bad magic).
   */
  FERRITE_STATUS_MODEL_NOT_FERRITE = 5,
  /**
   * A format version or header flags this runtime does not read.
   */
  FERRITE_STATUS_MODEL_UNSUPPORTED = 6,
  /**
   * The payload's checksum does not match: the model is corrupt.
   */
  FERRITE_STATUS_MODEL_CORRUPT = 7,
  /**
   * The model does not pass validation (payload, tensor, operator or memory plan).
   */
  FERRITE_STATUS_MODEL_INVALID = 8,
  /**
   * The model uses an operator (or f32 or int16x8 kernels) this library was built without.
   */
  FERRITE_STATUS_OPERATOR_NOT_BUILT = 9,
  /**
   * The arena is smaller than `ferrite_model_arena_size` (plus alignment padding).
   */
  FERRITE_STATUS_ARENA_TOO_SMALL = 10,
  /**
   * No input or output with that index.
   */
  FERRITE_STATUS_NO_SUCH_TENSOR = 11,
  /**
   * The tensor's element type is not the one the call reads or writes.
   */
  FERRITE_STATUS_WRONG_TYPE = 12,
  /**
   * The buffer's length is not the tensor's (in elements, or bytes for the raw calls).
   */
  FERRITE_STATUS_WRONG_LENGTH = 13,
} FerriteStatus;

/**
 * Element type of an input or output tensor.
 */
typedef enum FerriteType {
  /**
   * Signed 8-bit integer, quantized: real value = `scale * (q - zero_point)`.
   */
  FERRITE_TYPE_INT8 = 0,
  /**
   * Signed 16-bit integer.
   */
  FERRITE_TYPE_INT16 = 1,
  /**
   * Signed 32-bit integer.
   */
  FERRITE_TYPE_INT32 = 2,
  /**
   * 32-bit float.
   */
  FERRITE_TYPE_FLOAT32 = 3,
} FerriteType;

/**
 * An interpreter: a model bound to an arena, created by `ferrite_interpreter_create` inside the
 * arena (no other memory), valid as long as the arena and the model bytes are.
 */
typedef struct FerriteInterpreter FerriteInterpreter;

/**
 * A loaded (validated) model: storage the caller provides, filled by `ferrite_model_load`. Its
 * contents are private. It refers to the model bytes, which must stay where they are, unchanged,
 * as long as the model or any interpreter created from it is used. It may be moved or discarded once
 * the interpreters are created (each keeps its own copy).
 */
typedef struct FerriteModel {
  uint64_t opaque[FERRITE_MODEL_WORDS];
} FerriteModel;

/**
 * Shape, type and quantization of an input or output.
 */
typedef struct FerriteTensorInfo {
  /**
   * Element type.
   */
  enum FerriteType dtype;
  /**
   * Number of dimensions (1 to `FERRITE_MAX_RANK`).
   */
  uint32_t rank;
  /**
   * The dimensions (NHWC for rank 4); entries past `rank` are 0.
   */
  uint32_t dims[FERRITE_MAX_RANK];
  /**
   * Number of elements.
   */
  size_t elements;
  /**
   * Size in bytes (`elements` times the element size).
   */
  size_t bytes;
  /**
   * Quantization scale (0 for float tensors).
   */
  float scale;
  /**
   * Quantization zero point (0 for float tensors).
   */
  int32_t zero_point;
} FerriteTensorInfo;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * A static, NUL-terminated description of a status (of any `int`: values that are not a status
 * give "unknown status"). Never NULL.
 */
const char *ferrite_status_message(int status);

/**
 * The library's version, a static NUL-terminated string such as "0.1.0".
 */
const char *ferrite_version(void);

/**
 * Loads and validates a model (header, checksum, every tensor, operator and the memory plan), once.
 * The bytes are used in place: keep them alive and unchanged while the model or its interpreters
 * are used. They may extend past the file (e.g. a flash partition). On failure the model records the
 * error (`ferrite_model_error_message`) and stays unusable.
 *
 * # Safety
 * `model` is NULL or points to a writable `FerriteModel`; `data` is NULL or points to `len` bytes.
 */
enum FerriteStatus ferrite_model_load(struct FerriteModel *model,
                                      const uint8_t *data,
                                      size_t len);

/**
 * The arena `ferrite_interpreter_create` needs for this model, in bytes: the runtime's activations
 * (the model header's arena size) plus `FERRITE_ARENA_OVERHEAD` for the interpreter's own state,
 * for a buffer aligned to `FERRITE_ARENA_ALIGN` (`FERRITE_ARENA_SIZE(header arena size)`).
 *
 * # Safety
 * `model` is NULL or points to a `FerriteModel`; `size` is NULL or writable.
 */
enum FerriteStatus ferrite_model_arena_size(const struct FerriteModel *model, size_t *size);

/**
 * Number of model inputs.
 *
 * # Safety
 * `model` is NULL or points to a `FerriteModel`; `count` is NULL or writable.
 */
enum FerriteStatus ferrite_model_input_count(const struct FerriteModel *model, size_t *count);

/**
 * Number of model outputs.
 *
 * # Safety
 * As `ferrite_model_input_count`.
 */
enum FerriteStatus ferrite_model_output_count(const struct FerriteModel *model, size_t *count);

/**
 * Type, shape, size and quantization of model input `index`.
 *
 * # Safety
 * `model` is NULL or points to a `FerriteModel`; `info` is NULL or writable.
 */
enum FerriteStatus ferrite_model_input_info(const struct FerriteModel *model,
                                            size_t index,
                                            struct FerriteTensorInfo *info);

/**
 * Type, shape, size and quantization of model output `index`.
 *
 * # Safety
 * As `ferrite_model_input_info`.
 */
enum FerriteStatus ferrite_model_output_info(const struct FerriteModel *model,
                                             size_t index,
                                             struct FerriteTensorInfo *info);

/**
 * The last error `ferrite_model_load`, `ferrite_interpreter_create` or a model query recorded in
 * `model`, as text ("payload checksum mismatch (header 0x..., payload 0x...): corrupt model", "arena
 * too small: needs 1296 bytes, has 1000"): written into `buf` (at most `len - 1` bytes and a NUL;
 * nothing if `buf` is NULL or `len` is 0). Returns the message's full length (as `snprintf`); 0 when
 * nothing was recorded or `model` is not a model `ferrite_model_load` filled.
 *
 * # Safety
 * `model` is NULL or points to a `FerriteModel`; `buf` is NULL or points to `len` writable bytes.
 */
size_t ferrite_model_error_message(const struct FerriteModel *model,
                                   char *buf,
                                   size_t len);

/**
 * Creates an interpreter for a loaded model inside `arena`: its state at the arena's first
 * `FERRITE_ARENA_ALIGN`-aligned byte, the activations after it. Needs `ferrite_model_arena_size`
 * bytes from that aligned start: a buffer aligned to `FERRITE_ARENA_ALIGN` (16) needs exactly that,
 * any other up to 15 bytes more. On success `*out` is the interpreter (inside the arena, valid while
 * the arena and the model bytes are; it does not need `model` afterwards); on failure `*out` is NULL
 * and `model` records the error (`ferrite_model_error_message`). Several interpreters may share a
 * model, each in its own arena.
 *
 * # Safety
 * `model` is NULL or points to a `FerriteModel`; `arena` is NULL or points to `arena_len` writable
 * bytes that nothing else uses while the interpreter does; `out` is NULL or writable.
 */
enum FerriteStatus ferrite_interpreter_create(struct FerriteModel *model,
                                              void *arena,
                                              size_t arena_len,
                                              struct FerriteInterpreter **out);

/**
 * Number of inputs of the interpreter's model.
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `count` is NULL or writable.
 */
enum FerriteStatus ferrite_input_count(const struct FerriteInterpreter *it,
                                       size_t *count);

/**
 * Number of outputs of the interpreter's model.
 *
 * # Safety
 * As `ferrite_input_count`.
 */
enum FerriteStatus ferrite_output_count(const struct FerriteInterpreter *it, size_t *count);

/**
 * Type, shape, size and quantization of input `index`.
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `info` is NULL or writable.
 */
enum FerriteStatus ferrite_input_info(const struct FerriteInterpreter *it,
                                      size_t index,
                                      struct FerriteTensorInfo *info);

/**
 * Type, shape, size and quantization of output `index`.
 *
 * # Safety
 * As `ferrite_input_info`.
 */
enum FerriteStatus ferrite_output_info(const struct FerriteInterpreter *it,
                                       size_t index,
                                       struct FerriteTensorInfo *info);

/**
 * Copies `bytes` bytes into input `index`, as they are (int8 values, or the floats' native bytes):
 * `bytes` must be the input's size in bytes (`FerriteTensorInfo.bytes`).
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `data` is NULL or points to
 * `bytes` readable bytes.
 */
enum FerriteStatus ferrite_set_input(struct FerriteInterpreter *it,
                                     size_t index,
                                     const void *data,
                                     size_t bytes);

/**
 * Copies `count` int8 values into int8 input `index` (`count` must be its element count).
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `data` is NULL or points to
 * `count` readable values.
 */
enum FerriteStatus ferrite_set_input_int8(struct FerriteInterpreter *it,
                                          size_t index,
                                          const int8_t *data,
                                          size_t count);

/**
 * Writes `count` real values into input `index` (`count` must be its element count): quantized
 * with the input's scale and zero point for an int8 input, copied for a float one.
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `data` is NULL or points to
 * `count` readable, 4-byte aligned floats.
 */
enum FerriteStatus ferrite_set_input_float(struct FerriteInterpreter *it,
                                           size_t index,
                                           const float *data,
                                           size_t count);

/**
 * Zero-copy access to input `index`: `*data` is its bytes in the arena (`*bytes` of them), to fill
 * before `ferrite_invoke` (which may overwrite them).
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `data` and `bytes` are NULL
 * or writable.
 */
enum FerriteStatus ferrite_input_data(struct FerriteInterpreter *it,
                                      size_t index,
                                      void **data,
                                      size_t *bytes);

/**
 * Runs the model on the inputs set (every operator in order; the model was validated at load, so
 * this only computes).
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned.
 */
enum FerriteStatus ferrite_invoke(struct FerriteInterpreter *it);

/**
 * Copies output `index` as it is (int8 values, or the floats' native bytes) into `out`: `bytes` must
 * be the output's size in bytes (`FerriteTensorInfo.bytes`).
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `out` is NULL or points to
 * `bytes` writable bytes.
 */
enum FerriteStatus ferrite_get_output(const struct FerriteInterpreter *it,
                                      size_t index,
                                      void *out,
                                      size_t bytes);

/**
 * Copies int8 output `index` into `out` (`count` must be its element count).
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `out` is NULL or points to
 * `count` writable values.
 */
enum FerriteStatus ferrite_get_output_int8(const struct FerriteInterpreter *it,
                                           size_t index,
                                           int8_t *out,
                                           size_t count);

/**
 * Reads output `index` as `count` real values (its element count): dequantized from an int8 output,
 * copied from a float one.
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `out` is NULL or points to
 * `count` writable, 4-byte aligned floats.
 */
enum FerriteStatus ferrite_get_output_float(const struct FerriteInterpreter *it,
                                            size_t index,
                                            float *out,
                                            size_t count);

/**
 * Zero-copy access to output `index`: `*data` is its bytes in the arena (`*bytes` of them), valid
 * until the next `ferrite_invoke` or input write.
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `data` and `bytes` are NULL
 * or writable.
 */
enum FerriteStatus ferrite_output_data(const struct FerriteInterpreter *it,
                                       size_t index,
                                       const void **data,
                                       size_t *bytes);

/**
 * The last error a call recorded in the interpreter (a wrong length, type or index, an invoke
 * failure), as text; as `ferrite_model_error_message`.
 *
 * # Safety
 * `it` is NULL or an interpreter `ferrite_interpreter_create` returned; `buf` is NULL or points to
 * `len` writable bytes.
 */
size_t ferrite_interpreter_error_message(const struct FerriteInterpreter *it,
                                         char *buf,
                                         size_t len);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* FERRITE_H */
