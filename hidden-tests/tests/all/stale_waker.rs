//! Category `stale_waker` (robustness): a future polled with waker A and then with waker B (it
//! moved to another task) must wake B, not A; and a dropped timer must release its waker at once,
//! so that it keeps no task (and no `run`) alive while its thread sleeps on.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::run_with_watchdog;
use futures::future::{self, FutureExt};
use hidden_tests::{expect_within, poll_with, probe_waker, Flag, Gate, Log, WakeProbe, WAIT};
use runtime::custom_future::{ManualFuture, MapFuture};
use runtime::executor::new_executor_and_spawner;
use runtime::timer::{FirstTimer, TimerFuture};

/// Polls `future` with a waker A, then with a waker B, and returns B's probe, or `None` if either
/// poll was already ready (then the case is inconclusive and the caller retries or gives up).
fn poll_with_a_then_b<F: Future + ?Sized>(mut future: Pin<&mut F>) -> Option<WakeProbe> {
    let (a, _a_probe) = probe_waker();
    let (b, b_probe) = probe_waker();
    if poll_with(future.as_mut(), &a).is_ready() || poll_with(future.as_mut(), &b).is_ready() {
        return None;
    }
    Some(b_probe)
}

/// Targets a `ManualFuture` that keeps the waker of its first poll: polled with A then B, its
/// `complete` must wake B (the latest), which is the only one the spec lets a task rely on.
#[test]
fn stale_waker_manual_future_wakes_the_latest_waker() {
    let (mut future, handle) = ManualFuture::new();
    let b = poll_with_a_then_b(Pin::new(&mut future)).expect("nothing completed it yet");
    let before = b.wakes();
    handle.complete(3);
    assert!(
        b.wakes() > before,
        "complete woke an older waker, not the latest one"
    );
}

/// Targets a `timer::TimerFuture` that keeps the waker of its first poll: polled with A then B
/// well before its 200 ms deadline, its firing must wake B. (If a poll already found it fired, the
/// trial is repeated; that can only happen on a stalled machine.)
#[test]
fn stale_waker_timer_wakes_the_latest_waker() {
    for _ in 0..3 {
        let mut timer = Box::pin(TimerFuture::new(Duration::from_millis(200)));
        if let Some(b) = poll_with_a_then_b(timer.as_mut()) {
            expect_within(
                "the timer to wake the waker of its latest poll",
                WAIT,
                |t| b.wait_for_wakes(1, t),
            );
            return;
        }
    }
}

/// Targets a `FirstTimer` that registers only the first poll's waker with its timers: polled with A
/// then B before any of its timers (200 ms, 5 s) fires, the firing must wake B.
#[test]
fn stale_waker_first_timer_wakes_the_latest_waker() {
    for _ in 0..3 {
        let mut first = Box::pin(FirstTimer::new(&[
            Duration::from_millis(200),
            Duration::from_secs(5),
        ]));
        if let Some(b) = poll_with_a_then_b(first.as_mut()) {
            expect_within(
                "a FirstTimer's timer to wake the waker of its latest poll",
                WAIT,
                |t| b.wait_for_wakes(1, t),
            );
            return;
        }
    }
}

/// Targets a `MapFuture` that polls its inner future with a waker it kept from an earlier poll:
/// polled with A then B, the inner `Gate` (the test's own correct future) must wake B when opened.
#[test]
fn stale_waker_map_future_passes_the_latest_context() {
    let gate = Gate::new();
    let mut map = Box::pin(MapFuture::new(gate.wait(), |()| 1));
    let b = poll_with_a_then_b(map.as_mut()).expect("the gate is closed");
    let before = b.wakes();
    gate.open();
    assert!(
        b.wakes() > before,
        "the inner future woke an older waker, not the latest one"
    );
}

/// Targets the same stale wakers in their natural setting: a `ManualFuture`, a `TimerFuture` and a
/// `FirstTimer` are each polled once by the test (waker A), then moved into a task on the student's
/// executor, which polls them with the task's waker. Each must wake its new task; a stale waker
/// wakes A instead and the task is abandoned (or hangs), with its result missing.
#[test]
fn stale_waker_futures_moved_into_tasks_wake_their_new_task() {
    let (a, _a_probe) = probe_waker();
    let (mut manual, handle) = ManualFuture::new();
    assert!(poll_with(Pin::new(&mut manual), &a).is_pending());
    // Either poll may find its timer fired on a stalled machine; then that task is simply ready.
    let mut timer = Box::pin(TimerFuture::new(Duration::from_millis(100)));
    let timer_poll = poll_with(timer.as_mut(), &a);
    let mut first = Box::pin(FirstTimer::new(&[
        Duration::from_secs(5),
        Duration::from_millis(100),
    ]));
    let first_poll = poll_with(first.as_mut(), &a);

    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    let (polled_tx, polled_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if polled_rx.recv().is_ok() {
            handle.complete("manual");
        }
    });
    let results = log.clone();
    spawner.spawn(async move {
        let mut told = false;
        let value = future::poll_fn(|cx| {
            let poll = manual.poll_unpin(cx);
            if !std::mem::replace(&mut told, true) {
                let _ = polled_tx.send(());
            }
            poll
        })
        .await;
        results.push(value);
    });
    let results = log.clone();
    spawner.spawn(async move {
        if timer_poll.is_pending() {
            timer.await;
        }
        results.push("timer");
    });
    let results = log.clone();
    spawner.spawn(async move {
        let index = match first_poll {
            Poll::Ready(index) => index,
            Poll::Pending => first.await,
        };
        results.push(if index == 1 {
            "first timer"
        } else {
            "wrong index"
        });
    });
    drop(spawner);
    drop(run_with_watchdog(
        executor,
        "run() with futures moved between tasks",
    ));
    let mut results = log.entries();
    results.sort();
    assert_eq!(results, ["first timer", "manual", "timer"]);
}

/// Targets a `timer::TimerFuture` without a `Drop` that releases its waker: a one-minute timer
/// holds a clone of the waker after a pending poll; once the timer is dropped, that clone must be
/// gone at once (within 1 s here), although the timer's thread sleeps on.
#[test]
fn stale_waker_dropped_timer_releases_its_waker() {
    let (waker, probe) = probe_waker();
    let mut timer = Box::pin(TimerFuture::new(Duration::from_secs(60)));
    assert!(poll_with(timer.as_mut(), &waker).is_pending());
    assert!(
        probe.live_wakers() >= 2,
        "a pending timer must keep the waker"
    );
    drop(timer);
    assert!(
        probe.wait_live_at_most(1, Duration::from_secs(1)),
        "a dropped timer still holds {} clone(s) of the waker",
        probe.live_wakers() - 1
    );
}

/// Targets the same leak on the executor: a task polls a one-minute timer once, drops it, and then
/// waits without any waker (it is abandoned). With the spawner gone, nothing can wake the task
/// any more, so `run` must return, long before the timer's thread wakes up.
#[test]
fn stale_waker_dropped_timer_does_not_keep_run_alive() {
    let (executor, spawner) = new_executor_and_spawner();
    let polled = Flag::new();
    let seen = polled.clone();
    spawner.spawn(async move {
        let mut timer = Box::pin(TimerFuture::new(Duration::from_secs(60)));
        future::poll_fn(|cx| {
            if timer.as_mut().poll(cx).is_pending() {
                seen.set();
            }
            Poll::Ready(())
        })
        .await;
        drop(timer);
        future::pending::<()>().await;
    });
    drop(spawner);
    let start = Instant::now();
    drop(run_with_watchdog(
        executor,
        "run() after the task dropped its timer",
    ));
    assert!(polled.is_set(), "the timer was never pending");
    assert!(start.elapsed() < Duration::from_secs(60));
}

/// Targets a `FirstTimer` that keeps its losing timers (and their wakers) once ready. Timers of
/// 60 s, 50 s and 20 ms are polled with waker A; after the 20 ms timer fired, a poll with waker B
/// returns 2 and gives B to the two losers on the way. Once ready, the losers are dropped, so at
/// most the winner (which a correct timer may still hold) keeps a clone of B besides the test's.
#[test]
fn stale_waker_first_timer_releases_losing_timers_when_ready() {
    let (a, a_probe) = probe_waker();
    let (b, b_probe) = probe_waker();
    let mut first = Box::pin(FirstTimer::new(&[
        Duration::from_secs(60),
        Duration::from_secs(50),
        Duration::from_millis(20),
    ]));
    if poll_with(first.as_mut(), &a).is_ready() {
        return; // Inconclusive: only on a machine stalled for 20 ms.
    }
    expect_within("the FirstTimer's wake from its 20 ms timer", WAIT, |t| {
        a_probe.wait_for_wakes(1, t)
    });
    assert_eq!(poll_with(first.as_mut(), &b), Poll::Ready(2));
    assert!(
        b_probe.wait_live_at_most(2, Duration::from_secs(1)),
        "a ready FirstTimer still holds {} clones of the waker: its losing timers were not dropped",
        b_probe.live_wakers() - 1
    );
    drop(first);
}
