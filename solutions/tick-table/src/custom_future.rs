//! Exercise 2.1: futures written by hand, without `async`, to show what `poll` and wakers do.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A future that is pending on its first `count` polls and then completes with a message.
#[derive(Debug)]
pub struct CountdownFuture {
    remaining: u32,
}

impl CountdownFuture {
    /// Creates a countdown that needs `count + 1` polls to complete.
    pub fn new(count: u32) -> Self {
        Self { remaining: count }
    }
}

impl Future for CountdownFuture {
    type Output = String;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        if self.remaining == 0 {
            return Poll::Ready("Countdown complete!".to_string());
        }
        self.remaining -= 1;
        // Nothing else will ever wake us: we can make progress right away, so ask to be polled again.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A timer that checks the clock on every poll instead of using a thread (it keeps its task busy).
#[derive(Debug)]
pub struct TimerFuture {
    deadline: Instant,
}

impl TimerFuture {
    /// Creates a timer that completes once `duration` has passed from now.
    pub fn new(duration: Duration) -> Self {
        Self {
            deadline: Instant::now() + duration,
        }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        // No one else knows about the deadline, so the task must come back and look again.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The state shared by a [`ManualFuture`] and its [`ManualHandle`].
struct Slot<T> {
    value: Option<T>,
    /// The waker of the most recent pending poll.
    waker: Option<Waker>,
}

/// A future completed from outside, possibly from another thread, through its [`ManualHandle`].
pub struct ManualFuture<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

/// The completing half of a [`ManualFuture`].
pub struct ManualHandle<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

fn lock<T>(slot: &Mutex<Slot<T>>) -> MutexGuard<'_, Slot<T>> {
    slot.lock().unwrap()
}

/// Forgets the stored waker, so that it keeps no task alive once one half is gone.
fn release_waker<T>(slot: &Mutex<Slot<T>>) {
    // Dropping a waker may drop a whole task: not while holding the lock.
    let waker = lock(slot).waker.take();
    drop(waker);
}

impl<T> ManualFuture<T> {
    /// Creates a pending future and the handle that completes it.
    pub fn new() -> (ManualFuture<T>, ManualHandle<T>) {
        let slot = Arc::new(Mutex::new(Slot {
            value: None,
            waker: None,
        }));
        let handle = ManualHandle {
            slot: Arc::clone(&slot),
        };
        (ManualFuture { slot }, handle)
    }
}

impl<T> ManualHandle<T> {
    /// Completes the future with `value` and wakes the task that polled it last.
    pub fn complete(self, value: T) {
        let waker = {
            let mut slot = lock(&self.slot);
            slot.value = Some(value);
            slot.waker.take()
        };
        // Wake outside the lock: the woken task may be polled on another thread at once.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for ManualHandle<T> {
    fn drop(&mut self) {
        // No one can complete the future any more, so its task need not be kept alive for a wake.
        release_waker(&self.slot);
    }
}

impl<T> Future for ManualFuture<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = lock(&self.slot);
        if let Some(value) = slot.value.take() {
            return Poll::Ready(value);
        }
        if slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        // The future may have moved to another task since the last poll: store the newest waker.
        // Cloning runs the waker's own code (which may even complete us), so not under the lock;
        // the second look at `value` and the store then happen under one lock, so no wake is lost.
        drop(slot);
        let waker = cx.waker().clone();
        let mut slot = lock(&self.slot);
        if let Some(value) = slot.value.take() {
            return Poll::Ready(value);
        }
        let replaced = slot.waker.replace(waker);
        drop(slot);
        drop(replaced);
        Poll::Pending
    }
}

impl<T> Drop for ManualFuture<T> {
    fn drop(&mut self) {
        release_waker(&self.slot);
    }
}

/// A future that applies a function to the output of another future.
pub struct MapFuture<Fut, F> {
    future: Pin<Box<Fut>>,
    f: Option<F>,
}

// `f` is never pinned and the inner future is pinned on the heap, so moving a `MapFuture` is fine.
impl<Fut, F> Unpin for MapFuture<Fut, F> {}

impl<Fut, F> MapFuture<Fut, F> {
    /// Creates a future that completes with `f(output)` once `future` completes with `output`.
    pub fn new(future: Fut, f: F) -> Self {
        Self {
            future: Box::pin(future),
            f: Some(f),
        }
    }
}

impl<Fut, F, T> Future for MapFuture<Fut, F>
where
    Fut: Future,
    F: FnOnce(Fut::Output) -> T,
{
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        // The caller's context goes through, so the inner future wakes the task that polls us.
        let output = ready!(this.future.as_mut().poll(cx));
        let f = this.f.take().expect("MapFuture polled after completion");
        Poll::Ready(f(output))
    }
}

#[cfg(test)]
mod tests;
