//! Silences (SPEC §1 `logward silence`, §6 `/api/v1/silences`): "do not tell anyone about
//! events like these until then".
//!
//! Owns the silence type ([`Silence`]) and its matchers ([`SilenceMatcher`]: `K=V`, `K!=V`,
//! `K=~REGEX`, `K!~REGEX`, Alertmanager's operators), the store in `state_dir/silences.json`
//! ([`Silences`]: versioned, written atomically, read-modify-write under an exclusive lock on
//! `state_dir/silences.lock`, long-expired silences collected on write), and the running agent's
//! view of it ([`SilenceWatch`]: re-read when the file changes, asked once per event).
//!
//! Must not: match routes or keep windows and counts (the id [`SilenceWatch::silenced_by`]
//! returns goes to [`crate::window::Windows::observe`], which counts the event as `silenced`),
//! read the clock (callers pass `now`), or format for a terminal. See `docs/routing.md`.

use std::borrow::Cow;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::event::Timestamp;
use crate::pattern::{level, level_name};
use crate::route::{Keyed, value_of};
use crate::state::write_atomic;

/// The store, in `state_dir`.
pub const SILENCES_FILE: &str = "silences.json";
/// Taken (`flock`, exclusive) by writers around read-modify-write of [`SILENCES_FILE`].
pub const LOCK_FILE: &str = "silences.lock";
/// How often a running agent should call [`SilenceWatch::refresh`]: a change to the file takes
/// effect within this.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// [`Silences::list`] still shows a silence this long after it ended or was expired.
pub const LIST_ENDED_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// A silence that ended longer ago than this is removed from the file on the next write.
pub const RETENTION: Duration = Duration::from_secs(5 * 24 * 60 * 60);

const LEVELS: &str = "trace, debug, info, notice, warn, error, critical";

#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("invalid matcher {0}")]
    Matcher(MatcherError),
    #[error("a silence needs at least one matcher, e.g. `service=api`")]
    NoMatchers,
    #[error(
        "every matcher also matches events that lack its key ({matchers}), so the silence would cover every event; add one that needs a value, e.g. `service=api` (to silence a whole source on purpose: `source=~.+`)"
    )]
    MatchesEverything { matchers: String },
    #[error(
        "the silence ends ({ends_at}) before it starts ({starts_at}); give a duration longer than 0s, e.g. 2h"
    )]
    EndsBeforeStart {
        starts_at: Timestamp,
        ends_at: Timestamp,
    },
    #[error(
        "the silence would end at {ends_at}, which is already past; start it later or make it longer"
    )]
    EndsInThePast { ends_at: Timestamp },
    #[error("no silence `{id}` in {}; `logward silence list` (or GET /api/v1/silences) shows the ids; silences that ended more than 5 days ago are removed", path.display())]
    UnknownId { id: String, path: PathBuf },
    #[error("`{id}` is the start of {} silence ids ({}); give more of the id", candidates.len(), candidates.join(", "))]
    AmbiguousId { id: String, candidates: Vec<String> },
    #[error("silence {id} already ended at {at}; nothing to expire")]
    AlreadyExpired { id: String, at: Timestamp },
    #[error("cannot create state_dir {}: {error} — create it, or point state_dir at a writable directory (the agent's config: -c FILE)", path.display())]
    CreateDir { path: PathBuf, error: io::Error },
    #[error("cannot read {}: {error} — point state_dir at a directory (the agent's config: -c FILE)", path.display())]
    NotADirectory { path: PathBuf, error: io::Error },
    #[error("cannot read {}: {error} — check its permissions", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("{} is not a silences file ({error}) — fix it, or move it away to start with no silences", path.display())]
    Corrupt {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("cannot write {}: {error} — run as a user who may write to state_dir (the agent's user), or point -c at the agent's config", path.display())]
    Write { path: PathBuf, error: io::Error },
    #[error("cannot lock {}: {error} — run as a user who may write to state_dir (the agent's user)", path.display())]
    Lock { path: PathBuf, error: io::Error },
}

impl From<MatcherError> for SilenceError {
    fn from(e: MatcherError) -> SilenceError {
        SilenceError::Matcher(e)
    }
}

/// A matcher that cannot be built: the text as written, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: {fix}")]
pub struct MatcherError {
    pub text: String,
    pub fix: String,
}

/// Alertmanager's matcher operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    /// `K=V`: the value is exactly `V`.
    #[serde(rename = "=")]
    Eq,
    /// `K!=V`: the value is not `V`.
    #[serde(rename = "!=")]
    Ne,
    /// `K=~RE`: the regex matches the whole value.
    #[serde(rename = "=~")]
    Re,
    /// `K!~RE`: the regex does not match the whole value.
    #[serde(rename = "!~")]
    NotRe,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }
}

/// One condition of a silence on one event key (`level`, `service`, `pattern`, `ci_run_id`,
/// `source`, `path`, `message`, `fingerprint`, or a field/label name, read with
/// [`crate::route::value_of`]). As in Alertmanager, an absent key reads as the empty string and
/// regexes are anchored at both ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "MatcherJson", into = "MatcherJson")]
pub struct SilenceMatcher {
    key: String,
    op: MatchOp,
    /// For `level` with `=`/`!=`: the normalized level name.
    value: String,
    /// `^(?:value)$`, for `=~` and `!~`.
    regex: Option<Regex>,
}

/// How a matcher is stored and sent: `{"key": "service", "op": "=", "value": "api"}`.
#[derive(Serialize, Deserialize)]
struct MatcherJson {
    key: String,
    op: MatchOp,
    value: String,
}

impl TryFrom<MatcherJson> for SilenceMatcher {
    type Error = MatcherError;
    fn try_from(m: MatcherJson) -> Result<SilenceMatcher, MatcherError> {
        SilenceMatcher::new(&m.key, m.op, &m.value)
    }
}

impl From<SilenceMatcher> for MatcherJson {
    fn from(m: SilenceMatcher) -> MatcherJson {
        MatcherJson {
            key: m.key,
            op: m.op,
            value: m.value,
        }
    }
}

impl SilenceMatcher {
    /// A matcher from its parts; checks the key, a `level` value and a regex.
    pub fn new(key: &str, op: MatchOp, value: &str) -> Result<SilenceMatcher, MatcherError> {
        let text = || format!("{key}{}{value}", op.as_str());
        let err = |fix: String| MatcherError { text: text(), fix };
        if key.is_empty() {
            return Err(err(format!(
                "no key before `{}`; write KEY{}VALUE, e.g. `service{}api`",
                op.as_str(),
                op.as_str(),
                op.as_str()
            )));
        }
        if key.ends_with(['<', '>']) {
            return Err(err(format!(
                "`{}{}` is not a silence operator; use `=`, `!=`, `=~` (regex) or `!~`, e.g. `level=~error|critical`",
                &key[key.len() - 1..],
                op.as_str()
            )));
        }
        if let Some(c) = key
            .chars()
            .find(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '~' | '!'))
        {
            return Err(err(format!(
                "the key `{key}` contains `{}`; a key is an event key (level, service, pattern, ci_run_id, source, path, message, fingerprint) or a field name",
                c.escape_debug()
            )));
        }
        let mut value = value.to_string();
        let regex = match op {
            MatchOp::Re | MatchOp::NotRe => {
                // Checked as written first, so that the error shows the user's regex.
                let anchored = Regex::new(&value)
                    .and_then(|_| Regex::new(&format!("^(?:{value})$")))
                    .map_err(|e| {
                        err(format!(
                            "the text after `{}` is not a valid regex: {e}\n  fix the regex, or use `{}` to compare the text exactly",
                            op.as_str(),
                            if op == MatchOp::Re { "=" } else { "!=" }
                        ))
                    })?;
                Some(anchored)
            }
            MatchOp::Eq | MatchOp::Ne if key == "level" && !value.is_empty() => {
                let known = value.bytes().all(|b| b.is_ascii_alphabetic());
                match level::parse(&value).filter(|_| known) {
                    Some(l) => value = level_name(l).to_string(),
                    None => {
                        return Err(err(format!(
                            "unknown level `{value}`; use one of {LEVELS}, or a regex such as `level=~error|critical`"
                        )));
                    }
                }
                None
            }
            MatchOp::Eq | MatchOp::Ne => None,
        };
        Ok(SilenceMatcher {
            key: key.to_string(),
            op,
            value,
            regex,
        })
    }

    /// Parses `KEY=VALUE`, `KEY!=VALUE`, `KEY=~REGEX` or `KEY!~REGEX`; the first operator in the
    /// text counts. Spaces around the key and value are dropped; a value in double quotes is
    /// read as a JSON string (`message="db timeout "`).
    pub fn parse(text: &str) -> Result<SilenceMatcher, MatcherError> {
        let err = |fix: String| MatcherError {
            text: text.to_string(),
            fix,
        };
        let Some((at, op)) = find_op(text) else {
            let word = text.trim();
            let key = if word.is_empty() { "service" } else { word };
            return Err(err(format!(
                "no operator; write KEY=VALUE, e.g. `{key}={}` (or KEY!=VALUE, KEY=~REGEX, KEY!~REGEX)",
                example_value(key)
            )));
        };
        let key = text[..at].trim();
        let raw = text[at + op.as_str().len()..].trim();
        let value = if raw.starts_with('"') {
            serde_json::from_str::<String>(raw).map_err(|_| {
                err("the value starts with `\"` but is not one quoted string; close the quotes (`message=\"db timeout\"`), or leave them out".into())
            })?
        } else {
            raw.to_string()
        };
        SilenceMatcher::new(key, op, &value).map_err(|e| MatcherError {
            text: text.to_string(),
            fix: e.fix,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the event's value of the key satisfies the matcher (absent reads as "").
    pub fn matches<E: Keyed + ?Sized>(&self, ev: &E) -> bool {
        let v = value_of(&self.key, ev);
        let text = v.as_ref().map_or(Cow::Borrowed(""), |v| v.text());
        self.matches_text(&text)
    }

    /// Whether an event that lacks the key (or has it empty) is matched.
    pub fn matches_empty(&self) -> bool {
        self.matches_text("")
    }

    fn matches_text(&self, text: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Eq, _) => text == self.value,
            (MatchOp::Ne, _) => text != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(text),
            (MatchOp::NotRe, Some(re)) => !re.is_match(text),
            // `new` compiles a regex for both regex operators.
            (MatchOp::Re | MatchOp::NotRe, None) => false,
        }
    }
}

/// The first operator in `text` and where it starts.
fn find_op(text: &str) -> Option<(usize, MatchOp)> {
    let b = text.as_bytes();
    (0..b.len()).find_map(|i| {
        let next = b.get(i + 1).copied();
        let op = match (b[i], next) {
            (b'!', Some(b'=')) => MatchOp::Ne,
            (b'!', Some(b'~')) => MatchOp::NotRe,
            (b'=', Some(b'~')) => MatchOp::Re,
            (b'=', _) => MatchOp::Eq,
            _ => return None,
        };
        Some((i, op))
    })
}

fn example_value(key: &str) -> &'static str {
    match key {
        "level" => "error",
        "ci_run_id" => "4711",
        "pattern" => "gitlab.job-failed",
        "source" => "jenkins",
        "service" => "api",
        _ => "VALUE",
    }
}

impl FromStr for SilenceMatcher {
    type Err = MatcherError;
    fn from_str(s: &str) -> Result<SilenceMatcher, MatcherError> {
        SilenceMatcher::parse(s)
    }
}

/// `key=value`, the value quoted (JSON) when it is empty, has spaces or commas, or starts with
/// `"`; [`SilenceMatcher::parse`] reads it back.
impl fmt::Display for SilenceMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.value;
        let quote = v.is_empty()
            || v.starts_with('"')
            || v.contains(|c: char| c.is_whitespace() || c == ',');
        if quote {
            let quoted = serde_json::to_string(v).map_err(|_| fmt::Error)?;
            write!(f, "{}{}{quoted}", self.key, self.op.as_str())
        } else {
            write!(f, "{}{}{v}", self.key, self.op.as_str())
        }
    }
}

/// Where a silence is in its life at some moment; ordered as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In force: `starts_at <= now < ends_at`, not expired.
    Active,
    /// `starts_at` is still to come.
    Pending,
    /// Past `ends_at`, or expired by hand.
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Expired => "expired",
        }
    }
}

/// One silence: while active, events that all its matchers match are counted, not notified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Silence {
    /// 8 hex digits, unique in the store.
    pub id: String,
    /// All must match.
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    #[serde(default)]
    pub comment: String,
    /// `user@host` of whoever added it.
    #[serde(default)]
    pub created_by: String,
    /// When it was ended by hand (`silence expire`, `DELETE /api/v1/silences/{id}`).
    #[serde(default)]
    pub expired_at: Option<Timestamp>,
}

impl Silence {
    pub fn status(&self, now: Timestamp) -> Status {
        if now >= self.ended_at() {
            Status::Expired
        } else if now < self.starts_at {
            Status::Pending
        } else {
            Status::Active
        }
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        self.status(now) == Status::Active
    }

    /// When it stops (or stopped) being in force: `ends_at`, or `expired_at` if earlier.
    pub fn ended_at(&self) -> Timestamp {
        self.expired_at
            .map_or(self.ends_at, |t| t.min(self.ends_at))
    }

    /// Whether every matcher matches the event (the time is not looked at).
    pub fn matches<E: Keyed + ?Sized>(&self, ev: &E) -> bool {
        self.matchers.iter().all(|m| m.matches(ev))
    }

    /// The matchers as written on a command line, space-separated.
    pub fn matchers_text(&self) -> String {
        join(&self.matchers)
    }

    /// The silence with its `status` at `now`, for listings (`silence list --json`, the API).
    pub fn view(&self, now: Timestamp) -> SilenceView<'_> {
        SilenceView {
            silence: self,
            status: self.status(now),
        }
    }
}

/// A [`Silence`]'s keys plus `status`.
#[derive(Debug, Serialize)]
pub struct SilenceView<'a> {
    #[serde(flatten)]
    pub silence: &'a Silence,
    pub status: Status,
}

fn join(matchers: &[SilenceMatcher]) -> String {
    matchers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a new silence is made of; [`Silences::add`] gives it its id.
#[derive(Debug, Clone)]
pub struct NewSilence {
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub comment: String,
    pub created_by: String,
}

impl NewSilence {
    /// From `starts_at` for `duration`, with no comment, created by [`user_at_host`].
    pub fn lasting(
        matchers: Vec<SilenceMatcher>,
        starts_at: Timestamp,
        duration: Duration,
    ) -> NewSilence {
        NewSilence {
            matchers,
            starts_at,
            ends_at: plus(starts_at, duration),
            comment: String::new(),
            created_by: user_at_host(),
        }
    }

    fn validate(&self, now: Timestamp) -> Result<(), SilenceError> {
        if self.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if self.matchers.iter().all(SilenceMatcher::matches_empty) {
            return Err(SilenceError::MatchesEverything {
                matchers: join(&self.matchers),
            });
        }
        if self.ends_at <= self.starts_at {
            return Err(SilenceError::EndsBeforeStart {
                starts_at: self.starts_at,
                ends_at: self.ends_at,
            });
        }
        if self.ends_at <= now {
            return Err(SilenceError::EndsInThePast {
                ends_at: self.ends_at,
            });
        }
        Ok(())
    }
}

/// The on-disk shape: `{"version": "1", "silences": [...]}`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
enum SilencesFile {
    #[serde(rename = "1")]
    V1 { silences: Vec<Silence> },
}

/// The store: `state_dir/silences.json`, as last read or written through this handle.
///
/// Readers need no lock (the file is replaced atomically). [`add`](Self::add) and
/// [`expire`](Self::expire) take an exclusive `flock` on `state_dir/silences.lock`, read the
/// file again, change it, drop silences that ended more than [`RETENTION`] ago, and write it;
/// so writers in several processes (the CLI, the agent's HTTP API) never lose each other's
/// changes. They block on the lock: call them off the async runtime (`spawn_blocking`).
#[derive(Debug, Clone)]
pub struct Silences {
    dir: PathBuf,
    silences: Vec<Silence>,
}

impl Silences {
    /// Reads the store in `state_dir`; a missing file (or directory) is an empty store.
    pub fn load(state_dir: &Path) -> Result<Silences, SilenceError> {
        let silences = read(&state_dir.join(SILENCES_FILE))?;
        Ok(Silences {
            dir: state_dir.to_path_buf(),
            silences,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(SILENCES_FILE)
    }

    /// Every silence in the file, in the order added.
    pub fn all(&self) -> &[Silence] {
        &self.silences
    }

    /// What to show at `now`: active silences (soonest end first), then pending ones (soonest
    /// start first), then those that ended in the last [`LIST_ENDED_FOR`] (latest end first).
    pub fn list(&self, now: Timestamp) -> Vec<&Silence> {
        let cutoff = minus(now, LIST_ENDED_FOR);
        let mut shown: Vec<&Silence> = self
            .silences
            .iter()
            .filter(|s| s.status(now) != Status::Expired || s.ended_at() >= cutoff)
            .collect();
        shown.sort_by(|a, b| {
            let status = a.status(now);
            status.cmp(&b.status(now)).then_with(|| match status {
                Status::Active => a.ends_at.cmp(&b.ends_at),
                Status::Pending => a.starts_at.cmp(&b.starts_at),
                Status::Expired => b.ended_at().cmp(&a.ended_at()),
            })
        });
        shown
    }

    /// The silence with this id, or with the only id that starts with it.
    pub fn get(&self, id: &str) -> Result<&Silence, SilenceError> {
        let i = resolve(&self.silences, id, &self.path())?;
        Ok(&self.silences[i])
    }

    /// Adds a silence under a new id and returns it.
    pub fn add(&mut self, new: NewSilence, now: Timestamp) -> Result<Silence, SilenceError> {
        new.validate(now)?;
        self.update(now, |list| {
            let silence = Silence {
                id: new_id(now, list),
                matchers: new.matchers,
                starts_at: new.starts_at,
                ends_at: new.ends_at,
                comment: new.comment,
                created_by: new.created_by,
                expired_at: None,
            };
            list.push(silence.clone());
            Ok(silence)
        })
    }

    /// Ends the silence with this id (or unique id prefix) at `now`, and returns it as it is now.
    pub fn expire(&mut self, id: &str, now: Timestamp) -> Result<Silence, SilenceError> {
        let path = self.path();
        self.update(now, |list| {
            let i = resolve(list, id, &path)?;
            let s = &mut list[i];
            if s.status(now) == Status::Expired {
                return Err(SilenceError::AlreadyExpired {
                    id: s.id.clone(),
                    at: s.ended_at(),
                });
            }
            s.expired_at = Some(now);
            Ok(s.clone())
        })
    }

    /// Locked read-modify-write; the snapshot is refreshed whatever `change` says.
    fn update<T>(
        &mut self,
        now: Timestamp,
        change: impl FnOnce(&mut Vec<Silence>) -> Result<T, SilenceError>,
    ) -> Result<T, SilenceError> {
        fs::create_dir_all(&self.dir).map_err(|error| SilenceError::CreateDir {
            path: self.dir.clone(),
            error,
        })?;
        let _lock = Lock::exclusive(&self.dir.join(LOCK_FILE))?;
        let path = self.path();
        let mut list = read(&path)?;
        let changed = change(&mut list);
        if changed.is_ok() {
            let cutoff = minus(now, RETENTION);
            list.retain(|s| s.status(now) != Status::Expired || s.ended_at() >= cutoff);
            write(&path, &list)?;
        }
        self.silences = list;
        changed
    }
}

/// The index of the silence `id` names: its whole id, else the only id it starts.
fn resolve(list: &[Silence], id: &str, path: &Path) -> Result<usize, SilenceError> {
    let unknown = || SilenceError::UnknownId {
        id: id.to_string(),
        path: path.to_path_buf(),
    };
    if id.is_empty() {
        return Err(unknown());
    }
    if let Some(i) = list.iter().position(|s| s.id == id) {
        return Ok(i);
    }
    let found: Vec<usize> = (0..list.len())
        .filter(|&i| list[i].id.starts_with(id))
        .collect();
    match found[..] {
        [] => Err(unknown()),
        [i] => Ok(i),
        _ => Err(SilenceError::AmbiguousId {
            id: id.to_string(),
            candidates: found.iter().map(|&i| list[i].id.clone()).collect(),
        }),
    }
}

/// 8 hex digits from the time, the process, a counter and a per-process random key; drawn
/// again in the unlikely case that the store has it already.
fn new_id(now: Timestamp, taken: &[Silence]) -> String {
    use std::hash::BuildHasher;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    loop {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let random = std::collections::hash_map::RandomState::new().hash_one(seq);
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&now.as_nanos().to_le_bytes());
        seed[8..16].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
        seed[16..24].copy_from_slice(&seq.to_le_bytes());
        seed[24..].copy_from_slice(&random.to_le_bytes());
        let id = format!("{:08x}", xxhash_rust::xxh3::xxh3_64(&seed) as u32);
        if !taken.iter().any(|s| s.id == id) {
            return id;
        }
    }
}

fn read(path: &Path) -> Result<Vec<Silence>, SilenceError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) if error.kind() == io::ErrorKind::NotADirectory => {
            return Err(SilenceError::NotADirectory {
                path: path.to_path_buf(),
                error,
            });
        }
        Err(error) => {
            return Err(SilenceError::Read {
                path: path.to_path_buf(),
                error,
            });
        }
    };
    let SilencesFile::V1 { silences } =
        serde_json::from_slice(&bytes).map_err(|error| SilenceError::Corrupt {
            path: path.to_path_buf(),
            error,
        })?;
    Ok(silences)
}

fn write(path: &Path, silences: &[Silence]) -> Result<(), SilenceError> {
    #[derive(Serialize)]
    struct FileRef<'a> {
        version: &'static str,
        silences: &'a [Silence],
    }
    let mut bytes = serde_json::to_vec_pretty(&FileRef {
        version: "1",
        silences,
    })
    .map_err(|e| SilenceError::Write {
        path: path.to_path_buf(),
        error: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes).map_err(|error| SilenceError::Write {
        path: path.to_path_buf(),
        error,
    })
}

/// An exclusive `flock`, released when dropped (the descriptor closes).
struct Lock(#[allow(dead_code)] File);

impl Lock {
    fn exclusive(path: &Path) -> Result<Lock, SilenceError> {
        let err = |error| SilenceError::Lock {
            path: path.to_path_buf(),
            error,
        };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        loop {
            // SAFETY: flock(2) on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Lock(file));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(err(e));
            }
        }
    }
}

/// The running agent's view of the store: the silences not yet ended, re-read when the file
/// changes. Call [`refresh`](Self::refresh) about every [`REFRESH_INTERVAL`] (one `stat` when
/// nothing changed) and [`silenced_by`](Self::silenced_by) per event (nothing to do while no
/// silence is in force).
#[derive(Debug, Clone)]
pub struct SilenceWatch {
    path: PathBuf,
    /// The file as last read; `None`: absent.
    stamp: Option<Stamp>,
    /// Silences that had not ended at the last refresh, in file order.
    live: Vec<Silence>,
    /// The earliest `starts_at` in `live`: before it, nothing is silenced.
    first_start: Timestamp,
}

/// What tells a rewritten file from the one read: a rename gives it a new inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

impl SilenceWatch {
    /// A watch on `state_dir/silences.json`; holds nothing until the first [`refresh`](Self::refresh).
    pub fn new(state_dir: &Path) -> SilenceWatch {
        SilenceWatch {
            path: state_dir.join(SILENCES_FILE),
            stamp: None,
            live: Vec::new(),
            first_start: Timestamp::from_nanos(i64::MAX),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file if it changed since the last call, and forgets silences that have
    /// ended by `now`. Returns whether the set changed. On an error (unreadable or broken file)
    /// the previous set stays in force, and the same broken file is not reported again.
    pub fn refresh(&mut self, now: Timestamp) -> Result<bool, SilenceError> {
        let stamp = match fs::metadata(&self.path) {
            Ok(m) => Some(Stamp::of(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(SilenceError::Read {
                    path: self.path.clone(),
                    error,
                });
            }
        };
        let mut changed = false;
        let mut result = Ok(());
        if stamp != self.stamp {
            self.stamp = stamp;
            match read(&self.path) {
                Ok(all) => {
                    self.live = all;
                    changed = true;
                }
                Err(e) => result = Err(e),
            }
        }
        let before = self.live.len();
        self.live.retain(|s| s.status(now) != Status::Expired);
        changed |= self.live.len() != before;
        self.first_start = self
            .live
            .iter()
            .map(|s| s.starts_at)
            .min()
            .unwrap_or(Timestamp::from_nanos(i64::MAX));
        result.map(|()| changed)
    }

    /// The id of the first silence in force at `now` whose matchers all match the event.
    pub fn silenced_by<E: Keyed + ?Sized>(&self, ev: &E, now: Timestamp) -> Option<&str> {
        if now < self.first_start {
            return None;
        }
        self.live
            .iter()
            .find(|s| s.is_active(now) && s.matches(ev))
            .map(|s| s.id.as_str())
    }

    /// Silences that had not ended at the last refresh (active or pending), in file order.
    pub fn live(&self) -> &[Silence] {
        &self.live
    }

    /// How many are in force at `now`.
    pub fn active_count(&self, now: Timestamp) -> usize {
        self.live.iter().filter(|s| s.is_active(now)).count()
    }
}

/// `$USER@hostname` (`$LOGNAME`, else `uid N`, when `$USER` is unset).
pub fn user_at_host() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        // SAFETY: getuid(2) cannot fail and touches no memory.
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }));
    format!("{user}@{}", crate::escalation::hostname())
}

/// `t + d`, saturating.
pub fn plus(t: Timestamp, d: Duration) -> Timestamp {
    let d = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    Timestamp::from_nanos(t.as_nanos().saturating_add(d))
}

fn minus(t: Timestamp, d: Duration) -> Timestamp {
    let d = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    Timestamp::from_nanos(t.as_nanos().saturating_sub(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Fingerprint, Level};
    use serde_json::Value;

    const MIN: i64 = 60_000_000_000;

    fn t(minutes: i64) -> Timestamp {
        Timestamp::from_nanos(1_700_000_000_000_000_000 + minutes * MIN)
    }

    fn m(text: &str) -> SilenceMatcher {
        SilenceMatcher::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn event() -> Event {
        let mut ev = crate::route::tests::event("ERROR db timeout");
        ev.level = Some(Level::Error);
        ev.service = Some("api".into());
        ev.message = Some("db timeout after 30s".into());
        ev.fingerprint = Some(Fingerprint(0xab));
        ev.fields.insert("exit_code".into(), Value::from(137));
        ev
    }

    fn new(matchers: &[&str], from: i64, to: i64) -> NewSilence {
        NewSilence {
            matchers: matchers.iter().map(|s| m(s)).collect(),
            starts_at: t(from),
            ends_at: t(to),
            comment: "test".into(),
            created_by: "alice@build-01".into(),
        }
    }

    #[test]
    fn equal_compares_exactly_and_an_absent_key_reads_as_empty() {
        let ev = event();
        assert!(m("service=api").matches(&ev));
        assert!(!m("service=ap").matches(&ev));
        assert!(!m("ci_run_id=4711").matches(&ev));
        assert!(m("ci_run_id=").matches(&ev), "absent is \"\"");
        assert!(m("exit_code=137").matches(&ev), "JSON numbers as text");
        assert!(m("job=jenkins").matches(&ev), "source labels");
        assert!(m("fingerprint=00000000000000ab").matches(&ev));
    }

    #[test]
    fn not_equal_matches_other_values_and_absent_keys() {
        let ev = event();
        assert!(!m("service!=api").matches(&ev));
        assert!(m("service!=build").matches(&ev));
        assert!(m("ci_run_id!=4711").matches(&ev));
    }

    #[test]
    fn regex_must_match_the_whole_value() {
        let ev = event();
        assert!(m("service=~api|build").matches(&ev));
        assert!(
            !m("service=~ap").matches(&ev),
            "anchored, as in Alertmanager"
        );
        assert!(m("message=~.*timeout.*").matches(&ev));
        assert!(m("ci_run_id=~").matches(&ev), "absent is \"\"");
        assert!(!m("ci_run_id=~.+").matches(&ev));
    }

    #[test]
    fn not_regex_is_the_opposite() {
        let ev = event();
        assert!(!m("service!~api|build").matches(&ev));
        assert!(m("service!~ap").matches(&ev));
        assert!(m("ci_run_id!~.+").matches(&ev));
    }

    #[test]
    fn level_compares_the_normalized_name() {
        let ev = event();
        let warning = m("level=warning");
        assert_eq!(warning.value(), "warn");
        assert!(m("level=error").matches(&ev));
        assert!(m("level=ERR").matches(&ev));
        assert!(!warning.matches(&ev));
        assert!(m("level!=warn").matches(&ev));
        assert!(m("level=~error|critical").matches(&ev));
        let mut quiet = event();
        quiet.level = None;
        assert!(m("level=").matches(&quiet));
    }

    #[test]
    fn the_first_operator_counts_and_spaces_and_quotes_are_dropped() {
        let x = m(" message = a=b ");
        assert_eq!(
            (x.key(), x.op(), x.value()),
            ("message", MatchOp::Eq, "a=b")
        );
        let x = m("message=\"db timeout \"");
        assert_eq!(x.value(), "db timeout ");
        let x = m("stage!=~x");
        assert_eq!((x.op(), x.value()), (MatchOp::Ne, "~x"));
        assert_eq!(m("a!~b").op(), MatchOp::NotRe);
        assert_eq!(m("a=~b").op(), MatchOp::Re);
    }

    #[test]
    fn display_reads_back() {
        for text in [
            "service=api",
            "level!=warn",
            "message=~.*time out.*",
            "ci_run_id=",
            "path!~/a,b",
            "message=\"\\\"quoted\\\"\"",
        ] {
            let once = m(text);
            let again = m(&once.to_string());
            assert_eq!(
                (once.key(), once.op(), once.value()),
                (again.key(), again.op(), again.value()),
                "{text} -> {once}"
            );
        }
        assert_eq!(
            m("message=db timeout").to_string(),
            "message=\"db timeout\""
        );
        assert_eq!(m("ci_run_id=").to_string(), "ci_run_id=\"\"");
    }

    #[test]
    fn parse_errors_say_how_to_write_a_matcher() {
        let fix = |text: &str| SilenceMatcher::parse(text).unwrap_err().to_string();
        let e = fix("service");
        assert!(e.contains("write KEY=VALUE, e.g. `service=api`"), "{e}");
        assert!(fix("=api").contains("no key before `=`"));
        let e = fix("level>=error");
        assert!(e.contains("`>=` is not a silence operator"), "{e}");
        let e = fix("service=~(api");
        assert!(e.contains("not a valid regex") && e.contains("(api"), "{e}");
        assert!(!e.contains("^(?:"), "shows the regex as written: {e}");
        let e = fix("level=loud");
        assert!(
            e.contains("unknown level `loud`") && e.contains("critical"),
            "{e}"
        );
        assert!(fix("level=3").contains("unknown level"));
        assert!(fix("message=\"open").contains("close the quotes"));
        assert!(fix("my key=x").contains("contains ` `"));
    }

    #[test]
    fn matchers_are_stored_as_key_op_value_and_checked_when_read() {
        let json = serde_json::to_string(&m("service=~api|build")).unwrap();
        assert_eq!(json, r#"{"key":"service","op":"=~","value":"api|build"}"#);
        let back: SilenceMatcher = serde_json::from_str(&json).unwrap();
        assert!(back.matches(&event()));
        let bad = r#"{"key":"service","op":"=~","value":"(api"}"#;
        let e = serde_json::from_str::<SilenceMatcher>(bad).unwrap_err();
        assert!(e.to_string().contains("not a valid regex"), "{e}");
    }

    #[test]
    fn a_silence_is_in_force_from_its_start_until_its_end() {
        let s = Silence {
            id: "00000001".into(),
            matchers: vec![m("service=api")],
            starts_at: t(10),
            ends_at: t(20),
            comment: String::new(),
            created_by: String::new(),
            expired_at: None,
        };
        assert_eq!(s.status(t(9)), Status::Pending);
        assert_eq!(s.status(t(10)), Status::Active);
        assert_eq!(s.status(t(19)), Status::Active);
        assert_eq!(s.status(t(20)), Status::Expired);
        let expired = Silence {
            expired_at: Some(t(15)),
            ..s
        };
        assert_eq!(expired.status(t(14)), Status::Active);
        assert_eq!(expired.status(t(15)), Status::Expired);
        assert_eq!(expired.ended_at(), t(15));
    }

    #[test]
    fn add_refuses_silences_that_cover_nothing_or_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Silences::load(dir.path()).unwrap();
        let e = store.add(new(&[], 0, 60), t(0)).unwrap_err();
        assert!(matches!(e, SilenceError::NoMatchers), "{e}");
        let e = store.add(new(&["ci_run_id!=1", "service=~.*"], 0, 60), t(0));
        assert!(e.unwrap_err().to_string().contains("source=~.+"));
        let e = store.add(new(&["service=api"], 0, 0), t(0)).unwrap_err();
        assert!(matches!(e, SilenceError::EndsBeforeStart { .. }), "{e}");
        let e = store.add(new(&["service=api"], -60, -1), t(0)).unwrap_err();
        assert!(matches!(e, SilenceError::EndsInThePast { .. }), "{e}");
        assert!(!store.path().exists(), "nothing was written");
    }

    #[test]
    fn the_file_is_versioned_json() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Silences::load(dir.path()).unwrap();
        let s = store
            .add(new(&["service=api", "level=error"], 0, 120), t(0))
            .unwrap();
        assert_eq!(s.id.len(), 8);
        assert!(s.id.bytes().all(|b| b.is_ascii_hexdigit()));
        let file: Value =
            serde_json::from_slice(&fs::read(dir.path().join(SILENCES_FILE)).unwrap()).unwrap();
        assert_eq!(file["version"], "1");
        let saved = &file["silences"][0];
        assert_eq!(saved["id"], s.id.as_str());
        assert_eq!(saved["matchers"][1]["key"], "level");
        assert_eq!(saved["starts_at"], t(0).to_string());
        assert_eq!(saved["ends_at"], t(120).to_string());
        assert_eq!(saved["created_by"], "alice@build-01");
        assert_eq!(saved["expired_at"], Value::Null);
        let again = Silences::load(dir.path()).unwrap();
        assert_eq!(again.all()[0].id, s.id);
    }

    #[test]
    fn a_broken_file_is_named_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SILENCES_FILE), "{\"version\":\"2\"}").unwrap();
        let e = Silences::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("silences.json is not a silences file"), "{e}");
        assert!(e.contains("move it away"), "{e}");
    }

    #[test]
    fn expire_takes_an_id_or_a_unique_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Silences::load(dir.path()).unwrap();
        let mut ids = Vec::new();
        for _ in 0..40 {
            ids.push(store.add(new(&["service=api"], 0, 60), t(0)).unwrap().id);
        }
        // Two ids that share a first digit, to find one with an ambiguous prefix.
        let (a, b) = ids
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                ids[i + 1..]
                    .iter()
                    .find(|b| b[..1] == a[..1])
                    .map(|b| (a, b))
            })
            .expect("40 ids share a first hex digit");
        let e = store.expire(&a[..1], t(1)).unwrap_err();
        let SilenceError::AmbiguousId { candidates, .. } = &e else {
            panic!("{e}")
        };
        assert!(candidates.contains(a) && candidates.contains(b), "{e}");
        assert!(e.to_string().contains("give more of the id"));

        let gone = store.expire(a, t(1)).unwrap();
        assert_eq!(
            (gone.id.as_str(), gone.expired_at),
            (a.as_str(), Some(t(1)))
        );
        assert_eq!(&store.expire(&b[..7], t(2)).unwrap().id, b);
        let e = store.expire(a, t(3)).unwrap_err();
        assert!(matches!(e, SilenceError::AlreadyExpired { .. }), "{e}");

        let e = store.expire("zz", t(3)).unwrap_err().to_string();
        assert!(
            e.contains("no silence `zz`") && e.contains("silence list"),
            "{e}"
        );
        assert!(store.expire("", t(3)).is_err());
        let on_disk = Silences::load(dir.path()).unwrap();
        assert_eq!(on_disk.get(a).unwrap().expired_at, Some(t(1)));
    }

    #[test]
    fn list_shows_active_then_pending_then_the_last_day_of_ended_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Silences::load(dir.path()).unwrap();
        let now = t(0);
        let long_ago = store.add(new(&["service=a"], 0, 10), now).unwrap().id;
        let recent = store.add(new(&["service=b"], 0, 10), now).unwrap().id;
        let pending = store.add(new(&["service=c"], 2000, 2100), now).unwrap().id;
        let later = store.add(new(&["service=d"], 0, 3000), now).unwrap().id;
        let sooner = store.add(new(&["service=e"], 0, 2500), now).unwrap().id;
        store.expire(&long_ago, t(5)).unwrap();
        // Just over 24h after `long_ago` was expired (minute 5); `recent` ended at minute 10.
        let at = t(5 + 24 * 60 + 1);
        let shown: Vec<&str> = store.list(at).iter().map(|s| s.id.as_str()).collect();
        assert_eq!(shown, [&sooner, &later, &pending, &recent]);
    }

    #[test]
    fn silences_ended_five_days_ago_are_collected_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Silences::load(dir.path()).unwrap();
        let old = store.add(new(&["service=a"], 0, 10), t(0)).unwrap().id;
        let kept = store.add(new(&["service=b"], 0, 100_000), t(0)).unwrap().id;
        let five_days = 5 * 24 * 60;
        store
            .add(new(&["service=c"], 0, 100_000), t(10 + five_days))
            .unwrap();
        assert!(store.get(&old).is_ok(), "exactly five days: kept");
        let last = store
            .add(new(&["service=d"], 0, 100_000), t(11 + five_days))
            .unwrap();
        assert!(matches!(
            store.get(&old),
            Err(SilenceError::UnknownId { .. })
        ));
        let on_disk = Silences::load(dir.path()).unwrap();
        let ids: Vec<&str> = on_disk.all().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.contains(&kept.as_str()) && ids.contains(&last.id.as_str()));
    }

    #[test]
    fn writers_with_stale_handles_keep_each_others_silences() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Silences::load(dir.path()).unwrap();
        let mut b = Silences::load(dir.path()).unwrap();
        let one = a.add(new(&["service=a"], 0, 60), t(0)).unwrap();
        let two = b.add(new(&["service=b"], 0, 60), t(0)).unwrap();
        b.expire(&one.id, t(1)).unwrap();
        let on_disk = Silences::load(dir.path()).unwrap();
        assert_eq!(on_disk.all().len(), 2);
        assert_eq!(on_disk.get(&one.id).unwrap().expired_at, Some(t(1)));
        assert!(on_disk.get(&two.id).unwrap().expired_at.is_none());
    }

    #[test]
    fn concurrent_writers_in_threads_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let path = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    for j in 0..10 {
                        let mut s = Silences::load(&path).unwrap();
                        s.add(new(&[&format!("service=s{i}-{j}")], 0, 60), t(0))
                            .unwrap();
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(Silences::load(dir.path()).unwrap().all().len(), 40);
    }

    #[test]
    fn watch_silences_matching_events_while_active() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Silences::load(dir.path()).unwrap();
        let other = store.add(new(&["service=build"], 0, 60), t(0)).unwrap();
        let api = store
            .add(new(&["service=api", "level=error"], 10, 20), t(0))
            .unwrap();
        let mut watch = SilenceWatch::new(dir.path());
        assert!(watch.refresh(t(0)).unwrap());
        let ev = event();
        assert_eq!(watch.silenced_by(&ev, t(9)), None, "pending");
        assert_eq!(watch.silenced_by(&ev, t(10)), Some(api.id.as_str()));
        assert_eq!(
            watch.silenced_by(&ev, t(20)),
            None,
            "ended, even before a refresh"
        );
        let mut warn = event();
        warn.level = Some(Level::Warn);
        assert_eq!(
            watch.silenced_by(&warn, t(15)),
            None,
            "every matcher must match"
        );
        assert_eq!(watch.active_count(t(15)), 2);

        assert!(
            watch.refresh(t(20)).unwrap(),
            "the ended silence is dropped"
        );
        assert_eq!(watch.live().len(), 1);
        assert_eq!(watch.live()[0].id, other.id);
        assert!(!watch.refresh(t(21)).unwrap());
        assert!(watch.refresh(t(60)).unwrap());
        assert!(watch.live().is_empty());
        assert_eq!(watch.silenced_by(&ev, t(61)), None);
    }

    #[test]
    fn watch_picks_up_changes_written_by_another_handle() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = SilenceWatch::new(dir.path());
        assert!(!watch.refresh(t(0)).unwrap(), "no file: nothing silenced");
        let ev = event();
        let mut cli = Silences::load(dir.path()).unwrap();
        let s = cli.add(new(&["service=api"], 0, 60), t(0)).unwrap();
        assert_eq!(watch.silenced_by(&ev, t(1)), None, "not read yet");
        assert!(watch.refresh(t(1)).unwrap());
        assert_eq!(watch.silenced_by(&ev, t(1)), Some(s.id.as_str()));
        assert!(
            !watch.refresh(t(2)).unwrap(),
            "unchanged file: not read again"
        );

        cli.expire(&s.id, t(2)).unwrap();
        assert!(watch.refresh(t(2)).unwrap());
        assert_eq!(watch.silenced_by(&ev, t(2)), None);

        let again = cli.add(new(&["service=api"], 0, 60), t(3)).unwrap();
        fs::remove_file(dir.path().join(SILENCES_FILE)).unwrap();
        assert!(watch.refresh(t(3)).unwrap());
        assert_eq!(
            watch.silenced_by(&ev, t(3)),
            None,
            "a removed file removes its silences"
        );
        assert_ne!(again.id, s.id);
    }

    #[test]
    fn watch_keeps_the_silences_it_has_when_the_file_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let mut cli = Silences::load(dir.path()).unwrap();
        let s = cli.add(new(&["service=api"], 0, 60), t(0)).unwrap();
        let mut watch = SilenceWatch::new(dir.path());
        watch.refresh(t(0)).unwrap();
        write_atomic(&dir.path().join(SILENCES_FILE), b"{ half a file").unwrap();
        let e = watch.refresh(t(1)).unwrap_err();
        assert!(matches!(e, SilenceError::Corrupt { .. }), "{e}");
        assert_eq!(watch.silenced_by(&event(), t(1)), Some(s.id.as_str()));
        assert!(!watch.refresh(t(2)).unwrap(), "reported once per change");
    }

    #[test]
    fn user_at_host_names_both() {
        let who = user_at_host();
        let (user, host) = who.split_once('@').expect("user@host");
        assert!(!user.is_empty() && !host.is_empty(), "{who}");
    }
}
