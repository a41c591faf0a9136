//! Exercise 2.2: timers that wake their task from another thread. All timers share one
//! background thread that keeps their deadlines in a min-heap and sleeps on a condition
//! variable until the earliest one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// The state one timer shares with the timer thread.
#[derive(Default)]
struct Slot {
    fired: bool,
    waker: Option<Waker>,
}

/// Deadlines of the armed timers, earliest first. A cancelled timer leaves its heap entry
/// behind but is no longer in `armed`, so the thread skips it.
struct Schedule {
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    armed: BTreeMap<u64, Arc<Mutex<Slot>>>,
    next_id: u64,
    thread_started: bool,
}

/// The one timer thread of the process and the schedule it works through.
struct Driver {
    schedule: Mutex<Schedule>,
    changed: Condvar,
}

static DRIVER: Driver = Driver {
    schedule: Mutex::new(Schedule {
        deadlines: BinaryHeap::new(),
        armed: BTreeMap::new(),
        next_id: 0,
        thread_started: false,
    }),
    changed: Condvar::new(),
};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No foreign code runs under these locks, so a poisoned one still holds valid state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Driver {
    /// Schedules `slot` to fire at `deadline` and returns the id that cancels it.
    fn arm(&'static self, deadline: Instant, slot: Arc<Mutex<Slot>>) -> u64 {
        let mut schedule = lock(&self.schedule);
        let id = schedule.next_id;
        schedule.next_id += 1;
        schedule.armed.insert(id, slot);
        schedule.deadlines.push(Reverse((deadline, id)));
        if !schedule.thread_started {
            schedule.thread_started = true;
            thread::Builder::new()
                .name("timer-driver".into())
                .spawn(|| DRIVER.work())
                .expect("failed to start the timer thread");
        }
        let earliest = schedule.deadlines.peek().map(|Reverse((_, first))| *first);
        drop(schedule);
        // Only a new earliest deadline shortens the thread's current sleep.
        if earliest == Some(id) {
            self.changed.notify_one();
        }
        id
    }

    /// Forgets timer `id`; its slot is released outside the lock, since dropping a waker can
    /// drop a whole task, whose timers would then cancel themselves here too.
    fn cancel(&self, id: u64) {
        let mut schedule = lock(&self.schedule);
        let released = schedule.armed.remove(&id);
        // Keep the heap from filling up with entries of cancelled long timers.
        if schedule.deadlines.len() > 2 * schedule.armed.len() + 64 {
            let Schedule {
                deadlines, armed, ..
            } = &mut *schedule;
            deadlines.retain(|Reverse((_, id))| armed.contains_key(id));
        }
        drop(schedule);
        drop(released);
    }

    /// The timer thread: fires every due timer, then sleeps until the next deadline.
    fn work(&self) {
        let mut schedule = lock(&self.schedule);
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(&Reverse((deadline, id))) = schedule.deadlines.peek() {
                if deadline > now {
                    break;
                }
                schedule.deadlines.pop();
                due.extend(schedule.armed.remove(&id));
            }
            if !due.is_empty() {
                // Wakes run foreign code (and may drop tasks that cancel timers): no lock held.
                drop(schedule);
                due.iter().for_each(fire);
                drop(due);
                schedule = lock(&self.schedule);
                continue;
            }
            schedule = match schedule.deadlines.peek() {
                Some(&Reverse((deadline, _))) => {
                    let timeout = deadline.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(schedule, timeout)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .changed
                    .wait(schedule)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// Marks a slot as fired and wakes the waker of its latest pending poll.
fn fire(slot: &Arc<Mutex<Slot>>) {
    let waker = {
        let mut slot = lock(slot);
        slot.fired = true;
        slot.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// A future that becomes ready `duration` after it was created; the shared timer thread
/// wakes its task.
pub struct TimerFuture {
    slot: Arc<Mutex<Slot>>,
    id: u64,
}

impl TimerFuture {
    /// Starts a timer that fires `duration` from now.
    pub fn new(duration: Duration) -> Self {
        let deadline = Instant::now() + duration;
        let slot = Arc::new(Mutex::new(Slot::default()));
        let id = DRIVER.arm(deadline, Arc::clone(&slot));
        Self { slot, id }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let slot = lock(&self.slot);
        if slot.fired {
            return Poll::Ready(());
        }
        if slot
            .waker
            .as_ref()
            .is_some_and(|stored| stored.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        // Clone outside the lock (a clone is foreign code), then check and store under it
        // together, so the thread cannot fire in between.
        drop(slot);
        let fresh = cx.waker().clone();
        let mut slot = lock(&self.slot);
        if slot.fired {
            return Poll::Ready(());
        }
        let stale = slot.waker.replace(fresh);
        drop(slot);
        drop(stale);
        Poll::Pending
    }
}

impl Drop for TimerFuture {
    fn drop(&mut self) {
        DRIVER.cancel(self.id);
        // The waker goes at once, even though the thread may still hold a heap entry.
        let waker = lock(&self.slot).waker.take();
        drop(waker);
    }
}

/// Races several [`TimerFuture`]s and returns the index of the first to fire.
pub struct FirstTimer {
    /// `None` once a winner was returned: the losers (and their wakers) are gone by then.
    racing: Option<Vec<TimerFuture>>,
}

impl FirstTimer {
    /// Starts one timer per duration. Panics if `durations` is empty.
    pub fn new(durations: &[Duration]) -> Self {
        let racing: Vec<_> = durations.iter().map(|&d| TimerFuture::new(d)).collect();
        assert!(!racing.is_empty(), "FirstTimer::new: nothing to race");
        FirstTimer {
            racing: Some(racing),
        }
    }
}

impl Future for FirstTimer {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let racing = self
            .racing
            .as_mut()
            .expect("FirstTimer polled after it returned Ready");
        // In index order, so the lowest fired index wins; every timer before the winner (all
        // of them, if none fired) now holds this poll's waker.
        let mut winner = None;
        for (index, timer) in racing.iter_mut().enumerate() {
            if Pin::new(timer).poll(cx).is_ready() {
                winner = Some(index);
                break;
            }
        }
        let Some(index) = winner else {
            return Poll::Pending;
        };
        self.racing = None;
        Poll::Ready(index)
    }
}

#[cfg(test)]
mod tests;
