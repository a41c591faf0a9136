//! Times this crate's executor against `futures::executor::LocalPool` and `ThreadPool` on the
//! same workloads (yielding tasks, a wake ping-pong, timers), best of three rounds each.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::executor::{block_on, LocalPool, ThreadPool};
use futures::future::{join_all, poll_fn};
use futures::task::{AtomicWaker, LocalSpawnExt, SpawnExt};
use runtime::executor::new_executor_and_spawner;
use runtime::timer::TimerFuture;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Pending once (after waking itself), then ready.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx: &mut Context<'_>| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Two tasks that take turns: each bumps the counter when it is its turn and wakes the other.
fn ping_pong(hits: usize) -> Vec<Job> {
    let turn = Arc::new(AtomicUsize::new(0));
    let wakers = Arc::new([AtomicWaker::new(), AtomicWaker::new()]);
    (0..2)
        .map(|me| {
            let turn = Arc::clone(&turn);
            let wakers = Arc::clone(&wakers);
            Box::pin(poll_fn(move |cx: &mut Context<'_>| {
                wakers[me].register(cx.waker());
                loop {
                    let n = turn.load(Ordering::SeqCst);
                    if n >= hits {
                        wakers[1 - me].wake();
                        return Poll::Ready(());
                    }
                    if n % 2 != me {
                        return Poll::Pending;
                    }
                    turn.store(n + 1, Ordering::SeqCst);
                    wakers[1 - me].wake();
                }
            })) as Job
        })
        .collect()
}

fn workload(name: &str) -> Vec<Job> {
    match name {
        "1000 tasks x 50 yields" => (0..1000)
            .map(|_| {
                Box::pin(async {
                    for _ in 0..50 {
                        yield_now().await;
                    }
                }) as Job
            })
            .collect(),
        "ping-pong 20000 hits" => ping_pong(20_000),
        "200 timers 1-10 ms" => (0..200u64)
            .map(|i| Box::pin(TimerFuture::new(Duration::from_millis(1 + i % 10))) as Job)
            .collect(),
        _ => unreachable!(),
    }
}

fn time_ours(jobs: Vec<Job>) -> Duration {
    let started = Instant::now();
    let (executor, spawner) = new_executor_and_spawner();
    jobs.into_iter().for_each(|job| spawner.spawn(job));
    drop(spawner);
    executor.run();
    started.elapsed()
}

fn time_local_pool(jobs: Vec<Job>) -> Duration {
    let started = Instant::now();
    let mut pool = LocalPool::new();
    for job in jobs {
        pool.spawner().spawn_local(job).expect("LocalPool spawn");
    }
    pool.run();
    started.elapsed()
}

fn time_thread_pool(pool: &ThreadPool, jobs: Vec<Job>) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|job| pool.spawn_with_handle(job).expect("ThreadPool spawn"))
        .collect();
    block_on(join_all(handles));
    started.elapsed()
}

fn best_of_three(mut run: impl FnMut() -> Duration) -> Duration {
    (0..3).map(|_| run()).min().expect("three rounds")
}

fn main() {
    let pool = ThreadPool::new().expect("ThreadPool");
    println!("best of 3 rounds; ratio = other / ours");
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>7} {:>7}",
        "workload", "ours", "LocalPool", "ThreadPool", "local", "pool"
    );
    for name in [
        "1000 tasks x 50 yields",
        "ping-pong 20000 hits",
        "200 timers 1-10 ms",
    ] {
        let ours = best_of_three(|| time_ours(workload(name)));
        let local = best_of_three(|| time_local_pool(workload(name)));
        let threads = best_of_three(|| time_thread_pool(&pool, workload(name)));
        let ratio = |other: Duration| other.as_secs_f64() / ours.as_secs_f64().max(1e-9);
        println!(
            "{:<24} {:>10.2?} {:>10.2?} {:>10.2?} {:>7.2} {:>7.2}",
            name,
            ours,
            local,
            threads,
            ratio(local),
            ratio(threads)
        );
    }
}
