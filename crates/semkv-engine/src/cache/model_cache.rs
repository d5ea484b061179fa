//! Per-layer KV caches: a growing cache for global layers and a ring buffer of
//! `window` tokens for sliding-window (local) layers.
//!
//! Both store keys/values as `[1, kv_heads, slots, head_dim]`. A ring never shrinks or
//! rewinds: tokens are only appended, so a wrapped ring is never trimmed (the classic
//! source of silently wrong Gemma 3 output). To branch, [`ModelCache::fork`] copies.
//! MLX arrays are immutable and reference counted, so a fork shares buffers until
//! either side writes (the write then copies instead of updating in place).

use mlx_rs::error::Exception;
use mlx_rs::ops::indexing::{TryIndexMutOp, TryIndexOp};
use mlx_rs::ops::{concatenate, zeros_dtype};
use mlx_rs::{Array, Dtype};

/// Capacity of a global cache grows in steps of this many tokens.
const GROW_STEP: i32 = 256;

/// What attention must use after a cache update.
pub struct AttentionInputs {
    pub keys: Array,
    pub values: Array,
    pub mask: AttentionMask,
}

/// The mask for a chunk of queries against [`AttentionInputs::keys`].
pub enum AttentionMask {
    /// Every key is visible (single-token decode).
    None,
    /// Bottom-right aligned causal mask.
    Causal,
    /// Explicit boolean mask `[queries, keys]`.
    Array(Array),
}

/// Cache of a global-attention layer: every token's keys and values.
#[derive(Clone, Debug)]
pub struct FullCache {
    pub(crate) keys: Option<Array>,
    pub(crate) values: Option<Array>,
    /// Tokens stored (the absolute position of the next token).
    pub(crate) offset: i32,
}

/// Cache of a sliding-window layer: the last `window` tokens in a ring buffer where
/// the token at absolute position `p` lives in slot `p % window`.
#[derive(Clone, Debug)]
pub struct RotatingCache {
    pub(crate) keys: Option<Array>,
    pub(crate) values: Option<Array>,
    pub(crate) offset: i32,
    pub(crate) window: i32,
}

/// One layer's cache.
#[derive(Clone, Debug)]
pub enum LayerCache {
    Full(FullCache),
    Rotating(RotatingCache),
}

fn buffer_len(a: &Option<Array>) -> i32 {
    a.as_ref().map_or(0, |a| a.dim(2))
}

/// `buffer` with at least `needed` slots, zero-extended in steps of `step`, capped at `cap`.
fn ensure_capacity(
    buffer: Option<Array>,
    like: &Array,
    needed: i32,
    cap: Option<i32>,
) -> Result<Array, Exception> {
    let have = buffer_len(&buffer);
    if have >= needed {
        return Ok(buffer.expect("capacity > 0 implies a buffer"));
    }
    let mut target = ((needed + GROW_STEP - 1) / GROW_STEP) * GROW_STEP;
    if let Some(cap) = cap {
        target = target.min(cap);
    }
    let shape = [like.dim(0), like.dim(1), target - have, like.dim(3)];
    let extension = zeros_dtype(&shape, like.dtype())?;
    match buffer {
        Some(b) => concatenate(&[b, extension], 2),
        None => Ok(extension),
    }
}

/// `buffer[..., start..start+len, :] = update`.
fn write_slots(buffer: &mut Array, start: i32, update: &Array) -> Result<(), Exception> {
    let end = start + update.dim(2);
    buffer.try_index_mut((.., .., start..end, ..), update)
}

impl FullCache {
    pub fn new() -> Self {
        Self {
            keys: None,
            values: None,
            offset: 0,
        }
    }

    /// Appends `keys`/`values` (`[1, h, L, d]`) and returns what attention needs.
    pub fn update(&mut self, keys: &Array, values: &Array) -> Result<AttentionInputs, Exception> {
        let len = keys.dim(2);
        let end = self.offset + len;
        let mut k = ensure_capacity(self.keys.take(), keys, end, None)?;
        let mut v = ensure_capacity(self.values.take(), values, end, None)?;
        write_slots(&mut k, self.offset, keys)?;
        write_slots(&mut v, self.offset, values)?;
        self.keys = Some(k);
        self.values = Some(v);
        self.offset = end;
        let (keys, values) = self.valid()?;
        let mask = if len > 1 {
            AttentionMask::Causal
        } else {
            AttentionMask::None
        };
        Ok(AttentionInputs { keys, values, mask })
    }

    /// Keys and values of the stored tokens, in order.
    pub fn valid(&self) -> Result<(Array, Array), Exception> {
        let (Some(k), Some(v)) = (&self.keys, &self.values) else {
            return Err(Exception::custom("empty cache"));
        };
        Ok((
            k.try_index((.., .., ..self.offset, ..))?,
            v.try_index((.., .., ..self.offset, ..))?,
        ))
    }
}

impl Default for FullCache {
    fn default() -> Self {
        Self::new()
    }
}

impl RotatingCache {
    pub fn new(window: i32) -> Self {
        Self {
            keys: None,
            values: None,
            offset: 0,
            window,
        }
    }

    /// Slots in use: `min(offset, window)`.
    pub fn len(&self) -> i32 {
        self.offset.min(self.window)
    }

    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }

    /// The last `n` stored tokens in temporal order (`n <= len()`).
    fn recent(buffer: &Array, offset: i32, window: i32, n: i32) -> Result<Array, Exception> {
        let start = (offset - n).rem_euclid(window);
        if start + n <= window {
            buffer.try_index((.., .., start..start + n, ..))
        } else {
            let head = buffer.try_index((.., .., start..window, ..))?;
            let tail = buffer.try_index((.., .., ..n - (window - start), ..))?;
            concatenate(&[head, tail], 2)
        }
    }

    /// Writes `update` (`[1, h, L, d]`, positions `offset..offset+L`) into the ring.
    fn write(
        buffer: Option<Array>,
        update: &Array,
        offset: i32,
        window: i32,
    ) -> Result<Array, Exception> {
        let len = update.dim(2);
        let end = offset + len;
        let mut buffer = ensure_capacity(buffer, update, end.min(window), Some(window))?;
        // Only the last `window` new tokens survive.
        let kept = len.min(window);
        let update = if kept < len {
            update.try_index((.., .., len - kept.., ..))?
        } else {
            update.clone()
        };
        let start = (end - kept) % window;
        let first = kept.min(window - start);
        if first == kept {
            write_slots(&mut buffer, start, &update)?;
        } else {
            write_slots(
                &mut buffer,
                start,
                &update.try_index((.., .., ..first, ..))?,
            )?;
            write_slots(&mut buffer, 0, &update.try_index((.., .., first.., ..))?)?;
        }
        Ok(buffer)
    }

    /// Appends `keys`/`values` and returns what attention needs for these queries.
    pub fn update(&mut self, keys: &Array, values: &Array) -> Result<AttentionInputs, Exception> {
        let len = keys.dim(2);
        let (w, offset) = (self.window, self.offset);
        if len == 1 {
            // Decode: the ring after the write holds exactly the window ending here.
            self.keys = Some(Self::write(self.keys.take(), keys, offset, w)?);
            self.values = Some(Self::write(self.values.take(), values, offset, w)?);
            self.offset += 1;
            let n = self.len();
            let k = self
                .keys
                .as_ref()
                .expect("written")
                .try_index((.., .., ..n, ..))?;
            let v = self
                .values
                .as_ref()
                .expect("written")
                .try_index((.., .., ..n, ..))?;
            return Ok(AttentionInputs {
                keys: k,
                values: v,
                mask: AttentionMask::None,
            });
        }
        // Prefill chunk: attend over the previous `window - 1` tokens plus the chunk,
        // read before the ring is overwritten.
        let history = offset.min(w - 1);
        let (k_ctx, v_ctx) = match (&self.keys, &self.values) {
            (Some(kb), Some(vb)) if history > 0 => (
                concatenate(&[Self::recent(kb, offset, w, history)?, keys.clone()], 2)?,
                concatenate(&[Self::recent(vb, offset, w, history)?, values.clone()], 2)?,
            ),
            _ => (keys.clone(), values.clone()),
        };
        let mask = if history + len <= w {
            AttentionMask::Causal
        } else {
            AttentionMask::Array(sliding_window_mask(offset, history, len, w)?)
        };
        self.keys = Some(Self::write(self.keys.take(), keys, offset, w)?);
        self.values = Some(Self::write(self.values.take(), values, offset, w)?);
        self.offset += len;
        Ok(AttentionInputs {
            keys: k_ctx,
            values: v_ctx,
            mask,
        })
    }
}

/// Boolean mask `[len, history + len]`: query at `offset + i` sees key position `p`
/// iff `p <= offset + i` and `p > offset + i - window`.
fn sliding_window_mask(
    offset: i32,
    history: i32,
    len: i32,
    window: i32,
) -> Result<Array, Exception> {
    let q: Vec<i32> = (offset..offset + len).collect();
    let k: Vec<i32> = (offset - history..offset + len).collect();
    let q = Array::from_slice(&q, &[len, 1]);
    let k = Array::from_slice(&k, &[1, history + len]);
    let causal = k.le(&q)?;
    let in_window = k.gt(q.subtract(Array::from_int(window))?)?;
    causal.logical_and(&in_window)
}

impl LayerCache {
    /// Tokens seen by this layer.
    pub fn offset(&self) -> i32 {
        match self {
            LayerCache::Full(c) => c.offset,
            LayerCache::Rotating(c) => c.offset,
        }
    }

    pub fn update(&mut self, keys: &Array, values: &Array) -> Result<AttentionInputs, Exception> {
        match self {
            LayerCache::Full(c) => c.update(keys, values),
            LayerCache::Rotating(c) => c.update(keys, values),
        }
    }

    /// Bytes of the buffers (allocated capacity).
    pub fn nbytes(&self) -> usize {
        let (k, v) = match self {
            LayerCache::Full(c) => (&c.keys, &c.values),
            LayerCache::Rotating(c) => (&c.keys, &c.values),
        };
        k.as_ref().map_or(0, Array::nbytes) + v.as_ref().map_or(0, Array::nbytes)
    }

    fn arrays(&self) -> impl Iterator<Item = &Array> {
        let (k, v) = match self {
            LayerCache::Full(c) => (&c.keys, &c.values),
            LayerCache::Rotating(c) => (&c.keys, &c.values),
        };
        k.iter().chain(v.iter())
    }
}

/// The KV cache of a whole model: one [`LayerCache`] per layer, all at the same offset,
/// and the logits the model gave after the last cached token.
#[derive(Clone, Debug)]
pub struct ModelCache {
    pub(crate) layers: Vec<LayerCache>,
    /// Logits `[1, vocab]` for the token after the last cached one, set by every forward
    /// pass that extends the cache through the output head and cleared by one that
    /// skips it, so they always belong to the cache's current last token. They let a
    /// generation continue the cache without a forward pass (llama.cpp keeps them in its
    /// saved sequence state for the same reason).
    pub(crate) next_logits: Option<Array>,
}

impl ModelCache {
    /// An empty cache with the given per-layer kinds.
    pub fn new(layers: Vec<LayerCache>) -> Self {
        Self {
            layers,
            next_logits: None,
        }
    }

    /// The logits `[1, vocab]` after the last cached token, when the last forward pass
    /// computed them.
    pub fn next_logits(&self) -> Option<&Array> {
        self.next_logits.as_ref()
    }

    /// Sets (or clears) the logits after the last cached token; they must come from
    /// the forward pass that produced the cache's last token.
    pub(crate) fn set_next_logits(&mut self, logits: Option<Array>) {
        self.next_logits = logits;
    }

    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.offset() as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An independent copy: writes to either side never affect the other.
    pub fn fork(&self) -> ModelCache {
        self.clone()
    }

    /// Bytes held by the cache buffers (keys, values and next-token logits).
    pub fn nbytes(&self) -> usize {
        self.layers.iter().map(LayerCache::nbytes).sum::<usize>()
            + self.next_logits.as_ref().map_or(0, Array::nbytes)
    }

    /// Forces evaluation of every buffer (so the cache holds data, not a graph).
    pub fn eval(&self) -> Result<(), Exception> {
        mlx_rs::transforms::eval(
            self.layers
                .iter()
                .flat_map(LayerCache::arrays)
                .chain(self.next_logits.as_ref()),
        )
    }

    pub fn layers(&self) -> &[LayerCache] {
        &self.layers
    }

    /// Dtype of stored keys (None when empty).
    pub fn dtype(&self) -> Option<Dtype> {
        self.layers
            .iter()
            .flat_map(LayerCache::arrays)
            .next()
            .map(Array::dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(start: i32, n: i32) -> Array {
        // [1, 1, n, 1] holding the absolute positions: easy to read back.
        let v: Vec<f32> = (start..start + n).map(|p| p as f32).collect();
        Array::from_slice(&v, &[1, 1, n, 1])
    }

    fn positions(a: &Array) -> Vec<i32> {
        a.as_dtype(Dtype::Float32)
            .unwrap()
            .flatten(None, None)
            .unwrap()
            .as_slice::<f32>()
            .iter()
            .map(|&x| x as i32)
            .collect()
    }

    #[test]
    fn ring_keeps_last_window_tokens_in_slots() {
        let mut c = RotatingCache::new(4);
        c.update(&tokens(0, 3), &tokens(0, 3)).unwrap();
        c.update(&tokens(3, 1), &tokens(3, 1)).unwrap();
        let out = c.update(&tokens(4, 1), &tokens(4, 1)).unwrap();
        // Slot p % 4: position 4 overwrote position 0.
        assert_eq!(positions(&out.keys), vec![4, 1, 2, 3]);
        // A chunk that wraps: history (last 3) + the chunk, in temporal order.
        let out = c.update(&tokens(5, 6), &tokens(5, 6)).unwrap();
        assert_eq!(positions(&out.keys), vec![2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(positions(c.keys.as_ref().unwrap()), vec![8, 9, 10, 7]);
        assert_eq!(c.offset, 11);
    }

    #[test]
    fn sliding_mask_limits_each_query_to_its_window() {
        let m = sliding_window_mask(5, 2, 3, 3).unwrap();
        let m: Vec<bool> = m.flatten(None, None).unwrap().as_slice::<bool>().to_vec();
        // keys at positions 3..8, queries at 5, 6, 7, window 3.
        let expected = [
            true, true, true, false, false, //
            false, true, true, true, false, //
            false, false, true, true, true,
        ];
        assert_eq!(m, expected);
    }

    #[test]
    fn fork_is_isolated() {
        let mut parent = FullCache::new();
        parent.update(&tokens(0, 2), &tokens(0, 2)).unwrap();
        let mut child = parent.clone();
        child.update(&tokens(2, 1), &tokens(2, 1)).unwrap();
        assert_eq!(parent.offset, 2);
        assert_eq!(positions(&parent.valid().unwrap().0), vec![0, 1]);
        assert_eq!(positions(&child.valid().unwrap().0), vec![0, 1, 2]);
    }
}
