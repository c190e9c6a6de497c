//! The C API called as C would, on the golden cases of `tests/golden/`.
// Every call is the C API's contract: valid pointers and lengths, or the NULL and misaligned ones
// a test means to pass.
#![allow(clippy::undocumented_unsafe_blocks)]

use super::*;
use std::ffi::CStr;
use std::path::PathBuf;

fn case(name: &str, file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(name)
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn new_model() -> Box<FerriteModel> {
    Box::new(FerriteModel {
        opaque: [0; FERRITE_MODEL_WORDS],
    })
}

/// A 16-byte aligned buffer of at least `len` bytes.
fn aligned(len: usize) -> Vec<u128> {
    vec![0u128; len.div_ceil(16)]
}

fn model_message(m: &FerriteModel) -> String {
    let mut buf = [0 as c_char; 256];
    let n = unsafe { ferrite_model_error_message(m, buf.as_mut_ptr(), buf.len()) };
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(n, s.len());
    s
}

fn interpreter_message(it: *const FerriteInterpreter) -> String {
    let mut buf = [0 as c_char; 256];
    unsafe { ferrite_interpreter_error_message(it, buf.as_mut_ptr(), buf.len()) };
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_string()
}

/// Runs a golden case through the C API: its output bytes.
fn run_case(name: &str) -> Vec<u8> {
    let bytes = case(name, "model.ferrite");
    let input = case(name, "input.bin");
    let mut model = new_model();
    unsafe {
        assert_eq!(
            ferrite_model_load(&mut *model, bytes.as_ptr(), bytes.len()),
            FerriteStatus::Ok
        );
        let mut size = 0;
        assert_eq!(
            ferrite_model_arena_size(&*model, &mut size),
            FerriteStatus::Ok
        );
        let mut arena = aligned(size);
        let mut it = ptr::null_mut();
        assert_eq!(
            ferrite_interpreter_create(&mut *model, arena.as_mut_ptr().cast(), size, &mut it),
            FerriteStatus::Ok
        );
        // The model's storage is not needed any more.
        drop(model);
        let mut inputs = 0;
        assert_eq!(ferrite_input_count(it, &mut inputs), FerriteStatus::Ok);
        let mut offset = 0;
        for index in 0..inputs {
            let mut info = MaybeUninit::uninit();
            assert_eq!(
                ferrite_input_info(it, index, info.as_mut_ptr()),
                FerriteStatus::Ok
            );
            let info = info.assume_init();
            let chunk = &input[offset..offset + info.bytes];
            assert_eq!(
                ferrite_set_input(it, index, chunk.as_ptr().cast(), chunk.len()),
                FerriteStatus::Ok
            );
            offset += info.bytes;
        }
        assert_eq!(offset, input.len());
        assert_eq!(ferrite_invoke(it), FerriteStatus::Ok);
        let mut outputs = 0;
        assert_eq!(ferrite_output_count(it, &mut outputs), FerriteStatus::Ok);
        let mut got = Vec::new();
        for index in 0..outputs {
            let mut info = MaybeUninit::uninit();
            assert_eq!(
                ferrite_output_info(it, index, info.as_mut_ptr()),
                FerriteStatus::Ok
            );
            let info = info.assume_init();
            let mut out = vec![0u8; info.bytes];
            assert_eq!(
                ferrite_get_output(it, index, out.as_mut_ptr().cast(), out.len()),
                FerriteStatus::Ok
            );
            got.extend_from_slice(&out);
        }
        got
    }
}

#[test]
fn golden_cases_give_the_expected_bytes() {
    for name in ["small_dscnn", "float_islands", "reshape_concat", "softmax"] {
        assert_eq!(run_case(name), case(name, "expected.bin"), "{name}");
    }
}

#[test]
fn model_queries() {
    let bytes = case("small_dscnn", "model.ferrite");
    let mut model = new_model();
    unsafe {
        assert_eq!(
            ferrite_model_load(&mut *model, bytes.as_ptr(), bytes.len()),
            FerriteStatus::Ok
        );
        let (mut inputs, mut outputs) = (0, 0);
        assert_eq!(
            ferrite_model_input_count(&*model, &mut inputs),
            FerriteStatus::Ok
        );
        assert_eq!(
            ferrite_model_output_count(&*model, &mut outputs),
            FerriteStatus::Ok
        );
        assert_eq!((inputs, outputs), (1, 1));
        let mut info = MaybeUninit::uninit();
        assert_eq!(
            ferrite_model_input_info(&*model, 0, info.as_mut_ptr()),
            FerriteStatus::Ok
        );
        let info = info.assume_init();
        assert_eq!(info.dtype, FerriteType::Int8);
        assert_eq!((info.rank, info.dims), (4, [1, 10, 8, 1]));
        assert_eq!((info.elements, info.bytes), (80, 80));
        let mut size = 0;
        ferrite_model_arena_size(&*model, &mut size);
        assert_eq!(size, ferrite_runtime::arena_size(&bytes) + OVERHEAD);
        let mut info = MaybeUninit::uninit();
        assert_eq!(
            ferrite_model_output_info(&*model, 1, info.as_mut_ptr()),
            FerriteStatus::NoSuchTensor
        );
        assert_eq!(model_message(&model), "no input or output with index 1");
    }
}

#[test]
fn bad_models_are_refused_with_their_status_and_message() {
    let good = case("small_dscnn", "model.ferrite");
    let mut corrupt = good.clone();
    *corrupt.last_mut().unwrap() ^= 0x40;
    let mut magic = good.clone();
    magic[0] = b'X';
    let cases: [(&[u8], FerriteStatus, &str); 4] = [
        (&corrupt, FerriteStatus::ModelCorrupt, "checksum mismatch"),
        (&magic, FerriteStatus::ModelNotFerrite, "bad magic"),
        (&good[..100], FerriteStatus::ModelTruncated, "truncated"),
        (&good[..3], FerriteStatus::ModelTruncated, "truncated"),
    ];
    for (bytes, status, text) in cases {
        let mut model = new_model();
        unsafe {
            assert_eq!(
                ferrite_model_load(&mut *model, bytes.as_ptr(), bytes.len()),
                status
            );
            assert!(
                model_message(&model).contains(text),
                "{}",
                model_message(&model)
            );
            // A failed model cannot be used.
            let mut size = 0;
            assert_eq!(
                ferrite_model_arena_size(&*model, &mut size),
                FerriteStatus::InvalidHandle
            );
        }
    }
}

#[test]
fn null_misaligned_and_unloaded_arguments_are_refused() {
    let bytes = case("small_dscnn", "model.ferrite");
    let mut model = new_model();
    let mut size = 0;
    unsafe {
        assert_eq!(
            ferrite_model_load(ptr::null_mut(), bytes.as_ptr(), bytes.len()),
            FerriteStatus::NullPointer
        );
        assert_eq!(
            ferrite_model_load(&mut *model, ptr::null(), 10),
            FerriteStatus::NullPointer
        );
        // Never loaded (zeroed storage).
        assert_eq!(
            ferrite_model_arena_size(&*new_model(), &mut size),
            FerriteStatus::InvalidHandle
        );
        let storage = aligned(2 * size_of::<FerriteModel>());
        let odd = storage.as_ptr().cast::<u8>().add(4).cast::<FerriteModel>();
        assert_eq!(
            ferrite_model_arena_size(odd, &mut size),
            FerriteStatus::Misaligned
        );
        assert_eq!(
            ferrite_model_load(&mut *model, bytes.as_ptr(), bytes.len()),
            FerriteStatus::Ok
        );
        assert_eq!(
            ferrite_model_arena_size(&*model, ptr::null_mut()),
            FerriteStatus::NullPointer
        );
        assert_eq!(
            ferrite_model_arena_size(&*model, &mut size),
            FerriteStatus::Ok
        );
        let mut arena = aligned(size);
        let mut it = ptr::null_mut();
        assert_eq!(
            ferrite_interpreter_create(&mut *model, ptr::null_mut(), size, &mut it),
            FerriteStatus::NullPointer
        );
        assert_eq!(
            ferrite_interpreter_create(
                &mut *model,
                arena.as_mut_ptr().cast(),
                size,
                ptr::null_mut()
            ),
            FerriteStatus::NullPointer
        );
        // Calls on no interpreter, or on memory that is not one.
        assert_eq!(ferrite_invoke(ptr::null_mut()), FerriteStatus::NullPointer);
        assert_eq!(
            ferrite_invoke(arena.as_mut_ptr().cast()),
            FerriteStatus::InvalidHandle
        );
        assert_eq!(
            ferrite_invoke(arena.as_mut_ptr().cast::<u8>().add(1).cast()),
            FerriteStatus::Misaligned
        );
        assert_eq!(interpreter_message(ptr::null()), "");
        assert_eq!(
            ferrite_interpreter_create(&mut *model, arena.as_mut_ptr().cast(), size, &mut it),
            FerriteStatus::Ok
        );
        let input = [0i8; 80];
        assert_eq!(
            ferrite_set_input_int8(it, 0, ptr::null(), 80),
            FerriteStatus::NullPointer
        );
        assert_eq!(
            ferrite_set_input_int8(it, 0, input.as_ptr(), 80),
            FerriteStatus::Ok
        );
        let floats = [0f32; 81];
        assert_eq!(
            ferrite_set_input_float(it, 0, floats.as_ptr().cast::<u8>().add(1).cast(), 80),
            FerriteStatus::Misaligned
        );
        let (mut data, mut n) = (ptr::null(), 0);
        assert_eq!(
            ferrite_output_data(it, 0, ptr::null_mut(), &mut n),
            FerriteStatus::NullPointer
        );
        assert_eq!(
            ferrite_output_data(it, 0, &mut data, &mut n),
            FerriteStatus::Ok
        );
        assert_eq!(n, 4);
    }
}

#[test]
fn short_or_misaligned_arenas() {
    let bytes = case("small_dscnn", "model.ferrite");
    let mut model = new_model();
    unsafe {
        ferrite_model_load(&mut *model, bytes.as_ptr(), bytes.len());
        let mut size = 0;
        ferrite_model_arena_size(&*model, &mut size);
        let mut arena = aligned(size + 16);
        let mut it = ptr::null_mut();
        assert_eq!(
            ferrite_interpreter_create(&mut *model, arena.as_mut_ptr().cast(), size - 1, &mut it),
            FerriteStatus::ArenaTooSmall
        );
        assert!(it.is_null());
        assert_eq!(
            model_message(&model),
            format!("arena too small: needs {size} bytes, has {}", size - 1)
        );
        // One byte past an aligned address: 15 bytes of padding.
        let odd = arena.as_mut_ptr().cast::<u8>().add(1).cast();
        assert_eq!(
            ferrite_interpreter_create(&mut *model, odd, size, &mut it),
            FerriteStatus::ArenaTooSmall
        );
        assert_eq!(
            ferrite_interpreter_create(&mut *model, odd, size + 15, &mut it),
            FerriteStatus::Ok
        );
        assert_eq!(it as usize % 16, 0);
        let input = case("small_dscnn", "input.bin");
        assert_eq!(
            ferrite_set_input(it, 0, input.as_ptr().cast(), input.len()),
            FerriteStatus::Ok
        );
        assert_eq!(ferrite_invoke(it), FerriteStatus::Ok);
        let mut out = [0i8; 4];
        assert_eq!(
            ferrite_get_output_int8(it, 0, out.as_mut_ptr(), 4),
            FerriteStatus::Ok
        );
        let expected: Vec<i8> = case("small_dscnn", "expected.bin")
            .iter()
            .map(|&b| b as i8)
            .collect();
        assert_eq!(out.to_vec(), expected);
    }
}

#[test]
fn wrong_lengths_types_and_indices() {
    let bytes = case("float_islands", "model.ferrite");
    let mut model = new_model();
    unsafe {
        ferrite_model_load(&mut *model, bytes.as_ptr(), bytes.len());
        let mut size = 0;
        ferrite_model_arena_size(&*model, &mut size);
        let mut arena = aligned(size);
        let mut it = ptr::null_mut();
        ferrite_interpreter_create(&mut *model, arena.as_mut_ptr().cast(), size, &mut it);
        let x = [0.25f32; 32];
        assert_eq!(
            ferrite_set_input_float(it, 0, x.as_ptr(), 31),
            FerriteStatus::WrongLength
        );
        assert_eq!(
            interpreter_message(it),
            "wrong buffer length: expected 32, found 31"
        );
        assert_eq!(
            ferrite_set_input(it, 0, x.as_ptr().cast(), 31 * 4),
            FerriteStatus::WrongLength
        );
        let q = [0i8; 32];
        assert_eq!(
            ferrite_set_input_int8(it, 0, q.as_ptr(), 32),
            FerriteStatus::WrongType
        );
        assert_eq!(
            ferrite_set_input_float(it, 1, x.as_ptr(), 32),
            FerriteStatus::NoSuchTensor
        );
        assert_eq!(
            ferrite_set_input_float(it, 0, x.as_ptr(), 32),
            FerriteStatus::Ok
        );
        assert_eq!(ferrite_invoke(it), FerriteStatus::Ok);
        let mut y = [0f32; 5];
        assert_eq!(
            ferrite_get_output_float(it, 0, y.as_mut_ptr(), 5),
            FerriteStatus::Ok
        );
        let sum: f32 = y.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "softmax sums to {sum}");
        let mut yq = [0i8; 5];
        assert_eq!(
            ferrite_get_output_int8(it, 0, yq.as_mut_ptr(), 5),
            FerriteStatus::WrongType
        );
        assert_eq!(
            ferrite_get_output_float(it, 0, y.as_mut_ptr(), 6),
            FerriteStatus::WrongLength
        );
    }
}

#[test]
fn messages_are_static_and_truncated_like_snprintf() {
    for status in -1..20 {
        let text = unsafe { CStr::from_ptr(ferrite_status_message(status)) };
        assert!(!text.to_bytes().is_empty());
    }
    assert_eq!(
        unsafe {
            CStr::from_ptr(ferrite_status_message(
                FerriteStatus::ArenaTooSmall as c_int,
            ))
        },
        c"arena too small"
    );
    let mut model = new_model();
    let bytes = b"not a model at all, longer than a header";
    unsafe {
        ferrite_model_load(&mut *model, bytes.as_ptr(), bytes.len());
        let full = "not a .ferrite model (bad magic)";
        let mut buf = [1 as c_char; 8];
        let n = ferrite_model_error_message(&*model, buf.as_mut_ptr(), buf.len());
        assert_eq!(n, full.len());
        assert_eq!(CStr::from_ptr(buf.as_ptr()).to_str().unwrap(), &full[..7]);
        assert_eq!(
            ferrite_model_error_message(&*model, ptr::null_mut(), 0),
            full.len()
        );
        let mut one = [1 as c_char; 1];
        ferrite_model_error_message(&*model, one.as_mut_ptr(), 1);
        assert_eq!(one[0], 0);
    }
    let version = unsafe { CStr::from_ptr(ferrite_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}
