//! Exercise 2.2: thread-backed timers and a race of timers.
//!
//! Every armed timer lives in one global table guarded by one lock: its deadline and the waker of
//! its latest pending poll. A `TimerFuture` is only a number in that table; "fired" means "no
//! longer in the table". One worker thread serves the table, sleeping on a `Condvar` until the
//! earliest deadline; it retires when nothing has been armed for a short while, and the next
//! `TimerFuture::new` starts a fresh one.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// How long an idle worker waits for new timers before it exits.
const IDLE_LINGER: Duration = Duration::from_millis(20);

/// One armed timer.
struct Armed {
    /// `None` if the deadline does not fit in an `Instant`: it never fires.
    deadline: Option<Instant>,
    /// The waker of the latest pending poll.
    waker: Option<Waker>,
}

struct Table {
    next_id: u64,
    /// Every timer that has neither fired nor been dropped.
    armed: BTreeMap<u64, Armed>,
    /// The finite deadlines of `armed`, sorted latest first (the next one to fire is last).
    schedule: Vec<(Instant, u64)>,
    /// Whether a worker thread is alive (it owns the job of firing everything in `schedule`).
    worker_running: bool,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    next_id: 0,
    armed: BTreeMap::new(),
    schedule: Vec::new(),
    worker_running: false,
});
static CHANGED: Condvar = Condvar::new();

fn table() -> MutexGuard<'static, Table> {
    // Only our own bookkeeping runs under this lock (no waker is cloned, woken or dropped in
    // it), so even a poisoned table is consistent.
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Table {
    /// Where `(deadline, id)` sits, or would sit, in the latest-first `schedule`.
    fn position(&self, key: (Instant, u64)) -> Result<usize, usize> {
        self.schedule.binary_search_by(|probe| key.cmp(probe))
    }
}

/// The worker: fires due timers (waking outside the lock) and sleeps until the next deadline.
fn worker() {
    let mut table = table();
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(&(deadline, id)) = table.schedule.last() {
            if deadline > now {
                break;
            }
            table.schedule.pop();
            if let Some(armed) = table.armed.remove(&id) {
                due.push(armed.waker);
            }
        }
        if !due.is_empty() {
            drop(table);
            // Every one of them is now "fired" for its poll; wake from this thread.
            for waker in due.into_iter().flatten() {
                waker.wake();
            }
            table = self::table();
            continue;
        }
        match table.schedule.last() {
            Some(&(deadline, _)) => {
                let wait = deadline.saturating_duration_since(now);
                table = CHANGED
                    .wait_timeout(table, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            None => {
                let (guard, result) = CHANGED
                    .wait_timeout(table, IDLE_LINGER)
                    .unwrap_or_else(PoisonError::into_inner);
                table = guard;
                if result.timed_out() && table.schedule.is_empty() {
                    table.worker_running = false;
                    return;
                }
            }
        }
    }
}

/// A future that completes once a duration has passed, fired by the shared worker thread.
pub struct TimerFuture {
    id: u64,
}

impl TimerFuture {
    /// Starts a timer that fires after `duration` (counted from now).
    pub fn new(duration: Duration) -> Self {
        let deadline = Instant::now().checked_add(duration);
        let mut table = table();
        let id = table.next_id;
        table.next_id += 1;
        table.armed.insert(
            id,
            Armed {
                deadline,
                waker: None,
            },
        );
        if let Some(deadline) = deadline {
            let at = match table.position((deadline, id)) {
                Ok(at) | Err(at) => at,
            };
            table.schedule.insert(at, (deadline, id));
            if !table.worker_running {
                table.worker_running = true;
                thread::Builder::new()
                    .name("timer-worker".into())
                    .spawn(worker)
                    .expect("cannot start the timer thread");
            } else if at == table.schedule.len() - 1 {
                // A new earliest deadline: the worker must shorten its sleep.
                CHANGED.notify_all();
            }
        }
        Self { id }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Cloned before the lock: a waker's clone is foreign code.
        let newest = cx.waker().clone();
        let mut table = table();
        let older = match table.armed.get_mut(&self.id) {
            // Check and store under one lock: the worker cannot fire in between.
            Some(armed) => armed.waker.replace(newest),
            None => {
                drop(table);
                drop(newest);
                return Poll::Ready(());
            }
        };
        drop(table);
        // Dropping a waker may drop a task (and its timers): never under the lock.
        drop(older);
        Poll::Pending
    }
}

impl Drop for TimerFuture {
    fn drop(&mut self) {
        let mut table = table();
        let removed = table.armed.remove(&self.id);
        if let Some(Armed {
            deadline: Some(deadline),
            ..
        }) = &removed
        {
            if let Ok(at) = table.position((*deadline, self.id)) {
                table.schedule.remove(at);
            }
            if table.schedule.is_empty() {
                // Let an idle worker start its countdown to retirement now.
                CHANGED.notify_all();
            }
        }
        drop(table);
        // The waker goes at once, outside the lock.
        drop(removed);
    }
}

/// A race of timers: completes with the index of the first one to fire.
pub struct FirstTimer {
    /// `None` once the race is decided (every timer dropped, wakers released).
    racers: Option<Vec<TimerFuture>>,
}

impl FirstTimer {
    /// Starts one timer per duration.
    ///
    /// # Panics
    ///
    /// If `durations` is empty.
    pub fn new(durations: &[Duration]) -> Self {
        if durations.is_empty() {
            panic!("FirstTimer::new needs at least one duration");
        }
        Self {
            racers: Some(durations.iter().map(|&d| TimerFuture::new(d)).collect()),
        }
    }
}

impl Future for FirstTimer {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let racers = self
            .racers
            .as_mut()
            .expect("FirstTimer polled after it returned Ready");
        // Every racer is polled (from the last to the first), so every one that has not fired
        // holds this poll's waker; the lowest index among the fired ones wins.
        let mut winner = None;
        for (index, racer) in racers.iter_mut().enumerate().rev() {
            if Pin::new(racer).poll(cx).is_ready() {
                winner = Some(index);
            }
        }
        match winner {
            Some(index) => {
                self.racers = None;
                Poll::Ready(index)
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
