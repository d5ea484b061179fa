//! The 3-cluster format (`validation_*.json`): one example per file, with
//! `semantic_clusters.cluster_1..3` (task type, turn ids, terminology, expected
//! output), its `turns`, and `ground_truth.output_cluster_1..3`.
//!
//! [`check`] runs the steps in document order — the header fields, the turns, the
//! clusters and the turns they claim, the terminology the two topic clusters share,
//! the turns no cluster claims, the ground truth — so problems are listed in the order
//! a reader meets them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::checker::{Checker, ROLES};

/// Turn types accepted in the 3-cluster format.
const TURN_TYPES: [&str; 3] = ["instruction", "context", "query"];
/// The text-bearing fields of a turn.
const TEXT_FIELDS: [&str; 3] = ["instruction", "content", "query"];
/// The keys of `semantic_clusters`: topic 1, topic 2, synthesis.
const CLUSTER_KEYS: [&str; 3] = ["cluster_1", "cluster_2", "cluster_3"];

/// The turns by `turn_id`: their index in `$.turns` and the cluster they declare.
type TurnTable = BTreeMap<u64, (usize, Option<u64>)>;

/// Terms of a topic cluster (lowercased) with their JSON paths.
type Terms = Vec<(String, String)>;

/// What the clusters say: which turn each lists (turn id → JSON path of the listing)
/// and the terms of the topic clusters.
#[derive(Default)]
struct Claims {
    claimed: BTreeMap<u64, String>,
    topic_terms: Vec<Terms>,
}

/// Checks a 3-cluster example (the whole document).
pub fn check(c: &mut Checker, obj: &Map<String, Value>) {
    let total_turns = header(c, obj);
    let turns = turn_table(c, obj, total_turns);
    let claims = semantic_clusters(c, obj, &turns);
    shared_topic_terms(c, &claims.topic_terms);
    unclaimed_turns(c, &turns, &claims.claimed);
    ground_truth(c, obj);
}

/// The example's own fields; returns `total_turns` when it is readable.
fn header(c: &mut Checker, obj: &Map<String, Value>) -> Option<u64> {
    let root = "$";
    c.example_id(obj, root);
    c.string(obj, root, "domain");
    c.string(obj, root, "description");
    let total_turns = c.positive_int(obj, root, "total_turns");
    if let Some(v) = obj.get("methodology_notes") {
        if !v.is_object() && !v.is_null() {
            c.expected("$.methodology_notes", "object", v);
        }
    }
    total_turns
}

/// `$.turns`: each turn well-formed, ids unique and increasing, as many as
/// `total_turns` says.
fn turn_table(c: &mut Checker, obj: &Map<String, Value>, total_turns: Option<u64>) -> TurnTable {
    let mut turns = TurnTable::new();
    let Some((items, path)) = c.array(obj, "$", "turns") else {
        return turns;
    };
    if items.is_empty() {
        c.problem(&path, "an example needs at least one turn");
    }
    if let Some(total) = total_turns {
        if !items.is_empty() && total != items.len() as u64 {
            c.problem(
                "$.total_turns",
                format!("says {total} but there are {} turns", items.len()),
            );
        }
    }
    let mut previous: Option<u64> = None;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some((id, cluster)) = turn(c, item, &p) else {
            continue;
        };
        let Some(id) = id else {
            continue;
        };
        if let Some(prev) = previous {
            if id <= prev {
                c.problem(
                    &format!("{p}.turn_id"),
                    format!("turns must be in conversation order: turn_id {id} follows {prev}"),
                );
            }
        }
        previous = Some(id);
        if let Some((first, _)) = turns.get(&id) {
            c.problem(
                &format!("{p}.turn_id"),
                format!("duplicate turn_id {id} (also $.turns[{first}])"),
            );
        } else {
            turns.insert(id, (i, cluster));
        }
    }
    turns
}

/// One turn at `p`: `(turn_id, cluster)` as far as readable, or `None` when it is no
/// object.
fn turn(c: &mut Checker, item: &Value, p: &str) -> Option<(Option<u64>, Option<u64>)> {
    let t = c.object(item, p)?;
    let id = c.positive_int(t, p, "turn_id");
    let cluster = c.positive_int(t, p, "cluster");
    if let Some(n) = cluster {
        if !(1..=3).contains(&n) {
            c.problem(
                &format!("{p}.cluster"),
                format!("cluster {n} does not exist (expected 1, 2 or 3)"),
            );
        }
    }
    c.one_of(t, p, "role", &ROLES);
    c.one_of(t, p, "type", &TURN_TYPES);
    turn_text(c, t, p);
    Some((id, cluster))
}

/// The text fields of a turn: string or null, at least one non-empty.
fn turn_text(c: &mut Checker, t: &Map<String, Value>, p: &str) {
    let mut has_text = false;
    for f in TEXT_FIELDS {
        if let Some(s) = c.optional_string(t, p, f) {
            has_text |= !s.trim().is_empty();
        }
    }
    if !has_text {
        c.problem(
            p,
            "turn has no text (one of instruction, content, query must be a non-empty string)",
        );
    }
}

/// `$.semantic_clusters`: exactly `cluster_1..3`, each well-formed.
fn semantic_clusters(c: &mut Checker, obj: &Map<String, Value>, turns: &TurnTable) -> Claims {
    let mut claims = Claims::default();
    let Some((v, path)) = c.field(obj, "$", "semantic_clusters") else {
        return claims;
    };
    let Some(clusters) = c.object(v, &path) else {
        return claims;
    };
    if clusters.len() != 3 {
        c.problem(
            &path,
            format!(
                "expected exactly 3 clusters (cluster_1, cluster_2, cluster_3), found {}",
                clusters.len()
            ),
        );
    }
    for key in clusters.keys() {
        if !CLUSTER_KEYS.contains(&key.as_str()) {
            c.problem(
                &format!("{path}.{key}"),
                "unexpected cluster (the 3-cluster format has cluster_1, cluster_2, cluster_3)",
            );
        }
    }
    for (n, key) in CLUSTER_KEYS.iter().enumerate() {
        let Some((cv, cp)) = c.field(clusters, &path, key) else {
            continue;
        };
        let Some(cluster) = c.object(cv, &cp) else {
            continue;
        };
        semantic_cluster(c, cluster, &cp, n as u64 + 1, turns, &mut claims);
    }
    claims
}

/// Cluster `number` at `cp`: its descriptions, its terminology (required for the
/// topic clusters 1 and 2) and the turns it lists.
fn semantic_cluster(
    c: &mut Checker,
    cluster: &Map<String, Value>,
    cp: &str,
    number: u64,
    turns: &TurnTable,
    claims: &mut Claims,
) {
    c.string(cluster, cp, "task_type");
    c.string(cluster, cp, "expected_output");
    c.string(cluster, cp, "focus_area");
    let topic = number < 3;
    match cluster.get("terminology") {
        Some(t) => {
            let terms = c.terminology(t, &format!("{cp}.terminology"), topic);
            if topic {
                claims.topic_terms.push(terms);
            }
        }
        None if topic => {
            c.problem(
                cp,
                "missing field `terminology` (topic clusters need it to measure interference)",
            );
        }
        None => {}
    }
    cluster_turns(c, cluster, cp, number, turns, &mut claims.claimed);
}

/// A cluster's `turns`: non-empty, each a known turn whose `cluster` agrees, none
/// claimed by two clusters.
fn cluster_turns(
    c: &mut Checker,
    cluster: &Map<String, Value>,
    cp: &str,
    number: u64,
    turns: &TurnTable,
    claimed: &mut BTreeMap<u64, String>,
) {
    let Some((ids, tp)) = c.array(cluster, cp, "turns") else {
        return;
    };
    if ids.is_empty() {
        c.problem(&tp, "a cluster needs at least one turn");
    }
    for (j, idv) in ids.iter().enumerate() {
        let p = format!("{tp}[{j}]");
        let Some(id) = idv.as_u64() else {
            c.expected(&p, "turn id (positive integer)", idv);
            continue;
        };
        match turns.get(&id) {
            None => c.problem(&p, format!("unknown turn {id} (no turn has this turn_id)")),
            Some((i, Some(declared))) if *declared != number => c.problem(
                &format!("$.turns[{i}].cluster"),
                format!("turn {id} says cluster {declared} but is listed in cluster_{number}"),
            ),
            Some(_) => {}
        }
        if let Some(first) = claimed.get(&id) {
            c.problem(&p, format!("turn {id} is already listed at {first}"));
        } else {
            claimed.insert(id, p);
        }
    }
}

/// A term in both topic clusters' terminology makes interference blind to it.
fn shared_topic_terms(c: &mut Checker, topic_terms: &[Terms]) {
    let [first, second] = topic_terms else {
        return;
    };
    let first: BTreeMap<&str, &str> = first
        .iter()
        .map(|(t, p)| (t.as_str(), p.as_str()))
        .collect();
    for (term, p) in second {
        if let Some(other) = first.get(term.as_str()) {
            c.problem(
                p,
                format!(
                    "term {term:?} is also in cluster_1's terminology ({other}): \
                     interference cannot tell the clusters apart"
                ),
            );
        }
    }
}

/// Every turn belongs to some cluster (only checked when clusters were readable).
fn unclaimed_turns(c: &mut Checker, turns: &TurnTable, claimed: &BTreeMap<u64, String>) {
    if claimed.is_empty() {
        return;
    }
    for (id, (i, _)) in turns {
        if !claimed.contains_key(id) {
            c.problem(
                &format!("$.turns[{i}]"),
                format!("turn {id} belongs to no cluster"),
            );
        }
    }
}

/// `$.ground_truth`: an object report per output cluster.
fn ground_truth(c: &mut Checker, obj: &Map<String, Value>) {
    let Some((v, path)) = c.field(obj, "$", "ground_truth") else {
        return;
    };
    let Some(gt) = c.object(v, &path) else {
        return;
    };
    for key in ["output_cluster_1", "output_cluster_2", "output_cluster_3"] {
        if let Some((g, gp)) = c.field(gt, &path, key) {
            if !g.is_object() {
                c.expected(&gp, "object", g);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_has, good, problems};
    use serde_json::json;

    #[test]
    fn missing_field() {
        let mut v = good();
        v.as_object_mut().unwrap().remove("domain");
        v["semantic_clusters"]["cluster_2"]
            .as_object_mut()
            .unwrap()
            .remove("expected_output");
        let p = problems(&v);
        assert_has(&p, "$: missing field `domain`");
        assert_has(
            &p,
            "$.semantic_clusters.cluster_2: missing field `expected_output`",
        );
        assert_eq!(p.len(), 2, "{p:#?}");
    }

    #[test]
    fn wrong_types() {
        let mut v = good();
        v["total_turns"] = json!("15");
        v["turns"][3]["content"] = json!(42);
        v["semantic_clusters"]["cluster_1"]["terminology"][2] = json!(["cache"]);
        v["semantic_clusters"]["cluster_3"]["turns"][1] = json!("twelve");
        v["ground_truth"]["output_cluster_2"] = json!("a report");
        let p = problems(&v);
        assert_has(&p, "$.total_turns: expected positive integer, found string");
        assert_has(
            &p,
            "$.turns[3].content: expected string or null, found number",
        );
        // With content unreadable, turn 4 has no text either.
        assert_has(
            &p,
            "$.turns[3]: turn has no text (one of instruction, content, query must be a non-empty string)",
        );
        assert_has(
            &p,
            "$.semantic_clusters.cluster_1.terminology[2]: expected string, found array",
        );
        assert_has(
            &p,
            "$.semantic_clusters.cluster_3.turns[1]: expected turn id (positive integer), found string",
        );
        assert_has(
            &p,
            "$.ground_truth.output_cluster_2: expected object, found string",
        );
        // Turn 12 is now claimed by no cluster.
        assert_has(&p, "$.turns[11]: turn 12 belongs to no cluster");
    }

    #[test]
    fn wrong_cluster_count() {
        let mut v = good();
        let c3 = v["semantic_clusters"]["cluster_3"].clone();
        v["semantic_clusters"]["cluster_4"] = c3;
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters: expected exactly 3 clusters (cluster_1, cluster_2, cluster_3), found 4",
        );
        assert_has(
            &p,
            "$.semantic_clusters.cluster_4: unexpected cluster (the 3-cluster format has cluster_1, cluster_2, cluster_3)",
        );

        let mut v = good();
        v["semantic_clusters"]
            .as_object_mut()
            .unwrap()
            .remove("cluster_2");
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters: expected exactly 3 clusters (cluster_1, cluster_2, cluster_3), found 2",
        );
        assert_has(&p, "$.semantic_clusters: missing field `cluster_2`");
        assert_has(&p, "$.turns[5]: turn 6 belongs to no cluster");
    }

    #[test]
    fn empty_turns() {
        let mut v = good();
        v["turns"] = json!([]);
        let p = problems(&v);
        assert_has(&p, "$.turns: an example needs at least one turn");
        assert_has(
            &p,
            "$.semantic_clusters.cluster_1.turns[0]: unknown turn 1 (no turn has this turn_id)",
        );

        let mut v = good();
        v["semantic_clusters"]["cluster_1"]["turns"] = json!([]);
        v["turns"][4]["instruction"] = json!("   ");
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters.cluster_1.turns: a cluster needs at least one turn",
        );
        assert_has(
            &p,
            "$.turns[4]: turn has no text (one of instruction, content, query must be a non-empty string)",
        );
        assert_has(&p, "$.turns[0]: turn 1 belongs to no cluster");
    }

    #[test]
    fn unknown_and_inconsistent_turn_references() {
        let mut v = good();
        v["semantic_clusters"]["cluster_2"]["turns"][4] = json!(16);
        v["semantic_clusters"]["cluster_3"]["turns"][0] = json!(5);
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters.cluster_2.turns[4]: unknown turn 16 (no turn has this turn_id)",
        );
        assert_has(
            &p,
            "$.semantic_clusters.cluster_3.turns[0]: turn 5 is already listed at $.semantic_clusters.cluster_1.turns[4]",
        );
        assert_has(
            &p,
            "$.turns[4].cluster: turn 5 says cluster 1 but is listed in cluster_3",
        );
        assert_has(&p, "$.turns[9]: turn 10 belongs to no cluster");
        assert_has(&p, "$.turns[10]: turn 11 belongs to no cluster");
    }

    #[test]
    fn turn_order_ids_and_counts() {
        let mut v = good();
        v["turns"][6]["turn_id"] = json!(6);
        v["turns"][2]["cluster"] = json!(4);
        v["turns"][1]["role"] = json!("narrator");
        v["total_turns"] = json!(14);
        let p = problems(&v);
        assert_has(
            &p,
            "$.turns[6].turn_id: turns must be in conversation order: turn_id 6 follows 6",
        );
        assert_has(
            &p,
            "$.turns[6].turn_id: duplicate turn_id 6 (also $.turns[5])",
        );
        assert_has(
            &p,
            "$.turns[2].cluster: cluster 4 does not exist (expected 1, 2 or 3)",
        );
        assert_has(
            &p,
            "$.turns[1].role: unknown value \"narrator\" (expected one of user, assistant, system)",
        );
        assert_has(&p, "$.total_turns: says 14 but there are 15 turns");
        assert_has(
            &p,
            "$.semantic_clusters.cluster_2.turns[1]: unknown turn 7 (no turn has this turn_id)",
        );
    }

    #[test]
    fn terminology_rules() {
        let mut v = good();
        v["semantic_clusters"]["cluster_2"]["terminology"][0] = json!("LATENCY");
        v["semantic_clusters"]["cluster_1"]["terminology"][1] = json!("Microservices");
        v["semantic_clusters"]["cluster_2"]
            .as_object_mut()
            .unwrap()
            .remove("terminology");
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters.cluster_1.terminology[1]: duplicate term \"Microservices\" (also $.semantic_clusters.cluster_1.terminology[0])",
        );
        assert_has(
            &p,
            "$.semantic_clusters.cluster_2: missing field `terminology` (topic clusters need it to measure interference)",
        );

        let mut v = good();
        v["semantic_clusters"]["cluster_2"]["terminology"][3] = json!("Redis");
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters.cluster_2.terminology[3]: term \"redis\" is also in cluster_1's terminology ($.semantic_clusters.cluster_1.terminology[5]): interference cannot tell the clusters apart",
        );
        assert_eq!(p.len(), 1, "{p:#?}");

        let mut v = good();
        v["semantic_clusters"]["cluster_1"]["terminology"] = json!([]);
        assert_has(
            &problems(&v),
            "$.semantic_clusters.cluster_1.terminology: terminology must list at least one term",
        );
    }
}
