//! The WebSocket relay: once the upstream has answered `101 Switching Protocols`, the two
//! upgraded connections are joined and bytes flow both ways until either side closes, the
//! connection is idle for too long, or the gateway is forced to stop.

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::server::activity::Activity;

/// Relays between the client's and the upstream's upgraded connections.
/// `activity` is the client connection's: relayed bytes in either direction pass through it.
pub async fn relay(
    client: OnUpgrade,
    upstream: OnUpgrade,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    stop: CancellationToken,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(error = %err, "websocket upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let copy =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, 16 * 1024, 16 * 1024);
    tokio::select! {
        result = copy => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "websocket relay ended with an error");
            }
        }
        () = stop.cancelled() => tracing::debug!("websocket relay stopped by shutdown"),
        () = activity.idle_expired(idle_timeout) => tracing::debug!("websocket relay closed after the idle timeout"),
    }
}
