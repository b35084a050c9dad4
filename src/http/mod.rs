//! The agent's HTTP endpoint: the status page (`/`, [`page`]), its JSON API (`/api/v1/...`,
//! [`api`]), `/health` (alive), `/ready` (sources open, state loaded) and `/metrics`
//! (Prometheus text). Who may read and change: [`auth`].
//!
//! It reads what the pipeline publishes (the `status::Board` snapshots, metrics) and the
//! silence store (`silences.json`, replaced atomically, written under its `flock`). It must
//! never block the pipeline or take its locks: blocking file work runs on tokio's blocking
//! pool. See `docs/api.md`.

mod api;
mod auth;
mod page;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::config::{Config, Http};
use crate::event::{Level, Timestamp};
use crate::metrics::Metrics;
use crate::notify::recent::EscalationRow;
use crate::notify::render::explore_link;
use crate::silence::{NewSilence, Silence, SilenceError, SilenceMatcher, Silences};
use crate::status::{Board, FingerprintRow};

/// What the endpoint reports on.
#[derive(Debug)]
pub struct Health {
    pub ready: AtomicBool,
    pub metrics: Arc<Metrics>,
}

/// Everything a request may look at.
pub struct Endpoint {
    health: Arc<Health>,
    board: Arc<Board>,
    auth: auth::Auth,
    state_dir: PathBuf,
    /// `explore_url` per receiver that has one.
    explore: BTreeMap<String, String>,
    host: String,
}

impl Endpoint {
    pub fn new(health: Arc<Health>, board: Arc<Board>, config: &Config, http: &Http) -> Endpoint {
        Endpoint {
            health,
            board,
            auth: auth::Auth::new(http.access.clone()),
            state_dir: config.state_dir.clone(),
            explore: config
                .receivers
                .iter()
                .filter_map(|(name, r)| Some((name.clone(), r.kind.explore_url()?.to_string())))
                .collect(),
            host: crate::escalation::hostname(),
        }
    }

    /// The Grafana (or any) link of the escalation's receiver's `explore_url`.
    fn explore_link(&self, row: &EscalationRow) -> Option<String> {
        let template = self.explore.get(&*row.receiver)?;
        explore_link(Some(template), &row.loki_query)
    }

    /// The silences to show at `now` (as `logward silence list`), or why they cannot be read.
    async fn silences(&self, now: Timestamp) -> Result<Vec<Silence>, String> {
        let dir = self.state_dir.clone();
        let read = tokio::task::spawn_blocking(move || {
            Silences::load(&dir).map(|s| s.list(now).into_iter().cloned().collect())
        })
        .await;
        match read {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot read the silences: {e}")),
        }
    }

    /// Adds a silence to the store (under its lock, off the async threads).
    async fn add_silence(
        &self,
        input: SilenceInput,
        created_by: &str,
    ) -> Result<Silence, (StatusCode, String)> {
        let now = Timestamp::now();
        let new = input
            .into_new(now, created_by)
            .map_err(|m| (StatusCode::BAD_REQUEST, m))?;
        let dir = self.state_dir.clone();
        self.store(move || Silences::load(&dir)?.add(new, now))
            .await
    }

    /// Expires the silence `id` (or the only one whose id starts with it).
    async fn expire_silence(&self, id: String) -> Result<Silence, (StatusCode, String)> {
        let dir = self.state_dir.clone();
        self.store(move || Silences::load(&dir)?.expire(&id, Timestamp::now()))
            .await
    }

    async fn store(
        &self,
        change: impl FnOnce() -> Result<Silence, SilenceError> + Send + 'static,
    ) -> Result<Silence, (StatusCode, String)> {
        match tokio::task::spawn_blocking(change).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err((silence_status(&e), e.to_string())),
            Err(e) => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the silence store could not be changed: {e}"),
            )),
        }
    }
}

/// The HTTP status that tells what kind of mistake a silence change was.
fn silence_status(e: &SilenceError) -> StatusCode {
    match e {
        SilenceError::UnknownId { .. } => StatusCode::NOT_FOUND,
        SilenceError::AmbiguousId { .. } | SilenceError::AlreadyExpired { .. } => {
            StatusCode::CONFLICT
        }
        SilenceError::Matcher(_)
        | SilenceError::NoMatchers
        | SilenceError::MatchesEverything { .. }
        | SilenceError::EndsBeforeStart { .. }
        | SilenceError::EndsInThePast { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A new silence as the API's JSON or the page's form gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceInput {
    /// Each `"service=api"` (as `--match`) or `{"key": "service", "op": "=", "value": "api"}`.
    matchers: Vec<Value>,
    /// How long, as `--for`: `"2h"`. Exactly one of this and `ends_at`.
    #[serde(rename = "for")]
    duration: Option<String>,
    /// RFC 3339; default now.
    starts_at: Option<String>,
    /// RFC 3339.
    ends_at: Option<String>,
    #[serde(default)]
    comment: String,
    created_by: Option<String>,
}

impl SilenceInput {
    fn into_new(self, now: Timestamp, created_by: &str) -> Result<NewSilence, String> {
        let matchers = self
            .matchers
            .into_iter()
            .map(|m| match m {
                Value::String(text) => {
                    SilenceMatcher::parse(&text).map_err(|e| format!("invalid matcher {e}"))
                }
                other => serde_json::from_value::<SilenceMatcher>(other).map_err(|e| {
                    format!("invalid matcher: {e}; write \"service=api\" or {{\"key\": \"service\", \"op\": \"=\", \"value\": \"api\"}}")
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time = |key: &str, text: &str| {
            Timestamp::parse_rfc3339(text).ok_or_else(|| {
                format!("invalid {key} `{text}`: write an RFC 3339 time, e.g. 2025-06-01T18:00:00Z")
            })
        };
        let starts_at = match &self.starts_at {
            Some(t) => time("starts_at", t)?,
            None => now,
        };
        let ends_at = match (&self.duration, &self.ends_at) {
            (Some(d), None) => {
                let d =
                    crate::config::units::duration(d).map_err(|e| format!("invalid `for`: {e}"))?;
                crate::silence::plus(starts_at, d)
            }
            (None, Some(t)) => time("ends_at", t)?,
            _ => {
                return Err(
                    "give exactly one of `for` (e.g. \"2h\") and `ends_at` (RFC 3339)".into(),
                );
            }
        };
        Ok(NewSilence {
            matchers,
            starts_at,
            ends_at,
            comment: self.comment,
            created_by: self
                .created_by
                .filter(|c| !c.trim().is_empty())
                .unwrap_or_else(|| created_by.to_string()),
        })
    }
}

/// Which listed groups to show: the page's and the API's filters.
#[derive(Debug, Default)]
struct Filter {
    level: Option<Level>,
    /// A part of the service name (any case).
    service: Option<String>,
    /// A part of the run id (any case).
    ci_run_id: Option<String>,
    route: Option<String>,
    limit: usize,
}

impl Filter {
    fn apply<'r>(&self, rows: &'r [FingerprintRow]) -> Vec<&'r FingerprintRow> {
        let part = |want: &Option<String>, have: Option<&str>| {
            want.as_ref()
                .is_none_or(|w| have.is_some_and(|h| h.to_lowercase().contains(&w.to_lowercase())))
        };
        rows.iter()
            .filter(|r| self.level.is_none_or(|l| r.level == Some(l)))
            .filter(|r| part(&self.service, r.service.as_deref()))
            .filter(|r| part(&self.ci_run_id, r.ci_run_id.as_deref()))
            .filter(|r| self.route.as_ref().is_none_or(|x| **x == *r.route))
            .take(self.limit)
            .collect()
    }
}

/// Binds the listener now, so that a taken port fails start-up, not later.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    endpoint: Endpoint,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(page::routes())
        .merge(api::routes())
        .layer(middleware::map_response(harden))
        .with_state(Arc::new(endpoint));
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}

/// Headers on every answer: the page's content security policy, no sniffing, no framing,
/// no referrer, and no caching of what may hold log lines.
async fn harden(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, page::csp().clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn ready(State(e): State<Arc<Endpoint>>) -> impl IntoResponse {
    if e.health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: sources are opening or state is loading\n",
        )
    }
}

async fn metrics(State(e): State<Arc<Endpoint>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        e.health.metrics.encode(),
    )
}
