//! The validation matrix in CI: every correct solution scores 100 in every run, the template 0, and
//! every buggy variant loses points in its declared category in every run, in the real sandbox.
//! Runs per solution: `GRADER_VALIDATE_RUNS` (default 2 here; `grader validate` defaults to 10).

mod common;
use common::repo;

use grader::cli::validate;
use grader::engine::Engine;

#[test]
fn every_solution_gets_what_it_must() {
    let repo = repo();
    let runs = std::env::var("GRADER_VALIDATE_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let engine = Engine::new(common::config(repo.join("hidden-tests"))).unwrap();
    let all = validate::select(&repo, None).unwrap();
    let rows = validate::run(&engine, &all, runs, &|row| {
        eprintln!("{}: {:?}", row.name, row.problem)
    })
    .unwrap();
    println!("{}", validate::render(&rows));
    assert!(
        rows.len() >= 1 + 3 + 14,
        "template, 3 correct, 14 buggy at least"
    );
    let problems: Vec<_> = rows
        .iter()
        .filter_map(|r| r.problem.as_ref().map(|p| format!("{}: {p}", r.name)))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}
