//! The `semkv` binary against a real `semkvd` process on 127.0.0.1, serving the tiny
//! test model from a temporary data directory: the experiment end to end, a resume
//! after `kill -9` of the daemon mid-batch, the cluster commands, chat, demo, and the
//! errors a user sees.
//!
//! `semkvd` is built on first use with `cargo build -p semkv --bin semkvd` (a no-op
//! when it is up to date) and taken from the same target directory as `semkv`; set
//! `SEMKVD` to use another binary.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use semkv_client::local::build_semkvd;
use semkv_client::LocalDaemon;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> PathBuf {
    repo().join("tests/fixtures/tiny-gemma3-bf16")
}

fn dataset() -> PathBuf {
    repo().join("data/semantic-isolation")
}

fn example_file() -> PathBuf {
    dataset().join("validation_001_software_eng.json")
}

/// The `semkvd` binary (built once per test process).
fn semkvd() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("SEMKVD").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        build_semkvd(&repo(), !cfg!(debug_assertions)).expect("build semkvd")
    })
}

/// A `semkvd` on the tiny model with its store in `data_dir`; killed when dropped.
fn start_daemon(data_dir: &Path) -> LocalDaemon {
    LocalDaemon::builder(data_dir)
        .bin(semkvd())
        .model(model_dir())
        .device("cpu")
        .env("RUST_LOG", "warn")
        .start()
        .expect("start semkvd")
}

fn semkv_cmd(addr: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_semkv"));
    cmd.arg("--addr")
        .arg(addr)
        .args(args)
        .env_remove("SEMKV_ADDR");
    cmd
}

fn semkv(addr: &str, args: &[&str]) -> Output {
    semkv_cmd(addr, args).output().expect("run semkv")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("json output")
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn key(r: &serde_json::Value) -> (String, String, String) {
    (
        r["example_id"].as_str().unwrap().to_owned(),
        r["condition"].as_str().unwrap().to_owned(),
        r["output"].as_str().unwrap().to_owned(),
    )
}

/// Clusters whose id starts with `prefix`.
fn clusters_with_prefix(addr: &str, prefix: &str) -> Vec<String> {
    let list = json(&semkv(addr, &["--json", "cluster", "list"]));
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .filter(|id| id.starts_with(prefix))
        .collect()
}

#[test]
fn experiment_runs_end_to_end_on_one_example_in_all_conditions() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = start_daemon(&tmp.path().join("data"));
    let results = tmp.path().join("out/results.jsonl");
    let report = tmp.path().join("report");
    let out = semkv(
        daemon.addr(),
        &[
            "--json",
            "experiment",
            "run",
            example_file().to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--max-tokens",
            "8",
            "--seed",
            "7",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let doc = json(&out);
    assert_eq!(doc["generated"], 12, "{doc:#}");
    assert_eq!(doc["skipped"], 0);

    let recs = records(&results);
    assert_eq!(recs.len(), 12);
    let keys: BTreeSet<_> = recs.iter().map(key).collect();
    assert_eq!(keys.len(), 12, "each (condition, output) once");
    for cond in ["sequential", "prompted", "turn_based", "semantic"] {
        for o in ["A", "B", "C"] {
            assert!(keys.contains(&("validation_001_software_eng".into(), cond.into(), o.into())));
        }
    }
    for r in &recs {
        assert_eq!(r["batch_seed"], 7);
        assert_eq!(r["format"], "chat");
        assert!(r["generated_tokens"].as_u64().unwrap() <= 8);
        assert!(r["generated_tokens"].as_u64().unwrap() > 0);
        assert!(r["prompt_tokens"].as_u64().unwrap() > 0);
        assert!(r["ttft_ms"].as_f64().unwrap() > 0.0);
        // Every output reuses its whole context from the cache.
        assert_eq!(r["tokens_reused"], r["cache_tokens"], "{r}");
        assert!(r["model"].as_str().unwrap().contains("tiny-gemma3-bf16"));
        // The reference answer, scored under the output's context (random tiny
        // weights: a few nats per token).
        let nll = r["metrics"]["reference_nll"].as_f64().unwrap();
        assert!(nll > 0.0 && nll.is_finite(), "{r}");
    }
    // The semantic contexts are much smaller than the shared ones, and C's context
    // holds A and B.
    let ctx = |c: &str, o: &str| {
        recs.iter()
            .find(|r| r["condition"] == c && r["output"] == o)
            .unwrap()["cache_tokens"]
            .as_u64()
            .unwrap()
    };
    assert!(ctx("semantic", "A") < ctx("sequential", "A") / 2);
    assert_eq!(ctx("sequential", "A"), ctx("sequential", "C"));

    for f in ["summary.md", "results.csv", "metrics.svg"] {
        assert!(report.join(f).is_file(), "{f} missing");
    }
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(
        md.contains("12 outputs of 1 examples") || md.contains("12 outputs of 1 example"),
        "{md}"
    );
    // Contexts and forks were deleted.
    assert!(clusters_with_prefix(daemon.addr(), "exp-").is_empty());

    // The pairs ran 4 at a time (the default) with batched decode; one at a time,
    // every output is the same text.
    let one_by_one = tmp.path().join("sequential.jsonl");
    ok(&semkv(
        daemon.addr(),
        &[
            "experiment",
            "run",
            example_file().to_str().unwrap(),
            "--out",
            one_by_one.to_str().unwrap(),
            "--max-tokens",
            "8",
            "--seed",
            "7",
            "--concurrency",
            "1",
            "--cluster-prefix",
            "seq",
            "--no-progress",
        ],
    ));
    let texts = |recs: &[serde_json::Value]| -> std::collections::BTreeMap<_, String> {
        recs.iter()
            .map(|r| (key(r), r["text"].as_str().unwrap().to_owned()))
            .collect()
    };
    assert_eq!(texts(&records(&one_by_one)), texts(&recs));

    // The same batch again without --resume is refused; with it, nothing is redone.
    let again = semkv(
        daemon.addr(),
        &[
            "experiment",
            "run",
            example_file().to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--seed",
            "7",
        ],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("--resume"),
        "{}",
        text(&again.stderr)
    );
    let resumed = semkv(
        daemon.addr(),
        &[
            "experiment",
            "run",
            example_file().to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--seed",
            "7",
            "--resume",
        ],
    );
    assert!(ok(&resumed).contains("0 outputs generated, 12 already done"));

    // Raw-text mode, one condition; `experiment report` on its own.
    let raw = tmp.path().join("raw.jsonl");
    ok(&semkv(
        daemon.addr(),
        &[
            "experiment",
            "run",
            example_file().to_str().unwrap(),
            "--out",
            raw.to_str().unwrap(),
            "--format",
            "raw",
            "--conditions",
            "semantic",
            "--max-tokens",
            "4",
            "--no-progress",
        ],
    ));
    let raw_recs = records(&raw);
    assert_eq!(raw_recs.len(), 3);
    assert!(raw_recs.iter().all(|r| r["format"] == "raw"));
    let raw_report = tmp.path().join("raw-report");
    let out = ok(&semkv(
        daemon.addr(),
        &[
            "experiment",
            "report",
            raw.to_str().unwrap(),
            "--out",
            raw_report.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("summary.md"));
    assert!(raw_report.join("metrics.svg").is_file());
}

#[test]
fn an_interrupted_batch_resumes_after_a_daemon_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let results = tmp.path().join("results.jsonl");
    let run_args = |resume: bool| {
        let mut v = vec![
            "experiment".to_owned(),
            "run".into(),
            dataset().to_str().unwrap().into(),
            "--limit".into(),
            "2".into(),
            "--out".into(),
            results.to_str().unwrap().into(),
            "--max-tokens".into(),
            "8".into(),
        ];
        if resume {
            v.push("--resume".into());
        }
        v
    };

    let daemon = start_daemon(&data);
    let args = run_args(false);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut batch = semkv_cmd(daemon.addr(), &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the batch");
    // Kill the daemon once some results are written (2 examples = 24 outputs).
    let deadline = Instant::now() + Duration::from_secs(60);
    while records(&results).len() < 5 {
        assert!(Instant::now() < deadline, "no results within 60 s");
        assert!(
            batch.try_wait().unwrap().is_none(),
            "the batch ended before the daemon was killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    daemon.kill9();
    let out = batch.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot reach semkvd"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");

    let before = std::fs::read_to_string(&results).unwrap();
    let n_before = records(&results).len();
    assert!(
        (5..24).contains(&n_before),
        "{n_before} results before the resume"
    );

    // A new daemon on the same data dir (and another port) finds the clusters the
    // interrupted batch left; the resume deletes and rebuilds what it needs.
    let daemon = start_daemon(&data);
    let args = run_args(true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok(&semkv(daemon.addr(), &args));
    assert!(
        out.contains(&format!(
            "{} outputs generated, {n_before} already done",
            24 - n_before
        )),
        "{out}"
    );
    let after = std::fs::read_to_string(&results).unwrap();
    assert!(
        after.starts_with(&before),
        "finished outputs were not rewritten"
    );
    let recs = records(&results);
    assert_eq!(recs.len(), 24);
    let keys: BTreeSet<_> = recs.iter().map(key).collect();
    assert_eq!(
        keys.len(),
        24,
        "each (example, condition, output) exactly once"
    );
    assert!(clusters_with_prefix(daemon.addr(), "exp-").is_empty());
}

#[test]
fn ctrl_c_stops_cleanly_and_resume_refuses_other_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = start_daemon(&tmp.path().join("data"));
    let results = tmp.path().join("results.jsonl");
    let results_arg = results.to_str().unwrap().to_owned();
    let dataset_arg = dataset().to_str().unwrap().to_owned();
    let args = |max_tokens: &'static str, resume: bool| {
        let mut v = vec![
            "experiment",
            "run",
            dataset_arg.as_str(),
            "--limit",
            "1",
            "--out",
            results_arg.as_str(),
            "--max-tokens",
            max_tokens,
        ];
        if resume {
            v.push("--resume");
        }
        v
    };
    let mut batch = semkv_cmd(daemon.addr(), &args("32", false))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the batch");
    let deadline = Instant::now() + Duration::from_secs(60);
    while records(&results).is_empty() {
        assert!(Instant::now() < deadline, "no results within 60 s");
        assert!(batch.try_wait().unwrap().is_none(), "the batch ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SIGINT, as Ctrl-C sends it.
    let pid = batch.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = batch.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted (Ctrl-C)"), "{stderr}");
    assert!(stderr.contains("temporary cluster(s) deleted"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert!(clusters_with_prefix(daemon.addr(), "exp-").is_empty());
    let recorded = records(&results);
    assert!(!recorded.is_empty() && recorded.len() < 12);
    for r in &recorded {
        assert_eq!(r["max_tokens"], 32);
        assert_eq!(r["fingerprint"].as_str().unwrap().len(), 32, "{r}");
    }

    // Resuming with other settings is refused, naming the setting.
    let out = semkv(daemon.addr(), &args("8", true));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("made with --max-tokens 32, not 8"),
        "{stderr}"
    );
    // The same settings finish the batch.
    let out = ok(&semkv(daemon.addr(), &args("32", true)));
    assert!(out.contains("already done"), "{out}");
    assert_eq!(records(&results).len(), 12);
}

#[test]
fn cluster_commands_generate_and_chat_work_against_a_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = start_daemon(&tmp.path().join("data"));
    let a = daemon.addr();

    let created = json(&semkv(
        a,
        &[
            "--json", "cluster", "create", "notes", "--label", "topic=db",
        ],
    ));
    assert_eq!(created["id"], "notes");
    assert_eq!(created["labels"]["topic"], "db");
    let appended = json(&semkv(
        a,
        &[
            "--json",
            "append",
            "notes",
            "Connection pools cap concurrency.",
        ],
    ));
    assert!(appended["tokens_added"].as_u64().unwrap() > 0);
    let context = appended["total_tokens"].as_u64().unwrap();

    // score: a summary line (per-token lines with --tokens); the cluster is unchanged.
    let out = semkv(a, &["score", "notes", "Pools help.", "--tokens"]);
    ok(&out);
    let printed = text(&out.stdout);
    assert!(printed.starts_with("mean NLL "), "{printed}");
    assert!(
        printed.contains(&format!("{context} reused from the cache")),
        "{printed}"
    );
    assert!(printed.lines().count() > 2, "{printed}");
    let scored = json(&semkv(a, &["--json", "score", "notes", "Pools help."]));
    let logprobs = scored["tokens"].as_array().unwrap();
    assert!(!logprobs.is_empty());
    assert!(scored["mean_nll"].as_f64().unwrap() > 0.0);
    assert_eq!(scored["reused_tokens"].as_u64(), Some(context));

    // generate streams to stdout; statistics on stderr; the cluster is unchanged.
    let out = semkv(
        a,
        &[
            "generate",
            "notes",
            "Summarize.",
            "--max-tokens",
            "6",
            "--seed",
            "1",
        ],
    );
    ok(&out);
    assert!(text(&out.stderr).contains(&format!("{context} reused from cache")));
    let g = json(&semkv(
        a,
        &[
            "--json",
            "generate",
            "notes",
            "Summarize.",
            "--max-tokens",
            "6",
            "--seed",
            "1",
        ],
    ));
    assert_eq!(g["stats"]["tokens_reused"], context);
    assert!(g["stats"]["generated_tokens"].as_u64().unwrap() > 0);
    let shown = json(&semkv(a, &["--json", "cluster", "show", "notes"]));
    assert_eq!(shown["cache_tokens"], context);
    assert_eq!(shown["turns"], 1);

    // --continue: no prompt, the same greedy continuation twice (the cluster unchanged).
    let cont = |a| {
        json(&semkv(
            a,
            &[
                "--json",
                "generate",
                "notes",
                "--continue",
                "--max-tokens",
                "5",
                "--temperature",
                "0",
            ],
        ))
    };
    let (c1, c2) = (cont(a), cont(a));
    assert_eq!(c1["stats"]["prompt_tokens"], 0);
    assert_eq!(c1["stats"]["tokens_reused"], context);
    assert_eq!(c1["text"], c2["text"]);
    let out = semkv(a, &["generate", "notes", "x", "--continue"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a prompt and --continue conflict"
    );

    // fork, list with a selector, delete.
    let forked = json(&semkv(
        a,
        &["--json", "cluster", "fork", "notes", "notes-2"],
    ));
    assert_eq!(forked["cache_tokens"], context);
    let text_list = ok(&semkv(a, &["cluster", "list", "--label", "topic=db"]));
    assert!(text_list.contains("notes-2") && text_list.contains("CACHE TOKENS"));

    // chat with piped stdin: two turns, each answer commits to the cluster.
    let mut chat = semkv_cmd(a, &["chat", "notes-2", "--max-tokens", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    chat.stdin
        .take()
        .unwrap()
        .write_all(b"first question\n\nsecond question\n")
        .unwrap();
    ok(&chat.wait_with_output().unwrap());
    let after = json(&semkv(a, &["--json", "cluster", "show", "notes-2"]));
    assert_eq!(after["turns"], 5, "1 + 2 x (question, answer): {after}");
    assert!(after["cache_tokens"].as_u64().unwrap() > context);

    // chat creates a missing cluster.
    let mut chat = semkv_cmd(a, &["chat", "fresh", "--max-tokens", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    chat.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    ok(&chat.wait_with_output().unwrap());
    assert_eq!(
        json(&semkv(a, &["--json", "cluster", "show", "fresh"]))["turns"],
        2
    );

    ok(&semkv(a, &["cluster", "delete", "notes-2"]));
    let left: Vec<String> = json(&semkv(a, &["--json", "cluster", "list"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["fresh", "notes"]);
    let status = json(&semkv(a, &["--json", "status"]));
    assert_eq!(status["known_clusters"], 2);
    assert_eq!(status["backend"], "cpu");

    // Errors a user sees.
    let out = semkv(a, &["cluster", "show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cluster \"nope\" not found"),
        "{}",
        text(&out.stderr)
    );
    for args in [
        vec!["append", "nope", "x"],
        vec!["generate", "nope", "x", "--max-tokens", "2"],
        vec!["cluster", "delete", "nope"],
        vec!["cluster", "fork", "nope", "other"],
        vec!["score", "nope", "x"],
    ] {
        let out = semkv(a, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("\"nope\" not found"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = semkv(a, &["cluster", "create", "notes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already exists"));
    let out = semkv(a, &["cluster", "create", "bad id!"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("invalid argument"));
}

#[test]
fn a_daemon_that_is_not_running_gives_a_clear_message_and_exit_3() {
    // Nothing listens on port 1.
    for args in [
        vec!["cluster", "list"],
        vec!["status"],
        vec!["generate", "c", "hi"],
    ] {
        let out = semkv("127.0.0.1:1", &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot reach semkvd at http://127.0.0.1:1"),
            "{stderr}"
        );
        assert!(stderr.contains("semkvd --model gemma-3-270m"), "{stderr}");
    }
    // SEMKV_ADDR is honoured.
    let out = Command::new(env!("CARGO_BIN_EXE_semkv"))
        .args(["status"])
        .env("SEMKV_ADDR", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("http://127.0.0.1:1"));
}

#[test]
fn demo_starts_a_daemon_runs_the_bundled_example_and_stops_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_semkv"))
        .args(["--addr", "127.0.0.1:1", "demo", "--device", "cpu"])
        .arg("--model")
        .arg(model_dir())
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--out")
        .arg(&out_dir)
        .args(["--max-tokens", "4"])
        .env("SEMKVD", semkvd())
        .env_remove("SEMKV_ADDR")
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("12 outputs"), "{stdout}");
    assert!(
        stdout.contains("daemon started and stopped by the demo"),
        "{stdout}"
    );
    for cond in ["sequential", "prompted", "turn_based", "semantic"] {
        assert!(stdout.lines().any(|l| l.starts_with(cond)), "{stdout}");
    }
    assert!(stdout.contains(&format!(
        "report:  {}",
        out_dir.join("summary.md").display()
    )));
    for f in ["summary.md", "results.csv", "metrics.svg", "results.jsonl"] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    assert_eq!(records(&out_dir.join("results.jsonl")).len(), 12);
    // It stopped the daemon it started, cleanly.
    let log = std::fs::read_to_string(out_dir.join("semkvd.log")).unwrap();
    assert!(log.contains("store flushed; bye"), "{log}");

    // With a daemon running at --addr, the demo uses it and leaves it running.
    let daemon = start_daemon(&tmp.path().join("data2"));
    let out = semkv(
        daemon.addr(),
        &[
            "demo",
            "--out",
            out_dir.to_str().unwrap(),
            "--max-tokens",
            "2",
            "--no-progress",
        ],
    );
    let stdout = ok(&out);
    assert!(!stdout.contains("started and stopped"), "{stdout}");
    assert!(text(&out.stderr).contains("using the semkvd already running"));
    ok(&semkv(daemon.addr(), &["status"]));
}
