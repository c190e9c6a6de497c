//! The `ferrite` command-line tool.

use std::process::ExitCode;

use clap::Parser;
use ferrite_quantizer::cli;

fn main() -> ExitCode {
    match cli::Cli::parse().command.run() {
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
    use ferrite_quantizer::cli;

    #[test]
    fn every_subcommand_and_option_has_help() {
        let cmd = cli::command();
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
