//! Public tests of exercise 2.2. They use only the public API, so they run unchanged against
//! any solution. `cargo test timer::` runs them all.

// Explicit imports only: a solution's private imports and items must not matter here.
use crate::timer::{FirstTimer, TimerFuture};
use futures::executor::block_on;
use futures::future::join_all;
use futures::task::noop_waker;
use futures::FutureExt;
use std::future::Future;
use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
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

/// A waker that reports its label on a channel each time it is woken, so a test can wait
/// for a wake (without sleeping) and see which waker it was.
struct LabelWaker {
    label: &'static str,
    wakes: Sender<&'static str>,
}

impl LabelWaker {
    fn waker(label: &'static str, wakes: &Sender<&'static str>) -> Waker {
        Waker::from(Arc::new(Self {
            label,
            wakes: wakes.clone(),
        }))
    }
}

impl Wake for LabelWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The test may be over already; a late wake then has nobody to tell.
        let _ = self.wakes.send(self.label);
    }
}

/// A waker that only counts its wakes (used here to watch its reference count).
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `future` once with a waker labelled "first poll" and once with one labelled
/// "second poll". Returns the receiver of the wakes, or `None` if the future was already
/// ready (the machine was too slow for the test to say anything).
fn poll_twice_with_new_wakers<F: Future + Unpin>(future: &mut F) -> Option<Receiver<&'static str>> {
    let (sender, receiver) = mpsc::channel();
    for label in ["first poll", "second poll"] {
        let waker = LabelWaker::waker(label, &sender);
        if future
            .poll_unpin(&mut Context::from_waker(&waker))
            .is_ready()
        {
            return None;
        }
    }
    Some(receiver)
}

/// Waits until the waker labelled `wanted` is woken; other wakes are allowed and skipped.
fn wait_for_wake(wakes: &Receiver<&'static str>, wanted: &str, hint: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match wakes.recv_timeout(left) {
            Ok(label) if label == wanted => return,
            Ok(_) => continue,
            Err(_) => panic!("the {wanted:?} waker was never woken: {hint}"),
        }
    }
}

/// Compile-time check: the futures must be spawnable on the executor of exercise 2.3.
fn assert_send_static<T: Send + 'static>(_: &T) {}

#[test]
fn test_timer_future() {
    let elapsed = within_timeout(
        "block_on(TimerFuture::new(50 ms)) never finished: does the timer thread wake the \
         stored waker when it fires?",
        || {
            let start = Instant::now();
            let timer = TimerFuture::new(Duration::from_millis(50));
            assert_send_static(&timer);
            block_on(timer);
            start.elapsed()
        },
    );
    assert!(
        elapsed >= Duration::from_millis(50),
        "a 50 ms TimerFuture was ready after only {elapsed:?}"
    );
}

#[test]
fn test_timer_wakes_the_waker_of_the_newest_poll() {
    let mut timer = Box::pin(TimerFuture::new(Duration::from_millis(300)));
    let Some(wakes) = poll_twice_with_new_wakers(&mut timer) else {
        return; // fired before the second poll: this run cannot tell
    };
    wait_for_wake(
        &wakes,
        "second poll",
        "every pending poll must store its own waker, replacing the older one \
         (a stale waker wakes a task that no longer owns the timer)",
    );
    let waker = noop_waker();
    assert_eq!(
        timer.poll_unpin(&mut Context::from_waker(&waker)),
        Poll::Ready(()),
        "a TimerFuture must be ready once it has woken its waker"
    );
}

#[test]
fn test_timer_dropped_before_firing_releases_its_waker() {
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut timer = Box::pin(TimerFuture::new(Duration::from_secs(30)));
    assert_eq!(
        timer.poll_unpin(&mut Context::from_waker(&waker)),
        Poll::Pending
    );
    drop(timer);
    drop(waker);
    let leaked = Arc::strong_count(&counter) - 1;
    assert_eq!(
        leaked, 0,
        "a TimerFuture dropped before it fires must release its stored waker at once \
         (implement Drop): {leaked} clone(s) still alive would keep the task, and run(), alive"
    );
}

#[test]
fn test_timer_many_timers_at_once() {
    let elapsed = within_timeout(
        "block_on(join_all(50 TimerFutures)) never finished: a timer's wake was lost",
        || {
            let start = Instant::now();
            let timers = (0..50_u64).map(|i| TimerFuture::new(Duration::from_millis(i % 10 * 5)));
            block_on(join_all(timers));
            start.elapsed()
        },
    );
    assert!(
        elapsed >= Duration::from_millis(45),
        "the longest timer took 45 ms, yet all were ready after {elapsed:?}"
    );
}

#[test]
fn test_first_timer_returns_the_index_of_the_first_to_fire() {
    let (index, elapsed) = within_timeout(
        "block_on(FirstTimer) never finished: does every pending timer hold the current waker?",
        || {
            let start = Instant::now();
            let durations = [
                Duration::from_secs(3),
                Duration::from_millis(30),
                Duration::from_secs(2),
            ];
            let first = FirstTimer::new(&durations);
            assert_send_static(&first);
            let index = block_on(first);
            (index, start.elapsed())
        },
    );
    assert_eq!(index, 1, "the 30 ms timer (index 1) fires first");
    assert!(
        elapsed >= Duration::from_millis(30),
        "FirstTimer was ready after only {elapsed:?}, before its shortest timer (30 ms)"
    );
}

#[test]
fn test_first_timer_lowest_index_wins_when_several_fired() {
    let durations = [
        Duration::from_millis(20),
        Duration::from_millis(10),
        Duration::ZERO,
    ];
    let mut first = Box::pin(FirstTimer::new(&durations));
    // The timers start in FirstTimer::new; give all three ample time to fire before the poll.
    thread::sleep(Duration::from_secs(1));
    let waker = noop_waker();
    assert_eq!(
        first.poll_unpin(&mut Context::from_waker(&waker)),
        Poll::Ready(0),
        "when several timers have fired by the time FirstTimer is polled, the lowest index wins"
    );
}

#[test]
fn test_first_timer_wakes_the_newest_waker_from_any_timer() {
    let durations = [Duration::from_secs(30), Duration::from_millis(300)];
    let mut first = Box::pin(FirstTimer::new(&durations));
    let Some(wakes) = poll_twice_with_new_wakers(&mut first) else {
        return; // fired before the second poll: this run cannot tell
    };
    wait_for_wake(
        &wakes,
        "second poll",
        "on every poll, FirstTimer must poll every timer that has not fired, so that whichever \
         fires first wakes the current waker",
    );
    let waker = noop_waker();
    assert_eq!(
        first.poll_unpin(&mut Context::from_waker(&waker)),
        Poll::Ready(1)
    );
}

#[test]
fn test_first_timer_single_timer_and_empty_list() {
    let index = within_timeout("block_on(FirstTimer::new(&[10 ms])) never finished", || {
        block_on(FirstTimer::new(&[Duration::from_millis(10)]))
    });
    assert_eq!(index, 0);
    let empty = panic::catch_unwind(|| FirstTimer::new(&[]));
    assert!(
        empty.is_err(),
        "FirstTimer::new(&[]) must panic: a race without timers would never finish"
    );
}
