//! [`Printer`]: where every command's result goes (stdout in the binary), and in which
//! form — human-readable text by default, one JSON document per command with `--json`
//! (for scripting). Notes and progress go to stderr instead, so they never mix with
//! what a script reads.

use std::io::Write;

use serde::Serialize;

/// Output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Writing failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A value could not be encoded as JSON (or written as such).
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Where command output goes, and in which form.
pub struct Printer<W> {
    /// Emit JSON instead of text.
    pub json: bool,
    /// The output stream (stdout in the binary).
    pub out: W,
}

impl Printer<std::io::Stdout> {
    /// A printer on stdout.
    pub fn stdout(json: bool) -> Self {
        Printer {
            json,
            out: std::io::stdout(),
        }
    }
}

impl<W: Write> Printer<W> {
    /// Prints `value` as pretty JSON, or `text` when not in JSON mode (nothing when
    /// the text is empty). Either ends with a newline.
    pub fn emit<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> Result<(), OutputError> {
        if self.json {
            serde_json::to_writer_pretty(&mut self.out, value)?;
            writeln!(self.out)?;
        } else {
            let text = text();
            if !text.is_empty() {
                writeln!(self.out, "{text}")?;
            }
        }
        Ok(())
    }

    /// Like [`Printer::emit`], building the JSON value only in JSON mode (for values
    /// that are built just to be printed).
    pub fn emit_with<T: Serialize>(
        &mut self,
        value: impl FnOnce() -> T,
        text: impl FnOnce() -> String,
    ) -> Result<(), OutputError> {
        if self.json {
            self.emit(&value(), String::new)
        } else {
            self.emit(&(), text)
        }
    }

    /// Like [`Printer::emit_with`], with the JSON on one line.
    pub fn emit_line_with<T: Serialize>(
        &mut self,
        value: impl FnOnce() -> T,
        text: impl FnOnce() -> String,
    ) -> Result<(), OutputError> {
        if self.json {
            serde_json::to_writer(&mut self.out, &value())?;
            writeln!(self.out)?;
            Ok(())
        } else {
            self.emit(&(), text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_emits_json_or_text() {
        let value = serde_json::json!({ "cache_tokens": 1088 });
        let mut p = Printer {
            json: true,
            out: Vec::new(),
        };
        p.emit(&value, || unreachable!()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&p.out).unwrap();
        assert_eq!(v["cache_tokens"], 1088);
        assert_eq!(
            String::from_utf8(p.out).unwrap(),
            serde_json::to_string_pretty(&value).unwrap() + "\n"
        );
        let mut p = Printer {
            json: true,
            out: Vec::new(),
        };
        p.emit_line_with(|| &value, || unreachable!()).unwrap();
        assert_eq!(p.out, b"{\"cache_tokens\":1088}\n");
        let mut p = Printer {
            json: false,
            out: Vec::new(),
        };
        p.emit(&value, || "hello".into()).unwrap();
        p.emit(&value, String::new).unwrap();
        assert_eq!(p.out, b"hello\n");
    }
}
