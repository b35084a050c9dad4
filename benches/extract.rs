//! Extraction cost per line as the number of loaded patterns grows (10, 50,
//! 200), and with the bundled library: the one-pass prefilter must keep the
//! cost of a line from growing linearly with the pattern count.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use logward::event::{Event, Origin, Record, Timestamp};
use logward::pattern::{BUNDLED, PatternSet, Scratch};

const LINES: usize = 2_000;

/// `n - 1` patterns that each look for their own literal marker, plus the
/// pattern that actually matches the workload, last in evaluation order: every
/// line is checked against all of them.
fn synthetic(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n - 1 {
        out.push_str(&format!(
            "[[pattern]]\nid = \"synthetic.p{i}\"\npriority = 10\nregex = '(?P<service>[\\w-]+) marker-{i}: (?P<level>[a-z]+) (?P<message>.*)'\n\n"
        ));
    }
    out.push_str("[[pattern]]\nid = \"app\"\nregex = '^(?P<ts>\\S+) (?P<level>[A-Z]+) \\[(?P<service>[^\\]]+)\\] (?P<message>.*)'\n");
    out
}

fn workload() -> Vec<String> {
    let services = ["build-svc", "deploy-api", "test-runner", "scheduler"];
    let levels = ["INFO", "INFO", "WARN", "ERROR", "DEBUG"];
    (0..LINES)
        .map(|i| {
            let msg = format!("connection to 10.1.{}.{}:5432 refused after {} attempts ci_run_id={}", i % 256, i % 7, i % 5, 100_000 + i);
            if i % 3 == 0 {
                format!(
                    "{{\"ts\":\"2026-11-22T10:00:00.123Z\",\"level\":\"{}\",\"msg\":\"{msg}\",\"service\":\"{}\",\"ci_run_id\":\"{}\"}}",
                    levels[i % 5].to_lowercase(),
                    services[i % 4],
                    100_000 + i
                )
            } else {
                format!("2026-11-22T10:00:00.123Z {} [{}] {msg}", levels[i % 5], services[i % 4])
            }
        })
        .collect()
}

fn extract_all(set: &PatternSet, lines: &[String], scratch: &mut Scratch) -> usize {
    let origin = Origin::new(Arc::from("bench"), None, Arc::default());
    let mut matched = 0;
    for (i, line) in lines.iter().enumerate() {
        let mut ev = Event::from_record(
            Record::text(i as u64, line.clone()),
            &origin,
            Timestamp::from_nanos(0),
        );
        matched += usize::from(set.apply(&mut ev, scratch).is_some());
        black_box(&ev);
    }
    matched
}

fn bench(c: &mut Criterion) {
    let lines = workload();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("extract");
    group.throughput(Throughput::Elements(LINES as u64));
    for n in [10, 50, 200] {
        let path = dir.path().join(format!("{n}.toml"));
        std::fs::write(&path, synthetic(n)).expect("write patterns");
        let set = PatternSet::load(&[path]).expect("valid synthetic patterns");
        let mut scratch = Scratch::default();
        assert!(extract_all(&set, &lines, &mut scratch) >= LINES * 2 / 3);
        group.bench_with_input(BenchmarkId::new("patterns", n), &set, |b, set| {
            b.iter(|| extract_all(set, &lines, &mut scratch))
        });
    }
    let bundled = PatternSet::load(&[BUNDLED.into()]).expect("bundled library loads");
    let mut scratch = Scratch::default();
    group.bench_function(BenchmarkId::new("bundled", bundled.len()), |b| {
        b.iter(|| extract_all(&bundled, &lines, &mut scratch))
    });
    group.finish();
    eprintln!("workload: {LINES} lines, {bytes} bytes");
}

criterion_group!(benches, bench);
criterion_main!(benches);
