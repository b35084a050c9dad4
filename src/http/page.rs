//! The status page (`GET /`): one server-rendered HTML page with the busiest groups, the
//! recent escalations, the sources and the silences, and the forms that sign in and add or
//! expire a silence.
//!
//! Owns: the markup, the escaping of every value in it ([`escape`]: log lines are hostile),
//! the page's style and script (`page.css`, `page.js`, inline and allowed by their hashes in
//! [`csp`]), and the form handlers. Must not: load anything from elsewhere (the page works
//! offline), put a value into markup without [`escape`], or read state the pipeline did
//! not publish.

use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::auth::{Auth, Caller, Refusal};
use super::{Endpoint, Filter, SilenceInput};
use crate::event::{Level, Timestamp};
use crate::human::{bytes, remaining, seconds};
use crate::notify::recent::{DeliveryState, EscalationRow};
use crate::pattern::level_name;
use crate::silence::Silence;
use crate::status::{FingerprintRow, MAX_LISTED, SourceView};

const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");
/// Levels offered by the filter, most severe first.
const LEVELS: [Level; 7] = [
    Level::Critical,
    Level::Error,
    Level::Warn,
    Level::Notice,
    Level::Info,
    Level::Debug,
    Level::Trace,
];

/// The `Content-Security-Policy` of every answer: nothing from elsewhere, no inline code but
/// the page's own script and style (by hash), forms and fetches to this origin only.
pub fn csp() -> &'static HeaderValue {
    static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
        let hash = |s: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s));
        let policy = format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            hash(SCRIPT),
            hash(STYLE)
        );
        HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
    });
    &CSP
}

pub fn routes() -> Router<Arc<Endpoint>> {
    Router::new()
        .route("/", get(page))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/silences", post(add_silence))
        .route("/silences/{id}/expire", post(expire_silence))
}

/// `?level=&service=&run=`: the filter, for a browser without script (the script filters
/// as one types).
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    level: Option<String>,
    service: Option<String>,
    run: Option<String>,
}

async fn page(
    State(e): State<Arc<Endpoint>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let caller = match e.auth.may_read(&headers) {
        Ok(c) => c,
        Err(r) => return refused(&e.auth, &r),
    };
    let now = Timestamp::now();
    let silences = e.silences(now).await;
    let filter = Filter {
        level: q.level.as_deref().and_then(crate::pattern::level::parse),
        service: q.service.filter(|s| !s.is_empty()),
        ci_run_id: q.run.filter(|s| !s.is_empty()),
        route: None,
        limit: MAX_LISTED,
    };
    let mut out = String::with_capacity(64 * 1024);
    head(&mut out, "logward");
    header_bar(&mut out, &e, caller, now);
    out.push_str("<main>");
    fingerprints(&mut out, &e, &filter, now);
    escalations(&mut out, &e, now);
    sources(&mut out, &e.board.sources());
    silence_section(&mut out, &e.auth, caller, silences, now);
    out.push_str("</main>");
    let _ = write!(out, "<script>{SCRIPT}</script></body></html>");
    Html(out).into_response()
}

/// `<!doctype html>` to `<body>`, with the style.
fn head(out: &mut String, title: &str) {
    out.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    out.push_str("<meta name=\"referrer\" content=\"no-referrer\"><title>");
    escape(out, title);
    let _ = write!(out, "</title><style>{STYLE}</style></head><body>");
}

fn header_bar(out: &mut String, e: &Endpoint, caller: Caller, now: Timestamp) {
    out.push_str("<header><h1>logward</h1><span class=\"muted\">");
    escape(out, &e.host);
    let _ = write!(out, " · v{}</span>", env!("CARGO_PKG_VERSION"));
    out.push_str("<span id=\"updated\" data-live class=\"muted\">");
    let published = e.board.fingerprints().published_at;
    let _ = write!(out, "as of {}", seconds(now));
    if let Some(p) = published {
        let _ = write!(out, " · groups published {} ago", remaining(now, p));
    }
    out.push_str("</span>");
    match caller {
        Caller::Session => out.push_str(
            "<form class=\"inline\" method=\"post\" action=\"/logout\"><button>Sign out</button></form>",
        ),
        Caller::Bearer => out.push_str("<span class=\"muted\">signed in with the token</span>"),
        Caller::Anonymous if e.auth.has_token() => sign_in(out),
        Caller::Anonymous => {}
    }
    out.push_str("</header>");
}

fn sign_in(out: &mut String) {
    out.push_str(
        "<form class=\"inline\" method=\"post\" action=\"/login\"><input type=\"password\" name=\"token\" autocomplete=\"current-password\" placeholder=\"[http] token\" aria-label=\"[http] token\" required> <button>Sign in</button></form>",
    );
}

fn fingerprints(out: &mut String, e: &Endpoint, filter: &Filter, now: Timestamp) {
    let view = e.board.fingerprints();
    let rows = filter.apply(&view.fingerprints);
    out.push_str("<section id=\"fingerprints\"><h2>Top fingerprints</h2>");
    out.push_str("<form id=\"fp-filter\" class=\"filters\" method=\"get\" action=\"/\">");
    out.push_str("<label>Level<select name=\"level\"><option value=\"\">any</option>");
    for l in LEVELS {
        let name = level_name(l);
        let selected = if filter.level == Some(l) {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option value=\"{name}\"{selected}>{name}</option>");
    }
    out.push_str("</select></label>");
    input(out, "Service", "service", filter.service.as_deref());
    input(out, "Run id", "run", filter.ci_run_id.as_deref());
    out.push_str("<button>Filter</button><span class=\"muted\"><span id=\"fp-shown\">");
    let _ = write!(
        out,
        "{}</span> shown of {} live groups (the {MAX_LISTED} busiest are listed)</span></form>",
        rows.len(),
        view.groups_live
    );
    out.push_str("<div class=\"scroll\"><table><thead><tr>");
    for (label, key, num, class) in [
        ("Count", "count", true, ""),
        ("Last hour", "", false, "wide"),
        ("Template", "template", false, ""),
        ("Level", "rank", true, ""),
        ("Service", "service", false, ""),
        ("Run", "run", false, "wide"),
        ("First seen", "first", true, "wide"),
        ("Last seen", "last", true, ""),
        ("Route", "route", false, "wide"),
        ("State", "", false, ""),
    ] {
        let _ = write!(out, "<th class=\"{class}\"");
        if !key.is_empty() {
            let _ = write!(out, " data-sort=\"{key}\"");
            if num {
                out.push_str(" data-type=\"num\"");
            }
        }
        let _ = write!(out, ">{label}</th>");
    }
    out.push_str("</tr></thead><tbody id=\"fp-body\" data-live>");
    if rows.is_empty() {
        let why = if view.published_at.is_none() {
            "nothing published yet (no routes, or the agent just started)"
        } else {
            "no group matches"
        };
        let _ = write!(
            out,
            "<tr class=\"empty\"><td colspan=\"10\">{why}</td></tr>"
        );
    }
    for r in rows {
        fingerprint_row(out, r, now);
    }
    out.push_str("</tbody></table></div></section>");
}

fn input(out: &mut String, label: &str, name: &str, value: Option<&str>) {
    let _ = write!(out, "<label>{label}<input name=\"{name}\" value=\"");
    escape(out, value.unwrap_or_default());
    out.push_str("\" size=\"12\"></label>");
}

fn fingerprint_row(out: &mut String, r: &FingerprintRow, now: Timestamp) {
    let level = r.level.map_or("", level_name);
    let text = r
        .template
        .as_deref()
        .or(r.message.as_deref())
        .unwrap_or_default();
    let _ = write!(out, "<tr data-count=\"{}\" data-level=\"{level}\"", r.count);
    let _ = write!(out, " data-rank=\"{}\"", r.level.map_or(0, |l| l as u8 + 1));
    let _ = write!(
        out,
        " data-first=\"{}\" data-last=\"{}\"",
        r.first_seen.as_nanos(),
        r.last_seen.as_nanos()
    );
    for (key, value) in [
        ("template", text),
        ("service", r.service.as_deref().unwrap_or_default()),
        ("run", r.ci_run_id.as_deref().unwrap_or_default()),
        ("route", &r.route),
    ] {
        let _ = write!(out, " data-{key}=\"");
        escape(out, value);
        out.push('"');
    }
    let _ = write!(
        out,
        "><td class=\"num\">{}</td><td class=\"wide\">",
        r.count
    );
    sparkline(out, &r.per_minute);
    out.push_str("</td><td class=\"tpl\">");
    escape(out, text);
    if let Some(f) = r.fingerprint {
        let _ = write!(out, "<br><span class=\"muted\">{:016x}</span>", f.0);
    }
    let _ = write!(out, "</td><td class=\"lv-{level}\">{level}</td><td>");
    escape(out, r.service.as_deref().unwrap_or_default());
    out.push_str("</td><td class=\"wide\">");
    escape(out, r.ci_run_id.as_deref().unwrap_or_default());
    out.push_str("</td><td class=\"wide\">");
    ago(out, r.first_seen, now);
    out.push_str("</td><td>");
    ago(out, r.last_seen, now);
    out.push_str("</td><td class=\"wide\">");
    escape(out, &r.route);
    out.push_str("</td><td>");
    if let Some(id) = &r.silenced_by {
        out.push_str("<span class=\"badge st-silenced\">silenced ");
        escape(out, id);
        out.push_str("</span>");
    }
    if let Some(esc) = r.escalated {
        let _ = write!(
            out,
            "<span class=\"badge st-escalated\" title=\"{}\">escalated: {} {} ago</span>",
            seconds(esc.at),
            esc.kind.as_str(),
            remaining(now, esc.at)
        );
    }
    if let Some(t) = r.held_until {
        let _ = write!(
            out,
            "<span class=\"badge st-held\">held for group_wait, {} left</span>",
            remaining(t, now)
        );
    }
    if r.suppressed > 0 {
        let _ = write!(
            out,
            "<span class=\"badge st-suppressed\">{} suppressed</span>",
            r.suppressed
        );
    }
    out.push_str("</td></tr>");
}

/// Events per minute over the last hour as small bars (SVG: no style attribute, no script).
fn sparkline(out: &mut String, per_minute: &[u32]) {
    let max = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let total: u64 = per_minute.iter().map(|&n| u64::from(n)).sum();
    let _ = write!(
        out,
        "<svg class=\"spark\" viewBox=\"0 0 120 24\" width=\"120\" height=\"24\" role=\"img\" aria-label=\"{total} in the last hour, at most {max} a minute\"><title>{total} in the last hour, at most {max} a minute</title><line x1=\"0\" y1=\"23.5\" x2=\"120\" y2=\"23.5\"/><path d=\""
    );
    for (i, &n) in per_minute.iter().enumerate().filter(|(_, n)| **n > 0) {
        // At least a pixel, so that one event in a busy hour still shows.
        let height = (f64::from(n) / f64::from(max) * 22.0).max(1.0);
        let _ = write!(out, "M{}.5 23V{:.1}", i * 2, 23.0 - height);
    }
    out.push_str("\"/></svg>");
}

fn escalations(out: &mut String, e: &Endpoint, now: Timestamp) {
    out.push_str("<section id=\"escalations\"><h2>Recent escalations</h2><div class=\"scroll\"><table><thead><tr><th>When</th><th>Route</th><th>Receiver</th><th>Kind</th><th>What</th><th class=\"num\">Count</th><th>Delivery</th><th class=\"wide\">Logs</th></tr></thead><tbody id=\"esc-body\" data-live>");
    let rows = e
        .board
        .escalations()
        .map(|r| r.newest_first())
        .unwrap_or_default();
    if rows.is_empty() {
        out.push_str(
            "<tr class=\"empty\"><td colspan=\"8\">no escalation since the agent started</td></tr>",
        );
    }
    for r in &rows {
        escalation_row(out, e, r, now);
    }
    out.push_str("</tbody></table></div></section>");
}

fn escalation_row(out: &mut String, e: &Endpoint, r: &EscalationRow, now: Timestamp) {
    out.push_str("<tr><td>");
    ago(out, r.at, now);
    out.push_str("</td><td>");
    escape(out, &r.route);
    out.push_str("</td><td>");
    escape(out, &r.receiver);
    let _ = write!(out, "</td><td>{}</td><td class=\"tpl\">", r.kind.as_str());
    if let Some(l) = r.level {
        let name = level_name(l);
        let _ = write!(out, "<span class=\"lv-{name}\">{name}</span> ");
    }
    if let Some(s) = &r.service {
        escape(out, s);
        out.push_str(": ");
    }
    escape(out, r.message.as_deref().unwrap_or_default());
    let _ = write!(out, "</td><td class=\"num\">{}", r.count);
    if r.suppressed > 0 {
        let _ = write!(
            out,
            " <span class=\"muted\">(+{} suppressed)</span>",
            r.suppressed
        );
    }
    out.push_str("</td><td>");
    delivery(out, &r.delivery, now);
    out.push_str("</td><td class=\"wide\">");
    if let Some(link) = e.explore_link(r) {
        out.push_str("<a rel=\"noopener noreferrer\" target=\"_blank\" href=\"");
        escape(out, &link);
        out.push_str("\">Grafana</a>");
    }
    out.push_str("</td></tr>");
}

fn delivery(out: &mut String, d: &DeliveryState, now: Timestamp) {
    let (class, label) = match d {
        DeliveryState::Outbox => ("outbox", "in the outbox".to_string()),
        DeliveryState::Retrying {
            attempts,
            next_attempt_at,
            ..
        } => (
            "retrying",
            format!(
                "retrying: {attempts} failed, next in {}",
                remaining(*next_attempt_at, now)
            ),
        ),
        DeliveryState::Sent { attempts: 1 } => ("sent", "sent".to_string()),
        DeliveryState::Sent { attempts } => ("sent", format!("sent after {attempts} attempts")),
        DeliveryState::Rejected { .. } => ("rejected", "rejected".to_string()),
        DeliveryState::Expired { attempts, .. } => {
            ("expired", format!("given up after {attempts} attempts"))
        }
        DeliveryState::RateLimited => ("rate_limited", "over the rate: in the next".to_string()),
        DeliveryState::Dropped => ("dropped", "dropped: outbox full".to_string()),
    };
    let _ = write!(out, "<span class=\"badge st-{class}\">{label}</span>");
    if let DeliveryState::Retrying { last_error, .. }
    | DeliveryState::Rejected { last_error, .. }
    | DeliveryState::Expired { last_error, .. } = d
    {
        out.push_str("<div class=\"err\">");
        escape(out, last_error);
        out.push_str("</div>");
    }
}

fn sources(out: &mut String, sources: &[SourceView]) {
    out.push_str("<section id=\"sources\" data-live><h2>Sources</h2><div class=\"scroll\"><table><thead><tr><th>File</th><th class=\"num\">Position</th><th class=\"num\">Lag</th><th class=\"num\">Behind for</th><th>State</th></tr></thead><tbody>");
    if sources.is_empty() {
        out.push_str("<tr class=\"empty\"><td colspan=\"5\">no source configured</td></tr>");
    }
    for s in sources {
        out.push_str("<tr class=\"src\"><td colspan=\"5\">");
        escape(out, &s.name);
        let _ = write!(
            out,
            " <span class=\"muted\">{} · {} · {} lines · {} behind · {} rotations · {} truncations</span>",
            s.kind,
            match s.files.tracked {
                1 => "1 file".to_string(),
                n => format!("{n} files"),
            },
            s.lines_read,
            bytes(s.files.lag_bytes),
            s.rotations,
            s.truncations
        );
        if let Some(n) = &s.files.last_error {
            out.push_str("<div class=\"err\">");
            escape(out, &n.message);
            let _ = write!(out, " ({})</div>", seconds(n.at));
        }
        out.push_str("</td></tr>");
        for f in &s.files.files {
            out.push_str("<tr><td class=\"tpl\">");
            escape(out, &f.path);
            let _ = write!(out, "</td><td class=\"num\">{}", f.position);
            if let Some(size) = f.size {
                let _ = write!(out, " <span class=\"muted\">of {size}</span>");
            }
            out.push_str("</td><td class=\"num\">");
            out.push_str(&f.lag_bytes.map_or("-".into(), bytes));
            out.push_str("</td><td class=\"num\">");
            out.push_str(&f.lag_seconds.map_or("-".into(), |s| format!("{s}s")));
            out.push_str("</td><td>");
            out.push_str(if f.rotated {
                "<span class=\"badge st-outbox\">rotated: reading to its end</span>"
            } else {
                "<span class=\"badge st-sent\">following</span>"
            });
            if let Some(n) = &f.last_error {
                out.push_str("<div class=\"err\">");
                escape(out, &n.message);
                let _ = write!(out, " ({})</div>", seconds(n.at));
            }
            out.push_str("</td></tr>");
        }
    }
    out.push_str("</tbody></table></div></section>");
}

fn silence_section(
    out: &mut String,
    auth: &Auth,
    caller: Caller,
    silences: Result<Vec<Silence>, String>,
    now: Timestamp,
) {
    let may_change = auth.has_token() && caller != Caller::Anonymous;
    out.push_str("<section id=\"silences\"><h2>Silences</h2><div class=\"scroll\"><table><thead><tr><th>Id</th><th>Matchers</th><th>Status</th><th class=\"wide\">Comment</th><th class=\"wide\">By</th><th></th></tr></thead><tbody id=\"silence-body\" data-live>");
    match silences {
        Err(e) => {
            out.push_str("<tr class=\"empty\"><td colspan=\"6\" class=\"err\">");
            escape(out, &e);
            out.push_str("</td></tr>");
        }
        Ok(list) if list.is_empty() => out.push_str(
            "<tr class=\"empty\"><td colspan=\"6\">no silence active, pending or ended in the last day</td></tr>",
        ),
        Ok(list) => {
            for s in &list {
                silence_row(out, s, may_change, now);
            }
        }
    }
    out.push_str("</tbody></table></div>");
    if may_change {
        out.push_str("<form class=\"add\" method=\"post\" action=\"/silences\"><label>Matchers, one per line<textarea name=\"matchers\" rows=\"2\" cols=\"28\" required placeholder=\"service=api&#10;level=~error|critical\"></textarea></label><label>For<input name=\"for\" value=\"2h\" size=\"6\" required></label><label>Comment<input name=\"comment\" size=\"24\"></label><button>Add silence</button></form>");
    } else if auth.has_token() {
        out.push_str(
            "<p class=\"muted\">Sign in with the [http] token to add or expire silences here.</p>",
        );
    } else {
        out.push_str("<p class=\"muted\">Silences are added and expired here once the config has an [http] token; meanwhile use <code>logward silence add</code> on this host.</p>");
    }
    out.push_str("</section>");
}

fn silence_row(out: &mut String, s: &Silence, may_change: bool, now: Timestamp) {
    out.push_str("<tr><td class=\"tpl\">");
    escape(out, &s.id);
    out.push_str("</td><td class=\"tpl\">");
    escape(out, &s.matchers_text());
    out.push_str("</td><td>");
    let status = s.status(now);
    let text = match status {
        crate::silence::Status::Active => format!("active, ends in {}", remaining(s.ends_at, now)),
        crate::silence::Status::Pending => {
            format!("pending, starts in {}", remaining(s.starts_at, now))
        }
        crate::silence::Status::Expired => format!("ended {} ago", remaining(now, s.ended_at())),
    };
    let _ = write!(
        out,
        "<span title=\"until {}\">{text}</span></td><td class=\"wide\">",
        seconds(s.ended_at())
    );
    escape(out, &s.comment);
    out.push_str("</td><td class=\"wide\">");
    escape(out, &s.created_by);
    out.push_str("</td><td>");
    if may_change && status != crate::silence::Status::Expired {
        out.push_str("<form class=\"inline\" method=\"post\" action=\"/silences/");
        escape(out, &s.id);
        out.push_str("/expire\"><button>Expire</button></form>");
    }
    out.push_str("</td></tr>");
}

/// `3m 2s ago`, with the exact time on hover.
fn ago(out: &mut String, t: Timestamp, now: Timestamp) {
    let _ = write!(
        out,
        "<time datetime=\"{t}\" title=\"{}\">{} ago</time>",
        seconds(t),
        remaining(now, t)
    );
}

/// A refusal as a page: why, and the sign-in form when a token would help.
pub fn refused(auth: &Auth, r: &Refusal) -> Response {
    let mut out = String::new();
    head(&mut out, "logward: refused");
    out.push_str("<main><p class=\"notice\">");
    escape(&mut out, r.message);
    out.push_str("</p>");
    if r.status == StatusCode::UNAUTHORIZED && auth.has_token() {
        sign_in(&mut out);
    }
    out.push_str("<p><a href=\"/\">Back to the status page</a></p></main></body></html>");
    (r.status, Html(out)).into_response()
}

/// A form that could not be done: what went wrong, and the way back.
fn form_error(status: StatusCode, message: &str) -> Response {
    let mut out = String::new();
    head(&mut out, "logward: not done");
    out.push_str("<main><p class=\"notice err\">");
    escape(&mut out, message);
    out.push_str(
        "</p><p><a href=\"/#silences\">Back to the status page</a></p></main></body></html>",
    );
    (status, Html(out)).into_response()
}

fn back(to: &'static str, cookie: Option<String>) -> Response {
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    res
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(e): State<Arc<Endpoint>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Err(r) = e.auth.check_host(&headers) {
        return refused(&e.auth, &r);
    }
    if !e.auth.is_token(&f.token) {
        return refused(&e.auth, &super::auth::WRONG_TOKEN);
    }
    back("/", e.auth.session_cookie())
}

async fn logout() -> Response {
    back("/", Some(Auth::cleared_cookie()))
}

#[derive(Deserialize)]
struct SilenceForm {
    matchers: String,
    #[serde(rename = "for")]
    duration: String,
    #[serde(default)]
    comment: String,
}

async fn add_silence(
    State(e): State<Arc<Endpoint>>,
    headers: HeaderMap,
    Form(f): Form<SilenceForm>,
) -> Response {
    if let Err(r) = e.auth.may_change_page(&headers) {
        return refused(&e.auth, &r);
    }
    let input = SilenceInput {
        matchers: f
            .matchers
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::Value::String(l.to_string()))
            .collect(),
        duration: Some(f.duration),
        starts_at: None,
        ends_at: None,
        comment: f.comment,
        created_by: None,
    };
    match e.add_silence(input, "status page").await {
        Ok(_) => back("/#silences", None),
        Err((status, message)) => form_error(status, &message),
    }
}

async fn expire_silence(
    State(e): State<Arc<Endpoint>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = e.auth.may_change_page(&headers) {
        return refused(&e.auth, &r);
    }
    match e.expire_silence(id).await {
        Ok(_) => back("/#silences", None),
        Err((status, message)) => form_error(status, &message),
    }
}

/// Writes `text` for HTML text or a quoted attribute: `& < > " '` as entities, and control
/// characters, bidirectional overrides and invisible marks as their `\u{..}` code, so that a
/// log line can neither inject markup nor hide or reorder what is around it.
pub fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}') =>
            {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        escape(&mut out, text);
        out
    }

    #[test]
    fn escaping_leaves_no_markup_and_shows_hidden_characters() {
        assert_eq!(
            escaped("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(
            escaped("a\u{202e}b\u{0}c\u{1b}[31m"),
            "a\\u{202e}b\\u{0}c\\u{1b}[31m"
        );
        assert_eq!(escaped("line\nnext\ttab"), "line\nnext\ttab");
    }

    #[test]
    fn the_policy_allows_exactly_the_page_script_and_style() {
        let policy = csp().to_str().unwrap();
        let hash = |s: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s));
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        assert!(policy.contains(&format!("script-src 'sha256-{}'", hash(SCRIPT))));
        assert!(policy.contains(&format!("style-src 'sha256-{}'", hash(STYLE))));
        assert!(!policy.contains("unsafe"), "{policy}");
    }

    #[test]
    fn the_sparkline_has_a_bar_per_busy_minute_scaled_to_the_busiest() {
        let mut out = String::new();
        let mut minutes = vec![0; 60];
        minutes[0] = 1;
        minutes[59] = 44;
        sparkline(&mut out, &minutes);
        assert!(
            out.contains("45 in the last hour, at most 44 a minute"),
            "{out}"
        );
        assert!(out.contains("d=\"M0.5 23V22.0M118.5 23V1.0\""), "{out}");
    }
}
