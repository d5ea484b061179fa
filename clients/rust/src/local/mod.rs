//! [`LocalDaemon`]: a `semkvd` process started by this program — for tests, benches
//! and demos that need a real daemon.
//!
//! It listens on 127.0.0.1 on a free port (`--listen 127.0.0.1:0`); the harness reads
//! the daemon's stdout for the line `semkvd listening on <addr>` to learn the port and
//! to know it is ready. `SEMKV_CONFIG` and `SEMKV_LISTEN` are removed from its
//! environment, so a config file or listen address of the caller's shell cannot move
//! it. Dropping a [`LocalDaemon`] kills the process.
//!
//! This file holds the running daemon and how it stops; `builder.rs` how it starts.
//!
//! ```no_run
//! use semkv_client::LocalDaemon;
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let daemon = LocalDaemon::builder("/tmp/semkv-data")
//!     .model("tests/fixtures/tiny-gemma3-bf16")
//!     .device("cpu")
//!     .env("RUST_LOG", "warn")
//!     .start()?;
//! let client = daemon.client().await?;
//! println!("{}", client.server_info().await?.model);
//! drop(client); // a graceful shutdown waits for open connections
//! assert!(daemon.terminate_async(std::time::Duration::from_secs(10)).await);
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::ClientError;

mod builder;

pub use builder::LocalDaemonBuilder;

/// The environment variable that names the `semkvd` binary for [`find_semkvd`].
pub const SEMKVD_BIN_ENV: &str = "SEMKVD_BIN";

/// The line `semkvd` prints on stdout once it listens (followed by the address).
pub const LISTENING: &str = "semkvd listening on ";

/// How long [`LocalDaemon::terminate`] waits for the process to exit.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(10);

/// Looks for `semkvd`: `$SEMKVD_BIN`, else [`search_semkvd`].
pub fn find_semkvd() -> Option<PathBuf> {
    match std::env::var_os(SEMKVD_BIN_ENV) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => search_semkvd(),
    }
}

/// Builds `semkvd` from the semkv workspace at `workspace` with `cargo build -p semkv
/// --bin semkvd` (a no-op when it is up to date; `--release` when `release`) and returns
/// the path cargo put it at. For the workspace's own tests and benchmarks.
pub fn build_semkvd(workspace: &Path, release: bool) -> std::io::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-p", "semkv", "--bin", "semkvd"])
        .current_dir(workspace);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "cargo build -p semkv --bin semkvd failed ({status})"
        )));
    }
    search_semkvd().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "semkvd was built but is not next to this executable",
        )
    })
}

/// Looks for `semkvd` next to the running executable (where cargo puts the binaries
/// of a workspace; from a test, bench or example binary in `target/<profile>/deps` or
/// `.../examples`, one level up), then on `PATH`.
pub fn search_semkvd() -> Option<PathBuf> {
    let name = format!("semkvd{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().ok();
    if let Some(dir) = exe.as_deref().and_then(Path::parent) {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            return Some(candidate);
        }
        if dir
            .file_name()
            .is_some_and(|n| n == "deps" || n == "examples")
        {
            if let Some(candidate) = dir.parent().map(|d| d.join(&name)) {
                if candidate.is_file() {
                    return Some(candidate);
                }
            }
        }
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
}

/// Where a [`LocalDaemon`]'s output goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DaemonLog {
    /// Its stderr (the log) is this process's stderr; its stdout is read and dropped.
    #[default]
    Inherit,
    /// Its stdout and stderr are written into this file (created or truncated).
    File(PathBuf),
}

/// Why a [`LocalDaemon`] could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// No binary was given and [`find_semkvd`] found none.
    #[error(
        "cannot find the semkvd binary: set ${SEMKVD_BIN_ENV}, or put semkvd next to this \
         program or on PATH"
    )]
    NotFound,
    /// The process could not be spawned.
    #[error("cannot start {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The log file could not be created.
    #[error("cannot create the daemon log {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The daemon exited before it listened.
    #[error("semkvd exited during startup ({status}){}", log_excerpt(.log.as_deref(), .tail))]
    Exited {
        /// Its exit status.
        status: String,
        /// Its log file, when it had one.
        log: Option<PathBuf>,
        /// The last lines of that log (empty without one).
        tail: String,
    },
    /// The daemon did not listen in time.
    #[error(
        "semkvd did not start listening within {} s{}",
        .after.as_secs(),
        log_pointer(.log.as_deref())
    )]
    Timeout {
        /// How long it was given.
        after: Duration,
        /// Its log file, when it had one.
        log: Option<PathBuf>,
    },
}

fn log_excerpt(log: Option<&Path>, tail: &str) -> String {
    match log {
        Some(log) => format!("; the end of its log ({}):\n{tail}", log.display()),
        None => String::new(),
    }
}

fn log_pointer(log: Option<&Path>) -> String {
    match log {
        Some(log) => format!("; see its log {}", log.display()),
        None => String::new(),
    }
}

/// A `semkvd` process this program started. Dropping it kills the process.
#[derive(Debug)]
pub struct LocalDaemon {
    child: Option<Child>,
    /// `host:port` it listens on.
    addr: String,
    log: Option<PathBuf>,
}

impl LocalDaemon {
    /// The address it listens on, `127.0.0.1:<port>`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The address as a URI, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its log file, with [`DaemonLog::File`].
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The process id (`None` once it was stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A [`Client`] connected to it.
    pub async fn client(&self) -> Result<Client, ClientError> {
        Client::connect(&self.url()).await
    }

    /// The generated tonic client, connected to it, for raw calls.
    pub async fn raw_client(
        &self,
    ) -> Result<crate::proto::sem_kv_client::SemKvClient<tonic::transport::Channel>, ClientError>
    {
        Ok(self.client().await?.raw())
    }

    /// `kill -9`: no drain, no flush (what a crash looks like to the store).
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the daemon to shut down (SIGTERM: it drains and flushes) and waits up to
    /// [`TERMINATE_GRACE`], blocking this thread; kills it if it is still running
    /// then. Returns whether it exited cleanly.
    ///
    /// The daemon's graceful shutdown waits for open connections: close this
    /// program's clients first. Inside a single-threaded async runtime, whose tasks
    /// close those connections, use [`LocalDaemon::terminate_async`].
    pub fn terminate(mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        sigterm(child);
        let deadline = Instant::now() + TERMINATE_GRACE;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return status.success();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => break,
            }
        }
        false
    }

    /// Like [`LocalDaemon::terminate`] with a grace period of `grace`, waiting
    /// asynchronously so that the caller's runtime keeps running.
    pub async fn terminate_async(mut self, grace: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        sigterm(child);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return status.success();
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(_) => break,
            }
        }
        false
    }
}

/// Sends SIGTERM (on other platforms, kills: there is no graceful signal).
fn sigterm(child: &mut Child) {
    #[cfg(unix)]
    {
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: `pid` is our own child, which has not been reaped (we hold its
            // `Child` and have not waited on it successfully).
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = child.kill();
}

impl Drop for LocalDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_the_log_when_there_is_one() {
        let e = DaemonError::Exited {
            status: "exit status: 2".into(),
            log: Some("/tmp/d.log".into()),
            tail: "error: bad model".into(),
        };
        assert_eq!(
            e.to_string(),
            "semkvd exited during startup (exit status: 2); the end of its log (/tmp/d.log):\nerror: bad model"
        );
        let e = DaemonError::Timeout {
            after: Duration::from_secs(9),
            log: None,
        };
        assert_eq!(e.to_string(), "semkvd did not start listening within 9 s");
    }

    #[cfg(unix)]
    #[test]
    fn a_daemon_that_exits_at_once_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/semkvd.log");
        // `false` ignores its arguments and exits 1 without listening.
        let err = LocalDaemon::builder(dir.path())
            .bin("false")
            .log(DaemonLog::File(log.clone()))
            .start()
            .unwrap_err();
        match err {
            DaemonError::Exited { log: Some(l), .. } => assert_eq!(l, log),
            other => panic!("{other:?}"),
        }
        assert!(log.is_file());
        let err = LocalDaemon::builder(dir.path())
            .bin(dir.path().join("no-such-binary"))
            .start()
            .unwrap_err();
        assert!(matches!(err, DaemonError::Spawn { .. }), "{err:?}");
    }
}
