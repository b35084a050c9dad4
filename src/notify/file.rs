//! The `file` receiver: appends each escalation to `path` as one NDJSON line, exactly the
//! SPEC §5 object (`serde_json` of [`Escalation`], keys in the spec's order).
//!
//! Owns: opening the file for appending (creating its directory), one `write_all` per line,
//! and keeping the file whole NDJSON: a torn last line (a crash or a failed write in the
//! middle of a line) is cut before the next line is appended.
//!
//! Durability: a line is handed to the kernel before [`FileReceiver::append`] returns (the
//! file has no user-space buffer, so that is the flush), and there is no `sync_data` per line.
//! Escalations are few and are not positions: the window state that says they were sent is
//! saved before they are (`Windows::must_save_now`), so an OS crash can lose the last lines of
//! this file but cannot make the agent send them twice. An agent crash loses nothing the
//! kernel holds.
//!
//! Must not: rate-limit, retry, rotate the file, or shape the object (that is
//! [`crate::escalation`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{NotifyError, Outcome, Sender};
use crate::escalation::Escalation;
use crate::ship::file::{cut_torn_line, open_ndjson};

/// A line buffer above this is given back after the line is written.
const KEEP_BUFFER_BYTES: usize = 64 << 10;

pub struct FileReceiver {
    name: Arc<str>,
    path: PathBuf,
    file: File,
    line: Vec<u8>,
    /// A write failed: the file may end in part of a line, cut before the next append.
    torn: bool,
}

impl FileReceiver {
    /// Opens `path` for appending as the receiver `name`, creating its directory, and cuts
    /// a torn last line.
    pub fn open(name: Arc<str>, path: &Path) -> Result<FileReceiver, NotifyError> {
        let err = |source| NotifyError::Open {
            receiver: name.clone(),
            path: path.to_path_buf(),
            source,
        };
        let (file, cut) = open_ndjson(path).map_err(err)?;
        if cut > 0 {
            tracing::warn!(
                receiver = &*name,
                path = %path.display(),
                cut_bytes = cut,
                "escalation file ended in a torn line (crash while writing); cut it"
            );
        }
        Ok(FileReceiver {
            name,
            path: path.to_path_buf(),
            file,
            line: Vec::with_capacity(4096),
            torn: false,
        })
    }

    /// Appends the escalation as one line; when this returns `Ok`, the kernel has it.
    pub fn append(&mut self, esc: &Escalation) -> Result<(), NotifyError> {
        self.line.clear();
        // Serializing into a Vec fails only for maps with non-string keys or non-finite
        // floats, which an escalation cannot hold; reported like a write failure all the same.
        serde_json::to_writer(&mut self.line, esc).map_err(|e| self.error(e.into()))?;
        self.line.push(b'\n');
        if self.torn {
            cut_torn_line(&mut self.file).map_err(|e| self.error(e))?;
            self.torn = false;
        }
        if let Err(e) = self.file.write_all(&self.line) {
            self.torn = true;
            return Err(self.error(e));
        }
        if self.line.capacity() > KEEP_BUFFER_BYTES {
            self.line = Vec::with_capacity(4096);
        }
        Ok(())
    }

    fn error(&self, source: std::io::Error) -> NotifyError {
        NotifyError::Append {
            receiver: self.name.clone(),
            path: self.path.clone(),
            source,
        }
    }
}

impl Sender for FileReceiver {
    /// A failed append (a full disk, a read-only directory) is worth another try:
    /// [`Outcome::Retry`].
    fn send(&mut self, esc: &Escalation, _key: &str) -> Outcome {
        match self.append(esc) {
            Ok(()) => Outcome::Accepted {
                answer: format!("appended to {}", self.path.display()),
            },
            Err(e) => Outcome::Retry {
                after: None,
                reason: e.to_string(),
            },
        }
    }
}

/// A `file` receiver that opens its file when it can: a path that cannot be opened at start
/// (its directory not creatable yet, a permission missing) is not fatal, every attempt tries
/// again and answers [`Outcome::Retry`] until it works, so the agent runs and escalations wait
/// in the outbox.
pub struct LazyFile {
    name: Arc<str>,
    path: PathBuf,
    open: Option<FileReceiver>,
}

impl LazyFile {
    /// Tries to open `path` now; a failure is logged and tried again at the first send.
    pub fn new(name: Arc<str>, path: &Path) -> LazyFile {
        let open = match FileReceiver::open(name.clone(), path) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(error = %e, "the file receiver cannot open its file yet; escalations wait in the outbox and it is tried again at each attempt");
                None
            }
        };
        LazyFile {
            name,
            path: path.to_path_buf(),
            open,
        }
    }
}

impl Sender for LazyFile {
    fn send(&mut self, esc: &Escalation, key: &str) -> Outcome {
        if self.open.is_none() {
            match FileReceiver::open(self.name.clone(), &self.path) {
                Ok(f) => self.open = Some(f),
                Err(e) => {
                    return Outcome::Retry {
                        after: None,
                        reason: e.to_string(),
                    };
                }
            }
        }
        match &mut self.open {
            Some(f) => f.send(esc, key),
            None => Outcome::Retry {
                after: None,
                reason: "not open".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::KEYS;
    use crate::notify::tests::escalation;
    use serde_json::Value;
    use std::fs;

    /// An object's top-level keys, in the order they were written.
    struct Keys(Vec<String>);

    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, serde::de::IgnoredAny)) = map.next_entry::<String, _>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visitor)
        }
    }

    #[test]
    fn each_escalation_is_one_ndjson_line_with_every_spec_key_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/escalations.ndjson");
        let mut f = FileReceiver::open("audit".into(), &path).unwrap();
        let first = escalation("ERROR db timeout after 30s\n\tat com.example.Db.query(Db.java:42)");
        let mut summary = first.clone();
        summary.kind = crate::escalation::Kind::Summary;
        summary.count = 120;
        summary.suppressed = 119;
        f.append(&first).unwrap();
        f.append(&summary).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for (line, esc) in lines.iter().zip([&first, &summary]) {
            let Keys(keys) = serde_json::from_str(line).unwrap();
            assert_eq!(keys, KEYS, "keys or their order differ from SPEC §5");
            let v: Value = serde_json::from_str(line).unwrap();
            let back: Escalation = serde_json::from_str(line).unwrap();
            assert_eq!(&back, esc);
            for key in crate::event::KEYS {
                assert!(v["sample"].get(key).is_some(), "sample lacks {key}");
            }
        }
        let v: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["suppressed"].as_u64()),
            (Some("summary"), Some(119))
        );
        assert_eq!(v["first_seen"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn appends_to_what_is_there_and_cuts_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("escalations.ndjson");
        fs::write(&path, b"{\"route\":\"old\"}\n{\"route\":\"to").unwrap();
        let mut f = FileReceiver::open("audit".into(), &path).unwrap();
        f.append(&escalation("ERROR x")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], "{\"route\":\"old\"}");
        assert!(serde_json::from_str::<Value>(lines[1]).is_ok(), "{text}");
    }

    #[test]
    fn a_write_failure_is_an_error_with_the_path_and_the_next_line_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("escalations.ndjson");
        let mut f = FileReceiver::open("audit".into(), &path).unwrap();
        // A read-only handle in place of the file: writes fail.
        let writable = std::mem::replace(&mut f.file, File::open(&path).unwrap());
        let e = f.append(&escalation("ERROR x")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("receiver `audit`: cannot append to ")
                && text.contains(&*path.to_string_lossy()),
            "{text}"
        );
        // Part of a line reached the file before the failure.
        fs::write(&path, b"{\"route\":\"err").unwrap();
        f.file = writable;
        f.append(&escalation("ERROR y")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            serde_json::from_str::<Value>(text.trim_end()).is_ok(),
            "{text}"
        );
    }
}
