//! The commands, one file per group, and [`dispatch`], which runs a parsed [`Cli`].
//!
//! * [`cluster`] — `cluster create|list|show|fork|delete`;
//! * [`turns`] — `append`, `generate`, `chat`;
//! * [`status`] — `status`;
//! * [`model`] — `model pull`;
//! * [`experiment`] — `experiment validate|run|report`;
//! * [`demo`] — `demo`.
//!
//! Every command writes its result through one [`Printer`] (text, or JSON with
//! `--json`); notes, progress and generation statistics go to stderr.

use std::future::Future;

use crate::cli::{Cli, Command, ModelCommand};
use crate::client::{self, ClientError};
use crate::exit::Failure;
use crate::output::{OutputError, Printer};

pub mod cluster;
pub mod demo;
pub mod experiment;
pub mod model;
pub mod score;
pub mod status;
pub mod turns;

/// Why a daemon command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The daemon call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Reading input failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Writing output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The command was given nothing to do, or its input could not be read.
    #[error("{0}")]
    Usage(String),
}

impl From<CommandError> for Failure {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Client(c) => c.into(),
            other => Failure::new(other.to_string()),
        }
    }
}

/// Runs the command `cli` names; its output goes to stdout.
pub fn dispatch(cli: Cli) -> Result<(), Failure> {
    let mut p = Printer::stdout(cli.json);
    match cli.command {
        Command::Experiment(command) => experiment::run(&cli.addr, command, &mut p),
        Command::Demo(args) => block_on(demo::demo(cli.addr, args, &mut p)),
        Command::Model(ModelCommand::Pull { name }) => model::pull(&mut p, &name),
        Command::Model(ModelCommand::List) => model::list(&mut p),
        command => block_on(daemon_command(&cli.addr, command, &mut p)),
    }
}

/// Runs a future on a single-threaded runtime.
pub fn block_on<F: Future<Output = Result<(), Failure>>>(f: F) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(f)
}

/// Every command that talks to the daemon: connects first, then runs it.
async fn daemon_command(
    addr: &str,
    command: Command,
    p: &mut Printer<std::io::Stdout>,
) -> Result<(), Failure> {
    let client = client::connect(addr).await?;
    match command {
        Command::Cluster(c) => cluster::run(&client, p, c).await?,
        Command::Status => status::status(&client, p).await?,
        Command::Append(a) => turns::append_cmd(&client, p, a).await?,
        Command::Generate(g) => turns::generate_cmd(&client, p, g).await?,
        Command::Chat(c) => turns::chat_cmd(&client, p, c).await?,
        Command::Score(s) => score::score_cmd(&client, p, s).await?,
        Command::Experiment(_) | Command::Demo(_) | Command::Model(_) => {
            unreachable!("experiment, demo and model are dispatched first")
        }
    }
    Ok(())
}
