//! `semkvd`: the semkv daemon. See `semkvd --help` and docs/architecture.md.

use std::io::Write;
use std::process::ExitCode;

use semkv::daemon;
use semkv::daemon_config::{DaemonConfig, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn main() -> ExitCode {
    let config = match DaemonConfig::from_env() {
        Ok(c) => c,
        Err(semkv::daemon_config::ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("semkvd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("semkvd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(daemon::serve(config, shutdown_signal(), |addr| {
        // A machine-readable line for scripts and tests.
        println!("semkvd listening on {addr}");
        let _ = std::io::stdout().flush();
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "semkvd failed");
            eprintln!("semkvd: {e}");
            ExitCode::FAILURE
        }
    }
}
