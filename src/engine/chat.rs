//! Gemma 3's chat format, written out turn by turn so that a cluster's cache can be
//! extended one turn at a time:
//! `<bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n...`.
//! Gemma has no system role: a system turn is folded into the next user turn, as the
//! official template does.

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
            format!("<start_of_turn>user\n{body}<end_of_turn>\n")
        }
        Role::Assistant => format!("<start_of_turn>model\n{}<end_of_turn>\n", turn.text.trim()),
    }
}

/// The prompt that asks the model to answer.
pub const GENERATION_PROMPT: &str = "<start_of_turn>model\n";

/// A whole conversation, with `<bos>` and the generation prompt.
pub fn render_conversation(turns: &[Turn]) -> String {
    let mut pending = None;
    let mut out = String::from("<bos>");
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
