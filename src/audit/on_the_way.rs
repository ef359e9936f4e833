//! Group commit that waits for the records already on their way. A commit costs about the same
//! whatever its size (an fsync, page 1, the right edge of the table and a leaf of each index),
//! so the fewer commits for the same records, the less of the core the writer takes from the
//! requests. A request announces its record once it is routed. The writer, holding a batch,
//! waits for the records announced before that batch began (never longer than
//! `audit.group_commit_wait`) instead of committing a small batch now and another right after.
//! When nothing was announced it commits at once, so a lone request is not held back.
//!
//! Records announced while a batch waits belong to the next batch: the wait is bounded by the
//! requests in flight when it began, and cannot be drawn out by each new arrival. For that,
//! announcements are counted in two generations; a batch closes the current one (new
//! announcements go to the other) and waits for it to drain.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

#[derive(Default)]
pub struct OnTheWay {
    /// The generation new announcements join: 0 or 1.
    current: AtomicUsize,
    /// Announced records not queued yet, per generation.
    counts: [AtomicUsize; 2],
    writer_waiting: AtomicBool,
    lock: Mutex<()>,
    all_arrived: Condvar,
}

/// A request's record is on its way to the writer; dropped once it is queued (or if the
/// request ends without one).
pub struct Announced {
    on_the_way: Arc<OnTheWay>,
    generation: usize,
}

/// The records a batch waits for: those announced before it began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation(usize);

impl OnTheWay {
    pub fn announce(self: &Arc<Self>) -> Announced {
        let generation = self.current.load(Ordering::SeqCst);
        self.counts[generation].fetch_add(1, Ordering::SeqCst);
        Announced {
            on_the_way: self.clone(),
            generation,
        }
    }

    /// How many announced records are not queued yet.
    pub fn count(&self) -> usize {
        self.counts
            .iter()
            .map(|count| count.load(Ordering::SeqCst))
            .sum()
    }

    /// The writer's side, as a batch begins: closes the current generation, so that records
    /// announced from now on go to the next batch, and returns it to wait for. When the other
    /// generation still has records out (a request that outlasted an earlier batch's wait),
    /// nothing is closed and the batch waits for the current generation as it grows.
    pub fn begin_batch(&self) -> Generation {
        let current = self.current.load(Ordering::SeqCst);
        let other = 1 - current;
        if self.counts[other].load(Ordering::SeqCst) == 0 {
            self.current.store(other, Ordering::SeqCst);
        }
        Generation(current)
    }

    /// Blocks until every record of `generation` is queued, or until `deadline`. Returns
    /// false at once when there is nothing (left) to wait for.
    pub fn wait_until(&self, generation: Generation, deadline: Instant) -> bool {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        let count = &self.counts[generation.0];
        let guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Set before the count is read, and the announcer reads it after its decrement: one
        // of the two sees the other, so the last arrival cannot slip by unnoticed.
        self.writer_waiting.store(true, Ordering::SeqCst);
        let waited = count.load(Ordering::SeqCst) > 0;
        if waited {
            let _ = self.all_arrived.wait_timeout(guard, left);
        }
        self.writer_waiting.store(false, Ordering::SeqCst);
        waited
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        let on_the_way = &self.on_the_way;
        // Only the last arrival of a generation wakes the writer, and only when it waits: a
        // lock and a system call per batch, not per record. (A wake for the other
        // generation's last record only makes the writer look again.)
        if on_the_way.counts[self.generation].fetch_sub(1, Ordering::SeqCst) == 1
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

    /// Waits as the writer does: again after each wake, until nothing is left or the deadline.
    fn wait_out(on_the_way: &OnTheWay, generation: Generation, deadline: Instant) {
        while on_the_way.wait_until(generation, deadline) {}
    }

    #[test]
    fn nothing_announced_means_no_wait() {
        let on_the_way = Arc::new(OnTheWay::default());
        let started = Instant::now();
        let batch = on_the_way.begin_batch();
        assert!(!on_the_way.wait_until(batch, started + Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_last_arrival_ends_the_wait_and_the_deadline_bounds_it() {
        let on_the_way = Arc::new(OnTheWay::default());
        let first = on_the_way.announce();
        let second = on_the_way.announce();
        assert_eq!(on_the_way.count(), 2);
        let batch = on_the_way.begin_batch();
        let arrivals = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(first);
            std::thread::sleep(Duration::from_millis(20));
            drop(second);
        });
        // Woken by the second drop, long before the deadline (the test only checks it did
        // not sit out the whole minute).
        let started = Instant::now();
        wait_out(&on_the_way, batch, started + Duration::from_secs(60));
        assert_eq!(on_the_way.count(), 0);
        assert!(started.elapsed() < Duration::from_secs(30));
        arrivals.join().unwrap();

        // One that never arrives: the deadline ends the wait.
        let _stuck = on_the_way.announce();
        let batch = on_the_way.begin_batch();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(30);
        assert!(on_the_way.wait_until(batch, deadline));
        wait_out(&on_the_way, batch, deadline);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_record_announced_after_the_batch_began_waits_for_the_next() {
        let on_the_way = Arc::new(OnTheWay::default());
        let early = on_the_way.announce();
        let batch = on_the_way.begin_batch();
        let late = on_the_way.announce();
        let arrival = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(early);
        });
        // Ends when the early record arrives, though the late one never does.
        let started = Instant::now();
        wait_out(&on_the_way, batch, started + Duration::from_secs(60));
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(on_the_way.count(), 1);
        arrival.join().unwrap();

        // The next batch waits for it.
        let next = on_the_way.begin_batch();
        assert_ne!(next, batch);
        assert!(on_the_way.wait_until(next, Instant::now() + Duration::from_millis(10)));
        drop(late);
        assert!(!on_the_way.wait_until(next, Instant::now() + Duration::from_secs(10)));
    }

    #[test]
    fn a_record_outlasting_a_wait_leaves_the_generation_open() {
        let on_the_way = Arc::new(OnTheWay::default());
        let slow = on_the_way.announce();
        let first_batch = on_the_way.begin_batch();
        wait_out(
            &on_the_way,
            first_batch,
            Instant::now() + Duration::from_millis(5),
        );
        // The slow record is still out in the closed generation, so the next batch cannot
        // close the current one: it waits for records announced after it began as well.
        let second_batch = on_the_way.begin_batch();
        assert_ne!(second_batch, first_batch);
        let later = on_the_way.announce();
        drop(slow);
        assert!(on_the_way.wait_until(second_batch, Instant::now() + Duration::from_millis(10)));
        drop(later);
        assert!(!on_the_way.wait_until(second_batch, Instant::now() + Duration::from_secs(10)));
    }
}
