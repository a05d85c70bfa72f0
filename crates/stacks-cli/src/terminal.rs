//! How the binary talks to its terminal, set once from the command line:
//! colours (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`, through `anstream`), how
//! much goes to stderr (`-q`, `-v`, `PREVIEW_LOG` / `RUST_LOG`), writing
//! results to stdout (a closed pipe ends the output quietly), and durations as
//! people read them ([`duration`]).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anstream::ColorChoice;
use anstyle::{AnsiColor, Style};

use crate::cli::{ColorWhen, GlobalArgs};

static QUIET: AtomicBool = AtomicBool::new(false);
static STDOUT_WRITTEN: AtomicBool = AtomicBool::new(false);
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Applies the output options of `g` for this process: the colour choice
/// (read by [`stdout_colors`], [`stderr_colors`]), quiet, and the log filter.
pub fn init(g: &GlobalArgs) {
    match g.color {
        ColorWhen::Auto => ColorChoice::Auto,
        ColorWhen::Always => ColorChoice::Always,
        ColorWhen::Never => ColorChoice::Never,
    }
    .write_global();
    QUIET.store(g.quiet, Ordering::Relaxed);
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(
            g.verbose,
            g.quiet,
            std::env::var("PREVIEW_LOG").ok(),
            std::env::var("RUST_LOG").ok(),
        ))
        .with_writer(std::io::stderr)
        .with_ansi(stderr_colors())
        // A program embedding the driver may have set its own subscriber
        // (or run the driver before): that one stays.
        .try_init()
        .ok();
}

/// The log filter: `PREVIEW_LOG`, else `RUST_LOG` (either in `EnvFilter`
/// syntax), else from the flags: `error` with `-q`, `warn` by default, then
/// `info`, `debug`, `trace` for `-v`, `-vv`, `-vvv`.
pub fn log_filter(
    verbose: u8,
    quiet: bool,
    preview_log: Option<String>,
    rust_log: Option<String>,
) -> tracing_subscriber::EnvFilter {
    let from_env = preview_log
        .into_iter()
        .chain(rust_log)
        .find(|v| !v.trim().is_empty())
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok());
    from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level_for(verbose, quiet)))
}

fn level_for(verbose: u8, quiet: bool) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    }
}

/// Whether `-q` was given: no progress and no notes on stderr.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether text on stdout is coloured.
pub fn stdout_colors() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != ColorChoice::Never
}

/// Whether text on stderr is coloured.
pub fn stderr_colors() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != ColorChoice::Never
}

/// Whether stderr is a terminal (the live progress display).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Styles of the output.
pub mod style {
    use super::{AnsiColor, Style};

    /// Success.
    pub const OK: Style = AnsiColor::Green.on_default();
    /// A warning, or a wait that is failing.
    pub const WARN: Style = AnsiColor::Yellow.on_default();
    /// A failure.
    pub const ERROR: Style = AnsiColor::Red.on_default();
}

/// `text` in `style` when `color`, else as it is.
pub fn paint(color: bool, style: Style, text: &str) -> String {
    if color {
        format!("{style}{text}{style:#}")
    } else {
        text.to_owned()
    }
}

/// An informational line on stderr (a note, a summary), left out with `-q`.
pub fn info(line: &str) {
    if !quiet() {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

/// Writes a command's result to stdout (a newline added when missing). When
/// the reader went away (`stacks … | head -1`) the rest is dropped without an
/// error: the command's outcome and exit code stand.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    STDOUT_WRITTEN.store(true, Ordering::Relaxed);
    let mut out = std::io::stdout().lock();
    let written = out.write_all(text.as_bytes()).and_then(|()| {
        if text.ends_with('\n') {
            Ok(())
        } else {
            out.write_all(b"\n")
        }
    });
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// Whether the command has written (part of) its result to stdout; an error
/// under `--json` then adds no second document.
pub fn stdout_written() -> bool {
    STDOUT_WRITTEN.load(Ordering::Relaxed)
}

/// Whether `error` (or a cause) is a write to a closed pipe.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A duration rounded for people: `340 ms`, `1.2 s`, `12 s`, `2 min 05 s`,
/// `1 h 02 min`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms} ms");
    }
    if ms < 10_000 {
        // Tenths, rounded half up.
        let tenths = (ms + 50) / 100;
        if tenths < 100 {
            return format!("{}.{} s", tenths / 10, tenths % 10);
        }
    }
    let secs = (ms + 500) / 1_000;
    if secs < 60 {
        return format!("{secs} s");
    }
    if secs < 3_600 {
        return format!("{} min {:02} s", secs / 60, secs % 60);
    }
    let mins = (secs + 30) / 60;
    format!("{} h {:02} min", mins / 60, mins % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_rounded_for_people() {
        let cases = [
            (0, "0 ms"),
            (340, "340 ms"),
            (999, "999 ms"),
            (1_000, "1.0 s"),
            (1_234, "1.2 s"),
            (1_250, "1.3 s"),
            (9_949, "9.9 s"),
            (9_950, "10 s"),
            (12_400, "12 s"),
            (59_499, "59 s"),
            (59_500, "1 min 00 s"),
            (125_000, "2 min 05 s"),
            (3_599_000, "59 min 59 s"),
            (3_600_000, "1 h 00 min"),
            (3_750_000, "1 h 03 min"),
        ];
        for (ms, text) in cases {
            assert_eq!(duration(Duration::from_millis(ms)), text, "{ms} ms");
        }
    }

    #[test]
    fn the_log_level_follows_the_flags_unless_the_environment_sets_a_filter() {
        let filter = |v, q, p: Option<&str>, r: Option<&str>| {
            log_filter(v, q, p.map(str::to_owned), r.map(str::to_owned)).to_string()
        };
        assert_eq!(filter(0, false, None, None), "warn");
        assert_eq!(filter(1, false, None, None), "info");
        assert_eq!(filter(2, false, None, None), "debug");
        assert_eq!(filter(5, false, None, None), "trace");
        assert_eq!(filter(0, true, None, None), "error");
        assert_eq!(filter(0, true, None, Some("kube=debug")), "kube=debug");
        assert_eq!(
            filter(2, false, Some("preview_core=trace"), Some("debug")),
            "preview_core=trace"
        );
        // An empty variable is as if unset.
        assert_eq!(filter(1, false, Some(" "), None), "info");
    }

    #[test]
    fn paint_adds_styles_only_when_colouring() {
        assert_eq!(paint(false, style::OK, "ok"), "ok");
        assert_eq!(paint(true, style::OK, "ok"), "\u{1b}[32mok\u{1b}[0m");
    }
}
