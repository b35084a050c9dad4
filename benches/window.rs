//! Window cost per observed event, and memory per group.
//!
//! Throughput: the dedup path (every event in one group), lookups among 100,000 live groups
//! (every event another group, all already known), and 100,000 new groups (each created and
//! notified). Memory: a counting allocator measures what live groups hold, and 1,000,000
//! distinct fingerprints through a route with `max_groups = 10_000` show that it stays bounded.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use logward::escalation::{Escalation, Sample};
use logward::event::{Event, Fingerprint, Level, Origin, Record, Timestamp};
use logward::route::{Matcher, Route};
use logward::window::{GROUP_BYTES, Windows};

/// Counts live heap bytes and their peak, so that memory is measured, not guessed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const GROUPS: u64 = 100_000;

/// A typical error event: a 100-byte line, level, service, run id, message, fingerprint.
fn error_event() -> Event {
    let labels = std::collections::BTreeMap::from([("job".to_string(), "build".to_string())]);
    let origin = Origin::new(
        Arc::from("jenkins"),
        Some(Arc::from("/var/lib/jenkins/jobs/app/builds/1234/log")),
        Arc::new(labels),
    );
    let line = "2026-11-22T10:00:00.123Z ERROR [build-svc] connection to 10.1.2.3:5432 refused ci_run_id=123456";
    let mut ev = Event::from_record(
        Record::text(0, line.into()),
        &origin,
        Timestamp::from_nanos(0),
    );
    ev.level = Some(Level::Error);
    ev.service = Some("build-svc".into());
    ev.ci_run_id = Some("123456".into());
    ev.message = Some("connection to 10.1.2.3:5432 refused".into());
    ev.fingerprint = Some(Fingerprint(0));
    ev
}

fn routes(max_groups: usize) -> Arc<[Route]> {
    let mut r = Route::new("errors", Matcher::default(), vec![Arc::from("chat")]);
    r.max_groups = max_groups;
    vec![r].into()
}

/// One millisecond per event, from a fixed start.
fn ms(i: u64) -> Timestamp {
    Timestamp::from_nanos(1_700_000_000_000_000_000 + i as i64 * 1_000_000)
}

fn observe_all(w: &mut Windows, ev: &mut Event, fps: std::ops::Range<u64>, t: &mut u64) -> usize {
    let mut out: Vec<Escalation> = Vec::new();
    let mut sent = 0;
    for fp in fps {
        ev.fingerprint = Some(Fingerprint(fp));
        *t += 1;
        w.observe(0, ev, &[], ms(*t), None, &mut out);
        sent += out.len();
        out.clear();
    }
    sent
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(GROUPS));
    let mut ev = error_event();

    // The dedup path: the same group again and again.
    let mut w = Windows::new(routes(10_000));
    let mut t = 0;
    group.bench_function(BenchmarkId::new("observe", "1 group"), |b| {
        b.iter(|| {
            let mut out = Vec::new();
            for _ in 0..GROUPS {
                t += 1;
                w.observe(0, &ev, &[], ms(t), None, &mut out);
                out.clear();
            }
            black_box(&w);
        })
    });

    // Lookups among 100,000 live groups, each event another group.
    let mut w = Windows::new(routes(GROUPS as usize));
    let mut t = 0;
    observe_all(&mut w, &mut ev, 0..GROUPS, &mut t);
    assert_eq!(w.active_groups(), GROUPS as usize);
    group.bench_function(BenchmarkId::new("observe", "100k live groups"), |b| {
        b.iter(|| observe_all(&mut w, &mut ev, 0..GROUPS, &mut t))
    });

    // 100,000 new groups: create, sample, first notification.
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("observe", "100k new groups"), |b| {
        b.iter_batched(
            || Windows::new(routes(GROUPS as usize)),
            |mut w| {
                let mut t = 0;
                assert_eq!(
                    observe_all(&mut w, &mut ev, 0..GROUPS, &mut t),
                    GROUPS as usize
                );
                w
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Bytes per group, measured; then 1,000,000 distinct fingerprints through `max_groups =
/// 10_000`: the peak after 100,000 events and after 1,000,000 must be the same.
fn memory() {
    let mut ev = error_event();
    let base = LIVE.load(Ordering::Relaxed);
    let mut w = Windows::new(routes(10_000));
    let mut t = 0;
    observe_all(&mut w, &mut ev, 0..10_000, &mut t);
    let per_group = (LIVE.load(Ordering::Relaxed) - base) / 10_000;
    eprintln!(
        "memory: {per_group} bytes per live group measured (group state {GROUP_BYTES} B, sample struct {} B, escalation struct {} B, plus the sample's text, key and indexes)",
        size_of::<Sample>(),
        size_of::<Escalation>(),
    );
    drop(w);

    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut w = Windows::new(routes(10_000));
    let mut t = 0;
    let mut evicted_at = Vec::new();
    for step in 0..10u64 {
        observe_all(
            &mut w,
            &mut ev,
            step * 100_000..(step + 1) * 100_000,
            &mut t,
        );
        let mut out = Vec::new();
        w.tick(ms(t), &mut out);
        evicted_at.push((
            (step + 1) * 100_000,
            PEAK.load(Ordering::Relaxed) - base,
            w.active_groups(),
        ));
    }
    for (events, peak, active) in &evicted_at {
        eprintln!(
            "memory: {events:>9} distinct fingerprints, max_groups 10000: peak {:.1} MiB above baseline, {active} live groups",
            mib(*peak)
        );
    }
    let (_, after_100k, _) = evicted_at[0];
    let (_, after_1m, _) = evicted_at[9];
    assert!(
        after_1m <= after_100k + after_100k / 10,
        "memory grows with distinct fingerprints: {after_100k} -> {after_1m}"
    );
    black_box(&w);
}

fn bench(c: &mut Criterion) {
    memory();
    throughput(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
