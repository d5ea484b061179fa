//! Compiles the client half of the gRPC API (`proto/semkv/v1`, shared with `semkvd`)
//! with the vendored `protoc`, so no system protoc is needed and the client does not
//! depend on the daemon crate (and so not on MLX).
fn main() {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    // prost-build finds protoc through PROTOC.
    std::env::set_var("PROTOC", protoc);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let proto = root.join("semkv/v1/semkv.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&[proto], &[root])
        .expect("compile proto/semkv/v1/semkv.proto");
}
