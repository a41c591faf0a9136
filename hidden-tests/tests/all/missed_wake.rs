//! Category `missed_wake` (robustness): a wake that gets lost. The executor losing a wake that
//! arrives during a poll; the timer firing, or `complete` running, between a poll's "not ready"
//! check and the store of its waker (forced deterministically with a waker whose `clone` opens the
//! window, and stressed); `complete` or a timer that never wakes; a `FirstTimer` that registers the
//! waker with only some of its timers. Lost wakes make `run` return early with the work undone,
//! so every test checks results.

use std::sync::mpsc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{run_until_stalled_with_watchdog, run_with_watchdog};
use futures::executor::block_on;
use futures::future::{self, FutureExt};
use futures_test::future::FutureTestExt;
use hidden_tests::{
    bump_when_open, expect_within, hooked_waker, poll_during_its_wake, poll_with, probe_waker,
    proc_thread_id, wait_until_asleep, with_watchdog, woken_by_another_thread_during_poll, Counter,
    Gate, Log, PolledDuringWake, HANG_SECS, WAIT,
};
use runtime::custom_future::{ManualFuture, MapFuture};
use runtime::executor::new_executor_and_spawner;
use runtime::timer::{FirstTimer, TimerFuture};

/// Targets an executor that clears a task's "queued" flag *after* the poll, so that a wake during
/// the poll is swallowed: five tasks each await three `pending_once` futures (futures-test; each
/// wakes its task during the poll and pends), so each must be polled exactly 4 times and finish,
/// and `run_until_stalled` reports 20 polls.
#[test]
fn missed_wake_self_wakes_during_polls_are_kept() {
    let (executor, spawner) = new_executor_and_spawner();
    let done = Counter::new();
    for _ in 0..5 {
        let finished = done.clone();
        spawner.spawn(async move {
            for _ in 0..3 {
                future::ready(()).pending_once().await;
            }
            finished.bump();
        });
    }
    let (_executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(
        done.get(),
        5,
        "a task woken during its own poll was never polled again"
    );
    assert_eq!(polls, 20);
}

/// Targets an executor that loses a wake arriving from another thread while the task is being
/// polled: the poll hands its waker to a helper thread, waits until the thread has woken it, and
/// returns `Pending`. The task must be polled again (and then finishes) within the same
/// `run_until_stalled`, which therefore reports exactly 2 polls.
#[test]
fn missed_wake_from_another_thread_during_poll_leads_to_a_poll() {
    let (executor, spawner) = new_executor_and_spawner();
    let polls = Counter::new();
    // A wake that is not lost but stuck until the poll returns ends the test as a hang.
    spawner.spawn(woken_by_another_thread_during_poll(polls.clone()));
    let (_executor, made) = with_watchdog(3 * HANG_SECS, "run_until_stalled()", move || {
        let made = executor.run_until_stalled();
        (executor, made)
    });
    assert_eq!(
        polls.get(),
        2,
        "the wake that arrived during the poll was lost"
    );
    assert_eq!(made, 2);
    drop(spawner);
}

/// Targets a `timer::TimerFuture` that checks "fired?" and stores the waker in two steps, so that
/// the timer can fire in between, wake the old waker and leave the new one unwoken forever. The
/// second poll's waker runs a hook when the future clones it (to store it), and the hook waits
/// until the timer has woken the first poll's waker (or 500 ms past the deadline). A correct timer
/// checks and stores under one lock (the timer thread cannot fire meanwhile), or re-checks after
/// storing, so either that poll is `Ready` or its waker is woken later. Repeated (up to five
/// times) only if the first poll already found the timer fired.
#[test]
fn missed_wake_timer_fires_while_the_waker_is_stored() {
    with_watchdog(3 * HANG_SECS, "the timer's check-then-store race", || {
        let duration = Duration::from_millis(20);
        for _ in 0..5 {
            let deadline = Instant::now() + duration;
            let mut timer = Box::pin(TimerFuture::new(duration));
            let (first, first_probe) = probe_waker();
            if poll_with(timer.as_mut(), &first).is_ready() {
                continue;
            }
            let (second, second_probe) = hooked_waker(move || {
                let window_end = deadline + Duration::from_millis(500);
                first_probe.wait_for_wakes(1, window_end.saturating_duration_since(Instant::now()));
            });
            if poll_with(timer.as_mut(), &second).is_pending() {
                expect_within(
                    "a wake of the waker stored while the timer fired (a missed wake)",
                    WAIT,
                    |t| second_probe.wait_for_wakes(1, t),
                );
                assert!(poll_with(timer.as_mut(), &second).is_ready());
            }
            return;
        }
    });
}

/// Targets a `ManualFuture` whose poll checks for the value and stores the waker in two steps:
/// the second poll's waker runs a hook when cloned that has another thread call `complete` and
/// waits (up to 500 ms) for it to return. A correct future holds its lock meanwhile (so `complete`
/// waits and then wakes the stored waker) or re-checks after storing, so the poll is either
/// `Ready(7)` or its waker is woken.
#[test]
fn missed_wake_complete_while_the_waker_is_stored() {
    with_watchdog(
        2 * HANG_SECS,
        "ManualFuture's check-then-store race",
        || {
            let (mut future, handle) = ManualFuture::new();
            let (first, _first_probe) = probe_waker();
            assert!(poll_with(std::pin::Pin::new(&mut future), &first).is_pending());
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let (done_tx, done_rx) = mpsc::channel::<()>();
            thread::spawn(move || {
                if go_rx.recv().is_ok() {
                    handle.complete(7);
                    let _ = done_tx.send(());
                }
            });
            let (second, second_probe) = hooked_waker(move || {
                let _ = go_tx.send(());
                let _ = done_rx.recv_timeout(Duration::from_millis(500));
            });
            if let Poll::Ready(value) = poll_with(std::pin::Pin::new(&mut future), &second) {
                assert_eq!(value, 7);
                return;
            }
            expect_within(
                "a wake of the waker stored while complete ran (a missed wake)",
                WAIT,
                |t| second_probe.wait_for_wakes(1, t),
            );
            assert_eq!(
                poll_with(std::pin::Pin::new(&mut future), &second),
                Poll::Ready(7)
            );
        },
    );
}

/// Targets the timer's races where they cannot be forced: 200 timers of 0 to 199 µs, each awaited
/// with `block_on`, so that the timer often fires right while it is polled. A lost wake leaves
/// `block_on` asleep forever. (Timer precision is not in the spec: a timer thread that ticks
/// every 10 ms takes 2 s here, well within the watchdog.)
#[test]
fn missed_wake_stress_short_timers_on_block_on() {
    with_watchdog(3 * HANG_SECS, "200 short timers on block_on", || {
        for i in 0..200u64 {
            block_on(TimerFuture::new(Duration::from_micros(i % 200)));
        }
    });
}

/// Targets lost timer wakes on the student's executor: 200 tasks each await a timer of 0 to 19 ms,
/// all at once; every one of them must finish (a task whose wake was lost is abandoned, or hangs
/// `run`). With a thread per timer that is 200 threads at once, far below the sandbox's limit.
#[test]
fn missed_wake_many_timers_on_the_executor() {
    let (executor, spawner) = new_executor_and_spawner();
    let done = Counter::new();
    for i in 0..200u64 {
        let finished = done.clone();
        spawner.spawn(async move {
            TimerFuture::new(Duration::from_micros(i * 37 % 20_000)).await;
            finished.bump();
        });
    }
    drop(spawner);
    drop(run_with_watchdog(executor, "run() with 200 timers"));
    assert_eq!(done.get(), 200, "some timers' wakes were lost");
}

/// Targets a `FirstTimer` that gives the waker to only some of its timers (e.g. the first): of
/// timers of 3 s, 2 s and 20 ms, only the last fires within 1.5 s, and it must wake the waker of
/// the pending poll; the next poll returns its index, 2.
#[test]
fn missed_wake_first_timer_woken_by_any_of_its_timers() {
    let (waker, probe) = probe_waker();
    let mut first = Box::pin(FirstTimer::new(&[
        Duration::from_secs(3),
        Duration::from_secs(2),
        Duration::from_millis(20),
    ]));
    if let Poll::Ready(index) = poll_with(first.as_mut(), &waker) {
        assert_eq!(index, 2);
        return; // Inconclusive: only on a machine stalled for 20 ms.
    }
    expect_within(
        "the FirstTimer's wake after its 20 ms timer fired",
        Duration::from_millis(1500),
        |t| probe.wait_for_wakes(1, t),
    );
    assert_eq!(poll_with(first.as_mut(), &waker), Poll::Ready(2));
}

/// Targets a `ManualHandle::complete` that does not wake (or wakes nobody) when called from another
/// thread while the future waits on the student's executor: the value must reach the task.
#[test]
fn missed_wake_complete_from_another_thread_reaches_the_task() {
    let (executor, spawner) = new_executor_and_spawner();
    let (future, handle) = ManualFuture::new();
    let (polled_tx, polled_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if polled_rx.recv().is_ok() {
            handle.complete(String::from("done"));
        }
    });
    let log = Log::new();
    let results = log.clone();
    spawner.spawn(async move {
        let mut future = future;
        let mut first = true;
        let value = future::poll_fn(|cx| {
            let poll = future.poll_unpin(cx);
            if std::mem::take(&mut first) {
                let _ = polled_tx.send(());
            }
            poll
        })
        .await;
        results.push(value);
    });
    drop(spawner);
    drop(run_with_watchdog(
        executor,
        "run() with a ManualFuture completed elsewhere",
    ));
    assert_eq!(log.entries(), ["done"]);
}

/// Targets a `MapFuture` that polls its inner future with a context of its own (a no-op waker,
/// say), so that the inner future's wake goes nowhere: on the student's executor a task awaits a
/// map over the test's own `Gate`, which another thread opens after the task's first poll; the
/// mapped value must reach the task.
#[test]
fn missed_wake_map_future_forwards_the_inner_wake_to_the_task() {
    let (executor, spawner) = new_executor_and_spawner();
    let gate = Gate::new();
    let opener = gate.clone();
    thread::spawn(move || {
        if opener.wait_for_polls(1, WAIT) {
            opener.open();
        }
    });
    let log = Log::new();
    let (results, wait) = (log.clone(), gate.wait());
    spawner.spawn(async move { results.push(MapFuture::new(wait, |()| "mapped").await) });
    drop(spawner);
    drop(run_with_watchdog(
        executor,
        "run() with a MapFuture woken from another thread",
    ));
    assert_eq!(log.entries(), ["mapped"]);
}

/// Asserts what [`poll_during_its_wake`] saw: the value published before the wake.
fn assert_published_before_the_wake<T: std::fmt::Debug + PartialEq>(
    seen: PolledDuringWake<T>,
    expected: T,
    what: &str,
) {
    match seen {
        PolledDuringWake::Ready(value) => assert_eq!(value, expected),
        PolledDuringWake::MissedWake => panic!(
            "{what} woke the task before it was ready: the task, polled at once, pended, stored \
             a new waker, and was never woken again (a missed wake)"
        ),
        other => panic!("{what}: {other:?}"),
    }
}

/// Targets a `ManualHandle::complete` that wakes the stored waker *before* it stores the value:
/// a task polled as soon as it is woken (an executor on another thread does that) finds no value,
/// stores a new waker and pends, and nothing wakes it again. The test's waker polls the future on
/// another thread during its wake and waits for that poll; a `complete` that stores the value
/// first makes that poll `Ready(7)` (a poll blocked by the future's own lock until the wake
/// returns finds the value too).
#[test]
fn missed_wake_complete_stores_the_value_before_waking() {
    let seen = with_watchdog(
        2 * HANG_SECS,
        "ManualFuture polled during the wake of complete()",
        || {
            let (future, handle) = ManualFuture::new();
            poll_during_its_wake(future, move || handle.complete(7))
        },
    );
    assert_published_before_the_wake(seen, 7, "complete()");
}

/// Targets a timer thread that wakes the stored waker *before* it marks the timer fired: a task
/// polled as soon as it is woken finds "not fired", stores a new waker and pends, and the thread
/// then marks it fired and wakes nobody. The test's waker polls the 20 ms timer on another thread
/// during its wake and waits for that poll, which must be `Ready` (or pend and be woken). A trial
/// whose first poll already finds the timer fired proves nothing and is repeated.
#[test]
fn missed_wake_timer_marks_fired_before_waking() {
    let seen = with_watchdog(
        3 * HANG_SECS,
        "timer::TimerFuture polled during its own wake",
        || {
            for _ in 0..5 {
                let timer = TimerFuture::new(Duration::from_millis(20));
                let seen = poll_during_its_wake(timer, || {});
                if seen != PolledDuringWake::AlreadyReady {
                    return seen;
                }
            }
            PolledDuringWake::AlreadyReady
        },
    );
    if seen != PolledDuringWake::AlreadyReady {
        assert_published_before_the_wake(seen, (), "the timer");
    }
}

/// Targets a `run` whose blocking wait is not re-checked: it sleeps once, and on any signal takes
/// "something is ready" for granted, so a signal that readies no task (a spawner dropped, a task
/// abandoned) ends `run` while a task it must still run waits for a wake. `run` runs on another
/// thread; once it is blocked (seen in /proc, or after a pause where /proc is unreadable), three
/// tasks are abandoned one by one and the test's spawner is dropped, each while `run` sleeps;
/// then the last task's gate opens. `run` must poll that task (and then return): with a waker of
/// an unfinished task alive, the spec does not let it return before.
#[test]
fn missed_wake_run_keeps_waiting_through_other_signals() {
    let (executor, spawner) = new_executor_and_spawner();
    let (gate, done) = (Gate::new(), Counter::new());
    spawner.spawn(bump_when_open(&gate, &done));
    let abandoned: Vec<Gate> = (0..3).map(|_| Gate::new()).collect();
    for other in &abandoned {
        spawner.spawn(other.wait());
    }
    let (id_tx, id_rx) = mpsc::channel();
    with_watchdog(
        HANG_SECS,
        "run() while tasks are abandoned and the spawner dropped",
        move || {
            let runner = thread::spawn(move || {
                let _ = id_tx.send(proc_thread_id());
                executor.run();
            });
            let id = id_rx.recv().expect("the run thread started");
            for waiting in abandoned.iter().chain([&gate]) {
                assert!(waiting.wait_for_polls(1, WAIT), "a task was never polled");
            }
            for other in &abandoned {
                wait_until_asleep(id.as_deref(), Duration::from_millis(500));
                drop(other.take_waker());
            }
            wait_until_asleep(id.as_deref(), Duration::from_millis(500));
            drop(spawner);
            wait_until_asleep(id.as_deref(), Duration::from_millis(500));
            gate.open();
            runner.join().expect("run() panicked");
        },
    );
    assert_eq!(
        done.get(),
        1,
        "run() returned while a task still had a waker, before that task was woken and finished"
    );
}

/// Targets a `FirstTimer` that first checks every timer and then hands each the new waker, so
/// that a timer firing in between wakes only the old waker: the `FirstTimer` analogue of
/// `missed_wake_timer_fires_while_the_waker_is_stored`. A one-timer `FirstTimer` is polled with
/// waker A, then with waker B, whose clone (made to store it) waits until the timer has woken A.
/// Then the second poll must be ready, or B must be woken.
#[test]
fn missed_wake_first_timer_fires_while_the_waker_is_stored() {
    with_watchdog(3 * HANG_SECS, "FirstTimer racing its timer", || {
        let duration = Duration::from_millis(20);
        for _ in 0..5 {
            let deadline = Instant::now() + duration;
            let mut first = Box::pin(FirstTimer::new(&[duration]));
            let (a, a_probe) = probe_waker();
            if poll_with(first.as_mut(), &a).is_ready() {
                continue; // fired before the first poll: try again
            }
            let (b, b_probe) = hooked_waker(move || {
                let end = deadline + Duration::from_millis(500);
                a_probe.wait_for_wakes(1, end.saturating_duration_since(Instant::now()));
            });
            match poll_with(first.as_mut(), &b) {
                Poll::Ready(index) => assert_eq!(index, 0),
                Poll::Pending => {
                    expect_within(
                        "a wake of the waker stored while the timer fired",
                        WAIT,
                        |t| b_probe.wait_for_wakes(1, t),
                    );
                    assert_eq!(poll_with(first.as_mut(), &b), Poll::Ready(0));
                }
            }
            return;
        }
    });
}
