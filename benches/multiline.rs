//! What `multiline = "auto"` costs per line: `open` on ordinary lines (it runs
//! on every line of every text log), and a whole join over a corpus where
//! stack traces sit among ordinary lines.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use logward::multiline::auto::{self, Opening, Trace};

const LINES: usize = 2_000;

/// Lines shaped like `../shared/bench/genlogs.py`'s workload (65 % text, 35 %
/// JSON; 10 % ERROR, 15 % WARN, 60 % INFO, 15 % DEBUG), generated with a fixed
/// LCG so that runs compare.
fn workload() -> Vec<String> {
    let mut seed: u64 = 20261122;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let services = [
        "build-svc",
        "deploy-api",
        "test-runner",
        "artifact-store",
        "scheduler",
        "auth-gw",
    ];
    (0..LINES)
        .map(|i| {
            let level = match next(100) {
                0..10 => "ERROR",
                10..25 => "WARN",
                25..85 => "INFO",
                _ => "DEBUG",
            };
            let msg = match next(6) {
                0 => format!("step compile finished in {}ms exit_code=0", next(900_000)),
                1 => format!("GET /api/v1/pipelines/{}/jobs status=200 bytes={} dur={}ms", next(1_000_000), next(99_999), next(5000)),
                2 => format!("cache hit key=sha256:{:016x} size={}", next(u64::MAX >> 1), next(1_000_000_000)),
                3 => format!("test suite api passed={} failed={} skipped={}", next(2000), next(5), next(50)),
                4 => format!("connection to 10.1.{}.{}:5432 refused after {} attempts", next(256), next(255), next(5)),
                _ => format!("heartbeat ok latency={}ms mem={}MiB goroutines={}", next(300), next(8000), next(5000)),
            };
            let ts = format!("2026-11-22T10:00:{:02}.{:03}Z", (i / 1000) % 60, i % 1000);
            let service = services[i % services.len()];
            let run_id = 100_000 + next(900_000);
            if next(100) < 35 {
                format!(
                    r#"{{"ts":"{ts}","level":"{}","msg":"{msg}","service":"{service}","ci_run_id":"{run_id}"}}"#,
                    level.to_lowercase()
                )
            } else {
                format!("{ts} {level} [{service}] {msg} ci_run_id={run_id}")
            }
        })
        .collect()
}

const TRACES: [&str; 8] = [
    include_str!("../tests/fixtures/multiline/java-logback.log"),
    include_str!("../tests/fixtures/multiline/python-chained.log"),
    include_str!("../tests/fixtures/multiline/go-panic.log"),
    include_str!("../tests/fixtures/multiline/rust-backtrace.log"),
    include_str!("../tests/fixtures/multiline/node-uncaught.log"),
    include_str!("../tests/fixtures/multiline/node-error.log"),
    include_str!("../tests/fixtures/multiline/dotnet.log"),
    include_str!("../tests/fixtures/multiline/mixed.log"),
];

/// The workload with a fixture's traces (and the lines around them) after every 250 lines.
fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in workload().into_iter().enumerate() {
        out.push(line);
        if i % 250 == 249 {
            out.extend(TRACES[i / 250 % TRACES.len()].lines().map(str::to_string));
        }
    }
    out
}

/// The framework's decisions, reduced to counting records (as the unit tests' reference joiner).
fn join(lines: &[String]) -> usize {
    enum Pending {
        Nothing,
        Problem,
        Trace(Trace),
    }
    let mut records = 0;
    let mut pending = Pending::Nothing;
    for line in lines {
        match std::mem::replace(&mut pending, Pending::Nothing) {
            Pending::Trace(mut trace) => {
                if trace.continues(line) {
                    pending = Pending::Trace(trace);
                    continue;
                }
                records += 1;
            }
            Pending::Problem => {
                if let Some(trace) = auto::trace_after(line) {
                    pending = Pending::Trace(trace);
                    continue;
                }
                records += 1;
            }
            Pending::Nothing => {}
        }
        if auto::is_blank(line) {
            continue;
        }
        match auto::open(line) {
            Opening::Plain => records += 1,
            Opening::Problem => pending = Pending::Problem,
            Opening::Trace(trace) => pending = Pending::Trace(trace),
        }
    }
    records + usize::from(!matches!(pending, Pending::Nothing))
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("multiline");

    let ordinary = "2026-11-22T10:00:00.123Z INFO app started user=bob";
    assert_eq!(auto::open(ordinary), Opening::Plain);
    group.throughput(Throughput::Elements(1));
    group.bench_function("open/ordinary-line", |b| {
        b.iter(|| auto::open(black_box(ordinary)))
    });

    let lines = workload();
    let text: Vec<&String> = lines.iter().filter(|l| !l.starts_with('{')).collect();
    let (problem, info): (Vec<&String>, Vec<&String>) =
        text.iter().partition(|l| auto::open(l) == Opening::Problem);
    for (name, set) in [("text-ordinary", &info), ("text-problem", &problem)] {
        group.throughput(Throughput::Elements(set.len() as u64));
        group.bench_function(BenchmarkId::new("open", name), |b| {
            b.iter(|| {
                set.iter()
                    .filter(|l| auto::open(l) == Opening::Plain)
                    .count()
            })
        });
    }
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function(BenchmarkId::new("open", "workload"), |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|l| auto::open(l) == Opening::Plain)
                .count()
        })
    });

    group.bench_function(BenchmarkId::new("join", "workload"), |b| {
        b.iter(|| join(&lines))
    });
    let corpus = corpus();
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.bench_function(BenchmarkId::new("join", "workload-with-traces"), |b| {
        b.iter(|| join(&corpus))
    });
    group.finish();
    eprintln!(
        "workload: {} lines ({} text: {} ordinary, {} problem); corpus with traces: {} lines, {} records",
        lines.len(),
        text.len(),
        info.len(),
        problem.len(),
        corpus.len(),
        join(&corpus)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
