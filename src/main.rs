//! `semkvd`: the semkv daemon. See `semkvd --help` and docs/architecture.md.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use semkv::daemon;
use semkv::daemon_config::{Cli, Command, DaemonConfig, LogFormat};
use semkv::store::{Permissions, StoreOptions};
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

/// New files and directories get the store's permissions (sled creates its own files).
fn set_umask(permissions: Permissions) {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file mode mask; it cannot fail.
    unsafe {
        libc::umask(permissions.umask() as libc::mode_t);
    }
    #[cfg(not(unix))]
    let _ = permissions;
}

/// `semkvd repair`: salvage what the store in `data_dir` can give, and report.
fn repair(data_dir: &std::path::Path, options: StoreOptions) -> ExitCode {
    set_umask(options.permissions);
    eprintln!("semkvd: repairing the store in {}", data_dir.display());
    match semkv::store::repair(data_dir, options) {
        Ok(report) => {
            println!("kept {} clusters whole", report.kept.len());
            for (id, why) in &report.caches_dropped {
                println!("kept {id}; its cache is rebuilt from its token log on first use ({why})");
            }
            if !report.leftovers.is_empty() {
                println!(
                    "removed the leftover cache files of {} deleted clusters ({})",
                    report.leftovers.len(),
                    report.leftovers.join(", ")
                );
            }
            for id in &report.older {
                println!(
                    "OLDER {id}: its records are older than its last write (cache blobs of it that they do not name): its latest turns may be gone"
                );
            }
            for (id, why) in &report.lost {
                println!("LOST {id}: {why}");
            }
            if report.lost_unnamed > 0 {
                println!(
                    "LOST {} more clusters that the manifest recorded and nothing names any more",
                    report.lost_unnamed
                );
            }
            println!(
                "the damaged database was moved to {}",
                report.damaged_database.display()
            );
            if report.lost.is_empty() && report.lost_unnamed == 0 && report.older.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("semkvd: repair failed: {e}");
            ExitCode::from(3)
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(Command::Repair) = cli.command {
        init_logging(LogFormat::Text);
        return match DaemonConfig::store_only(&cli) {
            Ok((dir, options)) => repair(&dir, options),
            Err(e) => {
                eprintln!("semkvd: {e}");
                ExitCode::from(2)
            }
        };
    }
    let config = match DaemonConfig::resolve(cli) {
        Ok(c) => c,
        Err(semkv::daemon_config::ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("semkvd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    set_umask(config.store.permissions);
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
            ExitCode::from(e.exit_code())
        }
    }
}
