//! Link settings only the final crate can apply (a dependency's link args don't reach
//! the binaries): an rpath to the prebuilt `libmlx` that mlx-sys found, and on Linux a
//! forced reference that keeps OpenBLAS loaded ahead of libmlx (see crates/mlx-sys).
//!
//! Also compiles the gRPC API (`proto/semkv/v1`) with the vendored `protoc`, so no
//! system protoc is needed, and writes the file descriptor set that the reflection
//! service serves.
fn main() {
    if let Ok(dir) = std::env::var("DEP_MLX_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if let Ok(symbol) = std::env::var("DEP_MLX_OPENBLAS_ANCHOR") {
        println!("cargo:rustc-link-arg=-Wl,-u,{symbol}");
    }
    compile_protos();
}

fn compile_protos() {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    // prost-build finds protoc through PROTOC.
    std::env::set_var("PROTOC", protoc);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("semkv_v1_descriptor.bin"))
        .compile_protos(&["proto/semkv/v1/semkv.proto"], &["proto"])
        .expect("compile proto/semkv/v1/semkv.proto");
}
