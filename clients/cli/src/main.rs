//! `semkv`: command-line client of `semkvd`, and the semantic-isolation experiment.

use std::process::ExitCode;

use clap::Parser;

use semkv_cli::cli::Cli;
use semkv_cli::{commands, exit};

fn main() -> ExitCode {
    exit::exit_code(commands::dispatch(Cli::parse()))
}
