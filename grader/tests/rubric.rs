//! The repository's hidden tests and their rubric agree (the check the engine runs at start: every
//! `#[test]` of `hidden-tests/tests/all/*.rs` has exactly one rubric entry, every entry names a test, none
//! is `#[ignore]`d), every binary entry names a binary of the template, and the rubric teaches.

mod common;
use common::repo;

use grader::engine::suite::{HiddenTests, HiddenTestsError};

fn hidden() -> HiddenTests {
    HiddenTests::open(&repo().join("hidden-tests")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_hidden_test_has_one_entry_and_every_entry_a_test() {
    let hidden = hidden();
    assert!(!hidden.tests().is_empty());
    for entry in hidden.rubric().binaries() {
        let bin = entry.binary.as_deref().unwrap();
        let path = repo()
            .join("exercise-template/src/bin")
            .join(format!("{bin}.rs"));
        assert!(
            path.is_file(),
            "rubric entry `{}` runs unknown binary `{bin}`",
            entry.name
        );
    }
}

#[test]
fn robustness_categories_have_four_tests_each_and_hints_teach() {
    let hidden = hidden();
    let rubric = hidden.rubric();
    for category in grader::engine::rubric::ROBUSTNESS {
        let n = rubric.tests().filter(|e| e.category == category).count();
        assert!(n >= 4, "{category} has {n} tests, fewer than 4");
    }
    for e in rubric.entries() {
        assert!(e.hint.len() >= 40, "`{}` needs a hint that teaches", e.name);
        assert!(
            e.visible || !e.hint.contains(&e.name),
            "`{}`'s hint must not give the test away",
            e.name
        );
    }
}

/// A copy of the repository's hidden tests with `edit` applied to one test file.
fn edited_copy(file: &str, edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = repo().join("hidden-tests");
    grader::cli::solutions::copy_sources(&from.join("src"), &dir.path().join("src")).unwrap();
    grader::cli::solutions::copy_sources(&from.join("tests"), &dir.path().join("tests")).unwrap();
    for f in ["Cargo.toml", "rubric.toml"] {
        std::fs::copy(from.join(f), dir.path().join(f)).unwrap();
    }
    let path = dir.path().join("tests").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    dir
}

fn problems(dir: &std::path::Path) -> Vec<String> {
    match HiddenTests::open(dir) {
        Err(HiddenTestsError::Disagree { problems, .. }) => problems,
        other => panic!("expected a disagreement, got {other:?}"),
    }
}

#[test]
fn a_renamed_test_is_an_unscored_test_and_an_entry_without_test() {
    let first = hidden()
        .tests()
        .iter()
        .find(|t| t.file == "tests/all/timer.rs")
        .unwrap()
        .name
        .clone();
    let dir = edited_copy("all/timer.rs", |s| {
        s.replacen(&format!("fn {first}("), "fn renamed_by_mistake(", 1)
    });
    let problems = problems(dir.path());
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("test `renamed_by_mistake` (tests/all/timer.rs:"));
    assert!(problems[0].ends_with("has no rubric entry: it would never run"));
    assert!(
        problems[1].starts_with(&format!("rubric entry `{first}` names no #[test] function")),
        "{problems:#?}"
    );
}

#[test]
fn an_ignored_hidden_test_is_refused() {
    let first = hidden().tests()[0].clone();
    let dir = edited_copy(first.file.trim_start_matches("tests/"), |s| {
        s.replacen(
            &format!("fn {}(", first.name),
            &format!("#[ignore]\nfn {}(", first.name),
            1,
        )
    });
    let problems = problems(dir.path());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with(&format!("test `{}` ({}:", first.name, first.file))
            && problems[0].contains("is #[ignore]d"),
        "{problems:#?}"
    );
}

#[test]
fn a_test_file_outside_the_one_binary_is_refused() {
    // Declared nowhere: its tests would never be compiled.
    let dir = edited_copy("all/main.rs", |s| s.replace("mod timer;\n", ""));
    let undeclared = problems(dir.path());
    assert!(
        undeclared
            .iter()
            .any(|p| p.starts_with("tests/all/timer.rs is not declared in tests/all/main.rs")),
        "{undeclared:#?}"
    );
    // A test target of its own is not built: the grader builds the one binary.
    let dir = edited_copy("all/main.rs", |s| s);
    std::fs::write(
        dir.path().join("tests/extra.rs"),
        "#[test]\nfn extra() {}\n",
    )
    .unwrap();
    let problems = problems(dir.path());
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("tests/extra.rs is not a module of the one test binary"),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with("test `extra` (tests/extra.rs:2) has no rubric entry"),
        "{problems:#?}"
    );
}
