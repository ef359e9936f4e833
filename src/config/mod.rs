//! Typed YAML configuration: the model (`model.rs`), value types written as text
//! (`units.rs`), checks across keys (`validate.rs`) and where each key sits in the file
//! (`source_map.rs`), so that every problem is reported as `file:line:col: message`.

mod model;
mod source_map;
mod units;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::*;
pub use source_map::{Position, SourceMap};
pub use units::{ByteSize, HumanDuration, Method, Rate};

/// One problem in a config file, placed where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file itself (unreadable).
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

/// Every problem found in one config file, one per line when displayed.
#[derive(Clone, Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// A problem found after parsing, named by its key path (`routes[2].upstream`); the loaded
/// config turns it into a [`ConfigError`] with a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
    /// For problems in another file the config names (a policy file): that file and line.
    pub elsewhere: Option<(PathBuf, usize)>,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            message: message.into(),
            elsewhere: None,
        }
    }

    /// A problem at a line of another file.
    pub fn at(file: &Path, line: usize, message: impl Into<String>) -> Self {
        Invalid {
            key: String::new(),
            message: message.into(),
            elsewhere: Some((file.to_owned(), line)),
        }
    }
}

/// A parsed and checked config, with relative file paths resolved against the config's
/// folder, and the map that places later problems in the file.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: Config,
    pub path: PathBuf,
    source_map: SourceMap,
}

impl LoadedConfig {
    /// Places problems found while building the runtime (certificate files, route conflicts).
    pub fn locate(&self, problems: Vec<Invalid>) -> ConfigErrors {
        ConfigErrors(
            problems
                .into_iter()
                .map(|problem| {
                    if let Some((file, line)) = problem.elsewhere {
                        return ConfigError {
                            file,
                            line,
                            col: 1,
                            message: problem.message,
                        };
                    }
                    let Position { line, col } = self.source_map.locate(&problem.key);
                    ConfigError {
                        file: self.path.clone(),
                        line,
                        col,
                        message: format!("{}: {}", problem.key, problem.message),
                    }
                })
                .collect(),
        )
    }
}

/// Reads, parses and checks a config file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: 0,
            col: 0,
            message: format!("cannot read config file: {err}"),
        }])
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, path, base)
}

/// Parses and checks config text; `path` names it in errors, relative file paths resolve
/// against `base`.
pub fn parse(text: &str, path: &Path, base: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let source_map = SourceMap::build(text);
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        // Two guesses at the position: where the failing key sits (serde_yaml reports errors
        // raised inside a value at the enclosing mapping), and serde_yaml's own (exact for
        // syntax errors). The later of the two is the more specific.
        let key = err.path().to_string();
        let inner = err.inner();
        let by_key = source_map.exact(&key);
        let by_parser = inner.location().map(|at| Position {
            line: at.line(),
            col: at.column(),
        });
        let position = by_key
            .into_iter()
            .chain(by_parser)
            .max_by_key(|p| (p.line, p.col))
            .unwrap_or_else(|| source_map.locate(&key));
        let message = serde_message(&inner.to_string());
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: position.line,
            col: position.col,
            message: if key == "." {
                message
            } else {
                format!("{key}: {message}")
            },
        }])
    })?;
    resolve_paths(&mut config, base);
    let loaded = LoadedConfig {
        config,
        path: path.to_owned(),
        source_map,
    };
    let problems = validate::validate(&loaded.config);
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(loaded.locate(problems))
    }
}

/// serde_yaml's message without its own key path prefix and " at line L column C" suffix:
/// the position is printed first and the key path is ours.
fn serde_message(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(cut) => &message[..cut],
        None => message,
    };
    match message.split_once(": ") {
        Some((prefix, rest)) if !prefix.contains(char::is_whitespace) => rest.to_owned(),
        _ => message.to_owned(),
    }
}

fn resolve_paths(config: &mut Config, base: &Path) {
    let resolve = |path: &mut PathBuf| {
        if path.is_relative() {
            *path = base.join(&*path);
        }
    };
    let tls = &mut config.server.tls;
    resolve(&mut tls.cert);
    resolve(&mut tls.key);
    tls.client_ca.iter_mut().for_each(resolve);
    resolve(&mut config.data_dir);
    if let Some(shared) = &mut config.shared_store {
        let postgres = &mut shared.postgres;
        resolve(&mut postgres.url_file);
        if let Some(tls) = &mut postgres.tls {
            tls.ca.iter_mut().for_each(resolve);
            tls.client_cert.iter_mut().for_each(resolve);
            tls.client_key.iter_mut().for_each(resolve);
        }
    }
    resolve(&mut config.audit.pseudonym_key_file);
    resolve(&mut config.audit.signing_key_file);
    if let Some(sink) = &mut config.audit.sink {
        if sink.as_os_str() != "-" {
            resolve(sink);
        }
    }
    config.admin.token_file.iter_mut().for_each(resolve);
    config.recovery.backup_marker.iter_mut().for_each(resolve);
    config.operations.alerts_file.iter_mut().for_each(resolve);
    if let Some(erasure) = &mut config.erasure {
        for system in erasure.systems.values_mut() {
            system.delete.bearer_token_file.iter_mut().for_each(resolve);
            if let Some(verify) = &mut system.verify {
                verify.bearer_token_file.iter_mut().for_each(resolve);
            }
        }
    }
    if let Some(protection) = &mut config.field_protection {
        protection.key_ring_file.iter_mut().for_each(resolve);
    }
    if let Some(erasure) = &mut config.erasure {
        erasure.ledger_file.iter_mut().for_each(resolve);
    }
    if let Some(identity) = &mut config.identity {
        identity
            .upstream_signing_key_file
            .iter_mut()
            .for_each(resolve);
        if let Some(jwt) = &mut identity.jwt {
            jwt.jwks_file.iter_mut().for_each(resolve);
            jwt.jwks_ca.iter_mut().for_each(resolve);
            jwt.hs256_secret_file.iter_mut().for_each(resolve);
        }
    }
    if let Some(policy) = &mut config.policy {
        resolve(&mut policy.model);
        resolve(&mut policy.policy);
        policy.shadow.iter_mut().for_each(resolve);
    }
    for upstream in config.upstreams.values_mut() {
        if let Some(tls) = &mut upstream.tls {
            tls.ca.iter_mut().for_each(resolve);
            tls.client_cert.iter_mut().for_each(resolve);
            tls.client_key.iter_mut().for_each(resolve);
        }
    }
}
