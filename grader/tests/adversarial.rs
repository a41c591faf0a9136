//! Hostile submissions against the whole pipeline (the sandbox's and the intake's own adversarial
//! suites live in `sandbox.rs`, `archive.rs` and `policy.rs`): what the compiler itself must refuse,
//! and what only the build limits can stop.

mod common;
use common::repo;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use grader::engine::assembly::RUNTIME_TOML;
use grader::engine::report::Status;
use grader::engine::{Engine, Input, Mode};

fn crate_with_lib(lib: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), lib).unwrap();
    dir
}

/// The policy refuses `unsafe` too, but the grader's Cargo.toml is the wall that holds even without
/// it: `forbid` cannot be lifted by an inner `#![allow(unsafe_code)]`.
#[test]
fn forbid_unsafe_in_the_graders_manifest_cannot_be_lifted() {
    let dir = crate_with_lib(
        "#![allow(unsafe_code)]\npub fn peek() -> u8 { unsafe { *(&1u8 as *const u8) } }\n",
    );
    std::fs::write(dir.path().join("Cargo.toml"), RUNTIME_TOML).unwrap();
    std::fs::copy(
        repo().join("exercise-template/Cargo.lock"),
        dir.path().join("Cargo.lock"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--locked"])
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("forbid-unsafe"),
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("allow(unsafe_code) incompatible with previous forbid"),
        "{stderr}"
    );
}

/// Constant evaluation that never ends (with the compiler's long-running lint silenced) is stopped by
/// the build's wall-clock limit, reported as such, and the grader goes on serving.
#[test]
fn a_compile_time_bomb_is_stopped_by_the_build_limit() {
    let mut config = common::config(repo().join("hidden-tests"));
    config.build_limits.wall = Duration::from_secs(20);
    config.build_limits.cpu = Duration::from_secs(20);
    let engine = Engine::new(config).unwrap();
    let dir = crate_with_lib(
        "#![allow(long_running_const_eval)]\n\
         pub const FOREVER: u64 = { let mut i = 1u64; loop { i = i.wrapping_add(1); if i == 0 { break i; } } };\n",
    );
    let report = engine
        .grade(Input::Path(dir.path()), Mode::Hidden, &|_| {})
        .unwrap();
    assert_eq!(report.status, Status::BuildFailed, "{report:#?}");
    let message = report.message.unwrap();
    assert!(message.contains("limit"), "{message}");
    assert_eq!(report.score, 0);

    let after = engine
        .grade(
            Input::Path(&repo().join("solutions/reference")),
            Mode::Hidden,
            &|_| {},
        )
        .unwrap();
    assert_eq!(after.score, 100, "the grader keeps serving after a bomb");
}

/// What the policy cannot parse, it cannot check: such a file (here hiding a banned call behind a
/// syntax error) is refused with the parse error at its line, and nothing is compiled.
#[test]
fn a_file_the_policy_cannot_parse_is_refused_not_compiled() {
    let engine = Engine::new(common::config(repo().join("hidden-tests"))).unwrap();
    let dir = crate_with_lib("pub fn stop() -> ! { std::process::exit(0) }\npub fn broken( {\n");
    let report = engine
        .grade(Input::Path(dir.path()), Mode::Hidden, &|_| {})
        .unwrap();
    assert_eq!(report.status, Status::Rejected, "{report:#?}");
    let message = report.message.as_deref().unwrap();
    assert!(message.contains("not valid Rust syntax"), "{message}");
    assert!(message.contains("nothing was compiled"), "{message}");
    let refusal = report
        .diagnostics
        .iter()
        .find(|d| d.message.contains("not valid Rust syntax"))
        .expect("the parse error");
    assert_eq!(
        (
            refusal.file.as_deref(),
            refusal.line,
            refusal.level.as_str()
        ),
        (Some("src/lib.rs"), Some(2), "refused"),
        "{refusal:#?}"
    );
    assert_eq!(report.timings.build_ms, 0, "it was built");
    assert_eq!(report.score, 0);
    // Every report says who the sandbox runs as.
    assert!(
        report.limits.enforcement.starts_with("identity="),
        "{}",
        report.limits.enforcement
    );
}
