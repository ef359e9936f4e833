//! The store replicas share (DESIGN "Scale"): one PostgreSQL database, reached over verified
//! TLS unless it is on loopback. Each store holds one connection, owned by a thread of its
//! own: callers block on it as they block on SQLite (the request path calls from blocking
//! threads), a connection the server closed is opened again before the next statement, and
//! no tokio runtime of the client's ever runs or drops inside the gateway's.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

use super::StoreError;
use crate::config::{Config, Invalid, PostgresConfig};

/// How to reach the shared database. Holds the connection string, password included: it is
/// never printed (`described` is what errors and logs show).
pub struct PostgresSettings {
    config: postgres::Config,
    tls: MakeRustlsConnect,
    described: String,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("database", &self.described)
            .finish_non_exhaustive()
    }
}

const KEY: &str = "shared_store.postgres";

impl PostgresSettings {
    /// Reads the connection string and the TLS files the config names; problems carry the
    /// config key they belong to.
    pub fn load(config: &PostgresConfig) -> Result<PostgresSettings, Vec<Invalid>> {
        let url = read_url(&config.url_file)
            .map_err(|msg| vec![Invalid::new(format!("{KEY}.url_file"), msg)])?;
        let mut parsed = tokio_postgres::Config::from_str(&url).map_err(|err| {
            vec![Invalid::new(
                format!("{KEY}.url_file"),
                // The parser's message names the bad part, never the whole string.
                format!(
                    "{}: not a PostgreSQL connection string: {err}",
                    config.url_file.display()
                ),
            )]
        })?;
        if parsed.get_hosts().is_empty() {
            return Err(vec![Invalid::new(
                format!("{KEY}.url_file"),
                format!(
                    "{}: the connection string names no host",
                    config.url_file.display()
                ),
            )]);
        }
        let plaintext = parsed.get_ssl_mode() == SslMode::Disable;
        match parsed.get_ssl_mode() {
            SslMode::Disable if !parsed.get_hosts().iter().all(is_loopback) => {
                return Err(vec![Invalid::new(
                    format!("{KEY}.url_file"),
                    "sslmode=disable sends patient keys and audit records in the clear; it is \
                     accepted only for a database on loopback or a Unix socket",
                )]);
            }
            SslMode::Disable => {}
            // libpq's `prefer` falls back to plain text; wardgate never does.
            _ => {
                parsed.ssl_mode(SslMode::Require);
            }
        }
        let timeout = config.timeout.0;
        parsed
            .connect_timeout(timeout)
            .tcp_user_timeout(timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("wardgate");
        let tls = if plaintext && config.tls.is_none() {
            crate::tls::plaintext_only_client_config(KEY)?
        } else {
            crate::tls::upstream_client_config(&format!("{KEY}.tls"), config.tls.as_ref())?
        };
        let described = describe(&parsed);
        let mut config = postgres::Config::from(parsed);
        config.notice_callback(|notice| tracing::debug!("postgres: {}", notice.message()));
        Ok(PostgresSettings {
            config,
            tls: MakeRustlsConnect::new(tls),
            described,
        })
    }

    /// `user@host:port/database`, for errors and logs.
    pub fn described(&self) -> &str {
        &self.described
    }

    /// A new connection with `schema` applied (under a lock: replicas starting together
    /// create each table once). wardgate's tables live in the `wardgate` schema, under the
    /// same names as in the data directory's files.
    fn open(&self, schema: &str) -> Result<Client, StoreError> {
        let connect = |what: &str, err: postgres::Error| failed(&self.described, what, &err);
        let mut client = self
            .config
            .connect(self.tls.clone())
            .map_err(|err| connect("cannot connect", err))?;
        let mut transaction = client
            .transaction()
            .map_err(|err| connect("cannot begin", err))?;
        transaction
            .batch_execute(&format!(
                "SELECT pg_advisory_xact_lock({SCHEMA_LOCK});
                 CREATE SCHEMA IF NOT EXISTS wardgate;
                 SET search_path TO wardgate;
                 {SESSION_SETTINGS}
                 {schema}"
            ))
            .map_err(|err| connect("cannot create the tables", err))?;
        transaction
            .commit()
            .map_err(|err| connect("cannot create the tables", err))?;
        Ok(client)
    }
}

/// The shared database's settings when the config has `shared_store`.
pub fn shared(config: &Config) -> Result<Option<Arc<PostgresSettings>>, Vec<Invalid>> {
    config
        .shared_store
        .as_ref()
        .map(|shared| PostgresSettings::load(&shared.postgres).map(Arc::new))
        .transpose()
}

/// The server notices a replica that vanished without closing its connection (a node lost,
/// a network cut) within about a minute, not the operating system's two hours: the
/// connection ends and whatever it held (the erasure worker's lock) passes to another
/// replica. A transaction left open by a stuck replica is ended too.
const SESSION_SETTINGS: &str = "SET tcp_keepalives_idle = 30;
                 SET tcp_keepalives_interval = 10;
                 SET tcp_keepalives_count = 3;
                 SET idle_in_transaction_session_timeout = '60s';";

/// The advisory lock taken while tables are created ("wardgate" in ASCII).
const SCHEMA_LOCK: i64 = 0x7761_7264_6761_7465;

fn read_url(path: &Path) -> Result<Zeroizing<String>, String> {
    let text = std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let url = Zeroizing::new(text.trim().to_owned());
    if url.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(url)
}

fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("?");
    let database = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{database}")
}

type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// One connection to the shared database, on a thread of its own.
pub struct Postgres {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    database: String,
}

impl Postgres {
    /// Connects and applies `schema`; fails (naming the database, never the password) when
    /// the database cannot be reached.
    pub fn connect(
        settings: &Arc<PostgresSettings>,
        name: &'static str,
        schema: &'static str,
    ) -> Result<Postgres, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, opened) = mpsc::channel();
        let thread_settings = settings.clone();
        let worker = std::thread::Builder::new()
            .name(format!("wardgate-pg-{name}"))
            .spawn(move || {
                let mut client = match thread_settings.open(schema) {
                    Ok(client) => {
                        let _ = ready.send(Ok(()));
                        client
                    }
                    Err(err) => {
                        let _ = ready.send(Err(err));
                        return;
                    }
                };
                for job in queue {
                    if client.is_closed() {
                        match thread_settings.open(schema) {
                            Ok(fresh) => {
                                tracing::info!("reconnected to {}", thread_settings.described());
                                client = fresh;
                            }
                            // The job then fails on the closed connection, and says so.
                            Err(err) => tracing::error!("{err}"),
                        }
                    }
                    job(&mut client);
                }
            })
            .map_err(|source| StoreError::Thread {
                name: "postgres",
                source,
            })?;
        match opened.recv() {
            Ok(Ok(())) => Ok(Postgres {
                jobs: Mutex::new(Some(jobs)),
                worker: Mutex::new(Some(worker)),
                database: settings.described().to_owned(),
            }),
            Ok(Err(err)) => {
                let _ = worker.join();
                Err(err)
            }
            Err(_) => {
                let _ = worker.join();
                Err(StoreError::Gone("postgres"))
            }
        }
    }

    /// `user@host:port/database`.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Runs `job` on the connection and waits for its result. Blocks: never call it on an
    /// async task (the request path calls from `spawn_blocking`).
    pub fn run<T, F>(&self, what: &str, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Client) -> Result<T, postgres::Error> + Send + 'static,
    {
        let (answer, answered) = mpsc::sync_channel(1);
        let sent = self
            .jobs
            .lock()
            .map_err(|_| StoreError::Gone("postgres"))?
            .as_ref()
            .ok_or(StoreError::Gone("postgres"))?
            .send(Box::new(move |client: &mut Client| {
                let _ = answer.send(job(client));
            }));
        if sent.is_err() {
            return Err(StoreError::Gone("postgres"));
        }
        answered
            .recv()
            .map_err(|_| StoreError::Gone("postgres"))?
            .map_err(|err| failed(&self.database, what, &err))
    }
}

/// A client error as a store error, with every cause it carries.
fn failed(database: &str, what: &str, err: &postgres::Error) -> StoreError {
    let mut cause = err.to_string();
    let mut next = std::error::Error::source(err);
    while let Some(inner) = next {
        let text = inner.to_string();
        if !cause.contains(&text) {
            cause.push_str(": ");
            cause.push_str(&text);
        }
        next = inner.source();
    }
    StoreError::Postgres {
        database: database.to_owned(),
        what: what.to_owned(),
        cause,
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(worker) = self.worker.lock().ok().and_then(|mut w| w.take()) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn settings_for(url: &str) -> Result<PostgresSettings, Vec<Invalid>> {
        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("url");
        std::fs::write(&url_file, url).unwrap();
        PostgresSettings::load(&PostgresConfig {
            url_file,
            tls: None,
            timeout: HumanDuration(Duration::from_secs(1)),
        })
    }

    #[test]
    fn plain_text_is_refused_off_loopback_and_the_password_never_shows() {
        let refused =
            settings_for("postgresql://wg:s3cret-pw@db.hospital.example/wardgate?sslmode=disable")
                .unwrap_err();
        assert_eq!(refused[0].key, "shared_store.postgres.url_file");
        assert!(
            refused[0].message.contains("sslmode=disable"),
            "{}",
            refused[0].message
        );
        assert!(!refused[0].message.contains("s3cret-pw"));

        let loopback =
            settings_for("postgresql://wg:s3cret-pw@127.0.0.1:5433/wardgate?sslmode=disable")
                .unwrap();
        assert_eq!(loopback.described(), "wg@127.0.0.1:5433/wardgate");
        assert!(!format!("{loopback:?}").contains("s3cret-pw"));

        let bad = settings_for("postgresql://wg:s3cret-pw@db/x?sslmode=sometimes").unwrap_err();
        assert!(bad[0]
            .message
            .contains("not a PostgreSQL connection string"));
        assert!(!bad[0].message.contains("s3cret-pw"), "{}", bad[0].message);
    }

    #[test]
    fn tls_is_required_even_where_the_string_prefers_it() {
        let settings = settings_for("host=db.hospital.example user=wg sslmode=prefer").unwrap();
        assert_eq!(settings.config.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn an_unreachable_database_is_an_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = Arc::new(
            settings_for(&format!(
                "postgresql://wg:s3cret-pw@127.0.0.1:{port}/wardgate?sslmode=disable"
            ))
            .unwrap(),
        );
        let err = Postgres::connect(&settings, "test", "SELECT 1;")
            .err()
            .unwrap();
        let message = err.to_string();
        assert!(
            message.contains(&format!("wg@127.0.0.1:{port}/wardgate")),
            "{message}"
        );
        assert!(message.contains("cannot connect"), "{message}");
        assert!(!message.contains("s3cret-pw"));
    }
}
