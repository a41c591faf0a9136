//! Exercise 2.2: timers backed by threads. Every `TimerFuture` starts its own small thread,
//! which sleeps with `park_timeout` until the deadline (or until the timer is dropped) and then
//! wakes the most recently stored waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use futures::FutureExt;

/// A sleeping timer thread needs little stack; this keeps many concurrent timers cheap.
const TIMER_STACK_SIZE: usize = 64 * 1024;

/// What a timer shares with its thread.
struct Alarm {
    fired: AtomicBool,
    cancelled: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Alarm {
    fn swap_waker(&self, waker: Option<Waker>) -> Option<Waker> {
        // Only plain moves happen under this lock, so a poisoned one is still consistent.
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *slot, waker)
    }

    /// The timer thread's body: sleep until `deadline` unless cancelled first, then ring.
    fn sleep_until(&self, deadline: Instant) {
        loop {
            if self.cancelled.load(Ordering::SeqCst) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // May return early (spuriously, or because the timer was dropped): re-check.
            thread::park_timeout(deadline - now);
        }
        // Set `fired` before taking the waker; a poll stores its waker before re-reading
        // `fired`, so one of the two always sees the other.
        self.fired.store(true, Ordering::SeqCst);
        if let Some(waker) = self.swap_waker(None) {
            waker.wake();
        }
    }
}

/// A future that is ready once `duration` has passed; its own thread wakes the task.
pub struct TimerFuture {
    alarm: Arc<Alarm>,
    /// The timer thread, to cut its sleep short when the timer is dropped.
    thread: Thread,
}

impl TimerFuture {
    /// Starts the countdown (and its thread) at once.
    pub fn new(duration: Duration) -> Self {
        let deadline = Instant::now() + duration;
        let alarm = Arc::new(Alarm {
            fired: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let shared = Arc::clone(&alarm);
        let handle = thread::Builder::new()
            .name("timer".into())
            .stack_size(TIMER_STACK_SIZE)
            .spawn(move || shared.sleep_until(deadline))
            .expect("failed to start a timer thread");
        TimerFuture {
            alarm,
            thread: handle.thread().clone(),
        }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.alarm.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        // Store first, then look again: if the thread fired in between, it may have found the
        // old waker (or none), so this poll must not report `Pending`.
        drop(self.alarm.swap_waker(Some(cx.waker().clone())));
        if self.alarm.fired.load(Ordering::SeqCst) {
            // Do not keep our task's waker around in a timer that is done.
            drop(self.alarm.swap_waker(None));
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for TimerFuture {
    fn drop(&mut self) {
        self.alarm.cancelled.store(true, Ordering::SeqCst);
        // Release the task at once; the thread notices the cancellation and exits.
        drop(self.alarm.swap_waker(None));
        self.thread.unpark();
    }
}

/// Races several [`TimerFuture`]s; the output is the index of the first one to fire.
pub struct FirstTimer {
    /// Emptied once the race is decided, which drops (and cancels) the losers.
    racers: Vec<TimerFuture>,
}

impl FirstTimer {
    /// Starts one timer per duration. Panics on an empty slice: such a race has no winner.
    pub fn new(durations: &[Duration]) -> Self {
        if durations.is_empty() {
            panic!("FirstTimer::new needs at least one duration");
        }
        FirstTimer {
            racers: durations.iter().map(|&d| TimerFuture::new(d)).collect(),
        }
    }
}

impl Future for FirstTimer {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        // Poll every racer, so that each one still running holds this poll's waker, and
        // remember the lowest index that has fired.
        let mut first_fired = None;
        for (index, racer) in self.racers.iter_mut().enumerate() {
            if racer.poll_unpin(cx).is_ready() && first_fired.is_none() {
                first_fired = Some(index);
            }
        }
        if first_fired.is_some() {
            self.racers.clear();
        }
        first_fired.map_or(Poll::Pending, Poll::Ready)
    }
}

#[cfg(test)]
mod tests;
