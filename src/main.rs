use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    ims_proxy::cli::main(ims_proxy::cli::Cli::parse())
}
