//! Obtains the mlx-c sources from the published `mlx-sys 0.7.0` crate in cargo's registry
//! cache (downloading it with `cargo fetch` if needed) — nothing third-party is vendored.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const CRATE: &str = "mlx-sys-0.7.0";

/// Returns the directory of the unpacked mlx-c source tree.
pub fn mlx_c_root(out_dir: &Path) -> PathBuf {
    let unpacked = out_dir.join("upstream");
    let root = unpacked.join(CRATE).join("src/mlx-c");
    if root.join("CMakeLists.txt").is_file() {
        return root;
    }
    let archive = find_crate_archive().unwrap_or_else(|| {
        fetch_crate(out_dir);
        find_crate_archive()
            .expect("cargo fetch did not leave mlx-sys-0.7.0.crate in the registry cache")
    });
    let file = fs::File::open(&archive).expect("open mlx-sys crate archive");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    fs::create_dir_all(&unpacked).expect("create unpack dir");
    for entry in tar.entries().expect("read crate archive") {
        let mut entry = entry.expect("read crate archive entry");
        let path = entry.path().expect("entry path").into_owned();
        if path.starts_with(Path::new(CRATE).join("src/mlx-c")) {
            entry.unpack_in(&unpacked).expect("unpack mlx-c source");
        }
    }
    assert!(
        root.join("CMakeLists.txt").is_file(),
        "mlx-c sources missing from {}",
        archive.display()
    );
    root
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"))
}

fn find_crate_archive() -> Option<PathBuf> {
    let cache = cargo_home().join("registry/cache");
    fs::read_dir(cache).ok()?.flatten().find_map(|index| {
        let candidate = index.path().join(format!("{CRATE}.crate"));
        candidate.is_file().then_some(candidate)
    })
}

/// Downloads the published crate with a throwaway manifest (its own workspace).
fn fetch_crate(out_dir: &Path) {
    let dir = out_dir.join("fetch");
    fs::create_dir_all(dir.join("src")).expect("create fetch dir");
    fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"mlx-c-source-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nmlx-sys = { version = \"=0.7.0\", default-features = false }\n\n[workspace]\n",
    )
    .expect("write fetch manifest");
    fs::write(dir.join("src/lib.rs"), "").expect("write fetch lib");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .arg("fetch")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("run cargo fetch");
    assert!(
        status.success(),
        "cargo fetch of mlx-sys 0.7.0 failed (is crates.io reachable?)"
    );
}
