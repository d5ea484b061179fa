//! Model-side work: a [`Job`] is a queue of phases (prefill of token segments, a
//! generation) that the model actor advances one scheduler step at a time. Plain
//! state machines over an [`Engine`] and a [`ModelCache`]; no actor code here.

use std::collections::VecDeque;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::cluster_id::ClusterId;
use crate::scheduler::StepCost;
use crate::store::Segment;
use semkv_engine::cache::ModelCache;
use semkv_engine::generate::score::{score_continuation, TokenScore};
use semkv_engine::generate::{GenerateOptions, Generation, GenerationOutput, Step};
use semkv_engine::{Engine, EngineError};

use super::{GenEvent, LoadReport};

/// What a cluster asks the model to do.
#[derive(Debug, Clone)]
pub enum Op {
    /// Prefill `tokens` into the cluster's cache.
    Prefill { tokens: Vec<u32> },
    /// Generate after the cluster's cache.
    Generate(GenerateSpec),
    /// Score `continuation` after the cluster's cache and `prompt`, on a copy.
    Score {
        prompt: Vec<u32>,
        continuation: Vec<u32>,
    },
}

/// A generation request, in tokens.
#[derive(Debug, Clone)]
pub struct GenerateSpec {
    pub prompt: Vec<u32>,
    pub options: GenerateOptions,
    /// Extend the cluster's cache with prompt + output (else work on a copy).
    pub commit: bool,
    /// After a committed generation, close the model's chat turn (what its template
    /// writes after an answer, e.g. `<end_of_turn>\n`) so the next turn starts cleanly.
    pub close_chat_turn: bool,
}

enum Phase {
    Prefill {
        tokens: Vec<u32>,
        chunk: usize,
        done: usize,
        /// Rebuilding the cache from stored segments (not a new segment).
        replay: bool,
    },
    Generate {
        spec: GenerateSpec,
        generation: Option<Box<Generation>>,
        fork: Option<ModelCache>,
        streamed: String,
        streamed_tokens: usize,
    },
    /// Scoring on a private copy of the cache: the prompt's chunks, then the
    /// continuation's, each scored against the logits before it.
    Score {
        prompt: Vec<u32>,
        continuation: Vec<u32>,
        fork: Option<ModelCache>,
        /// Tokens of prompt + continuation fed so far.
        done: usize,
    },
}

/// Whether a job has more steps to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Continue,
    Done,
}

/// One request's work on the model.
pub struct Job {
    pub cluster: ClusterId,
    phases: VecDeque<Phase>,
    events: Option<UnboundedSender<GenEvent>>,
    /// Cache length when the request's own phases start (after any rebuild).
    pub from_tokens: usize,
    /// Token segments added to the cluster's cache, in order.
    pub segments: Vec<Segment>,
    pub output: Option<GenerationOutput>,
    /// The scores of a scoring job, in continuation order.
    pub scores: Vec<TokenScore>,
    pub submitted: Instant,
    pub first_step: Option<Instant>,
    pub load: LoadReport,
    /// Write a full snapshot instead of a delta when done.
    pub snapshot: bool,
    prefill_chunk: usize,
}

impl Job {
    /// A job running `op` on `cluster`'s cache of `from_tokens` tokens.
    pub fn new(
        cluster: &ClusterId,
        op: Op,
        from_tokens: usize,
        prefill_chunk: usize,
        events: Option<UnboundedSender<GenEvent>>,
    ) -> Self {
        let prefill_chunk = prefill_chunk.max(1);
        let phase = match op {
            Op::Prefill { tokens } => Phase::Prefill {
                tokens,
                chunk: prefill_chunk,
                done: 0,
                replay: false,
            },
            Op::Generate(spec) => Phase::Generate {
                spec,
                generation: None,
                fork: None,
                streamed: String::new(),
                streamed_tokens: 0,
            },
            Op::Score {
                prompt,
                continuation,
            } => Phase::Score {
                prompt,
                continuation,
                fork: None,
                done: 0,
            },
        };
        Self {
            cluster: cluster.clone(),
            phases: VecDeque::from([phase]),
            events,
            from_tokens,
            segments: Vec::new(),
            output: None,
            scores: Vec::new(),
            submitted: Instant::now(),
            first_step: None,
            load: LoadReport::default(),
            snapshot: false,
            prefill_chunk,
        }
    }

    /// Puts a replay of stored `segments` before the request's own work (rebuilding
    /// a cache whose stored blobs could not be used).
    pub fn replay_first(&mut self, segments: &[Segment]) {
        for s in segments.iter().rev() {
            self.phases.push_front(Phase::Prefill {
                tokens: s.tokens.clone(),
                chunk: s.chunk.max(1) as usize,
                done: 0,
                replay: true,
            });
        }
    }

    /// Whether the job works on the cluster's cache in place (vs. a private copy).
    pub fn in_place(&self) -> bool {
        self.phases.iter().any(|p| match p {
            Phase::Prefill { .. } => true,
            Phase::Generate { spec, .. } => spec.commit,
            Phase::Score { .. } => false,
        })
    }

    /// Whether the client of a generation went away.
    pub fn abandoned(&self) -> bool {
        self.events.as_ref().is_some_and(|e| e.is_closed())
    }

    /// The cost of the next step.
    pub fn next_cost(&self) -> StepCost {
        match self.phases.front() {
            Some(Phase::Prefill {
                tokens,
                chunk,
                done,
                ..
            }) => StepCost::prefill((tokens.len() - done).min(*chunk) as u32),
            Some(Phase::Score {
                prompt,
                continuation,
                done,
                ..
            }) => {
                // Prompt and continuation are chunked separately.
                let left = if *done < prompt.len() {
                    prompt.len() - done
                } else {
                    prompt.len() + continuation.len() - done
                };
                StepCost::prefill(left.min(self.prefill_chunk).max(1) as u32)
            }
            Some(Phase::Generate {
                spec, generation, ..
            }) => {
                let remaining = generation
                    .as_ref()
                    .map_or(spec.prompt.len(), |g| g.remaining_prompt());
                if remaining > 0 {
                    StepCost::prefill(remaining.min(self.prefill_chunk) as u32)
                } else {
                    StepCost::decode()
                }
            }
            None => StepCost::decode(),
        }
    }

    fn send(&self, event: GenEvent) {
        if let Some(e) = &self.events {
            let _ = e.send(event);
        }
    }

    /// Advances the job by one step on `cache` (the cluster's cache).
    pub fn step(
        &mut self,
        engine: &Engine,
        cache: &mut ModelCache,
    ) -> Result<Progress, EngineError> {
        self.first_step.get_or_insert_with(Instant::now);
        let abandoned = self.abandoned();
        let Some(phase) = self.phases.front_mut() else {
            return Ok(Progress::Done);
        };
        match phase {
            Phase::Prefill {
                tokens,
                chunk,
                done,
                replay,
            } => {
                let end = (*done + *chunk).min(tokens.len());
                if end == tokens.len() {
                    engine.append(cache, &tokens[*done..end], *chunk)?;
                } else {
                    // More chunks follow: no output head until the last one.
                    engine.append_partial(cache, &tokens[*done..end], *chunk)?;
                }
                *done = end;
                if *done == tokens.len() {
                    if !*replay && !tokens.is_empty() {
                        self.segments.push(Segment {
                            tokens: std::mem::take(tokens),
                            chunk: *chunk as u32,
                        });
                    }
                    self.phases.pop_front();
                }
            }
            Phase::Generate {
                spec,
                generation,
                fork,
                ..
            } => {
                if generation.is_none() {
                    if !spec.commit {
                        *fork = Some(cache.fork());
                    }
                    let base_len = fork.as_ref().map_or(cache.len(), ModelCache::len);
                    let g = Generation::new(spec.prompt.clone(), spec.options.clone(), base_len)?
                        .with_prefill_chunk(self.prefill_chunk);
                    *generation = Some(Box::new(g));
                }
                let g = generation.as_mut().expect("created above");
                if abandoned {
                    g.cancel();
                }
                let target = fork.as_mut().unwrap_or(cache);
                let step = engine.step(g, target)?;
                return self.after_generation_step(engine, cache, step);
            }
            Phase::Score {
                prompt,
                continuation,
                fork,
                done,
            } => {
                if abandoned {
                    self.phases.pop_front();
                    return Ok(self.progress());
                }
                let copy = fork.get_or_insert_with(|| cache.fork());
                let chunk = self.prefill_chunk;
                if *done < prompt.len() {
                    let end = (*done + chunk).min(prompt.len());
                    // The last prompt chunk keeps its logits: they score the first
                    // continuation token.
                    engine.append(copy, &prompt[*done..end], chunk)?;
                    *done = end;
                } else {
                    let from = *done - prompt.len();
                    let end = (from + chunk).min(continuation.len());
                    let scores =
                        score_continuation(engine.model(), copy, &continuation[from..end])?;
                    self.scores.extend(scores);
                    *done = prompt.len() + end;
                    if end == continuation.len() {
                        self.phases.pop_front();
                    }
                }
            }
        }
        Ok(self.progress())
    }

    /// The generation, while the job is generating.
    pub fn generation_mut(&mut self) -> Option<&mut Generation> {
        match self.phases.front_mut() {
            Some(Phase::Generate {
                generation: Some(g),
                ..
            }) => Some(&mut **g),
            _ => None,
        }
    }

    /// The cache the job's generation decodes on, while it is generating: its private
    /// fork, or `cluster_cache` for a committed generation.
    pub fn decode_target<'a>(
        &'a mut self,
        cluster_cache: &'a mut ModelCache,
    ) -> Option<&'a mut ModelCache> {
        match self.phases.front_mut() {
            Some(Phase::Generate { fork, .. }) => Some(fork.as_mut().unwrap_or(cluster_cache)),
            _ => None,
        }
    }

    /// Whether the job's next step is a decode step that can run in a batch with
    /// other jobs' (see [`Self::decoded`]).
    pub fn can_batch_decode(&self) -> bool {
        !self.abandoned()
            && matches!(
                self.phases.front(),
                Some(Phase::Generate { generation: Some(g), .. }) if g.is_decoding()
            )
    }

    /// Takes in the step a batched decode produced for this job's generation.
    pub fn decoded(
        &mut self,
        engine: &Engine,
        cache: &mut ModelCache,
        step: Step,
    ) -> Result<Progress, EngineError> {
        self.first_step.get_or_insert_with(Instant::now);
        self.after_generation_step(engine, cache, step)
    }

    /// Streams a generated token, and when the generation is over records what it
    /// added to the cache and queues the chat-turn close.
    fn after_generation_step(
        &mut self,
        engine: &Engine,
        cache: &mut ModelCache,
        mut step: Step,
    ) -> Result<Progress, EngineError> {
        let Some(Phase::Generate {
            spec,
            generation: Some(g),
            fork,
            streamed,
            streamed_tokens,
        }) = self.phases.front_mut()
        else {
            return Err(EngineError::Internal(
                "a generation step arrived for a job that is not generating".into(),
            ));
        };
        if let Step::Token(ev) = &step {
            streamed.push_str(&ev.text);
            *streamed_tokens += 1;
            if let Some(e) = &self.events {
                let _ = e.send(GenEvent::Token {
                    id: ev.id,
                    text: ev.text.clone(),
                });
            }
            if g.generated().len() >= spec.options.max_tokens {
                step = engine.step(g, fork.as_mut().unwrap_or(cache))?;
            }
        }
        let Step::Finished(out) = step else {
            return Ok(Progress::Continue);
        };
        if spec.commit {
            let fed = spec.prompt.len() - g.remaining_prompt();
            if fed > 0 {
                self.segments.push(Segment {
                    tokens: spec.prompt[..fed].to_vec(),
                    chunk: self.prefill_chunk as u32,
                });
            }
            if !out.tokens.is_empty() {
                self.segments.push(Segment {
                    tokens: out.tokens.clone(),
                    chunk: 1,
                });
            }
        }
        // The last token's text when the engine ended on it without a separate token
        // event (end of sequence, stop string).
        let tail = (out.tokens.len() > *streamed_tokens)
            .then(|| out.text.strip_prefix(streamed.as_str()).map(str::to_owned))
            .flatten();
        let close = spec.commit && spec.close_chat_turn;
        self.phases.pop_front();
        if let (Some(text), Some(&id)) = (tail, out.tokens.last()) {
            self.send(GenEvent::Token { id, text });
        }
        if close {
            let last = out
                .tokens
                .last()
                .and_then(|&id| engine.tokenizer().inner().id_to_token(id));
            let close = match engine.chat() {
                Some(chat) => chat.close_answer(last.as_deref())?,
                None => String::new(),
            };
            let tokens = engine.encode(&close)?;
            if !tokens.is_empty() {
                self.phases.push_back(Phase::Prefill {
                    tokens,
                    chunk: self.prefill_chunk,
                    done: 0,
                    replay: false,
                });
            }
        }
        self.output = Some(out);
        Ok(self.progress())
    }

    fn progress(&self) -> Progress {
        if self.phases.is_empty() {
            Progress::Done
        } else {
            Progress::Continue
        }
    }

    /// Tokens this job added to the cluster's cache so far.
    pub fn added_tokens(&self) -> usize {
        self.segments.iter().map(|s| s.tokens.len()).sum()
    }
}
