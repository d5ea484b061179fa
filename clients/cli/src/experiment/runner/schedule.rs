//! The pure half of a batch: which outputs are left ([`schedule`]), in which steps one
//! (example, condition) pair runs ([`steps`]), and the ids and seeds that make a
//! resumed batch identical to an uninterrupted one ([`cluster_id`], [`output_seed`]).

use std::collections::BTreeMap;

use crate::experiment::conditions::{Condition, Plan};
use crate::experiment::dataset::{Example, Output};
use crate::experiment::results::ResultsIndex;

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's finalizer: spreads the bits of `x`.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The sampler seed of `output` of `example_id` in a batch seeded `batch_seed`.
///
/// It does not depend on the condition: the four conditions of an output sample with
/// the same random stream, so they differ only in their context (common random
/// numbers make the paired comparisons sharper). It does not depend on run order
/// either, so a resumed batch reproduces an uninterrupted one.
pub fn output_seed(batch_seed: u64, example_id: &str, output: Output) -> u64 {
    let mut key = example_id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(output.as_str().as_bytes());
    mix64(fnv1a(&key) ^ mix64(batch_seed))
}

/// Longest cluster id the runner creates.
pub const MAX_CLUSTER_ID: usize = 64;

/// A cluster id made of lowercase ASCII letters, digits and single dashes.
fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// The id of a cluster of this batch: `{prefix}-{example}-{condition}-{name}`,
/// slugified; ids longer than [`MAX_CLUSTER_ID`] keep their start and end in a hash.
pub fn cluster_id(prefix: &str, example_id: &str, condition: Condition, name: &str) -> String {
    let id = slug(&format!("{prefix}-{example_id}-{condition}-{name}"));
    if id.len() <= MAX_CLUSTER_ID {
        return id;
    }
    let hash = format!("{:016x}", fnv1a(id.as_bytes()));
    format!(
        "{}-{}",
        id[..MAX_CLUSTER_ID - 17].trim_end_matches('-'),
        hash
    )
}

/// Whether `id` is one this batch's cluster prefix names: a context (`fork: false`)
/// or a throwaway fork (`fork: true`).
pub fn is_batch_cluster(prefix: &str, id: &str, fork: bool) -> bool {
    let start = format!("{}-", slug(prefix));
    id.starts_with(&start) && id.contains("-fork-") == fork
}

/// The id of the throwaway fork `output` is generated on.
pub fn fork_id(
    prefix: &str,
    example_id: &str,
    condition: Condition,
    context: &str,
    output: Output,
) -> String {
    cluster_id(
        prefix,
        example_id,
        condition,
        &format!("{context}-fork-{output}"),
    )
}

/// One (example, condition) pair with outputs still to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    /// Index into the examples.
    pub example: usize,
    /// The condition.
    pub condition: Condition,
    /// Outputs not yet in the results, in generation order.
    pub pending: Vec<Output>,
}

/// The work left: every (example, condition) pair, example-major, with the outputs
/// `done` does not hold yet; pairs with nothing left are omitted.
pub fn schedule(
    examples: &[Example],
    conditions: &[Condition],
    done: &ResultsIndex,
) -> Vec<WorkItem> {
    let mut items = Vec::new();
    for (i, ex) in examples.iter().enumerate() {
        for &condition in conditions {
            let pending: Vec<Output> = Output::ALL
                .into_iter()
                .filter(|&o| !done.is_done(&ex.id, condition, o))
                .collect();
            if !pending.is_empty() {
                items.push(WorkItem {
                    example: i,
                    condition,
                    pending,
                });
            }
        }
    }
    items
}

/// One thing the runner does on the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the context's cluster and append its segments.
    Build(String),
    /// Fork the context, generate the output on the fork, delete the fork.
    Generate { output: Output, context: String },
    /// The context is no longer needed.
    Drop(String),
}

/// The steps that generate `pending` outputs of `plan`: each context is built just
/// before its first pending output (after that output's dependencies) and dropped
/// after its last one; contexts no pending output uses are never built.
pub fn steps(plan: &Plan, pending: &[Output]) -> Vec<Step> {
    let wanted: Vec<_> = plan
        .requests
        .iter()
        .filter(|r| pending.contains(&r.output))
        .collect();
    let mut out = Vec::new();
    for (i, r) in wanted.iter().enumerate() {
        let first = !wanted[..i].iter().any(|w| w.context == r.context);
        if first {
            out.push(Step::Build(r.context.clone()));
        }
        out.push(Step::Generate {
            output: r.output,
            context: r.context.clone(),
        });
        let last = !wanted[i + 1..].iter().any(|w| w.context == r.context);
        if last {
            out.push(Step::Drop(r.context.clone()));
        }
    }
    out
}

/// The texts of the outputs of (example, condition) already recorded in `done`: what
/// a context depending on them (semantic cluster 3) is built from on resume.
pub fn recorded_texts(
    done: &ResultsIndex,
    example_id: &str,
    condition: Condition,
) -> BTreeMap<Output, String> {
    Output::ALL
        .into_iter()
        .filter_map(|o| {
            done.get(example_id, condition, o)
                .map(|r| (o, r.text.clone()))
        })
        .collect()
}

/// Total outputs left in `items`.
pub fn pending_outputs(items: &[WorkItem]) -> usize {
    items.iter().map(|w| w.pending.len()).sum()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::client::TextFormat;
    use crate::experiment::conditions;
    use crate::experiment::dataset;
    use crate::experiment::results::tests::record;

    fn examples() -> Vec<Example> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/semantic-isolation");
        dataset::load(&dir).unwrap()
    }

    #[test]
    fn seeds_are_stable_and_independent_of_condition_and_order() {
        let a = output_seed(42, "validation_001_software_eng", Output::A);
        assert_eq!(a, output_seed(42, "validation_001_software_eng", Output::A));
        assert_ne!(a, output_seed(42, "validation_001_software_eng", Output::B));
        assert_ne!(a, output_seed(43, "validation_001_software_eng", Output::A));
        assert_ne!(a, output_seed(42, "validation_002", Output::A));
        // Regression guard: the derivation must not change between versions, or
        // resumed batches would sample differently from their first half.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(mix64(0), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn cluster_ids_are_safe_and_bounded() {
        assert_eq!(
            cluster_id(
                "exp",
                "validation_001_software_eng",
                Condition::TurnBased,
                "shared"
            ),
            "exp-validation-001-software-eng-turn-based-shared"
        );
        assert_eq!(
            fork_id(
                "Run 7!",
                "conflict_001",
                Condition::Semantic,
                "cluster_3",
                Output::C
            ),
            "run-7-conflict-001-semantic-cluster-3-fork-c"
        );
        let long = cluster_id(
            "a-very-long-prefix-for-a-batch",
            "validation_019_science_climate_model_policy",
            Condition::Semantic,
            "cluster_3-fork-C",
        );
        assert!(long.len() <= MAX_CLUSTER_ID, "{long}");
        assert!(long.starts_with("a-very-long-prefix"));
        let other = cluster_id(
            "a-very-long-prefix-for-a-batch",
            "validation_019_science_climate_model_policy",
            Condition::Semantic,
            "cluster_3-fork-B",
        );
        assert_ne!(long, other, "hash keeps truncated ids distinct");
        assert!(long
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn schedule_skips_done_outputs() {
        let ex = examples();
        let conds = [Condition::Sequential, Condition::Semantic];
        let full = schedule(&ex[..2], &conds, &ResultsIndex::default());
        assert_eq!(full.len(), 4);
        assert_eq!(pending_outputs(&full), 12);
        assert_eq!(
            full[1],
            WorkItem {
                example: 0,
                condition: Condition::Semantic,
                pending: vec![Output::A, Output::B, Output::C]
            }
        );

        let id0 = ex[0].id.as_str();
        let done = ResultsIndex::from_records([
            record(id0, Condition::Sequential, Output::A),
            record(id0, Condition::Sequential, Output::B),
            record(id0, Condition::Sequential, Output::C),
            record(id0, Condition::Semantic, Output::A),
            record(id0, Condition::Semantic, Output::B),
            // A condition that is not being run does not matter.
            record(id0, Condition::Prompted, Output::A),
        ]);
        let left = schedule(&ex[..2], &conds, &done);
        assert_eq!(left.len(), 3);
        assert_eq!(
            left[0],
            WorkItem {
                example: 0,
                condition: Condition::Semantic,
                pending: vec![Output::C]
            }
        );
        assert_eq!(left[1].example, 1);
        assert_eq!(pending_outputs(&left), 7);
    }

    #[test]
    fn steps_build_each_context_once_and_drop_it_after_last_use() {
        let ex = &examples()[0];
        let shared = conditions::plan(ex, Condition::TurnBased, TextFormat::Chat);
        let gen = |o, c: &str| Step::Generate {
            output: o,
            context: c.to_owned(),
        };
        assert_eq!(
            steps(&shared, &Output::ALL),
            vec![
                Step::Build("shared".into()),
                gen(Output::A, "shared"),
                gen(Output::B, "shared"),
                gen(Output::C, "shared"),
                Step::Drop("shared".into()),
            ]
        );
        let semantic = conditions::plan(ex, Condition::Semantic, TextFormat::Raw);
        assert_eq!(
            steps(&semantic, &Output::ALL),
            vec![
                Step::Build("cluster_1".into()),
                gen(Output::A, "cluster_1"),
                Step::Drop("cluster_1".into()),
                Step::Build("cluster_2".into()),
                gen(Output::B, "cluster_2"),
                Step::Drop("cluster_2".into()),
                Step::Build("cluster_3".into()),
                gen(Output::C, "cluster_3"),
                Step::Drop("cluster_3".into()),
            ]
        );
        // Resuming with only C left builds only cluster 3.
        assert_eq!(
            steps(&semantic, &[Output::C]),
            vec![
                Step::Build("cluster_3".into()),
                gen(Output::C, "cluster_3"),
                Step::Drop("cluster_3".into()),
            ]
        );
        assert_eq!(
            steps(&shared, &[Output::B]),
            vec![
                Step::Build("shared".into()),
                gen(Output::B, "shared"),
                Step::Drop("shared".into()),
            ]
        );
        assert!(steps(&shared, &[]).is_empty());
    }

    #[test]
    fn resumed_semantic_c_is_rendered_from_recorded_outputs() {
        // A resumed C: the texts of A and B come from the results file, and cluster
        // 3's first segment carries them.
        let ex = &examples()[0];
        let mut a = record(&ex.id, Condition::Semantic, Output::A);
        a.text = "recorded A".into();
        let mut b = record(&ex.id, Condition::Semantic, Output::B);
        b.text = "recorded B".into();
        let done = ResultsIndex::from_records([a, b]);
        let texts = recorded_texts(&done, &ex.id, Condition::Semantic);
        assert_eq!(texts.len(), 2);
        assert!(recorded_texts(&done, &ex.id, Condition::Sequential).is_empty());
        let plan = conditions::plan(ex, Condition::Semantic, TextFormat::Chat);
        let segs =
            conditions::render_segments(plan.context("cluster_3").unwrap(), plan.format, &texts)
                .unwrap();
        assert_eq!(segs[0], "Output A: recorded A\n\nOutput B: recorded B");
    }

    #[test]
    fn batch_clusters_are_told_apart_by_prefix_and_fork() {
        let context = cluster_id("exp", "ex1", Condition::Semantic, "c1");
        let fork = fork_id("exp", "ex1", Condition::Semantic, "c1", Output::A);
        assert!(is_batch_cluster("exp", &context, false));
        assert!(!is_batch_cluster("exp", &context, true));
        assert!(is_batch_cluster("exp", &fork, true));
        // Another prefix, or a user's cluster that merely starts alike, is not ours.
        assert!(!is_batch_cluster("exp", "expert-notes", false));
        assert!(!is_batch_cluster("run2", &context, false));
    }
}
