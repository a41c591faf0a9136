//! Exercise 2.2: timers woken from a background thread, and a race of timers.
//!
//! One timer thread serves the whole process. It keeps the armed timers in a `BTreeMap` ordered
//! by `(deadline, id)` and sleeps on a `Condvar` until the earliest deadline (or until a timer
//! with an earlier deadline is armed). Each timer shares an `AtomicBool` ("fired") and a
//! `futures::task::AtomicWaker` with the thread.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use futures::future::{select_all, SelectAll};
use futures::task::AtomicWaker;

/// What a [`TimerFuture`] shares with the timer thread.
struct Alarm {
    fired: AtomicBool,
    /// The waker of the most recent pending poll.
    waker: AtomicWaker,
}

impl Alarm {
    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        // Takes the registered waker (if any) and wakes it. A `register` racing with this
        // wakes its own new waker itself, which is what `AtomicWaker` is for.
        self.waker.wake();
    }

    fn has_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

type Key = (Instant, u64);

/// The process-wide timer service.
struct Clockwork {
    armed: Mutex<BTreeMap<Key, Arc<Alarm>>>,
    /// Signalled when a timer with a new earliest deadline is armed.
    earlier: Condvar,
    next_id: AtomicU64,
}

fn lock(armed: &Mutex<BTreeMap<Key, Arc<Alarm>>>) -> MutexGuard<'_, BTreeMap<Key, Arc<Alarm>>> {
    // Only plain map operations run under this lock: a poisoned map is still consistent.
    armed.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The timer service, with its thread started on first use.
fn clockwork() -> &'static Clockwork {
    static CLOCKWORK: OnceLock<&'static Clockwork> = OnceLock::new();
    CLOCKWORK.get_or_init(|| {
        let clockwork: &'static Clockwork = Box::leak(Box::new(Clockwork {
            armed: Mutex::new(BTreeMap::new()),
            earlier: Condvar::new(),
            next_id: AtomicU64::new(0),
        }));
        thread::Builder::new()
            .name("timer-clockwork".into())
            .spawn(move || clockwork.tick_forever())
            .expect("cannot start the timer thread");
        clockwork
    })
}

impl Clockwork {
    fn tick_forever(&self) {
        let mut armed = lock(&self.armed);
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(entry) = armed.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                // Wake with no lock held: a woken task may arm or drop timers at once.
                drop(armed);
                for alarm in due {
                    alarm.fire();
                }
                armed = lock(&self.armed);
                continue;
            }
            armed = match armed.keys().next() {
                Some(&(deadline, _)) => {
                    self.earlier
                        .wait_timeout(armed, deadline.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .earlier
                    .wait(armed)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    fn arm(&self, deadline: Instant, alarm: Arc<Alarm>) -> Key {
        let key = (deadline, self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut armed = lock(&self.armed);
        armed.insert(key, alarm);
        let is_earliest = armed.keys().next() == Some(&key);
        drop(armed);
        if is_earliest {
            self.earlier.notify_one();
        }
        key
    }

    fn disarm(&self, key: &Key) {
        let removed = lock(&self.armed).remove(key);
        drop(removed);
    }
}

/// A future that completes once a duration has passed, woken by the shared timer thread.
pub struct TimerFuture {
    alarm: Arc<Alarm>,
    /// Where the alarm sits in the armed map; `None` for a deadline that is never reached.
    key: Option<Key>,
}

impl TimerFuture {
    /// Arms a timer that fires after `duration` (the countdown starts now).
    pub fn new(duration: Duration) -> Self {
        let alarm = Arc::new(Alarm {
            fired: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        // A deadline beyond what `Instant` can hold never comes: such a timer is never armed.
        let key = Instant::now()
            .checked_add(duration)
            .map(|deadline| clockwork().arm(deadline, Arc::clone(&alarm)));
        Self { alarm, key }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.alarm.has_fired() {
            return Poll::Ready(());
        }
        // Register first, then look again: if the thread fires in between, either the second
        // look sees it or the thread finds this waker (AtomicWaker orders the two).
        self.alarm.waker.register(cx.waker());
        if self.alarm.has_fired() {
            // Fired in between: do not keep the waker just registered.
            drop(self.alarm.waker.take());
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for TimerFuture {
    fn drop(&mut self) {
        // Release the waker at once (the thread may hold the alarm a moment longer), then take
        // the alarm out of the map so that the thread forgets it.
        drop(self.alarm.waker.take());
        if let Some(key) = &self.key {
            if !self.alarm.has_fired() {
                clockwork().disarm(key);
            }
        }
    }
}

/// A race of timers: completes with the index of the first one to fire.
pub struct FirstTimer {
    /// `futures`' `SelectAll` polls the timers in index order, so the lowest fired index wins,
    /// and every pending timer is polled with the same context. `None` once decided.
    race: Option<SelectAll<TimerFuture>>,
}

impl FirstTimer {
    /// Arms one timer per duration.
    ///
    /// # Panics
    ///
    /// If `durations` is empty: such a race would never end.
    pub fn new(durations: &[Duration]) -> Self {
        assert!(
            !durations.is_empty(),
            "FirstTimer::new needs at least one duration"
        );
        Self {
            race: Some(select_all(
                durations.iter().map(|&duration| TimerFuture::new(duration)),
            )),
        }
    }
}

impl Future for FirstTimer {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let race = self
            .race
            .as_mut()
            .expect("FirstTimer polled after completion");
        match Pin::new(race).poll(cx) {
            Poll::Ready(((), index, losers)) => {
                // The index is into the untouched vector, i.e. into `durations`.
                drop(losers);
                self.race = None;
                Poll::Ready(index)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
