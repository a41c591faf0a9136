//! Exercises 2.3 and 2.4: a single-threaded executor with a bounded number of live tasks,
//! two priorities, shutdown and metrics, built from `futures` parts.
//!
//! - The ready queues are two unbounded `futures::channel::mpsc` channels (one per priority):
//!   a wake sends the task's `Arc` down the channel of its priority, which never blocks.
//! - Every poll gets a fresh waker, made with `futures::task::waker` from a new `PollToken`
//!   (`ArcWake`). A task counts its live tokens; when the last one is dropped while the task
//!   is idle, no waker of the task exists any more and the task is abandoned right there.
//! - While no task is ready, `run` sleeps inside `futures::executor::block_on` on a future that
//!   registers with an `AtomicWaker` and then looks again; every event that can end the wait
//!   wakes that `AtomicWaker`.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::executor::block_on;
use futures::future::poll_fn;
use futures::task::{waker, ArcWake, AtomicWaker};

/// The default capacity: how many tasks may be live at once.
pub const MAX_QUEUED_TASKS: usize = 10_000;

/// Creates an executor and its spawner, with room for [`MAX_QUEUED_TASKS`] live tasks.
pub fn new_executor_and_spawner() -> (Executor, Spawner) {
    new_executor_and_spawner_with_capacity(MAX_QUEUED_TASKS)
}

/// Creates an executor and its spawner, with room for `capacity` live tasks.
pub fn new_executor_and_spawner_with_capacity(capacity: usize) -> (Executor, Spawner) {
    let (high_sender, high_receiver) = unbounded();
    let (low_sender, low_receiver) = unbounded();
    let core = Arc::new(Core {
        capacity,
        next_id: AtomicU64::new(0),
        registry: Mutex::new(Registry::default()),
        shut_down: AtomicBool::new(false),
        spawners_gone: AtomicBool::new(false),
        high: high_sender,
        low: low_sender,
        sleeper: AtomicWaker::new(),
    });
    let executor = Executor {
        core: Arc::clone(&core),
        ready: Mutex::new(ReadyQueues {
            high: high_receiver,
            low: low_receiver,
        }),
        stats: Mutex::new(Metrics::default()),
    };
    let spawner = Spawner {
        lease: Arc::new(Lease { core }),
    };
    (executor, spawner)
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
        match self {
            SpawnError::QueueFull => f.write_str("too many tasks queued"),
            SpawnError::Shutdown => f.write_str("the executor is shut down"),
        }
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

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Task states.
const IDLE: u8 = 0; // waiting for a wake
const QUEUED: u8 = 1; // in a ready channel, exactly once
const RUNNING: u8 = 2; // being polled
const NOTIFIED: u8 = 3; // being polled and woken since the poll began
const DONE: u8 = 4; // finished, abandoned or dropped at shutdown: wakes do nothing

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A task that panics must not make every later wake or spawn panic too.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the executor, its spawners and (weakly) every task share.
struct Core {
    capacity: usize,
    next_id: AtomicU64,
    registry: Mutex<Registry>,
    /// Mirrors `Registry::shut_down`, for the executor's checks between polls.
    shut_down: AtomicBool,
    spawners_gone: AtomicBool,
    high: UnboundedSender<Arc<Task>>,
    low: UnboundedSender<Arc<Task>>,
    /// The waker of a `run` that sleeps because no task is ready.
    sleeper: AtomicWaker,
}

/// The live tasks (spawned, neither finished nor dropped), and what is decided with them.
#[derive(Default)]
struct Registry {
    tasks: HashMap<u64, Arc<Task>>,
    shut_down: bool,
    spawned: u64,
}

/// A spawned future and its place in the scheduling cycle.
struct Task {
    id: u64,
    priority: Priority,
    state: AtomicU8,
    /// How many `PollToken`s (wakers of some poll, with all their clones) exist.
    tokens: AtomicUsize,
    /// Locked by the executor thread to poll, and to drop the future; never by a wake.
    future: Mutex<Option<BoxFuture>>,
    core: Weak<Core>,
}

/// Backs the waker handed to one poll (and every clone of it).
struct PollToken {
    task: Arc<Task>,
}

impl ArcWake for PollToken {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.task.schedule();
    }
}

impl Drop for PollToken {
    fn drop(&mut self) {
        // The last waker of an idle task is gone: nothing can ever wake it again. (If the task
        // is being polled instead, the executor checks the count itself once the poll is over.)
        if self.task.tokens.fetch_sub(1, SeqCst) == 1 && self.task.state.load(SeqCst) == IDLE {
            self.task.abandon();
        }
    }
}

impl Task {
    /// A wake: queue the task if it is idle, or mark it for another poll if it is running.
    fn schedule(self: &Arc<Self>) {
        let mut state = self.state.load(SeqCst);
        loop {
            let next = match state {
                IDLE => QUEUED,
                RUNNING => NOTIFIED,
                _ => return, // already queued or notified, or done
            };
            match self
                .state
                .compare_exchange_weak(state, next, SeqCst, SeqCst)
            {
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        if state == IDLE {
            if let Some(core) = self.core.upgrade() {
                core.make_ready(Arc::clone(self));
            }
        }
    }

    /// Drops the future of an idle task that can no longer be woken, and forgets the task.
    fn abandon(self: &Arc<Self>) {
        if self
            .state
            .compare_exchange(IDLE, DONE, SeqCst, SeqCst)
            .is_err()
        {
            return; // woken or dropped by someone else in the meantime
        }
        self.drop_future();
        if let Some(core) = self.core.upgrade() {
            core.forget(self.id);
        }
    }

    /// Drops the future while holding its lock, so that whoever else looks at it afterwards
    /// knows that its destructor has finished.
    fn drop_future(&self) {
        let mut slot = lock(&self.future);
        *slot = None;
    }
}

impl Core {
    fn make_ready(&self, task: Arc<Task>) {
        let channel = match task.priority {
            Priority::High => &self.high,
            Priority::Low => &self.low,
        };
        // Fails only once the executor is gone; then nothing will poll the task anyway.
        let _ = channel.unbounded_send(task);
        self.sleeper.wake();
    }

    /// Removes a task that is finished or abandoned (its future already dropped).
    fn forget(&self, id: u64) {
        let removed = lock(&self.registry).tasks.remove(&id);
        drop(removed);
        self.sleeper.wake();
    }

    fn shut_down(&self) {
        let mut registry = lock(&self.registry);
        registry.shut_down = true;
        self.shut_down.store(true, SeqCst);
        drop(registry);
        self.sleeper.wake();
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down.load(SeqCst)
    }

    /// Every spawner is gone and no task is live: nothing can ever become ready again.
    fn is_finished(&self) -> bool {
        self.spawners_gone.load(SeqCst) && lock(&self.registry).tasks.is_empty()
    }
}

/// Runs the tasks spawned through its [`Spawner`]s, on the thread that calls it.
pub struct Executor {
    core: Arc<Core>,
    ready: Mutex<ReadyQueues>,
    /// Everything but `spawned`, which the spawners count in the registry.
    stats: Mutex<Metrics>,
}

struct ReadyQueues {
    high: UnboundedReceiver<Arc<Task>>,
    low: UnboundedReceiver<Arc<Task>>,
}

/// Spawns tasks onto its [`Executor`]; cheap to clone and usable from any thread.
#[derive(Clone)]
pub struct Spawner {
    lease: Arc<Lease>,
}

/// Shared by all clones of a [`Spawner`]: its drop means the last spawner is gone.
struct Lease {
    core: Arc<Core>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.core.spawners_gone.store(true, SeqCst);
        self.core.sleeper.wake();
    }
}

impl Spawner {
    /// Spawns a task with [`Priority::Low`].
    ///
    /// # Panics
    ///
    /// Where [`Spawner::try_spawn`] would fail: when the executor is full ("too many tasks
    /// queued") or has shut down.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        match self.try_spawn(future) {
            Ok(()) => {}
            Err(SpawnError::QueueFull) => panic!(
                "spawn failed: too many tasks queued (capacity {})",
                self.lease.core.capacity
            ),
            Err(SpawnError::Shutdown) => panic!("spawn failed: the executor is shut down"),
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
        let core = &self.lease.core;
        let task = Arc::new(Task {
            id: core.next_id.fetch_add(1, SeqCst),
            priority,
            state: AtomicU8::new(QUEUED),
            tokens: AtomicUsize::new(0),
            future: Mutex::new(Some(Box::pin(future))),
            core: Arc::downgrade(core),
        });
        let mut registry = lock(&core.registry);
        let admitted = if registry.shut_down {
            Err(SpawnError::Shutdown)
        } else if registry.tasks.len() >= core.capacity {
            Err(SpawnError::QueueFull)
        } else {
            registry.tasks.insert(task.id, Arc::clone(&task));
            registry.spawned += 1;
            Ok(())
        };
        drop(registry);
        match admitted {
            Ok(()) => core.make_ready(task),
            // A refused future is dropped here, with no lock held.
            Err(_) => drop(task),
        }
        admitted
    }

    /// Shuts the executor down: spawning fails from now on, and the running (or next) `run` or
    /// `run_until_stalled` returns after the poll in progress, dropping every unfinished task.
    pub fn shutdown(&self) {
        self.lease.core.shut_down();
    }
}

impl Executor {
    /// Polls tasks until every spawner is gone and no unfinished task can be woken any more,
    /// or until shutdown. Sleeps while no task is ready.
    pub fn run(&self) {
        while !self.core.is_shut_down() {
            let task = match self.next_ready() {
                Some(task) => task,
                None => match self.wait_for_ready() {
                    Some(task) => task,
                    None => break,
                },
            };
            self.poll_task(task);
        }
        self.drop_all_if_shut_down();
    }

    /// Polls tasks until none is ready (or until shutdown), without ever waiting for a wake,
    /// and returns how many polls it made.
    pub fn run_until_stalled(&self) -> usize {
        let mut polls = 0;
        while !self.core.is_shut_down() {
            let Some(task) = self.next_ready() else { break };
            self.poll_task(task);
            polls += 1;
        }
        self.drop_all_if_shut_down();
        polls
    }

    /// Returns the counters as of the last poll or spawn.
    pub fn metrics(&self) -> Metrics {
        // Polls first: a task is counted as spawned before it can be polled, so the snapshot
        // never shows more completed tasks than spawned ones.
        let stats = *lock(&self.stats);
        let spawned = lock(&self.core.registry).spawned;
        Metrics { spawned, ..stats }
    }

    /// The next ready task, `High` first.
    fn next_ready(&self) -> Option<Arc<Task>> {
        let mut ready = lock(&self.ready);
        let mut stale = Vec::new();
        let found = loop {
            let task = match ready.high.try_recv() {
                Ok(task) => task,
                Err(_) => match ready.low.try_recv() {
                    Ok(task) => task,
                    Err(_) => break None,
                },
            };
            if task.state.load(SeqCst) == QUEUED {
                break Some(task);
            }
            // Queued, then dropped at shutdown: nothing to poll.
            stale.push(task);
        };
        drop(ready);
        drop(stale);
        found
    }

    /// Sleeps until a task is ready (and returns it), or until the run is over (`None`).
    fn wait_for_ready(&self) -> Option<Arc<Task>> {
        block_on(poll_fn(|cx| {
            // Register first, then look: whatever happens after the look wakes this waker.
            self.core.sleeper.register(cx.waker());
            if self.core.is_shut_down() {
                return Poll::Ready(None);
            }
            if let Some(task) = self.next_ready() {
                return Poll::Ready(Some(task));
            }
            if self.core.is_finished() {
                return Poll::Ready(None);
            }
            Poll::Pending
        }))
    }

    /// Polls a task taken from a ready queue once, and files it according to the outcome.
    fn poll_task(&self, task: Arc<Task>) {
        task.state.store(RUNNING, SeqCst);
        task.tokens.fetch_add(1, SeqCst);
        let waker = waker(Arc::new(PollToken {
            task: Arc::clone(&task),
        }));
        let mut slot = lock(&task.future);
        let Some(future) = slot.as_mut() else {
            return; // dropped at shutdown; cannot happen between two checks of the flag
        };
        let started = Instant::now();
        let outcome = future.as_mut().poll(&mut Context::from_waker(&waker));
        let elapsed = started.elapsed();
        let finished = outcome.is_ready().then(|| slot.take());
        drop(slot);

        {
            let mut stats = lock(&self.stats);
            stats.polls += 1;
            stats.busy_time += elapsed;
            stats.max_poll_time = stats.max_poll_time.max(elapsed);
            if finished.is_some() {
                stats.completed += 1;
            }
        }

        if finished.is_some() {
            task.state.store(DONE, SeqCst);
            drop(waker);
            let removed = lock(&self.core.registry).tasks.remove(&task.id);
            drop(removed);
            // The finished future's destructor runs with no lock held.
            drop(finished);
            return;
        }

        // Our own reference to this poll's waker goes first: what is left is what the future
        // kept (or handed on).
        drop(waker);
        match task.state.compare_exchange(RUNNING, IDLE, SeqCst, SeqCst) {
            Ok(_) => {
                // Idle now. If no token is left, or the last one goes at the same moment, one of
                // us (this check or the token's drop) sees it, and `abandon` lets one of us win.
                if task.tokens.load(SeqCst) == 0 {
                    task.abandon();
                }
            }
            Err(_) => {
                // Woken during the poll: it is ready again, at the back of its queue.
                task.state.store(QUEUED, SeqCst);
                self.core.make_ready(task);
            }
        }
    }

    /// After shutdown: drops every unfinished task's future (and the queue entries).
    fn drop_all_if_shut_down(&self) {
        if !self.core.is_shut_down() {
            return;
        }
        let tasks: Vec<Arc<Task>> = lock(&self.core.registry)
            .tasks
            .drain()
            .map(|(_, task)| task)
            .collect();
        for task in &tasks {
            task.state.store(DONE, SeqCst);
        }
        let mut queued = Vec::new();
        {
            let mut ready = lock(&self.ready);
            while let Ok(task) = ready.high.try_recv() {
                queued.push(task);
            }
            while let Ok(task) = ready.low.try_recv() {
                queued.push(task);
            }
        }
        // Outside every shared lock: the destructors may wake, spawn or drop wakers.
        for task in tasks {
            task.drop_future();
        }
        drop(queued);
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // No one can poll the tasks any more: drop them now rather than with the last spawner.
        self.core.shut_down();
        self.drop_all_if_shut_down();
    }
}

#[cfg(test)]
mod tests;
