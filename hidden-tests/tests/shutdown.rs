//! Category `shutdown` (exercise 2.4): after `shutdown()` spawns fail, `run` and
//! `run_until_stalled` stop after the poll in progress, and every unfinished task's future is
//! dropped before that call returns (or by the end of the next call). Every test keeps a spawner
//! alive, so that only the shutdown can end `run`.

use std::sync::mpsc;
use std::task::Poll;
use std::thread;
use std::time::Duration;

use futures::future;
use hidden_tests::{
    on_drop, panic_message_of, run_until_stalled_with_watchdog, run_with_watchdog, with_watchdog,
    Counter, Flag, Gate, Log, HANG_SECS,
};
use runtime::executor::{new_executor_and_spawner, Priority, SpawnError, Spawner};

const WAIT: Duration = Duration::from_secs(HANG_SECS);

/// A task that counts its polls and never finishes (it keeps its waker in `gate`), and whose future
/// sets `dropped` when its destructor runs.
fn unfinished(
    gate: &Gate,
    polls: &Counter,
    dropped: &Flag,
) -> impl std::future::Future<Output = ()> {
    let (wait, polls, guard) = (gate.wait(), polls.clone(), dropped.set_on_drop());
    async move {
        let _guard = guard;
        polls.bump();
        wait.await;
        unreachable!("the gate is never opened");
    }
}

/// A task that shuts the executor down on its first poll, wakes itself and returns `Pending`.
fn shutting_down(
    spawner: &Spawner,
    polls: &Counter,
    dropped: &Flag,
) -> impl std::future::Future<Output = ()> {
    let (spawner, polls, guard) = (spawner.clone(), polls.clone(), dropped.set_on_drop());
    future::poll_fn(move |cx| {
        let _ = &guard;
        polls.bump();
        spawner.shutdown();
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// Targets spawns that still succeed after shutdown, or a `spawn` that does not panic with a
/// message containing `shut down`: after `shutdown()` on one clone, called from another thread,
/// every kind of spawn on every clone fails with `SpawnError::Shutdown`; a following `run` returns
/// without polling the task spawned before the shutdown, and has dropped it when it returns.
#[test]
fn shutdown_makes_every_spawn_fail() {
    let (executor, spawner) = new_executor_and_spawner();
    let (polls, dropped) = (Counter::new(), Flag::new());
    spawner.spawn(unfinished(&Gate::new(), &polls, &dropped));
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
    let message =
        panic_message_of(|| spawner.spawn(async {})).expect("spawn after shutdown must panic");
    assert!(
        message.contains("shut down"),
        "spawn's panic message {message:?} must contain `shut down`"
    );
    with_watchdog(HANG_SECS, "run() after shutdown", move || {
        executor.run();
        assert!(
            dropped.is_set(),
            "run() returned before dropping the unfinished task"
        );
    });
    assert_eq!(polls.get(), 0, "run() polled a task after shutdown");
}

/// Targets a shutdown that `run` notices late or that leaves futures alive: the first task waits
/// for a gate, the second shuts the executor down during its poll (and wakes itself), the third
/// is still in the ready queue. `run` must return after the second task's poll, without polling
/// anything else, and must have dropped all three futures by then.
#[test]
fn shutdown_inside_a_task_stops_run_and_drops_every_future() {
    let (executor, spawner) = new_executor_and_spawner();
    let gates = [Gate::new(), Gate::new()];
    let polls = [Counter::new(), Counter::new(), Counter::new()];
    let dropped = [Flag::new(), Flag::new(), Flag::new()];
    spawner.spawn(unfinished(&gates[0], &polls[0], &dropped[0]));
    spawner.spawn(shutting_down(&spawner, &polls[1], &dropped[1]));
    spawner.spawn(unfinished(&gates[1], &polls[2], &dropped[2]));
    let seen = dropped.clone();
    with_watchdog(
        HANG_SECS,
        "run() with a task calling shutdown()",
        move || {
            executor.run();
            let seen: Vec<bool> = seen.iter().map(Flag::is_set).collect();
            assert_eq!(
            seen,
            [true; 3],
            "run() must drop every unfinished future (waiting, polled, queued) before returning"
        );
        },
    );
    let polls: Vec<usize> = polls.iter().map(Counter::get).collect();
    assert_eq!(
        polls,
        [1, 1, 0],
        "only the polls before the shutdown may happen"
    );
    drop(spawner);
}

/// Targets a `run` that keeps sleeping after a shutdown from another thread: `run` is blocked (its
/// only task waits for a gate, a spawner is alive) when another thread calls `shutdown()`; `run`
/// must wake up, drop the task's future and return.
#[test]
fn shutdown_from_another_thread_wakes_a_blocked_run() {
    let (executor, spawner) = new_executor_and_spawner();
    let gate = Gate::new();
    let (polls, dropped) = (Counter::new(), Flag::new());
    spawner.spawn(unfinished(&gate, &polls, &dropped));
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
    assert_eq!(polls.get(), 1);
    drop(spawner);
}

/// Targets a `run_until_stalled` that ignores an earlier shutdown or leaves futures alive: after a
/// shutdown while no call is running, the next `run_until_stalled` makes no poll at all (it
/// returns 0) and has dropped both the waiting and the never-polled task when it returns.
#[test]
fn shutdown_while_idle_drops_futures_in_the_next_call() {
    let (executor, spawner) = new_executor_and_spawner();
    let gates = [Gate::new(), Gate::new()];
    let polls = [Counter::new(), Counter::new()];
    let dropped = [Flag::new(), Flag::new()];
    spawner.spawn(unfinished(&gates[0], &polls[0], &dropped[0]));
    let (executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 1);
    spawner.spawn(unfinished(&gates[1], &polls[1], &dropped[1]));
    spawner.shutdown();
    let (executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 0, "run_until_stalled() polled after shutdown");
    assert!(
        dropped.iter().all(Flag::is_set),
        "run_until_stalled() after shutdown must drop every unfinished future"
    );
    drop(run_with_watchdog(executor, "run() after shutdown"));
    assert_eq!(polls[1].get(), 0);
    drop(spawner);
}

/// Targets a `run` that polls on after a shutdown made from another thread *during* a poll: the
/// first task's poll has another thread call `shutdown()` and waits for it (up to 5 s), then wakes
/// itself and returns `Pending`; the second task is ready. `run` must return without polling either
/// task again.
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
    let polls = [Counter::new(), Counter::new()];
    let dropped = [Flag::new(), Flag::new()];
    let (first_polls, guard) = (polls[0].clone(), dropped[0].set_on_drop());
    spawner.spawn(future::poll_fn(move |cx| {
        let _ = &guard;
        first_polls.bump();
        let _ = request_tx.send(());
        let _ = done_rx.recv_timeout(WAIT);
        cx.waker().wake_by_ref();
        Poll::Pending
    }));
    spawner.spawn(unfinished(&Gate::new(), &polls[1], &dropped[1]));
    let seen = dropped.clone();
    with_watchdog(2 * HANG_SECS, "run() shut down during a poll", move || {
        executor.run();
        assert!(
            seen.iter().all(Flag::is_set),
            "run() must drop every unfinished future before returning"
        );
    });
    let polls: Vec<usize> = polls.iter().map(Counter::get).collect();
    assert_eq!(polls, [1, 0]);
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
    spawner.spawn(shutting_down(&spawner, &Counter::new(), &Flag::new()));
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
