//! Turning turns into the text that is tokenized for a cluster (plain functions). The
//! markup itself comes from the model's chat template (the engine's chat module).

use semkv_engine::generate::chat::{ChatTemplate, Turn};

use super::TurnFormat;
use crate::error::ServiceError;

/// The chat template, or why the chat format cannot be used.
fn template(chat: Option<&ChatTemplate>) -> Result<&ChatTemplate, ServiceError> {
    chat.ok_or_else(|| {
        ServiceError::invalid(
            "format",
            "this model has no chat template, so turns cannot be written in the chat format: use RAW",
        )
    })
}

/// A template's refusal (e.g. roles it does not accept) as the client's error.
fn refused(e: semkv_engine::EngineError) -> ServiceError {
    match e {
        semkv_engine::EngineError::InvalidInput(m) => ServiceError::invalid("turns", m),
        other => ServiceError::Internal(other.to_string()),
    }
}

/// Text for appending `turns` to a cluster. In chat format the model's template
/// writes them (opening the conversation when the cluster is empty; a system turn it
/// will not write mid-conversation waits in `pending_system` for the next turn); in
/// raw format the texts are joined as they are.
pub fn append_text(
    chat: Option<&ChatTemplate>,
    turns: &[Turn],
    format: TurnFormat,
    cluster_is_empty: bool,
    pending_system: &mut Option<String>,
) -> Result<String, ServiceError> {
    match format {
        TurnFormat::Raw => Ok(turns.iter().map(|t| t.text.as_str()).collect()),
        TurnFormat::Chat => template(chat)?
            .append(turns, cluster_is_empty, pending_system)
            .map_err(refused),
    }
}

/// The prompt of a generation: the turns, then (chat format) the opening of the
/// model's turn.
pub fn generation_text(
    chat: Option<&ChatTemplate>,
    turns: &[Turn],
    format: TurnFormat,
    cluster_is_empty: bool,
    pending_system: &mut Option<String>,
) -> Result<String, ServiceError> {
    match format {
        TurnFormat::Raw => append_text(chat, turns, format, cluster_is_empty, pending_system),
        TurnFormat::Chat => template(chat)?
            .generation_prompt(turns, cluster_is_empty, pending_system)
            .map_err(refused),
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
        let gemma = ChatTemplate::gemma3();
        let chat = Some(&gemma);
        let mut pending = None;
        let a = append_text(
            chat,
            &[turn(Role::System, "Be brief."), turn(Role::User, "Hi")],
            TurnFormat::Chat,
            true,
            &mut pending,
        )
        .unwrap();
        assert_eq!(
            a,
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        );
        let g = generation_text(chat, &[], TurnFormat::Chat, false, &mut pending).unwrap();
        assert_eq!(g, "<start_of_turn>model\n");
        let mut pending = None;
        let s = append_text(
            chat,
            &[turn(Role::System, "S")],
            TurnFormat::Chat,
            true,
            &mut pending,
        )
        .unwrap();
        assert_eq!((s.as_str(), pending.as_deref()), ("", Some("S")));
        let r = append_text(
            None,
            &[turn(Role::User, "a"), turn(Role::User, "b")],
            TurnFormat::Raw,
            true,
            &mut None,
        )
        .unwrap();
        assert_eq!(r, "ab");
        let e = append_text(
            None,
            &[turn(Role::User, "a")],
            TurnFormat::Chat,
            true,
            &mut None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("RAW"), "{e}");
    }
}
