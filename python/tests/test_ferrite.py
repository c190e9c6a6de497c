"""The `ferrite` module against the `ferrite` CLI on the bundled models."""

import json

import numpy as np
import pytest

import ferrite
from conftest import DEMO_MODEL, FIXTURES, ROOT, cli_error, data

TFLITE = ROOT / "tests" / "tflite" / "fixtures" / "conv2d_same_relu.tflite"
QDQ = FIXTURES / "qdq" / "dscnn_fashion_ort_s8.onnx"

# Few calibration samples keep the tests quick; the options go the same way to the CLI.
OPTIONS = {"subset_size": 64, "bias_correction": "fast", "range": "minmax"}


@pytest.fixture(scope="module")
def demo():
    return ferrite.quantize(DEMO_MODEL, data("fashion_calib_x"), **OPTIONS)


@pytest.fixture(scope="module")
def demo_file(demo, tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "demo.ferrite"
    path.write_bytes(demo)
    return path


def test_quantized_demo_model_classifies_the_test_images(demo):
    model = ferrite.Model(demo)
    x, y = data("fashion_test_x")[:200], data("fashion_test_y")[:200]
    out = model.run(x)
    assert out.dtype == np.float32 and out.shape == (200, 10)
    top1 = (out.argmax(axis=1) == y).mean()
    assert top1 > 0.8, top1
    assert model.size == len(demo) and model.ferrite_bytes == demo
    assert 0 < model.arena_size < 64 * 1024
    assert (model.inputs, model.outputs) == (1, 1)
    with pytest.raises(ferrite.FerriteError, match="threads must be at least 1"):
        model.run(x, threads=0)


def test_quantize_gives_the_cli_bytes(demo, cli, tmp_path):
    out = tmp_path / "cli.ferrite"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in OPTIONS.items()]
    cli("quantize", DEMO_MODEL, "--data", FIXTURES / "data" / "fashion_calib_x.npy", "-o", out, *flags)
    assert out.read_bytes() == demo


def test_run_gives_the_cli_outputs(demo_file, cli, tmp_path):
    x = data("fashion_test_x")[:40]
    np.save(tmp_path / "x.npy", x)
    cli("run", demo_file, "--data", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    expected = np.load(tmp_path / "y.npy")
    got = ferrite.Model(demo_file).run(x)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    # The same from the bytes, and from int8 input (int8 out).
    assert np.array_equal(ferrite.Model(demo_file.read_bytes()).run(x, threads=1), expected)


def test_int8_in_int8_out(demo):
    model = ferrite.Model(demo)
    q = np.random.default_rng(0).integers(-128, 128, size=(3, 1, 28, 28), dtype=np.int8)
    out = model.run(q)
    assert out.dtype == np.int8 and out.shape == (3, 10)


def test_inspect_is_the_cli_json(demo_file, cli):
    model = ferrite.Model(demo_file)
    doc = model.inspect()
    assert doc == json.loads(cli("inspect", demo_file, "--json").stdout)
    assert doc["arena_bytes"] == model.arena_size
    assert doc["file_bytes"] == model.size
    assert [o["shape"] for o in doc["outputs"]] == [[1, 10]]
    assert len(doc["ops"]) >= 5
    assert model.summary() == cli("inspect", demo_file).stdout


def test_float_onnx_model_runs_on_the_float_executor(cli, tmp_path):
    model = ferrite.Model(DEMO_MODEL)
    assert model.arena_size is None and model.size is None
    x = data("fashion_test_x")[:16]
    np.save(tmp_path / "x.npy", x)
    cli("run", DEMO_MODEL, "--data", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert np.array_equal(model.run(x), np.load(tmp_path / "y.npy"))
    assert model.inspect() == json.loads(cli("inspect", DEMO_MODEL, "--json").stdout)


def test_convert_tflite_gives_the_cli_bytes(cli, tmp_path):
    out = tmp_path / "t.ferrite"
    cli("convert", TFLITE, "-o", out)
    converted = ferrite.convert(TFLITE)
    assert converted == out.read_bytes()
    # A .tflite file and its converted bytes run alike.
    shape = ferrite.Model(converted).inspect()["inputs"][0]["shape"]
    x = np.random.default_rng(1).integers(-128, 128, size=(4, *shape[1:]), dtype=np.int8)
    from_file = ferrite.Model(TFLITE)
    assert from_file.inspect()["converted_from"]["format"] == "TFLite"
    assert np.array_equal(from_file.run(x), ferrite.Model(converted).run(x))


def test_convert_onnx_qdq_classifies(cli, tmp_path):
    out = tmp_path / "q.ferrite"
    cli("convert", QDQ, "-o", out)
    assert ferrite.convert(QDQ) == out.read_bytes()
    x, y = data("fashion_test_x")[:100], data("fashion_test_y")[:100]
    assert (ferrite.Model(out).run(x).argmax(axis=1) == y).mean() > 0.8


# Errors: the CLI's message, raised as ferrite.FerriteError (a ValueError).


def test_missing_files(cli, tmp_path):
    missing = tmp_path / "missing.onnx"
    np.save(tmp_path / "c.npy", data("fashion_calib_x")[:4])
    with pytest.raises(ferrite.FerriteError) as e:
        ferrite.quantize(missing, data("fashion_calib_x")[:4])
    p = cli("quantize", missing, "--data", tmp_path / "c.npy", "-o", tmp_path / "o.ferrite", ok=False)
    assert str(e.value) == cli_error(p) and "missing.onnx" in str(e.value)
    assert isinstance(e.value, ValueError)

    missing = tmp_path / "missing.tflite"
    with pytest.raises(ferrite.FerriteError) as e:
        ferrite.convert(missing)
    assert str(e.value) == cli_error(cli("convert", missing, "-o", tmp_path / "o.ferrite", ok=False))

    missing = tmp_path / "missing.ferrite"
    with pytest.raises(ferrite.FerriteError) as e:
        ferrite.Model(missing)
    assert str(e.value) == cli_error(cli("inspect", missing, ok=False))


def test_corrupt_model(demo, cli, tmp_path):
    broken = bytearray(demo)
    broken[len(broken) // 2 :] = bytes(len(broken) - len(broken) // 2)
    path = tmp_path / "broken.ferrite"
    path.write_bytes(broken)
    with pytest.raises(ferrite.FerriteError) as e:
        ferrite.Model(path)
    assert str(e.value) == cli_error(cli("inspect", path, ok=False))
    with pytest.raises(ferrite.FerriteError, match="<bytes>"):
        ferrite.Model(bytes(broken))
    with pytest.raises(ferrite.FerriteError, match="invalid model|magic"):
        ferrite.Model(b"not a model at all")


def test_wrong_input_shape(demo_file, cli, tmp_path):
    x = np.zeros((2, 3, 28, 28), np.float32)
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ferrite.FerriteError) as e:
        ferrite.Model(demo_file).run(x)
    message = cli_error(cli("run", demo_file, "--data", tmp_path / "x.npy", ok=False))
    # The CLI names the data file where the module has nothing to name: the rest is the same.
    assert str(e.value).split(": ", 1)[1] == message.split(": ", 1)[1]
    with pytest.raises(ferrite.FerriteError, match="use float32 arrays or arrays of the input.s type"):
        ferrite.Model(demo_file).run(np.zeros((2, 1, 28, 28), np.float64))
    with pytest.raises(TypeError, match="numpy array"):
        ferrite.Model(demo_file).run([[1.0, 2.0]])


def test_options(tmp_path):
    calib = data("fashion_calib_x")[:8]
    with pytest.raises(TypeError, match="unexpected keyword argument 'subsetsize'.*subset_size"):
        ferrite.quantize(DEMO_MODEL, calib, subsetsize=8)
    with pytest.raises(TypeError, match="unexpected keyword argument 'output'"):
        ferrite.quantize(DEMO_MODEL, calib, output="x.ferrite")
    with pytest.raises(ferrite.FerriteError, match="invalid value 'fastest' for '--preset"):
        ferrite.quantize(DEMO_MODEL, calib, preset="fastest")
    with pytest.raises(ferrite.FerriteError, match="--subset-size must be at least 1"):
        ferrite.quantize(DEMO_MODEL, calib, subset_size=0)
    with pytest.raises(TypeError, match="no_cle: expected True or False"):
        ferrite.quantize(DEMO_MODEL, calib, no_cle="yes")
    with pytest.raises(ferrite.FerriteError, match="calibration data calib"):
        ferrite.quantize(DEMO_MODEL, np.zeros((4, 28, 28), np.float32))
    with pytest.raises(ferrite.FerriteError, match="accuracy control needs validation samples"):
        ferrite.quantize(DEMO_MODEL, calib, max_drop=0.5)
    # Flags, lists and paths reach the quantizer.
    plain = ferrite.Model(ferrite.quantize(DEMO_MODEL, calib)).inspect()
    assert not plain["float_kernels"]
    kept = ferrite.quantize(DEMO_MODEL, calib, ignore=["/stem/stem.0/Conv"], no_cle=True)
    assert ferrite.Model(kept).inspect()["float_kernels"]
    np.save(tmp_path / "val.npy", data("fashion_test_x")[:16])
    controlled = ferrite.quantize(DEMO_MODEL, calib, min_sqnr=5, val_data=tmp_path / "val.npy")
    assert len(controlled) > 1000
    with pytest.raises(ferrite.FerriteError, match="no model met the target"):
        ferrite.quantize(DEMO_MODEL, calib, min_sqnr=500, val_data=tmp_path / "val.npy")
