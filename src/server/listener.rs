//! The proxy listener's accept loop: one task per connection, at most `max_connections` at
//! once (past that a connection is closed at once and counted), until shutdown begins.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::{connection, Shared};

pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.graceful.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                if super::open_files::exhausted(&err) {
                    tracing::warn!(
                        error = %err,
                        "accept failed: no file descriptor left (the open-files limit is reached)"
                    );
                } else {
                    tracing::warn!(error = %err, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = shared.connection_slots.clone().try_acquire_owned() else {
            shared.metrics.connections_rejected.inc();
            drop(stream);
            continue;
        };
        let task_shared = shared.clone();
        shared.tasks.spawn(async move {
            connection::serve(task_shared, stream, peer).await;
            drop(slot);
        });
    }
    shared.ready.store(false, Ordering::SeqCst);
    tracing::info!("proxy listener closed");
}
