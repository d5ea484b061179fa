//! A local `semkvd` that the CLI starts itself (for `semkv demo`): finding the
//! binary, starting it on a free port with its log in a file, waiting until it
//! answers, and stopping it again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The environment variable that names the `semkvd` binary to start.
pub const SEMKVD_ENV: &str = "SEMKVD";

/// The line `semkvd` prints on stdout once it listens (followed by the address).
const LISTENING: &str = "semkvd listening on ";

/// Why a local daemon could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// No `semkvd` binary was found.
    #[error(
        "cannot find the semkvd binary: looked for ${SEMKVD_ENV}, next to {exe}, and on PATH. \
         Build it with `cargo build --release` (it lands next to `semkv`), or start it \
         yourself and pass --addr"
    )]
    NotFound { exe: String },
    /// The process could not be spawned.
    #[error("cannot start {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The log file could not be created.
    #[error("cannot create the daemon log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The daemon exited before it listened.
    #[error("semkvd exited during startup ({status}); the end of its log ({log}):\n{tail}")]
    Exited {
        status: String,
        log: String,
        tail: String,
    },
    /// The daemon did not listen in time.
    #[error("semkvd did not start listening within {secs} s; see its log {log}")]
    Timeout { secs: u64, log: String },
}

/// Looks for `semkvd`: `$SEMKVD`, then next to the running executable (where cargo
/// puts both binaries), then on `PATH`.
pub fn find_semkvd() -> Result<PathBuf, DaemonError> {
    if let Some(p) = std::env::var_os(SEMKVD_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let name = format!("semkvd{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().ok();
    if let Some(dir) = exe.as_deref().and_then(Path::parent) {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        // Test binaries live in target/<profile>/deps.
        if dir.file_name().is_some_and(|n| n == "deps") {
            if let Some(candidate) = dir.parent().map(|d| d.join(&name)) {
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(&name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(DaemonError::NotFound {
        exe: exe.map_or_else(|| "semkv".to_owned(), |p| p.display().to_string()),
    })
}

/// The default cache directory of semkv: `$SEMKV_CACHE_DIR`, else the platform's cache
/// directory plus `semkv` (where `semkvd` also keeps downloaded models).
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("SEMKV_CACHE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("semkv"),
    }
}

/// How to start a daemon.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The `semkvd` binary.
    pub semkvd: PathBuf,
    /// `--model`: a name (`gemma-3-270m`), a checkpoint directory or a `.gguf` file.
    pub model: String,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--device`, if any.
    pub device: Option<String>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// How long to wait for it to listen (the first start may download the model).
    pub startup_timeout: Duration,
}

/// A `semkvd` process this CLI started. Dropping it kills the process.
#[derive(Debug)]
pub struct LocalDaemon {
    child: Option<Child>,
    /// `http://` address it listens on.
    pub addr: String,
    /// Its log file.
    pub log: PathBuf,
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl LocalDaemon {
    /// Starts `semkvd` on 127.0.0.1 with a free port and waits until it listens;
    /// `tick` is called about every 200 ms while waiting (for a spinner).
    pub fn start(opts: &StartOptions, mut tick: impl FnMut()) -> Result<Self, DaemonError> {
        if let Some(dir) = opts.log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let log_err = |source| DaemonError::Log {
            path: opts.log.clone(),
            source,
        };
        let log = std::fs::File::create(&opts.log).map_err(log_err)?;
        let log2 = log.try_clone().map_err(log_err)?;
        let mut cmd = Command::new(&opts.semkvd);
        cmd.arg("--model")
            .arg(&opts.model)
            .args(["--listen", "127.0.0.1:0", "--log-format", "text"])
            .arg("--data-dir")
            .arg(&opts.data_dir);
        if let Some(d) = &opts.device {
            cmd.args(["--device", d]);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .env("NO_COLOR", "1")
            .env_remove("SEMKV_CONFIG")
            .env_remove("SEMKV_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|source| DaemonError::Spawn {
                path: opts.semkvd.clone(),
                source,
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut log = log;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if let Some(addr) = line.strip_prefix(LISTENING) {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let started = Instant::now();
        let mut daemon = LocalDaemon {
            child: Some(child),
            addr: String::new(),
            log: opts.log.clone(),
        };
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(addr) => {
                    daemon.addr = format!("http://{addr}");
                    return Ok(daemon);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting.
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            tick();
            let child = daemon.child.as_mut().expect("running");
            if let Ok(Some(status)) = child.try_wait() {
                daemon.child = None;
                return Err(DaemonError::Exited {
                    status: status.to_string(),
                    log: opts.log.display().to_string(),
                    tail: tail(&opts.log, 15),
                });
            }
            if started.elapsed() > opts.startup_timeout {
                return Err(DaemonError::Timeout {
                    secs: opts.startup_timeout.as_secs(),
                    log: opts.log.display().to_string(),
                });
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Asks the daemon to shut down (SIGTERM: it drains and flushes), waits up to
    /// `grace`, then kills it. Returns whether it exited cleanly.
    ///
    /// Async so that the caller's runtime keeps running while it waits: the daemon's
    /// graceful shutdown waits for open connections, and the caller's gRPC
    /// connections are closed by tasks on that runtime.
    pub async fn stop(mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        #[cfg(unix)]
        {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: `pid` is our own child, which has not been reaped (we hold
                // its `Child` and have not waited on it successfully).
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                match child.try_wait() {
                    Ok(Some(status)) => return status.success(),
                    Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(_) => break,
                }
            }
        }
        #[cfg(not(unix))]
        let _ = grace;
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for LocalDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
