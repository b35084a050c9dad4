//! The command line (SPEC §1): parses arguments, sets up the agent's own
//! logging, and maps outcomes to exit codes (0 ok, 1 failure, 2 usage).
//! Commands do their work in library modules; this is the edge where errors
//! become messages.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use std::sync::Arc;

use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::multiline::Mode;
use crate::pattern::{BUNDLED, PatternSet};
use crate::reload::SharedPatterns;
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
    /// Print version, git commit and build date.
    Version,
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
        Command::Replay { input, files } => replay(&input, &files),
        Command::Explain {
            input,
            source,
            line,
        } => explain(&input, &source, line),
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

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let patterns = shared(load_patterns(&config.patterns)?);
    tracing::info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), sources = config.sources.len(), "starting");
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
    crate::inspect::explain(&set, &cfg, &text, &mut std::io::stdout().lock())
        .context("cannot write to stdout")
}

fn replay(input: &InputArgs, files: &[PathBuf]) -> anyhow::Result<()> {
    let (config, set) = input.load()?;
    let set = shared(set);
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
    ) {
        // A reader that went away (`| head`) is not an error.
        Err(crate::replay::ReplayError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(())
        }
        other => Ok(other?),
    }
}
