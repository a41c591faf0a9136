//! Compile-time conformance with the exercise spec: every public item with its exact signature and
//! the traits the spec requires. A submission that differs fails to build here, one item per line, and
//! the grader turns the compiler's error into an "API mismatch" message naming the spec item.

#![allow(dead_code, clippy::type_complexity)]

use std::error::Error;
use std::fmt::{Debug, Display};
use std::future::{Future, Ready};
use std::hash::Hash;
use std::time::Duration;

use runtime::custom_future::{
    CountdownFuture, ManualFuture, ManualHandle, MapFuture, TimerFuture as PollingTimer,
};
use runtime::executor::{
    new_executor_and_spawner, new_executor_and_spawner_with_capacity, Executor, Metrics, Priority,
    SpawnError, Spawner, MAX_QUEUED_TASKS,
};
use runtime::timer::{FirstTimer, TimerFuture};

fn future_of<F: Future<Output = O> + Send + 'static, O>() {}
fn unpin<T: Unpin>() {}
fn send<T: Send>() {}
fn send_sync<T: Send + Sync>() {}
fn value_type<T: Debug + Clone + Copy + PartialEq + Eq>() {}
fn hashable_default<T: Hash + Default>() {}
fn error<T: Error + Display>() {}

type Map = MapFuture<Ready<u8>, fn(u8) -> u16>;

fn signatures() {
    let _: fn(u32) -> CountdownFuture = CountdownFuture::new;
    let _: fn(Duration) -> PollingTimer = PollingTimer::new;
    let _: fn() -> (ManualFuture<u8>, ManualHandle<u8>) = ManualFuture::<u8>::new;
    let _: fn(ManualHandle<u8>, u8) = ManualHandle::<u8>::complete;
    let _: fn(Ready<u8>, fn(u8) -> u16) -> Map = MapFuture::new;
    let _: fn(Duration) -> TimerFuture = TimerFuture::new;
    let _: fn(&[Duration]) -> FirstTimer = FirstTimer::new;
    let _: usize = MAX_QUEUED_TASKS;
    let _: fn() -> (Executor, Spawner) = new_executor_and_spawner;
    let _: fn(usize) -> (Executor, Spawner) = new_executor_and_spawner_with_capacity;
    let _: fn(&Executor) = Executor::run;
    let _: fn(&Executor) -> usize = Executor::run_until_stalled;
    let _: fn(&Executor) -> Metrics = Executor::metrics;
    let _: fn(&Spawner) = Spawner::shutdown;
}

fn spawning(spawner: &Spawner) {
    let (): () = spawner.spawn(async {});
    let _: Result<(), SpawnError> = spawner.try_spawn(async {});
    let _: Result<(), SpawnError> = spawner.spawn_with_priority(Priority::High, async {});
    let _: Result<(), SpawnError> = spawner.spawn_with_priority(Priority::Low, async {});
}

fn traits() {
    future_of::<CountdownFuture, String>();
    future_of::<PollingTimer, ()>();
    future_of::<ManualFuture<u8>, u8>();
    future_of::<Map, u16>();
    future_of::<TimerFuture, ()>();
    future_of::<FirstTimer, usize>();
    unpin::<ManualFuture<u8>>();
    send::<ManualHandle<u8>>();
    send::<Executor>();
    send_sync::<Spawner>();
    let _: fn(&Spawner) -> Spawner = Spawner::clone;
    value_type::<Priority>();
    hashable_default::<Priority>();
    value_type::<SpawnError>();
    error::<SpawnError>();
    let _: [SpawnError; 2] = [SpawnError::QueueFull, SpawnError::Shutdown];
    value_type::<Metrics>();
    let _: Metrics = Metrics::default();
}

fn metrics(m: Metrics) {
    let _: u64 = m.spawned;
    let _: u64 = m.completed;
    let _: u64 = m.polls;
    let _: Duration = m.busy_time;
    let _: Duration = m.max_poll_time;
}
