//! `[loki]`: where and how events are pushed to Grafana Loki, and which fields become stream
//! labels or structured metadata; validated once, every problem reported with its place.
//!
//! Must not: build requests or label sets (that is `ship::loki`), or show the URL, a
//! password or a token in a message.

use std::collections::BTreeSet;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::{CaFile, HttpAuth, HttpAuthToml, Secret, Source, Validator, units};
use crate::ship::loki::labels::{MAX_LABELS, Promoted, sanitized};

/// The push endpoint, under the configured base URL.
pub const PUSH_PATH: &str = "/loki/api/v1/push";

pub mod defaults {
    use std::time::Duration;
    pub const LABELS: [&str; 2] = ["service", "level"];
    pub const STRUCTURED_METADATA: [&str; 2] = ["ci_run_id", "fingerprint"];
    pub const BATCH_WAIT: Duration = Duration::from_secs(1);
    pub const BATCH_SIZE: u64 = 1 << 20;
    /// Above Loki's default per-tenant burst (6 MB) a push could never be taken.
    pub const MAX_BATCH_SIZE: u64 = 4 << 20;
    pub const MAX_IN_FLIGHT: u64 = 4;
    pub const MAX_STREAMS_PER_PUSH: u64 = 500;
    /// Loki's default `max_line_size`.
    pub const MAX_LINE_SIZE: u64 = 256 << 10;
    /// An hour under Loki's default `reject_old_samples_max_age` (168h), so that an entry near
    /// the limit is not refused while it waits to be sent.
    pub const MAX_SAMPLE_AGE: Duration = Duration::from_secs(167 * 3600);
    /// Half Loki's default `creation_grace_period` (10m), for clocks that disagree.
    pub const MAX_FUTURE: Duration = Duration::from_secs(5 * 60);
    pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
    pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
    pub const TIMEOUT: Duration = Duration::from_secs(10);
}

/// Event keys whose values change with every run, event or line: as labels, each value would
/// be a new stream. They can be structured metadata.
pub const HIGH_CARDINALITY: [&str; 8] = [
    "ci_run_id",
    "fingerprint",
    "message",
    "line",
    "template",
    "offset",
    "ts",
    "path",
];

/// Labels every stream has.
const FIXED_LABELS: [&str; 2] = ["host", "source"];

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LokiToml {
    #[schemars(with = "Option<String>")]
    url: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    tenant: Option<Spanned<String>>,
    #[schemars(with = "Option<String>", extend("enum" = ["protobuf", "json"]))]
    encoding: Option<Spanned<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    labels: Option<Spanned<Vec<Spanned<String>>>>,
    #[schemars(with = "Option<Vec<String>>")]
    structured_metadata: Option<Spanned<Vec<Spanned<String>>>>,
    #[schemars(with = "Option<String>")]
    batch_wait: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    batch_size: Option<Spanned<String>>,
    #[schemars(with = "Option<u64>")]
    max_in_flight: Option<Spanned<u64>>,
    #[schemars(with = "Option<u64>")]
    max_streams_per_push: Option<Spanned<u64>>,
    #[schemars(with = "Option<String>")]
    max_line_size: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    max_sample_age: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    max_future: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    min_backoff: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    max_backoff: Option<Spanned<String>>,
    #[schemars(with = "Option<u64>")]
    max_retries: Option<Spanned<u64>>,
    #[schemars(with = "Option<String>")]
    timeout: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    username: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    password: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    password_file: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    bearer_token: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    bearer_token_file: Option<Spanned<String>>,
    #[schemars(with = "Option<std::collections::BTreeMap<String, String>>")]
    headers: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    #[schemars(with = "Option<String>")]
    ca_file: Option<Spanned<String>>,
}

/// `encoding`: the body of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LokiEncoding {
    /// `PushRequest` protobuf, snappy block-compressed (what Loki's own clients send).
    Protobuf,
    Json,
}

/// `[loki]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Loki {
    /// `{url}/loki/api/v1/push`; the URL may carry a token: never shown.
    pub push_url: Secret,
    /// `X-Scope-OrgID`.
    pub tenant: Option<String>,
    pub auth: Option<HttpAuth>,
    pub headers: Vec<(String, Secret)>,
    /// `ca_file`: certificates trusted besides the system's.
    pub ca_file: Option<CaFile>,
    pub encoding: LokiEncoding,
    /// `labels`: event keys promoted to stream labels, besides `host`, `source` and the
    /// source's static labels.
    pub labels: Vec<Promoted>,
    pub structured_metadata: Vec<Promoted>,
    pub batch_wait: Duration,
    pub batch_size: usize,
    pub max_in_flight: usize,
    pub max_streams_per_push: usize,
    pub max_line_size: usize,
    pub max_sample_age: Duration,
    pub max_future: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// `None`: retried until Loki takes it.
    pub max_retries: Option<u32>,
    pub timeout: Duration,
}

/// Whether an event key looks like it takes many values (an id, an address, a time): `check`
/// warns when one is promoted to a label.
fn looks_high_cardinality(key: &str) -> bool {
    const WORDS: [&str; 16] = [
        "id", "ids", "uid", "uuid", "guid", "pod", "trace", "span", "request", "session", "user",
        "ip", "addr", "url", "uri", "duration",
    ];
    let key = key.to_ascii_lowercase();
    key.ends_with("id")
        || key
            .split(['_', '.', '-'])
            .any(|part| WORDS.contains(&part) || part.contains("time"))
}

impl Validator<'_> {
    /// `[loki]`; `sources` for the label count of each source's streams.
    pub(super) fn loki(&mut self, raw: Spanned<LokiToml>, sources: &[Source]) -> Option<Loki> {
        let span = raw.span();
        let r = raw.into_inner();
        let before = self.errors.len();
        let push_url = self.loki_url(r.url.as_ref(), span.clone());
        let tenant = r.tenant.as_ref().and_then(|t| {
            let text = self.string(t)?;
            if text.is_empty() || reqwest::header::HeaderValue::from_str(&text).is_err() {
                self.errors.push(self.ctx.diag(
                    t.span(),
                    "`tenant` is not a valid tenant id",
                    "write the tenant (X-Scope-OrgID) in visible ASCII, e.g. \"builds\", or remove it for a single-tenant Loki",
                ));
                return None;
            }
            Some(text)
        });
        let encoding = match r.encoding.as_ref().map(|e| (e, e.get_ref().as_str())) {
            None | Some((_, "protobuf")) => LokiEncoding::Protobuf,
            Some((_, "json")) => LokiEncoding::Json,
            Some((e, other)) => {
                self.errors.push(self.ctx.diag(
                    e.span(),
                    format!("unknown encoding `{other}`"),
                    "use \"protobuf\" (snappy-compressed, the default) or \"json\"",
                ));
                LokiEncoding::Protobuf
            }
        };
        let auth = self.http_auth(
            span.clone(),
            HttpAuthToml {
                username: r.username.as_ref(),
                password: r.password.as_ref(),
                password_file: r.password_file.as_ref(),
                bearer_token: r.bearer_token.as_ref(),
                bearer_token_file: r.bearer_token_file.as_ref(),
            },
        );
        let headers = self.headers(
            r.headers.as_ref(),
            &["x-scope-orgid", "authorization", "content-encoding"],
        );
        let ca_file = self.ca_file(r.ca_file.as_ref());
        let labels = self.promoted_labels(r.labels.as_ref());
        let structured_metadata = self.structured_metadata(r.structured_metadata.as_ref(), &labels);
        self.label_count(
            &labels,
            sources,
            r.labels.as_ref().map_or(span.clone(), Spanned::span),
        );
        let batch_wait =
            self.loki_duration("batch_wait", r.batch_wait.as_ref(), defaults::BATCH_WAIT);
        let batch_size = self.unit(
            "batch_size",
            r.batch_size.as_ref(),
            defaults::BATCH_SIZE,
            units::byte_size,
        );
        if !(1024..=defaults::MAX_BATCH_SIZE).contains(&batch_size) {
            self.errors.push(self.ctx.diag(
                r.batch_size.as_ref().map_or(span.clone(), Spanned::span),
                "batch_size must be between 1 KiB and 4 MiB",
                "write e.g. \"1MiB\"; Loki refuses a push over its per-tenant burst (6 MB by default)",
            ));
        }
        let max_line_size = self.unit(
            "max_line_size",
            r.max_line_size.as_ref(),
            defaults::MAX_LINE_SIZE,
            units::byte_size,
        );
        if !(64..=batch_size.max(64)).contains(&max_line_size) {
            self.errors.push(self.ctx.diag(
                r.max_line_size.as_ref().map_or(span.clone(), Spanned::span),
                "max_line_size must be between 64 B and batch_size",
                "write Loki's max_line_size, e.g. \"256KiB\" (its default)",
            ));
        }
        let max_in_flight = self.count(
            "max_in_flight",
            r.max_in_flight.as_ref(),
            64,
            defaults::MAX_IN_FLIGHT,
        );
        let max_streams_per_push = self.count(
            "max_streams_per_push",
            r.max_streams_per_push.as_ref(),
            100_000,
            defaults::MAX_STREAMS_PER_PUSH,
        );
        let max_sample_age = self.loki_duration(
            "max_sample_age",
            r.max_sample_age.as_ref(),
            defaults::MAX_SAMPLE_AGE,
        );
        let max_future =
            self.loki_duration("max_future", r.max_future.as_ref(), defaults::MAX_FUTURE);
        let min_backoff =
            self.loki_duration("min_backoff", r.min_backoff.as_ref(), defaults::MIN_BACKOFF);
        let max_backoff =
            self.loki_duration("max_backoff", r.max_backoff.as_ref(), defaults::MAX_BACKOFF);
        if max_backoff < min_backoff {
            self.errors.push(self.ctx.diag(
                r.max_backoff.as_ref().or(r.min_backoff.as_ref()).map_or(span.clone(), Spanned::span),
                "max_backoff is shorter than min_backoff",
                "make max_backoff at least min_backoff, e.g. min_backoff = \"500ms\", max_backoff = \"5m\"",
            ));
        }
        let max_retries = r
            .max_retries
            .as_ref()
            .map(|m| self.count("max_retries", Some(m), u64::from(u32::MAX), 10) as u32);
        let timeout = self.loki_duration("timeout", r.timeout.as_ref(), defaults::TIMEOUT);
        if self.errors.len() != before {
            return None;
        }
        Some(Loki {
            push_url: push_url?,
            tenant,
            auth,
            headers: headers?,
            ca_file: ca_file?,
            encoding,
            labels,
            structured_metadata,
            batch_wait,
            batch_size: batch_size as usize,
            max_in_flight: max_in_flight as usize,
            max_streams_per_push: max_streams_per_push as usize,
            max_line_size: max_line_size as usize,
            max_sample_age,
            max_future,
            min_backoff,
            max_backoff,
            max_retries,
            timeout,
        })
    }

    /// A duration that must not be zero.
    fn loki_duration(
        &mut self,
        key: &str,
        v: Option<&Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let d = self.unit(key, v, default, units::duration);
        match v {
            Some(v) if d.is_zero() => {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    format!("`{key}` is zero"),
                    format!(
                        "give a duration, e.g. \"{}\", or remove it for the default",
                        humantime::format_duration(default)
                    ),
                ));
                default
            }
            _ => d,
        }
    }

    /// `url`: required, http(s), no credentials in it; the push path is added.
    fn loki_url(
        &mut self,
        v: Option<&Spanned<String>>,
        table: std::ops::Range<usize>,
    ) -> Option<Secret> {
        let Some(v) = v else {
            self.errors.push(self.ctx.diag(
                table,
                "[loki] has no `url`",
                "add url = \"http://127.0.0.1:3100\" (pushes go to {url}/loki/api/v1/push)",
            ));
            return None;
        };
        let text = self.string(v)?;
        let problem = match url::Url::parse(&text) {
            Err(_) => Some("is not a valid URL"),
            Ok(u) if !matches!(u.scheme(), "http" | "https") || u.host().is_none() => {
                Some("is not an http(s) URL")
            }
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                Some("carries credentials")
            }
            Ok(u) if u.path().trim_end_matches('/').ends_with(PUSH_PATH) => {
                Some("already ends with /loki/api/v1/push")
            }
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            self.errors.push(self.ctx.diag(
                v.span(),
                format!("`url` {problem}"),
                "write Loki's base URL, e.g. \"https://loki.example.com\" (logward adds /loki/api/v1/push); credentials go in username/password_file or bearer_token_file",
            ));
            return None;
        }
        let (base, query) = match text.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (text.as_str(), None),
        };
        let mut push = format!("{}{PUSH_PATH}", base.trim_end_matches('/'));
        if let Some(q) = query {
            push.push('?');
            push.push_str(q);
        }
        Some(Secret::new(push))
    }

    /// `labels`: event keys promoted to stream labels (default `["service", "level"]`).
    fn promoted_labels(&mut self, v: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<Promoted> {
        let Some(v) = v else {
            return defaults::LABELS
                .iter()
                .map(|k| Promoted {
                    field: k.to_string(),
                    name: k.to_string(),
                })
                .collect();
        };
        let mut out: Vec<Promoted> = Vec::new();
        for key in v.get_ref() {
            let field = key.get_ref();
            let name = sanitized(field).into_owned();
            let at = key.span();
            if FIXED_LABELS.contains(&name.as_str()) {
                self.errors.push(self.ctx.diag(
                    at,
                    format!("`{field}` is always a label"),
                    "remove it: every stream has `host` and `source`",
                ));
            } else if HIGH_CARDINALITY.contains(&field.as_str()) {
                self.errors.push(self.ctx.diag(
                    at,
                    format!("`{field}` cannot be a label: its values change with every run or event, and each value would be a stream of its own"),
                    format!("send it as structured metadata instead: structured_metadata = [\"{field}\"] (Loki 3+)"),
                ));
            } else if let Some(first) = out.iter().find(|p| p.name == name) {
                self.errors.push(self.ctx.diag(
                    at,
                    format!("`{field}` is the label `{name}`, as `{}` is", first.field),
                    "list each label once",
                ));
            } else {
                if looks_high_cardinality(field) {
                    self.warn(
                        at.clone(),
                        format!("`{field}` looks like it takes many values (an id, an address, a time): each value is a stream of its own"),
                        format!("keep labels few and bounded (service, level, job); send `{field}` as structured metadata instead"),
                    );
                }
                if name != *field {
                    self.warn(
                        at,
                        format!("`{field}` is sent as the label `{name}`"),
                        "Loki label names take letters, digits and `_` only",
                    );
                }
                out.push(Promoted {
                    field: field.clone(),
                    name,
                });
            }
        }
        out
    }

    /// `structured_metadata` (default `["ci_run_id", "fingerprint"]`): not labels as well.
    fn structured_metadata(
        &mut self,
        v: Option<&Spanned<Vec<Spanned<String>>>>,
        labels: &[Promoted],
    ) -> Vec<Promoted> {
        let keys: Vec<(String, std::ops::Range<usize>)> = match v {
            None => defaults::STRUCTURED_METADATA
                .iter()
                .map(|k| (k.to_string(), 0..0))
                .collect(),
            Some(v) => v
                .get_ref()
                .iter()
                .map(|k| (k.get_ref().clone(), k.span()))
                .collect(),
        };
        if keys.len() > 16 {
            if let Some(v) = v {
                self.errors.push(self.ctx.diag(
                    v.span(),
                    "more than 16 structured_metadata keys",
                    "keep the ones you search by (ci_run_id, fingerprint, trace_id)",
                ));
            }
        }
        let mut out: Vec<Promoted> = Vec::new();
        for (field, at) in keys {
            let name = sanitized(&field).into_owned();
            if labels.iter().any(|l| l.field == field || l.name == name) {
                self.errors.push(self.ctx.diag(
                    at,
                    format!("`{field}` is a label already"),
                    "remove it from `labels` or from `structured_metadata`",
                ));
            } else if out.iter().any(|p| p.name == name) {
                self.errors.push(self.ctx.diag(
                    at,
                    format!("`{field}` is listed twice (as `{name}`)"),
                    "list each key once",
                ));
            } else {
                out.push(Promoted { field, name });
            }
        }
        out
    }

    /// Every source's streams keep within Loki's label limit.
    fn label_count(
        &mut self,
        promoted: &[Promoted],
        sources: &[Source],
        at: std::ops::Range<usize>,
    ) {
        for s in sources {
            let names: BTreeSet<String> = FIXED_LABELS
                .iter()
                .map(|n| n.to_string())
                .chain(promoted.iter().map(|p| p.name.clone()))
                .chain(s.labels.keys().map(|k| sanitized(k).into_owned()))
                .collect();
            if names.len() > MAX_LABELS {
                self.errors.push(self.ctx.diag(
                    at.clone(),
                    format!(
                        "the streams of source `{}` would have {} labels; Loki takes at most {MAX_LABELS}",
                        s.name,
                        names.len()
                    ),
                    "promote fewer fields, or drop static labels of the source",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Diagnostics};
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, Diagnostics> {
        Config::parse(Path::new("t.toml"), text)
    }

    #[test]
    fn loki_keys_are_read_with_their_defaults() {
        let c = parse("[loki]\nurl = \"http://127.0.0.1:3100/\"\n").unwrap();
        let l = c.loki.unwrap();
        assert_eq!(
            l.push_url.expose(),
            "http://127.0.0.1:3100/loki/api/v1/push"
        );
        assert_eq!(l.encoding, LokiEncoding::Protobuf);
        let names = |p: &[Promoted]| p.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&l.labels), ["service", "level"]);
        assert_eq!(names(&l.structured_metadata), ["ci_run_id", "fingerprint"]);
        assert_eq!((l.batch_size, l.max_line_size), (1 << 20, 256 << 10));
        assert_eq!((l.max_in_flight, l.max_retries), (4, None));
        assert_eq!(c.ship, crate::ship::Ship::All);
        let c = parse(concat!(
            "ship = \"matched\"\n[loki]\nurl = \"https://loki.example.com/base?token=s3cret\"\n",
            "tenant = \"builds\"\nencoding = \"json\"\nlabels = [\"service\", \"k8s.pod-name\", \"env\"]\n",
            "structured_metadata = [\"ci_run_id\", \"trace_id\"]\nbatch_wait = \"200ms\"\nbatch_size = \"512KiB\"\n",
            "max_in_flight = 2\nmax_retries = 10\nmin_backoff = \"10ms\"\nmax_backoff = \"1s\"\n",
            "bearer_token = \"t0k\"\nheaders = { X-Team = \"ci\" }\n",
        ))
        .unwrap();
        let l = c.loki.unwrap();
        assert_eq!(
            l.push_url.expose(),
            "https://loki.example.com/base/loki/api/v1/push?token=s3cret"
        );
        assert_eq!(c.ship, crate::ship::Ship::Matched);
        assert_eq!(
            (l.encoding, l.tenant.as_deref()),
            (LokiEncoding::Json, Some("builds"))
        );
        assert_eq!(names(&l.labels), ["service", "k8s_pod_name", "env"]);
        assert_eq!(l.max_retries, Some(10));
        assert_eq!(l.auth, Some(HttpAuth::Bearer(Secret::new("t0k".into()))));
        let warnings: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].starts_with("t.toml:6:22: `k8s.pod-name` looks like it takes many values"),
            "{warnings:#?}"
        );
        assert!(warnings[1].contains("`k8s.pod-name` is sent as the label `k8s_pod_name`"));
        assert!(!format!("{l:?}").contains("s3cret"));
    }

    #[test]
    fn every_loki_problem_is_reported_where_it_is_without_secrets() {
        let err = parse(concat!(
            "ship = \"some\"\n",
            "[loki]\n",
            "url = \"http://user:s3cret@loki:3100\"\n",
            "labels = [\"ci_run_id\", \"host\"]\n",
            "structured_metadata = [\"fingerprint\", \"fingerprint\"]\n",
            "encoding = \"xml\"\n",
            "batch_size = \"64MiB\"\n",
            "min_backoff = \"2s\"\nmax_backoff = \"1s\"\n",
            "username = \"u\"\n",
            "headers = { X-Scope-OrgID = \"x\" }\n",
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        let has = |line: usize, what: &str| {
            assert!(
                err.0
                    .iter()
                    .any(|d| d.line == line && d.problem.contains(what)),
                "no `{what}` at line {line} in\n{text}"
            )
        };
        has(1, "unknown ship `some`");
        has(3, "`url` carries credentials");
        has(4, "`ci_run_id` cannot be a label");
        has(4, "`host` is always a label");
        has(5, "`fingerprint` is listed twice");
        has(6, "unknown encoding `xml`");
        has(7, "batch_size must be between 1 KiB and 4 MiB");
        has(9, "max_backoff is shorter than min_backoff");
        has(2, "`username` without `password`");
        has(11, "`X-Scope-OrgID` cannot be a custom header");
        let fix = &err
            .0
            .iter()
            .find(|d| d.problem.contains("ci_run_id"))
            .unwrap()
            .fix;
        assert!(
            fix.contains("structured_metadata = [\"ci_run_id\"]"),
            "{fix}"
        );
    }

    #[test]
    fn a_source_with_too_many_labels_is_an_error() {
        let statics: String = (0..13).map(|i| format!("l{i} = \"v\", ")).collect();
        let text = format!(
            "[[source]]\nname = \"many\"\ntype = \"stdin\"\nlabels = {{ {} }}\n[loki]\nurl = \"http://127.0.0.1:3100\"\n",
            statics.trim_end_matches(", ")
        );
        let err = parse(&text).unwrap_err();
        assert!(
            err.0[0]
                .problem
                .contains("source `many` would have 17 labels"),
            "{err}"
        );
    }

    #[test]
    fn ids_addresses_and_times_look_high_cardinality() {
        for key in [
            "request_id",
            "traceId",
            "pod",
            "client_ip",
            "start_time",
            "uuid",
        ] {
            assert!(looks_high_cardinality(key), "{key}");
        }
        for key in ["service", "level", "job", "container", "namespace", "env"] {
            assert!(!looks_high_cardinality(key), "{key}");
        }
    }
}
