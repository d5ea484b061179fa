//! Builds mlx-c 0.7.0 against a prebuilt MLX 0.32.2 and generates its bindings.
//!
//! Publishes to dependents (as `DEP_MLX_*`): `LIB_DIR` (where `libmlx` lives, for rpath),
//! `INCLUDE`, and on Linux with OpenBLAS `OPENBLAS_ANCHOR`: a symbol the final binary must
//! force-link (`-Wl,-u,<symbol>`) so that OpenBLAS is loaded ahead of libmlx.

mod locate_mlx;
mod mlx_c_source;

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let compat = manifest.join("compat");
    println!("cargo:rerun-if-changed=compat");
    println!("cargo:rerun-if-changed=build");

    let mlx = locate_mlx::locate(&out_dir);
    let mlx_c = mlx_c_source::mlx_c_root(&out_dir);

    build_mlx_c(&mlx_c, &mlx, &compat);
    link_system_libraries(&mlx, &compat);
    generate_bindings(&mlx_c, &compat, &out_dir);

    println!("cargo::metadata=lib_dir={}", mlx.lib_dir().display());
    println!("cargo::metadata=include={}", mlx.include_dir().display());
}

fn build_mlx_c(mlx_c: &Path, mlx: &locate_mlx::MlxInstall, compat: &Path) {
    let prelude = compat.join("mlx_c_cxx_prelude.h");
    let dst = cmake::Config::new(mlx_c)
        .define("MLX_C_USE_SYSTEM_MLX", "ON")
        .define("MLX_C_BUILD_EXAMPLES", "OFF")
        .define("BUILD_SHARED_LIBS", "OFF")
        .define("MLX_DIR", mlx.cmake_dir())
        .define("CMAKE_BUILD_TYPE", "Release")
        .profile("Release")
        .cxxflag(format!("-include {}", prelude.display()))
        .cxxflag(format!("-I{}", mlx.include_dir().display()))
        .build_target("mlxc")
        .build();
    let build = dst.join("build");
    println!("cargo:rustc-link-search=native={}", build.display());
    println!("cargo:rustc-link-lib=static=mlxc");
}

fn link_system_libraries(mlx: &locate_mlx::MlxInstall, compat: &Path) {
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    println!("cargo:rustc-link-search=native={}", mlx.lib_dir().display());
    if target_os == "macos" {
        println!("cargo:rustc-link-lib=dylib=mlx");
        println!("cargo:rustc-link-lib=c++");
        println!("cargo:rustc-link-lib=framework=Foundation");
        println!("cargo:rustc-link-lib=framework=Metal");
        println!("cargo:rustc-link-lib=framework=Accelerate");
    } else {
        // OpenBLAS must come before libmlx among the binary's needed libraries so that
        // MLX's cblas_sgemm calls bind to it instead of the wheel's reference BLAS
        // (20-50x slower for prefill GEMMs); the shim object references it (see
        // compat/linux_shims.c) so that --as-needed keeps it.
        let openblas = openblas_available();
        let mut shims = cc::Build::new();
        shims.file(compat.join("linux_shims.c"));
        if openblas {
            shims.define("SEMKV_WITH_OPENBLAS", None);
        }
        shims.compile("semkv_linux_shims");
        if openblas {
            println!("cargo::metadata=openblas_anchor=semkv_blas_threads");
            println!("cargo:rustc-link-lib=dylib=openblas");
        } else {
            println!(
                "cargo:warning=OpenBLAS not found (apt install libopenblas-dev): matrix products will use MLX's slow reference BLAS"
            );
        }
        println!("cargo:rustc-link-lib=dylib=mlx");
        println!("cargo:rustc-link-lib=dylib=stdc++");
    }
}

fn openblas_available() -> bool {
    println!("cargo:rerun-if-env-changed=SEMKV_NO_OPENBLAS");
    if env::var_os("SEMKV_NO_OPENBLAS").is_some() {
        return false;
    }
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ]
    .iter()
    .any(|dir| Path::new(dir).join("libopenblas.so").exists())
}

fn generate_bindings(mlx_c: &Path, compat: &Path, out_dir: &Path) {
    let mut headers: Vec<PathBuf> = std::fs::read_dir(mlx_c.join("mlx/c"))
        .expect("list mlx-c headers")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "h"))
        .collect();
    headers.sort();
    let mut builder = bindgen::Builder::default()
        .clang_arg(format!("-I{}", mlx_c.display()))
        .blocklist_function("malloc")
        .blocklist_function("realloc");
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("aarch64") {
        builder = builder
            .clang_arg("-include")
            .clang_arg(compat.join("bindgen_prelude.h").display().to_string())
            .blocklist_type("float16_t")
            .blocklist_type("bfloat16_t");
    }
    for header in &headers {
        builder = builder.header(header.display().to_string());
    }
    builder
        .generate()
        .expect("generate mlx-c bindings")
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs");
}
