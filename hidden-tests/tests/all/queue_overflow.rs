//! Category `queue_overflow` (robustness): wake storms must be deduplicated (a task sits in the
//! ready queue at most once, and wakes never take a slot, block or fail), and spawning past the
//! capacity must fail with `QueueFull` (or panic in `spawn`) until live tasks finish. Small
//! capacities make a queue that is bounded by the capacity but fed by every wake (the async book's
//! `sync_channel`) overflow at once.

use std::mem;
use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::thread;
use std::time::Duration;

use crate::support::{run_until_stalled_with_watchdog, run_with_watchdog};
use futures::future;
use hidden_tests::{
    bump_when_open, panic_message_of, self_waking, wake_a_clone, with_watchdog, Counter, Flag,
    Gate, Log, HANG_SECS,
};
use runtime::executor::{new_executor_and_spawner_with_capacity, Priority, SpawnError};
use runtime::timer::TimerFuture;

const STORM: usize = 20_000;
/// The capacity of the flood test.
const FLOOD: usize = 1_000;

/// Wakes `waker` `n` times, alternating `wake_by_ref` and `wake` on a clone.
fn storm(waker: &Waker, n: usize) {
    for i in 0..n {
        if i % 2 == 0 {
            waker.wake_by_ref();
        } else {
            wake_a_clone(waker);
        }
    }
}

/// Wakes `waker` from eight threads at once, `STORM` times in all, and waits for them.
fn storm_from_threads(waker: &Waker) {
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let waker = waker.clone();
            thread::spawn(move || storm(&waker, STORM / 8))
        })
        .collect();
    for thread in threads {
        thread.join().expect("a wake panicked");
    }
}

/// Targets an executor that queues the task once per wake (growing its queue, or blocking or
/// panicking on a full one): with capacity 1, a task wakes itself 20 000 times in its first poll.
/// It sits in the queue at most once, so it is polled once more (a bound of 3 polls in all leaves
/// room for any design) and finishes, and its slot is then free again.
#[test]
fn queue_overflow_wake_storm_inside_a_poll() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(1);
    let polls = Counter::new();
    let seen = polls.clone();
    spawner.spawn(future::poll_fn(move |cx| {
        if seen.bump() == 1 {
            storm(cx.waker(), STORM);
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }));
    let (executor, made) = run_until_stalled_with_watchdog(executor, "a wake storm in a poll");
    assert!(
        made <= 3,
        "20 000 wakes during one poll led to {made} polls"
    );
    assert_eq!(
        polls.get(),
        2,
        "the task must be polled again after the storm, and finish"
    );
    assert_eq!(
        spawner.try_spawn(async {}),
        Ok(()),
        "the finished task's slot is free"
    );
    let (_executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 1);
}

/// Targets the same from other threads, with and without a concurrent `run`: eight threads wake a
/// waiting task 2 500 times each. While the executor is idle, the storm leaves the task queued once,
/// so the next `run_until_stalled` polls it at most a few times (once, really). Then the storm
/// repeats while `run` runs on another thread; nothing may panic or hang, and the task finishes
/// once its gate opens.
#[test]
fn queue_overflow_wake_storm_from_eight_threads() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(1);
    let gate = Gate::new();
    spawner.spawn(gate.wait());
    drop(spawner);
    let (executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 1);
    let waker = gate.take_waker().expect("the task stored its waker");
    let to_storm = waker.clone();
    with_watchdog(HANG_SECS, "a wake storm from eight threads", move || {
        storm_from_threads(&to_storm)
    });
    let (executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert!(made <= 3, "a storm of 20 000 wakes led to {made} polls");

    let polls_before = gate.polls();
    let opener = gate.clone();
    let executor = with_watchdog(2 * HANG_SECS, "a wake storm during run()", move || {
        let runner = thread::spawn(move || {
            executor.run();
            executor
        });
        storm_from_threads(&waker);
        drop(waker);
        opener.open();
        runner.join().expect("run() panicked")
    });
    assert!(
        gate.polls() > polls_before,
        "the opened gate's task was never polled"
    );
    drop(executor);
}

/// Targets wakes of a finished task that still fill the queue or take a slot: with capacity 1, a
/// task keeps its waker and finishes; 20 000 wakes of that waker must do nothing (no poll, no
/// block, no panic), and the slot is free for the next task.
#[test]
fn queue_overflow_wakes_of_a_finished_task_change_nothing() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(1);
    let stash: Log<Waker> = Log::new();
    let kept = stash.clone();
    spawner.spawn(future::poll_fn(move |cx| {
        kept.push(cx.waker().clone());
        Poll::Ready(())
    }));
    let (executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 1);
    let waker = stash.entries().pop().expect("the task kept its waker");
    let woken = waker.clone();
    with_watchdog(HANG_SECS, "waking a finished task", move || {
        storm(&woken, STORM)
    });
    assert_eq!(
        spawner.try_spawn(async {}),
        Ok(()),
        "a finished task is no longer live, even while its waker exists"
    );
    let (_executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 1, "only the new task may be polled");
    drop(waker);
}

/// Targets spawning past the capacity: with capacity 3 and three waiting tasks, `try_spawn` and
/// `spawn_with_priority` (either priority) fail with `QueueFull` and `spawn` panics with a message
/// containing `too many tasks queued` (and `SpawnError`'s `Display` works); after one task
/// finishes there is room for exactly one more; no accepted task is lost; and capacity 0 admits no
/// task at all (not "unbounded"; a constructor that refuses 0 by panicking is fine too). The spec
/// promises nothing about an executor after its `spawn` panicked (the panic may poison a lock it
/// held), so that panic is checked last, on an executor of its own that is then leaked rather
/// than used or dropped.
#[test]
fn queue_overflow_spawn_past_capacity_is_refused() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(3);
    let gates = [Gate::new(), Gate::new(), Gate::new(), Gate::new()];
    let done = Counter::new();
    for gate in &gates[..3] {
        spawner
            .try_spawn(bump_when_open(gate, &done))
            .expect("room for three tasks");
    }
    assert_eq!(spawner.try_spawn(async {}), Err(SpawnError::QueueFull));
    // `SpawnError` implements `Display`: its text can be made (no recursion, no panic).
    let _ = (
        SpawnError::QueueFull.to_string(),
        SpawnError::Shutdown.to_string(),
    );
    for priority in [Priority::High, Priority::Low] {
        assert_eq!(
            spawner.spawn_with_priority(priority, async {}),
            Err(SpawnError::QueueFull)
        );
    }
    let (executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 3);
    assert_eq!(spawner.try_spawn(async {}), Err(SpawnError::QueueFull));
    gates[0].open();
    let (executor, _) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    spawner
        .try_spawn(bump_when_open(&gates[3], &done))
        .expect("a finished task frees its slot");
    assert_eq!(spawner.try_spawn(async {}), Err(SpawnError::QueueFull));
    for gate in &gates[1..] {
        gate.open();
    }
    drop(spawner);
    drop(run_with_watchdog(executor, "run()"));
    assert_eq!(done.get(), 4, "an accepted task was lost");

    if let Ok((_executor, spawner)) =
        panic::catch_unwind(|| new_executor_and_spawner_with_capacity(0))
    {
        assert_eq!(
            spawner.try_spawn(async {}),
            Err(SpawnError::QueueFull),
            "capacity 0 leaves no room for a task"
        );
        assert_eq!(
            spawner.spawn_with_priority(Priority::High, async {}),
            Err(SpawnError::QueueFull),
            "capacity 0 leaves no room for a task"
        );
    }

    let (full, spawner) = new_executor_and_spawner_with_capacity(1);
    spawner.spawn(future::pending());
    let message = panic_message_of(|| spawner.spawn(async {})).expect("spawn must panic when full");
    assert!(
        message.contains("too many tasks queued"),
        "spawn's panic message {message:?} must contain `too many tasks queued`"
    );
    mem::forget((full, spawner));
}

/// Targets the async book's `sync_channel(capacity)` design, whose timer wake has to re-send the
/// task through a channel that the task itself may fill (async-book#78): with capacity 1, one task
/// awaits two timers one after the other; it must finish.
#[test]
fn queue_overflow_capacity_one_with_two_timers_in_sequence() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(1);
    let done = Counter::new();
    let finished = done.clone();
    spawner.spawn(async move {
        TimerFuture::new(Duration::from_millis(10)).await;
        TimerFuture::new(Duration::from_millis(10)).await;
        finished.bump();
    });
    drop(spawner);
    drop(run_with_watchdog(
        executor,
        "run() with capacity 1 and two timers",
    ));
    assert_eq!(done.get(), 1);
}

/// Targets capacity bookkeeping under a flood: 1 000 tasks (the capacity) that each pend once are
/// spawned at once, all run (2 000 polls), and their slots are all free again for a second flood
/// of 1 000, which runs too; a further spawn while the executor is full fails. (The spec fixes no
/// data structure, so a poll may cost time linear in the number of tasks: the flood is sized to
/// take well under a second even then.)
#[test]
fn queue_overflow_spawn_flood_at_full_capacity_twice() {
    let (mut executor, spawner) = new_executor_and_spawner_with_capacity(FLOOD);
    let polls = Counter::new();
    for round in 1..=2 {
        for i in 0..FLOOD {
            if let Err(error) = spawner.try_spawn(self_waking(1, polls.clone())) {
                panic!("round {round}: spawn {i} of {FLOOD} failed: {error:?}");
            }
        }
        assert_eq!(
            spawner.try_spawn(async {}),
            Err(SpawnError::QueueFull),
            "round {round}: every slot is taken"
        );
        let made;
        (executor, made) = run_until_stalled_with_watchdog(
            executor,
            "run_until_stalled() with 1 000 tasks that each pend once",
        );
        assert_eq!(made, 2 * FLOOD, "round {round}");
        assert_eq!(polls.get(), round * 2 * FLOOD, "round {round}");
    }
}

/// Targets a lossy ready queue (the async book's `sync_channel(capacity)` with
/// `let _ = try_send(task)`, whose full channel silently drops a wake): with capacity 4, a task
/// waits for a `Gate`; then a second task wakes itself 500 times in one poll and only then opens
/// the gate, waking the first. Each task is queued at most once, so the first task's wake cannot
/// be crowded out: the same `run_until_stalled` must poll it again, and it finishes. Any correct
/// design keeps every wake of an idle task (the spec: it makes the task ready), whatever the queue.
#[test]
fn queue_overflow_wake_storm_does_not_cost_another_task_its_wake() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(4);
    let (gate, done) = (Gate::new(), Counter::new());
    spawner.spawn(bump_when_open(&gate, &done));
    let (executor, made) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(made, 1, "the waiting task is polled once");
    let mut storms = 0;
    spawner.spawn(future::poll_fn(move |cx| {
        storms += 1;
        if storms > 1 {
            return Poll::Ready(());
        }
        storm(cx.waker(), 500);
        gate.open();
        Poll::Pending
    }));
    let (_executor, _) = run_until_stalled_with_watchdog(
        executor,
        "run_until_stalled() while a task wakes itself 500 times in one poll",
    );
    assert_eq!(
        done.get(),
        1,
        "a task woken right after another task's wake storm was never polled again: its wake was lost"
    );
}

/// Targets a queue that holds more than one entry per task at full capacity: 64 tasks (the
/// capacity) each wake themselves twice in every poll, 50 times; each is queued at most once per
/// poll, so each is polled exactly 51 times and all finish, without a wake ever blocking.
#[test]
fn queue_overflow_full_executor_of_double_waking_tasks() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(64);
    let counters: Vec<Counter> = (0..64).map(|_| Counter::new()).collect();
    for polls in &counters {
        let polls = polls.clone();
        spawner.spawn(future::poll_fn(move |cx| {
            if polls.bump() > 50 {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            cx.waker().wake_by_ref();
            Poll::Pending
        }));
    }
    drop(spawner);
    drop(run_with_watchdog(
        executor,
        "run() with 64 double-waking tasks",
    ));
    let polls: Vec<usize> = counters.iter().map(Counter::get).collect();
    assert!(polls.iter().all(|&p| p == 51), "polls per task: {polls:?}");
}

/// Targets a capacity check made apart from the insertion (check, unlock, lock again, insert), so
/// that spawns racing from several threads overshoot it: 300 times, 8 threads started together
/// (each spins until all are running) make 4 spawns each on an executor of capacity 2. Exactly 2
/// must be accepted each time, and `run_until_stalled` then polls exactly those 2.
#[test]
fn queue_overflow_concurrent_spawns_respect_the_capacity() {
    const THREADS: usize = 8;
    with_watchdog(3 * HANG_SECS, "spawns racing from eight threads", || {
        for _ in 0..300 {
            let (executor, spawner) = new_executor_and_spawner_with_capacity(2);
            let started = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (spawner, started) = (spawner.clone(), Arc::clone(&started));
                    thread::spawn(move || {
                        // A barrier lets the threads go one by one on a busy machine; spinning
                        // until all of them run makes their spawns overlap.
                        started.fetch_add(1, Ordering::SeqCst);
                        while started.load(Ordering::SeqCst) < THREADS {
                            thread::yield_now();
                        }
                        (0..4)
                            .filter(|_| spawner.try_spawn(future::pending::<()>()).is_ok())
                            .count()
                    })
                })
                .collect();
            let accepted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(accepted, 2, "spawns accepted with capacity 2");
            let (executor, polls) =
                run_until_stalled_with_watchdog(executor, "run_until_stalled()");
            assert_eq!(polls, 2);
            drop((executor, spawner));
        }
    });
}

/// Targets a capacity that frees a slot only when a task finishes: a task is live until its
/// future returns `Ready` or is dropped. With capacity 1, the only task pends without keeping its
/// waker; if the executor has dropped its future (abandoned: no waker can reach it), its slot is
/// free and a spawn must succeed. (An executor that drops it later is not held to it.)
#[test]
fn queue_overflow_an_abandoned_task_frees_its_slot() {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(1);
    let dropped = Flag::new();
    let guard = dropped.set_on_drop();
    spawner.spawn(async move {
        let _guard = guard;
        future::pending::<()>().await;
    });
    let (executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
    assert_eq!(polls, 1);
    if dropped.is_set() {
        assert_eq!(
            spawner.try_spawn(async {}),
            Ok(()),
            "the abandoned task's future was dropped: it is no longer live"
        );
        let (_executor, polls) = run_until_stalled_with_watchdog(executor, "run_until_stalled()");
        assert_eq!(polls, 1);
    }
}
