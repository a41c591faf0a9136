//! Public tests of exercises 2.3 and 2.4. They use only the public API, so they run unchanged
//! against any solution. `cargo test executor` runs them all.

// Explicit imports only: a solution's private imports and items must not matter here.
use crate::custom_future::{CountdownFuture, ManualFuture, MapFuture};
use crate::executor::{
    new_executor_and_spawner, new_executor_and_spawner_with_capacity, Executor, Metrics, Priority,
    SpawnError, Spawner, MAX_QUEUED_TASKS,
};
use crate::timer::TimerFuture;
use std::any::Any;
use std::future::{self, Future};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

/// How long a test may run before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The usual hint when `run` does not come back.
const RUN_HANG: &str = "the executor never finished (deadlock or lost wake?)";

/// Runs `body` on a thread of its own and returns its result, so that a hang fails the test
/// with `hint` instead of blocking `cargo test` forever. A panic in `body` is passed on.
// Each tests.rs is self-contained (the grader copies them into solutions), hence one copy each.
fn within_timeout<T: Send + 'static>(hint: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    let worker = thread::spawn(move || {
        // The receiver is gone only if the test already failed with a timeout.
        let _ = sender.send(body());
    });
    match receiver.recv_timeout(TIMEOUT) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("timed out after {TIMEOUT:?}: {hint}"),
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(payload) => panic::resume_unwind(payload),
            Ok(()) => unreachable!("the worker sends a result unless it panics"),
        },
    }
}

/// The text of a panic payload (`panic!` makes either a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| message.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Asserts that `spawn` panics with a message containing `expected`.
fn assert_spawn_panics(spawner: &Spawner, expected: &str) {
    let payload = panic::catch_unwind(AssertUnwindSafe(|| spawner.spawn(async {})))
        .expect_err("spawn must panic where try_spawn would return an error");
    let message = panic_message(payload.as_ref());
    assert!(
        message.contains(expected),
        "spawn panicked with {message:?}, which does not contain {expected:?}"
    );
}

/// Sets a flag when dropped: tells whether a task's future has been dropped.
struct DropFlag(Arc<AtomicBool>);

impl DropFlag {
    fn new() -> (Self, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (Self(Arc::clone(&flag)), flag)
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A shared log in which tasks record what they did, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<&'static str>>>);

impl Log {
    fn push(&self, entry: &'static str) {
        self.0.lock().unwrap().push(entry);
    }

    fn entries(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }

    /// A task that records `entry` when it is polled.
    fn task(&self, entry: &'static str) -> impl Future<Output = ()> + Send + 'static {
        let log = self.clone();
        async move { log.push(entry) }
    }
}

/// On its first poll, wakes its own task `wakes` times and returns `Pending`; then `Ready`.
struct WakeStorm {
    wakes: usize,
    polled: bool,
}

impl Future for WakeStorm {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.polled {
            return Poll::Ready(());
        }
        self.polled = true;
        for _ in 0..self.wakes {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// On its first poll, hands a clone of its waker to the test and returns `Pending`; then
/// `Ready`.
struct LendWaker {
    slot: Arc<Mutex<Option<Waker>>>,
    polled: bool,
}

impl Future for LendWaker {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.polled {
            return Poll::Ready(());
        }
        self.polled = true;
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A new executor holding the tasks that `spawn_tasks` spawns. `spawn_tasks` owns the
/// spawner, so it is gone when `spawn_tasks` returns and `run` may return once the tasks are
/// done.
fn executor_with(spawn_tasks: impl FnOnce(Spawner)) -> Executor {
    let (executor, spawner) = new_executor_and_spawner();
    spawn_tasks(spawner);
    executor
}

/// Compile-time check of the auto traits the spec requires.
fn assert_send<T: Send>() {}
fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

#[test]
fn test_basic_executor() {
    assert_send::<Executor>();
    assert_send_sync_clone::<Spawner>();
    let done = within_timeout(RUN_HANG, || {
        let log = Log::default();
        let executor = executor_with(|spawner| {
            for entry in ["task 1", "task 2", "task 3"] {
                spawner.spawn(log.task(entry));
            }
        });
        // run() returns once every task finished and no spawner is left.
        executor.run();
        log.entries()
    });
    assert_eq!(
        done,
        ["task 1", "task 2", "task 3"],
        "every task must run once, in spawn order"
    );
}

#[test]
fn test_executor_awaits_every_kind_of_future() {
    let results = within_timeout(RUN_HANG, || {
        let results = Arc::new(Mutex::new(Vec::new()));
        let push = |value: u32| {
            let results = Arc::clone(&results);
            move || results.lock().unwrap().push(value)
        };
        let (manual, handle) = ManualFuture::new();
        let executor = executor_with(|spawner| {
            let record = push(1);
            spawner.spawn(async move {
                let count =
                    MapFuture::new(CountdownFuture::new(3), |text: String| text.len()).await;
                assert_eq!(count, "Countdown complete!".len());
                record();
            });
            let record = push(2);
            spawner.spawn(async move {
                TimerFuture::new(Duration::from_millis(30)).await;
                record();
            });
            let record = push(3);
            spawner.spawn(async move {
                manual.await;
                record();
            });
        });
        // Completed from another thread, most likely while run() is blocked waiting.
        let completer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            handle.complete(());
        });
        executor.run();
        completer.join().expect("complete panicked");
        let mut results = results.lock().unwrap().clone();
        results.sort_unstable();
        results
    });
    assert_eq!(
        results,
        [1, 2, 3],
        "run() returned before every task finished: a task whose waker is still held \
         (by a timer or a handle) is not finished"
    );
}

#[test]
fn test_executor_task_may_wake_itself_inside_poll() {
    let polls = within_timeout(
        "a task that wakes itself inside poll hung the executor: is a lock that wake needs \
         held while polling?",
        || {
            let (executor, spawner) = new_executor_and_spawner();
            spawner.spawn(async {
                CountdownFuture::new(50).await;
            });
            executor.run_until_stalled()
        },
    );
    assert_eq!(polls, 51, "CountdownFuture::new(50) needs 51 polls");
}

#[test]
fn test_executor_task_may_spawn_tasks() {
    let log = within_timeout(RUN_HANG, || {
        let log = Log::default();
        let executor = executor_with(|spawner| {
            let inner_spawner = spawner.clone();
            let child = log.task("child");
            let parent_log = log.clone();
            spawner.spawn(async move {
                parent_log.push("parent");
                inner_spawner.spawn(child);
            });
        });
        executor.run();
        log.entries()
    });
    assert_eq!(log, ["parent", "child"]);
}

#[test]
fn test_executor_run_returns_when_a_task_is_abandoned() {
    let dropped = within_timeout(
        "run() never returned although no spawner and no waker was left: a task that can never \
         be woken again must be dropped, not waited for",
        || {
            let (guard, dropped) = DropFlag::new();
            // The executor is a temporary, dropped right after run() returns: the flag is
            // checked once it is gone, whether run() or the executor's drop dropped the future.
            executor_with(|spawner| {
                spawner.spawn(async move {
                    let _guard = guard;
                    // Pending forever, and it keeps no waker: nothing can ever wake this task.
                    future::pending::<()>().await;
                });
            })
            .run();
            dropped
        },
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the abandoned task's future was never dropped (is it kept alive by a reference cycle?)"
    );
}

#[test]
fn test_executor_try_spawn_returns_queue_full_at_capacity() {
    within_timeout(RUN_HANG, || {
        let (executor, spawner) = new_executor_and_spawner_with_capacity(2);
        let (first, first_handle) = ManualFuture::new();
        let (second, _second_handle) = ManualFuture::new();
        assert_eq!(spawner.try_spawn(first), Ok(()));
        assert_eq!(spawner.try_spawn(second), Ok(()));
        assert_eq!(
            spawner.try_spawn(async {}),
            Err(SpawnError::QueueFull),
            "a third task does not fit into an executor of capacity 2"
        );
        assert_eq!(
            spawner.spawn_with_priority(Priority::High, async {}),
            Err(SpawnError::QueueFull)
        );
        assert_eq!(executor.run_until_stalled(), 2);
        assert_eq!(
            spawner.try_spawn(async {}),
            Err(SpawnError::QueueFull),
            "pending tasks are still live: they keep their slots"
        );
        first_handle.complete(());
        assert_eq!(executor.run_until_stalled(), 1);
        assert_eq!(
            spawner.try_spawn(async {}),
            Ok(()),
            "a finished task must free its slot"
        );
    });
}

#[test]
fn test_executor_default_capacity_is_max_queued_tasks() {
    within_timeout(RUN_HANG, || {
        let (_executor, spawner) = new_executor_and_spawner();
        for task in 0..MAX_QUEUED_TASKS {
            assert_eq!(
                spawner.try_spawn(future::pending()),
                Ok(()),
                "task {task} is within the capacity of {MAX_QUEUED_TASKS}"
            );
        }
        assert_eq!(
            spawner.try_spawn(future::pending()),
            Err(SpawnError::QueueFull),
            "new_executor_and_spawner() has room for exactly MAX_QUEUED_TASKS tasks"
        );
    });
}

#[test]
fn test_executor_spawn_panics_when_queue_is_full() {
    within_timeout(RUN_HANG, || {
        let (executor, spawner) = new_executor_and_spawner_with_capacity(1);
        assert_eq!(spawner.try_spawn(future::pending()), Ok(()));
        assert_spawn_panics(&spawner, "too many tasks queued");
        // After its `spawn` panicked, nothing is promised about an executor (the panic may have
        // poisoned a lock): it is neither used nor dropped.
        std::mem::forget((executor, spawner));
    });
}

#[test]
fn test_executor_run_until_stalled_counts_polls() {
    within_timeout(
        "run_until_stalled must never block waiting for a wake",
        || {
            let (executor, spawner) = new_executor_and_spawner();
            let (manual, handle) = ManualFuture::new();
            spawner.spawn(async {
                CountdownFuture::new(2).await;
            });
            spawner.spawn(manual);
            assert_eq!(
                executor.run_until_stalled(),
                4,
                "3 polls for the countdown task plus 1 for the pending manual future"
            );
            assert_eq!(
                executor.run_until_stalled(),
                0,
                "nothing was woken, so nothing is polled (and the call must not block)"
            );
            handle.complete(());
            assert_eq!(executor.run_until_stalled(), 1);
            assert_eq!(executor.run_until_stalled(), 0);
        },
    );
}

#[test]
fn test_executor_priority_high_runs_before_low() {
    assert_eq!(Priority::default(), Priority::Low);
    let order = within_timeout(RUN_HANG, || {
        let (executor, spawner) = new_executor_and_spawner();
        let log = Log::default();
        spawner.spawn(log.task("low 1"));
        assert_eq!(
            spawner.spawn_with_priority(Priority::Low, log.task("low 2")),
            Ok(())
        );
        assert_eq!(
            spawner.spawn_with_priority(Priority::High, log.task("high 1")),
            Ok(())
        );
        assert_eq!(spawner.try_spawn(log.task("low 3")), Ok(()));
        assert_eq!(
            spawner.spawn_with_priority(Priority::High, log.task("high 2")),
            Ok(())
        );
        assert_eq!(executor.run_until_stalled(), 5);
        log.entries()
    });
    assert_eq!(
        order,
        ["high 1", "high 2", "low 1", "low 2", "low 3"],
        "ready High tasks run before ready Low tasks; within a priority, in the order they \
         became ready (spawn and try_spawn use Priority::Low)"
    );
}

#[test]
fn test_executor_priority_woken_high_task_overtakes_ready_low_tasks() {
    let order = within_timeout(RUN_HANG, || {
        let (executor, spawner) = new_executor_and_spawner();
        let log = Log::default();
        let (manual, handle) = ManualFuture::new();
        let high_log = log.clone();
        let high = async move {
            high_log.push("high waits");
            manual.await;
            high_log.push("high resumes");
        };
        assert_eq!(spawner.spawn_with_priority(Priority::High, high), Ok(()));
        let low_log = log.clone();
        spawner.spawn(async move {
            low_log.push("low 1 wakes high");
            handle.complete(());
        });
        spawner.spawn(log.task("low 2"));
        executor.run_until_stalled();
        log.entries()
    });
    assert_eq!(
        order,
        ["high waits", "low 1 wakes high", "high resumes", "low 2"],
        "a High task woken while Low tasks are ready must be polled before them"
    );
}

#[test]
fn test_executor_shutdown_makes_spawns_fail() {
    let dropped = within_timeout(
        "run() must return at once after shutdown, even with spawners and pending tasks left",
        || {
            let (executor, spawner) = new_executor_and_spawner();
            let (guard, dropped) = DropFlag::new();
            let (manual, handle) = ManualFuture::new();
            spawner.spawn(async move {
                let _guard = guard;
                manual.await;
            });
            assert_eq!(executor.run_until_stalled(), 1);

            let other = spawner.clone();
            thread::spawn(move || other.shutdown())
                .join()
                .expect("shutdown panicked");
            assert_eq!(spawner.try_spawn(async {}), Err(SpawnError::Shutdown));
            assert_eq!(
                spawner.spawn_with_priority(Priority::High, async {}),
                Err(SpawnError::Shutdown)
            );

            executor.run();
            // Waking a task of a shut-down executor must do nothing, not panic.
            handle.complete(());
            // Last: after its `spawn` panicked, nothing is promised about an executor (the panic
            // may have poisoned a lock), so it is neither used nor dropped afterwards.
            assert_spawn_panics(&spawner, "shut down");
            std::mem::forget((executor, spawner));
            dropped
        },
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "after shutdown, every unfinished task's future must be dropped by the end of run()"
    );
}

#[test]
fn test_executor_shutdown_inside_a_task_stops_run() {
    let (log, dropped) = within_timeout(
        "run() must return as soon as the poll that called shutdown returns",
        || {
            let (executor, spawner) = new_executor_and_spawner();
            let log = Log::default();
            let (guard, dropped) = DropFlag::new();
            let stopper = spawner.clone();
            let stopper_log = log.clone();
            spawner.spawn(async move {
                stopper_log.push("stopper");
                stopper.shutdown();
            });
            let late_log = log.clone();
            spawner.spawn(async move {
                let _guard = guard;
                late_log.push("polled after shutdown");
            });
            executor.run();
            (log.entries(), dropped)
        },
    );
    assert_eq!(log, ["stopper"], "after shutdown, run polls nothing else");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the unfinished task's future must be dropped before run returns"
    );
}

#[test]
fn test_executor_metrics_count_spawns_polls_and_time() {
    within_timeout(RUN_HANG, || {
        let (executor, spawner) = new_executor_and_spawner();
        assert_eq!(executor.metrics(), Metrics::default());
        spawner.spawn(async {});
        spawner.spawn(async {
            CountdownFuture::new(2).await;
        });
        spawner.spawn(async {
            // Blocks inside poll on purpose, so that this poll takes measurable time.
            thread::sleep(Duration::from_millis(20));
        });
        let (manual, handle) = ManualFuture::new();
        spawner.spawn(manual);
        assert_eq!(executor.run_until_stalled(), 6);

        let metrics = executor.metrics();
        assert_eq!(metrics.spawned, 4, "spawned: tasks accepted, {metrics:?}");
        assert_eq!(
            metrics.completed, 3,
            "completed: tasks that returned Ready, {metrics:?}"
        );
        assert_eq!(
            metrics.polls, 6,
            "polls: calls of poll on task futures, {metrics:?}"
        );
        assert!(
            metrics.max_poll_time >= Duration::from_millis(20),
            "one poll slept 20 ms, so max_poll_time must be at least that: {metrics:?}"
        );
        assert!(
            metrics.busy_time >= metrics.max_poll_time,
            "busy_time is the sum of all poll times: {metrics:?}"
        );

        handle.complete(());
        assert_eq!(executor.run_until_stalled(), 1);
        let metrics = executor.metrics();
        assert_eq!((metrics.completed, metrics.polls), (4, 7), "{metrics:?}");
    });
}

#[test]
fn test_executor_dedups_wakes_during_poll() {
    let polls = within_timeout(
        "a wake storm inside poll hung the executor (does a wake block on a full queue?)",
        || {
            let (executor, spawner) = new_executor_and_spawner_with_capacity(1);
            spawner.spawn(WakeStorm {
                wakes: 20_000,
                polled: false,
            });
            executor.run_until_stalled()
        },
    );
    assert_eq!(
        polls, 2,
        "a task woken 20 000 times during one poll must be polled exactly once more: a task \
         sits in the ready queue at most once, and wakes take no capacity"
    );
}

#[test]
fn test_executor_dedups_wakes_from_other_threads_and_survives_its_drop() {
    within_timeout(
        "waking from other threads blocked (a wake must never block)",
        || {
            let waker = {
                let (executor, spawner) = new_executor_and_spawner_with_capacity(1);
                let slot = Arc::new(Mutex::new(None));
                spawner.spawn(LendWaker {
                    slot: Arc::clone(&slot),
                    polled: false,
                });
                assert_eq!(executor.run_until_stalled(), 1);
                let waker: Waker = slot
                    .lock()
                    .unwrap()
                    .take()
                    .expect("the task lent its waker");

                let wakers: Vec<_> = (0..4)
                    .map(|_| {
                        let waker = waker.clone();
                        thread::spawn(move || (0..10_000).for_each(|_| waker.wake_by_ref()))
                    })
                    .collect();
                for handle in wakers {
                    handle
                        .join()
                        .expect("wake_by_ref panicked on another thread");
                }
                assert_eq!(
                    executor.run_until_stalled(),
                    1,
                    "40 000 wakes of an idle task must queue it once"
                );
                waker
            };
            // The task has finished and the executor and spawner are gone: waking must
            // quietly do nothing.
            waker.wake_by_ref();
            waker.wake();
        },
    );
}
