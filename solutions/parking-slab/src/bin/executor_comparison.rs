//! Benchmarks the slab executor against `futures::executor::LocalPool` and `ThreadPool` on
//! three workloads (yield-heavy tasks, a wake ping-pong, timers), reporting the median of a
//! few rounds per engine and the ratios to the slab executor.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::executor::{block_on, LocalPool, ThreadPool};
use futures::task::{AtomicWaker, LocalSpawnExt, SpawnExt};
use runtime::executor::new_executor_and_spawner;
use runtime::timer::TimerFuture;

const ROUNDS: usize = 5;

/// Returns `Pending` once (after waking itself), then `Ready`: one trip through the queue.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A shared counter two tasks take turns on: each waits until the count has its parity,
/// bumps it and wakes the other.
struct Baton {
    count: AtomicU32,
    parked: [AtomicWaker; 2],
}

/// One player's side of the ping-pong; completes after `limit` hits in total.
struct Player {
    baton: Arc<Baton>,
    side: usize,
    limit: u32,
}

impl Future for Player {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let baton = &self.baton;
        baton.parked[self.side].register(cx.waker());
        loop {
            let count = baton.count.load(Ordering::SeqCst);
            if count >= self.limit {
                baton.parked[1 - self.side].wake();
                return Poll::Ready(());
            }
            if count as usize % 2 != self.side {
                return Poll::Pending;
            }
            baton.count.store(count + 1, Ordering::SeqCst);
            baton.parked[1 - self.side].wake();
        }
    }
}

#[derive(Clone, Copy)]
enum Workload {
    Yields { tasks: usize, yields: usize },
    PingPong { hits: u32 },
    Timers { count: u64 },
}

impl Workload {
    fn label(self) -> String {
        match self {
            Workload::Yields { tasks, yields } => format!("{tasks} tasks x {yields} yields"),
            Workload::PingPong { hits } => format!("ping-pong {hits} hits"),
            Workload::Timers { count } => format!("{count} timers 1-10 ms"),
        }
    }

    /// The workload's tasks, freshly built for one round.
    fn tasks(self) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
        match self {
            Workload::Yields { tasks, yields } => (0..tasks)
                .map(|_| {
                    Box::pin(async move {
                        for _ in 0..yields {
                            YieldNow(false).await;
                        }
                    }) as Pin<Box<dyn Future<Output = ()> + Send>>
                })
                .collect(),
            Workload::PingPong { hits } => {
                let baton = Arc::new(Baton {
                    count: AtomicU32::new(0),
                    parked: [AtomicWaker::new(), AtomicWaker::new()],
                });
                (0..2)
                    .map(|side| {
                        Box::pin(Player {
                            baton: Arc::clone(&baton),
                            side,
                            limit: hits,
                        }) as Pin<Box<dyn Future<Output = ()> + Send>>
                    })
                    .collect()
            }
            Workload::Timers { count } => (0..count)
                .map(|i| {
                    Box::pin(TimerFuture::new(Duration::from_millis(1 + i % 10)))
                        as Pin<Box<dyn Future<Output = ()> + Send>>
                })
                .collect(),
        }
    }
}

enum Engine {
    Slab,
    Local,
    Pool(ThreadPool),
}

impl Engine {
    fn run(&self, workload: Workload) -> Duration {
        let tasks = workload.tasks();
        let started = Instant::now();
        match self {
            Engine::Slab => {
                let (executor, spawner) = new_executor_and_spawner();
                tasks.into_iter().for_each(|task| spawner.spawn(task));
                drop(spawner);
                executor.run();
            }
            Engine::Local => {
                let mut pool = LocalPool::new();
                let spawner = pool.spawner();
                for task in tasks {
                    spawner.spawn_local(task).expect("LocalPool spawn");
                }
                pool.run();
            }
            Engine::Pool(pool) => {
                let handles = tasks
                    .into_iter()
                    .map(|task| pool.spawn_with_handle(task).expect("ThreadPool spawn"));
                block_on(futures::future::join_all(handles));
            }
        }
        started.elapsed()
    }

    /// The median of a few rounds, to damp noise from other processes.
    fn median(&self, workload: Workload) -> Duration {
        let mut times: Vec<Duration> = (0..ROUNDS).map(|_| self.run(workload)).collect();
        times.sort();
        times[ROUNDS / 2]
    }
}

fn main() {
    let engines = [
        Engine::Slab,
        Engine::Local,
        Engine::Pool(ThreadPool::new().expect("ThreadPool")),
    ];
    let workloads = [
        Workload::Yields {
            tasks: 1_000,
            yields: 100,
        },
        Workload::PingPong { hits: 50_000 },
        Workload::Timers { count: 200 },
    ];
    println!("median of {ROUNDS} rounds; ratio = engine time / slab executor time");
    println!(
        "| {:<24} | {:>10} | {:>10} | {:>10} | {:>7} | {:>7} |",
        "workload", "slab", "LocalPool", "ThreadPool", "Local", "Pool"
    );
    for workload in workloads {
        let [slab, local, pool] = [0, 1, 2].map(|i| engines[i].median(workload));
        let ratio = |other: Duration| other.as_secs_f64() / slab.as_secs_f64();
        println!(
            "| {:<24} | {:>10.2?} | {:>10.2?} | {:>10.2?} | {:>7.2} | {:>7.2} |",
            workload.label(),
            slab,
            local,
            pool,
            ratio(local),
            ratio(pool)
        );
    }
}
