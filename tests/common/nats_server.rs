//! A real `nats-server` (Debian's package, 2.9) with JetStream for the `nats` receiver's tests:
//! on a free loopback port with its store in a temp directory, optionally behind a token or
//! TLS (a CA and a certificate for 127.0.0.1 made with `openssl`); it can be started late,
//! stopped and started again on the same port and store, and is killed on drop. What its
//! streams hold is read back through a JetStream consumer (async-nats, as a client of its own).

#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use serde_json::Value;

const BINARY: &str = "nats-server";
/// Debian installs the server in /usr/sbin, which is not on every user's PATH.
const SBIN: &str = "/usr/sbin/nats-server";
/// How long the server may take to come up, and a read of its streams.
const PATIENCE: Duration = Duration::from_secs(20);

fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(BINARY))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| Path::new(SBIN).is_file().then(|| PathBuf::from(SBIN)))
        .unwrap_or_else(|| {
            panic!(
                "`{BINARY}` is not installed: run `apt-get install nats-server` \
                 (scripts/test does it), then run the tests again"
            )
        })
}

/// One message as the stream holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    /// The `Nats-Msg-Id` header.
    pub msg_id: Option<String>,
    pub raw: Vec<u8>,
    pub body: Value,
}

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    token: Option<String>,
    user: Option<(String, String)>,
    tls: bool,
}

impl NatsServer {
    /// Its port and store chosen, not running yet: [`NatsServer::up`] starts it.
    pub fn new() -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        NatsServer {
            child: None,
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            args: Vec::new(),
            token: None,
            user: None,
            tls: false,
        }
    }

    /// Running, with JetStream, open to anyone on 127.0.0.1.
    pub fn start() -> NatsServer {
        NatsServer::new().started()
    }

    /// Clients must log in with `token`.
    pub fn token(mut self, token: &str) -> NatsServer {
        self.args.extend(["--auth".into(), token.into()]);
        self.token = Some(token.into());
        self
    }

    /// Clients must log in as `user` with `password`.
    pub fn user(mut self, user: &str, password: &str) -> NatsServer {
        self.args.extend([
            "--user".into(),
            user.into(),
            "--pass".into(),
            password.into(),
        ]);
        self.user = Some((user.into(), password.into()));
        self
    }

    /// TLS with a certificate for 127.0.0.1 signed by [`NatsServer::ca_file`].
    pub fn tls(mut self) -> NatsServer {
        make_certificates(self.dir.path());
        let at = |f: &str| self.dir.path().join(f).display().to_string();
        self.args.extend([
            "--tls".into(),
            "--tlscert".into(),
            at("server.pem"),
            "--tlskey".into(),
            at("server.key"),
        ]);
        self.tls = true;
        self
    }

    /// Server config file `text` (e.g. `ping_interval`), with the command line on top.
    pub fn conf(mut self, text: &str) -> NatsServer {
        let path = self.dir.path().join("server.conf");
        fs::write(&path, text).expect("write server.conf");
        self.args.extend(["-c".into(), path.display().to_string()]);
        self
    }

    pub fn started(mut self) -> NatsServer {
        self.up();
        self
    }

    /// Starts it (on its port and store) and waits until JetStream answers.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = fs::File::create(self.log_path()).expect("server log");
        let child = Command::new(binary())
            .args(&self.args)
            .args(["-js", "-sd"])
            .arg(self.dir.path().join("store"))
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while let Err(e) = self.block_on(async {
            let js = self.jetstream().await?;
            // The raw API request: async-nats' account type wants fields 2.9 does not send.
            js.client()
                .request("$JS.API.INFO", "".into())
                .await
                .map_err(|e| e.to_string())
        }) {
            assert!(
                Instant::now() < deadline,
                "nats-server did not come up: {e}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it (SIGKILL): clients see the connection drop.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `nats://127.0.0.1:PORT`, without credentials.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the server's certificate (after [`NatsServer::tls`]).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Every message of `stream`, in order, read by an ephemeral pull consumer; empty when
    /// the stream does not exist.
    pub fn messages(&self, stream: &str) -> Vec<Stored> {
        self.block_on(async {
            let js = self.jetstream().await?;
            let Ok(mut stream) = js.get_stream(stream).await else {
                return Ok(Vec::new());
            };
            let held = stream
                .info()
                .await
                .map_err(|e| e.to_string())?
                .state
                .messages;
            if held == 0 {
                return Ok(Vec::new());
            }
            let reader = stream
                .create_consumer(consumer::pull::Config {
                    deliver_policy: consumer::DeliverPolicy::All,
                    ack_policy: consumer::AckPolicy::None,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let mut batch = reader
                .fetch()
                .max_messages(held as usize)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            while let Some(m) = batch.next().await {
                let m = m.map_err(|e| e.to_string())?;
                out.push(Stored {
                    subject: m.subject.to_string(),
                    msg_id: m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                        .map(|v| v.as_str().to_string()),
                    raw: m.payload.to_vec(),
                    body: serde_json::from_slice(&m.payload).unwrap_or(Value::Null),
                });
            }
            Ok(out)
        })
        .unwrap_or_else(|e| panic!("cannot read stream {stream}: {e}\n{}", self.log()))
    }

    /// Waits until `stream` holds `n` messages (or more) and returns them.
    pub fn wait_messages(
        &self,
        stream: &str,
        n: usize,
        agent_stderr: impl Fn() -> String,
    ) -> Vec<Stored> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.messages(stream);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {n} messages in {stream}, have {}\n--- agent stderr ---\n{}",
                got.len(),
                agent_stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The config of `stream`; `None` when it does not exist.
    pub fn stream(&self, stream: &str) -> Option<jetstream::stream::Config> {
        self.block_on(async {
            let js = self.jetstream().await?;
            Ok(js
                .get_stream(stream)
                .await
                .ok()
                .map(|s| s.cached_info().config.clone()))
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates `stream` capturing `subjects`, as an operator would.
    pub fn create_stream(&self, stream: &str, subjects: &[&str]) {
        self.block_on(async {
            let js = self.jetstream().await?;
            js.create_stream(jetstream::stream::Config {
                name: stream.into(),
                subjects: subjects.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|e| panic!("cannot create stream {stream}: {e}"))
    }

    /// A JetStream context on a new connection of the test's own, logged in and over TLS as
    /// the server wants.
    async fn jetstream(&self) -> Result<jetstream::Context, String> {
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(2))
            .require_tls(self.tls);
        if self.tls {
            options = options.add_root_certificates(self.ca_file());
        }
        if let Some(t) = &self.token {
            options = options.token(t.clone());
        }
        if let Some((user, password)) = &self.user {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let client = options
            .connect(self.url())
            .await
            .map_err(|e| e.to_string())?;
        Ok(jetstream::new(client))
    }

    fn block_on<T>(&self, f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                tokio::time::timeout(PATIENCE, f)
                    .await
                    .map_err(|_| "timed out".to_string())?
            })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.down();
    }
}

/// `ca.pem` and `server.pem` + `server.key` (for IP 127.0.0.1, signed by the CA) in `dir`.
fn make_certificates(dir: &Path) {
    let ext = dir.join("server.ext");
    fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=logward test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `openssl` ({e}): run `apt-get install openssl` (scripts/test does it)")
            });
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
