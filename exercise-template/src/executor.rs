//! Exercises 2.3 and 2.4: a single-threaded executor. A [`Spawner`] (cloneable, usable
//! from any thread) hands tasks to the [`Executor`], which polls them on the thread that
//! calls [`Executor::run`] or [`Executor::run_until_stalled`]; wakers put tasks back into
//! its ready queue. Exercise 2.4 adds priorities, shutdown and metrics.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// How many tasks may be live at once on an executor from [`new_executor_and_spawner`].
pub const MAX_QUEUED_TASKS: usize = 10_000;

/// Creates an executor and its first spawner, with room for [`MAX_QUEUED_TASKS`] live tasks
/// (exercise 2.3).
pub fn new_executor_and_spawner() -> (Executor, Spawner) {
    todo!("2.3: call new_executor_and_spawner_with_capacity(MAX_QUEUED_TASKS)")
}

/// Creates an executor and its first spawner, with room for `capacity` live tasks
/// (exercise 2.3).
///
/// A task is live from a successful spawn until its future returns `Ready` or is dropped.
/// Count live tasks, not queue entries: wakes never take a slot and never fail.
pub fn new_executor_and_spawner_with_capacity(_capacity: usize) -> (Executor, Spawner) {
    todo!("2.3: create the state shared by the executor, the spawners and the wakers")
}

/// Polls the spawned tasks (exercise 2.3). `Send`, so it can be moved to the thread that
/// runs it; futures are only ever polled on the thread that calls `run` or
/// `run_until_stalled`, one at a time.
pub struct Executor {
    // Placeholder so that the template compiles: replace it with your own fields.
    _todo: (),
}

/// Hands new tasks to the [`Executor`] (exercises 2.3 and 2.4). `Clone + Send + Sync`: every
/// clone may be used from any thread, including from inside a task.
#[derive(Clone)]
pub struct Spawner {
    // Placeholder so that the template compiles: replace it with your own fields.
    _todo: (),
}

/// The priority of a task (exercise 2.4). Whenever a `High` task is ready, it is polled
/// before any ready `Low` task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// Polled before every ready `Low` task.
    High,
    /// The priority of [`Spawner::spawn`] and [`Spawner::try_spawn`].
    #[default]
    Low,
}

/// Why a spawn was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// All `capacity` slots are taken by live tasks (exercise 2.3).
    QueueFull,
    /// [`Spawner::shutdown`] has been called (exercise 2.4).
    Shutdown,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpawnError::QueueFull => "task queue is full (too many tasks queued)",
            SpawnError::Shutdown => "executor has been shut down",
        })
    }
}

impl Error for SpawnError {}

/// What an [`Executor`] has done so far (exercise 2.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Tasks accepted by a spawn call.
    pub spawned: u64,
    /// Tasks whose future returned `Ready`.
    pub completed: u64,
    /// Calls of `Future::poll` on task futures.
    pub polls: u64,
    /// Sum of the wall time of those polls.
    pub busy_time: Duration,
    /// The longest single poll.
    pub max_poll_time: Duration,
}

impl Spawner {
    /// Spawns a `Low` priority task (exercise 2.3).
    ///
    /// Panics where [`Spawner::try_spawn`] would return an error: with a message containing
    /// `too many tasks queued` when the executor is full, and one containing `shut down` after
    /// shutdown. (Hint: call `try_spawn` and turn its error into the panic.)
    pub fn spawn(&self, _future: impl Future<Output = ()> + Send + 'static) {
        todo!("2.3: try_spawn, panicking with the error's message")
    }

    /// Spawns a `Low` priority task, or returns `Err(SpawnError::QueueFull)` when all slots
    /// are taken (exercise 2.3) and `Err(SpawnError::Shutdown)` after shutdown (2.4).
    ///
    /// Pitfall: the book's `sync_channel(MAX_QUEUED_TASKS)` with `send(..).expect(..)` is not
    /// enough: wakes re-send tasks through the same channel, so a full channel blocks or panics
    /// them. Count live tasks yourself and keep wakes independent of the capacity.
    pub fn try_spawn(
        &self,
        _future: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SpawnError> {
        todo!("2.3: take a slot, box and pin the future, queue the new task")
    }

    /// Spawns a task with the given priority; fails like [`Spawner::try_spawn`]
    /// (exercise 2.4).
    pub fn spawn_with_priority(
        &self,
        _priority: Priority,
        _future: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SpawnError> {
        todo!("2.4: like try_spawn, but the task is queued with its priority")
    }

    /// Shuts the executor down, from any clone and any thread (exercise 2.4).
    ///
    /// Afterwards spawns fail with [`SpawnError::Shutdown`]; `run` and `run_until_stalled`
    /// return as soon as the poll in progress (if any) returns, without polling anything else;
    /// every unfinished task's future is dropped before that `run`/`run_until_stalled`
    /// returns (or, if none is running, by the end of the next call of either).
    ///
    /// Pitfall: a `run` blocked waiting for a wake must notice the shutdown, so wake it up.
    pub fn shutdown(&self) {
        todo!("2.4: set the shutdown flag and wake a blocked run")
    }
}

impl Executor {
    /// Polls ready tasks until all work is done or the executor is shut down (exercise 2.3).
    ///
    /// Blocks (does not spin) while no task is ready, and returns when (a) every `Spawner`
    /// clone has been dropped and no `Waker` of any unfinished task exists any more (every
    /// task finished, or was abandoned with no waker left, in which case its future is
    /// dropped), or (b) `shutdown()` was called.
    ///
    /// Pitfalls:
    /// - Never hold a lock that a wake needs (the ready queue's, say) while polling: a future
    ///   may wake its own task from inside `poll`, and would deadlock on it.
    /// - Dedup wakes: a task sits in the ready queue at most once, however often it is woken
    ///   (a "queued" flag per task). Clear that flag *before* polling, so that a wake during
    ///   the poll queues the task again instead of being lost.
    /// - Waking never blocks, panics or fails, from any thread, even after the executor has
    ///   been dropped (then it does nothing): wakers must not own the executor.
    /// - The book's design, where each waker holds a sender of the ready queue, never lets
    ///   `run` return while a task is pending: `run` must know when no spawner and no waker of
    ///   an unfinished task remain (count them, or use `Weak` references).
    pub fn run(&self) {
        todo!("2.3: poll ready tasks; block while none is ready; return when nothing can wake")
    }

    /// Polls ready tasks until none is ready and returns the number of polls it made
    /// (exercise 2.3).
    ///
    /// Never blocks waiting for a wake, and returns even while spawners and pending tasks
    /// exist. The same pitfalls as in [`Executor::run`] apply.
    pub fn run_until_stalled(&self) -> usize {
        todo!("2.3: poll until the ready queue is empty; count the polls")
    }

    /// The executor's counters, up to date after every poll (exercise 2.4).
    pub fn metrics(&self) -> Metrics {
        todo!("2.4: count spawns, completions and polls; time every poll with Instant")
    }
}

#[cfg(test)]
mod tests;
