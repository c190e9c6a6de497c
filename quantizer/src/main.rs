//! The `ferrite` command-line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferrite_quantizer::cli;

#[derive(Parser)]
#[command(
    name = "ferrite",
    version,
    about = "Quantize, convert, inspect and run models for microcontrollers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Quantize a float ONNX model to int8 with a few hundred calibration samples (post-training).
    Quantize(cli::quantize::Args),
    /// Several models side by side: top-1 accuracy, SQNR and top-1 agreement against the first.
    Eval(cli::eval::Args),
    /// Convert a model quantized elsewhere (int8 TFLite, ONNX Q/DQ) to .ferrite as it is.
    Convert(cli::convert::Args),
    /// Show operators, shapes, quantization, MACs, weight bytes and arena of a model.
    Inspect(cli::inspect::Args),
    /// Run a model over samples on the host and write or show its outputs.
    Run(cli::run::Args),
    /// Quantization-aware training: fine-tune with int8 simulated, starting from post-training quantization.
    Train(cli::train::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Convert(a) => cli::convert::run(&a),
        Command::Quantize(a) => cli::quantize::run(&a),
        Command::Eval(a) => cli::eval::run(&a),
        Command::Inspect(a) => cli::inspect::run(&a),
        Command::Run(a) => cli::run::run(&a),
        Command::Train(a) => cli::train::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `ferrite run ... | head`: the reader has what it wanted.
        Err(e) if e.is::<cli::StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
