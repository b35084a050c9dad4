//! The template miner: Drain-style clustering of masked messages, for the
//! variable parts masking does not recognise (a bare user name, a branch name
//! in one token position).
//!
//! This file owns the clusters, their stable keys, the LRU bound and the
//! snapshot format. It must not mask, hash fingerprints, read or write files
//! (the caller persists a `MinerSnapshot`), or decide which patterns are mined.
//!
//! How a line finds its cluster (Drain, He et al. 2017, with a flat tree and
//! one deliberate change for stability):
//! - A line is split on single spaces; its leaf is keyed by scope, token count
//!   and the first `depth` tokens, where a token holding a digit or a
//!   placeholder stands for `<*>`: leading tokens are taken to be constant, as
//!   in Drain, so `user alice ...` and `user bob ...` share a leaf only if the
//!   name is past the first `depth` tokens.
//! - In its leaf, the line joins the oldest cluster whose key (the masked line
//!   that created it) has at least `similarity` of its tokens equal to the
//!   line's, position by position. Joining turns the differing positions of the
//!   cluster's template into `<*>`. Otherwise the line starts a new cluster.
//!
//! Stability: a cluster's `key` never changes; its `template` is the current
//! merged form. Fingerprints hash the key, so the first occurrence of a message
//! and the later ones that widen its template land in one dedup group. Drain
//! compares a line with the evolving template, so a cluster that widens can
//! take lines from another one; here a line is compared with the immutable
//! keys and goes to the oldest that fits, so a line's cluster is a function of
//! the set of live keys alone: younger clusters cannot take it, older ones did
//! not fit when it came and their keys have not changed since. Only eviction
//! of its own cluster moves a line. Keys and ages survive restarts through
//! `snapshot`/`restore`. A line equal to a key finds it by an exact lookup,
//! which is the same answer the scan would give, only faster.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// What the differing positions of a cluster's template become.
pub const WILDCARD: &str = "<*>";

/// The miner's parameters. See docs/fingerprints.md for why the defaults are what they are.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerConfig {
    /// Leading tokens that choose a leaf (Drain's tree depth minus two).
    pub depth: usize,
    /// The share of positions where a line must equal a cluster's key to join it.
    pub similarity: f64,
    /// The most clusters kept; beyond it the least recently used one is evicted.
    pub max_templates: usize,
    /// Longer masked messages are not mined, so memory stays bounded by
    /// `max_templates × max_message_bytes` whatever the input.
    pub max_message_bytes: usize,
}

impl Default for MinerConfig {
    fn default() -> MinerConfig {
        MinerConfig {
            depth: 2,
            similarity: 0.6,
            max_templates: 10_000,
            max_message_bytes: 1024,
        }
    }
}

/// A line's cluster: the stable `key` to fingerprint, the `template` to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mined {
    pub key: Arc<str>,
    pub template: Arc<str>,
}

/// The miner's state as saved in the state directory, least recently used cluster first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum MinerSnapshot {
    #[serde(rename = "1")]
    V1 { clusters: Vec<SavedCluster> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedCluster {
    pub scope: String,
    pub key: String,
    pub template: String,
    /// Creation order: ties between clusters go to the oldest, across restarts too.
    pub seq: u64,
}

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Cluster {
    scope: Arc<str>,
    key: Arc<str>,
    template: Arc<str>,
    /// Each token's span in `key`.
    tokens: Box<[(u32, u32)]>,
    /// Positions the template shows as `<*>`.
    wild: Box<[bool]>,
    seq: u64,
    key_hash: u64,
    leaf: u64,
    /// Neighbours in the recency list (towards the most and the least recently used).
    newer: u32,
    older: u32,
}

impl Cluster {
    fn token(&self, k: usize) -> &str {
        let (s, e) = self.tokens[k];
        &self.key[s as usize..e as usize]
    }
}

/// Maps keyed by hashes this file computed already: the hasher passes them through.
type ByHash<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A fixed-depth Drain tree with bounded, stable clusters.
#[derive(Debug)]
pub struct Miner {
    config: MinerConfig,
    /// Seeds the internal maps' hashes, per process: input cannot be crafted to collide them.
    seed: u64,
    slots: Vec<Option<Cluster>>,
    free: Vec<u32>,
    newest: u32,
    oldest: u32,
    len: usize,
    by_key: ByHash<u32>,
    /// Leaf → its clusters, oldest first.
    leaves: ByHash<Vec<u32>>,
    next_seq: u64,
    evictions: u64,
    /// Clusters made or widened: what a saved snapshot must be renewed for.
    changes: u64,
    tokens: Vec<(u32, u32)>,
    leaf_buf: Vec<u8>,
}

impl Miner {
    pub fn new(config: MinerConfig) -> Miner {
        Miner {
            config,
            seed: RandomState::new().hash_one(0x006c_6f67_7761_7264_u64),
            slots: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            len: 0,
            by_key: ByHash::default(),
            leaves: ByHash::default(),
            next_seq: 0,
            evictions: 0,
            changes: 0,
            tokens: Vec::new(),
            leaf_buf: Vec::new(),
        }
    }

    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    /// The cluster of a masked line within `scope` (a pattern id: equal words
    /// under two patterns are different clusters). `None` for a line longer
    /// than `max_message_bytes`, which is not mined: its template is itself.
    pub fn add(&mut self, scope: &str, masked: &str) -> Option<Mined> {
        if masked.len() > self.config.max_message_bytes || self.config.max_templates == 0 {
            return None;
        }
        let scope_hash = xxh3_64_with_seed(scope.as_bytes(), self.seed);
        let key_hash = xxh3_64_with_seed(masked.as_bytes(), scope_hash);
        if let Some(&id) = self.by_key.get(&key_hash) {
            let c = self.cluster(id);
            if &*c.key == masked && &*c.scope == scope {
                return Some(self.hit(id));
            }
        }
        tokenize(masked, &mut self.tokens);
        let leaf = self.leaf_hash(scope_hash, masked);
        if let Some(id) = self.best(leaf, scope, masked) {
            self.widen(id, masked);
            return Some(self.hit(id));
        }
        let id = self.create(scope, masked, key_hash, leaf);
        Some(self.hit(id))
    }

    /// Grows when a cluster is made or widened (not when one is only used):
    /// a snapshot saved at one value stays good until it moves.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Clusters held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Clusters evicted to stay within `max_templates`, since this miner was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Every cluster, least recently used first, for saving.
    pub fn snapshot(&self) -> MinerSnapshot {
        let mut clusters = Vec::with_capacity(self.len);
        let mut id = self.oldest;
        while id != NIL {
            let c = self.cluster(id);
            clusters.push(SavedCluster {
                scope: c.scope.to_string(),
                key: c.key.to_string(),
                template: c.template.to_string(),
                seq: c.seq,
            });
            id = c.newer;
        }
        MinerSnapshot::V1 { clusters }
    }

    /// Replaces every cluster with the saved ones, keeping their keys, templates,
    /// recency and age. A saved cluster whose template is not its key with some
    /// tokens widened to `<*>` (a hand-edited or foreign file) is dropped; beyond
    /// `max_templates`, the least recently used are evicted. Returns the clusters kept.
    pub fn restore(&mut self, snapshot: MinerSnapshot) -> usize {
        let MinerSnapshot::V1 { clusters } = snapshot;
        *self = Miner {
            seed: self.seed,
            evictions: self.evictions,
            ..Miner::new(self.config.clone())
        };
        for saved in clusters {
            if saved.key.len() > self.config.max_message_bytes {
                continue;
            }
            let Some(wild) = widened_positions(&saved.key, &saved.template) else {
                continue;
            };
            let scope_hash = xxh3_64_with_seed(saved.scope.as_bytes(), self.seed);
            let key_hash = xxh3_64_with_seed(saved.key.as_bytes(), scope_hash);
            if let Some(&other) = self.by_key.get(&key_hash) {
                let c = self.cluster(other);
                if *c.key == *saved.key && *c.scope == *saved.scope {
                    continue;
                }
            }
            tokenize(&saved.key, &mut self.tokens);
            let leaf = self.leaf_hash(scope_hash, &saved.key);
            let id = self.create(&saved.scope, &saved.key, key_hash, leaf);
            let c = self.cluster_mut(id);
            c.seq = saved.seq;
            for k in wild {
                c.wild[k] = true;
            }
            c.template = Arc::from(saved.template);
        }
        self.next_seq = self
            .slots
            .iter()
            .flatten()
            .map(|c| c.seq + 1)
            .max()
            .unwrap_or(0);
        let slots = &self.slots;
        for ids in self.leaves.values_mut() {
            ids.sort_by_key(|&id| slots[id as usize].as_ref().map_or(0, |c| c.seq));
        }
        self.len
    }

    fn cluster(&self, id: u32) -> &Cluster {
        match &self.slots[id as usize] {
            Some(c) => c,
            None => unreachable!("cluster ids in maps and lists are live"),
        }
    }

    fn cluster_mut(&mut self, id: u32) -> &mut Cluster {
        match &mut self.slots[id as usize] {
            Some(c) => c,
            None => unreachable!("cluster ids in maps and lists are live"),
        }
    }

    fn hit(&mut self, id: u32) -> Mined {
        self.touch(id);
        let c = self.cluster(id);
        Mined {
            key: c.key.clone(),
            template: c.template.clone(),
        }
    }

    /// Scope, token count and the leading tokens, as one hash.
    fn leaf_hash(&mut self, scope_hash: u64, masked: &str) -> u64 {
        let buf = &mut self.leaf_buf;
        buf.clear();
        buf.extend_from_slice(&(self.tokens.len() as u64).to_le_bytes());
        for &(s, e) in self.tokens.iter().take(self.config.depth) {
            let tok = &masked[s as usize..e as usize];
            let variable = tok.bytes().any(|c| c.is_ascii_digit() || c == b'<');
            buf.extend_from_slice(if variable { WILDCARD } else { tok }.as_bytes());
            buf.push(0x1f);
        }
        xxh3_64_with_seed(buf, scope_hash)
    }

    /// The oldest cluster of the leaf whose key is similar enough to the line, if any.
    fn best(&self, leaf: u64, scope: &str, masked: &str) -> Option<u32> {
        let ids = self.leaves.get(&leaf)?;
        let n = self.tokens.len();
        // Equal positions needed; the float is used once per line, here, and
        // nudged down so that 0.7 × 10 (7.000000000000001) needs 7, not 8.
        let need = (self.config.similarity * n as f64 - 1e-9).ceil().max(1.0) as usize;
        let allowed = n.saturating_sub(need);
        ids.iter().copied().find(|&id| {
            let c = self.cluster(id);
            // A hash collision between leaves would show here.
            if c.tokens.len() != n || &*c.scope != scope {
                return false;
            }
            let mut differing = 0;
            self.tokens.iter().enumerate().all(|(k, &(s, e))| {
                if c.token(k) != &masked[s as usize..e as usize] {
                    differing += 1;
                }
                differing <= allowed
            })
        })
    }

    /// Turns the template's positions where `masked` differs from the key into `<*>`.
    fn widen(&mut self, id: u32, masked: &str) {
        let tokens = std::mem::take(&mut self.tokens);
        let c = self.cluster_mut(id);
        let mut changed = false;
        for (k, &(s, e)) in tokens.iter().enumerate() {
            if !c.wild[k] && c.token(k) != &masked[s as usize..e as usize] {
                c.wild[k] = true;
                changed = true;
            }
        }
        if changed {
            self.changes += 1;
            let c = self.cluster_mut(id);
            let mut t = String::with_capacity(c.key.len());
            for k in 0..c.tokens.len() {
                if k > 0 {
                    t.push(' ');
                }
                t.push_str(if c.wild[k] { WILDCARD } else { c.token(k) });
            }
            c.template = Arc::from(t);
        }
        self.tokens = tokens;
    }

    /// A new cluster for `masked`, whose tokens are in `self.tokens`; evicts first when full.
    fn create(&mut self, scope: &str, masked: &str, key_hash: u64, leaf: u64) -> u32 {
        if self.len >= self.config.max_templates {
            self.evict_oldest();
        }
        self.changes += 1;
        let key: Arc<str> = Arc::from(masked);
        let cluster = Cluster {
            scope: Arc::from(scope),
            template: key.clone(),
            key,
            tokens: self.tokens.as_slice().into(),
            wild: vec![false; self.tokens.len()].into(),
            seq: self.next_seq,
            key_hash,
            leaf,
            newer: NIL,
            older: NIL,
        };
        self.next_seq += 1;
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(cluster);
                id
            }
            None => {
                self.slots.push(Some(cluster));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_key.insert(key_hash, id);
        self.leaves.entry(leaf).or_default().push(id);
        self.len += 1;
        self.link_newest(id);
        id
    }

    fn evict_oldest(&mut self) {
        let id = self.oldest;
        if id == NIL {
            return;
        }
        self.unlink(id);
        let Some(c) = self.slots[id as usize].take() else {
            return;
        };
        if self.by_key.get(&c.key_hash) == Some(&id) {
            self.by_key.remove(&c.key_hash);
        }
        if let Some(ids) = self.leaves.get_mut(&c.leaf) {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                self.leaves.remove(&c.leaf);
            }
        }
        self.free.push(id);
        self.len -= 1;
        self.evictions += 1;
    }

    fn touch(&mut self, id: u32) {
        if self.newest != id {
            self.unlink(id);
            self.link_newest(id);
        }
    }

    fn unlink(&mut self, id: u32) {
        let (newer, older) = {
            let c = self.cluster(id);
            (c.newer, c.older)
        };
        match newer {
            NIL => self.newest = older,
            n => self.cluster_mut(n).older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.cluster_mut(o).newer = newer,
        }
    }

    fn link_newest(&mut self, id: u32) {
        let old_newest = self.newest;
        {
            let c = self.cluster_mut(id);
            c.newer = NIL;
            c.older = old_newest;
        }
        match old_newest {
            NIL => self.oldest = id,
            n => self.cluster_mut(n).newer = id,
        }
        self.newest = id;
    }
}

/// Splits on single spaces, so that joining the tokens with spaces gives the line back.
fn tokenize(masked: &str, out: &mut Vec<(u32, u32)>) {
    out.clear();
    let mut start = 0;
    for sp in memchr::memchr_iter(b' ', masked.as_bytes()) {
        out.push((start as u32, sp as u32));
        start = sp + 1;
    }
    out.push((start as u32, masked.len() as u32));
}

/// The token positions a saved template has widened, if it is `key` with some tokens as `<*>`.
fn widened_positions(key: &str, template: &str) -> Option<Vec<usize>> {
    let mut wild = Vec::new();
    let mut k = key.split(' ');
    let mut t = template.split(' ');
    for i in 0.. {
        match (k.next(), t.next()) {
            (None, None) => return Some(wild),
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(WILDCARD)) => wild.push(i),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn miner() -> Miner {
        Miner::new(MinerConfig::default())
    }

    fn add(m: &mut Miner, line: &str) -> Mined {
        m.add("p", line).expect("short lines are mined")
    }

    #[test]
    fn drain_merges_one_varying_token() {
        let mut m = miner();
        let first = add(&mut m, "session of user alice expired after <duration>");
        let second = add(&mut m, "session of user bob expired after <duration>");
        assert_eq!(
            &*second.template,
            "session of user <*> expired after <duration>"
        );
        assert_eq!(second.key, first.key);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_merged_cluster_keeps_its_key() {
        let mut m = miner();
        let first = add(&mut m, "deploy of branch main started by alice");
        assert_eq!(first.template, first.key);
        add(&mut m, "deploy of branch develop started by bob");
        let again = add(&mut m, "deploy of branch main started by alice");
        assert_eq!(&*again.key, "deploy of branch main started by alice");
        assert_eq!(&*again.template, "deploy of branch <*> started by <*>");
    }

    #[test]
    fn a_line_keeps_its_cluster_whatever_comes_later() {
        // 81 lines of one leaf varying in four positions: clusters overlap and
        // widen, and every line is seen again in other orders.
        let w = ["red", "green", "blue"];
        let lines: Vec<String> = (0..81)
            .map(|i| {
                format!(
                    "task sync {} {} {} {}",
                    w[i % 3],
                    w[i / 3 % 3],
                    w[i / 9 % 3],
                    w[i / 27 % 3]
                )
            })
            .collect();
        let mut m = miner();
        let mut first: HashMap<usize, Arc<str>> = HashMap::new();
        let mut order: Vec<usize> = (0..lines.len()).collect();
        let mut state = 0x9e37_79b9_u32;
        for round in 0..6 {
            for k in (1..order.len()).rev() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                order.swap(k, state as usize % (k + 1));
            }
            for &i in &order {
                let key = add(&mut m, &lines[i]).key;
                let was = first.entry(i).or_insert_with(|| key.clone());
                assert_eq!(*was, key, "`{}` moved in round {round}", lines[i]);
            }
        }
        assert!(m.len() > 1, "the lines do not all fit one cluster");
    }

    #[test]
    fn different_leading_words_and_lengths_are_different_clusters() {
        let mut m = miner();
        let a = add(&mut m, "upload of x failed");
        let b = add(&mut m, "download of x failed");
        let c = add(&mut m, "upload of x failed twice");
        assert_ne!(a.key, b.key);
        assert_ne!(a.key, c.key);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn leading_tokens_with_digits_or_placeholders_share_a_wildcard_branch() {
        let mut m = miner();
        let a = add(&mut m, "<ip> user alice logged in");
        let b = add(&mut m, "<ip> user bob logged in");
        assert_eq!(a.key, b.key);
        let c = add(&mut m, "worker-<num> picked job <num>");
        let d = add(&mut m, "w7 picked job <num>");
        assert_eq!(c.key, d.key);
        assert_eq!(&*d.template, "<*> picked job <num>");
    }

    #[test]
    fn lines_too_different_start_their_own_cluster() {
        let mut m = miner();
        let a = add(&mut m, "connection to <ip> refused after <num> attempts");
        let b = add(&mut m, "connection to <ip> reset by remote peer");
        assert_ne!(a.key, b.key);
        assert_eq!(&*b.template, "connection to <ip> reset by remote peer");
    }

    #[test]
    fn the_same_words_under_two_scopes_are_two_clusters() {
        let mut m = miner();
        let a = m.add("nginx", "user alice denied").expect("mined");
        let b = m.add("sshd", "user bob denied").expect("mined");
        assert_eq!(&*b.template, "user bob denied");
        assert_ne!(a.template, b.template);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn max_templates_bound_holds_and_evictions_are_counted() {
        let mut m = Miner::new(MinerConfig {
            max_templates: 3,
            ..MinerConfig::default()
        });
        for w in ["alpha", "beta", "gamma"] {
            add(&mut m, &format!("{w} started"));
        }
        add(&mut m, "alpha started"); // beta is now the least recently used
        add(&mut m, "delta started");
        assert_eq!(m.len(), 3);
        assert_eq!(m.evictions(), 1);
        let MinerSnapshot::V1 { clusters } = m.snapshot();
        let keys: Vec<&str> = clusters.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["gamma started", "alpha started", "delta started"]);
        for i in 0..100u8 {
            let word: String = [b'a' + i / 26, b'a' + i % 26]
                .map(char::from)
                .iter()
                .collect();
            add(&mut m, &format!("{word} started"));
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.evictions(), 101);
    }

    #[test]
    fn snapshot_and_restore_keep_keys_templates_and_recency() {
        let mut m = miner();
        let key = add(&mut m, "user session of alice opened from eu").key;
        add(&mut m, "user session of bob opened from us");
        add(&mut m, "disk <num> is full");
        let json = serde_json::to_string(&m.snapshot()).expect("serializes");
        assert!(json.starts_with(r#"{"version":"1","clusters":["#), "{json}");

        let mut restored = miner();
        let snapshot: MinerSnapshot = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(restored.restore(snapshot), 2);
        assert_eq!(restored.snapshot(), m.snapshot());
        let again = add(&mut restored, "user session of carol opened from ap");
        assert_eq!(again.key, key);
        assert_eq!(&*again.template, "user session of <*> opened from <*>");
    }

    #[test]
    fn restore_drops_inconsistent_clusters_and_respects_the_bound() {
        let saved = |key: &str, template: &str, seq| SavedCluster {
            scope: "p".into(),
            key: key.into(),
            template: template.into(),
            seq,
        };
        let snapshot = MinerSnapshot::V1 {
            clusters: vec![
                saved("a b c", "a <*> c", 0),
                saved("a b c", "x b c", 1),
                saved("d e", "d e f", 2),
                saved("g h", "g h", 3),
                saved("i j", "i <*>", 4),
            ],
        };
        let mut m = Miner::new(MinerConfig {
            max_templates: 2,
            ..MinerConfig::default()
        });
        assert_eq!(m.restore(snapshot), 2);
        let MinerSnapshot::V1 { clusters } = m.snapshot();
        assert_eq!(
            clusters,
            vec![saved("g h", "g h", 3), saved("i j", "i <*>", 4)]
        );
        assert_eq!(add(&mut m, "new line").key.as_ref(), "new line");
    }

    /// Lines of 17 known problems, 60 of each, with the words that vary
    /// between occurrences (names, hosts, branches) drawn at random, and pairs
    /// of different problems that share most of their words.
    fn reference_corpus() -> Vec<(usize, String)> {
        let names = ["alice", "bob", "carol", "dave", "erin", "frank"];
        let branches = [
            "main",
            "develop",
            "feature/login",
            "hotfix/payments",
            "release/next",
        ];
        let hosts = ["db-primary", "cache-eu", "api-gw", "builder-arm", "vault"];
        let steps = ["compile", "lint", "package", "deploy-staging"];
        let tables = ["orders", "users", "invoices"];
        let images = ["nginx:1.25", "redis:7.2", "postgres:16.1", "alpine:3.19"];
        let methods = ["password", "ssh-key", "token"];
        let mut state = 0x2545_f491_u32;
        let mut pick = |n: usize| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize % n
        };
        let mut lines = Vec::new();
        for _ in 0..60 {
            let (n, b, h, s) = (
                names[pick(6)],
                branches[pick(5)],
                hosts[pick(5)],
                steps[pick(4)],
            );
            let (t, i, m) = (tables[pick(3)], images[pick(4)], methods[pick(3)]);
            let problems = [
                format!("session of user {n} expired"),
                format!("deploy of branch {b} started by {n}"),
                format!("build for project {h} is waiting for an available runner"),
                format!("cannot resolve host {h}: temporary failure in name resolution"),
                format!("permission denied for user {n} on table {t}"),
                format!("pulling image {i} for container {h}"),
                format!("user {n} logged in from 10.0.0.{} using {m}", pick(200)),
                format!("step {s} finished in {}ms exit_code=0", pick(9000)),
                format!("step {s} failed in {}ms exit_code=1", pick(9000)),
                format!(
                    "connection to 10.1.2.{}:5432 refused after {} attempts",
                    pick(200),
                    pick(5)
                ),
                format!(
                    "connection to 10.1.2.{}:5432 timed out after {}s",
                    pick(200),
                    pick(60)
                ),
                format!("failed to upload artifact {h} to 10.2.0.{}", pick(200)),
                format!("failed to download artifact {h} from 10.2.0.{}", pick(200)),
                format!("the scheduler rejected job of {n} because quota {t} was exceeded"),
                format!("the scheduler accepted job of {n} because quota {t} was available"),
                format!("merge request from {n} into {b} was approved"),
                format!("merge request from {n} into {b} was rejected by {h}"),
            ];
            for (problem, line) in problems.into_iter().enumerate() {
                lines.push((problem, super::super::mask::template(&line)));
            }
        }
        lines
    }

    /// Pairwise precision and recall of the clusters against the known problems.
    fn score(similarity: f64, corpus: &[(usize, String)]) -> (f64, f64) {
        let mut m = Miner::new(MinerConfig {
            similarity,
            ..MinerConfig::default()
        });
        let keys: Vec<Arc<str>> = corpus.iter().map(|(_, l)| add(&mut m, l).key).collect();
        let (mut tp, mut fp, mut missed) = (0.0, 0.0, 0.0);
        for a in 0..corpus.len() {
            for b in a + 1..corpus.len() {
                match (corpus[a].0 == corpus[b].0, keys[a] == keys[b]) {
                    (true, true) => tp += 1.0,
                    (false, true) => fp += 1.0,
                    (true, false) => missed += 1.0,
                    (false, false) => {}
                }
            }
        }
        (tp / (tp + fp), tp / (tp + missed))
    }

    #[test]
    fn default_similarity_balances_merging_and_separating_best() {
        let corpus = reference_corpus();
        let f1 = |(p, r): (f64, f64)| 2.0 * p * r / (p + r);
        let default = MinerConfig::default().similarity;
        let best = f1(score(default, &corpus));
        for s in [0.4, 0.5, 0.6, 0.7, 0.8, 0.9] {
            let (p, r) = score(s, &corpus);
            println!("| {s} | {p:.3} | {r:.3} | {:.3} |", f1((p, r)));
            assert!(
                f1((p, r)) <= best,
                "similarity {s} beats the default {default}"
            );
        }
    }

    #[test]
    fn long_messages_are_not_mined() {
        let mut m = Miner::new(MinerConfig {
            max_message_bytes: 10,
            ..MinerConfig::default()
        });
        assert!(m.add("p", "a message longer than ten bytes").is_none());
        assert!(m.is_empty());
    }
}
