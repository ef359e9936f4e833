//! Unix signals the gateway obeys: SIGHUP reloads, SIGTERM and SIGINT stop gracefully.
//! Handlers are installed before anything is announced as serving, so a signal sent the
//! moment the gateway says it is up is never met by the default action (termination).

use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

pub enum Received {
    Reload,
    Stop,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    pub async fn next(&mut self) -> Received {
        tokio::select! {
            _ = self.hangup.recv() => Received::Reload,
            _ = self.terminate.recv() => Received::Stop,
            _ = self.interrupt.recv() => Received::Stop,
        }
    }

    /// Waits for SIGTERM or SIGINT, ignoring SIGHUP.
    pub async fn stopped(&mut self) {
        while let Received::Reload = self.next().await {}
    }
}
