//! Times this crate's executor against `futures::executor::LocalPool` and `ThreadPool`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::executor::{LocalPool, ThreadPool};
use futures::task::{LocalSpawnExt, SpawnExt};
use runtime::executor::new_executor_and_spawner;
use runtime::timer::TimerFuture;

const TASKS: usize = 1_000;
const YIELDS: usize = 10;
const ROUNDS: usize = 10_000;
const TIMERS: usize = 100;

/// Pending once (after asking for another poll).
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

async fn yielder() {
    for _ in 0..YIELDS {
        YieldNow(false).await;
    }
}

/// Two tasks that pass a turn back and forth through flags, waking each other.
fn ping_pong() -> [Pin<Box<dyn Future<Output = ()> + Send>>; 2] {
    let turn = Arc::new(AtomicBool::new(false));
    let waiters: Arc<[futures::task::AtomicWaker; 2]> = Arc::new(Default::default());
    let side = |me: bool| {
        let turn = Arc::clone(&turn);
        let waiters = Arc::clone(&waiters);
        let mut done = 0;
        Box::pin(futures::future::poll_fn(move |cx| {
            let (mine, other) = if me { (1, 0) } else { (0, 1) };
            loop {
                if done == ROUNDS {
                    return Poll::Ready(());
                }
                waiters[mine].register(cx.waker());
                if turn.load(Ordering::SeqCst) != me {
                    return Poll::Pending;
                }
                turn.store(!me, Ordering::SeqCst);
                waiters[other].wake();
                done += 1;
            }
        })) as Pin<Box<dyn Future<Output = ()> + Send>>
    };
    [side(false), side(true)]
}

fn timers() -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
    (0..TIMERS)
        .map(|i| {
            Box::pin(TimerFuture::new(Duration::from_millis((i % 10) as u64)))
                as Pin<Box<dyn Future<Output = ()> + Send>>
        })
        .collect()
}

type Workload = fn() -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>>;

fn workloads() -> [(&'static str, Workload); 3] {
    [
        ("yield", || {
            (0..TASKS)
                .map(|_| Box::pin(yielder()) as Pin<Box<dyn Future<Output = ()> + Send>>)
                .collect()
        }),
        ("ping-pong", || ping_pong().into_iter().collect()),
        ("timers", timers),
    ]
}

fn on_ours(futures: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>) -> Duration {
    let start = Instant::now();
    let (executor, spawner) = new_executor_and_spawner();
    for future in futures {
        spawner.spawn(future);
    }
    drop(spawner);
    executor.run();
    start.elapsed()
}

fn on_local_pool(futures: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>) -> Duration {
    let start = Instant::now();
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    for future in futures {
        spawner.spawn_local(future).expect("spawn");
    }
    pool.run();
    start.elapsed()
}

fn on_thread_pool(futures: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>) -> Duration {
    let start = Instant::now();
    let pool = ThreadPool::new().expect("thread pool");
    let (done, finished) = mpsc::channel();
    let count = futures.len();
    for future in futures {
        let done = done.clone();
        pool.spawn(async move {
            future.await;
            let _ = done.send(());
        })
        .expect("spawn");
    }
    for _ in 0..count {
        finished.recv().expect("task");
    }
    start.elapsed()
}

fn main() {
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "workload", "ours", "LocalPool", "ThreadPool", "ours/LP", "ours/TP"
    );
    for (name, make) in workloads() {
        let ours = on_ours(make());
        let local = on_local_pool(make());
        let threads = on_thread_pool(make());
        println!(
            "{:<10} {:>12.3?} {:>12.3?} {:>12.3?} {:>9.2} {:>9.2}",
            name,
            ours,
            local,
            threads,
            ours.as_secs_f64() / local.as_secs_f64(),
            ours.as_secs_f64() / threads.as_secs_f64()
        );
    }
}
