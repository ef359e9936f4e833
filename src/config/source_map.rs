//! Where each key of a YAML file sits, so that an error found after parsing (a route naming an
//! unknown upstream, a certificate file that does not exist) can still be reported as
//! `file:line:col`. serde_yaml gives positions only for its own parse errors; this map is built
//! from yaml-rust2's marked events and answers for key paths such as `routes[2].upstream`.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

/// Key path (`server.tls.cert`, `routes[0].path`) to the position of its key in the file
/// (of the item, for sequence items).
#[derive(Debug, Default)]
pub struct SourceMap {
    positions: HashMap<String, Position>,
}

impl SourceMap {
    /// Builds the map; a document that does not even scan yields an empty map (serde_yaml
    /// reports that error with its own position).
    pub fn build(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut builder, false);
        SourceMap {
            positions: builder.positions,
        }
    }

    /// The position of exactly `key`, if it is in the file.
    pub fn exact(&self, key: &str) -> Option<Position> {
        self.positions.get(key).copied()
    }

    /// The position of `key`, or of its nearest ancestor present in the file (a missing
    /// key is reported where its parent mapping starts).
    pub fn locate(&self, key: &str) -> Position {
        let mut key = key;
        loop {
            if let Some(position) = self.positions.get(key) {
                return *position;
            }
            match key.rfind(['.', '[']) {
                Some(cut) => key = &key[..cut],
                None => return Position { line: 1, col: 1 },
            }
        }
    }
}

enum Frame {
    Map {
        path: String,
        pending_key: Option<String>,
    },
    Seq {
        path: String,
        next_index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    positions: HashMap<String, Position>,
}

impl Builder {
    /// The key path of the node that starts now, consuming its slot in the parent; `None`
    /// when the node is a mapping key rather than a value.
    fn claim_slot(&mut self, scalar: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next_index }) => {
                let child = format!("{path}[{next_index}]");
                *next_index += 1;
                Some(child)
            }
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                Some(key) if path.is_empty() => Some(key),
                Some(key) => Some(format!("{path}.{key}")),
                None => {
                    *pending_key = Some(scalar.unwrap_or_default().to_owned());
                    None
                }
            },
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        self.positions.entry(path.to_owned()).or_insert(Position {
            line: mark.line(),
            col: mark.col() + 1,
        });
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, ..) => match self.claim_slot(Some(&value)) {
                Some(path) => self.record(&path, mark),
                None => {
                    // A mapping key: its position stands for the value that follows.
                    if let Some(Frame::Map { path, .. }) = self.stack.last() {
                        let child = if path.is_empty() {
                            value
                        } else {
                            format!("{path}.{value}")
                        };
                        self.record(&child, mark);
                    }
                }
            },
            Event::Alias(_) => {
                if let Some(path) = self.claim_slot(Some("")) {
                    self.record(&path, mark);
                }
            }
            Event::MappingStart(..) => {
                let path = self.claim_slot(Some("")).unwrap_or_default();
                self.record(&path, mark);
                self.stack.push(Frame::Map {
                    path,
                    pending_key: None,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.claim_slot(Some("")).unwrap_or_default();
                self.record(&path, mark);
                self.stack.push(Frame::Seq {
                    path,
                    next_index: 0,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_keys_and_sequence_items() {
        let text = "server:\n  listen: 127.0.0.1:0\nroutes:\n  - name: a\n    upstream: x\n  - name: b\n    upstream: y\n";
        let map = SourceMap::build(text);
        assert_eq!(map.locate("server.listen"), Position { line: 2, col: 3 });
        assert_eq!(
            map.locate("routes[1].upstream"),
            Position { line: 7, col: 5 }
        );
        assert_eq!(map.locate("routes[1].missing").line, 6);
        assert_eq!(map.locate("nothing"), Position { line: 1, col: 1 });
    }
}
