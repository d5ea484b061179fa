//! semkv: per-cluster KV caches on MLX.
