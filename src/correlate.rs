//! Correlation: gives every event of a CI run its `ci_run_id` (and the other
//! correlated fields), wherever the run wrote them.
//!
//! In order, the first that has a value wins: the line itself (a capture, a
//! JSON field, the run-id scanner; filled by `pattern`), the file's path (the
//! source's `ci_run_id_from_path`, and Kubernetes pod log paths), then the
//! stream's sticky context, set by marker patterns (`context = true`) and
//! cleared by end markers (`context = "end"`). The sticky context is per
//! stream; the reader saves it with the file's position. This module must not
//! match patterns or read files.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde_json::Value;

use crate::event::Event;
use crate::pattern::{Context, Pattern};

/// The fields a marker made sticky: `ci_run_id` and named captures.
pub type Sticky = BTreeMap<String, String>;

/// What a file's path says about its events, worked out once per file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathFields {
    pub ci_run_id: Option<String>,
    pub fields: Vec<(String, String)>,
}

const CI_RUN_ID: &str = "ci_run_id";

/// `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log` (and its rotations).
static K8S_POD_LOG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"/pods/(?P<namespace>[^/_]+)_(?P<pod>[^/_]+)_(?P<pod_uid>[0-9a-fA-F-]+)/(?P<container>[^/]+)/[0-9]+\.log(?:\.[^/]*)?$")
        .unwrap_or_else(|e| panic!("invalid built-in regex: {e}"))
});

/// `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`.
static K8S_CONTAINER_LOG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"/containers/(?P<pod>[^/_]+)_(?P<namespace>[^/_]+)_(?P<container>[^/]+)-(?P<container_id>[0-9a-f]{64})\.log$")
        .unwrap_or_else(|e| panic!("invalid built-in regex: {e}"))
});

impl PathFields {
    /// Fields from a path: Kubernetes metadata, then the source's
    /// `ci_run_id_from_path` (whose `ci_run_id` capture is the run id and whose
    /// other named captures become fields, replacing same-named Kubernetes ones).
    pub fn of(path: &str, from_path: Option<&Regex>) -> PathFields {
        let mut out = PathFields::default();
        for re in [&*K8S_POD_LOG, &*K8S_CONTAINER_LOG] {
            if let Some(c) = re.captures(path) {
                out.add_captures(re, &c);
                break;
            }
        }
        if let Some(re) = from_path {
            if let Some(c) = re.captures(path) {
                out.add_captures(re, &c);
            }
        }
        out
    }

    fn add_captures(&mut self, re: &Regex, c: &regex::Captures<'_>) {
        for name in re.capture_names().flatten() {
            let Some(m) = c.name(name) else { continue };
            if name == CI_RUN_ID {
                self.ci_run_id = Some(m.as_str().to_string());
            } else {
                self.fields.retain(|(k, _)| k != name);
                self.fields.push((name.to_string(), m.as_str().to_string()));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ci_run_id.is_none() && self.fields.is_empty()
    }
}

/// The correlation state of one stream.
#[derive(Debug, Clone, Default)]
pub struct Correlator {
    /// Shared with the checkpoints of the batches sent while it holds; replaced, never mutated.
    sticky: Arc<Sticky>,
}

impl Correlator {
    /// A stream's correlation, resuming the sticky context saved with its position.
    pub fn resume(sticky: Sticky) -> Correlator {
        Correlator {
            sticky: Arc::new(sticky),
        }
    }

    /// The sticky context as of the last event applied.
    pub fn sticky(&self) -> &Arc<Sticky> {
        &self.sticky
    }

    /// Fills what the line did not give from the path and the sticky context,
    /// and lets a marker set or clear the sticky context.
    pub fn apply(&mut self, ev: &mut Event, path: &PathFields, winner: Option<&Pattern>) {
        let context = winner.map_or(Context::Off, |p| p.context);
        if context == Context::Marker {
            // Only what the marker's own line says sticks: a new run starts from nothing.
            let mut sticky = Sticky::new();
            if let Some(id) = &ev.ci_run_id {
                sticky.insert(CI_RUN_ID.into(), id.clone());
            }
            for name in winner.into_iter().flat_map(Pattern::sticky_fields) {
                if let Some(Value::String(v)) = ev.fields.get(name) {
                    sticky.insert(name.to_string(), v.clone());
                }
            }
            if *self.sticky != sticky {
                self.sticky = Arc::new(sticky);
            }
        }
        fill(
            ev,
            path.ci_run_id.as_deref(),
            path.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if context != Context::Marker && !self.sticky.is_empty() {
            let sticky = Arc::clone(&self.sticky);
            fill(
                ev,
                sticky.get(CI_RUN_ID).map(String::as_str),
                sticky
                    .iter()
                    .filter(|(k, _)| k.as_str() != CI_RUN_ID)
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
        }
        if context == Context::End && !self.sticky.is_empty() {
            self.sticky = Arc::default();
        }
    }
}

/// Sets the run id and fields the event lacks.
fn fill<'a>(
    ev: &mut Event,
    run_id: Option<&str>,
    fields: impl Iterator<Item = (&'a str, &'a str)>,
) {
    if ev.ci_run_id.is_none() {
        ev.ci_run_id = run_id.map(str::to_string);
    }
    for (k, v) in fields {
        if !ev.fields.contains_key(k) {
            ev.fields
                .insert(k.to_string(), Value::String(v.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Origin, Record, Timestamp};

    fn event(run_id: Option<&str>) -> Event {
        let origin = Origin::new("s".into(), None, Arc::default());
        let mut ev = Event::from_record(Record::text(0, "x".into()), &origin, Timestamp::now());
        ev.ci_run_id = run_id.map(str::to_string);
        ev
    }

    #[test]
    fn kubernetes_pod_log_paths_give_namespace_pod_and_container() {
        let pods = PathFields::of(
            "/var/log/pods/ci_builder-7d9f_0f6a1c2e-1b2c-4d5e-8f90-a1b2c3d4e5f6/runner/0.log",
            None,
        );
        let get = |p: &PathFields, k: &str| {
            p.fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get(&pods, "namespace").as_deref(), Some("ci"));
        assert_eq!(get(&pods, "pod").as_deref(), Some("builder-7d9f"));
        assert_eq!(get(&pods, "container").as_deref(), Some("runner"));
        let id = "a".repeat(64);
        let containers = PathFields::of(
            &format!("/var/log/containers/builder-7d9f_ci_build-agent-{id}.log"),
            None,
        );
        assert_eq!(
            get(&containers, "container").as_deref(),
            Some("build-agent")
        );
        assert_eq!(get(&containers, "namespace").as_deref(), Some("ci"));
        assert!(PathFields::of("/var/log/syslog", None).is_empty());
    }

    #[test]
    fn path_regex_gives_the_run_id_and_fields() {
        let re = Regex::new(r"/jobs/(?P<job>[^/]+)/builds/(?P<ci_run_id>\d+)/").unwrap();
        let p = PathFields::of("/var/lib/jenkins/jobs/deploy/builds/42/log", Some(&re));
        assert_eq!(p.ci_run_id.as_deref(), Some("42"));
        assert_eq!(p.fields, [("job".to_string(), "deploy".to_string())]);
    }

    #[test]
    fn the_line_wins_over_the_path_which_wins_over_the_sticky_context() {
        let mut c = Correlator::resume(Sticky::from([("ci_run_id".into(), "sticky".into())]));
        let path = PathFields {
            ci_run_id: Some("path".into()),
            fields: Vec::new(),
        };
        let mut own = event(Some("line"));
        c.apply(&mut own, &path, None);
        assert_eq!(own.ci_run_id.as_deref(), Some("line"));
        let mut from_path = event(None);
        c.apply(&mut from_path, &path, None);
        assert_eq!(from_path.ci_run_id.as_deref(), Some("path"));
        let mut from_sticky = event(None);
        c.apply(&mut from_sticky, &PathFields::default(), None);
        assert_eq!(from_sticky.ci_run_id.as_deref(), Some("sticky"));
    }
}
