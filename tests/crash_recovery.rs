//! Crash recovery: the agent is `kill -9`ed again and again while a writer
//! appends, with a rotation in between. Every line must come out at least
//! once; the lines that come out twice are bounded by the checkpoint interval.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::{Agent, Env, numbered, wait_until};

/// Lines written at least; the writer goes on until every kill has happened.
const TOTAL: usize = 24_000;
/// The writer's steady pace: this many lines every tick.
const LINES_PER_TICK: usize = 25;
const TICK: Duration = Duration::from_millis(10);
const KILLS: usize = 3;
/// The rotation (a rename, then a new file) happens after this many lines.
const ROTATE_AT: usize = TOTAL * 5 / 8;
/// `checkpoint_interval` of `Env::config`.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// Room for slow `fsync`s and a loaded machine in the duplicate bound.
const DUPLICATE_FACTOR: f64 = 10.0;
const PREFIX: &str = "line";

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Appends numbered lines to `logs/app.log` at a steady pace, rotating once
/// by rename, until `TOTAL` lines are written and `KILLS` kills have happened.
/// Returns the number of lines written.
///
/// The rotated file gets a name the glob matches (`app-1.log`): a file renamed
/// out of the globs while the agent is down cannot be found by any tailer.
fn spawn_writer(
    logs: PathBuf,
    written: Arc<AtomicUsize>,
    kills: Arc<AtomicUsize>,
) -> JoinHandle<usize> {
    thread::spawn(move || {
        let app = logs.join("app.log");
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("open app.log")
        };
        let mut file = open(&app);
        let mut n = 0;
        while n < TOTAL || kills.load(Ordering::SeqCst) < KILLS {
            if n == ROTATE_AT {
                fs::rename(&app, logs.join("app-1.log")).expect("rotate");
                file = open(&app);
            }
            file.write_all(numbered(PREFIX, n, n + LINES_PER_TICK).as_bytes())
                .expect("write app.log");
            n += LINES_PER_TICK;
            written.store(n, Ordering::SeqCst);
            thread::sleep(TICK);
        }
        n
    })
}

/// The output file, read incrementally: how often each numbered line came out.
struct Output {
    path: PathBuf,
    /// Where the first line not read yet starts.
    offset: u64,
    counts: Vec<u32>,
    events: usize,
    /// Lines that are not one the writer wrote (torn or merged lines).
    foreign: Vec<String>,
}

impl Output {
    fn new(path: PathBuf) -> Output {
        Output {
            path,
            offset: 0,
            counts: Vec::new(),
            events: 0,
            foreign: Vec::new(),
        }
    }

    /// Reads the complete events written since the last call. A torn last
    /// line (a batch being written, or cut by `kill -9`) is left for later;
    /// the agent cuts a torn line when it starts, never a complete one.
    fn update(&mut self) {
        let Ok(mut f) = File::open(&self.path) else {
            return;
        };
        let len = f.metadata().expect("stat output").len();
        assert!(len >= self.offset, "the output shrank below complete lines");
        f.seek(SeekFrom::Start(self.offset)).expect("seek output");
        let mut new = Vec::new();
        f.read_to_end(&mut new).expect("read output");
        let complete = new.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for l in new[..complete]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let event: serde_json::Value = serde_json::from_slice(l).unwrap_or_else(|e| {
                panic!(
                    "output line is not JSON ({e}): {}",
                    String::from_utf8_lossy(l)
                )
            });
            let line = event["line"].as_str().unwrap_or_default();
            self.events += 1;
            match number(line) {
                Some(i) => {
                    if self.counts.len() <= i {
                        self.counts.resize(i + 1, 0);
                    }
                    self.counts[i] += 1;
                }
                None => self.foreign.push(line.to_string()),
            }
        }
        self.offset += complete as u64;
    }

    fn has(&self, i: usize) -> bool {
        self.counts.get(i).is_some_and(|n| *n > 0)
    }

    fn has_all(&self, total: usize) -> bool {
        self.counts.len() >= total && self.counts[..total].iter().all(|n| *n > 0)
    }
}

/// `line-012345` → 12345.
fn number(line: &str) -> Option<usize> {
    let digits = line.strip_prefix(PREFIX)?.strip_prefix('-')?;
    (digits.len() == 6).then(|| digits.parse().ok()).flatten()
}

/// Waits until the agent has written its positions `n` more times. Each write
/// follows the previous one, so after two every acknowledgement made before
/// the call is saved.
fn wait_for_checkpoints(env: &Env, agent: &Agent, n: usize) {
    let path = env.path("state/positions.json");
    let mut last = fs::read(&path).ok();
    for _ in 0..n {
        wait_until("the agent to save its positions", agent, || {
            let now = fs::read(&path).ok();
            let changed = now.is_some() && now != last;
            last = now;
            changed.then_some(())
        });
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn kill_9_while_writing_delivers_every_line_at_least_once() {
    let env = Env::new();
    let config = env.config("");
    let written = Arc::new(AtomicUsize::new(0));
    let kills = Arc::new(AtomicUsize::new(0));
    let writer = spawn_writer(env.logs(), written.clone(), kills.clone());
    let mut out = Output::new(env.out());

    let mut agent = env.start(&config);
    for k in 1..=KILLS {
        wait_until("the writer to reach the next kill", &agent, || {
            (written.load(Ordering::SeqCst) >= k * TOTAL / (KILLS + 1)).then_some(())
        });
        // The agent has caught up with the writer and saved that: what comes
        // out twice is what it delivered after its last checkpoint.
        let last_written = written.load(Ordering::SeqCst) - 1;
        wait_until(
            &format!("line {last_written} to be delivered"),
            &agent,
            || {
                out.update();
                out.has(last_written).then_some(())
            },
        );
        wait_for_checkpoints(&env, &agent, 2);
        agent.kill9();
        kills.fetch_add(1, Ordering::SeqCst);
        agent = env.start(&config);
    }
    let total = writer.join().expect("writer thread");

    wait_until(
        &format!("all {total} lines to be delivered"),
        &agent,
        || {
            out.update();
            out.has_all(total).then_some(())
        },
    );
    let (status, stderr) = agent.stop();
    assert!(status.success(), "agent exited with {status}\n{stderr}");
    out.update();

    assert!(
        out.foreign.is_empty(),
        "lines that were never written: {:?}",
        &out.foreign[..out.foreign.len().min(5)]
    );
    assert!(
        out.counts.len() == total,
        "lines beyond the {total} written came out"
    );
    let duplicates = out.events - total;
    let lines_per_sec = LINES_PER_TICK as f64 / TICK.as_secs_f64();
    let bound =
        (lines_per_sec * KILLS as f64 * CHECKPOINT_INTERVAL.as_secs_f64() * DUPLICATE_FACTOR)
            as usize;
    eprintln!(
        "kill -9 x{KILLS} with a rotation: {total} lines written, {} events, {duplicates} duplicates (bound {bound})",
        out.events
    );
    assert!(
        duplicates <= bound,
        "{duplicates} lines delivered twice, more than {bound} (the lines written in \
         {KILLS} x checkpoint_interval x {DUPLICATE_FACTOR})\n--- agent stderr ---\n{stderr}"
    );
}
