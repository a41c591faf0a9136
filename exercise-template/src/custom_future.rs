//! Exercise 2.1: futures written by hand. No `async` here: each type implements
//! [`Future::poll`] itself and must make sure that, whenever it returns `Pending`,
//! someone will wake its task later.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// A future that returns `Pending` on its first `count` polls and
/// `Ready("Countdown complete!".to_string())` on poll number `count + 1` (exercise 2.1).
///
/// `CountdownFuture::new(0)` is ready on its first poll.
///
/// Pitfall: nothing outside this future will ever wake it. It can make progress at once, so
/// before every `Pending` it must call `cx.waker().wake_by_ref()`; without that wake no
/// executor polls it again and `.await` hangs forever.
pub struct CountdownFuture {
    // Placeholder so that the template compiles: replace it with your own fields.
    _todo: (),
}

impl CountdownFuture {
    /// Creates a countdown that needs `count` extra polls before it is ready (exercise 2.1).
    pub fn new(_count: u32) -> Self {
        todo!("2.1: remember how many polls are still to go")
    }
}

impl Future for CountdownFuture {
    type Output = String;

    /// Counts one poll down (exercise 2.1): wake, then `Pending` while polls remain; else `Ready`.
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<String> {
        todo!("2.1: count down; call cx.waker().wake_by_ref() before returning Pending")
    }
}

/// A timer without a thread: ready once `duration` has passed since [`TimerFuture::new`]
/// (exercise 2.1). Not to be confused with [`crate::timer::TimerFuture`] (exercise 2.2).
///
/// Take the deadline `Instant::now() + duration` in `new`. A poll at or after the deadline
/// returns `Ready(())`; an earlier poll calls `cx.waker().wake_by_ref()` and returns `Pending`.
///
/// Pitfall: as with [`CountdownFuture`], a `Pending` without a wake hangs forever. (This
/// busy-polling design keeps a core busy until the deadline; exercise 2.2 does it properly.)
pub struct TimerFuture {
    // Placeholder so that the template compiles: replace it with your own fields.
    _todo: (),
}

impl TimerFuture {
    /// Creates a timer that is ready `duration` from now (exercise 2.1).
    pub fn new(_duration: Duration) -> Self {
        todo!("2.1: store the deadline Instant::now() + duration")
    }
}

impl Future for TimerFuture {
    type Output = ();

    /// `Ready` at or after the deadline; before it, wake and return `Pending` (exercise 2.1).
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        todo!("2.1: compare Instant::now() with the deadline")
    }
}

/// A future completed from outside, through its [`ManualHandle`] (exercise 2.1).
///
/// `ManualFuture<T>` is `Unpin`, and both halves are `Send` when `T: Send`, so the handle can
/// be moved to another thread and completed there. The two halves share some state (a value
/// slot and a waker slot behind a lock is enough).
///
/// - A poll after `complete` returns `Ready(value)`.
/// - A poll before it stores the waker of *this* poll, replacing any older one, and returns
///   `Pending`.
/// - Completing before the first poll is fine: the first poll is then `Ready`.
/// - If the handle is dropped without completing, the future stays pending.
///
/// Pitfalls: store the waker on *every* pending poll, not only the first (the future may have
/// moved to another task, and waking a stale waker wakes the wrong task); and check for the
/// value and store the waker under the same lock, or `complete` can slip in between and its
/// wake is lost.
pub struct ManualFuture<T> {
    // Placeholder so that the template compiles (and has the auto traits the spec requires):
    // replace it with the state you share with the handle.
    _todo: PhantomData<Arc<Mutex<Option<T>>>>,
}

/// The completing half of a [`ManualFuture`] (exercise 2.1).
pub struct ManualHandle<T> {
    // Placeholder so that the template compiles: replace it with the state you share with
    // the future.
    _todo: PhantomData<Arc<Mutex<Option<T>>>>,
}

impl<T> ManualFuture<T> {
    /// Creates a pending future and the handle that completes it (exercise 2.1).
    pub fn new() -> (ManualFuture<T>, ManualHandle<T>) {
        todo!("2.1: create the shared state and give one reference to each half")
    }
}

impl<T> ManualHandle<T> {
    /// Stores `value` and wakes the waker of the most recent pending poll, if any (exercise 2.1).
    ///
    /// May be called from any thread. Pitfall: take the waker out of the lock and release the
    /// lock before calling `wake`: waking may poll the future at once on another thread, and
    /// that poll needs the same lock.
    pub fn complete(self, _value: T) {
        todo!("2.1: store the value, then wake the stored waker")
    }
}

impl<T> Future for ManualFuture<T> {
    type Output = T;

    /// `Ready(value)` once completed; otherwise stores this poll's waker and returns `Pending`
    /// (exercise 2.1).
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        todo!("2.1: take the value, or store cx.waker().clone() (replacing the old one)")
    }
}

/// Applies `f` to the output of an inner future, like `FutureExt::map` (exercise 2.1).
///
/// Polls the inner future with the caller's `Context`, so that the inner future wakes the
/// right task, and once it is ready returns `f(output)`. It must accept inner futures that are
/// not `Unpin`, such as `async` blocks: hint, keep the inner future as `Pin<Box<Fut>>`, which
/// is `Unpin` whatever `Fut` is. Polling it again after it returned `Ready` may panic.
///
/// Pitfall: never build your own `Context` (or use a no-op waker) for the inner poll: the
/// inner future would then wake nobody and the task hangs.
pub struct MapFuture<Fut, F> {
    // Placeholder so that the template compiles: replace it with your own fields.
    _todo: PhantomData<(Pin<Box<Fut>>, Option<F>)>,
}

impl<Fut, F> MapFuture<Fut, F> {
    /// Wraps `future` so that its output is passed through `f` (exercise 2.1).
    pub fn new(_future: Fut, _f: F) -> Self {
        todo!("2.1: keep the (pinned) future and the function")
    }
}

impl<Fut, F, T> Future for MapFuture<Fut, F>
where
    Fut: Future,
    F: FnOnce(Fut::Output) -> T,
{
    type Output = T;

    /// Polls the inner future with `cx`; when it is ready, returns `f(output)` (exercise 2.1).
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        todo!("2.1: poll the inner future, then call f once on its output")
    }
}

#[cfg(test)]
mod tests;
