//! Exercises 2.3 and 2.4: a single-threaded executor that keeps its tasks in a slab.
//!
//! Tasks live in slab slots; the ready queues hold slot indices. A task's progress is an atomic
//! state machine shared with its waker, so a wake never touches the slab: it flips the state and,
//! if the task was idle, pushes the index and unparks the executor thread. While a future is
//! polled it is out of its slot, so no lock is held during a poll. Wakers hold only `Weak`
//! references; the slab counts live tasks, an `Arc` guard shared by all spawner clones notices
//! when the last one goes, and the drop of a task's waker object tells when no waker is left.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How many tasks may be live at once on an executor from [`new_executor_and_spawner`].
pub const MAX_QUEUED_TASKS: usize = 10_000;

/// Creates an executor and its first spawner, with room for [`MAX_QUEUED_TASKS`] live tasks.
pub fn new_executor_and_spawner() -> (Executor, Spawner) {
    new_executor_and_spawner_with_capacity(MAX_QUEUED_TASKS)
}

/// Creates an executor and its first spawner, with room for `capacity` live tasks.
pub fn new_executor_and_spawner_with_capacity(capacity: usize) -> (Executor, Spawner) {
    let core = Arc::new(Core {
        capacity,
        slab: Mutex::new(Slab::default()),
        high: Mutex::new(VecDeque::new()),
        low: Mutex::new(VecDeque::new()),
        sleeper: Mutex::new(None),
        shut_down: AtomicBool::new(false),
        spawners_gone: AtomicBool::new(false),
        stats: Stats::default(),
    });
    let spawner = Spawner {
        lease: Arc::new(SpawnerLease {
            core: Arc::clone(&core),
        }),
    };
    (Executor { core }, spawner)
}

/// Polls the spawned tasks on the thread that calls [`Executor::run`] or
/// [`Executor::run_until_stalled`].
pub struct Executor {
    core: Arc<Core>,
}

/// Hands new tasks to the [`Executor`], from any thread.
#[derive(Clone)]
pub struct Spawner {
    /// Shared by every clone: its drop means the last spawner is gone.
    lease: Arc<SpawnerLease>,
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
    /// Every slot holds a live task.
    QueueFull,
    /// [`Spawner::shutdown`] was called.
    Shutdown,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::QueueFull => "cannot spawn: too many tasks queued",
            Self::Shutdown => "cannot spawn: executor is shut down",
        };
        f.write_str(text)
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

type TaskFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

// Task states. Only the executor thread moves a task out of QUEUED, RUNNING and NOTIFIED;
// wakes move IDLE -> QUEUED and RUNNING -> NOTIFIED.
/// In a ready queue (exactly once).
const QUEUED: u8 = 0;
/// Being polled.
const RUNNING: u8 = 1;
/// Being polled, and woken meanwhile: goes back to the queue after the poll.
const NOTIFIED: u8 = 2;
/// Waiting for a wake.
const IDLE: u8 = 3;
/// Finished, abandoned or dropped by shutdown; wakes are ignored.
const DONE: u8 = 4;

/// The part of a task that its wakers share: where it lives and how far it got.
struct Header {
    index: usize,
    priority: Priority,
    state: AtomicU8,
}

/// A slab slot's content.
struct Entry {
    header: Arc<Header>,
    /// `None` while the executor polls it.
    future: Option<TaskFuture>,
    /// The task's current waker object, if any waker is alive (see [`TaskWaker`]).
    waker: Weak<TaskWaker>,
}

/// Slots of the live tasks, with a free list so that indices get reused.
#[derive(Default)]
struct Slab {
    slots: Vec<Option<Entry>>,
    vacant: Vec<usize>,
    live: usize,
}

impl Slab {
    fn insert(&mut self, make: impl FnOnce(usize) -> Entry) -> usize {
        let index = self.vacant.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.slots[index] = Some(make(index));
        self.live += 1;
        index
    }

    /// The entry at `index`, if it still belongs to the task of `header`.
    fn entry_of(&mut self, header: &Arc<Header>) -> Option<&mut Entry> {
        self.slots
            .get_mut(header.index)?
            .as_mut()
            .filter(|entry| Arc::ptr_eq(&entry.header, header))
    }

    fn remove(&mut self, index: usize) -> Option<Entry> {
        let entry = self.slots.get_mut(index)?.take()?;
        self.vacant.push(index);
        self.live -= 1;
        Some(entry)
    }

    /// Empties the slab, handing back every future (to be dropped outside the lock).
    fn clear(&mut self) -> Vec<TaskFuture> {
        let futures = self
            .slots
            .iter_mut()
            .filter_map(Option::take)
            .filter_map(|entry| {
                entry.header.state.store(DONE, SeqCst);
                entry.future
            })
            .collect();
        *self = Slab::default();
        futures
    }
}

/// Counters updated by atomics, so that reading them never waits for the executor.
#[derive(Default)]
struct Stats {
    spawned: AtomicU64,
    completed: AtomicU64,
    polls: AtomicU64,
    busy_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl Stats {
    fn record_poll(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // Busy time before the maximum, and `snapshot` reads them the other way round, so a
        // concurrent reader never sees a maximum above the total.
        self.busy_nanos.fetch_add(nanos, SeqCst);
        self.max_nanos.fetch_max(nanos, SeqCst);
        self.polls.fetch_add(1, SeqCst);
    }

    fn snapshot(&self) -> Metrics {
        let max_poll_time = Duration::from_nanos(self.max_nanos.load(SeqCst));
        let busy_time = Duration::from_nanos(self.busy_nanos.load(SeqCst));
        let polls = self.polls.load(SeqCst);
        let completed = self.completed.load(SeqCst);
        Metrics {
            spawned: self.spawned.load(SeqCst),
            completed,
            polls,
            busy_time,
            max_poll_time,
        }
    }
}

/// Everything the executor, the spawners and the wakers share.
struct Core {
    capacity: usize,
    slab: Mutex<Slab>,
    high: Mutex<VecDeque<usize>>,
    low: Mutex<VecDeque<usize>>,
    /// The executor thread while it is parked (or about to park) in `run`.
    sleeper: Mutex<Option<Thread>>,
    shut_down: AtomicBool,
    spawners_gone: AtomicBool,
    stats: Stats,
}

/// Dropped when the last [`Spawner`] clone is.
struct SpawnerLease {
    core: Arc<Core>,
}

impl Drop for SpawnerLease {
    fn drop(&mut self) {
        self.core.spawners_gone.store(true, SeqCst);
        self.core.rouse();
    }
}

/// The object behind every `Waker` of one task. All clones of a waker share it, so its drop
/// means that no waker of the task is left; the executor makes a new one if it polls the task
/// again after that.
struct TaskWaker {
    header: Arc<Header>,
    core: Weak<Core>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Once the executor and every spawner are gone there is nothing left to wake.
        if let Some(core) = self.core.upgrade() {
            core.notify(&self.header);
        }
    }
}

impl Drop for TaskWaker {
    fn drop(&mut self) {
        // Only an idle task can be abandoned: a queued or running one will be polled again
        // with a fresh waker, whose drop then decides.
        if self.header.state.load(SeqCst) != IDLE {
            return;
        }
        if let Some(core) = self.core.upgrade() {
            core.abandon(&self.header, self);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No future runs under these locks, so a poisoned one still holds consistent state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Core {
    fn queue(&self, priority: Priority) -> &Mutex<VecDeque<usize>> {
        match priority {
            Priority::High => &self.high,
            Priority::Low => &self.low,
        }
    }

    /// Unparks the executor thread if it is waiting in `run`.
    fn rouse(&self) {
        if let Some(sleeper) = lock(&self.sleeper).take() {
            sleeper.unpark();
        }
    }

    fn push_ready(&self, header: &Header) {
        lock(self.queue(header.priority)).push_back(header.index);
        self.rouse();
    }

    /// The next ready index, High first. The High lock is held while looking at Low, so a
    /// High task queued before a Low one can never be overtaken by it.
    fn pop_ready(&self) -> Option<usize> {
        let mut high = lock(&self.high);
        high.pop_front().or_else(|| lock(&self.low).pop_front())
    }

    fn notify(&self, header: &Header) {
        let mut current = header.state.load(SeqCst);
        loop {
            let next = match current {
                IDLE => QUEUED,
                RUNNING => NOTIFIED,
                // Already queued or notified (dedup), or finished.
                _ => return,
            };
            match header
                .state
                .compare_exchange_weak(current, next, SeqCst, SeqCst)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        if current == IDLE {
            self.push_ready(header);
        }
        // A notified task is queued again by the executor once its poll returns.
    }

    /// Drops the future of an idle task whose last waker (`dying`) is going away.
    fn abandon(&self, header: &Arc<Header>, dying: &TaskWaker) {
        let mut slab = lock(&self.slab);
        let Some(entry) = slab.entry_of(header) else {
            return;
        };
        // An older waker object can die late, after the executor made a newer one.
        let current = ptr::eq(entry.waker.as_ptr(), dying);
        if !current
            || header
                .state
                .compare_exchange(IDLE, DONE, SeqCst, SeqCst)
                .is_err()
        {
            return;
        }
        let removed = slab.remove(header.index);
        drop(slab);
        // Dropped outside the lock: the destructor may wake or spawn.
        drop(removed);
        // `run` may have been waiting only for this task to go.
        self.rouse();
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down.load(SeqCst)
    }

    /// No spawner and no live task is left, so nothing can ever become ready.
    fn is_finished(&self) -> bool {
        self.spawners_gone.load(SeqCst) && lock(&self.slab).live == 0
    }

    fn spawn(&self, priority: Priority, future: TaskFuture) -> Result<(), SpawnError> {
        let mut slab = lock(&self.slab);
        // Checked under the slab lock, which shutdown's clean-up takes too.
        let refusal = if self.is_shut_down() {
            Some(SpawnError::Shutdown)
        } else if slab.live >= self.capacity {
            Some(SpawnError::QueueFull)
        } else {
            None
        };
        if let Some(error) = refusal {
            drop(slab);
            // The refused future may spawn in its destructor: no lock may be held here.
            drop(future);
            return Err(error);
        }
        let index = slab.insert(|index| Entry {
            header: Arc::new(Header {
                index,
                priority,
                state: AtomicU8::new(QUEUED),
            }),
            future: Some(future),
            waker: Weak::new(),
        });
        drop(slab);
        self.stats.spawned.fetch_add(1, SeqCst);
        lock(self.queue(priority)).push_back(index);
        self.rouse();
        Ok(())
    }

    /// Takes a queued task's future out of its slot for polling, with a waker for it.
    fn claim(self: &Arc<Self>, index: usize) -> Option<(Arc<Header>, TaskFuture, Waker)> {
        let mut slab = lock(&self.slab);
        let entry = slab.slots.get_mut(index)?.as_mut()?;
        entry
            .header
            .state
            .compare_exchange(QUEUED, RUNNING, SeqCst, SeqCst)
            .ok()?;
        let future = entry.future.take().expect("a queued task owns its future");
        let waker = entry.waker.upgrade().unwrap_or_else(|| {
            let fresh = Arc::new(TaskWaker {
                header: Arc::clone(&entry.header),
                core: Arc::downgrade(self),
            });
            entry.waker = Arc::downgrade(&fresh);
            fresh
        });
        Some((Arc::clone(&entry.header), future, Waker::from(waker)))
    }

    /// Polls the task at `index` once; `false` if the index was stale.
    fn poll_slot(self: &Arc<Self>, index: usize) -> bool {
        let Some((header, mut future, waker)) = self.claim(index) else {
            return false;
        };
        let started = Instant::now();
        let outcome = future.as_mut().poll(&mut Context::from_waker(&waker));
        self.stats.record_poll(started.elapsed());
        match outcome {
            Poll::Ready(()) => {
                header.state.store(DONE, SeqCst);
                self.stats.completed.fetch_add(1, SeqCst);
                let entry = lock(&self.slab).remove(index);
                drop(entry);
                // Dropped outside every lock: its destructor may wake or spawn.
                drop(future);
            }
            Poll::Pending => {
                if let Some(entry) = lock(&self.slab).entry_of(&header) {
                    entry.future = Some(future);
                }
                if header
                    .state
                    .compare_exchange(RUNNING, IDLE, SeqCst, SeqCst)
                    .is_err()
                {
                    // Woken during the poll.
                    header.state.store(QUEUED, SeqCst);
                    self.push_ready(&header);
                }
            }
        }
        // If the future kept no clone, this is the task's last waker and abandons it.
        drop(waker);
        true
    }

    /// Drops every unfinished task's future (after shutdown), outside every lock.
    fn drop_unfinished(&self) {
        let futures = lock(&self.slab).clear();
        lock(&self.high).clear();
        lock(&self.low).clear();
        drop(futures);
    }

    /// Parks the calling thread until something may have changed for `run`.
    fn sleep(&self) {
        *lock(&self.sleeper) = Some(thread::current());
        // Re-check after announcing ourselves: whatever happened before the announcement
        // could not unpark us.
        let ready = !lock(&self.high).is_empty() || !lock(&self.low).is_empty();
        if !ready && !self.is_shut_down() && !self.is_finished() {
            thread::park();
        }
        lock(&self.sleeper).take();
    }
}

impl Spawner {
    /// Spawns a `Low` priority task; panics where [`Spawner::try_spawn`] would fail.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.try_spawn(future)
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Spawns a `Low` priority task, or fails with [`SpawnError::QueueFull`] or
    /// [`SpawnError::Shutdown`].
    pub fn try_spawn(
        &self,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SpawnError> {
        self.spawn_with_priority(Priority::default(), future)
    }

    /// Spawns a task with the given priority; fails like [`Spawner::try_spawn`].
    pub fn spawn_with_priority(
        &self,
        priority: Priority,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SpawnError> {
        self.lease.core.spawn(priority, Box::pin(future))
    }

    /// Shuts the executor down, from any clone and any thread.
    pub fn shutdown(&self) {
        self.lease.core.shut_down.store(true, SeqCst);
        self.lease.core.rouse();
    }
}

impl Executor {
    /// Polls ready tasks, parking while none is ready, until no spawner and no waker of an
    /// unfinished task is left, or until shutdown.
    pub fn run(&self) {
        let core = &self.core;
        loop {
            if core.is_shut_down() {
                core.drop_unfinished();
                return;
            }
            if let Some(index) = core.pop_ready() {
                core.poll_slot(index);
            } else if core.is_finished() {
                return;
            } else {
                core.sleep();
            }
        }
    }

    /// Polls ready tasks until none is ready and returns the number of polls it made.
    pub fn run_until_stalled(&self) -> usize {
        let core = &self.core;
        let mut polls = 0;
        while !core.is_shut_down() {
            match core.pop_ready() {
                Some(index) => polls += usize::from(core.poll_slot(index)),
                None => return polls,
            }
        }
        core.drop_unfinished();
        polls
    }

    /// The executor's counters, up to date after every poll.
    pub fn metrics(&self) -> Metrics {
        self.core.stats.snapshot()
    }
}

#[cfg(test)]
mod tests;
