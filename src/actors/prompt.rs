//! Turning turns into the text that is tokenized for a cluster (plain functions). The
//! markup itself lives in the engine's chat module.

use semkv_engine::generate::chat::{render_generation_prompt, render_turns, Turn};

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
        TurnFormat::Chat => render_turns(turns, pending_system, cluster_is_empty),
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
        TurnFormat::Chat => render_generation_prompt(turns, pending_system, cluster_is_empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use semkv_engine::generate::chat::Role;

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
