//! `cargo xtask test`: the whole test suite, every step run and every failure reported at the end.

use anyhow::{bail, Result};
use std::{path::Path, process::Command};

use crate::toolchain;

/// Targets the runtime must build for without std or alloc.
const NO_STD_TARGETS: [&str; 3] = [
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "riscv32imac-unknown-none-elf",
];

/// The runtime features of the DS-CNN operator set (what `cargo xtask size --runtime` builds).
const DSCNN_OPS: &str = "conv-2d,depthwise-conv-2d,fully-connected,average-pool-2d,reshape,softmax";

pub fn run(root: &Path) -> Result<()> {
    toolchain::ensure_targets(root, &NO_STD_TARGETS)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut steps: Vec<(String, Vec<String>)> = vec![
        ("format".into(), args("fmt --all -- --check")),
        ("host tests".into(), args("test --workspace")),
        (
            "runtime tests on their own (no workspace feature unification)".into(),
            args("test -p ferrite-runtime"),
        ),
        (
            "quantizer tests on their own".into(),
            args("test -p ferrite-quantizer"),
        ),
        (
            "runtime tests, DS-CNN operators only".into(),
            args(&format!(
                "test -p ferrite-runtime --test operator_features --no-default-features --features {DSCNN_OPS}"
            )),
        ),
        (
            "runtime tests, Conv2D without DepthwiseConv2D".into(),
            args("test -p ferrite-runtime --test operator_features --no-default-features --features conv-2d"),
        ),
        (
            "runtime tests, every operator without int16, f32 or in-place execution".into(),
            args("test -p ferrite-runtime --test int16_feature --test in_place_feature --no-default-features --features all-ops"),
        ),
        (
            "runtime docs, warnings denied".into(),
            args("rustdoc -p ferrite-runtime -- -D warnings"),
        ),
        (
            "quantizer docs, warnings denied".into(),
            args("rustdoc -p ferrite-quantizer --lib -- -D warnings"),
        ),
        (
            "clippy".into(),
            args("clippy --workspace --all-targets -- -D warnings"),
        ),
        (
            "format of the Python module (its own workspace)".into(),
            args("fmt --manifest-path python/Cargo.toml -- --check"),
        ),
        (
            "clippy of the Python module".into(),
            args(
                "clippy --manifest-path python/Cargo.toml --target-dir target/python -- -D warnings",
            ),
        ),
    ];
    for target in NO_STD_TARGETS {
        let dscnn = format!("--features {DSCNN_OPS}");
        let features_list = [
            "",
            "--features float",
            "--features all-ops",
            "--features all-ops,int16",
            &dscnn,
        ];
        for features in features_list {
            let name = format!("runtime for {target} (no default features {features})");
            let cmd = format!(
                "build -p ferrite-runtime --no-default-features {features} --target {target}"
            );
            steps.push((name, args(&cmd)));
        }
    }
    // The C API: its own workspace (capi/), so its format, tests and clippy are steps of their own.
    for (name, cmd) in [
        ("C API format", "fmt --manifest-path capi/Cargo.toml -- --check"),
        ("C API tests", "test --manifest-path capi/Cargo.toml --target-dir target/capi"),
        (
            "C API clippy",
            "clippy --manifest-path capi/Cargo.toml --target-dir target/capi --all-targets -- -D warnings",
        ),
    ] {
        steps.push((name.into(), args(cmd)));
    }
    let mut failed = Vec::new();
    for (name, a) in &steps {
        println!("==> {name}: cargo {}", a.join(" "));
        let ok = Command::new(&cargo)
            .args(a)
            .current_dir(root)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            failed.push(name.clone());
        }
    }
    println!("==> C API header: cargo xtask cbindgen --check");
    if let Err(e) = crate::capi::cbindgen(root, &crate::capi::CbindgenOptions { check: true }) {
        eprintln!("cbindgen: {e:#}");
        failed.push("C API header up to date".into());
    }
    println!("==> C API on the host: cargo xtask capi-host");
    if let Err(e) = crate::capi::host_example(root) {
        eprintln!("capi-host: {e:#}");
        failed.push("C host example".into());
    }
    println!("==> firmware under QEMU: cargo xtask qemu-test");
    if let Err(e) = crate::qemu_test::run(root, &crate::qemu_test::Options::full()) {
        eprintln!("qemu-test: {e:#}");
        failed.push("qemu-test".into());
    }
    println!("==> real boards: cargo xtask build-boards --selftest");
    if let Err(e) = crate::build_boards::run(root, &crate::build_boards::Options::full()) {
        eprintln!("build-boards: {e:#}");
        failed.push("build-boards".into());
    }
    println!("==> instruction counts (smoke): cargo xtask bench --machine an386 --model kws_dscnn");
    if let Err(e) = crate::bench::run(root, &crate::bench::Options::smoke()) {
        eprintln!("bench: {e:#}");
        failed.push("bench smoke".into());
    }
    println!("==> the Python module: target/venv, maturin develop --release, pytest python/tests");
    if let Err(e) = crate::python::test(root, &cargo) {
        eprintln!("python: {e:#}");
        failed.push("python".into());
    }
    if !failed.is_empty() {
        bail!("{} step(s) failed: {}", failed.len(), failed.join("; "));
    }
    println!("xtask test: all {} steps passed", steps.len() + 6);
    Ok(())
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}
