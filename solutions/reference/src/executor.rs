//! Exercises 2.3 and 2.4: a single-threaded executor with a bounded number of live tasks,
//! two priorities, shutdown and metrics.
//!
//! Ownership does the bookkeeping: the ready queue and every waker hold an `Arc<Task>`, and the
//! task owns its future. A task that no one can wake any more is therefore dropped, future and
//! all, and tells the executor so; the executor itself keeps only `Weak` references to live
//! tasks, to count them and to drop them at shutdown. Wakers hold only a `Weak` reference to
//! the executor, so waking after it is gone does nothing.

use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

/// The default capacity: how many tasks may be live at once.
pub const MAX_QUEUED_TASKS: usize = 10_000;

/// Creates an executor and its spawner, with room for [`MAX_QUEUED_TASKS`] live tasks.
pub fn new_executor_and_spawner() -> (Executor, Spawner) {
    new_executor_and_spawner_with_capacity(MAX_QUEUED_TASKS)
}

/// Creates an executor and its spawner, with room for `capacity` live tasks.
pub fn new_executor_and_spawner_with_capacity(capacity: usize) -> (Executor, Spawner) {
    let shared = Arc::new(Shared {
        capacity,
        next_task_id: AtomicU64::new(0),
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
    });
    let spawner = Spawner {
        inner: Arc::new(SpawnerInner {
            shared: Arc::clone(&shared),
        }),
    };
    (Executor { shared }, spawner)
}

/// How urgently a task should be polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// Polled before any ready `Low` task.
    High,
    /// The priority of [`Spawner::spawn`] and [`Spawner::try_spawn`].
    #[default]
    Low,
}

/// Why a task could not be spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// As many tasks as the capacity allows are live.
    QueueFull,
    /// The executor has shut down.
    Shutdown,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpawnError::QueueFull => "too many tasks queued",
            SpawnError::Shutdown => "the executor has shut down",
        })
    }
}

impl Error for SpawnError {}

/// Counters describing the work an executor has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Tasks accepted by a spawn call.
    pub spawned: u64,
    /// Tasks whose future returned `Ready`.
    pub completed: u64,
    /// Calls of `Future::poll` on task futures.
    pub polls: u64,
    /// The sum of the wall time of those polls.
    pub busy_time: Duration,
    /// The longest single poll.
    pub max_poll_time: Duration,
}

impl Metrics {
    fn record_poll(&mut self, time: Duration, finished: bool) {
        self.polls += 1;
        self.busy_time += time;
        self.max_poll_time = self.max_poll_time.max(time);
        if finished {
            self.completed += 1;
        }
    }
}

/// Runs the tasks spawned through its [`Spawner`]s, on the thread that calls it.
pub struct Executor {
    shared: Arc<Shared>,
}

/// Spawns tasks onto its [`Executor`]; cheap to clone and usable from any thread.
#[derive(Clone)]
pub struct Spawner {
    inner: Arc<SpawnerInner>,
}

/// Shared by all clones of a [`Spawner`], so that dropping the last clone can tell the executor.
struct SpawnerInner {
    shared: Arc<Shared>,
}

/// What the executor, its spawners and (weakly) its wakers share.
struct Shared {
    capacity: usize,
    next_task_id: AtomicU64,
    state: Mutex<State>,
    /// Signalled when a task becomes ready, when the run might be over, and on shutdown.
    changed: Condvar,
}

/// Everything behind the executor's lock. Neither a future nor the last reference to a task is
/// ever dropped while it is held: their destructors may wake or spawn, which takes the lock.
#[derive(Default)]
struct State {
    high: VecDeque<Arc<Task>>,
    low: VecDeque<Arc<Task>>,
    /// The live tasks: spawned, and neither finished nor dropped.
    live: HashMap<TaskId, Weak<Task>>,
    spawners_gone: bool,
    shut_down: bool,
    metrics: Metrics,
}

type TaskId = u64;
type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A spawned future, together with its place in the scheduling cycle.
struct Task {
    id: TaskId,
    priority: Priority,
    /// One of the `IDLE` ... `DONE` constants below.
    status: AtomicU8,
    /// `None` once finished. Only the polling thread locks it, never a wake.
    future: Mutex<Option<BoxFuture>>,
    executor: Weak<Shared>,
}

/// Waiting for a wake.
const IDLE: u8 = 0;
/// In the ready queue, exactly once.
const SCHEDULED: u8 = 1;
/// Being polled.
const RUNNING: u8 = 2;
/// Being polled, and woken since the poll began: it must be polled again.
const NOTIFIED: u8 = 3;
/// Finished, or dropped at shutdown: wakes do nothing.
const DONE: u8 = 4;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a task must not make every later wake panic as well.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Spawner {
    /// Spawns a task with [`Priority::Low`].
    ///
    /// # Panics
    ///
    /// Where [`Spawner::try_spawn`] would fail: when the executor is full ("too many tasks
    /// queued") or has shut down.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        if let Err(error) = self.try_spawn(future) {
            panic!("cannot spawn a task: {error}");
        }
    }

    /// Spawns a task with [`Priority::Low`], or says why it cannot.
    pub fn try_spawn(
        &self,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SpawnError> {
        self.spawn_with_priority(Priority::Low, future)
    }

    /// Spawns a task with the given priority, or says why it cannot.
    pub fn spawn_with_priority(
        &self,
        priority: Priority,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SpawnError> {
        let shared = &self.inner.shared;
        let task = Arc::new(Task {
            id: shared.next_task_id.fetch_add(1, Ordering::Relaxed),
            priority,
            status: AtomicU8::new(SCHEDULED),
            future: Mutex::new(Some(Box::pin(future))),
            executor: Arc::downgrade(shared),
        });
        let mut state = lock(&shared.state);
        let admitted = if state.shut_down {
            Err(SpawnError::Shutdown)
        } else if state.live.len() >= shared.capacity {
            Err(SpawnError::QueueFull)
        } else {
            state.live.insert(task.id, Arc::downgrade(&task));
            state.enqueue(&task);
            state.metrics.spawned += 1;
            shared.changed.notify_all();
            Ok(())
        };
        // A rejected task is dropped here, future and all: after the lock is released.
        drop(state);
        drop(task);
        admitted
    }

    /// Shuts the executor down: spawning fails from now on, and the running (or next) `run` or
    /// `run_until_stalled` returns after the poll in progress, dropping every unfinished task.
    pub fn shutdown(&self) {
        lock(&self.inner.shared.state).shut_down = true;
        self.inner.shared.changed.notify_all();
    }
}

impl Drop for SpawnerInner {
    fn drop(&mut self) {
        // The last clone is gone: `run` may be waiting for exactly that.
        lock(&self.shared.state).spawners_gone = true;
        self.shared.changed.notify_all();
    }
}

impl Executor {
    /// Polls tasks until every spawner is gone and no unfinished task can be woken any more,
    /// or until shutdown. Sleeps while no task is ready.
    pub fn run(&self) {
        while let Some(task) = self.next_task(true) {
            self.poll_task(task);
        }
        self.shared.drop_unfinished_after_shutdown();
    }

    /// Polls tasks until none is ready (or until shutdown), without ever waiting for a wake,
    /// and returns how many polls it made.
    pub fn run_until_stalled(&self) -> usize {
        let mut polls = 0;
        while let Some(task) = self.next_task(false) {
            self.poll_task(task);
            polls += 1;
        }
        self.shared.drop_unfinished_after_shutdown();
        polls
    }

    /// Returns the counters as of the last poll or spawn.
    pub fn metrics(&self) -> Metrics {
        lock(&self.shared.state).metrics
    }

    /// Takes the next ready task, highest priority first. `None` means the run is over: the
    /// executor shut down, or no task is ready and, if `block`, none can become ready any more.
    fn next_task(&self, block: bool) -> Option<Arc<Task>> {
        let mut state = lock(&self.shared.state);
        loop {
            if state.shut_down {
                return None;
            }
            if let Some(task) = state.high.pop_front().or_else(|| state.low.pop_front()) {
                return Some(task);
            }
            if !block || (state.spawners_gone && state.live.is_empty()) {
                return None;
            }
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Polls a task taken from the ready queue once, and files it according to the outcome.
    fn poll_task(&self, task: Arc<Task>) {
        // Wakes from now on must lead to another poll, not to a second queue entry.
        task.status.store(RUNNING, Ordering::Release);
        let waker = Waker::from(Arc::clone(&task));
        let mut slot = lock(&task.future);
        let future = slot.as_mut().expect("a queued task is unfinished");
        let started = Instant::now();
        let poll = future.as_mut().poll(&mut Context::from_waker(&waker));
        let poll_time = started.elapsed();
        let finished = poll.is_ready().then(|| slot.take());
        drop(slot);

        let mut state = lock(&self.shared.state);
        state.metrics.record_poll(poll_time, finished.is_some());
        if finished.is_some() {
            task.status.store(DONE, Ordering::Release);
            state.live.remove(&task.id);
        } else if task
            .status
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Woken during the poll: it is ready again.
            task.status.store(SCHEDULED, Ordering::Release);
            state.enqueue(&task);
        }
        drop(state);
        // The finished future, and an abandoned task (when `waker` and `task` are its last
        // references), are dropped here: their destructors may wake or spawn.
        drop(finished);
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // No one can poll the tasks any more: drop them now rather than when the spawners go.
        lock(&self.shared.state).shut_down = true;
        self.shared.drop_unfinished_after_shutdown();
    }
}

impl Shared {
    /// Drops the future of every unfinished task, if the executor has shut down.
    fn drop_unfinished_after_shutdown(&self) {
        let (unfinished, queued) = {
            let mut state = lock(&self.state);
            if !state.shut_down {
                return;
            }
            let unfinished: Vec<Arc<Task>> = state
                .live
                .drain()
                .filter_map(|(_, task)| task.upgrade())
                .collect();
            let queued = (mem::take(&mut state.high), mem::take(&mut state.low));
            (unfinished, queued)
        };
        // Outside the lock: the destructors may wake tasks or try to spawn.
        drop(queued);
        for task in unfinished {
            task.status.store(DONE, Ordering::Release);
            let future = lock(&task.future).take();
            drop(future);
        }
    }
}

impl State {
    /// Appends a task to the ready queue of its priority, unless the executor has shut down.
    fn enqueue(&mut self, task: &Arc<Task>) {
        if !self.shut_down {
            let queue = match task.priority {
                Priority::High => &mut self.high,
                Priority::Low => &mut self.low,
            };
            queue.push_back(Arc::clone(task));
        }
    }
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let woken = self
            .status
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |status| match status {
                IDLE => Some(SCHEDULED),
                RUNNING => Some(NOTIFIED),
                _ => None, // already going to be polled, or finished
            });
        if woken != Ok(IDLE) {
            return;
        }
        // The executor is gone: nothing will ever poll the task.
        let Some(shared) = self.executor.upgrade() else {
            return;
        };
        lock(&shared.state).enqueue(self);
        shared.changed.notify_all();
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // Finished, or abandoned: nothing can wake it any more. Drop the future first, so that
        // its destructor has run before the executor can see that the task is gone.
        let future = self
            .future
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(future);
        if let Some(shared) = self.executor.upgrade() {
            if lock(&shared.state).live.remove(&self.id).is_some() {
                shared.changed.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests;
