//! Fair sharing of the one model among clusters: deficit round robin (DRR) at token
//! granularity. Pure bookkeeping, no I/O: the model actor asks it which job runs the
//! next step, runs that step, and reports back.
//!
//! Every step a job can take has a cost in tokens: a prefill chunk costs its tokens,
//! a decode step costs [`SchedulerConfig::decode_cost`] (one forward pass for a
//! single token does about as much work as a prefill of several tokens). Clusters
//! with work form a ring. When the scheduler arrives at a cluster it adds
//! [`SchedulerConfig::quantum`] to that cluster's deficit; the cluster's first job then
//! takes steps while its next step costs no more than the deficit, and the scheduler
//! moves on. A cluster that runs out of work leaves the ring and loses its deficit.
//!
//! With the defaults (`decode_cost == quantum`) every decoding cluster gets exactly
//! one step per round, and a cluster prefilling a huge prompt gets one chunk per
//! `chunk / quantum` rounds: it cannot hold back anyone's decode steps, and it still
//! progresses at a bounded, predictable rate.
//!
//! Decode steps batch: when the job picked next is decoding, the first job of every
//! other cluster that is decoding too rides along in the same forward pass (up to
//! [`SchedulerConfig::max_batch`]), each charged its decode cost — a rider's deficit
//! may go below zero, so it leads again only once its debt is paid. Every decoding
//! cluster then gets one token per batched step, and a prefilling cluster still gets
//! its chunk once per `chunk / quantum` rounds.
//!
//! The queue is bounded ([`SchedulerConfig::capacity`] jobs, waiting or running);
//! removing a job ([`Scheduler::remove`]) frees its slot at once. The scheduler keeps
//! a record of recent steps ([`Scheduler::trace`]) and per-cluster decode counts, so
//! fairness can be checked without timing.

use std::collections::{HashMap, VecDeque};

/// Identifies a job (a prefill or a generation) in the scheduler.
pub type JobId = u64;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A chunk of prompt (or replayed) tokens.
    Prefill,
    /// One generated token.
    Decode,
}

/// The next step a job would take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepCost {
    pub kind: StepKind,
    /// Tokens fed to the model (1 for a decode step).
    pub tokens: u32,
}

impl StepCost {
    /// A prefill chunk of `tokens` tokens.
    pub fn prefill(tokens: u32) -> Self {
        Self {
            kind: StepKind::Prefill,
            tokens,
        }
    }

    /// One decode step.
    pub fn decode() -> Self {
        Self {
            kind: StepKind::Decode,
            tokens: 1,
        }
    }
}

/// One step the scheduler handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// Steps handed out before this one.
    pub seq: u64,
    pub cluster: String,
    pub kind: StepKind,
    pub tokens: u32,
    /// Forward passes before this step's (steps of one batch share it).
    pub pass: u64,
}

/// What a prefill step is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepCharge {
    /// Its token count, whatever it took.
    Tokens,
    /// The time it took, in decode steps (the model actor times every step and
    /// settles the difference, [`Scheduler::settle`]): a chunk over a long context
    /// costs what it costs the clusters that wait for it.
    #[default]
    Time,
}

/// Tuning of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Jobs admitted at once (waiting or running).
    pub capacity: usize,
    /// Credit (tokens) a cluster receives per visit.
    pub quantum: u32,
    /// What a decode step costs, in tokens.
    pub decode_cost: u32,
    /// Most jobs in one batched decode step (1: no batching).
    pub max_batch: usize,
    /// Steps kept in the trace.
    pub trace_len: usize,
    /// What prefill steps are charged.
    pub charge: StepCharge,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            capacity: 64,
            quantum: 32,
            decode_cost: 32,
            max_batch: 16,
            trace_len: 100_000,
            charge: StepCharge::default(),
        }
    }
}

/// The queue is at capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the model queue is full ({capacity} requests waiting or running)")]
pub struct QueueFull {
    pub capacity: usize,
}

#[derive(Debug, Default)]
struct ClusterQueue {
    jobs: VecDeque<JobId>,
    /// Credit in tokens; negative after riding in batches beyond it.
    deficit: i64,
}

/// Deficit round robin over clusters. See the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    queues: HashMap<String, ClusterQueue>,
    /// Clusters with work, in service order; the front is being visited.
    ring: VecDeque<String>,
    /// Whether the front cluster already received its quantum for this visit.
    visited: bool,
    job_cluster: HashMap<JobId, String>,
    trace: VecDeque<StepRecord>,
    steps: u64,
    passes: u64,
    decode_steps: HashMap<String, u64>,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(config: SchedulerConfig) -> Self {
        Self {
            config,
            queues: HashMap::new(),
            ring: VecDeque::new(),
            visited: false,
            job_cluster: HashMap::new(),
            trace: VecDeque::new(),
            steps: 0,
            passes: 0,
            decode_steps: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Jobs admitted (waiting or running).
    pub fn len(&self) -> usize {
        self.job_cluster.len()
    }

    /// Whether no job is admitted.
    pub fn is_empty(&self) -> bool {
        self.job_cluster.is_empty()
    }

    /// Whether one more job can be admitted: the one place the queue bound is checked.
    pub fn has_room(&self) -> Result<(), QueueFull> {
        if self.job_cluster.len() >= self.config.capacity {
            return Err(QueueFull {
                capacity: self.config.capacity,
            });
        }
        Ok(())
    }

    /// Admits `job` for `cluster` (behind that cluster's earlier jobs).
    pub fn submit(&mut self, cluster: &str, job: JobId) -> Result<(), QueueFull> {
        self.has_room()?;
        self.job_cluster.insert(job, cluster.to_owned());
        let queue = self.queues.entry(cluster.to_owned()).or_default();
        if queue.jobs.is_empty() {
            self.ring.push_back(cluster.to_owned());
        }
        queue.jobs.push_back(job);
        Ok(())
    }

    /// Removes a finished or cancelled job; returns whether it was admitted.
    pub fn remove(&mut self, job: JobId) -> bool {
        let Some(cluster) = self.job_cluster.remove(&job) else {
            return false;
        };
        let Some(queue) = self.queues.get_mut(&cluster) else {
            return true;
        };
        queue.jobs.retain(|&j| j != job);
        if queue.jobs.is_empty() {
            self.queues.remove(&cluster);
            if let Some(pos) = self.ring.iter().position(|c| *c == cluster) {
                self.ring.remove(pos);
                if pos == 0 {
                    self.visited = false;
                }
            }
        }
        true
    }

    /// Picks the job that takes the next step and charges its cluster; `cost` tells
    /// what the next step of a job would be. The step is recorded in the trace.
    pub fn next(&mut self, cost: impl Fn(JobId) -> StepCost) -> Option<JobId> {
        // Each full turn of the ring adds a quantum everywhere, so some cluster can
        // pay within max_cost / quantum + 1 turns.
        let quantum = i64::from(self.config.quantum.max(1));
        loop {
            let cluster = self.ring.front()?.clone();
            let queue = self
                .queues
                .get_mut(&cluster)
                .expect("ring and queues agree");
            let job = *queue.jobs.front().expect("clusters in the ring have jobs");
            if !self.visited {
                queue.deficit += quantum;
                self.visited = true;
            }
            let step = cost(job);
            let price = Self::price(&self.config, step);
            if price <= queue.deficit {
                queue.deficit -= price;
                self.passes += 1;
                self.record(&cluster, step);
                return Some(job);
            }
            self.ring.rotate_left(1);
            self.visited = false;
        }
    }

    /// Charges `job` for its last step `price` instead of what [`Self::next`] charged
    /// for `step`, when another cluster waits (a cluster alone owes nobody, and must
    /// not arrive in debt when others come). The caller measured `price`, in the
    /// scheduler's units; see [`StepCharge::Time`].
    pub fn settle(&mut self, job: JobId, step: StepCost, price: i64) {
        if self.ring.len() < 2 {
            return;
        }
        let Some(queue) = self
            .job_cluster
            .get(&job)
            .and_then(|cluster| self.queues.get_mut(cluster))
        else {
            return;
        };
        queue.deficit -= price - Self::price(&self.config, step);
    }

    fn price(config: &SchedulerConfig, step: StepCost) -> i64 {
        match step.kind {
            StepKind::Prefill => i64::from(step.tokens.max(1)),
            StepKind::Decode => i64::from(config.decode_cost.max(1)),
        }
    }

    /// Like [`Self::next`], and when the picked job's step is a decode step that
    /// `batchable` accepts, adds the first job of every other cluster whose next step
    /// is such a decode step too (ring order, up to [`SchedulerConfig::max_batch`]),
    /// charging each. The picked job comes first.
    pub fn next_batch(
        &mut self,
        cost: impl Fn(JobId) -> StepCost,
        batchable: impl Fn(JobId) -> bool,
    ) -> Vec<JobId> {
        let Some(leader) = self.next(&cost) else {
            return Vec::new();
        };
        let mut batch = vec![leader];
        if cost(leader).kind != StepKind::Decode || !batchable(leader) {
            return batch;
        }
        let leader_cluster = self.job_cluster[&leader].clone();
        let others: Vec<String> = self
            .ring
            .iter()
            .filter(|c| **c != leader_cluster)
            .cloned()
            .collect();
        let price = Self::price(&self.config, StepCost::decode());
        for cluster in others {
            if batch.len() >= self.config.max_batch {
                break;
            }
            let queue = self
                .queues
                .get_mut(&cluster)
                .expect("ring and queues agree");
            let job = *queue.jobs.front().expect("clusters in the ring have jobs");
            if cost(job).kind == StepKind::Decode && batchable(job) {
                queue.deficit -= price;
                self.record(&cluster, StepCost::decode());
                batch.push(job);
            }
        }
        batch
    }

    fn record(&mut self, cluster: &str, step: StepCost) {
        if step.kind == StepKind::Decode {
            *self.decode_steps.entry(cluster.to_owned()).or_default() += 1;
        }
        if self.config.trace_len > 0 {
            if self.trace.len() == self.config.trace_len {
                self.trace.pop_front();
            }
            self.trace.push_back(StepRecord {
                seq: self.steps,
                pass: self.passes - 1,
                cluster: cluster.to_owned(),
                kind: step.kind,
                tokens: step.tokens,
            });
        }
        self.steps += 1;
    }

    /// The most recent steps, oldest first.
    pub fn trace(&self) -> impl DoubleEndedIterator<Item = &StepRecord> + ExactSizeIterator {
        self.trace.iter()
    }

    /// Decode steps ever handed out, per cluster.
    pub fn decode_steps(&self) -> &HashMap<String, u64> {
        &self.decode_steps
    }

    /// Drops what is kept per cluster for `cluster` (deleted, or reset) once it has no
    /// job left, so state does not grow with every cluster ever seen.
    pub fn forget_cluster(&mut self, cluster: &str) {
        if !self.job_cluster.values().any(|c| c == cluster) {
            self.decode_steps.remove(cluster);
            self.queues.remove(cluster);
            self.ring.retain(|c| c != cluster);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated job: `prefill` tokens to prefill in chunks of `chunk`, then `decode`
    /// tokens to generate.
    #[derive(Clone)]
    struct Sim {
        prefill: u32,
        chunk: u32,
        decode: u32,
    }

    impl Sim {
        fn cost(&self) -> StepCost {
            if self.prefill > 0 {
                StepCost::prefill(self.prefill.min(self.chunk))
            } else {
                StepCost::decode()
            }
        }
        /// Takes a step; true when done.
        fn step(&mut self) -> bool {
            if self.prefill > 0 {
                self.prefill -= self.prefill.min(self.chunk);
            } else {
                self.decode -= 1;
            }
            self.prefill == 0 && self.decode == 0
        }
    }

    fn run(s: &mut Scheduler, jobs: &mut HashMap<JobId, Sim>, max_steps: usize) {
        for _ in 0..max_steps {
            let Some(j) = s.next(|j| jobs[&j].cost()) else {
                return;
            };
            if jobs.get_mut(&j).unwrap().step() {
                jobs.remove(&j);
                s.remove(j);
            }
        }
    }

    fn decoders(n: u64, tokens: u32) -> HashMap<JobId, Sim> {
        (0..n)
            .map(|j| {
                (
                    j,
                    Sim {
                        prefill: 8,
                        chunk: 64,
                        decode: tokens,
                    },
                )
            })
            .collect()
    }

    /// Every window of `w` decode steps (from the given clusters, while all of them
    /// are decoding) serves each within 10% of the others.
    fn assert_fair_windows(trace: &[StepRecord], clusters: &[&str], w: usize) {
        let decode: Vec<&StepRecord> = trace
            .iter()
            .filter(|r| r.kind == StepKind::Decode && clusters.contains(&r.cluster.as_str()))
            .collect();
        let first = |c: &str| decode.iter().position(|r| r.cluster == c).unwrap();
        let last = |c: &str| decode.iter().rposition(|r| r.cluster == c).unwrap();
        let start = clusters.iter().map(|c| first(c)).max().unwrap();
        let end = clusters.iter().map(|c| last(c)).min().unwrap();
        assert!(end > start + w, "overlap too short");
        for window in decode[start..=end].windows(w) {
            let counts: Vec<usize> = clusters
                .iter()
                .map(|c| window.iter().filter(|r| r.cluster == *c).count())
                .collect();
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(
                (max - min) as f64 <= 0.1 * *max as f64,
                "unfair window {counts:?}"
            );
        }
    }

    #[test]
    fn decoding_clusters_alternate_step_by_step() {
        let mut s = Scheduler::new(SchedulerConfig::default());
        let mut jobs = decoders(4, 200);
        for (j, c) in ["a", "b", "c", "d"].iter().enumerate() {
            s.submit(c, j as JobId).unwrap();
        }
        run(&mut s, &mut jobs, 10_000);
        assert!(jobs.is_empty() && s.is_empty());
        let trace: Vec<StepRecord> = s.trace().cloned().collect();
        assert_fair_windows(&trace, &["a", "b", "c", "d"], 40);
        for c in ["a", "b", "c", "d"] {
            assert_eq!(s.decode_steps()[c], 200);
        }
    }

    #[test]
    fn huge_prefill_does_not_hold_back_decoders() {
        let config = SchedulerConfig::default();
        let mut s = Scheduler::new(config.clone());
        let mut jobs = decoders(4, 300);
        for (j, c) in ["a", "b", "c", "d"].iter().enumerate() {
            s.submit(c, j as JobId).unwrap();
        }
        jobs.insert(
            9,
            Sim {
                prefill: 100_000,
                chunk: 128,
                decode: 1,
            },
        );
        s.submit("huge", 9).unwrap();
        run(&mut s, &mut jobs, 3_000);
        let trace: Vec<StepRecord> = s.trace().cloned().collect();
        assert_fair_windows(&trace, &["a", "b", "c", "d"], 40);
        // While everyone is busy, each decoder is served at least once in every
        // `clusters + 1` consecutive steps: the prefill takes at most one slot per round.
        let busy = &trace[8..1000];
        for c in ["a", "b", "c", "d"] {
            let at: Vec<usize> = busy
                .iter()
                .enumerate()
                .filter(|(_, r)| r.cluster == c)
                .map(|(i, _)| i)
                .collect();
            let gap = at.windows(2).map(|w| w[1] - w[0]).max().unwrap();
            assert!(gap <= 5, "{c} waited {gap} steps");
        }
        // The prefill still progresses: one 128-token chunk per 4 rounds.
        let chunks = busy.iter().filter(|r| r.cluster == "huge").count();
        assert!(
            chunks >= busy.len() / 20,
            "prefill starved: {chunks} chunks"
        );
    }

    #[test]
    fn settled_prefill_pays_for_the_time_it_took() {
        // A decoder and a prefill whose 128-token chunks really cost 40 decode steps
        // each (long context): settled, a chunk runs once per ~40 decode steps instead
        // of once per 4.
        let mut s = Scheduler::new(SchedulerConfig::default());
        let mut jobs = decoders(1, 400);
        s.submit("a", 0).unwrap();
        jobs.insert(
            9,
            Sim {
                prefill: 100_000,
                chunk: 128,
                decode: 1,
            },
        );
        s.submit("huge", 9).unwrap();
        let real = 40 * i64::from(s.config().decode_cost);
        for _ in 0..2_000 {
            let Some(j) = s.next(|j| jobs[&j].cost()) else {
                break;
            };
            let step = jobs[&j].cost();
            if step.kind == StepKind::Prefill && step.tokens == 128 {
                s.settle(j, step, real);
            }
            if jobs.get_mut(&j).unwrap().step() {
                jobs.remove(&j);
                s.remove(j);
            }
        }
        let trace: Vec<StepRecord> = s.trace().cloned().collect();
        // While the decoder had work.
        let end = trace.iter().rposition(|r| r.cluster == "a").unwrap();
        let decodes = trace[..=end].iter().filter(|r| r.cluster == "a").count();
        let chunks = trace[..=end].iter().filter(|r| r.cluster == "huge").count();
        assert_eq!(
            decodes, 401,
            "the decoder finished (8-token prompt + 400 steps)"
        );
        assert!(
            (8..=14).contains(&chunks),
            "{chunks} chunks beside 400 decode steps"
        );

        // Alone, a cluster owes nobody: settling changes nothing.
        let mut alone = Scheduler::new(SchedulerConfig::default());
        alone.submit("huge", 1).unwrap();
        for _ in 0..10 {
            assert_eq!(alone.next(|_| StepCost::prefill(128)), Some(1));
            alone.settle(1, StepCost::prefill(128), real);
        }
        alone.submit("a", 2).unwrap();
        let picks: Vec<JobId> = (0..10)
            .map(|_| {
                alone
                    .next(|j| {
                        if j == 1 {
                            StepCost::prefill(128)
                        } else {
                            StepCost::decode()
                        }
                    })
                    .unwrap()
            })
            .collect();
        // One chunk per four decode steps, as if it had never been settled.
        let chunks = picks.iter().filter(|&&j| j == 1).count();
        assert!(chunks >= 2, "the prefill arrived in debt: {picks:?}");
    }

    #[test]
    fn bounded_queue_and_removal_frees_the_slot() {
        let mut s = Scheduler::new(SchedulerConfig {
            capacity: 2,
            ..Default::default()
        });
        s.submit("a", 1).unwrap();
        s.submit("a", 2).unwrap();
        assert_eq!(s.submit("b", 3), Err(QueueFull { capacity: 2 }));
        assert!(s.remove(2));
        s.submit("b", 3).unwrap();
        // The same cluster's jobs run in order; removal of the running one moves on.
        let cost = |_| StepCost::decode();
        assert_eq!(s.next(cost), Some(1));
        assert_eq!(s.next(cost), Some(3));
        s.remove(1);
        assert_eq!(s.next(cost), Some(3));
        s.remove(3);
        assert_eq!(s.next(cost), None);
        assert!(!s.remove(3));
        // A forgotten cluster leaves nothing behind.
        s.submit("c", 4).unwrap();
        assert_eq!(s.next(cost), Some(4));
        s.forget_cluster("c");
        assert!(
            s.decode_steps().contains_key("c"),
            "kept while it has a job"
        );
        s.remove(4);
        s.forget_cluster("c");
        assert!(!s.decode_steps().contains_key("c"));
        assert!(s.is_empty());
    }

    #[test]
    fn cheap_prefill_chunks_share_a_visit() {
        // Chunks of 8 tokens under a quantum of 32: four per visit, then the next cluster.
        let mut s = Scheduler::new(SchedulerConfig::default());
        s.submit("p", 1).unwrap();
        s.submit("q", 2).unwrap();
        let order: Vec<JobId> = (0..8)
            .map(|_| s.next(|_| StepCost::prefill(8)).unwrap())
            .collect();
        assert_eq!(order, vec![1, 1, 1, 1, 2, 2, 2, 2]);
    }

    #[test]
    fn decoding_clusters_ride_in_one_batch_and_prefill_still_progresses() {
        let mut s = Scheduler::new(SchedulerConfig {
            max_batch: 3,
            ..Default::default()
        });
        let mut jobs = decoders(4, 50);
        for j in jobs.values_mut() {
            j.prefill = 0;
        }
        for (j, c) in ["a", "b", "c", "d"].iter().enumerate() {
            s.submit(c, j as JobId).unwrap();
        }
        jobs.insert(
            9,
            Sim {
                prefill: 1024,
                chunk: 128,
                decode: 1,
            },
        );
        s.submit("huge", 9).unwrap();
        let mut batches = Vec::new();
        let (mut prefill_calls, mut last_prefill) = (0, 0);
        while !jobs.is_empty() {
            let batch = s.next_batch(|j| jobs[&j].cost(), |_| true);
            assert!(!batch.is_empty() && batch.len() <= 3, "{batch:?}");
            let clusters: std::collections::HashSet<&String> =
                batch.iter().map(|j| &s.job_cluster[j]).collect();
            assert_eq!(clusters.len(), batch.len(), "one job per cluster");
            if jobs[&batch[0]].cost().kind == StepKind::Prefill {
                assert_eq!(batch.len(), 1, "prefill steps are not batched");
                prefill_calls += 1;
                last_prefill = batches.len();
            }
            for j in &batch {
                if jobs.get_mut(j).unwrap().step() {
                    jobs.remove(j);
                    s.remove(*j);
                }
            }
            batches.push(batch.len());
        }
        // 4 decoders, batches of at most 3: most steps are full batches.
        let full = batches.iter().filter(|&&n| n == 3).count();
        assert!(full * 2 > batches.len(), "{batches:?}");
        // The prefill got its 8 chunks while the decoders ran, not after them.
        assert_eq!(prefill_calls, 8);
        assert!(
            last_prefill < batches.len() * 3 / 4,
            "{last_prefill} of {}",
            batches.len()
        );
        assert!(batches.len() < 4 * 50 / 2, "{} steps", batches.len());
        for c in ["a", "b", "c", "d"] {
            assert_eq!(s.decode_steps()[c], 50);
        }
        let trace: Vec<StepRecord> = s.trace().cloned().collect();
        assert_fair_windows(&trace, &["a", "b", "c", "d"], 40);
    }

    #[test]
    fn batching_off_or_unbatchable_jobs_step_alone() {
        let mut s = Scheduler::new(SchedulerConfig {
            max_batch: 1,
            ..Default::default()
        });
        s.submit("a", 1).unwrap();
        s.submit("b", 2).unwrap();
        assert_eq!(s.next_batch(|_| StepCost::decode(), |_| true), vec![1]);
        let mut s = Scheduler::new(SchedulerConfig::default());
        s.submit("a", 1).unwrap();
        s.submit("b", 2).unwrap();
        s.submit("c", 3).unwrap();
        assert_eq!(s.next_batch(|_| StepCost::decode(), |j| j != 2), vec![1, 3]);
    }
}
