//! The store under real faults, through real `semkvd` processes on the tiny model:
//! churn gives space back; flipped bits and truncations of the database are refused
//! cleanly (exit 3, the file named) or served correctly, never a panic or a silent
//! loss, and `semkvd repair` salvages what is readable; a full filesystem (a tmpfs,
//! when root) gives RESOURCE_EXHAUSTED and recovers without a restart; a store made
//! with another model is refused (exit 4); a cluster with damaged records can be
//! listed and deleted; store files are private.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use semkv::proto;

fn semkvd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_semkvd"));
    cmd.env_remove("SEMKV_CONFIG")
        .env_remove("SEMKV_LISTEN")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// How a start of `semkvd` on `data_dir` ended.
#[derive(Debug)]
enum Start {
    /// It listened (and was stopped again).
    Served,
    /// It exited with this code and stderr.
    Exited(i32, String),
}

/// Starts `semkvd` on `data_dir` with `model` and waits until it listens or exits.
fn try_start(data_dir: &Path, model: &Path) -> Start {
    let mut child = semkvd()
        .args(["--listen", "127.0.0.1:0", "--device", "cpu", "--model"])
        .arg(model)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn semkvd");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("semkvd listening on") {
                let _ = tx.send(());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if rx.try_recv().is_ok() {
            let _ = child.kill();
            let _ = child.wait();
            return Start::Served;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            // A signal (SIGSEGV, SIGABRT) has no code: report it as -1.
            return Start::Exited(status.code().unwrap_or(-1), err);
        }
        assert!(
            Instant::now() < deadline,
            "semkvd neither served nor exited"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn repair(data_dir: &Path) -> (i32, String) {
    let out = semkvd()
        .arg("--data-dir")
        .arg(data_dir)
        .arg("repair")
        .output()
        .expect("run semkvd repair");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        dir_bytes(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn list(c: &mut Client) -> Vec<proto::Cluster> {
    c.list_clusters(proto::ListClustersRequest::default())
        .await
        .expect("list")
        .into_inner()
        .clusters
}

/// Three clusters with a few turns each; returns their greedy continuations.
async fn populate(dir: &Path) -> Vec<(String, u64, Vec<u32>)> {
    let daemon = Daemon::start(dir, &[]);
    let mut c = daemon.client().await;
    let mut out = Vec::new();
    for (i, id) in ["alpha", "beta", "gamma"].iter().enumerate() {
        create(&mut c, id).await;
        append(&mut c, id, &text(40, i as u64)).await;
        append(&mut c, id, &text(20, 10 + i as u64)).await;
        let s = summary(&mut c, greedy(id, 6, false)).await;
        out.push((id.to_string(), s.total_tokens, s.tokens));
    }
    assert!(daemon.terminate());
    out
}

/// Checks that a daemon on `dir` serves `clusters` exactly as before (the clusters in
/// `lost` excepted, which must be gone).
async fn served_as_before(
    what: &str,
    dir: &Path,
    clusters: &[(String, u64, Vec<u32>)],
    lost: &[String],
    older: &[String],
) {
    let daemon = Daemon::start(dir, &[]);
    let mut c = daemon.client().await;
    let listed = list(&mut c).await;
    for (id, tokens, continuation) in clusters {
        if lost.contains(id) {
            assert!(
                !listed.iter().any(|l| &l.id == id),
                "{what}: {id} reported lost but listed"
            );
            continue;
        }
        let l = listed
            .iter()
            .find(|l| &l.id == id)
            .unwrap_or_else(|| panic!("{what}: {id} silently gone"));
        if older.contains(id) {
            // Reported as rolled back: it must still be whole and usable.
            assert!(l.cache_tokens <= *tokens, "{what}: {id}");
            summary(&mut c, greedy(id, 6, false)).await;
            continue;
        }
        assert_eq!(l.cache_tokens, *tokens, "{what}: {id}");
        let s = summary(&mut c, greedy(id, 6, false)).await;
        assert_eq!(
            &s.tokens, continuation,
            "{what}: {id} continues differently"
        );
    }
    daemon.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    create(&mut c, "warmup").await;
    c.delete_cluster(proto::DeleteClusterRequest {
        cluster_id: "warmup".into(),
    })
    .await
    .unwrap();
    let empty = dir_bytes(dir.path());
    for cycle in 0..25 {
        let id = format!("c{cycle}");
        create(&mut c, &id).await;
        for i in 0..3 {
            append(&mut c, &id, &text(30, cycle * 3 + i)).await;
        }
        summary(&mut c, greedy(&id, 4, true)).await;
        c.delete_cluster(proto::DeleteClusterRequest { cluster_id: id })
            .await
            .unwrap();
    }
    let after = dir_bytes(dir.path());
    assert!(list(&mut c).await.is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
        0
    );
    assert!(
        after < empty + (4 << 20),
        "{after} bytes after 25 cycles with no cluster left (empty: {empty})"
    );
    assert!(daemon.terminate());
}

/// Flips `bits` bits at pseudo-random places of `file` (seeded).
fn flip_bits(file: &Path, bits: usize, seed: u64) {
    let mut bytes = std::fs::read(file).unwrap();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for _ in 0..bits {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = (x >> 33) as usize % bytes.len();
        bytes[at] ^= 1 << ((x >> 29) & 7);
    }
    std::fs::write(file, bytes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Damage of the database below semkv's own checks: every outcome is either a clean
/// refusal naming the database (then `semkvd repair` salvages, and what it keeps is
/// served exactly as before) or a start that serves every cluster exactly as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_truncated_database_is_refused_or_served_right_then_repaired() {
    let pristine = tempfile::tempdir().unwrap();
    let clusters = populate(pristine.path()).await;
    type Damage = Box<dyn Fn(&Path)>;
    let db_file = |d: &Path| d.join("sled/db");
    let truncate = |keep: fn(u64) -> u64| -> Damage {
        Box::new(move |d: &Path| {
            let f = std::fs::File::options()
                .write(true)
                .open(d.join("sled/db"))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(keep(len)).unwrap()
        })
    };
    let damages: Vec<(String, Damage)> = vec![
        ("truncated to 0".to_owned(), truncate(|_| 0)),
        ("truncated to half".to_owned(), truncate(|n| n / 2)),
    ]
    .into_iter()
    .chain((0..6u64).map(|seed| {
        let bits = [1usize, 4, 16, 64, 256, 8][seed as usize];
        (
            format!("{bits} bits flipped (seed {seed})"),
            Box::new(move |d: &Path| flip_bits(&d.join("sled/db"), bits, seed)) as Damage,
        )
    }))
    .collect();
    let mut refused = 0;
    for (what, damage) in &damages {
        let work = tempfile::tempdir().unwrap();
        let dir: PathBuf = work.path().join("data");
        copy_dir(pristine.path(), &dir);
        assert!(db_file(&dir).exists());
        damage(&dir);
        match try_start(&dir, &model_dir()) {
            Start::Served => {
                served_as_before(&format!("{what}, served"), &dir, &clusters, &[], &[]).await
            }
            Start::Exited(code, err) => {
                assert_eq!(code, 3, "{what}: exit {code}: {err}");
                assert!(
                    err.contains("sled"),
                    "{what}: the message names the database: {err}"
                );
                refused += 1;
                let (code, report) = repair(&dir);
                let named = |tag: &str| -> Vec<String> {
                    report
                        .lines()
                        .filter_map(|l| l.strip_prefix(tag))
                        .map(|l| l.split(':').next().unwrap().to_owned())
                        .collect()
                };
                let (lost, older) = (named("LOST "), named("OLDER "));
                if code == 3 && report.contains("repair failed") {
                    // Nothing could be opened: reported, the store left as it was.
                    assert!(report.contains("cannot open"), "{what}: {report}");
                    continue;
                }
                assert!(
                    code == 0 || code == 3,
                    "{what}: repair exit {code}: {report}"
                );
                eprintln!("{what}: repaired: {report}");
                served_as_before(&format!("{what}, repaired"), &dir, &clusters, &lost, &older)
                    .await;
            }
        }
    }
    assert!(refused >= 2, "the truncations at least are refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_made_with_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path()).await;
    let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gemma3-q4");
    match try_start(dir.path(), &other) {
        Start::Exited(4, err) => assert!(err.contains("made with model"), "{err}"),
        other => panic!("expected exit 4, got {other:?}"),
    }
    // The store is untouched: the right model still serves it.
    assert!(matches!(try_start(dir.path(), &model_dir()), Start::Served));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_damaged_metadata_is_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path()).await;
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        let mut v = db.get("m/beta").unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 0x20;
        db.insert("m/beta", v).unwrap();
        db.flush().unwrap();
    }
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    let listed = list(&mut c).await;
    let beta = listed.iter().find(|l| l.id == "beta").expect("listed");
    assert_eq!(beta.residency, proto::Residency::Damaged as i32);
    assert!(beta.damage.contains("checksum"), "{}", beta.damage);
    let err = c
        .get_cluster(proto::GetClusterRequest {
            cluster_id: "beta".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DataLoss);
    c.delete_cluster(proto::DeleteClusterRequest {
        cluster_id: "beta".into(),
    })
    .await
    .expect("a damaged cluster can be deleted");
    let listed = list(&mut c).await;
    assert_eq!(listed.len(), 2);
    let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("beta+"))
        .collect();
    assert!(blobs.is_empty(), "its blobs are freed");
    create(&mut c, "beta").await;
    daemon.kill9();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    populate(&data).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                assert_eq!(mode(&e.path()), 0o600, "{}", e.path().display());
            }
        }
    }
}

/// Mounts a tmpfs of `mb` MB at `dir` (root only); unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mb: u32) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A real full filesystem: writes fail with RESOURCE_EXHAUSTED naming the cause, reads,
/// health, listing, deletes and SIGTERM keep working, writes work again once space is
/// freed (no restart), and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    // A real 24 MB filesystem where root may mount one; elsewhere the same limits
    // through a 20 MiB store budget (the daemon's own check, not the kernel's ENOSPC).
    // SEMKV_TEST_NO_TMPFS=1 takes the budget path where a tmpfs could be mounted.
    let tmpfs = match std::env::var("SEMKV_TEST_NO_TMPFS").as_deref() {
        Ok("1") => {
            std::fs::create_dir_all(&mount).unwrap();
            None
        }
        _ => Tmpfs::mount(&mount, 24),
    };
    let limit: &[&str] = if tmpfs.is_some() {
        &["--min-free-bytes", "1MiB"]
    } else {
        eprintln!("no tmpfs (needs root): filling a 20MiB --max-store-bytes budget instead");
        &["--max-store-bytes", "20MiB"]
    };
    let data = mount.join("data");
    let daemon = Daemon::start(&data, limit);
    let mut c = daemon.client().await;
    let mut acknowledged = Vec::new();
    let mut full = None;
    'fill: for n in 0..200 {
        let id = format!("f{n}");
        create(&mut c, &id).await;
        // 12 appends of ~280 tokens stay within the tiny model's 4,096 positions.
        for i in 0..12 {
            let r = c
                .append_turns(proto::AppendTurnsRequest {
                    cluster_id: id.clone(),
                    turns: vec![user(&text(60, (n * 50 + i) as u64))],
                    format: proto::TurnFormat::Chat as i32,
                })
                .await;
            match r {
                Ok(r) => acknowledged.push((id.clone(), r.into_inner().total_tokens)),
                Err(status) => {
                    full = Some(status);
                    break 'fill;
                }
            }
        }
    }
    let status = full.expect("the store filled up");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("free") || status.message().contains("--max-store-bytes"),
        "{}",
        status.message()
    );
    // Everything else keeps working.
    let info = c
        .get_server_info(proto::GetServerInfoRequest {})
        .await
        .expect("server info while full");
    assert!(info.into_inner().store_bytes > 0);
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", daemon.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health while full");
    let listed = list(&mut c).await;
    assert!(!listed.is_empty());
    let (last_id, last_tokens) = acknowledged.last().cloned().unwrap();
    assert_eq!(cache_tokens(&mut c, &last_id).await, last_tokens);
    // Free space: writes work again, without a restart.
    for l in listed.iter().filter(|l| l.id != last_id) {
        c.delete_cluster(proto::DeleteClusterRequest {
            cluster_id: l.id.clone(),
        })
        .await
        .expect("delete while full");
    }
    append(&mut c, &last_id, "after the disk had room again").await;
    assert!(daemon.terminate(), "SIGTERM works after a full disk");
    // Nothing acknowledged was lost.
    let daemon = Daemon::start(&data, limit);
    let mut c = daemon.client().await;
    assert!(cache_tokens(&mut c, &last_id).await > last_tokens);
    summary(&mut c, greedy(&last_id, 4, false)).await;
    daemon.kill9();
}
