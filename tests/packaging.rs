//! Packaging and operations: the systemd unit and the agent's side of it (sd_notify), the
//! Kubernetes examples, the config and pattern schemas, the Grafana dashboard, the Prometheus
//! alert rules, and the configuration reference. The Debian package is checked by
//! `scripts/deb-check` (it needs root), from `.ci/run`.

mod common;

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{BIN, Env, PATIENCE, http_get, http_table, run_to_exit, signal};
use serde_json::Value;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A tool a test needs: its path, or a failure saying how to install it.
fn tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is not installed: `apt-get install {package}` (scripts/test installs it)")
    })
}

// ------------------------------------------------------------------ systemd --------------

#[test]
fn systemd_unit_verifies() {
    let analyze = tool("systemd-analyze", "systemd");
    let unit = read("packaging/systemd/logward.service");
    for directive in [
        "Type=notify",
        "ExecStart=/usr/bin/logward run -c /etc/logward/logward.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "WatchdogSec=",
        "StateDirectory=logward",
        "ReadWritePaths=/var/lib/logward",
        "SupplementaryGroups=adm systemd-journal",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(directive), "the unit lacks `{directive}`");
    }
    // verify checks that ExecStart's binary exists: point it at the one just built, keep the
    // rest as shipped. The man page is checked on the installed package (scripts/deb-check).
    let local = unit.replace("ExecStart=/usr/bin/logward ", &format!("ExecStart={BIN} "));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("logward.service");
    std::fs::write(&path, local).expect("write unit");
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify exits 0 on an unknown or misspelled directive and only warns: a warning that
    // names the unit fails the test as well.
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("logward")).collect();
    assert!(
        out.status.success() && warnings.is_empty(),
        "systemd-analyze verify: {}\n{text}",
        out.status
    );
}

/// Datagrams on a socket the test binds as `$NOTIFY_SOCKET`, as systemd would.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(env: &Env) -> NotifySocket {
        let path = env.path("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("read timeout");
        NotifySocket {
            socket,
            path,
            seen: Vec::new(),
        }
    }

    /// Reads datagrams until a new one holds the line `state`; every one read is kept in
    /// `seen`. `stderr` is the agent's, for the failure message.
    fn wait_for(&mut self, state: &str, stderr: &dyn Fn() -> String) {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = message.lines().any(|l| l == state);
            self.seen.push(message);
            if found {
                return;
            }
        }
        panic!(
            "no {state} on $NOTIFY_SOCKET within {PATIENCE:?}; got {:?}\n--- agent stderr ---\n{}",
            self.seen,
            stderr()
        );
    }
}

#[test]
fn notify_socket_hears_ready_once_sources_are_open_then_reloading_and_stopping() {
    let env = Env::new();
    env.append("app.log", "INFO started\n");
    let addr = common::free_addr();
    let config = env.config_with(common::Config {
        top_extra: &http_table(addr),
        ..common::Config::default()
    });
    let mut notify = NotifySocket::bind(&env);
    let socket = notify.path.display().to_string();
    let agent = env.start_with(&config, &[("NOTIFY_SOCKET", &socket)]);

    let agent_stderr = || agent.stderr();
    notify.wait_for("READY=1", &agent_stderr);
    let (status, body) = http_get(addr, "/ready").expect("GET /ready");
    assert_eq!(
        status, 200,
        "READY=1 came before /ready turned true: {body}"
    );

    signal(agent.pid(), libc::SIGHUP);
    notify.wait_for("RELOADING=1", &agent_stderr);
    notify.wait_for("READY=1", &agent_stderr);

    let (exit, stderr) = agent.stop();
    assert!(exit.success(), "{stderr}");
    notify.wait_for("STOPPING=1", &|| stderr.clone());
    let watchdog = notify.seen.iter().any(|m| m.contains("WATCHDOG=1"));
    assert!(
        !watchdog,
        "WATCHDOG=1 without $WATCHDOG_USEC: {:?}",
        notify.seen
    );
}

#[test]
fn watchdog_is_pinged_at_half_of_watchdog_usec() {
    let env = Env::new();
    let config = env.config("");
    let mut notify = NotifySocket::bind(&env);
    let socket = notify.path.display().to_string();
    // 400 ms: pings every 200 ms, so several come while the test waits for two.
    let agent = env.start_with(
        &config,
        &[("NOTIFY_SOCKET", &socket), ("WATCHDOG_USEC", "400000")],
    );
    let agent_stderr = || agent.stderr();
    notify.wait_for("READY=1", &agent_stderr);
    notify.wait_for("WATCHDOG=1", &agent_stderr);
    notify.wait_for("WATCHDOG=1", &agent_stderr);
    let (exit, stderr) = agent.stop();
    assert!(exit.success(), "{stderr}");
}

// ------------------------------------------------------- commands for packagers ----------

#[test]
fn completions_and_man_pages_are_generated() {
    let bash = run_to_exit(&["completions", "bash"], &[], b"");
    assert!(bash.status.success(), "{}", bash.stderr);
    assert!(bash.stdout.contains("complete -F") && bash.stdout.contains("logward"));
    let zsh = run_to_exit(&["completions", "zsh"], &[], b"");
    assert!(zsh.stdout.starts_with("#compdef logward"), "{}", zsh.stdout);

    let page = run_to_exit(&["man"], &[], b"");
    assert!(page.status.success(), "{}", page.stderr);
    assert!(page.stdout.contains(".TH logward 1"), "{}", page.stdout);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().display().to_string();
    let pages = run_to_exit(&["man", "--dir", &out], &[], b"");
    assert!(pages.status.success(), "{}", pages.stderr);
    for name in [
        "logward.1",
        "logward-run.1",
        "logward-check.1",
        "logward-config-schema.1",
    ] {
        assert!(dir.path().join(name).is_file(), "no {name} in `man --dir`");
    }
}

// ------------------------------------------------------------------ schemas --------------

/// `logward config schema [config|patterns]`, parsed.
fn schema(of: &str) -> Value {
    let out = run_to_exit(&["config", "schema", of], &[], b"");
    assert!(out.status.success(), "config schema {of}: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("the schema is JSON")
}

fn toml_as_json(text: &str, what: &str) -> Value {
    let value: toml::Value = toml::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    serde_json::to_value(value).expect("TOML as JSON")
}

/// The schema's complaints about `text`, one line each.
fn schema_errors(validator: &jsonschema::Validator, text: &str, what: &str) -> Vec<String> {
    let instance = toml_as_json(text, what);
    validator
        .iter_errors(&instance)
        .map(|e| format!("{what}: {}: {e}", e.instance_path()))
        .collect()
}

fn toml_files(dir: &str) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (p.display().to_string(), text)
        })
        .collect()
}

/// Every config the project ships, as (where, text): examples, packaging defaults, and the
/// configs the Kubernetes examples embed.
fn shipped_configs() -> Vec<(String, String)> {
    let mut configs = toml_files("examples");
    for rel in [
        "packaging/config/logward.toml",
        "packaging/container/logward.toml",
    ] {
        configs.push((rel.to_string(), read(rel)));
    }
    for (file, doc) in kube_docs() {
        for (key, text) in config_map_data(&doc) {
            if key.ends_with(".toml") && !text.contains("[[pattern]]") {
                configs.push((format!("{file}: ConfigMap key {key}"), text));
            }
        }
    }
    configs
}

/// Every pattern file the project ships: the bundled library and the Kubernetes examples'.
fn shipped_pattern_files() -> Vec<(String, String)> {
    let mut files = toml_files("patterns");
    for (file, doc) in kube_docs() {
        for (key, text) in config_map_data(&doc) {
            if text.contains("[[pattern]]") {
                files.push((format!("{file}: ConfigMap key {key}"), text));
            }
        }
    }
    files
}

#[test]
fn config_schema_validates_examples() {
    let config = jsonschema::validator_for(&schema("config")).expect("the config schema compiles");
    let patterns =
        jsonschema::validator_for(&schema("patterns")).expect("the pattern schema compiles");
    let configs = shipped_configs();
    let pattern_files = shipped_pattern_files();
    assert!(configs.len() >= 6 && pattern_files.len() >= 5);
    let mut errors = Vec::new();
    for (what, text) in &configs {
        errors.extend(schema_errors(&config, text, what));
    }
    for (what, text) in &pattern_files {
        errors.extend(schema_errors(&patterns, text, what));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn config_schema_rejects_misspelled_and_misplaced_keys() {
    let config = jsonschema::validator_for(&schema("config")).expect("the config schema compiles");
    let patterns =
        jsonschema::validator_for(&schema("patterns")).expect("the pattern schema compiles");
    let quickstart = read("examples/quickstart.toml");
    let bad_configs = [
        (
            "top-level typo",
            quickstart.replace("state_dir =", "state_dirr ="),
        ),
        (
            "source typo",
            quickstart.replace("start_at =", "start_att ="),
        ),
        ("route typo", quickstart.replace("group_by =", "groupby =")),
        (
            "a console receiver with a url",
            quickstart.replace(
                "type = \"console\"",
                "type = \"console\"\nurl = \"https://example.com\"",
            ),
        ),
        (
            "unknown receiver type",
            quickstart.replace("type = \"console\"", "type = \"pager\""),
        ),
        (
            "unknown format",
            quickstart.replace("format = \"auto\"", "format = \"xml\""),
        ),
    ];
    for (case, text) in &bad_configs {
        assert_ne!(text, &quickstart, "{case}: the replacement changed nothing");
        assert!(
            !schema_errors(&config, text, case).is_empty(),
            "{case}: the schema accepts it"
        );
    }
    let ci = read("patterns/10-ci.toml");
    let bad_pattern = ci.replacen("\nregex ", "\nregx ", 1);
    assert_ne!(bad_pattern, ci, "the replacement changed nothing");
    assert!(
        !schema_errors(&patterns, &bad_pattern, "pattern typo").is_empty(),
        "pattern typo: the schema accepts it"
    );
}

// --------------------------------------------------------------- kubernetes --------------

/// Every document of every `packaging/kubernetes/*.yaml`, with its file name.
fn kube_docs() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("packaging/kubernetes"))
        .expect("packaging/kubernetes")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let text = std::fs::read_to_string(&path).expect("read yaml");
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            if !value.is_null() {
                docs.push((name.clone(), value));
            }
        }
    }
    docs
}

fn config_map_data(doc: &Value) -> Vec<(String, String)> {
    if doc["kind"] != "ConfigMap" {
        return Vec::new();
    }
    doc["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// Paths the container image holds (packaging/container/Dockerfile), and where they are here.
const IMAGE_PATHS: [(&str, &str); 1] = [("/usr/share/logward/patterns", "patterns")];

/// One logward container of a pod spec, with what it needs to be checked.
struct KubeContainer<'a> {
    at: String,
    container: &'a Value,
    pod: &'a Value,
}

impl KubeContainer<'_> {
    fn volume(&self, name: &str) -> &Value {
        self.pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == name))
            .unwrap_or_else(|| panic!("{}: no volume `{name}`", self.at))
    }

    fn mounts(&self) -> Vec<&Value> {
        self.container["volumeMounts"]
            .as_array()
            .map(|m| m.iter().collect())
            .unwrap_or_default()
    }

    /// The mount holding `path` (the longest mountPath above it).
    fn mount_of(&self, path: &str) -> Option<&Value> {
        self.mounts()
            .into_iter()
            .filter(|m| {
                let at = m["mountPath"].as_str().unwrap_or("/");
                path == at || path.starts_with(&format!("{}/", at.trim_end_matches('/')))
            })
            .max_by_key(|m| m["mountPath"].as_str().map_or(0, str::len))
    }

    fn config_path(&self) -> String {
        let args: Vec<&str> = self.container["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        args.windows(2)
            .find(|w| w[0] == "-c" || w[0] == "--config")
            .map_or("/etc/logward/logward.toml", |w| w[1])
            .to_string()
    }

    /// The container's environment, secrets resolved from the Secrets of `docs`.
    fn env(&self, docs: &[(String, Value)]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for var in self.container["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().expect("env name").to_string();
            let value = match (&var["value"], &var["valueFrom"]["secretKeyRef"]) {
                (Value::String(v), _) => v.clone(),
                (_, Value::Object(r)) => {
                    let secret = docs
                        .iter()
                        .find(|(_, d)| d["kind"] == "Secret" && d["metadata"]["name"] == r["name"])
                        .unwrap_or_else(|| panic!("{}: no Secret {}", self.at, r["name"]));
                    secret.1["stringData"][r["key"].as_str().unwrap_or_default()]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}: Secret has no {}", self.at, r["key"]))
                        .to_string()
                }
                _ => panic!(
                    "{}: env {name} is neither a value nor a secretKeyRef",
                    self.at
                ),
            };
            out.push((name, value));
        }
        out
    }

    /// Writes the files the container's ConfigMap volumes hold under `root`, as mounted.
    fn materialize(&self, docs: &[(String, Value)], root: &Path) -> Vec<String> {
        let mut mounted = Vec::new();
        for m in self.mounts() {
            let volume = self.volume(m["name"].as_str().unwrap_or_default());
            let Some(name) = volume["configMap"]["name"].as_str() else {
                continue;
            };
            let at = m["mountPath"].as_str().expect("mountPath");
            let map = docs
                .iter()
                .find(|(_, d)| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("{}: no ConfigMap {name}", self.at));
            let data = config_map_data(&map.1);
            let items: Vec<(String, String)> = match volume["configMap"]["items"].as_array() {
                Some(items) => items
                    .iter()
                    .map(|i| {
                        (
                            i["key"].as_str().unwrap_or_default().to_string(),
                            i["path"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
                None => data.iter().map(|(k, _)| (k.clone(), k.clone())).collect(),
            };
            for (key, path) in items {
                let text = data
                    .iter()
                    .find(|(k, _)| *k == key)
                    .unwrap_or_else(|| panic!("{}: ConfigMap {name} has no key {key}", self.at));
                let file = root.join(at.trim_start_matches('/')).join(&path);
                std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
                std::fs::write(&file, &text.1).expect("write");
            }
            mounted.push(at.to_string());
        }
        mounted
    }

    /// Port number of a probe's or a monitor's `port` (a name or a number).
    fn port(&self, port: &Value) -> Option<u64> {
        port.as_u64().or_else(|| {
            self.container["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == *port)?["containerPort"]
                .as_u64()
        })
    }
}

/// Every logward container of every workload in `docs`.
fn logward_containers(docs: &[(String, Value)]) -> Vec<KubeContainer<'_>> {
    let mut out = Vec::new();
    for (file, doc) in docs {
        let pod = match doc["kind"].as_str() {
            Some("Deployment" | "DaemonSet" | "StatefulSet" | "Job") => {
                &doc["spec"]["template"]["spec"]
            }
            Some("Pod") => &doc["spec"],
            _ => continue,
        };
        for c in pod["containers"].as_array().into_iter().flatten() {
            if c["image"].as_str().is_some_and(|i| i.contains("logward")) {
                out.push(KubeContainer {
                    at: format!("{file}: {} {}", doc["kind"], doc["metadata"]["name"]),
                    container: c,
                    pod,
                });
            }
        }
    }
    out
}

/// The directory part of a glob: what must be mounted for it to match anything.
fn glob_base(glob: &str) -> String {
    let parts: Vec<&str> = glob
        .split('/')
        .take_while(|p| !p.contains(['*', '?', '[', '{']))
        .collect();
    parts.join("/")
}

#[test]
fn kubernetes_examples_configs_pass_check() {
    let docs = kube_docs();
    let containers = logward_containers(&docs);
    assert!(
        containers.len() >= 2,
        "a sidecar and a DaemonSet: {}",
        containers.len()
    );
    let dockerfile = read("packaging/container/Dockerfile");
    for (in_image, _) in IMAGE_PATHS {
        assert!(
            dockerfile.contains(in_image),
            "the Dockerfile does not install {in_image}"
        );
    }
    for c in &containers {
        let root = tempfile::tempdir().expect("tempdir");
        let config_maps = c.materialize(&docs, root.path());
        let config_path = c.config_path();
        let host_config = root.path().join(config_path.trim_start_matches('/'));
        let original = std::fs::read_to_string(&host_config)
            .unwrap_or_else(|_| panic!("{}: {config_path} is not mounted from a ConfigMap", c.at));
        // What the container reads from its ConfigMaps and its image, found here instead.
        let mut text = original.clone();
        for at in &config_maps {
            text = text.replace(
                &format!("\"{at}"),
                &format!("\"{}{at}", root.path().display()),
            );
        }
        for (in_image, here) in IMAGE_PATHS {
            text = text.replace(
                &format!("\"{in_image}"),
                &format!("\"{}", repo(here).display()),
            );
        }
        std::fs::write(&host_config, &text).expect("write config");
        let env = c.env(&docs);
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let check = run_to_exit(
            &["check", "-c", &host_config.display().to_string()],
            &vars,
            b"",
        );
        assert!(
            check.status.success(),
            "{}: logward check fails:\n{}{}",
            c.at,
            check.stdout,
            check.stderr
        );

        let config: toml::Value = toml::from_str(&original).expect("config TOML");
        let mut writes = vec![
            config
                .get("state_dir")
                .and_then(toml::Value::as_str)
                .unwrap_or("/var/lib/logward")
                .to_string(),
        ];
        writes.extend(
            config
                .get("output")
                .and_then(|o| o.get("file"))
                .and_then(|f| f.get("path"))
                .and_then(toml::Value::as_str)
                .map(str::to_string),
        );
        for r in config
            .get("receiver")
            .and_then(toml::Value::as_table)
            .into_iter()
            .flat_map(|t| t.values())
        {
            if r.get("type").and_then(toml::Value::as_str) == Some("file") {
                writes.extend(
                    r.get("path")
                        .and_then(toml::Value::as_str)
                        .map(str::to_string),
                );
            }
        }
        for path in &writes {
            let m = c
                .mount_of(path)
                .unwrap_or_else(|| panic!("{}: {path} is written but not mounted", c.at));
            let volume = c.volume(m["name"].as_str().unwrap_or_default());
            assert!(
                m["readOnly"] != true
                    && (volume["emptyDir"].is_object()
                        || volume["hostPath"].is_object()
                        || volume["persistentVolumeClaim"].is_object()),
                "{}: {path} is written, but its mount is read-only or not a writable volume",
                c.at
            );
        }
        for source in config
            .get("source")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            for glob in source
                .get("paths")
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(toml::Value::as_str)
            {
                let base = glob_base(glob);
                let m = c.mount_of(&base).unwrap_or_else(|| {
                    panic!("{}: source reads {glob}, but {base} is not mounted", c.at)
                });
                let name = m["name"].as_str().unwrap_or_default();
                let volume = c.volume(name);
                // An emptyDir holds logs only if another container of the pod writes them.
                let shared = c.pod["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|other| {
                        other["name"] != c.container["name"]
                            && other["volumeMounts"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|m| m["name"] == name)
                    });
                assert!(
                    volume["hostPath"].is_object() || (volume["emptyDir"].is_object() && shared),
                    "{}: {glob} is on volume {name}, which no container of the pod writes to and is not the node's",
                    c.at
                );
            }
        }
        for p in config
            .get("patterns")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
        {
            let in_image = IMAGE_PATHS.iter().any(|(at, _)| p.starts_with(at));
            assert!(
                in_image || c.mount_of(p).is_some(),
                "{}: pattern path {p} is neither in the image nor mounted",
                c.at
            );
            if !in_image {
                let local = root.path().join(p.trim_start_matches('/'));
                let test = run_to_exit(&["test", &local.display().to_string()], &[], b"");
                assert!(
                    test.status.success(),
                    "{}: the examples of {p} fail:\n{}",
                    c.at,
                    test.stdout
                );
            }
        }

        let listen = config
            .get("http")
            .and_then(|h| h.get("listen"))
            .and_then(toml::Value::as_str)
            .unwrap_or_else(|| panic!("{}: no [http] listen for the probes", c.at));
        let (host, port) = listen.rsplit_once(':').expect("IP:PORT");
        assert!(
            !host.starts_with("127.") && host != "[::1]",
            "{}: probes cannot reach {listen}",
            c.at
        );
        let port: u64 = port.parse().expect("port");
        for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
            let get = &c.container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{}: {probe}", c.at);
            assert_eq!(
                c.port(&get["port"]),
                Some(port),
                "{}: {probe} is not on {listen}",
                c.at
            );
        }
        assert!(
            c.container["resources"]["requests"]["memory"].is_string()
                && c.container["resources"]["limits"]["memory"].is_string(),
            "{}: no memory request and limit",
            c.at
        );
        let monitored = docs.iter().any(|(_, d)| {
            d["kind"] == "PodMonitor"
                && d["spec"]["podMetricsEndpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["path"] == "/metrics" && c.port(&e["port"]) == Some(port))
        });
        assert!(monitored, "{}: no PodMonitor scrapes its /metrics", c.at);
    }
}

// ------------------------------------------------------- dashboard and alerts ------------

/// The sample names an agent exports on `/metrics`: each family's samples as Prometheus
/// queries them (a counter's `_total`, a histogram's `_bucket`, `_sum` and `_count`, an
/// info's `_info`), whether or not a series exists yet.
fn exported_metric_names() -> BTreeSet<String> {
    let env = Env::new();
    let addr = common::free_addr();
    // A route and a receiver: their series exist from the start, at zero.
    let top = format!(
        "{}\n[receiver.audit]\ntype = \"file\"\npath = \"{}\"\n\n[[route]]\nname = \"errors\"\nmatch = {{ level = \">=error\" }}\nreceivers = [\"audit\"]\n",
        http_table(addr),
        env.path("escalations.ndjson").display()
    );
    let config = env.config_with(common::Config {
        top_extra: &top,
        ..common::Config::default()
    });
    let agent = env.start(&config);
    // Sources register their families when they open.
    common::wait_ready(&agent);
    let body = common::wait_until("/metrics", &agent, || {
        http_get(addr, "/metrics")
            .ok()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
    });
    let mut names = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            if !name.is_empty() {
                names.insert(name.to_string());
            }
        }
    }
    drop(agent);
    names
}

/// Every `logward_*` metric name in a PromQL expression.
fn queried_metrics(expr: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\blogward_[a-zA-Z0-9_]+").expect("regex");
    re.find_iter(expr).map(|m| m.as_str().to_string()).collect()
}

/// Every string under a key named `key`, anywhere in `v`.
fn strings_under(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match child {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings_under(child, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| strings_under(i, key, out)),
        _ => {}
    }
}

#[test]
fn dashboard_metrics_exist() {
    let dashboard: Value =
        serde_json::from_str(&read("packaging/grafana/logward-dashboard.json")).expect("JSON");
    let mut exprs = Vec::new();
    strings_under(&dashboard["panels"], "expr", &mut exprs);
    strings_under(&dashboard["templating"], "query", &mut exprs);
    let queried: BTreeSet<String> = exprs.iter().flat_map(|e| queried_metrics(e)).collect();
    for needed in [
        "logward_lines_read_total",
        "logward_position_lag_bytes",
        "logward_file_rotations_total",
        "logward_escalations_total",
        "logward_suppressed_total",
        "logward_config_reloads_total",
        "logward_process_resident_memory_bytes",
    ] {
        assert!(
            queried.contains(needed),
            "the dashboard has no panel on {needed}"
        );
    }
    let exported = exported_metric_names();
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nexported: {exported:?}"
    );
}

#[test]
fn alert_rules_pass_promtool_and_query_exported_metrics() {
    let promtool = tool("promtool", "prometheus");
    let rules = repo("packaging/prometheus/logward-rules.yml");
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_norway::from_str(&read("packaging/prometheus/logward-rules.yml"))
        .expect("rules YAML");
    let mut exprs = Vec::new();
    strings_under(&doc, "expr", &mut exprs);
    let queried: BTreeSet<String> = exprs.iter().flat_map(|e| queried_metrics(e)).collect();
    assert!(queried.len() >= 5, "{queried:?}");
    let exported = exported_metric_names();
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
}

// ------------------------------------------------------------------ the docs -------------

/// Every key of the config, as a dotted path (`source.multiline.start`, `receiver.NAME.url`),
/// from the schema: tables and arrays of tables are not keys, what they hold is.
fn schema_keys(schema: &Value) -> BTreeSet<String> {
    fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
        match node["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/definitions/"))
        {
            Some(name) => resolve(root, &root["definitions"][name]),
            None => node,
        }
    }
    fn table<'a>(root: &'a Value, node: &'a Value) -> Option<&'a Value> {
        let node = resolve(root, node);
        node["properties"].is_object().then_some(node)
    }
    fn walk(root: &Value, node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        for (key, sub) in node["properties"].as_object().into_iter().flatten() {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let sub = resolve(root, sub);
            if let Some(t) = table(root, sub) {
                walk(root, t, &path, out);
            } else if let Some(t) = table(root, &sub["items"]) {
                walk(root, t, &path, out);
            } else if let Some(t) = table(root, &sub["additionalProperties"]) {
                walk(root, t, &format!("{path}.NAME"), out);
            } else {
                out.insert(path.clone());
                for alternative in sub["anyOf"].as_array().into_iter().flatten() {
                    if let Some(t) = table(root, alternative) {
                        walk(root, t, &path, out);
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(schema, schema, "", &mut out);
    out
}

/// The keys docs/configuration.md documents, from its tables whose first column is `key`: the
/// nearest heading above a table names its TOML table (`[[source]]`, `[receiver.NAME]`; "Top
/// level" for none), and a key may be dotted within it (`multiline.start`). Each row must give
/// a default, a unit and an example.
fn documented_keys(doc: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut keys = BTreeSet::new();
    let mut problems = Vec::new();
    let mut prefix: Option<String> = None;
    let mut columns: Vec<String> = Vec::new();
    for line in doc.lines() {
        if line.starts_with('#') {
            columns.clear();
            if line.contains("Top level") {
                prefix = Some(String::new());
            } else if let Some(table) = line.split('`').nth(1).filter(|t| t.starts_with('[')) {
                prefix = Some(table.trim_matches(['[', ']']).to_string());
            }
            continue;
        }
        let cells: Vec<String> = match line.strip_prefix('|') {
            Some(row) => row.split('|').map(|c| c.trim().to_string()).collect(),
            None => {
                columns.clear();
                continue;
            }
        };
        if columns.is_empty() {
            columns = cells;
            continue;
        }
        if columns.first().map(String::as_str) != Some("key") || cells[0].starts_with("---") {
            continue;
        }
        let Some(prefix) = &prefix else { continue };
        let Some(key) = cells[0].split('`').nth(1) else {
            problems.push(format!("a row with no `key`: {line}"));
            continue;
        };
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        for wanted in ["default", "unit", "example"] {
            let filled = columns
                .iter()
                .position(|c| c == wanted)
                .and_then(|i| cells.get(i))
                .is_some_and(|c| !c.is_empty());
            if !filled {
                problems.push(format!("`{path}` has no {wanted}"));
            }
        }
        keys.insert(path);
    }
    (keys, problems)
}

#[test]
fn docs_reference_covers_every_config_key() {
    let keys = schema_keys(&schema("config"));
    assert!(
        keys.contains("source.multiline.start") && keys.contains("receiver.NAME.retry.max_elapsed"),
        "{keys:?}"
    );
    let (documented, mut problems) = documented_keys(&read("docs/configuration.md"));
    problems.extend(
        keys.difference(&documented)
            .map(|k| format!("`{k}` is not in docs/configuration.md")),
    );
    problems.extend(
        documented.difference(&keys).map(|k| {
            format!("docs/configuration.md documents `{k}`, which the config does not have")
        }),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
