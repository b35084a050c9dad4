//! The fingerprint stage's cost: masking (messages/s and MB/s, and the same
//! job done by one regex alternation for comparison), the miner, and the whole
//! of `Fingerprinter::apply` for a single line and for a real 34-line Java
//! trace. Messages are those of the reference workload
//! (../shared/bench/genlogs.py), generated here the same way.

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use logward::fingerprint::{FingerprintInput, Fingerprinter, Miner, MinerConfig, mask};
use regex::Regex;
use serde_json::Map;

const MESSAGES: usize = 2_000;

/// `text_msg` of genlogs.py and the line's `ci_run_id=`, with a small
/// deterministic generator instead of Python's.
fn workload() -> Vec<String> {
    let mut state = 20_261_122_u64;
    let mut r = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let steps = [
        "checkout",
        "restore-cache",
        "compile",
        "unit-tests",
        "lint",
        "package",
        "upload-artifacts",
    ];
    let queues = ["default", "gpu", "arm64", "windows"];
    (0..MESSAGES)
        .map(|_| {
            let ip = format!("10.{}.{}.{}", r(256), r(256), 1 + r(254));
            let msg = match r(9) {
                0 => format!(
                    "connection to {ip}:{} refused after {} attempts",
                    [5432, 6379, 443, 8080][r(4) as usize],
                    1 + r(5)
                ),
                1 => format!(
                    "step {} finished in {}ms exit_code={}",
                    steps[r(7) as usize],
                    10 + r(900_000),
                    [0, 0, 1, 137][r(4) as usize]
                ),
                2 => format!(
                    "GET /api/v1/pipelines/{}/jobs status={} bytes={} dur={}ms",
                    r(1_000_000),
                    [200, 201, 404, 503][r(4) as usize],
                    100 + r(99_899),
                    1 + r(5000)
                ),
                3 => format!(
                    "cache {} key=sha256:{:016x} size={}",
                    ["hit", "miss"][r(2) as usize],
                    r(u64::MAX),
                    1 + r(1_000_000_000)
                ),
                4 => format!(
                    "worker-{} picked job {} from queue {} wait={}ms",
                    r(64),
                    r(10_000_000),
                    queues[r(4) as usize],
                    r(120_000)
                ),
                5 => format!(
                    "retrying upload of artifact build-{}.tar.zst to {ip} (attempt {}/3)",
                    r(100_000),
                    1 + r(3)
                ),
                6 => format!(
                    "test suite {} passed={} failed={} skipped={}",
                    ["core", "api", "ui", "e2e"][r(4) as usize],
                    r(2000),
                    r(5),
                    r(50)
                ),
                7 => format!(
                    "user u{} triggered pipeline on ref refs/heads/feature/{:08x}",
                    r(100_000),
                    r(1 << 32)
                ),
                _ => format!(
                    "heartbeat ok latency={}ms mem={}MiB goroutines={}",
                    1 + r(300),
                    100 + r(7900),
                    10 + r(4990)
                ),
            };
            // As a text line's message, with the run id the line ends with.
            format!("{msg} ci_run_id={}", 100_000 + r(900_000))
        })
        .collect()
}

/// The same placeholders as `mask`, as one regex alternation driven by one
/// `captures_read_at` loop: the alternative the hand-written scanner was
/// measured against. It is looser than the scanner (no range checks on dates,
/// octets or ports, no IPv6, no query rule); it only has to be comparable work.
struct RegexMasker {
    re: Regex,
    /// The placeholder of each capture group (`<num>`), empty for group 0.
    placeholders: Vec<String>,
}

impl RegexMasker {
    fn new() -> RegexMasker {
        let re = Regex::new(
            r#"(?x)
            (?P<ts>\b\d{4}[-/]\d{2}[-/]\d{2}(?:[T\x20]\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?\b
                  |\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b)
           |(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)
           |(?P<ip>\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d{1,5})?\b)
           |(?P<email>\b[\w.+%-]+@[\w-]+(?:\.[\w-]+)+\b)
           |(?P<str>'[^'\n]*'|"[^"\n]*")
           |(?P<duration>\b\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d)(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))*\b)
           |(?P<size>\b\d+(?:\.\d+)?(?:[KMGTP]i?B|[KMGT]i|kB|[kKMGT])\b)
           |(?P<hex>\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b)
           |(?P<num>-?\b(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d+)*)\b)
            "#,
        )
        .expect("valid regex");
        let placeholders = re
            .capture_names()
            .map(|n| n.map(|n| format!("<{n}>")).unwrap_or_default())
            .collect();
        RegexMasker { re, placeholders }
    }

    fn mask(&self, message: &str, locs: &mut regex::CaptureLocations, out: &mut String) {
        let mut at = 0;
        let mut copied = 0;
        while let Some(m) = self.re.captures_read_at(locs, message, at) {
            let group = (1..locs.len())
                .find(|&g| locs.get(g).is_some())
                .unwrap_or(0);
            let placeholder = &self.placeholders[group];
            // The hex alternative matches short words too; ids need 8 characters.
            if placeholder != "<hex>" || m.len() >= 8 {
                out.push_str(&message[copied..m.start()]);
                out.push_str(placeholder);
                copied = m.end();
            }
            at = m.end().max(m.start() + 1);
        }
        out.push_str(&message[copied..]);
    }
}

fn bench(c: &mut Criterion) {
    let messages = workload();
    let bytes: usize = messages.iter().map(String::len).sum();
    eprintln!(
        "workload: {MESSAGES} messages, {bytes} bytes, {} bytes on average",
        bytes / MESSAGES
    );

    let mut group = c.benchmark_group("mask");
    let mut out = String::with_capacity(256);
    let scanner = |out: &mut String| {
        for m in &messages {
            out.clear();
            mask::mask(m, out);
            black_box(&*out);
        }
    };
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function(BenchmarkId::new("scanner", "messages"), |b| {
        b.iter(|| scanner(&mut out))
    });
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(BenchmarkId::new("scanner", "bytes"), |b| {
        b.iter(|| scanner(&mut out))
    });
    let regex = RegexMasker::new();
    let mut locs = regex.re.capture_locations();
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function(BenchmarkId::new("regex", "messages"), |b| {
        b.iter(|| {
            for m in &messages {
                out.clear();
                regex.mask(m, &mut locs, &mut out);
                black_box(&out);
            }
        })
    });
    group.finish();

    let masked: Vec<String> = messages.iter().map(|m| mask::template(m)).collect();
    let mut group = c.benchmark_group("miner");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    let mut miner = Miner::new(MinerConfig::default());
    for m in &masked {
        miner.add("app", m);
    }
    eprintln!("miner: {} clusters for {MESSAGES} messages", miner.len());
    group.bench_function("add", |b| {
        b.iter(|| {
            for m in &masked {
                black_box(miner.add("app", m));
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("fingerprint");
    let fields = Map::new();
    let input = |line: &'static str| FingerprintInput {
        keys: None,
        source: "bench",
        pattern: Some("app"),
        service: Some("build-svc"),
        level: None,
        ci_run_id: None,
        line,
        message: Some(line),
        fields: &fields,
        mine: true,
    };
    let leaked: &'static [String] = Box::leak(messages.into_boxed_slice());
    let mut fp = Fingerprinter::new(Some(Arc::new(Mutex::new(Miner::new(
        MinerConfig::default(),
    )))));
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("line", |b| {
        b.iter(|| {
            for m in leaked {
                black_box(fp.apply(input(m)));
            }
        })
    });
    let trace: &'static str = include_str!("../tests/fixtures/traces/java-checkout.txt");
    assert!(trace.lines().count() >= 30);
    group.throughput(Throughput::Elements(1));
    group.bench_function("java_trace", |b| {
        b.iter(|| black_box(fp.apply(input(trace))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
