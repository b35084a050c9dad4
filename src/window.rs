//! Windows: per route and per group, the counts and decisions that turn a stream of matching
//! events into a few escalations (`first`, `repeat`, `summary`), with every other event
//! counted under a reason.
//!
//! Owns: group state (window, count, sample, last notification, what is owed to whom), the
//! threshold / `group_wait` / `repeat_interval` / inhibition decisions, the memory bounds
//! (`max_groups`, dropping idle groups), the suppression counters, and the snapshot that makes
//! those decisions survive a restart. Time is an argument (`now`): the wall clock in `run`, the
//! events' own timestamps in `replay`; it never moves backwards here.
//!
//! Must not: do I/O (the driver persists [`WindowsSnapshot`]s and sends), spawn threads, sleep
//! or read the clock, match routes or silences (the caller says which route an event took and
//! whether a silence covers it), or know receivers beyond their names. See `docs/routing.md`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::escalation::{Escalation, Kind, Sample, loki_query, stable_part};
use crate::event::{Event, Timestamp};
use crate::route::{GroupKey, KeyBuf, KeyValue, Route, value_of};

/// Why an event was not notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The group was notified less than `repeat_interval` ago.
    Deduplicated,
    /// The window's count had not reached `threshold`.
    BelowThreshold,
    /// The group's first notification was being held for `group_wait`.
    GroupWait,
    /// An inhibit rule's source was notified for the same `equal` values.
    Inhibited,
    /// The caller said a silence covers the event.
    Silenced,
    /// A receiver's rate limit refused a notification ([`Windows::fold`]). Counted per
    /// receiver, so it is not part of the per-event total of the other reasons.
    RateLimited,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Deduplicated,
        Reason::BelowThreshold,
        Reason::GroupWait,
        Reason::Inhibited,
        Reason::Silenced,
        Reason::RateLimited,
    ];

    /// The `reason` label of `logward_suppressed_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Deduplicated => "deduplicated",
            Reason::BelowThreshold => "below_threshold",
            Reason::GroupWait => "group_wait",
            Reason::Inhibited => "inhibited",
            Reason::Silenced => "silenced",
            Reason::RateLimited => "rate_limited",
        }
    }
}

const KINDS: [Kind; 3] = Kind::ALL;

fn kind_index(k: Kind) -> usize {
    match k {
        Kind::First => 0,
        Kind::Repeat => 1,
        Kind::Summary => 2,
    }
}

/// What happened since the last [`Windows::take_counters`]; only non-zero entries.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counters {
    /// Events not notified, by route and reason (`logward_suppressed_total`).
    pub suppressed: BTreeMap<(Arc<str>, Reason), u64>,
    /// Groups evicted because `max_groups` was reached.
    pub evictions: BTreeMap<Arc<str>, u64>,
    /// Escalation decisions by route and kind, counted once however many receivers the
    /// route has (`logward_escalations_total`).
    pub escalations: BTreeMap<(Arc<str>, Kind), u64>,
}

impl Counters {
    pub fn suppressed(&self, route: &str, reason: Reason) -> u64 {
        self.suppressed
            .get(&(Arc::from(route), reason))
            .copied()
            .unwrap_or(0)
    }

    pub fn escalations(&self, route: &str, kind: Kind) -> u64 {
        self.escalations
            .get(&(Arc::from(route), kind))
            .copied()
            .unwrap_or(0)
    }

    pub fn evictions(&self, route: &str) -> u64 {
        self.evictions.get(route).copied().unwrap_or(0)
    }

    /// Adds `other` in (a driver keeps totals across `take_counters` calls).
    pub fn add(&mut self, other: &Counters) {
        for (k, v) in &other.suppressed {
            *self.suppressed.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.evictions {
            *self.evictions.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.escalations {
            *self.escalations.entry(k.clone()).or_default() += v;
        }
    }
}

#[derive(Debug, Default)]
struct RouteCounters {
    suppressed: [u64; 6],
    escalations: [u64; 3],
    evictions: u64,
}

/// "No slot": the end of a hash chain or of the LRU list.
const NIL: u32 = u32::MAX;

/// One group's state.
#[derive(Debug)]
struct Group {
    key: GroupKey,
    hash: u64,
    /// The next group whose key has the same 64-bit hash (collisions are possible, not likely).
    next_same_hash: u32,
    /// Least recently seen first; `max_groups` evicts from the front.
    lru_prev: u32,
    lru_next: u32,
    /// Where the window started; it closes at `window_start + window`.
    window_start: Timestamp,
    window_open: bool,
    /// The window's first event (an event-less window opened by a fold keeps the previous).
    first_seen: Timestamp,
    last_seen: Timestamp,
    /// Events in the window.
    count: u64,
    /// Events observed since this process made (or restored) the group: never reset, so
    /// that the status page can tell how many came between two looks.
    seen: u64,
    /// Events no escalation has carried yet: the next one's `suppressed`.
    unreported: u64,
    /// Some of `unreported` are owed a summary: the group had been notified and these were
    /// only counted. Silenced, inhibited, held and never-notified events ride along with the
    /// next escalation but do not cause one.
    summary_due: bool,
    /// Per receiver (the route's order): counts of escalations its rate limit refused.
    folded: Vec<u64>,
    last_notified: Option<Timestamp>,
    notified_in_window: bool,
    last_kind: Option<Kind>,
    /// A first notification held by `group_wait` goes out then.
    release_at: Option<Timestamp>,
    sample: Sample,
    context: Vec<String>,
    /// The timer this group has in the heap: its due time and stamp.
    timer: Option<(Timestamp, u64)>,
}

impl Group {
    fn new(
        key: GroupKey,
        hash: u64,
        sample: Sample,
        context: Vec<String>,
        now: Timestamp,
    ) -> Group {
        Group {
            key,
            hash,
            next_same_hash: NIL,
            lru_prev: NIL,
            lru_next: NIL,
            window_start: now,
            window_open: true,
            first_seen: now,
            last_seen: now,
            count: 0,
            seen: 0,
            unreported: 0,
            summary_due: false,
            folded: Vec::new(),
            last_notified: None,
            notified_in_window: false,
            last_kind: None,
            release_at: None,
            sample,
            context,
            timer: None,
        }
    }

    /// Events in the window if it is open; a closed window counts nothing now.
    fn current_count(&self) -> u64 {
        if self.window_open { self.count } else { 0 }
    }

    fn open_window(&mut self, now: Timestamp) {
        self.window_start = now;
        self.window_open = true;
        self.count = 0;
        self.notified_in_window = false;
    }

    fn has_folded(&self) -> bool {
        self.folded.iter().any(|&n| n > 0)
    }

    fn window_end(&self, r: &Route) -> Timestamp {
        plus(self.window_start, r.window)
    }

    /// Nothing left to do and nothing to remember: the window is closed, nothing is owed, and
    /// a new event may as well be a new `first`. A group never notified goes when its window
    /// closes (events below the threshold are settled then). A notified one stays until its
    /// last notification is `repeat_interval` old and it has been quiet for a whole window:
    /// a group that keeps firing across back-to-back windows gets its `repeat`, not a new
    /// `first` because a window happened to end at the wrong moment.
    fn droppable(&self, r: &Route, now: Timestamp) -> bool {
        !self.window_open
            && self.release_at.is_none()
            && !self.summary_due
            && !self.has_folded()
            && self.forget_at(r).is_none_or(|t| t <= now)
    }

    /// When a notified group may be forgotten.
    fn forget_at(&self, r: &Route) -> Option<Timestamp> {
        let t = self.last_notified?;
        Some(plus(t, r.repeat_interval).max(plus(self.last_seen, r.window)))
    }

    /// When `tick` next has something to do for this group.
    fn due(&self, r: &Route) -> Timestamp {
        let next = if self.window_open {
            self.window_end(r)
        } else {
            // Closed: the drop time (a never-notified group is already droppable).
            self.forget_at(r).unwrap_or(self.window_end(r))
        };
        self.release_at.map_or(next, |at| at.min(next))
    }
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    let d = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    Timestamp::from_nanos(t.as_nanos().saturating_add(d))
}

/// The keys of the group maps are already xxh3 hashes: hashing them again is wasted work.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ById = BuildHasherDefault<IdHasher>;

/// An inhibition in force: rule `rule`'s source was notified with these `equal` values.
#[derive(Debug)]
struct Inhibition {
    rule: usize,
    values: Box<[KeyValue]>,
    until: Timestamp,
}

fn inhibition_hash(rule: usize, values_hash: u64) -> u64 {
    values_hash ^ (rule as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// One route's groups: a slab with a hash index and an LRU list, so that finding, touching
/// and evicting a group are O(1) and never scan.
#[derive(Debug, Default)]
struct RouteState {
    slots: Vec<Option<Group>>,
    free: Vec<u32>,
    index: HashMap<u64, u32, ById>,
    lru_head: u32,
    lru_tail: u32,
    live: usize,
    inhibitions: HashMap<u64, Vec<Inhibition>, ById>,
    inhibition_count: usize,
    next_sweep: Option<Timestamp>,
    counters: RouteCounters,
}

impl RouteState {
    fn new() -> RouteState {
        RouteState {
            lru_head: NIL,
            lru_tail: NIL,
            ..RouteState::default()
        }
    }

    fn get(&self, s: u32) -> Option<&Group> {
        self.slots.get(s as usize)?.as_ref()
    }

    fn get_mut(&mut self, s: u32) -> Option<&mut Group> {
        self.slots.get_mut(s as usize)?.as_mut()
    }

    fn find(&self, hash: u64, keys: &KeyBuf) -> Option<u32> {
        let mut s = *self.index.get(&hash)?;
        while let Some(g) = self.get(s) {
            if keys.eq_key(&g.key) {
                return Some(s);
            }
            s = g.next_same_hash;
        }
        None
    }

    fn insert(&mut self, mut g: Group) -> u32 {
        let s = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        g.next_same_hash = self.index.insert(g.hash, s).unwrap_or(NIL);
        g.lru_prev = self.lru_tail;
        g.lru_next = NIL;
        match self.get_mut(self.lru_tail) {
            Some(tail) => tail.lru_next = s,
            None => self.lru_head = s,
        }
        self.lru_tail = s;
        self.slots[s as usize] = Some(g);
        self.live += 1;
        s
    }

    fn remove(&mut self, s: u32) -> Option<Group> {
        let g = self.slots.get_mut(s as usize)?.take()?;
        if self.index.get(&g.hash) == Some(&s) {
            if g.next_same_hash == NIL {
                self.index.remove(&g.hash);
            } else {
                self.index.insert(g.hash, g.next_same_hash);
            }
        } else {
            let mut p = self.index.get(&g.hash).copied().unwrap_or(NIL);
            while let Some(pg) = self.get_mut(p) {
                if pg.next_same_hash == s {
                    pg.next_same_hash = g.next_same_hash;
                    break;
                }
                p = pg.next_same_hash;
            }
        }
        self.unlink(g.lru_prev, g.lru_next);
        self.free.push(s);
        self.live -= 1;
        Some(g)
    }

    fn unlink(&mut self, prev: u32, next: u32) {
        match self.get_mut(prev) {
            Some(p) => p.lru_next = next,
            None => self.lru_head = next,
        }
        match self.get_mut(next) {
            Some(n) => n.lru_prev = prev,
            None => self.lru_tail = prev,
        }
    }

    /// Moves a group to the most recently seen end.
    fn touch(&mut self, s: u32) {
        if s == self.lru_tail {
            return;
        }
        let Some(g) = self.get(s) else { return };
        let (prev, next) = (g.lru_prev, g.lru_next);
        self.unlink(prev, next);
        let tail = self.lru_tail;
        if let Some(g) = self.get_mut(s) {
            g.lru_prev = tail;
            g.lru_next = NIL;
        }
        match self.get_mut(tail) {
            Some(t) => t.lru_next = s,
            None => self.lru_head = s,
        }
        self.lru_tail = s;
    }

    fn sweep_inhibitions(&mut self, now: Timestamp) {
        let mut next: Option<Timestamp> = None;
        let mut count = 0;
        self.inhibitions.retain(|_, list| {
            list.retain(|e| e.until > now);
            for e in list.iter() {
                next = Some(next.map_or(e.until, |n| n.min(e.until)));
            }
            count += list.len();
            !list.is_empty()
        });
        self.inhibition_count = count;
        self.next_sweep = next;
    }
}

/// What happens to one observed event.
enum Decision {
    Notify(Kind),
    /// Hold the first notification until then (`group_wait`).
    Hold(Timestamp),
    /// Count it; `owed`: the group owes a summary for it.
    Suppress(Reason, bool),
}

/// The state of every route's groups. See the module documentation and `docs/routing.md`.
pub struct Windows {
    routes: Arc<[Route]>,
    state: Vec<RouteState>,
    /// Min-heap of (due, stamp, route, slot). An entry is live while its group's `timer` has
    /// the same stamp; others are skipped when they surface, and dropped in bulk when they
    /// outnumber the live ones.
    timers: BinaryHeap<Reverse<(Timestamp, u64, u32, u32)>>,
    next_stamp: u64,
    clock: Timestamp,
    /// The current event's group key values.
    keys: KeyBuf,
    /// Inhibit rules' `equal` values.
    scratch: KeyBuf,
    host: String,
    loki_labels: Vec<String>,
    /// Generations: every change bumps `changes`; a snapshot carries the generation it saw.
    changes: u64,
    saved: u64,
    must_save: u64,
}

/// One live group as the status page shows it, borrowed from the windows ([`Windows::top`]).
#[derive(Debug)]
pub struct GroupView<'a> {
    pub route: &'a Arc<str>,
    /// The hash of the group's key: with the route, what tells one group from another
    /// between two looks.
    pub id: u64,
    /// The `group_by` values, as escalations carry them.
    pub group: serde_json::Map<String, serde_json::Value>,
    pub window_open: bool,
    pub window_start: Timestamp,
    /// Events in the open window; 0 when the window is closed.
    pub count: u64,
    /// Events since this process made or restored the group (never reset).
    pub seen: u64,
    /// Events no escalation has carried yet.
    pub unreported: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub last_notified: Option<Timestamp>,
    pub last_kind: Option<Kind>,
    /// A first notification held by `group_wait` until then.
    pub held_until: Option<Timestamp>,
    pub sample: &'a Sample,
}

/// The fixed size of one group's state, before the heap text of its key and sample (for
/// capacity estimates; `benches/window.rs` measures the whole).
pub const GROUP_BYTES: usize = std::mem::size_of::<Group>();

/// Snapshots are written with this version; others are ignored on restore.
pub const SNAPSHOT_VERSION: u32 = 1;

/// What must survive a restart for decisions not to repeat themselves: per route and group,
/// the window, counts, last notification and sample (context lines are not kept).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WindowsSnapshot {
    pub version: u32,
    pub routes: Vec<RouteSnapshot>,
    /// The state generation this snapshot holds (see [`Windows::saved`]).
    #[serde(skip)]
    generation: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RouteSnapshot {
    pub route: String,
    pub groups: Vec<GroupSnapshot>,
    #[serde(default)]
    pub inhibitions: Vec<InhibitionSnapshot>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GroupSnapshot {
    /// The `group_by` keys and values, in order.
    pub group: Vec<(String, Option<String>)>,
    pub window_start: Timestamp,
    pub window_open: bool,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub count: u64,
    /// Events not carried by any escalation yet.
    pub suppressed: u64,
    pub summary_due: bool,
    /// Refused (rate-limited) counts waiting for a receiver's next escalation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub folded: BTreeMap<String, u64>,
    pub last_notified: Option<Timestamp>,
    pub notified_in_window: bool,
    pub last_kind: Option<Kind>,
    pub release_at: Option<Timestamp>,
    pub sample: Sample,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct InhibitionSnapshot {
    /// Index of the rule in the route's `inhibit` list.
    pub rule: usize,
    /// The rule's `equal` keys, to tell whether it is still the same rule.
    pub equal: Vec<String>,
    pub values: Vec<Option<String>>,
    pub until: Timestamp,
}

impl Windows {
    pub fn new(routes: Arc<[Route]>) -> Windows {
        let state = routes.iter().map(|_| RouteState::new()).collect();
        Windows {
            routes,
            state,
            timers: BinaryHeap::new(),
            next_stamp: 0,
            clock: Timestamp::from_nanos(i64::MIN),
            keys: KeyBuf::default(),
            scratch: KeyBuf::default(),
            host: String::new(),
            loki_labels: Vec::new(),
            changes: 0,
            saved: 0,
            must_save: 0,
        }
    }

    /// The `host` every escalation carries.
    pub fn with_host(mut self, host: impl Into<String>) -> Windows {
        self.host = host.into();
        self
    }

    /// The event keys that Loki stream labels are made of besides the source's static labels
    /// (`[loki] labels`), for escalations' `loki_query`.
    pub fn with_loki_labels(mut self, keys: Vec<String>) -> Windows {
        self.loki_labels = keys;
        self
    }

    pub fn routes(&self) -> &Arc<[Route]> {
        &self.routes
    }

    /// One event, already known to match route `route` (an index into the routes). May
    /// produce escalations now: a `first`, a `repeat`, or the summary of a group that had to
    /// make room. `silenced`: the id of a silence that covers the event, if any.
    pub fn observe(
        &mut self,
        route: usize,
        ev: &Event,
        context: &[String],
        now: Timestamp,
        silenced: Option<&str>,
        out: &mut Vec<Escalation>,
    ) {
        let routes = Arc::clone(&self.routes);
        let Some(r) = routes.get(route) else { return };
        let now = self.advance(now);
        self.changes += 1;
        self.keys.fill(&r.group_by, ev);
        let hash = self.keys.hash();
        let mut slot = self.state[route].find(hash, &self.keys);
        if let Some(s) = slot {
            // Bring the group up to date first, as a tick at `now` would have: a closed
            // window is summarized before this event opens the next one.
            if !self.advance_group(route, s, now, out) {
                slot = None;
            }
        }
        let s = match slot {
            Some(s) => s,
            None => self.create(route, hash, ev, context, now, out),
        };
        let inhibited = silenced.is_none() && self.inhibited(route, ev, now);
        let st = &mut self.state[route];
        st.touch(s);
        let Some(g) = st.get_mut(s) else { return };
        if !g.window_open {
            g.open_window(now);
        }
        if g.count == 0 {
            g.first_seen = now;
            g.sample = Sample::from_event(ev);
            g.context = Sample::trim_context(context);
        }
        g.count += 1;
        g.seen += 1;
        g.last_seen = now;
        match decide(g, r, now, silenced.is_some(), inhibited) {
            Decision::Notify(kind) => self.emit(route, s, kind, now, out),
            Decision::Hold(at) => g.release_at = Some(at),
            Decision::Suppress(reason, owed) => {
                g.unreported += 1;
                g.summary_due |= owed;
                st.counters.suppressed[reason as usize] += 1;
            }
        }
        self.schedule(route, s);
        self.clean_top();
    }

    /// Time passes: held first notifications go out after `group_wait`, windows that ended
    /// are summarized, groups with nothing left to do are dropped.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<Escalation>) {
        let now = self.advance(now);
        while let Some(&Reverse((due, stamp, route, s))) = self.timers.peek() {
            if due > now {
                break;
            }
            self.timers.pop();
            let route = route as usize;
            let Some(g) = self.state[route].get_mut(s) else {
                continue;
            };
            if g.timer.map(|(_, st)| st) != Some(stamp) {
                continue;
            }
            g.timer = None;
            self.changes += 1;
            if self.advance_group(route, s, now, out) {
                self.schedule(route, s);
            }
        }
        for st in &mut self.state {
            if st.next_sweep.is_some_and(|t| t <= now) {
                st.sweep_inhibitions(now);
            }
        }
        self.compact_timers();
        self.clean_top();
    }

    /// Input ended (`replay`): every held notification and every window runs to its end, as
    /// if time ran on. The windows are of no further use after this.
    pub fn finish(&mut self, out: &mut Vec<Escalation>) {
        self.tick(Timestamp::from_nanos(i64::MAX), out);
    }

    /// The earliest time [`Windows::tick`] has something to do.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.timers.peek().map(|Reverse((due, ..))| *due)
    }

    /// Live groups over all routes (`logward_fingerprints_active`).
    pub fn active_groups(&self) -> usize {
        self.state.iter().map(|st| st.live).sum()
    }

    /// The `n` groups with the most events in their open window (then the most recently seen)
    /// over every route, busiest first: what the status page lists. One pass over the live
    /// groups keeping a heap of `n`; the caller decides how often (not per event).
    pub fn top(&self, n: usize) -> Vec<GroupView<'_>> {
        let mut heap = BinaryHeap::with_capacity(n.saturating_add(1));
        for (route, st) in self.state.iter().enumerate() {
            for (slot, g) in st.slots.iter().enumerate() {
                let Some(g) = g else { continue };
                heap.push(Reverse((g.current_count(), g.last_seen, route, slot)));
                if heap.len() > n {
                    heap.pop();
                }
            }
        }
        heap.into_sorted_vec()
            .into_iter()
            .filter_map(|Reverse((count, _, route, slot))| {
                let g = self.state[route].slots.get(slot)?.as_ref()?;
                Some(GroupView {
                    route: &self.routes[route].name,
                    id: g.hash,
                    group: g.key.to_json(),
                    window_open: g.window_open,
                    window_start: g.window_start,
                    count,
                    seen: g.seen,
                    unreported: g.unreported,
                    first_seen: g.first_seen,
                    last_seen: g.last_seen,
                    last_notified: g.last_notified,
                    last_kind: g.last_kind,
                    held_until: g.release_at,
                    sample: &g.sample,
                })
            })
            .collect()
    }

    /// The counters since the last call.
    pub fn take_counters(&mut self) -> Counters {
        let mut c = Counters::default();
        for (r, st) in self.routes.iter().zip(&mut self.state) {
            let rc = std::mem::take(&mut st.counters);
            for (reason, n) in Reason::ALL.iter().zip(rc.suppressed) {
                if n > 0 {
                    c.suppressed.insert((r.name.clone(), *reason), n);
                }
            }
            for (kind, n) in KINDS.iter().zip(rc.escalations) {
                if n > 0 {
                    c.escalations.insert((r.name.clone(), *kind), n);
                }
            }
            if rc.evictions > 0 {
                c.evictions.insert(r.name.clone(), rc.evictions);
            }
        }
        c
    }

    /// A notification the receiver `refused.receiver` did not take (its rate limit): the
    /// escalation's events (its trigger, unless a summary, and its `suppressed`) are added to
    /// what that receiver is owed, and go out in the group's next escalation to it: the summary
    /// at the end of its window at the latest (a window is opened from `now` if none is).
    /// If the group is gone, it is made again from the escalation. Returns false when the
    /// route or receiver no longer exists.
    pub fn fold(
        &mut self,
        refused: &Escalation,
        now: Timestamp,
        out: &mut Vec<Escalation>,
    ) -> bool {
        let routes = Arc::clone(&self.routes);
        let Some(route) = routes.iter().position(|r| r.name == refused.route) else {
            return false;
        };
        let r = &routes[route];
        let receiver = if r.receivers.is_empty() {
            refused.receiver.is_empty().then_some(0)
        } else {
            r.receivers.iter().position(|n| *n == refused.receiver)
        };
        let Some(receiver) = receiver else {
            return false;
        };
        let Some(key) = GroupKey::from_json(&r.group_by, &refused.group) else {
            return false;
        };
        let n = refused.suppressed + u64::from(refused.kind != Kind::Summary);
        if n == 0 {
            return true;
        }
        let now = self.advance(now);
        self.changes += 1;
        self.keys.load(&key);
        let hash = self.keys.hash();
        let s = match self.state[route].find(hash, &self.keys) {
            Some(s) => s,
            None => {
                self.make_room(route, now, out);
                let st = &mut self.state[route];
                let sample = refused.sample.clone();
                let mut g = Group::new(key, hash, sample, refused.context.clone(), now);
                g.first_seen = refused.first_seen;
                g.last_seen = refused.last_seen;
                st.insert(g)
            }
        };
        let st = &mut self.state[route];
        st.counters.suppressed[Reason::RateLimited as usize] += n;
        let Some(g) = st.get_mut(s) else { return false };
        if g.folded.len() <= receiver {
            g.folded.resize(receiver + 1, 0);
        }
        g.folded[receiver] += n;
        if !g.window_open {
            g.open_window(now);
        }
        self.schedule(route, s);
        self.clean_top();
        true
    }

    /// Something changed since the last [`Windows::saved`] snapshot.
    pub fn dirty(&self) -> bool {
        self.changes > self.saved
    }

    /// A first or repeat was emitted since the last saved snapshot: persist before sending,
    /// so that a crash right after the send cannot lead to the same notification again.
    pub fn must_save_now(&self) -> bool {
        self.must_save > self.saved
    }

    /// Tells the windows that `snapshot` is durably stored.
    pub fn saved(&mut self, snapshot: &WindowsSnapshot) {
        self.saved = self.saved.max(snapshot.generation);
    }

    pub fn snapshot(&self) -> WindowsSnapshot {
        let routes = self
            .routes
            .iter()
            .zip(&self.state)
            .map(|(r, st)| RouteSnapshot {
                route: r.name.to_string(),
                groups: st
                    .slots
                    .iter()
                    .flatten()
                    .map(|g| group_snapshot(r, g))
                    .collect(),
                inhibitions: st
                    .inhibitions
                    .values()
                    .flatten()
                    .filter_map(|e| {
                        Some(InhibitionSnapshot {
                            rule: e.rule,
                            equal: r.inhibit.get(e.rule)?.equal.clone(),
                            values: e
                                .values
                                .iter()
                                .map(|v| v.as_deref().map(String::from))
                                .collect(),
                            until: e.until,
                        })
                    })
                    .collect(),
            })
            .collect();
        WindowsSnapshot {
            version: SNAPSHOT_VERSION,
            routes,
            generation: self.changes,
        }
    }

    /// Replaces the state with a snapshot's. Groups of routes that no longer exist, or whose
    /// `group_by` changed, are dropped; a route's groups beyond `max_groups` too (the least
    /// recently seen). Windows that ended while the agent was down are summarized by the next
    /// [`Windows::tick`] (`next_due` says it is due).
    pub fn restore(&mut self, s: WindowsSnapshot, now: Timestamp) {
        self.state = self.routes.iter().map(|_| RouteState::new()).collect();
        self.timers.clear();
        self.advance(now);
        if s.version != SNAPSHOT_VERSION {
            return;
        }
        let routes = Arc::clone(&self.routes);
        for rs in s.routes {
            let Some(route) = routes.iter().position(|r| *r.name == rs.route) else {
                continue;
            };
            let r = &routes[route];
            let mut groups: Vec<GroupSnapshot> = rs
                .groups
                .into_iter()
                .filter(|g| g.group.iter().map(|(k, _)| k).eq(r.group_by.iter()))
                .collect();
            groups.sort_by_key(|g| g.last_seen);
            let skip = groups.len().saturating_sub(r.max_groups);
            for gs in groups.into_iter().skip(skip) {
                let key = GroupKey::new(gs.group);
                self.keys.load(&key);
                let hash = self.keys.hash();
                if self.state[route].find(hash, &self.keys).is_some() {
                    continue;
                }
                let mut folded = vec![0; r.receivers.len().max(1)];
                for (name, n) in gs.folded {
                    if let Some(i) = r.receivers.iter().position(|x| **x == *name) {
                        folded[i] = n;
                    } else if r.receivers.is_empty() && name.is_empty() {
                        folded[0] = n;
                    }
                }
                let g = Group {
                    key,
                    hash,
                    next_same_hash: NIL,
                    lru_prev: NIL,
                    lru_next: NIL,
                    window_start: gs.window_start,
                    window_open: gs.window_open,
                    first_seen: gs.first_seen,
                    last_seen: gs.last_seen,
                    count: gs.count,
                    seen: 0,
                    unreported: gs.suppressed,
                    summary_due: gs.summary_due,
                    folded,
                    last_notified: gs.last_notified,
                    notified_in_window: gs.notified_in_window,
                    last_kind: gs.last_kind,
                    release_at: gs.release_at,
                    sample: gs.sample,
                    context: Vec::new(),
                    timer: None,
                };
                let s = self.state[route].insert(g);
                self.schedule(route, s);
            }
            let st = &mut self.state[route];
            for inh in rs.inhibitions {
                let same_rule = r
                    .inhibit
                    .get(inh.rule)
                    .is_some_and(|x| x.equal == inh.equal);
                if !same_rule || inh.until <= self.clock {
                    continue;
                }
                let values: Box<[KeyValue]> =
                    inh.values.into_iter().map(|v| v.map(Box::from)).collect();
                self.scratch.load(&GroupKey::new(
                    inh.equal
                        .iter()
                        .map(String::as_str)
                        .zip(values.iter().map(|v| v.as_deref())),
                ));
                let h = inhibition_hash(inh.rule, self.scratch.hash());
                register(st, r, h, inh.rule, values, inh.until, self.clock);
            }
        }
        self.clean_top();
        // What is in memory is what is on disk.
        self.changes += 1;
        self.saved = self.changes;
        self.must_save = 0;
    }

    fn advance(&mut self, now: Timestamp) -> Timestamp {
        if now > self.clock {
            self.clock = now;
        }
        self.clock
    }

    /// Applies what is due for a group at `now`: the held first, the window's end, dropping.
    /// Returns whether the group still exists. Does not schedule its next timer.
    fn advance_group(
        &mut self,
        route: usize,
        s: u32,
        now: Timestamp,
        out: &mut Vec<Escalation>,
    ) -> bool {
        let routes = Arc::clone(&self.routes);
        let r = &routes[route];
        let Some(g) = self.state[route].get(s) else {
            return false;
        };
        let end = g.window_end(r);
        let closing = g.window_open && end <= now;
        if let Some(at) = g.release_at {
            // A held first goes out at its time, and before its window's summary at the latest.
            if at <= now || closing {
                let at = at.min(end);
                if let Some(g) = self.state[route].get_mut(s) {
                    g.release_at = None;
                }
                self.emit(route, s, Kind::First, at, out);
            }
        }
        if closing {
            if let Some(g) = self.state[route].get_mut(s) {
                g.window_open = false;
                g.notified_in_window = false;
            }
        }
        // A closed window owes its summary now (checked even when it closed earlier, so a
        // restored state that says so cannot leave a group stuck).
        let owed = self.state[route]
            .get(s)
            .is_some_and(|g| !g.window_open && (g.summary_due || g.has_folded()));
        if owed {
            self.emit(
                route,
                s,
                Kind::Summary,
                if closing { end } else { now },
                out,
            );
        }
        let st = &mut self.state[route];
        if st.get(s).is_some_and(|g| g.droppable(r, now)) {
            st.remove(s);
            return false;
        }
        true
    }

    fn create(
        &mut self,
        route: usize,
        hash: u64,
        ev: &Event,
        context: &[String],
        now: Timestamp,
        out: &mut Vec<Escalation>,
    ) -> u32 {
        self.make_room(route, now, out);
        let r = &self.routes[route];
        let key = self.keys.to_key(&r.group_by);
        let g = Group::new(
            key,
            hash,
            Sample::from_event(ev),
            Sample::trim_context(context),
            now,
        );
        self.state[route].insert(g)
    }

    /// Evicts least recently seen groups until one more fits: a held first goes out, and a
    /// group owed a summary gets it, so that nothing is lost.
    fn make_room(&mut self, route: usize, now: Timestamp, out: &mut Vec<Escalation>) {
        let max = self.routes[route].max_groups.max(1);
        while self.state[route].live >= max {
            let s = self.state[route].lru_head;
            if self.state[route].get(s).is_none() {
                return;
            }
            // What is due for it first: a group whose time is up anyway is not an eviction.
            if !self.advance_group(route, s, now, out) {
                continue;
            }
            let Some(g) = self.state[route].get(s) else {
                return;
            };
            if g.release_at.is_some() {
                self.emit(route, s, Kind::First, now, out);
            }
            if self.state[route]
                .get(s)
                .is_some_and(|g| g.summary_due || g.has_folded())
            {
                self.emit(route, s, Kind::Summary, now, out);
            }
            let st = &mut self.state[route];
            st.remove(s);
            st.counters.evictions += 1;
        }
    }

    /// Whether an inhibit rule of the route holds `ev` back at `now`. An event that matches
    /// a rule's source is not inhibited by that rule (it would inhibit itself); an absent
    /// `equal` value equals nothing.
    fn inhibited(&mut self, route: usize, ev: &Event, now: Timestamp) -> bool {
        let r = &self.routes[route];
        let st = &self.state[route];
        if st.inhibition_count == 0 {
            return false;
        }
        for (i, rule) in r.inhibit.iter().enumerate() {
            if !rule.target.matches(ev) || rule.source.matches(ev) {
                continue;
            }
            self.scratch.fill(&rule.equal, ev);
            if self.scratch.any_absent() {
                continue;
            }
            let h = inhibition_hash(i, self.scratch.hash());
            let hit = st.inhibitions.get(&h).is_some_and(|list| {
                list.iter()
                    .any(|e| e.rule == i && e.until > now && self.scratch.eq_values(&e.values))
            });
            if hit {
                return true;
            }
        }
        false
    }

    /// Builds the escalation of `kind` for every receiver, and records it in the group.
    fn emit(&mut self, route: usize, s: u32, kind: Kind, at: Timestamp, out: &mut Vec<Escalation>) {
        let routes = Arc::clone(&self.routes);
        let r = &routes[route];
        let st = &mut self.state[route];
        let Some(g) = st.slots.get_mut(s as usize).and_then(Option::as_mut) else {
            return;
        };
        let query = query_for(&g.sample, &self.loki_labels);
        let group = g.key.to_json();
        let no_receiver: [Arc<str>; 1] = [Arc::from("")];
        let receivers = if r.receivers.is_empty() {
            &no_receiver[..]
        } else {
            &r.receivers[..]
        };
        for (i, receiver) in receivers.iter().enumerate() {
            let suppressed = g.unreported + g.folded.get(i).copied().unwrap_or(0);
            if kind == Kind::Summary && suppressed == 0 {
                continue;
            }
            out.push(Escalation {
                route: r.name.clone(),
                receiver: receiver.clone(),
                kind,
                group: group.clone(),
                fingerprint: g.sample.fingerprint,
                level: g.sample.level,
                service: g.sample.service.clone(),
                ci_run_id: g.sample.ci_run_id.clone(),
                pattern: g.sample.pattern.clone(),
                message: g.sample.message.clone(),
                count: g.count,
                suppressed,
                first_seen: g.first_seen,
                last_seen: g.last_seen,
                sample: g.sample.clone(),
                context: g.context.clone(),
                loki_query: query.clone(),
                host: self.host.clone(),
                mention: r.mention.clone(),
            });
        }
        g.unreported = 0;
        g.folded.clear();
        g.summary_due = false;
        g.last_kind = Some(kind);
        st.counters.escalations[kind_index(kind)] += 1;
        if kind == Kind::Summary {
            return;
        }
        g.last_notified = Some(at);
        g.notified_in_window = true;
        self.must_save = self.changes.max(1);
        // The notified record starts inhibitions until its window ends.
        let until = g.window_end(r);
        let mut new = Vec::new();
        for (i, rule) in r.inhibit.iter().enumerate() {
            if rule.source.matches(&g.sample) {
                self.scratch.fill(&rule.equal, &g.sample);
                if !self.scratch.any_absent() {
                    let h = inhibition_hash(i, self.scratch.hash());
                    new.push((i, h, self.scratch.to_values()));
                }
            }
        }
        for (i, h, values) in new {
            register(st, r, h, i, values, until, at);
        }
    }

    fn schedule(&mut self, route: usize, s: u32) {
        let r = &self.routes[route];
        let Some(g) = self.state[route].get_mut(s) else {
            return;
        };
        let due = g.due(r);
        if g.timer.map(|(d, _)| d) == Some(due) {
            return;
        }
        self.next_stamp += 1;
        g.timer = Some((due, self.next_stamp));
        self.timers
            .push(Reverse((due, self.next_stamp, route as u32, s)));
    }

    fn timer_live(state: &[RouteState], stamp: u64, route: u32, s: u32) -> bool {
        state
            .get(route as usize)
            .and_then(|st| st.get(s))
            .is_some_and(|g| g.timer.map(|(_, st)| st) == Some(stamp))
    }

    /// Pops dead timers off the top, so that `next_due` is exact.
    fn clean_top(&mut self) {
        while let Some(&Reverse((_, stamp, route, s))) = self.timers.peek() {
            if Windows::timer_live(&self.state, stamp, route, s) {
                break;
            }
            self.timers.pop();
        }
    }

    /// Dead timers (evicted groups, moved deadlines) are dropped in bulk once they outnumber
    /// the live ones, so the heap stays proportional to the live groups.
    fn compact_timers(&mut self) {
        if self.timers.len() > 2 * self.active_groups() + 1024 {
            let state = &self.state;
            self.timers.retain(|Reverse((_, stamp, route, s))| {
                Windows::timer_live(state, *stamp, *route, *s)
            });
        }
    }
}

fn decide(g: &Group, r: &Route, now: Timestamp, silenced: bool, inhibited: bool) -> Decision {
    if silenced {
        return Decision::Suppress(Reason::Silenced, false);
    }
    if g.release_at.is_some() {
        return Decision::Suppress(Reason::GroupWait, false);
    }
    if inhibited {
        return Decision::Suppress(Reason::Inhibited, false);
    }
    match g.last_notified {
        Some(last) if now < plus(last, r.repeat_interval) => {
            Decision::Suppress(Reason::Deduplicated, true)
        }
        Some(_) if g.count >= r.threshold => Decision::Notify(Kind::Repeat),
        Some(_) => Decision::Suppress(Reason::BelowThreshold, true),
        None if g.count >= r.threshold && !r.group_wait.is_zero() => {
            Decision::Hold(plus(now, r.group_wait))
        }
        None if g.count >= r.threshold => Decision::Notify(Kind::First),
        None => Decision::Suppress(Reason::BelowThreshold, false),
    }
}

/// Adds an inhibition (or extends one), keeping at most `max_groups` of them per route.
fn register(
    st: &mut RouteState,
    r: &Route,
    h: u64,
    rule: usize,
    values: Box<[KeyValue]>,
    until: Timestamp,
    now: Timestamp,
) {
    let list = st.inhibitions.entry(h).or_default();
    if let Some(e) = list
        .iter_mut()
        .find(|e| e.rule == rule && e.values == values)
    {
        e.until = e.until.max(until);
    } else {
        list.push(Inhibition {
            rule,
            values,
            until,
        });
        st.inhibition_count += 1;
    }
    st.next_sweep = Some(st.next_sweep.map_or(until, |t| t.min(until)));
    if st.inhibition_count > r.max_groups {
        st.sweep_inhibitions(now);
        if st.inhibition_count > r.max_groups {
            // Still full of live ones: the one that would end first goes.
            let oldest = st
                .inhibitions
                .iter()
                .flat_map(|(h, l)| l.iter().enumerate().map(move |(i, e)| (e.until, *h, i)))
                .min();
            if let Some((_, h, i)) = oldest {
                if let Some(l) = st.inhibitions.get_mut(&h) {
                    l.swap_remove(i);
                    if l.is_empty() {
                        st.inhibitions.remove(&h);
                    }
                }
                st.inhibition_count -= 1;
            }
        }
    }
}

fn group_snapshot(r: &Route, g: &Group) -> GroupSnapshot {
    let folded = g
        .folded
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| {
            let name = r.receivers.get(i).map_or("", |n| &**n);
            (name.to_string(), *n)
        })
        .collect();
    GroupSnapshot {
        group: g
            .key
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect(),
        window_start: g.window_start,
        window_open: g.window_open,
        first_seen: g.first_seen,
        last_seen: g.last_seen,
        count: g.count,
        suppressed: g.unreported,
        summary_due: g.summary_due,
        folded,
        last_notified: g.last_notified,
        notified_in_window: g.notified_in_window,
        last_kind: g.last_kind,
        release_at: g.release_at,
        sample: g.sample.clone(),
    }
}

/// The LogQL of a sample: its static labels and the promoted keys as the stream selector; as
/// the filter, the stable part of its message when that appears in the line as written (a
/// JSON line escapes its message), else of the line.
fn query_for(sample: &Sample, promoted: &[String]) -> String {
    let mut labels = (*sample.labels).clone();
    for key in promoted {
        if let Some(v) = value_of(key, sample) {
            labels.insert(key.clone(), v.text().into_owned());
        }
    }
    let part = sample
        .message
        .as_deref()
        .map(stable_part)
        .filter(|p| !p.is_empty() && sample.line.contains(*p));
    loki_query(&labels, part.unwrap_or(&sample.line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Fingerprint, Level};
    use crate::route::tests::event;
    use crate::route::{Inhibit, Matcher, matching_indices};

    const BASE_SECS: i64 = 1_700_000_000;

    fn at(secs: f64) -> Timestamp {
        Timestamp::from_nanos(BASE_SECS * 1_000_000_000 + (secs * 1e9).round() as i64)
    }

    fn mins(m: f64) -> Timestamp {
        at(m * 60.0)
    }

    fn error(fp: u64) -> Event {
        let mut ev = event(&format!(
            "2026-11-22T10:00:00Z ERROR db timeout after 30s id={fp}"
        ));
        ev.level = Some(Level::Error);
        ev.service = Some("api".into());
        ev.message = Some(format!("db timeout after 30s id={fp}"));
        ev.fingerprint = Some(Fingerprint(fp));
        ev
    }

    fn route(name: &str) -> Route {
        Route::new(name, Matcher::default(), vec!["chat".into()])
    }

    fn matcher(table: &str) -> Matcher {
        Matcher::from_table(&toml::from_str(table).unwrap()).unwrap()
    }

    fn kinds(sent: &[Escalation]) -> Vec<Kind> {
        sent.iter().map(|e| e.kind).collect()
    }

    /// Windows plus the bookkeeping every test checks: how many events went in, and the
    /// counters summed over `take_counters` calls.
    struct Harness {
        w: Windows,
        observed: u64,
        counters: Counters,
    }

    impl Harness {
        fn new(routes: Vec<Route>) -> Harness {
            Harness {
                w: Windows::new(routes.into()),
                observed: 0,
                counters: Counters::default(),
            }
        }

        fn observe(&mut self, route: usize, ev: &Event, t: Timestamp) -> Vec<Escalation> {
            self.observe_as(route, ev, t, None)
        }

        fn observe_as(
            &mut self,
            route: usize,
            ev: &Event,
            t: Timestamp,
            silenced: Option<&str>,
        ) -> Vec<Escalation> {
            let mut out = Vec::new();
            self.w.observe(route, ev, &[], t, silenced, &mut out);
            self.observed += 1;
            out
        }

        fn tick(&mut self, t: Timestamp) -> Vec<Escalation> {
            let mut out = Vec::new();
            self.w.tick(t, &mut out);
            out
        }

        /// Snapshot, JSON, a new process with `routes`, restore at `t`. Counters carry over.
        fn restart(&mut self, routes: Vec<Route>, t: Timestamp) {
            let c = self.w.take_counters();
            self.counters.add(&c);
            let text = serde_json::to_string(&self.w.snapshot()).unwrap();
            self.w = Windows::new(routes.into());
            self.w.restore(serde_json::from_str(&text).unwrap(), t);
        }

        fn counters(&mut self) -> &Counters {
            let c = self.w.take_counters();
            self.counters.add(&c);
            &self.counters
        }

        /// Every observed event either triggered a first or repeat, or is counted under a
        /// reason (rate limiting is per receiver and counted apart).
        fn assert_counts_add_up(&mut self) {
            let observed = self.observed;
            let c = self.counters();
            let notified: u64 = c
                .escalations
                .iter()
                .filter(|((_, k), _)| *k != Kind::Summary)
                .map(|(_, n)| n)
                .sum();
            let suppressed: u64 = c
                .suppressed
                .iter()
                .filter(|((_, r), _)| *r != Reason::RateLimited)
                .map(|(_, n)| n)
                .sum();
            assert_eq!(
                notified + suppressed,
                observed,
                "notified {notified} + suppressed {suppressed} != observed {observed}: {c:?}"
            );
        }
    }

    /// What a receiver was told about, in events: a first or repeat stands for its trigger,
    /// and every escalation for its `suppressed`.
    fn delivered(sent: &[Escalation], receiver: &str) -> u64 {
        sent.iter()
            .filter(|e| &*e.receiver == receiver)
            .map(|e| e.suppressed + u64::from(e.kind != Kind::Summary))
            .sum()
    }

    #[test]
    fn ten_thousand_identical_errors_give_one_first_and_one_summary() {
        let mut h = Harness::new(vec![route("errors")]);
        let ev = error(1);
        let mut sent = Vec::new();
        for i in 0..10_000 {
            let t = at(f64::from(i) * 0.03);
            sent.extend(h.tick(t));
            sent.extend(h.observe(0, &ev, t));
        }
        sent.extend(h.tick(mins(9.99)));
        assert_eq!(kinds(&sent), [Kind::First]);
        sent.extend(h.tick(mins(10.0)));
        assert_eq!(kinds(&sent), [Kind::First, Kind::Summary]);
        assert_eq!((sent[0].count, sent[0].suppressed), (1, 0));
        assert_eq!((sent[1].count, sent[1].suppressed), (10_000, 9_999));
        assert_eq!(sent[1].first_seen, at(0.0));
        assert_eq!(sent[1].last_seen, at(9_999.0 * 0.03));
        assert_eq!(
            h.counters().suppressed("errors", Reason::Deduplicated),
            9_999
        );
        assert_eq!(delivered(&sent, "chat"), 10_000);
        h.assert_counts_add_up();
    }

    #[test]
    fn top_lists_the_busiest_open_windows_first_up_to_the_cap() {
        let mut h = Harness::new(vec![route("errors"), route("all")]);
        let mut t = 0.0;
        for (fp, n) in [(1, 3), (2, 5), (3, 1)] {
            for _ in 0..n {
                h.observe(0, &error(fp), at(t));
                t += 1.0;
            }
        }
        h.observe(1, &error(4), at(10.0));
        let top = h.w.top(3);
        let counts: Vec<(u64, &str)> = top.iter().map(|g| (g.count, &**g.route)).collect();
        assert_eq!(counts, [(5, "errors"), (3, "errors"), (1, "all")]);
        assert_eq!(top[0].sample.fingerprint, Some(Fingerprint(2)));
        assert_eq!(
            (top[0].seen, top[0].first_seen, top[0].last_seen),
            (5, at(3.0), at(7.0))
        );
        assert!(
            top[0].last_notified.is_some(),
            "the first event was notified"
        );
        // A closed window counts nothing now: its group goes last.
        h.tick(mins(10.5));
        h.observe(0, &error(3), mins(10.6));
        let after: Vec<u64> = h.w.top(10).iter().map(|g| g.count).collect();
        assert_eq!(after[0], 1);
        assert!(after[1..].iter().all(|&c| c == 0), "{after:?}");
    }

    #[test]
    fn threshold_counts_within_window() {
        let mut r = route("errors");
        r.threshold = 3;
        r.window = Duration::from_secs(60);
        let mut h = Harness::new(vec![r]);
        let ev = error(1);
        let mut sent = Vec::new();
        // Two events per window, never three in one: below the threshold each time.
        for s in [0.0, 30.0, 70.0, 100.0, 140.0, 150.0] {
            sent.extend(h.tick(at(s)));
            sent.extend(h.observe(0, &ev, at(s)));
        }
        assert!(sent.is_empty(), "{sent:?}");
        sent.extend(h.tick(at(205.0)));
        assert!(
            sent.is_empty(),
            "a window below the threshold closes quietly: {sent:?}"
        );
        assert_eq!(h.w.active_groups(), 0, "and its group is dropped");
        // Three in one window.
        for s in [210.0, 230.0, 250.0] {
            sent.extend(h.observe(0, &ev, at(s)));
        }
        assert_eq!(kinds(&sent), [Kind::First]);
        assert_eq!((sent[0].count, sent[0].suppressed), (3, 2));
        assert_eq!(sent[0].first_seen, at(210.0));
        assert_eq!(h.counters().suppressed("errors", Reason::BelowThreshold), 8);
        h.assert_counts_add_up();
    }

    #[test]
    fn repeat_interval_renotifies() {
        let mut r = route("errors");
        r.window = Duration::from_secs(10 * 60);
        r.repeat_interval = Duration::from_secs(30 * 60);
        let mut h = Harness::new(vec![r]);
        let ev = error(1);
        let mut sent = Vec::new();
        for m in 0..70 {
            sent.extend(h.tick(mins(f64::from(m))));
            sent.extend(h.observe(0, &ev, mins(f64::from(m))));
        }
        sent.extend(h.tick(mins(70.0)));
        let at_kind = |k: Kind| {
            sent.iter()
                .filter(|e| e.kind == k)
                .map(|e| e.last_seen)
                .collect::<Vec<_>>()
        };
        assert_eq!(at_kind(Kind::First), [mins(0.0)]);
        assert_eq!(at_kind(Kind::Repeat), [mins(30.0), mins(60.0)]);
        assert_eq!(at_kind(Kind::Summary).len(), 7, "one per window: {sent:#?}");
        assert_eq!(delivered(&sent, "chat"), 70);
        h.assert_counts_add_up();
        // Quiet for a repeat_interval after the last repeat: the group is forgotten, and the
        // problem coming back is a new first.
        h.tick(mins(90.0));
        assert_eq!(h.w.active_groups(), 0);
        assert_eq!(kinds(&h.observe(0, &ev, mins(100.0))), [Kind::First]);
        h.assert_counts_add_up();
    }

    #[test]
    fn rate_limit_folds_into_summary_without_loss() {
        let mut r = Route::new(
            "errors",
            Matcher::default(),
            vec!["chat".into(), "mail".into()],
        );
        r.window = Duration::from_secs(10 * 60);
        let mut h = Harness::new(vec![r]);
        let ev = error(1);
        let mut delivered_to: Vec<Escalation> = Vec::new();
        let first = h.observe(0, &ev, at(0.0));
        assert_eq!(kinds(&first), [Kind::First, Kind::First]);
        // chat's rate limit refuses its copy; mail takes its own.
        let mut out = Vec::new();
        for e in first {
            if &*e.receiver == "chat" {
                assert!(h.w.fold(&e, at(1.0), &mut out));
            } else {
                delivered_to.push(e);
            }
        }
        for i in 1..=5 {
            assert!(h.observe(0, &ev, at(f64::from(i) * 10.0)).is_empty());
        }
        let summaries = h.tick(mins(10.0));
        let by = |r: &str| {
            summaries
                .iter()
                .find(|e| &*e.receiver == r)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            by("chat").suppressed,
            6,
            "the refused first and the 5 counted since"
        );
        assert_eq!(by("mail").suppressed, 5);
        delivered_to.push(by("mail"));
        // chat refuses the summary as well: it comes back one window later, to chat alone.
        assert!(h.w.fold(&by("chat"), at(601.0), &mut out));
        assert!(out.is_empty());
        assert!(h.tick(mins(20.0)).is_empty());
        let later = h.tick(at(1201.0));
        assert_eq!(kinds(&later), [Kind::Summary]);
        assert_eq!(
            (&*later[0].receiver, later[0].count, later[0].suppressed),
            ("chat", 0, 6)
        );
        delivered_to.extend(later);
        assert_eq!(delivered(&delivered_to, "chat"), 6);
        assert_eq!(delivered(&delivered_to, "mail"), 6);
        assert_eq!(
            h.counters().suppressed("errors", Reason::RateLimited),
            1 + 6
        );
        h.assert_counts_add_up();
    }

    #[test]
    fn folding_into_a_forgotten_group_makes_it_again() {
        let mut r = route("errors");
        r.window = Duration::from_secs(60);
        r.repeat_interval = Duration::from_secs(60);
        let mut h = Harness::new(vec![r]);
        let first = h.observe(0, &error(1), at(0.0));
        h.tick(at(60.0));
        assert_eq!(h.w.active_groups(), 0);
        let mut out = Vec::new();
        assert!(h.w.fold(&first[0], at(61.0), &mut out));
        assert_eq!(h.w.active_groups(), 1);
        let later = h.tick(at(121.0));
        assert_eq!(kinds(&later), [Kind::Summary]);
        assert_eq!(later[0].suppressed, 1);
        assert_eq!(later[0].group, first[0].group);
        assert_eq!(later[0].sample, first[0].sample);
        h.assert_counts_add_up();
    }

    #[test]
    fn fold_for_an_unknown_route_or_receiver_is_refused() {
        let mut h = Harness::new(vec![route("errors")]);
        let first = h.observe(0, &error(1), at(0.0));
        let mut out = Vec::new();
        let mut other = first[0].clone();
        other.route = "gone".into();
        assert!(!h.w.fold(&other, at(1.0), &mut out));
        let mut other = first[0].clone();
        other.receiver = "gone".into();
        assert!(!h.w.fold(&other, at(1.0), &mut out));
        h.assert_counts_add_up();
    }

    #[test]
    fn restart_does_not_renotify_within_repeat_interval() {
        let mut h = Harness::new(vec![route("errors")]);
        let ev = error(1);
        assert_eq!(kinds(&h.observe(0, &ev, at(0.0))), [Kind::First]);
        assert!(
            h.w.must_save_now(),
            "a first must be persisted before it is sent"
        );
        let snap = h.w.snapshot();
        let text = serde_json::to_string(&snap).unwrap();
        h.w.saved(&snap);
        assert!(!h.w.must_save_now() && !h.w.dirty());

        // kill -9, start again, read the same line again from the last saved position.
        h.counters();
        h.w = Windows::new(vec![route("errors")].into());
        h.w.restore(serde_json::from_str(&text).unwrap(), mins(1.0));
        assert!(!h.w.dirty());
        assert!(
            h.observe(0, &ev, mins(1.0)).is_empty(),
            "re-read line renotified"
        );
        assert_eq!(h.counters().suppressed("errors", Reason::Deduplicated), 1);
        assert!(h.w.dirty() && !h.w.must_save_now());
        // It keeps firing: summaries per window, and a repeat only after the interval.
        let mut sent = Vec::new();
        for m in (5..=65).step_by(5) {
            sent.extend(h.tick(mins(f64::from(m))));
            sent.extend(h.observe(0, &ev, mins(f64::from(m))));
        }
        assert!(!kinds(&sent).contains(&Kind::First), "{sent:#?}");
        let repeats: Vec<_> = sent.iter().filter(|e| e.kind == Kind::Repeat).collect();
        assert_eq!(repeats.len(), 1);
        assert_eq!(repeats[0].last_seen, mins(60.0));
        assert_eq!(sent[0].kind, Kind::Summary);
        assert_eq!(sent[0].suppressed, 2, "the re-read line and the one at 5m");
        h.assert_counts_add_up();
    }

    #[test]
    fn window_that_ended_while_down_is_summarized_after_restore() {
        let mut h = Harness::new(vec![route("errors")]);
        for t in [0.0, 1.0, 2.0] {
            h.observe(0, &error(1), at(t));
        }
        h.restart(vec![route("errors")], mins(30.0));
        assert!(h.w.next_due().is_some_and(|t| t <= mins(30.0)));
        let sent = h.tick(mins(30.0));
        assert_eq!(kinds(&sent), [Kind::Summary]);
        assert_eq!((sent[0].count, sent[0].suppressed), (3, 2));
        assert_eq!(sent[0].last_seen, at(2.0));
        h.assert_counts_add_up();
    }

    #[test]
    fn restore_drops_groups_of_routes_that_no_longer_exist_or_changed() {
        let mut h = Harness::new(vec![route("a"), route("b"), route("c")]);
        for r in 0..3 {
            h.observe(r, &error(1), at(0.0));
        }
        let mut regrouped = route("b");
        regrouped.group_by = vec!["ci_run_id".into()];
        h.restart(vec![route("c"), regrouped, route("d")], at(1.0));
        assert_eq!(h.w.active_groups(), 1, "only `c` keeps its group");
        assert!(
            h.observe(0, &error(1), at(2.0)).is_empty(),
            "`c` remembers its first"
        );
        h.assert_counts_add_up();
    }

    #[test]
    fn must_save_now_only_after_a_notification() {
        let mut h = Harness::new(vec![route("errors")]);
        assert!(!h.w.dirty() && !h.w.must_save_now());
        h.observe(0, &error(1), at(0.0));
        assert!(h.w.must_save_now());
        let snap = h.w.snapshot();
        h.observe(0, &error(1), at(1.0));
        h.w.saved(&snap);
        assert!(!h.w.must_save_now(), "the first is in the saved snapshot");
        assert!(h.w.dirty(), "the deduplicated event is not");
        let snap = h.w.snapshot();
        h.w.saved(&snap);
        assert!(!h.w.dirty());
        h.assert_counts_add_up();
    }

    #[test]
    fn max_groups_evicts_oldest_and_counts() {
        let mut r = route("errors");
        r.max_groups = 3;
        let mut h = Harness::new(vec![r]);
        let mut sent = Vec::new();
        // A, B, C notified; then C and A seen again (owed a summary): B is the oldest.
        for (fp, s) in [(0xA, 0.0), (0xB, 1.0), (0xC, 2.0), (0xC, 3.0), (0xA, 4.0)] {
            sent.extend(h.observe(0, &error(fp), at(s)));
        }
        assert_eq!(kinds(&sent), [Kind::First; 3]);
        let evicted = h.observe(0, &error(0xD), at(5.0));
        assert_eq!(
            kinds(&evicted),
            [Kind::First],
            "B owed nothing: evicted quietly"
        );
        assert_eq!(h.w.active_groups(), 3);
        // Next oldest is C, which owes one event: its summary goes out as it leaves.
        let evicted = h.observe(0, &error(0xE), at(6.0));
        assert_eq!(kinds(&evicted), [Kind::Summary, Kind::First]);
        assert_eq!(evicted[0].group["fingerprint"], "000000000000000c");
        assert_eq!((evicted[0].count, evicted[0].suppressed), (2, 1));
        assert_eq!(h.counters().evictions("errors"), 2);
        assert_eq!(h.w.active_groups(), 3);
        // B comes back: A, now the oldest, leaves with its summary, and B is a new group with a
        // new first (its memory was given up).
        let back = h.observe(0, &error(0xB), at(7.0));
        assert_eq!(kinds(&back), [Kind::Summary, Kind::First]);
        assert_eq!(back[0].group["fingerprint"], "000000000000000a");
        h.assert_counts_add_up();
    }

    #[test]
    fn a_group_whose_time_is_up_makes_room_without_an_eviction() {
        let mut r = route("errors");
        r.max_groups = 2;
        r.window = Duration::from_secs(60);
        r.repeat_interval = Duration::from_secs(60);
        let mut h = Harness::new(vec![r]);
        h.observe(0, &error(0xA), at(0.0));
        h.observe(0, &error(0xB), at(1.0));
        // No tick ran since: A and B are over, only not dropped yet.
        assert_eq!(kinds(&h.observe(0, &error(0xC), at(200.0))), [Kind::First]);
        assert_eq!(h.counters().evictions("errors"), 0);
        assert_eq!(
            h.w.active_groups(),
            2,
            "B stays until the next tick or eviction"
        );
        h.assert_counts_add_up();
    }

    #[test]
    fn evicting_a_held_group_sends_its_first() {
        let mut r = route("errors");
        r.max_groups = 1;
        r.group_wait = Duration::from_secs(30);
        let mut h = Harness::new(vec![r]);
        assert!(h.observe(0, &error(0xA), at(0.0)).is_empty());
        assert!(h.observe(0, &error(0xA), at(1.0)).is_empty());
        let sent = h.observe(0, &error(0xB), at(2.0));
        assert_eq!(kinds(&sent), [Kind::First]);
        assert_eq!((sent[0].count, sent[0].suppressed), (2, 1));
        assert_eq!(sent[0].group["fingerprint"], "000000000000000a");
        assert_eq!(
            kinds(&h.tick(at(32.0))),
            [Kind::First],
            "B's own first, after group_wait"
        );
        assert_eq!(h.counters().evictions("errors"), 1);
        h.assert_counts_add_up();
    }

    #[test]
    fn finish_sends_what_is_held_and_closes_every_window() {
        let mut r = route("errors");
        r.group_wait = Duration::from_secs(30);
        let mut h = Harness::new(vec![r]);
        for (fp, s) in [(1, 0.0), (1, 1.0), (2, 2.0)] {
            h.observe(0, &error(fp), at(s));
        }
        let mut out = Vec::new();
        h.w.finish(&mut out);
        assert_eq!(kinds(&out), [Kind::First, Kind::First]);
        assert_eq!(h.w.active_groups(), 0);
        assert_eq!(h.w.next_due(), None);
        h.assert_counts_add_up();
    }

    #[test]
    fn memory_stays_bounded_with_a_million_distinct_groups() {
        let mut r = route("errors");
        r.max_groups = 1_000;
        let mut h = Harness::new(vec![r]);
        let mut out = Vec::new();
        let mut ev = error(0);
        for i in 0..200_000u64 {
            ev.fingerprint = Some(Fingerprint(i));
            h.w.observe(0, &ev, &[], at(i as f64 * 0.001), None, &mut out);
            h.observed += 1;
            out.clear();
        }
        assert_eq!(h.w.active_groups(), 1_000);
        assert!(h.w.state[0].slots.len() <= 1_000, "slots are reused");
        assert!(
            h.w.timers.len() <= 2 * 1_000 + 1_024 + 1,
            "timers: {}",
            h.w.timers.len()
        );
        assert_eq!(h.counters().evictions("errors"), 199_000);
        h.assert_counts_add_up();
    }

    #[test]
    fn continue_sends_to_next_route() {
        let mut audit = Route::new("audit", Matcher::default(), vec!["archive".into()]);
        audit.continue_ = true;
        let errors = Route::new(
            "errors",
            matcher("level = \">=error\""),
            vec!["chat".into()],
        );
        let all = Route::new("all", Matcher::default(), vec!["mail".into()]);
        let routes = vec![audit, errors, all];
        let mut h = Harness::new(routes.clone());
        let mut sent = Vec::new();
        let ev = error(1);
        for r in matching_indices(&routes, &ev) {
            sent.extend(h.observe(r, &ev, at(0.0)));
        }
        let to: Vec<_> = sent.iter().map(|e| (&*e.route, &*e.receiver)).collect();
        assert_eq!(to, [("audit", "archive"), ("errors", "chat")]);
        let mut info = error(2);
        info.level = Some(Level::Info);
        let mut sent = Vec::new();
        for r in matching_indices(&routes, &info) {
            sent.extend(h.observe(r, &info, at(1.0)));
        }
        let to: Vec<_> = sent.iter().map(|e| &*e.route).collect();
        assert_eq!(to, ["audit", "all"]);
        h.assert_counts_add_up();
    }

    #[test]
    fn group_wait_batches_a_burst() {
        let mut r = route("errors");
        r.group_wait = Duration::from_secs(30);
        let mut h = Harness::new(vec![r]);
        let ev = error(1);
        for i in 0..50 {
            let t = at(f64::from(i) * 0.2);
            assert!(h.tick(t).is_empty());
            assert!(h.observe(0, &ev, t).is_empty(), "held during group_wait");
        }
        assert_eq!(h.w.next_due(), Some(at(30.0)));
        assert!(h.tick(at(29.9)).is_empty());
        let sent = h.tick(at(30.0));
        assert_eq!(kinds(&sent), [Kind::First]);
        assert_eq!((sent[0].count, sent[0].suppressed), (50, 49));
        assert_eq!(sent[0].first_seen, at(0.0));
        assert_eq!(h.counters().suppressed("errors", Reason::GroupWait), 49);
        assert!(h.w.must_save_now());
        // After the burst: deduplicated as usual.
        assert!(h.observe(0, &ev, at(31.0)).is_empty());
        assert_eq!(h.counters().suppressed("errors", Reason::Deduplicated), 1);
        h.assert_counts_add_up();
    }

    fn ci_route() -> Route {
        let mut r = Route::new("ci", matcher("level = \">=error\""), vec!["chat".into()]);
        r.inhibit = vec![Inhibit {
            source: matcher("pattern = \"gitlab.job-failed\""),
            target: matcher("level = \">=error\""),
            equal: vec!["ci_run_id".into()],
        }];
        r
    }

    fn run_event(fp: u64, run: Option<&str>, pattern: Option<&str>) -> Event {
        let mut ev = error(fp);
        ev.ci_run_id = run.map(String::from);
        ev.pattern = pattern.map(Arc::from);
        ev
    }

    #[test]
    fn run_failure_inhibits_its_line_errors() {
        let mut h = Harness::new(vec![ci_route()]);
        let failed = run_event(1, Some("42"), Some("gitlab.job-failed"));
        assert_eq!(kinds(&h.observe(0, &failed, at(0.0))), [Kind::First]);
        // The run's own line errors, distinct problems: counted, not notified.
        for fp in 10..15 {
            let line_error = run_event(fp, Some("42"), Some("maven.error"));
            assert!(h.observe(0, &line_error, at(fp as f64)).is_empty());
        }
        assert_eq!(h.counters().suppressed("ci", Reason::Inhibited), 5);
        // Another run, and an error with no run id (absent equals nothing), are not inhibited.
        let other_run = run_event(10, Some("43"), Some("maven.error"));
        assert_eq!(kinds(&h.observe(0, &other_run, at(20.0))), [Kind::First]);
        let no_run = run_event(11, None, Some("maven.error"));
        assert_eq!(kinds(&h.observe(0, &no_run, at(21.0))), [Kind::First]);
        // Inhibited groups owe no summary when their windows close.
        let closing = h.tick(mins(10.5));
        assert!(closing.is_empty(), "{closing:#?}");
        // The failure's window has closed: run 42's errors are notified again.
        let after = run_event(12, Some("42"), Some("maven.error"));
        let sent = h.observe(0, &after, mins(11.0));
        assert_eq!(kinds(&sent), [Kind::First]);
        h.assert_counts_add_up();
    }

    #[test]
    fn inhibition_survives_a_restart() {
        let mut h = Harness::new(vec![ci_route()]);
        let failed = run_event(1, Some("42"), Some("gitlab.job-failed"));
        h.observe(0, &failed, at(0.0));
        h.restart(vec![ci_route()], at(5.0));
        let line_error = run_event(10, Some("42"), Some("maven.error"));
        assert!(h.observe(0, &line_error, at(6.0)).is_empty());
        assert_eq!(h.counters().suppressed("ci", Reason::Inhibited), 1);
        h.assert_counts_add_up();
    }

    #[test]
    fn silence_suppresses_and_expires() {
        let mut h = Harness::new(vec![route("errors")]);
        let ev = error(1);
        for s in [0.0, 1.0, 2.0] {
            assert!(h.observe_as(0, &ev, at(s), Some("s-1")).is_empty());
        }
        assert_eq!(h.counters().suppressed("errors", Reason::Silenced), 3);
        // The silence has ended: the next event is notified, carrying the silenced ones.
        let sent = h.observe(0, &ev, at(3.0));
        assert_eq!(kinds(&sent), [Kind::First]);
        assert_eq!((sent[0].count, sent[0].suppressed), (4, 3));
        // Silenced again: counted, and no summary is sent for them while silenced...
        for s in [4.0, 5.0] {
            assert!(h.observe_as(0, &ev, at(s), Some("s-2")).is_empty());
        }
        assert!(h.tick(mins(10.0)).is_empty());
        // ...but they appear in the group's next escalation.
        assert!(h.observe(0, &ev, mins(20.0)).is_empty());
        let sent = h.tick(mins(30.0));
        assert_eq!(kinds(&sent), [Kind::Summary]);
        assert_eq!((sent[0].count, sent[0].suppressed), (1, 3));
        h.assert_counts_add_up();
    }

    #[test]
    fn escalations_do_not_depend_on_how_often_tick_runs() {
        let mut r = route("errors");
        r.threshold = 2;
        r.group_wait = Duration::from_secs(20);
        r.window = Duration::from_secs(120);
        r.repeat_interval = Duration::from_secs(300);
        let script: Vec<(u64, f64)> = (0..400u64)
            .map(|i| (i % 7, (i * i % 997) as f64 + i as f64 * 2.0))
            .collect();
        let run = |tick_every_event: bool| {
            let mut h = Harness::new(vec![r.clone()]);
            let mut sent = Vec::new();
            let mut script = script.clone();
            script.sort_by(|a, b| a.1.total_cmp(&b.1));
            for (fp, s) in script {
                if tick_every_event {
                    sent.extend(h.tick(at(s)));
                }
                sent.extend(h.observe(0, &error(fp), at(s)));
            }
            let mut out = Vec::new();
            h.w.finish(&mut out);
            sent.extend(out);
            h.assert_counts_add_up();
            let mut lines: Vec<String> = sent
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect();
            lines.sort();
            lines
        };
        let often = run(true);
        assert!(often.len() > 20, "{}", often.len());
        assert_eq!(often, run(false));
    }

    #[test]
    fn next_due_is_the_earliest_pending_work() {
        let mut r = route("errors");
        r.window = Duration::from_secs(600);
        r.repeat_interval = Duration::from_secs(3600);
        let mut h = Harness::new(vec![r]);
        assert_eq!(h.w.next_due(), None);
        h.observe(0, &error(1), at(0.0));
        assert_eq!(h.w.next_due(), Some(at(600.0)), "the window's end");
        h.tick(at(600.0));
        assert_eq!(h.w.next_due(), Some(at(3600.0)), "forgetting the group");
        h.tick(at(3600.0));
        assert_eq!((h.w.next_due(), h.w.active_groups()), (None, 0));
        h.assert_counts_add_up();
    }

    #[test]
    fn time_going_backwards_is_taken_as_now() {
        let mut h = Harness::new(vec![route("errors")]);
        h.observe(0, &error(1), at(100.0));
        h.observe(0, &error(1), at(50.0));
        let sent = h.tick(at(100.0 + 600.0));
        assert_eq!(kinds(&sent), [Kind::Summary]);
        assert_eq!(
            (sent[0].first_seen, sent[0].last_seen),
            (at(100.0), at(100.0))
        );
        h.assert_counts_add_up();
    }

    #[test]
    fn unknown_route_index_is_ignored() {
        let mut h = Harness::new(vec![route("errors")]);
        let mut out = Vec::new();
        h.w.observe(7, &error(1), &[], at(0.0), None, &mut out);
        assert!(out.is_empty());
        assert_eq!(h.w.active_groups(), 0);
        assert!(!h.w.dirty(), "nothing was taken in");
        h.assert_counts_add_up();
    }

    #[test]
    fn escalation_carries_the_group_sample_context_and_query() {
        let mut r = route("errors");
        r.group_by = vec!["service".into(), "ci_run_id".into()];
        let mut h = Harness::new(vec![r]);
        h.w = Windows::new(h.w.routes().clone())
            .with_host("build-01")
            .with_loki_labels(vec!["service".into()]);
        let mut out = Vec::new();
        let context = vec!["INFO connecting".to_string(), "WARN retrying".to_string()];
        h.w.observe(0, &error(1), &context, at(0.0), None, &mut out);
        h.observed += 1;
        let e = &out[0];
        assert_eq!(
            serde_json::to_value(&e.group).unwrap(),
            serde_json::json!({"service": "api", "ci_run_id": null})
        );
        assert_eq!(e.fingerprint, Some(Fingerprint(1)));
        assert_eq!(e.level, Some(Level::Error));
        assert_eq!(e.service.as_deref(), Some("api"));
        assert_eq!(e.message.as_deref(), Some("db timeout after 30s id=1"));
        assert_eq!(
            e.sample.line,
            "2026-11-22T10:00:00Z ERROR db timeout after 30s id=1"
        );
        assert_eq!(e.context, context);
        assert_eq!(e.host, "build-01");
        assert_eq!(
            e.loki_query,
            r#"{job="jenkins", service="api"} |= "db timeout after""#
        );
        h.assert_counts_add_up();
    }

    #[test]
    fn route_without_receivers_still_escalates_once() {
        let mut h = Harness::new(vec![Route::new("replay", Matcher::default(), vec![])]);
        let sent = h.observe(0, &error(1), at(0.0));
        assert_eq!(sent.len(), 1);
        assert_eq!(&*sent[0].receiver, "");
        h.assert_counts_add_up();
    }

    #[test]
    fn groups_with_the_same_hash_stay_apart() {
        let mut st = RouteState::new();
        let names = vec!["fingerprint".to_string()];
        let mut keys = KeyBuf::default();
        let mut slots = Vec::new();
        for fp in 0..4u64 {
            keys.fill(&names, &error(fp));
            let key = keys.to_key(&names);
            let g = Group::new(key, 42, Sample::from_event(&error(fp)), Vec::new(), at(0.0));
            slots.push(st.insert(g));
        }
        for fp in 0..4u64 {
            keys.fill(&names, &error(fp));
            assert_eq!(st.find(42, &keys), Some(slots[fp as usize]));
        }
        st.remove(slots[2]);
        st.remove(slots[3]);
        for fp in 0..4u64 {
            keys.fill(&names, &error(fp));
            let want = (fp < 2).then(|| slots[fp as usize]);
            assert_eq!(st.find(42, &keys), want);
        }
        assert_eq!((st.live, st.lru_head, st.lru_tail), (2, slots[0], slots[1]));
    }
}
