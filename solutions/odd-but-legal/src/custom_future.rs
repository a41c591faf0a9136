//! Exercise 2.1: hand-written futures.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Pending on its first `count` polls (asking to be polled again each time), then ready.
pub struct CountdownFuture {
    /// How many polls have been made so far.
    polls_made: u32,
    /// How many of them return `Pending`.
    pending_polls: u32,
}

impl CountdownFuture {
    /// A countdown that is ready on poll number `count + 1`.
    pub fn new(count: u32) -> Self {
        Self {
            polls_made: 0,
            pending_polls: count,
        }
    }
}

impl Future for CountdownFuture {
    type Output = String;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        if self.polls_made >= self.pending_polls {
            return Poll::Ready("Countdown complete!".to_string());
        }
        self.polls_made += 1;
        // It can make progress at once: ask to be polled again.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A timer without a thread: every early poll asks to be polled again.
pub struct TimerFuture {
    /// `None` when `now + duration` does not fit in an `Instant`: such a timer never fires.
    deadline: Option<Instant>,
}

impl TimerFuture {
    /// A timer whose deadline is `Instant::now() + duration`.
    pub fn new(duration: Duration) -> Self {
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

/// The slot in which a pending `ManualFuture` leaves the waker of its latest poll.
type WakerSlot = Arc<Mutex<Option<Waker>>>;

fn take_waker(slot: &Mutex<Option<Waker>>) -> Option<Waker> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// A future completed from outside, through its [`ManualHandle`]. The value travels through a
/// `std::sync::mpsc` channel; the waker of the latest pending poll sits beside it.
pub struct ManualFuture<T> {
    receiver: Receiver<T>,
    waker: WakerSlot,
}

/// Completes its [`ManualFuture`], from any thread.
pub struct ManualHandle<T> {
    sender: Sender<T>,
    waker: WakerSlot,
}

impl<T> ManualFuture<T> {
    /// A pending future and the handle that completes it.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (ManualFuture<T>, ManualHandle<T>) {
        let (sender, receiver) = mpsc::channel();
        let waker = WakerSlot::default();
        (
            ManualFuture {
                receiver,
                waker: Arc::clone(&waker),
            },
            ManualHandle { sender, waker },
        )
    }
}

impl<T> ManualHandle<T> {
    /// Hands `value` to the future and wakes the waker of its latest pending poll.
    pub fn complete(self, value: T) {
        // The value first, then the wake: the woken task must find it. A send fails only if
        // the future is gone, and then there is no one to tell.
        let _ = self.sender.send(value);
        if let Some(waker) = take_waker(&self.waker) {
            waker.wake();
        }
        // `Drop` runs next and finds no waker left.
    }
}

impl<T> Drop for ManualHandle<T> {
    fn drop(&mut self) {
        // Without a completion the future stays pending forever: it needs no waker any more,
        // and keeping one would keep its task alive for nothing. Dropped, not woken.
        drop(take_waker(&self.waker));
    }
}

impl<T> Future for ManualFuture<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        match this.receiver.try_recv() {
            Ok(value) => return Poll::Ready(value),
            Err(TryRecvError::Disconnected) => return Poll::Pending,
            Err(TryRecvError::Empty) => {}
        }
        // Store this poll's waker, then look again: a `complete` that ran before the store
        // sent its value before it looked for a waker, so the second look finds the value.
        let newest = cx.waker().clone();
        let older = this
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(newest);
        drop(older);
        match this.receiver.try_recv() {
            Ok(value) => Poll::Ready(value),
            Err(TryRecvError::Empty) => Poll::Pending,
            Err(TryRecvError::Disconnected) => {
                // The handle went away without completing: give the waker up again.
                drop(take_waker(&this.waker));
                Poll::Pending
            }
        }
    }
}

/// What a [`MapFuture`] holds: the inner future and the function until it is ready, nothing after.
enum Stage<Fut, F> {
    Waiting(Pin<Box<Fut>>, F),
    Finished,
}

/// Maps the output of an inner future with a function.
pub struct MapFuture<Fut, F> {
    stage: Stage<Fut, F>,
}

// The inner future is pinned in its own box and `F` is never pinned, so moving a `MapFuture`
// is always fine, whatever `Fut` and `F` are.
impl<Fut, F> Unpin for MapFuture<Fut, F> {}

impl<Fut, F> MapFuture<Fut, F> {
    /// Maps the output of `future` with `f`.
    pub fn new(future: Fut, f: F) -> Self {
        Self {
            stage: Stage::Waiting(Box::pin(future), f),
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
        let output = match &mut this.stage {
            Stage::Waiting(future, _) => match future.as_mut().poll(cx) {
                Poll::Ready(output) => output,
                Poll::Pending => return Poll::Pending,
            },
            Stage::Finished => panic!("MapFuture polled after it returned Ready"),
        };
        match mem::replace(&mut this.stage, Stage::Finished) {
            Stage::Waiting(future, f) => {
                drop(future);
                Poll::Ready(f(output))
            }
            Stage::Finished => unreachable!(),
        }
    }
}

#[cfg(test)]
mod tests;
