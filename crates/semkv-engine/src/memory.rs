//! MLX's memory: what arrays hold now, and the buffer cache MLX keeps for reuse.
//!
//! MLX does not return freed buffers to the system; it keeps them for the next arrays
//! of the same size, up to its cache limit (by default as large as its memory limit).
//! A long-lived server whose caches come and go bounds that cache and clears it when
//! it drops caches, so its resident memory follows what it holds.

use crate::EngineError;

/// Bytes MLX holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// In arrays that are alive.
    pub active: usize,
    /// Freed buffers kept for reuse.
    pub cache: usize,
    /// Most `active` since start.
    pub peak: usize,
}

/// What MLX holds now.
pub fn stats() -> Result<MemoryStats, EngineError> {
    Ok(MemoryStats {
        active: mlx_rs::memory::active_memory()?,
        cache: mlx_rs::memory::cache_memory()?,
        peak: mlx_rs::memory::peak_memory()?,
    })
}

/// Keeps at most `bytes` of freed buffers for reuse; returns the previous limit.
pub fn set_cache_limit(bytes: usize) -> Result<usize, EngineError> {
    Ok(mlx_rs::memory::set_cache_limit(bytes)?)
}

/// Returns every cached (freed) buffer to the system.
pub fn clear_cache() -> Result<(), EngineError> {
    Ok(mlx_rs::memory::clear_cache()?)
}
