//! Project automation: `cargo xtask <command>`.
//!
//! - `cargo xtask qemu-test [--machine M] [--case NAME]`: builds the board
//!   firmware for every golden case under `tests/golden/` (or the smoke test
//!   when there is none) and the `tflite_*` cases (TFLite fixtures against TFLite
//!   Micro's output), runs it in QEMU, decodes its defmt log and judges it
//!   by the exit status.
//! - `cargo xtask test`: the whole test suite (format, host tests, clippy, no_std cross builds of the
//!   runtime, qemu-test, the Python module's tests), reporting every failed step at the end.
//! - `cargo xtask size [--machine M] [--case NAME]`: builds the same firmware
//!   and prints its flash and RAM use against each board's memory; `--demo [--write]`: the demo
//!   firmware on every board (QEMU and real), written to `BENCHMARKS.md` with `--write`; `--runtime
//!   [--write] [--json]`: the runtime's `.text` by category in the DS-CNN bench firmware on an386,
//!   built with every operator and with only the model's (`--json`: one JSON document on stdout,
//!   `{"model_ops": {...}, "all_ops": {...}}` with the table's columns).
//! - `cargo xtask build-boards [--selftest]`: the real-board firmware, built
//!   without hardware; with `--selftest`, oversized models must fail the build.
//! - `cargo xtask flash-model --board B MODEL`: the model into the board's
//!   flash partition, run by the `partition` firmware (QEMU boards).
//! - `cargo xtask models [--write] [--json]`: the MLPerf Tiny int8 models converted: file sizes,
//!   planned arena and its lower bound, beside TFLite Micro's arena (`--json`: one JSON list, one
//!   object per model).
//! - `cargo xtask throughput [--runs N] [--write]`: single-thread `ferrite eval` samples/s on the largest
//!   real-data fixture beside onnxruntime on its Q/DQ twin, as a ratio.
//! - `cargo xtask demo`: the bundled example network on the emulated Cortex-M4F.
//! - `cargo xtask bench [--machine M] [--model NAME] [--json] [--write] [--mlperf]`: exact
//!   instruction counts per operator of the `tests/bench/` models under QEMU,
//!   beside CMSIS-NN's; flash, RAM, stack high-water (see `BENCHMARKS.md`).
//!   `--mlperf`: the five real MLPerf Tiny models (KWS DS-CNN, ResNet-8, VWW MobileNet, AD
//!   autoencoder, streaming wake word), converted, beside TFLite Micro + CMSIS-NN's whole invoke; a
//!   model whose firmware exceeds a machine's memory is a skipped row with the flash and RAM needed.
//!   With `--json` (here and below) stdout holds the JSON alone, notes go to stderr. `--int16`: the int16x8
//!   convolution fixtures on the M4F, reference and DSP kernels beside the int8 layer.
//! - `cargo xtask fuzz [--target T] [--runs N | --time SECS]`: the cargo-fuzz targets (every importer,
//!   `quantize`, the runtime's loader) on corpora seeded from the fixtures; needs cargo-fuzz.
//! - `cargo xtask cbindgen [--check]`: the C API's header `capi/include/ferrite.h` from
//!   `capi/src/lib.rs`; `--check` fails if the committed one differs.
//! - `cargo xtask capi-host`: the C API's static library for the host and the C host example
//!   (`capi/examples/host.c`) on every golden case.
//! - `cargo xtask python-test`: the Python module built into `target/venv` and its pytest suite (a
//!   step of `cargo xtask test`).
//! - `cargo xtask miri`: the runtime's unit tests under Miri (portable kernels, a few cases of each
//!   randomized test); needs the nightly `miri` component.
//! - `cargo xtask completions [--out DIR]`, `cargo xtask man [--out DIR]`: bash/zsh/fish completions
//!   and manual pages of the `ferrite` CLI (default `target/completions/`, `target/man/`).
#![forbid(unsafe_code)]

mod accuracy;
mod accuracy_control;
mod baselines;
mod bench;
mod bench_int16;
mod boards;
mod build_boards;
mod capi;
mod cases;
mod cli_docs;
mod defmt_log;
mod demo;
mod elf_size;
mod firmware;
mod fixtures;
mod flash_model;
mod fuzz;
mod miri;
mod mlperf;
mod models;
mod profile;
mod prune;
mod python;
mod qat;
mod qemu;
mod qemu_test;
mod size_report;
mod test_all;
mod tflite_cases;
mod throughput;
mod toolchain;

use clap::{Parser, Subcommand};
use std::{path::PathBuf, process::ExitCode};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Ferrite project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build and run the board firmware in QEMU for every golden case.
    QemuTest(qemu_test::Options),
    /// Run the whole test suite (what CI runs).
    Test,
    /// Build the Python module into target/venv and run its tests (a step of `test`).
    PythonTest,
    /// Build the board firmware and print its flash and RAM use.
    Size(qemu_test::SizeOptions),
    /// Count the instructions of one inference per operator under QEMU (tests/bench/ models),
    /// beside the CMSIS-NN figures of BASELINES.md; flash, RAM and stack high-water.
    Bench(bench::Options),
    /// Quantize the real-data fixtures: float vs int8 accuracy and time, beside NNCF's recorded figures.
    Accuracy(accuracy::Options),
    /// Quantization-aware training of the QAT fixture beside NNCF's QAT in PyTorch: top-1, SQNR,
    /// time per epoch.
    Qat(qat::Options),
    /// Magnitude pruning of the DS-CNN and ResNet fixtures with `ferrite train --sparsity`: top-1,
    /// SQNR, zeros, file size, beside PyTorch's pruning of the same models.
    Prune(prune::Options),
    /// Accuracy-controlled quantization (`ferrite quantize --max-drop`) beside NNCF's
    /// `quantize_with_accuracy_control`: top-1, SQNR, layers in float, flash, arena, instructions.
    AccuracyControl(accuracy_control::Options),
    /// Single-thread host throughput of `ferrite eval` on the largest fixture beside onnxruntime on its
    /// Q/DQ twin.
    Throughput(throughput::Options),
    /// Run the bundled example network on the emulated Cortex-M4F: size, arena, predictions,
    /// host-vs-device equality, instruction count.
    Demo,
    /// Convert the MLPerf Tiny int8 models: file sizes and arenas beside TFLite Micro's.
    Models(models::Options),
    /// Build the real-board firmware (nRF52840-DK, NUCLEO-L4R5ZI) without hardware.
    BuildBoards(build_boards::Options),
    /// Put a model into a board's flash partition and run the partition firmware on it (QEMU), or
    /// print the probe-rs command (real boards).
    FlashModel(flash_model::Options),
    /// Run the cargo-fuzz targets (importers, quantize, the runtime's loader) on corpora seeded from
    /// the fixtures; needs cargo-fuzz and a nightly toolchain.
    Fuzz(fuzz::Options),
    /// Run the runtime's unit tests under Miri; needs the nightly `miri` component.
    Miri,
    /// Write bash, zsh and fish completions of the `ferrite` CLI.
    Completions(cli_docs::Options),
    /// Write the manual pages of the `ferrite` CLI: `ferrite.1` and one per subcommand.
    Man(cli_docs::Options),
    /// Generate the C API's header capi/include/ferrite.h with cbindgen (--check: fail if the
    /// committed one is out of date).
    Cbindgen(capi::CbindgenOptions),
    /// Build the C API for the host and run the C host example (capi/examples/host.c) on every
    /// golden case, with its error-path checks.
    CapiHost,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::QemuTest(options) => qemu_test::run(&repo_root(), &options),
        Command::Test => test_all::run(&repo_root()),
        Command::PythonTest => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            python::test(&repo_root(), &cargo)
        }
        Command::Size(options) => qemu_test::size(&repo_root(), &options),
        Command::Bench(options) => bench::run(&repo_root(), &options),
        Command::Accuracy(options) => accuracy::run(&repo_root(), &options),
        Command::Qat(options) => qat::run(&repo_root(), &options),
        Command::Prune(options) => prune::run(&repo_root(), &options),
        Command::AccuracyControl(options) => accuracy_control::run(&repo_root(), &options),
        Command::Throughput(options) => throughput::run(&repo_root(), &options),
        Command::Demo => demo::run(&repo_root()),
        Command::Models(options) => models::run(&repo_root(), &options),
        Command::BuildBoards(options) => build_boards::run(&repo_root(), &options),
        Command::FlashModel(options) => flash_model::run(&repo_root(), &options),
        Command::Fuzz(options) => fuzz::run(&repo_root(), &options),
        Command::Miri => miri::run(&repo_root()),
        Command::Completions(options) => cli_docs::completions(&repo_root(), &options),
        Command::Man(options) => cli_docs::man(&repo_root(), &options),
        Command::Cbindgen(options) => capi::cbindgen(&repo_root(), &options),
        Command::CapiHost => capi::host_example(&repo_root()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root: the parent of this crate's directory.
fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
