//! Link settings for this crate's own tests, examples and doc tests (a dependency's
//! link args never reach another crate's binaries; the daemon's build.rs does the same
//! for its own): an rpath to the prebuilt `libmlx` that mlx-sys found, and on Linux a
//! forced reference that keeps OpenBLAS loaded ahead of libmlx (see crates/mlx-sys).
fn main() {
    if let Ok(dir) = std::env::var("DEP_MLX_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if let Ok(symbol) = std::env::var("DEP_MLX_OPENBLAS_ANCHOR") {
        println!("cargo:rustc-link-arg=-Wl,-u,{symbol}");
    }
}
