//! A job as its sandboxed processes see it: where the job folder, the vendored crates and the warm
//! cache are mounted, and the environment every process (build, listing, test) gets.

use std::path::Path;

use crate::engine::sandbox::SandboxCommand;

/// Where the job workspace appears inside the sandbox.
pub const WORK_MOUNT: &str = "/work";
/// Where the warm target folder appears inside the sandbox (builds copy it into the job first).
pub const WARM_MOUNT: &str = "/opt/warm-target";

/// The environment of every sandboxed process (the sandbox clears everything else).
pub fn env() -> Vec<(String, String)> {
    [
        ("PATH", "/opt/rust/bin:/usr/bin:/bin"),
        ("HOME", "/tmp"),
        ("CARGO_HOME", "/tmp/cargo-home"),
        ("CARGO_TARGET_DIR", "/work/target"),
        ("RUST_BACKTRACE", "0"),
        // glibc reserves a malloc arena per thread; where memory is capped as address space (the
        // sandbox's rlimit fallback) a thread-per-timer design would run out of it long before
        // using real memory.
        ("MALLOC_ARENA_MAX", "2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Where a target folder kept between gradings appears (over the job folder's own): `grader
/// check` keeps one per data folder, so that checking the same crate again compiles only what
/// changed.
pub const KEPT_TARGET_MOUNT: &str = "/work/target";

/// A command over the built job folder (and its kept target folder, if any), mounted read-only
/// (what the listing and the tests run in); the caller sets the program and its arguments.
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
    }
}
