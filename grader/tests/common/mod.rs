//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test file uses a part

use std::io::Write;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use grader::engine::{Config, DEFAULT_DATA_DIR};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared data folder (`GRADER_DATA_DIR`, as the CLI reads it).
pub fn data_dir() -> PathBuf {
    std::env::var_os("GRADER_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// An engine configuration on the shared data folder, with the given hidden tests.
pub fn config(hidden_tests: PathBuf) -> Config {
    Config::new(data_dir(), hidden_tests)
}

/// Whether this run is CI's: `CI` is set (CI runs with `CI=true`) and not `false`/`0`.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.trim(), "" | "0" | "false"))
}

/// Checks a prerequisite of the calling test (`what` says what is needed). Present: `true`.
/// Missing: under CI ([`under_ci`]) the test fails; elsewhere it is skipped visibly: `false` is
/// returned after `SKIPPED <test>: ...` is written straight to stderr, past the test harness's
/// capture, so that the skip shows in the run's output among the `ok` lines.
#[track_caller]
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    assert!(
        !under_ci(),
        "prerequisite missing under CI: {what} (a skip is a failure when CI is set)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: prerequisite missing: {what} (with CI=true this fails)"
    );
    false
}

/// Set in the environment of a test re-run by [`rerun_alone`].
const CHILD: &str = "GRADER_TEST_CHILD";

/// Whether this process is a re-run of one test by [`rerun_alone`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the test `name` of this test binary alone in a child process, with `env` added and
/// `remove` taken out of its environment: for tests that change the whole process (rlimits, the
/// current folder) or its environment. The child sees [`in_child`].
pub fn rerun_alone(name: &str, env: &[(&str, &str)], remove: &[&str]) -> Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--test-threads=1"])
        .env(CHILD, "1");
    for (key, value) in env {
        command.env(key, value);
    }
    for key in remove {
        command.env_remove(key);
    }
    command.output().unwrap()
}

/// Asserts that a [`rerun_alone`] child ran its one test and passed.
#[track_caller]
pub fn assert_child_passed(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child failed or ran nothing: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A data folder of its own whose prepared parts are the shared folder's (symbolic links): its
/// database, uploads and job folders are private while the caches are reused.
pub fn data_dir_sharing_the_caches() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for part in ["toolchain", "vendor", "warm-targets"] {
        std::os::unix::fs::symlink(data_dir().join(part), dir.path().join(part)).unwrap();
    }
    dir
}

/// The reference solution as the `.tar.gz` a student uploads (`02_runtime/` wrapping its crate).
pub fn reference_archive() -> Vec<u8> {
    let reference = repo().join("solutions/reference");
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all("02_runtime/src", reference.join("src"))
        .unwrap();
    tar.append_path_with_name(reference.join("Cargo.toml"), "02_runtime/Cargo.toml")
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// Starts `grader serve` (the repository's hidden tests, one worker) on a free port; returns the
/// process and its address (`127.0.0.1:PORT`).
pub fn serve(data: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_grader"))
        .arg("--data-dir")
        .arg(data)
        .arg("--hidden-tests")
        .arg(repo().join("hidden-tests"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server said where it listens")
            .unwrap();
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining its stderr so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// A server policy with no rate limit and no deadline: what most server tests need.
pub fn open_policy() -> grader::server::policy::Policy {
    grader::server::policy::Policy {
        min_interval: std::time::Duration::ZERO,
        per_day: 0,
        ..Default::default()
    }
}

/// A roster entry for `id` ("Person ID", "ID@example.org").
pub fn person(id: &str, role: grader::server::auth::Role) -> grader::server::roster::Entry {
    grader::server::roster::Entry {
        id: id.into(),
        name: format!("Person {id}"),
        email: format!("{id}@example.org"),
        role,
    }
}

/// The roster most server tests use: students s1 and s2, instructor t1.
pub fn people() -> Vec<grader::server::roster::Entry> {
    use grader::server::auth::Role::{Instructor, Student};
    vec![
        person("s1", Student),
        person("s2", Student),
        person("t1", Instructor),
    ]
}

/// A web tier's options: no workers of its own, on the database at `url`, listening on a random
/// local port, with `policy`.
pub fn web_tier(
    data_dir: &Path,
    url: &str,
    policy: grader::server::policy::Policy,
) -> grader::server::Options {
    grader::server::Options {
        data_dir: data_dir.to_path_buf(),
        database: Some(url.to_owned()),
        bind: Some("127.0.0.1:0".parse().unwrap()),
        workers: 0,
        upload_limit: 1 << 20,
        drain: std::time::Duration::from_secs(5),
        retry_delay: std::time::Duration::ZERO,
        lease: grader::server::queue::LEASE,
        rubric_entries: 0,
        policy,
    }
}

/// A report scoring `score` of 100, for tests that store a grading without running one.
pub fn report_scoring(score: u32) -> grader::engine::report::Report {
    let mut report = grader::engine::report::Report::unscored(
        Vec::new(),
        &Default::default(),
        grader::engine::report::LimitsReport::default(),
    );
    report.score = score;
    report.max_score = 100;
    report
}

/// The JSON body of a response that must arrive (the request's own future, awaited here).
pub async fn json_of(
    response: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
) -> serde_json::Value {
    response.await.unwrap().json().await.unwrap()
}
