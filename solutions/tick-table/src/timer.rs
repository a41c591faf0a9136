//! Exercise 2.2 with one shared timer thread that ticks every 10 ms: every `TimerFuture` of the
//! process registers its deadline in one list, and each tick fires the timers that are due. A
//! timer therefore fires up to one tick after its deadline, which the spec allows (it promises no
//! precision), in exchange for a single thread however many timers exist.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// How often the timer thread looks for due timers.
const TICK: Duration = Duration::from_millis(10);

/// What a [`TimerFuture`] shares with the timer thread.
#[derive(Default)]
struct Slot {
    fired: bool,
    /// The waker of the most recent pending poll.
    waker: Option<Waker>,
}

/// A registered timer: its deadline and its slot.
struct Armed {
    deadline: Instant,
    slot: Arc<Mutex<Slot>>,
}

/// The timers of the whole process, waiting for their deadline.
fn armed() -> &'static Mutex<Vec<Armed>> {
    static ARMED: OnceLock<Mutex<Vec<Armed>>> = OnceLock::new();
    ARMED.get_or_init(|| {
        thread::spawn(tick_forever);
        Mutex::new(Vec::new())
    })
}

/// The timer thread: every tick, fires the timers whose deadline has passed.
fn tick_forever() {
    loop {
        thread::sleep(TICK);
        let now = Instant::now();
        let due: Vec<Arc<Mutex<Slot>>> = {
            let mut armed = armed().lock().unwrap();
            let (due, waiting) = armed.drain(..).partition(|a| a.deadline <= now);
            *armed = waiting;
            due.into_iter().map(|a: Armed| a.slot).collect()
        };
        for slot in due {
            // Fired first, then woken: a task polled as soon as it is woken must see it fired.
            let waker = {
                let mut slot = slot.lock().unwrap();
                slot.fired = true;
                slot.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// A future that completes once a duration has passed since it was created.
pub struct TimerFuture {
    slot: Arc<Mutex<Slot>>,
}

impl TimerFuture {
    /// Starts a timer that fires after `duration` (at the first tick after it).
    pub fn new(duration: Duration) -> Self {
        let slot = Arc::new(Mutex::new(Slot::default()));
        armed().lock().unwrap().push(Armed {
            deadline: Instant::now() + duration,
            slot: Arc::clone(&slot),
        });
        Self { slot }
    }
}

impl Future for TimerFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Checked and stored under one lock, which the timer thread takes to fire: it cannot
        // fire in between.
        let mut slot = self.slot.lock().unwrap();
        if slot.fired {
            return Poll::Ready(());
        }
        let older = slot.waker.replace(cx.waker().clone());
        drop(slot);
        // Dropping a waker may drop a whole task: not while holding the lock.
        drop(older);
        Poll::Pending
    }
}

impl Drop for TimerFuture {
    fn drop(&mut self) {
        // The list keeps the slot until the deadline, but the slot must not keep the task alive.
        let waker = self.slot.lock().unwrap().waker.take();
        drop(waker);
    }
}

/// A race of timers: completes with the index of the first one to fire.
pub struct FirstTimer {
    /// Emptied once the race is decided, which releases every timer's waker.
    timers: Vec<TimerFuture>,
}

impl FirstTimer {
    /// Starts one timer per duration.
    ///
    /// # Panics
    ///
    /// If `durations` is empty.
    pub fn new(durations: &[Duration]) -> Self {
        assert!(!durations.is_empty(), "FirstTimer needs a duration");
        Self {
            timers: durations.iter().map(|&d| TimerFuture::new(d)).collect(),
        }
    }
}

impl Future for FirstTimer {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        // Every timer is polled (so every pending one holds this poll's waker); the lowest
        // fired index wins.
        let mut winner = None;
        for (index, timer) in self.timers.iter_mut().enumerate() {
            if Pin::new(timer).poll(cx).is_ready() && winner.is_none() {
                winner = Some(index);
            }
        }
        match winner {
            Some(index) => {
                self.timers.clear();
                Poll::Ready(index)
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
