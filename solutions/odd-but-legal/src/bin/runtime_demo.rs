//! Runs every piece of the runtime on its own executor and prints what happens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use runtime::custom_future::{self, CountdownFuture, ManualFuture, MapFuture};
use runtime::executor::{new_executor_and_spawner, Priority};
use runtime::timer::{FirstTimer, TimerFuture};

fn stamp(start: Instant) -> String {
    format!("{:>6} ms", start.elapsed().as_millis())
}

fn main() {
    let start = Instant::now();
    let (executor, spawner) = new_executor_and_spawner();

    spawner.spawn(async move {
        let message = CountdownFuture::new(3).await;
        println!("[{}] countdown(3): {message}", stamp(start));
    });
    spawner.spawn(async move {
        custom_future::TimerFuture::new(Duration::from_millis(15)).await;
        println!("[{}] polling timer (15 ms) done", stamp(start));
    });
    spawner.spawn(async move {
        TimerFuture::new(Duration::from_millis(60)).await;
        println!("[{}] thread timer (60 ms) fired", stamp(start));
    });
    let (manual, handle) = ManualFuture::new();
    let completer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        handle.complete("hello from another thread");
    });
    spawner.spawn(async move {
        let text = manual.await;
        println!("[{}] manual future: {text}", stamp(start));
    });
    spawner.spawn(async move {
        let doubled = MapFuture::new(async { 21 }, |n: u32| n * 2).await;
        println!("[{}] map: 21 * 2 = {doubled}", stamp(start));
    });
    spawner.spawn(async move {
        let winner = FirstTimer::new(&[
            Duration::from_millis(80),
            Duration::from_millis(10),
            Duration::from_millis(40),
        ])
        .await;
        println!("[{}] first timer: index {winner} won", stamp(start));
    });
    drop(spawner);
    executor.run();
    completer.join().expect("completer thread");
    let m = executor.metrics();
    println!(
        "metrics: spawned {} completed {} polls {} busy {:?} max poll {:?}",
        m.spawned, m.completed, m.polls, m.busy_time, m.max_poll_time
    );

    // Priority: High tasks run before Low ones.
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
            .spawn_with_priority(priority, async move {
                order.lock().unwrap().push(name);
            })
            .expect("spawn");
    }
    drop(spawner);
    executor.run();
    println!("priority order: {:?}", order.lock().unwrap());

    // Shutdown from another thread while a task waits for a long timer.
    let (executor, spawner) = new_executor_and_spawner();
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let flag = Flag(Arc::clone(&dropped));
    spawner.spawn(async move {
        let _flag = flag;
        TimerFuture::new(Duration::from_secs(60)).await;
    });
    let stopper = spawner.clone();
    let stop = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        stopper.shutdown();
    });
    executor.run();
    stop.join().expect("stopper thread");
    println!(
        "shutdown: run returned, {} future(s) dropped, spawning now gives {:?}",
        dropped.load(Ordering::SeqCst),
        spawner.try_spawn(async {})
    );
    println!("all demos finished in {} ms", start.elapsed().as_millis());
}
