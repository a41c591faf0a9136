//! Category `deadlock` (robustness): work that never finishes. Wakes and spawns from inside a
//! poll (which deadlock on a lock the executor holds while polling), a wake from another thread
//! during a poll, `run` not returning once nothing can wake its tasks (the async book's
//! channel-based design), destructors that wake during shutdown, and the student's futures
//! pending without arranging a wake. Each test checks that the work was done, not only that the
//! call returned: an executor that follows the spec abandons a task that no waker can reach.

use std::task::{Poll, Waker};
use std::thread;
use std::time::Duration;

use crate::support::{run_until_stalled_with_watchdog, run_with_watchdog};
use futures::executor::block_on;
use futures::future;
use futures_test::future::FutureTestExt;
use hidden_tests::{
    bump_when_open, expect_within, on_drop, self_waking, wake_a_clone, with_watchdog,
    woken_by_another_thread_during_poll, Counter, Flag, Gate, Log, HANG_SECS, WAIT,
};
use runtime::custom_future::{self, CountdownFuture, MapFuture};
use runtime::executor::{
    new_executor_and_spawner, new_executor_and_spawner_with_capacity, SpawnError,
};

/// Targets an executor that holds its queue lock (or the task's) while polling: a task calls
/// `wake_by_ref` on its own waker inside `poll` five times; that wake must not block, and the
/// task must be polled to completion (6 polls).
#[test]
fn deadlock_self_wake_by_ref_inside_poll() {
    let (executor, spawner) = new_executor_and_spawner();
    let polls = Counter::new();
    spawner.spawn(self_waking(5, polls.clone()));
    drop(spawner);
    drop(run_with_watchdog(
        executor,
        "run() with a task waking itself (wake_by_ref)",
    ));
    assert_eq!(polls.get(), 6);
}

/// Targets the same lock, reached through the other ways of waking: inside `poll` a task clones its
/// waker and drops the clone, wakes a clone (`clone().wake()`), and awaits `pending_once` futures
/// (futures-test, `wake_by_ref` from a nested future); nothing may block, and the task finishes.
#[test]
fn deadlock_self_wake_through_clones_inside_poll() {
    let (executor, spawner) = new_executor_and_spawner();
    let done = Flag::new();
    let finished = done.clone();
    spawner.spawn(async move {
        let mut polls = 0;
        future::poll_fn(|cx| {
            polls += 1;
            drop(cx.waker().clone());
            if polls < 3 {
                wake_a_clone(cx.waker());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        for _ in 0..3 {
            future::ready(()).pending_once().await;
        }
        finished.set();
    });
    drop(spawner);
    drop(run_with_watchdog(
        executor,
        "run() with a task waking clones of its waker",
    ));
    assert!(done.is_set(), "the self-waking task never finished");
}

/// Targets a wake of *another* task from inside a poll deadlocking on the executor's lock: the
/// second task opens the `Gate` the first is waiting for, which wakes the first from inside the
/// second's poll; both must finish.
#[test]
fn deadlock_wake_another_task_inside_poll() {
    let (executor, spawner) = new_executor_and_spawner();
    let (gate, done) = (Gate::new(), Counter::new());
    spawner.spawn(bump_when_open(&gate, &done));
    let finished = done.clone();
    spawner.spawn(async move {
        gate.open();
        finished.bump();
    });
    drop(spawner);
    drop(run_with_watchdog(
        executor,
        "run() with a task waking another",
    ));
    assert_eq!(done.get(), 2);
}

/// Targets a spawn from inside a poll deadlocking on the executor's lock: a task spawns three tasks
/// (through `spawn`, `try_spawn` and `spawn_with_priority`) during its poll; all must run.
#[test]
fn deadlock_spawn_inside_poll() {
    let (executor, spawner) = new_executor_and_spawner();
    let done = Counter::new();
    let (inner, finished) = (spawner.clone(), done.clone());
    spawner.spawn(async move {
        let (a, b, c) = (finished.clone(), finished.clone(), finished.clone());
        inner.spawn(async move {
            a.bump();
        });
        inner
            .try_spawn(async move {
                b.bump();
            })
            .expect("room");
        inner
            .spawn_with_priority(runtime::executor::Priority::High, async move {
                c.bump();
            })
            .expect("room");
    });
    drop(spawner);
    drop(run_with_watchdog(
        executor,
        "run() with a task spawning tasks",
    ));
    assert_eq!(done.get(), 3);
}

/// Targets a lock held during the poll that a wake from *another* thread needs: the task's poll
/// hands a clone of its waker to a helper thread and waits (up to 5 s) until that thread has woken
/// it. On a correct executor the wake returns at once; if it blocks until the poll ends, the
/// poll's wait times out and the test ends as a hang.
#[test]
fn deadlock_wake_from_another_thread_during_poll() {
    let (executor, spawner) = new_executor_and_spawner();
    spawner.spawn(woken_by_another_thread_during_poll(Counter::new()));
    drop(spawner);
    drop(with_watchdog(
        3 * HANG_SECS,
        "run() woken from another thread mid-poll",
        move || {
            executor.run();
            executor
        },
    ));
}

/// Targets the async book's design, where every waker keeps the ready queue's sender alive, so
/// `run` never returns while a waker of a *finished* task exists: three tasks stash their wakers
/// and finish; `run` must return. Waking those wakers afterwards (after `run` returned, then after
/// the executor is dropped) must do nothing: no poll of a finished task, no panic.
#[test]
fn deadlock_run_returns_though_finished_tasks_left_wakers() {
    let (executor, spawner) = new_executor_and_spawner();
    let stash: Log<Waker> = Log::new();
    let done = Counter::new();
    for _ in 0..3 {
        let (stash, finished) = (stash.clone(), done.clone());
        spawner.spawn(future::poll_fn(move |cx| {
            stash.push(cx.waker().clone());
            finished.bump();
            Poll::Ready(())
        }));
    }
    drop(spawner);
    let executor = run_with_watchdog(executor, "run() while finished tasks' wakers are kept");
    assert_eq!(done.get(), 3);
    let wakers = stash.entries();
    with_watchdog(HANG_SECS, "waking finished tasks", move || {
        for waker in &wakers {
            waker.wake_by_ref();
        }
        let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
        assert_eq!(polls, 0, "a finished task must never be polled again");
        drop(executor);
        for waker in wakers {
            waker.wake_by_ref();
            wake_a_clone(&waker);
            waker.wake();
        }
    });
}

/// Targets a `run` that waits forever for a task nobody can wake any more: the only task waits for
/// a `Gate`, the spawner is gone, and the test then drops the task's only waker (taken out of the
/// gate) without waking it. `run` must return, and the abandoned future must have been dropped by
/// the time the executor is.
#[test]
fn deadlock_run_returns_once_last_waker_is_dropped() {
    let gate = Gate::new();
    let dropped = Flag::new();
    let (wait, guard) = (gate.wait(), dropped.set_on_drop());
    with_watchdog(
        HANG_SECS,
        "run() after the last waker was dropped",
        move || {
            let (executor, spawner) = new_executor_and_spawner();
            spawner.spawn(async move {
                let _guard = guard;
                wait.await;
            });
            drop(spawner);
            let runner = thread::spawn(move || {
                executor.run();
                executor
            });
            expect_within("run() to poll the task", WAIT, |t| {
                gate.wait_for_polls(1, t)
            });
            drop(gate.take_waker());
            drop(runner.join().expect("run() panicked"));
        },
    );
    assert!(dropped.is_set(), "the abandoned future was never dropped");
}

/// Targets a `run` that waits for a task that returned `Pending` without keeping any waker: that
/// task can never be woken, so once the other task is done and the spawner is gone, `run` must
/// return, having done the other task's work, and the abandoned future is dropped.
#[test]
fn deadlock_run_returns_when_a_task_keeps_no_waker() {
    let (executor, spawner) = new_executor_and_spawner();
    let (done, dropped) = (Flag::new(), Flag::new());
    let guard = dropped.set_on_drop();
    spawner.spawn(async move {
        let _guard = guard;
        future::pending::<()>().await;
    });
    let finished = done.clone();
    spawner.spawn(async move { finished.set() });
    drop(spawner);
    drop(run_with_watchdog(executor, "run() with an abandoned task"));
    assert!(done.is_set());
    assert!(dropped.is_set(), "the abandoned future was never dropped");
}

/// Targets a `CountdownFuture` that returns `Pending` without waking: `block_on` then sleeps
/// forever. A correct countdown wakes before each `Pending` and `block_on` returns its message.
#[test]
fn deadlock_countdown_completes_on_block_on() {
    let message = with_watchdog(HANG_SECS, "block_on(CountdownFuture::new(3))", || {
        block_on(CountdownFuture::new(3))
    });
    assert_eq!(message, "Countdown complete!");
}

/// Targets the student's 2.1 futures pending without a wake on a spec-following executor, which
/// abandons such a task (so `run` returns with the work undone): a countdown, a busy-polling timer
/// and a map over a countdown, all spawned on the student's executor, must all deliver.
#[test]
fn deadlock_custom_futures_complete_on_the_executor() {
    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    let results = log.clone();
    spawner.spawn(async move { results.push(CountdownFuture::new(3).await) });
    let results = log.clone();
    spawner.spawn(async move {
        custom_future::TimerFuture::new(Duration::from_millis(20)).await;
        results.push(String::from("timer"));
    });
    let results = log.clone();
    spawner.spawn(async move {
        let len = MapFuture::new(CountdownFuture::new(2), |s: String| s.len()).await;
        results.push(len.to_string());
    });
    drop(spawner);
    drop(run_with_watchdog(executor, "run() with the custom futures"));
    let mut results = log.entries();
    results.sort();
    assert_eq!(results, ["19", "Countdown complete!", "timer"]);
}

/// Targets a shutdown that drops futures while holding a lock their destructors need: two waiting
/// tasks wake their own and each other's wakers from their destructors when the shutdown drops
/// them. Waking never blocks, so `run` returns; waking those wakers again afterwards and dropping
/// the executor must not block either. (Whether the futures are dropped at all is checked by the
/// `shutdown` tests.)
#[test]
fn deadlock_destructors_waking_tasks_during_shutdown() {
    let (executor, spawner) = new_executor_and_spawner();
    let gates = [Gate::new(), Gate::new()];
    for i in 0..2 {
        let (wait, own, other) = (gates[i].wait(), gates[i].clone(), gates[1 - i].clone());
        let guard = on_drop(move || {
            own.wake();
            other.wake();
        });
        spawner.spawn(async move {
            let _guard = guard;
            wait.await;
        });
    }
    let closer = spawner.clone();
    spawner.spawn(async move { closer.shutdown() });
    let executor = run_with_watchdog(executor, "run() dropping futures that wake");
    with_watchdog(
        HANG_SECS,
        "waking after shutdown, dropping the executor",
        move || {
            for gate in &gates {
                gate.wake();
            }
            drop(executor);
        },
    );
    drop(spawner);
}

/// Targets a wake that panics once the executor is gone (`Weak::upgrade().expect(..)`, or a
/// channel's `send(..).expect(..)`) for a task that is still *pending*: two tasks wait for gates;
/// the executor is dropped, one task is woken while a spawner still exists, then the spawner is
/// dropped too and both are woken again (by reference, through a clone, by value). The spec:
/// waking never panics, also after the executor has been dropped (then it does nothing).
#[test]
fn deadlock_waking_pending_tasks_after_the_executor_is_gone() {
    let (executor, spawner) = new_executor_and_spawner();
    let gates = [Gate::new(), Gate::new()];
    for gate in &gates {
        spawner.spawn(gate.wait());
    }
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 2);
    let wakers: Vec<Waker> = gates
        .iter()
        .map(|gate| gate.take_waker().expect("a pending task stored its waker"))
        .collect();
    with_watchdog(
        HANG_SECS,
        "waking pending tasks after their executor was dropped",
        move || {
            drop(executor);
            wakers[0].wake_by_ref();
            drop(spawner);
            for waker in wakers {
                waker.wake_by_ref();
                wake_a_clone(&waker);
                waker.wake();
            }
        },
    );
}

/// Targets an executor that drops a task's future while it holds its own lock: a future that,
/// when dropped, wakes another task (opens its `Gate`) and spawns a new one, deadlocks it. Two such
/// futures: one finishes (`Ready`), the other is abandoned (the test drops its only waker). The
/// spec does not say when a finished or abandoned future is dropped, only that destructors may
/// wake and spawn like any code: so whenever one of them has run, the work it started must get
/// done by the next `run_until_stalled`, and nothing may block, up to dropping the executor.
#[test]
fn deadlock_dropped_futures_wake_and_spawn_from_their_destructors() {
    with_watchdog(
        2 * HANG_SECS,
        "dropping futures whose destructors wake and spawn",
        || {
            let (executor, spawner) = new_executor_and_spawner();
            let log = Log::new();
            let targets = [Gate::new(), Gate::new()];
            for (i, target) in targets.iter().enumerate() {
                let (wait, log) = (target.wait(), log.clone());
                spawner.spawn(async move {
                    wait.await;
                    log.push(format!("woken {i}"));
                });
            }
            let dropped = [Flag::new(), Flag::new()];
            let waking_on_drop = |i: usize| {
                let (opener, inner) = (targets[i].clone(), spawner.clone());
                let (spawned, was_dropped) = (log.clone(), dropped[i].clone());
                on_drop(move || {
                    opener.open();
                    let _ = inner.try_spawn(async move { spawned.push(format!("spawned {i}")) });
                    was_dropped.set();
                })
            };
            // Captured by the closure, the guard lives as long as the future, past its `Ready`
            // (an async block would drop it inside the poll).
            let guard = waking_on_drop(0);
            spawner.spawn(future::poll_fn(move |_| {
                let _ = &guard;
                Poll::Ready(())
            }));
            let abandoned = Gate::new();
            let (guard, wait) = (waking_on_drop(1), abandoned.wait());
            spawner.spawn(async move {
                let _guard = guard;
                wait.await;
            });
            let (executor, _) = run_until_stalled_with_watchdog(
                executor,
                "run_until_stalled() with a task whose future wakes and spawns when dropped",
            );
            assert_eq!(abandoned.polls(), 1, "every task is polled");
            let waker = abandoned.take_waker();
            with_watchdog(
                HANG_SECS,
                "dropping the last waker of a task whose future wakes and spawns when dropped",
                move || drop(waker),
            );
            let (executor, _) = run_until_stalled_with_watchdog(
                executor,
                "run_until_stalled() after a task whose future wakes and spawns when dropped was \
                 abandoned",
            );
            let done = log.entries();
            for (i, was_dropped) in dropped.iter().enumerate() {
                if was_dropped.is_set() {
                    for work in [format!("woken {i}"), format!("spawned {i}")] {
                        assert!(
                            done.contains(&work),
                            "a dropped future's destructor woke a task and spawned one, but \
                             `{work}` never happened (done: {done:?})"
                        );
                    }
                }
            }
            drop(spawner);
            drop(executor);
        },
    );
}

/// Targets a `try_spawn` that drops a refused future while it holds the executor's lock: at full
/// capacity (1), the refused future's destructor opens a gate, which wakes the waiting task of the
/// same executor. That wake must not block: the refusal is `QueueFull`, and the woken task then
/// finishes.
#[test]
fn deadlock_a_refused_future_that_wakes_in_its_destructor() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(1);
    let (gate, done) = (Gate::new(), Counter::new());
    spawner.spawn(bump_when_open(&gate, &done));
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 1);
    let guard = on_drop(move || gate.open());
    let (spawner, refused) = with_watchdog(
        HANG_SECS,
        "try_spawn() refusing a future whose destructor wakes a task",
        move || {
            let refused = spawner.try_spawn(async move {
                let _guard = guard;
            });
            (spawner, refused)
        },
    );
    assert_eq!(refused, Err(SpawnError::QueueFull));
    let (_executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(
        (polls, done.get()),
        (1, 1),
        "the task woken by the destructor finishes"
    );
    drop(spawner);
}

/// Targets an executor whose destructor drops the tasks' futures while it holds its lock: two
/// waiting tasks whose futures, when dropped, wake each other. Dropping the executor, then the
/// spawner, must finish (the wakes do nothing).
#[test]
fn deadlock_dropping_the_executor_with_futures_that_wake() {
    with_watchdog(
        HANG_SECS,
        "dropping an executor whose tasks' destructors wake each other",
        || {
            let (executor, spawner) = new_executor_and_spawner();
            let gates = [Gate::new(), Gate::new()];
            for (mine, other) in [(0, 1), (1, 0)] {
                let (wait, other) = (gates[mine].wait(), gates[other].clone());
                let guard = on_drop(move || {
                    other.wake();
                });
                spawner.spawn(async move {
                    let _guard = guard;
                    wait.await;
                });
            }
            let (executor, polls) =
                run_until_stalled_with_watchdog(executor, "run_until_stalled()");
            assert_eq!(polls, 2);
            drop(executor);
            drop(spawner);
            drop(gates);
        },
    );
}
