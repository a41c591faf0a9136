//! Category `metrics` (exercise 2.4): exact counters with deterministic futures, and poll times
//! checked against lower bounds (a sleep inside a poll) and the wall time of the run.

use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use futures::future;
use hidden_tests::{
    run_until_stalled_with_watchdog, run_with_watchdog, self_waking, with_watchdog, Counter, Gate,
    HANG_SECS,
};
use runtime::executor::{
    new_executor_and_spawner, new_executor_and_spawner_with_capacity, Metrics, Priority, SpawnError,
};

/// Targets counters that miscount: a fresh executor reports all zeros; three tasks that pend once
/// (two polls each) and one waiting task make 7 polls, 3 completions and 4 spawns (a spawn refused
/// with `QueueFull` is not counted); after the waiting task is woken and finishes, 8 polls and 4
/// completions. `run_until_stalled`'s return value agrees with the poll counter.
#[test]
fn metrics_count_spawns_polls_and_completions_exactly() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(4);
    assert_eq!(executor.metrics(), Metrics::default());
    let task_polls = Counter::new();
    for _ in 0..3 {
        spawner.spawn(self_waking(1, task_polls.clone()));
    }
    let gate = Gate::new();
    spawner
        .spawn_with_priority(Priority::High, gate.wait())
        .expect("room for a fourth task");
    assert_eq!(spawner.try_spawn(async {}), Err(SpawnError::QueueFull));
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 7);
    let metrics = executor.metrics();
    assert_eq!(
        (metrics.spawned, metrics.completed, metrics.polls),
        (4, 3, 7),
        "(spawned, completed, polls) after the first run_until_stalled"
    );
    gate.open();
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 1);
    let metrics = executor.metrics();
    assert_eq!(
        (metrics.spawned, metrics.completed, metrics.polls),
        (4, 4, 8),
        "(spawned, completed, polls) once every task finished"
    );
    drop(spawner);
}

/// Targets poll times that are not measured, not summed, or measured around the wrong span: one
/// poll sleeps 30 ms, two others sleep 10 ms each, so `busy_time` is at least 50 ms and
/// `max_poll_time` at least 30 ms; the polls happen inside `run`, so `busy_time` cannot exceed the
/// wall time of `run`, and the longest poll cannot exceed their sum.
#[test]
fn metrics_time_the_polls() {
    let (executor, spawner) = new_executor_and_spawner();
    spawner.spawn(async { thread::sleep(Duration::from_millis(30)) });
    let mut slept = 0;
    spawner.spawn(future::poll_fn(move |cx| {
        thread::sleep(Duration::from_millis(10));
        slept += 1;
        if slept == 2 {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }));
    drop(spawner);
    let (metrics, wall) = with_watchdog(HANG_SECS, "run()", move || {
        let start = Instant::now();
        executor.run();
        let wall = start.elapsed();
        (executor.metrics(), wall)
    });
    assert_eq!((metrics.polls, metrics.completed), (3, 2));
    assert!(
        metrics.busy_time >= Duration::from_millis(50),
        "busy_time {:?} < the 50 ms slept inside polls",
        metrics.busy_time
    );
    assert!(
        metrics.max_poll_time >= Duration::from_millis(30),
        "max_poll_time {:?} < the 30 ms poll",
        metrics.max_poll_time
    );
    assert!(
        metrics.busy_time <= wall,
        "busy_time {:?} exceeds the wall time of run() {wall:?}",
        metrics.busy_time
    );
    assert!(metrics.max_poll_time <= metrics.busy_time);
}

/// Targets counters that count futures dropped at shutdown as completed, count refused spawns,
/// or miss polls made by `run`: two tasks finish and one waits (3 polls, in any order); then a
/// fourth task shuts the executor down (and finishes) during `run`. That makes 4 spawns,
/// 3 completions (the waiting task's future is dropped, not completed) and 4 polls, and a spawn
/// refused after the shutdown changes nothing.
#[test]
fn metrics_ignore_dropped_tasks_and_refused_spawns() {
    let (executor, spawner) = new_executor_and_spawner();
    let task_polls = Counter::new();
    spawner.spawn(self_waking(0, task_polls.clone()));
    spawner.spawn(self_waking(0, task_polls.clone()));
    let gate = Gate::new();
    spawner.spawn(gate.wait());
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 3);
    let closer = spawner.clone();
    spawner.spawn(async move { closer.shutdown() });
    let executor = run_with_watchdog(executor, "run()");
    assert_eq!(spawner.try_spawn(async {}), Err(SpawnError::Shutdown));
    let metrics = executor.metrics();
    assert_eq!(
        (metrics.spawned, metrics.completed, metrics.polls),
        (4, 3, 4),
        "(spawned, completed, polls) after the shutdown"
    );
    drop(spawner);
}
