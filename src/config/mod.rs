//! The config file: serde types shaped like what users write (`*Toml`), and the
//! validated runtime types the agent runs on.
//!
//! Everything is checked here, once: durations, sizes, globs, addresses,
//! secrets, `${VAR}` expansion. Errors carry `file:line:col` and a fix. The
//! hot path never re-parses or unwraps config input.

mod diag;
pub mod units;

pub use diag::{Diagnostic, Diagnostics, FileCtx, Secret, nearest};

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Spanned;

use crate::correlate::PathFields;
use crate::escalation::Sample;
use crate::event::Origin;
use crate::multiline::{self, Mode};
use crate::pattern::MultilineSpec;
use crate::route::{Inhibit, Matcher, Route};
use crate::source::StreamConfig;
use crate::source::decode::Format;

/// Where `run` and `check` look for the config when `-c` and `$LOGWARD_CONFIG` are absent.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/logward/logward.toml";

/// The validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub patterns: Vec<PathBuf>,
    pub checkpoint_interval: Duration,
    pub shutdown_timeout: Duration,
    pub http: Option<Http>,
    pub sources: Vec<Source>,
    pub output_file: Option<FileOutput>,
    pub receivers: BTreeMap<String, Receiver>,
    /// In the order written: the first that matches an event wins unless it says `continue`.
    pub routes: Arc<[Route]>,
}

#[derive(Debug, Clone)]
pub struct Http {
    pub listen: SocketAddr,
    pub token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub name: Arc<str>,
    pub labels: Arc<BTreeMap<String, String>>,
    pub format: Format,
    pub max_line_bytes: usize,
    pub multiline: Mode,
    /// Named captures on a file's path: `ci_run_id` and fields.
    pub ci_run_id_from_path: Option<regex::Regex>,
    pub kind: SourceKind,
}

impl Source {
    /// How the source's streams are read.
    pub fn stream_config(&self) -> StreamConfig {
        StreamConfig {
            source: self.name.clone(),
            format: self.format,
            max_line: self.max_line_bytes,
            multiline: self.multiline.clone(),
            context_lines: 0,
        }
    }

    /// The origin of the events of the file at `path`.
    pub fn origin(&self, path: &str) -> Origin {
        Origin {
            source: self.name.clone(),
            path: Some(Arc::from(path)),
            labels: self.labels.clone(),
            path_fields: Arc::new(PathFields::of(path, self.ci_run_id_from_path.as_ref())),
        }
    }
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    File(FileSource),
    Stdin,
}

#[derive(Debug, Clone)]
pub struct FileSource {
    /// Glob patterns, checked to compile.
    pub paths: Vec<String>,
    pub include: globset::GlobSet,
    pub exclude: globset::GlobSet,
    pub start_at: StartAt,
    pub max_open_files: usize,
    pub poll_interval: Duration,
    pub rescan_interval: Duration,
    pub rotate_wait: Duration,
}

/// Where to start reading a file that has no saved position at the agent's first start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Debug, Clone)]
pub struct FileOutput {
    pub path: PathBuf,
}

/// One `[receiver.NAME]`: what it is, and the keys every type shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub kind: ReceiverKind,
    /// `rate`: at most this many escalations per period; `None`: the type's default
    /// (`notify::default_rate`).
    pub rate: Option<units::Rate>,
    /// `retry = { max_elapsed = "24h" }`.
    pub retry: Retry,
}

/// How long a receiver's deliveries are retried (`retry = { max_elapsed = DUR }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// An escalation still not delivered this long after its first attempt is given up
    /// (logged, counted in `logward_receiver_errors_total{reason="expired"}`).
    pub max_elapsed: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            max_elapsed: Duration::from_secs(24 * 3600),
        }
    }
}

/// A receiver's `type` and the keys of that type.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// Prints escalations to stdout.
    Console,
    /// Appends escalations as NDJSON to a file.
    File { path: PathBuf },
}

impl ReceiverKind {
    /// The `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            ReceiverKind::Console => "console",
            ReceiverKind::File { .. } => "file",
        }
    }
}

pub mod defaults {
    use std::time::Duration;
    pub const STATE_DIR: &str = "/var/lib/logward";
    pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MAX_LINE_BYTES: u64 = 1 << 20;
    pub const MAX_OPEN_FILES: u64 = 1024;
    /// How often open files are checked for growth when no watch event arrived.
    pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
    /// The safety net behind watch events: a full glob scan this often.
    pub const RESCAN_INTERVAL: Duration = Duration::from_secs(10);
    /// How long a rotated or deleted file is kept open after its last line,
    /// for writers that still append to the old file for a moment.
    pub const ROTATE_WAIT: Duration = Duration::from_secs(5);
}

/// The top level, less `[[source]]`: each source is deserialized on its own,
/// so that a mistake in one does not hide the others'.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigToml {
    state_dir: Option<Spanned<String>>,
    patterns: Option<Vec<Spanned<String>>>,
    checkpoint_interval: Option<Spanned<String>>,
    shutdown_timeout: Option<Spanned<String>>,
    http: Option<Spanned<HttpToml>>,
    /// Never present after `split_tables`; named so that serde lists it among the valid keys.
    #[serde(default, rename = "source")]
    _source: Option<toml::Value>,
    /// Never present after `split_tables`, as `source`.
    #[serde(default, rename = "route")]
    _route: Option<toml::Value>,
    output: Option<OutputToml>,
    #[serde(default)]
    receiver: BTreeMap<String, Spanned<ReceiverToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpToml {
    listen: Spanned<String>,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
}

/// One table for every source type, so that errors keep their spans; which
/// keys a type accepts is checked in validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceToml {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    paths: Option<Spanned<Vec<Spanned<String>>>>,
    exclude: Option<Vec<Spanned<String>>>,
    format: Option<Spanned<String>>,
    start_at: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<String>>,
    max_line_bytes: Option<Spanned<String>>,
    multiline: Option<Spanned<MultilineToml>>,
    ci_run_id_from_path: Option<Spanned<String>>,
    max_open_files: Option<Spanned<u64>>,
    poll_interval: Option<Spanned<String>>,
    rescan_interval: Option<Spanned<String>>,
    rotate_wait: Option<Spanned<String>>,
}

/// `multiline = "auto"`, `"none"`, or a rule table.
enum MultilineToml {
    Named(String),
    Rule(MultilineRuleToml),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MultilineRuleToml {
    start: Option<Spanned<String>>,
    #[serde(rename = "continue")]
    cont: Option<Spanned<String>>,
    max_lines: Option<Spanned<u64>>,
    max_bytes: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for MultilineToml {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = MultilineToml;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"auto\", \"none\" or a table { start = '...' or continue = '...', max_lines, max_bytes, timeout }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MultilineToml, E> {
                Ok(MultilineToml::Named(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<MultilineToml, A::Error> {
                MultilineRuleToml::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(MultilineToml::Rule)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteToml {
    name: Spanned<String>,
    #[serde(rename = "match")]
    matcher: Option<Spanned<toml::Table>>,
    #[serde(default)]
    receivers: Vec<Spanned<String>>,
    group_by: Option<Spanned<Vec<String>>>,
    window: Option<Spanned<String>>,
    threshold: Option<Spanned<u64>>,
    repeat_interval: Option<Spanned<String>>,
    group_wait: Option<Spanned<String>>,
    max_groups: Option<Spanned<u64>>,
    #[serde(default, rename = "continue")]
    cont: bool,
    #[serde(default)]
    inhibit: Vec<Spanned<toml::Table>>,
    context_lines: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputToml {
    file: Option<FileOutputToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOutputToml {
    path: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverToml {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    path: Option<Spanned<String>>,
    rate: Option<Spanned<String>>,
    retry: Option<RetryToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryToml {
    max_elapsed: Option<Spanned<String>>,
}

impl Config {
    /// Reads, parses and validates a config file, reporting every problem found.
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        Self::parse(path, &read_config(path)?)
    }

    /// Only `state_dir` (default [`defaults::STATE_DIR`]), for commands that need nothing else
    /// (`silence`): the rest of the file is not validated, so that a secret the caller may not
    /// read (an unset `${VAR}`, a root-only `*_file`) does not stand in the way.
    pub fn load_state_dir(path: &Path) -> Result<PathBuf, Diagnostics> {
        #[derive(Deserialize)]
        struct StateDirOnly {
            state_dir: Option<Spanned<String>>,
        }
        let text = read_config(path)?;
        let ctx = FileCtx { path, text: &text };
        let raw: StateDirOnly =
            toml::from_str(&text).map_err(|e| Diagnostics(vec![ctx.toml_error(&e, DOC)]))?;
        match raw.state_dir {
            None => Ok(PathBuf::from(defaults::STATE_DIR)),
            Some(s) => ctx
                .expand(&s)
                .map(PathBuf::from)
                .map_err(|d| Diagnostics(vec![d])),
        }
    }

    /// Parses and validates config text that was read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
        let ctx = FileCtx { path, text };
        let doc = toml::de::DeTable::parse(text)
            .map_err(|e| Diagnostics(vec![ctx.toml_error(&e, DOC)]))?;
        let mut errors = Vec::new();
        let (rest, sources, routes) = split_tables(&ctx, doc, &mut errors);
        let raw = ConfigToml::deserialize(rest.into_deserializer()).unwrap_or_else(|e| {
            errors.push(ctx.toml_error(&e, DOC));
            ConfigToml::default()
        });
        let mut v = Validator { ctx: &ctx, errors };
        let config = v.config(raw, sources, routes);
        if v.errors.is_empty() {
            Ok(config)
        } else {
            v.errors.sort_by_key(|d| (d.line, d.col));
            Err(Diagnostics(v.errors))
        }
    }

    /// What differs from `new` that only a restart applies (everything but patterns).
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        let sources = |c: &Config| {
            c.sources
                .iter()
                .map(|s| {
                    format!(
                        "{:?}/{:?}/{}/{}/{:?}",
                        s.name,
                        s.format,
                        s.max_line_bytes,
                        s.multiline.describe(),
                        s.ci_run_id_from_path.as_ref().map(regex::Regex::as_str)
                    ) + &match &s.kind {
                        SourceKind::File(f) => {
                            format!("{:?}/{:?}/{}", f.paths, f.start_at, f.max_open_files)
                        }
                        SourceKind::Stdin => "stdin".into(),
                    }
                })
                .collect::<Vec<_>>()
        };
        let mut changed = Vec::new();
        if self.state_dir != new.state_dir {
            changed.push("state_dir");
        }
        if (self.checkpoint_interval, self.shutdown_timeout)
            != (new.checkpoint_interval, new.shutdown_timeout)
        {
            changed.push("checkpoint_interval/shutdown_timeout");
        }
        if self.http.as_ref().map(|h| h.listen) != new.http.as_ref().map(|h| h.listen) {
            changed.push("http");
        }
        if sources(self) != sources(new) {
            changed.push("source");
        }
        if self.output_file.as_ref().map(|o| &o.path) != new.output_file.as_ref().map(|o| &o.path) {
            changed.push("output");
        }
        if self.receivers != new.receivers {
            changed.push("receiver");
        }
        changed
    }

    /// The source whose globs match `path`, for `replay -c`.
    pub fn source_for_path(&self, path: &Path) -> Option<&Source> {
        self.sources.iter().find(|s| match &s.kind {
            SourceKind::File(f) => f.include.is_match(path) && !f.exclude.is_match(path),
            SourceKind::Stdin => false,
        })
    }
}

const DOC: &str = "docs/configuration.md";

fn read_config(path: &Path) -> Result<String, Diagnostics> {
    std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            problem: format!("cannot read config: {e}"),
            fix: "pass an existing file with -c FILE or $LOGWARD_CONFIG".into(),
        }])
    })
}

/// The document less its `[[source]]` and `[[route]]` tables, and those tables.
type SplitDoc<'i> = (
    Spanned<toml::de::DeValue<'i>>,
    Vec<Spanned<SourceToml>>,
    Vec<Spanned<RouteToml>>,
);

/// Takes the `[[source]]` and `[[route]]` tables out of the document and deserializes each on its own.
fn split_tables<'i>(
    ctx: &FileCtx<'_>,
    doc: Spanned<toml::de::DeTable<'i>>,
    errors: &mut Vec<Diagnostic>,
) -> SplitDoc<'i> {
    let span = doc.span();
    let mut rest = toml::de::DeTable::new();
    let (mut sources, mut routes) = (Vec::new(), Vec::new());
    for (key, value) in doc.into_inner() {
        match key.get_ref().as_ref() {
            "source" => sources.extend(ctx.each_table("source", value, DOC, errors)),
            "route" => routes.extend(ctx.each_table("route", value, DOC, errors)),
            _ => {
                rest.insert(key, value);
            }
        }
    }
    (
        Spanned::new(span, toml::de::DeValue::Table(rest)),
        sources,
        routes,
    )
}

/// Collects every problem instead of stopping at the first, so that `check`
/// reports them all in one run.
struct Validator<'a> {
    ctx: &'a FileCtx<'a>,
    errors: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn ok<T>(&mut self, r: Result<T, Diagnostic>) -> Option<T> {
        r.map_err(|d| self.errors.push(d)).ok()
    }

    fn string(&mut self, v: &Spanned<String>) -> Option<String> {
        let r = self.ctx.expand(v);
        self.ok(r)
    }

    /// A value with a unit (duration, size) under `key`, or `default` when absent or invalid.
    fn unit<T>(
        &mut self,
        key: &str,
        v: Option<&Spanned<String>>,
        default: T,
        parse: fn(&str) -> Result<T, String>,
    ) -> T {
        let Some(v) = v else { return default };
        let Some(text) = self.string(v) else {
            return default;
        };
        match parse(&text) {
            Ok(x) => x,
            Err(fix) => {
                self.errors
                    .push(self.ctx.diag(v.span(), format!("invalid `{key}`"), fix));
                default
            }
        }
    }

    fn config(
        &mut self,
        raw: ConfigToml,
        raw_sources: Vec<Spanned<SourceToml>>,
        raw_routes: Vec<Spanned<RouteToml>>,
    ) -> Config {
        let state_dir = raw
            .state_dir
            .as_ref()
            .and_then(|s| self.string(s))
            .map_or_else(|| PathBuf::from(defaults::STATE_DIR), PathBuf::from);
        // No `patterns` key: the bundled library, so a bare config understands common logs.
        let patterns = match &raw.patterns {
            None => vec![PathBuf::from(crate::pattern::BUNDLED)],
            Some(list) => list
                .iter()
                .filter_map(|p| self.string(p))
                .map(PathBuf::from)
                .collect(),
        };
        let checkpoint_interval = self.unit(
            "checkpoint_interval",
            raw.checkpoint_interval.as_ref(),
            defaults::CHECKPOINT_INTERVAL,
            units::duration,
        );
        let shutdown_timeout = self.unit(
            "shutdown_timeout",
            raw.shutdown_timeout.as_ref(),
            defaults::SHUTDOWN_TIMEOUT,
            units::duration,
        );
        let http = raw.http.map(|h| self.http(h));
        let mut names = HashSet::new();
        let mut stdin_seen = false;
        let mut sources = Vec::new();
        for s in raw_sources {
            let span = s.span();
            let s = s.into_inner();
            if !names.insert(s.name.get_ref().clone()) {
                self.errors.push(self.ctx.diag(
                    s.name.span(),
                    format!("source name `{}` is used twice", s.name.get_ref()),
                    "give every [[source]] a unique name",
                ));
            }
            if let Some(src) = self.source(s, span.clone()) {
                if matches!(src.kind, SourceKind::Stdin) {
                    if stdin_seen {
                        self.errors.push(self.ctx.diag(
                            span,
                            "more than one stdin source",
                            "keep a single [[source]] with type = \"stdin\"",
                        ));
                    }
                    stdin_seen = true;
                }
                sources.push(src);
            }
        }
        let output_file = raw
            .output
            .and_then(|o| o.file)
            .and_then(|f| self.string(&f.path))
            .map(|p| FileOutput {
                path: PathBuf::from(p),
            });
        let receiver_names: Vec<String> = raw.receiver.keys().cloned().collect();
        let receivers = raw
            .receiver
            .into_iter()
            .filter_map(|(name, r)| Some((name, self.receiver(r)?)))
            .collect();
        let mut route_names = HashSet::new();
        let mut routes = Vec::new();
        for r in raw_routes {
            if !route_names.insert(r.get_ref().name.get_ref().clone()) {
                self.errors.push(self.ctx.diag(
                    r.get_ref().name.span(),
                    format!("route name `{}` is used twice", r.get_ref().name.get_ref()),
                    "give every [[route]] a unique name",
                ));
            }
            routes.extend(self.route(r, &receiver_names));
        }
        Config {
            path: self.ctx.path.to_path_buf(),
            state_dir,
            patterns,
            checkpoint_interval,
            shutdown_timeout,
            http: http.flatten(),
            sources,
            output_file,
            receivers,
            routes: routes.into(),
        }
    }

    fn route(&mut self, r: Spanned<RouteToml>, receivers: &[String]) -> Option<Route> {
        let span = r.span();
        let r = r.into_inner();
        let errors_before = self.errors.len();
        let matcher = match &r.matcher {
            None => Matcher::default(),
            Some(m) => Matcher::from_table(m.get_ref()).unwrap_or_else(|fix| {
                self.errors
                    .push(self.ctx.diag(m.span(), "invalid `match`", fix));
                Matcher::default()
            }),
        };
        let mut route = Route::new(r.name.get_ref(), matcher, Vec::new());
        for name in &r.receivers {
            if receivers.contains(name.get_ref()) {
                route.receivers.push(Arc::from(name.get_ref().as_str()));
            } else {
                let fix = match nearest(name.get_ref(), receivers) {
                    Some(n) => format!(
                        "did you mean `{n}`? define it as [receiver.{}]",
                        name.get_ref()
                    ),
                    None => format!(
                        "define it as [receiver.{}] with a type, e.g. type = \"console\"",
                        name.get_ref()
                    ),
                };
                self.errors.push(self.ctx.diag(
                    name.span(),
                    format!("unknown receiver `{}`", name.get_ref()),
                    fix,
                ));
            }
        }
        if let Some(g) = &r.group_by {
            route.group_by = g.get_ref().clone();
        }
        route.window = self.unit("window", r.window.as_ref(), route.window, units::duration);
        route.repeat_interval = self.unit(
            "repeat_interval",
            r.repeat_interval.as_ref(),
            route.repeat_interval,
            units::duration,
        );
        route.group_wait = self.unit(
            "group_wait",
            r.group_wait.as_ref(),
            route.group_wait,
            units::duration,
        );
        if let Some(t) = &r.threshold {
            route.threshold = *t.get_ref();
        }
        if let Some(m) = &r.max_groups {
            route.max_groups = usize::try_from(*m.get_ref()).unwrap_or(usize::MAX);
        }
        if let Some(c) = &r.context_lines {
            route.context_lines = usize::try_from(*c.get_ref())
                .unwrap_or(usize::MAX)
                .min(Sample::MAX_CONTEXT_LINES);
        }
        route.continue_ = r.cont;
        for i in &r.inhibit {
            match Inhibit::from_table(i.get_ref()) {
                Ok(rule) => route.inhibit.push(rule),
                Err(fix) => {
                    self.errors
                        .push(self.ctx.diag(i.span(), "invalid `inhibit` rule", fix))
                }
            }
        }
        if let Err(fix) = route.validate() {
            self.errors.push(self.ctx.diag(
                span,
                format!("route `{}` is not valid", route.name),
                fix,
            ));
        }
        // A route with any problem is not built, but every problem is reported.
        (self.errors.len() == errors_before).then_some(route)
    }

    fn http(&mut self, h: Spanned<HttpToml>) -> Option<Http> {
        let h = h.into_inner();
        // Both are checked whatever the other gives, so that one run reports both.
        let token = self
            .ctx
            .secret("token", h.token.as_ref(), h.token_file.as_ref());
        let token = self.ok(token);
        let listen = self.string(&h.listen).and_then(|listen| {
            listen
                .parse::<SocketAddr>()
                .map_err(|_| {
                    self.errors.push(self.ctx.diag(
                        h.listen.span(),
                        format!("`{listen}` is not a listen address"),
                        "write IP:PORT, e.g. \"127.0.0.1:9898\" or \"0.0.0.0:9898\"",
                    ));
                })
                .ok()
        });
        Some(Http {
            listen: listen?,
            token: token?,
        })
    }

    fn source(&mut self, s: SourceToml, span: std::ops::Range<usize>) -> Option<Source> {
        let format = match &s.format {
            None => Format::Auto,
            Some(f) => match f.get_ref().parse::<Format>() {
                Ok(f) => f,
                Err(()) => {
                    self.errors.push(self.ctx.diag(
                        f.span(),
                        format!("unknown format `{}`", f.get_ref()),
                        "use one of \"auto\", \"text\", \"json\", \"cri\", \"docker\"",
                    ));
                    Format::Auto
                }
            },
        };
        let max_line_bytes = self.unit(
            "max_line_bytes",
            s.max_line_bytes.as_ref(),
            defaults::MAX_LINE_BYTES,
            units::byte_size,
        );
        if !(64..=1 << 30).contains(&max_line_bytes) {
            let at = s.max_line_bytes.as_ref().map_or(span.clone(), |v| v.span());
            self.errors.push(self.ctx.diag(
                at,
                "max_line_bytes must be between 64 B and 1 GiB",
                "write e.g. \"1MiB\"",
            ));
        }
        let multiline = self.multiline(s.multiline.as_ref());
        let ci_run_id_from_path = s
            .ci_run_id_from_path
            .as_ref()
            .and_then(|r| self.ci_run_id_from_path(r));
        let mut labels = BTreeMap::new();
        for (k, v) in &s.labels {
            if let Some(v) = self.string(v) {
                labels.insert(k.clone(), v);
            }
        }
        let kind = match s.kind.get_ref().as_str() {
            "file" => SourceKind::File(self.file_source(&s, span)?),
            "stdin" => {
                self.reject_keys(
                    &s,
                    &[
                        "paths",
                        "exclude",
                        "start_at",
                        "max_open_files",
                        "poll_interval",
                        "rescan_interval",
                        "rotate_wait",
                        "ci_run_id_from_path",
                    ],
                );
                SourceKind::Stdin
            }
            other => {
                self.errors.push(self.ctx.diag(
                    s.kind.span(),
                    format!("unknown source type `{other}`"),
                    "use \"file\" or \"stdin\"",
                ));
                return None;
            }
        };
        Some(Source {
            name: Arc::from(s.name.get_ref().as_str()),
            labels: Arc::new(labels),
            format,
            max_line_bytes: max_line_bytes as usize,
            multiline,
            ci_run_id_from_path,
            kind,
        })
    }

    fn multiline(&mut self, m: Option<&Spanned<MultilineToml>>) -> Mode {
        let Some(m) = m else { return Mode::Auto };
        let rule = match m.get_ref() {
            MultilineToml::Named(name) => match name.as_str() {
                "auto" => return Mode::Auto,
                "none" => return Mode::None,
                other => {
                    self.errors.push(self.ctx.diag(
                        m.span(),
                        format!("unknown multiline mode `{other}`"),
                        "use \"auto\" (stack traces), \"none\", or a table { start = '^\\S' }",
                    ));
                    return Mode::Auto;
                }
            },
            MultilineToml::Rule(rule) => rule,
        };
        let mut regex = |r: &Spanned<String>| -> Option<regex::Regex> {
            regex::Regex::new(r.get_ref())
                .map_err(|e| {
                    self.errors.push(self.ctx.diag(
                        r.span(),
                        format!("invalid multiline regex:\n{e}\n"),
                        "fix the regex",
                    ))
                })
                .ok()
        };
        let (start, cont) = match (&rule.start, &rule.cont) {
            (Some(s), None) => (regex(s), None),
            (None, Some(c)) => (None, regex(c)),
            _ => {
                self.errors.push(self.ctx.diag(
                    m.span(),
                    "multiline needs exactly one of `start` and `continue`",
                    "start = '^\\S' (a line that begins a record) or continue = '^\\s' (a line that continues one)",
                ));
                return Mode::Auto;
            }
        };
        let max_lines = match &rule.max_lines {
            Some(v) if *v.get_ref() == 0 || *v.get_ref() > 100_000 => {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    "max_lines must be between 1 and 100000",
                    "write e.g. 500",
                ));
                multiline::MAX_LINES
            }
            Some(v) => *v.get_ref() as usize,
            None => multiline::MAX_LINES,
        };
        let max_bytes = self.unit(
            "max_bytes",
            rule.max_bytes.as_ref(),
            multiline::MAX_BYTES,
            units::byte_size,
        );
        let timeout = self.unit(
            "timeout",
            rule.timeout.as_ref(),
            multiline::TIMEOUT,
            units::duration,
        );
        if start.is_none() && cont.is_none() {
            return Mode::Auto;
        }
        Mode::Rule(Arc::new(MultilineSpec {
            start,
            cont,
            max_lines,
            max_bytes,
            timeout,
        }))
    }

    fn ci_run_id_from_path(&mut self, r: &Spanned<String>) -> Option<regex::Regex> {
        let text = self.string(r)?;
        let re = match regex::Regex::new(&text) {
            Ok(re) => re,
            Err(e) => {
                self.errors.push(self.ctx.diag(
                    r.span(),
                    format!("invalid ci_run_id_from_path regex:\n{e}\n"),
                    "fix the regex",
                ));
                return None;
            }
        };
        if !re.capture_names().flatten().any(|n| n == "ci_run_id") {
            self.errors.push(self.ctx.diag(
                r.span(),
                "ci_run_id_from_path has no `ci_run_id` group",
                "name the part of the path that is the run id, e.g. '/builds/(?P<ci_run_id>[0-9]+)/'",
            ));
            return None;
        }
        Some(re)
    }

    /// Keys of the shared source table that make no sense for this source type.
    fn reject_keys(&mut self, s: &SourceToml, keys: &[&str]) {
        let present = [
            ("paths", s.paths.as_ref().map(|v| v.span())),
            (
                "exclude",
                s.exclude.as_ref().and_then(|v| v.first()).map(|v| v.span()),
            ),
            ("start_at", s.start_at.as_ref().map(|v| v.span())),
            (
                "max_open_files",
                s.max_open_files.as_ref().map(|v| v.span()),
            ),
            ("poll_interval", s.poll_interval.as_ref().map(|v| v.span())),
            (
                "rescan_interval",
                s.rescan_interval.as_ref().map(|v| v.span()),
            ),
            ("rotate_wait", s.rotate_wait.as_ref().map(|v| v.span())),
            (
                "ci_run_id_from_path",
                s.ci_run_id_from_path.as_ref().map(|v| v.span()),
            ),
        ];
        for (key, span) in present {
            if let (true, Some(span)) = (keys.contains(&key), span) {
                self.errors.push(self.ctx.diag(
                    span,
                    format!("`{key}` does not apply to a {} source", s.kind.get_ref()),
                    "remove it",
                ));
            }
        }
    }

    fn file_source(&mut self, s: &SourceToml, span: std::ops::Range<usize>) -> Option<FileSource> {
        let Some(paths) = &s.paths else {
            self.errors.push(self.ctx.diag(
                span,
                format!("file source `{}` has no `paths`", s.name.get_ref()),
                "add paths = [\"/var/log/app/*.log\"]",
            ));
            return None;
        };
        if paths.get_ref().is_empty() {
            self.errors.push(self.ctx.diag(
                paths.span(),
                "`paths` is empty",
                "list at least one glob, e.g. [\"/var/log/app/*.log\"]",
            ));
        }
        let mut globs = Vec::new();
        let mut include = globset::GlobSetBuilder::new();
        for p in paths.get_ref() {
            let Some(text) = self.string(p) else { continue };
            if let Err(e) = glob::Pattern::new(&text) {
                self.errors.push(self.ctx.diag(
                    p.span(),
                    format!("invalid glob `{text}`: {e}"),
                    "fix the pattern; `*` matches within a directory, `**` across directories",
                ));
                continue;
            }
            match globset::GlobBuilder::new(&text)
                .literal_separator(true)
                .build()
            {
                Ok(g) => {
                    include.add(g);
                    globs.push(text);
                }
                Err(e) => self.errors.push(self.ctx.diag(
                    p.span(),
                    format!("invalid glob `{text}`: {e}"),
                    "fix the pattern",
                )),
            }
        }
        let mut exclude = globset::GlobSetBuilder::new();
        for p in s.exclude.iter().flatten() {
            let Some(text) = self.string(p) else { continue };
            // A pattern with no `/` matches the file name anywhere, as users expect from `*.gz`.
            let pattern = if text.contains('/') {
                text.clone()
            } else {
                format!("**/{text}")
            };
            match globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
            {
                Ok(g) => {
                    exclude.add(g);
                }
                Err(e) => self.errors.push(self.ctx.diag(
                    p.span(),
                    format!("invalid exclude glob `{text}`: {e}"),
                    "fix the pattern",
                )),
            }
        }
        let start_at = match s.start_at.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "beginning")) => StartAt::Beginning,
            Some((_, "end")) => StartAt::End,
            Some((v, other)) => {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    format!("unknown start_at `{other}`"),
                    "use \"beginning\" or \"end\"",
                ));
                StartAt::Beginning
            }
        };
        let max_open_files = match &s.max_open_files {
            Some(v) if *v.get_ref() == 0 || *v.get_ref() > 1_000_000 => {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    "max_open_files must be between 1 and 1000000",
                    "write e.g. 1024",
                ));
                defaults::MAX_OPEN_FILES
            }
            Some(v) => *v.get_ref(),
            None => defaults::MAX_OPEN_FILES,
        };
        let poll_interval = self.unit(
            "poll_interval",
            s.poll_interval.as_ref(),
            defaults::POLL_INTERVAL,
            units::duration,
        );
        let rescan_interval = self.unit(
            "rescan_interval",
            s.rescan_interval.as_ref(),
            defaults::RESCAN_INTERVAL,
            units::duration,
        );
        let rotate_wait = self.unit(
            "rotate_wait",
            s.rotate_wait.as_ref(),
            defaults::ROTATE_WAIT,
            units::duration,
        );
        let include = include.build().ok()?;
        let exclude = exclude.build().ok()?;
        Some(FileSource {
            paths: globs,
            include,
            exclude,
            start_at,
            max_open_files: max_open_files as usize,
            poll_interval: poll_interval.max(Duration::from_millis(10)),
            rescan_interval: rescan_interval.max(Duration::from_millis(100)),
            rotate_wait,
        })
    }

    fn receiver(&mut self, r: Spanned<ReceiverToml>) -> Option<Receiver> {
        let span = r.span();
        let r = r.into_inner();
        let rate = self.unit("rate", r.rate.as_ref(), None, |t| units::rate(t).map(Some));
        let retry = Retry {
            max_elapsed: self.unit(
                "retry.max_elapsed",
                r.retry.as_ref().and_then(|t| t.max_elapsed.as_ref()),
                Retry::default().max_elapsed,
                units::duration,
            ),
        };
        let kind = match r.kind.get_ref().as_str() {
            "console" => {
                if let Some(p) = &r.path {
                    self.errors.push(self.ctx.diag(
                        p.span(),
                        "`path` does not apply to a console receiver",
                        "remove it, or use type = \"file\"",
                    ));
                }
                ReceiverKind::Console
            }
            "file" => match &r.path {
                Some(p) => ReceiverKind::File {
                    path: PathBuf::from(self.string(p)?),
                },
                None => {
                    self.errors.push(self.ctx.diag(
                        span,
                        "file receiver has no `path`",
                        "add path = \"/var/log/logward/escalations.ndjson\"",
                    ));
                    return None;
                }
            },
            other => {
                self.errors.push(self.ctx.diag(
                    r.kind.span(),
                    format!("unknown receiver type `{other}`"),
                    "use \"console\" or \"file\"",
                ));
                return None;
            }
        };
        Some(Receiver { kind, rate, retry })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Diagnostics> {
        Config::parse(Path::new("t.toml"), text)
    }

    #[test]
    fn minimal_file_source_gets_defaults() {
        let c =
            parse("[[source]]\nname = \"a\"\ntype = \"file\"\npaths = [\"/tmp/*.log\"]\n").unwrap();
        let SourceKind::File(f) = &c.sources[0].kind else {
            panic!("not a file source")
        };
        assert_eq!(f.max_open_files, 1024);
        assert_eq!(c.sources[0].max_line_bytes, 1 << 20);
        assert_eq!(c.state_dir, PathBuf::from(defaults::STATE_DIR));
    }

    #[test]
    fn state_dir_alone_is_read_without_validating_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = "state_dir = \"/srv/${LOGWARD_TEST_UNSET_SD}x\"\n[http]\nlisten = \"nope\"\n";
        std::fs::write(&path, text).unwrap();
        let e = Config::load_state_dir(&path).unwrap_err();
        assert!(e.to_string().contains("LOGWARD_TEST_UNSET_SD"), "{e}");
        std::fs::write(
            &path,
            "state_dir = \"/srv/logward\"\n[http]\nlisten = \"nope\"\n",
        )
        .unwrap();
        assert_eq!(
            Config::load_state_dir(&path).unwrap(),
            PathBuf::from("/srv/logward")
        );
        std::fs::write(&path, "[[source]]\nname = \"a\"\n").unwrap();
        assert_eq!(
            Config::load_state_dir(&path).unwrap(),
            PathBuf::from(defaults::STATE_DIR)
        );
        std::fs::write(&path, "state_dir = 3\n").unwrap();
        assert_eq!(Config::load_state_dir(&path).unwrap_err().0[0].line, 1);
    }

    #[test]
    fn unknown_key_names_line_and_nearest_key() {
        let err = parse("[[source]]\nname = \"a\"\ntype = \"file\"\npathz = [\"/tmp/*.log\"]\n")
            .unwrap_err();
        let d = &err.0[0];
        assert_eq!((d.line, d.col), (4, 1), "{d}");
        assert!(
            d.problem.contains("pathz") && d.fix.contains("`paths`"),
            "{d}"
        );
    }

    #[test]
    fn a_shape_error_in_one_source_does_not_hide_the_others() {
        let err = parse(
            "stat_dir = \"/x\"\n[[source]]\nname = \"a\"\ntype = \"file\"\npathz = [\"/a\"]\n[[source]]\nname = \"b\"\ntype = \"file\"\npaths = [\"/b\"]\nformt = \"json\"\n",
        )
        .unwrap_err();
        let found: Vec<(usize, &str)> =
            err.0.iter().map(|d| (d.line, d.problem.as_str())).collect();
        assert_eq!(
            found,
            vec![
                (1, "unknown key `stat_dir`"),
                (5, "unknown key `pathz`"),
                (10, "unknown key `formt`")
            ],
            "{err}"
        );
        assert!(
            err.0[0].fix.contains("`state_dir`") && err.0[0].fix.contains("source"),
            "{}",
            err.0[0]
        );
    }

    #[test]
    fn every_semantic_error_is_reported() {
        let err = parse(
            "checkpoint_interval = \"soon\"\n[[source]]\nname = \"a\"\ntype = \"file\"\npaths = [\"/x/[\"]\nstart_at = \"middle\"\n[[source]]\nname = \"a\"\ntype = \"stdin\"\n",
        )
        .unwrap_err();
        let lines: Vec<usize> = err.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![1, 5, 6, 8], "{err}");
    }

    #[test]
    fn http_token_and_listen_problems_are_both_reported() {
        let err = parse("[http]\nlisten = \"nowhere\"\ntoken_file = \"/nonexistent/token\"\n")
            .unwrap_err();
        let lines: Vec<usize> = err.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 3], "{err}");
    }

    #[test]
    fn multiline_takes_a_mode_or_a_rule_and_reports_each_mistake_where_it_is() {
        let source = |extra: &str| {
            format!("[[source]]\nname = \"a\"\ntype = \"file\"\npaths = [\"/x/*.log\"]\n{extra}\n")
        };
        let c = parse(&source("multiline = \"none\"")).unwrap();
        assert!(matches!(c.sources[0].multiline, Mode::None));
        let c = parse(&source("multiline = { start = '^\\S', max_lines = 9 }")).unwrap();
        let Mode::Rule(rule) = &c.sources[0].multiline else {
            panic!("not a rule")
        };
        assert_eq!((rule.max_lines, rule.timeout), (9, multiline::TIMEOUT));
        assert!(matches!(
            parse(&source("")).unwrap().sources[0].multiline,
            Mode::Auto
        ));
        for (extra, problem) in [
            (
                "multiline = \"sometimes\"",
                "unknown multiline mode `sometimes`",
            ),
            (
                "multiline = { start = '^\\S', continue = '^\\s' }",
                "exactly one of `start` and `continue`",
            ),
            ("multiline = { start = '(' }", "invalid multiline regex"),
            (
                "multiline = { start = '^x', timeout = \"soon\" }",
                "invalid `timeout`",
            ),
            ("multiline = { strat = '^x' }", "unknown key `strat`"),
        ] {
            let err = parse(&source(extra)).unwrap_err();
            assert_eq!(err.0[0].line, 5, "{extra}: {err}");
            assert!(err.0[0].problem.contains(problem), "{extra}: {err}");
        }
    }

    #[test]
    fn ci_run_id_from_path_must_name_the_run_id() {
        let base = "[[source]]\nname = \"a\"\ntype = \"file\"\npaths = [\"/x/*.log\"]\n";
        let c = parse(&format!(
            "{base}ci_run_id_from_path = '/(?P<ci_run_id>\\d+)\\.log$'\n"
        ))
        .unwrap();
        assert!(c.sources[0].ci_run_id_from_path.is_some());
        let err = parse(&format!("{base}ci_run_id_from_path = '/(?P<job>\\d+)'\n")).unwrap_err();
        assert!(err.0[0].problem.contains("no `ci_run_id` group"), "{err}");
        assert!(err.0[0].fix.contains("(?P<ci_run_id>"), "{err}");
        let err = parse("[[source]]\nname = \"s\"\ntype = \"stdin\"\nci_run_id_from_path = '(?P<ci_run_id>x)'\n").unwrap_err();
        assert!(
            err.0[0]
                .problem
                .contains("does not apply to a stdin source"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_unit_value_names_its_key() {
        let err = parse("shutdown_timeout = \"soon\"\n").unwrap_err();
        assert!(err.0[0].problem.contains("`shutdown_timeout`"), "{err}");
    }

    #[test]
    fn every_receiver_type_takes_a_rate() {
        let c = parse(
            "[receiver.out]\ntype = \"console\"\nrate = \"3/min\"\n[receiver.log]\ntype = \"file\"\npath = \"/tmp/e.ndjson\"\nrate = \"10/30s\"\n[receiver.all]\ntype = \"file\"\npath = \"/tmp/all.ndjson\"\n",
        )
        .unwrap();
        let out = &c.receivers["out"];
        assert_eq!(out.kind, ReceiverKind::Console);
        let rate = out.rate.unwrap();
        assert_eq!((rate.count.get(), rate.per), (3, Duration::from_secs(60)));
        let log = &c.receivers["log"];
        assert_eq!(log.kind.type_name(), "file");
        assert_eq!(log.rate.unwrap().per, Duration::from_secs(30));
        assert_eq!(c.receivers["all"].rate, None);
    }

    #[test]
    fn a_bad_receiver_rate_names_its_place_and_the_fix() {
        let err = parse(
            "[receiver.out]\ntype = \"console\"\nrate = \"often\"\n[receiver.log]\ntype = \"file\"\npath = \"/tmp/e.ndjson\"\nrate = \"0/min\"\n",
        )
        .unwrap_err();
        let found: Vec<(usize, usize, &str)> = err
            .0
            .iter()
            .map(|d| (d.line, d.col, d.problem.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![(3, 8, "invalid `rate`"), (7, 8, "invalid `rate`")],
            "{err}"
        );
        assert!(err.0[0].fix.contains("\"20/min\""), "{err}");
        assert!(err.to_string().contains("t.toml:3:8"), "{err}");
    }

    #[test]
    fn receiver_type_and_keys_are_checked() {
        let err = parse(
            "[receiver.a]\ntype = \"console\"\npath = \"/x\"\n[receiver.b]\ntype = \"file\"\n[receiver.c]\ntype = \"pager\"\n",
        )
        .unwrap_err();
        let found: Vec<(usize, &str)> =
            err.0.iter().map(|d| (d.line, d.problem.as_str())).collect();
        assert!(
            found.contains(&(3, "`path` does not apply to a console receiver")),
            "{err}"
        );
        assert!(found.contains(&(4, "file receiver has no `path`")), "{err}");
        assert!(
            found.contains(&(7, "unknown receiver type `pager`")),
            "{err}"
        );
        let err =
            parse("[receiver.d]\ntype = \"file\"\npath = \"/x\"\nrat = \"1/s\"\n").unwrap_err();
        assert_eq!(err.0[0].line, 4, "{err}");
        assert!(err.0[0].fix.contains("`rate`"), "{err}");
    }

    #[test]
    fn a_receiver_change_needs_a_restart() {
        let a = parse("[receiver.out]\ntype = \"console\"\n").unwrap();
        let b = parse("[receiver.out]\ntype = \"console\"\nrate = \"1/s\"\n").unwrap();
        assert_eq!(a.restart_needed(&b), vec!["receiver"]);
        assert!(a.restart_needed(&a.clone()).is_empty());
    }

    #[test]
    fn exclude_without_slash_matches_file_name_anywhere() {
        let c = parse("[[source]]\nname = \"a\"\ntype = \"file\"\npaths = [\"/l/**/*\"]\nexclude = [\"*.gz\"]\n").unwrap();
        let SourceKind::File(f) = &c.sources[0].kind else {
            panic!("not a file source")
        };
        assert!(f.exclude.is_match("/l/x/y.gz"));
        assert!(!f.exclude.is_match("/l/x/y.log"));
    }
}
