//! The test suites' sources: the hidden tests package (where it is, which version, and the inventory
//! of its `#[test]` functions, read with `syn` and checked against the rubric before any grading) and
//! the template's public tests (how many each category has).
//!
//! The rubric is what scores; the sources are what runs. When they disagree, a rubric entry without a
//! test costs every student its points and a test without an entry never runs, so a disagreement is
//! the instructor's mistake and stops the grader instead of producing grades.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::engine::assembly::{HIDDEN_TOML, PUBLIC_TESTS};
use crate::engine::rubric::{Rubric, RubricError};

/// The folder of the one test binary that holds every hidden test, a module per category file.
pub const ONE_BINARY_DIR: &str = "all/";
/// The crate root of that binary: it declares each category file as a module.
pub const ONE_BINARY_MAIN: &str = "tests/all/main.rs";

/// The module (category file) of a hidden test's file: `tests/all/metrics.rs` -> `metrics`.
pub fn module_of(file: &str) -> &str {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.strip_suffix(".rs").unwrap_or(name)
}

/// The `mod NAME;` items of a crate root (modules in files of their own).
fn declared_modules(source: &str) -> Result<Vec<String>, String> {
    let parsed = syn::parse_file(source).map_err(|e| {
        let at = e.span().start();
        format!("line {}: {e}", at.line)
    })?;
    Ok(parsed
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) if m.content.is_none() => Some(m.ident.to_string()),
            _ => None,
        })
        .collect())
}

/// The file in the data folder where `grader setup --hidden-tests DIR` records `DIR`.
pub const RECORD_FILE: &str = "hidden-tests.path";

/// One `#[test]` function found in the sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFn {
    /// Its name as libtest lists it (`module::name` inside an inline module).
    pub name: String,
    /// The file it is in, relative to the package (e.g. `tests/all/timer.rs`).
    pub file: String,
    /// 1-based line of the function.
    pub line: usize,
    /// Whether it carries `#[ignore]`.
    pub ignored: bool,
}

/// A hidden tests package whose rubric and tests agree.
#[derive(Debug, Clone)]
pub struct HiddenTests {
    dir: PathBuf,
    rubric: Rubric,
    tests: Vec<TestFn>,
    version: String,
    library_version: String,
}

/// Why a hidden tests package cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HiddenTestsError {
    /// The configured folder is not there.
    #[error("the hidden tests folder {0} does not exist")]
    Missing(PathBuf),
    /// The folder lacks what a hidden tests package has.
    #[error("{dir} is not a hidden tests package: {why}")]
    NotAPackage {
        /// The folder.
        dir: PathBuf,
        /// What is missing or wrong.
        why: String,
    },
    /// A file of the package could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A test file does not parse.
    #[error("{path} does not parse: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with its line.
        message: String,
    },
    /// The rubric itself is unusable.
    #[error("{0}")]
    Rubric(#[from] RubricError),
    /// The rubric and the tests disagree.
    #[error(
        "the rubric and the hidden tests in {} disagree:\n  - {}",
        .dir.display(),
        .problems.join("\n  - ")
    )]
    Disagree {
        /// The package.
        dir: PathBuf,
        /// Each mismatch, in words.
        problems: Vec<String>,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HiddenTestsError + '_ {
    move |source| HiddenTestsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl HiddenTests {
    /// Opens the package at `dir` and checks it: a `rubric.toml` and the one test binary's
    /// `tests/all/main.rs` declaring every `tests/all/<category>.rs` as a module (no other test
    /// file), a `Cargo.toml` (if any) identical to the one this grader builds with, and a rubric that
    /// names exactly the `#[test]` functions of those files (without their module), none of them
    /// `#[ignore]`d.
    pub fn open(dir: &Path) -> Result<HiddenTests, HiddenTestsError> {
        let meta = fs::metadata(dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => HiddenTestsError::Missing(dir.to_path_buf()),
            _ => io_err(dir)(e),
        })?;
        let not_a_package = |why: &str| HiddenTestsError::NotAPackage {
            dir: dir.to_path_buf(),
            why: why.to_string(),
        };
        if !meta.is_dir() {
            return Err(not_a_package("it is not a folder"));
        }
        if !dir.join("rubric.toml").is_file() {
            return Err(not_a_package("it has no rubric.toml"));
        }
        if !dir.join(ONE_BINARY_MAIN).is_file() {
            return Err(not_a_package(&format!("it has no {ONE_BINARY_MAIN}")));
        }
        let manifest = dir.join("Cargo.toml");
        if manifest.is_file()
            && fs::read_to_string(&manifest).map_err(io_err(&manifest))? != HIDDEN_TOML
        {
            // Jobs are assembled with the grader's built-in copy: edits here would be ignored.
            return Err(not_a_package(
                "its Cargo.toml differs from the one this grader was built with \
                 (the grader uses its own copy: rebuild the grader after changing it)",
            ));
        }
        let rubric = Rubric::load(&dir.join("rubric.toml"))?;
        let files = source_files(dir)?;
        let syntax = |rel: &str| {
            let path = dir.join(rel);
            move |message| HiddenTestsError::Syntax { path, message }
        };
        let declared =
            declared_modules(&files[ONE_BINARY_MAIN]).map_err(syntax(ONE_BINARY_MAIN))?;
        let mut tests = Vec::new();
        let mut problems = Vec::new();
        for (rel, text) in &files {
            let Some(file) = rel.strip_prefix("tests/") else {
                continue;
            };
            if rel == ONE_BINARY_MAIN {
                continue;
            }
            match file
                .strip_prefix(ONE_BINARY_DIR)
                .map(|f| f.split('/').count())
            {
                Some(1) => {
                    let module = module_of(rel);
                    if !declared.iter().any(|m| m == module) {
                        problems.push(format!(
                            "{rel} is not declared in {ONE_BINARY_MAIN} (`mod {module};`): its \
                             tests would never be compiled"
                        ));
                    }
                }
                _ => problems.push(format!(
                    "{rel} is not a module of the one test binary: hidden tests live in \
                     tests/{ONE_BINARY_DIR}<category>.rs, declared in {ONE_BINARY_MAIN}"
                )),
            }
            // Its tests count wherever it is, so that each is also named in the other problems.
            tests.extend(test_functions(rel, text).map_err(syntax(rel))?);
        }
        problems.extend(disagreements(&rubric, &tests));
        if !problems.is_empty() {
            return Err(HiddenTestsError::Disagree {
                dir: dir.to_path_buf(),
                problems,
            });
        }
        Ok(HiddenTests {
            // Absolute, so that what is said at start and recorded names one folder wherever the
            // grader runs from.
            dir: fs::canonicalize(dir).map_err(io_err(dir))?,
            rubric,
            tests,
            version: version(&files),
            library_version: version(
                &files
                    .iter()
                    .filter(|(path, _)| path.starts_with("src/"))
                    .map(|(p, t)| (p.clone(), t.clone()))
                    .collect(),
            ),
        })
    }

    /// The package's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its rubric.
    pub fn rubric(&self) -> &Rubric {
        &self.rubric
    }

    /// Its `#[test]` functions.
    pub fn tests(&self) -> &[TestFn] {
        &self.tests
    }

    /// A content hash of everything a job uses from the package (rubric, `Cargo.toml`, `src/` and
    /// `tests/` sources): equal versions grade alike.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// A content hash of the harness library (`src/`), which the warm cache holds compiled.
    pub fn library_version(&self) -> &str {
        &self.library_version
    }

    /// Gives up the rest, keeping the rubric.
    pub fn into_rubric(self) -> Rubric {
        self.rubric
    }
}

/// The files that make up the package's behaviour, by relative path, sorted: `rubric.toml`,
/// `Cargo.toml` and every `.rs` below `src/` and `tests/` (what the assembly copies).
fn source_files(dir: &Path) -> Result<BTreeMap<String, String>, HiddenTestsError> {
    let mut out = BTreeMap::new();
    for name in ["rubric.toml", "Cargo.toml"] {
        let path = dir.join(name);
        if path.is_file() {
            out.insert(
                name.to_string(),
                fs::read_to_string(&path).map_err(io_err(&path))?,
            );
        }
    }
    for sub in ["src", "tests"] {
        for entry in walkdir::WalkDir::new(dir.join(sub)) {
            let entry = entry.map_err(|e| io_err(&dir.join(sub))(e.into()))?;
            let path = entry.path();
            if entry.file_type().is_file() && path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(dir).unwrap_or(path);
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    fs::read_to_string(path).map_err(io_err(path))?,
                );
            }
        }
    }
    Ok(out)
}

/// FNV-1a over paths and contents: stable across builds and Rust versions, unlike `DefaultHasher`.
fn version(files: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (path, text) in files {
        for b in path.bytes().chain([0]).chain(text.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The `#[test]` functions of one source file, with `module::` prefixes for inline modules.
pub fn test_functions(file: &str, source: &str) -> Result<Vec<TestFn>, String> {
    let parsed = syn::parse_file(source).map_err(|e| {
        let at = e.span().start();
        format!("line {}: {e}", at.line)
    })?;
    let mut out = Vec::new();
    collect(file, "", &parsed.items, &mut out);
    Ok(out)
}

fn collect(file: &str, prefix: &str, items: &[syn::Item], out: &mut Vec<TestFn>) {
    for item in items {
        match item {
            syn::Item::Fn(f) if f.attrs.iter().any(|a| a.path().is_ident("test")) => {
                out.push(TestFn {
                    name: format!("{prefix}{}", f.sig.ident),
                    file: file.to_string(),
                    line: f.sig.ident.span().start().line,
                    ignored: f.attrs.iter().any(|a| a.path().is_ident("ignore")),
                });
            }
            syn::Item::Mod(m) => {
                if let Some((_, inner)) = &m.content {
                    collect(file, &format!("{prefix}{}::", m.ident), inner, out);
                }
            }
            _ => {}
        }
    }
}

/// Every way the rubric and the tests disagree, in words naming the test and where it is: a test
/// without an entry, an entry without a test, a name defined in two files (which one would run?),
/// and an `#[ignore]`d test (`--exact NAME` exits 0 for it without running it: free points).
pub fn disagreements(rubric: &Rubric, tests: &[TestFn]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_name: BTreeMap<&str, &TestFn> = BTreeMap::new();
    for t in tests {
        if let Some(first) = by_name.insert(&t.name, t) {
            problems.push(format!(
                "test `{}` is defined twice ({}:{} and {}:{}); names must be unique across files",
                t.name, first.file, first.line, t.file, t.line
            ));
        }
        if t.ignored {
            problems.push(format!(
                "test `{}` ({}:{}) is #[ignore]d: libtest would report it passed without running \
                 it; remove the attribute",
                t.name, t.file, t.line
            ));
        }
    }
    for t in by_name.values() {
        if !rubric.tests().any(|e| e.name == t.name) {
            problems.push(format!(
                "test `{}` ({}:{}) has no rubric entry: it would never run",
                t.name, t.file, t.line
            ));
        }
    }
    for e in rubric.tests() {
        if !by_name.contains_key(e.name.as_str()) {
            problems.push(format!(
                "rubric entry `{}` names no #[test] function of tests/all/*.rs: every student would \
                 lose its {} point(s)",
                e.name, e.points
            ));
        }
    }
    problems
}

/// The template's public tests per category (the module they test), as `grader check` scores them
/// when it cannot list a build's tests (a refused submission still shows what was at stake).
pub fn public_max_by_category() -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for (path, source) in PUBLIC_TESTS {
        let category = path.split('/').nth(1).unwrap_or(path).to_string();
        let n = test_functions(path, source).map_or(0, |t| t.len());
        *out.entry(category).or_default() += u32::try_from(n).unwrap_or(u32::MAX);
    }
    out
}

/// The hidden tests folder recorded in the data folder by `grader setup --hidden-tests DIR`.
pub fn recorded(data_dir: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(data_dir.join(RECORD_FILE)).ok()?;
    let line = text.trim_end_matches('\n');
    (!line.is_empty()).then(|| PathBuf::from(line))
}

/// Records `dir` (made absolute) as the data folder's hidden tests.
pub fn record(data_dir: &Path, dir: &Path) -> io::Result<PathBuf> {
    let absolute = fs::canonicalize(dir)?;
    fs::create_dir_all(data_dir)?;
    let tmp = data_dir.join(format!("{RECORD_FILE}.{}", std::process::id()));
    fs::write(&tmp, format!("{}\n", absolute.display()))?;
    fs::rename(&tmp, data_dir.join(RECORD_FILE))?;
    Ok(absolute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rubric(names: &[&str]) -> Rubric {
        let mut text = String::new();
        for (i, n) in names.iter().enumerate() {
            let points = if i == 0 {
                100 - (names.len() as u32 - 1)
            } else {
                1
            };
            text += &format!(
                "[[test]]\nname = \"{n}\"\ncategory = \"deadlock\"\npoints = {points}\n\
                 timeout_secs = 5\nhint = \"h\"\n"
            );
        }
        Rubric::parse(&text).unwrap()
    }

    #[test]
    fn finds_tests_in_modules_and_their_ignore_attribute() {
        let src = "#[test]\nfn a() {}\nfn helper() {}\nmod m {\n    #[test]\n    #[ignore = \"slow\"]\n    fn b() {}\n}\n";
        let found = test_functions("tests/x.rs", src).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|t| (t.name.as_str(), t.line, t.ignored))
            .collect();
        assert_eq!(names, [("a", 2, false), ("m::b", 7, true)]);
        assert!(test_functions("tests/x.rs", "fn (")
            .unwrap_err()
            .starts_with("line 1"));
    }

    #[test]
    fn names_each_disagreement() {
        let tests = [
            test_functions(
                "tests/a.rs",
                "#[test]\nfn kept() {}\n#[test]\nfn extra() {}\n",
            )
            .unwrap(),
            test_functions(
                "tests/b.rs",
                "#[test]\n#[ignore]\nfn lazy() {}\n#[test]\nfn kept() {}\n",
            )
            .unwrap(),
        ]
        .concat();
        let problems = disagreements(&rubric(&["kept", "lazy", "gone"]), &tests);
        let has = |s: &str| problems.iter().any(|p| p.contains(s));
        assert!(
            has("test `extra` (tests/a.rs:4) has no rubric entry"),
            "{problems:#?}"
        );
        assert!(has("rubric entry `gone` names no #[test]"), "{problems:#?}");
        assert!(
            has("test `lazy` (tests/b.rs:3) is #[ignore]d"),
            "{problems:#?}"
        );
        assert!(
            has("test `kept` is defined twice (tests/a.rs:2 and tests/b.rs:5)"),
            "{problems:#?}"
        );
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(disagreements(&rubric(&["kept", "extra"]), &tests[..2]).is_empty());
    }

    #[test]
    fn public_tests_are_counted_per_module() {
        let max = public_max_by_category();
        assert_eq!(
            max.keys().collect::<Vec<_>>(),
            ["custom_future", "executor", "timer"]
        );
        assert!(max.values().all(|&n| n > 0), "{max:?}");
    }

    #[test]
    fn the_version_changes_with_any_byte() {
        let mut files = BTreeMap::from([("tests/a.rs".to_string(), "x".to_string())]);
        let before = version(&files);
        assert_eq!(before, version(&files));
        files.insert("tests/a.rs".into(), "y".into());
        assert_ne!(before, version(&files));
    }
}
