//! The validation matrix: grades every known solution (template, correct solutions, buggy variants)
//! several times and checks that each gets exactly what it must: correct code full marks in every run,
//! the template zero, and every buggy variant points lost in its declared category in every run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::solutions::{self, Expect, Solution};
use crate::engine::report::{Report, Status};
use crate::engine::rubric::CATEGORIES;
use crate::engine::{Engine, EngineError, Input, Mode, Progress};

/// The gradings of one solution and whether they meet its expectation.
#[derive(Debug)]
pub struct Row {
    /// The solution's name.
    pub name: String,
    /// What it must get.
    pub expect: Expect,
    /// Per category, the lowest and highest score over the runs, and the maximum.
    pub categories: BTreeMap<String, (u32, u32, u32)>,
    /// Lowest and highest total over the runs.
    pub total: (u32, u32),
    /// How many runs.
    pub runs: usize,
    /// Names of the tests that failed in any run, with how many runs they failed.
    pub failing: BTreeMap<String, usize>,
    /// Why the expectation does not hold, if it does not.
    pub problem: Option<String>,
}

/// Why the solutions to validate cannot be chosen: the instructor's mistake, never a grade.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The folder is not the grader's repository.
    #[error(
        "{} is not the runtime-grader repository (it has no exercise-template/ and solutions/): \
         run from the repository's root or pass --repo",
        .0.display()
    )]
    NotARepository(PathBuf),
    /// The solutions cannot be listed or read.
    #[error("{0}")]
    Solutions(#[from] solutions::SolutionError),
    /// `--only` matches no solution.
    #[error("no solution's name contains `{filter}`; the known ones are: {}", .known.join(", "))]
    Unknown {
        /// The filter given.
        filter: String,
        /// Every solution's name.
        known: Vec<String>,
    },
}

/// The solutions of the repository at `repo` whose name contains `filter` (all without one); an
/// unknown name is an error that lists the known ones.
pub fn select(repo: &Path, filter: Option<&str>) -> Result<Vec<Solution>, ValidateError> {
    if !repo.join("exercise-template").is_dir() || !repo.join("solutions").is_dir() {
        return Err(ValidateError::NotARepository(repo.to_path_buf()));
    }
    let all = solutions::discover(repo)?;
    let chosen: Vec<Solution> = all
        .iter()
        .filter(|s| filter.is_none_or(|f| s.name.contains(f)))
        .cloned()
        .collect();
    match filter {
        Some(f) if chosen.is_empty() => Err(ValidateError::Unknown {
            filter: f.to_string(),
            known: all.into_iter().map(|s| s.name).collect(),
        }),
        _ => Ok(chosen),
    }
}

/// Grades each of `chosen`, `runs` times (one build, `runs` test phases), calling `on_row` as each
/// solution is done.
pub fn run(
    engine: &Engine,
    chosen: &[Solution],
    runs: usize,
    on_row: &dyn Fn(&Row),
) -> Result<Vec<Row>, EngineError> {
    let mut rows = Vec::new();
    for s in chosen {
        let row = grade_solution(engine, s, runs)?;
        on_row(&row);
        rows.push(row);
    }
    Ok(rows)
}

fn grade_solution(engine: &Engine, s: &Solution, runs: usize) -> Result<Row, EngineError> {
    let dir = tempfile::tempdir()?;
    s.materialize(dir.path())
        .map_err(|e| EngineError::Setup(e.to_string()))?;
    let quiet = |_: Progress| {};
    let reports = engine.grade_repeatedly(Input::Path(dir.path()), Mode::Hidden, runs, &quiet)?;
    Ok(summarise(s, &reports))
}

/// Summarises the reports of one solution and judges them against its expectation.
pub fn summarise(s: &Solution, reports: &[Report]) -> Row {
    let mut categories: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    let mut failing: BTreeMap<String, usize> = BTreeMap::new();
    for r in reports {
        for (name, c) in &r.categories {
            let e = categories
                .entry(name.clone())
                .or_insert((c.score, c.score, c.max_score));
            e.0 = e.0.min(c.score);
            e.1 = e.1.max(c.score);
        }
        for t in r.failures() {
            *failing.entry(t.name.clone()).or_default() += 1;
        }
    }
    let totals: Vec<u32> = reports.iter().map(|r| r.score).collect();
    let total = (
        totals.iter().copied().min().unwrap_or(0),
        totals.iter().copied().max().unwrap_or(0),
    );
    let max = reports.first().map_or(0, |r| r.max_score);
    let not_graded = reports.iter().find(|r| r.status != Status::Graded);
    let problem = match (&s.expect, not_graded) {
        (_, Some(r)) => Some(format!(
            "was not graded ({}): {}",
            match r.status {
                Status::Rejected => "refused",
                _ => "did not build",
            },
            r.message.clone().unwrap_or_default()
        )),
        (Expect::Template, None) if total.1 > 0 => {
            Some(format!("template scored up to {}", total.1))
        }
        (Expect::Correct, None) if total.0 < max => Some(format!(
            "correct solution scored {} in some run; failing: {}",
            total.0,
            failing
                .iter()
                .map(|(name, n)| format!("{name} ({n} of {} runs)", reports.len()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (Expect::Buggy { category, .. }, None) => {
            let (_, high, cmax) = categories.get(category).copied().unwrap_or((0, 0, 0));
            (high >= cmax).then(|| {
                format!("did not lose points in `{category}` in every run (best {high}/{cmax})")
            })
        }
        _ => None,
    };
    Row {
        name: s.name.clone(),
        expect: s.expect.clone(),
        categories,
        total,
        runs: reports.len(),
        failing,
        problem,
    }
}

/// Renders the matrix: one line per solution, one column per category (the lowest score over the
/// runs, with `*` where it varied between runs), the total and the verdict.
pub fn render(rows: &[Row]) -> String {
    let short = |c: &str| -> String { c.chars().take(8).collect() };
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(8);
    let mut out = format!("{:<width$}", "solution");
    for c in CATEGORIES {
        let _ = write!(out, " {:>9}", short(c));
    }
    let _ = writeln!(out, " {:>9}  verdict", "total");
    for r in rows {
        let _ = write!(out, "{:<width$}", r.name);
        for c in CATEGORIES {
            let cell = match r.categories.get(c) {
                Some(&(low, high, max)) => {
                    format!("{low}/{max}{}", if low != high { "*" } else { "" })
                }
                None => "-".into(),
            };
            let _ = write!(out, " {cell:>9}");
        }
        let total = format!(
            "{}{}",
            r.total.0,
            if r.total.0 != r.total.1 { "*" } else { "" }
        );
        let verdict = match (&r.problem, &r.expect) {
            (Some(p), _) => format!("FAIL: {p}"),
            (None, Expect::Buggy { category, .. }) => format!("ok: caught in {category}"),
            (None, _) => "ok".into(),
        };
        let runs = match r.runs {
            1 => "1 run".to_string(),
            n => format!("{n} runs"),
        };
        let _ = writeln!(out, " {total:>9}  {verdict} ({runs})");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(runs: usize) -> Row {
        Row {
            name: "reference".into(),
            expect: Expect::Correct,
            categories: BTreeMap::new(),
            total: (100, 100),
            runs,
            failing: BTreeMap::new(),
            problem: None,
        }
    }

    #[test]
    fn the_matrix_counts_runs_in_words() {
        let text = render(&[row(1), row(10)]);
        assert!(text.contains("ok (1 run)\n"), "{text}");
        assert!(text.contains("ok (10 runs)\n"), "{text}");
    }

    #[test]
    fn a_refused_solution_is_said_so_in_words() {
        let s = Solution {
            name: "reference".into(),
            expect: Expect::Correct,
            base: "solutions/reference".into(),
            patch: None,
        };
        let report = Report {
            status: Status::Rejected,
            score: 0,
            max_score: 100,
            message: Some("the upload has no src/lib.rs".into()),
            categories: BTreeMap::new(),
            tests: Vec::new(),
            diagnostics: Vec::new(),
            ignored_files: Vec::new(),
            limits: Default::default(),
            timings: Default::default(),
        };
        let problem = summarise(&s, &[report]).problem.unwrap();
        assert_eq!(
            problem,
            "was not graded (refused): the upload has no src/lib.rs"
        );
    }
}
