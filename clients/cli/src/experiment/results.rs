//! Experiment results as JSON Lines: one [`OutputRecord`] per generated output.
//!
//! The [`ResultsWriter`] appends a line and flushes it to disk before the runner moves
//! on, so an interrupted batch loses at most the output being generated. The
//! [`ResultsIndex`] reads a results file back, tolerating a torn last line, and says
//! which (example, condition, output) triples are done — what `--resume` skips.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::TextFormat;
use crate::experiment::conditions::Condition;
use crate::experiment::dataset::Output;
use crate::experiment::metrics::OutputMetrics;

/// One generated output and everything measured about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// The example's id.
    pub example_id: String,
    /// The example's domain.
    pub domain: String,
    /// The condition.
    pub condition: Condition,
    /// Which output.
    pub output: Output,
    /// Chat template or raw text.
    pub format: TextFormat,
    /// The batch's seed (`--seed`).
    pub batch_seed: u64,
    /// The sampler seed of this output, derived from the batch seed.
    pub seed: u64,
    /// The model that generated it, as the daemon reported it.
    pub model: String,
    /// The model's fingerprint (its weights, config and tokenizer); empty in files
    /// written before it was recorded.
    #[serde(default)]
    pub fingerprint: String,
    /// The daemon's semkv version.
    #[serde(default)]
    pub semkv_version: String,
    /// The batch's `--max-tokens` (absent in older files).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The batch's `--temperature` (absent in older files).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// The generated text.
    pub text: String,
    /// Tokens of the output's prompt (its instruction) that were prefilled.
    pub prompt_tokens: u64,
    /// Tokens in the cache of the context the output was generated on (the size of
    /// that context: what the prototype called its cache size).
    pub cache_tokens: u64,
    /// Tokens served from the cache rather than prefilled.
    pub tokens_reused: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Time to first token, in milliseconds.
    pub ttft_ms: f64,
    /// Decode speed, tokens per second.
    pub tok_s: f64,
    /// Why generation stopped.
    pub finish_reason: String,
    /// The output's metrics.
    pub metrics: OutputMetrics,
    /// When the record was written (milliseconds since the Unix epoch).
    pub unix_ms: u64,
}

impl OutputRecord {
    /// The triple that identifies this record within a batch.
    pub fn key(&self) -> RecordKey {
        RecordKey {
            example_id: self.example_id.clone(),
            condition: self.condition,
            output: self.output,
        }
    }
}

/// What every output of one batch shares; `--resume` refuses a file made otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettings {
    pub seed: u64,
    pub format: TextFormat,
    pub max_tokens: u32,
    pub temperature: f32,
    /// The daemon's model fingerprint.
    pub fingerprint: String,
}

/// A setting a recorded output was made with, and the one given now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingMismatch {
    /// The flag, e.g. `--seed`, or `model` for the model's fingerprint.
    pub setting: &'static str,
    pub recorded: String,
    pub given: String,
}

impl BatchSettings {
    /// The first setting `r` was made with differently.
    pub fn differs_from(&self, r: &OutputRecord) -> Option<SettingMismatch> {
        let differ = |setting, recorded: String, given: String| {
            (recorded != given).then_some(SettingMismatch {
                setting,
                recorded,
                given,
            })
        };
        differ("--seed", r.batch_seed.to_string(), self.seed.to_string())
            .or_else(|| {
                differ(
                    "--format",
                    r.format.as_str().to_owned(),
                    self.format.as_str().to_owned(),
                )
            })
            .or_else(|| {
                let recorded = r.max_tokens?;
                differ(
                    "--max-tokens",
                    recorded.to_string(),
                    self.max_tokens.to_string(),
                )
            })
            .or_else(|| {
                let recorded = r.temperature?;
                differ(
                    "--temperature",
                    recorded.to_string(),
                    self.temperature.to_string(),
                )
            })
            .or_else(|| {
                (!r.fingerprint.is_empty() && r.fingerprint != self.fingerprint).then(|| {
                    SettingMismatch {
                        setting: "model",
                        recorded: format!("{} (fingerprint {})", r.model, r.fingerprint),
                        given: format!("the daemon's (fingerprint {})", self.fingerprint),
                    }
                })
            })
    }
}

/// (example, condition, output): what a batch produces exactly once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    /// The example's id.
    pub example_id: String,
    /// The condition.
    pub condition: Condition,
    /// The output.
    pub output: Output,
}

/// Results-file failures.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A record could not be encoded (should not happen).
    #[error("cannot encode a result record: {0}")]
    Encode(#[from] serde_json::Error),
    /// A line in the middle of the file is not a record.
    #[error("{path}:{line}: not a result record: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Appends records to a results file, one flushed line each.
#[derive(Debug)]
pub struct ResultsWriter {
    path: PathBuf,
    file: File,
}

impl ResultsWriter {
    /// Opens `path` for appending, creating it (and its directory) if needed. If the
    /// file ends in a torn line (a write interrupted mid-line), that partial line is
    /// cut off, so the file again holds only whole records.
    pub fn open(path: &Path) -> Result<Self, ResultsError> {
        let io = |source| ResultsError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        if bytes.last().is_some_and(|&b| b != b'\n') {
            let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(ResultsWriter {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record as a line and makes it durable before returning.
    pub fn append(&mut self, record: &OutputRecord) -> Result<(), ResultsError> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let io = |source| ResultsError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&line).map_err(io)?;
        self.file.flush().map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The records of a results file, by key.
#[derive(Debug, Clone, Default)]
pub struct ResultsIndex {
    records: BTreeMap<RecordKey, OutputRecord>,
    /// 1-based number of a torn last line that was skipped, if any.
    pub torn_last_line: Option<usize>,
}

impl ResultsIndex {
    /// Reads `path`; a missing file is an empty index. A torn *last* line (an
    /// interrupted write) is skipped and noted; a bad line anywhere else is an error.
    /// When a key occurs twice, the later record wins.
    pub fn read(path: &Path) -> Result<Self, ResultsError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ResultsError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|source| ResultsError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let last_content = lines.iter().rposition(|l| !l.trim().is_empty());
        let mut index = ResultsIndex::default();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<OutputRecord>(line) {
                Ok(r) => {
                    index.records.insert(r.key(), r);
                }
                Err(_) if Some(i) == last_content => index.torn_last_line = Some(i + 1),
                Err(e) => {
                    return Err(ResultsError::Corrupt {
                        path: path.to_path_buf(),
                        line: i + 1,
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(index)
    }

    /// Builds an index from records (later ones win).
    pub fn from_records(records: impl IntoIterator<Item = OutputRecord>) -> Self {
        ResultsIndex {
            records: records.into_iter().map(|r| (r.key(), r)).collect(),
            torn_last_line: None,
        }
    }

    /// Whether `(example, condition, output)` is done.
    pub fn is_done(&self, example_id: &str, condition: Condition, output: Output) -> bool {
        self.get(example_id, condition, output).is_some()
    }

    /// The record of `(example, condition, output)`, if done.
    pub fn get(
        &self,
        example_id: &str,
        condition: Condition,
        output: Output,
    ) -> Option<&OutputRecord> {
        self.records.get(&RecordKey {
            example_id: example_id.to_owned(),
            condition,
            output,
        })
    }

    /// Adds or replaces a record.
    pub fn insert(&mut self, record: OutputRecord) {
        self.records.insert(record.key(), record);
    }

    /// All records, ordered by key.
    pub fn records(&self) -> impl Iterator<Item = &OutputRecord> {
        self.records.values()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The first record whose batch seed or text format differs from the given ones:
    /// resuming such a file would mix two different batches.
    /// The first setting of `batch` that a recorded output was made with differently
    /// (settings older files did not record are not compared).
    pub fn mismatch(&self, batch: &BatchSettings) -> Option<SettingMismatch> {
        self.records.values().find_map(|r| batch.differs_from(r))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record with the given key and metrics left empty.
    pub(crate) fn record(example: &str, condition: Condition, output: Output) -> OutputRecord {
        OutputRecord {
            example_id: example.into(),
            domain: "test".into(),
            condition,
            output,
            format: TextFormat::Chat,
            batch_seed: 42,
            seed: 7,
            model: "m".into(),
            fingerprint: "f1".into(),
            semkv_version: "0.1.0".into(),
            max_tokens: Some(96),
            temperature: Some(0.7),
            text: format!("text of {example} {condition} {output}"),
            prompt_tokens: 100,
            cache_tokens: 90,
            tokens_reused: 90,
            generated_tokens: 20,
            ttft_ms: 12.5,
            tok_s: 40.0,
            finish_reason: "length".into(),
            metrics: OutputMetrics::default(),
            unix_ms: 1,
        }
    }

    #[test]
    fn writes_reads_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/results.jsonl");
        let mut w = ResultsWriter::open(&path).unwrap();
        w.append(&record("e1", Condition::Sequential, Output::A))
            .unwrap();
        w.append(&record("e1", Condition::Sequential, Output::B))
            .unwrap();
        drop(w);
        // Each append is a full line on disk.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));

        let idx = ResultsIndex::read(&path).unwrap();
        assert_eq!(idx.len(), 2);
        assert!(idx.is_done("e1", Condition::Sequential, Output::A));
        assert!(!idx.is_done("e1", Condition::Sequential, Output::C));
        assert!(!idx.is_done("e1", Condition::Semantic, Output::A));
        assert_eq!(
            idx.get("e1", Condition::Sequential, Output::B)
                .unwrap()
                .text,
            "text of e1 sequential B"
        );
        let same = BatchSettings {
            seed: 42,
            format: TextFormat::Chat,
            max_tokens: 96,
            temperature: 0.7,
            fingerprint: "f1".into(),
        };
        assert_eq!(idx.mismatch(&same), None);
        let check = |other: BatchSettings, setting: &str, recorded: &str, given: &str| {
            let m = idx.mismatch(&other).expect(setting);
            assert_eq!((m.setting, m.recorded.as_str()), (setting, recorded));
            assert!(m.given.contains(given), "{m:?}");
        };
        check(
            BatchSettings {
                seed: 43,
                ..same.clone()
            },
            "--seed",
            "42",
            "43",
        );
        check(
            BatchSettings {
                format: TextFormat::Raw,
                ..same.clone()
            },
            "--format",
            "chat",
            "raw",
        );
        check(
            BatchSettings {
                max_tokens: 8,
                ..same.clone()
            },
            "--max-tokens",
            "96",
            "8",
        );
        check(
            BatchSettings {
                temperature: 1.5,
                ..same.clone()
            },
            "--temperature",
            "0.7",
            "1.5",
        );
        check(
            BatchSettings {
                fingerprint: "f2".into(),
                ..same.clone()
            },
            "model",
            "m (fingerprint f1)",
            "f2",
        );
    }

    #[test]
    fn settings_older_files_did_not_record_are_not_compared() {
        let mut r = record("e1", Condition::Sequential, Output::A);
        (r.max_tokens, r.temperature, r.fingerprint) = (None, None, String::new());
        let any = BatchSettings {
            seed: 42,
            format: TextFormat::Chat,
            max_tokens: 8,
            temperature: 1.5,
            fingerprint: "other".into(),
        };
        assert_eq!(any.differs_from(&r), None);
    }

    #[test]
    fn torn_last_line_is_skipped_and_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let good = serde_json::to_string(&record("e1", Condition::Prompted, Output::A)).unwrap();
        std::fs::write(&path, format!("{good}\n{}", &good[..good.len() / 2])).unwrap();
        let idx = ResultsIndex::read(&path).unwrap();
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.torn_last_line, Some(2));

        let mut w = ResultsWriter::open(&path).unwrap();
        w.append(&record("e1", Condition::Prompted, Output::B))
            .unwrap();
        let idx = ResultsIndex::read(&path).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.torn_last_line, None);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);

        // A file that is one torn line only becomes empty.
        std::fs::write(&path, &good[..10]).unwrap();
        drop(ResultsWriter::open(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn a_bad_line_in_the_middle_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let good = serde_json::to_string(&record("e1", Condition::Prompted, Output::A)).unwrap();
        std::fs::write(&path, format!("{good}\n{{oops\n{good}\n")).unwrap();
        match ResultsIndex::read(&path) {
            Err(ResultsError::Corrupt { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected corruption at line 2, got {other:?}"),
        }
    }

    #[test]
    fn missing_file_is_empty_and_later_records_win() {
        let dir = tempfile::tempdir().unwrap();
        let idx = ResultsIndex::read(&dir.path().join("none.jsonl")).unwrap();
        assert!(idx.is_empty());
        let mut second = record("e", Condition::Semantic, Output::C);
        second.text = "second".into();
        let idx = ResultsIndex::from_records([record("e", Condition::Semantic, Output::C), second]);
        assert_eq!(idx.len(), 1);
        assert_eq!(
            idx.get("e", Condition::Semantic, Output::C).unwrap().text,
            "second"
        );
    }
}
