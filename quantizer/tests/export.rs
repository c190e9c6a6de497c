//! `ferrite export`: the model as a C array or a Rust static, its length and arena size; bad models
//! refused with a clear message and no file written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

fn golden(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(case)
        .join("model.ferrite")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The bytes of the `0x..` literals in generated source.
fn hex_bytes(source: &str) -> Vec<u8> {
    source
        .split("0x")
        .skip(1)
        .map(|s| u8::from_str_radix(&s[..2], 16).unwrap())
        .collect()
}

/// The value of `#define NAME value` (or `pub const NAME: usize = value;`).
fn constant(source: &str, name: &str) -> usize {
    let line = source
        .lines()
        .find(|l| {
            l.starts_with(&format!("#define {name} "))
                || l.starts_with(&format!("pub const {name}: usize = "))
        })
        .unwrap_or_else(|| panic!("no {name} in\n{source}"));
    line.rsplit([' ', '='])
        .next()
        .unwrap()
        .trim_end_matches([';', 'u'])
        .parse()
        .unwrap()
}

#[test]
fn c_array_and_rust_hold_the_model_bytes_length_and_arena() {
    let dir = tempfile::tempdir().unwrap();
    let (h, rs) = (dir.path().join("kws-model.h"), dir.path().join("kws.rs"));
    let model = golden("small_dscnn");
    let out = ferrite()
        .arg("export")
        .arg(&model)
        .arg("--c-array")
        .arg(&h)
        .arg("--rust")
        .arg(&rs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&model).unwrap();
    let arena = ferrite_runtime::arena_size(&bytes);
    assert!(arena > 0);

    let c = std::fs::read_to_string(&h).unwrap();
    // The name comes from the file's stem, made an identifier.
    assert!(
        c.contains("static const uint8_t kws_model[KWS_MODEL_LEN] = {"),
        "{c}"
    );
    assert!(c.contains("_Alignas(16)"), "{c}");
    assert_eq!(constant(&c, "KWS_MODEL_LEN"), bytes.len());
    assert_eq!(constant(&c, "KWS_MODEL_ARENA_SIZE"), arena);
    let body = &c[c.find("= {").unwrap()..];
    assert_eq!(hex_bytes(body), bytes);

    let r = std::fs::read_to_string(&rs).unwrap();
    assert!(r.contains("#[repr(C, align(16))]"), "{r}");
    assert!(
        r.contains("pub static MODEL: AlignedModel = AlignedModel(["),
        "{r}"
    );
    assert_eq!(constant(&r, "MODEL_LEN"), bytes.len());
    assert_eq!(constant(&r, "ARENA_SIZE"), arena);
    let body = &r[r.find("AlignedModel([").unwrap()..];
    assert_eq!(hex_bytes(body), bytes);

    // The Rust source compiles in a module of its own, 16-byte aligned.
    let lib = dir.path().join("lib.rs");
    std::fs::write(
        &lib,
        "mod model { include!(\"kws.rs\"); }\n\
         const _: () = assert!(core::mem::align_of::<model::AlignedModel>() == 16);\n\
         pub fn bytes() -> &'static [u8] { &model::MODEL.0 }\n\
         pub const ARENA: usize = model::ARENA_SIZE + model::MODEL_LEN;\n",
    )
    .unwrap();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let built = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "lib",
            "--crate-name",
            "exported",
        ])
        .arg(&lib)
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));

    // The header compiles as C, and its array is the model (when a C compiler is there: rustc links
    // with one, so it normally is).
    let main = dir.path().join("main.c");
    std::fs::write(
        &main,
        "#include <string.h>\n#include \"kws-model.h\"\n\
         int main(void) { return ((uintptr_t)kws_model % 16 == 0 && kws_model[0] == 'F'\n\
         && sizeof kws_model == KWS_MODEL_LEN && KWS_MODEL_ARENA_SIZE > 0) ? 0 : 1; }\n",
    )
    .unwrap();
    let exe = dir.path().join("main");
    if let Ok(cc) = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Werror"])
        .arg(&main)
        .arg("-o")
        .arg(&exe)
        .output()
    {
        assert!(cc.status.success(), "{}", stderr(&cc));
        assert!(Command::new(&exe).status().unwrap().success());
    }
}

#[test]
fn a_name_can_be_given() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("model.h");
    let out = ferrite()
        .arg("export")
        .arg(golden("softmax"))
        .arg("--c-array")
        .arg(&h)
        .args(["--name", "g_softmax"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let c = std::fs::read_to_string(&h).unwrap();
    assert!(
        c.contains("static const uint8_t g_softmax[G_SOFTMAX_LEN]"),
        "{c}"
    );
}

/// Runs `ferrite export` on `model`, expecting a one-line error containing `message` and no file.
fn refused(model: &Path, extra: &[&str], message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (h, rs) = (dir.path().join("model.h"), dir.path().join("model.rs"));
    let out = ferrite()
        .arg("export")
        .arg(model)
        .arg("--c-array")
        .arg(&h)
        .arg("--rust")
        .arg(&rs)
        .args(extra)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(message), "expected {message:?} in {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!h.exists() && !rs.exists(), "an output file was written");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "files left behind"
    );
}

#[test]
fn corrupt_models_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(golden("small_dscnn")).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    refused(
        &write("flipped.ferrite", &flipped),
        &[],
        "checksum mismatch",
    );
    refused(
        &write("short.ferrite", &good[..good.len() / 2]),
        &[],
        "truncated",
    );
    let mut magic = good.clone();
    magic[..4].copy_from_slice(b"ABCD");
    refused(&write("magic.ferrite", &magic), &[], "bad magic");
    refused(&dir.path().join("missing.ferrite"), &[], "missing.ferrite");
    refused(
        &golden("small_dscnn"),
        &["--name", "9lives"],
        "not a C identifier",
    );
}

#[test]
fn an_existing_file_is_kept_when_the_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("model.h");
    std::fs::write(&h, "/* mine */\n").unwrap();
    let bad = dir.path().join("bad.ferrite");
    std::fs::write(&bad, b"FRTE but not a model").unwrap();
    let out = ferrite()
        .arg("export")
        .arg(&bad)
        .arg("--c-array")
        .arg(&h)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&h).unwrap(), "/* mine */\n");
}

#[test]
fn an_output_is_required() {
    let out = ferrite()
        .arg("export")
        .arg(golden("small_dscnn"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--c-array"), "{}", stderr(&out));
}
