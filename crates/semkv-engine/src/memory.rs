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
///
/// On Linux with glibc, freeing is not enough: MLX's CPU buffers come from `malloc`,
/// and glibc keeps freed memory in its arenas (most of it below the heap top, where
/// it never shrinks on its own), so the process would keep its peak size. This also
/// asks glibc to give back every whole free page (`malloc_trim`).
pub fn clear_cache() -> Result<(), EngineError> {
    mlx_rs::memory::clear_cache()?;
    trim_heap();
    Ok(())
}

/// Gives the C heap's free pages back to the system (glibc only; elsewhere nothing).
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
