//! `ferrite report`: a real `ferrite quantize --json=R.json` on the digits MLP drawn as SVG and as
//! HTML (each SVG parsed as XML, every layer named), the accuracy-control search as a table, reports
//! of other versions (int16 layers, no histograms), names that need escaping, and bad inputs (a
//! one-line error naming the file, exit code 1, no output written).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[track_caller]
fn succeeds(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// `ferrite quantize` of the digits MLP with `extra` options: the report's JSON.
fn quantize(dir: &Path, extra: &[&str]) -> Value {
    let json = dir.join("r.json");
    let out = ferrite()
        .arg("quantize")
        .arg(repo("tests/fixtures/mlp_digits/model.onnx"))
        .arg("--data")
        .arg(repo("tests/fixtures/data/digits_calib_x.npy"))
        .arg("-o")
        .arg(dir.join("m.ferrite"))
        .arg(format!("--json={}", json.display()))
        .args(extra)
        .output()
        .unwrap();
    succeeds(&out);
    serde_json::from_slice(&fs::read(&json).unwrap()).unwrap()
}

/// `ferrite report` of the document `doc` to `dir/name`: the output's text.
fn report(dir: &Path, doc: &Value, name: &str) -> String {
    let json = dir.join(format!("{name}.json"));
    fs::write(&json, serde_json::to_string(doc).unwrap()).unwrap();
    let out = ferrite()
        .arg("report")
        .arg(&json)
        .arg("-o")
        .arg(dir.join(name))
        .output()
        .unwrap();
    succeeds(&out);
    fs::read_to_string(dir.join(name)).unwrap()
}

/// Every text of an SVG document (parsed as XML, which fails on a malformed one), trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            n.descendants()
                .filter(|t| t.is_text())
                .filter_map(|t| t.text())
                .collect::<String>()
                .trim()
                .to_string()
        })
        .collect()
}

/// The SVG pictures inlined in an HTML page, each parsed: their texts.
fn html_svgs(html: &str) -> Vec<Vec<String>> {
    let mut svgs = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("an unclosed <svg>") + start + 6;
        svgs.push(svg_texts(&rest[start..end]));
        rest = &rest[end..];
    }
    svgs
}

fn layer_names(doc: &Value) -> Vec<String> {
    doc["quantization"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect()
}

fn count(texts: &[String], text: &str) -> usize {
    texts.iter().filter(|t| *t == text).count()
}

/// The report holds a 64-bin histogram of every quantized value (every calibration value counted),
/// and `ferrite report` draws it as SVG and HTML naming every layer, with its precision.
#[test]
fn a_real_report_is_drawn_as_svg_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let doc = quantize(dir.path(), &[]);
    let values = doc["quantization"]["values"].as_array().unwrap();
    assert!(!values.is_empty());
    for v in values {
        let h = &v["histogram"];
        let counts = h["counts"].as_array().unwrap();
        assert_eq!(counts.len(), 64, "{v}");
        assert!(
            h["min"].as_f64().unwrap() <= v["min"].as_f64().unwrap() + 1e-6,
            "{v}"
        );
        assert!(counts.iter().all(|c| c.is_u64()));
    }
    // The input: 300 samples of 64 pixels in [0, 1], every value counted.
    let input = &values[0]["histogram"];
    let total: u64 = input["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(total, 300 * 64);
    assert_eq!(
        (input["min"].as_f64(), input["max"].as_f64()),
        (Some(0.0), Some(1.0))
    );

    let names = layer_names(&doc);
    assert_eq!(names.len(), 3);
    let texts = svg_texts(&report(dir.path(), &doc, "r.svg"));
    for n in &names {
        assert_eq!(count(&texts, n), 1, "{n} in {texts:?}");
    }
    assert_eq!(count(&texts, "int8 (3)"), 1, "{texts:?}");
    for v in values {
        let name = v["name"].as_str().unwrap();
        assert!(texts.iter().any(|t| t == name), "{name} in {texts:?}");
    }
    // No search: no table.
    assert!(!texts.iter().any(|t| t.contains("step by step")));

    let html = report(dir.path(), &doc, "r.html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Self-contained: nothing loaded from elsewhere.
    for outside in ["<script", "<link", "<img", "src=", "href=", "url("] {
        assert!(!html.contains(outside), "{outside}");
    }
    let svgs = html_svgs(&html);
    assert_eq!(svgs.len(), 2);
    for n in &names {
        assert_eq!(count(&svgs[0], n), 1, "{n} in {:?}", svgs[0]);
    }
    assert!(!html.contains("<table"));
}

/// With accuracy control, every step is a row: the tensor moved, the layers moved (those not in
/// float before it), the scores before and after, kept or taken back, and its cost; a step taken
/// back and a move to int16 (added to the real search) are shown as such.
#[test]
fn the_accuracy_control_search_is_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = quantize(
        dir.path(),
        &[
            "--min-sqnr",
            "60",
            "--val-data",
            repo("tests/fixtures/data/digits_test_x.npy")
                .to_str()
                .unwrap(),
            "--best-effort",
        ],
    );
    let steps = doc["accuracy_control"]["steps"].as_array().unwrap().clone();
    assert!(steps.len() >= 2, "{steps:?}");
    // A step taken back, moving a made-up tensor to int16.
    let mut back = steps
        .iter()
        .rev()
        .find(|s| s["kept"] == true)
        .unwrap()
        .clone();
    back["moved"] = json!("made_up<tensor>");
    back["to"] = json!("int16");
    back["kept"] = json!(false);
    back["float_layers"]
        .as_array_mut()
        .unwrap()
        .push(json!("extra_layer"));
    doc["accuracy_control"]["steps"]
        .as_array_mut()
        .unwrap()
        .push(back);
    let steps = doc["accuracy_control"]["steps"].as_array().unwrap().clone();
    let kept = steps[1..].iter().filter(|s| s["kept"] == true).count();
    let to_int16 = steps.iter().filter(|s| s["to"] == "int16").count();

    let texts = svg_texts(&report(dir.path(), &doc, "ac.svg"));
    assert_eq!(count(&texts, "start"), 1, "{texts:?}");
    assert_eq!(count(&texts, "kept"), kept, "{texts:?}");
    let back = steps.iter().filter(|s| s["kept"] == false).count();
    assert_eq!(count(&texts, "taken back"), back, "{texts:?}");
    assert_eq!(count(&texts, "made_up<tensor>"), 1, "{texts:?}");
    assert_eq!(count(&texts, "int16"), to_int16, "{texts:?}");
    // The step taken back moved only the layer whose type differs from the model before it.
    assert_eq!(count(&texts, "extra_layer"), 1, "{texts:?}");
    // A moved tensor is named in its row (and above its histogram).
    let values: Vec<&str> = doc["quantization"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for s in &steps[1..steps.len() - 1] {
        let moved = s["moved"].as_str().unwrap();
        let panels = values.iter().filter(|v| **v == moved).count();
        let rows = steps.iter().filter(|t| t["moved"] == moved).count();
        assert_eq!(count(&texts, moved), rows + panels, "{s}");
        let bytes = s["ferrite_bytes"].as_u64().unwrap();
        let shown = format!("{bytes}");
        assert!(
            texts.iter().any(|t| t.replace(',', "").starts_with(&shown)),
            "{shown} in {texts:?}"
        );
    }
    assert!(texts
        .iter()
        .any(|t| t.starts_with("Accuracy control: an output SQNR of at least 60 dB")));

    let html = report(dir.path(), &doc, "ac.html");
    assert_eq!(html.matches("<table>").count(), 1);
    // The header row and a row per step, the one taken back greyed.
    assert_eq!(html.matches("<tr").count(), steps.len() + 1);
    assert_eq!(html.matches("<tr class=\"back\">").count(), back);
    assert!(html.contains("<td>made_up&lt;tensor&gt;</td>"));
    assert!(html.contains("<td>taken back</td>"));
    assert_eq!(html_svgs(&html).len(), 2);
}

/// Names with `<`, `&` and quotes are escaped: the SVG parses and shows them as they are, and the
/// HTML holds them only as entities.
#[test]
fn names_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = quantize(dir.path(), &[]);
    let odd = r#"a<b & "c" 'd'>"#;
    doc["model"] = json!("m<1>&.onnx");
    doc["quantization"]["layers"][1]["name"] = json!(odd);
    doc["quantization"]["values"][1]["name"] = json!(odd);
    let texts = svg_texts(&report(dir.path(), &doc, "odd.svg"));
    assert_eq!(count(&texts, odd), 2, "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("m<1>&.onnx")));
    let html = report(dir.path(), &doc, "odd.htm");
    assert!(!html.contains("a<b") && !html.contains("<1>"));
    assert!(html.contains("<title>Quantization report: m&lt;1&gt;&amp;.onnx</title>"));
    let svgs = html_svgs(&html);
    assert_eq!(count(&svgs[0], odd), 1, "{:?}", svgs[0]);
    assert_eq!(count(&svgs[1], odd), 1, "{:?}", svgs[1]);
}

/// A report of another version: an int16 layer (by `precision`, or by `dtype` alone), a precision
/// this version does not know, no histograms, no settings, no sizes.
#[test]
fn reports_of_other_versions_are_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = quantize(dir.path(), &[]);
    let q = &mut doc["quantization"];
    q["layers"][0]["precision"] = json!("int16");
    q["layers"][1]["dtype"] = json!("int16");
    q["layers"][2] = json!({"name": "last", "precision": "int4"});
    for v in q["values"].as_array_mut().unwrap() {
        v.as_object_mut().unwrap().remove("histogram");
    }
    q.as_object_mut().unwrap().remove("config");
    doc.as_object_mut().unwrap().remove("ferrite_bytes");
    let texts = svg_texts(&report(dir.path(), &doc, "v.svg"));
    assert_eq!(count(&texts, "int16 (2)"), 1, "{texts:?}");
    assert_eq!(count(&texts, "int4 (1)"), 1, "{texts:?}");
    assert!(texts.iter().any(|t| t.ends_with("· int16")), "{texts:?}");
    assert!(texts.iter().any(|t| t == "identical · int4"), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.contains("no histograms")),
        "{texts:?}"
    );
    // The least a report holds: its layers.
    let least = json!({"quantization": {"layers": [{"name": "only"}]}});
    let texts = svg_texts(&report(dir.path(), &least, "least.svg"));
    assert_eq!(count(&texts, "only"), 1, "{texts:?}");
    assert!(report(dir.path(), &least, "least.html").contains("(model not named)"));
}

/// Bad inputs: a one-line error naming the file and what is wrong, exit code 1, and the output
/// neither written nor changed.
#[test]
fn bad_inputs_are_refused_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("good.json");
    fs::write(&good, r#"{"quantization": {"layers": [{"name": "a"}]}}"#).unwrap();
    let run = |input: &Path, output: &Path| {
        ferrite()
            .arg("report")
            .arg(input)
            .arg("-o")
            .arg(output)
            .output()
            .unwrap()
    };
    let out = d.join("out.html");
    let write = |name: &str, text: &[u8]| {
        let p = d.join(name);
        fs::write(&p, text).unwrap();
        p
    };
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (d.join("missing.json"), vec!["missing.json", "No such file"]),
        (
            write("text.json", b"quantized, I think"),
            vec!["text.json", "not JSON"],
        ),
        (
            write("binary.json", &[0xff, 0xfe, 0x00]),
            vec!["binary.json", "not JSON"],
        ),
        (
            write("inspect.json", br#"{"model": "m.ferrite", "ops": []}"#),
            vec![
                "inspect.json",
                "not a quantization report",
                "quantization.layers",
            ],
        ),
        (
            write("array.json", b"[1, 2]"),
            vec!["array.json", "not a quantization report"],
        ),
        (
            write("layers.json", br#"{"quantization": {"layers": {"a": 1}}}"#),
            vec!["layers.json", "not a quantization report"],
        ),
        (
            write(
                "unnamed.json",
                br#"{"quantization": {"layers": [{"op": "FC"}]}}"#,
            ),
            vec!["unnamed.json", "not a quantization report", "name"],
        ),
        (d.to_path_buf(), vec![d.to_str().unwrap()]),
    ];
    for (input, says) in &cases {
        fails_saying(&run(input, &out), says);
        assert!(!out.exists(), "{}", input.display());
    }
    // An existing output is left as it was.
    fs::write(&out, "before").unwrap();
    for (input, says) in &cases {
        fails_saying(&run(input, &out), says);
        assert_eq!(fs::read_to_string(&out).unwrap(), "before");
    }
    // Unknown output types and unwritable outputs, refused before the report is read.
    for name in ["r.png", "r.json", "r"] {
        let o = d.join(name);
        fails_saying(
            &run(&good, &o),
            &[name, "unsupported output type", ".html, .htm, .svg"],
        );
        assert!(!o.exists());
        fails_saying(
            &run(&d.join("missing.json"), &o),
            &["unsupported output type"],
        );
    }
    let nowhere = d.join("no/such/folder/r.svg");
    fails_saying(&run(&good, &nowhere), &["r.svg", "does not exist"]);
    fails_saying(&run(&good, d), &["unsupported output type"]);
    // Only temporary files never left behind: the folder holds what the test wrote.
    let mut left: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "array.json",
            "binary.json",
            "good.json",
            "inspect.json",
            "layers.json",
            "out.html",
            "text.json",
            "unnamed.json"
        ]
    );
    succeeds(&run(&good, &out));
    assert!(fs::read_to_string(&out).unwrap().contains("<svg"));
}
