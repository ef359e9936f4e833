//! The running gateway: binds the proxy and admin listeners, owns the state every connection
//! shares, reloads config and certificates, and shuts down gracefully.

pub mod activity;
mod connection;
mod listener;
pub mod open_files;
mod signals;
mod watchers;

pub use signals::{Received, Signals};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::Audit;
use crate::config::{self, ConfigErrors, Invalid, Limits, LoadedConfig};
use crate::crypto::key_store::{KeyStoreError, PatientKeys};
use crate::erasure::Erasure;
use crate::metrics::Metrics;
use crate::policy::BreakGlassGrants;
use crate::runtime::Runtime;
use crate::store::Location;
use crate::tls::{self, ServerTlsConfig};

/// State shared by every connection and the admin listener.
pub struct Shared {
    /// The current runtime; swapped whole on reload.
    pub runtime: ArcSwap<Runtime>,
    /// The current TLS config; each new connection takes the latest.
    pub tls: ArcSwap<rustls::ServerConfig>,
    pub metrics: Arc<Metrics>,
    /// The audit trail: its writer and chain outlive config reloads.
    pub audit: Audit,
    /// True while the proxy listener accepts connections.
    pub ready: AtomicBool,
    /// Connection and relay tasks, awaited on shutdown.
    pub tasks: TaskTracker,
    /// Stop accepting; let in-flight requests finish.
    pub graceful: CancellationToken,
    /// The grace period is over: close whatever is still open.
    pub force_close: CancellationToken,
    /// Open break-glass grants; they outlive config reloads.
    pub grants: BreakGlassGrants,
    /// The address the proxy listener is bound to (for the self-inspection's handshakes).
    pub proxy_addr: SocketAddr,
    /// Erasure workflows, when configured (a restart applies changes to their systems).
    pub erasure: Option<Arc<Erasure>>,
    /// Requests in progress, at most `server.limits.max_in_flight` (a restart resizes it).
    pub in_flight: Arc<Semaphore>,
    /// Per-patient data keys, when field protection is configured; the store outlives
    /// reloads (a reload re-reads the key ring).
    pub keys: Option<Arc<PatientKeys>>,
    /// Where the stores are (a restart applies a change).
    pub stores: Location,
    limits: Limits,
    connection_slots: Arc<Semaphore>,
    pub config_path: PathBuf,
    /// The listener addresses in force (a reload cannot move them).
    listen: (SocketAddr, SocketAddr),
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl Shared {
    /// Re-reads the config file and everything it references (certificates, policies, keys);
    /// on any problem the running config is kept and the problems are returned.
    pub async fn reload(&self) -> Result<(), ConfigErrors> {
        let _one_at_a_time = self.reloading.lock().await;
        let loaded = match config::load(&self.config_path) {
            Ok(loaded) => loaded,
            Err(errors) => return Err(self.reload_failed(errors)),
        };
        let prepared = match prepare(&loaded).await {
            Ok(prepared) => prepared,
            Err(errors) => return Err(self.reload_failed(errors)),
        };
        if (loaded.config.server.listen, loaded.config.admin.listen) != self.listen {
            tracing::warn!(
                "listener addresses changed in the config; restart wardgate to apply them"
            );
        }
        if let Err(errors) = self.reload_key_ring(&prepared.runtime) {
            return Err(self.reload_failed(loaded.locate(errors)));
        }
        let mut runtime = prepared.runtime;
        runtime.carry_over(&self.runtime.load());
        record_policy_load(&self.stores, &runtime);
        self.runtime.store(Arc::new(runtime));
        self.tls.store(prepared.tls.config);
        if let Some(expiry) = prepared.tls.cert_not_after {
            self.metrics.tls_cert_expiry.set(expiry);
        }
        self.audit.reopen_sink();
        self.metrics.config_reloads.inc();
        tracing::info!(config = %self.config_path.display(), "config, policies and certificates reloaded");
        Ok(())
    }

    /// Picks up a rotated key ring and rewraps the data keys under its newest version (in the
    /// background: requests keep being served meanwhile).
    fn reload_key_ring(&self, runtime: &Runtime) -> Result<(), Vec<Invalid>> {
        let Some(protection) = &runtime.field_protection else {
            return Ok(());
        };
        let Some(keys) = &self.keys else {
            return Err(vec![Invalid::new(
                "field_protection",
                "field protection was added to a running gateway: restart wardgate to open the key store",
            )]);
        };
        if keys.ring_source() != &protection.ring {
            return Err(vec![Invalid::new(
                "field_protection",
                "the key ring's location changed: restart wardgate to apply it",
            )]);
        }
        let newer = keys
            .reload_ring()
            .map_err(|err| vec![Invalid::new("field_protection", err.to_string())])?;
        if newer {
            let keys = keys.clone();
            tokio::task::spawn_blocking(move || match keys.rewrap_all() {
                Ok(count) => tracing::info!(
                    count,
                    version = keys.ring_version(),
                    "data keys rewrapped under the new key ring version"
                ),
                Err(err) => tracing::error!("rewrapping data keys failed: {err}"),
            });
        }
        Ok(())
    }

    fn reload_failed(&self, errors: ConfigErrors) -> ConfigErrors {
        self.metrics.config_reload_failures.inc();
        for error in &errors.0 {
            tracing::error!("reload refused, keeping the running config: {error}");
        }
        errors
    }

    /// The files a reload reads, for the change watcher.
    fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config_path.clone()];
        if let Ok(loaded) = config::load(&self.config_path) {
            files.extend(loaded.config.referenced_files());
        }
        files
    }
}

/// Notes the policy version now in force, for the permission review ("which policy was in
/// force when"); a failure is logged, never fatal.
fn record_policy_load(stores: &Location, runtime: &Runtime) {
    if let Some(policy) = &runtime.policy {
        let now = crate::erasure::store::now_ms();
        if let Err(err) = crate::review::store::record_policy_load(stores, &policy.hash, now) {
            tracing::warn!("cannot record the policy load for reviews: {err}");
        }
    }
}

/// Every 10 seconds: evicts idle rate limit buckets and expired enumeration windows, so
/// their memory follows the traffic; and measures the room left in the data directory.
async fn housekeeping(shared: std::sync::Weak<Shared>, data_dir: PathBuf) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut measured = true;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let runtime = shared.runtime.load();
        runtime.rate_limits.evict_idle();
        if let Some(detector) = &runtime.enumeration {
            detector.evict_expired();
        }
        // Off the serving thread: `statvfs` can block on a network filesystem.
        let dir = data_dir.clone();
        let available =
            tokio::task::spawn_blocking(move || crate::store::space::available_bytes(&dir)).await;
        match available {
            Ok(Ok(bytes)) => {
                measured = true;
                shared
                    .metrics
                    .data_dir_available_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
            Ok(Err(err)) if measured => {
                measured = false;
                tracing::warn!(data_dir = %data_dir.display(), "cannot measure the room left in the data directory: {err}");
            }
            _ => {}
        }
    }
}

/// What a request knows about the connection it came on.
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer's address as header text (`X-Forwarded-For`), formatted once per connection.
    pub peer_text: http::HeaderValue,
    pub activity: Arc<activity::Activity>,
    /// The verified client certificate, when mTLS is on and one was presented.
    pub client_cert: Option<CertificateDer<'static>>,
}

/// Everything built from a config before anything is bound: the runtime and the TLS config.
/// `wardgate check` builds this too, so it checks every referenced file.
pub struct Prepared {
    pub runtime: Runtime,
    pub tls: ServerTlsConfig,
    /// Where the stores are (the shared database's connection string and CA read, not yet
    /// connected to).
    pub stores: Location,
}

pub async fn prepare(loaded: &LoadedConfig) -> Result<Prepared, ConfigErrors> {
    let runtime = Runtime::build(&loaded.config).await;
    let tls = tls::server_config(&loaded.config.server.tls);
    let stores = Location::of(&loaded.config);
    match (runtime, tls, stores) {
        (Ok(runtime), Ok(tls), Ok(stores)) => Ok(Prepared {
            runtime,
            tls,
            stores,
        }),
        (runtime, tls, stores) => {
            let mut problems = runtime.err().unwrap_or_default();
            problems.extend(tls.err().unwrap_or_default());
            problems.extend(stores.err().unwrap_or_default());
            Err(loaded.locate(problems))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started gateway. Dropping it does not stop it; call [`RunningGateway::shutdown`].
pub struct RunningGateway {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    shared: Arc<Shared>,
    grace_period: Duration,
}

impl RunningGateway {
    /// Builds everything from the config, binds both listeners and starts serving.
    pub async fn start(loaded: LoadedConfig) -> Result<RunningGateway, StartError> {
        let prepared = prepare(&loaded).await?;
        let config = &loaded.config;
        let open_files = open_files::raise_for(config);
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { what, addr, source })
        };
        let proxy_listener = bind("proxy", config.server.listen).await?;
        let admin_listener = bind("admin", config.admin.listen).await?;
        let proxy_addr = local_addr(&proxy_listener, "proxy", config.server.listen)?;
        let admin_addr = local_addr(&admin_listener, "admin", config.admin.listen)?;

        let metrics = Arc::new(Metrics::new());
        if let Some(expiry) = prepared.tls.cert_not_after {
            metrics.tls_cert_expiry.set(expiry);
        }
        let location = prepared.stores.clone();
        let audit = Audit::start(&config.data_dir, &location, &config.audit, metrics.clone())
            .map_err(|problems| loaded.locate(problems))?;
        let keys = match &prepared.runtime.field_protection {
            Some(protection) => Some(Arc::new(
                PatientKeys::open(
                    location.clone(),
                    protection.ring.clone(),
                    config
                        .field_protection
                        .as_ref()
                        .map_or(1, |p| p.key_cache_capacity),
                )
                .map_err(|err| {
                    let key = match (&err, &location) {
                        (KeyStoreError::Store(_), Location::Shared(_)) => "shared_store.postgres",
                        _ => "field_protection",
                    };
                    loaded.locate(vec![Invalid::new(key, err.to_string())])
                })?,
            )),
            None => None,
        };
        let erasure = match &config.erasure {
            Some(erasure) => {
                let key = crate::audit::load_signing_key(&config.audit.signing_key_file).map_err(
                    |msg| loaded.locate(vec![Invalid::new("audit.signing_key_file", msg)]),
                )?;
                Some(Arc::new(
                    Erasure::open(&location, erasure, key)
                        .map_err(|problems| loaded.locate(problems))?,
                ))
            }
            None => None,
        };
        if let (Some(erasure), Some(keys)) = (&erasure, &keys) {
            // An erased patient's key must stay destroyed, even in stores restored from a
            // backup taken before the erasure.
            let destroyed = keys.shred_all(&erasure.erased_patients()).map_err(|err| {
                loaded.locate(vec![Invalid::new("field_protection", err.to_string())])
            })?;
            if destroyed > 0 {
                tracing::warn!(
                    keys = destroyed,
                    "data keys of erased patients were alive (a restored backup?) and are shredded again"
                );
            }
        }
        spawn_pruning(
            location.clone(),
            audit.instance.clone(),
            config.audit.retention.0,
        );
        record_policy_load(&location, &prepared.runtime);
        let shared = Arc::new(Shared {
            runtime: ArcSwap::from_pointee(prepared.runtime),
            tls: ArcSwap::new(prepared.tls.config),
            metrics,
            audit,
            ready: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            graceful: CancellationToken::new(),
            force_close: CancellationToken::new(),
            grants: BreakGlassGrants::default(),
            in_flight: Arc::new(Semaphore::new(config.server.limits.max_in_flight)),
            proxy_addr,
            erasure,
            keys,
            stores: location,
            limits: config.server.limits.clone(),
            connection_slots: Arc::new(Semaphore::new(config.server.limits.max_connections)),
            config_path: loaded.path.clone(),
            listen: (config.server.listen, config.admin.listen),
            reloading: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(housekeeping(
            Arc::downgrade(&shared),
            config.data_dir.clone(),
        ));
        crate::erasure::spawn(&shared);
        if let Some(every) = config.reload.watch_interval() {
            tokio::spawn(watch_files(Arc::downgrade(&shared), every));
        }
        tokio::spawn(crate::admin::serve(admin_listener, shared.clone()));
        shared.ready.store(true, Ordering::SeqCst);
        // Tracked with the connections: shutdown waits for the listener to close, so the port
        // is free once "stopped" is logged.
        shared
            .tasks
            .spawn(listener::accept_loop(proxy_listener, shared.clone()));
        let runtime = match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => "current_thread",
            _ => "multi_thread",
        };
        tracing::info!(
            %proxy_addr,
            %admin_addr,
            runtime,
            open_files = open_files.now,
            "wardgate is serving"
        );
        Ok(RunningGateway {
            proxy_addr,
            admin_addr,
            shared,
            grace_period: config.server.shutdown_grace_period.0,
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Re-reads the config and everything it references; see [`Shared::reload`].
    pub async fn reload(&self) -> Result<(), ConfigErrors> {
        self.shared.reload().await
    }

    /// Stops accepting, lets in-flight requests finish within the grace period, then closes
    /// what is left.
    pub async fn shutdown(self) {
        tracing::info!(grace_period = ?self.grace_period, "shutting down");
        self.shared.ready.store(false, Ordering::SeqCst);
        self.shared.graceful.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(self.grace_period, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("grace period over; closing the remaining connections");
            self.shared.force_close.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), self.shared.tasks.wait()).await;
        }
        self.shared.force_close.cancel();
        if self
            .shared
            .audit
            .close(Duration::from_secs(5))
            .await
            .is_err()
        {
            tracing::error!("audit records still queued at exit could not be committed");
        }
        tracing::info!("stopped");
    }

    /// Serves until SIGTERM or SIGINT (then shuts down gracefully); SIGHUP reloads.
    pub async fn run_until_signalled(self, mut signals: Signals) {
        while let Received::Reload = signals.next().await {
            let _ = self.reload().await;
        }
        self.shutdown().await;
    }
}

/// Reloads when the config file or a file it references changes (by modification time), for
/// as long as the gateway runs.
async fn watch_files(shared: std::sync::Weak<Shared>, every: Duration) {
    let stamps = |files: &[PathBuf]| -> Vec<Option<std::time::SystemTime>> {
        files
            .iter()
            .map(|file| std::fs::metadata(file).and_then(|m| m.modified()).ok())
            .collect()
    };
    let Some(first) = shared.upgrade() else {
        return;
    };
    let mut files = first.watched_files();
    let mut seen = stamps(&files);
    drop(first);
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.force_close.is_cancelled() {
            return;
        }
        let now = stamps(&files);
        if now != seen {
            tracing::info!("a config file changed; reloading");
            let _ = shared.reload().await;
            files = shared.watched_files();
            seen = stamps(&files);
        }
    }
}

/// Removes audit records past their retention, hourly, keeping the chain verifiable (pruning
/// stops at a signed checkpoint).
fn spawn_pruning(location: Location, instance: String, retention: Duration) {
    tokio::spawn(async move {
        loop {
            let (location, id) = (location.clone(), instance.clone());
            let pruned = tokio::task::spawn_blocking(move || {
                let cutoff = std::time::SystemTime::now()
                    .checked_sub(retention)
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                crate::audit::prune(&location, &id, cutoff)
            })
            .await;
            match pruned {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => {
                    tracing::info!(removed, "audit records past their retention pruned")
                }
                Ok(Err(err)) => tracing::warn!("audit pruning failed: {err}"),
                Err(_) => return,
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}

fn local_addr(
    listener: &TcpListener,
    what: &'static str,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Bind { what, addr, source })
}
