//! Runs every piece of the runtime on its own executor and says what happens.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use runtime::custom_future::{CountdownFuture, ManualFuture, MapFuture, TimerFuture as PollTimer};
use runtime::executor::{new_executor_and_spawner, Priority};
use runtime::timer::{FirstTimer, TimerFuture};

fn stamp(start: Instant, line: &str) {
    println!("{:>8.1?}  {line}", start.elapsed());
}

fn main() {
    let start = Instant::now();

    // 1. The basic futures, side by side on one executor.
    let (executor, spawner) = new_executor_and_spawner();
    spawner.spawn(async move {
        let message = CountdownFuture::new(3).await;
        stamp(start, &format!("countdown(3): {message}"));
    });
    spawner.spawn(async move {
        PollTimer::new(Duration::from_millis(20)).await;
        stamp(start, "clock-polling timer (20 ms) done");
    });
    spawner.spawn(async move {
        TimerFuture::new(Duration::from_millis(50)).await;
        stamp(start, "thread timer (50 ms) fired");
    });
    let (manual, handle) = ManualFuture::new();
    spawner.spawn(async move {
        let doubled = MapFuture::new(manual, |n: u32| n * 2).await;
        stamp(
            start,
            &format!("manual future completed with 21, mapped to {doubled}"),
        );
    });
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        handle.complete(21);
    });
    spawner.spawn(async move {
        let durations = [80, 10, 40].map(Duration::from_millis);
        let winner = FirstTimer::new(&durations).await;
        stamp(start, &format!("FirstTimer{durations:?} -> index {winner}"));
    });
    drop(spawner);
    executor.run();
    let m = executor.metrics();
    stamp(
        start,
        &format!(
            "run returned; metrics: spawned {}, completed {}, polls {}, busy {:?}, max poll {:?}",
            m.spawned, m.completed, m.polls, m.busy_time, m.max_poll_time
        ),
    );

    // 2. Priorities: High tasks go first, FIFO within each priority.
    let (executor, spawner) = new_executor_and_spawner();
    let order = Arc::new(Mutex::new(Vec::new()));
    for (name, priority) in [
        ("low-1", Priority::Low),
        ("high-1", Priority::High),
        ("low-2", Priority::Low),
        ("high-2", Priority::High),
    ] {
        let order = Arc::clone(&order);
        spawner
            .spawn_with_priority(priority, async move { order.lock().unwrap().push(name) })
            .expect("room for four tasks");
    }
    let polls = executor.run_until_stalled();
    stamp(
        start,
        &format!("priority: {polls} polls, order {:?}", order.lock().unwrap()),
    );

    // 3. Shutdown from inside a task: the sleeping tasks are dropped, spawning fails.
    let (executor, spawner) = new_executor_and_spawner();
    for _ in 0..3 {
        spawner.spawn(TimerFuture::new(Duration::from_secs(3600)));
    }
    let stopper = spawner.clone();
    spawner.spawn(async move {
        TimerFuture::new(Duration::from_millis(10)).await;
        stopper.shutdown();
    });
    executor.run();
    stamp(
        start,
        &format!(
            "shutdown: run returned; spawning now gives {:?}",
            spawner.try_spawn(async {})
        ),
    );
}
