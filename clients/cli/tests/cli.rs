//! The `semkv` binary, run as a user would: exit codes, messages and files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn semkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_semkv"))
        .args(args)
        .env_remove("SEMKV_ADDR")
        .output()
        .expect("run semkv")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn dataset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/semantic-isolation")
}

#[test]
fn validate_accepts_the_shipped_datasets() {
    let dir = dataset();
    let conflicts = dir.join("conflicts");
    let out = semkv(&[
        "experiment",
        "validate",
        dir.to_str().unwrap(),
        conflicts.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("20 file(s), 20 example(s), 0 problem(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 file(s), 30 example(s), 0 problem(s)"),
        "{stdout}"
    );
}

#[test]
fn validate_reports_every_problem_with_file_and_path_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let original =
        std::fs::read_to_string(dataset().join("validation_001_software_eng.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
    v["turns"][4]["instruction"] = serde_json::json!(7);
    v["semantic_clusters"]["cluster_2"]["turns"][0] = serde_json::json!(99);
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();

    let out = semkv(&["experiment", "validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let file = bad.display();
    assert!(
        stdout.contains(&format!(
            "{file}: $.turns[4].instruction: expected string or null, found number"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{file}: $.semantic_clusters.cluster_2.turns[0]: unknown turn 99 (no turn has this turn_id)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{file}: $.turns[5]: turn 6 belongs to no cluster")),
        "{stdout}"
    );

    let out = semkv(&["experiment", "validate", "--json", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = doc["problems"].as_array().unwrap();
    assert!(problems.len() >= 4, "{doc:#}");
    assert!(problems
        .iter()
        .any(|p| p["path"] == "$.turns[4].instruction"));
}

#[test]
fn validate_of_a_missing_path_fails() {
    let out = semkv(&["experiment", "validate", "/nonexistent/semkv-data"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/semkv-data"));
}

#[test]
fn report_from_a_hand_written_results_file() {
    let tmp = tempfile::tempdir().unwrap();
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small-results.jsonl");
    let out_dir = tmp.path().join("report");
    let out = semkv(&[
        "experiment",
        "report",
        results.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("summary.md"));

    let md = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(md.contains("12 outputs of 2 examples"), "{md}");
    assert!(md.contains("model: gemma-3-270m-it"), "{md}");
    // Key-phrase coverage: sequential (.6+.4+.4+.4+.6+.6)/6 = 0.5; semantic 4.2/6 = 0.7.
    let seq_row = md
        .lines()
        .find(|l| l.starts_with("| sequential | 6 |"))
        .unwrap();
    assert!(seq_row.contains("| 0.500 ["), "{seq_row}");
    let sem_row = md
        .lines()
        .find(|l| l.starts_with("| semantic | 6 |"))
        .unwrap();
    assert!(sem_row.contains("| 0.700 ["), "{sem_row}");
    // Paired: per (example, output) differences .2 .2 .2 .4 0 .2, mean +0.2.
    assert!(
        md.contains("| key_phrase_coverage | sequential | semantic | 6 | +0.200 ["),
        "{md}"
    );
    // Mean prompt tokens: 6256 / 6 and 3865 / 6.
    assert!(md.contains("| sequential | 1043 | "), "{md}");
    assert!(md.contains("| semantic | 644 | "), "{md}");

    let csv = std::fs::read_to_string(out_dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
    let svg = std::fs::read_to_string(out_dir.join("metrics.svg")).unwrap();
    assert!(svg.contains("Key-phrase coverage"));
}

#[test]
fn daemon_commands_exit_3_when_the_daemon_cannot_be_reached() {
    // Nothing listens on port 1.
    for args in [
        vec!["--addr", "http://127.0.0.1:1", "cluster", "list"],
        vec!["--addr", "http://127.0.0.1:1", "status"],
    ] {
        let out = semkv(&args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("semkvd"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn run_refuses_an_invalid_dataset_before_contacting_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("x.json");
    std::fs::write(&bad, "[]").unwrap();
    let results = tmp.path().join("r.jsonl");
    let out = semkv(&[
        "--addr",
        "http://127.0.0.1:1",
        "experiment",
        "run",
        bad.to_str().unwrap(),
        "--out",
        results.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("$: a conflicts batch needs at least one example"),
        "{stderr}"
    );
    assert!(!results.exists());

    let good = dataset().join("validation_001_software_eng.json");
    let out = semkv(&[
        "experiment",
        "run",
        good.to_str().unwrap(),
        "--example",
        "no_such_example",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no example \"no_such_example\""));
}

#[test]
fn help_lists_commands_and_exit_codes() {
    let out = semkv(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "cluster",
        "append",
        "generate",
        "chat",
        "experiment",
        "--addr",
        "SEMKV_ADDR",
        "--json",
        "Exit codes",
    ] {
        assert!(help.contains(word), "help lacks {word:?}:\n{help}");
    }
    let out = semkv(&["experiment", "run", "--help"]);
    let help = text(&out.stdout);
    for word in [
        "--resume",
        "--seed",
        "--conditions",
        "turn_based",
        "--format",
        "--max-tokens",
    ] {
        assert!(help.contains(word), "run help lacks {word:?}:\n{help}");
    }
    // A bad command line exits 2.
    assert_eq!(semkv(&["experiment", "run"]).status.code(), Some(2));
}

#[test]
fn model_pull_reports_the_verified_default_model() {
    // Runs only where the model is cached (CI fills the cache with `make model` first,
    // and then requires it); a pull from scratch is covered in crates/semkv-models.
    let cached = semkv_models::pull::default_cache_dir()
        .map(|dir| semkv_models::pull::default_model_path(&dir))
        .ok()
        .filter(|p| p.exists());
    if cached.is_none() && std::env::var("SEMKV_REQUIRE_MODELS").as_deref() != Ok("1") {
        eprintln!("skipping: default model not downloaded");
        return;
    }
    let out = semkv(&["--json", "model", "pull"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = PathBuf::from(v["path"].as_str().unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 253_113_024);
}
