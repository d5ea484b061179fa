//! Raw bindings to mlx-c 0.7.0, generated at build time by bindgen.
//!
//! The build script (see `build/`) links a prebuilt MLX 0.32.2 taken from the official
//! Python wheels and compiles mlx-c against it. On x86_64, C has no native 16-bit float
//! types, so `float16_t` / `bfloat16_t` are declared here as 16-bit storage types with
//! the layout mlx-rs expects (`float16_t(pub u16)`, `bfloat16_t = u16`).
#![allow(non_upper_case_globals)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(clippy::all)]
#![allow(rustdoc::all)]

/// IEEE half-precision value, stored as its bit pattern.
#[cfg(not(target_arch = "aarch64"))]
#[repr(transparent)]
#[derive(Debug, Default, Copy, Clone, PartialEq, Eq, Hash)]
pub struct float16_t(pub u16);

/// bfloat16 value, stored as its bit pattern.
#[cfg(not(target_arch = "aarch64"))]
pub type bfloat16_t = u16;

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

extern "C" {
    /// Threads used by OpenBLAS, or 0 when MLX uses the wheel's own BLAS
    /// (defined in `compat/linux_shims.c`; Linux only).
    #[cfg(target_os = "linux")]
    pub fn semkv_blas_threads() -> std::os::raw::c_int;
}
