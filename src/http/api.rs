//! `/api/v1`: what the status page shows, as JSON, and silences added and expired over HTTP.
//!
//! Owns: the routes, their query parameters and answer shapes (documented in `docs/api.md`),
//! and the mapping of refusals and silence errors to statuses with a JSON `error`. Must not:
//! accept anything but the bearer token for a change (a cookie is the page's), or read state
//! the pipeline did not publish.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Refusal;
use super::{Endpoint, Filter, SilenceInput};
use crate::event::Timestamp;
use crate::notify::recent::EscalationRow;
use crate::status::MAX_LISTED;

pub fn routes() -> Router<Arc<Endpoint>> {
    Router::new()
        .route("/api/v1/fingerprints", get(fingerprints))
        .route("/api/v1/escalations", get(escalations))
        .route("/api/v1/sources", get(sources))
        .route("/api/v1/silences", get(silences).post(add_silence))
        .route("/api/v1/silences/{id}", delete(expire_silence))
}

/// A refusal or a failure: the status and `{"error": "..."}`; a 401 says how to authenticate.
fn error(status: StatusCode, message: &str) -> Response {
    let mut res = (status, Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"logward\""),
        );
    }
    res
}

fn refused(r: &Refusal) -> Response {
    error(r.status, r.message)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FingerprintQuery {
    level: Option<String>,
    service: Option<String>,
    ci_run_id: Option<String>,
    route: Option<String>,
    limit: Option<usize>,
}

async fn fingerprints(
    State(e): State<Arc<Endpoint>>,
    headers: HeaderMap,
    Query(q): Query<FingerprintQuery>,
) -> Response {
    if let Err(r) = e.auth.may_read(&headers) {
        return refused(&r);
    }
    let level = match q.level.as_deref().filter(|l| !l.is_empty()) {
        None => None,
        Some(text) => match crate::pattern::level::parse(text) {
            Some(l) => Some(l),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "unknown level; use one of trace, debug, info, notice, warn, error, critical",
                );
            }
        },
    };
    let filter = Filter {
        level,
        service: q.service.filter(|s| !s.is_empty()),
        ci_run_id: q.ci_run_id.filter(|s| !s.is_empty()),
        route: q.route.filter(|s| !s.is_empty()),
        limit: q.limit.unwrap_or(MAX_LISTED).min(MAX_LISTED),
    };
    let view = e.board.fingerprints();
    Json(json!({
        "published_at": view.published_at,
        "groups_live": view.groups_live,
        "listed_max": MAX_LISTED,
        "fingerprints": filter.apply(&view.fingerprints),
    }))
    .into_response()
}

/// An escalation row with its receiver's explore link.
#[derive(Serialize)]
struct EscalationOut<'a> {
    #[serde(flatten)]
    row: &'a EscalationRow,
    explore_url: Option<String>,
}

async fn escalations(State(e): State<Arc<Endpoint>>, headers: HeaderMap) -> Response {
    if let Err(r) = e.auth.may_read(&headers) {
        return refused(&r);
    }
    let rows = e
        .board
        .escalations()
        .map(|r| r.newest_first())
        .unwrap_or_default();
    let out: Vec<EscalationOut<'_>> = rows
        .iter()
        .map(|row| EscalationOut {
            row,
            explore_url: e.explore_link(row),
        })
        .collect();
    Json(json!({ "escalations": out })).into_response()
}

async fn sources(State(e): State<Arc<Endpoint>>, headers: HeaderMap) -> Response {
    if let Err(r) = e.auth.may_read(&headers) {
        return refused(&r);
    }
    Json(json!({ "sources": e.board.sources() })).into_response()
}

async fn silences(State(e): State<Arc<Endpoint>>, headers: HeaderMap) -> Response {
    if let Err(r) = e.auth.may_read(&headers) {
        return refused(&r);
    }
    let now = Timestamp::now();
    match e.silences(now).await {
        Ok(list) => {
            let views: Vec<_> = list.iter().map(|s| s.view(now)).collect();
            Json(json!({ "silences": views })).into_response()
        }
        Err(m) => error(StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

async fn add_silence(
    State(e): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = e.auth.may_change_api(&headers) {
        return refused(&r);
    }
    let input: SilenceInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body is not a silence ({err}); send e.g. {{\"matchers\": [\"service=api\"], \"for\": \"2h\", \"comment\": \"deploy\"}}"
                ),
            );
        }
    };
    match e.add_silence(input, "api").await {
        Ok(s) => (StatusCode::CREATED, Json(json!(s.view(Timestamp::now())))).into_response(),
        Err((status, m)) => error(status, &m),
    }
}

async fn expire_silence(
    State(e): State<Arc<Endpoint>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = e.auth.may_change_api(&headers) {
        return refused(&r);
    }
    match e.expire_silence(id).await {
        Ok(s) => Json(json!(s.view(Timestamp::now()))).into_response(),
        Err((status, m)) => error(status, &m),
    }
}
