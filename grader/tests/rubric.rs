//! The hidden tests and their rubric agree: every `#[test]` of `hidden-tests/tests/*.rs` has exactly one
//! rubric entry, every entry names a test (or a binary of the template), and the rubric's own rules hold.

use std::path::{Path, PathBuf};

use grader::rubric::{Rubric, ROBUSTNESS};

fn hidden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hidden-tests")
}

/// The names of the `#[test]` functions of one file (top level, as the rubric keys them).
fn test_names(source: &str) -> Vec<String> {
    let file = syn::parse_file(source).expect("hidden tests parse");
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Fn(f) if f.attrs.iter().any(|a| a.path().is_ident("test")) => {
                Some(f.sig.ident.to_string())
            }
            _ => None,
        })
        .collect()
}

fn all_test_names() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(hidden().join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            names.extend(test_names(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    names
}

#[test]
fn every_hidden_test_has_one_entry_and_every_entry_a_test() {
    let rubric = Rubric::load(&hidden().join("rubric.toml")).expect("the rubric is valid");
    let names = all_test_names();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        names.len(),
        "test names must be unique across files"
    );
    let mismatches = rubric.mismatches(names.iter().map(String::as_str));
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    for entry in rubric.binaries() {
        let bin = entry.binary.as_deref().unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../exercise-template/src/bin")
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
    let rubric = Rubric::load(&hidden().join("rubric.toml")).unwrap();
    for category in ROBUSTNESS {
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

#[test]
fn the_check_notices_a_test_without_entry_and_an_entry_without_test() {
    let rubric = Rubric::load(&hidden().join("rubric.toml")).unwrap();
    let mut names = all_test_names();
    let dropped = names.pop().unwrap();
    names.push("a_test_nobody_scored".into());
    let mismatches = rubric.mismatches(names.iter().map(String::as_str));
    assert!(mismatches.contains(&"test `a_test_nobody_scored` has no rubric entry".to_string()));
    assert!(mismatches.contains(&format!("rubric entry `{dropped}` names no test")));
}
