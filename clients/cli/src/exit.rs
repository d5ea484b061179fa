//! Exit codes, and [`Failure`]: an error message with the exit code it maps to. Every
//! command returns `Result<(), Failure>`; `main` prints the message and exits with the
//! code.

use std::process::ExitCode;

use crate::client::ClientError;
use crate::experiment::dataset::DatasetError;
use crate::output::OutputError;

/// The exit codes, as `semkv --help` lists them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (invalid dataset, daemon error, I/O error)
  2  bad command line
  3  the daemon could not be reached (or, for `demo`, started)
  130 interrupted (Ctrl-C or SIGTERM during `demo` or `experiment run`)";

/// Exit code: a failure.
pub const EXIT_FAILURE: u8 = 1;

/// Exit code: the daemon could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// Exit code: interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// A failure, with the exit code it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What to print after `semkv: ` on stderr (nothing when empty).
    pub message: String,
    /// The exit code.
    pub code: u8,
}

impl Failure {
    /// A failure with exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: EXIT_FAILURE,
        }
    }

    /// A failure with exit code 3 when `error` says the daemon could not be reached,
    /// else 1.
    pub fn with_client_error(message: impl Into<String>, error: Option<&ClientError>) -> Self {
        let code = match error {
            Some(ClientError::Unavailable { .. }) => EXIT_UNREACHABLE,
            _ => EXIT_FAILURE,
        };
        Failure {
            message: message.into(),
            code,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::with_client_error(e.to_string(), Some(&e))
    }
}

impl From<DatasetError> for Failure {
    fn from(e: DatasetError) -> Self {
        Failure::new(e.to_string())
    }
}

impl From<OutputError> for Failure {
    fn from(e: OutputError) -> Self {
        Failure::new(e.to_string())
    }
}

/// Prints a failure's message on stderr and turns the outcome into the exit code.
pub fn exit_code(outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("semkv: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
