/* The C API on the host: runs golden cases (tests/golden/<case>/: model.ferrite, input.bin,
 * expected.bin) and compares the output bytes, then checks the error paths' statuses (a corrupt
 * model, a short arena, a wrong input size...).
 *
 *   cc -std=c11 -Wall -Wextra -I capi/include capi/examples/host.c \
 *      target/capi/x86_64-unknown-linux-gnu/release/libferrite_capi.a -o host
 *   ./host tests/golden/small_dscnn [more case folders]
 *
 * Exits 0 when every case matches and every check holds; `cargo xtask test` runs it on every case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferrite.h"

static int failures = 0;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

/* Expects `call` to return `want`, naming both statuses otherwise. */
#define EXPECT_STATUS(call, want)                                                        \
    do {                                                                                 \
        FerriteStatus got_ = (call);                                                     \
        if (got_ != (want)) {                                                            \
            fprintf(stderr, "%s:%d: %s: got %d (%s), expected %d (%s)\n", __FILE__,      \
                    __LINE__, #call, (int)got_, ferrite_status_message(got_), (int)(want), \
                    ferrite_status_message(want));                                       \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

/* Reads a whole file into a malloc'd buffer; NULL (and a message) on failure. */
static uint8_t *read_file(const char *dir, const char *name, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(n > 0 ? (size_t)n : 1);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) {
        perror(path);
        fclose(f);
        free(data);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return data;
}

/* A 16-byte aligned buffer (FERRITE_ARENA_ALIGN). */
static void *arena_alloc(size_t len) {
    return aligned_alloc(FERRITE_ARENA_ALIGN, (len + FERRITE_ARENA_ALIGN - 1) / FERRITE_ARENA_ALIGN * FERRITE_ARENA_ALIGN);
}

/* Runs one case; 0 when the output bytes are the expected ones. */
static int run_case(const char *dir) {
    size_t model_len, input_len, expected_len;
    uint8_t *model_bytes = read_file(dir, "model.ferrite", &model_len);
    uint8_t *input = read_file(dir, "input.bin", &input_len);
    uint8_t *expected = read_file(dir, "expected.bin", &expected_len);
    int result = 1;
    void *arena = NULL;
    uint8_t *got = NULL;
    if (!model_bytes || !input || !expected) goto done;

    FerriteModel model;
    FerriteStatus s = ferrite_model_load(&model, model_bytes, model_len);
    if (s != FERRITE_STATUS_OK) {
        char why[256];
        ferrite_model_error_message(&model, why, sizeof why);
        fprintf(stderr, "%s: %s: %s\n", dir, ferrite_status_message(s), why);
        goto done;
    }
    size_t arena_len = 0;
    EXPECT_STATUS(ferrite_model_arena_size(&model, &arena_len), FERRITE_STATUS_OK);
    arena = arena_alloc(arena_len);
    FerriteInterpreter *it = NULL;
    s = ferrite_interpreter_create(&model, arena, arena_len, &it);
    if (s != FERRITE_STATUS_OK) {
        char why[256];
        ferrite_model_error_message(&model, why, sizeof why);
        fprintf(stderr, "%s: %s: %s\n", dir, ferrite_status_message(s), why);
        goto done;
    }

    size_t inputs = 0, outputs = 0, offset = 0;
    EXPECT_STATUS(ferrite_input_count(it, &inputs), FERRITE_STATUS_OK);
    for (size_t i = 0; i < inputs; i++) {
        FerriteTensorInfo info;
        EXPECT_STATUS(ferrite_input_info(it, i, &info), FERRITE_STATUS_OK);
        if (offset + info.bytes > input_len) {
            fprintf(stderr, "%s: input.bin is short for input %zu\n", dir, i);
            goto done;
        }
        EXPECT_STATUS(ferrite_set_input(it, i, input + offset, info.bytes), FERRITE_STATUS_OK);
        offset += info.bytes;
    }
    CHECK(offset == input_len);
    s = ferrite_invoke(it);
    if (s != FERRITE_STATUS_OK) {
        char why[256];
        ferrite_interpreter_error_message(it, why, sizeof why);
        fprintf(stderr, "%s: invoke: %s: %s\n", dir, ferrite_status_message(s), why);
        goto done;
    }
    EXPECT_STATUS(ferrite_output_count(it, &outputs), FERRITE_STATUS_OK);
    got = malloc(expected_len + 1);
    offset = 0;
    for (size_t o = 0; o < outputs; o++) {
        FerriteTensorInfo info;
        EXPECT_STATUS(ferrite_output_info(it, o, &info), FERRITE_STATUS_OK);
        if (offset + info.bytes > expected_len) {
            fprintf(stderr, "%s: the outputs are longer than expected.bin\n", dir);
            goto done;
        }
        EXPECT_STATUS(ferrite_get_output(it, o, got + offset, info.bytes), FERRITE_STATUS_OK);
        offset += info.bytes;
    }
    if (offset != expected_len || memcmp(got, expected, expected_len) != 0) {
        fprintf(stderr, "%s: output differs from expected.bin (%zu of %zu bytes)\n", dir, offset,
                expected_len);
        goto done;
    }
    printf("    PASS %s: %zu output bytes as expected (arena %zu B)\n", dir, offset, arena_len);
    result = 0;
done:
    free(got);
    free(arena);
    free(model_bytes);
    free(input);
    free(expected);
    return result;
}

/* The error paths, on the first case's model. */
static void error_paths(const char *dir) {
    size_t model_len, input_len;
    uint8_t *bytes = read_file(dir, "model.ferrite", &model_len);
    uint8_t *input = read_file(dir, "input.bin", &input_len);
    if (!bytes || !input) {
        failures++;
        free(bytes);
        free(input);
        return;
    }
    FerriteModel model;
    char why[256];

    /* Arguments. */
    EXPECT_STATUS(ferrite_model_load(NULL, bytes, model_len), FERRITE_STATUS_NULL_POINTER);
    EXPECT_STATUS(ferrite_model_load(&model, NULL, model_len), FERRITE_STATUS_NULL_POINTER);
    memset(&model, 0, sizeof model);
    size_t size = 0;
    EXPECT_STATUS(ferrite_model_arena_size(&model, &size), FERRITE_STATUS_INVALID_HANDLE);

    /* A corrupt model: one payload bit flipped. */
    uint8_t *corrupt = malloc(model_len);
    memcpy(corrupt, bytes, model_len);
    corrupt[model_len - 1] ^= 0x10;
    EXPECT_STATUS(ferrite_model_load(&model, corrupt, model_len), FERRITE_STATUS_MODEL_CORRUPT);
    size_t n = ferrite_model_error_message(&model, why, sizeof why);
    CHECK(n == strlen(why) && strstr(why, "checksum mismatch") != NULL);
    EXPECT_STATUS(ferrite_model_arena_size(&model, &size), FERRITE_STATUS_INVALID_HANDLE);
    /* Not a model; truncated. */
    memcpy(corrupt, "ONNX", 4);
    EXPECT_STATUS(ferrite_model_load(&model, corrupt, model_len), FERRITE_STATUS_MODEL_NOT_FERRITE);
    EXPECT_STATUS(ferrite_model_load(&model, bytes, model_len / 2), FERRITE_STATUS_MODEL_TRUNCATED);
    free(corrupt);

    /* A short arena: one byte less than asked for; then one that is not aligned. */
    EXPECT_STATUS(ferrite_model_load(&model, bytes, model_len), FERRITE_STATUS_OK);
    EXPECT_STATUS(ferrite_model_arena_size(&model, &size), FERRITE_STATUS_OK);
    uint8_t *arena = arena_alloc(size + FERRITE_ARENA_ALIGN);
    FerriteInterpreter *it = (FerriteInterpreter *)arena; /* overwritten with NULL */
    EXPECT_STATUS(ferrite_interpreter_create(&model, arena, size - 1, &it),
                  FERRITE_STATUS_ARENA_TOO_SMALL);
    CHECK(it == NULL);
    ferrite_model_error_message(&model, why, sizeof why);
    CHECK(strstr(why, "arena too small") != NULL);
    EXPECT_STATUS(ferrite_interpreter_create(&model, arena + 1, size, &it),
                  FERRITE_STATUS_ARENA_TOO_SMALL);
    EXPECT_STATUS(ferrite_interpreter_create(&model, arena + 1, size + FERRITE_ARENA_ALIGN - 1, &it),
                  FERRITE_STATUS_OK);
    EXPECT_STATUS(ferrite_interpreter_create(&model, arena, size, &it), FERRITE_STATUS_OK);

    /* Calls on something that is not an interpreter. */
    uint8_t junk[64] __attribute__((aligned(16))) = {0};
    EXPECT_STATUS(ferrite_invoke(NULL), FERRITE_STATUS_NULL_POINTER);
    EXPECT_STATUS(ferrite_invoke((FerriteInterpreter *)junk), FERRITE_STATUS_INVALID_HANDLE);

    /* Wrong input size, index, type; a NULL buffer. */
    FerriteTensorInfo info;
    EXPECT_STATUS(ferrite_input_info(it, 0, &info), FERRITE_STATUS_OK);
    EXPECT_STATUS(ferrite_set_input(it, 0, input, info.bytes - 1), FERRITE_STATUS_WRONG_LENGTH);
    n = ferrite_interpreter_error_message(it, why, sizeof why);
    CHECK(n > 0 && strstr(why, "wrong buffer length") != NULL);
    EXPECT_STATUS(ferrite_set_input(it, 0, input, info.bytes + 1), FERRITE_STATUS_WRONG_LENGTH);
    EXPECT_STATUS(ferrite_set_input(it, 99, input, info.bytes), FERRITE_STATUS_NO_SUCH_TENSOR);
    EXPECT_STATUS(ferrite_set_input(it, 0, NULL, info.bytes), FERRITE_STATUS_NULL_POINTER);
    EXPECT_STATUS(ferrite_input_info(it, 99, &info), FERRITE_STATUS_NO_SUCH_TENSOR);
    EXPECT_STATUS(ferrite_input_info(it, 0, NULL), FERRITE_STATUS_NULL_POINTER);
    EXPECT_STATUS(ferrite_input_info(it, 0, &info), FERRITE_STATUS_OK);
    if (info.dtype == FERRITE_TYPE_INT8) {
        /* Real values, quantized by the input's scale and zero point; the float read-out. */
        float *x = calloc(info.elements, sizeof(float));
        EXPECT_STATUS(ferrite_set_input_float(it, 0, x, info.elements - 1), FERRITE_STATUS_WRONG_LENGTH);
        EXPECT_STATUS(ferrite_set_input_float(it, 0, x, info.elements), FERRITE_STATUS_OK);
        const void *raw = NULL;
        size_t raw_len = 0;
        EXPECT_STATUS(ferrite_input_data(it, 0, (void **)&raw, &raw_len), FERRITE_STATUS_OK);
        CHECK(raw_len == info.bytes && ((const int8_t *)raw)[0] == (int8_t)info.zero_point);
        free(x);
        EXPECT_STATUS(ferrite_set_input_int8(it, 0, (const int8_t *)input, info.elements),
                      FERRITE_STATUS_OK);
        EXPECT_STATUS(ferrite_invoke(it), FERRITE_STATUS_OK);
        FerriteTensorInfo out;
        EXPECT_STATUS(ferrite_output_info(it, 0, &out), FERRITE_STATUS_OK);
        float *y = calloc(out.elements, sizeof(float));
        int8_t *q = calloc(out.elements, 1);
        EXPECT_STATUS(ferrite_get_output_float(it, 0, y, out.elements), FERRITE_STATUS_OK);
        EXPECT_STATUS(ferrite_get_output_int8(it, 0, q, out.elements), FERRITE_STATUS_OK);
        if (out.dtype == FERRITE_TYPE_INT8)
            CHECK(y[0] == out.scale * (float)(q[0] - out.zero_point));
        EXPECT_STATUS(ferrite_get_output_int8(it, 0, q, out.elements + 1), FERRITE_STATUS_WRONG_LENGTH);
        free(y);
        free(q);
    } else {
        EXPECT_STATUS(ferrite_set_input_int8(it, 0, (const int8_t *)input, info.elements),
                      FERRITE_STATUS_WRONG_TYPE);
    }

    /* Every status has a message; unknown ones too. */
    for (int st = -1; st <= 20; st++) CHECK(ferrite_status_message(st) != NULL);
    CHECK(strcmp(ferrite_status_message(FERRITE_STATUS_OK), "ok") == 0);
    printf("    PASS error paths on %s (library %s)\n", dir, ferrite_version());
    free(arena);
    free(bytes);
    free(input);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CASE_DIR [CASE_DIR...]\n", argv[0]);
        return 2;
    }
    int failed_cases = 0;
    for (int i = 1; i < argc; i++) failed_cases += run_case(argv[i]);
    error_paths(argv[1]);
    /* The cases, and the error paths as one more test. */
    int passed = argc - 1 - failed_cases + (failures == 0);
    int failed = failed_cases + (failures != 0);
    printf("C host example: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
