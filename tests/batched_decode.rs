//! Batched decode across sequences (tiny random Gemma 3 checkpoints, bf16 and 4-bit,
//! sliding window 16): sequences with different cache lengths — some past the window,
//! so their rings have wrapped — decoded together in one forward pass per step must
//! produce exactly the tokens each produces alone (greedy), and the same seeded samples.
//! Logits of a batched step agree with the single-sequence step within 0.02: the
//! batched projections are the same per-row matmuls, but may use a different kernel.

mod common;

use common::{max_diff, prompt, tiny_engine, to_vec};

use mlx_rs::Array;
use semkv_engine::cache::batch_cache::BatchCache;
use semkv_engine::cache::ModelCache;
use semkv_engine::generate::sampling::SamplingParams;
use semkv_engine::generate::{prefill, GenerateOptions, Generation, Step};
use semkv_engine::Engine;

fn options(max_tokens: usize, sampling: SamplingParams) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        stop_at_eos: false,
        sampling,
        ..Default::default()
    }
}

/// Runs every request alone, one after the other; returns the tokens and the caches.
fn solo_with_caches(
    e: &Engine,
    requests: &[(Vec<u32>, GenerateOptions)],
) -> (Vec<Vec<u32>>, Vec<ModelCache>) {
    requests
        .iter()
        .map(|(p, o)| {
            let mut cache = e.new_cache();
            let tokens = e.generate(&mut cache, p, o, |_| true).unwrap().tokens;
            (tokens, cache)
        })
        .unzip()
}

fn solo(e: &Engine, requests: &[(Vec<u32>, GenerateOptions)]) -> Vec<Vec<u32>> {
    solo_with_caches(e, requests).0
}

/// Greedy tokens of a generation without prompt: it continues from the logits the
/// cache kept after its last token.
fn continued(e: &Engine, cache: &mut ModelCache) -> Vec<u32> {
    assert!(cache.next_logits().is_some(), "the cache kept no logits");
    let o = options(8, SamplingParams::greedy());
    e.generate(cache, &[], &o, |_| true).unwrap().tokens
}

/// Runs all requests together: each prefills on its own, then the generations that
/// are decoding advance together in batched steps over one [`BatchCache`], which is
/// split back into the sequences' caches whenever the set of decoding generations
/// changes (as the daemon does). Returns the tokens and the batch size of each step.
fn batched(e: &Engine, requests: &[(Vec<u32>, GenerateOptions)]) -> (Vec<Vec<u32>>, Vec<usize>) {
    let (tokens, sizes, _) = batched_with_caches(e, requests);
    (tokens, sizes)
}

/// [`batched`], also returning each sequence's cache at the end.
fn batched_with_caches(
    e: &Engine,
    requests: &[(Vec<u32>, GenerateOptions)],
) -> (Vec<Vec<u32>>, Vec<usize>, Vec<ModelCache>) {
    let mut gens: Vec<Generation> = requests
        .iter()
        .map(|(p, o)| Generation::new(p.clone(), o.clone(), 0).unwrap())
        .collect();
    let mut caches: Vec<ModelCache> = requests.iter().map(|_| e.new_cache()).collect();
    let mut outputs: Vec<Option<Vec<u32>>> = vec![None; requests.len()];
    let mut batch: Option<(Vec<usize>, BatchCache)> = None;
    let mut batch_sizes = Vec::new();
    while outputs.iter().any(Option::is_none) {
        let decoding: Vec<usize> = (0..gens.len())
            .filter(|&i| outputs[i].is_none() && gens[i].is_decoding())
            .collect();
        if batch.as_ref().is_some_and(|(rows, _)| *rows != decoding) {
            let (rows, cache) = batch.take().unwrap();
            for (i, row) in rows.into_iter().zip(cache.split().unwrap()) {
                caches[i] = row;
            }
        }
        for i in 0..gens.len() {
            if outputs[i].is_none() && !decoding.contains(&i) {
                if let Step::Finished(out) = e.step(&mut gens[i], &mut caches[i]).unwrap() {
                    outputs[i] = Some(out.tokens);
                }
            }
        }
        if decoding.is_empty() {
            continue;
        }
        let (rows, cache) = batch.get_or_insert_with(|| {
            let members: Vec<&ModelCache> = decoding.iter().map(|&i| &caches[i]).collect();
            (decoding.clone(), BatchCache::join(&members).unwrap())
        });
        let mut members: Vec<&mut Generation> = gens
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| rows.contains(i))
            .map(|(_, g)| g)
            .collect();
        batch_sizes.push(members.len());
        let steps = e.decode_batch_cache(&mut members, cache).unwrap();
        for (&i, step) in rows.iter().zip(steps) {
            if let Step::Finished(out) = step {
                outputs[i] = Some(out.tokens);
            }
        }
    }
    if let Some((rows, cache)) = batch.take() {
        for (i, row) in rows.into_iter().zip(cache.split().unwrap()) {
            caches[i] = row;
        }
    }
    (
        outputs.into_iter().map(Option::unwrap).collect(),
        batch_sizes,
        caches,
    )
}

fn check_fixture(fixture: &str) {
    let e = tiny_engine(fixture);
    // Cache lengths 3..70 around the window of 16; different output lengths, so the
    // batch shrinks as sequences finish.
    let requests: Vec<(Vec<u32>, GenerateOptions)> = [(3, 24), (17, 30), (40, 12), (70, 20)]
        .iter()
        .enumerate()
        .map(|(i, &(len, n))| (prompt(len, i as u32), options(n, SamplingParams::greedy())))
        .collect();
    let (alone, mut alone_caches) = solo_with_caches(&e, &requests);
    let (together, sizes, mut together_caches) = batched_with_caches(&e, &requests);
    assert_eq!(together, alone, "{fixture}: batched greedy tokens differ");
    assert!(
        sizes.contains(&4) && sizes.contains(&1),
        "{fixture}: {sizes:?}"
    );
    // The caches a batch gives back keep each row's next-token logits.
    for (i, (b, s)) in together_caches
        .iter_mut()
        .zip(alone_caches.iter_mut())
        .enumerate()
    {
        assert_eq!(
            continued(&e, b),
            continued(&e, s),
            "{fixture}: sequence {i} continues differently after the batch"
        );
    }

    // Seeded sampling (with a repetition penalty) next to greedy sequences.
    let sampled = |seed| SamplingParams {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.95,
        repetition_penalty: 1.1,
        seed,
        ..SamplingParams::greedy()
    };
    let requests = vec![
        (prompt(9, 7), options(16, sampled(1))),
        (prompt(33, 8), options(16, SamplingParams::greedy())),
        (prompt(21, 9), options(16, sampled(2))),
    ];
    assert_eq!(
        batched(&e, &requests).0,
        solo(&e, &requests),
        "{fixture}: batched samples differ"
    );
}

#[test]
fn batched_greedy_and_sampled_match_solo_bf16() {
    check_fixture("tiny-gemma3-bf16");
}

#[test]
fn batched_greedy_and_sampled_match_solo_4bit() {
    check_fixture("tiny-gemma3-q4");
}

/// The logits of one batched step equal each sequence's own next-token logits, and
/// every cache grows by exactly one token.
#[test]
fn batched_logits_match_single_sequence_logits() {
    let e = tiny_engine("tiny-gemma3-bf16");
    let prompts = [prompt(5, 1), prompt(16, 2), prompt(51, 3)];
    let next = [11u32, 22, 33];
    let mut caches: Vec<ModelCache> = prompts.iter().map(|_| e.new_cache()).collect();
    for (c, p) in caches.iter_mut().zip(&prompts) {
        prefill(e.model(), c, p, 512).unwrap();
    }
    let mut solo_caches: Vec<ModelCache> = caches.iter().map(ModelCache::fork).collect();
    let tokens = Array::from_slice(&next.map(|t| t as i32), &[3, 1]);
    let mut batch = BatchCache::join(&caches.iter().collect::<Vec<_>>()).unwrap();
    let logits = e.model().forward_decode_batch(&tokens, &mut batch).unwrap();
    assert_eq!(logits.shape(), &[3, e.model().vocab_size() as i32]);
    let logits = to_vec(&logits);
    let vocab = e.model().vocab_size();
    for (i, c) in solo_caches.iter_mut().enumerate() {
        let want = to_vec(&prefill(e.model(), c, &[next[i]], 1).unwrap());
        let got = &logits[i * vocab..(i + 1) * vocab];
        let diff = max_diff(got, &want);
        assert!(diff <= 0.02, "sequence {i}: max logit diff {diff}");
    }
    // Split back, every cache holds one more token, and continuing alone from the
    // split cache gives what continuing from the solo cache gives.
    for (i, (mut row, solo)) in batch
        .split()
        .unwrap()
        .into_iter()
        .zip(&mut solo_caches)
        .enumerate()
    {
        assert_eq!(row.len(), prompts[i].len() + 1);
        let a = to_vec(&prefill(e.model(), &mut row, &[7], 1).unwrap());
        let b = to_vec(&prefill(e.model(), solo, &[7], 1).unwrap());
        let diff = max_diff(&a, &b);
        assert!(
            diff <= 0.02,
            "sequence {i} after split: max logit diff {diff}"
        );
    }
}
