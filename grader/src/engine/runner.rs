//! The run phase: the listing of the built tests, then one sandboxed process per check, several at
//! once, each with its own timeout, and an outcome taken only from the exit status and the sandbox's
//! own accounting (libtest's summary can only withhold a pass, never grant one).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::engine::cache::Timing;
use crate::engine::report::Outcome;
use crate::engine::rubric::Rubric;
use crate::engine::sandbox::{
    Armed, ExitStatusKind, LimitKind, Limits, RunResult, Sandbox, SandboxCommand, SandboxError,
};

/// The exit code of a test process whose harness caught a hang (the hidden tests' watchdog, or a
/// wake that never came). It must equal `hidden_tests::HANG_EXIT_CODE`; the student's crate cannot
/// exit with it (the policy refuses `std::process`; a panic exits with 101, an abort by a signal).
pub const HANG_EXIT_CODE: i32 = 124;

/// Starts the stderr line in which the harness names the operation that hung and the time it
/// waited (`hidden_tests::HANG_MARKER`). Only the explanation is read from it, never the verdict.
pub const HANG_MARKER: &str = "hidden-tests hang:";

/// How many times a failed listing is tried before the grading is given up as an internal error.
const LISTING_ATTEMPTS: u32 = 3;

/// What a check runs, which decides how its exit is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One libtest test (`--exact NAME`): it passed only if libtest says it ran.
    Test,
    /// A binary of the student's crate: it passes by exiting 0.
    Binary,
}

/// One process to run: a test of a test binary, or a binary of the student's crate.
#[derive(Debug, Clone)]
pub struct Check {
    /// The test's name (for a binary check, its rubric label).
    pub name: String,
    /// Executable inside the sandbox.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// A test or a binary.
    pub kind: Kind,
    /// Expected to spend its run waiting (see [`Plan::schedule`]): it starts without a lane kept
    /// for busy processes.
    pub waits: bool,
}

impl Check {
    /// A libtest test, run alone in its process: `name` as the report knows it, `listed` as the
    /// binary lists it.
    pub fn test(name: &str, listed: &str, binary: &str, timeout: Duration) -> Check {
        Check {
            name: name.to_string(),
            program: binary.to_string(),
            args: vec![
                "--exact".into(),
                listed.to_string(),
                "--test-threads=1".into(),
            ],
            timeout,
            kind: Kind::Test,
            waits: false,
        }
    }

    /// A binary of the student's crate, run without arguments; `label` names it in the report.
    pub fn binary(label: &str, program: &str, timeout: Duration) -> Check {
        Check {
            name: label.to_string(),
            program: program.to_string(),
            args: Vec::new(),
            timeout,
            kind: Kind::Binary,
            waits: false,
        }
    }
}

/// The checks to run, each with the index of the report entry it fills, and the entries that
/// cannot run with the reason.
#[derive(Debug, Default)]
pub struct Plan {
    /// The checks, in report order.
    pub checks: Vec<Check>,
    /// For each check, its report entry.
    pub slots: Vec<usize>,
    /// Report entries without a check, with the reason (in words for the student).
    pub unplanned: Vec<(usize, String)>,
}

/// The rubric's name of a listed hidden test: without the category module it is listed under
/// (`metrics::metrics_count_spawns` -> `metrics_count_spawns`).
pub fn rubric_name(listed: &str) -> &str {
    listed.split_once("::").map_or(listed, |(_, rest)| rest)
}

/// Plans the rubric's checks against what the build contains: `listed` tests (listed name ->
/// binary) and built `bins` (name -> path). Entries missing from the build cannot run.
pub fn plan_rubric(
    rubric: &Rubric,
    listed: &BTreeMap<String, String>,
    bins: &BTreeMap<String, String>,
) -> Plan {
    let by_rubric_name: BTreeMap<&str, (&str, &str)> = listed
        .iter()
        .map(|(l, b)| (rubric_name(l), (l.as_str(), b.as_str())))
        .collect();
    let mut plan = Plan::default();
    for (i, entry) in rubric.entries().iter().enumerate() {
        let check = match &entry.binary {
            Some(bin) => bins
                .get(bin)
                .map(|path| Check::binary(&entry.name, path, entry.timeout())),
            None => by_rubric_name
                .get(entry.name.as_str())
                .map(|(l, b)| Check::test(&entry.name, l, b, entry.timeout())),
        };
        match (check, &entry.binary) {
            (Some(c), _) => {
                plan.checks.push(c);
                plan.slots.push(i);
            }
            (None, Some(bin)) => plan.unplanned.push((
                i,
                format!(
                    "the binary `{bin}` was not built: see the diagnostics, or add `src/bin/{bin}.rs`"
                ),
            )),
            (None, None) => plan
                .unplanned
                .push((i, "this test was not found in the build".into())),
        }
    }
    plan
}

/// Plans every listed test, each with `timeout`, in listing order.
pub fn plan_listed(listed: &BTreeMap<String, String>, timeout: Duration) -> Plan {
    Plan {
        checks: listed
            .iter()
            .map(|(name, bin)| Check::test(name, name, bin, timeout))
            .collect(),
        slots: (0..listed.len()).collect(),
        unplanned: Vec::new(),
    }
}

impl Plan {
    /// Orders and marks the checks by how their last passes went (`history`; unrecorded checks
    /// count as taking their timeout and as busy):
    ///
    /// - those with the longest time limit first: a check that may take longer than the others
    ///   when it fails (a longer watchdog, a demo) then hangs from the start, not after a round of
    ///   other hangs; a passing run barely notices, as such checks pass quickly and their lanes
    ///   are free again before the long ones need them;
    /// - among equal limits, the longest first, so that the last process to finish is a short
    ///   one: with a few long tests among many short ones, the run then takes about as long as
    ///   its longest test instead of a long test started last (order is kept among equals;
    ///   results still fill their own report entries);
    /// - those that used under a tenth of their wall time on a CPU (timers, waits for a wake) as
    ///   [`Check::waits`], so that they do not hold back the busy ones.
    pub fn schedule(&mut self, history: impl Fn(&Check) -> Option<Timing>) {
        let timings: Vec<Option<Timing>> = self.checks.iter().map(&history).collect();
        let expected = |i: usize| timings[i].map_or(self.checks[i].timeout, |t| t.wall);
        let mut order: Vec<usize> = (0..self.checks.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse((self.checks[i].timeout, expected(i))));
        let checks = order.iter().map(|&i| Check {
            waits: timings[i].is_some_and(|t| t.cpu.is_some_and(|cpu| mostly_waiting(cpu, t.wall))),
            ..self.checks[i].clone()
        });
        self.checks = checks.collect();
        self.slots = order.iter().map(|&i| self.slots[i]).collect();
    }
}

/// What happened to one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The classified outcome.
    pub outcome: Outcome,
    /// Plain-language detail for timeouts, crashes and limits.
    pub message: Option<String>,
    /// Wall time.
    pub wall: Duration,
    /// CPU time.
    pub cpu: Duration,
    /// stdout then stderr, lossy UTF-8, each capped by the sandbox.
    pub output: String,
}

/// A failure of the run phase that is the grader's, never the student's: the grading must be
/// redone, not shown as a score.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The sandbox could not run a process.
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// A test exited 0 without libtest counting it as passed (e.g. an `#[ignore]`d test).
    #[error(
        "test `{name}` exited 0 but did not run (libtest: {summary}); a hidden test must not be \
         #[ignore]d"
    )]
    DidNotRun {
        /// The test.
        name: String,
        /// libtest's summary line, or what was found instead.
        summary: String,
    },
    /// Listing the built tests failed every time.
    #[error("listing the built tests failed {LISTING_ATTEMPTS} times; last: {0}")]
    Listing(String),
}

/// Whether a process that ran for `wall` and used `cpu` of it on a CPU spent it mostly waiting:
/// under a tenth (a loaded machine still gives a busy loop more, a waiting process uses almost
/// none).
fn mostly_waiting(cpu: Duration, wall: Duration) -> bool {
    cpu * 10 < wall
}

/// Classifies a finished process. A timeout is "idle" (waiting: a deadlock or a lost wake) when it
/// used under a tenth of its wall time on a CPU (a loaded machine gives a busy loop less than a
/// whole core, while a waiting process uses almost none), and "busy" (a busy loop or livelock)
/// otherwise. The same holds for a hang caught by the hidden tests' harness, which exits with
/// [`HANG_EXIT_CODE`] after naming the operation on stderr.
///
/// Messages do not restate the outcome: reports print them after it ("timed out: …").
pub fn classify(r: &RunResult, kind: Kind) -> Result<(Outcome, Option<String>), String> {
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let activity = || {
        if !mostly_waiting(r.cpu, r.wall) {
            format!(
                "it was busy the whole time (CPU {}): a busy loop or a livelock, such as a task \
                 that keeps waking itself without making progress",
                secs(r.cpu)
            )
        } else {
            format!(
                "it was idle (CPU {}): everything was waiting, a deadlock or a wake that never came",
                secs(r.cpu)
            )
        }
    };
    Ok(match (r.limit_hit, r.status) {
        (Some(LimitKind::Wall) | Some(LimitKind::Cpu), _) => (
            Outcome::TimedOut,
            Some(format!(
                "the test hung for {} (its time limit); {}",
                secs(r.wall),
                activity()
            )),
        ),
        (Some(LimitKind::Memory), _) => (
            Outcome::MemoryLimit,
            Some(
                "killed for using more memory than the limit (a queue growing without bound?)"
                    .into(),
            ),
        ),
        (Some(LimitKind::Tasks), _) => (
            Outcome::Crashed,
            Some("hit the limit on threads and processes (a thread per wake or per task?)".into()),
        ),
        (None, ExitStatusKind::Exited(HANG_EXIT_CODE)) if kind == Kind::Test => {
            let stderr = String::from_utf8_lossy(&r.stderr);
            let what = stderr
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix(HANG_MARKER))
                .map(str::trim)
                .filter(|w| !w.is_empty());
            let hung = match what {
                Some(w) => format!("hung {w}"),
                None => "hung: the test's watchdog stopped it".into(),
            };
            (Outcome::TimedOut, Some(format!("{hung}; {}", activity())))
        }
        (None, ExitStatusKind::Exited(0)) => match kind {
            Kind::Binary => (Outcome::Passed, None),
            Kind::Test => {
                let stdout = String::from_utf8_lossy(&r.stdout);
                let summary = stdout.lines().rev().find(|l| l.starts_with("test result:"));
                match summary {
                    Some(s) if s.contains(" 1 passed;") => (Outcome::Passed, None),
                    // Only a test that ran writes more than libtest's few lines: with its summary
                    // cut off, the exit status alone is the verdict.
                    None if r.stdout_truncated => (Outcome::Passed, None),
                    Some(s) => return Err(s.to_string()),
                    None => return Err("no summary line".into()),
                }
            }
        },
        (None, ExitStatusKind::Exited(code)) => (
            Outcome::Failed,
            Some(format!(
                "an assertion failed or the code panicked (exit status {code})"
            )),
        ),
        (None, ExitStatusKind::Signaled(sig)) => {
            let what = match sig {
                6 => "aborted (SIGABRT): a stack overflow, a panic while panicking, or an explicit abort",
                11 => "segmentation fault (SIGSEGV)",
                9 => "killed (SIGKILL)",
                _ => "killed by a signal",
            };
            (Outcome::Crashed, Some(format!("{what} [signal {sig}]")))
        }
    })
}

/// How many test processes run at once, up to `max`: `base` busy ones always, more busy ones only
/// while the host's cores have a whole core's worth of idle time, and checks expected to wait
/// ([`Check::waits`]) whenever a lane is free. Most test processes spend their life waiting
/// (timers, wakes, a hang's timeout), so a fixed count leaves the cores idle; adding processes only
/// while they are idle, or only those that will wait, gives busy work (a busy loop, a stress test,
/// another job) the same CPU as with `base` alone.
#[derive(Debug, Clone, Copy)]
pub struct Lanes {
    /// Busy processes that always run (at least one).
    pub base: usize,
    /// The most processes at once.
    pub max: usize,
    /// Reads the host's CPU counters: [`host_cpu`] (the tests pass their own).
    pub counters: fn() -> Option<CpuCounters>,
}

impl Lanes {
    /// `base` busy processes always, up to `max` while the host's cores are idle enough or the
    /// checks wait.
    pub fn new(base: usize, max: usize) -> Lanes {
        Lanes {
            base: base.max(1),
            max: max.max(base.max(1)),
            counters: host_cpu,
        }
    }
}

/// The host's CPU time counters since boot, in clock ticks (`/proc/stat`'s first line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuCounters {
    /// Idle and I/O-wait time of all cores together.
    pub idle: u64,
    /// All time of all cores together.
    pub total: u64,
    /// How many cores the counters cover.
    pub cores: u32,
}

impl CpuCounters {
    /// How many cores' worth of time was idle between `earlier` and `self`.
    pub fn idle_cores_since(&self, earlier: &CpuCounters) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        let idle = self.idle.saturating_sub(earlier.idle);
        idle as f64 / total as f64 * f64::from(self.cores)
    }
}

/// Parses `/proc/stat`: the aggregate `cpu` line (user nice system idle iowait irq softirq steal;
/// guest time is already inside user) and the number of `cpuN` lines.
pub fn parse_proc_stat(text: &str) -> Option<CpuCounters> {
    let mut lines = text.lines();
    let fields: Vec<u64> = lines
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 5 {
        return None;
    }
    let cores = lines
        .take_while(|l| l.starts_with("cpu"))
        .filter(|l| l[3..].starts_with(|c: char| c.is_ascii_digit()))
        .count();
    Some(CpuCounters {
        idle: fields[3] + fields[4],
        total: fields.iter().sum(),
        cores: u32::try_from(cores).ok().filter(|&c| c > 0)?,
    })
}

/// The host's CPU counters, or `None` where `/proc/stat` cannot be read (then no lane past the
/// base starts).
pub fn host_cpu() -> Option<CpuCounters> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// How long the CPU counters are watched before a lane past the base may start a process.
const IDLE_WINDOW: Duration = Duration::from_millis(25);

/// Lets busy processes past the base start, only after a window of [`IDLE_WINDOW`] in which at
/// least a whole core's worth of time was idle: a lane that has not started one yet joins at most
/// one per window (a burst of idle time does not start them all at once), a lane that has goes on
/// starting them while the windows stay idle.
struct IdleGate {
    counters: fn() -> Option<CpuCounters>,
    /// How many cores' worth of idle time a window needs.
    threshold: f64,
    /// The last window: when it started, its counters, whether it had a core idle, and whether
    /// a start was granted since.
    state: Mutex<(Instant, Option<CpuCounters>, bool, bool)>,
}

impl IdleGate {
    fn new(counters: fn() -> Option<CpuCounters>, threshold: f64) -> IdleGate {
        IdleGate {
            counters,
            threshold,
            state: Mutex::new((Instant::now(), counters(), false, false)),
        }
    }

    /// Whether one more busy process may start now, in a lane that has `joined` already.
    fn admit(&self, joined: bool) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (started, earlier, idle, granted) = &mut *state;
        if started.elapsed() >= IDLE_WINDOW {
            let now = (self.counters)();
            *idle = match (now, *earlier) {
                (Some(now), Some(earlier)) => now.idle_cores_since(&earlier) >= self.threshold,
                _ => false,
            };
            (*started, *earlier, *granted) = (Instant::now(), now, false);
        }
        if joined {
            return *idle;
        }
        let admit = *idle && !*granted;
        *granted |= admit;
        admit
    }
}

/// How often [`Standby::arm`] may arm one more sandbox while the host's cores stay idle: at most
/// a few per [`IDLE_WINDOW`], each costing a few milliseconds of CPU, so that the idle time they
/// fill shows in the next window before many more start.
const ARM_PACE: Duration = Duration::from_millis(3);

/// The idle time (in cores) a window needs for [`Standby::arm`] to go on arming.
const ARM_IDLE_CORES: f64 = 0.5;

/// Sandboxes armed ahead for a job's listing and test processes ([`Armed`]), in the cores' idle
/// time while the job builds (a crate's compilation leaves one of two cores idle much of the
/// time): a test process then starts in a sandbox already set up, and the run phase, which keeps
/// every core busy, no longer pays for the setups. Checks that find none ready start their own.
pub struct Standby<'s> {
    queue: Mutex<Queue<'s>>,
    /// Signals [`Standby::close`] to the arming thread.
    closed: Condvar,
    /// How many were taken.
    taken: AtomicUsize,
}

/// The armed sandboxes not taken yet, oldest first (the most likely to have finished their
/// setup), and whether the standby is closed: one lock, so that none is taken once it is.
#[derive(Default)]
struct Queue<'s> {
    armed: VecDeque<Armed<'s>>,
    closed: bool,
}

impl Default for Standby<'_> {
    fn default() -> Self {
        Standby {
            queue: Mutex::new(Queue::default()),
            closed: Condvar::new(),
            taken: AtomicUsize::new(0),
        }
    }
}

impl<'s> Standby<'s> {
    /// Arms up to `count` sandboxes for `template` under `limits` (see [`Sandbox::arm`]), one at
    /// a time and only while the host had half a core's worth of idle time in the last window,
    /// then waits until [`Standby::close`]. Runs on a thread of its own, which must live as long
    /// as the sandboxes it armed (they die with it): those taken must have finished when the
    /// standby is closed. `counters` reads the host's CPU time ([`host_cpu`]).
    pub fn arm(
        &self,
        sandbox: &'s Sandbox,
        template: &SandboxCommand,
        limits: &Limits,
        count: usize,
        counters: fn() -> Option<CpuCounters>,
    ) {
        let gate = IdleGate::new(counters, ARM_IDLE_CORES);
        let mut left = count;
        let mut queue = self.lock();
        while !queue.closed {
            if left > 0 && gate.admit(true) {
                drop(queue);
                let armed = sandbox.arm(template, limits);
                queue = self.lock();
                match armed {
                    Ok(Some(armed)) if !queue.closed => {
                        queue.armed.push_back(armed);
                        left -= 1;
                    }
                    // Closed meanwhile: disarmed as it drops.
                    Ok(Some(_)) | Ok(None) => left = 0,
                    Err(error) => {
                        // The checks start their own sandboxes, which report such a failure.
                        tracing::debug!(%error, "arming a sandbox failed");
                        left = 0;
                    }
                }
                continue;
            }
            queue = if left > 0 {
                let waited = self.closed.wait_timeout(queue, ARM_PACE);
                waited.unwrap_or_else(|e| e.into_inner()).0
            } else {
                self.closed.wait(queue).unwrap_or_else(|e| e.into_inner())
            };
        }
        drop(queue);
        tracing::debug!(
            armed = count - left,
            taken = self.taken(),
            "sandboxes armed ahead"
        );
    }

    /// An armed sandbox, if one is ready to be taken (never once the standby is closed).
    pub fn take(&self) -> Option<Armed<'s>> {
        let armed = self.lock().armed.pop_front();
        self.taken
            .fetch_add(usize::from(armed.is_some()), Ordering::Relaxed);
        armed
    }

    /// How many armed sandboxes wait to be taken.
    pub fn ready(&self) -> usize {
        self.lock().armed.len()
    }

    /// How many armed sandboxes were taken so far.
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }

    /// Ends [`Standby::arm`] and disarms the sandboxes not taken; none is taken from now on.
    pub fn close(&self) {
        let unused = {
            let mut queue = self.lock();
            queue.closed = true;
            std::mem::take(&mut queue.armed)
        };
        self.closed.notify_all();
        drop(unused);
    }

    /// A guard that closes this standby when dropped, however its scope ends.
    pub fn closing(&self) -> Closing<'_, 's> {
        Closing(self)
    }

    /// Runs `cmd` under `limits` in an armed sandbox if one is ready, else in a new one.
    pub fn run(
        &self,
        sandbox: &Sandbox,
        cmd: &SandboxCommand,
        limits: &Limits,
    ) -> Result<RunResult, SandboxError> {
        match self.take() {
            Some(armed) => armed.run(cmd, limits),
            None => sandbox.run(cmd, limits),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<'s>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Closes a [`Standby`] when dropped (see [`Standby::closing`]).
pub struct Closing<'a, 's>(&'a Standby<'s>);

impl Drop for Closing<'_, '_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Where [`run_all`] stands: the next check to start, and the busy ones running now.
#[derive(Default)]
struct Started {
    next: usize,
    busy: usize,
}

/// Runs every check through the sandbox, in order, as many at once as `lanes` allow, calling
/// `on_done(k, total, name)` as each finishes. Results come back in the order of `checks`.
pub fn run_all(
    sandbox: &Sandbox,
    standby: &Standby<'_>,
    template: &SandboxCommand,
    limits: &Limits,
    checks: &[Check],
    lanes: Lanes,
    on_done: &(dyn Fn(usize, usize, &str) + Sync),
) -> Result<Vec<CheckResult>, RunnerError> {
    let state = Mutex::new(Started::default());
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<CheckResult, RunnerError>>>> =
        Mutex::new((0..checks.len()).map(|_| None).collect());
    let gate = IdleGate::new(lanes.counters, 1.0);
    // Processes running now, and the most at once (for whoever tunes the lanes).
    let (running, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..lanes.max.max(1).min(checks.len().max(1)) {
            let (state, done, results, gate) = (&state, &done, &results, &gate);
            let (running, peak) = (&running, &peak);
            s.spawn(move || {
                let mut joined = false;
                loop {
                    let taken = {
                        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                        let Some(check) = checks.get(state.next) else {
                            break;
                        };
                        let past_base = !check.waits && state.busy >= lanes.base;
                        if past_base && !gate.admit(joined) {
                            None
                        } else {
                            joined |= past_base;
                            state.busy += usize::from(!check.waits);
                            state.next += 1;
                            Some(state.next - 1)
                        }
                    };
                    // A busy check past the base waits for idle cores.
                    let Some(i) = taken else {
                        std::thread::sleep(IDLE_WINDOW / 2);
                        continue;
                    };
                    let check = &checks[i];
                    peak.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    let r = run_one(sandbox, standby, template, limits, check);
                    running.fetch_sub(1, Ordering::SeqCst);
                    if !check.waits {
                        state.lock().unwrap_or_else(|e| e.into_inner()).busy -= 1;
                    }
                    results.lock().unwrap()[i] = Some(r);
                    let k = done.fetch_add(1, Ordering::SeqCst) + 1;
                    on_done(k, checks.len(), &check.name);
                }
            });
        }
    });
    tracing::debug!(peak = peak.into_inner(), ?lanes, "test processes at once");
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every check ran"))
        .collect()
}

fn run_one(
    sandbox: &Sandbox,
    standby: &Standby<'_>,
    template: &SandboxCommand,
    limits: &Limits,
    check: &Check,
) -> Result<CheckResult, RunnerError> {
    let mut cmd = template.clone();
    cmd.program = check.program.clone();
    cmd.args = check.args.clone();
    let limits = Limits {
        wall: check.timeout,
        // Several busy threads may use more CPU than wall time; the wall limit decides timeouts.
        cpu: check.timeout * 2,
        ..limits.clone()
    };
    let r = standby.run(sandbox, &cmd, &limits)?;
    let (outcome, message) =
        classify(&r, check.kind).map_err(|summary| RunnerError::DidNotRun {
            name: check.name.clone(),
            summary,
        })?;
    let mut output = String::from_utf8_lossy(&r.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&r.stderr));
    if r.stdout_truncated || r.stderr_truncated {
        output.push_str("\n[output truncated]\n");
    }
    Ok(CheckResult {
        outcome,
        message,
        wall: r.wall,
        cpu: r.cpu,
        output,
    })
}

/// Lists the tests of every test binary (listed name -> binary), in one sandboxed process. A listing that
/// fails (under load it may time out) is retried with more time; if it keeps failing, the grading
/// fails as the grader's error: a partial listing would turn tests into "not run" at the
/// student's cost.
pub fn list_tests(
    sandbox: &Sandbox,
    standby: &Standby<'_>,
    template: &SandboxCommand,
    limits: &Limits,
    test_binaries: &[String],
) -> Result<BTreeMap<String, String>, RunnerError> {
    // `exit 1` on the first binary that fails: a listing is used whole or not at all.
    let script =
        "for b in \"$@\"; do echo \"#binary $b\"; \"$b\" --list --format terse || exit 1; done";
    let mut cmd = template.clone();
    cmd.program = "/bin/sh".into();
    cmd.args = vec!["-c".to_string(), script.to_string(), "list".to_string()];
    cmd.args.extend(test_binaries.iter().cloned());
    let mut last = String::new();
    for attempt in 1..=LISTING_ATTEMPTS {
        let limits = Limits {
            wall: limits.wall * attempt,
            cpu: limits.cpu * attempt,
            ..limits.clone()
        };
        let r = standby.run(sandbox, &cmd, &limits)?;
        match parse_listing(&r) {
            Ok(tests) => return Ok(tests),
            Err(why) => {
                tracing::warn!(attempt, %why, "listing the tests failed");
                last = why;
            }
        }
    }
    Err(RunnerError::Listing(last))
}

/// The listing's tests, or why the listing cannot be trusted to be complete.
fn parse_listing(r: &RunResult) -> Result<BTreeMap<String, String>, String> {
    if let Some(limit) = r.limit_hit {
        return Err(format!("it hit its {limit:?} limit after {:?}", r.wall));
    }
    if !r.status.success() || r.stdout_truncated {
        return Err(format!(
            "{:?}{}: {}",
            r.status,
            if r.stdout_truncated {
                ", output truncated"
            } else {
                ""
            },
            String::from_utf8_lossy(&r.stderr).trim()
        ));
    }
    let mut tests = BTreeMap::new();
    let mut binary = String::new();
    // Only the test harness's own listing runs here (no student code runs before main in safe
    // Rust), so this output can be trusted to name the tests.
    for line in String::from_utf8_lossy(&r.stdout).lines() {
        if let Some(b) = line.strip_prefix("#binary ") {
            binary = b.to_string();
        } else if let Some(name) = line.strip_suffix(": test") {
            tests.insert(name.to_string(), binary.clone());
        }
    }
    Ok(tests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sandbox::{Enforcement, Identity, Mechanism};

    fn run(status: ExitStatusKind, stdout: &str, stderr: &str, cpu_ms: u64) -> RunResult {
        RunResult {
            status,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            stdout_truncated: false,
            stderr_truncated: false,
            wall: Duration::from_millis(5_100),
            cpu: Duration::from_millis(cpu_ms),
            peak_memory_bytes: None,
            limit_hit: None,
            enforcement: Enforcement {
                identity: Identity::Unprivileged,
                memory: Mechanism::CgroupV1,
                tasks: Mechanism::CgroupV1,
                cpu: Mechanism::CgroupV1,
                kill: Mechanism::CgroupV1,
            },
        }
    }

    const PASSED: &str = "\nrunning 1 test\ntest t ... ok\n\ntest result: ok. 1 passed; 0 failed; \
                          0 ignored; 0 measured; 2 filtered out; finished in 0.01s\n";
    const IGNORED: &str = "\nrunning 1 test\ntest t ... ignored\n\ntest result: ok. 0 passed; 0 \
                           failed; 1 ignored; 0 measured; 2 filtered out; finished in 0.00s\n";

    #[test]
    fn the_harness_and_the_runner_agree_on_the_hang_exit() {
        let harness = include_str!("../../../hidden-tests/src/lib.rs");
        assert!(
            harness.contains(&format!(
                "pub const HANG_EXIT_CODE: i32 = {HANG_EXIT_CODE};"
            )),
            "hidden-tests/src/lib.rs must define HANG_EXIT_CODE = {HANG_EXIT_CODE}"
        );
        assert!(
            harness.contains(&format!("pub const HANG_MARKER: &str = {HANG_MARKER:?};")),
            "hidden-tests/src/lib.rs must define HANG_MARKER = {HANG_MARKER:?}"
        );
    }

    #[test]
    fn a_test_passes_only_when_libtest_says_it_ran() {
        let ok = run(ExitStatusKind::Exited(0), PASSED, "", 10);
        assert_eq!(classify(&ok, Kind::Test), Ok((Outcome::Passed, None)));
        let ignored = run(ExitStatusKind::Exited(0), IGNORED, "", 10);
        let summary = classify(&ignored, Kind::Test).unwrap_err();
        assert!(summary.contains("1 ignored"), "{summary}");
        let silent = run(ExitStatusKind::Exited(0), "", "", 10);
        assert!(classify(&silent, Kind::Test).is_err());
        // A test that flooded stdout ran; its summary is what the cap cut off.
        let flooded = RunResult {
            stdout_truncated: true,
            ..run(ExitStatusKind::Exited(0), "xxxx", "", 10)
        };
        assert_eq!(classify(&flooded, Kind::Test), Ok((Outcome::Passed, None)));
        // A binary prints what it likes.
        assert_eq!(classify(&silent, Kind::Binary), Ok((Outcome::Passed, None)));
    }

    #[test]
    fn a_hang_caught_by_the_harness_is_a_timeout_naming_the_operation() {
        let stderr = format!(
            "{HANG_MARKER} 1.0 s waiting for a forged line\nnoise\n\
             {HANG_MARKER} 5.0 s waiting for run() with the custom futures\n"
        );
        let idle = run(ExitStatusKind::Exited(HANG_EXIT_CODE), "", &stderr, 20);
        let (outcome, message) = classify(&idle, Kind::Test).unwrap();
        assert_eq!(outcome, Outcome::TimedOut);
        let message = message.unwrap();
        assert!(
            message
                .starts_with("hung 5.0 s waiting for run() with the custom futures; it was idle"),
            "{message}"
        );
        let busy = run(ExitStatusKind::Exited(HANG_EXIT_CODE), "", &stderr, 5_000);
        let (_, message) = classify(&busy, Kind::Test).unwrap();
        assert!(message.unwrap().contains("busy"));
        // Without its line the exit code still decides; the explanation is generic.
        let bare = run(ExitStatusKind::Exited(HANG_EXIT_CODE), "", "", 0);
        let (outcome, message) = classify(&bare, Kind::Test).unwrap();
        assert_eq!(outcome, Outcome::TimedOut);
        assert!(message.unwrap().contains("watchdog"));
        // A binary's exit code is just a failure.
        let (outcome, _) = classify(&bare, Kind::Binary).unwrap();
        assert_eq!(outcome, Outcome::Failed);
    }

    #[test]
    fn messages_do_not_restate_the_outcome() {
        let failed = run(ExitStatusKind::Exited(101), "", "", 0);
        let (outcome, message) = classify(&failed, Kind::Test).unwrap();
        assert_eq!(outcome, Outcome::Failed);
        assert!(!message.unwrap().starts_with("failed"));
        let timed_out = RunResult {
            limit_hit: Some(LimitKind::Wall),
            ..run(ExitStatusKind::Signaled(9), "", "", 0)
        };
        let (outcome, message) = classify(&timed_out, Kind::Test).unwrap();
        assert_eq!(outcome, Outcome::TimedOut);
        assert!(!message.unwrap().starts_with("timed out"));
    }

    /// A plan of the tests `names` of one binary, each with a 10 s limit.
    fn plan_of(names: &[&str]) -> Plan {
        let listed: BTreeMap<String, String> = names
            .iter()
            .map(|n| (n.to_string(), "/all".to_string()))
            .collect();
        plan_listed(&listed, Duration::from_secs(10))
    }

    /// The planned order: each check's name, its slot in the report and whether it waits.
    fn order(plan: &Plan) -> Vec<(&str, usize, bool)> {
        plan.checks
            .iter()
            .zip(plan.slots.iter().copied())
            .map(|(c, slot)| (c.name.as_str(), slot, c.waits))
            .collect()
    }

    #[test]
    fn the_longest_checks_start_first_and_the_waiting_ones_are_marked() {
        let mut plan = plan_of(&["m::short", "m::long", "m::unknown"]);
        assert_eq!(rubric_name("m::long"), "long");
        let ms = Duration::from_millis;
        let history = |c: &Check| match c.name.as_str() {
            "m::short" => Some(Timing {
                wall: ms(5),
                cpu: Some(ms(4)),
            }),
            "m::long" => Some(Timing {
                wall: ms(900),
                cpu: Some(ms(20)),
            }),
            _ => None,
        };
        plan.schedule(history);
        // The unrecorded test counts as its timeout and as busy; each keeps its slot (listing
        // order: l, s, u); only the long one that used under a tenth of its time on a CPU waits.
        assert_eq!(
            order(&plan),
            [
                ("m::unknown", 2, false),
                ("m::long", 0, true),
                ("m::short", 1, false)
            ]
        );
        // An older record without CPU time orders but does not mark.
        plan.schedule(|c| history(c).map(|t| Timing { cpu: None, ..t }));
        assert!(plan.checks.iter().all(|c| !c.waits));
    }

    #[test]
    fn a_longer_time_limit_starts_first_whatever_its_record() {
        let mut plan = plan_of(&["m::long", "m::watched"]);
        plan.checks[1].timeout = Duration::from_secs(25);
        let ms = Duration::from_millis;
        plan.schedule(|c| {
            Some(Timing {
                wall: ms(if c.name == "m::long" { 400 } else { 20 }),
                cpu: None,
            })
        });
        assert_eq!(
            order(&plan),
            [("m::watched", 1, false), ("m::long", 0, false)]
        );
    }

    #[test]
    fn a_failed_or_cut_listing_is_refused_not_used() {
        let listing = "#binary /b\na: test\nb: test\n";
        let ok = run(ExitStatusKind::Exited(0), listing, "", 0);
        assert_eq!(parse_listing(&ok).unwrap().len(), 2);
        let failed = run(ExitStatusKind::Exited(1), listing, "boom", 0);
        assert!(parse_listing(&failed).unwrap_err().contains("boom"));
        let timed_out = RunResult {
            limit_hit: Some(LimitKind::Wall),
            ..ok.clone()
        };
        assert!(parse_listing(&timed_out).is_err());
        let cut = RunResult {
            stdout_truncated: true,
            ..ok
        };
        assert!(parse_listing(&cut).is_err());
    }
}
