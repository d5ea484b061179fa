//! semkvd end to end: a real daemon process on 127.0.0.1, the real engine with the
//! tiny test checkpoint, a real sled store in a temporary directory.

mod common;

use common::*;
use semkv::proto;
use tonic::Code;

async fn setup_three(c: &mut Client) {
    for (i, id) in ["alpha", "beta", "gamma"].iter().enumerate() {
        create(c, id).await;
        append(c, id, &text(40 + 10 * i, i as u64)).await;
        append(c, id, &text(25, 100 + i as u64)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_concurrent_clusters_equal_solo_runs() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    setup_three(&mut c).await;
    let ids = ["alpha", "beta", "gamma"];
    let mut solo = Vec::new();
    for id in ids {
        let (streamed, s) = generate(&mut c, greedy(id, 40, false)).await.unwrap();
        assert_eq!(streamed, s.tokens, "streamed ids are the summary's");
        assert_eq!(s.tokens.len(), 40);
        solo.push(s.tokens);
    }
    let runs = ids.map(|id| {
        let mut c = c.clone();
        tokio::spawn(async move { generate(&mut c, greedy(id, 40, false)).await.unwrap().1 })
    });
    for (i, run) in runs.into_iter().enumerate() {
        let s = run.await.unwrap();
        assert_eq!(
            s.tokens, solo[i],
            "cluster {} differs when run concurrently",
            ids[i]
        );
        assert!(s.reused_tokens > 0 && !s.committed);
    }
    // They decoded in shared forward passes: some pass holds all three clusters.
    let widest = decode_passes(&mut c)
        .await
        .values()
        .map(Vec::len)
        .max()
        .unwrap();
    assert_eq!(widest, 3, "no batched pass of all three clusters");
    // Committed generations, concurrently, also equal their solo counterparts: a fork
    // of each cluster, committed alone, gives the reference.
    for id in ids {
        fork(&mut c, id, &format!("{id}-solo")).await;
        generate(&mut c, greedy(&format!("{id}-solo"), 20, true))
            .await
            .unwrap();
    }
    let runs = ids.map(|id| {
        let mut c = c.clone();
        tokio::spawn(async move { generate(&mut c, greedy(id, 20, true)).await.unwrap().1 })
    });
    for run in runs {
        run.await.unwrap();
    }
    for id in ids {
        let a = generate(&mut c, greedy(id, 16, false)).await.unwrap().1;
        let b = generate(&mut c, greedy(&format!("{id}-solo"), 16, false))
            .await
            .unwrap()
            .1;
        assert_eq!(a.tokens, b.tokens, "{id}: committed concurrently != alone");
        assert_eq!(a.reused_tokens, b.reused_tokens);
    }
}

/// Clusters decoding in one batch: a client that goes away mid-batch, and a committed
/// generation that finishes early, leave the others' tokens and caches exactly as if
/// each had run alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_members_leaving_early_do_not_disturb_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    setup_three(&mut c).await;
    for id in ["alpha", "gamma"] {
        fork(&mut c, id, &format!("{id}-solo")).await;
    }
    let alpha_solo = summary(&mut c, greedy("alpha-solo", 48, false)).await;
    let gamma_solo = summary(&mut c, greedy("gamma-solo", 12, true)).await;

    // beta's client reads two tokens and hangs up; gamma commits 12 tokens and leaves
    // the batch; alpha decodes 48 through both departures.
    let mut beta = c
        .generate(greedy("beta", 400, false))
        .await
        .unwrap()
        .into_inner();
    let alpha = {
        let mut c = c.clone();
        tokio::spawn(async move { summary(&mut c, greedy("alpha", 48, false)).await })
    };
    let gamma = {
        let mut c = c.clone();
        tokio::spawn(async move { summary(&mut c, greedy("gamma", 12, true)).await })
    };
    beta.message().await.unwrap().expect("a token");
    beta.message().await.unwrap().expect("a token");
    drop(beta);
    let (alpha, gamma) = (alpha.await.unwrap(), gamma.await.unwrap());
    assert_eq!(
        alpha.tokens, alpha_solo.tokens,
        "alpha changed by the batch"
    );
    assert_eq!(
        gamma.tokens, gamma_solo.tokens,
        "gamma changed by the batch"
    );
    assert_eq!(gamma.total_tokens, gamma_solo.total_tokens);

    let passes = decode_passes(&mut c).await;
    assert!(passes.values().any(|p| p.len() >= 2), "nothing was batched");

    // The committed cache continues exactly like its solo twin, and beta still works.
    let a = summary(&mut c, greedy("gamma", 16, false)).await;
    let b = summary(&mut c, greedy("gamma-solo", 16, false)).await;
    assert_eq!(
        a.tokens, b.tokens,
        "gamma's committed cache differs from its solo twin"
    );
    let (_, beta) = generate(&mut c, greedy("beta", 8, false)).await.unwrap();
    assert_eq!(beta.tokens.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_to_one_cluster_never_affect_another() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    for id in ["a", "b"] {
        create(&mut c, id).await;
        append(&mut c, id, &text(30, 7)).await;
    }
    let sampled = |id: &str| proto::GenerateRequest {
        sampling: Some(proto::SamplingParams {
            temperature: 1.0,
            seed: 42,
            ..Default::default()
        }),
        ..greedy(id, 24, false)
    };
    let greedy_before = generate(&mut c, greedy("b", 24, false)).await.unwrap().1;
    let sampled_before = generate(&mut c, sampled("b")).await.unwrap().1;
    // Same content, same output: the two clusters start identical.
    assert_eq!(
        generate(&mut c, greedy("a", 24, false))
            .await
            .unwrap()
            .1
            .tokens,
        greedy_before.tokens
    );
    for i in 0..4 {
        append(&mut c, "a", &text(60, 1000 + i)).await;
    }
    generate(&mut c, greedy("a", 10, true)).await.unwrap();
    let greedy_after = generate(&mut c, greedy("b", 24, false)).await.unwrap().1;
    let sampled_after = generate(&mut c, sampled("b")).await.unwrap().1;
    assert_eq!(greedy_after.tokens, greedy_before.tokens);
    assert_eq!(sampled_after.tokens, sampled_before.tokens);
    assert_eq!(greedy_after.reused_tokens, greedy_before.reused_tokens);
    // And A did change.
    let a = generate(&mut c, greedy("a", 24, false)).await.unwrap().1;
    assert!(a.reused_tokens > greedy_before.reused_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_kill_9_reuses_every_token() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    setup_three(&mut c).await;
    // Committed generations put decode-step segments into the store too.
    generate(&mut c, greedy("beta", 12, true)).await.unwrap();
    let mut expected = Vec::new();
    let mut continued = Vec::new();
    for id in ["alpha", "beta", "gamma"] {
        continued.push(summary(&mut c, continue_greedy(id, 16)).await.tokens);
        let s = generate(&mut c, greedy(id, 30, false)).await.unwrap().1;
        let total = c
            .get_cluster(proto::GetClusterRequest {
                cluster_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .cache_tokens;
        expected.push((s.tokens, total));
    }
    daemon.kill9();

    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    let listed = c
        .list_clusters(proto::ListClustersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .clusters;
    assert_eq!(listed.len(), 3);
    assert!(listed
        .iter()
        .all(|c| c.residency == proto::Residency::Cold as i32));
    for (id, (tokens, total)) in ["alpha", "beta", "gamma"].iter().zip(expected) {
        // Continuing (no new text) starts from the logits stored with the cache; the
        // request loads the cluster lazily from disk, without any prefill.
        let s = summary(&mut c, continue_greedy(id, 16)).await;
        let load = s.cache_load.clone().unwrap();
        assert!(
            load.loaded_from_disk,
            "{id}: expected a lazy load from disk"
        );
        assert_eq!(
            load.rebuilt_tokens, 0,
            "{id}: re-prefilled ({})",
            load.rebuild_reason
        );
        assert_eq!(s.prompt_tokens, 0);
        assert_eq!(s.reused_tokens, total);
        assert_eq!(
            s.tokens,
            continued.remove(0),
            "{id}: continuation changed across the restart"
        );
        let s = generate(&mut c, greedy(id, 30, false)).await.unwrap().1;
        assert_eq!(s.tokens, tokens, "{id}: output changed across the restart");
        assert_eq!(s.reused_tokens, total, "{id}: not every prior token reused");
    }
}

/// The cache blob files of cluster `id` whose names end in `.{part}` (`b` base, `k`
/// delta, `l` logits), oldest first.
fn blob_files(data_dir: &std::path::Path, id: &str, part: char) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(data_dir.join("blobs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&format!("{id}+")) && name.ends_with(&format!(".{part}"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .{part} blob of {id}");
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_cache_blob_is_detected_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    create(&mut c, "victim").await;
    append(&mut c, "victim", &text(50, 1)).await;
    generate(&mut c, greedy("victim", 8, true)).await.unwrap();
    append(&mut c, "victim", &text(30, 2)).await;
    let expected = generate(&mut c, greedy("victim", 30, false))
        .await
        .unwrap()
        .1;
    create(&mut c, "no-logits").await;
    append(&mut c, "no-logits", &text(40, 3)).await;
    let continued = summary(&mut c, continue_greedy("no-logits", 12)).await;
    daemon.kill9();

    // A cache whose next-token logits file was lost.
    std::fs::remove_file(&blob_files(dir.path(), "no-logits", 'l')[0]).unwrap();

    // Flip one bit in the first cache delta (layout: docs/architecture.md, src/store/).
    {
        let first = &blob_files(dir.path(), "victim", 'k')[0];
        let mut v = std::fs::read(first).unwrap();
        let mid = v.len() / 2;
        v[mid] ^= 0x10;
        std::fs::write(first, v).unwrap();
    }

    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    let s = summary(&mut c, continue_greedy("no-logits", 12)).await;
    assert_eq!(s.tokens, continued.tokens);
    let load = s.cache_load.unwrap();
    // Every token of the cache was re-prefilled: rebuilt, none reused.
    assert_eq!(load.rebuilt_tokens, continued.reused_tokens);
    assert_eq!(s.reused_tokens, 0);
    assert!(
        load.rebuild_reason.contains("missing"),
        "{}",
        load.rebuild_reason
    );
    let s = generate(&mut c, greedy("victim", 30, false))
        .await
        .unwrap()
        .1;
    assert_eq!(
        s.tokens, expected.tokens,
        "rebuilt cluster generates differently"
    );
    let load = s.cache_load.unwrap();
    assert_eq!(load.rebuilt_tokens, expected.reused_tokens);
    assert_eq!(s.reused_tokens, 0, "rebuilt tokens are not reused ones");
    assert!(
        load.rebuild_reason.contains("checksum"),
        "{}",
        load.rebuild_reason
    );
    let info = c
        .get_cluster(proto::GetClusterRequest {
            cluster_id: "victim".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.rebuilds, 1);
    daemon.kill9();

    // The rebuild wrote a fresh snapshot: the next start restores without prefill.
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    let s = generate(&mut c, greedy("victim", 30, false))
        .await
        .unwrap()
        .1;
    assert_eq!(s.tokens, expected.tokens);
    let load = s.cache_load.unwrap();
    assert!(load.loaded_from_disk);
    assert_eq!(load.rebuilt_tokens, 0);
    assert_eq!(s.reused_tokens, expected.reused_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fair_decode_with_four_streams_and_a_huge_prefill() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    let streams = ["s1", "s2", "s3", "s4"];
    for (i, id) in streams.iter().enumerate() {
        create(&mut c, id).await;
        append(&mut c, id, &text(20, i as u64)).await;
    }
    create(&mut c, "huge").await;
    // ~3,600 tokens: as long as the tiny model's 4,096 positions allow.
    let huge_text = text(800, 99);
    let mut runs = Vec::new();
    for id in streams {
        let mut c = c.clone();
        runs.push(tokio::spawn(async move {
            generate(&mut c, greedy(id, 200, false)).await.unwrap();
        }));
    }
    let mut hc = c.clone();
    let huge = tokio::spawn(async move { append(&mut hc, "huge", &huge_text).await });
    for r in runs {
        r.await.unwrap();
    }
    let huge = huge.await.unwrap();
    assert!(huge.tokens_added > 2000, "{} tokens", huge.tokens_added);

    let trace = c
        .get_scheduler_trace(proto::GetSchedulerTraceRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner();
    for id in streams {
        // 200 tokens: one step hands out the first token (read from the prefill's
        // logits), the next feeds it, then one step per token.
        assert_eq!(trace.decode_steps[id], 201, "{id}");
    }
    let steps = &trace.steps;
    let decode = proto::StepKind::Decode as i32;
    let is_decode_of = |s: &proto::SchedulerStep, id: &str| s.kind == decode && s.cluster_id == id;
    // From each stream's second decode step: the first one hands out the token the
    // prefill computed (no model work, not batched); from the next on, streams decode
    // together.
    let first = |id: &str| {
        let mut at = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| is_decode_of(s, id));
        at.nth(1).unwrap().0
    };
    let last = |id: &str| steps.iter().rposition(|s| is_decode_of(s, id)).unwrap();
    let start = streams.iter().map(|id| first(id)).max().unwrap();
    let end = streams.iter().map(|id| last(id)).min().unwrap();
    let overlap = &steps[start..=end];
    let both: Vec<&proto::SchedulerStep> = overlap
        .iter()
        .filter(|s| s.kind == decode && streams.contains(&s.cluster_id.as_str()))
        .collect();
    assert!(
        both.len() >= 400,
        "streams overlapped for only {} decode steps",
        both.len()
    );
    // Within 10% of each other over every window of 40 decode steps.
    for window in both.windows(40) {
        let counts: Vec<usize> = streams
            .iter()
            .map(|id| window.iter().filter(|s| s.cluster_id == *id).count())
            .collect();
        let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
        assert!(
            (max - min) as f64 <= 0.1 * max as f64,
            "unfair window: {counts:?}"
        );
    }
    // The huge prefill ran during the overlap, yet no stream waited more than one
    // round (4 decode steps + 1 prefill chunk) for its next token.
    let huge_chunks = overlap.iter().filter(|s| s.cluster_id == "huge").count();
    assert!(
        huge_chunks > 0,
        "the huge prefill did not overlap the streams"
    );
    for id in streams {
        let at: Vec<usize> = overlap
            .iter()
            .enumerate()
            .filter(|(_, s)| is_decode_of(s, id))
            .map(|(i, _)| i)
            .collect();
        let gap = at.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(gap <= 5, "{id} waited {gap} steps between tokens");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--queue-depth", "1"]);
    let mut c = daemon.client().await;
    let code_and_message = |r: Result<tonic::Response<proto::Cluster>, tonic::Status>| {
        let e = r.unwrap_err();
        (e.code(), e.message().to_owned())
    };
    let (code, msg) = code_and_message(
        c.create_cluster(proto::CreateClusterRequest {
            cluster_id: "../etc".into(),
            labels: Default::default(),
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.starts_with("cluster_id:"), "{msg}");
    create(&mut c, "x").await;
    let (code, _) = code_and_message(
        c.create_cluster(proto::CreateClusterRequest {
            cluster_id: "x".into(),
            labels: Default::default(),
        })
        .await,
    );
    assert_eq!(code, Code::AlreadyExists);
    let (code, _) = code_and_message(
        c.get_cluster(proto::GetClusterRequest {
            cluster_id: "nope".into(),
        })
        .await,
    );
    assert_eq!(code, Code::NotFound);
    let e = c
        .append_turns(proto::AppendTurnsRequest {
            cluster_id: "nope".into(),
            turns: vec![user("hi")],
            format: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .append_turns(proto::AppendTurnsRequest {
            cluster_id: "x".into(),
            turns: vec![user("ok"), user("")],
            format: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("turns[1].text:"), "{}", e.message());
    let e = c
        .append_turns(proto::AppendTurnsRequest {
            cluster_id: "x".into(),
            turns: vec![user(&"y".repeat((1 << 20) + 1))],
            format: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("turns[0].text:"), "{}", e.message());
    let bad_sampling = proto::GenerateRequest {
        sampling: Some(proto::SamplingParams {
            top_p: 1.5,
            ..Default::default()
        }),
        ..greedy("x", 4, false)
    };
    let e = generate(&mut c, bad_sampling).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("sampling.top_p:"),
        "{}",
        e.message()
    );
    let e = generate(&mut c, greedy("x", 0, false)).await.unwrap_err();
    assert!(e.message().starts_with("max_tokens:"), "{}", e.message());
    let e = generate(&mut c, continue_greedy("x", 4)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("turns:") && e.message().contains("empty"),
        "{}",
        e.message()
    );

    // Queue depth 1: a long stream holds the only slot...
    append(&mut c, "x", "hello").await;
    let mut long = c
        .generate(greedy("x", 4000, false))
        .await
        .unwrap()
        .into_inner();
    long.message().await.unwrap().expect("first token");
    let e = generate(&mut c, greedy("x", 4, false)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    assert!(e.message().contains("queue"), "{}", e.message());
    // ...and cancelling it frees the slot at once.
    drop(long);
    let mut ok = false;
    for _ in 0..100 {
        match generate(&mut c, greedy("x", 4, false)).await {
            Ok((_, s)) => {
                assert_eq!(s.tokens.len(), 4);
                ok = true;
                break;
            }
            Err(e) if e.code() == Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok, "the cancelled stream's slot was not freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_evict_persist_delete_budget_and_drain() {
    let dir = tempfile::tempdir().unwrap();
    // A budget that fits about one tiny cluster: LRU eviction must kick in.
    let daemon = Daemon::start(dir.path(), &["--max-cache-bytes", "64KiB"]);
    let mut c = daemon.client().await;
    let mut labels = std::collections::HashMap::new();
    labels.insert("topic".to_string(), "physics".to_string());
    c.create_cluster(proto::CreateClusterRequest {
        cluster_id: "p".into(),
        labels: labels.clone(),
    })
    .await
    .unwrap();
    create(&mut c, "q").await;
    append(&mut c, "p", &text(40, 3)).await;
    let fork = c
        .fork_cluster(proto::ForkClusterRequest {
            source_cluster_id: "p".into(),
            new_cluster_id: "p2".into(),
            labels: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fork.labels, labels);
    let e = c
        .fork_cluster(proto::ForkClusterRequest {
            source_cluster_id: "p".into(),
            new_cluster_id: "q".into(),
            labels: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let selected = c
        .list_clusters(proto::ListClustersRequest {
            label_selector: labels.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .clusters;
    let mut ids: Vec<String> = selected.into_iter().map(|c| c.id).collect();
    ids.sort();
    assert_eq!(ids, ["p", "p2"]);

    // The fork is independent: committing to it leaves the source as it was.
    let base = generate(&mut c, greedy("p", 16, false)).await.unwrap().1;
    assert_eq!(
        generate(&mut c, greedy("p2", 16, false))
            .await
            .unwrap()
            .1
            .tokens,
        base.tokens
    );
    append(&mut c, "p2", &text(20, 4)).await;
    assert_eq!(
        generate(&mut c, greedy("p", 16, false))
            .await
            .unwrap()
            .1
            .tokens,
        base.tokens
    );

    // Evict: cold, then transparently reloaded without prefill.
    let freed = c
        .evict_cluster(proto::EvictClusterRequest {
            cluster_id: "p".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .freed_bytes;
    let p = c
        .get_cluster(proto::GetClusterRequest {
            cluster_id: "p".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.residency, proto::Residency::Cold as i32, "freed {freed}");
    let s = generate(&mut c, greedy("p", 16, false)).await.unwrap().1;
    assert_eq!(s.tokens, base.tokens);
    let load = s.cache_load.unwrap();
    assert!(load.loaded_from_disk && load.rebuilt_tokens == 0);

    // Budget: using several clusters keeps at most the budget in memory.
    append(&mut c, "q", &text(40, 5)).await;
    generate(&mut c, greedy("p2", 4, false)).await.unwrap();
    let info = c
        .get_server_info(proto::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.max_cache_bytes, 64 << 10);
    assert!(
        info.cache_bytes <= 64 << 10 || info.hot_clusters == 1,
        "{info:?}"
    );
    assert!(info.hot_clusters < 3, "{info:?}");
    assert_eq!(info.known_clusters, 3);
    assert_eq!(info.model_fingerprint.len(), 32);

    // Persist writes one snapshot; the output is unchanged.
    let persisted = c
        .persist_cluster(proto::PersistClusterRequest {
            cluster_id: "p2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(persisted.snapshot_bytes > 0);

    // Delete, then the id is free again.
    c.delete_cluster(proto::DeleteClusterRequest {
        cluster_id: "p".into(),
    })
    .await
    .unwrap();
    let e = generate(&mut c, greedy("p", 4, false)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    create(&mut c, "p").await;
    let fresh = c
        .get_cluster(proto::GetClusterRequest {
            cluster_id: "p".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fresh.cache_tokens, 0);

    let p2_tokens = c
        .get_cluster(proto::GetClusterRequest {
            cluster_id: "p2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cache_tokens;
    assert!(p2_tokens > fork.cache_tokens);

    // SIGTERM: drains and exits cleanly; everything acknowledged is still there.
    drop(c);
    assert!(daemon.terminate(), "semkvd did not exit cleanly on SIGTERM");
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    let s = generate(&mut c, greedy("p2", 16, false)).await.unwrap().1;
    assert_eq!(s.cache_load.unwrap().rebuilt_tokens, 0);
    assert_eq!(s.reused_tokens, p2_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_work_without_proto_files() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let url = format!("http://{}", daemon.addr);
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "semkv.v1.SemKv"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "semkv.v1.SemKv",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
}
