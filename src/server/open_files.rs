//! The process's open-files limit (`RLIMIT_NOFILE`). Every client connection, upstream
//! connection and store file takes a descriptor, and shells and service managers often leave
//! the soft limit at 1024 while the hard limit allows far more: at start the soft limit is
//! raised to the hard one, as HAProxy and Go programs do. A limit still below what the config
//! lets the gateway open is logged, naming the settings, since past it new connections fail
//! to be accepted.

use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::config::Config;

/// Descriptors the gateway holds besides connections: listeners, stores and their journals,
/// the audit sink, the epoll and event descriptors of the runtime, key files being read.
const RESERVED: u64 = 64;

/// Where Linux caps the hard limit by default (`fs.nr_open`), for a hard limit reported as
/// unlimited (which Linux refuses as a soft `RLIMIT_NOFILE`).
const UNLIMITED_AS: u64 = 1 << 20;

/// The soft limit before and after the raise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFilesLimit {
    pub was: u64,
    pub now: u64,
}

/// Raises the soft limit to the hard limit. When the change is refused the limit stays as it
/// was; the gateway still runs.
fn raise() -> OpenFilesLimit {
    let limit = getrlimit(Resource::Nofile);
    let was = limit.current.unwrap_or(u64::MAX);
    let hard = limit.maximum.unwrap_or(UNLIMITED_AS);
    if was >= hard {
        return OpenFilesLimit { was, now: was };
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => OpenFilesLimit { was, now: hard },
        Err(err) => {
            tracing::warn!(limit = was, error = %err, "cannot raise the open-files limit");
            OpenFilesLimit { was, now: was }
        }
    }
}

/// How many descriptors the config lets the gateway hold at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// `server.limits.max_connections`.
    pub clients: u64,
    /// The upstreams' `pool.max_connections`, summed.
    pub upstreams: u64,
    /// [`RESERVED`], for the gateway's own files.
    pub own: u64,
}

impl Needs {
    pub fn of(config: &Config) -> Needs {
        Needs {
            clients: config.server.limits.max_connections as u64,
            upstreams: config
                .upstreams
                .values()
                .map(|upstream| upstream.pool.max_connections as u64)
                .sum(),
            own: RESERVED,
        }
    }

    pub fn total(&self) -> u64 {
        self.clients
            .saturating_add(self.upstreams)
            .saturating_add(self.own)
    }
}

impl std::fmt::Display for Needs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} descriptors (server.limits.max_connections {}, the upstreams' pool.max_connections {}, {} for the gateway's own files)",
            self.total(),
            self.clients,
            self.upstreams,
            self.own
        )
    }
}

/// What to do when the limit is below the needs.
pub const FIX: &str = "raise the hard open-files limit (LimitNOFILE= in the systemd unit, the \
     container's nofile ulimit, ulimit -Hn) or lower server.limits.max_connections";

/// Raises the limit and logs the outcome: at `info` when it was raised, at `warn` when it is
/// still below what the config needs.
pub fn raise_for(config: &Config) -> OpenFilesLimit {
    let limit = raise();
    let needs = Needs::of(config);
    if limit.now < needs.total() {
        tracing::warn!(
            limit = limit.now,
            needed = needs.total(),
            "the open-files limit is below the {needs} the config allows: connections past it \
             will fail; {FIX}"
        );
    } else if limit.now > limit.was {
        tracing::info!(
            was = limit.was,
            now = limit.now,
            "raised the open-files limit"
        );
    }
    limit
}

/// Whether an error is the process (`EMFILE`) or the system (`ENFILE`) out of descriptors.
pub fn exhausted(err: &std::io::Error) -> bool {
    matches!(Errno::from_io_error(err), Some(Errno::MFILE | Errno::NFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let limit = raise();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(after.current.unwrap_or(u64::MAX), limit.now);
        assert!(limit.now >= limit.was);
        if let Some(hard) = after.maximum {
            assert_eq!(limit.now, hard);
        }
    }
}
