//! Shared harness of the hidden tests (see `tests/all/` and `rubric.toml`): a watchdog that turns a
//! hang into its own verdict, wakers that count their wakes and live clones (and can run a hook
//! when cloned), a correct test-double future ([`Gate`]) and small probes for drops and logs.
//!
//! Every helper here is correct by construction, so that a failing hidden test always points at
//! the student's crate. Each test runs alone in its own process.

use std::any::Any;
use std::future::Future;
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::process;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// How long a watchdog waits before it declares a hang: far longer than any test needs on a
/// correct solution, even on a loaded machine.
pub const HANG_SECS: u64 = 5;

/// How long a test waits for something that a correct solution makes happen (a wake, a poll, a
/// helper thread's progress) before it ends as a [`hang`].
pub const WAIT: Duration = Duration::from_secs(HANG_SECS);

/// The exit code of a test process that ended in [`hang`]: the grader reports it as a timeout, not
/// as a failed assertion (a panic exits with 101, an abort dies by a signal, and the student's
/// crate may not call `std::process`, so no other path produces it). The grader's runner has the
/// same constant.
pub const HANG_EXIT_CODE: i32 = 124;

/// Starts the line [`hang`] writes to stderr; the grader reads only the explanation from it (the
/// operation and the time waited), never the verdict.
pub const HANG_MARKER: &str = "hidden-tests hang:";

/// Ends the test process as a hang: `what` (the operation, in words a student can act on, e.g.
/// "run() with the custom futures") did not finish within `secs` seconds.
///
/// The process exits with [`HANG_EXIT_CODE`] rather than panicking: unwinding would drop the
/// test's spawners, wakers and executors, whose destructors may block on the very lock that a hung
/// thread holds.
pub fn hang(what: &str, secs: u64) -> ! {
    hang_after(what, Duration::from_secs(secs))
}

fn hang_after(what: &str, waited: Duration) -> ! {
    // Straight to the process's stderr: libtest's capture of `eprintln!` is never flushed when the
    // process exits.
    let _ = writeln!(
        io::stderr(),
        "{HANG_MARKER} {:.1} s waiting for {what}",
        waited.as_secs_f64()
    );
    process::exit(HANG_EXIT_CODE)
}

/// Waits for something that a correct solution makes happen: `wait(timeout)` returns whether it
/// happened in time (e.g. `|t| probe.wait_for_wakes(1, t)`). If it did not, the test ends as a
/// [`hang`] of `what`: a wake that never comes is a hang, not a failed assertion.
pub fn expect_within(what: &str, timeout: Duration, wait: impl FnOnce(Duration) -> bool) {
    if !wait(timeout) {
        hang_after(what, timeout)
    }
}

/// Runs `body` on its own thread and returns its result; a panic in `body` is re-raised here, and
/// a body that has not finished after `secs` seconds ends the test as a [`hang`] of `what` instead
/// of blocking the test process until the grader kills it.
pub fn with_watchdog<T: Send + 'static>(
    secs: u64,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let value = watchdog(
        secs,
        what,
        Box::new(move || Box::new(body()) as Box<dyn Any + Send>),
    );
    *value
        .downcast::<T>()
        .expect("the watchdog hands back what the body returned")
}

/// [`with_watchdog`] with the body and its result boxed: the thread, the channel and the unwinding
/// are compiled once, here (this library sits in the grader's warm cache), instead of once per call
/// site in the test binary that every submission compiles anew. That cut its monomorphised
/// functions from 6725 to 4258 and its build from about 2.1 s to 1.7 s.
fn watchdog(
    secs: u64,
    what: &str,
    body: Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>,
) -> Box<dyn Any + Send> {
    let (done, outcome) = mpsc::channel();
    thread::spawn(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(body));
        let _ = done.send(result);
    });
    match outcome.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(RecvTimeoutError::Timeout) => hang(what, secs),
        Err(RecvTimeoutError::Disconnected) => unreachable!("the watchdog's body always reports"),
    }
}

/// Polls a pinned future once with `waker`.
pub fn poll_with<F: Future + ?Sized>(future: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(waker))
}

/// The CPU time the calling thread has used so far (from `/proc/thread-self/schedstat`), or `None`
/// where that file cannot be read (then callers skip their CPU check).
pub fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Wakes a fresh clone of `waker` by value: the path `waker.clone().wake()` takes through a waker's
/// `clone` and `wake` (consuming) functions, which `wake_by_ref` skips.
pub fn wake_a_clone(waker: &Waker) {
    let clone = waker.clone();
    clone.wake();
}

/// Runs `f` and returns the message of the panic it raised, or `None` if it returned normally.
pub fn panic_message_of(f: impl FnOnce()) -> Option<String> {
    let payload: Box<dyn Any + Send> = panic::catch_unwind(AssertUnwindSafe(f)).err()?;
    Some(if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        String::from("<a panic payload that is not a string>")
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere in a test must not turn every later lock into a second panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `changed` until `done(&state)` holds or `timeout` has passed; returns whether it holds.
fn wait_until<T>(
    mutex: &Mutex<T>,
    changed: &Condvar,
    timeout: Duration,
    done: impl Fn(&T) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut state = lock(mutex);
    while !done(&state) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        state = changed
            .wait_timeout(state, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    true
}

/// What a probe waker has seen: how often it was woken and how many of its wakers exist.
#[derive(Default)]
struct WakerCounts {
    wakes: usize,
    live: usize,
}

type CloneHook = Box<dyn FnOnce() + Send>;

struct ProbeInner {
    counts: Mutex<WakerCounts>,
    changed: Condvar,
    /// Run (once) by the first clone of the waker, on the cloning thread.
    clone_hook: Mutex<Option<CloneHook>>,
}

/// Observes the wakers made by [`probe_waker`] or [`hooked_waker`]: their wakes and how many of
/// them are alive (a future that stores a waker holds a clone; dropping the future must drop it).
#[derive(Clone)]
pub struct WakeProbe {
    inner: Arc<ProbeInner>,
}

impl WakeProbe {
    /// How many times any of the wakers was woken (`wake` or `wake_by_ref`).
    pub fn wakes(&self) -> usize {
        lock(&self.inner.counts).wakes
    }

    /// How many of the wakers (the original and its clones) exist right now.
    pub fn live_wakers(&self) -> usize {
        lock(&self.inner.counts).live
    }

    /// Waits until the wakers have been woken at least `n` times in all; false on timeout.
    pub fn wait_for_wakes(&self, n: usize, timeout: Duration) -> bool {
        wait_until(&self.inner.counts, &self.inner.changed, timeout, |c| {
            c.wakes >= n
        })
    }

    /// Waits until at most `n` of the wakers exist; false on timeout.
    pub fn wait_live_at_most(&self, n: usize, timeout: Duration) -> bool {
        wait_until(&self.inner.counts, &self.inner.changed, timeout, |c| {
            c.live <= n
        })
    }
}

/// A waker that counts its wakes and its live clones, and its [`WakeProbe`].
pub fn probe_waker() -> (Waker, WakeProbe) {
    make_probe_waker(None)
}

/// Like [`probe_waker`], but the first clone of the waker runs `on_first_clone` (on the cloning
/// thread, before the clone is handed out). A future stores a waker by cloning it, so this opens
/// a deterministic window between a future's "not ready yet" check and the store of its waker.
pub fn hooked_waker(on_first_clone: impl FnOnce() + Send + 'static) -> (Waker, WakeProbe) {
    make_probe_waker(Some(Box::new(on_first_clone)))
}

fn make_probe_waker(hook: Option<CloneHook>) -> (Waker, WakeProbe) {
    let inner = Arc::new(ProbeInner {
        counts: Mutex::new(WakerCounts { wakes: 0, live: 1 }),
        changed: Condvar::new(),
        clone_hook: Mutex::new(hook),
    });
    let raw = RawWaker::new(Arc::into_raw(Arc::clone(&inner)).cast(), &PROBE_VTABLE);
    // SAFETY: `raw` owns one strong count of a live `ProbeInner`, and `PROBE_VTABLE` treats
    // its data pointer exactly as such (see the functions below).
    let waker = unsafe { Waker::from_raw(raw) };
    (waker, WakeProbe { inner })
}

static PROBE_VTABLE: RawWakerVTable =
    RawWakerVTable::new(probe_clone, probe_wake, probe_wake_by_ref, probe_drop);

/// # Safety
/// `data` must come from `Arc::<ProbeInner>::into_raw` and own a strong count that is still live.
unsafe fn probe_inner<'a>(data: *const ()) -> &'a ProbeInner {
    &*data.cast::<ProbeInner>()
}

unsafe fn probe_clone(data: *const ()) -> RawWaker {
    Arc::increment_strong_count(data.cast::<ProbeInner>());
    let inner = probe_inner(data);
    lock(&inner.counts).live += 1;
    inner.changed.notify_all();
    let hook = lock(&inner.clone_hook).take();
    if let Some(hook) = hook {
        hook();
    }
    RawWaker::new(data, &PROBE_VTABLE)
}

unsafe fn probe_wake(data: *const ()) {
    probe_wake_by_ref(data);
    probe_drop(data);
}

unsafe fn probe_wake_by_ref(data: *const ()) {
    let inner = probe_inner(data);
    lock(&inner.counts).wakes += 1;
    inner.changed.notify_all();
}

unsafe fn probe_drop(data: *const ()) {
    let inner = probe_inner(data);
    lock(&inner.counts).live -= 1;
    inner.changed.notify_all();
    // Last, so that `inner` is alive while it is used above.
    Arc::decrement_strong_count(data.cast::<ProbeInner>());
}

#[derive(Default)]
struct GateState {
    open: bool,
    polls: usize,
    waker: Option<Waker>,
}

#[derive(Default)]
struct GateInner {
    state: Mutex<GateState>,
    changed: Condvar,
}

/// A correct, observable one-shot event (the test's own `ManualFuture`): [`Gate::wait`] futures
/// are pending until [`Gate::open`]; the gate keeps the waker of the latest pending poll, which
/// the test can wake, take or drop, and counts the polls.
#[derive(Clone, Default)]
pub struct Gate {
    inner: Arc<GateInner>,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// A future that is ready once the gate is open. It holds a reference to the gate, not the
    /// other way round: only the waker it stores is kept by the gate.
    pub fn wait(&self) -> GateWait {
        GateWait { gate: self.clone() }
    }

    /// Opens the gate and wakes the stored waker (outside the lock, as a wake may poll).
    pub fn open(&self) {
        let waker = {
            let mut state = lock(&self.inner.state);
            state.open = true;
            state.waker.take()
        };
        self.inner.changed.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes the stored waker without opening the gate (a spurious wake); false if none is stored.
    pub fn wake(&self) -> bool {
        let waker = lock(&self.inner.state).waker.clone();
        waker.map(Waker::wake).is_some()
    }

    /// Takes the stored waker out of the gate, if any.
    pub fn take_waker(&self) -> Option<Waker> {
        lock(&self.inner.state).waker.take()
    }

    /// How many times futures of this gate have been polled.
    pub fn polls(&self) -> usize {
        lock(&self.inner.state).polls
    }

    /// Waits until futures of this gate have been polled `n` times in all; false on timeout.
    pub fn wait_for_polls(&self, n: usize, timeout: Duration) -> bool {
        wait_until(&self.inner.state, &self.inner.changed, timeout, |s| {
            s.polls >= n
        })
    }
}

/// The future of [`Gate::wait`].
pub struct GateWait {
    gate: Gate,
}

impl Future for GateWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.gate.inner.state);
        state.polls += 1;
        let ready = state.open;
        if !ready {
            state.waker = Some(cx.waker().clone());
        }
        drop(state);
        self.gate.inner.changed.notify_all();
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A flag shared between a test and the futures it spawns (e.g. "this future was dropped").
#[derive(Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    /// An unset flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// A guard that sets the flag when it is dropped: move it into a future to learn when the
    /// future's destructor has run.
    pub fn set_on_drop(&self) -> OnDrop<impl FnOnce() + Send + 'static> {
        let flag = self.clone();
        on_drop(move || flag.set())
    }
}

/// A counter shared between a test and the futures it spawns.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one and returns the new value.
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The current value.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A task that waits for `gate` to open, then bumps `done`: pending on a wake that the test
/// controls.
pub fn bump_when_open(gate: &Gate, done: &Counter) -> impl Future<Output = ()> + Send + 'static {
    let (wait, done) = (gate.wait(), done.clone());
    async move {
        wait.await;
        done.bump();
    }
}

/// Opens `gate` from a helper thread `delay` after a future of the gate was first polled (never,
/// if none is polled within [`WAIT`]): a wake from outside the executor, once its task waits.
pub fn open_from_another_thread(gate: &Gate, delay: Duration) {
    let gate = gate.clone();
    thread::spawn(move || {
        if gate.wait_for_polls(1, WAIT) {
            thread::sleep(delay);
            gate.open();
        }
    });
}

/// A task whose first poll hands a clone of its waker to a helper thread and returns `Pending`
/// only once that thread's wake has returned; its second poll is ready. `polls` counts its polls.
/// A wake that has not returned within [`WAIT`] is stuck until the poll ends (the executor holds a
/// lock across the poll that the wake needs), so the test ends as a [`hang`].
pub fn woken_by_another_thread_during_poll(
    polls: Counter,
) -> impl Future<Output = ()> + Send + 'static {
    let (waker_tx, waker_rx) = mpsc::channel::<Waker>();
    let (woken_tx, woken_rx) = mpsc::channel();
    thread::spawn(move || {
        for waker in waker_rx {
            waker.wake();
            let _ = woken_tx.send(());
        }
    });
    futures::future::poll_fn(move |cx| {
        if polls.bump() > 1 {
            return Poll::Ready(());
        }
        let _ = waker_tx.send(cx.waker().clone());
        if woken_rx.recv_timeout(WAIT).is_err() {
            hang(
                "a wake from another thread while the task was being polled",
                HANG_SECS,
            );
        }
        Poll::Pending
    })
}

/// An append-only log shared between a test and its futures, e.g. the order in which tasks were
/// polled.
#[derive(Clone)]
pub struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Log<T> {
    /// An empty log.
    pub fn new() -> Self {
        Log(Arc::new(Mutex::new(Vec::new())))
    }

    /// Appends an entry.
    pub fn push(&self, entry: T) {
        lock(&self.0).push(entry);
    }

    /// The entries so far.
    pub fn entries(&self) -> Vec<T> {
        lock(&self.0).clone()
    }
}

impl<T: Clone> Default for Log<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs a closure when dropped; see [`on_drop`].
pub struct OnDrop<F: FnOnce()>(Option<F>);

/// A guard that runs `f` when it is dropped (for futures whose destructor must do something).
pub fn on_drop<F: FnOnce()>(f: F) -> OnDrop<F> {
    OnDrop(Some(f))
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// A future that wakes its own task and returns `Pending` on its first `pending_polls` polls, then
/// returns `Ready(())`, adding every poll to `polls` (what `CountdownFuture` does, done right).
pub fn self_waking(pending_polls: usize, polls: Counter) -> impl Future<Output = ()> + Send {
    let mut own_polls = 0;
    futures::future::poll_fn(move |cx| {
        polls.bump();
        own_polls += 1;
        if own_polls > pending_polls {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

type WakeHook = Box<dyn FnOnce() + Send>;

/// The waker of [`wake_hooked_waker`]: runs its hook on the first wake, then wakes its probe.
struct WakeHooked {
    hook: Mutex<Option<WakeHook>>,
    probe: Waker,
}

impl std::task::Wake for WakeHooked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let hook = lock(&self.hook).take();
        if let Some(hook) = hook {
            hook();
        }
        self.probe.wake_by_ref();
    }
}

/// A waker whose first wake (`wake` or `wake_by_ref`, on any clone) runs `on_first_wake` on the
/// waking thread before the wake is counted by the returned [`WakeProbe`]. The hook sees the world
/// exactly as the woken task would if it were polled at once: a deterministic window right after
/// the wake.
pub fn wake_hooked_waker(on_first_wake: impl FnOnce() + Send + 'static) -> (Waker, WakeProbe) {
    let (probe, probe_handle) = probe_waker();
    let hooked = Arc::new(WakeHooked {
        hook: Mutex::new(Some(Box::new(on_first_wake))),
        probe,
    });
    (Waker::from(hooked), probe_handle)
}

/// What [`poll_during_its_wake`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum PolledDuringWake<T> {
    /// The first poll was already ready: nothing was checked (the caller may try again).
    AlreadyReady,
    /// The first poll pended, and its waker was never woken.
    NeverWoken,
    /// The poll made during the wake was ready, or pended and its waker was woken later, after
    /// which the next poll was ready: the output.
    Ready(T),
    /// The poll made during the wake pended, and its waker was never woken: a lost wake.
    MissedWake,
    /// Woken after the poll made during the wake, the next poll still pended.
    PendingAfterWake,
}

/// Polls `future` once with a waker A; if it pends, calls `fire` (which must make the future
/// ready and wake A, e.g. `complete`, or nothing for a timer that fires by itself). A's wake has
/// another thread poll the future with a waker B, and waits (up to 1 s) for that poll, so the poll
/// happens as soon as the wake does, as an executor on another thread may do it. A future that
/// publishes its value before it wakes is then `Ready`; one that wakes first stores B and pends,
/// and B must then be woken. Waits up to [`HANG_SECS`] for each wake.
pub fn poll_during_its_wake<F>(future: F, fire: impl FnOnce()) -> PolledDuringWake<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let wait = Duration::from_secs(HANG_SECS);
    let future = Arc::new(Mutex::new(Box::pin(future)));
    let (b, b_probe) = probe_waker();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (polled_tx, polled_rx) = mpsc::channel::<()>();
    let (result_tx, result_rx) = mpsc::channel();
    let polled_future = Arc::clone(&future);
    let b_for_poller = b.clone();
    thread::spawn(move || {
        if go_rx.recv().is_ok() {
            let poll = poll_with(lock(&polled_future).as_mut(), &b_for_poller);
            let _ = result_tx.send(poll);
            let _ = polled_tx.send(());
        }
    });
    let (a, a_probe) = wake_hooked_waker(move || {
        let _ = go_tx.send(());
        // A future that wakes while holding its own lock makes this poll wait for the wake to
        // return: hence the bound, after which the poll goes on by itself.
        let _ = polled_rx.recv_timeout(Duration::from_secs(1));
    });
    if poll_with(lock(&future).as_mut(), &a).is_ready() {
        return PolledDuringWake::AlreadyReady;
    }
    fire();
    if !a_probe.wait_for_wakes(1, wait) {
        return PolledDuringWake::NeverWoken;
    }
    let Ok(poll) = result_rx.recv_timeout(wait) else {
        // The poll during the wake never returned: the watchdog of the caller reports the hang.
        return PolledDuringWake::NeverWoken;
    };
    if let Poll::Ready(value) = poll {
        return PolledDuringWake::Ready(value);
    }
    if !b_probe.wait_for_wakes(1, wait) {
        return PolledDuringWake::MissedWake;
    }
    let poll = poll_with(lock(&future).as_mut(), &b);
    match poll {
        Poll::Ready(value) => PolledDuringWake::Ready(value),
        Poll::Pending => PolledDuringWake::PendingAfterWake,
    }
}

/// The calling thread's id as `/proc/self/task/<id>` names it, or `None` where `/proc` cannot be
/// read (then [`wait_until_asleep`] falls back to a pause).
pub fn proc_thread_id() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    Some(link.file_name()?.to_str()?.to_owned())
}

/// Waits (up to `timeout`) until the thread `id` of [`proc_thread_id`] is blocked (state `S` or
/// `D` in `/proc/self/task/<id>/stat`) twice in a row, 2 ms apart; returns whether it was seen
/// blocked. Without an id it just pauses 50 ms.
pub fn wait_until_asleep(id: Option<&str>, timeout: Duration) -> bool {
    let Some(id) = id else {
        thread::sleep(Duration::from_millis(50));
        return false;
    };
    let asleep = || {
        std::fs::read_to_string(format!("/proc/self/task/{id}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
                Some(matches!(state, 'S' | 'D'))
            })
            .unwrap_or(false)
    };
    let deadline = Instant::now() + timeout;
    let mut seen = 0;
    while Instant::now() < deadline {
        seen = if asleep() { seen + 1 } else { 0 };
        if seen == 2 {
            return true;
        }
        thread::sleep(Duration::from_millis(2));
    }
    false
}
