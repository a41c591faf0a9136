//! Times the same workloads on this crate's executor and on `futures`' `LocalPool` and
//! `ThreadPool`, and prints a table of times and ratios.

use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::executor::{block_on, LocalPool, ThreadPool};
use futures::future::{join_all, BoxFuture};
use futures::task::SpawnExt;
use futures::{SinkExt, StreamExt};
use runtime::custom_future::CountdownFuture;
use runtime::executor::new_executor_and_spawner;
use runtime::timer::TimerFuture;

/// Builds a fresh batch of tasks for one run.
type Workload = fn() -> Vec<BoxFuture<'static, ()>>;

/// Many tasks that each yield (wake themselves and return `Pending`) a number of times.
fn yielding_tasks() -> Vec<BoxFuture<'static, ()>> {
    (0..2_000)
        .map(|_| -> BoxFuture<'static, ()> {
            Box::pin(async {
                CountdownFuture::new(50).await;
            })
        })
        .collect()
}

/// Two tasks that hand a counter back and forth through channels, waking each other.
fn ping_pong() -> Vec<BoxFuture<'static, ()>> {
    const ROUNDS: u32 = 20_000;
    let (mut to_pong, mut pong_inbox) = mpsc::channel::<u32>(1);
    let (mut to_ping, mut ping_inbox) = mpsc::channel::<u32>(1);
    let ping = async move {
        to_pong.send(0).await.expect("pong alive");
        while let Some(count) = ping_inbox.next().await {
            if count >= ROUNDS {
                break;
            }
            to_pong.send(count + 1).await.expect("pong alive");
        }
    };
    let pong = async move {
        while let Some(count) = pong_inbox.next().await {
            if to_ping.send(count + 1).await.is_err() {
                break;
            }
        }
    };
    vec![Box::pin(ping), Box::pin(pong)]
}

/// Many tasks that each wait for a short thread-backed timer.
fn timers() -> Vec<BoxFuture<'static, ()>> {
    (0..500u64)
        .map(|i| -> BoxFuture<'static, ()> {
            Box::pin(TimerFuture::new(Duration::from_millis(5 + i % 20)))
        })
        .collect()
}

fn on_ours(tasks: Vec<BoxFuture<'static, ()>>) {
    let (executor, spawner) = new_executor_and_spawner();
    for task in tasks {
        spawner.spawn(task);
    }
    drop(spawner);
    executor.run();
}

fn on_local_pool(tasks: Vec<BoxFuture<'static, ()>>) {
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    for task in tasks {
        spawner.spawn(task).expect("LocalPool accepts tasks");
    }
    pool.run();
}

fn on_thread_pool(pool: &ThreadPool, tasks: Vec<BoxFuture<'static, ()>>) {
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|task| {
            pool.spawn_with_handle(task)
                .expect("ThreadPool accepts tasks")
        })
        .collect();
    block_on(join_all(handles));
}

fn time(run: impl FnOnce()) -> Duration {
    let started = Instant::now();
    run();
    started.elapsed()
}

fn main() {
    let pool = ThreadPool::new().expect("thread pool");
    let workloads: [(&str, Workload); 3] = [
        ("2000 tasks x 50 yields", yielding_tasks),
        ("ping-pong, 20000 rounds", ping_pong),
        ("500 timers, 5-24 ms", timers),
    ];
    println!(
        "{:<26} {:>12} {:>12} {:>12} {:>11} {:>11}",
        "workload", "ours", "LocalPool", "ThreadPool", "Local/ours", "Pool/ours"
    );
    for (name, workload) in workloads {
        let ours = time(|| on_ours(workload()));
        let local = time(|| on_local_pool(workload()));
        let threads = time(|| on_thread_pool(&pool, workload()));
        println!(
            "{name:<26} {:>12} {:>12} {:>12} {:>11.2} {:>11.2}",
            format!("{ours:.2?}"),
            format!("{local:.2?}"),
            format!("{threads:.2?}"),
            local.as_secs_f64() / ours.as_secs_f64(),
            threads.as_secs_f64() / ours.as_secs_f64(),
        );
    }
}
