//! The grading report: what the engine produces, the database stores and the pages show.
//!
//! The JSON form is stable and documented in the README. Instructors see the full report; students see
//! [`Report::for_student`], which hides the names of hidden tests and every hidden test's output.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a grading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The tests ran and were scored.
    Graded,
    /// The submission was refused before building (archive or policy).
    Rejected,
    /// The crate did not compile.
    BuildFailed,
}

/// What happened to one test process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exited 0.
    Passed,
    /// Exited non-zero (a failed assertion or a panic).
    Failed,
    /// Killed at its timeout.
    TimedOut,
    /// Died by a signal of its own: abort, stack overflow, segfault.
    Crashed,
    /// Killed for exceeding its memory limit.
    MemoryLimit,
    /// Never ran (the build failed, or it was not found in the build).
    NotRun,
}

/// One scored check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The test's name, or "hidden test N" in a student's view of a hidden test.
    pub name: String,
    /// Its rubric category.
    pub category: String,
    /// What happened.
    pub outcome: Outcome,
    /// Points earned.
    pub score: u32,
    /// Points possible.
    pub max_score: u32,
    /// Wall time of the process.
    pub duration_ms: u64,
    /// CPU time of the process.
    pub cpu_ms: u64,
    /// A plain-language explanation of the outcome (e.g. idle versus busy at a timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The rubric's hint, present when the check did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Captured output (capped); never in a student's view of a hidden test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Whether students may see this test's name and output. Stored with the report, so that a
    /// report read back shows the student the same view; missing means hidden (fail closed).
    #[serde(default)]
    pub visible: bool,
}

impl TestResult {
    /// A check that has not run: no points yet, no time, its hint ready in case it does not pass.
    pub fn unscored(
        name: &str,
        category: &str,
        max_score: u32,
        hint: Option<String>,
        visible: bool,
    ) -> TestResult {
        TestResult {
            name: name.to_string(),
            category: category.to_string(),
            outcome: Outcome::NotRun,
            score: 0,
            max_score,
            duration_ms: 0,
            cpu_ms: 0,
            message: None,
            hint,
            output: None,
            visible,
        }
    }
}

/// Score of one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryScore {
    /// Points earned.
    pub score: u32,
    /// Points possible.
    pub max_score: u32,
}

/// A compiler message, located in the student's crate where possible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Path relative to the student's crate (e.g. `src/timer.rs`), when the message points there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// `error` or `warning` (or the policy's `refused`).
    pub level: String,
    /// The one-line message.
    pub message: String,
    /// The compiler's full rendering.
    pub rendered: String,
}

/// A file of the upload that the grader did not use, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredFile {
    /// Path in the upload.
    pub path: String,
    /// Why it was ignored.
    pub reason: String,
}

/// Phase timings of one grading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Time spent waiting in the server's queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<u64>,
    /// Assembly and build.
    pub build_ms: u64,
    /// All test processes.
    pub run_ms: u64,
    /// Everything, from intake to report.
    pub total_ms: u64,
}

/// The limits applied to the build and to each test, and how they were enforced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsReport {
    /// Wall-clock limit of the build, seconds.
    pub build_wall_secs: u64,
    /// Memory limit of the build, bytes.
    pub build_memory_bytes: u64,
    /// Memory limit of each test, bytes.
    pub test_memory_bytes: u64,
    /// Task (process and thread) limit of each test.
    pub test_tasks: u64,
    /// Captured output per stream and process, bytes.
    pub output_bytes: usize,
    /// Which mechanisms held (cgroup v1/v2, rlimits, tmpfs caps).
    pub enforcement: String,
}

/// The result of grading one submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// How grading ended.
    pub status: Status,
    /// Points earned.
    pub score: u32,
    /// Points possible.
    pub max_score: u32,
    /// Why the submission was rejected or did not build, in words for the student.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Per-category scores, every category of the rubric.
    pub categories: BTreeMap<String, CategoryScore>,
    /// Per-check results, in rubric order.
    pub tests: Vec<TestResult>,
    /// Compiler (or policy) messages.
    pub diagnostics: Vec<Diagnostic>,
    /// Upload files that were not used.
    pub ignored_files: Vec<IgnoredFile>,
    /// Limits and their enforcement.
    pub limits: LimitsReport,
    /// Phase timings.
    pub timings: Timings,
}

impl Report {
    /// A report of `tests`, none run yet, with every category of `max_by_category` at zero.
    pub fn unscored(
        tests: Vec<TestResult>,
        max_by_category: &BTreeMap<String, u32>,
        limits: LimitsReport,
    ) -> Report {
        let mut report = Report {
            status: Status::Graded,
            score: 0,
            max_score: 0,
            message: None,
            categories: BTreeMap::new(),
            tests,
            diagnostics: Vec::new(),
            ignored_files: Vec::new(),
            limits,
            timings: Timings::default(),
        };
        report.tally(max_by_category);
        report
    }

    /// The submission was refused before building, for the reasons in `diagnostics`.
    pub fn reject(&mut self, message: String, diagnostics: Vec<Diagnostic>) {
        self.status = Status::Rejected;
        self.message = Some(message);
        self.diagnostics = diagnostics;
    }

    /// The crate did not compile: `message` says so to the student; no test ran.
    pub fn build_failed(&mut self, message: String) {
        self.status = Status::BuildFailed;
        self.message = Some(message);
        for t in &mut self.tests {
            t.message = Some("the crate did not compile".into());
        }
    }

    /// Records what happened to test `i`: all of its points if it passed, none otherwise.
    pub fn record(
        &mut self,
        i: usize,
        outcome: Outcome,
        message: Option<String>,
        duration_ms: u64,
        cpu_ms: u64,
        output: String,
    ) {
        let t = &mut self.tests[i];
        t.outcome = outcome;
        t.score = if outcome == Outcome::Passed {
            t.max_score
        } else {
            0
        };
        t.message = message;
        t.duration_ms = duration_ms;
        t.cpu_ms = cpu_ms;
        t.output = Some(output);
    }

    /// Ends the scoring: graded, hints kept only where a test did not pass, categories and the
    /// total summed.
    pub fn finish_scoring(&mut self) {
        for t in &mut self.tests {
            if t.outcome == Outcome::Passed {
                t.hint = None;
            }
        }
        self.status = Status::Graded;
        let max = self
            .categories
            .iter()
            .map(|(c, s)| (c.clone(), s.max_score))
            .collect();
        self.tally(&max);
    }

    /// Sums test scores into categories and the total. `max_by_category` names every category.
    pub fn tally(&mut self, max_by_category: &BTreeMap<String, u32>) {
        self.categories = max_by_category
            .iter()
            .map(|(c, &max)| {
                let score = self
                    .tests
                    .iter()
                    .filter(|t| &t.category == c)
                    .map(|t| t.score)
                    .sum();
                (
                    c.clone(),
                    CategoryScore {
                        score,
                        max_score: max,
                    },
                )
            })
            .collect();
        self.score = self.tests.iter().map(|t| t.score).sum();
        self.max_score = max_by_category.values().sum();
    }

    /// The report as a student may see it: hidden tests are numbered instead of named and lose
    /// their output; compiler messages that point into the hidden tests are dropped (the engine
    /// already turned them into API-mismatch messages).
    pub fn for_student(&self) -> Report {
        let mut out = self.clone();
        let mut n = 0;
        for t in &mut out.tests {
            if !t.visible {
                n += 1;
                t.name = format!("hidden test {n}");
                t.output = None;
            }
        }
        out
    }

    /// Tests that did not pass.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.tests.iter().filter(|t| t.outcome != Outcome::Passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(name: &str, outcome: Outcome, visible: bool) -> TestResult {
        TestResult {
            name: name.into(),
            category: "deadlock".into(),
            outcome,
            score: if outcome == Outcome::Passed { 2 } else { 0 },
            max_score: 2,
            duration_ms: 5_012,
            cpu_ms: 3,
            message: (outcome != Outcome::Passed).then(|| "hung 5.0 s waiting for run()".into()),
            hint: (outcome != Outcome::Passed).then(|| "wake before Pending".into()),
            output: Some("stderr line\n".into()),
            visible,
        }
    }

    fn report() -> Report {
        let mut report = Report {
            status: Status::Graded,
            score: 0,
            max_score: 0,
            message: Some("a message".into()),
            categories: BTreeMap::new(),
            tests: vec![
                test("visible_one", Outcome::Passed, true),
                test("secret_one", Outcome::TimedOut, false),
                test("secret_two", Outcome::Passed, false),
            ],
            diagnostics: vec![Diagnostic {
                file: Some("src/timer.rs".into()),
                line: Some(3),
                column: Some(22),
                level: "error".into(),
                message: "mismatched types".into(),
                rendered: "error[E0308]: mismatched types".into(),
            }],
            ignored_files: vec![IgnoredFile {
                path: "Cargo.toml".into(),
                reason: "the grader uses its own".into(),
            }],
            limits: LimitsReport {
                build_wall_secs: 180,
                enforcement: "memory=cgroup-v1".into(),
                ..LimitsReport::default()
            },
            timings: Timings {
                queue_ms: Some(7),
                build_ms: 1,
                run_ms: 2,
                total_ms: 3,
            },
        };
        report.tally(&[("deadlock".to_string(), 6), ("timer".to_string(), 0)].into());
        report
    }

    #[test]
    fn a_stored_report_reads_back_as_the_same_report() {
        let original = report();
        let stored = serde_json::to_string(&original).unwrap();
        let read: Report = serde_json::from_str(&stored).unwrap();
        assert_eq!(read, original);
        // What a student is shown from the stored report is what they were shown at grading.
        assert_eq!(read.for_student(), original.for_student());
        let student = read.for_student();
        assert_eq!(student.tests[1].name, "hidden test 1");
        assert!(student.tests[1].output.is_none());
        assert_eq!(student.tests[0].name, "visible_one");
    }

    #[test]
    fn a_stored_test_without_visibility_is_hidden() {
        let mut json = serde_json::to_value(report()).unwrap();
        json["tests"][0].as_object_mut().unwrap().remove("visible");
        let read: Report = serde_json::from_value(json).unwrap();
        assert_eq!(read.for_student().tests[0].name, "hidden test 1");
    }
}
