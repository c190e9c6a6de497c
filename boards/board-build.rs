//! Build script of every real-board crate (`build = "../board-build.rs"`):
//! puts the board's `memory.x` on the linker path, adds the linker scripts,
//! and chooses the embedded model: `$FERRITE_MODEL` (a `.ferrite` file) or
//! else the bundled example `tests/golden/small_dscnn/model.ferrite`, passed
//! to the crate as `FERRITE_MODEL_PATH`. With the `partition` feature there
//! is no embedded model.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=../board-build.rs");

    if env::var_os("CARGO_FEATURE_PARTITION").is_some() {
        return;
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let model = match env::var_os("FERRITE_MODEL") {
        Some(path) => PathBuf::from(path),
        None => manifest.join("../../tests/golden/small_dscnn/model.ferrite"),
    };
    let model = model
        .canonicalize()
        .unwrap_or_else(|e| panic!("FERRITE_MODEL {}: {e}", model.display()));
    println!("cargo:rustc-env=FERRITE_MODEL_PATH={}", model.display());
    println!("cargo:rerun-if-env-changed=FERRITE_MODEL");
    println!("cargo:rerun-if-changed={}", model.display());
}
