//! The run phase: one sandboxed process per test, several at once, each with its own timeout, and an
//! outcome taken only from the exit status and the sandbox's own accounting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::report::Outcome;
use crate::sandbox::{
    ExitStatusKind, LimitKind, Limits, RunResult, Sandbox, SandboxCommand, SandboxError,
};

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
}

impl Check {
    /// A libtest test, run alone in its process.
    pub fn test(name: &str, binary: &str, timeout: Duration) -> Check {
        Check {
            name: name.to_string(),
            program: binary.to_string(),
            args: vec![
                "--exact".into(),
                name.to_string(),
                "--test-threads=1".into(),
            ],
            timeout,
        }
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

/// Classifies a finished process. A timeout is "idle" (waiting: a deadlock or a lost wake) when it
/// used under a tenth of its wall time on a CPU (a loaded machine gives a busy loop less than a
/// whole core, while a waiting process uses almost none), and "busy" (a busy loop or livelock) otherwise.
pub fn classify(r: &RunResult) -> (Outcome, Option<String>) {
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    match (r.limit_hit, r.status) {
        (Some(LimitKind::Wall) | Some(LimitKind::Cpu), _) => {
            let busy = r.cpu.as_secs_f64() >= 0.1 * r.wall.as_secs_f64();
            let why = if busy {
                "it was busy the whole time (CPU {cpu}): a busy loop or a livelock, such as a task that keeps \
                 waking itself without making progress"
            } else {
                "it was idle (CPU {cpu}): everything was waiting, a deadlock or a wake that never came"
            };
            let why = why.replace("{cpu}", &secs(r.cpu));
            (
                Outcome::TimedOut,
                Some(format!("timed out after {}; {why}", secs(r.wall))),
            )
        }
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
        (None, ExitStatusKind::Exited(0)) => (Outcome::Passed, None),
        (None, ExitStatusKind::Exited(code)) => (
            Outcome::Failed,
            Some(format!(
                "failed (exit status {code}): an assertion failed or the code panicked"
            )),
        ),
        (None, ExitStatusKind::Signaled(sig)) => {
            let what = match sig {
                6 => "aborted (SIGABRT): a stack overflow, a panic while panicking, or an explicit abort",
                11 => "crashed with a segmentation fault (SIGSEGV)",
                9 => "was killed (SIGKILL)",
                _ => "was killed by a signal",
            };
            (Outcome::Crashed, Some(format!("{what} [signal {sig}]")))
        }
    }
}

/// Runs every check through the sandbox, `jobs` at a time, calling `on_done(k, total, name)` as each
/// finishes. Results come back in the order of `checks`.
pub fn run_all(
    sandbox: &Sandbox,
    template: &SandboxCommand,
    limits: &Limits,
    checks: &[Check],
    jobs: usize,
    on_done: &(dyn Fn(usize, usize, &str) + Sync),
) -> Result<Vec<CheckResult>, SandboxError> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<CheckResult, SandboxError>>>> =
        Mutex::new((0..checks.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(checks.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(check) = checks.get(i) else { break };
                let r = run_one(sandbox, template, limits, check);
                results.lock().unwrap()[i] = Some(r);
                let k = done.fetch_add(1, Ordering::SeqCst) + 1;
                on_done(k, checks.len(), &check.name);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every check ran"))
        .collect()
}

fn run_one(
    sandbox: &Sandbox,
    template: &SandboxCommand,
    limits: &Limits,
    check: &Check,
) -> Result<CheckResult, SandboxError> {
    let mut cmd = template.clone();
    cmd.program = check.program.clone();
    cmd.args = check.args.clone();
    let limits = Limits {
        wall: check.timeout,
        // Several busy threads may use more CPU than wall time; the wall limit decides timeouts.
        cpu: check.timeout * 2,
        ..limits.clone()
    };
    let r = sandbox.run(&cmd, &limits)?;
    let (outcome, message) = classify(&r);
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
