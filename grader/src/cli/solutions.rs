//! The exercise's known solutions: the template, the reference, the other correct solutions and the
//! buggy variants (patches on the reference), materialised as crate folders for checks and validation.

use std::fs;
use std::path::{Path, PathBuf};

use diffy::patch_set::{FileOperation, ParseOptions, PatchSet};
use serde::Deserialize;

/// What grading a solution must give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The student template: compiles, fails every test.
    Template,
    /// A correct solution: full marks.
    Correct,
    /// A known-buggy variant: loses points in `category` (and possibly in `also`).
    Buggy {
        /// The category that must lose points.
        category: String,
        /// Other categories that may lose points too.
        also: Vec<String>,
        /// One line naming the bug.
        summary: String,
    },
}

/// One known solution.
#[derive(Debug, Clone)]
pub struct Solution {
    /// `template`, `reference`, the folder name of another solution, or `buggy/<name>`.
    pub name: String,
    /// What grading it must give.
    pub expect: Expect,
    /// The crate folder it is taken from (the reference, for a buggy variant).
    pub base: PathBuf,
    /// The variant's patch on `base`.
    pub patch: Option<PathBuf>,
}

/// Why a solution cannot be listed or materialised.
#[derive(Debug, thiserror::Error)]
pub enum SolutionError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `variant.toml` is malformed.
    #[error("{path}: {message}")]
    Variant {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A patch does not parse or does not apply to the reference.
    #[error("{path}: patch does not apply: {message}")]
    Patch {
        /// The patch file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SolutionError + '_ {
    move |source| SolutionError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Deserialize)]
struct VariantFile {
    category: String,
    #[serde(default)]
    also: Vec<String>,
    summary: String,
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<PathBuf>, SolutionError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn dir_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Lists every known solution of the repository at `root`: the template, the reference, the other
/// correct solutions (`solutions/*/` with a `src/lib.rs`) and the buggy variants (`solutions/buggy/*/`).
pub fn discover(root: &Path) -> Result<Vec<Solution>, SolutionError> {
    let reference = root.join("solutions/reference");
    let mut out = vec![
        Solution {
            name: "template".into(),
            expect: Expect::Template,
            base: root.join("exercise-template"),
            patch: None,
        },
        Solution {
            name: "reference".into(),
            expect: Expect::Correct,
            base: reference.clone(),
            patch: None,
        },
    ];
    for dir in sorted_subdirs(&root.join("solutions"))? {
        let name = dir_name(&dir);
        if name != "reference" && dir.join("src/lib.rs").is_file() {
            out.push(Solution {
                name,
                expect: Expect::Correct,
                base: dir,
                patch: None,
            });
        }
    }
    let buggy = root.join("solutions/buggy");
    if buggy.is_dir() {
        for dir in sorted_subdirs(&buggy)? {
            let toml_path = dir.join("variant.toml");
            let text = fs::read_to_string(&toml_path).map_err(io_err(&toml_path))?;
            let v: VariantFile = toml::from_str(&text).map_err(|e| SolutionError::Variant {
                path: toml_path.clone(),
                message: e.to_string(),
            })?;
            if !crate::engine::rubric::CATEGORIES.contains(&v.category.as_str()) {
                return Err(SolutionError::Variant {
                    path: toml_path,
                    message: format!("unknown category `{}`", v.category),
                });
            }
            out.push(Solution {
                name: format!("buggy/{}", dir_name(&dir)),
                expect: Expect::Buggy {
                    category: v.category,
                    also: v.also,
                    summary: v.summary,
                },
                base: reference.clone(),
                patch: Some(dir.join("bug.patch")),
            });
        }
    }
    Ok(out)
}

impl Solution {
    /// Writes the solution's `src/**/*.rs` into `dest/src/` (its Cargo files are not copied: the
    /// grader brings its own). A buggy variant is the reference with its patch applied.
    pub fn materialize(&self, dest: &Path) -> Result<(), SolutionError> {
        copy_sources(&self.base.join("src"), &dest.join("src"))?;
        if let Some(patch) = &self.patch {
            apply_patch(patch, dest)?;
        }
        Ok(())
    }
}

/// Copies every `.rs` file below `from` into the same relative place below `to` (see
/// [`crate::engine::assembly::copy_sources`]).
pub fn copy_sources(from: &Path, to: &Path) -> Result<(), SolutionError> {
    crate::engine::assembly::copy_sources(from, to).map_err(io_err(from))
}

/// Applies a multi-file unified diff (paths `a/…`, `b/…`) to the crate at `dir`, refusing any path
/// that leaves it.
fn apply_patch(patch_path: &Path, dir: &Path) -> Result<(), SolutionError> {
    let text = fs::read_to_string(patch_path).map_err(io_err(patch_path))?;
    let fail = |message: String| SolutionError::Patch {
        path: patch_path.to_path_buf(),
        message,
    };
    let mut applied = 0;
    for file in PatchSet::parse(&text, ParseOptions::unidiff()) {
        let file = file.map_err(|e| fail(e.to_string()))?;
        let FileOperation::Modify { modified, .. } = file.operation().strip_prefix(1) else {
            return Err(fail(
                "only modifications of existing files are supported".into(),
            ));
        };
        let rel = Path::new(modified.as_ref());
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(fail(format!("path {} leaves the crate", rel.display())));
        }
        let patch = file
            .patch()
            .as_text()
            .ok_or_else(|| fail("binary patch".into()))?;
        let target = dir.join(rel);
        let base = fs::read_to_string(&target).map_err(io_err(&target))?;
        let new =
            diffy::apply(&base, patch).map_err(|e| fail(format!("{}: {e}", rel.display())))?;
        fs::write(&target, new).map_err(io_err(&target))?;
        applied += 1;
    }
    if applied == 0 {
        return Err(fail("the patch changes no file".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_a_patch_and_refuses_one_that_escapes() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("src")).unwrap();
        fs::write(dir.path().join("src/lib.rs"), "fn a() {}\nfn b() {}\n").unwrap();
        let p = dir.path().join("ok.patch");
        fs::write(
            &p,
            "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,2 +1,2 @@\n fn a() {}\n-fn b() {}\n+fn c() {}\n",
        )
        .unwrap();
        apply_patch(&p, dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("src/lib.rs")).unwrap(),
            "fn a() {}\nfn c() {}\n"
        );
        let bad = dir.path().join("bad.patch");
        fs::write(&bad, "--- a/../x.rs\n+++ b/../x.rs\n@@ -1 +1 @@\n-x\n+y\n").unwrap();
        assert!(matches!(
            apply_patch(&bad, dir.path()),
            Err(SolutionError::Patch { .. })
        ));
        // A patch whose context no longer matches must fail, not half-apply silently.
        assert!(apply_patch(&p, dir.path()).is_err());
    }
}
