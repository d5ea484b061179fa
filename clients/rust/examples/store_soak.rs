//! A soak and crash test of `semkvd`'s store: client tasks churn clusters while the
//! daemon is `kill -9`ed and restarted on the same data directory; after every restart
//! each acknowledged operation is checked, and at the end the space is measured.
//!
//! ```text
//! cargo run -p semkv-client --example store_soak -- \
//!     --model tests/fixtures/tiny-gemma3-bf16 --minutes 5 --threads 4 \
//!     --kill-every 20s --data-dir /tmp/soak --json out.json
//! ```
//!
//! Flags, all optional: `--model` (default: the tiny test model), `--device` (cpu),
//! `--minutes` (5), `--threads` (4), `--kill-every` (20s; `0` never kills; each kill
//! comes at a random time between ½ and 1½ of it, so kills land in every phase of a
//! cycle), `--data-dir` (new or empty; default: a fresh one in the temp dir; the daemon
//! logs go to `{data-dir}-logs/`), `--semkvd PATH` (default: built with
//! `build_semkvd`), `--json PATH` (the report as JSON).
//!
//! Each task loops over *cycles* — create a cluster, 3 appends, a committed generation
//! of 3 tokens, delete — and every 4th cycle appends to its own long-lived cluster,
//! which only grows; past 3,000 tokens (the tiny model has 4,096 positions, the
//! daemon's context cap) it is deleted and the next one started. An RPC that returned OK is *acknowledged*; one cut off by a kill
//! may land either way: it is counted, then resolved from what the restarted daemon
//! shows.
//!
//! After each restart, with the clients paused, it checks that every acknowledged
//! cluster is there with at least the tokens of its last acknowledged append or commit
//! (GetCluster), that every acknowledged delete stayed deleted, and that a generation on
//! each long-lived cluster loads its cache from disk without re-prefill
//! (`cache_load.rebuilt_tokens == 0`; a rebuild that gives a reason is counted apart).
//! The run ends with one more kill and check; then it deletes every cluster and
//! measures the data directory (whole tree) against the empty store's size, taken after
//! the first start.
//!
//! Exit status 1 when a check failed, an operation failed for a reason other than a
//! kill or hung (no answer in 60 s), blob files are left, or the data directory ends
//! more than 8 MiB over the empty store; 2 when the soak could not run (e.g. a restart
//! failed: the data directory and the logs are kept).
//!
//! (About 780 lines: one tool whose parts — the client loops with their bookkeeping of
//! acknowledged operations, the checks after each restart, and the report — share that
//! bookkeeping; it is a tool to run for hours, kept in one file to read top to bottom.)

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semkv_client::local::{build_semkvd, DaemonLog};
use semkv_client::{proto, Client, ClientError, Code, Labels, LocalDaemon};
use tokio::sync::RwLock;

/// An operation with no answer after this long counts as a hang.
const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// How far over the empty store the data directory may end.
const SPACE_SLACK: u64 = 8 << 20;
/// Every how many cycles a task appends to its long-lived cluster.
const LONG_APPEND_EVERY: u64 = 4;
/// Past this many tokens a long-lived cluster is deleted and the next one started (below
/// the context cap: the tiny model's 4,096 positions).
const LONG_MAX_TOKENS: u64 = 3000;
const WORDS: &[&str] = &[
    "cache", "store", "blob", "token", "crash", "disk", "append", "delete", "space", "fsync",
    "river", "stone", "lamp", "orbit", "garden", "signal", "copper", "window", "winter", "maple",
];

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    model: PathBuf,
    device: String,
    minutes: f64,
    threads: usize,
    kill_every: Option<Duration>,
    data_dir: PathBuf,
    log_dir: PathBuf,
    semkvd: Option<PathBuf>,
    json: Option<PathBuf>,
}

fn parse_args() -> Res<Args> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut a = Args {
        model: repo.join("tests/fixtures/tiny-gemma3-bf16"),
        device: "cpu".into(),
        minutes: 5.0,
        threads: 4,
        kill_every: Some(Duration::from_secs(20)),
        data_dir: std::env::temp_dir().join(format!("semkv-soak-{}", std::process::id())),
        log_dir: PathBuf::new(),
        semkvd: None,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = value()?.into(),
            "--device" => a.device = value()?,
            "--minutes" => a.minutes = value()?.parse()?,
            "--threads" => a.threads = value()?.parse::<usize>()?.max(1),
            "--kill-every" => a.kill_every = parse_duration(&value()?)?,
            "--data-dir" => a.data_dir = value()?.into(),
            "--semkvd" => a.semkvd = Some(value()?.into()),
            "--json" => a.json = Some(value()?.into()),
            _ => return Err(format!("unknown flag {flag} (see the top of store_soak.rs)").into()),
        }
    }
    a.log_dir = format!("{}-logs", a.data_dir.display()).into();
    Ok(a)
}

/// `500ms`, `20s`, `2m`; `0` or `off` is `None`.
fn parse_duration(s: &str) -> Res<Option<Duration>> {
    let (n, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let scale = match unit {
        "off" => return Ok(None),
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        _ => return Err(format!("bad duration {s}").into()),
    };
    let secs = n.parse::<f64>()? * scale;
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

/// A pseudo-random generator (64-bit LCG), for texts and kill times.
struct Lcg(u64);

impl Lcg {
    fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
        self.0 >> 33
    }
}

fn text(words: usize, seed: u64) -> String {
    let mut rng = Lcg(seed);
    let words: Vec<&str> = (0..words)
        .map(|_| WORDS[rng.draw() as usize % WORDS.len()])
        .collect();
    words.join(" ")
}

/// Bytes of all files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            m => m.map_or(0, |m| m.len()),
        })
        .sum()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Create,
    Append,
    Generate,
    Delete,
}

/// What the store must show for one cluster, from its acknowledged operations.
#[derive(Clone, Debug, Default)]
struct Expect {
    present: bool,
    /// Tokens of its last acknowledged append or commit.
    min_tokens: u64,
    long_lived: bool,
    /// An operation cut off by a kill (or hung), resolved at the next check.
    pending: Option<Op>,
}

#[derive(Default)]
struct Stats {
    cycles: u64,
    acked: u64,
    /// Failures not caused by a kill, by gRPC code (or client-side error), and examples.
    failures: BTreeMap<String, u64>,
    failure_samples: Vec<String>,
    /// Per operation: [cut off by a kill, applied after all, not applied].
    in_flight: BTreeMap<String, [u64; 3]>,
    hangs: u64,
    verify_failures: Vec<String>,
    rebuilds: Vec<String>,
    restart_ms: Vec<f64>,
    verify_ms: Vec<f64>,
    peak_bytes: u64,
    peak_blob_bytes: u64,
    peak_store_bytes: u64,
    peak_live: u64,
    peak_rss: u64,
}

struct Soak {
    args: Args,
    bin: PathBuf,
    /// The client of the running daemon. The killer holds it for writing from the kill
    /// until the restarted daemon is checked, so no operation runs then.
    gate: RwLock<Option<Client>>,
    /// Bumped before each kill and after each restart: odd while the daemon is down.
    epoch: AtomicU64,
    expect: Mutex<HashMap<String, Expect>>,
    stats: Mutex<Stats>,
    deadline: Instant,
    stop: AtomicBool,
}

impl Soak {
    async fn start_daemon(&self, n: usize) -> Res<LocalDaemon> {
        let builder = LocalDaemon::builder(&self.args.data_dir)
            .bin(&self.bin)
            .model(&self.args.model)
            .device(self.args.device.clone())
            .env("RUST_LOG", "warn,semkv::store=info,semkv::daemon=info")
            .env("NO_COLOR", "1")
            .log(DaemonLog::File(
                self.args.log_dir.join(format!("semkvd-{n:03}.log")),
            ));
        Ok(tokio::task::spawn_blocking(move || builder.start()).await??)
    }

    /// Runs one RPC on cluster `id` while the daemon is up and records the outcome;
    /// `on_ok` updates the cluster's expectation (an error it returns is a failed
    /// check). `None` when the call failed.
    async fn call<T, Fut>(
        &self,
        op: Op,
        id: &str,
        rpc: impl FnOnce(Client) -> Fut,
        on_ok: impl FnOnce(&T, &mut Expect) -> Result<(), String>,
    ) -> Option<T>
    where
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let (gate, epoch, client) = loop {
            let gate = self.gate.read().await;
            let epoch = self.epoch.load(SeqCst);
            match gate.clone() {
                Some(c) if epoch % 2 == 0 => break (gate, epoch, c),
                _ => drop(gate),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let result = tokio::time::timeout(OP_TIMEOUT, rpc(client)).await;
        let mut expect = self.expect.lock().unwrap();
        let mut stats = self.stats.lock().unwrap();
        let e = expect.entry(id.to_owned()).or_default();
        let failure = match result {
            Ok(Ok(v)) => {
                stats.acked += 1;
                if let Err(m) = on_ok(&v, e) {
                    eprintln!("CHECK FAILED: {m}");
                    stats.verify_failures.push(m);
                }
                e.pending = None;
                return Some(v);
            }
            Ok(Err(err)) if err.is_unreachable() && self.epoch.load(SeqCst) != epoch => {
                stats.in_flight.entry(format!("{op:?}")).or_default()[0] += 1;
                e.pending = Some(op);
                return None;
            }
            Ok(Err(err)) => (failure_kind(&err), format!("{op:?} {id}: {err}")),
            Err(_) => {
                stats.hangs += 1;
                e.pending = Some(op);
                (
                    "Hang".into(),
                    format!("{op:?} {id}: no answer in {OP_TIMEOUT:?}"),
                )
            }
        };
        eprintln!("failure: {}", failure.1);
        *stats.failures.entry(failure.0).or_default() += 1;
        if stats.failure_samples.len() < 20 {
            stats.failure_samples.push(failure.1);
        }
        drop((expect, stats, gate));
        None
    }

    async fn create(&self, id: &str, long_lived: bool) -> Option<()> {
        let i = id.to_owned();
        let rpc = |c: Client| async move { c.create_cluster(&i, Labels::new()).await };
        let on_ok = |_: &_, e: &mut Expect| {
            (e.present, e.long_lived) = (true, long_lived);
            Ok(())
        };
        self.call(Op::Create, id, rpc, on_ok).await.map(drop)
    }

    async fn append(&self, id: &str, words: usize, seed: u64) -> Option<()> {
        let (i, turn) = (id.to_owned(), proto::Turn::user(text(words, seed)));
        let rpc = |c: Client| async move {
            c.append_turns(&i, vec![turn], proto::TurnFormat::Chat)
                .await
        };
        let on_ok = |r: &proto::AppendTurnsResponse, e: &mut Expect| grow(id, e, r.total_tokens);
        self.call(Op::Append, id, rpc, on_ok).await.map(drop)
    }

    async fn commit_generation(&self, id: &str) -> Option<()> {
        let request = proto::GenerateRequest {
            cluster_id: id.to_owned(),
            turns: vec![proto::Turn::user("Go on.")],
            max_tokens: Some(3),
            ignore_eos: true,
            commit: true,
            ..Default::default()
        };
        let rpc = |c: Client| async move { c.generate(request).await?.finish(|_| {}).await };
        let on_ok = |s: &proto::GenerateSummary, e: &mut Expect| match s.committed {
            true => grow(id, e, s.total_tokens),
            false => Err(format!("{id}: a commit generation was not committed")),
        };
        self.call(Op::Generate, id, rpc, on_ok).await.map(drop)
    }

    /// Deletes `id`; `NOT_FOUND` is an answer too (right when it was never there).
    async fn delete(&self, id: &str) -> Option<()> {
        let i = id.to_owned();
        let rpc = |c: Client| async move {
            match c.delete_cluster(&i).await {
                Err(e) if e.code() == Some(Code::NotFound) => Ok(false),
                r => r.map(|()| true),
            }
        };
        let on_ok = |found: &bool, e: &mut Expect| match std::mem::take(&mut e.present) {
            true if !found => Err(format!("{id}: acknowledged, but NOT_FOUND on delete")),
            _ => Ok(()),
        };
        self.call(Op::Delete, id, rpc, on_ok).await.map(drop)
    }

    async fn cycle(&self, id: &str, seed: u64) -> Option<()> {
        self.create(id, false).await?;
        for i in 0..3 {
            self.append(id, 24, seed * 4 + i).await?;
        }
        self.commit_generation(id).await?;
        self.delete(id).await
    }

    async fn worker(&self, t: usize) {
        let mut long = (0, format!("long-{t}"));
        for n in 0u64.. {
            if Instant::now() >= self.deadline {
                break;
            }
            let (id, seed) = (format!("w{t}-c{n}"), ((t as u64) << 32) | n);
            if self.cycle(&id, seed).await.is_some() {
                self.stats.lock().unwrap().cycles += 1;
            } else {
                // Cut off (or failed): it goes before the next one starts.
                tokio::time::sleep(Duration::from_millis(100)).await;
                for _ in 0..5 {
                    if self.delete(&id).await.is_some() {
                        break;
                    }
                }
            }
            if n % LONG_APPEND_EVERY == 0 {
                self.grow_long(t, &mut long, !seed).await;
            }
        }
    }

    /// Appends to task `t`'s long-lived cluster `long` (its generation and id); past
    /// [`LONG_MAX_TOKENS`] deletes it and moves on to the next (created next time).
    async fn grow_long(&self, t: usize, long: &mut (u32, String), seed: u64) {
        let now = self.expect.lock().unwrap().get(&long.1).cloned();
        match now.unwrap_or_default() {
            e if !e.present => self.create(&long.1, true).await,
            e if e.min_tokens < LONG_MAX_TOKENS => self.append(&long.1, 8, seed).await,
            _ => {
                self.delete(&long.1).await;
                long.0 += 1;
                long.1 = format!("long-{t}-{}", long.0);
                None
            }
        };
    }

    /// Every 2 s: the data directory's bytes, the daemon's store bytes and clusters.
    async fn sampler(&self) {
        while !self.stop.load(SeqCst) {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let bytes = dir_bytes(&self.args.data_dir);
            let blob_bytes = dir_bytes(&self.args.data_dir.join("blobs"));
            let info = match self.gate.read().await.clone() {
                Some(c) if self.epoch.load(SeqCst) % 2 == 0 => {
                    tokio::time::timeout(Duration::from_secs(10), c.server_info()).await
                }
                _ => continue,
            };
            let mut s = self.stats.lock().unwrap();
            s.peak_bytes = s.peak_bytes.max(bytes);
            s.peak_blob_bytes = s.peak_blob_bytes.max(blob_bytes);
            if let Ok(Ok(info)) = info {
                s.peak_store_bytes = s.peak_store_bytes.max(info.store_bytes);
                s.peak_live = s.peak_live.max(info.known_clusters);
                s.peak_rss = s.peak_rss.max(info.process_rss_bytes);
            }
        }
    }

    /// `kill -9`, restart on the same data directory, check, resume the clients.
    async fn crash(&self, daemon: LocalDaemon, n: usize) -> Res<LocalDaemon> {
        self.epoch.fetch_add(1, SeqCst);
        tokio::task::spawn_blocking(move || daemon.kill9()).await?;
        // Once it is ours, every call cut off by the kill has ended and been recorded.
        let mut gate = self.gate.write().await;
        let started = Instant::now();
        let daemon = self
            .start_daemon(n)
            .await
            .map_err(|e| format!("restart {n}: {e}"))?;
        let restart_ms = started.elapsed().as_secs_f64() * 1e3;
        let client = daemon.client().await?;
        let started = Instant::now();
        let bad = self.verify(&client).await;
        let mut s = self.stats.lock().unwrap();
        s.restart_ms.push(restart_ms);
        s.verify_ms.push(started.elapsed().as_secs_f64() * 1e3);
        for m in bad {
            eprintln!("CHECK FAILED after restart {n}: {m}");
            s.verify_failures.push(format!("after restart {n}: {m}"));
        }
        *gate = Some(client);
        self.epoch.fetch_add(1, SeqCst);
        Ok(daemon)
    }

    /// Checks the restarted daemon against the expectations and resolves the calls a
    /// kill cut off. Returns what failed.
    async fn verify(&self, c: &Client) -> Vec<String> {
        let mut bad = Vec::new();
        let listed: HashMap<String, u64> = match c.list_clusters(Labels::new()).await {
            Ok(l) => l.into_iter().map(|c| (c.id, c.cache_tokens)).collect(),
            Err(e) => return vec![format!("ListClusters: {e}")],
        };
        let expected: Vec<(String, Expect)> =
            self.expect.lock().unwrap().clone().into_iter().collect();
        let mut resolved = Vec::new();
        for (id, e) in &expected {
            let tokens = listed.get(id).copied();
            if let Some(op) = e.pending {
                let applied = match op {
                    Op::Create => tokens.is_some(),
                    Op::Delete => tokens.is_none(),
                    Op::Append | Op::Generate => tokens.is_some_and(|t| t > e.min_tokens),
                };
                let mut s = self.stats.lock().unwrap();
                s.in_flight.entry(format!("{op:?}")).or_default()[2 - applied as usize] += 1;
                if e.present && op != Op::Delete && tokens.is_none() {
                    bad.push(format!("{id}: acknowledged, gone after a {op:?} cut off"));
                }
                resolved.push((id.clone(), tokens.is_some()));
                continue;
            }
            match (e.present, tokens) {
                (true, None) => bad.push(format!(
                    "{id}: acknowledged ({} tokens), gone",
                    e.min_tokens
                )),
                (false, Some(_)) => bad.push(format!("{id}: deleted (acknowledged), listed")),
                (true, Some(_)) => match c.get_cluster(id).await {
                    Ok(cl) if cl.cache_tokens >= e.min_tokens && cl.damage.is_empty() => {}
                    Ok(cl) => bad.push(format!(
                        "{id}: {} tokens, {} acknowledged; damage {:?}",
                        cl.cache_tokens, e.min_tokens, cl.damage
                    )),
                    Err(err) => bad.push(format!("{id}: GetCluster: {err}")),
                },
                (false, None) => {}
            }
        }
        // The long-lived clusters are cold now: their caches must come back from disk.
        let long = |e: &Expect| e.long_lived && e.present && e.min_tokens > 0;
        for (id, e) in expected.iter().filter(|(_, e)| long(e)) {
            let request = proto::GenerateRequest {
                cluster_id: id.clone(),
                max_tokens: Some(2),
                ..Default::default()
            };
            let s = match c.generate(request).await {
                Ok(stream) => stream.finish(|_| {}).await,
                Err(err) => Err(err),
            };
            let s = match s {
                Ok(s) => s,
                Err(err) => {
                    bad.push(format!("{id}: Generate: {err}"));
                    continue;
                }
            };
            let load = s.cache_load.unwrap_or_default();
            let why = (load.rebuilt_tokens, load.rebuild_reason.as_str());
            if !load.loaded_from_disk {
                bad.push(format!(
                    "{id}: the cache was not loaded from disk: {load:?}"
                ));
            } else if why.0 > 0 && why.1.is_empty() {
                bad.push(format!(
                    "{id}: {} tokens re-prefilled, with no reason",
                    why.0
                ));
            } else if why.0 > 0 {
                let m = format!("{id}: {} tokens re-prefilled: {}", why.0, why.1);
                self.stats.lock().unwrap().rebuilds.push(m);
            }
            if s.reused_tokens + why.0 < e.min_tokens {
                bad.push(format!(
                    "{id}: reused {} of {} tokens",
                    s.reused_tokens, e.min_tokens
                ));
            }
        }
        let mut expect = self.expect.lock().unwrap();
        for (id, present) in resolved {
            if let Some(e) = expect.get_mut(&id) {
                (e.pending, e.present) = (None, present);
            }
        }
        bad
    }
}

/// The acknowledged token count of `id` is now `tokens`: it must not go back.
fn grow(id: &str, e: &mut Expect, tokens: u64) -> Result<(), String> {
    match std::mem::replace(&mut e.min_tokens, tokens) {
        before if tokens < before => Err(format!("{id}: {tokens} tokens after {before}")),
        _ => Ok(()),
    }
}

fn failure_kind(e: &ClientError) -> String {
    match e.code() {
        Some(code) => format!("{code:?}"),
        // The variant's name: Connect, Disconnected, Cancelled, IncompleteStream, ...
        None => format!("{e:?}").split(' ').next().unwrap_or("?").to_owned(),
    }
}

/// `--semkvd`, else `semkvd` built with `build_semkvd`.
fn semkvd(args: &Args) -> Res<PathBuf> {
    if let Some(bin) = &args.semkvd {
        return Ok(bin.clone());
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match build_semkvd(&repo, !cfg!(debug_assertions)) {
        Ok(bin) => Ok(bin),
        // It looks next to this program and in `deps/`; from `target/<profile>/examples`,
        // semkvd is one level up.
        Err(e) => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("semkvd"))
            .filter(|bin| bin.is_file())
            .ok_or_else(|| e.into()),
    }
}

/// Min, median and max.
fn spread(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    (at(0), at(v.len() / 2), at(v.len().saturating_sub(1)))
}

fn mib(b: u64) -> String {
    format!("{:.2} MiB ({b} B)", b as f64 / (1 << 20) as f64)
}

#[tokio::main]
async fn main() {
    let code = match run().await {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("store_soak: {e}");
            2
        }
    };
    std::process::exit(code);
}

async fn run() -> Res<bool> {
    let args = parse_args()?;
    if std::fs::read_dir(&args.data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "{} is not empty: give a new --data-dir",
            args.data_dir.display()
        )
        .into());
    }
    let mut soak = Soak {
        bin: semkvd(&args)?,
        gate: RwLock::new(None),
        epoch: AtomicU64::new(0),
        expect: Mutex::default(),
        stats: Mutex::default(),
        deadline: Instant::now() + Duration::from_secs_f64(args.minutes * 60.0),
        stop: AtomicBool::new(false),
        args,
    };
    let mut daemon = soak.start_daemon(0).await?;
    let client = daemon.client().await?;
    client.create_cluster("warmup", Labels::new()).await?;
    client.delete_cluster("warmup").await?;
    let empty_bytes = dir_bytes(&soak.args.data_dir);
    let info = client.server_info().await?;
    for t in 0..soak.args.threads {
        let (id, turn) = (format!("long-{t}"), proto::Turn::user(text(40, t as u64)));
        client.create_cluster(&id, Labels::new()).await?;
        let r = client
            .append_turns(&id, vec![turn], proto::TurnFormat::Chat)
            .await?;
        let (min_tokens, long_lived, present) = (r.total_tokens, true, true);
        let e = Expect {
            present,
            min_tokens,
            long_lived,
            pending: None,
        };
        soak.expect.get_mut().unwrap().insert(id, e);
    }
    *soak.gate.get_mut() = Some(client);
    let a = &soak.args;
    println!(
        "store_soak: semkvd {} ({}, {}), {} tasks for {} min, kill -9 every {}; data in {}, logs in {}",
        info.version, info.model, info.backend, a.threads, a.minutes, a.kill_every.map_or("(never)".into(), |d| format!("{d:?}")),
        a.data_dir.display(), a.log_dir.display()
    );
    let started = Instant::now();
    let soak = Arc::new(soak);
    let spawn = |task: usize| {
        let soak = soak.clone();
        tokio::spawn(async move {
            match task {
                0 => soak.sampler().await,
                t => soak.worker(t - 1).await,
            }
        })
    };
    let sampler = spawn(0);
    let workers: Vec<_> = (1..=soak.args.threads).map(spawn).collect();
    let (mut rng, mut kills) = (Lcg(7), 0);
    // The killer: sleeps, kills, restarts, checks, until the deadline.
    while let Some(every) = soak.args.kill_every {
        let wait = every.mul_f64(0.5 + (rng.draw() % 1000) as f64 / 1000.0);
        if Instant::now() + wait >= soak.deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        kills += 1;
        daemon = soak.crash(daemon, kills).await?;
        let ms = soak
            .stats
            .lock()
            .unwrap()
            .restart_ms
            .last()
            .copied()
            .unwrap_or(0.0);
        println!(
            "[{:>6.1} s] kill {kills}: restarted in {ms:.0} ms",
            started.elapsed().as_secs_f64()
        );
    }
    for w in workers {
        w.await?;
    }
    if soak.args.kill_every.is_some() {
        // One last crash, so that the end of the run is checked too.
        kills += 1;
        daemon = soak.crash(daemon, kills).await?;
    }
    let duration = started.elapsed();
    soak.stop.store(true, SeqCst);
    sampler.await?;

    // Delete everything; measure.
    let client = soak.gate.write().await.take().expect("a client");
    for c in client.list_clusters(Labels::new()).await? {
        client.delete_cluster(&c.id).await?;
    }
    let end_info = client.server_info().await?;
    let end_bytes = dir_bytes(&soak.args.data_dir);
    let orphans = std::fs::read_dir(soak.args.data_dir.join("blobs"))?.count();
    drop(client);
    let clean_exit = daemon.terminate_async(Duration::from_secs(30)).await;
    let after_shutdown = dir_bytes(&soak.args.data_dir);

    let s = soak.stats.lock().unwrap();
    let (a, cycles, acked, hangs, live) = (&soak.args, s.cycles, s.acked, s.hangs, s.peak_live);
    let peak = s.peak_bytes.max(end_bytes);
    let per_cycle = end_bytes.saturating_sub(empty_bytes) as f64 / cycles.max(1) as f64;
    let (r_min, r_med, r_max) = spread(&s.restart_ms);
    let (_, v_med, v_max) = spread(&s.verify_ms);
    let sum = |i: usize| s.in_flight.values().map(|v| v[i]).sum::<u64>();
    let (cut, applied, not_applied) = (sum(0), sum(1), sum(2));
    let (failures, checks, rebuilds) = (&s.failures, s.verify_failures.len(), s.rebuilds.len());
    let pass = checks == 0
        && failures.is_empty()
        && orphans == 0
        && end_bytes <= empty_bytes + SPACE_SLACK
        && end_info.known_clusters == 0;
    let (minutes, restarts) = (duration.as_secs_f64() / 60.0, s.restart_ms.len());
    let (empty, peak_dir, blobs, end) = (
        mib(empty_bytes),
        mib(peak),
        mib(s.peak_blob_bytes),
        mib(end_bytes),
    );
    let (rss_start, rss_peak, rss_end) = (
        mib(info.process_rss_bytes),
        mib(s.peak_rss),
        mib(end_info.process_rss_bytes),
    );
    let (shut, store_peak, store_end) = (
        mib(after_shutdown),
        mib(s.peak_store_bytes),
        mib(end_info.store_bytes),
    );
    let verdict = if pass { "PASS" } else { "FAIL" };
    println!(
        "
| | |
|---|---|
| duration | {minutes:.1} min |
| cycles completed | {cycles} |
| ops acknowledged | {acked} |
| ops cut off by a kill (applied after all / not) | {cut} ({applied} / {not_applied}) |
| failures not caused by a kill, by code | {failures:?} |
| hangs (no answer in 60 s) | {hangs} |
| kills / restarts | {kills} / {restarts} |
| restart ms min / median / max | {r_min:.0} / {r_med:.0} / {r_max:.0} |
| check ms after a restart, median / max | {v_med:.0} / {v_max:.0} |
| verification failures | {checks} |
| cache rebuilds on reload | {rebuilds} |
| live clusters, peak | {live} |
| data dir: empty store | {empty} |
| data dir: peak (blobs/ at peak) | {peak_dir} ({blobs}) |
| data dir: end, all deleted | {end} |
| data dir: after a clean shutdown | {shut} |
| growth per cycle | {per_cycle:.0} B |
| store_bytes (GetServerInfo) peak / end | {store_peak} / {store_end} |
| daemon RSS: idle at start / peak / end, all deleted | {rss_start} / {rss_peak} / {rss_end} (the last daemon's; kills restart it) |
| orphan blob files at end | {orphans} |
| clean shutdown (SIGTERM) | {clean_exit} |
| result | {verdict} |"
    );
    for m in s
        .verify_failures
        .iter()
        .chain(&s.failure_samples)
        .chain(&s.rebuilds)
    {
        println!("  {m}");
    }
    if let Some(path) = &a.json {
        let in_flight: serde_json::Map<_, _> = s
            .in_flight
            .iter()
            .map(|(op, [c, y, n])| {
                (
                    op.clone(),
                    serde_json::json!({ "cut_off": c, "applied": y, "not_applied": n }),
                )
            })
            .collect();
        let report = serde_json::json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "semkvd": { "version": info.version, "model": info.model, "backend": info.backend, "device": info.device },
            "machine": { "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()), "os": std::env::consts::OS },
            "params": { "minutes": a.minutes, "threads": a.threads, "kill_every_s": a.kill_every.map(|d| d.as_secs_f64()), "data_dir": a.data_dir },
            "duration_s": duration.as_secs_f64(), "cycles": cycles, "ops_acknowledged": acked,
            "in_flight_at_kill": in_flight, "failures_by_code": failures, "failure_samples": s.failure_samples, "hangs": hangs,
            "kills": kills, "restarts": restarts, "restart_ms": s.restart_ms, "verify_ms": s.verify_ms,
            "verification_failures": s.verify_failures, "rebuilds": s.rebuilds, "live_clusters_peak": live,
            "data_dir_bytes": { "empty": empty_bytes, "peak": peak, "peak_blobs": s.peak_blob_bytes, "end": end_bytes, "after_shutdown": after_shutdown },
            "growth_bytes_per_cycle": per_cycle,
            "store_bytes": { "peak": s.peak_store_bytes, "end": end_info.store_bytes },
            "daemon_rss_bytes": { "idle_at_start": info.process_rss_bytes, "peak": s.peak_rss, "end_all_deleted": end_info.process_rss_bytes },
            "orphan_blob_files": orphans, "clean_shutdown": clean_exit, "pass": pass,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    Ok(pass)
}
