//! Times the same workloads on this crate's executor and on `futures`' `LocalPool` and
//! `ThreadPool`, and prints a table of times and ratios.
//!
//! Usage: `executor_comparison [TASKS [YIELDS [ROUNDS [TIMERS]]]]`.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::executor::{block_on, LocalPool, ThreadPool};
use futures::future::join_all;
use futures::task::SpawnExt;
use futures::StreamExt;
use runtime::custom_future::CountdownFuture;
use runtime::executor::new_executor_and_spawner_with_capacity;
use runtime::timer::TimerFuture;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The workload sizes, from the command line.
struct Sizes {
    /// Tasks in the yield workload.
    tasks: usize,
    /// Yields per task.
    yields: u32,
    /// Round trips in the ping-pong workload.
    rounds: usize,
    /// Timers in the timer workload.
    timers: usize,
}

impl Sizes {
    const USAGE: &'static str = "usage: executor_comparison [TASKS [YIELDS [ROUNDS [TIMERS]]]]";

    fn from_args() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.len() > 4 {
            return Err(Self::USAGE.to_string());
        }
        Ok(Self {
            tasks: Self::arg(&args, 0, 5_000)?,
            yields: Self::arg(&args, 1, 50)?,
            rounds: Self::arg(&args, 2, 50_000)?,
            timers: Self::arg(&args, 3, 500)?,
        })
    }

    /// The number at `index`, or `default` when there are fewer arguments.
    fn arg<T: FromStr>(args: &[String], index: usize, default: T) -> Result<T, String> {
        args.get(index).map_or(Ok(default), |arg| {
            arg.parse()
                .map_err(|_| format!("not a valid number: {arg}\n{}", Self::USAGE))
        })
    }
}

/// `tasks` tasks that each yield `yields` times (a self-wake and `Pending` per yield).
fn yielding_tasks(tasks: usize, yields: u32) -> Vec<Job> {
    (0..tasks)
        .map(|_| -> Job {
            Box::pin(async move {
                CountdownFuture::new(yields).await;
            })
        })
        .collect()
}

/// Two tasks passing a number back and forth `rounds` times: every step wakes the other task.
fn ping_pong(rounds: usize) -> Vec<Job> {
    let (to_pong, mut pong_inbox) = mpsc::unbounded();
    let (to_ping, mut ping_inbox) = mpsc::unbounded();
    let ping = async move {
        for round in 0..rounds {
            to_pong.unbounded_send(round).expect("pong outlives ping");
            let answer = ping_inbox.next().await.expect("pong answers");
            assert_eq!(answer, round);
        }
    };
    let pong = async move {
        while let Some(round) = pong_inbox.next().await {
            to_ping
                .unbounded_send(round)
                .expect("ping awaits the answer");
        }
    };
    vec![Box::pin(ping), Box::pin(pong)]
}

/// `timers` tasks that each wait for a thread-backed timer of 1 to 10 ms.
fn timers(timers: usize) -> Vec<Job> {
    (0..timers)
        .map(|i| -> Job {
            let millis = 1 + (i % 10) as u64;
            Box::pin(TimerFuture::new(Duration::from_millis(millis)))
        })
        .collect()
}

fn time_ours(jobs: Vec<Job>) -> Duration {
    let (executor, spawner) = new_executor_and_spawner_with_capacity(jobs.len());
    let start = Instant::now();
    for job in jobs {
        spawner.spawn(job);
    }
    drop(spawner);
    executor.run();
    start.elapsed()
}

fn time_local_pool(jobs: Vec<Job>) -> Duration {
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    let start = Instant::now();
    for job in jobs {
        spawner.spawn(job).expect("LocalPool accepts tasks");
    }
    pool.run();
    start.elapsed()
}

fn time_thread_pool(pool: &ThreadPool, jobs: Vec<Job>) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            pool.spawn_with_handle(job)
                .expect("ThreadPool accepts tasks")
        })
        .collect();
    block_on(join_all(handles));
    start.elapsed()
}

fn ratio(ours: Duration, theirs: Duration) -> String {
    format!(
        "{:.2}x",
        ours.as_secs_f64() / theirs.as_secs_f64().max(1e-9)
    )
}

fn main() -> ExitCode {
    let sizes = match Sizes::from_args() {
        Ok(sizes) => sizes,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let workloads: [(String, &dyn Fn() -> Vec<Job>); 3] = [
        (
            format!("{} tasks x {} yields", sizes.tasks, sizes.yields),
            &|| yielding_tasks(sizes.tasks, sizes.yields),
        ),
        (format!("ping-pong x {} rounds", sizes.rounds), &|| {
            ping_pong(sizes.rounds)
        }),
        (format!("{} timers", sizes.timers), &|| timers(sizes.timers)),
    ];
    let thread_pool = ThreadPool::new().expect("cannot start a ThreadPool");

    println!(
        "{:<26} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "workload", "ours", "LocalPool", "ThreadPool", "/LocalPool", "/ThreadPool"
    );
    for (name, make_jobs) in workloads {
        let ours = time_ours(make_jobs());
        let local = time_local_pool(make_jobs());
        let threaded = time_thread_pool(&thread_pool, make_jobs());
        println!(
            "{name:<26} {:>12} {:>12} {:>12} {:>12} {:>12}",
            format!("{ours:.2?}"),
            format!("{local:.2?}"),
            format!("{threaded:.2?}"),
            ratio(ours, local),
            ratio(ours, threaded)
        );
    }
    println!("(a ratio above 1 means this crate's executor took longer)");
    ExitCode::SUCCESS
}
