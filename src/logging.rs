//! Log output: human-readable lines or JSON lines (`log.format: json`) for log shippers.
//! Nothing logged carries a token, a key, a field value or a raw request path.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber; a second call (tests, demo) leaves the first in place.
pub fn init(config: &LogConfig) {
    let filter =
        EnvFilter::try_new(directives(&config.level)).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
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
