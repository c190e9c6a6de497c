/* The C firmware's golden-case runner, the C twin of boards/common/src/case.rs: the model comes from
 * `ferrite export --c-array` (case_model.h), the input and expected bytes from case_data.h, both
 * written into the build folder by `cargo xtask qemu-test`. It runs the model through the C API
 * (ferrite.h), compares the output bytes with the expected ones, prints what it did over
 * semihosting and exits with status 0 (same bytes) or 1. */
#include <stddef.h>
#include <stdint.h>

#include "case_data.h"
#include "case_model.h"
#include "ferrite.h"
#include "semihosting.h"

/* The arena: the model's plan plus the interpreter's state, sized at compile time. */
static uint8_t arena[FERRITE_ARENA_SIZE(CASE_MODEL_ARENA_SIZE)] __attribute__((aligned(16)));
/* The outputs, concatenated. */
static uint8_t got[CASE_EXPECTED_LEN];

/* How many mismatching bytes are shown one by one. */
#define SHOWN_MISMATCHES 8

static int fail(const char *what, FerriteStatus status, const FerriteModel *model,
                const FerriteInterpreter *it) {
    char detail[160];
    detail[0] = '\0';
    if (it) ferrite_interpreter_error_message(it, detail, sizeof detail);
    else if (model) ferrite_model_error_message(model, detail, sizeof detail);
    sh_puts("case " CASE_NAME ": ");
    sh_puts(what);
    sh_puts(": ");
    sh_puts(ferrite_status_message(status));
    if (detail[0]) {
        sh_puts(" (");
        sh_puts(detail);
        sh_puts(")");
    }
    sh_puts("\nFAIL\n");
    return 1;
}

int main(void) {
    sh_puts("case " CASE_NAME ": model ");
    sh_put_uint(CASE_MODEL_LEN);
    sh_puts(" B, arena ");
    sh_put_uint(sizeof arena);
    sh_puts(" B (C API), input ");
    sh_put_uint(CASE_INPUT_LEN);
    sh_puts(" B, expected ");
    sh_put_uint(CASE_EXPECTED_LEN);
    sh_puts(" B; library ");
    sh_puts(ferrite_version());
    sh_puts("\n");

    FerriteModel model;
    FerriteStatus s = ferrite_model_load(&model, case_model, CASE_MODEL_LEN);
    if (s != FERRITE_STATUS_OK) return fail("model rejected", s, &model, NULL);
    size_t needed = 0;
    s = ferrite_model_arena_size(&model, &needed);
    if (s != FERRITE_STATUS_OK) return fail("arena size", s, &model, NULL);
    if (needed != sizeof arena) {
        sh_puts("ferrite_model_arena_size gives ");
        sh_put_uint(needed);
        sh_puts(" B, FERRITE_ARENA_SIZE ");
        sh_put_uint(sizeof arena);
        sh_puts(" B\nFAIL\n");
        return 1;
    }
    FerriteInterpreter *it = NULL;
    s = ferrite_interpreter_create(&model, arena, sizeof arena, &it);
    if (s != FERRITE_STATUS_OK) return fail("interpreter setup failed", s, &model, NULL);

    /* Inputs in order, from the concatenated input bytes. */
    size_t inputs = 0, offset = 0;
    s = ferrite_input_count(it, &inputs);
    if (s != FERRITE_STATUS_OK) return fail("input count", s, NULL, it);
    for (size_t i = 0; i < inputs; i++) {
        FerriteTensorInfo info;
        s = ferrite_input_info(it, i, &info);
        if (s != FERRITE_STATUS_OK) return fail("input info", s, NULL, it);
        if (offset + info.bytes > CASE_INPUT_LEN) {
            sh_puts("input.bin is shorter than the model's inputs\nFAIL\n");
            return 1;
        }
        s = ferrite_set_input(it, i, case_input + offset, info.bytes);
        if (s != FERRITE_STATUS_OK) return fail("set input", s, NULL, it);
        offset += info.bytes;
    }
    if (offset != CASE_INPUT_LEN) {
        sh_puts("input.bin is longer than the model's inputs\nFAIL\n");
        return 1;
    }

#ifdef SELFTEST_HARDFAULT
    /* Harness self-test: the fault handler must make the run fail. */
    sh_puts("selftest: executing an undefined instruction on purpose\n");
    __asm__ volatile("udf #0");
#endif
    s = ferrite_invoke(it);
    if (s != FERRITE_STATUS_OK) return fail("invoke failed", s, NULL, it);

    /* The outputs, concatenated, against the expected bytes. */
    size_t outputs = 0, length = 0;
    s = ferrite_output_count(it, &outputs);
    if (s != FERRITE_STATUS_OK) return fail("output count", s, NULL, it);
    for (size_t o = 0; o < outputs; o++) {
        FerriteTensorInfo info;
        s = ferrite_output_info(it, o, &info);
        if (s != FERRITE_STATUS_OK) return fail("output info", s, NULL, it);
        if (length + info.bytes > CASE_EXPECTED_LEN) {
            sh_puts("the outputs are longer than expected.bin\nFAIL\n");
            return 1;
        }
        s = ferrite_get_output(it, o, got + length, info.bytes);
        if (s != FERRITE_STATUS_OK) return fail("get output", s, NULL, it);
        length += info.bytes;
    }
    size_t mismatches = 0;
    for (size_t i = 0; i < length; i++) {
        if (got[i] == case_expected[i]) continue;
        if (mismatches < SHOWN_MISMATCHES) {
            sh_puts("  byte ");
            sh_put_uint(i);
            sh_puts(": got ");
            sh_put_int((int8_t)got[i]);
            sh_puts(", expected ");
            sh_put_int((int8_t)case_expected[i]);
            sh_puts("\n");
        }
        mismatches++;
    }
#ifdef SELFTEST_MISMATCH
    /* Harness self-test: a mismatch must make the run fail. */
    sh_puts("selftest: counting a mismatch on purpose\n");
    mismatches++;
#endif
    sh_puts("case " CASE_NAME ": output ");
    sh_put_uint(length);
    sh_puts(" B (expected ");
    sh_put_uint(CASE_EXPECTED_LEN);
    sh_puts(" B), ");
    sh_put_uint(mismatches);
    sh_puts(" mismatching\n");
    if (mismatches != 0 || length != CASE_EXPECTED_LEN) {
        sh_puts("FAIL\n");
        return 1;
    }
    sh_puts("PASS\n");
    return 0;
}
