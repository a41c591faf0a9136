//! Exercise 2.1: hand-written futures. Each one decides in `poll` whether it is done and, if
//! not, makes sure that somebody wakes its task later.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A future that needs `count` extra polls before it yields `"Countdown complete!"`.
pub struct CountdownFuture {
    polls_left: u32,
}

impl CountdownFuture {
    /// The first `count` polls return `Pending`; poll number `count + 1` is ready.
    pub fn new(count: u32) -> Self {
        CountdownFuture { polls_left: count }
    }
}

impl Future for CountdownFuture {
    type Output = String;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.polls_left == 0 {
            return Poll::Ready(String::from("Countdown complete!"));
        }
        this.polls_left -= 1;
        // Progress is possible right away, so ask for the next poll ourselves.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A deadline checked on every poll, with no thread behind it (it keeps its task busy).
pub struct TimerFuture {
    due: Instant,
}

impl TimerFuture {
    /// Ready from `duration` after this call on.
    pub fn new(duration: Duration) -> Self {
        TimerFuture {
            due: Instant::now() + duration,
        }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.due <= Instant::now() {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Where a [`ManualFuture`] and its [`ManualHandle`] meet.
enum Exchange<T> {
    /// Neither polled nor completed yet.
    Idle,
    /// Polled before completion: the waker of the latest poll.
    Waiting(Waker),
    /// Completed, value not yet taken.
    Done(T),
    /// The value was handed out.
    Consumed,
}

type Shared<T> = Arc<Mutex<Exchange<T>>>;

/// A future whose value is supplied from outside by its [`ManualHandle`].
pub struct ManualFuture<T> {
    exchange: Shared<T>,
}

/// Completes its [`ManualFuture`]; can be sent to and used on any thread.
pub struct ManualHandle<T> {
    exchange: Shared<T>,
}

fn swap<T>(exchange: &Shared<T>, next: Exchange<T>) -> Exchange<T> {
    // The lock only guards plain moves, so poisoning cannot leave it inconsistent.
    let mut guard = exchange.lock().unwrap_or_else(PoisonError::into_inner);
    mem::replace(&mut *guard, next)
}

impl<T> ManualFuture<T> {
    /// Returns the pending future together with the handle that completes it.
    pub fn new() -> (ManualFuture<T>, ManualHandle<T>) {
        let exchange: Shared<T> = Arc::new(Mutex::new(Exchange::Idle));
        let handle = ManualHandle {
            exchange: exchange.clone(),
        };
        (ManualFuture { exchange }, handle)
    }
}

impl<T> ManualHandle<T> {
    /// Hands `value` to the future and wakes whoever polled it last.
    pub fn complete(self, value: T) {
        // `swap` has released the lock by the time the waker runs.
        if let Exchange::Waiting(waker) = swap(&self.exchange, Exchange::Done(value)) {
            waker.wake();
        }
    }
}

impl<T> Future for ManualFuture<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The clone happens before the lock is taken: cloning a waker may run arbitrary code.
        let latest = Exchange::Waiting(cx.waker().clone());
        let mut guard = self.exchange.lock().unwrap_or_else(PoisonError::into_inner);
        match mem::replace(&mut *guard, Exchange::Consumed) {
            Exchange::Done(value) => Poll::Ready(value),
            Exchange::Consumed => panic!("ManualFuture polled after it returned Ready"),
            previous @ (Exchange::Idle | Exchange::Waiting(_)) => {
                *guard = latest;
                drop(guard);
                // The replaced waker is dropped only now, outside the lock.
                drop(previous);
                Poll::Pending
            }
        }
    }
}

/// Turns the output of a future into something else with a one-shot function.
pub struct MapFuture<Fut, F> {
    /// `None` once the output has been mapped.
    pending: Option<(Pin<Box<Fut>>, F)>,
}

// Nothing inside is ever pinned in place: the future sits in its own box.
impl<Fut, F> Unpin for MapFuture<Fut, F> {}

impl<Fut, F> MapFuture<Fut, F> {
    /// Maps the output of `future` through `f`.
    pub fn new(future: Fut, f: F) -> Self {
        MapFuture {
            pending: Some((Box::pin(future), f)),
        }
    }
}

impl<Fut, F, T> Future for MapFuture<Fut, F>
where
    Fut: Future,
    F: FnOnce(Fut::Output) -> T,
{
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (future, _) = this
            .pending
            .as_mut()
            .expect("MapFuture polled after it returned Ready");
        match future.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(output) => {
                let (_, f) = this.pending.take().expect("checked above");
                Poll::Ready(f(output))
            }
        }
    }
}

#[cfg(test)]
mod tests;
