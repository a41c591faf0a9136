//! Category `metrics` (exercise 2.4): exact counters with deterministic futures, and poll times
//! checked against lower bounds (a sleep inside a poll) and the wall time of the run.

use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{run_until_stalled_with_watchdog, run_with_watchdog};
use futures::future;
use hidden_tests::{self_waking, with_watchdog, Counter, Gate, Log, HANG_SECS};
use runtime::executor::{
    new_executor_and_spawner, new_executor_and_spawner_with_capacity, Metrics, Priority,
    SpawnError, Spawner,
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

/// Targets a `busy_time` that includes the time `run` sat idle waiting for a wake (e.g. timing
/// each round of the loop, wait included): the only task waits for a gate that another thread
/// opens 400 ms after the task's first poll. Its two polls take microseconds, so `busy_time` stays
/// far below the 400 ms of waiting (under 200 ms, leaving room for a loaded machine), while the
/// wall time of `run` exceeds 400 ms.
#[test]
fn metrics_busy_time_leaves_out_idle_waiting() {
    let (executor, spawner) = new_executor_and_spawner();
    let gate = Gate::new();
    spawner.spawn(gate.wait());
    drop(spawner);
    let opener = gate.clone();
    thread::spawn(move || {
        if opener.wait_for_polls(1, Duration::from_secs(HANG_SECS)) {
            thread::sleep(Duration::from_millis(400));
            opener.open();
        }
    });
    let metrics = with_watchdog(HANG_SECS, "run() waiting 400 ms for a wake", move || {
        executor.run();
        executor.metrics()
    });
    assert_eq!((metrics.polls, metrics.completed), (2, 1));
    assert!(
        metrics.busy_time < Duration::from_millis(200),
        "busy_time {:?} for two polls that took microseconds: it counts the 400 ms that run() \
         waited for a wake",
        metrics.busy_time
    );
}

/// Targets a `max_poll_time` that is not the longest single poll (the first poll's time, the last
/// one's, or the running `busy_time`): one task's three polls sleep 5 ms, 40 ms and 5 ms. The
/// longest poll took at least 40 ms, and the other two at least 10 ms between them, so
/// `max_poll_time` is at least 40 ms and at least 10 ms below `busy_time`, whatever the load.
#[test]
fn metrics_max_poll_time_is_the_longest_poll() {
    let (executor, spawner) = new_executor_and_spawner();
    let mut polls = 0;
    spawner.spawn(future::poll_fn(move |cx| {
        polls += 1;
        thread::sleep(Duration::from_millis(if polls == 2 { 40 } else { 5 }));
        if polls == 3 {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }));
    drop(spawner);
    let metrics = with_watchdog(HANG_SECS, "run()", move || {
        executor.run();
        executor.metrics()
    });
    assert_eq!(metrics.polls, 3);
    assert!(
        metrics.max_poll_time >= Duration::from_millis(40),
        "max_poll_time {:?} < the 40 ms of the second poll",
        metrics.max_poll_time
    );
    assert!(
        metrics.max_poll_time + Duration::from_millis(10) <= metrics.busy_time,
        "max_poll_time {:?} must be the longest single poll, at least 10 ms below busy_time {:?} \
         (the two 5 ms polls)",
        metrics.max_poll_time,
        metrics.busy_time
    );
}

/// Targets a `spawned` counter that misses tasks accepted by some of the spawn calls: each
/// accepted `spawn`, `try_spawn` and `spawn_with_priority` (both priorities) adds exactly one to
/// `spawned`, as seen after the `run_until_stalled` that polls the task (the spec has the counters
/// up to date after every poll, whenever the executor learns of a spawn).
#[test]
fn metrics_spawned_counts_every_kind_of_spawn() {
    let (mut executor, spawner) = new_executor_and_spawner();
    let spawns: [(&str, Box<dyn Fn(&Spawner)>); 4] = [
        ("spawn", Box::new(|s: &Spawner| s.spawn(async {}))),
        (
            "try_spawn",
            Box::new(|s: &Spawner| s.try_spawn(async {}).expect("room")),
        ),
        (
            "spawn_with_priority(High)",
            Box::new(|s: &Spawner| {
                s.spawn_with_priority(Priority::High, async {})
                    .expect("room")
            }),
        ),
        (
            "spawn_with_priority(Low)",
            Box::new(|s: &Spawner| {
                s.spawn_with_priority(Priority::Low, async {})
                    .expect("room")
            }),
        ),
    ];
    for (i, (name, spawn)) in spawns.iter().enumerate() {
        spawn(&spawner);
        let polls;
        (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
        assert_eq!(polls, 1);
        assert_eq!(
            executor.metrics().spawned,
            i as u64 + 1,
            "a task accepted by {name} must be counted in `spawned`"
        );
    }
    drop(spawner);
}

/// Targets poll times measured by `run` only: `run_until_stalled` polls the futures too, and the
/// spec's `busy_time` and `max_poll_time` cover every poll. A task whose poll sleeps 30 ms, run by
/// `run_until_stalled`, makes both at least 30 ms.
#[test]
fn metrics_run_until_stalled_times_its_polls() {
    let (executor, spawner) = new_executor_and_spawner();
    spawner.spawn(async { thread::sleep(Duration::from_millis(30)) });
    let (executor, polls) = run_until_stalled_with_watchdog(
        executor,
        "run_until_stalled() with a poll that sleeps 30 ms",
    );
    assert_eq!(polls, 1);
    let metrics = executor.metrics();
    assert!(
        metrics.busy_time >= Duration::from_millis(30)
            && metrics.max_poll_time >= Duration::from_millis(30),
        "a 30 ms poll made by run_until_stalled() must count: busy_time {:?}, max_poll_time {:?}",
        metrics.busy_time,
        metrics.max_poll_time
    );
    drop(spawner);
}

/// Targets counters updated at the wrong moment: `spawned` counted when a task is first polled
/// instead of when a spawn accepts it, or `completed` also counting tasks abandoned unfinished. A
/// Low task that would pend forever and a High task that shuts the executor down are spawned, and
/// `run` polls only the High one: 2 spawns, 1 completion, 1 poll. Then, on a new executor, a task
/// that pends without keeping its waker (abandoned, its future dropped) beside one that finishes:
/// 2 spawns, 1 completion, 2 polls.
#[test]
fn metrics_count_accepted_spawns_and_only_finished_tasks() {
    let (executor, spawner) = new_executor_and_spawner();
    spawner.spawn(future::pending::<()>());
    let closer = spawner.clone();
    spawner
        .spawn_with_priority(Priority::High, async move { closer.shutdown() })
        .expect("room for a task");
    let executor = run_with_watchdog(executor, "run() with a task calling shutdown()");
    let metrics = executor.metrics();
    assert_eq!(
        (metrics.spawned, metrics.completed, metrics.polls),
        (2, 1, 1),
        "(spawned, completed, polls): a task accepted by a spawn counts, polled or not"
    );
    drop(spawner);

    let (executor, spawner) = new_executor_and_spawner();
    spawner.spawn(future::pending::<()>());
    spawner.spawn(async {});
    drop(spawner);
    let executor = run_with_watchdog(executor, "run() with a task that no waker can reach");
    let metrics = executor.metrics();
    assert_eq!(
        (metrics.spawned, metrics.completed, metrics.polls),
        (2, 1, 2),
        "(spawned, completed, polls): an abandoned task never returned Ready"
    );
}

/// Targets poll times that are rounded or forgotten: `busy_time` kept in whole milliseconds (or
/// coarser), or `max_poll_time` kept per call of `run`/`run_until_stalled`. A 40 ms poll in a
/// first `run_until_stalled` stays the longest through a second call and a `run`, in which 200
/// polls each spin about 0.3 ms: `busy_time` must be at least 40 ms plus the time measured inside
/// those polls.
#[test]
fn metrics_poll_times_are_exact_and_kept_across_calls() {
    let (executor, spawner) = new_executor_and_spawner();
    spawner.spawn(async { thread::sleep(Duration::from_millis(40)) });
    let (executor, _) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    spawner.spawn(async {});
    let (executor, _) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    // Checked here too: after the one trivial poll of the second call, not only after 200 polls
    // that a loaded machine may stretch past 40 ms.
    let longest = executor.metrics().max_poll_time;
    assert!(
        longest >= Duration::from_millis(40),
        "max_poll_time {longest:?} after a second call: the 40 ms poll of the first call is still \
         the longest"
    );
    let inside = Log::new();
    let measured = inside.clone();
    let mut polls = 0;
    spawner.spawn(future::poll_fn(move |cx| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(300) {}
        measured.push(start.elapsed());
        polls += 1;
        if polls == 200 {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }));
    drop(spawner);
    let executor = run_with_watchdog(executor, "run()");
    let metrics = executor.metrics();
    let spun: Duration = inside.entries().iter().sum();
    assert!(
        metrics.max_poll_time >= Duration::from_millis(40),
        "max_poll_time {:?}: the 40 ms poll of an earlier call is still the longest",
        metrics.max_poll_time
    );
    assert!(
        metrics.busy_time >= Duration::from_millis(40) + spun,
        "busy_time {:?}, but the polls took at least 40 ms + {spun:?} (200 polls of about 0.3 ms)",
        metrics.busy_time
    );
}
