//! Exercise 2.2: the async book's timer, woken from a background thread, and a race of timers.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

/// What a [`TimerFuture`] shares with its thread.
#[derive(Default)]
struct Shared {
    completed: bool,
    /// The waker of the most recent pending poll.
    waker: Option<Waker>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // No foreign code runs under this lock, so even a poisoned state is consistent.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A future that completes once a duration has passed, woken by a thread of its own.
pub struct TimerFuture {
    shared: Arc<Mutex<Shared>>,
}

impl TimerFuture {
    /// Starts a timer that fires after `duration`.
    pub fn new(duration: Duration) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let thread_shared = Arc::clone(&shared);
        thread::spawn(move || {
            thread::sleep(duration);
            let waker = {
                let mut state = lock(&thread_shared);
                state.completed = true;
                state.waker.take()
            };
            // Wake outside the lock: the woken task may poll us (and lock) at once.
            if let Some(waker) = waker {
                waker.wake();
            }
        });
        Self { shared }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = lock(&self.shared);
        if state.completed {
            return Poll::Ready(());
        }
        if state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        // The timer may have moved to another task since the last poll: store the newest waker.
        // Cloning runs the waker's own code, so not under the lock; the second look at
        // `completed` and the store then happen under one lock, so the thread cannot fire in
        // between and miss the wake.
        drop(state);
        let waker = cx.waker().clone();
        let mut state = lock(&self.shared);
        if state.completed {
            return Poll::Ready(());
        }
        let replaced = state.waker.replace(waker);
        drop(state);
        // Dropping a waker may drop a whole task: not while holding the lock.
        drop(replaced);
        Poll::Pending
    }
}

impl Drop for TimerFuture {
    fn drop(&mut self) {
        // The thread may sleep on, but it must not keep the task of a dropped timer alive.
        let waker = lock(&self.shared).waker.take();
        drop(waker);
    }
}

/// A race of timers: completes with the index of the first one to fire.
pub struct FirstTimer {
    /// Emptied once the race is decided, which releases every timer's waker.
    timers: Vec<TimerFuture>,
}

impl FirstTimer {
    /// Starts one timer per duration.
    ///
    /// # Panics
    ///
    /// If `durations` is empty: such a race would never end.
    pub fn new(durations: &[Duration]) -> Self {
        assert!(
            !durations.is_empty(),
            "FirstTimer needs at least one duration"
        );
        Self {
            timers: durations.iter().map(|&d| TimerFuture::new(d)).collect(),
        }
    }
}

impl Future for FirstTimer {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        assert!(
            !self.timers.is_empty(),
            "FirstTimer polled after completion"
        );
        // Poll them in index order (so the lowest fired index wins), and every pending one
        // gets this poll's waker, so whichever fires first wakes the task.
        let winner = self
            .timers
            .iter_mut()
            .position(|timer| Pin::new(timer).poll(cx).is_ready());
        match winner {
            Some(index) => {
                self.timers.clear();
                Poll::Ready(index)
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
