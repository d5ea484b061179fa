//! Turning turns into the text that is tokenized for a cluster (plain functions).

use crate::engine::chat::{render_turn, Turn, GENERATION_PROMPT};

use super::TurnFormat;

/// Text for appending `turns` to a cluster. In chat format the first text of a cluster
/// starts with `<bos>`, and a system turn is held in `pending_system` until the next
/// user turn; in raw format the texts are joined as they are.
pub fn append_text(
    turns: &[Turn],
    format: TurnFormat,
    cluster_is_empty: bool,
    pending_system: &mut Option<String>,
) -> String {
    match format {
        TurnFormat::Raw => turns.iter().map(|t| t.text.as_str()).collect(),
        TurnFormat::Chat => {
            let mut out = String::new();
            for t in turns {
                out.push_str(&render_turn(t, pending_system));
            }
            if cluster_is_empty && !out.is_empty() {
                out.insert_str(0, "<bos>");
            }
            out
        }
    }
}

/// The prompt of a generation: the turns, then (chat format) the opening of the
/// model's turn.
pub fn generation_text(
    turns: &[Turn],
    format: TurnFormat,
    cluster_is_empty: bool,
    pending_system: &mut Option<String>,
) -> String {
    match format {
        TurnFormat::Raw => append_text(turns, format, cluster_is_empty, pending_system),
        TurnFormat::Chat => {
            let mut out = String::new();
            for t in turns {
                out.push_str(&render_turn(t, pending_system));
            }
            if let Some(system) = pending_system.take() {
                // A system turn with no user turn after it: it still has to be said.
                out.push_str(&format!("<start_of_turn>user\n{system}<end_of_turn>\n"));
            }
            out.push_str(GENERATION_PROMPT);
            if cluster_is_empty {
                out.insert_str(0, "<bos>");
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::chat::Role;

    fn turn(role: Role, text: &str) -> Turn {
        Turn {
            role,
            text: text.into(),
        }
    }

    #[test]
    fn chat_append_then_generate() {
        let mut pending = None;
        let a = append_text(
            &[turn(Role::System, "Be brief."), turn(Role::User, "Hi")],
            TurnFormat::Chat,
            true,
            &mut pending,
        );
        assert_eq!(
            a,
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        );
        let g = generation_text(&[], TurnFormat::Chat, false, &mut pending);
        assert_eq!(g, "<start_of_turn>model\n");
        let mut pending = None;
        let s = append_text(
            &[turn(Role::System, "S")],
            TurnFormat::Chat,
            true,
            &mut pending,
        );
        assert_eq!((s.as_str(), pending.as_deref()), ("", Some("S")));
        let r = append_text(
            &[turn(Role::User, "a"), turn(Role::User, "b")],
            TurnFormat::Raw,
            true,
            &mut None,
        );
        assert_eq!(r, "ab");
    }
}
