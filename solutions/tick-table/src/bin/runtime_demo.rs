//! Runs every piece of the runtime on its own executor and prints what happens.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use runtime::custom_future::{self, CountdownFuture, ManualFuture, MapFuture};
use runtime::executor::{new_executor_and_spawner, Priority, SpawnError};
use runtime::timer::{FirstTimer, TimerFuture};

fn main() {
    demo_futures();
    demo_priority();
    demo_shutdown();
    println!("\nall demos finished");
}

/// The time since `start`, as a log line prefix.
fn since(start: Instant) -> String {
    format!("[{:7.1} ms]", start.elapsed().as_secs_f64() * 1000.0)
}

/// Every future of the crate, side by side on one executor, followed by its metrics.
fn demo_futures() {
    println!("== futures ==");
    let (executor, spawner) = new_executor_and_spawner();
    let start = Instant::now();

    spawner.spawn(async move {
        let message = CountdownFuture::new(3).await;
        println!("{} countdown: {message}", since(start));
    });
    spawner.spawn(async move {
        custom_future::TimerFuture::new(Duration::from_millis(20)).await;
        println!("{} polling timer (20 ms) is done", since(start));
    });
    spawner.spawn(async move {
        TimerFuture::new(Duration::from_millis(100)).await;
        println!("{} thread timer (100 ms) fired", since(start));
    });

    let (manual, handle) = ManualFuture::new();
    let completer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        handle.complete(42);
    });
    spawner.spawn(async move {
        let value = manual.await;
        println!(
            "{} manual future completed by another thread with {value}",
            since(start)
        );
    });

    spawner.spawn(async move {
        let length = MapFuture::new(CountdownFuture::new(1), |message: String| message.len()).await;
        println!(
            "{} map: the countdown message has {length} characters",
            since(start)
        );
    });
    spawner.spawn(async move {
        let durations = [300, 30, 150].map(Duration::from_millis);
        let winner = FirstTimer::new(&durations).await;
        println!(
            "{} first timer: index {winner} ({:?}) won the race of {durations:?}",
            since(start),
            durations[winner]
        );
    });

    // With the spawner gone, `run` returns once every task has finished.
    drop(spawner);
    executor.run();
    completer.join().expect("the completing thread panicked");

    // The polling timer asked to be polled again on every poll: that is where most polls went.
    let metrics = executor.metrics();
    println!(
        "metrics: {} spawned, {} completed, {} polls, busy for {:?}, longest poll {:?}",
        metrics.spawned, metrics.completed, metrics.polls, metrics.busy_time, metrics.max_poll_time
    );
}

/// Ready `High` tasks are polled before ready `Low` ones, each priority in spawn order.
fn demo_priority() {
    println!("\n== priority ==");
    let (executor, spawner) = new_executor_and_spawner();
    let order = Arc::new(Mutex::new(Vec::new()));
    let tasks = [
        ("low 1", Priority::Low),
        ("high 1", Priority::High),
        ("low 2", Priority::Low),
        ("high 2", Priority::High),
    ];
    for (name, priority) in tasks {
        let order = Arc::clone(&order);
        spawner
            .spawn_with_priority(priority, async move {
                order.lock().expect("order lock").push(name);
            })
            .expect("the executor has room");
    }
    let polls = executor.run_until_stalled();
    println!(
        "spawned low 1, high 1, low 2, high 2; {polls} polls ran them in the order {:?}",
        order.lock().expect("order lock")
    );
}

/// Shutdown stops the run and drops the futures of the unfinished tasks.
fn demo_shutdown() {
    println!("\n== shutdown ==");
    let (executor, spawner) = new_executor_and_spawner();

    /// Reports when the future owning it is dropped.
    struct Announce;
    impl Drop for Announce {
        fn drop(&mut self) {
            println!("a pending task's future was dropped at shutdown");
        }
    }
    let (never, _handle) = ManualFuture::<()>::new();
    spawner.spawn(async move {
        let _announce = Announce;
        never.await;
    });

    let stopper = spawner.clone();
    spawner.spawn(async move {
        println!("a task calls shutdown()");
        stopper.shutdown();
    });
    executor.run();
    println!("run() returned although a spawner and a pending task remained");
    match spawner.try_spawn(async {}) {
        Err(SpawnError::Shutdown) => println!("spawning now fails: {}", SpawnError::Shutdown),
        other => panic!("spawning after shutdown gave {other:?}"),
    }
}
