//! Image and WAV folders as data: files in sorted order, class folders as labels, the preprocessing
//! arithmetic, clear errors naming the file, and the CLI end to end (the same top-1 as the `.npy`,
//! the preprocessing recorded in the model and applied by `ferrite run`). The images and clips are
//! written by the tests into temporary folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferrite_quantizer::cli::folder_data::{self, InputSpec, PrepArgs, Preprocessing};
use ferrite_quantizer::npy::Array;

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

/// A model input of `dims` per sample in NCHW (or NHWC).
fn spec(dims: &[usize], nchw: bool) -> InputSpec {
    InputSpec {
        dims: dims.to_vec(),
        nchw,
        recorded: None,
    }
}

fn gray(path: &Path, w: u32, h: u32, pixels: &[u8]) {
    image::GrayImage::from_raw(w, h, pixels.to_vec())
        .unwrap()
        .save(path)
        .unwrap();
}

fn rgb(path: &Path, w: u32, h: u32, pixels: &[u8]) {
    image::RgbImage::from_raw(w, h, pixels.to_vec())
        .unwrap()
        .save(path)
        .unwrap();
}

fn wav(path: &Path, channels: u16, rate: u32, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn mkdir(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).unwrap();
    p.to_path_buf()
}

/// The error's whole chain on one line.
fn error_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn class_folders_give_labels_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    // Classes and files are created out of order; names sort as strings (`10` before `2`).
    for (class, files) in [("shirt", ["2", "10", "1"]), ("coat", ["b", "a", "c"])] {
        let d = mkdir(&dir.path().join(class));
        for (k, f) in files.iter().enumerate() {
            // Each image's pixels tell which file it is.
            let v = (class.len() * 10 + k) as u8;
            gray(&d.join(format!("{f}.png")), 2, 2, &[v; 4]);
        }
    }
    let d = folder_data::read(dir.path(), &PrepArgs::default(), &spec(&[1, 2, 2], true)).unwrap();
    assert_eq!(d.classes, ["coat", "shirt"]);
    assert_eq!(d.labels.as_deref(), Some(&[0, 0, 0, 1, 1, 1][..]));
    assert_eq!(d.array.shape, [6, 1, 2, 2]);
    let firsts: Vec<u8> = d
        .array
        .to_f32()
        .chunks(4)
        .map(|c| (c[0] * 255.0).round() as u8)
        .collect();
    // coat: a (k=1), b (k=0), c (k=2); shirt: 1 (k=2), 10 (k=1), 2 (k=0).
    assert_eq!(firsts, [41, 40, 42, 52, 51, 50]);
    // A flat folder gives unlabelled samples in the same order.
    let flat = folder_data::read(
        &dir.path().join("shirt"),
        &PrepArgs::default(),
        &spec(&[1, 2, 2], true),
    )
    .unwrap();
    assert_eq!(flat.labels, None);
    assert_eq!(flat.array.shape, [3, 1, 2, 2]);
    assert_eq!(flat.array.data, d.array.data[3 * 16..]);
}

#[test]
fn pixel_arithmetic_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("x.png");
    // 2x2 RGB, row by row: (r, g, b) per pixel.
    let pixels = [0u8, 10, 20, 255, 128, 64, 1, 2, 3, 200, 100, 50];
    rgb(&png, 2, 2, &pixels);
    let mean = [0.5f32, 0.25, 0.125];
    let std = [0.5f32, 2.0, 4.0];
    let args = PrepArgs {
        mean: Some(mean.to_vec()),
        std: Some(std.to_vec()),
        ..PrepArgs::default()
    };
    let value = |i: usize| (f32::from(pixels[i]) / 255.0 - mean[i % 3]) / std[i % 3];
    // NCHW: every red value, then green, then blue.
    let d = folder_data::read(&png, &args, &spec(&[3, 2, 2], true)).unwrap();
    let want: Vec<f32> = (0..3)
        .flat_map(|c| (0..4).map(move |p| p * 3 + c))
        .map(value)
        .collect();
    assert_eq!(d.array.shape, [1, 3, 2, 2]);
    assert_eq!(d.array.to_f32(), want);
    assert_eq!(
        d.preprocessing.text(),
        "image resize=2x2 channels=3 scale=1/255 mean=0.5,0.25,0.125 std=0.5,2,4 layout=nchw"
    );
    // NHWC (the model's layout) keeps the file's order.
    let d = folder_data::read(&png, &args, &spec(&[2, 2, 3], false)).unwrap();
    assert_eq!(d.array.shape, [1, 2, 2, 3]);
    assert_eq!(d.array.to_f32(), (0..12).map(value).collect::<Vec<_>>());
    // A plain factor multiplies.
    let args = PrepArgs {
        scale: Some(folder_data::Scale { num: 0.5, den: 1.0 }),
        ..PrepArgs::default()
    };
    let d = folder_data::read(&png, &args, &spec(&[2, 2, 3], false)).unwrap();
    let halves: Vec<f32> = pixels.iter().map(|&p| f32::from(p) * 0.5).collect();
    assert_eq!(d.array.to_f32(), halves);
}

#[test]
fn grayscale_resize_and_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    // A uniform 4x4 color JPEG: --grayscale --resize 2x2 gives four equal values near its luma.
    let jpg = dir.path().join("x.jpg");
    rgb(&jpg, 4, 4, &[90u8; 48]);
    let args = PrepArgs {
        grayscale: true,
        resize: Some((2, 2)),
        ..PrepArgs::default()
    };
    let d = folder_data::read(&jpg, &args, &spec(&[1, 2, 2], true)).unwrap();
    let v = d.array.to_f32();
    assert_eq!(d.array.shape, [1, 1, 2, 2]);
    assert!(v.iter().all(|&x| x == v[0]), "{v:?}");
    assert!((v[0] * 255.0 - 90.0).abs() <= 3.0, "{v:?}");
    // The model's size is the default: a 4x4 PNG for a 2x2 input is resampled.
    let png = dir.path().join("y.png");
    gray(&png, 4, 4, &[200u8; 16]);
    let d = folder_data::read(&png, &PrepArgs::default(), &spec(&[1, 2, 2], true)).unwrap();
    assert_eq!(d.array.to_f32(), [200.0 / 255.0; 4]);
    // A size the model does not take is refused, saying both.
    let args = PrepArgs {
        resize: Some((3, 3)),
        ..PrepArgs::default()
    };
    let e = error_of(folder_data::read(&png, &args, &spec(&[1, 2, 2], true)));
    assert!(e.contains("[1, 3, 3]") && e.contains("[1, 2, 2]"), "{e}");
}

#[test]
fn wav_clips_are_read_padded_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = mkdir(&dir.path().join("clips"));
    wav(&d.join("a.wav"), 1, 8000, &[16384, -32768, 0, 8192, 1, 2]);
    wav(&d.join("b.wav"), 1, 8000, &[-16384]);
    // The model's input decides the clip length: 4 samples, the longer clip cut, the shorter padded.
    let got = folder_data::read(&d, &PrepArgs::default(), &spec(&[1, 4], false)).unwrap();
    assert_eq!(got.array.shape, [2, 1, 4]);
    assert_eq!(
        got.array.to_f32(),
        [0.5, -1.0, 0.0, 0.25, -0.5, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        got.preprocessing.text(),
        "audio samples=4 rate=8000 scale=1 mean=0 std=1"
    );
    // A float WAV reads as it is.
    let f = dir.path().join("f.wav");
    let spec32 = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&f, spec32).unwrap();
    for s in [0.125f32, -0.75] {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let got = folder_data::read(&f, &PrepArgs::default(), &spec(&[2], false)).unwrap();
    assert_eq!(got.array.to_f32(), [0.125, -0.75]);
    // A different rate is refused, naming the file.
    wav(&d.join("c.wav"), 1, 16000, &[0; 4]);
    let e = error_of(folder_data::read(
        &d,
        &PrepArgs::default(),
        &spec(&[4], false),
    ));
    assert!(
        e.contains("c.wav") && e.contains("16000 Hz") && e.contains("8000"),
        "{e}"
    );
    // So is a stereo file.
    std::fs::remove_file(d.join("c.wav")).unwrap();
    wav(&d.join("s.wav"), 2, 8000, &[0; 8]);
    let e = error_of(folder_data::read(
        &d,
        &PrepArgs::default(),
        &spec(&[4], false),
    ));
    assert!(e.contains("s.wav") && e.contains("mono"), "{e}");
    // And --sample-rate other than the files'.
    std::fs::remove_file(d.join("s.wav")).unwrap();
    let args = PrepArgs {
        sample_rate: Some(16000),
        audio_samples: Some(4),
        ..PrepArgs::default()
    };
    let e = error_of(folder_data::read(&d, &args, &spec(&[4], false)));
    assert!(e.contains("a.wav") && e.contains("--sample-rate"), "{e}");
}

#[test]
fn the_text_reads_back() {
    for text in [
        "image resize=28x28 channels=1 scale=1/255 mean=0 std=1 layout=nchw",
        "image resize=32x48 channels=3 scale=0.5 mean=0.485,0.456,0.406 std=0.229,0.224,0.225 layout=nhwc",
        "audio samples=16000 rate=16000 scale=1 mean=0 std=1",
    ] {
        assert_eq!(Preprocessing::parse(text).unwrap().text(), text);
    }
    for bad in [
        "image resize=28x28 channels=2 scale=1/255 mean=0 std=1 layout=nchw",
        "image resize=28x28 channels=1 scale=1/255 mean=0 std=0 layout=nchw",
        "image resize=28x28 channels=1 scale=1/255 mean=0 std=1 layout=nchw extra=1",
        "video frames=3",
    ] {
        assert!(Preprocessing::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_undecodable_image_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    gray(&dir.path().join("a.png"), 2, 2, &[1; 4]);
    std::fs::write(dir.path().join("b.png"), b"not an image").unwrap();
    let e = error_of(folder_data::read(
        dir.path(),
        &PrepArgs::default(),
        &spec(&[1, 2, 2], true),
    ));
    assert!(e.contains("b.png") && e.contains("cannot decode"), "{e}");
}

#[test]
fn a_wrong_channel_count_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("color.png");
    rgb(&png, 2, 2, &[7; 12]);
    let e = error_of(folder_data::read(
        &png,
        &PrepArgs::default(),
        &spec(&[1, 2, 2], true),
    ));
    assert!(
        e.contains("color.png") && e.contains("3 channels") && e.contains("--grayscale"),
        "{e}"
    );
    // --grayscale converts it.
    let args = PrepArgs {
        grayscale: true,
        ..PrepArgs::default()
    };
    assert!(folder_data::read(&png, &args, &spec(&[1, 2, 2], true)).is_ok());
    // --rgb for a one-channel model is refused with both shapes.
    let args = PrepArgs {
        rgb: true,
        ..PrepArgs::default()
    };
    let e = error_of(folder_data::read(&png, &args, &spec(&[1, 2, 2], true)));
    assert!(e.contains("[3, 2, 2]"), "{e}");
}

#[test]
fn an_empty_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = error_of(folder_data::read(
        dir.path(),
        &PrepArgs::default(),
        &spec(&[1, 2, 2], true),
    ));
    assert!(
        e.contains("empty") && e.contains(&dir.path().display().to_string()),
        "{e}"
    );
}

#[test]
fn a_class_folder_without_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    gray(&mkdir(&dir.path().join("cat")).join("1.png"), 2, 2, &[1; 4]);
    mkdir(&dir.path().join("dog"));
    let e = error_of(folder_data::read(
        dir.path(),
        &PrepArgs::default(),
        &spec(&[1, 2, 2], true),
    ));
    assert!(e.contains("dog") && e.contains("holds no files"), "{e}");
}

#[test]
fn other_files_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    gray(&dir.path().join("1.png"), 2, 2, &[1; 4]);
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    let e = error_of(folder_data::read(
        dir.path(),
        &PrepArgs::default(),
        &spec(&[1, 2, 2], true),
    ));
    assert!(e.contains("notes.txt"), "{e}");
    // Images beside WAV files too.
    std::fs::remove_file(dir.path().join("notes.txt")).unwrap();
    wav(&dir.path().join("2.wav"), 1, 8000, &[0; 4]);
    let e = error_of(folder_data::read(
        dir.path(),
        &PrepArgs::default(),
        &spec(&[1, 2, 2], true),
    ));
    assert!(e.contains("2.wav"), "{e}");
}

// ---- The CLI end to end on Fashion-MNIST images. ----

const IMAGES: usize = 100;

/// The first `IMAGES` Fashion-MNIST test images as PNGs in class folders (`c0`..`c9`) under `dir`,
/// and the same samples and labels as `.npy`.
fn fashion_folder(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let x = Array::read(&fixture("data/fashion_test_x.npy")).unwrap();
    let y = Array::read(&fixture("data/fashion_test_y.npy")).unwrap();
    let values = x.to_f32();
    let folder = dir.join("fashion");
    for i in 0..IMAGES {
        let label = y.get_f64(i) as usize;
        let pixels: Vec<u8> = values[i * 784..(i + 1) * 784]
            .iter()
            .map(|&v| (v * 255.0).round() as u8)
            .collect();
        let class = mkdir(&folder.join(format!("c{label}")));
        gray(&class.join(format!("{i:04}.png")), 28, 28, &pixels);
    }
    // Every class has a folder, so a folder's index is its class id.
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 10);
    // The `.npy` in the folder's order: by class, then by file name.
    let mut order: Vec<usize> = (0..IMAGES).collect();
    order.sort_by_key(|&i| (y.get_f64(i) as usize, i));
    let xs: Vec<f32> = order
        .iter()
        .flat_map(|&i| values[i * 784..(i + 1) * 784].iter().copied())
        .collect();
    let ys: Vec<f32> = order.iter().map(|&i| y.get_f64(i) as f32).collect();
    let xp = dir.join("x.npy");
    Array::from_f32(vec![IMAGES, 1, 28, 28], &xs)
        .write(&xp)
        .unwrap();
    let yp = dir.join("y.npy");
    Array {
        shape: vec![IMAGES],
        dtype: ferrite_quantizer::npy::Dtype::I32,
        data: ys.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect(),
    }
    .write(&yp)
    .unwrap();
    (folder, xp, yp)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn eval_json(args: &[&Path]) -> serde_json::Value {
    let mut cmd = ferrite();
    cmd.args(["eval", "--json"])
        .arg(fixture("dscnn_fashion/model.onnx"));
    cmd.arg("--data").arg(args[0]);
    if let Some(l) = args.get(1) {
        cmd.arg("--labels").arg(l);
    }
    let out = cmd.output().unwrap();
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn eval_on_a_folder_gives_the_npy_top1() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, x, y) = fashion_folder(dir.path());
    let on_folder = eval_json(&[&folder]);
    let on_npy = eval_json(&[&x, &y]);
    let top1 = on_folder[0]["top1"].as_f64().unwrap();
    assert_eq!(top1, on_npy[0]["top1"].as_f64().unwrap());
    assert!(top1 > 0.5, "{top1}");
}

fn run_argmax(model: &Path, data: &Path, extra: &[&str]) -> (Vec<u64>, String) {
    let out = ferrite()
        .arg("run")
        .arg(model)
        .arg("--data")
        .arg(data)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let err = ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let argmax = v["outputs"][0]["argmax"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_u64().unwrap())
        .collect();
    (argmax, err)
}

#[test]
fn quantize_records_the_preprocessing_and_run_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, x, _) = fashion_folder(dir.path());
    let model = dir.path().join("m.ferrite");
    let out = ferrite()
        .arg("quantize")
        .arg(fixture("dscnn_fashion/model.onnx"))
        .arg("--data")
        .arg(&folder)
        .arg("-o")
        .arg(&model)
        .args(["--subset-size", "32"])
        .output()
        .unwrap();
    let err = ok(&out);
    assert!(
        err.contains("10 classes") || err.contains("classes:"),
        "{err}"
    );
    let bytes = std::fs::read(&model).unwrap();
    let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    assert_eq!(
        m.preprocessing(),
        Some("image resize=28x28 channels=1 scale=1/255 mean=0 std=1 layout=nchw")
    );
    let out = ferrite().arg("inspect").arg(&model).output().unwrap();
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("preprocessing: image resize=28x28 channels=1"),
        "{text}"
    );
    // The folder and the `.npy` give the same predictions, without flags.
    let (on_folder, _) = run_argmax(&model, &folder, &[]);
    let (on_npy, _) = run_argmax(&model, &x, &[]);
    assert_eq!(on_folder, on_npy);
    assert_eq!(on_folder.len(), IMAGES);
    // One image file: the first sample in the folder's order.
    let first = std::fs::read_dir(folder.join("c0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let (one, _) = run_argmax(&model, &first, &[]);
    assert_eq!(one, on_npy[..1]);
    // A flag that changes the recorded preprocessing wins, with a warning.
    let (_, err) = run_argmax(&model, &first, &["--scale", "1/128"]);
    assert!(
        err.contains("warning") && err.contains("--scale 1/128"),
        "{err}"
    );
    // Preprocessing flags with a `.npy` are refused.
    let out = ferrite()
        .arg("run")
        .arg(&model)
        .arg("--data")
        .arg(&x)
        .args(["--resize", "28x28"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--resize") && err.contains("x.npy"), "{err}");
}

#[test]
fn train_takes_labels_from_class_folders_and_records_the_preprocessing() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, _, _) = fashion_folder(dir.path());
    let model = dir.path().join("t.ferrite");
    let out = ferrite()
        .arg("train")
        .arg(fixture("dscnn_fashion/model.onnx"))
        .arg("--data")
        .arg(&folder)
        .arg("-o")
        .arg(&model)
        .args(["--epochs", "1", "--json"])
        .output()
        .unwrap();
    let err = ok(&out);
    // The default held-out split takes the folder's last files: said so.
    assert!(err.contains("last classes"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["labels"], true);
    let text = "image resize=28x28 channels=1 scale=1/255 mean=0 std=1 layout=nchw";
    assert_eq!(v["preprocessing"], text);
    let bytes = std::fs::read(&model).unwrap();
    let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    assert_eq!(m.preprocessing(), Some(text));
}
