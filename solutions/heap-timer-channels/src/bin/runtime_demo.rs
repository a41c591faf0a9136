//! Runs every piece of the runtime on this crate's executor and narrates what happens.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use runtime::custom_future::{CountdownFuture, ManualFuture, MapFuture, TimerFuture as BusyTimer};
use runtime::executor::{new_executor_and_spawner, Priority, SpawnError};
use runtime::timer::{FirstTimer, TimerFuture};

/// A thread-safe list of what the tasks did, printed once the executor is done.
type Journal = Arc<Mutex<Vec<String>>>;

fn note(journal: &Journal, line: impl Into<String>) {
    journal.lock().expect("journal lock").push(line.into());
}

/// Runs one future on a fresh executor until everything is done, then prints its journal.
fn show(title: &str, make: impl FnOnce(Journal) -> futures::future::BoxFuture<'static, ()>) {
    println!("--- {title}");
    let journal = Journal::default();
    let (executor, spawner) = new_executor_and_spawner();
    spawner.spawn(make(Arc::clone(&journal)));
    drop(spawner);
    let started = Instant::now();
    executor.run();
    for line in journal.lock().expect("journal lock").iter() {
        println!("    {line}");
    }
    let metrics = executor.metrics();
    println!("    ({} polls in {:?})", metrics.polls, started.elapsed());
}

fn main() {
    show("countdown", |journal| {
        Box::pin(async move {
            let message = CountdownFuture::new(3).await;
            note(&journal, format!("CountdownFuture(3) said {message:?}"));
        })
    });

    show("busy-polling timer and thread timer", |journal| {
        Box::pin(async move {
            let started = Instant::now();
            BusyTimer::new(Duration::from_millis(20)).await;
            note(
                &journal,
                format!(
                    "custom_future::TimerFuture(20ms) after {:?}",
                    started.elapsed()
                ),
            );
            let started = Instant::now();
            TimerFuture::new(Duration::from_millis(50)).await;
            note(
                &journal,
                format!("timer::TimerFuture(50ms) after {:?}", started.elapsed()),
            );
        })
    });

    show(
        "manual future completed from another thread, then mapped",
        |journal| {
            let (future, handle) = ManualFuture::new();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                handle.complete(20);
            });
            Box::pin(async move {
                let doubled = MapFuture::new(future, |value: u32| value * 2 + 2).await;
                note(&journal, format!("completed with 20, mapped to {doubled}"));
            })
        },
    );

    show("first of three timers", |journal| {
        Box::pin(async move {
            let durations = [300, 40, 120].map(Duration::from_millis);
            let winner = FirstTimer::new(&durations).await;
            note(
                &journal,
                format!("durations {durations:?}: index {winner} fired first"),
            );
        })
    });

    priority();
    shutdown();
}

/// Low tasks spawned first, High ones later: the High ones still run first.
fn priority() {
    println!("--- priority");
    let (executor, spawner) = new_executor_and_spawner();
    let (order_tx, order_rx) = mpsc::channel();
    for (name, priority) in [
        ("low-1", Priority::Low),
        ("low-2", Priority::Low),
        ("high-1", Priority::High),
        ("high-2", Priority::High),
    ] {
        let order_tx = order_tx.clone();
        spawner
            .spawn_with_priority(priority, async move {
                order_tx.send(name).expect("order receiver");
            })
            .expect("room for four tasks");
    }
    drop(spawner);
    executor.run();
    drop(order_tx);
    println!(
        "    polled in order {:?}",
        order_rx.iter().collect::<Vec<_>>()
    );
}

/// A task shuts the executor down while another waits on a long timer.
fn shutdown() {
    println!("--- shutdown");
    let (executor, spawner) = new_executor_and_spawner();
    let stopper = spawner.clone();
    spawner.spawn(async {
        TimerFuture::new(Duration::from_secs(60)).await;
        unreachable!("shutdown drops this task long before its timer fires");
    });
    spawner.spawn(async move {
        TimerFuture::new(Duration::from_millis(20)).await;
        stopper.shutdown();
    });
    let started = Instant::now();
    executor.run();
    println!("    run returned after {:?}", started.elapsed());
    println!(
        "    spawning now fails: {:?}",
        spawner.try_spawn(async {}).unwrap_err()
    );
    assert_eq!(spawner.try_spawn(async {}), Err(SpawnError::Shutdown));
    println!("    metrics: {:?}", executor.metrics());
}
