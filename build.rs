//! Link settings only the final crate can apply (a dependency's link args don't reach
//! the binaries): an rpath to the prebuilt `libmlx` that mlx-sys found, and on Linux a
//! forced reference that keeps OpenBLAS loaded ahead of libmlx (see crates/mlx-sys).
fn main() {
    if let Ok(dir) = std::env::var("DEP_MLX_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if let Ok(symbol) = std::env::var("DEP_MLX_OPENBLAS_ANCHOR") {
        println!("cargo:rustc-link-arg=-Wl,-u,{symbol}");
    }
}
