//! The command line (SPEC §1): parses arguments, sets up the agent's own
//! logging, and maps outcomes to exit codes (0 ok, 1 failure, 2 usage).
//! Commands do their work in library modules; this is the edge where errors
//! become messages.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use std::sync::Arc;

use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::event::Timestamp;
use crate::human::{remaining, seconds};
use crate::multiline::Mode;
use crate::pattern::{BUNDLED, PatternSet};
use crate::reload::SharedPatterns;
use crate::silence::{NewSilence, Silence, SilenceMatcher, Silences, Status};
use crate::source::StreamConfig;
use crate::source::decode::Format;

#[derive(Debug, Parser)]
#[command(name = "logward", about = "Tails build and pod logs, understands them, tells the right people once, ships to Loki", version = version_line())]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Format of logward's own logs (always on stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Level filter for logward's own logs, e.g. `info`, `debug`, `logward=debug,warn`.
    #[arg(long, global = true, env = "LOGWARD_LOG", default_value = "info")]
    log_level: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent until SIGTERM/SIGINT (or until every source has ended).
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the config and every pattern file it loads; print every problem as file:line:col.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run the examples of pattern files; one line per failing example, then `N passed, N failed`.
    Test {
        /// Pattern files or directories [default: the config's pattern paths, else the bundled library]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
        /// Also write the results as JUnit XML to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Read files once from the start and print one event per record as NDJSON.
    Replay {
        #[command(flatten)]
        input: InputArgs,
        /// Also send the escalations through the config's receivers (rate limits, retries),
        /// then wait for them to be delivered and print what each receiver answered.
        #[arg(long, requires = "config")]
        send: bool,
        /// With --send: how long to wait at the end for deliveries still being retried.
        #[arg(long, value_name = "DURATION", default_value = "1m", requires = "send")]
        send_wait: String,
        /// Files to read; `-` is stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show what each stage does to one record (LINE, or stdin).
    Explain {
        #[command(flatten)]
        input: InputArgs,
        /// The source name the record comes from (for patterns with `sources`).
        #[arg(long, default_value = "explain")]
        source: String,
        /// The record; read from stdin when absent.
        line: Option<String>,
    },
    /// Silence matching events for a while: counted as suppressed (reason `silenced`), not notified.
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
    },
    /// Receivers: `notify test RECEIVER` sends a sample escalation through one of them.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// The config file's tooling: `config schema` prints the JSON Schema of the config or of pattern files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a completion script for SHELL on stdout, e.g. `logward completions bash > /etc/bash_completion.d/logward`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page logward(1) on stdout, or write one page per command into --dir.
    Man {
        /// Write logward.1 and a page per command (logward-run.1, ...) into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// GET URL and exit 0 on a 2xx answer, 1 otherwise: the container image's HEALTHCHECK,
    /// which has no curl.
    Probe {
        #[arg(default_value = "http://127.0.0.1:9898/health")]
        url: String,
    },
    /// Print version, git commit and build date.
    Version,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a JSON Schema (draft 7) for editors: Taplo, Even Better TOML (docs/configuration.md).
    Schema {
        /// Which file: the config, or a pattern file.
        #[arg(value_enum, default_value_t = SchemaOf::Config)]
        of: SchemaOf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaOf {
    Config,
    Patterns,
}

#[derive(Debug, Subcommand)]
enum NotifyCommand {
    /// Send a sample escalation once through RECEIVER (no outbox, no retry, no rate limit)
    /// and print the provider's answer; exit 0 when it was accepted, 1 otherwise.
    Test {
        /// The receiver's name, as in [receiver.NAME]
        receiver: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Subcommand)]
enum SilenceCommand {
    /// Add a silence; prints its id.
    #[command(
        after_help = "Matchers: KEY=VALUE (exactly), KEY!=VALUE, KEY=~REGEX (whole value), KEY!~REGEX.\nKeys: level, service, pattern, ci_run_id, source, path, message, fingerprint, or a field or label name.\nAn absent key reads as \"\". Example:\n  logward silence add --match service=api --match level=error --for 2h --comment \"deploy of api\""
    )]
    Add {
        /// KEY=VALUE, KEY!=VALUE, KEY=~REGEX or KEY!~REGEX (repeatable; all must match)
        #[arg(short = 'm', long = "match", value_name = "MATCHER", required = true)]
        matchers: Vec<String>,
        /// How long, from its start: e.g. 30m, 2h, 1d
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why; shown by `silence list`
        #[arg(long, default_value = "")]
        comment: String,
        /// When it starts, RFC 3339, e.g. 2025-06-01T18:00:00Z [default: now]
        #[arg(long, value_name = "TIME")]
        starts_at: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List active and pending silences, then those that ended in the last 24 hours.
    List {
        /// One JSON object per line (with `status`) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// End a silence now.
    Expire {
        /// The silence's id, or its first characters if no other id starts with them.
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// Config file [default: $LOGWARD_CONFIG, else /etc/logward/logward.toml]
    #[arg(short, long, env = "LOGWARD_CONFIG")]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
    }
}

/// What `replay` and `explain` read records with: a config (for its sources'
/// settings and its patterns), pattern paths, a format.
#[derive(Debug, clap::Args)]
struct InputArgs {
    /// Config whose sources give a record its format and labels (by glob or --source), and its patterns.
    #[arg(short, long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    patterns: PatternsArg,
    /// Decode in this format instead of detecting it.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Join multiline records this way instead of as the source says (`none`: every line is a record).
    #[arg(long, value_enum)]
    multiline: Option<MultilineArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MultilineArg {
    Auto,
    None,
}

#[derive(Debug, clap::Args)]
struct PatternsArg {
    /// Pattern file or directory (repeatable); replaces the config's pattern paths.
    /// `@bundled` is the library shipped in the binary, the default without a config.
    #[arg(short = 'p', long = "patterns", value_name = "PATH")]
    paths: Vec<PathBuf>,
}

impl PatternsArg {
    /// `-p` paths, else the config's, else the bundled library.
    fn resolve(&self, config: Option<&Config>) -> Vec<PathBuf> {
        if !self.paths.is_empty() {
            return self.paths.clone();
        }
        config.map_or_else(|| vec![PathBuf::from(BUNDLED)], |c| c.patterns.clone())
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Auto,
    Text,
    Json,
    Cri,
    Docker,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Auto => Format::Auto,
            FormatArg::Text => Format::Text,
            FormatArg::Json => Format::Json,
            FormatArg::Cri => Format::Cri,
            FormatArg::Docker => Format::Docker,
        }
    }
}

fn version_line() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("LOGWARD_GIT_COMMIT"),
        ", built ",
        env!("LOGWARD_BUILD_DATE"),
        ")"
    )
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    let result = match cli.command {
        Command::Run { config } => run(&config.path()),
        Command::Check { config } => return check(&config.path()),
        Command::Test {
            paths,
            config,
            junit,
        } => return test(paths, &config, junit.as_deref()),
        Command::Replay {
            input,
            send,
            send_wait,
            files,
        } => replay(&input, &files, send.then_some(send_wait.as_str())),
        Command::Explain {
            input,
            source,
            line,
        } => explain(&input, &source, line),
        Command::Silence { command } => silence(command),
        Command::Notify {
            command: NotifyCommand::Test { receiver, config },
        } => notify_test(&config.path(), &receiver),
        Command::Config {
            command: ConfigCommand::Schema { of },
        } => schema(of),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "logward", &mut script);
            print(&script)
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Probe { url } => probe(&url),
        Command::Version => {
            println!("logward {}", version_line());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn schema(of: SchemaOf) -> anyhow::Result<()> {
    let schema = match of {
        SchemaOf::Config => crate::config::schema::config(),
        SchemaOf::Patterns => crate::config::schema::pattern_file(),
    };
    let mut text = serde_json::to_vec_pretty(&schema).context("cannot print the schema")?;
    text.push(b'\n');
    print(&text)
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
fn print(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// How long `probe` waits for the whole answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn probe(url: &str) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .context("cannot build an HTTP client")?;
    let answer = client
        .get(url)
        .send()
        .with_context(|| format!("GET {url}"))?;
    let status = answer.status();
    anyhow::ensure!(status.is_success(), "GET {url}: {status}");
    println!("{url}: {status}");
    Ok(())
}

/// logward(1) on stdout, or every command's page into `dir`.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let command = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("cannot render the man page")?;
            print(&page)
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|e| {
        eprintln!("warning: --log-level/LOGWARD_LOG `{level}` is not a filter ({e}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|d| {
        anyhow::anyhow!(
            "invalid config ({} problem{}):\n{d}",
            d.0.len(),
            if d.0.len() == 1 { "" } else { "s" }
        )
    })
}

fn load_patterns(paths: &[PathBuf]) -> anyhow::Result<PatternSet> {
    PatternSet::load(paths).map_err(|d| {
        anyhow::anyhow!(
            "invalid pattern files ({} problem{}):\n{d}",
            d.0.len(),
            if d.0.len() == 1 { "" } else { "s" }
        )
    })
}

fn shared(set: PatternSet) -> SharedPatterns {
    Arc::new(arc_swap::ArcSwap::from_pointee(set))
}

/// `notify test RECEIVER`: one attempt with a sample escalation; the answer on stdout.
fn notify_test(path: &std::path::Path, receiver: &str) -> anyhow::Result<()> {
    use crate::notify::{DefaultClock, Outcome, Receivers};
    let config = load(path)?;
    if !config.receivers.contains_key(receiver) {
        let known: Vec<&str> = config.receivers.keys().map(String::as_str).collect();
        anyhow::bail!(
            "{}: no receiver `{receiver}`; configured: {}",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let mut receivers = Receivers::new(&config.receivers, DefaultClock::default())?;
    let Some(mut sender) = receivers.take_sender(receiver) else {
        anyhow::bail!("no receiver `{receiver}`");
    };
    let esc = crate::escalation::sample_escalation(receiver, crate::escalation::hostname());
    let key = crate::notify::outbox::key(&esc, Timestamp::now());
    match sender.send(&esc, &key) {
        Outcome::Accepted { answer } => {
            println!("accepted: {answer}");
            Ok(())
        }
        Outcome::Retry { after, reason } => {
            let after = after
                .map(|d| format!(" (retry after {d:?})"))
                .unwrap_or_default();
            anyhow::bail!("receiver `{receiver}` failed, would be retried{after}: {reason}")
        }
        Outcome::Rejected { reason } => {
            anyhow::bail!("receiver `{receiver}` rejected it: {reason}")
        }
    }
}

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let patterns = shared(load_patterns(&config.patterns)?);
    tracing::info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), sources = config.sources.len(), "starting");
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("logward-rt")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        crate::pipeline::run(config, patterns, shutdown).await?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

/// Resolves on the first SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

fn check(path: &std::path::Path) -> ExitCode {
    let checked = Config::load(path).and_then(|c| PatternSet::load(&c.patterns).map(|p| (c, p)));
    match checked {
        Ok((c, p)) => {
            for w in &c.warnings {
                println!("warning: {w}");
            }
            println!(
                "{}: valid ({} source{}, {} pattern{})",
                path.display(),
                c.sources.len(),
                if c.sources.len() == 1 { "" } else { "s" },
                p.len(),
                if p.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(d) => {
            for problem in &d.0 {
                println!("{problem}");
            }
            println!(
                "{} problem{} found",
                d.0.len(),
                if d.0.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

fn test(paths: Vec<PathBuf>, config: &ConfigArg, junit: Option<&std::path::Path>) -> ExitCode {
    let paths = if !paths.is_empty() {
        paths
    } else {
        let path = config.path();
        match path.exists().then(|| Config::load(&path)) {
            Some(Ok(c)) => c.patterns,
            Some(Err(d)) => {
                println!("{d}");
                return ExitCode::FAILURE;
            }
            None => vec![PathBuf::from(BUNDLED)],
        }
    };
    let set = match PatternSet::load(&paths) {
        Ok(set) => set,
        Err(d) => {
            for problem in &d.0 {
                println!("{problem}");
            }
            println!(
                "0 passed, 0 failed ({} problem{} in the pattern files)",
                d.0.len(),
                if d.0.len() == 1 { "" } else { "s" }
            );
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    match crate::inspect::test(&set, &mut stdout.lock(), junit) {
        Ok((_, 0)) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

impl InputArgs {
    /// The config (if any), and the pattern set `-p` or the config names.
    fn load(&self) -> anyhow::Result<(Option<Config>, PatternSet)> {
        let config = self.config.as_deref().map(load).transpose()?;
        let set = load_patterns(&self.patterns.resolve(config.as_ref()))?;
        Ok((config, set))
    }

    fn format(&self) -> Option<Format> {
        self.format.map(Format::from)
    }

    /// The source's stream settings with the command line's overrides.
    fn overrides(&self, mut cfg: StreamConfig) -> StreamConfig {
        if let Some(f) = self.format() {
            cfg.format = f;
        }
        match self.multiline {
            Some(MultilineArg::Auto) => cfg.multiline = Mode::Auto,
            Some(MultilineArg::None) => cfg.multiline = Mode::None,
            None => {}
        }
        cfg
    }
}

fn explain(input: &InputArgs, source: &str, line: Option<String>) -> anyhow::Result<()> {
    let (config, set) = input.load()?;
    let text = match line {
        Some(l) => l,
        None => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("cannot read the record from stdin")?;
            s
        }
    };
    let cfg = input.overrides(
        config
            .as_ref()
            .and_then(|c| c.sources.iter().find(|s| &*s.name == source))
            .map_or_else(
                || StreamConfig::new(Arc::from(source), Format::Auto),
                |s| s.stream_config(),
            ),
    );
    let routes = config
        .as_ref()
        .map_or_else(|| Arc::from([]), |c| c.routes.clone());
    crate::inspect::explain(&set, &cfg, &routes, &text, &mut std::io::stdout().lock())
        .context("cannot write to stdout")
}

/// `replay`; `send_wait`: `--send` was given, with this `--send-wait`.
fn replay(input: &InputArgs, files: &[PathBuf], send_wait: Option<&str>) -> anyhow::Result<()> {
    let (config, set) = input.load()?;
    let set = shared(set);
    let sending = match (send_wait, &config) {
        (Some(wait), Some(config)) => {
            let wait = crate::config::units::duration(wait)
                .map_err(|e| anyhow::anyhow!("invalid --send-wait: {e}"))?;
            Some((crate::replay::send::Sending::start(config)?, wait))
        }
        (Some(_), None) => anyhow::bail!("--send needs a config with receivers (-c FILE)"),
        (None, _) => None,
    };
    let stdout = std::io::stdout();
    // `replay` writes whole batches of lines: no buffer of its own is needed.
    let mut out = stdout.lock();
    let overrides = |cfg| input.overrides(cfg);
    let mut escalations = std::io::stderr().lock();
    match crate::replay::replay(
        config.as_ref(),
        &overrides,
        files,
        &set,
        &mut out,
        &mut escalations,
        sending.as_ref().map(|(s, _)| s),
    ) {
        // A reader that went away (`| head`) is not an error.
        Err(crate::replay::ReplayError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
        }
        other => other?,
    }
    let Some((sending, wait)) = sending else {
        return Ok(());
    };
    drop(escalations);
    let report = sending.finish(wait);
    eprint!("{report}");
    anyhow::ensure!(
        report.all_delivered(),
        "not every escalation was delivered (see above)"
    );
    Ok(())
}

fn silence(command: SilenceCommand) -> anyhow::Result<()> {
    let now = Timestamp::now();
    match command {
        SilenceCommand::Add {
            matchers,
            duration,
            comment,
            starts_at,
            config,
        } => {
            let matchers = matchers
                .iter()
                .map(|m| {
                    SilenceMatcher::parse(m).map_err(|e| anyhow::anyhow!("invalid --match {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let duration = crate::config::units::duration(&duration)
                .map_err(|e| anyhow::anyhow!("invalid --for: {e}"))?;
            if duration.is_zero() {
                anyhow::bail!("invalid --for: a silence must last longer than 0s; e.g. --for 2h");
            }
            let starts_at = match starts_at {
                None => now,
                Some(t) => Timestamp::parse_rfc3339(&t).ok_or_else(|| {
                    anyhow::anyhow!(
                        "invalid --starts-at `{t}`: write an RFC 3339 time, e.g. 2025-06-01T18:00:00Z or 2025-06-01T20:00:00+02:00"
                    )
                })?,
            };
            let mut new = NewSilence::lasting(matchers, starts_at, duration);
            new.comment = comment;
            let mut store = silences(&config)?;
            let s = store.add(new, now)?;
            println!("{}", s.id);
            eprintln!(
                "silenced {} {} until {} ({}) in {}",
                s.matchers_text(),
                if s.starts_at > now {
                    format!("from {}", seconds(s.starts_at))
                } else {
                    "from now".into()
                },
                seconds(s.ends_at),
                remaining(s.ends_at, now),
                store.path().display()
            );
            Ok(())
        }
        SilenceCommand::List { json, config } => {
            let store = silences(&config)?;
            let shown = store.list(now);
            let mut out = std::io::stdout().lock();
            let written = if json {
                shown.iter().try_for_each(|s| {
                    serde_json::to_writer(&mut out, &s.view(now))?;
                    std::io::Write::write_all(&mut out, b"\n")?;
                    Ok::<_, anyhow::Error>(())
                })
            } else {
                std::io::Write::write_all(&mut out, silence_table(&shown, now).as_bytes())
                    .map_err(Into::into)
            };
            match written {
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
                {
                    Ok(())
                }
                other => other.context("cannot write to stdout"),
            }
        }
        SilenceCommand::Expire { id, config } => {
            let mut store = silences(&config)?;
            let s = store.expire(&id, now)?;
            println!(
                "expired {}: {} (was until {}){}",
                s.id,
                s.matchers_text(),
                seconds(s.ends_at),
                if s.comment.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", s.comment)
                }
            );
            Ok(())
        }
    }
}

/// The store in the config's `state_dir`. Only `state_dir` is read from the config.
fn silences(config: &ConfigArg) -> anyhow::Result<Silences> {
    let path = config.path();
    let state_dir = Config::load_state_dir(&path)
        .map_err(|d| anyhow::anyhow!("cannot find state_dir in the config:\n{d}"))?;
    Ok(Silences::load(&state_dir)?)
}

/// `silence list` as a table: id, status, matchers, start, end, created by, comment.
fn silence_table(shown: &[&Silence], now: Timestamp) -> String {
    if shown.is_empty() {
        return "no silences\n".into();
    }
    let header = [
        "ID",
        "STATUS",
        "MATCHERS",
        "STARTS",
        "ENDS",
        "CREATED BY",
        "COMMENT",
    ];
    let rows: Vec<[String; 7]> = shown
        .iter()
        .map(|s| {
            let status = match s.status(now) {
                Status::Active => format!("active, {} left", remaining(s.ends_at, now)),
                Status::Pending => format!("pending, starts in {}", remaining(s.starts_at, now)),
                Status::Expired => format!("expired {} ago", remaining(now, s.ended_at())),
            };
            [
                s.id.clone(),
                status,
                s.matchers_text(),
                seconds(s.starts_at),
                seconds(s.ended_at()),
                s.created_by.clone(),
                s.comment.replace(['\n', '\r', '\t'], " "),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            text.push_str(cell);
            if i + 1 < cells.len() {
                text.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}
