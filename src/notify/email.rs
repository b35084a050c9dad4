//! The `email` receiver: mails each escalation through an SMTP smarthost (`lettre`, blocking,
//! rustls with aws-lc-rs). The server's certificate is checked against the roots built into
//! the binary (`webpki-roots`, Mozilla's list) and those of the receiver's `ca_file`.
//!
//! Owns: the mail (a `multipart/alternative` with a text part first and an HTML part last,
//! the subject, the threading headers; with a `template`, the text part is its text and the
//! HTML part shows that text escaped whole), the SMTP session (STARTTLS, implicit TLS or plain to a
//! loopback host; AUTH when a username is configured) and the mapping of SMTP replies to an
//! [`Outcome`]: 4xx and connection errors are worth retrying, 5xx are not.
//!
//! Threading: the first mail of a group's episode gets a Message-ID derived from the route,
//! receiver, group and `first_seen` ([`root_id`]), so a re-send after a crash carries the same
//! one; its repeats and summaries name it in `In-Reply-To` and `References`, so a mail client
//! shows one conversation per group. Each mail carries the idempotency key in
//! `X-Logward-Idempotency-Key`.
//!
//! Must not: retry, sleep or queue (the outbox does), put the password into any message, or
//! let log content add markup, links or images to the HTML part (every value is escaped).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde_json::Value;

use super::template::Template;
use super::{NotifyError, Outcome, Sender};
use crate::config::{EmailReceiver, Secret, SmtpTls};
use crate::escalation::{Escalation, Kind, clean};
use crate::pattern::level_name;

/// Lines of the sample shown; the rest is cut with a visible "…cut".
const SAMPLE_LINES: usize = 40;
/// Context lines shown (the last ones).
const CONTEXT_LINES: usize = 10;
/// Characters of the message shown in the subject.
const SUBJECT_CHARS: usize = 120;
/// Threads remembered (group → root Message-ID); the oldest is forgotten past it. A repeat
/// whose root was forgotten falls back to the root of its own `first_seen`.
const MAX_THREADS: usize = 10_000;
/// The idempotency key's header.
pub const KEY_HEADER: &str = "X-Logward-Idempotency-Key";

/// An e-mail receiver, ready to send.
pub struct Email {
    name: Arc<str>,
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: Option<String>,
    password: Option<Secret>,
    template: Option<Template>,
    threads: Threads,
}

impl Email {
    /// Builds the transport (no connection is made yet).
    pub fn new(name: Arc<str>, cfg: &EmailReceiver) -> Result<Email, NotifyError> {
        let fail = |reason: String| NotifyError::Delivery {
            receiver: name.clone(),
            reason,
        };
        let tls = match cfg.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls | SmtpTls::Tls => {
                let mut params = TlsParameters::builder(cfg.host.clone());
                if let Some(ca) = &cfg.ca_file {
                    params = params.add_root_certificate(ca.mail().clone());
                }
                let params = params
                    .build()
                    .map_err(|e| fail(format!("cannot set up TLS: {e}")))?;
                if cfg.tls == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = SmtpTransport::builder_dangerous(cfg.host.clone())
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(cfg.timeout));
        if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        let mailbox = |text: &str| {
            text.parse::<Mailbox>()
                .map_err(|e| fail(format!("`{text}` is not an e-mail address: {e}")))
        };
        Ok(Email {
            name: name.clone(),
            transport: builder.build(),
            from: mailbox(&cfg.from)?,
            to: cfg
                .to
                .iter()
                .map(|t| mailbox(t))
                .collect::<Result<_, _>>()?,
            subject_prefix: cfg.subject_prefix.clone(),
            password: cfg.password.clone(),
            template: cfg.template.clone(),
            threads: Threads::default(),
        })
    }

    /// The mail for `esc`, without sending it.
    pub fn message(&self, esc: &Escalation, key: &str) -> Result<Message, String> {
        let thread = thread_key(esc);
        let root = self.threads.get(thread).unwrap_or_else(|| root_id(esc));
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(self.subject(esc))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(KEY_HEADER),
                header_safe(key),
            ));
        for to in &self.to {
            b = b.to(to.clone());
        }
        b = match esc.kind {
            Kind::First => b.message_id(Some(root)),
            Kind::Repeat | Kind::Summary => b
                .message_id(Some(own_id(esc, key)))
                .in_reply_to(root.clone())
                .references(root),
        };
        let templated = self
            .template
            .as_ref()
            .and_then(|t| t.body(&self.name, esc, None));
        let (text, html) = match templated {
            Some(text) => {
                let html = render_templated_html(esc, &text);
                (text, html)
            }
            None => (render_text(esc), render_html(esc)),
        };
        b.multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| format!("cannot build the mail: {e}"))
    }

    /// `[prefix] ERROR api: message`; repeats and summaries get `Re: ` so that clients
    /// which thread by subject agree with the headers.
    fn subject(&self, esc: &Escalation) -> String {
        let mut s = String::new();
        if esc.kind != Kind::First {
            s.push_str("Re: ");
        }
        if let Some(p) = &self.subject_prefix {
            let _ = write!(s, "{} ", clean(p));
        }
        let level = esc.level.map_or("-", level_name).to_uppercase();
        let service = esc.service.as_deref().map_or("-".into(), clean);
        let message = esc
            .message
            .as_deref()
            .or_else(|| esc.sample.line.lines().next())
            .unwrap_or("");
        let mut message = clean(message.lines().next().unwrap_or(""));
        if let Some((i, _)) = message.char_indices().nth(SUBJECT_CHARS) {
            message.truncate(i);
            message.push('…');
        }
        let _ = write!(s, "{level} {service}: {message}");
        s
    }

    /// The error as said to the user: the receiver, what failed, the server's words; the
    /// password replaced by `***` should a server ever echo it.
    fn reason(&self, what: &str, e: &dyn std::fmt::Display) -> String {
        let mut reason = format!("receiver `{}`: {what}: {e}", self.name);
        if let Some(p) = self.password.as_ref().map(Secret::expose) {
            if !p.is_empty() {
                reason = reason.replace(p, "***");
            }
        }
        reason
    }
}

impl Sender for Email {
    fn send(&mut self, esc: &Escalation, key: &str) -> Outcome {
        let msg = match self.message(esc, key) {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Rejected {
                    reason: self.reason("bad mail", &e),
                };
            }
        };
        match self.transport.send(&msg) {
            Ok(response) => {
                if esc.kind == Kind::First {
                    if let Some(id) = msg.headers().get_raw("Message-ID") {
                        self.threads.insert(thread_key(esc), id.to_string());
                    }
                }
                let words: Vec<&str> = response.message().collect();
                Outcome::Accepted {
                    answer: format!("{} {}", response.code(), words.join(" ")),
                }
            }
            Err(e) if e.is_permanent() || e.is_client() => Outcome::Rejected {
                reason: self.reason("SMTP refused the mail", &e),
            },
            Err(e) => Outcome::Retry {
                after: None,
                reason: self.reason("SMTP failed", &e),
            },
        }
    }
}

/// Root Message-IDs of the groups mailed lately, oldest forgotten first.
#[derive(Default)]
struct Threads {
    ids: HashMap<u64, String>,
    order: VecDeque<u64>,
}

impl Threads {
    fn get(&self, thread: u64) -> Option<String> {
        self.ids.get(&thread).cloned()
    }

    fn insert(&mut self, thread: u64, id: String) {
        if self.ids.insert(thread, id).is_none() {
            self.order.push_back(thread);
        }
        while self.order.len() > MAX_THREADS {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }
}

/// The conversation an escalation belongs to: its route, receiver and group.
fn thread_key(esc: &Escalation) -> u64 {
    let group = serde_json::to_string(&esc.group).unwrap_or_default();
    let text = format!("{}\0{}\0{}", esc.route, esc.receiver, group);
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// The Message-ID of a group's first mail: the same for the same route, receiver, group and
/// `first_seen`, so a re-sent first is recognisably the same mail.
/// `<logward.FINGERPRINT.FIRST_SEEN_MS.THREAD@HOST>`.
pub fn root_id(esc: &Escalation) -> String {
    let fp = match (esc.fingerprint, esc.group.get("fingerprint")) {
        (Some(fp), _) => format!("{:016x}", fp.0),
        (None, Some(Value::String(s))) => atom(s),
        _ => "group".into(),
    };
    format!(
        "<logward.{fp}.{}.{:016x}@{}>",
        esc.first_seen.as_nanos() / 1_000_000,
        thread_key(esc),
        domain(&esc.host)
    )
}

/// A repeat's or summary's own Message-ID, from its idempotency key: the same on every retry.
fn own_id(esc: &Escalation, key: &str) -> String {
    let key = atom(key);
    let key = if key.is_empty() || key.len() > 100 {
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
    } else {
        key
    };
    format!(
        "<logward.{}.{key}.{:016x}@{}>",
        esc.kind.as_str(),
        thread_key(esc),
        domain(&esc.host)
    )
}

/// Letters, digits, `-` and `_` kept; `.` and anything else become `-`.
fn atom(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The host as a Message-ID domain: DNS characters only; `logward.invalid` when none is left.
fn domain(host: &str) -> String {
    let d: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(200)
        .collect();
    let d = d.trim_matches('.');
    if d.is_empty() {
        "logward.invalid".into()
    } else {
        d.to_string()
    }
}

/// Printable ASCII only: a header value that cannot fold or inject.
fn header_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect()
}

fn headline(esc: &Escalation) -> &'static str {
    match esc.kind {
        Kind::First => "New",
        Kind::Repeat => "Still happening",
        Kind::Summary => "Summary",
    }
}

/// The facts of the escalation as (label, value) pairs, values made safe to show.
fn facts(esc: &Escalation) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("level", esc.level.map_or("-", level_name).to_uppercase()),
        ("service", esc.service.as_deref().map_or("-".into(), clean)),
        ("route", clean(&esc.route)),
        (
            "count",
            format!("{} ({} not sent before)", esc.count, esc.suppressed),
        ),
        ("first seen", esc.first_seen.to_string()),
        ("last seen", esc.last_seen.to_string()),
    ];
    if let Some(run) = &esc.ci_run_id {
        f.push(("run", clean(run)));
    }
    if let Some(p) = &esc.pattern {
        f.push(("pattern", clean(p)));
    }
    if !esc.host.is_empty() {
        f.push(("host", clean(&esc.host)));
    }
    f
}

/// The sample's first [`SAMPLE_LINES`] lines, each cleaned, and whether it was cut.
fn sample_lines(esc: &Escalation) -> (Vec<String>, bool) {
    let all: Vec<&str> = esc.sample.line.lines().collect();
    let cut = all.len() > SAMPLE_LINES;
    (
        all.iter().take(SAMPLE_LINES).map(|l| clean(l)).collect(),
        cut,
    )
}

fn context_lines(esc: &Escalation) -> Vec<String> {
    let skip = esc.context.len().saturating_sub(CONTEXT_LINES);
    esc.context[skip..].iter().map(|l| clean(l)).collect()
}

/// The text part.
pub fn render_text(esc: &Escalation) -> String {
    let mut out = String::with_capacity(1024);
    let message = esc
        .message
        .as_deref()
        .map(|m| clean(m.lines().next().unwrap_or("")));
    let _ = writeln!(
        out,
        "{} · {}\n",
        headline(esc),
        message.as_deref().unwrap_or("-")
    );
    for (label, value) in facts(esc) {
        let _ = writeln!(out, "{label:<11} {value}");
    }
    out.push_str("\nsample:\n");
    let (sample, cut) = sample_lines(esc);
    for l in sample {
        let _ = writeln!(out, "    {l}");
    }
    if cut {
        out.push_str("    …cut\n");
    }
    let context = context_lines(esc);
    if !context.is_empty() {
        out.push_str("\ncontext (lines before):\n");
        for l in context {
            let _ = writeln!(out, "    {l}");
        }
    }
    if !esc.loki_query.is_empty() {
        let _ = writeln!(out, "\nLoki query: {}", clean(&esc.loki_query));
    }
    out
}

/// The HTML part: every value from the escalation is escaped, so log content is shown as
/// text and never becomes markup, a link or an image.
pub fn render_html(esc: &Escalation) -> String {
    let mut out = html_start(esc);
    out.push_str("<table>\n");
    for (label, value) in facts(esc) {
        let _ = writeln!(
            out,
            "<tr><th align=\"left\">{label}</th><td>{}</td></tr>",
            escape(&value)
        );
    }
    out.push_str("</table>\n<p><b>sample</b></p>\n<pre style=\"background:#f5f5f5;padding:8px\">");
    let (sample, cut) = sample_lines(esc);
    for l in sample {
        let _ = writeln!(out, "{}", escape(&l));
    }
    if cut {
        out.push_str("…cut\n");
    }
    out.push_str("</pre>\n");
    let context = context_lines(esc);
    if !context.is_empty() {
        out.push_str("<p><b>context (lines before)</b></p>\n<pre style=\"color:#616161\">");
        for l in context {
            let _ = writeln!(out, "{}", escape(&l));
        }
        out.push_str("</pre>\n");
    }
    if !esc.loki_query.is_empty() {
        let _ = writeln!(
            out,
            "<p><b>Loki query</b> <code>{}</code></p>",
            escape(&clean(&esc.loki_query))
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// The HTML part of a mail whose text part a `template` made: the coloured headline, then that
/// text, HTML-escaped whole (the template's own text too) in a `<pre>`, so the HTML part shows
/// exactly what the text part says and nothing in it can become markup.
pub fn render_templated_html(esc: &Escalation, text: &str) -> String {
    let mut out = html_start(esc);
    let _ = writeln!(
        out,
        "<pre style=\"font-family:sans-serif;white-space:pre-wrap\">{}</pre>",
        escape(text)
    );
    out.push_str("</body></html>\n");
    out
}

/// The document's start up to the coloured headline (`New · message`).
fn html_start(esc: &Escalation) -> String {
    let colour = match esc.level.map(level_name) {
        Some("fatal" | "critical" | "error") => "#d32f2f",
        Some("warn" | "warning") => "#f9a825",
        _ => "#616161",
    };
    let mut out = String::with_capacity(2048);
    out.push_str("<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n");
    let message = esc
        .message
        .as_deref()
        .map(|m| clean(m.lines().next().unwrap_or("")));
    let _ = writeln!(
        out,
        "<h3 style=\"border-left:6px solid {colour};padding-left:8px\">{} · {}</h3>",
        headline(esc),
        escape(message.as_deref().unwrap_or("-"))
    );
    out
}

/// HTML-escapes `& < > " '`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::escalation;

    #[test]
    fn html_shows_hostile_lines_as_text() {
        let mut e =
            escalation("<script>alert(1)</script> <img src=x> [link](http://evil) <!channel>");
        e.message = Some("<b>bold</b> & \"quoted\" 'single'".into());
        let html = render_html(&e);
        assert!(
            !html.contains("<script") && !html.contains("<img") && !html.contains("<b>bold"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot; &#39;single&#39;"));
        assert!(!html.contains("href"), "{html}");
    }

    #[test]
    fn a_long_sample_is_cut_visibly() {
        let long = (0..100)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let e = escalation(&long);
        let text = render_text(&e);
        assert!(
            text.contains("    line 39\n    …cut\n") && !text.contains("line 40"),
            "{text}"
        );
        assert!(render_html(&e).contains("line 39\n…cut\n"));
    }

    #[test]
    fn ids_are_message_id_shaped_and_stable() {
        let e = escalation("ERROR x");
        let id = root_id(&e);
        assert_eq!(id, root_id(&e.clone()));
        assert!(
            id.starts_with("<logward.00000000000000ab.1700000000000.")
                && id.ends_with("@build-01>"),
            "{id}"
        );
        let own = own_id(&e, "key with spaces/and\r\nnewlines");
        assert!(!own.contains([' ', '\r', '\n', '/']), "{own}");
        assert_eq!(domain("../\r\n"), "logward.invalid");
    }
}
