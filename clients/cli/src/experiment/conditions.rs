//! The four conditions of the semantic-isolation prototype, as pure functions that
//! turn an [`Example`] into a [`Plan`]: which contexts (clusters) the daemon must hold,
//! what text goes into each, and which prompt produces each output on which context.
//!
//! | condition    | contexts                 | what they hold                                       |
//! |--------------|--------------------------|------------------------------------------------------|
//! | `sequential` | one shared               | all turns in order                                   |
//! | `prompted`   | one shared               | the same, "IMPORTANT: Keep the following topics separate: …" before turn 1 |
//! | `turn_based` | one shared               | each turn as "[Turn N]\n…"                           |
//! | `semantic`   | one per cluster          | cluster 1 / 2: their own turns; cluster 3: outputs A and B first, then its turns |
//!
//! Every output is asked for with a neutral instruction ([`instruction`]). In
//! [`TextFormat::Raw`] mode the segments concatenate to exactly the text the prototype
//! fed its model (turns joined with a blank line, the instruction appended after a
//! blank line); in [`TextFormat::Chat`] mode every segment and every instruction is a
//! user message of the model's chat template.
//!
//! Two deliberate differences from the prototype: a turn's `query` text is kept (the
//! prototype read only `instruction` and `content`, so it silently dropped the final
//! query turn), and the "keep separate" sentence names the example's own clusters
//! instead of the software example's "technical performance analysis and business
//! strategy".

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::client::TextFormat;
use crate::experiment::dataset::{Example, Output};

/// One experimental condition.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// All turns in one shared context.
    Sequential,
    /// One shared context, with an instruction to keep the topics separate.
    Prompted,
    /// One shared context, each turn marked "[Turn N]".
    #[value(name = "turn_based")]
    TurnBased,
    /// One context per semantic cluster; C sees A and B as its first input.
    Semantic,
}

impl Condition {
    /// All conditions, in the prototype's order.
    pub const ALL: [Condition; 4] = [
        Condition::Sequential,
        Condition::Prompted,
        Condition::TurnBased,
        Condition::Semantic,
    ];

    /// The snake_case name used in results and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Sequential => "sequential",
            Condition::Prompted => "prompted",
            Condition::TurnBased => "turn_based",
            Condition::Semantic => "semantic",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Condition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Condition::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!("unknown condition {s:?} (sequential, prompted, turn_based, semantic)")
            })
    }
}

/// A piece of context, appended as one unit (one user message in chat mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// The generated texts of these outputs of the same example and condition, known
    /// only once they have been generated (see [`render_segments`]).
    PriorOutputs(Vec<Output>),
}

/// A context the daemon must build: one cluster, filled with `segments` in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextSpec {
    /// The context's name within its plan, e.g. `shared` or `cluster_2`.
    pub name: String,
    /// What to append, in order.
    pub segments: Vec<Segment>,
}

impl ContextSpec {
    /// The outputs this context needs before it can be built.
    pub fn depends_on(&self) -> Vec<Output> {
        self.segments
            .iter()
            .flat_map(|s| match s {
                Segment::PriorOutputs(o) => o.clone(),
                Segment::Text(_) => Vec::new(),
            })
            .collect()
    }
}

/// One output to generate: on a fork of `context`, with `prompt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRequest {
    /// Which output this is.
    pub output: Output,
    /// The name of the context to fork and generate on.
    pub context: String,
    /// The prompt: raw text in raw mode, a user message in chat mode.
    pub prompt: String,
    /// Outputs that must be generated first (A and B for C in `semantic`).
    pub depends_on: Vec<Output>,
}

/// Everything the daemon must do for one example under one condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The condition.
    pub condition: Condition,
    /// Chat template or raw text.
    pub format: TextFormat,
    /// The contexts to build.
    pub contexts: Vec<ContextSpec>,
    /// The outputs to generate, in an order that respects their dependencies.
    pub requests: Vec<OutputRequest>,
}

impl Plan {
    /// The context called `name`.
    pub fn context(&self, name: &str) -> Option<&ContextSpec> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The request for `output`.
    pub fn request(&self, output: Output) -> Option<&OutputRequest> {
        self.requests.iter().find(|r| r.output == output)
    }
}

/// A segment could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A context needs an output that has not been generated yet.
    #[error("context {context:?} needs output {output}, which has not been generated")]
    MissingOutput { context: String, output: Output },
}

/// The neutral instruction that asks for `output` (without any separator).
pub fn instruction(output: Output) -> &'static str {
    match output {
        Output::A => "Generate output A based on the provided context:",
        Output::B => "Generate output B based on the provided context:",
        Output::C => "Generate output C that integrates outputs A and B:",
    }
}

/// The sentence the `prompted` condition puts before turn 1, naming the two topic
/// clusters, e.g. "IMPORTANT: Keep the following topics separate: performance
/// optimization and product strategy.\n\n".
pub fn separation_preamble(example: &Example) -> String {
    let topic = |i: usize| example.clusters[i].name.replace('_', " ");
    format!(
        "IMPORTANT: Keep the following topics separate: {} and {}.\n\n",
        topic(0),
        topic(1)
    )
}

/// The separator between consecutive turns in raw mode.
pub const RAW_SEPARATOR: &str = "\n\n";

/// Builds the plan for `example` under `condition`.
pub fn plan(example: &Example, condition: Condition, format: TextFormat) -> Plan {
    let (contexts, requests) = match condition {
        Condition::Semantic => semantic(example, format),
        shared => {
            let texts: Vec<String> = example
                .turns_in_order()
                .into_iter()
                .enumerate()
                .map(|(i, turn)| match shared {
                    Condition::Prompted if i == 0 => {
                        format!("{}{}", separation_preamble(example), turn.text)
                    }
                    Condition::TurnBased => format!("[Turn {}]\n{}", turn.index, turn.text),
                    _ => turn.text.clone(),
                })
                .collect();
            let context = ContextSpec {
                name: "shared".to_owned(),
                segments: texts_to_segments(texts, format),
            };
            let requests = Output::ALL
                .into_iter()
                .map(|output| OutputRequest {
                    output,
                    context: "shared".to_owned(),
                    prompt: prompt(output, format),
                    depends_on: Vec::new(),
                })
                .collect();
            (vec![context], requests)
        }
    };
    Plan {
        condition,
        format,
        contexts,
        requests,
    }
}

fn semantic(example: &Example, format: TextFormat) -> (Vec<ContextSpec>, Vec<OutputRequest>) {
    let mut contexts = Vec::new();
    let mut requests = Vec::new();
    for output in Output::ALL {
        let cluster = example.cluster(output);
        let name = format!("cluster_{}", cluster.id);
        let texts: Vec<String> = cluster.turns.iter().map(|t| t.text.clone()).collect();
        let (segments, depends_on) = if output == Output::C {
            let mut segments = vec![Segment::PriorOutputs(vec![Output::A, Output::B])];
            // In raw mode the prototype glued the outputs onto the first turn of
            // cluster 3 with no blank line between them: the outputs' rendering ends
            // in a blank line of its own.
            segments.extend(texts_to_segments(texts, format));
            (segments, vec![Output::A, Output::B])
        } else {
            (texts_to_segments(texts, format), Vec::new())
        };
        contexts.push(ContextSpec {
            name: name.clone(),
            segments,
        });
        requests.push(OutputRequest {
            output,
            context: name,
            prompt: prompt(output, format),
            depends_on,
        });
    }
    (contexts, requests)
}

/// Turns the texts of consecutive turns into segments: in raw mode every turn but the
/// first carries the separator before it, so that appending the segments reproduces
/// `texts.join("\n\n")`.
fn texts_to_segments(texts: Vec<String>, format: TextFormat) -> Vec<Segment> {
    texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| match format {
            TextFormat::Raw if i > 0 => Segment::Text(format!("{RAW_SEPARATOR}{text}")),
            _ => Segment::Text(text),
        })
        .collect()
}

/// The prompt for `output`: in raw mode the instruction follows a blank line, as in the
/// prototype; in chat mode it is the user message itself.
fn prompt(output: Output, format: TextFormat) -> String {
    match format {
        TextFormat::Raw => format!("{RAW_SEPARATOR}{}", instruction(output)),
        TextFormat::Chat => instruction(output).to_owned(),
    }
}

/// How prior outputs are passed to cluster 3.
///
/// Raw mode reproduces the prototype's "\nOutput A: …\n\nOutput B: …\n\n" prefix; chat
/// mode sends "Output A: …\n\nOutput B: …" as a message of its own.
pub fn render_prior_outputs(outputs: &[(Output, &str)], format: TextFormat) -> String {
    let body = outputs
        .iter()
        .map(|(o, text)| format!("Output {o}: {text}"))
        .collect::<Vec<_>>()
        .join("\n\n");
    match format {
        TextFormat::Raw => format!("\n{body}\n\n"),
        TextFormat::Chat => body,
    }
}

/// The concrete texts to append for `spec`, one per segment, with prior outputs filled
/// in from `generated`.
pub fn render_segments(
    spec: &ContextSpec,
    format: TextFormat,
    generated: &BTreeMap<Output, String>,
) -> Result<Vec<String>, PlanError> {
    spec.segments
        .iter()
        .map(|segment| match segment {
            Segment::Text(t) => Ok(t.clone()),
            Segment::PriorOutputs(outputs) => {
                let mut parts = Vec::with_capacity(outputs.len());
                for &output in outputs {
                    let text = generated.get(&output).ok_or(PlanError::MissingOutput {
                        context: spec.name.clone(),
                        output,
                    })?;
                    parts.push((output, text.as_str()));
                }
                Ok(render_prior_outputs(&parts, format))
            }
        })
        .collect()
}

/// In raw mode, the whole text a model sees for `output`: the context's segments
/// followed by the prompt. This is what the prototype tokenized and prefilled.
pub fn raw_prompt_text(
    plan: &Plan,
    output: Output,
    generated: &BTreeMap<Output, String>,
) -> Result<String, PlanError> {
    let request = plan
        .request(output)
        .expect("every plan has a request per output");
    let context = plan
        .context(&request.context)
        .expect("requests name contexts of their plan");
    let mut text = render_segments(context, plan.format, generated)?.concat();
    text.push_str(&request.prompt);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::dataset::{self, Example};
    use std::path::Path;

    fn example() -> Example {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/semantic-isolation/validation_001_software_eng.json");
        dataset::load(&path).unwrap().remove(0)
    }

    fn texts(example: &Example) -> Vec<String> {
        example
            .turns_in_order()
            .iter()
            .map(|t| t.text.clone())
            .collect()
    }

    #[test]
    fn sequential_raw_matches_the_prototype_text() {
        let ex = example();
        let plan = plan(&ex, Condition::Sequential, TextFormat::Raw);
        assert_eq!(plan.contexts.len(), 1);
        assert_eq!(plan.contexts[0].segments.len(), 15);
        assert!(plan.requests.iter().all(|r| r.context == "shared"));
        let expected = format!(
            "{}\n\nGenerate output B based on the provided context:",
            texts(&ex).join("\n\n")
        );
        assert_eq!(
            raw_prompt_text(&plan, Output::B, &BTreeMap::new()).unwrap(),
            expected
        );
    }

    #[test]
    fn prompted_puts_the_preamble_before_turn_one() {
        let ex = example();
        let plan = plan(&ex, Condition::Prompted, TextFormat::Chat);
        let Segment::Text(first) = &plan.contexts[0].segments[0] else {
            panic!("text expected")
        };
        assert_eq!(
            first,
            &format!(
                "IMPORTANT: Keep the following topics separate: performance optimization and \
                 product strategy.\n\n{}",
                texts(&ex)[0]
            )
        );
        // Only the first turn changes.
        assert_eq!(
            plan.contexts[0].segments[1],
            Segment::Text(texts(&ex)[1].clone())
        );
        assert_eq!(
            plan.request(Output::C).unwrap().prompt,
            "Generate output C that integrates outputs A and B:"
        );
    }

    #[test]
    fn turn_based_marks_every_turn_with_its_global_index() {
        let ex = example();
        let plan = plan(&ex, Condition::TurnBased, TextFormat::Raw);
        let segs = &plan.contexts[0].segments;
        assert_eq!(
            segs[0],
            Segment::Text(format!("[Turn 1]\n{}", texts(&ex)[0]))
        );
        assert_eq!(
            segs[14],
            Segment::Text(format!("\n\n[Turn 15]\n{}", texts(&ex)[14]))
        );
    }

    #[test]
    fn semantic_isolates_clusters_and_feeds_a_and_b_to_c() {
        let ex = example();
        let plan = plan(&ex, Condition::Semantic, TextFormat::Raw);
        let names: Vec<&str> = plan.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["cluster_1", "cluster_2", "cluster_3"]);
        assert_eq!(plan.contexts[0].segments.len(), 5);
        assert_eq!(plan.contexts[2].segments.len(), 6);
        assert_eq!(plan.contexts[2].depends_on(), vec![Output::A, Output::B]);
        assert!(plan.contexts[0].depends_on().is_empty());
        let c = plan.request(Output::C).unwrap();
        assert_eq!(c.context, "cluster_3");
        assert_eq!(c.depends_on, vec![Output::A, Output::B]);

        // Cluster 1 holds only its own turns.
        let a = raw_prompt_text(&plan, Output::A, &BTreeMap::new()).unwrap();
        assert_eq!(
            a,
            format!(
                "{}\n\nGenerate output A based on the provided context:",
                texts(&ex)[..5].join("\n\n")
            )
        );
        assert!(!a.contains(&texts(&ex)[6]));

        // C cannot be rendered before A and B exist.
        assert_eq!(
            raw_prompt_text(&plan, Output::C, &BTreeMap::new()),
            Err(PlanError::MissingOutput {
                context: "cluster_3".into(),
                output: Output::A
            })
        );
        let generated = BTreeMap::from([
            (Output::A, "alpha".to_owned()),
            (Output::B, "beta".to_owned()),
        ]);
        // The prototype: "\nOutput A: {a}\n\nOutput B: {b}\n\n" + turn 11, then the
        // other turns of cluster 3 joined with blank lines, then the instruction.
        let expected = format!(
            "\nOutput A: alpha\n\nOutput B: beta\n\n{}\n\nGenerate output C that integrates outputs A and B:",
            texts(&ex)[10..].join("\n\n")
        );
        assert_eq!(
            raw_prompt_text(&plan, Output::C, &generated).unwrap(),
            expected
        );
    }

    #[test]
    fn chat_mode_uses_plain_messages() {
        let ex = example();
        let plan = plan(&ex, Condition::Semantic, TextFormat::Chat);
        let generated = BTreeMap::from([
            (Output::A, "alpha".to_owned()),
            (Output::B, "beta".to_owned()),
        ]);
        let rendered = render_segments(&plan.contexts[2], TextFormat::Chat, &generated).unwrap();
        assert_eq!(rendered[0], "Output A: alpha\n\nOutput B: beta");
        assert_eq!(rendered[1], texts(&ex)[10]);
        assert_eq!(rendered.len(), 6);
        assert_eq!(
            plan.request(Output::A).unwrap().prompt,
            "Generate output A based on the provided context:"
        );
        let seq = super::plan(&ex, Condition::Sequential, TextFormat::Chat);
        let rendered = render_segments(&seq.contexts[0], TextFormat::Chat, &generated).unwrap();
        assert_eq!(rendered, texts(&ex));
    }

    #[test]
    fn conflicts_examples_plan_three_single_turn_clusters() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/semantic-isolation/conflicts/conflicts_batch_001.json");
        let ex = dataset::load(&path).unwrap().remove(1);
        let plan = plan(&ex, Condition::Semantic, TextFormat::Chat);
        assert_eq!(plan.contexts[0].segments.len(), 1);
        assert_eq!(plan.contexts[2].segments.len(), 2);
        let prompted = super::plan(&ex, Condition::Prompted, TextFormat::Raw);
        let Segment::Text(first) = &prompted.contexts[0].segments[0] else {
            panic!()
        };
        assert!(first.starts_with(
            "IMPORTANT: Keep the following topics separate: serious professional critical and \
             humorous entertaining casual.\n\n"
        ));
    }

    #[test]
    fn condition_names_round_trip() {
        for c in Condition::ALL {
            assert_eq!(c.as_str().parse::<Condition>().unwrap(), c);
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        assert!("semantics".parse::<Condition>().is_err());
    }
}
