//! The documentation is the repository's own: the README's numbers are the repository's, and the
//! README, the handout and the guides link nothing outside the repository and name no path of a
//! development machine.

mod common;
use common::repo;

use std::path::{Path, PathBuf};

use grader::engine::rubric::ROBUSTNESS;
use grader::engine::suite::{public_max_by_category, HiddenTests};

/// The documents a fresh clone's reader follows.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = [
        "README.md",
        "exercise-template/README.md",
        "solutions/buggy/README.md",
    ]
    .iter()
    .map(|d| repo().join(d))
    .collect();
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        docs.push(entry.unwrap().path());
    }
    docs
}

/// The number written just before `words` in `text` (e.g. "75" in "holds 75 injected tests"), at
/// the first place where a number stands there.
fn number_before(text: &str, words: &str) -> u32 {
    text.match_indices(words)
        .find_map(|(at, _)| {
            let digits: Vec<char> = text[..at]
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.iter().rev().collect::<String>().parse().ok()
        })
        .unwrap_or_else(|| panic!("the README no longer says \"<number>{words}\""))
}

#[test]
fn the_readmes_numbers_are_the_repositorys() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let hidden = HiddenTests::open(&repo().join("hidden-tests")).unwrap();
    let variants = std::fs::read_dir(repo().join("solutions/buggy"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    let robust: u32 = hidden
        .rubric()
        .entries()
        .iter()
        .filter(|e| ROBUSTNESS.contains(&e.category.as_str()))
        .map(|e| e.points)
        .sum();
    let public: u32 = public_max_by_category().values().sum();
    // The start line shown in the configuration section.
    let example = &readme[readme.find("(version ").expect("the start line's example")..];
    let stated = [
        (
            "hidden tests",
            &readme[..],
            " injected tests (`tests/all/",
            hidden.tests().len(),
        ),
        (
            "buggy variants",
            &readme,
            " variants, at least one",
            variants,
        ),
        ("public tests", &readme, " public tests in", public as usize),
        (
            "robustness points",
            &readme,
            " of them in the robustness",
            robust as usize,
        ),
        (
            "tests in the example",
            example,
            " tests, ",
            hidden.tests().len(),
        ),
        (
            "entries in the example",
            example,
            " rubric entries)",
            hidden.rubric().entries().len(),
        ),
    ];
    for (what, text, words, actual) in stated {
        assert_eq!(
            number_before(text, words) as usize,
            actual,
            "the README's number of {what} is wrong"
        );
    }
}

#[test]
fn no_document_points_outside_the_repository_or_names_a_machine_path() {
    let root = std::fs::canonicalize(repo()).unwrap();
    let machine = [
        root.to_str().unwrap(),
        "/work/main",
        "/work/wt/",
        "/work/shared",
        "/home/",
        "/root/",
    ];
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(repo()).unwrap_or(&doc).display();
        for m in machine {
            assert!(!text.contains(m), "{name} names the machine path {m}");
        }
        // Every relative path that climbs out of the document's folder (links and quoted paths
        // alike) must land on a file of the repository.
        let folder = doc.parent().unwrap();
        for (i, _) in text.match_indices("../") {
            let before = text[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '/') {
                continue;
            }
            let rel: String = text[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !"`)]\"'>".contains(*c))
                .collect();
            let target = std::fs::canonicalize(folder.join(&rel));
            assert!(
                target.as_deref().is_ok_and(|t| t.starts_with(&root)),
                "{name} points outside the repository: {rel}"
            );
        }
        // Markdown links to files must resolve inside the repository too.
        for (i, _) in text.match_indices("](") {
            let link: String = text[i + 2..].chars().take_while(|&c| c != ')').collect();
            let path = link.split('#').next().unwrap_or_default();
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            let target = std::fs::canonicalize(folder.join(Path::new(path)));
            assert!(
                target.as_deref().is_ok_and(|t| t.starts_with(&root)),
                "{name} links to {link}, which is not a file of the repository"
            );
        }
    }
}

#[test]
fn the_exercise_spec_is_in_the_repository_and_linked() {
    let spec = repo().join("docs/exercise-spec.md");
    assert!(std::fs::read_to_string(&spec)
        .unwrap()
        .contains("CountdownFuture"));
    for (doc, link) in [
        ("README.md", "(docs/exercise-spec.md)"),
        ("exercise-template/README.md", "(../docs/exercise-spec.md)"),
    ] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        assert!(text.contains(link), "{doc} does not link the spec");
    }
}
