//! The grading engine end to end, in the real sandbox: the reference scores 100 and the template 0;
//! compile errors point at the student's line; wrong signatures become API-mismatch messages; and a
//! purpose-built suite proves each outcome (passed, failed, timed out idle or busy, crashed, memory
//! limit, not run) comes from the process's fate, never from what it printed.
//!
//! Needs root and bubblewrap (the README's test command provides both) and uses the grader's data
//! folder (`GRADER_DATA_DIR`, default /var/lib/runtime-grader), prepared once and shared.

mod common;
use common::repo;

use std::path::Path;
use std::sync::OnceLock;

use grader::engine::report::{Outcome, Report, Status};
use grader::engine::runner::RunnerError;
use grader::engine::{Config, Engine, EngineError, Input, Mode, Progress};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(common::config(repo().join("hidden-tests"))).expect("engine"))
}

/// A copy of the reference's sources with `edit` applied to one file.
fn reference_with(file: &str, edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    grader::cli::solutions::copy_sources(
        &repo().join("solutions/reference/src"),
        &dir.path().join("src"),
    )
    .unwrap();
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    dir
}

fn grade(engine: &Engine, path: &Path) -> Report {
    engine
        .grade(Input::Path(path), Mode::Hidden, &|_| {})
        .unwrap()
}

#[test]
fn reference_scores_full_marks_with_progress_for_every_test() {
    let events = std::sync::Mutex::new(Vec::new());
    let report = engine()
        .grade(
            Input::Path(&repo().join("solutions/reference")),
            Mode::Hidden,
            &|p| events.lock().unwrap().push(p),
        )
        .unwrap();
    assert_eq!(report.status, Status::Graded);
    assert_eq!((report.score, report.max_score), (100, 100), "{report:#?}");
    assert!(report
        .tests
        .iter()
        .all(|t| t.outcome == Outcome::Passed && t.hint.is_none()));
    let events = events.into_inner().unwrap();
    assert_eq!(events.first(), Some(&Progress::Checking));
    assert!(events.contains(&Progress::Building));
    let tested = events
        .iter()
        .filter(|p| matches!(p, Progress::Testing { .. }))
        .count();
    assert_eq!(tested, report.tests.len());
    assert_eq!(events.last(), Some(&Progress::Finished));
}

#[test]
fn template_scores_zero_and_every_failure_carries_its_hint() {
    let report = grade(engine(), &repo().join("exercise-template"));
    assert_eq!(report.status, Status::Graded);
    assert_eq!(report.score, 0);
    assert!(report.categories.values().all(|c| c.score == 0));
    assert!(report
        .tests
        .iter()
        .all(|t| t.outcome != Outcome::Passed && t.hint.as_deref().is_some_and(|h| !h.is_empty())));
}

#[test]
fn a_compile_error_is_reported_at_the_students_line() {
    let dir = reference_with("src/timer.rs", |text| {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(2, "fn broken() -> u32 { \"not a number\" }");
        lines.join("\n")
    });
    let report = grade(engine(), dir.path());
    assert_eq!(report.status, Status::BuildFailed);
    assert_eq!(report.score, 0);
    let d = report
        .diagnostics
        .iter()
        .find(|d| d.level == "error")
        .expect("an error diagnostic");
    assert_eq!(
        (d.file.as_deref(), d.line),
        (Some("src/timer.rs"), Some(3)),
        "{d:#?}"
    );
    assert!(d.rendered.contains("mismatched types"), "{}", d.rendered);
    assert!(report.tests.iter().all(|t| t.outcome == Outcome::NotRun));
}

#[test]
fn a_demo_that_does_not_compile_costs_only_the_demo() {
    // The demo is built in the same cargo call as the tests, which must still run.
    let dir = reference_with("src/bin/runtime_demo.rs", |text| {
        text + "\nfn broken() -> u32 { \"not a number\" }\n"
    });
    let report = grade(engine(), dir.path());
    assert_eq!(report.status, Status::Graded, "{report:#?}");
    assert_eq!(report.categories["demo"].score, 0);
    assert_eq!(report.score, 100 - report.categories["demo"].max_score);
    assert!(report
        .diagnostics
        .iter()
        .any(|d| d.level == "error" && d.file.as_deref() == Some("src/bin/runtime_demo.rs")));
}

#[test]
fn only_the_graded_binary_is_built_and_a_missing_one_is_named() {
    // A binary of the student's own is not graded: it is not built, so a broken one costs
    // nothing. The demo's source is gone: cargo cannot be asked for it, yet the tests still build
    // and run.
    let dir = reference_with("src/bin/runtime_demo.rs", |text| {
        text + "\nfn broken() -> u32 { \"not a number\" }\n"
    });
    let bin = dir.path().join("src/bin");
    std::fs::rename(bin.join("runtime_demo.rs"), bin.join("scratch.rs")).unwrap();
    let report = grade(engine(), dir.path());
    assert_eq!(report.status, Status::Graded, "{report:#?}");
    assert_eq!(report.categories["demo"].score, 0);
    assert_eq!(report.score, 100 - report.categories["demo"].max_score);
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    let demo = report
        .tests
        .iter()
        .find(|t| t.category == "demo")
        .expect("the demo's entry");
    assert!(
        demo.message
            .as_deref()
            .is_some_and(|m| m.contains("src/bin/runtime_demo.rs")),
        "{demo:#?}"
    );
}

#[test]
fn a_wrong_signature_is_an_api_mismatch_without_hidden_sources() {
    let dir = reference_with("src/custom_future.rs", |text| {
        assert!(text.contains("pub fn new(count: u32)"));
        // Compiles on its own; only code written against the spec breaks.
        text.replace("pub fn new(count: u32)", "pub fn new(count: u64)")
            .replace("remaining: count }", "remaining: count as u32 }")
    });
    let report = grade(engine(), dir.path());
    // Partial credit: the categories naming `CountdownFuture` are lost, the others are graded.
    assert_eq!(report.status, Status::Graded, "{report:#?}");
    assert_eq!(report.categories["custom_future"].score, 0);
    let timer = &report.categories["timer"];
    assert!(
        timer.max_score > 0 && timer.score == timer.max_score,
        "{report:#?}"
    );
    let messages: Vec<&str> = report
        .diagnostics
        .iter()
        .map(|d| d.rendered.as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`CountdownFuture::new` must be `pub fn new(count: u32) -> Self`")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().all(|m| !m.contains("hidden-tests/")),
        "hidden sources must not be shown: {messages:#?}"
    );
}

#[test]
fn a_wrong_metrics_field_costs_only_the_metrics_category_and_is_named() {
    let dir = reference_with("src/executor.rs", |text| {
        assert!(text.contains("pub polls: u64,"));
        // Compiles on its own (and even against the metrics tests' code): only the spec differs.
        text.replace("pub polls: u64,", "pub polls: u32,")
    });
    let report = grade(engine(), dir.path());
    assert_eq!(report.status, Status::Graded, "{report:#?}");
    let named = "`Metrics::polls` must be `pub polls: u64`";
    assert!(
        report.diagnostics.iter().any(|d| d.message.contains(named)),
        "{:#?}",
        report.diagnostics
    );
    for (category, result) in &report.categories {
        if category == "metrics" {
            assert_eq!(result.score, 0, "{report:#?}");
        } else {
            assert_eq!(result.score, result.max_score, "{category}: {report:#?}");
        }
    }
    let lost: Vec<_> = report
        .tests
        .iter()
        .filter(|t| t.score < t.max_score)
        .collect();
    assert!(!lost.is_empty());
    for t in lost {
        assert_eq!(
            (t.category.as_str(), t.outcome),
            ("metrics", Outcome::NotRun)
        );
        assert!(t.message.as_deref().unwrap().contains(named), "{t:#?}");
    }
    assert_eq!(report.score, 100 - report.categories["metrics"].max_score);
}

#[test]
fn code_that_could_forge_a_verdict_is_refused_before_building() {
    let dir = reference_with("src/executor.rs", |text| {
        text + "\npub fn leave() { std::process::exit(0) }\n"
    });
    let report = grade(engine(), dir.path());
    assert_eq!(report.status, Status::Rejected);
    assert_eq!(report.timings.build_ms, 0, "nothing may be compiled");
    assert!(report.diagnostics.iter().any(
        |d| d.file.as_deref() == Some("src/executor.rs") && d.message.contains("std::process")
    ));
}

#[test]
fn a_broken_upload_gets_a_report_not_an_error() {
    let report = engine()
        .grade(
            Input::Upload {
                file_name: "02_runtime.tar.gz",
                bytes: b"this is not gzip",
            },
            Mode::Hidden,
            &|_| {},
        )
        .unwrap();
    assert_eq!(report.status, Status::Rejected);
    assert!(report.message.unwrap().contains("gzip"));
}

#[test]
fn the_students_view_numbers_hidden_tests_and_drops_their_output() {
    let report = grade(engine(), &repo().join("exercise-template"));
    let hidden: Vec<_> = report.tests.iter().filter(|t| !t.visible).collect();
    let student = report.for_student();
    for t in &student.tests {
        if report.tests.iter().any(|o| o.name == t.name && !o.visible) {
            panic!("hidden name {} leaked", t.name);
        }
    }
    let numbered = student
        .tests
        .iter()
        .filter(|t| t.name.starts_with("hidden test "))
        .count();
    assert_eq!(numbered, hidden.len());
    assert!(student
        .tests
        .iter()
        .filter(|t| t.name.starts_with("hidden test "))
        .all(|t| t.output.is_none()));
}

/// A hidden-tests package whose tests each end in one way, with a rubric that scores them.
fn outcome_suite() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // The real harness, so that its hang exit is read by the real runner.
    grader::cli::solutions::copy_sources(&repo().join("hidden-tests/src"), &dir.path().join("src"))
        .unwrap();
    std::fs::create_dir_all(dir.path().join("tests/all")).unwrap();
    std::fs::write(dir.path().join("tests/all/main.rs"), "mod outcomes;\n").unwrap();
    std::fs::write(
        dir.path().join("tests/all/outcomes.rs"),
        r#"
#[test]
fn passes() {
    assert!(runtime::executor::MAX_QUEUED_TASKS > 0);
}
#[test]
fn fails() {
    assert_eq!(1 + 1, 3, "deliberately wrong");
}
#[test]
fn idle_forever() {
    loop {
        std::thread::park();
    }
}
#[test]
fn busy_forever() {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}
#[test]
fn harness_catches_an_idle_hang() {
    hidden_tests::with_watchdog(1, "the parked body", || loop {
        std::thread::park();
    });
}
#[test]
fn harness_catches_a_busy_hang() {
    hidden_tests::with_watchdog(1, "the spinning body", || {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    });
}
#[test]
fn harness_catches_a_wake_that_never_came() {
    let (_waker, probe) = hidden_tests::probe_waker();
    hidden_tests::expect_within("a wake of the probe", std::time::Duration::from_millis(300), |t| {
        probe.wait_for_wakes(1, t)
    });
}
#[test]
fn forges_success_then_aborts() {
    println!("test result: ok. 1 passed; 0 failed; 0 ignored");
    eprintln!("test result: ok. 1 passed; 0 failed; 0 ignored");
    std::process::abort();
}
#[test]
fn overflows_its_stack() {
    fn deeper(n: u64) -> u64 {
        std::hint::black_box(deeper(std::hint::black_box(n + 1))) + 1
    }
    deeper(0);
}
#[test]
fn eats_memory() {
    let mut v: Vec<Vec<u8>> = Vec::new();
    loop {
        v.push(vec![1u8; 64 << 20]);
    }
}
#[test]
fn floods_output() {
    let line = "x".repeat(1023);
    for _ in 0..100_000 {
        println!("{line}");
    }
}
// In the sources (so the engine's rubric check accepts the suite) but compiled out of the build.
#[cfg(any())]
#[test]
fn not_in_the_build() {}
"#,
    )
    .unwrap();
    let entry = |name: &str, category: &str, points: u32, timeout: u32| {
        format!(
            "[[test]]\nname = \"{name}\"\ncategory = \"{category}\"\npoints = {points}\ntimeout_secs = {timeout}\nvisible = false\nhint = \"hint for {name}\"\n\n"
        )
    };
    let rubric = [
        entry("passes", "timer", 10, 5),
        entry("fails", "timer", 10, 5),
        entry("idle_forever", "deadlock", 5, 2),
        entry("busy_forever", "deadlock", 5, 2),
        entry("harness_catches_an_idle_hang", "deadlock", 4, 5),
        entry("harness_catches_a_busy_hang", "deadlock", 3, 5),
        entry("harness_catches_a_wake_that_never_came", "deadlock", 3, 5),
        entry("forges_success_then_aborts", "missed_wake", 10, 5),
        entry("overflows_its_stack", "missed_wake", 10, 5),
        entry("eats_memory", "queue_overflow", 10, 10),
        entry("floods_output", "stale_waker", 5, 10),
        entry("not_in_the_build", "stale_waker", 5, 5),
        "[[test]]\nname = \"demo\"\ncategory = \"demo\"\npoints = 20\ntimeout_secs = 10\nhint = \"h\"\nbinary = \"runtime_demo\"\n".to_string(),
    ]
    .concat();
    std::fs::write(dir.path().join("rubric.toml"), rubric).unwrap();
    dir
}

#[test]
fn each_outcome_comes_from_the_process_fate_not_its_output() {
    let suite = outcome_suite();
    let engine = Engine::new(common::config(suite.path().to_path_buf())).unwrap();
    let report = grade(&engine, &repo().join("solutions/reference"));
    assert_eq!(report.status, Status::Graded, "{report:#?}");
    let get = |name: &str| report.tests.iter().find(|t| t.name == name).unwrap();
    assert_eq!(get("passes").outcome, Outcome::Passed);
    assert_eq!(get("passes").score, 10);
    assert_eq!(get("demo").outcome, Outcome::Passed);
    let fails = get("fails");
    assert_eq!(fails.outcome, Outcome::Failed);
    assert!(fails
        .output
        .as_deref()
        .unwrap()
        .contains("deliberately wrong"));
    let idle = get("idle_forever");
    assert_eq!(idle.outcome, Outcome::TimedOut);
    assert!(
        idle.message.as_deref().unwrap().contains("idle"),
        "{idle:#?}"
    );
    let busy = get("busy_forever");
    assert_eq!(busy.outcome, Outcome::TimedOut);
    assert!(
        busy.message.as_deref().unwrap().contains("busy"),
        "{busy:#?}"
    );
    assert!(busy.cpu_ms * 10 >= busy.duration_ms, "{busy:#?}");
    assert!(idle.cpu_ms * 10 < idle.duration_ms, "{idle:#?}");
    // A hang caught by the harness's watchdog is a timeout too (not a failed assertion), idle or
    // busy, naming the operation; the student's view keeps that explanation.
    let student = report.for_student();
    for (name, what, activity) in [
        (
            "harness_catches_an_idle_hang",
            "hung 1.0 s waiting for the parked body",
            "idle",
        ),
        (
            "harness_catches_a_busy_hang",
            "hung 1.0 s waiting for the spinning body",
            "busy",
        ),
        (
            "harness_catches_a_wake_that_never_came",
            "hung 0.3 s waiting for a wake of the probe",
            "idle",
        ),
    ] {
        let i = report.tests.iter().position(|t| t.name == name).unwrap();
        let (t, seen) = (&report.tests[i], &student.tests[i]);
        assert_eq!(t.outcome, Outcome::TimedOut, "{t:#?}");
        let message = t.message.as_deref().unwrap();
        assert!(
            message.starts_with(what) && message.contains(activity),
            "{t:#?}"
        );
        assert_eq!(
            (seen.outcome, seen.message.as_deref()),
            (t.outcome, Some(message))
        );
        assert!(seen.output.is_none());
    }
    let forged = get("forges_success_then_aborts");
    assert_eq!(forged.outcome, Outcome::Crashed, "{forged:#?}");
    assert_eq!(forged.score, 0);
    assert_eq!(get("overflows_its_stack").outcome, Outcome::Crashed);
    assert_eq!(get("eats_memory").outcome, Outcome::MemoryLimit);
    let flood = get("floods_output");
    assert_eq!(flood.outcome, Outcome::Passed);
    assert!(flood.output.as_deref().unwrap().len() < 200 * 1024);
    let missing = get("not_in_the_build");
    assert_eq!(missing.outcome, Outcome::NotRun);
    assert_eq!(missing.score, 0);
    assert_eq!(report.score, 10 + 20 + 5);
    assert_eq!(report.categories["deadlock"].score, 0);
}

#[test]
fn a_listing_that_keeps_failing_is_the_graders_error_not_the_students_zero() {
    let mut config = common::config(repo().join("hidden-tests"));
    // Far too little time for any listing: every attempt fails, as one might under heavy load.
    config.test_limits.wall = std::time::Duration::from_millis(1);
    let engine = Engine::new(config).unwrap();
    let result = engine.grade(
        Input::Path(&repo().join("solutions/reference")),
        Mode::Hidden,
        &|_| {},
    );
    assert!(
        matches!(result, Err(EngineError::Runner(RunnerError::Listing(_)))),
        "{result:#?}"
    );
}

#[test]
fn engines_of_other_keys_on_one_data_folder_keep_their_own_warm_caches() {
    // `grader check` (no hidden tests) started beside a grading engine on one data folder: its
    // warm cache, with the hidden tests' library built as an empty stub, used to replace the
    // other engine's. That engine's next jobs copied it, cargo took the stub for fresh, and the
    // hidden tests failed to compile against it: "did not compile", 0 points, for correct code.
    engine(); // The shared caches exist.
    let data = common::data_dir_sharing_the_caches();
    let grading = Engine::new(Config::new(
        data.path().to_path_buf(),
        repo().join("hidden-tests"),
    ))
    .unwrap();
    let checking = Engine::new(Config::public_only(data.path().to_path_buf())).unwrap();
    let dir = reference_with("src/lib.rs", |text| text);
    let report = grade(&grading, dir.path());
    assert_eq!(
        (report.status, report.score),
        (Status::Graded, 100),
        "{report:#?}"
    );
    let checked = checking
        .grade(Input::Path(dir.path()), Mode::Public, &|_| {})
        .unwrap();
    assert_eq!(checked.score, checked.max_score, "{checked:#?}");
    let keys = std::fs::read_dir(data.path().join("warm-targets"))
        .unwrap()
        .count();
    assert!(keys >= 2, "one warm cache per key, {keys} found");
}
