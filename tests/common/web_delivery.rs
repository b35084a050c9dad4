//! Delivery through `logward run` to a web receiver (`slack`, `feishu`, `dingtalk`, `wecom`,
//! `webhook`), against its wire-checking server (`chat_server`, which refuses a wrong body or
//! signature with the provider's own error): retries as the provider asks, no retry of a final
//! answer, the outbox across `kill -9`, and secrets kept out of every output. Each
//! `tests/notify_<type>.rs` runs these for its provider, under names that state the behaviour.

#![allow(dead_code)]

use std::time::Duration;

use crate::chat_server::{ChatServer, Provider, Script, TOKEN, closed_port, permanent_error};
use crate::common::delivery::{Delivery, ROUTE, assert_no_secret, logged_keys};
use crate::common::wait_until;

/// The receiver under test.
pub const NAME: &str = "chat";

/// `logward_<metric>{receiver="NAME"...}` with the labels after the receiver's.
fn series(metric: &str, receiver: &str, more: &str) -> String {
    format!("logward_{metric}{{receiver=\"{receiver}\"{more}}}")
}

/// A provider's server and a `logward run` setup whose receiver `chat` takes its URL from
/// `${CHAT_URL}` and, for a provider that signs, its secret from `${CHAT_SECRET}`.
struct Web {
    server: ChatServer,
    delivery: Delivery,
}

impl Web {
    fn start(provider: Provider) -> Web {
        let server = ChatServer::start(provider.clone());
        let url = server.url();
        let mut table = format!(
            "type = \"{}\"\nurl = \"${{CHAT_URL}}\"\n",
            provider.receiver_type()
        );
        let mut vars = vec![("CHAT_URL", url.as_str())];
        if let Some(secret) = provider.secret() {
            table.push_str("secret = \"${CHAT_SECRET}\"\n");
            vars.push(("CHAT_SECRET", secret));
        }
        let delivery = Delivery::new(&[(NAME, &table)], &vars);
        Web { server, delivery }
    }
}

/// The server answers 429 with `Retry-After: 1` (Slack's and a webhook's rate limit; a
/// gateway's in front of the others), then takes the message: the agent tries again no
/// sooner than a second later, the message is taken exactly once, and the retry is counted.
pub fn retried_after_a_429_no_sooner_than_retry_after(provider: Provider) {
    let web = Web::start(provider);
    web.server.then(Script::Http {
        status: 429,
        body: "rate_limited".into(),
        retry_after: Some("1".into()),
    });
    let d = &web.delivery;
    let agent = d.start();
    d.error("api");
    web.server.wait_accepted(1);
    d.wait_outbox_empty(&agent);
    let metrics = d.metrics(&agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    let got = web.server.received();
    assert_eq!(got.len(), 2, "one refused, one taken: {got:#?}");
    assert_eq!(got[0].refused.as_deref(), Some("scripted HTTP 429"));
    assert!(got[1].refused.is_none(), "{got:#?}");
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "retried {waited:?} after a 429 with Retry-After: 1"
    );
    assert!(stderr.contains("HTTP 429: rate_limited"), "{stderr}");
    for (s, want) in [
        (series("receiver_retries_total", NAME, ""), 1.0),
        (
            format!(
                "logward_escalations_total{{route=\"{ROUTE}\",receiver=\"{NAME}\",kind=\"first\"}}"
            ),
            1.0,
        ),
    ] {
        assert_eq!(
            crate::common::sample(&metrics, &s),
            Some(want),
            "{s} in\n{metrics}"
        );
    }
}

/// The provider's own "rate limited" code in an HTTP 200 (Feishu's 11232), which asks for no
/// particular wait: retried with backoff, then taken exactly once.
pub fn its_rate_limit_code_is_retried(provider: Provider) {
    let web = Web::start(provider);
    web.server.then(Script::RateLimited);
    let d = &web.delivery;
    let agent = d.start();
    d.error("api");
    web.server.wait_accepted(1);
    d.wait_outbox_empty(&agent);
    let retries = d.wait_metric(&agent, &series("receiver_retries_total", NAME, ""), 1.0);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(retries, 1.0);
    let got = web.server.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(web.server.accepted().len(), 1);
}

/// The provider's "rate limited" code that blocks the robot for a while (DingTalk's 130101:
/// 10 minutes; WeCom's 45009: the minute): the retry is scheduled no sooner than `block`
/// (as the agent logs it, `retry_in=…`), nothing is sent meanwhile, the escalation stays in
/// the outbox across a restart, and the restarted agent delivers it exactly once. (The block
/// is not remembered across a restart: a robot still blocked answers the code again.)
pub fn its_rate_limit_code_holds_the_escalation_for_the_block(provider: Provider, block: &str) {
    let web = Web::start(provider);
    web.server.then(Script::RateLimited);
    let d = &web.delivery;
    let agent = d.start();
    d.error("api");
    let retry = wait_until("the retry to be scheduled", &agent, || {
        agent
            .stderr()
            .lines()
            .find(|l| l.contains("delivery failed; will retry"))
            .map(str::to_string)
    });
    assert!(retry.contains(&format!("retry_in={block} ")), "{retry}");
    let queued = d.wait_outbox(&agent, 1);
    assert_eq!(
        d.wait_metric(&agent, &series("receiver_retries_total", NAME, ""), 1.0),
        1.0
    );
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        web.server.received().len(),
        1,
        "nothing sent during the block"
    );
    assert_eq!(d.outbox(), queued, "a stop keeps what waits");

    let agent = d.start();
    web.server.wait_accepted(1);
    d.wait_outbox_empty(&agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(web.server.accepted().len(), 1);
    assert_eq!(
        logged_keys(&stderr, "escalation delivered"),
        [queued[0].key.clone()]
    );
}

/// The provider's answer to a message it will never take (its own shape: an HTTP 400 for
/// Slack and the webhook, a code in a 200 for the others): exactly one request, the provider's
/// message in the agent's log without the URL, counted as `reason="rejected"`, and the outbox
/// empty afterwards.
pub fn its_permanent_error_is_not_retried(provider: Provider) {
    let web = Web::start(provider.clone());
    web.server.then(Script::Permanent);
    let d = &web.delivery;
    let agent = d.start();
    d.error("api");
    let rejected = series("receiver_errors_total", NAME, ",reason=\"rejected\"");
    assert_eq!(d.wait_metric(&agent, &rejected, 1.0), 1.0);
    d.wait_outbox_empty(&agent);
    let metrics = d.metrics(&agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        web.server.received().len(),
        1,
        "a final answer is not retried"
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("rejected the escalation"))
        .unwrap_or_else(|| panic!("no rejection logged:\n{stderr}"));
    assert!(line.contains(permanent_error(&provider)), "{line}");
    assert!(
        line.contains(&format!("receiver `{NAME}`")),
        "the reason names the receiver: {line}"
    );
    assert_no_secret(&[TOKEN], &[("the agent's log".into(), stderr.clone())]);
    assert_eq!(
        crate::common::sample(&metrics, &series("receiver_retries_total", NAME, "")).unwrap_or(0.0),
        0.0,
        "nothing was retried: {metrics}"
    );
}

/// The server hangs on the first attempt; the agent is killed (`kill -9`) meanwhile. The
/// escalation is in `state_dir/outbox`; the restarted agent, with the server answering again,
/// delivers it exactly once, with the idempotency key of the first attempt (the webhook's
/// `X-Logward-Idempotency-Key` on both requests; the agent's log for every type).
pub fn in_flight_at_kill_9_is_delivered_once_after_the_restart(provider: Provider) {
    let web = Web::start(provider.clone());
    web.server.then(Script::Hang);
    let d = &web.delivery;
    let agent = d.start();
    d.error("api");
    wait_until("the first attempt to reach the server", &agent, || {
        (web.server.received().len() == 1).then_some(())
    });
    let queued = d.wait_outbox(&agent, 1);
    d.wait_checkpointed(&agent);
    agent.kill9();
    assert_eq!(d.outbox(), queued, "kill -9 keeps the outbox");

    let agent = d.start();
    let accepted = web.server.wait_accepted(1);
    d.wait_outbox_empty(&agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(web.server.accepted().len(), 1, "exactly once");
    let key = &queued[0].key;
    assert_eq!(
        logged_keys(&stderr, "escalation delivered"),
        std::slice::from_ref(key)
    );
    if let Provider::Webhook { .. } = provider {
        let hung = &web.server.received()[0];
        for r in [hung, &accepted[0]] {
            assert_eq!(r.header("x-logward-idempotency-key"), Some(key.as_str()));
        }
    }
}

/// The URL's token and the signing secret, given through `${VAR}` and `*_file`, show in no
/// output: `logward check`, `logward notify test` (taken and failed), the agent's stdout and
/// stderr at debug level for every crate, `/metrics`, and every file in `state_dir` (the
/// outbox included) — also when delivery fails: `chat` rejects its first escalation (the
/// provider's permanent error), `down` points at a closed port and keeps retrying.
pub fn secrets_show_nowhere(provider: Provider) {
    let server = ChatServer::start(provider.clone());
    let url = server.url();
    let mut down_url = url::Url::parse(&url).unwrap();
    down_url.set_port(Some(closed_port())).unwrap();
    let kind = provider.receiver_type();
    let secret = provider.secret();
    let files = tempfile::tempdir().unwrap();
    let url_file = files.path().join("down-url");
    std::fs::write(&url_file, down_url.as_str()).unwrap();
    // `rate`: the second escalation must not wait for the type's default rate.
    let mut chat = format!("type = \"{kind}\"\nurl = \"${{CHAT_URL}}\"\nrate = \"100/s\"\n");
    let mut down = format!("type = \"{kind}\"\nurl_file = \"{}\"\n", url_file.display());
    let mut vars = vec![("CHAT_URL", url.as_str())];
    if let Some(s) = secret {
        let secret_file = files.path().join("signing-secret");
        std::fs::write(&secret_file, format!("{s}\n")).unwrap();
        chat.push_str(&format!("secret_file = \"{}\"\n", secret_file.display()));
        down.push_str("secret = \"${CHAT_SECRET}\"\n");
        vars.push(("CHAT_SECRET", s));
    }
    let d = Delivery::new(&[(NAME, &chat), ("down", &down)], &vars);

    let check = d.run(&["check"]);
    assert!(check.status.success(), "{}", check.all_output());
    let tested = d.run(&["notify", "test", NAME]);
    assert_eq!(tested.status.code(), Some(0), "{}", tested.all_output());
    let failed = d.run(&["notify", "test", "down"]);
    assert_eq!(failed.status.code(), Some(1), "{}", failed.all_output());

    server.then(Script::Permanent);
    let agent = d.start_with(&[("LOGWARD_LOG", "debug")]);
    d.error("api");
    d.wait_metric(&agent, &series("receiver_retries_total", "down", ""), 1.0);
    d.wait_metric(
        &agent,
        &series("receiver_errors_total", NAME, ",reason=\"rejected\""),
        1.0,
    );
    d.error("db");
    server.wait_accepted(2);
    let metrics = d.metrics(&agent);
    let (status, stdout, stderr) = agent.stop_capturing();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains(permanent_error(&provider)), "{stderr}");
    assert!(
        stderr.contains("receiver `down`: POST failed"),
        "the failures were logged: {stderr}"
    );
    assert!(
        d.outbox().iter().any(|q| q.receiver == "down"),
        "down's escalations wait in the outbox"
    );

    let mut places = vec![
        ("`logward check`".to_string(), check.all_output()),
        ("`logward notify test chat`".into(), tested.all_output()),
        ("`logward notify test down`".into(), failed.all_output()),
        ("the agent's stdout".into(), stdout),
        ("the agent's stderr (debug)".into(), stderr),
        ("/metrics".into(), metrics),
    ];
    for (path, text) in d.state_files() {
        places.push((path.display().to_string(), text));
    }
    let mut secrets = vec![TOKEN];
    secrets.extend(secret);
    assert_no_secret(&secrets, &places);
}
