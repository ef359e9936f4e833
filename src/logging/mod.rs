//! Log output: human-readable lines or JSON lines (`log.format: json`) for log shippers, on
//! stderr, written by a thread of their own. Nothing logged carries a token, a key, a field
//! value or a raw request path.

mod access_line;

use std::io::{BufWriter, IsTerminal};

use tracing::Dispatch;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::format::{format, JsonFields};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};
use access_line::AccessLines;

/// The target of the access line, one a request: `info,wardgate::access=warn` leaves them out.
pub const ACCESS_TARGET: &str = "wardgate::access";

/// Lines the writer may fall behind by. The queue's slots are allocated and written when it is
/// made, 32 bytes each: `tracing-appender`'s default of 128,000 was 4 MB of resident memory.
/// The writer takes all that waits at once, so a few thousand cover any burst it can keep up
/// with.
const QUEUED_LINES: usize = 8192;

/// Keeps the log's writer thread running; dropped, it writes out the lines still queued
/// (waiting a second at most). Hold it until the process is done logging.
#[must_use = "dropping the guard stops the log's writer"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber; a second call (tests, demo) leaves the first in place.
///
/// Each line is formatted where it is logged (the access line by `access_line`, the rest by
/// tracing-subscriber) and written by the writer thread, which writes whatever has queued up in
/// one `write`: written at once, every access line cost a system call on the thread that
/// serves requests (bench/README.md, "The access log"). Not lossy: when `QUEUED_LINES` wait,
/// logging waits for the writer, as it waited for stderr before.
pub fn init(config: &LogConfig) -> LogGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("wardgate-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    // Colour codes only for a person at a terminal, not into files and log shippers.
    let installed = subscriber(config, writer, std::io::stderr().is_terminal()).try_init();
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}

/// The subscriber `init` installs, writing to `writer`: the configured filter and layout,
/// access lines formatted by `access_line`.
fn subscriber<W>(config: &LogConfig, writer: W, ansi: bool) -> Dispatch
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_new(directives(&config.level)).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match config.format {
        LogFormat::Text => {
            Dispatch::new(builder.event_format(AccessLines::text(format())).finish())
        }
        LogFormat::Json => Dispatch::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(AccessLines::json(format().json().flatten_event(true)))
                .finish(),
        ),
    }
}

/// The configured filter, with the TLS library held to errors unless the filter names it:
/// rustls warns about what a client sent (an IP address as SNI, an odd extension) once per
/// connection, and a client must not be able to fill the operators' log at will.
fn directives(level: &str) -> String {
    if level.contains("rustls") {
        level.to_owned()
    } else {
        format!("{level},rustls=error")
    }
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn the_tls_library_is_held_to_errors_unless_the_filter_names_it() {
        assert_eq!(directives("info"), "info,rustls=error");
        assert_eq!(
            directives("info,wardgate::access=warn"),
            "info,wardgate::access=warn,rustls=error"
        );
        assert_eq!(directives("debug,rustls=debug"), "debug,rustls=debug");
    }
}
