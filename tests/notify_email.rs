//! The `email` receiver against a real SMTP server: aiosmtpd (PyPI), started per test by
//! `tests/peers/smtp_sink.py`, which stores every mail it takes; the tests parse what it stored.
//! Sender-level tests, then `logward run` delivering to it (`tests/common/delivery.rs`),
//! over plain text, STARTTLS and implicit TLS to a private CA (`tests/common/tls.rs`).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use logward::config::{EmailReceiver, SmtpTls};
use logward::escalation::{Escalation, Kind};
use logward::notify::email::{Email, root_id};
use logward::notify::{Outcome, Sender};
use mail_parser::{Message, MessageParser};
use serde_json::json;

/// The SMTP server of one test; stopped (killed) when dropped.
struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    /// Starts `smtp_sink.py` with `args`. A missing peer fails the test with how to install it.
    fn start(args: &[&str]) -> Sink {
        let found = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        match found {
            Ok(o) if o.status.success() => {}
            _ => panic!(
                "the e-mail tests need the aiosmtpd SMTP server: install it with `pip install aiosmtpd` \
                 (or run scripts/test, which installs the test peers)"
            ),
        }
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 tests/peers/smtp_sink.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("smtp_sink.py did not print its port: {line:?}"));
        Sink { child, port, dir }
    }

    /// The raw mails received, in order.
    fn mails(&self) -> Vec<Vec<u8>> {
        self.files("eml")
    }

    /// The mails answered 451 at DATA (`--tempfail-data`), raw, in order.
    fn tempfailed(&self) -> Vec<Vec<u8>> {
        self.files("tempfailed")
    }

    /// Every RCPT TO refused, as "CODE ADDR".
    fn refused(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("refused.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn files(&self, extension: &str) -> Vec<Vec<u8>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == extension))
            .collect();
        paths.sort();
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// The one mail received, raw.
    fn only_mail(&self) -> Vec<u8> {
        let mut mails = self.mails();
        assert_eq!(mails.len(), 1, "expected exactly one mail");
        mails.pop().unwrap()
    }

    fn envelope(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{n:04}.envelope"))).unwrap()
    }

    fn receiver(&self) -> EmailReceiver {
        EmailReceiver {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: SmtpTls::None,
            from: "logward <logward@build-01.example>".into(),
            to: vec![
                "oncall@example.com".into(),
                "Team Lead <lead@example.com>".into(),
            ],
            username: None,
            password: None,
            subject_prefix: Some("[ci]".into()),
            timeout: Duration::from_secs(5),
            template: None,
            ca_file: None,
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An escalation of route `errors` to receiver `mail`, whose sample is `line`.
fn escalation(kind: Kind, line: &str) -> Escalation {
    let first_line = line.lines().next().unwrap_or("");
    serde_json::from_value(json!({
        "route": "errors",
        "receiver": "mail",
        "kind": kind,
        "group": {"fingerprint": "00000000000000ab"},
        "fingerprint": "00000000000000ab",
        "level": "error",
        "service": "api",
        "ci_run_id": "4711",
        "pattern": "java.exception",
        "message": first_line,
        "count": 1,
        "suppressed": 0,
        "first_seen": "2023-11-14T22:13:20Z",
        "last_seen": "2023-11-14T22:13:20Z",
        "sample": {
            "ts": "2023-11-14T22:13:20Z", "source": "jenkins", "path": "/var/log/app.log",
            "offset": 0, "line": line, "level": "error", "service": "api", "ci_run_id": "4711",
            "pattern": "java.exception", "matched": true, "message": first_line, "template": null,
            "fingerprint": "00000000000000ab", "fields": {}, "labels": {"job": "api"}
        },
        "context": ["INFO connecting to db"],
        "loki_query": "{job=\"api\"} |= \"db timeout\"",
        "host": "build-01"
    }))
    .unwrap()
}

fn parse(raw: &[u8]) -> Message<'_> {
    MessageParser::default()
        .parse(raw)
        .expect("a mail that parses")
}

/// The text part, with the CRLF line ends of the wire made `\n`.
fn text_part(m: &Message<'_>) -> String {
    m.body_text(0).expect("a text part").replace("\r\n", "\n")
}

/// The HTML part, with the CRLF line ends of the wire made `\n`.
fn html_part(m: &Message<'_>) -> String {
    m.body_html(0).expect("an HTML part").replace("\r\n", "\n")
}

fn accepted(outcome: Outcome) -> String {
    match outcome {
        Outcome::Accepted { answer } => answer,
        other => panic!("not accepted: {other:?}"),
    }
}

fn id_list(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match v.as_text_list() {
        Some(list) => list.iter().map(|s| s.to_string()).collect(),
        None => v.as_text().map(|s| vec![s.to_string()]).unwrap_or_default(),
    }
}

#[test]
fn email_has_exact_headers_and_a_text_then_html_part() {
    let sink = Sink::start(&[]);
    let mut email = Email::new("mail".into(), &sink.receiver()).unwrap();
    let esc = escalation(
        Kind::First,
        "ERROR db timeout after 30s\n\tat com.example.Db.query(Db.java:42)",
    );
    let answer = accepted(email.send(&esc, "errors.mail.first.1"));
    assert!(answer.starts_with("250 "), "{answer}");
    assert!(answer.contains("queued as 0001"), "{answer}");

    let raw = sink.only_mail();
    let text = String::from_utf8_lossy(&raw).to_string();
    let mail = parse(&raw);
    let from = mail.from().unwrap().first().unwrap();
    assert_eq!(
        (from.name(), from.address()),
        (Some("logward"), Some("logward@build-01.example"))
    );
    let to: Vec<_> = mail
        .to()
        .unwrap()
        .iter()
        .map(|a| a.address().unwrap().to_string())
        .collect();
    assert_eq!(to, ["oncall@example.com", "lead@example.com"]);
    assert_eq!(
        mail.subject(),
        Some("[ci] ERROR api: ERROR db timeout after 30s")
    );
    let root = root_id(&esc);
    assert_eq!(
        format!("<{}>", mail.message_id().unwrap()),
        root,
        "the first mail's Message-ID is its thread's root"
    );
    assert!(
        root.starts_with("<logward.00000000000000ab.1700000000000.")
            && root.ends_with("@build-01>"),
        "{root}"
    );
    assert!(mail.header("In-Reply-To").is_none(), "{text}");
    assert!(mail.header("References").is_none(), "{text}");
    assert_eq!(
        mail.header_raw("X-Logward-Idempotency-Key").map(str::trim),
        Some("errors.mail.first.1")
    );
    assert!(mail.header("Date").is_some());
    let ctype = mail.header_raw("Content-Type").unwrap();
    assert!(ctype.contains("multipart/alternative"), "{ctype}");
    let plain_at = text
        .find("Content-Type: text/plain; charset=utf-8")
        .unwrap();
    let html_at = text.find("Content-Type: text/html; charset=utf-8").unwrap();
    assert!(plain_at < html_at, "text first, HTML last: {text}");

    let body = text_part(&mail);
    assert!(
        body.starts_with("New · ERROR db timeout after 30s\n"),
        "{body}"
    );
    for want in [
        "level       ERROR",
        "service     api",
        "route       errors",
        "count       1 (0 not sent before)",
        "run         4711",
        "    ERROR db timeout after 30s\n    \\tat com.example.Db.query(Db.java:42)\n",
        "context (lines before):\n    INFO connecting to db\n",
        "Loki query: {job=\"api\"} |= \"db timeout\"",
    ] {
        assert!(body.contains(want), "missing {want:?} in\n{body}");
    }
    let html = html_part(&mail);
    assert!(html.contains("<pre"), "{html}");
    assert!(
        html.contains("<th align=\"left\">service</th><td>api</td>"),
        "{html}"
    );
    assert!(
        html.contains("{job=&quot;api&quot;} |= &quot;db timeout&quot;"),
        "{html}"
    );

    let envelope = sink.envelope(1);
    assert_eq!(
        envelope,
        "logward@build-01.example\noncall@example.com\nlead@example.com\n"
    );
}

#[test]
fn non_ascii_subject_is_encoded_and_decodes_back() {
    let sink = Sink::start(&[]);
    let mut email = Email::new("mail".into(), &sink.receiver()).unwrap();
    let mut esc = escalation(Kind::First, "数据库超时 after 30s — grüße");
    esc.service = Some("支付".into());
    accepted(email.send(&esc, "k1"));
    let raw = sink.only_mail();
    let text = String::from_utf8_lossy(&raw).to_string();
    let subject_line = text
        .lines()
        .skip_while(|l| !l.starts_with("Subject:"))
        .take_while(|l| l.starts_with("Subject:") || l.starts_with(' '))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(subject_line.is_ascii(), "{subject_line}");
    assert!(
        subject_line.contains("=?utf-8?b?"),
        "RFC 2047: {subject_line}"
    );
    assert_eq!(
        parse(&raw).subject(),
        Some("[ci] ERROR 支付: 数据库超时 after 30s — grüße")
    );
}

#[test]
fn hostile_log_lines_stay_text_in_the_html_part() {
    let sink = Sink::start(&[]);
    let mut email = Email::new("mail".into(), &sink.receiver()).unwrap();
    let hostile = [
        "<script>alert(document.cookie)</script>",
        "<img src=x onerror=alert(1)>",
        "[link](http://evil.example/phish)",
        "<!channel> <!here> <@U123> @all @everyone",
        "<a href=\"http://evil.example\">click</a>",
        "</pre></td></table><h1>forged</h1>",
        "\u{1b}[31mred\u{1b}[0m\r\nSubject: forged",
    ];
    let mut esc = escalation(Kind::First, &hostile.join("\n"));
    esc.message = Some(hostile[1].into());
    esc.context = hostile.iter().map(|s| s.to_string()).collect();
    esc.service = Some("<b>svc</b>".into());
    accepted(email.send(&esc, "k-hostile"));

    let raw = sink.only_mail();
    let mail = parse(&raw);
    let html = html_part(&mail);
    for bad in [
        "<script",
        "<img",
        "<a ",
        " href=\"",
        "<h1>",
        "<b>svc",
        "onerror=alert(1)>",
        "\u{1b}",
    ] {
        assert!(!html.contains(bad), "{bad:?} got through:\n{html}");
    }
    for shown in [
        "&lt;script&gt;alert(document.cookie)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
        "[link](http://evil.example/phish)",
        "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; @all @everyone",
        "&lt;/pre&gt;&lt;/td&gt;&lt;/table&gt;&lt;h1&gt;forged&lt;/h1&gt;",
    ] {
        assert!(
            html.contains(shown),
            "{shown:?} is not shown as text:\n{html}"
        );
    }
    assert_eq!(html.matches("<pre").count(), html.matches("</pre>").count());
    let text = text_part(&mail);
    assert!(
        text.contains("    <script>alert(document.cookie)</script>\n"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
    // The header block is intact: nothing from the log forged a header.
    let headers: Vec<&str> = mail.headers().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        headers
            .iter()
            .filter(|h| h.eq_ignore_ascii_case("subject"))
            .count(),
        1,
        "{headers:?}"
    );
    assert_eq!(
        mail.subject(),
        Some("[ci] ERROR <b>svc</b>: <img src=x onerror=alert(1)>")
    );
}

#[test]
fn email_repeats_thread_by_fingerprint() {
    let sink = Sink::start(&[]);
    let cfg = sink.receiver();
    let mut email = Email::new("mail".into(), &cfg).unwrap();
    let first = escalation(Kind::First, "ERROR db timeout after 30s");
    let mut repeat = first.clone();
    repeat.kind = Kind::Repeat;
    repeat.count = 40;
    repeat.suppressed = 39;
    let mut summary = first.clone();
    summary.kind = Kind::Summary;
    summary.count = 120;
    summary.suppressed = 80;
    // A repeat in a later window: its own first_seen; the thread is remembered.
    let mut later = repeat.clone();
    later.first_seen = logward::event::Timestamp::parse_rfc3339("2023-11-15T08:00:00Z").unwrap();
    // Another fingerprint: a thread of its own.
    let mut other = first.clone();
    other.group = serde_json::from_value(json!({"fingerprint": "00000000000000cd"})).unwrap();
    other.fingerprint = Some(logward::event::Fingerprint(0xcd));

    for (esc, key) in [
        (&first, "k-first"),
        (&repeat, "k-repeat"),
        (&summary, "k-summary"),
        (&later, "k-later"),
        (&other, "k-other"),
    ] {
        accepted(email.send(esc, key));
    }
    let raw = sink.mails();
    assert_eq!(raw.len(), 5);
    let mails: Vec<Message> = raw.iter().map(|r| parse(r)).collect();
    let root = format!("<{}>", mails[0].message_id().unwrap());
    assert_eq!(root, root_id(&first));

    let mut ids = vec![root.clone()];
    for (m, kind) in mails[1..4].iter().zip(["repeat", "summary", "repeat"]) {
        let own = format!("<{}>", m.message_id().unwrap());
        assert!(own.starts_with(&format!("<logward.{kind}.")), "{own}");
        ids.push(own);
        let in_reply_to: Vec<String> = id_list(m.in_reply_to())
            .into_iter()
            .map(|i| format!("<{i}>"))
            .collect();
        let references: Vec<String> = id_list(m.references())
            .into_iter()
            .map(|i| format!("<{i}>"))
            .collect();
        assert_eq!(in_reply_to, std::slice::from_ref(&root), "{kind}");
        assert_eq!(references, std::slice::from_ref(&root), "{kind}");
        assert_eq!(
            m.subject(),
            Some("Re: [ci] ERROR api: ERROR db timeout after 30s"),
            "same subject, so clients that thread by subject agree"
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every mail has its own Message-ID");
    assert!(text_part(&mails[1]).starts_with("Still happening · "));
    assert!(text_part(&mails[2]).starts_with("Summary · "));
    assert!(text_part(&mails[2]).contains("count       120 (80 not sent before)"));
    let other_id = format!("<{}>", mails[4].message_id().unwrap());
    assert_ne!(other_id, root);
    assert!(
        other_id.starts_with("<logward.00000000000000cd."),
        "{other_id}"
    );
    assert!(mails[4].header("In-Reply-To").is_none());

    // After a restart (a new sender), a re-sent first has the same Message-ID, and so does a
    // retried repeat: the mailbox can tell the duplicate.
    let mut restarted = Email::new("mail".into(), &cfg).unwrap();
    accepted(restarted.send(&first, "k-first"));
    accepted(restarted.send(&repeat, "k-repeat"));
    let raw = sink.mails();
    assert_eq!(parse(&raw[5]).message_id(), mails[0].message_id());
    assert_eq!(parse(&raw[6]).message_id(), mails[1].message_id());
    assert_eq!(
        id_list(parse(&raw[6]).in_reply_to()),
        id_list(mails[1].in_reply_to())
    );
}

const USER: &str = "logward";
const PASSWORD: &str = "pa55-w0rd-S3CRET";

#[test]
fn auth_with_a_password_and_the_password_in_no_output() {
    let sink = Sink::start(&["--auth", &format!("{USER}:{PASSWORD}")]);
    let esc = escalation(Kind::First, "ERROR db timeout after 30s");

    // Without credentials the server refuses: a permanent answer, not retried.
    let mut anonymous = Email::new("mail".into(), &sink.receiver()).unwrap();
    let Outcome::Rejected { reason } = anonymous.send(&esc, "k0") else {
        panic!("sent without AUTH to a server that requires it")
    };
    assert!(reason.starts_with("receiver `mail`: "), "{reason}");
    assert!(reason.contains("530"), "{reason}");

    let mut cfg = sink.receiver();
    cfg.username = Some(USER.into());
    cfg.password = Some(secret(PASSWORD));
    let mut email = Email::new("mail".into(), &cfg).unwrap();
    let answer = accepted(email.send(&esc, "k1"));
    assert_eq!(sink.mails().len(), 1);

    let mut wrong = cfg.clone();
    wrong.password = Some(secret("not-the-password"));
    let mut wrong_email = Email::new("mail".into(), &wrong).unwrap();
    let refused = wrong_email.send(&esc, "k2");
    let Outcome::Rejected { reason } = &refused else {
        panic!("a wrong password is not worth retrying: {refused:?}")
    };
    assert!(reason.contains("535"), "{reason}");
    assert!(!reason.contains("not-the-password"), "{reason}");

    let everything = format!(
        "{answer}\n{refused:?}\n{cfg:?}\n{}",
        String::from_utf8_lossy(&sink.mails().concat())
    );
    assert!(!everything.contains(PASSWORD), "{everything}");
    assert!(
        format!("{cfg:?}").contains("password: Some(***)"),
        "{cfg:?}"
    );
}

/// A `Secret` as the config makes it, from `password_file`.
fn secret(value: &str) -> logward::config::Secret {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), format!("{value}\n")).unwrap();
    let toml = format!(
        "[receiver.mail]\ntype = \"email\"\nsmarthost = \"127.0.0.1:25\"\ntls = \"none\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\nusername = \"u\"\npassword_file = \"{}\"\n",
        dir.path().join("pw").display()
    );
    let path = dir.path().join("logward.toml");
    std::fs::write(&path, toml).unwrap();
    let cfg = logward::config::Config::load(&path).unwrap();
    match &cfg.receivers["mail"].kind {
        logward::config::ReceiverKind::Email(e) => e.password.clone().unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_recipient_is_rejected_and_a_temporary_failure_retried() {
    let sink = Sink::start(&[
        "--reject",
        "gone@example.com",
        "--tempfail",
        "busy@example.com",
    ]);
    let esc = escalation(Kind::First, "ERROR db timeout after 30s");

    let mut cfg = sink.receiver();
    cfg.to = vec!["gone@example.com".into()];
    let outcome = Email::new("mail".into(), &cfg).unwrap().send(&esc, "k1");
    let Outcome::Rejected { reason } = &outcome else {
        panic!("550 must not be retried: {outcome:?}")
    };
    assert!(reason.starts_with("receiver `mail`: "), "{reason}");
    assert!(reason.contains("550"), "{reason}");
    assert!(
        reason.contains("User unknown"),
        "the server's words: {reason}"
    );

    cfg.to = vec!["busy@example.com".into()];
    let outcome = Email::new("mail".into(), &cfg).unwrap().send(&esc, "k2");
    let Outcome::Retry { reason, .. } = &outcome else {
        panic!("451 is worth retrying: {outcome:?}")
    };
    assert!(reason.contains("451"), "{reason}");
    assert!(sink.mails().is_empty());
}

#[test]
fn a_server_that_is_down_is_retried() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = EmailReceiver {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        from: "logward@example.com".into(),
        to: vec!["oncall@example.com".into()],
        username: Some(USER.into()),
        password: Some(secret(PASSWORD)),
        subject_prefix: None,
        timeout: Duration::from_secs(2),
        template: None,
        ca_file: None,
    };
    let started = Instant::now();
    let outcome = Email::new("mail".into(), &cfg)
        .unwrap()
        .send(&escalation(Kind::First, "ERROR x"), "k1");
    let Outcome::Retry { reason, after } = &outcome else {
        panic!("a server that is down is worth retrying: {outcome:?}")
    };
    assert_eq!(*after, None);
    assert!(
        reason.starts_with("receiver `mail`: SMTP failed"),
        "{reason}"
    );
    assert!(!reason.contains(PASSWORD), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn tls_modes_fail_closed_against_a_plain_server_without_panicking() {
    // Exercises the rustls client set-up (one crypto provider, aws-lc-rs): a second provider
    // compiled in would panic here instead of answering.
    let sink = Sink::start(&[]);
    let esc = escalation(Kind::First, "ERROR x");
    let mut cfg = sink.receiver();
    cfg.host = "localhost".into();

    cfg.tls = SmtpTls::StartTls;
    let outcome = Email::new("mail".into(), &cfg).unwrap().send(&esc, "k1");
    let Outcome::Rejected { reason } = &outcome else {
        panic!("no silent downgrade when STARTTLS is missing: {outcome:?}")
    };
    assert!(reason.contains("STARTTLS"), "{reason}");

    cfg.tls = SmtpTls::Tls;
    cfg.timeout = Duration::from_secs(2);
    let outcome = Email::new("mail".into(), &cfg).unwrap().send(&esc, "k2");
    assert!(
        matches!(outcome, Outcome::Retry { .. }),
        "a TLS handshake with a plain server fails: {outcome:?}"
    );
    assert!(sink.mails().is_empty(), "nothing was sent in clear text");
}

/// `logward run` with a `template`: the text part is the template's text, the HTML part shows
/// the same text escaped whole, and a log line's markup stays text in both.
#[test]
fn run_mails_a_templates_text_and_shows_the_same_text_as_html() {
    let sink = Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = dir.path().join("logward.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{state}"
checkpoint_interval = "100ms"

[[source]]
name = "test"
type = "file"
paths = ["{logs}/*.log"]
poll_interval = "20ms"

[[route]]
name = "errors"
receivers = ["mail"]
mention = ["U012AB3CD"]

[receiver.mail]
type = "email"
smarthost = "127.0.0.1:{port}"
tls = "none"
from = "logward@example.com"
to = ["oncall@example.com"]
template = '''
Route {{{{ route }}}} ({{{{ kind }}}}, {{{{ count }}}})
<b>{{{{ sample.line|safe }}}}</b>
'''
"#,
            state = dir.path().join("state").display(),
            logs = logs.display(),
            port = sink.port,
        ),
    )
    .unwrap();
    let line = "ERROR <a href=\"https://evil.example\">click</a> & <script>x</script>";
    std::fs::write(logs.join("app.log"), format!("{line}\n")).unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_logward"))
        .args(["run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.mails().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let status = agent.wait().unwrap();
    assert!(status.success());
    let raw = sink.only_mail();
    let mail = parse(&raw);
    assert_eq!(
        text_part(&mail),
        format!("Route errors (first, 1)\n<b>{line}</b>")
    );
    let html = html_part(&mail);
    assert!(
        html.contains(
            "<pre style=\"font-family:sans-serif;white-space:pre-wrap\">Route errors (first, 1)\n&lt;b&gt;ERROR &lt;a href=&quot;https://evil.example&quot;&gt;click&lt;/a&gt; &amp; &lt;script&gt;x&lt;/script&gt;&lt;/b&gt;</pre>"
        ),
        "{html}"
    );
    assert!(
        !html.contains("<a ") && !html.contains("<script") && !html.contains("<b>"),
        "{html}"
    );
    assert!(
        !String::from_utf8_lossy(&raw).contains("U012AB3CD"),
        "an e-mail mentions no one"
    );
}
// Through `logward run`: a file source, route `errors` (one group per service), receiver `mail`.

use common::delivery::{Delivery, assert_no_secret, logged_keys};

/// Receiver `mail` to `host:port` with more `keys` (`tls` among them, else plain text).
fn mail_table(host: &str, port: u16, keys: &str) -> String {
    let tls = match keys.contains("tls =") {
        true => "",
        false => "tls = \"none\"\n",
    };
    format!(
        "type = \"email\"\nsmarthost = \"{host}:{port}\"\n{tls}from = \"logward <logward@build-01.example>\"\nto = [\"oncall@example.com\"]\ntimeout = \"3s\"\n{keys}\n"
    )
}

/// Waits until `sink` took `n` mails; returns them.
fn wait_mails(sink: &Sink, agent: &common::Agent, n: usize) -> Vec<Vec<u8>> {
    common::wait_until(&format!("{n} mail(s) taken"), agent, || {
        let mails = sink.mails();
        (mails.len() >= n).then_some(mails)
    })
}

/// The Message-ID and `X-Logward-Idempotency-Key` of a raw mail.
fn ids(raw: &[u8]) -> (String, String) {
    let m = parse(raw);
    let key = m.header_raw("X-Logward-Idempotency-Key").map(str::trim);
    (
        m.message_id().unwrap_or_default().to_string(),
        key.unwrap_or_default().to_string(),
    )
}

/// SMTP's "try later" is a 4xx reply: the first DATA is answered 451, the retry is taken.
/// One mail arrives, with the Message-ID and idempotency key of the attempt refused, and the
/// retry is counted.
#[test]
fn email_451_is_retried_and_one_mail_arrives_through_run() {
    let sink = Sink::start(&["--tempfail-data", "1"]);
    let d = Delivery::new(&[("mail", &mail_table("127.0.0.1", sink.port, ""))], &[]);
    let agent = d.start();
    d.error("api");
    let mails = wait_mails(&sink, &agent, 1);
    d.wait_outbox_empty(&agent);
    let metrics = d.metrics(&agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(mails.len(), 1, "exactly one mail");
    let refused = sink.tempfailed();
    assert_eq!(refused.len(), 1);
    assert_eq!(ids(&refused[0]), ids(&mails[0]), "the same mail, retried");
    assert!(stderr.contains("(451)"), "{stderr}");
    assert_eq!(
        common::sample(
            &metrics,
            "logward_receiver_retries_total{receiver=\"mail\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

/// A 550 is final: one RCPT TO, the server's words in the log, counted as rejected, the outbox
/// empty afterwards.
#[test]
fn email_550_is_not_retried_through_run() {
    let sink = Sink::start(&["--reject", "oncall@example.com"]);
    let d = Delivery::new(&[("mail", &mail_table("127.0.0.1", sink.port, ""))], &[]);
    let agent = d.start();
    d.error("api");
    d.wait_metric(
        &agent,
        "logward_receiver_errors_total{receiver=\"mail\",reason=\"rejected\"}",
        1.0,
    );
    d.wait_outbox_empty(&agent);
    let metrics = d.metrics(&agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(sink.refused(), ["550 oncall@example.com"], "tried once");
    assert!(sink.mails().is_empty());
    let line = stderr
        .lines()
        .find(|l| l.contains("rejected the escalation"))
        .unwrap_or_else(|| panic!("no rejection logged:\n{stderr}"));
    assert!(
        line.contains("receiver `mail`: SMTP refused the mail") && line.contains("User unknown"),
        "{line}"
    );
    assert_eq!(
        common::sample(
            &metrics,
            "logward_receiver_retries_total{receiver=\"mail\"}"
        )
        .unwrap_or(0.0),
        0.0,
        "nothing was retried"
    );
}

/// The smarthost refuses every mail for now (451 at DATA); the escalation waits in the outbox;
/// `kill -9`; the restarted agent, with a server that takes mail on the same port, delivers it
/// exactly once, with the Message-ID and idempotency key of the first attempt.
#[test]
fn email_in_the_outbox_at_kill_9_is_delivered_once_after_the_restart() {
    let busy = Sink::start(&["--tempfail-data", "1000"]);
    let port = busy.port;
    let d = Delivery::new(&[("mail", &mail_table("127.0.0.1", port, ""))], &[]);
    let agent = d.start();
    d.error("api");
    common::wait_until("the first attempt", &agent, || {
        (!busy.tempfailed().is_empty()).then_some(())
    });
    let queued = d.wait_outbox(&agent, 1);
    d.wait_checkpointed(&agent);
    agent.kill9();
    let first = ids(&busy.tempfailed()[0]);
    drop(busy);
    assert_eq!(d.outbox(), queued, "kill -9 keeps the outbox");

    let sink = Sink::start(&["--port", &port.to_string()]);
    let agent = d.start();
    let mails = wait_mails(&sink, &agent, 1);
    d.wait_outbox_empty(&agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(sink.mails().len(), 1, "exactly once");
    assert_eq!(ids(&mails[0]), first, "the same Message-ID and key");
    assert_eq!(first.1, queued[0].key);
    assert_eq!(
        logged_keys(&stderr, "escalation delivered"),
        [queued[0].key.clone()]
    );
}

/// The SMTP password, from `password_file` and from `${VAR}`, shows in no output: `check`,
/// `notify test` (taken; refused 550; server down), the agent's stdout and stderr at debug
/// level, `/metrics` and `state_dir`, while `mail` delivers, `gone` is refused (550) and
/// `down` keeps retrying a closed port.
#[test]
fn email_password_shows_nowhere_through_run() {
    const PASSWORD: &str = "smtp-PASSW0RD-9d2e";
    let sink = Sink::start(&[
        "--auth",
        &format!("logward:{PASSWORD}"),
        "--reject",
        "gone@example.com",
    ]);
    let files = tempfile::tempdir().unwrap();
    let password_file = files.path().join("smtp-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let from_file = format!(
        "username = \"logward\"\npassword_file = \"{}\"",
        password_file.display()
    );
    let from_env = "username = \"logward\"\npassword = \"${SMTP_PASSWORD}\"";
    let gone = mail_table("127.0.0.1", sink.port, from_env)
        .replace("oncall@example.com", "gone@example.com");
    let d = Delivery::new(
        &[
            ("mail", &mail_table("127.0.0.1", sink.port, &from_file)),
            ("gone", &gone),
            ("down", &mail_table("127.0.0.1", closed_port(), from_env)),
        ],
        &[("SMTP_PASSWORD", PASSWORD)],
    );
    let check = d.run(&["check"]);
    assert!(check.status.success(), "{}", check.all_output());
    let tested: Vec<(String, String)> = [("mail", 0), ("gone", 1), ("down", 1)]
        .iter()
        .map(|(name, code)| {
            let out = d.run(&["notify", "test", name]);
            assert_eq!(out.status.code(), Some(*code), "{}", out.all_output());
            (format!("`logward notify test {name}`"), out.all_output())
        })
        .collect();

    let agent = d.start_with(&[("LOGWARD_LOG", "debug")]);
    d.error("api");
    wait_mails(&sink, &agent, 2);
    d.wait_metric(
        &agent,
        "logward_receiver_errors_total{receiver=\"gone\",reason=\"rejected\"}",
        1.0,
    );
    d.wait_metric(
        &agent,
        "logward_receiver_retries_total{receiver=\"down\"}",
        1.0,
    );
    let metrics = d.metrics(&agent);
    let (status, stdout, stderr) = agent.stop_capturing();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("User unknown"), "{stderr}");
    assert!(d.outbox().iter().any(|q| q.receiver == "down"));
    let mut places = vec![
        ("`logward check`".to_string(), check.all_output()),
        ("the agent's stdout".into(), stdout),
        ("the agent's stderr (debug)".into(), stderr),
        ("/metrics".into(), metrics),
    ];
    places.extend(tested);
    for (path, text) in d.state_files() {
        places.push((path.display().to_string(), text));
    }
    assert_no_secret(&[PASSWORD], &places);
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Mail over `tls` ("starttls" or "tls") to a smarthost whose certificate a private CA signed,
/// trusted through `ca_file`, with AUTH after TLS: delivered, and the rustls set-up of the
/// binary (one crypto provider) survives a real handshake. The same server without `ca_file`
/// is not trusted: the attempt fails on the certificate and nothing is sent.
fn tls_delivery(tls: &str, sink_mode: &str) {
    const PASSWORD: &str = "tls-PASSW0RD";
    let ca = common::tls::TestCa::new();
    let sink = Sink::start(&[
        "--tls",
        sink_mode,
        "--cert",
        &ca.cert.display().to_string(),
        "--key",
        &ca.key.display().to_string(),
        "--auth",
        &format!("logward:{PASSWORD}"),
    ]);
    let keys = format!(
        "tls = \"{tls}\"\nusername = \"logward\"\npassword = \"{PASSWORD}\"\nca_file = \"{}\"",
        ca.ca.display()
    );
    let untrusted = format!("tls = \"{tls}\"\nusername = \"logward\"\npassword = \"{PASSWORD}\"");
    let d = Delivery::new(
        &[
            ("mail", &mail_table("localhost", sink.port, &keys)),
            ("untrusted", &mail_table("localhost", sink.port, &untrusted)),
        ],
        &[],
    );
    let refused = d.run(&["notify", "test", "untrusted"]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.all_output());
    assert!(
        refused.stderr.contains("certificate"),
        "fails on the certificate: {}",
        refused.stderr
    );
    assert!(sink.mails().is_empty());

    let agent = d.start();
    d.error("api");
    let mails = wait_mails(&sink, &agent, 1);
    common::wait_until("the mail delivered", &agent, || {
        d.outbox()
            .iter()
            .all(|q| q.receiver == "untrusted")
            .then_some(())
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(mails.len(), 1);
    assert_eq!(
        parse(&mails[0]).subject(),
        Some("ERROR api: disk full on /var/data")
    );
}

#[test]
fn email_over_starttls_to_a_private_ca_through_run() {
    tls_delivery("starttls", "starttls");
}

#[test]
fn email_over_implicit_tls_to_a_private_ca_through_run() {
    tls_delivery("tls", "implicit");
}
