//! Exercises 2.3 and 2.4: a single-threaded executor with a bounded number of live tasks,
//! two priorities, shutdown and metrics.
//!
//! Everything the executor knows sits in one `State` behind one lock: generational task slots
//! (a `Vec` with a free list), a single `BinaryHeap` of ready tasks ordered by
//! `(priority, readiness number)`, a count of spawner tickets, notices about dropped wakers and
//! the metrics. The lock is never held while a future is polled or dropped, or while a waker is
//! dropped. A waker is an `Arc<WakeToken>` (`std::task::Wake`) that knows only its task's slot,
//! generation and a `Weak` to the core; the slot keeps a `Weak` to the token. When the last clone
//! of a token goes, its `Drop` leaves a notice; the thread that runs the executor then finds the
//! task idle with no token left (abandoned) and drops its future. All futures are dropped on the
//! thread that calls `run`/`run_until_stalled` (or that drops the `Executor`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
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
    let core = Arc::new(Core {
        capacity,
        state: Mutex::new(State {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            ready: BinaryHeap::new(),
            next_ready_number: 0,
            notices: Vec::new(),
            spawner_tickets: 1,
            shut_down: false,
            sleepers: 0,
            metrics: Metrics::default(),
        }),
        changed: Condvar::new(),
    });
    let spawner = Spawner {
        ticket: Ticket {
            core: Arc::clone(&core),
        },
    };
    (Executor { core }, spawner)
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

impl Priority {
    fn rank(self) -> u8 {
        match self {
            Priority::High => 0,
            Priority::Low => 1,
        }
    }
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
        let text = match self {
            SpawnError::QueueFull => "too many tasks queued: every slot of the executor is taken",
            SpawnError::Shutdown => "the executor was shut down",
        };
        write!(f, "{text}")
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

type BoxedFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where a live task is in its life.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a wake.
    Idle,
    /// In the ready heap (exactly once).
    Queued,
    /// Being polled; `Some(number)` once woken during the poll, with the readiness number that
    /// wake drew (so it keeps its place among tasks that became ready after it).
    Polling(Option<u64>),
}

struct Task {
    priority: Priority,
    phase: Phase,
    /// Taken out while the task is polled.
    future: Option<BoxedFuture>,
    /// The token shared by every waker of this task (dead if no waker exists).
    token: Weak<WakeToken>,
}

struct Slot {
    generation: u64,
    task: Option<Task>,
}

/// A ready task: polled in ascending order (High before Low, then by readiness number).
type ReadyEntry = Reverse<(u8, u64, usize, u64)>;

struct State {
    slots: Vec<Slot>,
    free: Vec<usize>,
    live: usize,
    ready: BinaryHeap<ReadyEntry>,
    next_ready_number: u64,
    /// `(slot, generation)` of tasks whose last waker was dropped: maybe abandoned.
    notices: Vec<(usize, u64)>,
    spawner_tickets: usize,
    shut_down: bool,
    /// Threads waiting on `changed`.
    sleepers: usize,
    metrics: Metrics,
}

struct Core {
    capacity: usize,
    state: Mutex<State>,
    changed: Condvar,
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No foreign code ever runs under this lock, so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn task_mut(&mut self, slot: usize, generation: u64) -> Option<&mut Task> {
        match self.slots.get_mut(slot) {
            Some(s) if s.generation == generation => s.task.as_mut(),
            _ => None,
        }
    }

    fn make_ready(&mut self, slot: usize, generation: u64, priority: Priority, number: u64) {
        self.ready
            .push(Reverse((priority.rank(), number, slot, generation)));
    }

    fn draw_number(&mut self) -> u64 {
        let number = self.next_ready_number;
        self.next_ready_number += 1;
        number
    }

    fn signal(&self, core: &Core) {
        if self.sleepers > 0 {
            core.changed.notify_all();
        }
    }

    /// Frees a slot; returns the task (its future is to be dropped outside the lock).
    fn release(&mut self, slot: usize) -> Option<Task> {
        let entry = &mut self.slots[slot];
        let task = entry.task.take()?;
        entry.generation += 1;
        self.free.push(slot);
        self.live -= 1;
        Some(task)
    }

    /// Turns the notices into abandoned tasks, freed; their futures go to `graveyard`.
    fn collect_abandoned(&mut self, graveyard: &mut Vec<BoxedFuture>) {
        for (slot, generation) in mem::take(&mut self.notices) {
            let abandoned = self.task_mut(slot, generation).is_some_and(|task| {
                task.phase == Phase::Idle && task.token.strong_count() == 0
            });
            if abandoned {
                if let Some(future) = self.release(slot).and_then(|task| task.future) {
                    graveyard.push(future);
                }
            }
        }
    }

    /// Frees every task (after a shutdown); their futures go to `graveyard`.
    fn drain(&mut self, graveyard: &mut Vec<BoxedFuture>) {
        self.ready.clear();
        self.notices.clear();
        for slot in 0..self.slots.len() {
            if let Some(future) = self.release(slot).and_then(|task| task.future) {
                graveyard.push(future);
            }
        }
    }
}

/// What every waker of one task shares.
struct WakeToken {
    slot: usize,
    generation: u64,
    core: Weak<Core>,
}

impl Wake for WakeToken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(core) = self.core.upgrade() else {
            return; // the executor and its spawners are gone
        };
        let mut state = core.lock();
        let (slot, generation) = (self.slot, self.generation);
        let Some(task) = state.task_mut(slot, generation) else {
            return; // finished, abandoned or shut down
        };
        match task.phase {
            Phase::Idle => {
                task.phase = Phase::Queued;
                let priority = task.priority;
                let number = state.draw_number();
                state.make_ready(slot, generation, priority, number);
                state.signal(&core);
            }
            Phase::Polling(None) => {
                let number = state.draw_number();
                if let Some(task) = state.task_mut(slot, generation) {
                    task.phase = Phase::Polling(Some(number));
                }
            }
            Phase::Queued | Phase::Polling(Some(_)) => {}
        }
        drop(state);
        // `core` is dropped here, outside the lock.
    }
}

impl Drop for WakeToken {
    fn drop(&mut self) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let mut state = core.lock();
        if state.task_mut(self.slot, self.generation).is_some() {
            state.notices.push((self.slot, self.generation));
            state.signal(&core);
        }
        drop(state);
    }
}

/// Runs the tasks spawned through its [`Spawner`]s, on the thread that calls it.
pub struct Executor {
    core: Arc<Core>,
}

/// Spawns tasks onto its [`Executor`]; cheap to clone and usable from any thread.
#[derive(Clone)]
pub struct Spawner {
    ticket: Ticket,
}

/// One per `Spawner` clone: the executor counts them to know when every spawner is gone.
struct Ticket {
    core: Arc<Core>,
}

impl Clone for Ticket {
    fn clone(&self) -> Self {
        self.core.lock().spawner_tickets += 1;
        Ticket {
            core: Arc::clone(&self.core),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.core.lock();
        state.spawner_tickets -= 1;
        if state.spawner_tickets == 0 {
            state.signal(&self.core);
        }
    }
}

impl Spawner {
    /// Spawns a `Low` task.
    ///
    /// # Panics
    ///
    /// If every slot is taken (`too many tasks queued`) or the executor was shut down.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        if let Err(error) = self.try_spawn(future) {
            panic!("cannot spawn: {error}");
        }
    }

    /// Spawns a `Low` task, or says why not.
    pub fn try_spawn(
        &self,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SpawnError> {
        self.spawn_with_priority(Priority::Low, future)
    }

    /// Spawns a task with the given priority, or says why not.
    pub fn spawn_with_priority(
        &self,
        priority: Priority,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SpawnError> {
        let future: BoxedFuture = Box::pin(future);
        let core = &self.ticket.core;
        let mut state = core.lock();
        let refusal = if state.shut_down {
            Some(SpawnError::Shutdown)
        } else if state.live >= core.capacity {
            Some(SpawnError::QueueFull)
        } else {
            None
        };
        if let Some(error) = refusal {
            drop(state);
            drop(future); // its destructor may wake or spawn: not under the lock
            return Err(error);
        }
        let task = Task {
            priority,
            phase: Phase::Queued,
            future: Some(future),
            token: Weak::new(),
        };
        let slot = match state.free.pop() {
            Some(slot) => {
                state.slots[slot].task = Some(task);
                slot
            }
            None => {
                state.slots.push(Slot {
                    generation: 0,
                    task: Some(task),
                });
                state.slots.len() - 1
            }
        };
        let generation = state.slots[slot].generation;
        state.live += 1;
        state.metrics.spawned += 1;
        let number = state.draw_number();
        state.make_ready(slot, generation, priority, number);
        state.signal(core);
        Ok(())
    }

    /// Shuts the executor down: spawns fail from now on, and the running (or next) `run` /
    /// `run_until_stalled` drops every unfinished task and returns.
    pub fn shutdown(&self) {
        let mut state = self.ticket.core.lock();
        state.shut_down = true;
        state.signal(&self.ticket.core);
    }
}

/// A task taken out of its slot for one poll.
struct Job {
    slot: usize,
    generation: u64,
    future: BoxedFuture,
    waker: Waker,
}

/// What the run loop does next.
enum Step {
    Poll(Job),
    /// Shut down: these futures are to be dropped, then return.
    Stop(Vec<BoxedFuture>),
    /// Nothing ready (and `run` may return or sleep, as decided by the caller).
    Idle,
}

impl Executor {
    /// Polls ready tasks until every spawner is gone and no task can be woken any more, or
    /// until a shutdown.
    pub fn run(&self) {
        loop {
            match self.next_step(true) {
                Step::Poll(job) => self.poll_job(job),
                Step::Stop(graveyard) => {
                    drop(graveyard);
                    return;
                }
                Step::Idle => return,
            }
        }
    }

    /// Polls ready tasks until none is ready; returns how many polls it made. Never waits.
    pub fn run_until_stalled(&self) -> usize {
        let mut polls = 0;
        loop {
            match self.next_step(false) {
                Step::Poll(job) => {
                    self.poll_job(job);
                    polls += 1;
                }
                Step::Stop(graveyard) => {
                    drop(graveyard);
                    return polls;
                }
                Step::Idle => return polls,
            }
        }
    }

    /// The counters, up to date after every poll.
    pub fn metrics(&self) -> Metrics {
        self.core.lock().metrics
    }

    /// Picks the next task to poll. With `wait`, sleeps on the condvar while nothing is ready and
    /// `run` must not return yet; abandoned futures are dropped along the way, outside the lock.
    fn next_step(&self, wait: bool) -> Step {
        let core = &*self.core;
        let mut state = core.lock();
        loop {
            let mut graveyard = Vec::new();
            if state.shut_down {
                state.drain(&mut graveyard);
                return Step::Stop(graveyard);
            }
            state.collect_abandoned(&mut graveyard);
            if !graveyard.is_empty() {
                drop(state);
                drop(graveyard); // destructors may wake, spawn or drop wakers
                state = core.lock();
                continue;
            }
            if let Some(Reverse((_, _, slot, generation))) = state.ready.pop() {
                let Some(task) = state.task_mut(slot, generation) else {
                    continue;
                };
                task.phase = Phase::Polling(None);
                let Some(future) = task.future.take() else {
                    continue;
                };
                let token = match task.token.upgrade() {
                    Some(token) => token,
                    None => {
                        let token = Arc::new(WakeToken {
                            slot,
                            generation,
                            core: Arc::downgrade(&self.core),
                        });
                        task.token = Arc::downgrade(&token);
                        token
                    }
                };
                drop(state);
                return Step::Poll(Job {
                    slot,
                    generation,
                    future,
                    waker: Waker::from(token),
                });
            }
            if !wait || (state.spawner_tickets == 0 && state.live == 0) {
                return Step::Idle;
            }
            state.sleepers += 1;
            state = core
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.sleepers -= 1;
        }
    }

    fn poll_job(&self, job: Job) {
        let Job {
            slot,
            generation,
            mut future,
            waker,
        } = job;
        let started = Instant::now();
        let outcome = future.as_mut().poll(&mut Context::from_waker(&waker));
        let took = started.elapsed();
        // This poll's waker goes first (maybe the last one: its notice is read later).
        drop(waker);

        let mut state = self.core.lock();
        let metrics = &mut state.metrics;
        metrics.polls += 1;
        metrics.busy_time += took;
        metrics.max_poll_time = metrics.max_poll_time.max(took);
        let leftover = if outcome.is_ready() {
            state.metrics.completed += 1;
            state.release(slot);
            Some(future)
        } else if state.shut_down {
            // Dropped by the shutdown drain that follows; keep it in its slot until then.
            if let Some(task) = state.task_mut(slot, generation) {
                task.future = Some(future);
                task.phase = Phase::Idle;
            }
            None
        } else {
            let task = state
                .task_mut(slot, generation)
                .expect("a polled task keeps its slot");
            task.future = Some(future);
            match task.phase {
                Phase::Polling(Some(number)) => {
                    task.phase = Phase::Queued;
                    let priority = task.priority;
                    state.make_ready(slot, generation, priority, number);
                    None
                }
                _ if task.token.strong_count() == 0 => {
                    // No waker of it exists any more: abandoned.
                    state.release(slot).and_then(|task| task.future)
                }
                _ => {
                    task.phase = Phase::Idle;
                    None
                }
            }
        };
        drop(state);
        // A finished or abandoned future is dropped here, with no lock held.
        drop(leftover);
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let mut graveyard = Vec::new();
        self.core.lock().drain(&mut graveyard);
        drop(graveyard);
    }
}

#[cfg(test)]
mod tests;
