#!/usr/bin/env python3
"""Fixtures and goldens for Ferrite's TFLite importer, from TensorFlow's converter and TFLite Micro.

    python3 tests/tflite/make_fixtures.py fixtures   # int8 .tflite fixtures (needs tensorflow-cpu)
    python3 tests/tflite/make_fixtures.py goldens    # goldens of the fixtures and of the MLPerf Tiny models
    python3 tests/tflite/make_fixtures.py fixtures NAME...   # only the named fixtures
    python3 tests/tflite/make_fixtures.py goldens NAME...    # only the named fixtures' goldens
    python3 tests/tflite/make_fixtures.py errors NAME...     # only the named error models
    python3 tests/tflite/make_fixtures.py arenas     # TFLite Micro's print_allocations() for the MLPerf models
    python3 tests/tflite/make_fixtures.py errors     # models the importer must refuse (needs tensorflow-cpu)

Versions are pinned in tests/tflite/requirements.txt. Goldens hold outputs only: every input is drawn
from the xorshift64* generator below, which `quantizer/tests/tflite_import.rs` implements identically.
Sample k of a model uses a generator seeded with k; its inputs are filled in input order, element by
element, each int8 element being the top byte of the next 64-bit draw (float32 inputs: that int8 / 32;
int16 inputs: the top two bytes of the draw).
"""

import hashlib
import os
import platform
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
ERRORS = os.path.join(HERE, "errors")
GOLDENS = os.path.join(HERE, "goldens")
MLPERF = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "models", "mlperf-tiny"))
MLPERF_MODELS = ["kws_dscnn_int8", "ic_resnet8_int8", "vww_mobilenet_int8", "ad_autoencoder_int8", "sww_int8"]
FIXTURE_SAMPLES = 100
MLPERF_SAMPLES = 100
# The autoencoder has 640 outputs per sample: fewer samples keep its golden small.
MLPERF_SAMPLES_AD = 20

M64 = (1 << 64) - 1


def draw_words(seeds, count):
    """xorshift64*: one stream per seed; returns an array [len(seeds), count] of the top 16 bits."""
    with np.errstate(over="ignore"):
        s = (np.array(seeds, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
        out = np.empty((len(seeds), count), dtype=np.uint16)
        mul = np.uint64(0x2545F4914F6CDD1D)
        for i in range(count):
            s ^= s >> np.uint64(12)
            s ^= s << np.uint64(25)
            s ^= s >> np.uint64(27)
            out[:, i] = ((s * mul) >> np.uint64(48)).astype(np.uint16)
    return out


def sample_inputs(details, seeds):
    """Inputs of every sample: a list (per sample) of arrays (per input)."""
    sizes = [int(np.prod(d["shape"])) for d in details]
    raw = draw_words(seeds, sum(sizes))
    samples = []
    for k in range(len(seeds)):
        arrays, at = [], 0
        for d, n in zip(details, sizes):
            w = raw[k, at:at + n].reshape(d["shape"])
            at += n
            q = (w >> np.uint16(8)).astype(np.uint8).view(np.int8)
            if d["dtype"] == np.float32:
                arrays.append(q.astype(np.float32) / np.float32(32.0))
            elif d["dtype"] == np.int8:
                arrays.append(q.copy())
            elif d["dtype"] == np.int16:
                arrays.append(w.view(np.int16).copy())
            else:
                raise SystemExit(f"unsupported input type {d['dtype']}")
        samples.append(arrays)
    return samples


# ---------------------------------------------------------------- fixtures (TensorFlow converter)

def build_fixtures(only=()):
    import tensorflow as tf

    rng = np.random.default_rng(2026)

    def const(shape, scale=0.3):
        return tf.constant(rng.normal(0.0, scale, shape).astype(np.float32))

    def conv(x, cout, kh, kw, stride=1, padding="SAME", dilation=1, act=None):
        w = const([kh, kw, x.shape[-1], cout])
        b = const([cout], 0.1)
        y = tf.nn.conv2d(x, w, strides=stride, padding=padding, dilations=dilation) + b
        return act(y) if act else y

    def dwconv(x, kh, kw, mult=1, stride=1, padding="SAME", act=None):
        w = const([kh, kw, x.shape[-1], mult])
        b = const([x.shape[-1] * mult], 0.1)
        y = tf.nn.depthwise_conv2d(x, w, strides=[1, stride, stride, 1], padding=padding) + b
        return act(y) if act else y

    def tconv(x, cout, k, stride, padding, out_hw, act=None):
        w = const([k[0], k[1], cout, x.shape[-1]])
        y = tf.nn.conv2d_transpose(x, w, [1, out_hw[0], out_hw[1], cout], stride, padding) + const([cout], 0.1)
        return act(y) if act else y

    def dense(x, n, act=None):
        w = const([x.shape[-1], n])
        y = tf.matmul(x, w) + const([n], 0.1)
        return act(y) if act else y

    relu, relu6 = tf.nn.relu, tf.nn.relu6
    cases = {
        "conv2d_same_relu": ([[1, 6, 6, 3]], lambda x: conv(x, 8, 3, 3, act=relu)),
        "conv2d_s2_same_even": ([[1, 10, 10, 4]], lambda x: conv(x, 6, 3, 5, stride=2)),
        "conv2d_s2_valid_relu6": ([[1, 11, 9, 4]], lambda x: conv(x, 5, 3, 3, stride=2, padding="VALID", act=relu6)),
        "conv2d_dilation2": ([[1, 7, 7, 2]], lambda x: conv(x, 4, 3, 3, dilation=2)),
        "conv2d_1x1": ([[1, 5, 5, 16]], lambda x: conv(x, 8, 1, 1, act=relu)),
        "depthwise_same_relu": ([[1, 6, 6, 6]], lambda x: dwconv(x, 3, 3, act=relu)),
        "depthwise_s2_dm2": ([[1, 7, 7, 4]], lambda x: dwconv(x, 3, 3, mult=2, stride=2)),
        "depthwise_valid_relu6": ([[1, 9, 6, 3]], lambda x: dwconv(x, 3, 2, padding="VALID", act=relu6)),
        "fully_connected_relu": ([[1, 24]], lambda x: dense(x, 10, act=relu)),
        "fully_connected_b3": ([[3, 16]], lambda x: dense(x, 7)),
        "add_broadcast_relu": ([[1, 4, 5, 8], [1, 1, 5, 8]], lambda a, b: relu(a + b), [1.0, 2.5]),
        "add_same_shape": ([[1, 6, 6, 4], [1, 6, 6, 4]], lambda a, b: a + b),
        "mul_broadcast": ([[1, 4, 5, 8], [1, 1, 1, 8]], lambda a, b: a * b, [1.0, 2.0]),
        "average_pool_3x3_s2_same": ([[1, 9, 9, 6]], lambda x: tf.nn.avg_pool2d(x, 3, 2, "SAME")),
        "average_pool_2x2_valid": ([[1, 8, 7, 3]], lambda x: tf.nn.avg_pool2d(x, 2, 2, "VALID")),
        "max_pool_3x3_s2_same": ([[1, 9, 9, 6]], lambda x: tf.nn.max_pool2d(x, 3, 2, "SAME")),
        "max_pool_2x2_valid": ([[1, 8, 8, 5]], lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID")),
        "mean_hw_keepdims": ([[1, 5, 6, 10]], lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True)),
        "mean_hw": ([[1, 7, 3, 12]], lambda x: tf.reduce_mean(x, axis=[1, 2]), [3.0]),
        "softmax": ([[2, 10]], lambda x: tf.nn.softmax(x), [2.5]),
        "logistic": ([[1, 64]], lambda x: tf.sigmoid(x), [3.0]),
        "tanh": ([[1, 64]], lambda x: tf.tanh(x), [2.0]),
        "logistic_tanh_chain": ([[1, 4, 8]], lambda x: tf.tanh(tf.sigmoid(x)), [3.0]),
        "relu": ([[1, 64]], lambda x: relu(x)),
        "relu6": ([[1, 4, 4, 4]], lambda x: relu6(x), [4.0]),
        "leaky_relu": ([[1, 64]], lambda x: tf.nn.leaky_relu(x, alpha=0.1), [2.0]),
        "leaky_relu_nhwc": ([[1, 4, 4, 6]], lambda x: tf.nn.leaky_relu(x, alpha=0.01), [3.0]),
        "resize_nearest_x2": ([[1, 3, 4, 5]], lambda x: tf.image.resize(x, [6, 8], method="nearest")),
        "resize_nearest_x3_v1": ([[1, 2, 3, 4]], lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [6, 9])),
        "resize_bilinear_x2": ([[1, 3, 4, 5]], lambda x: tf.image.resize(x, [6, 8], method="bilinear")),
        "resize_bilinear_v1": ([[1, 3, 4, 2]], lambda x: tf.compat.v1.image.resize_bilinear(x, [5, 7])),
        "resize_bilinear_align_v1": ([[1, 3, 4, 2]], lambda x: tf.compat.v1.image.resize_bilinear(
            x, [5, 7], align_corners=True)),
        "depth_to_space": ([[1, 3, 4, 8]], lambda x: tf.nn.depth_to_space(x, 2)),
        "reshape": ([[1, 2, 3, 4]], lambda x: tf.reshape(x, [1, 6, 4])),
        "squeeze": ([[1, 5, 1, 3]], lambda x: tf.squeeze(x, axis=2)),
        "concatenation": ([[1, 4, 4, 3], [1, 4, 4, 5]], lambda a, b: tf.concat([a, b], axis=3), [1.0, 3.0]),
        "concatenation_axis1": ([[1, 2, 6], [1, 3, 6]], lambda a, b: tf.concat([a, b], axis=1)),
        "pad": ([[1, 3, 4, 2]], lambda x: tf.pad(x, [[0, 0], [1, 1], [2, 0], [1, 2]])),
        "small_cnn": ([[1, 12, 10, 1]], lambda x: tf.nn.softmax(dense(tf.reshape(
            tf.nn.avg_pool2d(dwconv(conv(x, 8, 3, 3, stride=2, act=relu), 3, 3, act=relu), [6, 5], 1, "VALID"),
            [1, 8]), 5))),
        "residual_block": ([[1, 8, 8, 8]], lambda x: tf.reduce_mean(
            relu(x + conv(conv(x, 8, 3, 3, act=relu), 8, 3, 3)), axis=[1, 2])),
        # Last among the cases with weights, so that a full run gives the earlier ones the weights
        # they always had (one generator draws every case's weights in order).
        "transpose_conv_s2_same_relu": ([[1, 4, 4, 3]], lambda x: tconv(x, 5, [3, 3], 2, "SAME", [8, 8], act=relu)),
        "transpose_conv_s2_valid": ([[1, 3, 4, 2]], lambda x: tconv(x, 4, [4, 4], 2, "VALID", [8, 10])),
        "transpose_conv_s3_k2_same": ([[1, 3, 3, 4]], lambda x: tconv(x, 3, [2, 2], 3, "SAME", [9, 9])),
        "mirror_pad_reflect": ([[1, 4, 5, 3]], lambda x: tf.pad(x, [[0, 0], [2, 1], [3, 4], [0, 0]], mode="REFLECT")),
        "mirror_pad_symmetric": ([[1, 3, 4, 2]], lambda x: tf.pad(x, [[0, 0], [3, 0], [1, 4], [1, 2]], mode="SYMMETRIC")),
        # The converter writes x * relu6(x + 3) / 6 as one HARD_SWISH.
        "hard_swish": ([[1, 4, 4, 8]], lambda x: x * tf.nn.relu6(x + 3.0) / 6.0, [3.0]),
        "transpose_hw": ([[1, 3, 5, 4]], lambda x: tf.transpose(x, [0, 2, 1, 3])),
        # ShuffleNet's channel shuffle of two groups of four channels, in rank 4.
        "channel_shuffle": ([[1, 4, 4, 8]], lambda x: tf.reshape(
            tf.transpose(tf.reshape(x, [1, 16, 2, 4]), [0, 1, 3, 2]), [1, 4, 4, 8])),
        # SUB: the second operand broadcast, with a fused ReLU; and of equal shapes.
        "sub_broadcast_relu": ([[1, 4, 5, 8], [1, 1, 5, 8]], lambda a, b: relu(a - b), [1.0, 2.5]),
        "sub_same_shape": ([[1, 6, 6, 4], [1, 6, 6, 4]], lambda a, b: a - b, [2.0, 0.5]),
        # MAXIMUM and MINIMUM of inputs of different ranges, broadcast and of equal shapes.
        "maximum_broadcast": ([[1, 4, 5, 8], [1, 1, 5, 8]], lambda a, b: tf.maximum(a, b), [1.0, 2.5]),
        "minimum_same_shape": ([[1, 6, 6, 4], [1, 6, 6, 4]], lambda a, b: tf.minimum(a, b), [2.0, 0.5]),
        # Boxes and parts of a tensor: STRIDED_SLICE with an end mask and with an axis shrunk,
        # SLICE, SPLIT and SPLIT_V (several outputs).
        "strided_slice": ([[1, 6, 8, 4]], lambda x: x[:, 1:5, 2:, 1:3]),
        "strided_slice_shrink": ([[1, 5, 6, 4]], lambda x: x[:, 2, :, 1:3]),
        "slice": ([[1, 5, 6, 4]], lambda x: tf.slice(x, [0, 1, 2, 0], [1, 3, -1, 2])),
        "split": ([[1, 4, 4, 6]], lambda x: tf.split(x, 2, axis=3)),
        "split_v": ([[1, 4, 6, 3]], lambda x: tf.split(x, [1, 3, 2], axis=2)),
    }
    # Keras PReLU layers (their alpha a constant the converter quantizes), with fixed slopes,
    # negative and above 1 among them.
    # The layer is built outside the traced function (its alpha is a variable).
    def prelu(shape, alpha, shared_axes):
        layer = tf.keras.layers.PReLU(
            alpha_initializer=tf.keras.initializers.Constant(alpha), shared_axes=shared_axes)
        layer.build(shape)
        return ([shape], lambda x: layer(x), [2.0])

    cases["prelu"] = prelu([1, 4, 4, 6], [0.25, -0.5, 0.1, 1.5, 0.0, 0.05], [1, 2])
    cases["prelu_shared"] = prelu([1, 3, 5, 4], 0.2, [1, 2, 3])
    float_io = {
        # Float input and output: QUANTIZE (f32 -> int8) in front, DEQUANTIZE (int8 -> f32) behind.
        "float_io_conv": ([[1, 5, 5, 2]], lambda x: conv(x, 4, 3, 3, act=relu)),
        "i16_float_io_conv": ([[1, 5, 5, 2]], lambda x: conv(x, 4, 3, 3, act=relu)),
    }
    # int16x8: int16 activations (zero point 0), int8 weights, int64 biases, made with the converter's
    # 16x8 operator set; the same bodies as the int8 cases of the same name without `i16_`.
    int16 = ["conv2d_same_relu", "conv2d_s2_valid_relu6", "conv2d_dilation2", "conv2d_1x1",
             "depthwise_same_relu", "depthwise_s2_dm2", "fully_connected_relu", "fully_connected_b3",
             "add_broadcast_relu", "add_same_shape", "mul_broadcast", "average_pool_3x3_s2_same",
             "max_pool_2x2_valid", "mean_hw_keepdims", "mean_hw", "softmax", "logistic", "tanh", "relu",
             "relu6", "leaky_relu", "reshape", "concatenation", "pad", "small_cnn", "residual_block",
             "sub_broadcast_relu", "sub_same_shape", "maximum_broadcast", "minimum_same_shape",
             "strided_slice", "split"]
    for name in int16:
        cases["i16_" + name] = cases[name]

    # A dynamic batch (None in the signature): the converter computes a reshape's new shape at run
    # time (SHAPE, STRIDED_SLICE, PACK into RESHAPE's second operand). No weights are drawn here, so
    # the cases above keep theirs.
    dynamic_batch = {
        "reshape_dynamic_batch": ([[1, 4, 4, 6]], lambda x: relu(tf.reshape(x, [tf.shape(x)[0], 16, 6]))),
    }

    # Arithmetic with a constant value (no weights drawn): a Keras Rescaling layer's MUL and ADD,
    # a SUB from a constant with a fused ReLU, a clip written as MAXIMUM and MINIMUM.
    const_operand = {
        "mul_add_constant": ([[1, 4, 4, 3]], lambda x: x * (1.0 / 127.5) - 1.0, [60.0]),
        "sub_from_constant_relu": ([[1, 4, 4, 6]], lambda x: relu(0.75 - x), [1.0]),
        "maximum_minimum_constant": ([[1, 4, 4, 6]], lambda x: tf.minimum(tf.maximum(x, -0.5), 1.25), [1.0]),
    }

    os.makedirs(FIXTURES, exist_ok=True)
    for name, case in {**cases, **float_io, **dynamic_batch, **const_operand}.items():
        if only and name not in only:
            continue
        shapes, body = case[0], case[1]
        stds = case[2] if len(case) > 2 else [1.0] * len(shapes)
        specs = [tf.TensorSpec([None] + s[1:] if name in dynamic_batch else s, tf.float32) for s in shapes]
        fn = tf.function(body, input_signature=specs)
        conc = fn.get_concrete_function()

        def representative(shapes=shapes, stds=stds):
            r = np.random.default_rng(7)
            for _ in range(64):
                yield [r.normal(0.0, sd, s).astype(np.float32) for s, sd in zip(shapes, stds)]

        conv_ = tf.lite.TFLiteConverter.from_concrete_functions([conc], fn)
        conv_.optimizations = [tf.lite.Optimize.DEFAULT]
        conv_.representative_dataset = representative
        if name.startswith("i16_"):
            ops16 = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            conv_.target_spec.supported_ops = [ops16]
            io_type = tf.int16
        else:
            conv_.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            io_type = tf.int8
        if name not in float_io:
            conv_.inference_input_type = io_type
            conv_.inference_output_type = io_type
        data = conv_.convert()
        with open(os.path.join(FIXTURES, name + ".tflite"), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes", file=sys.stderr)
    for name, (source, scale) in RESCALED_INPUT.items():
        if not only or name in only:
            rescale_input(tf, name, source, scale)


# int16 Logistic, Tanh and Softmax at input scales the converter does not choose, for the paths of
# TFLite Micro's int16 Prepare it otherwise leaves untested: powers of two (the multiplier-0 form of
# Logistic and Tanh), a scale within `CheckedLog2`'s tolerance of one, and a tiny softmax scale (a
# negative shift). Each is a converted fixture with its input tensor's scale replaced.
RESCALED_INPUT = {
    "i16_logistic_scale_pot": ("i16_logistic", 2.0 ** -12),
    "i16_logistic_scale_near_pot": ("i16_logistic", 2.0 ** -12 * 1.0004),
    "i16_tanh_scale_pot": ("i16_tanh", 2.0 ** -11),
    "i16_softmax_scale_tiny": ("i16_softmax", 1e-6),
}


def rescale_input(tf, name, source, scale):
    with open(os.path.join(FIXTURES, source + ".tflite"), "rb") as f:
        data = f.read()
    old = tf.lite.Interpreter(model_content=data).get_input_details()[0]["quantization"][0]
    key = struct.pack("<f", old)
    if data.count(key) != 1:
        raise SystemExit(f"{source}: the input scale's bytes occur {data.count(key)} times")
    data = data.replace(key, struct.pack("<f", scale))
    with open(os.path.join(FIXTURES, name + ".tflite"), "wb") as f:
        f.write(data)
    print(f"{name}: {source} with input scale {scale}", file=sys.stderr)


# ---------------------------------------------------------------- goldens (TFLite Micro)

def versions():
    import tflite_micro  # noqa: F401
    from importlib.metadata import version
    return (f"tflite-micro {version('tflite-micro')}, tensorflow-cpu {version('tensorflow-cpu')} (fixtures), "
            f"numpy {np.__version__}, python {platform.python_version()}")


def golden(path, rel, out_path, samples):
    from tflite_micro.python.tflite_micro import runtime

    data = open(path, "rb").read()
    interp = runtime.Interpreter.from_bytes(data)
    graph = runtime.convert_bytearray_to_object(bytearray(data)).subgraphs[0]
    ins = [interp.get_input_details(i) for i in range(len(graph.inputs))]
    outs = [interp.get_output_details(i) for i in range(len(graph.outputs))]
    lines = [
        "# Golden outputs of TFLite Micro's Python interpreter (reference kernels).",
        "# made by: python3 tests/tflite/make_fixtures.py goldens",
        "# versions: " + versions(),
        "# inputs: sample k = xorshift64* seeded with k, top byte per int8 element (f32: int8 / 32; int16: top two bytes);",
        "# each data line: all outputs of one sample, concatenated, as hex (f32 little-endian).",
        f"model {rel}",
        f"sha256 {hashlib.sha256(data).hexdigest()}",
        "inputs " + " ".join(f"{np.dtype(d['dtype']).name}:{'x'.join(map(str, d['shape']))}" for d in ins),
        "outputs " + " ".join(f"{np.dtype(d['dtype']).name}:{'x'.join(map(str, d['shape']))}" for d in outs),
        f"samples {samples}",
    ]
    for arrays in sample_inputs(ins, list(range(samples))):
        for j, a in enumerate(arrays):
            interp.set_input(a, j)
        interp.invoke()
        blob = b"".join(np.ascontiguousarray(interp.get_output(j)).astype(np.dtype(d["dtype"]).newbyteorder("<")).tobytes()
                        for j, d in enumerate(outs))
        lines.append(blob.hex())
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{rel}: {samples} samples", file=sys.stderr)


def make_goldens(only=()):
    os.makedirs(GOLDENS, exist_ok=True)
    for f in sorted(os.listdir(FIXTURES)):
        if f.endswith(".tflite") and (not only or f[:-len(".tflite")] in only):
            golden(os.path.join(FIXTURES, f), f"fixtures/{f}",
                   os.path.join(GOLDENS, f[:-len(".tflite")] + ".golden"), FIXTURE_SAMPLES)
    if only:
        return
    if not os.path.isdir(MLPERF):
        print(f"{MLPERF} is absent: MLPerf goldens skipped", file=sys.stderr)
        return
    for m in MLPERF_MODELS:
        golden(os.path.join(MLPERF, m + ".tflite"), f"../shared/models/mlperf-tiny/{m}.tflite",
               os.path.join(GOLDENS, "mlperf_" + m + ".golden"),
               MLPERF_SAMPLES_AD if m.startswith("ad_") else MLPERF_SAMPLES)


def build_errors(only=()):
    """Models the importer must refuse with a clear error (no goldens); `only`: just these."""
    import flatbuffers
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema

    os.makedirs(ERRORS, exist_ok=True)

    def write(name, data):
        if only and name not in only:
            return
        with open(os.path.join(ERRORS, name + ".tflite"), "wb") as f:
            f.write(data)
        print(f"errors/{name}: {len(data)} bytes", file=sys.stderr)

    spec = [tf.TensorSpec([1, 8], tf.float32)] * 2
    sqd = tf.function(lambda a, b: tf.math.squared_difference(a, b), input_signature=spec)
    c = tf.lite.TFLiteConverter.from_concrete_functions([sqd.get_concrete_function()], sqd)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([np.ones([1, 8], np.float32), np.zeros([1, 8], np.float32)] for _ in range(4))
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    write("unsupported_squared_difference", c.convert())

    # A STRIDED_SLICE with a step of 2 (only steps of 1 import).
    step = tf.function(lambda x: x[:, ::2, :, :], input_signature=[tf.TensorSpec([1, 6, 4, 2], tf.float32)])
    c = tf.lite.TFLiteConverter.from_concrete_functions([step.get_concrete_function()], step)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([np.ones([1, 6, 4, 2], np.float32)] for _ in range(4))
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    write("strided_slice_step", c.convert())

    # An ADD of a constant of one value per channel (only single values import).
    per_channel = tf.constant(np.linspace(-1.0, 1.0, 8).astype(np.float32))
    vec = tf.function(lambda x: x + per_channel, input_signature=[tf.TensorSpec([1, 4, 8], tf.float32)])
    c = tf.lite.TFLiteConverter.from_concrete_functions([vec.get_concrete_function()], vec)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([np.ones([1, 4, 8], np.float32)] for _ in range(4))
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    write("add_constant_per_channel", c.convert())

    fl = tf.function(lambda x: tf.nn.relu(x) * 2.0, input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    write("float_model", tf.lite.TFLiteConverter.from_concrete_functions([fl.get_concrete_function()], fl).convert())

    def edited(fixture, name, edit):
        m = schema.ModelT.InitFromPackedBuf(open(os.path.join(FIXTURES, fixture + ".tflite"), "rb").read(), 0)
        edit(m, m.subgraphs[0])
        b = flatbuffers.Builder(0)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        write(name, bytes(b.Output()))

    def softmax_scale(m, g):
        g.tensors[g.outputs[0]].quantization.scale = [1.0 / 128.0]

    def conv_scales(m, g):
        q = g.tensors[g.operators[0].inputs[1]].quantization
        q.scale, q.zeroPoint = list(q.scale)[:3], list(q.zeroPoint)[:3]

    def zero_point(m, g):
        g.tensors[g.inputs[0]].quantization.zeroPoint = [200]

    edited("softmax", "softmax_output_scale", softmax_scale)
    edited("conv2d_same_relu", "conv_scale_count", conv_scales)
    edited("relu", "zero_point_range", zero_point)

    def prelu_alpha_shape(m, g):
        # The per-channel alpha [1, 1, 6] as [1, 6, 1]: same values, not along the last axis.
        g.tensors[g.operators[0].inputs[1]].shape = [1, 6, 1]

    edited("prelu", "prelu_alpha_shape", prelu_alpha_shape)

    def i16_concat_scales(m, g):
        # The second int16 input of the CONCATENATION (after the converter's QUANTIZE) given another
        # scale than the output's: TFLite Micro would copy it unscaled.
        concat = g.operators[1]
        g.tensors[concat.inputs[1]].quantization.scale = [0.001]

    edited("i16_concatenation", "i16_concat_scales", i16_concat_scales)


def arenas():
    from tflite_micro.python.tflite_micro import runtime

    for m in MLPERF_MODELS:
        print(f"== {m}", file=sys.stderr, flush=True)
        interp = runtime.Interpreter.from_file(os.path.join(MLPERF, m + ".tflite"))
        d = interp.get_input_details(0)
        interp.set_input(np.zeros(d["shape"], d["dtype"]), 0)
        interp.invoke()
        interp.print_allocations()
        sys.stderr.flush()


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "fixtures":
        build_fixtures(sys.argv[2:])
    elif what == "goldens":
        make_goldens(sys.argv[2:])
    elif what == "errors":
        build_errors(sys.argv[2:])
    elif what == "arenas":
        arenas()
    else:
        raise SystemExit(__doc__)
