//! The conflicts batch format (`conflicts_batch_*.json`): a JSON array of 2-cluster
//! examples (or one such example), each with three turns — two conflicting
//! instructions and a final query asking for both versions — and two
//! `ground_truth_clusters` labels.

use serde_json::Value;

use super::checker::{Checker, ROLES};

/// Checks one conflicts example at `path` (`$` or `$[i]`).
pub fn check_example(c: &mut Checker, v: &Value, path: &str) {
    let Some(obj) = c.object(v, path) else {
        return;
    };
    c.example_id(obj, path);
    c.string(obj, path, "conflict_type");
    c.string(obj, path, "domain");
    c.optional_string(obj, path, "purpose");
    if let Some(m) = obj.get("metadata") {
        if !m.is_object() && !m.is_null() {
            c.expected(&format!("{path}.metadata"), "object", m);
        }
    }
    if let Some((labels, lp)) = c.array(obj, path, "ground_truth_clusters") {
        if labels.len() != 2 {
            c.problem(
                &lp,
                format!("expected 2 cluster labels, found {}", labels.len()),
            );
        }
        for (i, l) in labels.iter().enumerate() {
            c.string_value(l, &format!("{lp}[{i}]"));
        }
    }
    let Some((turns, tp)) = c.array(obj, path, "turns") else {
        return;
    };
    if turns.len() != 3 {
        c.problem(
            &tp,
            format!(
                "expected 3 turns (two conflicting instructions, then a query), found {}",
                turns.len()
            ),
        );
    }
    for (i, t) in turns.iter().enumerate() {
        let p = format!("{tp}[{i}]");
        let Some(turn) = c.object(t, &p) else {
            continue;
        };
        if let Some(id) = c.positive_int(turn, &p, "turn_id") {
            if id != i as u64 + 1 {
                c.problem(
                    &format!("{p}.turn_id"),
                    format!("expected turn_id {}, found {id}", i + 1),
                );
            }
        }
        c.one_of(turn, &p, "role", &ROLES);
        if i < 2 {
            c.string(turn, &p, "instruction");
            c.optional_string(turn, &p, "content");
        } else {
            c.string(turn, &p, "query");
            c.optional_string(turn, &p, "expected_behavior");
            c.optional_string(turn, &p, "rdic_value");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::duplicate_ids;
    use super::super::test_support::{assert_has, conflicts, problems};
    use serde_json::json;

    #[test]
    fn conflicts_problems() {
        let mut v = conflicts();
        v[0]["turns"].as_array_mut().unwrap().pop();
        v[1]["ground_truth_clusters"] = json!(["only_one"]);
        v[2]["turns"][2].as_object_mut().unwrap().remove("query");
        v[3]["turns"][0]["instruction"] = json!(null);
        v[4]["turns"][1]["turn_id"] = json!(7);
        v[5] = json!("not an example");
        v[6]["id"] = json!("conflict_001");
        let p = problems(&v);
        assert_has(
            &p,
            "$[0].turns: expected 3 turns (two conflicting instructions, then a query), found 2",
        );
        assert_has(
            &p,
            "$[1].ground_truth_clusters: expected 2 cluster labels, found 1",
        );
        assert_has(&p, "$[2].turns[2]: missing field `query`");
        assert_has(&p, "$[3].turns[0].instruction: expected string, found null");
        assert_has(&p, "$[4].turns[1].turn_id: expected turn_id 2, found 7");
        assert_has(&p, "$[5]: expected object, found string");
        assert_eq!(p.len(), 6, "{p:#?}");
        // Duplicate ids are a dataset-level check.
        let dups = duplicate_ids(&[(PathBuf::from("c.json"), v)]);
        assert_eq!(
            dups.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            vec![
                "c.json: $[6].id: duplicate example id \"conflict_001\" (first at c.json: $[0].id)"
            ]
        );
    }
}
