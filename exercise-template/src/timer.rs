//! Exercise 2.2: a timer that sleeps on another thread and wakes the waiting task when it
//! fires (the async book's `TimerFuture`), and a race between several such timers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A future that is ready once `duration` has passed, without busy-polling (exercise 2.2).
///
/// `new` starts the countdown at once: on a background thread of its own, or on a timer
/// thread shared by many timers (your choice). The future and the thread share a state: "has
/// it fired?" and "which waker to wake". Then:
///
/// - a poll before it fires stores the waker of *this* poll, replacing the older one, and
///   returns `Pending`;
/// - a poll after it fired returns `Ready(())`;
/// - when it fires, it wakes the most recently stored waker, from the timer thread.
///
/// Pitfalls:
/// - Update the waker on *every* poll, not only the first: the future may have moved to
///   another task since, and the old waker would wake the wrong one (a stale waker).
/// - Check "fired?" and store the waker under one lock. Otherwise the timer can fire between
///   the check and the store, find no waker, and the wake is lost for good (a missed wake).
/// - Wake after releasing the lock: the woken task may be polled at once on another thread,
///   and its poll needs the same lock.
/// - Release the stored waker when the `TimerFuture` is dropped (implement `Drop`): a timer
///   dropped before it fires must not keep a task, and with it the executor's `run`, alive
///   while its thread sleeps on.
pub struct TimerFuture {
    // Placeholder so that the template compiles: replace it with your own fields.
    _todo: (),
}

impl TimerFuture {
    /// Creates a timer that fires `duration` from now and starts its countdown (exercise 2.2).
    pub fn new(_duration: Duration) -> Self {
        todo!("2.2: create the shared state and start the timer thread")
    }
}

impl Future for TimerFuture {
    type Output = ();

    /// `Ready(())` once fired; otherwise stores this poll's waker and returns `Pending`
    /// (exercise 2.2).
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        todo!("2.2: under one lock, check whether the timer fired or store cx.waker().clone()")
    }
}

/// Races several [`TimerFuture`]s and returns the index (into `durations`) of the first to
/// fire (exercise 2.2).
///
/// When several have fired by the time it is polled, the lowest index wins. Once ready, it
/// drops the other timers, so that their wakers are released. `FirstTimer::new(&[])` panics.
///
/// Pitfall: on every poll, poll *every* timer that has not fired, so that each of them holds
/// the current waker; a timer that was not polled keeps an old waker (or none) and its firing
/// wakes nobody.
pub struct FirstTimer {
    // Placeholder so that the template compiles: replace it with your own fields.
    _todo: (),
}

impl FirstTimer {
    /// Starts one timer per duration (exercise 2.2). Panics if `durations` is empty.
    pub fn new(_durations: &[Duration]) -> Self {
        todo!("2.2: start one TimerFuture per duration; panic on an empty slice")
    }
}

impl Future for FirstTimer {
    type Output = usize;

    /// The lowest index among the timers that have fired, or `Pending` with every remaining
    /// timer polled (exercise 2.2).
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<usize> {
        todo!("2.2: poll every remaining timer with cx, return the lowest ready index")
    }
}

#[cfg(test)]
mod tests;
