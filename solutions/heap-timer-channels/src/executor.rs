//! Exercises 2.3 and 2.4: a single-threaded executor fed through one `mpsc` channel.
//!
//! Spawners and unfinished tasks own the channel's senders (a task needs one to queue itself
//! when woken, and gives it up when it finishes), and a task lives exactly as long as its
//! wakers and the queue entries that point at it. So once no spawner and no unfinished task is
//! left, the channel disconnects and a blocked `recv` tells `run` that nothing can ever become
//! ready again. The executor only keeps `Weak` references to unfinished tasks, for shutdown.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Context;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::task::{waker_ref, ArcWake};

/// How many tasks may be live at once on an executor from [`new_executor_and_spawner`].
pub const MAX_QUEUED_TASKS: usize = 10_000;

/// Creates an executor and its first spawner, with room for [`MAX_QUEUED_TASKS`] live tasks.
pub fn new_executor_and_spawner() -> (Executor, Spawner) {
    new_executor_and_spawner_with_capacity(MAX_QUEUED_TASKS)
}

/// Creates an executor and its first spawner, with room for `capacity` live tasks.
pub fn new_executor_and_spawner_with_capacity(capacity: usize) -> (Executor, Spawner) {
    let (sender, receiver) = mpsc::channel();
    let shared = Arc::new(Shared {
        capacity,
        shut_down: AtomicBool::new(false),
        next_id: AtomicU64::new(0),
        unfinished: Mutex::new(HashMap::new()),
        metrics: Mutex::new(Metrics::default()),
    });
    let executor = Executor {
        receiver,
        shared: Arc::clone(&shared),
        ready: RefCell::default(),
    };
    (executor, Spawner { sender, shared })
}

/// Polls the spawned tasks on the thread that calls [`Executor::run`] or
/// [`Executor::run_until_stalled`].
pub struct Executor {
    receiver: Receiver<Message>,
    shared: Arc<Shared>,
    /// Tasks already taken off the channel, sorted by priority.
    ready: RefCell<ReadyLists>,
}

/// Hands new tasks to the [`Executor`], from any thread.
#[derive(Clone)]
pub struct Spawner {
    sender: Sender<Message>,
    shared: Arc<Shared>,
}

/// The priority of a task: whenever a `High` task is ready, it is polled before any ready
/// `Low` task.
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
    /// As many tasks as the capacity allows are live.
    QueueFull,
    /// [`Spawner::shutdown`] has been called.
    Shutdown,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::QueueFull => write!(f, "too many tasks queued"),
            SpawnError::Shutdown => write!(f, "the executor has been shut down"),
        }
    }
}

impl Error for SpawnError {}

/// What an [`Executor`] has done so far.
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

/// What travels through the channel to the executor.
enum Message {
    /// A task that became ready (spawned or woken).
    Ready(Arc<Task>),
    /// Rouses a `run` blocked in `recv`; the shutdown flag itself is in [`Shared`].
    Shutdown,
}

/// State shared by the executor, the spawners and the tasks. It holds no sender, so it
/// never keeps the channel connected.
struct Shared {
    capacity: usize,
    shut_down: AtomicBool,
    next_id: AtomicU64,
    /// Every live task, by id. Its length is the number of live tasks.
    unfinished: Mutex<HashMap<u64, Weak<Task>>>,
    metrics: Mutex<Metrics>,
}

/// A spawned future plus what its wakers need to queue it again.
struct Task {
    id: u64,
    priority: Priority,
    /// `None` once the future returned `Ready` or was dropped by shutdown.
    future: Mutex<Option<BoxFuture<'static, ()>>>,
    /// Set while the task sits in the channel or the ready lists: dedups wakes.
    queued: AtomicBool,
    /// `None` once the task finished: a kept waker of a finished task must not keep the
    /// channel connected (and so `run` going). Never locked during a poll.
    sender: Mutex<Option<Sender<Message>>>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct ReadyLists {
    high: VecDeque<Arc<Task>>,
    low: VecDeque<Arc<Task>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only a panicking task future can poison a lock, and the state behind it stays valid.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    /// Takes a slot for `task`. Checking the flag under the same lock that shutdown empties
    /// means no task can slip in after the executor dropped the unfinished ones.
    fn admit(&self, task: &Arc<Task>) -> Result<(), SpawnError> {
        let mut unfinished = lock(&self.unfinished);
        if self.is_shut_down() {
            return Err(SpawnError::Shutdown);
        }
        if unfinished.len() >= self.capacity {
            return Err(SpawnError::QueueFull);
        }
        unfinished.insert(task.id, Arc::downgrade(task));
        Ok(())
    }

    /// Frees the slot of a task whose future is gone.
    fn release(&self, id: u64) {
        lock(&self.unfinished).remove(&id);
    }
}

impl ArcWake for Task {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        if !arc_self.queued.swap(true, Ordering::SeqCst) {
            if let Some(sender) = &*lock(&arc_self.sender) {
                // Fails only once the executor is gone, and then there is nobody to tell.
                let _ = sender.send(Message::Ready(Arc::clone(arc_self)));
            }
        }
    }
}

impl Task {
    /// Cuts a finished task off the channel and hands back its future (if still there), to
    /// be dropped by the caller outside every lock.
    fn retire(&self) -> Option<BoxFuture<'static, ()>> {
        drop(lock(&self.sender).take());
        lock(&self.future).take()
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // A future still in place here means the task was abandoned: its last waker went
        // away before it finished.
        let slot = match self.future.get_mut() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(abandoned) = slot.take() {
            self.shared.release(self.id);
            drop(abandoned);
        }
    }
}

impl ReadyLists {
    fn accept(&mut self, message: Message) {
        if let Message::Ready(task) = message {
            match task.priority {
                Priority::High => self.high.push_back(task),
                Priority::Low => self.low.push_back(task),
            }
        }
    }

    fn pop(&mut self) -> Option<Arc<Task>> {
        self.high.pop_front().or_else(|| self.low.pop_front())
    }
}

impl Spawner {
    /// Spawns a `Low` priority task; panics where [`Spawner::try_spawn`] would fail.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        if let Err(error) = self.try_spawn(future) {
            panic!("cannot spawn: {error}");
        }
    }

    /// Spawns a `Low` priority task, or fails with [`SpawnError::QueueFull`] or
    /// [`SpawnError::Shutdown`].
    pub fn try_spawn(
        &self,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SpawnError> {
        self.spawn_with_priority(Priority::Low, future)
    }

    /// Spawns a task with the given priority; fails like [`Spawner::try_spawn`].
    pub fn spawn_with_priority(
        &self,
        priority: Priority,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SpawnError> {
        let task = Arc::new(Task {
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            priority,
            future: Mutex::new(Some(Box::pin(future))),
            queued: AtomicBool::new(true),
            sender: Mutex::new(Some(self.sender.clone())),
            shared: Arc::clone(&self.shared),
        });
        // On refusal the task, and with it the future, is dropped here, outside every lock.
        self.shared.admit(&task)?;
        lock(&self.shared.metrics).spawned += 1;
        // Fails only once the executor is gone; the task is then dropped with its future.
        let _ = self.sender.send(Message::Ready(task));
        Ok(())
    }

    /// Shuts the executor down, from any clone and any thread.
    pub fn shutdown(&self) {
        self.shared.shut_down.store(true, Ordering::SeqCst);
        let _ = self.sender.send(Message::Shutdown);
    }
}

impl Executor {
    /// Polls ready tasks, blocking while none is ready, until no spawner and no waker of an
    /// unfinished task is left, or until shutdown.
    pub fn run(&self) {
        while !self.shared.is_shut_down() {
            if let Some(task) = self.next_ready() {
                self.poll_task(&task);
                continue;
            }
            match self.receiver.recv() {
                Ok(message) => self.ready.borrow_mut().accept(message),
                // Every sender is gone: no spawner, and no task that a waker could queue.
                Err(mpsc::RecvError) => return,
            }
        }
        self.drop_unfinished();
    }

    /// Polls ready tasks until none is ready and returns the number of polls it made.
    pub fn run_until_stalled(&self) -> usize {
        let mut polls = 0;
        while !self.shared.is_shut_down() {
            let Some(task) = self.next_ready() else {
                return polls;
            };
            if self.poll_task(&task) {
                polls += 1;
            }
        }
        self.drop_unfinished();
        polls
    }

    /// The executor's counters, up to date after every poll.
    pub fn metrics(&self) -> Metrics {
        *lock(&self.shared.metrics)
    }

    /// Moves everything the channel holds into the ready lists (so that a `High` task queued
    /// meanwhile overtakes older `Low` ones), then picks the next task.
    fn next_ready(&self) -> Option<Arc<Task>> {
        let mut ready = self.ready.borrow_mut();
        while let Ok(message) = self.receiver.try_recv() {
            ready.accept(message);
        }
        ready.pop()
    }

    /// Polls `task` once; `false` if it had nothing left to poll (a stale queue entry).
    fn poll_task(&self, task: &Arc<Task>) -> bool {
        let mut slot = lock(&task.future);
        let Some(future) = slot.as_mut() else {
            return false;
        };
        // Cleared before the poll, so that a wake during it queues the task again. Wakes
        // never touch the future's lock, which is the only one held while polling.
        task.queued.store(false, Ordering::SeqCst);
        let waker = waker_ref(task);
        let started = Instant::now();
        let poll = future.as_mut().poll(&mut Context::from_waker(&waker));
        let took = started.elapsed();
        let finished = if poll.is_ready() { slot.take() } else { None };
        drop(slot);

        let mut metrics = lock(&self.shared.metrics);
        metrics.polls += 1;
        metrics.busy_time += took;
        metrics.max_poll_time = metrics.max_poll_time.max(took);
        if finished.is_some() {
            metrics.completed += 1;
        }
        drop(metrics);

        if finished.is_some() {
            drop(lock(&task.sender).take());
            self.shared.release(task.id);
            // Dropped last and outside every lock: its destructor may wake or spawn.
            drop(finished);
        }
        true
    }

    /// Drops the future of every unfinished task (after shutdown), outside every lock.
    fn drop_unfinished(&self) {
        let queued = mem::take(&mut *self.ready.borrow_mut());
        drop(queued);
        while let Ok(message) = self.receiver.try_recv() {
            drop(message);
        }
        let unfinished = mem::take(&mut *lock(&self.shared.unfinished));
        for task in unfinished.into_values().filter_map(|task| task.upgrade()) {
            let future = task.retire();
            drop(future);
        }
    }
}

#[cfg(test)]
mod tests;
