//! Public tests of exercise 2.1. They use only the public API, so they run unchanged against
//! any solution. `cargo test custom_future::` runs them all, `cargo test countdown` a few.

// Explicit imports only: a solution's private imports and items must not matter here.
use crate::custom_future::{CountdownFuture, ManualFuture, MapFuture, TimerFuture};
use futures::executor::block_on;
use futures::task::noop_waker;
use std::future::Future;
use std::panic;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test may run before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `body` on a thread of its own and returns its result, so that a hang fails the test
/// with `hint` instead of blocking `cargo test` forever. A panic in `body` is passed on.
// Each tests.rs is self-contained (the grader copies them into solutions), hence one copy each.
fn within_timeout<T: Send + 'static>(hint: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    let worker = thread::spawn(move || {
        // The receiver is gone only if the test already failed with a timeout.
        let _ = sender.send(body());
    });
    match receiver.recv_timeout(TIMEOUT) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("timed out after {TIMEOUT:?}: {hint}"),
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(payload) => panic::resume_unwind(payload),
            Ok(()) => unreachable!("the worker sends a result unless it panics"),
        },
    }
}

/// A waker that counts its wakes.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl CountingWaker {
    fn new() -> (Arc<Self>, Waker) {
        let counter = Arc::new(Self::default());
        let waker = Waker::from(Arc::clone(&counter));
        (counter, waker)
    }

    fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Compile-time check: the futures must be spawnable on the executor of exercise 2.3.
fn assert_send_static<T: Send + 'static>(_: &T) {}

#[test]
fn test_countdown_future() {
    let (counter, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    let mut countdown = Box::pin(CountdownFuture::new(3));
    assert_send_static(&countdown);
    for poll in 1..=3 {
        assert_eq!(
            countdown.as_mut().poll(&mut cx),
            Poll::Pending,
            "poll {poll} of CountdownFuture::new(3) must be Pending"
        );
        assert!(
            counter.wakes() >= poll,
            "CountdownFuture must call cx.waker().wake_by_ref() before every Pending, \
             or no executor will ever poll it again"
        );
    }
    assert_eq!(
        countdown.as_mut().poll(&mut cx),
        Poll::Ready("Countdown complete!".to_string()),
        "poll 4 of CountdownFuture::new(3) must be Ready"
    );
}

#[test]
fn test_countdown_zero_is_ready_on_first_poll() {
    let waker = noop_waker();
    let mut countdown = Box::pin(CountdownFuture::new(0));
    assert_eq!(
        countdown.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready("Countdown complete!".to_string()),
        "CountdownFuture::new(0) must be ready on its first poll"
    );
}

#[test]
fn test_countdown_finishes_under_block_on() {
    let output = within_timeout(
        "block_on(CountdownFuture::new(5)) never finished: is the waker woken before Pending?",
        || block_on(CountdownFuture::new(5)),
    );
    assert_eq!(output, "Countdown complete!");
}

#[test]
fn test_custom_timer_future_waits_for_its_deadline() {
    let (counter, waker) = CountingWaker::new();
    let mut long_timer = Box::pin(TimerFuture::new(Duration::from_secs(60)));
    assert_send_static(&long_timer);
    assert_eq!(
        long_timer.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Pending,
        "a 60 s custom_future::TimerFuture must be Pending right after new"
    );
    assert!(
        counter.wakes() >= 1,
        "custom_future::TimerFuture must wake_by_ref before Pending: it has no thread to wake it"
    );

    let mut zero = Box::pin(TimerFuture::new(Duration::ZERO));
    assert_eq!(
        zero.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(()),
        "a poll at or after the deadline must be Ready"
    );

    let elapsed = within_timeout(
        "block_on(custom_future::TimerFuture::new(50 ms)) never finished",
        || {
            let start = Instant::now();
            block_on(TimerFuture::new(Duration::from_millis(50)));
            start.elapsed()
        },
    );
    assert!(
        elapsed >= Duration::from_millis(50),
        "a 50 ms custom_future::TimerFuture was ready after only {elapsed:?}"
    );
}

#[test]
fn test_manual_future_complete_before_first_poll() {
    let (mut future, handle) = ManualFuture::new();
    handle.complete(42);
    let waker = noop_waker();
    // `Pin::new` compiles only because ManualFuture is Unpin, as the spec requires.
    assert_eq!(
        Pin::new(&mut future).poll(&mut Context::from_waker(&waker)),
        Poll::Ready(42),
        "a ManualFuture completed before its first poll must be ready on that poll"
    );
}

#[test]
fn test_manual_future_complete_after_first_poll_wakes_the_newest_waker() {
    let (mut future, handle) = ManualFuture::new();
    assert_send_static(&future);
    assert_send_static(&handle);
    let (_, old_waker) = CountingWaker::new();
    let (newest, newest_waker) = CountingWaker::new();
    for waker in [&old_waker, &newest_waker] {
        assert_eq!(
            Pin::new(&mut future).poll(&mut Context::from_waker(waker)),
            Poll::Pending,
            "a ManualFuture must be Pending until complete is called"
        );
    }
    thread::spawn(move || handle.complete("done".to_string()))
        .join()
        .expect("complete panicked on another thread");
    assert!(
        newest.wakes() >= 1,
        "complete must wake the waker of the most recent poll; store the waker on every \
         pending poll, not only the first (a stale waker wakes the wrong task)"
    );
    assert_eq!(
        Pin::new(&mut future).poll(&mut Context::from_waker(&newest_waker)),
        Poll::Ready("done".to_string())
    );
}

#[test]
fn test_manual_future_stays_pending_when_handle_dropped() {
    // `_` drops the handle at once, without completing.
    let (mut future, _) = ManualFuture::<u8>::new();
    let waker = noop_waker();
    assert_eq!(
        Pin::new(&mut future).poll(&mut Context::from_waker(&waker)),
        Poll::Pending,
        "a ManualFuture whose handle was dropped without completing stays pending"
    );
}

#[test]
fn test_manual_future_completed_from_another_thread() {
    let value = within_timeout(
        "block_on(ManualFuture) never finished although complete was called: \
         does complete wake the stored waker?",
        || {
            let (future, handle) = ManualFuture::new();
            let completer = thread::spawn(move || {
                // Most likely completes after block_on's first poll; either order must work.
                thread::sleep(Duration::from_millis(20));
                handle.complete(7_u32);
            });
            let value = block_on(future);
            completer.join().expect("complete panicked");
            value
        },
    );
    assert_eq!(value, 7);
}

#[test]
fn test_map_future_with_async_block() {
    let length = within_timeout(
        "block_on(MapFuture) over an async block never finished",
        || {
            // An async block is not Unpin: MapFuture must pin it (hint: Pin<Box<Fut>>).
            let inner = async { CountdownFuture::new(2).await.len() };
            let map = MapFuture::new(inner, |length: usize| length * 2);
            assert_send_static(&map);
            block_on(map)
        },
    );
    assert_eq!(length, "Countdown complete!".len() * 2);
}

#[test]
fn test_map_future_polls_inner_future_with_callers_waker() {
    let (inner, handle) = ManualFuture::new();
    let mut map = Box::pin(MapFuture::new(inner, |value: u32| value + 1));
    let (counter, waker) = CountingWaker::new();
    assert_eq!(
        map.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Pending
    );
    handle.complete(1);
    assert!(
        counter.wakes() >= 1,
        "MapFuture must poll the inner future with the caller's Context, so that the inner \
         future wakes the caller's task"
    );
    assert_eq!(
        map.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(2)
    );
}
