//! Group commit that waits for the records already on their way. A commit costs about the same
//! whatever its size (an fsync, page 1, the right edge of the table and a leaf of each index),
//! so the fewer commits for the same records, the less of the core the writer takes from the
//! requests. A request whose upstream has answered announces its record: it will be submitted
//! within microseconds unless the core is busy. The writer, holding a batch, waits for the
//! announced records (never longer than `audit.group_commit_wait`) instead of committing a
//! small batch now and another right after. When nothing is announced it commits at once, so a
//! lone request is not held back.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

#[derive(Default)]
pub struct OnTheWay {
    count: AtomicUsize,
    writer_waiting: AtomicBool,
    lock: Mutex<()>,
    all_arrived: Condvar,
}

/// A request's record is on its way to the writer; dropped once it is queued (or if the
/// request ends without one).
pub struct Announced(Arc<OnTheWay>);

impl OnTheWay {
    pub fn announce(self: &Arc<Self>) -> Announced {
        self.count.fetch_add(1, Ordering::SeqCst);
        Announced(self.clone())
    }

    /// How many announced records are not queued yet.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// The writer's side: blocks until every announced record is queued, or until `deadline`.
    /// Returns false at once when there is nothing to wait for.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        let guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Set before the count is read, and the announcer reads it after its decrement: one
        // of the two sees the other, so the last arrival cannot slip by unnoticed.
        self.writer_waiting.store(true, Ordering::SeqCst);
        let waited = self.count.load(Ordering::SeqCst) > 0;
        if waited {
            let _ = self.all_arrived.wait_timeout(guard, left);
        }
        self.writer_waiting.store(false, Ordering::SeqCst);
        waited
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        let on_the_way = &self.0;
        // Only the last arrival wakes the writer, and only when it waits: a lock and a system
        // call per batch, not per record.
        if on_the_way.count.fetch_sub(1, Ordering::SeqCst) == 1
            && on_the_way.writer_waiting.load(Ordering::SeqCst)
        {
            let _guard = on_the_way
                .lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            on_the_way.all_arrived.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nothing_announced_means_no_wait() {
        let on_the_way = Arc::new(OnTheWay::default());
        let started = Instant::now();
        assert!(!on_the_way.wait_until(started + Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_last_arrival_ends_the_wait_and_the_deadline_bounds_it() {
        let on_the_way = Arc::new(OnTheWay::default());
        let first = on_the_way.announce();
        let second = on_the_way.announce();
        assert_eq!(on_the_way.count(), 2);
        let arrivals = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(first);
            std::thread::sleep(Duration::from_millis(20));
            drop(second);
        });
        // Woken by the second drop, long before the deadline (the test only checks it did
        // not sit out the whole minute).
        let started = Instant::now();
        while on_the_way.wait_until(started + Duration::from_secs(60)) {
            if on_the_way.count() == 0 {
                break;
            }
        }
        assert_eq!(on_the_way.count(), 0);
        assert!(started.elapsed() < Duration::from_secs(30));
        arrivals.join().unwrap();

        // One that never arrives: the deadline ends the wait.
        let _stuck = on_the_way.announce();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(30);
        assert!(on_the_way.wait_until(deadline));
        while on_the_way.wait_until(deadline) {}
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
