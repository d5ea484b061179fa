//! The KV caches of several sequences stacked into one batch, for batched decode.
//!
//! Row `i` of every buffer is sequence `i`'s own single-sequence layout, unchanged:
//! a global layer keeps token `p` at column `p`, a sliding-window layer keeps it in
//! ring slot `p % window` (see [`crate::cache`]). Rows are zero-padded at the end to
//! a common capacity. A decode step then needs a handful of operations per layer
//! whatever the batch size: one scatter writes every row's new key (each at its own
//! column), and one attention call reads all rows, with a mask hiding each row's
//! columns past its own length. Because each row keeps its own key order and the
//! masked columns only add exact zeros, a row's attention matches its single-sequence
//! attention.
//!
//! [`BatchCache::join`] stacks [`ModelCache`]s (one copy of each); [`BatchCache::split`]
//! gives them back, each with its own capacity (views of the batch buffers until
//! written).

use mlx_rs::error::Exception;
use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::ops::{concatenate, zeros_dtype};
use mlx_rs::Array;

use crate::cache::{FullCache, LayerCache, ModelCache, RotatingCache};

/// Capacity of the stacked global buffers grows in steps of this many tokens.
const GROW_STEP: i32 = 256;

/// One layer of the batch: keys and values `[B, kv_heads, capacity, head_dim]`.
struct BatchLayer {
    keys: Array,
    values: Array,
    /// `Some(window)` for a sliding-window (ring) layer.
    window: Option<i32>,
}

/// What one decode step writes and reads, shared by all layers of a kind.
pub struct StepPlan {
    /// Each row's position, `[B]` int32 (RoPE offsets).
    pub offsets: Array,
    full: LayerPlan,
    ring: Option<LayerPlan>,
}

struct LayerPlan {
    /// Where each row's new token goes, `[B, 1, 1, 1]` int32.
    write_at: Array,
    /// Columns attention reads (a prefix of the buffer).
    read_len: i32,
    /// `[B, 1, 1, read_len]` bool; `None` when every row sees every column read.
    mask: Option<Array>,
}

/// The stacked caches of a batch of sequences (see the module documentation).
pub struct BatchCache {
    layers: Vec<BatchLayer>,
    /// Tokens in each row's sequence.
    lens: Vec<i32>,
    /// Each row's logits after its last token (see [`ModelCache::next_logits`]).
    next_logits: Vec<Option<Array>>,
}

fn layer_arrays(layer: &LayerCache) -> (Option<&Array>, Option<&Array>, Option<i32>) {
    match layer {
        LayerCache::Full(c) => (c.keys.as_ref(), c.values.as_ref(), None),
        LayerCache::Rotating(c) => (c.keys.as_ref(), c.values.as_ref(), Some(c.window)),
    }
}

/// Stacks `rows` (`[1, h, cap_i, d]` each) into `[B, h, cap, d]`, zero-padding each
/// row at the end to `cap`.
fn stack_rows(rows: &[&Array], cap: i32) -> Result<Array, Exception> {
    let padded = rows
        .iter()
        .map(|r| {
            let have = r.dim(2);
            if have == cap {
                Ok((*r).clone())
            } else {
                let shape = [1, r.dim(1), cap - have, r.dim(3)];
                concatenate(&[(*r).clone(), zeros_dtype(&shape, r.dtype())?], 2)
            }
        })
        .collect::<Result<Vec<_>, Exception>>()?;
    concatenate(&padded, 0)
}

/// `buffer` extended with zero columns to `cap`.
fn grow(buffer: &Array, cap: i32) -> Result<Array, Exception> {
    let have = buffer.dim(2);
    if have >= cap {
        return Ok(buffer.clone());
    }
    let shape = [buffer.dim(0), buffer.dim(1), cap - have, buffer.dim(3)];
    concatenate(&[buffer.clone(), zeros_dtype(&shape, buffer.dtype())?], 2)
}

impl BatchCache {
    /// Stacks the caches of `caches.len()` sequences (each with at least one token,
    /// all of one model).
    pub fn join(caches: &[&ModelCache]) -> Result<Self, Exception> {
        let first = caches
            .first()
            .ok_or_else(|| Exception::custom("a batch needs at least one cache"))?;
        let lens: Vec<i32> = caches.iter().map(|c| c.len() as i32).collect();
        if lens.contains(&0) {
            return Err(Exception::custom("cannot batch an empty cache"));
        }
        let mut layers = Vec::with_capacity(first.layers.len());
        for l in 0..first.layers.len() {
            let mut keys = Vec::with_capacity(caches.len());
            let mut values = Vec::with_capacity(caches.len());
            let mut window = None;
            for c in caches {
                let (k, v, w) = layer_arrays(&c.layers[l]);
                let (Some(k), Some(v)) = (k, v) else {
                    return Err(Exception::custom("a cache layer holds no buffer"));
                };
                keys.push(k);
                values.push(v);
                window = w;
            }
            let cap = keys.iter().map(|k| k.dim(2)).max().expect("non-empty");
            layers.push(BatchLayer {
                keys: stack_rows(&keys, cap)?,
                values: stack_rows(&values, cap)?,
                window,
            });
        }
        let next_logits = caches.iter().map(|c| c.next_logits().cloned()).collect();
        Ok(Self {
            layers,
            lens,
            next_logits,
        })
    }

    /// Sequences in the batch.
    pub fn rows(&self) -> usize {
        self.lens.len()
    }

    /// Tokens in each row's sequence.
    pub fn lens(&self) -> &[i32] {
        &self.lens
    }

    /// Prepares the next decode step (one new token per row): grows the buffers if a
    /// row needs a column past their capacity and builds the write positions and masks.
    pub fn plan_step(&mut self) -> Result<StepPlan, Exception> {
        let b = self.lens.len() as i32;
        let longest = *self.lens.iter().max().expect("non-empty batch");
        let window = self.layers.iter().find_map(|l| l.window);
        for layer in &mut self.layers {
            let needed = match layer.window {
                None => longest + 1,
                Some(w) => (longest + 1).min(w),
            };
            if layer.keys.dim(2) < needed {
                let mut cap = (needed + GROW_STEP - 1) / GROW_STEP * GROW_STEP;
                if let Some(w) = layer.window {
                    cap = cap.min(w);
                }
                layer.keys = grow(&layer.keys, cap)?;
                layer.values = grow(&layer.values, cap)?;
            }
        }
        let plan = |slot: &dyn Fn(i32) -> i32, visible: &dyn Fn(i32) -> i32, read_len: i32| {
            let write_at: Vec<i32> = self.lens.iter().map(|&n| slot(n)).collect();
            let visible: Vec<i32> = self.lens.iter().map(|&n| visible(n)).collect();
            let mask = if visible.iter().all(|&v| v == read_len) {
                None
            } else {
                let bits: Vec<bool> = visible
                    .iter()
                    .flat_map(|&v| (0..read_len).map(move |c| c < v))
                    .collect();
                Some(Array::from_slice(&bits, &[b, 1, 1, read_len]))
            };
            LayerPlan {
                write_at: Array::from_slice(&write_at, &[b, 1, 1, 1]),
                read_len,
                mask,
            }
        };
        let full = plan(&|n| n, &|n| n + 1, longest + 1);
        let ring = window.map(|w| plan(&|n| n % w, &|n| (n + 1).min(w), (longest + 1).min(w)));
        Ok(StepPlan {
            offsets: Array::from_slice(&self.lens, &[b]),
            full,
            ring,
        })
    }

    /// Writes layer `layer`'s new keys/values (`[B, kv_heads, 1, head_dim]`) at each
    /// row's position and returns what attention reads: keys, values and the mask.
    pub fn update(
        &mut self,
        layer: usize,
        plan: &StepPlan,
        keys: &Array,
        values: &Array,
    ) -> Result<(Array, Array, Option<Array>), Exception> {
        let l = &mut self.layers[layer];
        let p = match l.window {
            None => &plan.full,
            Some(_) => plan
                .ring
                .as_ref()
                .ok_or_else(|| Exception::custom("step plan has no ring layers"))?,
        };
        l.keys = l.keys.put_along_axis(&p.write_at, keys, 2)?;
        l.values = l.values.put_along_axis(&p.write_at, values, 2)?;
        let read = |a: &Array| {
            if a.dim(2) == p.read_len {
                Ok(a.clone())
            } else {
                a.try_index((.., .., ..p.read_len, ..))
            }
        };
        Ok((read(&l.keys)?, read(&l.values)?, p.mask.clone()))
    }

    /// Records that every row received one token (after all layers were updated).
    pub fn advance(&mut self) {
        for n in &mut self.lens {
            *n += 1;
        }
    }

    /// Records the logits `[rows, vocab]` of the step that just advanced every row.
    pub fn set_next_logits(&mut self, logits: &Array) -> Result<(), Exception> {
        for (i, row) in self.next_logits.iter_mut().enumerate() {
            let i = i as i32;
            *row = Some(logits.try_index(i..i + 1)?);
        }
        Ok(())
    }

    /// Every array of the batch (to evaluate).
    pub fn arrays(&self) -> impl Iterator<Item = &Array> {
        self.layers.iter().flat_map(|l| [&l.keys, &l.values])
    }

    /// Gives each row back as a single-sequence cache.
    pub fn split(self) -> Result<Vec<ModelCache>, Exception> {
        (0..self.lens.len())
            .map(|i| {
                let row = i as i32;
                let offset = self.lens[i];
                let layers = self
                    .layers
                    .iter()
                    .map(|l| {
                        // The row's own capacity, not the batch's longest row's.
                        let stored = l.window.map_or(offset, |w| offset.min(w));
                        let cap =
                            ((stored + GROW_STEP - 1) / GROW_STEP * GROW_STEP).min(l.keys.dim(2));
                        let take = |a: &Array| a.try_index((row..row + 1, .., ..cap, ..));
                        let (keys, values) = (Some(take(&l.keys)?), Some(take(&l.values)?));
                        Ok(match l.window {
                            None => LayerCache::Full(FullCache {
                                keys,
                                values,
                                offset,
                            }),
                            Some(window) => LayerCache::Rotating(RotatingCache {
                                keys,
                                values,
                                offset,
                                window,
                            }),
                        })
                    })
                    .collect::<Result<Vec<_>, Exception>>()?;
                let mut cache = ModelCache::new(layers);
                cache.set_next_logits(self.next_logits[i].clone());
                Ok(cache)
            })
            .collect()
    }
}
