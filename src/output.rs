//! Where e3pipe's messages go, decided in one place. stdout carries results (the per-model summaries, the closing
//! counts, `--dry-run`, `graph`, `cache`), so it can be piped; stderr carries progress, warnings and errors; the
//! log (`tracing`, `-v`/`-vv` or `RUST_LOG`) carries details. `-q` leaves results and errors only.
//!
//! The measuring worker is started with this run's verbosity (`E3PIPE_VERBOSITY`, `E3PIPE_LOG`), so its warnings
//! obey the same flags.

use std::io::Write as _;
use std::sync::OnceLock;

/// How much the user asked to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `-q`: results and errors.
    Quiet,
    /// Results, progress, warnings, errors.
    Normal,
    /// `-v`: and the log at info level.
    Verbose,
    /// `-vv`: and the log at debug level.
    Debug,
}

impl Verbosity {
    pub fn from_flags(quiet: bool, verbose: u8) -> Verbosity {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, 1) => Verbosity::Verbose,
            (false, _) => Verbosity::Debug,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Verbosity::Quiet => "quiet",
            Verbosity::Normal => "normal",
            Verbosity::Verbose => "verbose",
            Verbosity::Debug => "debug",
        }
    }

    fn parse(text: &str) -> Option<Verbosity> {
        [
            Verbosity::Quiet,
            Verbosity::Normal,
            Verbosity::Verbose,
            Verbosity::Debug,
        ]
        .into_iter()
        .find(|v| v.name() == text)
    }

    /// The log filter this verbosity means when `RUST_LOG` does not say.
    fn log_filter(self) -> &'static str {
        match self {
            Verbosity::Quiet => "error",
            Verbosity::Normal => "warn",
            Verbosity::Verbose => "info",
            Verbosity::Debug => "debug",
        }
    }
}

/// The environment variables that carry this run's verbosity and log filter to the measuring worker.
pub const VERBOSITY_ENV: &str = "E3PIPE_VERBOSITY";
pub const LOG_ENV: &str = "E3PIPE_LOG";

static SETTINGS: OnceLock<(Verbosity, String)> = OnceLock::new();

fn verbosity() -> Verbosity {
    SETTINGS.get().map_or(Verbosity::Normal, |s| s.0)
}

/// Sets the verbosity and starts the log (stderr; colour only at a terminal); `RUST_LOG` overrides the log
/// filter. The first call wins.
pub fn init(verbosity: Verbosity) {
    start(verbosity, std::env::var("RUST_LOG").ok());
}

fn start(verbosity: Verbosity, directives: Option<String>) {
    let directives = directives.unwrap_or_else(|| verbosity.log_filter().to_string());
    let _ = SETTINGS.set((verbosity, directives.clone()));
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(verbosity.log_filter()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .try_init();
}

/// [`init`] from what the parent `e3pipe` passed (the measuring worker's start-up).
pub fn init_from_env() {
    let verbosity = std::env::var(VERBOSITY_ENV)
        .ok()
        .and_then(|v| Verbosity::parse(&v))
        .unwrap_or(Verbosity::Normal);
    start(verbosity, std::env::var(LOG_ENV).ok());
}

/// The environment a child process needs to report like this one.
pub fn child_env() -> [(&'static str, String); 2] {
    let (verbosity, filter) = SETTINGS
        .get()
        .map_or((Verbosity::Normal, "warn"), |s| (s.0, s.1.as_str()));
    [
        (VERBOSITY_ENV, verbosity.name().to_string()),
        (LOG_ENV, filter.to_string()),
    ]
}

/// A result line: stdout, always. A reader that went away (`e3pipe graph | head -1`) is not an error: the run goes
/// on and its files are written; only the lines nobody reads are lost.
pub fn result(line: &str) {
    end_status();
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Whether a status line (`status`) is drawn at the terminal and not yet ended.
static STATUS_OPEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ends a status line drawn in place, so the next line starts below it.
fn end_status() {
    if STATUS_OPEN.swap(false, std::sync::atomic::Ordering::SeqCst) {
        let _ = writeln!(std::io::stderr().lock());
    }
}

/// A line on stderr; like stdout, a closed stderr does not stop the run.
fn to_stderr(line: &str) {
    end_status();
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// A status that replaces the previous one (what a long wait is doing): redrawn in place at a terminal, a plain
/// line each time otherwise (logs, CI, `| tee`). Unless `-q`.
pub fn status(line: &str) {
    if verbosity() <= Verbosity::Quiet {
        return;
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        STATUS_OPEN.store(true, std::sync::atomic::Ordering::SeqCst);
    } else {
        to_stderr(line);
    }
}

/// `-q`: no progress of any kind (status lines, progress bars).
pub fn quiet() -> bool {
    verbosity() <= Verbosity::Quiet
}

/// Progress: stderr, unless `-q`.
pub fn progress(line: &str) {
    if verbosity() > Verbosity::Quiet {
        to_stderr(line);
    }
}

/// How a run ended when that is not plain success (interrupted, steps failed): stderr, even with `-q`.
pub fn outcome(line: &str) {
    to_stderr(line);
}

/// A warning: stderr as `warning: …`, unless `-q`.
pub fn warn(message: &str) {
    if verbosity() > Verbosity::Quiet {
        to_stderr(&format!("warning: {message}"));
    }
}

/// An error that is not an `Error` value (a point that failed inside the worker, a step skipped): stderr as
/// `error: …`, always.
pub fn error_message(message: &str) {
    to_stderr(&format!("error: {message}"));
}

/// An error and its cause chain, as users see it: stderr, always.
pub fn error(e: &dyn std::error::Error) {
    to_stderr(&format!("error: {e}"));
    let mut source = e.source();
    while let Some(cause) = source {
        to_stderr(&format!("  caused by: {cause}"));
        source = cause.source();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_round_trips_through_the_environment_names() {
        for v in [
            Verbosity::Quiet,
            Verbosity::Normal,
            Verbosity::Verbose,
            Verbosity::Debug,
        ] {
            assert_eq!(Verbosity::parse(v.name()), Some(v));
        }
        assert_eq!(Verbosity::from_flags(true, 2), Verbosity::Quiet);
        assert_eq!(Verbosity::from_flags(false, 1), Verbosity::Verbose);
        assert_eq!(Verbosity::from_flags(false, 5), Verbosity::Debug);
    }
}
