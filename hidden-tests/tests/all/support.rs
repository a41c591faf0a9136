//! The harness's helpers that name the student's `Executor`. They live in the test binary rather
//! than in the `hidden_tests` library so that the library does not depend on the student's crate:
//! it then stays compiled in the grader's warm cache, and only this binary is built per submission.

use hidden_tests::{with_watchdog, HANG_SECS};
use runtime::executor::Executor;

/// Calls `executor.run()` under a [`HANG_SECS`] watchdog and hands the executor back, so that the
/// test can look at it (or drop it) afterwards.
pub fn run_with_watchdog(executor: Executor, what: &str) -> Executor {
    with_watchdog(HANG_SECS, what, move || {
        executor.run();
        executor
    })
}

/// Calls `executor.run_until_stalled()` under a [`HANG_SECS`] watchdog (it must never block) and
/// returns the executor with the number of polls it reported.
pub fn run_until_stalled_with_watchdog(executor: Executor, what: &str) -> (Executor, usize) {
    with_watchdog(HANG_SECS, what, move || {
        let polls = executor.run_until_stalled();
        (executor, polls)
    })
}
