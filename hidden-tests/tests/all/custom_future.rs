//! Category `custom_future` (exercise 2.1): the hand-written futures, polled by hand with probe
//! wakers or run on `futures`' own `block_on`, so that these tests do not depend on the student's
//! executor.

use std::sync::mpsc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use futures::future::{self, FutureExt};
use futures_test::future::FutureTestExt;
use hidden_tests::{hang, poll_with, probe_waker, with_watchdog, Counter, Gate, HANG_SECS};
use runtime::custom_future::{CountdownFuture, ManualFuture, MapFuture, TimerFuture};

/// Targets a countdown with an off-by-one, a wrong message, or a missing wake: the spec fixes
/// exactly `count` `Pending`s, a `wake_by_ref` before each, then `Ready("Countdown complete!")`. It
/// does not forbid more wakes (one on the ready poll, two before a `Pending`): those are not
/// counted against it.
#[test]
fn countdown_pends_count_times_waking_before_each() {
    let (waker, probe) = probe_waker();
    let mut countdown = Box::pin(CountdownFuture::new(3));
    for poll in 1..=3 {
        assert!(
            poll_with(countdown.as_mut(), &waker).is_pending(),
            "CountdownFuture::new(3) must be Pending on poll {poll}"
        );
        assert!(
            probe.wakes() >= poll,
            "CountdownFuture must call wake_by_ref before each Pending: {} wakes after {poll} \
             Pending polls",
            probe.wakes()
        );
    }
    assert_eq!(
        poll_with(countdown.as_mut(), &waker),
        Poll::Ready("Countdown complete!".to_string()),
        "CountdownFuture::new(3) must be Ready on poll 4"
    );
}

/// Targets a countdown that always pends at least once: `new(0)` is ready on the first poll.
#[test]
fn countdown_zero_is_ready_on_first_poll() {
    let (waker, _probe) = probe_waker();
    let mut countdown = Box::pin(CountdownFuture::new(0));
    assert_eq!(
        poll_with(countdown.as_mut(), &waker),
        Poll::Ready("Countdown complete!".to_string())
    );
}

/// Targets a busy-polling timer that is ready too early or that pends without waking: every
/// `Pending` before the deadline must come with a wake, the first `Ready` cannot come before
/// `duration` has passed (a lower bound only), and a timer whose deadline is an hour away pends.
#[test]
fn custom_timer_pends_and_wakes_until_its_deadline() {
    let duration = Duration::from_millis(40);
    let (waker, probe) = probe_waker();
    let start = Instant::now();
    let mut timer = Box::pin(TimerFuture::new(duration));
    let mut pendings = 0;
    while poll_with(timer.as_mut(), &waker).is_pending() {
        pendings += 1;
        assert!(
            probe.wakes() >= pendings,
            "every Pending of custom_future::TimerFuture must wake the task"
        );
        if start.elapsed() >= Duration::from_secs(HANG_SECS) {
            hang("custom_future::TimerFuture of 40 ms to be ready", HANG_SECS);
        }
    }
    assert!(
        start.elapsed() >= duration,
        "custom_future::TimerFuture was ready after {:?}, before its 40 ms",
        start.elapsed()
    );

    let mut far = Box::pin(TimerFuture::new(Duration::from_secs(3600)));
    assert!(poll_with(far.as_mut(), &waker).is_pending());
}

/// Targets a timer that measures from its first poll instead of from `new`: the deadline is taken
/// in `new`, so once the duration has passed (the sleep guarantees it) the first poll is ready.
#[test]
fn custom_timer_deadline_is_taken_in_new() {
    let timer = TimerFuture::new(Duration::from_millis(20));
    thread::sleep(Duration::from_millis(40));
    let (waker, _probe) = probe_waker();
    let mut timer = Box::pin(timer);
    assert!(
        poll_with(timer.as_mut(), &waker).is_ready(),
        "a poll after the deadline must be Ready, even the first one"
    );
}

/// Targets a `ManualFuture` that does not wake on `complete` or loses the value: one pending poll,
/// then `complete` wakes the stored waker and the next poll yields the value. Wakes the spec does
/// not ask for (a spurious one, another when the handle is dropped) are not counted against it.
#[test]
fn manual_future_complete_after_poll_wakes_and_yields_value() {
    let (waker, probe) = probe_waker();
    let (mut future, handle) = ManualFuture::new();
    assert!(poll_with(std::pin::Pin::new(&mut future), &waker).is_pending());
    let before = probe.wakes();
    handle.complete(vec![4, 2]);
    assert!(
        probe.wakes() > before,
        "complete must wake the waker stored by the pending poll"
    );
    assert_eq!(
        poll_with(std::pin::Pin::new(&mut future), &waker),
        Poll::Ready(vec![4, 2])
    );
}

/// Targets a `ManualFuture` that only handles completion after a poll: completing first is
/// fine, and the first poll is then ready.
#[test]
fn manual_future_completed_before_first_poll_is_ready() {
    let (waker, _probe) = probe_waker();
    let (mut future, handle) = ManualFuture::new();
    handle.complete(String::from("early"));
    assert_eq!(
        poll_with(std::pin::Pin::new(&mut future), &waker),
        Poll::Ready(String::from("early"))
    );
}

/// Targets a `ManualFuture` whose completion from another thread is lost: `block_on` waits for the
/// future while a thread completes it after the first pending poll (ordered by a channel). A
/// correct future is woken by `complete` and `block_on` returns the value.
#[test]
fn manual_future_completed_from_another_thread() {
    let value = with_watchdog(HANG_SECS, "block_on(ManualFuture)", || {
        let (future, handle) = ManualFuture::new();
        let (polled_tx, polled_rx) = mpsc::channel();
        thread::spawn(move || {
            polled_rx.recv().expect("the future is polled");
            handle.complete(String::from("from another thread"));
        });
        let mut future = future;
        let mut first = true;
        block_on(future::poll_fn(move |cx| {
            let poll = future.poll_unpin(cx);
            if std::mem::take(&mut first) {
                let _ = polled_tx.send(());
            }
            poll
        }))
    });
    assert_eq!(value, "from another thread");
}

/// Targets a `ManualFuture` that becomes ready (or panics) when its handle is dropped: the spec says
/// it stays pending.
#[test]
fn manual_future_stays_pending_when_handle_dropped() {
    let (waker, _probe) = probe_waker();
    let (mut future, handle) = ManualFuture::<u32>::new();
    assert!(poll_with(std::pin::Pin::new(&mut future), &waker).is_pending());
    drop(handle);
    for _ in 0..3 {
        assert!(poll_with(std::pin::Pin::new(&mut future), &waker).is_pending());
    }
}

/// Targets a `MapFuture` that cannot hold a non-`Unpin` future, moves it after pinning, calls `f`
/// early or twice, or polls the inner future with a context of its own: the inner `async` block is
/// wrapped in `assert_unmoved` and pends once (waking through the caller's context), so the first
/// poll must be `Pending` with one wake of the caller's waker and `f` not yet called, the second
/// `Ready(f(output))` with `f` called once.
#[test]
fn map_future_maps_a_pinned_async_block_through_callers_context() {
    let calls = Counter::new();
    let calls_in_f = calls.clone();
    let inner = async { future::ready(20u32).pending_once().await }.assert_unmoved();
    let mut map = Box::pin(MapFuture::new(inner, move |x: u32| {
        calls_in_f.bump();
        format!("{}", x * 2 + 2)
    }));
    let (waker, probe) = probe_waker();
    assert!(poll_with(map.as_mut(), &waker).is_pending());
    assert!(
        probe.wakes() >= 1,
        "the inner future's wake must reach the caller's waker"
    );
    assert_eq!(
        calls.get(),
        0,
        "f must not run before the inner future is ready"
    );
    assert_eq!(
        poll_with(map.as_mut(), &waker),
        Poll::Ready("42".to_string())
    );
    assert_eq!(calls.get(), 1, "f must run exactly once");
}

/// Targets a `MapFuture` that loses the inner future's later wake: the inner future is the test's
/// own correct `Gate`, opened from another thread after the first poll, under `block_on`.
#[test]
fn map_future_wakes_when_inner_future_completes_later() {
    let len = with_watchdog(HANG_SECS, "block_on(MapFuture)", || {
        let gate = Gate::new();
        let opener = gate.clone();
        thread::spawn(move || {
            if opener.wait_for_polls(1, Duration::from_secs(HANG_SECS)) {
                opener.open();
            }
        });
        let wait = gate.wait();
        block_on(MapFuture::new(
            async move {
                wait.await;
                "opened"
            },
            str::len,
        ))
    });
    assert_eq!(len, 6);
}
