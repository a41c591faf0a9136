//! Category `shutdown` (exercise 2.4): after `shutdown()` spawns fail, `run` and
//! `run_until_stalled` stop after the poll in progress, and every unfinished task's future is
//! dropped before that call returns (or by the end of the next call). Every test keeps a spawner
//! alive, so that only the shutdown can end `run`; none depends on the order of ready tasks.

use std::future::Future;
use std::sync::mpsc;
use std::task::Poll;
use std::thread;

use crate::support::{run_until_stalled_with_watchdog, run_with_watchdog};
use futures::future;
use hidden_tests::{on_drop, panic_message_of, with_watchdog, Flag, Gate, Log, HANG_SECS, WAIT};
use runtime::executor::{new_executor_and_spawner, Priority, SpawnError, Spawner};

/// The names of the tasks in the order of their polls.
type Polls = Log<&'static str>;

/// A task that logs its polls under `name` and never finishes (it keeps its waker in `gate`), and
/// whose future sets `dropped` when its destructor runs.
fn unfinished(
    name: &'static str,
    gate: &Gate,
    polls: &Polls,
    dropped: &Flag,
) -> impl Future<Output = ()> {
    let (mut wait, polls, guard) = (gate.wait(), polls.clone(), dropped.set_on_drop());
    future::poll_fn(move |cx| {
        let _ = &guard;
        polls.push(name);
        std::pin::Pin::new(&mut wait).poll(cx)
    })
}

/// A task that logs its polls under `name`, shuts the executor down on its first poll, wakes
/// itself and returns `Pending` (so that it is ready again, and must not be polled again).
fn shutting_down(
    name: &'static str,
    spawner: &Spawner,
    polls: &Polls,
    dropped: &Flag,
) -> impl Future<Output = ()> {
    let (spawner, polls, guard) = (spawner.clone(), polls.clone(), dropped.set_on_drop());
    future::poll_fn(move |cx| {
        let _ = &guard;
        polls.push(name);
        spawner.shutdown();
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// Asserts that `name` made the last poll, and that it was polled exactly once.
fn assert_last_poll_was(polls: &Polls, name: &str) {
    let polls = polls.entries();
    assert_eq!(
        polls.last().copied(),
        Some(name),
        "a task was polled after the shutdown (polls: {polls:?})"
    );
    assert_eq!(
        polls.iter().filter(|p| **p == name).count(),
        1,
        "polls: {polls:?}"
    );
}

/// Targets spawns that still succeed after shutdown, or a `spawn` that does not panic with a
/// message containing `shut down`: after `shutdown()` on one clone, called from another thread,
/// every kind of spawn on every clone fails with `SpawnError::Shutdown`; a following `run` returns
/// without polling the task spawned before the shutdown, and has dropped it when it returns. The
/// spec promises nothing about an executor after its `spawn` panicked (the panic may poison a lock
/// it held), so that panic is checked last, on an executor of its own that is then leaked.
#[test]
fn shutdown_makes_every_spawn_fail() {
    let (executor, spawner) = new_executor_and_spawner();
    let (polls, dropped) = (Polls::new(), Flag::new());
    spawner.spawn(unfinished("task", &Gate::new(), &polls, &dropped));
    let clone = spawner.clone();
    thread::spawn(move || clone.shutdown())
        .join()
        .expect("shutdown() panicked");
    let clone = spawner.clone();
    assert_eq!(spawner.try_spawn(async {}), Err(SpawnError::Shutdown));
    assert_eq!(clone.try_spawn(async {}), Err(SpawnError::Shutdown));
    for priority in [Priority::High, Priority::Low] {
        assert_eq!(
            clone.spawn_with_priority(priority, async {}),
            Err(SpawnError::Shutdown)
        );
    }
    with_watchdog(HANG_SECS, "run() after shutdown", move || {
        executor.run();
        assert!(
            dropped.is_set(),
            "run() returned before dropping the unfinished task"
        );
    });
    assert!(
        polls.entries().is_empty(),
        "run() polled a task after shutdown"
    );

    let (shut, spawner) = new_executor_and_spawner();
    spawner.shutdown();
    let message =
        panic_message_of(|| spawner.spawn(async {})).expect("spawn after shutdown must panic");
    assert!(
        message.contains("shut down"),
        "spawn's panic message {message:?} must contain `shut down`"
    );
    std::mem::forget((shut, spawner));
}

/// Targets a shutdown that `run` notices late or that leaves futures alive: of three tasks, one
/// waits for a gate, one shuts the executor down during its poll (and wakes itself, so it is ready
/// again), and one waits for another gate. Whatever order they are polled in, `run` must return
/// right after the shutting-down poll, without polling anything after it, and must have dropped
/// all three futures by then.
#[test]
fn shutdown_inside_a_task_stops_run_and_drops_every_future() {
    let (executor, spawner) = new_executor_and_spawner();
    let polls = Polls::new();
    let dropped = [Flag::new(), Flag::new(), Flag::new()];
    spawner.spawn(unfinished("first", &Gate::new(), &polls, &dropped[0]));
    spawner.spawn(shutting_down("shutdown", &spawner, &polls, &dropped[1]));
    spawner.spawn(unfinished("third", &Gate::new(), &polls, &dropped[2]));
    let seen = dropped.clone();
    with_watchdog(
        HANG_SECS,
        "run() with a task calling shutdown()",
        move || {
            executor.run();
            let seen: Vec<bool> = seen.iter().map(Flag::is_set).collect();
            assert_eq!(
                seen, [true; 3],
                "run() must drop every unfinished future (waiting, just polled, queued) before it \
             returns"
            );
        },
    );
    assert_last_poll_was(&polls, "shutdown");
    drop(spawner);
}

/// Targets a `run` that keeps sleeping after a shutdown from another thread: `run` is blocked (its
/// only task waits for a gate, a spawner is alive) when another thread calls `shutdown()`; `run`
/// must wake up, drop the task's future and return.
#[test]
fn shutdown_from_another_thread_wakes_a_blocked_run() {
    let (executor, spawner) = new_executor_and_spawner();
    let gate = Gate::new();
    let (polls, dropped) = (Polls::new(), Flag::new());
    spawner.spawn(unfinished("task", &gate, &polls, &dropped));
    let (clone, watched) = (spawner.clone(), gate.clone());
    thread::spawn(move || {
        if watched.wait_for_polls(1, WAIT) {
            clone.shutdown();
        }
    });
    let seen = dropped.clone();
    with_watchdog(
        HANG_SECS,
        "run() shut down from another thread",
        move || {
            executor.run();
            assert!(
                seen.is_set(),
                "run() returned before dropping the unfinished task"
            );
        },
    );
    assert_eq!(polls.entries(), ["task"]);
    drop(spawner);
}

/// Targets a `run_until_stalled` that ignores an earlier shutdown or leaves futures alive: after a
/// shutdown while no call is running, the next `run_until_stalled` makes no poll at all (it
/// returns 0) and has dropped both the waiting and the never-polled task when it returns.
#[test]
fn shutdown_while_idle_drops_futures_in_the_next_call() {
    let (executor, spawner) = new_executor_and_spawner();
    let polls = Polls::new();
    let dropped = [Flag::new(), Flag::new()];
    spawner.spawn(unfinished("waiting", &Gate::new(), &polls, &dropped[0]));
    let (executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 1);
    spawner.spawn(unfinished(
        "never polled",
        &Gate::new(),
        &polls,
        &dropped[1],
    ));
    spawner.shutdown();
    let (executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 0, "run_until_stalled() polled after shutdown");
    assert!(
        dropped.iter().all(Flag::is_set),
        "run_until_stalled() after shutdown must drop every unfinished future"
    );
    drop(run_with_watchdog(executor, "run() after shutdown"));
    assert_eq!(polls.entries(), ["waiting"]);
    drop(spawner);
}

/// Targets a `run` that polls on after a shutdown made from another thread *during* a poll: one
/// task's poll has another thread call `shutdown()` and waits for it (up to 5 s), then wakes itself
/// and returns `Pending`; another task waits for a gate. Whatever order they are polled in, `run`
/// must return right after the shutting-down poll, and drop both futures.
#[test]
fn shutdown_during_a_poll_ends_run_after_that_poll() {
    let (executor, spawner) = new_executor_and_spawner();
    let (request_tx, request_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let clone = spawner.clone();
    thread::spawn(move || {
        if request_rx.recv().is_ok() {
            clone.shutdown();
            let _ = done_tx.send(());
        }
    });
    let polls = Polls::new();
    let dropped = [Flag::new(), Flag::new()];
    let (logged, guard) = (polls.clone(), dropped[0].set_on_drop());
    spawner.spawn(future::poll_fn(move |cx| {
        let _ = &guard;
        logged.push("shutdown");
        let _ = request_tx.send(());
        let _ = done_rx.recv_timeout(WAIT);
        cx.waker().wake_by_ref();
        Poll::Pending
    }));
    spawner.spawn(unfinished("waiting", &Gate::new(), &polls, &dropped[1]));
    let seen = dropped.clone();
    with_watchdog(2 * HANG_SECS, "run() shut down during a poll", move || {
        executor.run();
        assert!(
            seen.iter().all(Flag::is_set),
            "run() must drop every unfinished future before returning"
        );
    });
    assert_last_poll_was(&polls, "shutdown");
    drop(spawner);
}

/// Targets a shutdown that drops futures while holding the executor's lock, or lets spawns succeed
/// from destructors: two waiting tasks try to spawn from their destructors when the shutdown drops
/// them; each attempt must fail with `SpawnError::Shutdown` (and not deadlock).
#[test]
fn shutdown_destructor_spawning_gets_shutdown_error() {
    let (executor, spawner) = new_executor_and_spawner();
    let attempts = Log::new();
    let gates = [Gate::new(), Gate::new()];
    for gate in &gates {
        let (wait, attempts, inner_spawner) = (gate.wait(), attempts.clone(), spawner.clone());
        let guard = on_drop(move || attempts.push(inner_spawner.try_spawn(async {})));
        spawner.spawn(async move {
            let _guard = guard;
            wait.await;
        });
    }
    spawner.spawn(shutting_down(
        "shutdown",
        &spawner,
        &Polls::new(),
        &Flag::new(),
    ));
    drop(run_with_watchdog(
        executor,
        "run() dropping futures that spawn",
    ));
    assert_eq!(
        attempts.entries(),
        [Err(SpawnError::Shutdown), Err(SpawnError::Shutdown)]
    );
    drop(spawner);
}

/// Targets a `run_until_stalled` that looks at the shutdown flag only when it starts: the same
/// three tasks as for `run` (one waiting, one shutting the executor down during its poll and
/// waking itself, one waiting). Whatever order they are polled in, `run_until_stalled` must return
/// right after the shutting-down poll, count exactly the polls it made, and have dropped all three
/// futures.
#[test]
fn shutdown_inside_a_task_stops_run_until_stalled() {
    let (executor, spawner) = new_executor_and_spawner();
    let polls = Polls::new();
    let dropped = [Flag::new(), Flag::new(), Flag::new()];
    spawner.spawn(unfinished("first", &Gate::new(), &polls, &dropped[0]));
    spawner.spawn(shutting_down("shutdown", &spawner, &polls, &dropped[1]));
    spawner.spawn(unfinished("third", &Gate::new(), &polls, &dropped[2]));
    let (_executor, made) = run_until_stalled_with_watchdog(
        executor,
        "run_until_stalled() with a task calling shutdown()",
    );
    let seen: Vec<bool> = dropped.iter().map(Flag::is_set).collect();
    assert_eq!(
        seen, [true; 3],
        "run_until_stalled() must drop every unfinished future (waiting, just polled, queued) \
         before it returns"
    );
    assert_last_poll_was(&polls, "shutdown");
    assert_eq!(
        made,
        polls.entries().len(),
        "run_until_stalled() returns the number of polls it made"
    );
    drop(spawner);
}
