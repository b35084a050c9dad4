//! Line splitting and decoding throughput per format (text, json, cri, docker):
//! the cost of getting from bytes to records, before any extraction.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logward::correlate::Sticky;
use logward::event::Record;
use logward::multiline::Mode;
use logward::source::decode::Format;
use logward::source::{StreamConfig, StreamReader};

const LINES: usize = 20_000;

fn corpus(format: Format) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..LINES {
        let msg = format!(
            "connection to 10.1.{}.{}:5432 refused after {} attempts ci_run_id={}",
            i % 256,
            i % 7,
            i % 5,
            100_000 + i
        );
        match format {
            Format::Text | Format::Auto => out.push_str(&format!("2026-11-22T10:00:00.123Z ERROR [build-svc] {msg}\n")),
            Format::Json => out.push_str(&format!("{{\"ts\":\"2026-11-22T10:00:00.123Z\",\"level\":\"error\",\"msg\":\"{msg}\",\"service\":\"build-svc\",\"ci_run_id\":\"{i}\"}}\n")),
            Format::Cri => out.push_str(&format!("2026-11-22T10:00:00.123456789Z stdout F {msg}\n")),
            Format::Docker => out.push_str(&format!("{{\"log\":\"{msg}\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-22T10:00:00.123456789Z\"}}\n")),
        }
    }
    out.into_bytes()
}

fn decode_all(format: Format, input: &[u8]) -> usize {
    // Decoding alone: the multiline stage has its own bench.
    let mut cfg = StreamConfig::new(Arc::from("bench"), format);
    cfg.multiline = Mode::None;
    let mut stream = StreamReader::new(&cfg, 0, Sticky::new());
    let mut records: Vec<Record> = Vec::with_capacity(1024);
    let mut src = input;
    let mut count = 0;
    loop {
        let n = stream.read_chunk(&mut src, &mut records).unwrap_or(0);
        count += records.len();
        records.clear();
        if n == 0 {
            stream.finish(&mut records, None);
            return count + records.len();
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for format in [
        Format::Text,
        Format::Json,
        Format::Cri,
        Format::Docker,
        Format::Auto,
    ] {
        let input = corpus(format);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(format.as_str(), |b| {
            b.iter(|| black_box(decode_all(format, black_box(&input))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
