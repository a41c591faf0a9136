//! A job as its sandboxed processes see it: where the job folder, the vendored crates and the warm
//! cache are mounted, and the environment every process (build, listing, test) gets.

use std::path::Path;

use crate::engine::sandbox::SandboxCommand;

/// Where the job workspace appears inside the sandbox.
pub const WORK_MOUNT: &str = "/work";
/// Where the warm target folder appears inside the sandbox (builds copy it into the job first).
pub const WARM_MOUNT: &str = "/opt/warm-target";

/// Where things are for every sandboxed process: the toolchain first on `PATH`, cargo's home in the
/// private `/tmp`, the job's target folder.
const PLACES: [(&str, &str); 4] = [
    ("PATH", "/opt/rust/bin:/usr/bin:/bin"),
    ("HOME", "/tmp"),
    ("CARGO_HOME", "/tmp/cargo-home"),
    ("CARGO_TARGET_DIR", "/work/target"),
];

/// How every build and test process runs, sandboxed or not: the benchmark's plain runs get the
/// same, so that both sides pay the same for a panic or a thread.
pub const RUN_SETTINGS: [(&str, &str); 2] = [
    // A panicking test symbolizes no backtrace (tens of milliseconds of CPU each).
    ("RUST_BACKTRACE", "0"),
    // glibc reserves a malloc arena per thread; where memory is capped as address space (the
    // sandbox's rlimit fallback) a thread-per-timer design would run out of it long before
    // using real memory.
    ("MALLOC_ARENA_MAX", "2"),
];

/// The environment of every sandboxed process (the sandbox clears everything else).
pub fn env() -> Vec<(String, String)> {
    PLACES
        .iter()
        .chain(&RUN_SETTINGS)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Where a target folder kept between gradings appears (over the job folder's own): `grader
/// check` keeps one per data folder, so that checking the same crate again compiles only what
/// changed.
pub const KEPT_TARGET_MOUNT: &str = "/work/target";

/// A command over the built job folder (and its kept target folder, if any), mounted read-only
/// (what the listing and the tests run in, without the toolchain: they run what was built); the
/// caller sets the program and its arguments.
pub fn read_only(job: &Path, kept_target: Option<&Path>) -> SandboxCommand {
    let mut ro_mounts = vec![(job.to_path_buf(), WORK_MOUNT.to_string())];
    ro_mounts.extend(kept_target.map(|t| (t.to_path_buf(), KEPT_TARGET_MOUNT.to_string())));
    SandboxCommand {
        program: String::new(),
        args: Vec::new(),
        env: env(),
        cwd: WORK_MOUNT.into(),
        ro_mounts,
        rw_mounts: Vec::new(),
        stdin: None,
        toolchain: false,
    }
}
