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
    Train(Box<cli::train::Args>),
    /// Write a model as source to compile into firmware: a C array (--c-array) or a Rust static
    /// (--rust), with its length and arena size.
    Export(cli::export::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Convert(a) => cli::convert::run(&a),
        Command::Quantize(a) => cli::quantize::run(&a),
        Command::Eval(a) => cli::eval::run(&a),
        Command::Inspect(a) => cli::inspect::run(&a),
        Command::Run(a) => cli::run::run(&a),
        Command::Train(a) => cli::train::run(&a),
        Command::Export(a) => cli::export::run(&a),
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_and_option_has_help() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        for sub in cmd.get_subcommands() {
            assert!(sub.get_about().is_some(), "{} has no help", sub.get_name());
            for arg in sub.get_arguments() {
                if arg.is_hide_set() {
                    continue;
                }
                assert!(
                    arg.get_help().is_some() || arg.get_long_help().is_some(),
                    "`ferrite {}`: {} has no help",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
        let convert = cmd.find_subcommand("convert").unwrap();
        let about = convert.get_about().unwrap().to_string();
        assert!(
            about.contains("TFLite") && about.contains("ONNX Q/DQ"),
            "{about}"
        );
    }
}
