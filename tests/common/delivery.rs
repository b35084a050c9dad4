//! `logward run` delivering escalations to real receivers: a config with the harness's file
//! source on `logs/*.log`, `[http]` for `/metrics`, and one route `errors` (level error and
//! above, one group per service, a first escalation at the first event) to the receivers
//! under test; error lines that escalate; what the outbox holds; the keys the agent logged;
//! and a check that a secret shows in none of the places a user or a scraper can read.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Agent, Config, Env, Finished, free_addr, http_get, http_table, run_to_exit, sample};

/// The route's name, in metrics and escalations.
pub const ROUTE: &str = "errors";

/// One agent's setup: its directory, config and environment.
pub struct Delivery {
    pub env: Env,
    pub config: PathBuf,
    pub http: SocketAddr,
    vars: Vec<(String, String)>,
}

/// An escalation waiting in `state_dir/outbox`.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub key: String,
    pub receiver: String,
    pub escalation: Value,
}

impl Delivery {
    /// `receivers`: each receiver's name and the keys of its `[receiver.NAME]` table (`type`
    /// included); the route sends every escalation to all of them. `vars`: the environment of
    /// every `logward` this setup starts, for the `${VAR}`s of the tables.
    pub fn new(receivers: &[(&str, &str)], vars: &[(&str, &str)]) -> Delivery {
        let env = Env::new();
        let http = free_addr();
        let names: Vec<String> = receivers.iter().map(|(n, _)| format!("{n:?}")).collect();
        let mut top = format!(
            "{}\n[[route]]\nname = \"{ROUTE}\"\nmatch = {{ level = \">=error\" }}\nreceivers = [{}]\ngroup_by = [\"service\"]\nwindow = \"1m\"\n",
            http_table(http),
            names.join(", ")
        );
        for (name, table) in receivers {
            top.push_str(&format!("\n[receiver.{name}]\n{table}\n"));
        }
        let config = env.config_with(Config {
            top_extra: &top,
            ..Config::default()
        });
        let mut all = vec![("NO_COLOR".to_string(), "1".to_string())];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Delivery {
            env,
            config,
            http,
            vars: all,
        }
    }

    fn vars<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        v.extend_from_slice(extra);
        v
    }

    /// `logward run` on the config (its stdout kept).
    pub fn start(&self) -> Agent {
        self.start_with(&[])
    }

    /// `logward run` with `extra` environment on top, e.g. `("LOGWARD_LOG", "debug")`.
    pub fn start_with(&self, extra: &[(&str, &str)]) -> Agent {
        self.env.start_capturing(&self.config, &self.vars(extra))
    }

    /// `logward ARGS -c CONFIG`, run to its exit.
    pub fn run(&self, args: &[&str]) -> Finished {
        let config = self.config.display().to_string();
        let mut all = args.to_vec();
        all.extend(["-c", &config]);
        run_to_exit(&all, &self.vars(&[]), b"")
    }

    /// An error line of `service`: a `first` escalation to every receiver, for a service not
    /// seen before in this run.
    pub fn error(&self, service: &str) {
        self.env.append(
            "app.log",
            &format!("2026-11-22T10:00:01Z ERROR [{service}] disk full on /var/data\n"),
        );
    }

    /// What waits in the outbox now, in delivery order.
    pub fn outbox(&self) -> Vec<Queued> {
        let Ok(dir) = fs::read_dir(self.env.path("state/outbox")) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .filter_map(|p| fs::read(p).ok())
            .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
            .map(|v| Queued {
                key: v["key"].as_str().unwrap_or_default().to_string(),
                receiver: v["receiver"].as_str().unwrap_or_default().to_string(),
                escalation: v["escalation"].clone(),
            })
            .collect()
    }

    /// Waits until the outbox holds exactly `n` escalations; returns them.
    pub fn wait_outbox(&self, agent: &Agent, n: usize) -> Vec<Queued> {
        super::wait_until(&format!("{n} escalation(s) in the outbox"), agent, || {
            let q = self.outbox();
            (q.len() == n).then_some(q)
        })
    }

    /// Waits until the outbox is empty: every escalation delivered, rejected or given up.
    pub fn wait_outbox_empty(&self, agent: &Agent) {
        self.wait_outbox(agent, 0);
    }

    /// Waits until the positions saved on disk cover all of `logs/app.log` (and so do the
    /// windows, saved first): a restart reads no line again and escalates nothing twice.
    pub fn wait_checkpointed(&self, agent: &Agent) {
        let len = fs::metadata(self.env.logs().join("app.log")).map_or(0, |m| m.len());
        super::wait_until("positions saved up to the end of app.log", agent, || {
            let text = fs::read_to_string(self.env.path("state/positions.json")).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            let files = v["files"].as_array()?;
            files
                .iter()
                .any(|f| f["offset"].as_u64() == Some(len))
                .then_some(())
        });
    }

    /// The agent's `/metrics`, once it answers.
    pub fn metrics(&self, agent: &Agent) -> String {
        super::wait_until("/metrics", agent, || {
            match http_get(self.http, "/metrics") {
                Ok((200, body)) => Some(body),
                _ => None,
            }
        })
    }

    /// Waits until `series` (e.g. `logward_receiver_retries_total{receiver="chat"}`) is at
    /// least `at_least`; returns its value.
    pub fn wait_metric(&self, agent: &Agent, series: &str, at_least: f64) -> f64 {
        super::wait_until(&format!("{series} >= {at_least}"), agent, || {
            let (status, body) = http_get(self.http, "/metrics").ok()?;
            let v = sample(&body, series).filter(|v| status == 200 && *v >= at_least)?;
            Some(v)
        })
    }

    /// Every file under `state_dir` (positions, windows, templates, the outbox), as text.
    pub fn state_files(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        collect(&self.env.path("state"), &mut out);
        out
    }
}

fn collect(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if let Ok(bytes) = fs::read(&p) {
            out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
}

/// The idempotency keys the agent logged for `what` (`"escalation delivered"`, `"will retry"`,
/// `"rejected"`), in order: the first 32-hex-digit quoted value of each such line.
pub fn logged_keys(stderr: &str, what: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| {
            l.split('"')
                .find(|part| part.len() == 32 && part.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .map(str::to_string)
        .collect()
}

/// Panics naming the place and the secret when any of `secrets` occurs in any of `places`
/// (a name, then what a user can read there).
pub fn assert_no_secret(secrets: &[&str], places: &[(String, String)]) {
    for (place, text) in places {
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "the secret {secret:?} shows in {place}:\n{text}"
            );
        }
    }
}
