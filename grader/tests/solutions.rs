//! The exercise check (in the spirit of rustlings' `dev check`): builds the template and every known
//! solution offline with the grader's own Cargo files and the template's public tests, and proves that
//! the template compiles and fails every public test, every correct solution passes them all, and every
//! buggy variant compiles.

mod common;
use common::repo;

use std::path::Path;
use std::process::Command;

use grader::cli::solutions::{discover, Expect, Solution};
use grader::engine::assembly::{PUBLIC_TESTS, RUNTIME_TOML};

/// Materialises `solution` as a standalone crate with the public tests injected.
fn crate_of(solution: &Solution) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    solution.materialize(dir.path()).unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), RUNTIME_TOML).unwrap();
    std::fs::copy(
        repo().join("exercise-template/Cargo.lock"),
        dir.path().join("Cargo.lock"),
    )
    .unwrap();
    for (path, contents) in PUBLIC_TESTS {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

/// Runs cargo offline in `dir` with the target folder `target`, shared by the solutions one test
/// checks in turn (same package, same dependencies: only the crate itself recompiles). Tests that run
/// at once need their own: every solution's artifacts have the same names.
fn cargo(dir: &Path, target: &str, args: &[&str]) -> std::process::Output {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join(target);
    let (subcommand, rest) = args.split_first().unwrap();
    Command::new(env!("CARGO"))
        .arg(subcommand)
        .args(["--offline", "--locked", "--quiet"])
        .args(rest)
        .env("CARGO_TARGET_DIR", target)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// (passed, failed) summed over libtest's summary lines.
fn counts(stdout: &str) -> (u32, u32) {
    let mut total = (0, 0);
    for line in stdout.lines().filter(|l| l.starts_with("test result:")) {
        let num = |word: &str| -> u32 {
            let before = line.split(word).next().unwrap_or("");
            before
                .rsplit(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
                .unwrap()
                .parse()
                .unwrap()
        };
        total.0 += num(" passed");
        total.1 += num(" failed");
    }
    total
}

fn solutions(pred: impl Fn(&Expect) -> bool) -> Vec<Solution> {
    discover(&repo())
        .unwrap()
        .into_iter()
        .filter(|s| pred(&s.expect))
        .collect()
}

#[test]
fn template_compiles_and_fails_every_public_test() {
    let [template] = &solutions(|e| *e == Expect::Template)[..] else {
        panic!("one template")
    };
    let dir = crate_of(template);
    let build = cargo(dir.path(), "template", &["build", "--all-targets"]);
    assert!(
        build.status.success(),
        "template must compile:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let test = cargo(
        dir.path(),
        "template",
        &["test", "--lib", "--", "--test-threads=2"],
    );
    let stdout = String::from_utf8_lossy(&test.stdout);
    let (passed, failed) = counts(&stdout);
    assert_eq!(
        passed, 0,
        "no public test may pass on the template:\n{stdout}"
    );
    assert!(
        failed >= 12,
        "expected at least 12 failing public tests, got {failed}:\n{stdout}\n{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(stdout.contains("not yet implemented"), "{stdout}");
}

#[test]
fn correct_solutions_pass_every_public_test() {
    let correct = solutions(|e| *e == Expect::Correct);
    assert!(
        correct.len() >= 3,
        "the reference and at least two other correct solutions"
    );
    for s in &correct {
        let dir = crate_of(s);
        let test = cargo(dir.path(), "correct", &["test", "--lib"]);
        let stdout = String::from_utf8_lossy(&test.stdout);
        let (passed, failed) = counts(&stdout);
        assert!(
            test.status.success() && failed == 0 && passed >= 12,
            "{} must pass every public test ({passed} passed, {failed} failed):\n{stdout}\n{}",
            s.name,
            String::from_utf8_lossy(&test.stderr)
        );
        let demo = cargo(dir.path(), "correct", &["run", "--bin", "runtime_demo"]);
        assert!(
            demo.status.success(),
            "{}: runtime_demo must exit 0",
            s.name
        );
    }
}

#[test]
fn every_buggy_variant_compiles() {
    let buggy = solutions(|e| matches!(e, Expect::Buggy { .. }));
    assert!(
        buggy.len() >= 14,
        "at least 14 buggy variants, found {}",
        buggy.len()
    );
    for s in &buggy {
        let dir = crate_of(s);
        let build = cargo(dir.path(), "buggy", &["build", "--all-targets"]);
        assert!(
            build.status.success(),
            "{} must compile:\n{}",
            s.name,
            String::from_utf8_lossy(&build.stderr)
        );
    }
}
