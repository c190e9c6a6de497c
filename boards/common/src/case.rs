//! Golden-case runner: a model, its input bytes and the expected output
//! bytes, embedded at build time from `$FERRITE_CASE_DIR`
//! (`model.ferrite`, `input.bin`, `expected.bin`), named `$FERRITE_CASE_NAME`.

use crate::{ferrite_bench_mark, fnv, Outcome};
use ferrite_runtime::{arena_size, Arena, Interpreter, Model};

/// 16-byte alignment for the embedded model, so the runtime may borrow its
/// arrays in place whatever alignment it needs.
#[repr(C, align(16))]
struct Aligned<B: ?Sized>(B);

static MODEL_ALIGNED: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("FERRITE_CASE_DIR"),
    "/model.ferrite"
)));
static MODEL: &[u8] = &MODEL_ALIGNED.0;
static INPUT: &[u8] = include_bytes!(concat!(env!("FERRITE_CASE_DIR"), "/input.bin"));
static EXPECTED: &[u8] = include_bytes!(concat!(env!("FERRITE_CASE_DIR"), "/expected.bin"));
const NAME: &str = env!("FERRITE_CASE_NAME");

/// Arena size read from the embedded model's header at compile time.
const ARENA_SIZE: usize = arena_size(include_bytes!(concat!(
    env!("FERRITE_CASE_DIR"),
    "/model.ferrite"
)));

static mut ARENA: Arena<ARENA_SIZE> = Arena::new();

/// How many mismatching bytes are logged one by one.
const SHOWN_MISMATCHES: usize = 8;

pub fn run() -> Outcome {
    defmt::debug_assert_eq!(MODEL.as_ptr() as usize % 16, 0);
    defmt::info!(
        "case {=str}: model {=usize} B, arena {=usize} B, input {=usize} B, expected {=usize} B",
        NAME,
        MODEL.len(),
        ARENA_SIZE,
        INPUT.len(),
        EXPECTED.len()
    );
    if ARENA_SIZE == 0 {
        defmt::error!("case {=str}: invalid model header (arena size 0)", NAME);
        return Outcome::Fail;
    }
    // SAFETY: `run` is called once, from `main`; nothing else touches ARENA.
    let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };

    let model = match Model::from_bytes(MODEL) {
        Ok(model) => model,
        Err(e) => {
            defmt::error!("case {=str}: model rejected: {}", NAME, e);
            return Outcome::Fail;
        }
    };
    let mut interpreter = match Interpreter::new(&model, arena.as_mut_slice()) {
        Ok(interpreter) => interpreter,
        Err(e) => {
            defmt::error!("case {=str}: interpreter setup failed: {}", NAME, e);
            return Outcome::Fail;
        }
    };

    // Inputs in order, from the concatenated input bytes.
    let mut offset = 0;
    for index in 0..interpreter.inputs() {
        let tensor = match interpreter.input_bytes_mut(index) {
            Ok(tensor) => tensor,
            Err(e) => {
                defmt::error!("case {=str}: input {=usize}: {}", NAME, index, e);
                return Outcome::Fail;
            }
        };
        let Some(bytes) = INPUT.get(offset..offset + tensor.len()) else {
            defmt::error!(
                "case {=str}: input.bin has {=usize} B, input {=usize} needs {=usize} B from offset {=usize}",
                NAME,
                INPUT.len(),
                index,
                tensor.len(),
                offset
            );
            return Outcome::Fail;
        };
        tensor.copy_from_slice(bytes);
        offset += bytes.len();
    }
    if offset != INPUT.len() {
        defmt::error!(
            "case {=str}: input.bin has {=usize} B, the model's inputs take {=usize} B",
            NAME,
            INPUT.len(),
            offset
        );
        return Outcome::Fail;
    }

    ferrite_bench_mark();
    // With `bench`, a mark before and after each operator gives per-layer counts, and the
    // interpreter's own work between operators.
    #[cfg(all(feature = "bench", not(feature = "stack-probe")))]
    let invoked =
        interpreter.invoke_traced(|_, _| ferrite_bench_mark(), |_, _| ferrite_bench_mark());
    // The deepest stack of each operator: painted before it, read after it.
    #[cfg(feature = "stack-probe")]
    let invoked = interpreter.invoke_traced(
        |_, _| ferrite_bench_mark(),
        |step, _| {
            ferrite_bench_mark();
            let (used, _) = crate::stack::high_water();
            defmt::info!("stack after operator {=usize}: {=usize} B", step, used);
            crate::stack::paint();
        },
    );
    #[cfg(not(feature = "bench"))]
    let invoked = interpreter.invoke();
    ferrite_bench_mark();
    if let Err(e) = invoked {
        defmt::error!("case {=str}: invoke failed: {}", NAME, e);
        return Outcome::Fail;
    }

    // Compare the concatenated outputs with the expected bytes.
    let mut hash = fnv::fnv1a_start();
    let mut length = 0usize;
    let mut mismatches = 0usize;
    for index in 0..interpreter.outputs() {
        let output = match interpreter.output_bytes(index) {
            Ok(output) => output,
            Err(e) => {
                defmt::error!("case {=str}: output {=usize}: {}", NAME, index, e);
                return Outcome::Fail;
            }
        };
        hash = fnv::fnv1a_update(hash, output);
        // The output bytes themselves, for `cargo xtask demo` to read the device's predictions.
        #[cfg(feature = "bench")]
        if output.len() <= 64 {
            defmt::info!("output {=usize}: {=[u8]}", index, output);
        }
        // Mismatches of int16 outputs are shown as int16 values (little-endian pairs).
        let int16 = matches!(
            model.output(index).map(|t| t.dtype),
            Ok(ferrite_runtime::format::DType::I16)
        );
        for (i, &got) in output.iter().enumerate() {
            let at = length + i;
            match EXPECTED.get(at) {
                Some(&want) if want == got => {}
                want => {
                    if mismatches < SHOWN_MISMATCHES {
                        let element = i / 2 * 2;
                        let pair = |bytes: &[u8]| {
                            bytes
                                .get(element..element + 2)
                                .map(|p| i16::from_le_bytes([p[0], p[1]]))
                        };
                        let expected_element = EXPECTED.get(length..).and_then(pair);
                        match (want, int16, pair(output), expected_element) {
                            (Some(_), true, Some(got), Some(want)) => defmt::error!(
                                "  byte {=usize} (output {=usize}[{=usize}], int16): got {=i16}, expected {=i16}",
                                at, index, i / 2, got, want
                            ),
                            (Some(&want), _, _, _) => defmt::error!(
                                "  byte {=usize} (output {=usize}[{=usize}]): got {=u8} ({=i8}), expected {=u8} ({=i8})",
                                at, index, i, got, got as i8, want, want as i8
                            ),
                            (None, _, _, _) => defmt::error!(
                                "  byte {=usize} (output {=usize}[{=usize}]): got {=u8}, past the end of expected.bin",
                                at, index, i, got
                            ),
                        }
                    }
                    mismatches += 1;
                }
            }
        }
        length += output.len();
    }
    #[cfg(feature = "selftest-mismatch")]
    {
        defmt::info!("selftest: counting a mismatch on purpose");
        mismatches += 1;
    }
    defmt::info!(
        "case {=str}: output {=usize} B (expected {=usize} B), {=usize} mismatching, fnv1a={=u32:#010x}",
        NAME,
        length,
        EXPECTED.len(),
        mismatches,
        hash
    );
    if mismatches == 0 && length == EXPECTED.len() {
        Outcome::Pass
    } else {
        Outcome::Fail
    }
}
