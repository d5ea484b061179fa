//! The Python client (clients/python, package `semkv_client`) against the real
//! `semkvd`: runs its pytest suite, which starts this build's daemon (SEMKVD_BIN) with
//! the tiny test checkpoint and drives every RPC through the client.
//!
//! Installs nothing. Needs python3 (or $SEMKV_PYTHON) with grpcio, grpcio-tools,
//! protobuf and pytest (scripts/setup.sh installs them); skipped when one is missing,
//! unless SEMKV_REQUIRE_MODELS=1 (as in CI), where the test fails naming the package.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Python modules the suite imports, with the pip package that provides each.
const MODULES: [(&str, &str); 4] = [
    ("grpc", "grpcio"),
    ("grpc_tools", "grpcio-tools"),
    ("google.protobuf", "protobuf"),
    ("pytest", "pytest"),
];

const TIMEOUT: Duration = Duration::from_secs(600);

fn python() -> String {
    std::env::var("SEMKV_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The pip packages whose modules `python` cannot import, or why it cannot run.
fn missing_packages(python: &str) -> Result<Vec<&'static str>, String> {
    let script = format!(
        "import importlib.util as u\nfor m in {:?}:\n    try:\n        ok = u.find_spec(m) is not None\n    except ImportError:\n        ok = False\n    if not ok:\n        print(m)\n",
        MODULES.iter().map(|(m, _)| *m).collect::<Vec<_>>()
    );
    let out = Command::new(python)
        .args(["-c", &script])
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{python} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let absent: Vec<&str> = stdout.lines().map(str::trim).collect();
    Ok(MODULES
        .iter()
        .filter(|(m, _)| absent.contains(m))
        .map(|(_, pkg)| *pkg)
        .collect())
}

#[test]
fn python_client_suite_passes_against_semkvd() {
    let python = python();
    let require = std::env::var("SEMKV_REQUIRE_MODELS").as_deref() == Ok("1");
    let problem = match missing_packages(&python) {
        Ok(missing) if missing.is_empty() => None,
        Ok(missing) => Some(format!(
            "Python packages missing for {python}: {} (pip install {}; scripts/setup.sh installs them)",
            missing.join(", "),
            missing.join(" ")
        )),
        Err(e) => Some(e),
    };
    if let Some(problem) = problem {
        assert!(!require, "{problem} [SEMKV_REQUIRE_MODELS=1]");
        eprintln!("skipping the Python client suite: {problem}");
        return;
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let package = root.join("clients/python");
    let pythonpath = match std::env::var_os("PYTHONPATH") {
        Some(old) if !old.is_empty() => {
            let mut paths = vec![package.clone()];
            paths.extend(std::env::split_paths(&old));
            std::env::join_paths(paths).expect("PYTHONPATH")
        }
        _ => package.clone().into_os_string(),
    };
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("pytest.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(&python)
        .args(["-m", "pytest", "clients/python/tests", "-q", "-rfEsxX"])
        .args(["-p", "no:cacheprovider"])
        .current_dir(root)
        .env("PYTHONPATH", pythonpath)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SEMKVD_BIN", env!("CARGO_BIN_EXE_semkvd"))
        // The daemon binary is right here: a suite that skips its daemon tests fails.
        .env("SEMKV_REQUIRE_MODELS", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python} -m pytest: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    println!("{output}");
    match status {
        None => panic!("pytest ran past {TIMEOUT:?}:\n{output}"),
        Some(s) => assert!(s.success(), "pytest failed ({s}):\n{output}"),
    }
}
