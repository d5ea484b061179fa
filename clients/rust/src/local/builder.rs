//! Starting a [`LocalDaemon`]: the command line and environment, where its output
//! goes, and waiting until it listens.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{find_semkvd, DaemonError, DaemonLog, LocalDaemon, LISTENING};

impl LocalDaemon {
    /// A builder for a daemon whose store is `data_dir` (`--data-dir`).
    pub fn builder(data_dir: impl Into<PathBuf>) -> LocalDaemonBuilder {
        LocalDaemonBuilder {
            bin: None,
            data_dir: data_dir.into(),
            model: None,
            device: None,
            args: Vec::new(),
            env: Vec::new(),
            log: DaemonLog::Inherit,
            startup_timeout: Duration::from_secs(60),
        }
    }

    /// Waits for the address from `addresses`, watching for an early exit and the
    /// deadline.
    fn wait_until_listening(
        &mut self,
        addresses: &mpsc::Receiver<String>,
        timeout: Duration,
        tick: &mut dyn FnMut(),
    ) -> Result<String, DaemonError> {
        let started = Instant::now();
        loop {
            match addresses.recv_timeout(Duration::from_millis(200)) {
                Ok(addr) => return Ok(addr),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting.
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            tick();
            let child = self.child.as_mut().expect("running");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(DaemonError::Exited {
                    status: status.to_string(),
                    tail: self
                        .log
                        .as_deref()
                        .map_or_else(String::new, |l| tail(l, 15)),
                    log: self.log.clone(),
                });
            }
            if started.elapsed() > timeout {
                return Err(DaemonError::Timeout {
                    after: timeout,
                    log: self.log.clone(),
                });
            }
        }
    }
}

/// How to start a [`LocalDaemon`]; from [`LocalDaemon::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct LocalDaemonBuilder {
    bin: Option<PathBuf>,
    data_dir: PathBuf,
    model: Option<OsString>,
    device: Option<String>,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    log: DaemonLog,
    startup_timeout: Duration,
}

impl LocalDaemonBuilder {
    /// The `semkvd` binary (default: [`find_semkvd`]).
    pub fn bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.bin = Some(path.into());
        self
    }

    /// `--model`: a name (`gemma-3-270m`), a checkpoint directory or a `.gguf` file
    /// (default: the daemon's default model).
    pub fn model(mut self, model: impl AsRef<OsStr>) -> Self {
        self.model = Some(model.as_ref().to_owned());
        self
    }

    /// `--device` (`auto`, `cpu` or `gpu`; default: the daemon's).
    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }

    /// One more command-line argument, after the ones the builder sets.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// More command-line arguments, e.g. `["--queue-depth", "1"]`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable of the daemon (e.g. `RUST_LOG`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable from the daemon's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Where its output goes (default: [`DaemonLog::Inherit`]).
    pub fn log(mut self, log: DaemonLog) -> Self {
        self.log = log;
        self
    }

    /// How long it may take to listen (default 60 s; a first start that downloads
    /// the model needs more).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts the daemon and waits (blocking this thread) until it listens.
    pub fn start(self) -> Result<LocalDaemon, DaemonError> {
        self.start_with_tick(|| {})
    }

    /// Like [`LocalDaemonBuilder::start`], calling `tick` about every 200 ms while
    /// waiting (to animate a spinner).
    pub fn start_with_tick(self, mut tick: impl FnMut()) -> Result<LocalDaemon, DaemonError> {
        let bin = match &self.bin {
            Some(bin) => bin.clone(),
            None => find_semkvd().ok_or(DaemonError::NotFound)?,
        };
        let (stdout_log, stderr) = self.open_log()?;
        let mut child = self
            .command(&bin)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|source| DaemonError::Spawn { path: bin, source })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let addresses = read_stdout(stdout, stdout_log);
        let mut daemon = LocalDaemon {
            child: Some(child),
            addr: String::new(),
            log: match &self.log {
                DaemonLog::File(path) => Some(path.clone()),
                DaemonLog::Inherit => None,
            },
        };
        daemon.addr = daemon.wait_until_listening(&addresses, self.startup_timeout, &mut tick)?;
        Ok(daemon)
    }

    /// The log file for stdout lines, and what the daemon's stderr becomes.
    fn open_log(&self) -> Result<(Option<std::fs::File>, Stdio), DaemonError> {
        match &self.log {
            DaemonLog::Inherit => Ok((None, Stdio::inherit())),
            DaemonLog::File(path) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let log_err = |source| DaemonError::Log {
                    path: path.clone(),
                    source,
                };
                let file = std::fs::File::create(path).map_err(log_err)?;
                let stderr = file.try_clone().map_err(log_err)?;
                Ok((Some(file), Stdio::from(stderr)))
            }
        }
    }

    /// The command line and environment.
    fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin);
        if let Some(model) = &self.model {
            cmd.arg("--model").arg(model);
        }
        cmd.args(["--listen", "127.0.0.1:0"]);
        if let Some(device) = &self.device {
            cmd.args(["--device", device]);
        }
        cmd.arg("--data-dir").arg(&self.data_dir).args(&self.args);
        cmd.env_remove("SEMKV_CONFIG").env_remove("SEMKV_LISTEN");
        for (key, value) in &self.env {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }
}

/// Reads the daemon's stdout on a thread until it closes: every line goes into `log`
/// (if any), and the address of the `semkvd listening on` line is sent back.
fn read_stdout(
    stdout: std::process::ChildStdout,
    log: Option<std::fs::File>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut log = log;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(log) = log.as_mut() {
                let _ = writeln!(log, "{line}");
            }
            if let Some(addr) = line.strip_prefix(LISTENING) {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    rx
}

/// The last `lines` lines of a file (empty if it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
