//! Times your executor against the `futures` crate's `LocalPool` and `ThreadPool` on the
//! same workloads, and prints a table of times and ratios.
//!
//! `cargo run --release --bin executor_comparison` (debug builds distort the numbers). The
//! parts that use your code are marked "YOUR EXECUTOR"; until they are implemented (and, for
//! the timer row, until exercise 2.2 is), their cells read "panicked".

use futures::channel::mpsc;
use futures::executor::{block_on, LocalPool, ThreadPool};
use futures::future::{join_all, BoxFuture};
use futures::task::{LocalSpawnExt, SpawnExt};
use futures::{FutureExt, StreamExt};
use runtime::executor::new_executor_and_spawner;
use runtime::timer::TimerFuture;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Tasks of the yield workload, and how often each yields.
const YIELD_TASKS: usize = 1_000;
const YIELDS: usize = 100;
/// Round trips of the ping-pong workload.
const ROUND_TRIPS: usize = 10_000;
/// Tasks of the timer workload, each waiting for one timer of `TIMER_DURATION`.
const TIMER_TASKS: usize = 100;
const TIMER_DURATION: Duration = Duration::from_millis(10);

/// The tasks of one run of a workload; every executor gets a fresh set.
type Tasks = Vec<BoxFuture<'static, ()>>;

/// One row of the table: a name and a way to build its tasks.
struct Workload {
    name: String,
    tasks: fn() -> Tasks,
}

fn main() {
    let workloads = [
        Workload {
            name: format!("{YIELD_TASKS} tasks x {YIELDS} yields"),
            tasks: yield_tasks,
        },
        Workload {
            name: format!("ping-pong, {ROUND_TRIPS} round trips"),
            tasks: ping_pong,
        },
        Workload {
            name: format!("{TIMER_TASKS} timers of {TIMER_DURATION:?}"),
            tasks: timers,
        },
    ];
    let thread_pool = ThreadPool::new().expect("cannot start futures' ThreadPool");

    println!(
        "{:<30} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "workload", "yours", "LocalPool", "ThreadPool", "/Local", "/Thread"
    );
    for workload in &workloads {
        let yours = time(|| run_on_your_executor(workload.tasks));
        let local = time(|| run_on_local_pool(workload.tasks));
        let pooled = time(|| run_on_thread_pool(&thread_pool, workload.tasks));
        println!(
            "{:<30} {:>12} {:>12} {:>12} {:>10} {:>10}",
            workload.name,
            show_time(yours),
            show_time(local),
            show_time(pooled),
            show_ratio(yours, local),
            show_ratio(yours, pooled),
        );
    }
}

// ---------------------------------------------------------------------------------------
// YOUR EXECUTOR: spawn every task, let go of the spawner, and run until all are done.
// ---------------------------------------------------------------------------------------
fn run_on_your_executor(tasks: fn() -> Tasks) {
    let executor = {
        let (executor, spawner) = new_executor_and_spawner();
        for task in tasks() {
            spawner.spawn(task);
        }
        executor
    };
    // The spawner is gone now, so `run` returns once every task is done.
    executor.run();
}

/// The same on `futures::executor::LocalPool`, single-threaded like yours.
fn run_on_local_pool(tasks: fn() -> Tasks) {
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    for task in tasks() {
        spawner.spawn_local(task).expect("LocalPool refused a task");
    }
    pool.run();
}

/// The same on `futures::executor::ThreadPool` (one thread per core): waits for every task
/// through its handle, which also passes a task's panic on to this thread.
fn run_on_thread_pool(pool: &ThreadPool, tasks: fn() -> Tasks) {
    let handles: Vec<_> = tasks()
        .into_iter()
        .map(|task| {
            pool.spawn_with_handle(task)
                .expect("ThreadPool refused a task")
        })
        .collect();
    block_on(join_all(handles));
}

/// How long `run` took, or `None` if it panicked (e.g. on a `todo!()`).
fn time(run: impl FnOnce()) -> Option<Duration> {
    let start = Instant::now();
    panic::catch_unwind(AssertUnwindSafe(run))
        .ok()
        .map(|()| start.elapsed())
}

fn show_time(time: Option<Duration>) -> String {
    time.map_or_else(
        || "panicked".to_string(),
        |time| format!("{:.2} ms", time.as_secs_f64() * 1e3),
    )
}

fn show_ratio(yours: Option<Duration>, theirs: Option<Duration>) -> String {
    match (yours, theirs) {
        (Some(yours), Some(theirs)) if !theirs.is_zero() => {
            format!("{:.2}x", yours.as_secs_f64() / theirs.as_secs_f64())
        }
        _ => "-".to_string(),
    }
}

/// Returns `Pending` once (after asking to be polled again), then `Ready`: a task switch.
struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Many tasks that each give way `YIELDS` times: measures the cost of wake + requeue + poll.
fn yield_tasks() -> Tasks {
    (0..YIELD_TASKS)
        .map(|_| {
            async {
                for _ in 0..YIELDS {
                    YieldNow { yielded: false }.await;
                }
            }
            .boxed()
        })
        .collect()
}

/// Two tasks that bounce a counter back and forth: every message wakes the other task.
fn ping_pong() -> Tasks {
    let (ping_sender, mut pings) = mpsc::unbounded::<usize>();
    let (pong_sender, mut pongs) = mpsc::unbounded::<usize>();
    let pinger = async move {
        for round in 0..ROUND_TRIPS {
            ping_sender
                .unbounded_send(round)
                .expect("the ponger stopped early");
            let reply = pongs.next().await.expect("the ponger stopped early");
            assert_eq!(reply, round);
        }
        // Dropping ping_sender here ends the ponger's loop.
    };
    let ponger = async move {
        while let Some(round) = pings.next().await {
            pong_sender
                .unbounded_send(round)
                .expect("the pinger stopped early");
        }
    };
    vec![pinger.boxed(), ponger.boxed()]
}

/// Many tasks that each wait for one of your `timer::TimerFuture`s: measures how the executor
/// waits (it should block, not spin) and how many threads the timers cost.
fn timers() -> Tasks {
    (0..TIMER_TASKS)
        .map(|_| TimerFuture::new(TIMER_DURATION).boxed())
        .collect()
}
