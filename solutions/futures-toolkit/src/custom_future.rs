//! Exercise 2.1: hand-written futures. Where the `futures` crate already has the building
//! block (a one-shot channel, a mapping combinator), it is used instead of writing it again.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::{self, FutureExt};

/// A future that is pending on its first `count` polls and then completes with a message.
#[derive(Debug)]
pub struct CountdownFuture {
    polls_seen: u32,
    pending_polls: u32,
}

impl CountdownFuture {
    /// Creates a countdown that needs `count + 1` polls to complete.
    pub fn new(count: u32) -> Self {
        Self {
            polls_seen: 0,
            pending_polls: count,
        }
    }
}

impl Future for CountdownFuture {
    type Output = String;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        if self.polls_seen >= self.pending_polls {
            return Poll::Ready("Countdown complete!".to_string());
        }
        self.polls_seen += 1;
        // Progress is possible at once, and no one else will wake us: ask for another poll.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A timer without a thread: it looks at the clock on every poll and asks to be polled again.
#[derive(Debug)]
pub struct TimerFuture {
    deadline: Option<Instant>,
}

impl TimerFuture {
    /// Creates a timer that completes once `duration` has passed from now.
    pub fn new(duration: Duration) -> Self {
        // A deadline beyond what `Instant` can hold is never reached.
        Self {
            deadline: Instant::now().checked_add(duration),
        }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Poll::Ready(()),
            _ => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// A future completed from outside (from any thread) through its [`ManualHandle`].
///
/// It is a `futures::channel::oneshot` receiver: a poll stores this poll's waker in the
/// channel (replacing the older one), and `complete` sends the value and wakes that waker.
pub struct ManualFuture<T> {
    receiver: oneshot::Receiver<T>,
}

/// The completing half of a [`ManualFuture`]: the sending end of the channel.
pub struct ManualHandle<T> {
    sender: oneshot::Sender<T>,
}

impl<T> ManualFuture<T> {
    /// Creates a pending future and the handle that completes it.
    pub fn new() -> (ManualFuture<T>, ManualHandle<T>) {
        let (sender, receiver) = oneshot::channel();
        (ManualFuture { receiver }, ManualHandle { sender })
    }
}

impl<T> ManualHandle<T> {
    /// Completes the future with `value` and wakes the task that polled it last.
    pub fn complete(self, value: T) {
        // `Err` only means the future is gone: then no one wants the value.
        let _ = self.sender.send(value);
    }
}

impl<T> Future for ManualFuture<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.receiver.poll_unpin(cx) {
            Poll::Ready(Ok(value)) => Poll::Ready(value),
            // The handle was dropped without completing: this future never completes. The
            // channel has already given up (and woken) its waker, so none is kept: a task that
            // waits only for this future can no longer be woken, and is abandoned.
            Poll::Ready(Err(oneshot::Canceled)) => Poll::Pending,
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A future that applies a function to the output of another future: `futures`' own `Map`
/// around the inner future boxed and pinned on the heap (so `!Unpin` futures are fine).
pub struct MapFuture<Fut, F> {
    stage: Stage<Fut, F>,
}

enum Stage<Fut, F> {
    /// Not polled yet. `new` has no trait bounds, so the `Map` is built on the first poll.
    Fresh(Pin<Box<Fut>>, F),
    Mapping(future::Map<Pin<Box<Fut>>, F>),
    /// Only while switching from `Fresh` to `Mapping`.
    Switching,
}

// Nothing in a `MapFuture` is ever pinned in place: the inner future lives in its own box.
impl<Fut, F> Unpin for MapFuture<Fut, F> {}

impl<Fut, F> MapFuture<Fut, F> {
    /// Creates a future that completes with `f(output)` once `future` completes with `output`.
    pub fn new(future: Fut, f: F) -> Self {
        Self {
            stage: Stage::Fresh(Box::pin(future), f),
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
        if let Stage::Fresh(..) = this.stage {
            if let Stage::Fresh(inner, f) = std::mem::replace(&mut this.stage, Stage::Switching) {
                this.stage = Stage::Mapping(inner.map(f));
            }
        }
        match &mut this.stage {
            // `Map` polls the inner future with our caller's context, so the right task wakes;
            // it panics if polled again after `Ready`, which the spec allows.
            Stage::Mapping(mapping) => mapping.poll_unpin(cx),
            _ => unreachable!("a MapFuture is mapping once polled"),
        }
    }
}

#[cfg(test)]
mod tests;
