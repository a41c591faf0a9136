//! Category `priority` (exercise 2.4): `High` tasks are polled before ready `Low` ones, and each
//! priority is served in the order its tasks became ready. Orders are only compared among tasks
//! that are ready at the same time, which the spec fixes exactly.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crate::support::{run_until_stalled_with_watchdog, run_with_watchdog};
use futures::future;
use hidden_tests::{Gate, Log};
use runtime::executor::{new_executor_and_spawner, Priority, Spawner};

/// A task that logs `name` on every poll and finishes on its `polls`-th poll, waking itself on
/// the ones before.
fn logging(name: &'static str, polls: usize, log: &Log<&'static str>) -> impl Future<Output = ()> {
    let log = log.clone();
    let mut seen = 0;
    future::poll_fn(move |cx| {
        log.push(name);
        seen += 1;
        if seen >= polls {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

/// A task that logs `name` on every poll and finishes when `gate` opens.
fn gated(name: &'static str, gate: &Gate, log: &Log<&'static str>) -> impl Future<Output = ()> {
    let log = log.clone();
    let mut wait = gate.wait();
    future::poll_fn(move |cx| {
        log.push(name);
        Pin::new(&mut wait).poll(cx)
    })
}

/// Spawns a High task ("high") waiting for a gate, then three Low tasks: "low 0" opens the gate,
/// "low 1" and "low 2" finish at once. Each logs its polls.
fn spawn_high_woken_by_first_of_three_low(spawner: &Spawner, log: &Log<&'static str>) {
    let gate = Gate::new();
    spawn(spawner, Priority::High, gated("high", &gate, log));
    let low_log = log.clone();
    spawner.spawn(async move {
        low_log.push("low 0");
        gate.open();
    });
    spawner.spawn(logging("low 1", 1, log));
    spawner.spawn(logging("low 2", 1, log));
}

fn spawn(spawner: &Spawner, priority: Priority, task: impl Future<Output = ()> + Send + 'static) {
    spawner
        .spawn_with_priority(priority, task)
        .expect("the executor has room");
}

/// Targets an executor that ignores priorities, or serves a priority out of order: five tasks
/// spawned before `run` (so all ready at once) as Low, Low, High, Low, High — the first through
/// `try_spawn`, the second through `spawn`, both of which use `Low` — must be polled High ones
/// first, each priority in spawn order.
#[test]
fn priority_high_tasks_first_then_fifo() {
    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    spawner.try_spawn(logging("low 0", 1, &log)).expect("room");
    spawner.spawn(logging("low 1", 1, &log));
    spawn(&spawner, Priority::High, logging("high 0", 1, &log));
    spawn(&spawner, Priority::Low, logging("low 2", 1, &log));
    spawn(&spawner, Priority::High, logging("high 1", 1, &log));
    assert_eq!(Priority::default(), Priority::Low);
    drop(spawner);
    drop(run_with_watchdog(executor, "run()"));
    assert_eq!(
        log.entries(),
        ["high 0", "high 1", "low 0", "low 1", "low 2"]
    );
}

/// Targets a queue that orders tasks by spawn order (or task id) instead of by when they became
/// ready: three waiting Low tasks are woken in the order C, A, B, so they are polled in that order.
#[test]
fn priority_fifo_in_the_order_tasks_became_ready() {
    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    let gates = [Gate::new(), Gate::new(), Gate::new()];
    for (name, gate) in ["A", "B", "C"].into_iter().zip(&gates) {
        spawner.spawn(gated(name, gate, &log));
    }
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 3);
    for i in [2, 0, 1] {
        gates[i].open();
    }
    let (_executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 3);
    assert_eq!(log.entries(), ["A", "B", "C", "C", "A", "B"]);
}

/// Targets an executor that only looks at priorities when tasks are spawned: a High task waiting
/// for a wake is woken by the first of three ready Low tasks, and must then be polled before the
/// other two.
#[test]
fn priority_woken_high_task_overtakes_ready_low_tasks() {
    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    spawn_high_woken_by_first_of_three_low(&spawner, &log);
    drop(spawner);
    drop(run_with_watchdog(executor, "run()"));
    assert_eq!(log.entries(), ["high", "low 0", "high", "low 1", "low 2"]);
}

/// Targets an executor that polls a self-waking task again at once, ahead of tasks that were
/// ready before it: a Low task that wakes itself during its poll goes behind the two Low tasks
/// that were already ready.
#[test]
fn priority_self_woken_task_goes_behind_ready_tasks() {
    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    spawner.spawn(logging("low 0", 2, &log));
    spawner.spawn(logging("low 1", 1, &log));
    spawner.spawn(logging("low 2", 1, &log));
    drop(spawner);
    drop(run_with_watchdog(executor, "run()"));
    assert_eq!(log.entries(), ["low 0", "low 1", "low 2", "low 0"]);
}

/// Targets an executor that queues newly spawned High tasks behind ready Low ones: a Low task
/// spawns a High task while two other Low tasks are ready; the High task runs next.
#[test]
fn priority_high_task_spawned_by_a_task_runs_next() {
    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    let (inner_log, inner_spawner) = (log.clone(), spawner.clone());
    spawner.spawn(async move {
        inner_log.push("low 0");
        spawn(
            &inner_spawner,
            Priority::High,
            logging("high", 1, &inner_log),
        );
    });
    spawner.spawn(logging("low 1", 1, &log));
    spawner.spawn(logging("low 2", 1, &log));
    drop(spawner);
    drop(run_with_watchdog(executor, "run()"));
    assert_eq!(log.entries(), ["low 0", "high", "low 1", "low 2"]);
}

/// Targets a `run_until_stalled` that ignores priority (e.g. polls what was ready when it started
/// as one batch, and looks at newly ready tasks only after the batch): the same situation as for
/// `run`, on `run_until_stalled`. A waiting High task is woken by the first of three ready Low
/// tasks, and must then be polled before the other two.
#[test]
fn priority_run_until_stalled_serves_woken_high_task_first() {
    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    spawn_high_woken_by_first_of_three_low(&spawner, &log);
    let (_executor, polls) = run_until_stalled_with_watchdog(
        executor,
        "run_until_stalled() with a High task woken by a Low one",
    );
    assert_eq!(polls, 5);
    assert_eq!(log.entries(), ["high", "low 0", "high", "low 1", "low 2"]);
    drop(spawner);
}

/// Targets an executor that puts a task woken during its own poll back among the Low tasks: a
/// High task that wakes itself on its first two polls stays ahead of two ready Low tasks until it
/// finishes.
#[test]
fn priority_self_woken_high_task_stays_ahead_of_low_ones() {
    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    spawner.spawn(logging("low 0", 1, &log));
    spawner.spawn(logging("low 1", 1, &log));
    spawn(&spawner, Priority::High, logging("high", 3, &log));
    let (_executor, polls) = run_until_stalled_with_watchdog(
        executor,
        "run_until_stalled() with a self-waking High task",
    );
    assert_eq!(polls, 5);
    assert_eq!(log.entries(), ["high", "high", "high", "low 0", "low 1"]);
}

/// Targets an executor that keeps spawned and woken tasks apart (e.g. one queue for each, one
/// served first): within a priority, tasks are polled in the order they became ready, by a wake
/// or by a spawn alike. A and D wait for gates; then A is woken, B and C are spawned, and D is
/// woken: the next call polls A, B, C, D.
#[test]
fn priority_order_of_readiness_mixes_wakes_and_spawns() {
    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    let (a, d) = (Gate::new(), Gate::new());
    spawner.spawn(gated("A", &a, &log));
    spawner.spawn(gated("D", &d, &log));
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 2);
    a.open();
    spawner.spawn(logging("B", 1, &log));
    spawner.spawn(logging("C", 1, &log));
    d.open();
    let (_executor, polls) = run_until_stalled_with_watchdog(
        executor,
        "run_until_stalled() with woken and spawned tasks",
    );
    assert_eq!(polls, 4);
    assert_eq!(log.entries(), ["A", "D", "A", "B", "C", "D"]);
}
