//! Gemma 3's chat format, written out turn by turn so that a cluster's cache can be
//! extended one turn at a time:
//! `<bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n...`.
//! Gemma has no system role: a system turn is folded into the next user turn, as the
//! official template does.
//!
//! This module is the only place the markup is written: the daemon renders appends
//! ([`render_turns`]), generation prompts ([`render_generation_prompt`]) and the close
//! of a generated answer ([`close_model_turn`]) through it.

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

/// Opens a conversation.
pub const BOS: &str = "<bos>";

/// Ends a turn (also a special token the model emits to end its answer).
pub const END_OF_TURN: &str = "<end_of_turn>";

/// Renders a turn. `pending_system` carries a system turn's text into the next user
/// turn; a system turn renders as nothing.
pub fn render_turn(turn: &Turn, pending_system: &mut Option<String>) -> String {
    match turn.role {
        Role::System => {
            *pending_system = Some(turn.text.trim().to_owned());
            String::new()
        }
        Role::User => {
            let body = match pending_system.take() {
                Some(system) => format!("{system}\n\n{}", turn.text.trim()),
                None => turn.text.trim().to_owned(),
            };
            user_turn(&body)
        }
        Role::Assistant => format!("{GENERATION_PROMPT}{}{END_OF_TURN}\n", turn.text.trim()),
    }
}

fn user_turn(body: &str) -> String {
    format!("<start_of_turn>user\n{body}{END_OF_TURN}\n")
}

/// The prompt that asks the model to answer.
pub const GENERATION_PROMPT: &str = "<start_of_turn>model\n";

/// Renders `turns` for appending to a conversation (a system turn waits in
/// `pending_system` for the next user turn); [`BOS`] comes first when they open the
/// conversation and render to something.
pub fn render_turns(
    turns: &[Turn],
    pending_system: &mut Option<String>,
    opens_conversation: bool,
) -> String {
    let mut out: String = turns
        .iter()
        .map(|t| render_turn(t, pending_system))
        .collect();
    if opens_conversation && !out.is_empty() {
        out.insert_str(0, BOS);
    }
    out
}

/// Renders `turns` followed by the opening of the model's answer. A system turn still
/// pending (no user turn after it) is said as a user turn, so it is not lost.
pub fn render_generation_prompt(
    turns: &[Turn],
    pending_system: &mut Option<String>,
    opens_conversation: bool,
) -> String {
    let mut out = render_turns(turns, pending_system, false);
    if let Some(system) = pending_system.take() {
        out.push_str(&user_turn(&system));
    }
    out.push_str(GENERATION_PROMPT);
    if opens_conversation {
        out.insert_str(0, BOS);
    }
    out
}

/// The text that closes the model's answer once it is committed to a conversation:
/// just the newline when the model ended its answer with [`END_OF_TURN`] itself.
pub fn close_model_turn(ended_with_end_of_turn: bool) -> &'static str {
    if ended_with_end_of_turn {
        "\n"
    } else {
        "<end_of_turn>\n"
    }
}

/// A whole conversation, with `<bos>` and the generation prompt.
pub fn render_conversation(turns: &[Turn]) -> String {
    let mut pending = None;
    let mut out = String::from(BOS);
    for t in turns {
        out.push_str(&render_turn(t, &mut pending));
    }
    out.push_str(GENERATION_PROMPT);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_folds_into_first_user_turn() {
        let turns = [
            Turn {
                role: Role::System,
                text: "Be brief.".into(),
            },
            Turn {
                role: Role::User,
                text: " Hi ".into(),
            },
            Turn {
                role: Role::Assistant,
                text: "Hello!".into(),
            },
        ];
        assert_eq!(
            render_conversation(&turns),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>model\n"
        );
    }
}
