//! The waker a connection's watchers (its idle and head timeouts, the shutdown signals) are
//! polled with. The connection's own I/O wakes its task several times per request; each of
//! those wakes polls only the connection, and the watchers are polled again only once one of
//! them has woken the task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use futures_util::task::AtomicWaker;

pub struct WatcherWaker {
    state: Arc<WakeState>,
    waker: Waker,
}

struct WakeState {
    /// A watcher woke the task since the watchers were last polled.
    woken: AtomicBool,
    /// The task polling the connection.
    task: AtomicWaker,
}

impl Wake for WakeState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl WatcherWaker {
    /// Starts as woken, so the watchers are first polled (and so registered) on the
    /// connection's first poll.
    pub fn new() -> WatcherWaker {
        let state = Arc::new(WakeState {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        WatcherWaker {
            waker: Waker::from(state.clone()),
            state,
        }
    }

    /// A context to poll the watchers with, if one of them woke the task since the last call.
    /// Either way a watcher's next wake reaches the task that polls with `cx`.
    pub fn woken(&self, cx: &Context<'_>) -> Option<Context<'_>> {
        // Registered before the flag is read: a wake in between is then not lost.
        self.state.task.register(cx.waker());
        self.state
            .woken
            .swap(false, Ordering::AcqRel)
            .then(|| Context::from_waker(&self.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn watchers_are_polled_first_then_only_after_they_woke_the_task() {
        let task_wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let task_waker = Waker::from(task_wakes.clone());
        let cx = Context::from_waker(&task_waker);
        let watchers = WatcherWaker::new();

        let first = watchers.woken(&cx).expect("polled on the first poll");
        let registered = first.waker().clone();
        assert!(watchers.woken(&cx).is_none(), "a wake from elsewhere");

        registered.wake_by_ref();
        assert_eq!(task_wakes.0.load(Ordering::Relaxed), 1);
        assert!(watchers.woken(&cx).is_some());
        assert!(watchers.woken(&cx).is_none());
    }
}
