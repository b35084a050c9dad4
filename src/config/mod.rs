//! The config file: serde types shaped like what users write (`*Toml`), and the
//! validated runtime types the agent runs on.
//!
//! Everything is checked here, once: durations, sizes, globs, addresses,
//! secrets, `${VAR}` expansion. Errors carry `file:line:col` and a fix. The
//! hot path never re-parses or unwraps config input.

mod diag;
pub mod loki;
pub mod schema;
pub mod units;

pub use diag::{Diagnostic, Diagnostics, FileCtx, Secret, nearest};
pub use loki::{Loki, LokiEncoding};

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Spanned;

use crate::correlate::PathFields;
use crate::escalation::Sample;
use crate::event::Origin;
use crate::multiline::{self, Mode};
use crate::notify::subject::SubjectTemplate;
use crate::notify::template::{Markup, Template};
use crate::pattern::MultilineSpec;
use crate::route::{Inhibit, Matcher, Route};
use crate::ship::Ship;
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
    /// Which events go to the outputs.
    pub ship: Ship,
    pub output_file: Option<FileOutput>,
    pub loki: Option<Loki>,
    pub receivers: BTreeMap<String, Receiver>,
    /// In the order written: the first that matches an event wins unless it says `continue`.
    pub routes: Arc<[Route]>,
    /// What is valid but probably not meant (`check` prints them, `run` logs them).
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone)]
pub struct Http {
    pub listen: SocketAddr,
    pub access: Access,
}

/// Who may use the status page and `/api/v1`, decided by where `[http] listen` is.
#[derive(Debug, Clone)]
pub enum Access {
    /// A loopback address: reading needs nothing; changing (silences) needs the token, and
    /// is refused when there is none.
    Loopback { token: Option<Secret> },
    /// Any other address: reading and changing both need the token (`/health`, `/ready` and
    /// `/metrics` stay open). `check` refuses such a listen address without a token.
    Network { token: Secret },
}

impl Access {
    /// `[http] token`, if any.
    pub fn token(&self) -> Option<&Secret> {
        match self {
            Access::Loopback { token } => token.as_ref(),
            Access::Network { token } => Some(token),
        }
    }

    /// Whether reading the status page and the API needs the token too.
    pub fn reads_need_token(&self) -> bool {
        matches!(self, Access::Network { .. })
    }
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

impl SourceKind {
    /// The `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceKind::File(_) => "file",
            SourceKind::Stdin => "stdin",
        }
    }
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
    /// A Slack incoming webhook.
    Slack {
        url: Secret,
        mention: Vec<String>,
        explore_url: Option<String>,
        template: Option<Template>,
        ca_file: Option<CaFile>,
    },
    /// A Feishu / Lark custom bot, signed when `secret` is set.
    Feishu {
        url: Secret,
        secret: Option<Secret>,
        mention: Vec<String>,
        explore_url: Option<String>,
        template: Option<Template>,
        ca_file: Option<CaFile>,
    },
    /// A DingTalk custom robot, signed when `secret` is set.
    DingTalk {
        url: Secret,
        secret: Option<Secret>,
        mention: Vec<String>,
        explore_url: Option<String>,
        template: Option<Template>,
        ca_file: Option<CaFile>,
    },
    /// A WeCom group robot.
    WeCom {
        url: Secret,
        mention: Vec<String>,
        explore_url: Option<String>,
        template: Option<Template>,
        ca_file: Option<CaFile>,
    },
    /// The escalation object POSTed as JSON, signed when `secret` is set.
    Webhook {
        url: Secret,
        secret: Option<Secret>,
        headers: Vec<(String, Secret)>,
        ca_file: Option<CaFile>,
    },
    /// Mails escalations through an SMTP smarthost.
    Email(EmailReceiver),
    /// Posts escalations as alerts to Prometheus Alertmanager (`/api/v2/alerts`).
    Alertmanager(Alertmanager),
    /// Publishes escalations to a NATS JetStream stream and waits for its ack.
    Nats(Nats),
}

/// `type = "nats"`: where and how to publish escalations (`notify::nats`).
#[derive(Debug, Clone, PartialEq)]
pub struct Nats {
    /// `url` without the credentials it may hold: `nats://HOST:PORT` or `tls://HOST:PORT`
    /// (one server; a cluster's others are learnt from it). A secret all the same: no
    /// message shows it.
    pub server: Secret,
    pub auth: Option<NatsAuth>,
    /// `subject`: the template each escalation's subject is made from.
    pub subject: SubjectTemplate,
    /// `stream`: letters, digits, `_` and `-`.
    pub stream: String,
    /// `tls = true` or a `tls://` url: the connection must be TLS.
    pub tls: bool,
    /// `ca_file`: PEM certificates to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// How a `nats` receiver logs in: exactly one of these, from the url or the keys.
#[derive(Debug, Clone, PartialEq)]
pub enum NatsAuth {
    /// `token`(`_file`), or `nats://TOKEN@HOST`.
    Token(Secret),
    /// `username` + `password`(`_file`), or `nats://USER:PASSWORD@HOST`.
    UserPassword { username: String, password: Secret },
    /// `creds_file`: the content of a NATS credentials file (user JWT and NKey seed).
    Creds(Secret),
}

/// `type = "alertmanager"`: where and how to post alerts (`notify::alertmanager`).
#[derive(Debug, Clone, PartialEq)]
pub struct Alertmanager {
    /// `urls`: every Alertmanager of an HA set; each alert goes to all of them.
    pub urls: Vec<reqwest::Url>,
    /// `labels_from`: extra label keys (e.g. `ci_run_id`, `host`), only these.
    pub labels_from: Vec<String>,
    pub auth: Option<HttpAuth>,
    /// `ca_file`: certificates trusted on top of the system's roots.
    pub ca_file: Option<CaFile>,
    /// `resolve_after`: an alert resolves this long after the group's last event unless
    /// re-sent. Absent in the file: twice the longest `window` of the routes that name the
    /// receiver, at least [`defaults::RESOLVE_AFTER`].
    pub resolve_after: Duration,
}

/// Credentials for an HTTP receiver behind a proxy: `username` + `password`(`_file`), or
/// `bearer_token`(`_file`).
#[derive(Debug, Clone, PartialEq)]
pub enum HttpAuth {
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

/// `ca_file = "/path/ca.pem"`: PEM certificates a receiver trusts on top of its default roots
/// (a private CA, a self-signed server), read and checked once, when the config is loaded.
#[derive(Clone)]
pub struct CaFile {
    pub path: PathBuf,
    pem: Vec<u8>,
    web: Vec<reqwest::Certificate>,
    mail: lettre::transport::smtp::client::Certificate,
}

impl CaFile {
    /// Reads `path`: one PEM certificate or more, each a valid X.509 certificate.
    pub fn load(path: &Path) -> Result<CaFile, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
        let web =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| "it is not PEM".to_string())?;
        if web.is_empty() {
            return Err("it holds no PEM certificate".into());
        }
        let mail = lettre::transport::smtp::client::Certificate::from_pem(&pem)
            .map_err(|e| format!("it is not PEM: {e}"))?;
        // Building a TLS client with them parses every certificate as a trust anchor.
        lettre::transport::smtp::client::TlsParameters::builder("localhost".into())
            .add_root_certificate(mail.clone())
            .build()
            .map_err(|e| format!("a certificate in it is not valid: {e}"))?;
        Ok(CaFile {
            path: path.to_path_buf(),
            pem,
            web,
            mail,
        })
    }

    /// The certificates, for an HTTP client.
    pub fn web(&self) -> &[reqwest::Certificate] {
        &self.web
    }

    /// The certificates, for an SMTP client.
    pub fn mail(&self) -> &lettre::transport::smtp::client::Certificate {
        &self.mail
    }
}

impl PartialEq for CaFile {
    fn eq(&self, other: &CaFile) -> bool {
        self.path == other.path && self.pem == other.pem
    }
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaFile({})", self.path.display())
    }
}

/// `type = "email"`: the keys of an e-mail receiver, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailReceiver {
    /// `smarthost = "host:port"`.
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// `from`: one mailbox (`"logward <logward@example.com>"`), checked to parse.
    pub from: String,
    /// `to`: one mailbox or more, each checked to parse.
    pub to: Vec<String>,
    /// `username` with `password`/`password_file`: AUTH; both or neither.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Put before every subject, e.g. `[ci]`.
    pub subject_prefix: Option<String>,
    /// `timeout`: per SMTP command, and for the connection (default 10s).
    pub timeout: Duration,
    /// `template` / `template_file`: the text part; the HTML part shows the same text.
    pub template: Option<Template>,
    /// `ca_file`: certificates trusted on top of the built-in roots (`tls` other than "none").
    pub ca_file: Option<CaFile>,
}

/// `tls` of an e-mail receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection, then `STARTTLS`, which must succeed (the default; port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: allowed only to a loopback host (a local relay, tests).
    None,
}

impl ReceiverKind {
    /// `explore_url`, for the receiver types that have it.
    pub fn explore_url(&self) -> Option<&str> {
        match self {
            ReceiverKind::Slack { explore_url, .. }
            | ReceiverKind::Feishu { explore_url, .. }
            | ReceiverKind::DingTalk { explore_url, .. }
            | ReceiverKind::WeCom { explore_url, .. } => explore_url.as_deref(),
            _ => None,
        }
    }

    /// The `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            ReceiverKind::Console => "console",
            ReceiverKind::File { .. } => "file",
            ReceiverKind::Slack { .. } => "slack",
            ReceiverKind::Feishu { .. } => "feishu",
            ReceiverKind::DingTalk { .. } => "dingtalk",
            ReceiverKind::WeCom { .. } => "wecom",
            ReceiverKind::Webhook { .. } => "webhook",
            ReceiverKind::Email(_) => "email",
            ReceiverKind::Alertmanager(_) => "alertmanager",
            ReceiverKind::Nats(_) => "nats",
        }
    }
}

/// An id a `mention` list may hold: letters, digits and `_-.+`, nothing a provider's mention
/// markup could read as anything but the id.
pub fn is_mention_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
}

/// What is wrong with a web receiver's URL, without showing it: not a URL, not https, or
/// plain http to a host that is not loopback.
pub fn web_url_problem(text: &str) -> Option<&'static str> {
    let Ok(url) = url::Url::parse(text) else {
        return Some("is not a valid URL");
    };
    match url.scheme() {
        "https" => None,
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            (!loopback).then_some("uses plain http to a host that is not loopback")
        }
        _ => Some("is not an https URL"),
    }
}

pub mod defaults {
    use std::time::Duration;
    pub const STATE_DIR: &str = "/var/lib/logward";
    pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MAX_LINE_BYTES: u64 = 1 << 20;
    pub const MAX_OPEN_FILES: u64 = 1024;
    /// An e-mail receiver's SMTP timeout (connect, and each command).
    pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
    /// How often open files are checked for growth when no watch event arrived.
    pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
    /// The safety net behind watch events: a full glob scan this often.
    pub const RESCAN_INTERVAL: Duration = Duration::from_secs(10);
    /// How long a rotated or deleted file is kept open after its last line,
    /// for writers that still append to the old file for a moment.
    pub const ROTATE_WAIT: Duration = Duration::from_secs(5);
    /// The least `resolve_after` of an `alertmanager` receiver.
    pub const RESOLVE_AFTER: Duration = Duration::from_secs(15 * 60);
    /// `[http] listen` when the table does not say: loopback only.
    pub const HTTP_LISTEN: &str = "127.0.0.1:9898";
}

/// The top level, less `[[source]]`: each source is deserialized on its own,
/// so that a mistake in one does not hide the others'.
#[derive(Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConfigToml {
    #[schemars(with = "Option<String>")]
    state_dir: Option<Spanned<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    patterns: Option<Vec<Spanned<String>>>,
    #[schemars(with = "Option<String>")]
    checkpoint_interval: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    shutdown_timeout: Option<Spanned<String>>,
    #[schemars(
        with = "Option<String>",
        extend("enum" = ["all", "matched", "none"]),
        description = "which events go to the outputs ([output.file], [loki]): all (the default), matched (events a pattern matched) or none"
    )]
    ship: Option<Spanned<String>>,
    #[schemars(with = "Option<HttpToml>")]
    http: Option<Spanned<HttpToml>>,
    /// Never present after `split_tables`; named so that serde lists it among the valid keys.
    #[serde(default, rename = "source")]
    #[schemars(
        with = "Option<Vec<SourceToml>>",
        description = "[[source]]: where lines come from (a file glob or stdin)"
    )]
    _source: Option<toml::Value>,
    /// Never present after `split_tables`, as `source`.
    #[serde(default, rename = "route")]
    #[schemars(
        with = "Option<Vec<RouteToml>>",
        description = "[[route]]: which events are escalated, grouped how, to which receivers"
    )]
    _route: Option<toml::Value>,
    output: Option<OutputToml>,
    #[schemars(
        with = "Option<loki::LokiToml>",
        description = "[loki]: ship events to Grafana Loki's push API (docs/loki.md)"
    )]
    loki: Option<Spanned<loki::LokiToml>>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ReceiverToml>")]
    receiver: BTreeMap<String, Spanned<ReceiverToml>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HttpToml {
    #[schemars(with = "Option<String>")]
    listen: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    token: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    token_file: Option<Spanned<String>>,
}

/// One table for every source type, so that errors keep their spans; which
/// keys a type accepts is checked in validation.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SourceToml {
    #[schemars(with = "String")]
    name: Spanned<String>,
    #[serde(rename = "type")]
    #[schemars(with = "String", extend("enum" = ["file", "stdin"]))]
    kind: Spanned<String>,
    #[schemars(with = "Option<Vec<String>>")]
    paths: Option<Spanned<Vec<Spanned<String>>>>,
    #[schemars(with = "Option<Vec<String>>")]
    exclude: Option<Vec<Spanned<String>>>,
    #[schemars(with = "Option<String>", extend("enum" = ["auto", "text", "json", "cri", "docker"]))]
    format: Option<Spanned<String>>,
    #[schemars(with = "Option<String>", extend("enum" = ["beginning", "end"]))]
    start_at: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    labels: BTreeMap<String, Spanned<String>>,
    #[schemars(with = "Option<String>")]
    max_line_bytes: Option<Spanned<String>>,
    #[schemars(with = "Option<MultilineToml>")]
    multiline: Option<Spanned<MultilineToml>>,
    #[schemars(with = "Option<String>")]
    ci_run_id_from_path: Option<Spanned<String>>,
    #[schemars(with = "Option<u64>")]
    max_open_files: Option<Spanned<u64>>,
    #[schemars(with = "Option<String>")]
    poll_interval: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    rescan_interval: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    rotate_wait: Option<Spanned<String>>,
}

/// `multiline = "auto"`, `"none"`, or a rule table.
enum MultilineToml {
    Named(String),
    Rule(MultilineRuleToml),
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct MultilineRuleToml {
    #[schemars(with = "Option<String>")]
    start: Option<Spanned<String>>,
    #[serde(rename = "continue")]
    #[schemars(with = "Option<String>")]
    cont: Option<Spanned<String>>,
    #[schemars(with = "Option<u64>")]
    max_lines: Option<Spanned<u64>>,
    #[schemars(with = "Option<String>")]
    max_bytes: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
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

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RouteToml {
    #[schemars(with = "String")]
    name: Spanned<String>,
    #[serde(rename = "match")]
    #[schemars(with = "Option<schema::Conditions>")]
    matcher: Option<Spanned<toml::Table>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    receivers: Vec<Spanned<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    group_by: Option<Spanned<Vec<String>>>,
    #[schemars(with = "Option<String>")]
    window: Option<Spanned<String>>,
    #[schemars(with = "Option<u64>")]
    threshold: Option<Spanned<u64>>,
    #[schemars(with = "Option<String>")]
    repeat_interval: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    group_wait: Option<Spanned<String>>,
    #[schemars(with = "Option<u64>")]
    max_groups: Option<Spanned<u64>>,
    #[serde(default, rename = "continue")]
    cont: bool,
    #[serde(default)]
    #[schemars(with = "Vec<schema::InhibitRule>")]
    inhibit: Vec<Spanned<toml::Table>>,
    #[schemars(with = "Option<u64>")]
    context_lines: Option<Spanned<u64>>,
    #[schemars(with = "Option<Vec<String>>")]
    mention: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OutputToml {
    file: Option<FileOutputToml>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FileOutputToml {
    #[schemars(with = "String")]
    path: Spanned<String>,
}

/// Every receiver `type`, with the keys it takes besides `type`, `rate` and `retry`: what
/// validation accepts, and what the schema tells editors.
const RECEIVER_TYPES: &[(&str, &[&str])] = &[
    ("console", &[]),
    ("file", &["path"]),
    ("slack", CHAT_KEYS),
    ("feishu", SIGNED_CHAT_KEYS),
    ("dingtalk", SIGNED_CHAT_KEYS),
    ("wecom", CHAT_KEYS),
    (
        "webhook",
        &[
            "url",
            "url_file",
            "secret",
            "secret_file",
            "headers",
            "ca_file",
        ],
    ),
    (
        "email",
        &[
            "smarthost",
            "tls",
            "from",
            "to",
            "username",
            "password",
            "password_file",
            "subject_prefix",
            "timeout",
            "template",
            "template_file",
            "ca_file",
        ],
    ),
    (
        "alertmanager",
        &[
            "urls",
            "labels_from",
            "resolve_after",
            "username",
            "password",
            "password_file",
            "bearer_token",
            "bearer_token_file",
            "ca_file",
        ],
    ),
    (
        "nats",
        &[
            "url",
            "url_file",
            "subject",
            "stream",
            "token",
            "token_file",
            "username",
            "password",
            "password_file",
            "creds_file",
            "tls",
            "ca_file",
        ],
    ),
];
const CHAT_KEYS: &[&str] = &[
    "url",
    "url_file",
    "mention",
    "explore_url",
    "template",
    "template_file",
    "ca_file",
];
const SIGNED_CHAT_KEYS: &[&str] = &[
    "url",
    "url_file",
    "secret",
    "secret_file",
    "mention",
    "explore_url",
    "template",
    "template_file",
    "ca_file",
];

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = schema::receiver_types)]
struct ReceiverToml {
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    kind: Spanned<String>,
    #[schemars(with = "Option<String>")]
    path: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    rate: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    url: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    url_file: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    secret: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    secret_file: Option<Spanned<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    mention: Option<Spanned<Vec<Spanned<String>>>>,
    #[schemars(with = "Option<String>")]
    explore_url: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    template: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    template_file: Option<Spanned<String>>,
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    headers: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    #[schemars(with = "Option<String>")]
    smarthost: Option<Spanned<String>>,
    /// A mode (`"starttls"`) for `email`, `true`/`false` for `nats`.
    #[schemars(with = "Option<schema::Tls>")]
    tls: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<String>")]
    from: Option<Spanned<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    to: Option<Spanned<Vec<Spanned<String>>>>,
    #[schemars(with = "Option<String>")]
    username: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    password: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    password_file: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    subject_prefix: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    timeout: Option<Spanned<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    urls: Option<Spanned<Vec<Spanned<String>>>>,
    #[schemars(with = "Option<Vec<String>>")]
    labels_from: Option<Vec<Spanned<String>>>,
    #[schemars(with = "Option<String>")]
    resolve_after: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    bearer_token: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    bearer_token_file: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    subject: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    stream: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    token: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    token_file: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    creds_file: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    ca_file: Option<Spanned<String>>,
    retry: Option<RetryToml>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RetryToml {
    #[schemars(with = "Option<String>")]
    max_elapsed: Option<Spanned<String>>,
}

/// The credential keys of an HTTP peer behind a proxy (`alertmanager`, `[loki]`).
struct HttpAuthToml<'a> {
    username: Option<&'a Spanned<String>>,
    password: Option<&'a Spanned<String>>,
    password_file: Option<&'a Spanned<String>>,
    bearer_token: Option<&'a Spanned<String>>,
    bearer_token_file: Option<&'a Spanned<String>>,
}

impl ReceiverToml {
    /// The type-specific keys present, with where they are.
    fn keys(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut out = Vec::new();
        let mut add = |k: &'static str, span: Option<std::ops::Range<usize>>| {
            if let Some(s) = span {
                out.push((k, s));
            }
        };
        add("path", self.path.as_ref().map(Spanned::span));
        add("url", self.url.as_ref().map(Spanned::span));
        add("url_file", self.url_file.as_ref().map(Spanned::span));
        add("secret", self.secret.as_ref().map(Spanned::span));
        add("secret_file", self.secret_file.as_ref().map(Spanned::span));
        add("mention", self.mention.as_ref().map(Spanned::span));
        add("explore_url", self.explore_url.as_ref().map(Spanned::span));
        add("template", self.template.as_ref().map(Spanned::span));
        add(
            "template_file",
            self.template_file.as_ref().map(Spanned::span),
        );
        add("headers", self.headers.as_ref().map(Spanned::span));
        add("smarthost", self.smarthost.as_ref().map(Spanned::span));
        add("tls", self.tls.as_ref().map(Spanned::span));
        add("from", self.from.as_ref().map(Spanned::span));
        add("to", self.to.as_ref().map(Spanned::span));
        add("username", self.username.as_ref().map(Spanned::span));
        add("password", self.password.as_ref().map(Spanned::span));
        add(
            "password_file",
            self.password_file.as_ref().map(Spanned::span),
        );
        add(
            "subject_prefix",
            self.subject_prefix.as_ref().map(Spanned::span),
        );
        add("timeout", self.timeout.as_ref().map(Spanned::span));
        add("urls", self.urls.as_ref().map(Spanned::span));
        add(
            "labels_from",
            self.labels_from
                .as_ref()
                .and_then(|l| l.first())
                .map(Spanned::span),
        );
        add(
            "resolve_after",
            self.resolve_after.as_ref().map(Spanned::span),
        );
        add(
            "bearer_token",
            self.bearer_token.as_ref().map(Spanned::span),
        );
        add(
            "bearer_token_file",
            self.bearer_token_file.as_ref().map(Spanned::span),
        );
        add("subject", self.subject.as_ref().map(Spanned::span));
        add("stream", self.stream.as_ref().map(Spanned::span));
        add("token", self.token.as_ref().map(Spanned::span));
        add("token_file", self.token_file.as_ref().map(Spanned::span));
        add("creds_file", self.creds_file.as_ref().map(Spanned::span));
        add("ca_file", self.ca_file.as_ref().map(Spanned::span));
        out
    }
}

/// `host:port` or `[v6]:port`.
fn split_host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let port = port.parse::<u16>().ok().filter(|&p| p != 0)?;
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, port))
}

/// A nats receiver's `url`, taken apart: the server's address without credentials, the
/// credentials it carried, and whether it asks for TLS (`tls://`).
struct NatsUrl {
    address: Secret,
    auth: Option<NatsAuth>,
    tls: bool,
}

/// Parses `nats://[USER:PASSWORD@ | TOKEN@]HOST[:PORT]` (or `tls://`). The error says what is
/// wrong without showing the url.
fn nats_url(text: &str) -> Result<NatsUrl, &'static str> {
    let url = url::Url::parse(text).map_err(|_| "is not a valid URL")?;
    if !matches!(url.scheme(), "nats" | "tls") {
        return Err("is not a nats:// or tls:// URL");
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("has no host")?;
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err("has more than a host and a port");
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| "holds credentials that are not UTF-8")
    };
    let auth = match (url.username(), url.password()) {
        ("", None) => None,
        ("", Some(_)) => return Err("has a password but no user"),
        (token, None) => Some(NatsAuth::Token(Secret(decode(token)?))),
        (user, Some(password)) => Some(NatsAuth::UserPassword {
            username: decode(user)?,
            password: Secret(decode(password)?),
        }),
    };
    Ok(NatsUrl {
        address: Secret(format!(
            "{}://{host}:{}",
            url.scheme(),
            url.port().unwrap_or(4222)
        )),
        auth,
        tls: url.scheme() == "tls",
    })
}

/// `localhost`, 127.0.0.0/8 and ::1: where mail in clear text never leaves the machine.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
        let mut v = Validator {
            ctx: &ctx,
            errors,
            warnings: Vec::new(),
        };
        let mut config = v.config(raw, sources, routes);
        if v.errors.is_empty() {
            v.warnings.sort_by_key(|d| (d.line, d.col));
            config.warnings = v.warnings;
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
        if self.output_file.as_ref().map(|o| &o.path) != new.output_file.as_ref().map(|o| &o.path)
            || self.ship != new.ship
        {
            changed.push("output");
        }
        if self.loki != new.loki {
            changed.push("loki");
        }
        if self.receivers != new.receivers {
            changed.push("receiver");
        }
        changed
    }

    /// The event keys whose values are Loki stream labels besides the sources' static labels
    /// (`source` and `[loki] labels`), for escalations' `loki_query`; none without `[loki]`.
    pub fn loki_query_labels(&self) -> Vec<String> {
        self.loki.as_ref().map_or_else(Vec::new, |l| {
            std::iter::once("source".to_string())
                .chain(l.labels.iter().map(|p| p.field.clone()))
                .collect()
        })
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
    warnings: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn ok<T>(&mut self, r: Result<T, Diagnostic>) -> Option<T> {
        r.map_err(|d| self.errors.push(d)).ok()
    }

    fn warn(&mut self, span: std::ops::Range<usize>, problem: String, fix: impl Into<String>) {
        self.warnings.push(self.ctx.diag(span, problem, fix));
    }

    fn string(&mut self, v: &Spanned<String>) -> Option<String> {
        let r = self.ctx.expand(v);
        self.ok(r)
    }

    /// A count under `key` between 1 and `max`, or `default` when absent or out of range.
    fn count(&mut self, key: &str, v: Option<&Spanned<u64>>, max: u64, default: u64) -> u64 {
        match v {
            Some(v) if (1..=max).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    format!("{key} must be between 1 and {max}"),
                    format!("write e.g. {default}"),
                ));
                default
            }
            None => default,
        }
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
        let ship = match &raw.ship {
            None => Ship::default(),
            Some(v) => Ship::parse(v.get_ref()).unwrap_or_else(|| {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    format!("unknown ship `{}`", v.get_ref()),
                    "use \"all\" (every event, the default), \"matched\" (events a pattern matched) or \"none\"",
                ));
                Ship::default()
            }),
        };
        let output_file = raw
            .output
            .and_then(|o| o.file)
            .and_then(|f| self.string(&f.path))
            .map(|p| FileOutput {
                path: PathBuf::from(p),
            });
        let loki = raw.loki.and_then(|l| self.loki(l, &sources));
        let receiver_names: Vec<String> = raw.receiver.keys().cloned().collect();
        let mut receivers: BTreeMap<String, Receiver> = raw
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
        default_resolve_after(&mut receivers, &routes);
        Config {
            path: self.ctx.path.to_path_buf(),
            state_dir,
            patterns,
            checkpoint_interval,
            shutdown_timeout,
            http: http.flatten(),
            sources,
            ship,
            output_file,
            loki,
            receivers,
            routes: routes.into(),
            warnings: Vec::new(),
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
        route.context_lines = self.count(
            "context_lines",
            r.context_lines.as_ref(),
            Sample::MAX_CONTEXT_LINES as u64,
            route.context_lines as u64,
        ) as usize;
        route.continue_ = r.cont;
        route.mention = self.mentions(r.mention.as_ref()).unwrap_or_default();
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
        let table = h.span();
        let h = h.into_inner();
        // Both are checked whatever the other gives, so that one run reports both.
        let token = self
            .ctx
            .secret("token", h.token.as_ref(), h.token_file.as_ref());
        let token = self.ok(token);
        let listen = match &h.listen {
            None => defaults::HTTP_LISTEN.parse::<SocketAddr>().ok(),
            Some(l) => self.string(l).and_then(|listen| {
                listen
                    .parse::<SocketAddr>()
                    .map_err(|_| {
                        self.errors.push(self.ctx.diag(
                            l.span(),
                            format!("`{listen}` is not a listen address"),
                            "write IP:PORT, e.g. \"127.0.0.1:9898\" or \"0.0.0.0:9898\"",
                        ));
                    })
                    .ok()
            }),
        };
        let (listen, token) = (listen?, token?);
        let access = match (listen.ip().is_loopback(), token) {
            (true, token) => Access::Loopback { token },
            (false, Some(token)) => Access::Network { token },
            (false, None) => {
                let span = h.listen.as_ref().map_or(table, Spanned::span);
                self.errors.push(self.ctx.diag(
                    span,
                    format!("`[http] listen = \"{listen}\"` is not a loopback address and there is no `token`: the status page and API would show log lines to the network"),
                    "set token = \"${LOGWARD_HTTP_TOKEN}\" (or token_file), or listen on 127.0.0.1",
                ));
                return None;
            }
        };
        Some(Http { listen, access })
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
        let max_lines = self.count(
            "max_lines",
            rule.max_lines.as_ref(),
            100_000,
            multiline::MAX_LINES as u64,
        ) as usize;
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
        let max_open_files = self.count(
            "max_open_files",
            s.max_open_files.as_ref(),
            1_000_000,
            defaults::MAX_OPEN_FILES,
        );
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

    /// A web receiver's `url` (or `url_file`): required, a URL, https or loopback http. The
    /// URL is a credential: no message shows it.
    fn web_url(
        &mut self,
        type_name: &str,
        r: &ReceiverToml,
        table: std::ops::Range<usize>,
    ) -> Option<Secret> {
        let url = self.ctx.secret("url", r.url.as_ref(), r.url_file.as_ref());
        let Some(url) = self.ok(url)? else {
            self.errors.push(self.ctx.diag(
                table,
                format!("{type_name} receiver has no `url`"),
                "add url = \"${WEBHOOK_URL}\" (read from the environment) or url_file = \"/path\"",
            ));
            return None;
        };
        let at = r
            .url
            .as_ref()
            .or(r.url_file.as_ref())
            .map_or(0..0, Spanned::span);
        match web_url_problem(url.expose()) {
            None => Some(url),
            Some(problem) => {
                self.errors.push(self.ctx.diag(
                    at,
                    format!("`url` {problem}"),
                    "use the https URL the provider gave for the webhook (plain http only to 127.0.0.1, ::1 or localhost)",
                ));
                None
            }
        }
    }

    /// `mention` (of a receiver or a route): ids that go into the provider's mention markup as
    /// they are, so only [`is_mention_id`]s are taken.
    fn mentions(&mut self, m: Option<&Spanned<Vec<Spanned<String>>>>) -> Option<Vec<String>> {
        let Some(m) = m else { return Some(Vec::new()) };
        let mut out = Vec::new();
        let mut ok = true;
        for id in m.get_ref() {
            let text = id.get_ref();
            if !is_mention_id(text) {
                ok = false;
                self.errors.push(self.ctx.diag(
                    id.span(),
                    format!("`{text}` is not a user id to mention"),
                    "write the provider's id alone, e.g. \"U012AB3CD\" (Slack), \"ou_xxx\" (Feishu), a user id or mobile (DingTalk), a userid (WeCom); \"all\" or \"here\" where the provider has it",
                ));
            } else {
                out.push(text.clone());
            }
        }
        ok.then_some(out)
    }

    /// `explore_url`: a link template with `{loki_query}`.
    fn explore_url(&mut self, v: Option<&Spanned<String>>) -> Option<Option<String>> {
        let Some(v) = v else { return Some(None) };
        let text = self.string(v)?;
        let filled = text
            .replace("{loki_query_urlencoded}", "q")
            .replace("{loki_query}", "q");
        let problem = if filled == text {
            Some("has no `{loki_query}`")
        } else {
            match url::Url::parse(&filled) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => None,
                _ => Some("is not an http(s) URL"),
            }
        };
        match problem {
            None => Some(Some(text)),
            Some(p) => {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    format!("`explore_url` {p}"),
                    "e.g. explore_url = \"https://grafana.example/explore?left={loki_query}\" ({loki_query} becomes the URL-encoded LogQL)",
                ));
                None
            }
        }
    }

    /// `headers = { Name = "value" }`: values may hold tokens, so they are secrets (`${VAR}`).
    /// Besides Content-Type, Content-Length, Host and X-Logward-*, the names in `reserved`
    /// (lowercase) are set by logward and cannot be given.
    fn headers(
        &mut self,
        h: Option<&Spanned<BTreeMap<String, Spanned<String>>>>,
        reserved: &[&str],
    ) -> Option<Vec<(String, Secret)>> {
        let Some(h) = h else { return Some(Vec::new()) };
        let mut out = Vec::new();
        let mut ok = true;
        for (name, value) in h.get_ref() {
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || ["content-type", "content-length", "host"].contains(&lower.as_str())
                || reserved.contains(&lower.as_str())
                || lower.starts_with("x-logward-")
            {
                ok = false;
                let also: String = reserved.iter().map(|r| format!(", {r}")).collect();
                self.errors.push(self.ctx.diag(
                    value.span(),
                    format!("`{name}` cannot be a custom header"),
                    format!("use a valid header name other than Content-Type, Content-Length, Host{also} and X-Logward-*"),
                ));
                continue;
            }
            let v = self
                .ctx
                .secret(&format!("headers.{name}"), Some(value), None);
            match self.ok(v) {
                Some(Some(v)) if reqwest::header::HeaderValue::from_str(v.expose()).is_ok() => {
                    out.push((name.clone(), v))
                }
                Some(_) => {
                    ok = false;
                    self.errors.push(self.ctx.diag(
                        value.span(),
                        format!("the value of header `{name}` is not a valid header value"),
                        "use visible ASCII without line breaks",
                    ));
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
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
        let type_name = r.kind.get_ref().as_str();
        let Some(&(_, takes)) = RECEIVER_TYPES.iter().find(|(t, _)| *t == type_name) else {
            self.errors.push(self.ctx.diag(
                r.kind.span(),
                format!("unknown receiver type `{type_name}`"),
                "use \"console\", \"file\", \"slack\", \"feishu\", \"dingtalk\", \"wecom\", \"webhook\", \"email\", \"alertmanager\" or \"nats\"",
            ));
            return None;
        };
        let mut misplaced = false;
        for (key, at) in r.keys() {
            if !takes.contains(&key) {
                misplaced = true;
                let fix = match key {
                    "path" => "remove it, or use type = \"file\"".to_string(),
                    _ if takes.is_empty() => "remove it".to_string(),
                    _ => format!(
                        "remove it; a {type_name} receiver takes `{}`",
                        takes.join("`, `")
                    ),
                };
                self.errors.push(self.ctx.diag(
                    at,
                    format!("`{key}` does not apply to a {type_name} receiver"),
                    fix,
                ));
            }
        }
        let kind = match type_name {
            "console" => ReceiverKind::Console,
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
            "email" => ReceiverKind::Email(self.email(span, &r)?),
            "alertmanager" => ReceiverKind::Alertmanager(self.alertmanager(&r, span.clone())?),
            "nats" => ReceiverKind::Nats(self.nats(&r, span.clone())?),
            web => {
                let url = self.web_url(web, &r, span.clone());
                let secret = self
                    .ctx
                    .secret("secret", r.secret.as_ref(), r.secret_file.as_ref());
                let secret = self.ok(secret);
                let mention = self.mentions(r.mention.as_ref());
                let explore_url = self.explore_url(r.explore_url.as_ref());
                let explore = explore_url.as_ref().and_then(Option::as_deref);
                let template = match web {
                    "slack" => self.template(&r, Markup::Slack, explore),
                    "webhook" => Some(None),
                    _ => self.template(&r, Markup::Markdown, explore),
                };
                let headers = self.headers(r.headers.as_ref(), &[]);
                let ca_file = self.ca_file(r.ca_file.as_ref());
                let (url, secret, mention, explore_url, template, headers, ca_file) = (
                    url?,
                    secret?,
                    mention?,
                    explore_url?,
                    template?,
                    headers?,
                    ca_file?,
                );
                match web {
                    "slack" => ReceiverKind::Slack {
                        url,
                        mention,
                        explore_url,
                        template,
                        ca_file,
                    },
                    "feishu" => ReceiverKind::Feishu {
                        url,
                        secret,
                        mention,
                        explore_url,
                        template,
                        ca_file,
                    },
                    "dingtalk" => ReceiverKind::DingTalk {
                        url,
                        secret,
                        mention,
                        explore_url,
                        template,
                        ca_file,
                    },
                    "wecom" => ReceiverKind::WeCom {
                        url,
                        mention,
                        explore_url,
                        template,
                        ca_file,
                    },
                    _ => ReceiverKind::Webhook {
                        url,
                        secret,
                        headers,
                        ca_file,
                    },
                }
            }
        };
        if misplaced {
            return None;
        }
        Some(Receiver { kind, rate, retry })
    }

    /// The keys of `type = "alertmanager"`; every problem is reported.
    fn alertmanager(
        &mut self,
        r: &ReceiverToml,
        span: std::ops::Range<usize>,
    ) -> Option<Alertmanager> {
        let before = self.errors.len();
        if let Some(p) = &r.path {
            self.errors.push(self.ctx.diag(
                p.span(),
                "`path` does not apply to an alertmanager receiver",
                "remove it; the alerts go to `urls`",
            ));
        }
        let mut urls = Vec::new();
        match &r.urls {
            Some(list) if !list.get_ref().is_empty() => {
                for u in list.get_ref() {
                    let Some(text) = self.string(u) else { continue };
                    match reqwest::Url::parse(&text) {
                        Ok(url)
                            if matches!(url.scheme(), "http" | "https")
                                && url.host().is_some()
                                && url.username().is_empty()
                                && url.password().is_none() =>
                        {
                            urls.push(url)
                        }
                        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                            self.errors.push(self.ctx.diag(
                                u.span(),
                                "an alertmanager url carries credentials",
                                "remove them from the url; set `username` and `password_file`, or `bearer_token_file`",
                            ))
                        }
                        _ => self.errors.push(self.ctx.diag(
                            u.span(),
                            "not an http(s) url",
                            "write the Alertmanager's base url, e.g. \"http://alertmanager-0:9093\"",
                        )),
                    }
                }
            }
            Some(list) => self.errors.push(self.ctx.diag(
                list.span(),
                "`urls` is empty",
                "list every Alertmanager of the HA set, e.g. urls = [\"http://alertmanager-0:9093\"]",
            )),
            None => self.errors.push(self.ctx.diag(
                span.clone(),
                "alertmanager receiver has no `urls`",
                "add urls = [\"http://alertmanager-0:9093\", \"http://alertmanager-1:9093\"]",
            )),
        }
        let mut labels_from = Vec::new();
        for k in r.labels_from.iter().flatten() {
            let name = k.get_ref();
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.errors.push(self.ctx.diag(
                    k.span(),
                    format!("`{name}` is not a valid label name"),
                    "use letters, digits and `_`, not starting with a digit, e.g. \"ci_run_id\"",
                ));
            } else if crate::notify::alertmanager::FIXED_LABELS.contains(&name.as_str()) {
                self.errors.push(self.ctx.diag(
                    k.span(),
                    format!("`{name}` is always a label"),
                    "remove it from `labels_from`",
                ));
            } else if !labels_from.contains(name) {
                labels_from.push(name.clone());
            }
        }
        let resolve_after = self.unit(
            "resolve_after",
            r.resolve_after.as_ref(),
            Duration::ZERO,
            units::duration,
        );
        if let Some(v) = &r.resolve_after {
            if resolve_after.is_zero() && self.errors.len() == before {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    "`resolve_after` is zero",
                    "give a duration, e.g. \"15m\", or remove it for the default",
                ));
            }
        }
        let auth = self.http_auth(
            span,
            HttpAuthToml {
                username: r.username.as_ref(),
                password: r.password.as_ref(),
                password_file: r.password_file.as_ref(),
                bearer_token: r.bearer_token.as_ref(),
                bearer_token_file: r.bearer_token_file.as_ref(),
            },
        );
        let ca_file = self.ca_file(r.ca_file.as_ref()).flatten();
        (self.errors.len() == before).then_some(Alertmanager {
            urls,
            labels_from,
            auth,
            ca_file,
            resolve_after,
        })
    }

    /// `username` + `password`(`_file`), or `bearer_token`(`_file`), or neither; `None` after
    /// reporting a problem (`span` is the table's).
    fn http_auth(
        &mut self,
        span: std::ops::Range<usize>,
        keys: HttpAuthToml<'_>,
    ) -> Option<HttpAuth> {
        let password = self
            .ctx
            .secret("password", keys.password, keys.password_file);
        let password = self.ok(password);
        let bearer = self
            .ctx
            .secret("bearer_token", keys.bearer_token, keys.bearer_token_file);
        let bearer = self.ok(bearer);
        let username = keys.username.and_then(|u| self.string(u));
        match (username, password.flatten(), bearer.flatten()) {
            (None, None, None) => None,
            (None, None, Some(t)) => Some(HttpAuth::Bearer(t)),
            (Some(username), Some(password), None) => Some(HttpAuth::Basic { username, password }),
            (_, _, Some(_)) => {
                self.errors.push(self.ctx.diag(
                    span.clone(),
                    "both basic auth and `bearer_token` are set",
                    "keep one of them",
                ));
                None
            }
            (Some(_), None, None) => {
                self.errors.push(self.ctx.diag(
                    span.clone(),
                    "`username` without `password`",
                    "add password_file = \"/etc/logward/password\", or remove `username`",
                ));
                None
            }
            (None, Some(_), None) => {
                self.errors.push(self.ctx.diag(
                    span.clone(),
                    "`password` without `username`",
                    "add username = \"...\", or use bearer_token_file",
                ));
                None
            }
        }
    }

    /// The keys of `type = "nats"`; every problem is reported. The url, token, password and
    /// credentials are secrets: no message shows them.
    fn nats(&mut self, r: &ReceiverToml, span: std::ops::Range<usize>) -> Option<Nats> {
        let before = self.errors.len();
        let url = self.ctx.secret("url", r.url.as_ref(), r.url_file.as_ref());
        let url_at = r
            .url
            .as_ref()
            .or(r.url_file.as_ref())
            .map_or(span.clone(), Spanned::span);
        let server = match self.ok(url) {
            Some(Some(url)) => match nats_url(url.expose()) {
                Ok(server) => Some(server),
                Err(problem) => {
                    self.errors.push(self.ctx.diag(
                        url_at,
                        format!("`url` {problem}"),
                        "write nats://HOST:4222 or tls://HOST:4222; credentials go in it (nats://USER:PASSWORD@HOST:4222, nats://TOKEN@HOST:4222) or in `token`, `username` + `password`, `creds_file`",
                    ));
                    None
                }
            },
            Some(None) => {
                self.errors.push(self.ctx.diag(
                    span.clone(),
                    "nats receiver has no `url`",
                    "add url = \"nats://127.0.0.1:4222\", or url = \"${NATS_URL}\" when it holds credentials",
                ));
                None
            }
            None => None,
        };
        let subject = match &r.subject {
            Some(v) => self.string(v).and_then(|text| {
                SubjectTemplate::parse(&text)
                    .map_err(|e| {
                        self.errors
                            .push(self.ctx.diag(v.span(), e.to_string(), e.fix()))
                    })
                    .ok()
            }),
            None => {
                self.errors.push(self.ctx.diag(
                    span.clone(),
                    "nats receiver has no `subject`",
                    "add subject = \"logward.{level}.{service}\"",
                ));
                None
            }
        };
        let stream = match &r.stream {
            Some(v) => self.string(v).filter(|name| {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid {
                    self.errors.push(self.ctx.diag(
                        v.span(),
                        format!("`{name}` is not a stream name"),
                        "use letters, digits, `_` and `-`, e.g. stream = \"LOGWARD\"",
                    ));
                }
                valid
            }),
            None => {
                self.errors.push(self.ctx.diag(
                    span.clone(),
                    "nats receiver has no `stream`",
                    "add stream = \"LOGWARD\" (created when it does not exist)",
                ));
                None
            }
        };
        let auth = self.nats_auth(r, server.as_ref().and_then(|s| s.auth.clone()), &span);
        let tls = match &r.tls {
            None => false,
            Some(v) => v.get_ref().as_bool().unwrap_or_else(|| {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    "`tls` of a nats receiver is true or false",
                    "write tls = true to require TLS, or remove it",
                ));
                false
            }),
        };
        let tls = tls || server.as_ref().is_some_and(|s| s.tls);
        let ca_file = r.ca_file.as_ref().and_then(|f| {
            let path = PathBuf::from(self.string(f)?);
            let problem = match std::fs::read_to_string(&path) {
                Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => None,
                Ok(_) => Some("holds no PEM certificate".to_string()),
                Err(e) => Some(format!("cannot be read: {e}")),
            };
            if let Some(problem) = problem {
                self.errors.push(self.ctx.diag(
                    f.span(),
                    format!("`ca_file` {} {problem}", path.display()),
                    "give the PEM file of the CA that signed the server's certificate",
                ));
            } else if !tls {
                self.errors.push(self.ctx.diag(
                    f.span(),
                    "`ca_file` is set but TLS is not",
                    "add tls = true, or use a tls:// url",
                ));
            }
            Some(path)
        });
        if self.errors.len() != before {
            return None;
        }
        Some(Nats {
            server: server?.address,
            auth: auth?,
            subject: subject?,
            stream: stream?,
            tls,
            ca_file,
        })
    }

    /// How a nats receiver logs in: the url's credentials, `token`, `username` + `password` or
    /// `creds_file`, at most one of them. `None` when a problem was reported.
    fn nats_auth(
        &mut self,
        r: &ReceiverToml,
        in_url: Option<NatsAuth>,
        span: &std::ops::Range<usize>,
    ) -> Option<Option<NatsAuth>> {
        let before = self.errors.len();
        let token = self
            .ctx
            .secret("token", r.token.as_ref(), r.token_file.as_ref());
        let token = self.ok(token).flatten();
        let password = self
            .ctx
            .secret("password", r.password.as_ref(), r.password_file.as_ref());
        let password = self.ok(password).flatten();
        let creds = self.ctx.secret("creds", None, r.creds_file.as_ref());
        // `secret` trims the final newline, which the credentials' closing line needs.
        let creds = self.ok(creds).flatten().map(|c| Secret(c.0 + "\n"));
        if let (Some(c), Some(at)) = (&creds, &r.creds_file) {
            if async_nats::ConnectOptions::new()
                .credentials(c.expose())
                .is_err()
            {
                self.errors.push(self.ctx.diag(
                    at.span(),
                    "`creds_file` is not a NATS credentials file",
                    "give the .creds file issued for the user (a user JWT and an NKey seed)",
                ));
            }
        }
        let username = r.username.as_ref().and_then(|u| self.string(u));
        let user_password = match (username, password) {
            (Some(username), Some(password)) => Some(NatsAuth::UserPassword { username, password }),
            (Some(_), None) => {
                self.errors.push(self.ctx.diag(
                    r.username.as_ref().map_or(span.clone(), Spanned::span),
                    "`username` without a password",
                    "add password_file = \"/etc/logward/nats-password\", or remove `username`",
                ));
                None
            }
            (None, Some(_)) => {
                let at = r.password.as_ref().or(r.password_file.as_ref());
                self.errors.push(self.ctx.diag(
                    at.map_or(span.clone(), Spanned::span),
                    "a password without `username`",
                    "add username = \"...\", or remove the password",
                ));
                None
            }
            (None, None) => None,
        };
        let ways: Vec<(&str, NatsAuth)> = [
            ("credentials in `url`", in_url),
            ("`token`", token.map(NatsAuth::Token)),
            ("`username` and a password", user_password),
            ("`creds_file`", creds.map(NatsAuth::Creds)),
        ]
        .into_iter()
        .filter_map(|(name, way)| Some((name, way?)))
        .collect();
        if ways.len() > 1 {
            let names: Vec<&str> = ways.iter().map(|(n, _)| *n).collect();
            self.errors.push(self.ctx.diag(
                span.clone(),
                format!(
                    "{} are set; a nats receiver logs in one way only",
                    names.join(" and ")
                ),
                "keep one of them",
            ));
        }
        (self.errors.len() == before).then(|| ways.into_iter().next().map(|(_, way)| way))
    }

    /// The keys of `type = "email"`; every problem is reported before giving up.
    fn email(&mut self, span: std::ops::Range<usize>, r: &ReceiverToml) -> Option<EmailReceiver> {
        use lettre::message::Mailbox;
        let errors_before = self.errors.len();
        let required = |this: &mut Self, key: &str, v: &Option<Spanned<String>>, example: &str| {
            if v.is_none() {
                this.errors.push(this.ctx.diag(
                    span.clone(),
                    format!("email receiver has no `{key}`"),
                    format!("add {key} = {example}"),
                ));
            }
        };
        required(self, "smarthost", &r.smarthost, "\"smtp.example.com:587\"");
        required(self, "from", &r.from, "\"logward <logward@example.com>\"");
        if let Some(p) = &r.path {
            self.errors.push(self.ctx.diag(
                p.span(),
                "`path` does not apply to an email receiver",
                "remove it, or use type = \"file\"",
            ));
        }
        let tls = match &r.tls {
            None => Some(SmtpTls::StartTls),
            Some(t) => match t.get_ref().as_str() {
                Some("starttls") => Some(SmtpTls::StartTls),
                Some("tls") => Some(SmtpTls::Tls),
                Some("none") => Some(SmtpTls::None),
                _ => {
                    let mode = t.get_ref();
                    self.errors.push(self.ctx.diag(
                        t.span(),
                        format!(
                            "unknown tls mode `{}`",
                            mode.as_str().map_or_else(|| mode.to_string(), str::to_string)
                        ),
                        "use \"starttls\" (port 587), \"tls\" (port 465) or \"none\" (loopback only)",
                    ));
                    None
                }
            },
        };
        let smarthost = r.smarthost.as_ref().and_then(|h| {
            let text = self.string(h)?;
            match split_host_port(&text) {
                Some((host, port)) => Some((host.to_string(), port, h.span())),
                None => {
                    self.errors.push(self.ctx.diag(
                        h.span(),
                        format!("`{text}` is not a smarthost"),
                        "write HOST:PORT, e.g. \"smtp.example.com:587\" or \"[::1]:25\"",
                    ));
                    None
                }
            }
        });
        if let (Some(SmtpTls::None), Some((host, _, at))) = (tls, &smarthost) {
            if !is_loopback(host) {
                self.errors.push(self.ctx.diag(
                    at.clone(),
                    format!("tls = \"none\" would send mail and passwords in clear text to `{host}`"),
                    "use tls = \"starttls\" or \"tls\"; \"none\" is only for localhost, 127.0.0.1 or ::1",
                ));
            }
        }
        let mailbox = |this: &mut Self, v: &Spanned<String>, key: &str| {
            let text = this.string(v)?;
            match text.parse::<Mailbox>() {
                Ok(_) => Some(text),
                Err(e) => {
                    this.errors.push(this.ctx.diag(
                        v.span(),
                        format!("`{key}`: `{text}` is not an e-mail address ({e})"),
                        "write \"name@example.com\" or \"Name <name@example.com>\"",
                    ));
                    None
                }
            }
        };
        let from = r.from.as_ref().and_then(|f| mailbox(self, f, "from"));
        let mut to = Vec::new();
        match &r.to {
            Some(list) if !list.get_ref().is_empty() => {
                for t in list.get_ref() {
                    to.extend(mailbox(self, t, "to"));
                }
            }
            Some(list) => self.errors.push(self.ctx.diag(
                list.span(),
                "`to` is empty",
                "list at least one address: to = [\"oncall@example.com\"]",
            )),
            None => self.errors.push(self.ctx.diag(
                span.clone(),
                "email receiver has no `to`",
                "add to = [\"oncall@example.com\"]",
            )),
        }
        let username = r.username.as_ref().and_then(|u| self.string(u));
        let password = self
            .ctx
            .secret("password", r.password.as_ref(), r.password_file.as_ref());
        let password = self.ok(password).flatten();
        match (&r.username, &password) {
            (Some(u), None) if r.password.is_none() && r.password_file.is_none() => {
                self.errors.push(self.ctx.diag(
                    u.span(),
                    "`username` is set without a password",
                    "add password = \"${SMTP_PASSWORD}\" or password_file = \"/etc/logward/smtp-password\"",
                ));
            }
            (None, Some(_)) => {
                let at = r
                    .password
                    .as_ref()
                    .or(r.password_file.as_ref())
                    .map_or(span.clone(), |p| p.span());
                self.errors.push(self.ctx.diag(
                    at,
                    "a password is set without `username`",
                    "add username = \"...\", or remove the password",
                ));
            }
            _ => {}
        }
        let subject_prefix = r.subject_prefix.as_ref().and_then(|p| self.string(p));
        let ca_file = self.ca_file(r.ca_file.as_ref()).flatten();
        if let (Some(SmtpTls::None), Some(at)) = (tls, &r.ca_file) {
            self.errors.push(self.ctx.diag(
                at.span(),
                "`ca_file` with tls = \"none\": there is no certificate to check",
                "remove `ca_file`, or use tls = \"starttls\" or \"tls\"",
            ));
        }
        let timeout = self.unit(
            "timeout",
            r.timeout.as_ref(),
            defaults::SMTP_TIMEOUT,
            units::duration,
        );
        let template = self.template(r, Markup::Text, None);
        if self.errors.len() != errors_before {
            return None;
        }
        let (host, port, _) = smarthost?;
        Some(EmailReceiver {
            host,
            port,
            tls: tls?,
            from: from?,
            to,
            username,
            password,
            subject_prefix,
            timeout,
            template: template?,
            ca_file,
        })
    }

    /// `template` or `template_file`: read, compiled and checked once, here. A problem is
    /// reported at the key, with the line inside the template when there is one.
    fn template(
        &mut self,
        r: &ReceiverToml,
        markup: Markup,
        explore_url: Option<&str>,
    ) -> Option<Option<Template>> {
        let (source, at, what) = match (&r.template, &r.template_file) {
            (None, None) => return Some(None),
            (Some(_), Some(f)) => {
                self.errors.push(self.ctx.diag(
                    f.span(),
                    "both `template` and `template_file` are set",
                    "keep one of them",
                ));
                return None;
            }
            (Some(t), None) => (self.string(t)?, t.span(), "`template`".to_string()),
            (None, Some(f)) => {
                let path = self.string(f)?;
                match std::fs::read_to_string(&path) {
                    Ok(text) => (text, f.span(), format!("`template_file` {path}")),
                    Err(e) => {
                        self.errors.push(self.ctx.diag(
                            f.span(),
                            format!("cannot read `template_file` {path}: {e}"),
                            "check the path (relative paths are from the working directory) and that logward may read it",
                        ));
                        return None;
                    }
                }
            }
        };
        match Template::compile(&source, markup, explore_url) {
            Ok(t) => Some(Some(t)),
            Err(problems) => {
                for p in problems {
                    let place = match p.line {
                        Some(line) => format!("{what} line {line}"),
                        None => what.clone(),
                    };
                    self.errors.push(self.ctx.diag(
                        at.clone(),
                        format!("{place}: {}", p.problem),
                        p.fix,
                    ));
                }
                None
            }
        }
    }

    /// `ca_file`: `Some(None)` when absent, `None` when it cannot be used (reported).
    fn ca_file(&mut self, v: Option<&Spanned<String>>) -> Option<Option<CaFile>> {
        let Some(v) = v else { return Some(None) };
        let path = self.string(v)?;
        match CaFile::load(Path::new(&path)) {
            Ok(ca) => Some(Some(ca)),
            Err(problem) => {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    format!("`ca_file` {path}: {problem}"),
                    "name a PEM file of the CA certificates to trust (-----BEGIN CERTIFICATE-----), readable by logward",
                ));
                None
            }
        }
    }
}

/// An `alertmanager` receiver without `resolve_after` gets twice the longest `window` of the
/// routes that name it (at least [`defaults::RESOLVE_AFTER`]), so that a group that keeps
/// firing across back-to-back windows is re-sent (its summaries) before its alert would end.
fn default_resolve_after(receivers: &mut BTreeMap<String, Receiver>, routes: &[Route]) {
    for (name, r) in receivers.iter_mut() {
        let ReceiverKind::Alertmanager(am) = &mut r.kind else {
            continue;
        };
        if !am.resolve_after.is_zero() {
            continue;
        }
        let longest = routes
            .iter()
            .filter(|route| route.receivers.iter().any(|n| **n == **name))
            .map(|route| route.window.saturating_mul(2))
            .max()
            .unwrap_or_default();
        am.resolve_after = longest.max(defaults::RESOLVE_AFTER);
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
    fn http_listens_on_loopback_unless_told_and_elsewhere_only_with_a_token() {
        let c = parse("[http]\n").unwrap();
        let h = c.http.unwrap();
        assert_eq!(h.listen.to_string(), defaults::HTTP_LISTEN);
        assert!(matches!(h.access, Access::Loopback { token: None }));
        let err = parse("[http]\nlisten = \"0.0.0.0:9898\"\n").unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].line, 2, "{err}");
        assert!(err.0[0].problem.contains("not a loopback address"), "{err}");
        let c = parse("[http]\nlisten = \"[::]:9898\"\ntoken = \"t0k3n\"\n").unwrap();
        let access = c.http.unwrap().access;
        assert!(access.reads_need_token());
        assert_eq!(access.token().map(Secret::expose), Some("t0k3n"));
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
    fn web_receivers_take_their_keys_with_secrets_from_the_environment() {
        // SAFETY: a variable only this test reads.
        unsafe {
            std::env::set_var(
                "LOGWARD_TEST_CHAT_URL",
                "https://hooks.slack.com/services/T/B/s3cr3t-path",
            )
        };
        let c = parse(concat!(
            "[receiver.s]\ntype = \"slack\"\nurl = \"${LOGWARD_TEST_CHAT_URL}\"\nmention = [\"U012AB3CD\", \"here\"]\n",
            "explore_url = \"https://grafana.example/explore?left={loki_query}\"\n",
            "[receiver.f]\ntype = \"feishu\"\nurl = \"https://open.feishu.cn/open-apis/bot/v2/hook/x\"\nsecret = \"fs-secret\"\n",
            "[receiver.d]\ntype = \"dingtalk\"\nurl = \"https://oapi.dingtalk.com/robot/send?access_token=x\"\n",
            "[receiver.w]\ntype = \"wecom\"\nurl = \"http://127.0.0.1:8080/cgi-bin/webhook/send?key=x\"\n",
            "[receiver.h]\ntype = \"webhook\"\nurl = \"https://hooks.example/x\"\nsecret = \"wh\"\nheaders = { Authorization = \"Bearer t0k\" }\n",
        ))
        .unwrap();
        let ReceiverKind::Slack {
            url,
            mention,
            explore_url,
            ..
        } = &c.receivers["s"].kind
        else {
            panic!("{:?}", c.receivers["s"])
        };
        assert_eq!(
            url.expose(),
            "https://hooks.slack.com/services/T/B/s3cr3t-path"
        );
        assert_eq!(mention, &["U012AB3CD", "here"]);
        assert!(explore_url.as_deref().unwrap().ends_with("{loki_query}"));
        let types: Vec<&str> = c.receivers.values().map(|r| r.kind.type_name()).collect();
        assert_eq!(types, ["dingtalk", "feishu", "webhook", "slack", "wecom"]);
        let debug = format!("{:?}", c.receivers);
        for secret in ["s3cr3t-path", "fs-secret", "Bearer t0k", "access_token"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn a_web_receiver_url_is_checked_without_being_shown() {
        let err = parse(concat!(
            "[receiver.a]\ntype = \"slack\"\n",
            "[receiver.b]\ntype = \"slack\"\nurl = \"http://hooks.example/s3cr3t\"\n",
            "[receiver.c]\ntype = \"wecom\"\nurl = \"not a url s3cr3t\"\n",
            "[receiver.d]\ntype = \"webhook\"\nurl = \"https://h.example/\"\nmention = [\"U1\"]\n",
            "[receiver.e]\ntype = \"slack\"\nurl = \"https://h.example/\"\nmention = [\"<!channel>\"]\nexplore_url = \"https://g.example/\"\n",
            "[receiver.f]\ntype = \"webhook\"\nurl = \"https://h.example/\"\nheaders = { X-Logward-Signature = \"x\" }\n",
        ))
        .unwrap_err();
        let found: Vec<(usize, usize, &str)> = err
            .0
            .iter()
            .map(|d| (d.line, d.col, d.problem.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (1, 1, "slack receiver has no `url`"),
                (5, 7, "`url` uses plain http to a host that is not loopback"),
                (8, 7, "`url` is not a valid URL"),
                (12, 11, "`mention` does not apply to a webhook receiver"),
                (16, 12, "`<!channel>` is not a user id to mention"),
                (17, 15, "`explore_url` has no `{loki_query}`"),
                (21, 35, "`X-Logward-Signature` cannot be a custom header"),
            ],
            "{err}"
        );
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[test]
    fn an_email_receiver_takes_its_keys() {
        let c = parse(
            "[receiver.mail]\ntype = \"email\"\nsmarthost = \"smtp.example.com:465\"\ntls = \"tls\"\nfrom = \"logward <logward@example.com>\"\nto = [\"a@example.com\", \"B <b@example.com>\"]\nusername = \"logward\"\npassword = \"hunter2\"\nsubject_prefix = \"[ci]\"\ntimeout = \"3s\"\n[receiver.local]\ntype = \"email\"\nsmarthost = \"[::1]:2525\"\ntls = \"none\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n",
        )
        .unwrap();
        let ReceiverKind::Email(mail) = &c.receivers["mail"].kind else {
            panic!("{:?}", c.receivers["mail"])
        };
        assert_eq!(
            (mail.host.as_str(), mail.port, mail.tls),
            ("smtp.example.com", 465, SmtpTls::Tls)
        );
        assert_eq!(mail.to, ["a@example.com", "B <b@example.com>"]);
        assert_eq!(mail.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert_eq!(mail.timeout, Duration::from_secs(3));
        assert!(!format!("{c:?}").contains("hunter2"));
        let ReceiverKind::Email(local) = &c.receivers["local"].kind else {
            panic!()
        };
        assert_eq!(
            (local.host.as_str(), local.port, local.tls),
            ("::1", 2525, SmtpTls::None)
        );
        assert_eq!(local.timeout, defaults::SMTP_TIMEOUT);
        assert_eq!(c.receivers["local"].kind.type_name(), "email");
    }

    #[test]
    fn ca_file_is_read_at_load_and_refused_where_it_cannot_apply() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "just text\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let text = format!(
            "[receiver.a]\ntype = \"webhook\"\nurl = \"https://h.example/\"\nca_file = \"{}\"\n[receiver.b]\ntype = \"alertmanager\"\nurls = [\"http://am:9093\"]\nca_file = \"{}\"\n[receiver.c]\ntype = \"console\"\nca_file = \"/etc/ssl/ca.pem\"\n[receiver.d]\ntype = \"email\"\nsmarthost = \"127.0.0.1:25\"\ntls = \"none\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\nca_file = \"{}\"\n",
            not_pem.display(),
            missing.display(),
            not_pem.display(),
        );
        let err = parse(&text).unwrap_err();
        let found: Vec<(usize, String)> =
            err.0.iter().map(|d| (d.line, d.problem.clone())).collect();
        assert_eq!(found.len(), 5, "{err}");
        assert_eq!(
            found[0],
            (
                4,
                format!(
                    "`ca_file` {}: it holds no PEM certificate",
                    not_pem.display()
                )
            )
        );
        assert_eq!(found[1].0, 8);
        assert!(
            found[1]
                .1
                .starts_with(&format!("`ca_file` {}: cannot read it:", missing.display())),
            "{err}"
        );
        assert_eq!(
            found[2],
            (11, "`ca_file` does not apply to a console receiver".into())
        );
        assert_eq!(found[3].0, 18);
        assert_eq!(
            found[4],
            (
                18,
                "`ca_file` with tls = \"none\": there is no certificate to check".into()
            )
        );
    }

    #[test]
    fn email_receiver_problems_name_their_place_and_fix() {
        let err = parse(
            "[receiver.mail]\ntype = \"email\"\nsmarthost = \"smtp.example.com:25\"\ntls = \"none\"\nfrom = \"not an address\"\nto = []\nusername = \"u\"\n[receiver.b]\ntype = \"email\"\nsmarthost = \"smtp.example.com\"\ntls = \"ssl\"\npassword = \"x\"\n[receiver.c]\ntype = \"console\"\nsmarthost = \"a:1\"\n",
        )
        .unwrap_err();
        let found: Vec<(usize, &str)> =
            err.0.iter().map(|d| (d.line, d.problem.as_str())).collect();
        let has = |line: usize, start: &str| {
            assert!(
                found
                    .iter()
                    .any(|(l, p)| *l == line && p.starts_with(start)),
                "no {start:?} on line {line}: {err}"
            )
        };
        has(
            3,
            "tls = \"none\" would send mail and passwords in clear text to `smtp.example.com`",
        );
        has(5, "`from`: `not an address` is not an e-mail address");
        has(6, "`to` is empty");
        has(7, "`username` is set without a password");
        has(10, "`smtp.example.com` is not a smarthost");
        has(11, "unknown tls mode `ssl`");
        has(12, "a password is set without `username`");
        has(8, "email receiver has no `from`");
        has(8, "email receiver has no `to`");
        has(15, "`smarthost` does not apply to a console receiver");
        let text = err.to_string();
        assert!(!text.contains("\"x\""), "{text}");
        let none = err.0.iter().find(|d| d.line == 3).unwrap();
        assert!(none.fix.contains("\"starttls\""), "{}", none.fix);
    }

    #[test]
    fn a_route_takes_mention_ids_checked_like_a_receivers() {
        let c = parse(
            "[receiver.s]\ntype = \"console\"\n[[route]]\nname = \"r\"\nreceivers = [\"s\"]\nmention = [\"U012AB3CD\", \"here\"]\n",
        )
        .unwrap();
        assert_eq!(c.routes[0].mention, ["U012AB3CD", "here"]);
        let err =
            parse("[[route]]\nname = \"r\"\nmention = [\"ok\", \"<!channel>\"]\n").unwrap_err();
        assert_eq!(
            (err.0[0].line, err.0[0].col, err.0[0].problem.as_str()),
            (3, 18, "`<!channel>` is not a user id to mention"),
            "{err}"
        );
    }

    #[test]
    fn templates_are_compiled_at_load_and_their_problems_located() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("body.j2");
        std::fs::write(&file, "*{{ message }}*\n").unwrap();
        let c = parse(&format!(
            "[receiver.s]\ntype = \"slack\"\nurl = \"https://h.example/\"\ntemplate_file = {:?}\n[receiver.m]\ntype = \"email\"\nsmarthost = \"[::1]:25\"\ntls = \"none\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\ntemplate = '''\n{{{{ sample.line }}}}'''\n",
            file.display().to_string()
        ))
        .unwrap();
        let ReceiverKind::Slack {
            template: Some(t), ..
        } = &c.receivers["s"].kind
        else {
            panic!("{:?}", c.receivers["s"])
        };
        assert_eq!(t.markup(), Markup::Slack);
        let ReceiverKind::Email(mail) = &c.receivers["m"].kind else {
            panic!("{:?}", c.receivers["m"])
        };
        assert_eq!(
            mail.template.as_ref().map(Template::markup),
            Some(Markup::Text)
        );

        let err = parse(concat!(
            "[receiver.a]\ntype = \"wecom\"\nurl = \"https://h.example/\"\ntemplate = '''\nfine\n{% if x %}'''\n",
            "[receiver.b]\ntype = \"dingtalk\"\nurl = \"https://h.example/\"\ntemplate = \"{{ nope }}\"\ntemplate_file = \"/x\"\n",
            "[receiver.c]\ntype = \"webhook\"\nurl = \"https://h.example/\"\ntemplate = \"{{ message }}\"\n",
            "[receiver.d]\ntype = \"feishu\"\nurl = \"https://h.example/\"\ntemplate_file = \"/nonexistent/t.j2\"\n",
            "[receiver.e]\ntype = \"slack\"\nurl = \"https://h.example/\"\ntemplate = \"\\n\\n{{ mesage }}\"\n",
        ))
        .unwrap_err();
        let found: Vec<(usize, &str)> =
            err.0.iter().map(|d| (d.line, d.problem.as_str())).collect();
        assert_eq!(found.len(), 5, "{err}");
        assert!(
            found[0].0 == 4 && found[0].1.starts_with("`template` line 2: syntax error: "),
            "{err}"
        );
        assert_eq!(
            found[1],
            (11, "both `template` and `template_file` are set")
        );
        assert_eq!(
            found[2],
            (15, "`template` does not apply to a webhook receiver")
        );
        assert!(
            found[3].0 == 19
                && found[3]
                    .1
                    .starts_with("cannot read `template_file` /nonexistent/t.j2: "),
            "{err}"
        );
        assert_eq!(
            found[4],
            (23, "`template` line 3: unknown variable `mesage`")
        );
        assert!(
            err.0[4]
                .fix
                .starts_with("use one of route, receiver, kind, "),
            "{err}"
        );
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

    fn nats(c: &Config, name: &str) -> Nats {
        match &c.receivers[name].kind {
            ReceiverKind::Nats(n) => n.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_nats_receiver_takes_its_keys_and_the_credentials_in_its_url() {
        // SAFETY: set before any other thread of this test reads the environment.
        unsafe {
            std::env::set_var(
                "LOGWARD_TEST_NATS_URL",
                "nats://logward:pa%3Ass@nats-1:4333",
            )
        };
        let c = parse(concat!(
            "[receiver.bus]\ntype = \"nats\"\nurl = \"${LOGWARD_TEST_NATS_URL}\"\nsubject = \"logward.{level}.{service}\"\nstream = \"LOGWARD\"\n",
            "[receiver.tok]\ntype = \"nats\"\nurl = \"tls://nats.example\"\ntoken = \"t0k3n\"\nsubject = \"ci.{ci_run_id}\"\nstream = \"CI-runs\"\n",
            "[receiver.in-url]\ntype = \"nats\"\nurl = \"nats://s3cr3t@127.0.0.1\"\nsubject = \"logward.escalations\"\nstream = \"L\"\ntls = false\n",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let bus = nats(&c, "bus");
        assert_eq!(
            bus.server.expose(),
            "nats://nats-1:4333",
            "no credentials left in it"
        );
        assert_eq!(
            bus.auth,
            Some(NatsAuth::UserPassword {
                username: "logward".into(),
                password: Secret("pa:ss".into()),
            })
        );
        assert_eq!(bus.subject.filter(), "logward.*.*");
        assert_eq!((bus.stream.as_str(), bus.tls), ("LOGWARD", false));
        let tok = nats(&c, "tok");
        assert_eq!(tok.server.expose(), "tls://nats.example:4222");
        assert_eq!(tok.auth, Some(NatsAuth::Token(Secret("t0k3n".into()))));
        assert!(tok.tls, "a tls:// url asks for TLS");
        let in_url = nats(&c, "in-url");
        assert_eq!(in_url.auth, Some(NatsAuth::Token(Secret("s3cr3t".into()))));
        assert_eq!(c.receivers["bus"].kind.type_name(), "nats");
        let debug = format!("{:?}", c.receivers);
        for s in ["pa:ss", "t0k3n", "s3cr3t", "nats-1"] {
            assert!(!debug.contains(s), "{s} in {debug}");
        }
    }

    #[test]
    fn nats_receiver_problems_name_their_place_and_fix_without_showing_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let err = parse(&format!(
            concat!(
                "[receiver.a]\ntype = \"nats\"\n",
                "[receiver.b]\ntype = \"nats\"\nurl = \"http://u:s3cr3t@h:4222\"\nsubject = \"logward.{{servce}}\"\nstream = \"LOG.WARD\"\n",
                "[receiver.c]\ntype = \"nats\"\nurl = \"nats://s3cr3t@h\"\ntoken = \"t0k3n-s3cr3t\"\nsubject = \"logs-{{service}}\"\nstream = \"L\"\n",
                "[receiver.d]\ntype = \"nats\"\nurl = \"nats://h\"\nusername = \"u\"\nsubject = \"a.*\"\nstream = \"L\"\ntls = \"yes\"\n",
                "[receiver.e]\ntype = \"nats\"\nurl = \"nats://h\"\nsubject = \"a\"\nstream = \"L\"\nca_file = {:?}\nmention = [\"U1\"]\n",
            ),
            not_pem.display().to_string()
        ))
        .unwrap_err();
        let found: Vec<(usize, &str)> =
            err.0.iter().map(|d| (d.line, d.problem.as_str())).collect();
        let has = |line: usize, problem: &str| {
            assert!(
                found
                    .iter()
                    .any(|&(l, p)| l == line && p.starts_with(problem)),
                "no {line}: {problem} in\n{err}"
            )
        };
        has(1, "nats receiver has no `url`");
        has(1, "nats receiver has no `subject`");
        has(1, "nats receiver has no `stream`");
        has(5, "`url` is not a nats:// or tls:// URL");
        has(6, "`subject` has an unknown placeholder `{servce}`");
        has(7, "`LOG.WARD` is not a stream name");
        has(8, "credentials in `url` and `token` are set");
        has(
            12,
            "`subject`: `logs-{service}` mixes a placeholder with other text",
        );
        has(17, "`username` without a password");
        has(18, "`subject`: `*` is not a subject token");
        has(20, "`tls` of a nats receiver is true or false");
        has(
            26,
            &format!("`ca_file` {} holds no PEM certificate", not_pem.display()),
        );
        has(27, "`mention` does not apply to a nats receiver");
        let unknown = err.0.iter().find(|d| d.line == 6).unwrap();
        assert!(
            unknown.fix.starts_with("did you mean `{service}`?"),
            "{}",
            unknown.fix
        );
        let text = err.to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn nats_ca_file_needs_tls() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let keys = format!(
            "type = \"nats\"\nsubject = \"a\"\nstream = \"L\"\nca_file = {:?}\n",
            ca.display().to_string()
        );
        let err = parse(&format!("[receiver.n]\n{keys}url = \"nats://h\"\n")).unwrap_err();
        assert_eq!(err.0[0].problem, "`ca_file` is set but TLS is not", "{err}");
        for tls in ["url = \"tls://h\"\n", "url = \"nats://h\"\ntls = true\n"] {
            let c = parse(&format!("[receiver.n]\n{keys}{tls}")).unwrap_or_else(|e| panic!("{e}"));
            let n = nats(&c, "n");
            assert!(n.tls && n.ca_file == Some(ca.clone()));
        }
    }

    #[test]
    fn a_nats_creds_file_is_read_and_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        // The layout `nsc` writes; a user seed made for this test (32 bytes 1..=32).
        let good = dir.path().join("user.creds");
        std::fs::write(
            &good,
            "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJqd3QiLCJhbGciOiJlZDI1NTE5In0.e30.c2ln\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAACAQDAQCQMBYIBEFAWDANBYHRAEISCMKBKFQXDAMRUGY4DUPB6IC5CQ\n------END USER NKEY SEED------\n",
        )
        .unwrap();
        let bad = dir.path().join("bad.creds");
        std::fs::write(&bad, "SUAACAQ-not-a-creds-file\n").unwrap();
        let table = |path: &Path| {
            format!(
                "[receiver.n]\ntype = \"nats\"\nurl = \"nats://h\"\nsubject = \"a\"\nstream = \"L\"\ncreds_file = {:?}\n",
                path.display().to_string()
            )
        };
        let c = parse(&table(&good)).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(nats(&c, "n").auth, Some(NatsAuth::Creds(_))));
        let err = parse(&table(&bad)).unwrap_err();
        assert_eq!(
            (err.0[0].line, err.0[0].problem.as_str()),
            (6, "`creds_file` is not a NATS credentials file")
        );
        assert!(!err.to_string().contains("SUAACAQ"), "{err}");
    }
}
