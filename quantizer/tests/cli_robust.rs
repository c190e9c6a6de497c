//! The `ferrite` binary on bad inputs and unusual outputs: a one-line error, exit code 1, no panic,
//! and no output file written or changed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferrite_quantizer::npy::Array;

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn golden() -> PathBuf {
    repo("tests/golden/small_dscnn/model.ferrite")
}

fn mlp() -> PathBuf {
    repo("tests/fixtures/mlp_digits/model.onnx")
}

fn digits() -> PathBuf {
    repo("tests/fixtures/data/digits_calib_x.npy")
}

/// Asserts a failure with exit code 1 and a one-line error containing every one of `says`.
#[track_caller]
fn fails_saying(out: &Output, says: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for s in says {
        assert!(err.contains(s), "expected {s:?} in: {err}");
    }
}

/// A `.npy` file whose header claims `shape` (a Python tuple), with 64 bytes of data.
fn npy_claiming(path: &Path, shape: &str) {
    let h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(&[0; 64]);
    fs::write(path, b).unwrap();
}

#[test]
fn overflowing_npy_shapes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    let y = dir.path().join("y.npy");
    for shape in [
        "(288230376151711744, 1, 28, 28)",
        "(4294967296, 4294967296, 1, 1)",
    ] {
        npy_claiming(&x, shape);
        fails_saying(&run(&golden(), &x, &y), &["x.npy", "too large"]);
        fails_saying(&quantize(&mlp(), &x, &y, &[]), &["x.npy", "too large"]);
        assert!(!y.exists());
    }
}

/// The same samples as a `.npz` array (alone, or named among others) and as a Fortran-ordered
/// `.npy` give the outputs the C-ordered `.npy` gives; a `.npz` of several arrays needs the name.
#[test]
fn npz_arrays_and_fortran_order_give_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let a = Array::read(&digits()).unwrap();
    let want = dir.path().join("want.npy");
    let out = run(&mlp(), &digits(), &want);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read(&want).unwrap();

    let npz = |name: &str, arrays: &[&str]| {
        let path = dir.path().join(name);
        let mut w = zip::ZipWriter::new(fs::File::create(&path).unwrap());
        for array in arrays {
            w.start_file(
                format!("{array}.npy"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            std::io::Write::write_all(&mut w, &a.to_bytes().unwrap()).unwrap();
        }
        w.finish().unwrap();
        path
    };
    // Fortran order: the same values, the first index running fastest.
    let (rows, per) = (a.shape[0], a.len() / a.shape[0]);
    assert_eq!(a.shape.len(), 2, "{:?}", a.shape);
    let mut fortran = a.to_bytes().unwrap();
    let data_at = fortran.len() - a.data.len();
    for r in 0..rows {
        for c in 0..per {
            let (from, to) = ((r * per + c) * 4, data_at + (c * rows + r) * 4);
            fortran[to..to + 4].copy_from_slice(&a.data[from..from + 4]);
        }
    }
    let at = fortran.windows(5).position(|w| w == b"False").unwrap();
    fortran[at..at + 5].copy_from_slice(b"True ");
    let f = dir.path().join("f.npy");
    fs::write(&f, &fortran).unwrap();

    let two = npz("two.npz", &["x", "other"]);
    let named = PathBuf::from(format!("{}:x", two.display()));
    for x in [npz("one.npz", &["x"]), named, f] {
        let y = dir.path().join("y.npy");
        let out = run(&mlp(), &x, &y);
        assert!(
            out.status.success(),
            "{x:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(fs::read(&y).unwrap(), want, "{x:?}");
        let out = quantize(&mlp(), &x, &dir.path().join("m.ferrite"), &[]);
        assert!(
            out.status.success(),
            "{x:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let y = dir.path().join("y2.npy");
    fails_saying(
        &run(&mlp(), &two, &y),
        &["two.npz", "arrays x, other", ":NAME"],
    );
    assert!(!y.exists());
}

#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [
        vec!["inspect".into(), golden()],
        vec!["eval".into(), mlp(), "--data".into(), digits()],
        vec!["run".into(), mlp(), "--data".into(), digits()],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = ferrite().args(&args).stdout(writer).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// `ferrite run MODEL --input X -o OUTPUT`.
fn run(model: &Path, x: &Path, output: &Path) -> Output {
    ferrite()
        .arg("run")
        .arg(model)
        .arg("--data")
        .arg(x)
        .arg("-o")
        .arg(output)
        .output()
        .unwrap()
}

fn run_to(output: &Path) -> Output {
    run(&mlp(), &digits(), output)
}

/// `ferrite quantize MODEL --calib CALIB -o OUTPUT MORE...`.
fn quantize(model: &Path, calib: &Path, output: &Path, more: &[&str]) -> Output {
    ferrite()
        .arg("quantize")
        .arg(model)
        .arg("--data")
        .arg(calib)
        .arg("-o")
        .arg(output)
        .args(more)
        .output()
        .unwrap()
}

#[test]
fn a_symlink_output_is_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.npy");
    fs::write(&real, b"old").unwrap();
    let link = dir.path().join("link.npy");
    std::os::unix::fs::symlink("real.npy", &link).unwrap();
    let out = run_to(&link);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(Array::read(&real).unwrap().shape, [300, 10]);
}

#[test]
fn a_fifo_output_is_written_directly() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("y.npy");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    let out = run_to(&fifo);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Checked before waiting for the reader, which a replaced FIFO would leave waiting forever.
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    let got = Array::parse(&reader.join().unwrap()).unwrap();
    assert_eq!(got.shape, [300, 10]);
}

#[test]
fn outputs_are_checked_before_the_work_and_written_all_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.ferrite");
    let report = dir.path().join("missing/r.json");
    let out = quantize(
        &mlp(),
        &digits(),
        &model,
        &[&format!("--json={}", report.display())],
    );
    fails_saying(&out, &["r.json", "does not exist"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("calibrating"));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    // A folder given as the output.
    let out = run_to(dir.path());
    fails_saying(&out, &["is a folder"]);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A folder the user may not write into is refused before calibration, and nothing is written. As
/// root, whom permissions do not stop, the binary runs as user 65534 (`setpriv`, util-linux) from a
/// copy that user can reach, with its inputs beside it.
#[test]
fn an_unwritable_output_folder_is_refused_before_the_work() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    mode(dir.path(), 0o755);
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    mode(&ro, 0o555);
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let out = if root {
        let (bin, model, data) = (
            dir.path().join("ferrite"),
            dir.path().join("m.onnx"),
            dir.path().join("x.npy"),
        );
        fs::copy(env!("CARGO_BIN_EXE_ferrite"), &bin).unwrap();
        fs::copy(mlp(), &model).unwrap();
        fs::copy(digits(), &data).unwrap();
        mode(&model, 0o644);
        mode(&data, 0o644);
        let run = || {
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&bin)
                .arg("quantize")
                .arg(&model)
                .arg("--data")
                .arg(&data)
                .arg("-o")
                .arg(ro.join("m.ferrite"))
                .output()
                .expect("setpriv (util-linux) runs the test as an unprivileged user")
        };
        // A process another test forks between our writing the copy and running it holds the
        // copy's descriptor open until it executes its own program: "Text file busy" until then.
        let busy = |o: &std::process::Output| {
            String::from_utf8_lossy(&o.stderr).contains("Text file busy")
        };
        let mut out = run();
        for _ in 0..50 {
            if !busy(&out) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            out = run();
        }
        out
    } else {
        quantize(&mlp(), &digits(), &ro.join("m.ferrite"), &[])
    };
    fails_saying(
        &out,
        &["ro/m.ferrite", "cannot write in", "Permission denied"],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("calibrating"));
    assert_eq!(fs::read_dir(&ro).unwrap().count(), 0);
}

#[test]
fn inconsistent_ferrite_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = fs::read(golden()).unwrap();
    let bad = dir.path().join("bad.ferrite");
    for (at, bytes, says) in [
        (
            8,
            &0xFFFF_FFF0u32.to_le_bytes()[..],
            "header arena size 4294967280 bytes",
        ),
        (6, &1u16.to_le_bytes(), "flag 0x0001 (f32 kernels) is set"),
        (6, &4u16.to_le_bytes(), "unknown header flag bits 0x0004"),
        (
            20,
            &1u32.to_le_bytes(),
            "reserved field (bytes 20 to 23) is 0x00000001",
        ),
    ] {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        fs::write(&bad, &b).unwrap();
        let out = ferrite().arg("inspect").arg(&bad).output().unwrap();
        fails_saying(&out, &["bad.ferrite", says]);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(!e.contains("invalid model: malformed model"), "{e}");
    }
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    use ferrite_quantizer::import::onnx::proto::ModelProto;
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let mut m = ModelProto::decode(&fs::read(mlp()).unwrap()[..]).unwrap();
    for (i, bad) in [f32::NAN, f32::INFINITY].into_iter().enumerate() {
        let t = &mut m.graph.as_mut().unwrap().initializer[0];
        if t.raw_data.is_empty() {
            t.float_data[3] = bad;
        } else {
            t.raw_data[12..16].copy_from_slice(&bad.to_le_bytes());
        }
        let says = [t.name.clone(), format!("holds {bad} at index 3")];
        let says: Vec<&str> = says.iter().map(String::as_str).collect();
        let onnx = dir.path().join(format!("m{i}.onnx"));
        fs::write(&onnx, m.encode_to_vec()).unwrap();
        let y = dir.path().join("y.ferrite");
        fails_saying(&quantize(&onnx, &digits(), &y, &[]), &says);
        assert!(!y.exists());
        let out = ferrite()
            .arg("eval")
            .arg(&onnx)
            .arg("--data")
            .arg(digits())
            .output()
            .unwrap();
        fails_saying(&out, &says);
    }
}

/// Sample files that hold no samples, or one sample without the batch dimension, are refused by
/// every command that reads samples (float and int8 models), with the shape the model takes.
#[test]
fn samples_holding_nan_are_run_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Array::read(&digits()).unwrap();
    let per = a.data.len() / a.shape[0];
    a.data[5 * per..5 * per + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    a.data[9 * per + 8..9 * per + 12].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let x = dir.path().join("nan.npy");
    a.write(&x).unwrap();
    let y = dir.path().join("y.npy");
    let said = "warning: 2 sample(s) hold NaN or infinite values (the first is sample 5)";
    for out in [
        run(&mlp(), &x, &y),
        ferrite()
            .arg("eval")
            .arg(mlp())
            .arg("--data")
            .arg(&x)
            .output()
            .unwrap(),
    ] {
        assert!(out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(said), "{e}");
    }
    // Finite samples give no warning.
    let out = run(&mlp(), &digits(), &y);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

#[test]
fn empty_and_batchless_samples_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.npy");
    Array::from_f32(vec![0, 64], &[]).write(&empty).unwrap();
    let one = dir.path().join("one.npy");
    Array::from_f32(vec![64], &[0.5; 64]).write(&one).unwrap();
    let dscnn_one = dir.path().join("dscnn_one.npy");
    Array::from_f32(vec![10, 8, 1], &[0.5; 80])
        .write(&dscnn_one)
        .unwrap();
    let y = dir.path().join("y.npy");
    let no_samples = ["no samples (shape [0, 64])"];
    let no_batch = [
        "array shape [64] has no batch dimension",
        "[batch, 64]",
        "one sample is [1, 64]",
    ];
    for (x, says) in [(&empty, &no_samples[..]), (&one, &no_batch[..])] {
        fails_saying(&run(&mlp(), x, &y), says);
        fails_saying(&quantize(&mlp(), x, &y, &[]), says);
        let out = ferrite()
            .arg("eval")
            .arg(mlp())
            .arg("--data")
            .arg(x)
            .output()
            .unwrap();
        fails_saying(&out, says);
    }
    fails_saying(
        &run(&golden(), &dscnn_one, &y),
        &["has no batch dimension", "[batch, 10, 8, 1] (NHWC)"],
    );
    assert!(!y.exists());
}

#[test]
fn labels_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("y.npy");
    for (bad, says) in [
        (1000i64, "label 7 is 1000, but "),
        (-1, "label 7 is -1; class ids start at 0"),
    ] {
        let mut l = vec![0i64; 300];
        l[7] = bad;
        Array {
            shape: vec![300],
            dtype: ferrite_quantizer::npy::Dtype::I64,
            data: l.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
        .write(&labels)
        .unwrap();
        let out = ferrite()
            .arg("eval")
            .arg(mlp())
            .arg("--data")
            .arg(digits())
            .arg("--labels")
            .arg(&labels)
            .output()
            .unwrap();
        fails_saying(&out, &["y.npy", says]);
    }
}

/// Asserts that `needle` occurs exactly once in the error of `out` (a context added twice repeats it).
#[track_caller]
fn named_once(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches(needle).count(), 1, "{err}");
}

#[test]
fn broken_onnx_files_are_not_called_float_models() {
    let dir = tempfile::tempdir().unwrap();
    let y = dir.path().join("y.ferrite");
    let empty = dir.path().join("empty.onnx");
    fs::write(&empty, b"").unwrap();
    let truncated = dir.path().join("truncated.onnx");
    fs::write(&truncated, &fs::read(mlp()).unwrap()[..300]).unwrap();
    for (m, says) in [
        (&empty, "the file is empty"),
        (&truncated, "truncated or corrupt"),
    ] {
        let out = ferrite()
            .arg("convert")
            .arg(m)
            .arg("-o")
            .arg(&y)
            .output()
            .unwrap();
        fails_saying(&out, &["not a valid ONNX file", says]);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("float"));
        named_once(&out, &m.display().to_string());
        // The float executor's commands name the file once too.
        let out = ferrite()
            .arg("eval")
            .arg(m)
            .arg("--data")
            .arg(digits())
            .output()
            .unwrap();
        fails_saying(&out, &["not a valid ONNX file", says]);
        named_once(&out, &m.display().to_string());
        let out = run(m, &digits(), &y);
        fails_saying(&out, &["not a valid ONNX file", says]);
        named_once(&out, &m.display().to_string());
    }
    // An empty `.tflite` file is not a TFLite model (nor a `.ferrite` one with a bad magic).
    let tfl = dir.path().join("empty.tflite");
    fs::write(&tfl, b"").unwrap();
    let out = ferrite().arg("inspect").arg(&tfl).output().unwrap();
    fails_saying(&out, &["empty.tflite", "not a TFLite model"]);
    // A float model is one.
    let out = ferrite()
        .arg("convert")
        .arg(mlp())
        .arg("-o")
        .arg(&y)
        .output()
        .unwrap();
    fails_saying(&out, &["a float ONNX model", "ferrite quantize"]);
    assert!(!y.exists());
    // A model that still decodes but is broken (one byte of a value's name changed where a node
    // reads it, so that input is defined nowhere) is not called a float model `quantize` takes.
    let mut bytes = fs::read(mlp()).unwrap();
    let name = b"/net/net.3/Gemm_output_0";
    let at: Vec<usize> = (0..bytes.len() - name.len())
        .filter(|&i| &bytes[i..i + name.len()] == name)
        .collect();
    assert!(
        at.len() >= 2,
        "the name is written where it is made and where it is read"
    );
    bytes[at[1] + 12] = b'-';
    let broken = dir.path().join("dangling.onnx");
    fs::write(&broken, &bytes).unwrap();
    let out = ferrite()
        .arg("convert")
        .arg(&broken)
        .arg("-o")
        .arg(&y)
        .output()
        .unwrap();
    fails_saying(
        &out,
        &[
            "not a float model `ferrite quantize` takes either",
            "is not defined before this node",
        ],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("use `ferrite quantize`"));
    named_once(&out, &broken.display().to_string());
    assert!(!y.exists());
}

#[test]
fn a_qdq_model_given_to_quantize_points_to_convert() {
    let dir = tempfile::tempdir().unwrap();
    let y = dir.path().join("y.ferrite");
    let qdq = repo("tests/fixtures/qdq/mlp_digits_nncf.onnx");
    let out = quantize(&qdq, &digits(), &y, &[]);
    fails_saying(
        &out,
        &[
            "mlp_digits_nncf.onnx",
            "quantized ONNX model",
            "ferrite convert",
        ],
    );
    assert!(!y.exists());
}

#[test]
fn a_truncated_ferrite_file_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ferrite");
    fs::write(&bad, &fs::read(golden()).unwrap()[..100]).unwrap();
    let x = dir.path().join("x.npy");
    Array::from_f32(vec![1, 10, 8, 1], &[0.0; 80])
        .write(&x)
        .unwrap();
    let y = dir.path().join("y.npy");
    let out = run(&bad, &x, &y);
    fails_saying(&out, &["truncated"]);
    named_once(&out, "bad.ferrite");
    assert!(!y.exists());
}

#[test]
fn inspect_of_a_tflite_file_says_what_it_converted() {
    let tfl = repo("tests/tflite/fixtures/conv2d_s2_same_even.tflite");
    let out = ferrite().arg("inspect").arg(&tfl).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    let size = fs::metadata(&tfl).unwrap().len();
    assert!(
        first.contains(&format!(
            "TFLite file of {size} bytes, converted in memory to .ferrite v1"
        )),
        "{first}"
    );
    // SAME padding on an even input: one row more below than above, two columns more on the right.
    assert!(text.contains("pad 0,1,1,2"), "{text}");
    let json = ferrite()
        .args(["inspect", "--json"])
        .arg(&tfl)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["converted_from"]["format"], "TFLite");
    assert_eq!(v["converted_from"]["bytes"], size);
}

#[test]
fn element_types_are_named_as_numpy_does() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    let y = dir.path().join("y.npy");
    Array {
        shape: vec![1, 10, 8, 1],
        dtype: ferrite_quantizer::npy::Dtype::I32,
        data: vec![0; 320],
    }
    .write(&x)
    .unwrap();
    fails_saying(
        &run(&golden(), &x, &y),
        &["the array is int32, the input int8; use float32 arrays or arrays of the input's type"],
    );
    Array {
        shape: vec![2, 64],
        dtype: ferrite_quantizer::npy::Dtype::I32,
        data: vec![0; 512],
    }
    .write(&x)
    .unwrap();
    fails_saying(
        &quantize(&mlp(), &x, &y, &[]),
        &["the array is int32; the model takes float32"],
    );
    assert!(!y.exists());
}

/// Standard output of a command that must succeed.
#[track_caller]
fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?}: {err}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn former_option_names_still_work() {
    let dir = tempfile::tempdir().unwrap();
    // `run --input` as `run --data`.
    let (old, new) = (dir.path().join("old.npy"), dir.path().join("new.npy"));
    stdout_of(
        ferrite()
            .arg("run")
            .arg(mlp())
            .arg("--input")
            .arg(digits())
            .arg("-o")
            .arg(&old),
    );
    assert!(run_to(&new).status.success());
    assert_eq!(fs::read(&old).unwrap(), fs::read(&new).unwrap());
    // `quantize --calib X --report FILE` as `quantize --data X --json=FILE`.
    let (model, report) = (dir.path().join("m.ferrite"), dir.path().join("r.json"));
    stdout_of(
        ferrite()
            .arg("quantize")
            .arg(mlp())
            .arg("--calib")
            .arg(digits())
            .arg("-o")
            .arg(&model)
            .arg("--report")
            .arg(&report)
            .args(["--subset-size", "16"]),
    );
    let r: serde_json::Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["quantization"]["calibration_samples"], 16);
    // `--json` before the model is a flag, not the JSON file's name.
    let rows = stdout_of(
        ferrite()
            .args(["eval", "--json"])
            .arg(mlp())
            .arg("--data")
            .arg(digits()),
    );
    let rows: serde_json::Value = serde_json::from_str(&rows).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
}

#[test]
fn json_goes_to_standard_output_or_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.ferrite");
    // `quantize --json`: the report alone on standard output, settings spelled as the options.
    let doc = stdout_of(
        ferrite()
            .arg("quantize")
            .arg(mlp())
            .arg("--data")
            .arg(digits())
            .arg("-o")
            .arg(&model)
            .args(["--subset-size", "16", "--range", "mean-minmax", "--json"]),
    );
    let r: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let config = &r["quantization"]["config"];
    assert_eq!(config["range"], "mean-minmax", "{config}");
    assert_eq!(config["preset"], "mixed", "{config}");
    assert_eq!(config["bias_correction"], "full", "{config}");
    assert_eq!(config["weight_rounding"], "nearest", "{config}");
    // `eval --json=FILE`: the table on standard output, the rows in the file.
    let rows = dir.path().join("rows.json");
    let table = stdout_of(
        ferrite()
            .arg("eval")
            .arg(mlp())
            .arg(&model)
            .arg("--data")
            .arg(digits())
            .arg(format!("--json={}", rows.display())),
    );
    assert!(table.starts_with("model "), "{table}");
    let rows: serde_json::Value = serde_json::from_slice(&fs::read(&rows).unwrap()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    // `run --json`: each output's type, shape and per-sample argmax.
    let doc = stdout_of(
        ferrite()
            .arg("run")
            .arg(&model)
            .arg("--data")
            .arg(digits())
            .arg("--json"),
    );
    let r: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(r["samples"], 300);
    assert_eq!(r["outputs"][0]["shape"], serde_json::json!([300, 10]));
    assert_eq!(r["outputs"][0]["argmax"].as_array().unwrap().len(), 300);
    assert!(r["outputs"][0]["file"].is_null());
    // `convert --json`.
    let tfl = repo("tests/tflite/fixtures/conv2d_s2_same_even.tflite");
    let doc = stdout_of(
        ferrite()
            .arg("convert")
            .arg(&tfl)
            .arg("-o")
            .arg(&model)
            .arg("--json"),
    );
    let r: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(r["format"], "TFLite");
    assert_eq!(r["ferrite_bytes"], fs::metadata(&model).unwrap().len());
    // A JSON file that cannot be written stops every command before its work.
    let missing = format!("--json={}", dir.path().join("missing/r.json").display());
    for args in [
        vec!["inspect".into(), golden()],
        vec!["eval".into(), mlp(), "--data".into(), digits()],
        vec!["run".into(), mlp(), "--data".into(), digits()],
        vec![
            "convert".into(),
            tfl,
            "-o".into(),
            dir.path().join("c.ferrite"),
        ],
    ] {
        let out = ferrite().args(&args).arg(&missing).output().unwrap();
        fails_saying(&out, &["r.json", "does not exist"]);
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!dir.path().join("c.ferrite").exists());
}

/// `eval` and `run` read and run the samples a batch at a time (memory bounded by a batch): on a file
/// of more than one batch (the digits test set 46 times over, 16,560 samples of 256 bytes, past the
/// 16,384 of a batch) they give what they give on the samples once, repeated.
#[test]
fn eval_and_run_give_the_same_results_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (
        repo("tests/fixtures/data/digits_test_x.npy"),
        repo("tests/fixtures/data/digits_test_y.npy"),
    );
    let tile = |path: &Path, to: &Path| {
        let mut a = Array::read(path).unwrap();
        a.shape[0] *= 46;
        a.data = a.data.repeat(46);
        a.write(to).unwrap();
    };
    let (big_x, big_y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    tile(&x, &big_x);
    tile(&y, &big_y);
    let int8 = dir.path().join("m.ferrite");
    assert!(quantize(&mlp(), &digits(), &int8, &[]).status.success());
    let eval = |x: &Path, y: &Path| {
        let rows = stdout_of(
            ferrite()
                .arg("eval")
                .arg(mlp())
                .arg(&int8)
                .arg("--data")
                .arg(x)
                .arg("--labels")
                .arg(y)
                .arg("--json"),
        );
        let rows: serde_json::Value = serde_json::from_str(&rows).unwrap();
        ["top1", "sqnr_db", "agreement"].map(|k| rows[1][k].as_f64().unwrap())
    };
    let (once, tiled) = (eval(&x, &y), eval(&big_x, &big_y));
    assert_eq!(once[0], tiled[0]);
    assert_eq!(once[2], tiled[2]);
    // The same terms summed 46 times over in f64.
    assert!((once[1] - tiled[1]).abs() < 1e-6, "{once:?} {tiled:?}");
    let (small, big) = (dir.path().join("small.npy"), dir.path().join("big.npy"));
    assert!(run(&int8, &x, &small).status.success());
    let out = run(&int8, &big_x, &big);
    assert!(out.status.success());
    // Progress bars are drawn on a terminal only.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (small, big) = (Array::read(&small).unwrap(), Array::read(&big).unwrap());
    assert_eq!(big.shape, [360 * 46, 10]);
    assert_eq!(big.data, small.data.repeat(46));
}

#[test]
fn a_tflite_model_given_to_quantize_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let tfl = dir.path().join("model.onnx");
    let mut bytes = vec![0u8; 64];
    bytes[4..8].copy_from_slice(b"TFL3");
    fs::write(&tfl, &bytes).unwrap();
    let y = dir.path().join("y.ferrite");
    let out = quantize(&tfl, &digits(), &y, &[]);
    fails_saying(
        &out,
        &["a TFLite model, not an ONNX one", "ferrite convert"],
    );
    assert!(!y.exists());
}
