//! A guided tour of the runtime: every future type, priorities, shutdown and metrics, all
//! driven by the slab executor, with timestamps relative to the start of the tour.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use runtime::custom_future::{CountdownFuture, ManualFuture, MapFuture, TimerFuture as SpinTimer};
use runtime::executor::{new_executor_and_spawner, Executor, Priority, Spawner};
use runtime::timer::{FirstTimer, TimerFuture};

/// Prints lines prefixed with the time since the tour started.
#[derive(Clone)]
struct Clock(Instant);

impl Clock {
    fn say(&self, what: &str) {
        println!("[{:>7.1?}] {what}", self.0.elapsed());
    }
}

/// The basic futures run side by side as tasks of one executor.
fn futures_tour(clock: &Clock, spawner: &Spawner) {
    let c = clock.clone();
    spawner.spawn(async move {
        let text = CountdownFuture::new(5).await;
        c.say(&format!("countdown from 5: {text}"));
    });

    let c = clock.clone();
    spawner.spawn(async move {
        SpinTimer::new(Duration::from_millis(15)).await;
        c.say("busy-polling timer (15 ms) is done");
    });

    let c = clock.clone();
    spawner.spawn(async move {
        TimerFuture::new(Duration::from_millis(60)).await;
        c.say("thread timer (60 ms) fired");
    });

    let (answer, handle) = ManualFuture::new();
    let c = clock.clone();
    spawner.spawn(async move {
        let shout = MapFuture::new(answer, |word: &str| word.to_uppercase()).await;
        c.say(&format!(
            "manual future completed elsewhere, mapped to {shout:?}"
        ));
    });
    let c = clock.clone();
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        c.say("helper thread completes the manual future with \"hello\"");
        handle.complete("hello");
    });

    let c = clock.clone();
    spawner.spawn(async move {
        let durations = [90, 25, 45].map(Duration::from_millis);
        let first = FirstTimer::new(&durations).await;
        c.say(&format!("FirstTimer over {durations:?} -> index {first}"));
    });
}

/// High tasks overtake Low ones that became ready earlier.
fn priority_tour(clock: &Clock) {
    let (executor, spawner) = new_executor_and_spawner();
    let (log, order) = mpsc::channel();
    for (label, priority) in [
        ("low A", Priority::Low),
        ("high B", Priority::High),
        ("low C", Priority::Low),
        ("high D", Priority::High),
    ] {
        let log = log.clone();
        spawner
            .spawn_with_priority(priority, async move { log.send(label).unwrap() })
            .unwrap();
    }
    let polls = executor.run_until_stalled();
    drop(log);
    let order: Vec<_> = order.iter().collect();
    clock.say(&format!("priorities: {polls} polls in order {order:?}"));
}

/// A shutdown drops the tasks that are still waiting.
fn shutdown_tour(clock: &Clock) {
    let (executor, spawner) = new_executor_and_spawner();
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Tally(Arc<AtomicUsize>);
    impl Drop for Tally {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    for _ in 0..3 {
        let tally = Tally(Arc::clone(&dropped));
        spawner.spawn(async move {
            let _tally = tally;
            TimerFuture::new(Duration::from_secs(3600)).await;
        });
    }
    let stopper = spawner.clone();
    spawner.spawn(async move {
        TimerFuture::new(Duration::from_millis(10)).await;
        stopper.shutdown();
    });
    executor.run();
    clock.say(&format!(
        "shutdown: run returned, {} waiting tasks dropped, new spawn -> {:?}",
        dropped.load(Ordering::SeqCst),
        spawner.try_spawn(async {})
    ));
}

fn report(clock: &Clock, executor: &Executor) {
    let m = executor.metrics();
    clock.say(&format!(
        "metrics: {} spawned, {} completed, {} polls, busy {:?}, longest poll {:?}",
        m.spawned, m.completed, m.polls, m.busy_time, m.max_poll_time
    ));
}

fn main() {
    let clock = Clock(Instant::now());
    let (executor, spawner) = new_executor_and_spawner();
    futures_tour(&clock, &spawner);
    drop(spawner);
    executor.run();
    clock.say("all basic futures finished; run returned");
    report(&clock, &executor);

    priority_tour(&clock);
    shutdown_tour(&clock);
}
