//! The rubric: points, category, timeout, visibility and hint of every hidden test (`hidden-tests/rubric.toml`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::engine::report::TestResult;

/// The rubric categories of the exercise spec, in report order.
pub const CATEGORIES: [&str; 11] = [
    "custom_future",
    "timer",
    "executor",
    "priority",
    "shutdown",
    "metrics",
    "demo",
    "deadlock",
    "missed_wake",
    "stale_waker",
    "queue_overflow",
];

/// The categories that target the classic async bugs; together they carry at least 40 points.
pub const ROBUSTNESS: [&str; 4] = ["deadlock", "missed_wake", "stale_waker", "queue_overflow"];

/// A parsed and validated rubric.
#[derive(Debug, Clone)]
pub struct Rubric {
    entries: Vec<Entry>,
}

/// One scored check: a hidden test, or a binary of the student's crate that must exit 0.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The test function's name (unique), or a label for a binary check.
    pub name: String,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// Points awarded when the check passes.
    pub points: u32,
    /// Process timeout for this check.
    pub timeout_secs: u64,
    /// Whether students see the name (otherwise "hidden test N").
    #[serde(default = "yes")]
    pub visible: bool,
    /// Shown to a student whose submission fails the check.
    pub hint: String,
    /// When set, the check runs this binary of the student's crate instead of a test.
    #[serde(default)]
    pub binary: Option<String>,
}

fn yes() -> bool {
    true
}

impl Entry {
    /// The process timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// Why a rubric is unusable.
#[derive(Debug, thiserror::Error)]
pub enum RubricError {
    /// The file could not be read.
    #[error("cannot read rubric {path}: {source}")]
    Io {
        /// The rubric's path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TOML does not have the rubric's shape.
    #[error("rubric is not valid TOML of the expected shape: {0}")]
    Parse(#[from] toml::de::Error),
    /// The rubric parses but breaks a rule.
    #[error("rubric is inconsistent: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    test: Vec<Entry>,
}

impl Rubric {
    /// Reads and validates a rubric file.
    pub fn load(path: &Path) -> Result<Rubric, RubricError> {
        let text = std::fs::read_to_string(path).map_err(|source| RubricError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Rubric::parse(&text)
    }

    /// Parses and validates rubric TOML: known categories, unique names, 100 points in all,
    /// at least 40 of them in the robustness categories, positive timeouts.
    pub fn parse(text: &str) -> Result<Rubric, RubricError> {
        let file: File = toml::from_str(text)?;
        let mut seen = std::collections::BTreeSet::new();
        for e in &file.test {
            if !CATEGORIES.contains(&e.category.as_str()) {
                return Err(RubricError::Invalid(format!(
                    "test `{}` has unknown category `{}`",
                    e.name, e.category
                )));
            }
            if !seen.insert(e.name.as_str()) {
                return Err(RubricError::Invalid(format!(
                    "test `{}` is listed twice",
                    e.name
                )));
            }
            if e.timeout_secs == 0 {
                return Err(RubricError::Invalid(format!(
                    "test `{}` has a zero timeout",
                    e.name
                )));
            }
        }
        let rubric = Rubric { entries: file.test };
        let total: u32 = rubric.entries.iter().map(|e| e.points).sum();
        if total != 100 {
            return Err(RubricError::Invalid(format!(
                "points add up to {total}, not 100"
            )));
        }
        let robust: u32 = rubric
            .entries
            .iter()
            .filter(|e| ROBUSTNESS.contains(&e.category.as_str()))
            .map(|e| e.points)
            .sum();
        if robust < 40 {
            return Err(RubricError::Invalid(format!(
                "robustness categories carry {robust} points, fewer than 40"
            )));
        }
        Ok(rubric)
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries that name a test (not a binary).
    pub fn tests(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.binary.is_none())
    }

    /// The entries that run a binary of the student's crate.
    pub fn binaries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.binary.is_some())
    }

    /// One unscored result per entry, in rubric order.
    pub fn unscored(&self) -> Vec<TestResult> {
        self.entries
            .iter()
            .map(|e| {
                TestResult::unscored(
                    &e.name,
                    &e.category,
                    e.points,
                    Some(e.hint.clone()),
                    e.visible,
                )
            })
            .collect()
    }

    /// Maximum points per category, for every category of the spec (zero where no entry has it).
    pub fn max_by_category(&self) -> BTreeMap<String, u32> {
        let mut out: BTreeMap<String, u32> =
            CATEGORIES.iter().map(|c| (c.to_string(), 0)).collect();
        for e in &self.entries {
            *out.entry(e.category.clone()).or_default() += e.points;
        }
        out
    }

    /// Checks the rubric against the tests a build actually contains: every test has an entry
    /// and every test entry names a test. Returns a description of each mismatch.
    pub fn mismatches<'a>(&self, listed: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let listed: std::collections::BTreeSet<&str> = listed.into_iter().collect();
        let named: std::collections::BTreeSet<&str> =
            self.tests().map(|e| e.name.as_str()).collect();
        let mut out: Vec<String> = listed
            .difference(&named)
            .map(|t| format!("test `{t}` has no rubric entry"))
            .collect();
        out.extend(
            named
                .difference(&listed)
                .map(|t| format!("rubric entry `{t}` names no test")),
        );
        out
    }
}

/// The public tests score one point each, in the category of their module (`timer::tests::x` is
/// in `timer`): their unscored results and the maximum per category.
pub fn public_tests<'a>(
    names: impl IntoIterator<Item = &'a String>,
) -> (Vec<TestResult>, BTreeMap<String, u32>) {
    let tests: Vec<TestResult> = names
        .into_iter()
        .map(|name| {
            let category = name.split("::").next().unwrap_or("tests");
            TestResult::unscored(name, category, 1, None, true)
        })
        .collect();
    let mut max: BTreeMap<String, u32> = BTreeMap::new();
    for t in &tests {
        *max.entry(t.category.clone()).or_default() += 1;
    }
    (tests, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, category: &str, points: u32) -> String {
        format!(
            "[[test]]\nname = \"{name}\"\ncategory = \"{category}\"\npoints = {points}\ntimeout_secs = 5\nhint = \"h\"\n"
        )
    }

    #[test]
    fn accepts_a_consistent_rubric() {
        let text = entry("a", "deadlock", 40) + &entry("b", "timer", 60);
        let r = Rubric::parse(&text).unwrap();
        assert_eq!(r.max_by_category()["deadlock"], 40);
        assert_eq!(r.max_by_category()["priority"], 0);
        assert!(r.entries()[0].visible);
    }

    #[test]
    fn refuses_wrong_totals_unknown_categories_and_duplicates() {
        let short = entry("a", "deadlock", 40) + &entry("b", "timer", 50);
        assert!(matches!(Rubric::parse(&short), Err(RubricError::Invalid(m)) if m.contains("90")));
        let weak = entry("a", "deadlock", 30) + &entry("b", "timer", 70);
        assert!(
            matches!(Rubric::parse(&weak), Err(RubricError::Invalid(m)) if m.contains("robustness"))
        );
        let unknown = entry("a", "deadlocks", 40) + &entry("b", "timer", 60);
        assert!(
            matches!(Rubric::parse(&unknown), Err(RubricError::Invalid(m)) if m.contains("unknown"))
        );
        let twice = entry("a", "deadlock", 40) + &entry("a", "timer", 60);
        assert!(
            matches!(Rubric::parse(&twice), Err(RubricError::Invalid(m)) if m.contains("twice"))
        );
    }

    #[test]
    fn reports_tests_without_entries_and_entries_without_tests() {
        let text = entry("a", "deadlock", 40) + &entry("b", "timer", 60);
        let r = Rubric::parse(&text).unwrap();
        let m = r.mismatches(["a", "c"]);
        assert_eq!(
            m,
            vec![
                "test `c` has no rubric entry",
                "rubric entry `b` names no test"
            ]
        );
    }
}
