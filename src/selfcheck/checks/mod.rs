//! The inspection items, by area. Each looks at the real thing: the certificate file, the
//! policy, the key ring file's permissions, the audit chain (verified), the review and
//! erasure stores, the backup marker, and the running gateway's metrics when its admin
//! listener is given.

mod access;
mod audit;
mod erasure;
mod fields;
mod operations;
mod recovery;
mod reviews;
mod transport;

use super::{Item, Status};
use crate::config::Config;

const DAY_MS: i64 = 86_400_000;

/// What the running gateway shows: its metrics text (admin listener), and what real
/// handshakes with its proxy listener negotiated, per protocol version.
pub struct Live {
    pub metrics: Result<String, String>,
    pub handshakes: Option<Vec<(&'static str, Result<String, String>)>>,
}

/// Handshakes with the listener at `addr`, pinning the certificate the config names.
pub async fn handshakes(
    config: &Config,
    addr: std::net::SocketAddr,
) -> Option<Vec<(&'static str, Result<String, String>)>> {
    let leaf = crate::tls::load_certs(&config.server.tls.cert)
        .ok()?
        .into_iter()
        .next()?;
    Some(super::handshake::probe(addr, leaf).await)
}

fn item(id: &str, status: Status, found: impl Into<String>, fix: &str) -> Item {
    Item {
        id: id.to_owned(),
        status,
        found: found.into(),
        fix: if status == Status::Pass {
            String::new()
        } else {
            fix.to_owned()
        },
    }
}

fn now_ms() -> i64 {
    crate::erasure::store::now_ms()
}

fn age_days(ms: i64) -> i64 {
    (now_ms() - ms) / DAY_MS
}

/// Every item, in area order.
pub fn run(config: &Config, live: Option<&Live>) -> Vec<Item> {
    let mut items = Vec::new();
    transport::transport(config, &mut items);
    transport::live_transport(live, &mut items);
    access::access(config, &mut items);
    fields::fields(config, &mut items);
    audit::audit(config, &mut items);
    reviews::reviews(config, &mut items);
    erasure::erasure(config, &mut items);
    recovery::recovery(config, &mut items);
    operations::alerts(config, &mut items);
    operations::operations(config, live, &mut items);
    items
}
