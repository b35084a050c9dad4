//! Pattern files and extraction: which pattern a record matches, and the
//! level, service, `ci_run_id`, message and fields it yields.
//!
//! A `PatternSet` is loaded and validated whole, then shared read-only; hot
//! reload swaps a new set in between batches. Matching is one pass of a
//! `RegexSet` over the line, then captures for the winning pattern only, so the
//! cost of a line does not grow with every pattern. This module must not keep
//! per-stream state (multiline, sticky context): that belongs to later stages.

mod extract;
pub(crate) mod file;
pub mod level;
pub mod runid;

pub use extract::{Candidate, ExampleOutcome, Explanation, Scratch, Verdict};
pub use file::level_name;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Diagnostic, Diagnostics};
use crate::event::Level;

include!(concat!(env!("OUT_DIR"), "/bundled_patterns.rs"));

/// The most the one-pass `RegexSet` may cache of its lazy DFA.
const SET_DFA_CACHE: usize = 32 << 20;

/// Where patterns come from: the spelling in `patterns = [...]` and `-p` that
/// names the library shipped inside the binary.
pub const BUNDLED: &str = "@bundled";

/// One validated pattern.
#[derive(Debug)]
pub struct Pattern {
    pub id: Arc<str>,
    pub file: Arc<Path>,
    pub line: usize,
    /// Load order, across files: ties of `priority` go to the lower index.
    pub index: usize,
    pub matcher: Matcher,
    pub level: Option<Level>,
    pub service: Option<String>,
    pub priority: i64,
    pub labels: BTreeMap<String, String>,
    pub sources: Option<Vec<String>>,
    pub context: Context,
    /// Shared, so that the multiline stage can keep the rule of an open record
    /// across a reload that drops or changes the pattern.
    pub multiline: Option<Arc<MultilineSpec>>,
    pub fingerprint: Vec<String>,
    /// Whether the template miner may merge this pattern's templates.
    pub mine_templates: bool,
    pub examples: Vec<Example>,
}

impl Pattern {
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The names of the named captures that land in `fields`: with `ci_run_id`,
    /// what a marker (`context = true`) makes sticky. Empty for a JSON pattern.
    pub fn sticky_fields(&self) -> impl Iterator<Item = &str> {
        let roles: &[(usize, Role)] = match &self.matcher {
            Matcher::Regex { roles, .. } => roles,
            Matcher::Json(_) => &[],
        };
        roles.iter().filter_map(|(_, role)| match role {
            Role::Field(name) => Some(&**name),
            _ => None,
        })
    }

    fn applies_to(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|s| s.iter().any(|n| n == source))
    }
}

/// What a pattern's match does to the sticky context of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Context {
    #[default]
    Off,
    /// `context = true`: a marker. Its captured fields (`ci_run_id` and the
    /// named captures that land in `fields`) replace the stream's sticky set;
    /// the marker event itself carries only its own values; later events of
    /// the same stream get the sticky values they lack.
    Marker,
    /// `context = "end"`: the end of a run (`Job succeeded`, `Finished: FAILURE`).
    /// The event gets the sticky values it lacks, then the stream's sticky set
    /// is cleared.
    End,
}

#[derive(Debug)]
pub enum Matcher {
    Regex {
        regex: regex::Regex,
        /// The regex after `%{DEF}` expansion.
        source: String,
        roles: Vec<(usize, Role)>,
    },
    Json(JsonRule),
}

/// What a named capture means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Level,
    Service,
    CiRunId,
    Message,
    Ts,
    Field(Arc<str>),
}

/// Alias lists: the first key present wins; `a.b` is a nested key.
#[derive(Debug, Clone, Default)]
pub struct JsonRule {
    pub level: Vec<String>,
    pub service: Vec<String>,
    pub ci_run_id: Vec<String>,
    pub message: Vec<String>,
    pub ts: Vec<String>,
    pub require: Vec<String>,
}

/// A pattern's multiline rule, validated here; joining belongs to the multiline stage.
#[derive(Debug)]
pub struct MultilineSpec {
    pub start: Option<regex::Regex>,
    pub cont: Option<regex::Regex>,
    pub max_lines: usize,
    pub max_bytes: u64,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Example {
    pub line: String,
    pub file_line: usize,
    pub expect: Expect,
}

#[derive(Debug)]
pub enum Expect {
    /// The pattern must win the line against the whole set, with these values.
    Wins(BTreeMap<String, String>),
    /// The pattern must not match the line.
    NoMatch,
}

/// Every loaded pattern, in evaluation order (priority, then load order).
#[derive(Debug)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
    /// Positions in `patterns` of the regex patterns, in `set` order.
    regex_patterns: Vec<usize>,
    set: regex::RegexSet,
    json_patterns: Vec<usize>,
    /// The regex patterns with a `multiline` rule, in evaluation order, and
    /// their positions in `patterns`: tried on the first line of each record.
    multiline_set: regex::RegexSet,
    multiline_patterns: Vec<usize>,
    /// The files the set was loaded from (for reload watches).
    files: Vec<PathBuf>,
}

impl PatternSet {
    /// A set with no patterns: every event is unmatched.
    pub fn empty() -> PatternSet {
        PatternSet {
            patterns: Vec::new(),
            regex_patterns: Vec::new(),
            set: regex::RegexSet::empty(),
            json_patterns: Vec::new(),
            multiline_set: regex::RegexSet::empty(),
            multiline_patterns: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Loads pattern files and directories (`*.toml`, in file-name order) and
    /// [`BUNDLED`]; every problem in every file is reported.
    pub fn load(paths: &[PathBuf]) -> Result<PatternSet, Diagnostics> {
        let mut errors = Vec::new();
        let mut sources: Vec<(PathBuf, String)> = Vec::new();
        for p in paths {
            if p.as_os_str() == BUNDLED {
                sources.extend(BUNDLED_FILES.iter().map(|(name, text)| {
                    (PathBuf::from(format!("{BUNDLED}/{name}")), text.to_string())
                }));
                continue;
            }
            match pattern_files(p) {
                Ok(files) => {
                    for f in files {
                        match std::fs::read_to_string(&f) {
                            Ok(text) => sources.push((f, text)),
                            Err(e) => errors.push(file_error(
                                &f,
                                format!("cannot read pattern file: {e}"),
                                "check the path and its permissions",
                            )),
                        }
                    }
                }
                Err(d) => errors.push(d),
            }
        }
        let mut patterns = Vec::new();
        for (path, text) in &sources {
            let parsed = file::parse(path, text, patterns.len(), &mut errors);
            patterns.extend(parsed);
        }
        let mut first: HashMap<Arc<str>, String> = HashMap::new();
        for p in &patterns {
            if let Some(at) = first.get(&p.id) {
                errors.push(Diagnostic {
                    file: p.file.to_path_buf(),
                    line: p.line,
                    col: 1,
                    problem: format!("pattern id `{}` is already defined at {at}", p.id),
                    fix: "ids are unique across all loaded files: rename one of them".into(),
                });
            } else {
                first.insert(p.id.clone(), p.location());
            }
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
            return Err(Diagnostics(errors));
        }
        patterns.sort_by_key(|p| (std::cmp::Reverse(p.priority), p.index));
        let set = Self::build(patterns, sources.into_iter().map(|(p, _)| p).collect());
        release_freed_heap();
        set
    }

    fn build(patterns: Vec<Pattern>, files: Vec<PathBuf>) -> Result<PatternSet, Diagnostics> {
        let mut regex_patterns = Vec::new();
        let mut json_patterns = Vec::new();
        let mut texts = Vec::new();
        let mut multiline_patterns = Vec::new();
        let mut multiline_texts = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            match &p.matcher {
                Matcher::Regex { source, .. } => {
                    regex_patterns.push(i);
                    texts.push(source.as_str());
                    if p.multiline.is_some() {
                        multiline_patterns.push(i);
                        multiline_texts.push(source.as_str());
                    }
                }
                Matcher::Json(_) => json_patterns.push(i),
            }
        }
        let too_large = |e: regex::Error| {
            Diagnostics(vec![Diagnostic {
                file: PathBuf::from("<patterns>"),
                line: 0,
                col: 0,
                problem: format!("the patterns together are too large to compile: {e}"),
                fix: "load fewer patterns or simplify the largest regexes".into(),
            }])
        };
        let multiline_set = regex::RegexSetBuilder::new(multiline_texts)
            .size_limit(32 << 20)
            .build()
            .map_err(too_large)?;
        let set = regex::RegexSetBuilder::new(texts)
            .size_limit(32 << 20)
            // The set's lazy DFA cache: with a few hundred patterns the 2 MiB default
            // thrashes and matching falls back to a far slower engine. It grows only
            // as far as the input needs (a few MiB for the bundled library).
            .dfa_size_limit(SET_DFA_CACHE)
            .build()
            .map_err(too_large)?;
        Ok(PatternSet {
            patterns,
            regex_patterns,
            set,
            json_patterns,
            multiline_set,
            multiline_patterns,
            files,
        })
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The `multiline` rule of the first pattern, in evaluation order, that
    /// has one and matches `line` (the first line of a record).
    pub fn multiline_rule(&self, line: &str, source: &str) -> Option<&Arc<MultilineSpec>> {
        if self.multiline_patterns.is_empty() {
            return None;
        }
        self.multiline_set
            .matches(line)
            .iter()
            .map(|k| &self.patterns[self.multiline_patterns[k]])
            .find(|p| p.applies_to(source))
            .and_then(|p| p.multiline.as_ref())
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Compiling a large set allocates tens of MiB of temporaries that the C
/// allocator keeps after they are freed; give those pages back so that the
/// agent's resident memory reflects what it holds.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of the heap and in free chunks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The pattern files a path names: itself, or a directory's `*.toml` in name order.
fn pattern_files(p: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let meta = std::fs::metadata(p).map_err(|e| {
        file_error(
            p,
            format!("cannot read pattern path: {e}"),
            "fix `patterns` in the config or the -p argument",
        )
    })?;
    if !meta.is_dir() {
        return Ok(vec![p.to_path_buf()]);
    }
    let entries = std::fs::read_dir(p).map_err(|e| {
        file_error(
            p,
            format!("cannot list pattern directory: {e}"),
            "check its permissions",
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|f| f.extension().is_some_and(|x| x == "toml") && f.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn file_error(p: &Path, problem: String, fix: &str) -> Diagnostic {
    Diagnostic {
        file: p.to_path_buf(),
        line: 0,
        col: 0,
        problem,
        fix: fix.into(),
    }
}
