//! The access line, one a request, formatted straight into the log's buffer: the same text
//! and JSON layouts as tracing-subscriber's formatters, without their per-field machinery
//! (each field name and `=` painted through an ANSI style even with colour off, each value
//! through `core::fmt`, the timestamp one padded number at a time). Through them the line cost
//! about 17,000 instructions (bench/README.md, "The access log"). Every other line, and every
//! line for a terminal (in colour), is left to tracing-subscriber's formatter.
//!
//! In text lines a control character in a value is escaped, so no value can end the line and
//! forge the next one.

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::ACCESS_TARGET;

/// Formats access lines itself and hands every other event to `standard`.
pub(super) struct AccessLines<F> {
    standard: F,
    json: bool,
}

impl<F> AccessLines<F> {
    /// `standard` is tracing-subscriber's formatter for the same layout: text, or JSON with
    /// the event's fields flattened into the object.
    pub(super) fn text(standard: F) -> Self {
        AccessLines {
            standard,
            json: false,
        }
    }

    pub(super) fn json(standard: F) -> Self {
        AccessLines {
            standard,
            json: true,
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for AccessLines<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() != ACCESS_TARGET || writer.has_ansi_escapes() {
            return self.standard.format_event(ctx, writer, event);
        }
        let now = humantime::format_rfc3339_micros(SystemTime::now());
        if self.json {
            write!(
                writer,
                "{{\"timestamp\":\"{now}\",\"level\":\"{}\"",
                meta.level()
            )?;
            let mut fields = Fields::new(&mut writer, true);
            event.record(&mut fields);
            fields.result?;
            writer.write_str(",\"target\":")?;
            json_string(&mut writer, meta.target())?;
            writer.write_str("}\n")
        } else {
            write!(
                writer,
                "{now} {} {}: ",
                level_padded(meta.level()),
                meta.target()
            )?;
            let mut fields = Fields::new(&mut writer, false);
            event.record(&mut fields);
            fields.result?;
            writer.write_char('\n')
        }
    }
}

/// The level as tracing-subscriber's text layout writes it: five characters, right-aligned.
fn level_padded(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// A field's name as written: a raw identifier (`r#type`) without its prefix.
fn field_name(field: &Field) -> &'static str {
    let name = field.name();
    name.strip_prefix("r#").unwrap_or(name)
}

/// The event's fields, in the order logged. Text: `message` first and bare, then `name=value`
/// separated by spaces; strings quoted and escaped as Rust's `{:?}` writes them, other values
/// as their `{:?}` with control characters escaped. JSON: `,"name":value` for each, strings
/// and `{:?}` values as JSON strings, numbers and booleans as JSON's own (a float that is not
/// finite as `null`).
struct Fields<'a, 'w> {
    out: &'a mut Writer<'w>,
    json: bool,
    first: bool,
    /// A `{:?}` value for a JSON line is formatted here before it is escaped.
    scratch: String,
    result: fmt::Result,
}

impl<'a, 'w> Fields<'a, 'w> {
    fn new(out: &'a mut Writer<'w>, json: bool) -> Self {
        Fields {
            out,
            json,
            first: true,
            scratch: String::new(),
            result: Ok(()),
        }
    }

    /// Writes one field: its separator and name, then what `value` writes.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if self.json {
                self.out.write_str(",\"")?;
                self.out.write_str(field_name(field))?;
                self.out.write_str("\":")?;
            } else {
                if !std::mem::take(&mut self.first) {
                    self.out.write_char(' ')?;
                }
                if field.name() != "message" {
                    self.out.write_str(field_name(field))?;
                    self.out.write_char('=')?;
                }
            }
            value(self.out)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.json {
            self.field(field, |out| json_string(out, value));
        } else if field.name() == "message" {
            self.field(field, |out| EscapeControls(out).write_str(value));
        } else if value
            .bytes()
            .all(|b| printable_ascii(b) && b != b'"' && b != b'\\')
        {
            self.field(field, |out| {
                out.write_char('"')?;
                out.write_str(value)?;
                out.write_char('"')
            });
        } else {
            self.field(field, |out| write!(out, "{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let json = self.json;
        self.field(field, |out| {
            if json && !value.is_finite() {
                out.write_str("null")
            } else {
                out.write_str(ryu::Buffer::new().format(value))
            }
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.json {
            self.field(field, |out| write!(EscapeControls(out), "{value:?}"));
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        if write!(scratch, "{value:?}").is_err() {
            self.result = Err(fmt::Error);
            return;
        }
        self.field(field, |out| json_string(out, &scratch));
        self.scratch = scratch;
    }
}

/// A byte that stands for itself in any line: ASCII from space to `~`.
fn printable_ascii(byte: u8) -> bool {
    (b' '..=b'~').contains(&byte)
}

/// Writes through to the line, each control character (C0, DEL, C1) escaped as `{:?}` would.
struct EscapeControls<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for EscapeControls<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if text.bytes().all(printable_ascii) {
            return self.0.write_str(text);
        }
        for c in text.chars() {
            if c.is_control() {
                write!(self.0, "{}", c.escape_debug())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// `text` as a JSON string, escaped by serde_json.
fn json_string(out: &mut Writer<'_>, text: &str) -> fmt::Result {
    serde_json::to_writer(FmtToIo(out), text).map_err(|_| fmt::Error)
}

/// Lets serde_json write into the line: it writes whole UTF-8 sequences at a time.
struct FmtToIo<'a, 'w>(&'a mut Writer<'w>);

impl std::io::Write for FmtToIo<'_, '_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(bytes).map_err(std::io::Error::other)?;
        self.0.write_str(text).map_err(std::io::Error::other)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::Level;
    use tracing_subscriber::fmt::format::{format, JsonFields};

    use super::ACCESS_TARGET;
    use crate::config::{LogConfig, LogFormat};

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// What the pipeline logs for a request, with values a client can shape.
    fn log_access_line(subject: &str, client: &str) {
        tracing::info!(
            target: ACCESS_TARGET,
            request_id = "3f1b86af-263d-4801-b2ba-da3249535e0c",
            client = %client,
            method = %"GET",
            route = "patient",
            template = "/api/patients/{patient_id}",
            status = 200u16,
            latency_ms = 0.460096,
            rejected = "",
            subject,
            break_glass = false,
            "request"
        );
        tracing::warn!(target: "wardgate::server", reason = "a \"quoted\" reason", "not an access line");
    }

    /// What `log` writes through the subscriber `logging::init` installs (`ours`), or through
    /// tracing-subscriber's own formatter for the same layout, without colour.
    fn lines(layout: LogFormat, ours: bool, log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let sink = captured.clone();
        let writer = move || sink.clone();
        if ours {
            let config = LogConfig {
                format: layout,
                level: "info".to_owned(),
            };
            let dispatch = crate::logging::subscriber(&config, writer, false);
            tracing::dispatcher::with_default(&dispatch, log);
            return captured.text();
        }
        let builder = tracing_subscriber::fmt()
            .with_max_level(Level::INFO)
            .with_ansi(false)
            .with_writer(writer);
        match layout {
            LogFormat::Text => tracing::subscriber::with_default(builder.finish(), log),
            LogFormat::Json => tracing::subscriber::with_default(
                builder
                    .fmt_fields(JsonFields::new())
                    .event_format(format().json().flatten_event(true))
                    .finish(),
                log,
            ),
        }
        captured.text()
    }

    fn text_lines(ours: bool, log: impl FnOnce()) -> String {
        lines(LogFormat::Text, ours, log)
    }

    fn json_lines(ours: bool, log: impl FnOnce()) -> String {
        lines(LogFormat::Json, ours, log)
    }

    /// Each line without its timestamp (the two formatters did not run in the same
    /// microsecond), which must be RFC 3339 in UTC to the microsecond.
    fn without_timestamps(lines: &str) -> Vec<String> {
        lines
            .lines()
            .map(|line| {
                let end = line.find('Z').expect("a UTC timestamp") + 1;
                let start = end - "2026-12-07T18:46:59.351875Z".len();
                assert!(
                    humantime::parse_rfc3339(&line[start..end]).is_ok(),
                    "{line}"
                );
                format!("{}{}", &line[..start], &line[end..])
            })
            .collect()
    }

    #[test]
    fn text_access_lines_read_as_tracing_subscriber_writes_them() {
        let log = || log_access_line("patient-li", "127.0.0.1");
        let ours = text_lines(true, log);
        let theirs = text_lines(false, log);
        assert_eq!(ours.lines().count(), 2, "{ours}");
        assert!(
            ours.lines().next().unwrap().contains(
                "  INFO wardgate::access: request request_id=\"3f1b86af-263d-4801-b2ba-da3249535e0c\" \
                 client=127.0.0.1 method=GET route=\"patient\" template=\"/api/patients/{patient_id}\" \
                 status=200 latency_ms=0.460096 rejected=\"\" subject=\"patient-li\" break_glass=false"
            ),
            "{ours}"
        );
        assert_eq!(without_timestamps(&ours), without_timestamps(&theirs));
        // Strings that need escaping are quoted and escaped the same way.
        let log = || log_access_line("li \"wei\" \\ 李", "127.0.0.1");
        assert_eq!(
            without_timestamps(&text_lines(true, log)),
            without_timestamps(&text_lines(false, log))
        );
    }

    #[test]
    fn json_access_lines_read_as_tracing_subscriber_writes_them() {
        let log = || log_access_line("li \"wei\"\n李", "127.0.0.1");
        let ours = json_lines(true, log);
        let theirs = json_lines(false, log);
        assert_eq!(ours.lines().count(), 2, "{ours}");
        let first: serde_json::Value = serde_json::from_str(ours.lines().next().unwrap()).unwrap();
        assert_eq!(first["subject"], "li \"wei\"\n李");
        assert_eq!(first["status"], 200);
        assert_eq!(first["latency_ms"], 0.460096);
        assert_eq!(first["target"], ACCESS_TARGET);
        assert_eq!(without_timestamps(&ours), without_timestamps(&theirs));
    }

    #[test]
    fn a_value_cannot_end_a_text_line_and_forge_the_next() {
        let forged = "1.2.3.4\n2026-12-07T00:00:00.000000Z  INFO wardgate::access: request status=200\u{1b}[2J";
        let lines = text_lines(true, || log_access_line(forged, forged));
        assert_eq!(lines.lines().count(), 2, "{lines}");
        let access = lines.lines().next().unwrap();
        assert!(
            access.contains(r"client=1.2.3.4\n2026-12-07T00:00:00.000000Z  INFO"),
            "{access}"
        );
        assert!(access.contains(r"\u{1b}[2J"), "{access}");
        assert!(!access.contains('\u{1b}'), "{access}");
    }
}
