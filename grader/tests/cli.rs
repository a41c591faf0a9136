//! The `grader` binary as an operator uses it: an operator's or instructor's mistake (a path that
//! cannot be read, an unknown solution name, missing or disagreeing hidden tests) ends with exit 2 and
//! a message naming it, never with a grade; `setup` records the hidden tests that later runs use; and
//! the text report lets no escape sequence of the student's reach the terminal; and the binary
//! alone grades (it is its own sandbox helper).
//!
//! The commands that get past their argument checks use the shared, prepared data folder
//! (`GRADER_DATA_DIR`), like the engine's tests.

mod common;
use common::{data_dir_sharing_the_caches, repo};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use grader::cli::render_text;
use grader::engine::report::{Diagnostic, IgnoredFile, Outcome, Report, Status, TestResult};

/// The grader on the shared data folder, its hidden tests given by `hidden` (none: unset).
fn grader(data_dir: &Path, hidden: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_grader"));
    cmd.env_remove("GRADER_HIDDEN_TESTS")
        .env("GRADER_DATA_DIR", data_dir)
        .args(args);
    if let Some(h) = hidden {
        cmd.arg("--hidden-tests").arg(h);
    }
    cmd.output().unwrap()
}

fn hidden_tests() -> PathBuf {
    repo().join("hidden-tests")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit 2, no report on stdout, and an error on stderr containing each of `words`.
fn assert_refused(out: &Output, words: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(out.stdout.is_empty(), "no report: {:?}", out.stdout);
    for w in words {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

#[test]
fn a_submission_path_that_cannot_be_read_is_the_operators_error() {
    for command in ["grade", "check"] {
        let out = grader(
            &common::data_dir(),
            Some(&hidden_tests()),
            &[command, "/nonexistent/02_runtime"],
        );
        assert_refused(
            &out,
            &["error: cannot read /nonexistent/02_runtime: No such file"],
        );
    }
}

#[test]
fn validate_refuses_an_unknown_solution_a_wrong_repository_and_zero_runs() {
    let repo = repo();
    let repo = repo.to_str().unwrap();
    let data = common::data_dir();
    let out = grader(
        &data,
        Some(&hidden_tests()),
        &["validate", "--repo", repo, "--only", "nosuchvariant"],
    );
    assert_refused(
        &out,
        &[
            "no solution's name contains `nosuchvariant`; the known ones are: template, reference,",
            "buggy/",
        ],
    );
    let out = grader(&data, Some(&hidden_tests()), &["validate", "--repo", "/"]);
    assert_refused(&out, &["/ is not the runtime-grader repository"]);
    let out = grader(
        &data,
        Some(&hidden_tests()),
        &["validate", "--repo", repo, "--runs", "0"],
    );
    assert_refused(&out, &["--runs"]);
}

#[test]
fn hidden_tests_that_are_missing_or_no_package_stop_every_command() {
    let data = tempfile::tempdir().unwrap();
    let out = grader(data.path(), None, &["setup"]);
    assert_refused(
        &out,
        &["no hidden tests configured: pass --hidden-tests DIR"],
    );
    let out = grader(
        data.path(),
        Some(Path::new("/nonexistent/hidden-tests")),
        &["setup"],
    );
    assert_refused(
        &out,
        &["the hidden tests folder /nonexistent/hidden-tests does not exist"],
    );
    let empty = tempfile::tempdir().unwrap();
    let out = grader(data.path(), Some(empty.path()), &["grade", "."]);
    assert_refused(
        &out,
        &["is not a hidden tests package: it has no rubric.toml"],
    );
    // Nothing was prepared or recorded for these mistakes.
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}

/// The repository's hidden tests, copied, with one more test that the rubric does not score.
fn hidden_tests_with_an_unscored_test() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = hidden_tests();
    grader::cli::solutions::copy_sources(&from.join("src"), &dir.path().join("src")).unwrap();
    grader::cli::solutions::copy_sources(&from.join("tests"), &dir.path().join("tests")).unwrap();
    for f in ["Cargo.toml", "rubric.toml"] {
        std::fs::copy(from.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("tests/extra.rs"),
        "#[test]\nfn nobody_scored_me() {}\n",
    )
    .unwrap();
    dir
}

#[test]
fn hidden_tests_that_disagree_with_their_rubric_stop_setup_and_the_engine() {
    let suite = hidden_tests_with_an_unscored_test();
    let expected = "test `nobody_scored_me` (tests/extra.rs:2) has no rubric entry";
    let out = grader(&common::data_dir(), Some(suite.path()), &["setup"]);
    assert_refused(&out, &["the rubric and the hidden tests in", expected]);
    let err = grader::engine::Engine::new(common::config(suite.path().to_path_buf()))
        .err()
        .expect("the engine refuses to start");
    assert!(err.to_string().contains(expected), "{err}");
}

#[test]
fn setup_records_the_hidden_tests_and_later_runs_say_which_are_in_use() {
    let data = data_dir_sharing_the_caches();
    let out = grader(data.path(), Some(&hidden_tests()), &["setup"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let absolute = std::fs::canonicalize(hidden_tests()).unwrap();
    assert_eq!(
        grader::engine::suite::recorded(data.path()),
        Some(absolute.clone())
    );
    let version = grader::engine::suite::HiddenTests::open(&absolute)
        .unwrap()
        .version()
        .to_string();
    let out = grader(data.path(), None, &["setup"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(&format!(
            "hidden tests: {} (version {version}, ",
            absolute.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_scores_a_refused_submission_out_of_the_public_tests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    let out = grader(
        &common::data_dir(),
        Some(&hidden_tests()),
        &["check", dir.path().to_str().unwrap(), "--format", "json"],
    );
    // A refused crate is unusable input for a student's check (exit 2), with its report.
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.status, Status::Rejected);
    let public: u32 = grader::engine::suite::public_max_by_category()
        .values()
        .sum();
    assert!(public > 0);
    assert_eq!((report.score, report.max_score), (0, public));
    assert_eq!(report.categories.len(), 3, "{:?}", report.categories);
}

/// A student downloads the `grader` binary alone: without `grader-sandbox-exec` beside it, it serves
/// as the sandbox's exec helper itself, and grades as the pair does.
#[test]
fn the_grader_binary_alone_is_its_own_sandbox_helper() {
    let alone = tempfile::tempdir().unwrap();
    let binary = alone.path().join("grader");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_grader"), &binary).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_grader"), &binary).unwrap();
    }
    assert!(!alone.path().join("grader-sandbox-exec").exists());
    let data = data_dir_sharing_the_caches();
    let out = Command::new(&binary)
        .env_remove("GRADER_HIDDEN_TESTS")
        .env("GRADER_DATA_DIR", data.path())
        .args(["grade", "--format", "json", "--hidden-tests"])
        .arg(hidden_tests())
        .arg(repo().join("solutions/reference"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report.status, report.score), (Status::Graded, 100));
}

fn test_result(outcome: Outcome, message: &str, output: &str) -> TestResult {
    TestResult {
        name: "some_test".into(),
        category: "timer".into(),
        outcome,
        score: 0,
        max_score: 2,
        duration_ms: 5,
        cpu_ms: 1,
        message: Some(message.into()),
        hint: Some("a hint".into()),
        output: Some(output.into()),
        visible: true,
    }
}

fn report(tests: Vec<TestResult>) -> Report {
    Report {
        status: Status::Graded,
        score: 0,
        max_score: 2,
        message: Some("msg \u{1b}]0;owned\u{7}title \u{202e}desrever".into()),
        categories: Default::default(),
        tests,
        diagnostics: vec![Diagnostic {
            file: Some("src/lib.rs".into()),
            line: Some(1),
            column: Some(1),
            level: "error".into(),
            message: "m".into(),
            rendered: "error: \u{1b}[2Jcleared\u{8}".into(),
        }],
        ignored_files: vec![IgnoredFile {
            path: "evil\u{1b}[31m.txt".into(),
            reason: "not a source".into(),
        }],
        limits: Default::default(),
        timings: Default::default(),
    }
}

#[test]
fn the_text_report_strips_the_students_control_characters() {
    let r = report(vec![test_result(
        Outcome::Failed,
        "an assertion failed",
        "line one\r\u{1b}[1Aoverwritten\tkept\n",
    )]);
    let plain = render_text(&r, false);
    assert!(
        !plain
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{plain:?}"
    );
    assert!(!plain.contains('\u{202e}'), "{plain:?}");
    for shown in [
        "msg ]0;ownedtitle desrever",
        "error: [2Jcleared",
        "evil[31m.txt",
        "line one[1Aoverwritten\tkept",
    ] {
        assert!(plain.contains(shown), "{shown:?} not in {plain:?}");
    }
    // With colours, the only escape sequences are the report's own.
    let coloured = render_text(&r, true);
    let mut rest = coloured.as_str();
    while let Some(i) = rest.find('\u{1b}') {
        let seq = &rest[i..];
        let end = seq.find('m').expect("a colour sequence");
        assert!(
            seq[2..end].chars().all(|c| c.is_ascii_digit()) && seq.starts_with("\u{1b}["),
            "foreign escape: {seq:?}"
        );
        rest = &seq[end..];
    }
}

#[test]
fn an_outcome_is_said_once() {
    let r = report(vec![
        test_result(
            Outcome::Failed,
            "failed (exit status 101): an assertion failed",
            "",
        ),
        test_result(Outcome::NotRun, "not run: the crate did not compile", ""),
        test_result(Outcome::TimedOut, "after 10.0 s; it was idle", ""),
    ]);
    let text = render_text(&r, false);
    assert!(!text.contains("failed: failed"), "{text}");
    assert!(!text.contains("not run: not run"), "{text}");
    assert!(text.contains("      failed (exit status 101): an assertion failed\n"));
    assert!(
        text.contains("      timed out: after 10.0 s; it was idle\n"),
        "{text}"
    );
}
