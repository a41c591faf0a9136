//! Exercises 2.3 and 2.4 with a task table: every task is a row of one `Vec` behind the executor's
//! lock, and each poll scans the table for the next ready task (High first, then the lowest
//! "became ready" number). That costs time linear in the number of tasks per poll, which the spec
//! allows. `spawn` checks and panics with the lock held (`lock().unwrap()` everywhere): after such
//! a panic the executor is poisoned, which the spec also allows (it promises nothing after it).
//!
//! A task's wakers are clones of one `Arc<TaskWaker>` that only the wakers own; the table keeps a
//! `Weak` to it. An idle task whose `Weak` is dead can never be woken again: it is abandoned, and
//! the next scan drops its future. The last waker's destructor signals the executor, so that a
//! sleeping `run` notices.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
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
        table: Mutex::new(Table::default()),
        changed: Condvar::new(),
    });
    let spawner = Spawner {
        core: Arc::clone(&core),
        _lease: Arc::new(Lease {
            core: Arc::clone(&core),
        }),
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
            SpawnError::Shutdown => "the executor has been shut down",
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

/// Runs the tasks spawned through its [`Spawner`]s, on the thread that calls it.
pub struct Executor {
    core: Arc<Core>,
}

/// Spawns tasks onto its [`Executor`]; cheap to clone and usable from any thread.
#[derive(Clone)]
pub struct Spawner {
    core: Arc<Core>,
    /// Shared by every clone: its drop means the last spawner is gone.
    _lease: Arc<Lease>,
}

/// Dropped with the last [`Spawner`] clone.
struct Lease {
    core: Arc<Core>,
}

/// What the executor, its spawners and (weakly) its wakers share.
struct Core {
    capacity: usize,
    table: Mutex<Table>,
    /// Signalled when a task becomes ready or is abandoned, when the last spawner goes, and on
    /// shutdown.
    changed: Condvar,
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every task, by row.
#[derive(Default)]
struct Table {
    rows: Vec<Option<Row>>,
    /// Indices of empty rows.
    free: Vec<usize>,
    /// The number of occupied rows: the live tasks.
    live: usize,
    /// Numbers the moments tasks become ready, for FIFO order within a priority.
    next_ready: u64,
    /// Tells a task from an earlier one in the same row.
    next_generation: u64,
    spawners_gone: bool,
    shut_down: bool,
    metrics: Metrics,
}

/// One task.
struct Row {
    generation: u64,
    priority: Priority,
    /// `None` while the task is being polled.
    future: Option<BoxFuture>,
    /// `Some(n)` while ready: it became ready as the `n`-th.
    ready: Option<u64>,
    /// Woken while being polled: ready again after the poll.
    notified: bool,
    /// The task's wakers, if any exists.
    waker: Weak<TaskWaker>,
}

/// The one object behind every clone of a task's waker.
struct TaskWaker {
    core: Weak<Core>,
    index: usize,
    generation: u64,
}

/// A task taken out of the table for a poll.
struct Taken {
    index: usize,
    generation: u64,
    future: BoxFuture,
    waker: Arc<TaskWaker>,
}

impl Table {
    fn row(&mut self, index: usize, generation: u64) -> Option<&mut Row> {
        self.rows
            .get_mut(index)?
            .as_mut()
            .filter(|row| row.generation == generation)
    }

    fn make_ready(&mut self, index: usize, generation: u64) -> bool {
        let next = self.next_ready;
        let Some(row) = self.row(index, generation) else {
            return false;
        };
        if row.future.is_none() {
            row.notified = true;
            return false;
        }
        if row.ready.is_some() {
            return false;
        }
        row.ready = Some(next);
        self.next_ready += 1;
        true
    }

    fn remove(&mut self, index: usize) -> Option<BoxFuture> {
        let row = self.rows[index].take()?;
        self.free.push(index);
        self.live -= 1;
        row.future
    }

    /// Removes every idle task that no waker can reach any more, and returns their futures.
    fn take_abandoned(&mut self) -> Vec<BoxFuture> {
        let abandoned: Vec<usize> = (0..self.rows.len())
            .filter(|&i| {
                self.rows[i].as_ref().is_some_and(|row| {
                    row.future.is_some() && row.ready.is_none() && row.waker.strong_count() == 0
                })
            })
            .collect();
        abandoned
            .into_iter()
            .filter_map(|i| self.remove(i))
            .collect()
    }

    /// The index of the next task to poll: a ready High task if any, else a ready Low task,
    /// the one that became ready first.
    fn pick(&self) -> Option<usize> {
        self.rows
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let row = row.as_ref()?;
                Some((row.priority != Priority::High, row.ready?, i))
            })
            .min()
            .map(|(_, _, i)| i)
    }

    /// Removes every task, for a shutdown, and returns their futures.
    fn take_all(&mut self) -> Vec<BoxFuture> {
        (0..self.rows.len())
            .filter_map(|i| self.remove(i))
            .collect()
    }
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap()
    }

    fn admit(
        &self,
        table: &mut Table,
        priority: Priority,
        future: BoxFuture,
    ) -> Result<(), (SpawnError, BoxFuture)> {
        if table.shut_down {
            return Err((SpawnError::Shutdown, future));
        }
        if table.live >= self.capacity {
            return Err((SpawnError::QueueFull, future));
        }
        let generation = table.next_generation;
        table.next_generation += 1;
        let row = Row {
            generation,
            priority,
            future: Some(future),
            ready: Some(table.next_ready),
            notified: false,
            waker: Weak::new(),
        };
        table.next_ready += 1;
        match table.free.pop() {
            Some(index) => table.rows[index] = Some(row),
            None => table.rows.push(Some(row)),
        }
        table.live += 1;
        table.metrics.spawned += 1;
        self.changed.notify_all();
        Ok(())
    }

    /// Drops every task's future if the executor has shut down.
    fn drop_all_after_shutdown(&self) {
        let futures = {
            let mut table = self.lock();
            if !table.shut_down {
                return;
            }
            table.take_all()
        };
        // Outside the lock: destructors may wake or spawn.
        drop(futures);
    }
}

impl Spawner {
    /// Spawns a task with [`Priority::Low`].
    ///
    /// # Panics
    ///
    /// When the executor is full ("too many tasks queued") or has shut down.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        let mut table = self.core.lock();
        if let Err((error, _future)) = self.core.admit(&mut table, Priority::Low, Box::pin(future))
        {
            match error {
                SpawnError::QueueFull => panic!("too many tasks queued"),
                SpawnError::Shutdown => panic!("cannot spawn: the executor was shut down"),
            }
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
        let admitted = {
            let mut table = self.core.lock();
            self.core.admit(&mut table, priority, Box::pin(future))
        };
        // A refused future is dropped here, after the lock is released.
        admitted.map_err(|(error, _future)| error)
    }

    /// Shuts the executor down: spawning fails from now on, and the running (or next) `run` or
    /// `run_until_stalled` returns after the poll in progress, dropping every unfinished task.
    pub fn shutdown(&self) {
        self.core.lock().shut_down = true;
        self.core.changed.notify_all();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.core.lock().spawners_gone = true;
        self.core.changed.notify_all();
    }
}

impl Executor {
    /// Polls tasks until every spawner is gone and no unfinished task can be woken any more,
    /// or until shutdown. Sleeps while no task is ready.
    pub fn run(&self) {
        while let Some(taken) = self.next(true) {
            self.poll(taken);
        }
        self.core.drop_all_after_shutdown();
    }

    /// Polls tasks until none is ready (or until shutdown), without ever waiting for a wake,
    /// and returns how many polls it made.
    pub fn run_until_stalled(&self) -> usize {
        let mut polls = 0;
        while let Some(taken) = self.next(false) {
            self.poll(taken);
            polls += 1;
        }
        self.core.drop_all_after_shutdown();
        polls
    }

    /// Returns the counters as of the last poll or spawn.
    pub fn metrics(&self) -> Metrics {
        self.core.lock().metrics
    }

    /// Takes the next ready task out of the table. `None`: shut down, or nothing is ready and
    /// (if `block`) nothing can become ready any more.
    fn next(&self, block: bool) -> Option<Taken> {
        let mut table = self.core.lock();
        loop {
            if table.shut_down {
                return None;
            }
            let abandoned = table.take_abandoned();
            if !abandoned.is_empty() {
                drop(table);
                // Outside the lock: their destructors may wake or spawn.
                drop(abandoned);
                table = self.core.lock();
                continue;
            }
            if let Some(index) = table.pick() {
                let row = table.rows[index].as_mut().expect("picked a live row");
                row.ready = None;
                row.notified = false;
                let future = row.future.take().expect("a ready task is not being polled");
                let waker = row.waker.upgrade().unwrap_or_else(|| {
                    Arc::new(TaskWaker {
                        core: Arc::downgrade(&self.core),
                        index,
                        generation: row.generation,
                    })
                });
                row.waker = Arc::downgrade(&waker);
                return Some(Taken {
                    index,
                    generation: row.generation,
                    future,
                    waker,
                });
            }
            if !block || (table.spawners_gone && table.live == 0) {
                return None;
            }
            table = self.core.changed.wait(table).unwrap();
        }
    }

    /// Polls a taken task once and puts it back (or removes it, if it finished).
    fn poll(&self, taken: Taken) {
        let Taken {
            index,
            generation,
            mut future,
            waker,
        } = taken;
        let task_waker = Waker::from(Arc::clone(&waker));
        let started = Instant::now();
        let poll = future.as_mut().poll(&mut Context::from_waker(&task_waker));
        let time = started.elapsed();

        let mut table = self.core.lock();
        let metrics = &mut table.metrics;
        metrics.polls += 1;
        metrics.busy_time += time;
        metrics.max_poll_time = metrics.max_poll_time.max(time);
        let finished = if poll.is_ready() {
            table.metrics.completed += 1;
            table.remove(index);
            Some(future)
        } else {
            let next = table.next_ready;
            let row = table
                .row(index, generation)
                .expect("a polled task keeps its row");
            row.future = Some(future);
            if row.notified {
                row.notified = false;
                row.ready = Some(next);
                table.next_ready += 1;
            }
            None
        };
        drop(table);
        // Outside the lock: the finished future's destructor, and the last waker's (whose drop
        // locks the table), may run here.
        drop(finished);
        drop(task_waker);
        drop(waker);
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(core) = self.core.upgrade() else {
            return; // The executor and its spawners are gone.
        };
        let readied = core.lock().make_ready(self.index, self.generation);
        if readied {
            core.changed.notify_all();
        }
    }
}

impl Drop for TaskWaker {
    fn drop(&mut self) {
        // The task's last waker: if it is idle, it is abandoned, which may end `run`. Taking the
        // lock orders this signal after `run`'s look at the table.
        if let Some(core) = self.core.upgrade() {
            drop(core.lock());
            core.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests;
