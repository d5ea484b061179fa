//! Finds a prebuilt MLX (headers, `libmlx`, CMake package) from the official wheels.
//!
//! Order: `MLX_DIR` (a wheel's `mlx` package directory), then the `mlx` package of the
//! `python3` on PATH (or `$SEMKV_PYTHON`), then a `pip install --target` of the wheel
//! into the build directory.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The MLX release that mlx-c 0.7.0 is written against; headers and symbols must match.
pub const MLX_VERSION: &str = "0.32.2";

/// A located MLX installation (the wheel's `mlx` package directory).
pub struct MlxInstall {
    pub root: PathBuf,
}

impl MlxInstall {
    pub fn cmake_dir(&self) -> PathBuf {
        self.root.join("share/cmake/MLX")
    }
    pub fn lib_dir(&self) -> PathBuf {
        self.root.join("lib")
    }
    pub fn include_dir(&self) -> PathBuf {
        self.root.join("include")
    }

    /// The version recorded in the wheel's CMake package, if readable.
    fn version(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.cmake_dir().join("MLXConfigVersion.cmake")).ok()?;
        text.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("set(PACKAGE_VERSION \"")?;
            Some(rest.split('"').next()?.to_owned())
        })
    }

    fn check(self, origin: &str) -> Result<Self, String> {
        if !self.cmake_dir().join("MLXConfig.cmake").is_file() {
            return Err(format!(
                "{origin}: {} has no share/cmake/MLX/MLXConfig.cmake (not an MLX wheel's `mlx` directory)",
                self.root.display()
            ));
        }
        match self.version() {
            Some(v) if v == MLX_VERSION => Ok(self),
            Some(v) => Err(format!(
                "{origin}: MLX at {} is version {v}, but mlx-c 0.7.0 needs exactly {MLX_VERSION} \
                 (pip install mlx-cpu=={MLX_VERSION}, or point MLX_DIR at a matching wheel)",
                self.root.display()
            )),
            None => Err(format!(
                "{origin}: cannot read the MLX version under {}",
                self.root.display()
            )),
        }
    }
}

/// Locates MLX or panics with a message that says how to provide it.
pub fn locate(out_dir: &Path) -> MlxInstall {
    println!("cargo:rerun-if-env-changed=MLX_DIR");
    println!("cargo:rerun-if-env-changed=SEMKV_PYTHON");
    if let Some(dir) = env::var_os("MLX_DIR") {
        return MlxInstall {
            root: PathBuf::from(dir),
        }
        .check("MLX_DIR")
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let python = env::var("SEMKV_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut problems = Vec::new();
    match python_mlx_dir(&python) {
        Some(root) => match (MlxInstall { root }).check("python mlx package") {
            Ok(found) => return found,
            Err(e) => problems.push(e),
        },
        None => problems.push(format!("{python} has no importable `mlx` package")),
    }
    let target = out_dir.join("mlx-wheel");
    let installed = || MlxInstall {
        root: target.join("mlx"),
    };
    if installed().check("pip install").is_err() {
        pip_install(&python, &target).unwrap_or_else(|e| {
            panic!(
                "cannot find MLX {MLX_VERSION}: {}; and {e}",
                problems.join("; ")
            )
        });
    }
    installed()
        .check("pip install")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn wheel_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "mlx-metal"
    } else {
        "mlx-cpu"
    }
}

fn python_mlx_dir(python: &str) -> Option<PathBuf> {
    // `mlx` is a namespace-like package; locate it through `mlx.core`.
    let out = Command::new(python)
        .args([
            "-c",
            "import os, mlx.core as c; print(os.path.dirname(c.__file__))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(dir.trim()))
}

fn pip_install(python: &str, target: &Path) -> Result<(), String> {
    let spec = format!("{}=={MLX_VERSION}", wheel_name());
    println!("cargo:warning=installing {spec} into {}", target.display());
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--upgrade",
            "--target",
        ])
        .arg(target)
        .arg(&spec)
        .status()
        .map_err(|e| format!("running `{python} -m pip` failed ({e}); install python3-pip"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{python} -m pip install {spec}` failed ({status})"
        ))
    }
}
