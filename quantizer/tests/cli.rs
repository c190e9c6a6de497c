//! The `ferrite` binary end to end: outputs, exit codes, one-line errors, no partial files.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrite_quantizer::npy::Array;

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

fn golden(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(case)
        .join("model.ferrite")
}

#[test]
fn inspect_json_describes_the_model() {
    let out = ferrite()
        .args(["inspect", "--json"])
        .arg(golden("small_dscnn"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ops"].as_array().unwrap().len(), 7);
    assert_eq!(v["ops"][0]["op"], "CONV_2D");
    assert!(v["arena_bytes"].as_u64().unwrap() >= v["arena_lower_bound"].as_u64().unwrap());
}

#[test]
fn run_writes_the_same_bytes_as_the_golden_case() {
    let dir = tempfile::tempdir().unwrap();
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/small_dscnn");
    let input: Vec<i8> = std::fs::read(case.join("input.bin"))
        .unwrap()
        .iter()
        .map(|&b| b as i8)
        .collect();
    let x = dir.path().join("x.npy");
    Array::from_i8(vec![1, 10, 8, 1], &input).write(&x).unwrap();
    let y = dir.path().join("y.npy");
    let out = ferrite()
        .arg("run")
        .arg(golden("small_dscnn"))
        .arg("--data")
        .arg(&x)
        .arg("-o")
        .arg(&y)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = Array::read(&y).unwrap();
    assert_eq!(got.data, std::fs::read(case.join("expected.bin")).unwrap());
}

#[test]
fn bad_inputs_fail_with_one_line_and_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let y = dir.path().join("y.npy");
    // Wrong shape.
    let x = dir.path().join("x.npy");
    Array::from_f32(vec![1, 3], &[0.0; 3]).write(&x).unwrap();
    let out = ferrite()
        .arg("run")
        .arg(golden("small_dscnn"))
        .arg("--data")
        .arg(&x)
        .arg("-o")
        .arg(&y)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!y.exists());
    // Corrupt model.
    let bad = dir.path().join("bad.ferrite");
    let mut bytes = std::fs::read(golden("small_dscnn")).unwrap();
    bytes.truncate(100);
    std::fs::write(&bad, bytes).unwrap();
    let out = ferrite().arg("inspect").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
    // Unsupported file type.
    let out = ferrite()
        .arg("inspect")
        .arg(dir.path().join("m.pb"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported model type"));
}

/// The README's tour reads only files that are in the repository or written by an earlier line of the
/// tour (the MLPerf Tiny model beside the repository excepted), and git ignores what it writes.
#[test]
fn the_readme_tour_is_self_contained() {
    // `a/b/../c` as `a/c`, without touching the file system.
    let normal = |p: PathBuf| -> PathBuf {
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                c => out.push(c),
            }
        }
        out
    };
    let root = normal(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let tour = readme
        .split("## A five-minute tour")
        .nth(1)
        .and_then(|t| t.split("```sh").nth(1))
        .and_then(|t| t.split("```").next())
        .unwrap();
    let ignored = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    let mut cwd = root.clone();
    let mut written: Vec<PathBuf> = Vec::new();
    for line in tour.lines() {
        let words: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
        match words.as_slice() {
            ["cd", dir] => cwd = normal(cwd.join(dir)),
            ["ferrite", _command, args @ ..] | ["cargo", "xtask", _command, args @ ..] => {
                let mut outputs = Vec::new();
                let mut inputs = Vec::new();
                let mut i = 0;
                while i < args.len() {
                    match args[i] {
                        "-o" | "--c-array" | "--rust" => {
                            outputs.push(args[i + 1]);
                            i += 1;
                        }
                        a if a.starts_with("--json=") => outputs.push(&a[7..]),
                        a if a.contains('.')
                            && !a.starts_with('-')
                            && a.parse::<f64>().is_err() =>
                        {
                            inputs.push(a)
                        }
                        _ => {}
                    }
                    i += 1;
                }
                for input in inputs {
                    let path = normal(cwd.join(input));
                    let beside = input.starts_with("../shared/");
                    assert!(
                        beside || path.exists() || written.contains(&path),
                        "the tour reads {input} (in {}), which nothing before it writes: {line}",
                        cwd.display()
                    );
                }
                for output in outputs {
                    let path = normal(cwd.join(output));
                    let rel = path.strip_prefix(&root).unwrap().display().to_string();
                    assert!(
                        ignored.lines().any(|l| l == format!("/{rel}")),
                        "the tour writes {rel}, which .gitignore does not list"
                    );
                    written.push(path);
                }
            }
            _ => {}
        }
    }
    assert!(written.len() >= 4, "{written:?}");
}
