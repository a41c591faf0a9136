//! Compile-time conformance with the exercise spec: every public item with its exact signature and
//! the traits the spec requires. A submission that differs fails to build here, one item per line, and
//! the grader turns the compiler's error into an "API mismatch" message naming the spec item. Only
//! the one-binary build compiles this module: when it fails, the grader builds each category on its
//! own (without this module) and sinks only the categories whose file names the item's type.
//!
//! Each `// spec:` comment is that message, for the lines below it up to the next blank line or
//! comment: the grader reads them from this file (its one source of the spec's wording). The first
//! item in backticks names the item, so that an error elsewhere in the hidden tests on a line using
//! it gets the same message.

#![allow(dead_code, clippy::type_complexity)]

use std::cell::Cell;
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

/// A value that is neither `Clone` nor `Sync`.
struct Plain;

fn signatures() {
    // spec: `CountdownFuture::new` must be `pub fn new(count: u32) -> Self`
    let _: fn(u32) -> CountdownFuture = CountdownFuture::new;

    // spec: `TimerFuture::new` must be `pub fn new(duration: Duration) -> Self` (in both modules)
    let _: fn(Duration) -> PollingTimer = PollingTimer::new;
    let _: fn(Duration) -> TimerFuture = TimerFuture::new;

    // spec: `ManualFuture::<T>::new` must be `pub fn new() -> (ManualFuture<T>, ManualHandle<T>)`
    let _: fn() -> (ManualFuture<u8>, ManualHandle<u8>) = ManualFuture::<u8>::new;

    // spec: `ManualHandle::complete` must be `pub fn complete(self, value: T)`, and both halves `Send` when `T: Send`
    let _: fn(ManualHandle<u8>, u8) = ManualHandle::<u8>::complete;

    // spec: `MapFuture::new` must be `pub fn new(future: Fut, f: F) -> Self`
    let _: fn(Ready<u8>, fn(u8) -> u16) -> Map = MapFuture::new;

    // spec: `FirstTimer::new` must be `pub fn new(durations: &[Duration]) -> Self`
    let _: fn(&[Duration]) -> FirstTimer = FirstTimer::new;

    // spec: `MAX_QUEUED_TASKS` must be `pub const MAX_QUEUED_TASKS: usize = 10_000`
    let _: usize = MAX_QUEUED_TASKS;

    // spec: `new_executor_and_spawner` must be `pub fn new_executor_and_spawner() -> (Executor, Spawner)`
    let _: fn() -> (Executor, Spawner) = new_executor_and_spawner;

    // spec: `new_executor_and_spawner_with_capacity` must be `pub fn new_executor_and_spawner_with_capacity(capacity: usize) -> (Executor, Spawner)`
    let _: fn(usize) -> (Executor, Spawner) = new_executor_and_spawner_with_capacity;

    // spec: `Executor::run` must be `pub fn run(&self)`
    let _: fn(&Executor) = Executor::run;

    // spec: `Executor::run_until_stalled` must be `pub fn run_until_stalled(&self) -> usize`
    let _: fn(&Executor) -> usize = Executor::run_until_stalled;

    // spec: `Executor::metrics` must be `pub fn metrics(&self) -> Metrics`, with the spec's public fields
    let _: fn(&Executor) -> Metrics = Executor::metrics;

    // spec: `Spawner::shutdown` must be `pub fn shutdown(&self)`
    let _: fn(&Spawner) = Spawner::shutdown;
}

fn spawning(spawner: &Spawner) {
    // spec: `Spawner::spawn` must be `pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static)`
    let (): () = spawner.spawn(async {});

    // spec: `Spawner::try_spawn` must be `pub fn try_spawn(&self, future: impl Future<Output = ()> + Send + 'static) -> Result<(), SpawnError>`
    let _: Result<(), SpawnError> = spawner.try_spawn(async {});

    // spec: `Spawner::spawn_with_priority` must be `pub fn spawn_with_priority(&self, priority: Priority, future: impl Future<Output = ()> + Send + 'static) -> Result<(), SpawnError>`
    let _: Result<(), SpawnError> = spawner.spawn_with_priority(Priority::High, async {});
    let _: Result<(), SpawnError> = spawner.spawn_with_priority(Priority::Low, async {});
}

fn traits() {
    // spec: `CountdownFuture` must be a `Future<Output = String>` and `Send + 'static`
    future_of::<CountdownFuture, String>();

    // spec: `TimerFuture` (both) must be `Future<Output = ()>` and `Send + 'static`
    future_of::<PollingTimer, ()>();
    future_of::<TimerFuture, ()>();

    // spec: `ManualFuture<T>` must be a `Future<Output = T>`, `Unpin`, and `Send` when `T: Send`
    future_of::<ManualFuture<u8>, u8>();
    unpin::<ManualFuture<u8>>();

    // spec: `MapFuture<Fut, F>` must be a `Future<Output = T>` for `F: FnOnce(Fut::Output) -> T`, accepting inner futures that are not `Unpin`
    future_of::<Map, u16>();

    // spec: `ManualFuture<T>` must be a `Future<Output = T>` for every `T`, not only `T: Clone`
    future_of::<ManualFuture<Plain>, Plain>();

    // spec: `ManualFuture<T>` and `ManualHandle<T>` must be `Send` when `T: Send`, also when `T` is not `Sync`
    send::<ManualFuture<Cell<u8>>>();
    send::<ManualHandle<Cell<u8>>>();

    // spec: `FirstTimer` must be a `Future<Output = usize>` and `Send + 'static`
    future_of::<FirstTimer, usize>();

    // spec: `ManualHandle<T>` must be `Send` when `T: Send`
    send::<ManualHandle<u8>>();

    // spec: `Executor` must be `Send` with `run`, `run_until_stalled` and `metrics`
    send::<Executor>();

    // spec: `Spawner` must be `Clone + Send + Sync` with `spawn`, `try_spawn`, `spawn_with_priority` and `shutdown`
    send_sync::<Spawner>();
    let _: fn(&Spawner) -> Spawner = Spawner::clone;

    // spec: `Priority` must be `enum Priority { High, Low }` with `Debug, Clone, Copy, PartialEq, Eq, Hash, Default` (default `Low`)
    value_type::<Priority>();
    hashable_default::<Priority>();

    // spec: `SpawnError` must be `enum SpawnError { QueueFull, Shutdown }` with `Debug, Clone, Copy, PartialEq, Eq`, `Display` and `std::error::Error`
    value_type::<SpawnError>();
    error::<SpawnError>();
    let _: [SpawnError; 2] = [SpawnError::QueueFull, SpawnError::Shutdown];

    // spec: `Metrics` must be the spec's struct with public fields `spawned`, `completed`, `polls`, `busy_time`, `max_poll_time` and derives `Debug, Clone, Copy, Default, PartialEq, Eq`
    value_type::<Metrics>();
    let _: Metrics = Metrics::default();
}

fn metrics(m: Metrics) {
    // One item per field, so that a mismatch names the field.
    // spec: `Metrics::spawned` must be `pub spawned: u64`
    let _: u64 = m.spawned;

    // spec: `Metrics::completed` must be `pub completed: u64`
    let _: u64 = m.completed;

    // spec: `Metrics::polls` must be `pub polls: u64`
    let _: u64 = m.polls;

    // spec: `Metrics::busy_time` must be `pub busy_time: Duration`
    let _: Duration = m.busy_time;

    // spec: `Metrics::max_poll_time` must be `pub max_poll_time: Duration`
    let _: Duration = m.max_poll_time;
}

// spec: `MapFuture<Fut, F>` must be a `Future<Output = T>` for every `F: FnOnce(Fut::Output) -> T`, also one that is not `Fn`
fn map_with_a_closure_called_once() -> impl Future<Output = usize> + Send + 'static {
    let owned = String::from("moved into the result");
    MapFuture::new(std::future::ready(1), move |n: usize| {
        let moved = owned;
        moved.len() + n
    })
}
