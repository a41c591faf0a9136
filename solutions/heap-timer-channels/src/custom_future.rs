//! Exercise 2.1: futures that implement `poll` by hand (a countdown, a busy-polling timer, a
//! future completed from outside and a combinator that maps an output).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Returns `Pending` on its first `count` polls and `"Countdown complete!"` on the next one.
pub struct CountdownFuture {
    pending_polls: u32,
    polled: u32,
}

impl CountdownFuture {
    /// Creates a countdown that needs `count` extra polls before it is ready.
    pub fn new(count: u32) -> Self {
        Self {
            pending_polls: count,
            polled: 0,
        }
    }
}

impl Future for CountdownFuture {
    type Output = String;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        if self.polled == self.pending_polls {
            return Poll::Ready("Countdown complete!".to_string());
        }
        self.polled += 1;
        // Nothing else will ever wake us, and we can progress at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A timer without a thread: every early poll asks to be polled again.
pub struct TimerFuture {
    ready_at: Instant,
}

impl TimerFuture {
    /// Creates a timer that is ready `duration` from now.
    pub fn new(duration: Duration) -> Self {
        let ready_at = Instant::now() + duration;
        TimerFuture { ready_at }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let left = self.ready_at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// What a [`ManualFuture`] and its [`ManualHandle`] share.
struct Rendezvous<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// A future that is completed from outside through its [`ManualHandle`].
pub struct ManualFuture<T> {
    shared: Arc<Mutex<Rendezvous<T>>>,
}

/// The half of a [`ManualFuture`] that completes it, from any thread.
pub struct ManualHandle<T> {
    shared: Arc<Mutex<Rendezvous<T>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Neither side runs foreign code under the lock, so a poisoned lock still holds valid state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> ManualFuture<T> {
    /// Creates a pending future and the handle that completes it.
    pub fn new() -> (ManualFuture<T>, ManualHandle<T>) {
        let shared = Arc::new(Mutex::new(Rendezvous {
            value: None,
            waker: None,
        }));
        (
            ManualFuture {
                shared: Arc::clone(&shared),
            },
            ManualHandle { shared },
        )
    }
}

impl<T> ManualHandle<T> {
    /// Stores `value` and wakes the waker of the latest pending poll, if there was one.
    pub fn complete(self, value: T) {
        let waker = {
            let mut shared = lock(&self.shared);
            shared.value = Some(value);
            shared.waker.take()
        };
        // Woken outside the lock: the wake may poll the future at once on another thread.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for ManualFuture<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // Cloned before locking: a waker's clone is foreign code and must not run under our lock.
        let fresh = cx.waker().clone();
        let mut shared = lock(&self.shared);
        if let Some(value) = shared.value.take() {
            return Poll::Ready(value);
        }
        let stale = shared.waker.replace(fresh);
        drop(shared);
        drop(stale);
        Poll::Pending
    }
}

/// Applies a function to the output of an inner future, like `FutureExt::map`.
///
/// Both parts are boxed, which makes the whole future `Unpin` whatever `Fut` and `F` are.
pub struct MapFuture<Fut, F> {
    inner: Pin<Box<Fut>>,
    mapper: Option<Box<F>>,
}

impl<Fut, F> MapFuture<Fut, F> {
    /// Wraps `future` so that its output is passed through `f`.
    pub fn new(future: Fut, f: F) -> Self {
        MapFuture {
            inner: Box::pin(future),
            mapper: Some(Box::new(f)),
        }
    }
}

impl<Fut, F, T> Future for MapFuture<Fut, F>
where
    Fut: Future,
    F: FnOnce(Fut::Output) -> T,
{
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let output = ready!(self.inner.as_mut().poll(cx));
        match self.mapper.take() {
            Some(mapper) => Poll::Ready(mapper(output)),
            None => panic!("MapFuture polled after it returned Ready"),
        }
    }
}

#[cfg(test)]
mod tests;
