//! Category `executor` (exercise 2.3): spawning, `run`'s return conditions, `run_until_stalled`,
//! wake deduplication, re-polls after a wake during a poll, polling thread, capacity. The tasks are
//! the test's own correct futures (`Gate`, `self_waking`), so only the executor is under test.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{run_until_stalled_with_watchdog, run_with_watchdog};
use futures::future;
use hidden_tests::{
    bump_when_open, expect_within, open_from_another_thread, self_waking, thread_cpu_time,
    wake_a_clone, with_watchdog, Counter, Gate, Log, HANG_SECS, WAIT,
};
use runtime::executor::{
    new_executor_and_spawner, new_executor_and_spawner_with_capacity, SpawnError, MAX_QUEUED_TASKS,
};

/// How long `run` has nothing to do in the spinning check: a blocked thread's CPU time stays near
/// zero however long the wait, so a short one tells spinning apart as well as a long one (a tenth
/// of it is the limit), and every grading waits for it.
const IDLE: Duration = Duration::from_millis(400);

/// Targets an executor that loses tasks, cannot spawn from inside a task, or whose `run` does not
/// return once every spawner is gone and every task finished: three tasks each spawn a subtask
/// through a cloned spawner; `run` must run all six and then return.
#[test]
fn executor_runs_tasks_and_subtasks_then_returns() {
    let (executor, spawner) = new_executor_and_spawner();
    let log = Log::new();
    for i in 0..3 {
        let (log, inner_spawner) = (log.clone(), spawner.clone());
        spawner.spawn(async move {
            log.push(format!("task {i}"));
            let log = log.clone();
            inner_spawner.spawn(async move { log.push(format!("subtask {i}")) });
        });
    }
    drop(spawner);
    drop(run_with_watchdog(executor, "run()"));
    let mut done = log.entries();
    done.sort();
    assert_eq!(
        done,
        [
            "subtask 0",
            "subtask 1",
            "subtask 2",
            "task 0",
            "task 1",
            "task 2"
        ]
    );
}

/// Targets a `run` that returns (or spins) as soon as no task is ready, although a pending task
/// still has a waker: the only task waits for a `Gate` that another thread opens after the task's
/// first poll; `run` must block until that wake, poll the task again and finish it.
#[test]
fn executor_run_waits_for_a_wake_from_another_thread() {
    let (executor, spawner) = new_executor_and_spawner();
    let (gate, done) = (Gate::new(), Counter::new());
    spawner.spawn(bump_when_open(&gate, &done));
    drop(spawner);
    open_from_another_thread(&gate, Duration::ZERO);
    drop(run_with_watchdog(
        executor,
        "run() with a task woken from another thread",
    ));
    assert_eq!(done.get(), 1, "run returned before the woken task finished");
    assert_eq!(gate.polls(), 2);
}

/// Targets a `run` that spins (busy-polls its queue) while no task is ready: the only task waits
/// for a gate that a helper thread opens [`IDLE`] after the task's first poll. A blocked `run`
/// thread uses almost no CPU meanwhile (well under a millisecond); a spinning one gets more than a
/// tenth of that time even when it has only a tenth of a core. (The CPU time comes from /proc;
/// where it is unavailable, only the result is checked.)
#[test]
fn executor_run_blocks_without_spinning() {
    let (executor, spawner) = new_executor_and_spawner();
    let (gate, done) = (Gate::new(), Counter::new());
    spawner.spawn(bump_when_open(&gate, &done));
    drop(spawner);
    open_from_another_thread(&gate, IDLE);
    let cpu = with_watchdog(HANG_SECS, "run() waiting for a wake", move || {
        let before = thread_cpu_time();
        executor.run();
        Some(thread_cpu_time()? - before?)
    });
    assert_eq!(done.get(), 1, "run returned before the woken task finished");
    if let Some(cpu) = cpu {
        assert!(
            cpu < IDLE / 10,
            "run() used {cpu:?} of CPU while waiting {IDLE:?} for a wake: it spins instead of \
             blocking"
        );
    }
}

/// Targets a `run` that returns when its queue is empty although a spawner is still alive (also
/// one that counts any dropped clone as "the spawners are gone"): a clone of the spawner is
/// dropped first; `run` runs on another thread, the test spawns one task, waits for it and a
/// moment more (so that `run` finds its queue empty), then spawns a second one, which must run as
/// well; `run` returns only after the test drops its spawner.
#[test]
fn executor_run_keeps_running_while_a_spawner_exists() {
    with_watchdog(HANG_SECS, "run() with a live spawner", || {
        let (executor, spawner) = new_executor_and_spawner();
        drop(spawner.clone());
        let (done_tx, done_rx) = mpsc::channel();
        let runner = thread::spawn(move || executor.run());
        for i in 0..2 {
            if i > 0 {
                thread::sleep(Duration::from_millis(100));
            }
            let done_tx = done_tx.clone();
            spawner.spawn(async move {
                let _ = done_tx.send(i);
            });
            expect_within(
                "run() to run a task spawned while it was running",
                WAIT,
                |t| done_rx.recv_timeout(t) == Ok(i),
            );
        }
        drop(spawner);
        runner.join().expect("run() panicked");
    });
}

/// Targets a `run_until_stalled` that miscounts, blocks, or stops early: on an empty executor it
/// returns 0; three tasks that pend once (waking themselves) and one ready task take exactly
/// 3 * 2 + 1 = 7 polls; a second call finds nothing to do; a task spawned afterwards is polled by
/// the next call. The spawner stays alive throughout, which must not make it block.
#[test]
fn executor_run_until_stalled_counts_its_polls() {
    let (executor, spawner) = new_executor_and_spawner();
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 0, "nothing was spawned");
    let task_polls = Counter::new();
    for _ in 0..3 {
        spawner.spawn(self_waking(1, task_polls.clone()));
    }
    spawner.spawn(self_waking(0, task_polls.clone()));
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 7);
    assert_eq!(task_polls.get(), 7);
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 0, "every task had finished");
    spawner.spawn(self_waking(0, task_polls.clone()));
    let (_executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 1);
    assert_eq!(task_polls.get(), 8);
}

/// Targets a `run_until_stalled` that waits for wakes, even briefly: with a pending task (its
/// waker held by a `Gate`) and a live spawner it must return after the one poll, and 100 more
/// calls with nothing ready return 0 at once (all together well under half a second); once the
/// gate is opened, the next call polls the task again and it finishes.
#[test]
fn executor_run_until_stalled_returns_with_a_pending_task() {
    let (executor, spawner) = new_executor_and_spawner();
    let (gate, done) = (Gate::new(), Counter::new());
    spawner.spawn(bump_when_open(&gate, &done));
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 1);
    assert_eq!(done.get(), 0);
    let started = Instant::now();
    let executor = with_watchdog(
        HANG_SECS,
        "run_until_stalled() with nothing ready",
        move || {
            for _ in 0..100 {
                assert_eq!(executor.run_until_stalled(), 0, "nothing was ready");
            }
            executor
        },
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "100 calls of run_until_stalled() with nothing ready took {took:?}: it waits for wakes"
    );
    gate.open();
    let (_executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 1);
    assert_eq!(done.get(), 1);
}

/// Targets an executor that queues a task once per wake: a pending task is woken five times
/// (`wake_by_ref` and `wake` on clones) while the executor is idle; it sits in the ready queue at
/// most once, so the next `run_until_stalled` polls it exactly once.
#[test]
fn executor_deduplicates_wakes_of_a_waiting_task() {
    let (executor, spawner) = new_executor_and_spawner();
    let gate = Gate::new();
    spawner.spawn(gate.wait());
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 1);
    let waker = gate.take_waker().expect("the task's poll stored its waker");
    for _ in 0..3 {
        waker.wake_by_ref();
    }
    wake_a_clone(&waker);
    waker.wake();
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(
        polls, 1,
        "five wakes of an idle task must lead to exactly one poll"
    );
    gate.open();
    let (_executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 1);
}

/// Targets an executor that drops a wake arriving during the task's own poll: a task that wakes
/// itself on each of its first four polls must be polled exactly five times by `run`.
#[test]
fn executor_repolls_a_task_woken_during_its_poll() {
    let (executor, spawner) = new_executor_and_spawner();
    let polls = Counter::new();
    spawner.spawn(self_waking(4, polls.clone()));
    drop(spawner);
    drop(run_with_watchdog(executor, "run() with a self-waking task"));
    assert_eq!(polls.get(), 5);
}

/// Targets an executor that polls on other threads or several tasks at once: twenty tasks, woken
/// from a helper thread, record the thread of every poll and check that no other poll is in
/// progress; every poll must happen on the thread that called `run`.
#[test]
fn executor_polls_on_the_calling_thread_one_at_a_time() {
    let (executor, spawner) = new_executor_and_spawner();
    let threads = Log::new();
    let in_poll = Arc::new(AtomicBool::new(false));
    let overlaps = Counter::new();
    let gates: Vec<Gate> = (0..20).map(|_| Gate::new()).collect();
    for gate in &gates {
        let (threads, in_poll, overlaps) = (threads.clone(), in_poll.clone(), overlaps.clone());
        let mut wait = gate.wait();
        spawner.spawn(future::poll_fn(move |cx| {
            if in_poll.swap(true, Ordering::SeqCst) {
                overlaps.bump();
            }
            threads.push(thread::current().id());
            let poll = std::pin::Pin::new(&mut wait).poll(cx);
            in_poll.store(false, Ordering::SeqCst);
            poll
        }));
    }
    drop(spawner);
    thread::spawn(move || {
        for gate in gates {
            if gate.wait_for_polls(1, WAIT) {
                gate.open();
            }
        }
    });
    let run_thread = with_watchdog(HANG_SECS, "run()", move || {
        executor.run();
        thread::current().id()
    });
    let threads = threads.entries();
    assert_eq!(threads.len(), 40, "each task is polled twice");
    assert!(
        threads.iter().all(|id| *id == run_thread),
        "a poll ran off the run() thread"
    );
    assert_eq!(overlaps.get(), 0, "two polls overlapped");
}

/// Targets a capacity that counts queue entries instead of live tasks: with capacity 2, two pending
/// tasks (polled, so no longer queued) still take both slots, so a third spawn fails with
/// `QueueFull`; once one of them finishes, a spawn succeeds again.
#[test]
fn executor_capacity_counts_live_tasks() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(2);
    let gates = [Gate::new(), Gate::new()];
    for gate in &gates {
        spawner.try_spawn(gate.wait()).expect("a slot is free");
    }
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 2);
    assert_eq!(
        spawner.try_spawn(async {}),
        Err(SpawnError::QueueFull),
        "two pending tasks are live and take both slots"
    );
    gates[0].open();
    let (_executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 1);
    assert_eq!(
        spawner.try_spawn(async {}),
        Ok(()),
        "a finished task frees its slot"
    );
}

/// Targets a default capacity other than `MAX_QUEUED_TASKS` (10 000): the executor of
/// `new_executor_and_spawner` accepts exactly 10 000 live tasks.
#[test]
fn executor_default_capacity_is_max_queued_tasks() {
    assert_eq!(MAX_QUEUED_TASKS, 10_000);
    let (_executor, spawner) = new_executor_and_spawner();
    for i in 0..MAX_QUEUED_TASKS {
        assert_eq!(
            spawner.try_spawn(future::pending()),
            Ok(()),
            "spawn {i} of {MAX_QUEUED_TASKS}"
        );
    }
    assert_eq!(
        spawner.try_spawn(future::pending()),
        Err(SpawnError::QueueFull)
    );
}

/// Targets an executor that re-queues a task woken during a poll even when that poll finished it
/// (asking "woken while polled?" before "ready?"): a task that wakes itself in every poll and
/// finishes on its second is polled exactly twice and frees its slot (capacity 1).
#[test]
fn executor_a_task_woken_during_its_last_poll_is_not_polled_again() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(1);
    let polls = Counter::new();
    let seen = polls.clone();
    spawner.spawn(future::poll_fn(move |cx| {
        cx.waker().wake_by_ref();
        if seen.bump() == 2 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    let (executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(
        (made, polls.get()),
        (2, 2),
        "a task that returned Ready must not be polled again"
    );
    assert_eq!(
        spawner.try_spawn(async {}),
        Ok(()),
        "the finished task's slot is free"
    );
    let (_executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 1);
}
