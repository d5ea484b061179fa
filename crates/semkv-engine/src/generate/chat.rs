//! Conversations as text, written by the model's own chat template: the Jinja
//! template a checkpoint ships (`tokenizer.chat_template` in GGUF, `chat_template` in
//! `tokenizer_config.json`), rendered with minijinja the way Hugging Face transformers
//! and llama.cpp render it (`trim_blocks`, `lstrip_blocks`, `raise_exception`, Python
//! string methods). Gemma checkpoints without a template (the base 270M GGUF) get
//! [`ChatTemplate::gemma3`], this project's own rendering of Gemma 3's turn format.
//!
//! A cluster's cache grows one append at a time, so the daemon never renders a whole
//! conversation; it asks for the text that *extends* one ([`ChatTemplate::append`],
//! [`ChatTemplate::generation_prompt`], [`ChatTemplate::close_answer`]). That text is
//! what the template adds when the turn is added to a conversation: the difference
//! between two renderings. The first turn of an empty cache is rendered as the start of
//! a conversation (the template's `bos_token`, a default system prompt, a system turn
//! folded into the first user turn); a later turn is rendered after a stand-in
//! exchange (a user and an assistant turn), so templates that insist that roles
//! alternate accept clusters that append several user turns in a row. A system turn
//! the template will not render mid-conversation waits (`pending_system`) and is folded
//! into the next turn the way the template folds a first system turn.
//!
//! This module is the only place conversation markup is produced.

use std::sync::Arc;

use minijinja::{Environment, ErrorKind};
use serde::Serialize;

use crate::EngineError;

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" | "model" => Ok(Role::Assistant),
            _ => Err(format!("unknown role {s:?} (system, user, assistant)")),
        }
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

impl Turn {
    fn new(role: Role, text: &str) -> Self {
        Turn {
            role,
            text: text.to_owned(),
        }
    }
}

/// A message as templates see it (`message['role']`, `message['content']`).
#[derive(Serialize)]
struct Message<'a> {
    role: Role,
    content: &'a str,
}

/// Gemma 3's turn format, for Gemma checkpoints that carry no template: `<bos>` once,
/// a system turn folded into the first user turn, `<start_of_turn>{user|model}\n`,
/// trimmed text, `<end_of_turn>\n`.
const GEMMA3_TEMPLATE: &str = "{{ bos_token }}{%- if messages and messages[0]['role'] == 'system' -%}{%- set sys_prefix = messages[0]['content'] ~ '\n\n' -%}{%- set turns = messages[1:] -%}{%- else -%}{%- set sys_prefix = '' -%}{%- set turns = messages -%}{%- endif -%}{%- for m in turns -%}{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}{%- set role = 'model' if m['role'] == 'assistant' else m['role'] -%}{{ '<start_of_turn>' ~ role ~ '\n' ~ (sys_prefix if loop.first else '') ~ (m['content'] | trim) ~ '<end_of_turn>\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

/// Stand-in text of the turns a later turn is rendered after (never in the output).
const STAND_IN: &str = "x";

/// Marks where an answer's text goes, to find what the template writes after it.
const ANSWER_MARK: &str = "\u{E000}semkv-answer\u{E000}";

/// A model's chat template, ready to render.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Arc<Environment<'static>>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

fn template_error(e: minijinja::Error) -> EngineError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    EngineError::InvalidInput(format!("the model's chat template: {message}"))
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the texts templates see
    /// under those names.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, EngineError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned("chat", source.to_owned())
            .map_err(|e| EngineError::Load(format!("chat template: {e}")))?;
        Ok(Self {
            env: Arc::new(env),
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// The template for a model: `source` (the checkpoint's own), else Gemma 3's
    /// format for the `gemma3` family, else none (such a model has no chat format).
    /// Templates see the tokenizer's bos token and first end token as `bos_token` and
    /// `eos_token`.
    pub fn for_model(
        source: Option<&str>,
        family: &str,
        tokenizer: &crate::generate::tokenizer::TextTokenizer,
    ) -> Result<Option<Self>, EngineError> {
        let text = |id: Option<&u32>| {
            id.and_then(|&id| tokenizer.inner().id_to_token(id))
                .unwrap_or_default()
        };
        match source {
            Some(source) => Ok(Some(Self::new(
                source,
                &text(Some(&tokenizer.bos_id)),
                &text(tokenizer.stop_ids.first()),
            )?)),
            None if family == "gemma3" => Ok(Some(Self::gemma3())),
            None => Ok(None),
        }
    }

    /// The chat template a checkpoint directory ships: `chat_template` in its
    /// `tokenizer_config.json` (a string, or the entry named `default` of a list),
    /// else its `chat_template.jinja`.
    pub fn source_in_dir(dir: &std::path::Path) -> Option<String> {
        let config = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let from_config = match config.as_ref().and_then(|c| c.get("chat_template")) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_owned)),
            _ => None,
        };
        from_config.or_else(|| std::fs::read_to_string(dir.join("chat_template.jinja")).ok())
    }

    /// Gemma 3's turn format (see [`GEMMA3_TEMPLATE`]'s documentation).
    pub fn gemma3() -> Self {
        Self::new(GEMMA3_TEMPLATE, "<bos>", "<eos>").expect("the built-in template compiles")
    }

    /// The whole conversation `turns`, with the opening of the model's answer when
    /// `add_generation_prompt`.
    pub fn render(
        &self,
        turns: &[Turn],
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        let messages: Vec<Message> = turns
            .iter()
            .map(|t| Message {
                role: t.role,
                content: &t.text,
            })
            .collect();
        let template = self.env.get_template("chat").map_err(template_error)?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(template_error)
    }

    /// What the template adds for `turn` after `context` (a conversation's turns).
    fn extension(&self, context: &[Turn], turn: &Turn) -> Result<String, EngineError> {
        let before = self.render(context, false)?;
        let mut all = context.to_vec();
        all.push(turn.clone());
        let after = self.render(&all, false)?;
        after
            .strip_prefix(before.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                EngineError::InvalidInput(
                    "the model's chat template rewrites earlier turns when a turn is added, \
                     so a cached conversation cannot be extended: use the raw format"
                        .into(),
                )
            })
    }

    /// `turn` rendered after a stand-in exchange that ends where `turn` may follow.
    fn later_turn(&self, turn: &Turn) -> Result<String, EngineError> {
        let context = match turn.role {
            Role::Assistant => vec![Turn::new(Role::User, STAND_IN)],
            Role::User | Role::System => vec![
                Turn::new(Role::User, STAND_IN),
                Turn::new(Role::Assistant, STAND_IN),
            ],
        };
        self.extension(&context, turn)
    }

    /// The text that appends `turns` to a conversation: whole when they open it
    /// (`cache_is_empty`), else each turn as the template writes a later turn. A
    /// system turn the template does not write there waits in `pending_system` for
    /// the next turn.
    pub fn append(
        &self,
        turns: &[Turn],
        cache_is_empty: bool,
        pending_system: &mut Option<String>,
    ) -> Result<String, EngineError> {
        let mut out = String::new();
        let mut started = !cache_is_empty;
        for turn in turns {
            if turn.role == Role::System {
                if started {
                    if let Ok(text) = self.later_turn(turn) {
                        out.push_str(&text);
                        continue;
                    }
                }
                *pending_system = Some(turn.text.clone());
                continue;
            }
            let system = pending_system.take().map(|s| Turn::new(Role::System, &s));
            if !started {
                let opening: Vec<Turn> = system.into_iter().chain([turn.clone()]).collect();
                match self.render(&opening, false) {
                    Ok(text) => out.push_str(&text),
                    // A template that will not start with this turn (an assistant
                    // turn first): its bos, then the turn as a later one.
                    Err(_) => {
                        out.push_str(&self.render(&[], false)?);
                        out.push_str(&self.later_turn(turn)?);
                    }
                }
                started = true;
            } else if let Some(system) = system {
                // Folded into this turn as the template folds a first system turn.
                out.push_str(&self.extension(&[system], turn)?);
            } else {
                out.push_str(&self.later_turn(turn)?);
            }
        }
        Ok(out)
    }

    /// The text of a generation's prompt: `turns` appended (see [`Self::append`]),
    /// a system turn still waiting said as a user turn (so it is not lost), then the
    /// opening of the model's answer.
    pub fn generation_prompt(
        &self,
        turns: &[Turn],
        cache_is_empty: bool,
        pending_system: &mut Option<String>,
    ) -> Result<String, EngineError> {
        let mut out = self.append(turns, cache_is_empty, pending_system)?;
        if let Some(system) = pending_system.take() {
            let as_user = [Turn::new(Role::User, &system)];
            out.push_str(&self.append(&as_user, cache_is_empty && out.is_empty(), &mut None)?);
        }
        if cache_is_empty && out.is_empty() {
            return self.render(&[], true);
        }
        let context = [Turn::new(Role::User, STAND_IN)];
        let without = self.render(&context, false)?;
        let with = self.render(&context, true)?;
        let opening = with.strip_prefix(without.as_str()).ok_or_else(|| {
            EngineError::InvalidInput(
                "the model's chat template changes the conversation when asked for \
                 the generation prompt: use the raw format"
                    .into(),
            )
        })?;
        out.push_str(opening);
        Ok(out)
    }

    /// What closes the model's answer once it is committed to a conversation: what the
    /// template writes after an answer's text, less the answer's `last_token` when the
    /// model ended with the very token that starts it (e.g. `<end_of_turn>`).
    pub fn close_answer(&self, last_token: Option<&str>) -> Result<String, EngineError> {
        let exchange = [
            Turn::new(Role::User, STAND_IN),
            Turn::new(Role::Assistant, ANSWER_MARK),
        ];
        let text = self.render(&exchange, false)?;
        let close = text
            .rsplit_once(ANSWER_MARK)
            .map(|(_, after)| after.to_owned())
            .unwrap_or_default();
        Ok(match last_token.filter(|t| !t.is_empty()) {
            Some(token) => close
                .strip_prefix(token)
                .map_or(close.clone(), str::to_owned),
            None => close,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(role: Role, text: &str) -> Turn {
        Turn::new(role, text)
    }

    #[test]
    fn gemma3_conversation_folds_the_system_turn() {
        let g = ChatTemplate::gemma3();
        let turns = [
            turn(Role::System, "Be brief."),
            turn(Role::User, " Hi "),
            turn(Role::Assistant, "Hello!"),
        ];
        assert_eq!(
            g.render(&turns, true).unwrap(),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    /// Appends as the daemon makes them, against the text the hand-written Gemma 3
    /// renderer (before templates) gave for the same calls.
    #[test]
    fn gemma3_appends_match_the_earlier_renderer() {
        let g = ChatTemplate::gemma3();
        let mut pending = None;
        let a = g
            .append(
                &[turn(Role::System, "Be brief."), turn(Role::User, "Hi")],
                true,
                &mut pending,
            )
            .unwrap();
        assert_eq!(
            a,
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        );
        // Several user turns in a row, then an assistant turn.
        let b = g
            .append(
                &[
                    turn(Role::User, "one"),
                    turn(Role::User, "two"),
                    turn(Role::Assistant, " fine "),
                ],
                false,
                &mut pending,
            )
            .unwrap();
        assert_eq!(
            b,
            "<start_of_turn>user\none<end_of_turn>\n<start_of_turn>user\ntwo<end_of_turn>\n<start_of_turn>model\nfine<end_of_turn>\n"
        );
        assert_eq!(
            g.generation_prompt(&[], false, &mut pending).unwrap(),
            "<start_of_turn>model\n"
        );
        // A system turn alone waits; said as a user turn if a generation comes first.
        let mut pending = None;
        assert_eq!(
            g.append(&[turn(Role::System, "S")], true, &mut pending)
                .unwrap(),
            ""
        );
        assert_eq!(pending.as_deref(), Some("S"));
        let mut held = pending.clone();
        assert_eq!(
            g.generation_prompt(&[], true, &mut held).unwrap(),
            "<bos><start_of_turn>user\nS<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(held, None);
        // ...or folded into the next user turn, also mid-conversation.
        assert_eq!(
            g.append(&[turn(Role::User, "U")], false, &mut pending)
                .unwrap(),
            "<start_of_turn>user\nS\n\nU<end_of_turn>\n"
        );
        assert_eq!(
            g.generation_prompt(&[turn(Role::User, "Q")], true, &mut None)
                .unwrap(),
            "<bos><start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(g.close_answer(Some("<end_of_turn>")).unwrap(), "\n");
        assert_eq!(g.close_answer(Some("<eos>")).unwrap(), "<end_of_turn>\n");
        assert_eq!(g.close_answer(None).unwrap(), "<end_of_turn>\n");
    }

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_appends_extend_the_whole_rendering() {
        let t = ChatTemplate::new(CHATML, "<|im_start|>", "<|im_end|>").unwrap();
        let turns = [
            turn(Role::User, "Why is the sky blue?"),
            turn(Role::Assistant, "Scattering."),
            turn(Role::System, "Answer in French."),
            turn(Role::User, "Et la mer ?"),
        ];
        // Appended one by one, the text is the template's rendering of them all.
        let mut pending = None;
        let mut text = String::new();
        for (i, t1) in turns.iter().enumerate() {
            text.push_str(
                &t.append(std::slice::from_ref(t1), i == 0, &mut pending)
                    .unwrap(),
            );
        }
        assert_eq!(
            pending, None,
            "ChatML writes a system turn mid-conversation"
        );
        text.push_str(&t.generation_prompt(&[], false, &mut pending).unwrap());
        assert_eq!(text, t.render(&turns, true).unwrap());
        assert_eq!(t.close_answer(Some("<|im_end|>")).unwrap(), "\n");
        assert_eq!(t.close_answer(Some("Paris")).unwrap(), "<|im_end|>\n");
    }

    #[test]
    fn template_errors_name_the_template() {
        let err = ChatTemplate::new("{% for %}", "", "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("chat template"), "{err}");
        let strict = ChatTemplate::new(
            "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}",
            "",
            "",
        )
        .unwrap();
        let err = strict
            .render(&[turn(Role::Assistant, "a")], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("user first"), "{err}");
    }
}
