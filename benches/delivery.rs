//! A burst of 1,000 escalations to 8 receivers, one of which answers each request after 5 s:
//! the other seven are delivered without waiting on it. Reports, per receiver, the delivery
//! latency (from the moment the burst is handed to delivery to the request reaching the local
//! test server) at p50, p99 and max, and how many the slow one had taken meanwhile.
//!
//! The burst is handed over as the agent's notifier does: up to 256 escalations per
//! `Delivery::submit_all`, each call one group commit to the outbox.
//!
//! The receivers are built from a config, as `logward run` builds them, and deliver through
//! the real outbox (fsync'd files in a temporary `state_dir`) and per-receiver threads; the
//! servers are the wire-checking peers of the test suite. Run: `cargo bench --bench delivery`.

#[path = "../tests/common/chat_server.rs"]
mod chat_server;
#[path = "../tests/common/tls.rs"]
#[allow(dead_code)]
mod tls;
/// Where `chat_server` finds its HTTPS listener in the test harness.
mod common {
    pub(crate) use super::tls;
}

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_server::{ChatServer, Provider, Received, Script};
use logward::config::Config;
use logward::escalation::{Escalation, sample_escalation};
use logward::metrics::Metrics;
use logward::notify::outbox::Outbox;
use logward::notify::worker::Delivery;
use logward::notify::{DefaultClock, Receivers};

const BURST: usize = 1_000;
/// Escalations per `submit_all`, as the agent's notifier hands them over (its batch of 256
/// is 32 escalations to each of the 8 receivers).
const PER_CALL: usize = 32;
const SLOW: Duration = Duration::from_secs(5);
/// How long the seven get to take the whole burst.
const PATIENCE: Duration = Duration::from_secs(120);

struct Peer {
    name: &'static str,
    server: ChatServer,
    toml: String,
}

const SIGNING: &str = "bench-signing-secret";

/// A server for `provider` and the `[receiver.NAME]` table sending to it (signed when the
/// provider checks a secret), with a rate no burst reaches.
fn peer(name: &'static str, provider: Provider) -> Peer {
    let (kind, secret) = match &provider {
        Provider::Slack => ("slack", &None),
        Provider::Feishu { secret } => ("feishu", secret),
        Provider::DingTalk { secret } => ("dingtalk", secret),
        Provider::WeCom => ("wecom", &None),
        Provider::Webhook { secret } => ("webhook", secret),
    };
    let mut toml = format!("[receiver.{name}]\ntype = \"{kind}\"\nrate = \"100000/s\"\n");
    if let Some(secret) = secret {
        toml.push_str(&format!("secret = \"{secret}\"\n"));
    }
    let server = ChatServer::start(provider);
    toml.push_str(&format!("url = \"{}\"\n", server.url()));
    Peer { name, server, toml }
}

fn peers() -> Vec<Peer> {
    let signed = || Some(SIGNING.to_string());
    vec![
        peer("slack", Provider::Slack),
        peer("feishu", Provider::Feishu { secret: signed() }),
        peer("dingtalk", Provider::DingTalk { secret: signed() }),
        peer("wecom", Provider::WeCom),
        peer("webhook-signed", Provider::Webhook { secret: signed() }),
        peer("webhook-a", Provider::Webhook { secret: None }),
        peer("webhook-b", Provider::Webhook { secret: None }),
        peer("slow", Provider::Webhook { secret: None }),
    ]
}

fn config(dir: &std::path::Path, peers: &[Peer]) -> Config {
    let mut text = format!(
        "state_dir = \"{}\"\n\n[[source]]\nname = \"in\"\ntype = \"stdin\"\n\n",
        dir.display()
    );
    for p in peers {
        text.push_str(&p.toml);
        text.push('\n');
    }
    let path = dir.join("logward.toml");
    match Config::parse(&path, &text) {
        Ok(c) => c,
        Err(e) => panic!("the bench's config is invalid:\n{e}\n{text}"),
    }
}

/// The burst's escalation number `i` to `receiver`: its number is in the message.
fn escalation(i: usize, receiver: &str) -> Escalation {
    let mut esc = sample_escalation(receiver, "bench-host".into());
    esc.message = Some(format!("burst escalation {i}"));
    esc
}

/// The escalation number a received request carries (every provider's body holds the message).
fn number(r: &Received) -> Option<usize> {
    let raw = String::from_utf8_lossy(&r.raw);
    let at = raw.find("burst escalation ")? + "burst escalation ".len();
    let digits: String = raw[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() {
    let peers = peers();
    let slow = peers.iter().find(|p| p.name == "slow").expect("slow peer");
    for _ in 0..BURST {
        slow.server.then(Script::Slow(SLOW));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), &peers);
    let receivers = Receivers::new(&config.receivers, DefaultClock::default()).expect("receivers");
    let (outbox, _) = Outbox::open(dir.path()).expect("outbox");
    let delivery = Delivery::start(
        Arc::new(outbox),
        Vec::new(),
        receivers.into_lanes(),
        Metrics::new().notify(),
        Arc::new(|esc: &Escalation| panic!("{} refused over its rate", esc.receiver)),
    )
    .expect("delivery threads");

    let start = Instant::now();
    let mut submitted = Vec::with_capacity(BURST);
    for first in (0..BURST).step_by(PER_CALL) {
        let numbers = first..(first + PER_CALL).min(BURST);
        let call: Vec<Escalation> = numbers
            .clone()
            .flat_map(|i| peers.iter().map(move |p| escalation(i, p.name)))
            .collect();
        let at = Instant::now();
        submitted.extend(numbers.map(|_| at));
        delivery.submit_all(&call);
    }
    let burst = start.elapsed();
    let fast: Vec<&Peer> = peers.iter().filter(|p| p.name != "slow").collect();
    let deadline = Instant::now() + PATIENCE;
    while fast.iter().any(|p| p.server.accepted().len() < BURST) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let all_fast = start.elapsed();
    let slow_done = slow.server.accepted().len();

    println!(
        "burst: {BURST} escalations x {} receivers written to the outbox in {burst:.2?}; the seven fast ones had all of theirs after {all_fast:.2?}; the slow one (5 s per answer) had taken {slow_done} by then",
        peers.len()
    );
    println!(
        "{:<16} {:>9} {:>10} {:>10} {:>10}",
        "receiver", "delivered", "p50", "p99", "max"
    );
    let mut report = BTreeMap::new();
    for p in &fast {
        let mut latencies: Vec<Duration> = p
            .server
            .accepted()
            .iter()
            .filter_map(|r| number(r).map(|i| r.at.saturating_duration_since(submitted[i])))
            .collect();
        latencies.sort();
        if latencies.is_empty() {
            println!("{:<16} {:>9}", p.name, 0);
            continue;
        }
        println!(
            "{:<16} {:>9} {:>10.2?} {:>10.2?} {:>10.2?}",
            p.name,
            latencies.len(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
        report.insert(p.name, latencies);
    }
    let mut all: Vec<Duration> = report.values().flatten().copied().collect();
    all.sort();
    if !all.is_empty() {
        println!(
            "{:<16} {:>9} {:>10.2?} {:>10.2?} {:>10.2?}",
            "all seven",
            all.len(),
            percentile(&all, 0.50),
            percentile(&all, 0.99),
            all[all.len() - 1]
        );
    }
    let missing: Vec<&str> = fast
        .iter()
        .filter(|p| p.server.accepted().len() < BURST)
        .map(|p| p.name)
        .collect();
    assert!(
        missing.is_empty(),
        "not delivered within {PATIENCE:?}: {missing:?}"
    );
    // Stopping waits for the slow receiver's attempt in progress (at most 5 s).
    delivery.stop();
}
