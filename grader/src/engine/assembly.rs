//! Job workspaces: the student's files, the grader's own Cargo files and the test suite, laid out
//! for an offline, locked build.
//!
//! ```text
//! <job>/Cargo.toml            workspace: runtime + hidden-tests (grader/assembly/Cargo.toml)
//! <job>/Cargo.lock            pins every dependency (grader/assembly/Cargo.lock)
//! <job>/.cargo/config.toml    crates.io replaced by the vendored sources, offline
//! <job>/runtime/              the student's src/**/*.rs under our exercise-template/Cargo.toml
//! <job>/hidden-tests/         the hidden tests (or, for public tests, an empty package of that name)
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

/// The workspace manifest of every job.
pub const WORKSPACE_TOML: &str = include_str!("../../assembly/Cargo.toml");
/// The lockfile of every job: builds run with `--locked`.
pub const WORKSPACE_LOCK: &str = include_str!("../../assembly/Cargo.lock");
/// The manifest forced on every submission (the template's own).
pub const RUNTIME_TOML: &str = include_str!("../../../exercise-template/Cargo.toml");
/// The manifest of the hidden-tests package.
pub const HIDDEN_TOML: &str = include_str!("../../../hidden-tests/Cargo.toml");

/// The public tests of the template, injected for `grader check` (path in the crate, contents).
pub const PUBLIC_TESTS: [(&str, &str); 3] = [
    (
        "src/custom_future/tests.rs",
        include_str!("../../../exercise-template/src/custom_future/tests.rs"),
    ),
    (
        "src/timer/tests.rs",
        include_str!("../../../exercise-template/src/timer/tests.rs"),
    ),
    (
        "src/executor/tests.rs",
        include_str!("../../../exercise-template/src/executor/tests.rs"),
    ),
];

/// Where the vendored dependency sources appear inside the sandbox.
pub const VENDOR_MOUNT: &str = "/opt/vendor";

/// Which tests a job runs.
#[derive(Debug, Clone)]
pub enum Suite {
    /// The hidden tests from this folder (its `Cargo.toml`, `src/` and `tests/`; not the rubric).
    Hidden(std::path::PathBuf),
    /// The template's public tests, injected into the student's modules.
    Public,
}

fn cargo_config() -> String {
    format!(
        "[source.crates-io]\nreplace-with = \"vendored\"\n\n[source.vendored]\ndirectory = \"{VENDOR_MOUNT}\"\n\n\
         [net]\noffline = true\n\n[term]\ncolor = \"never\"\n"
    )
}

fn write(path: &Path, contents: &str) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, contents)
}

/// Lays out the job workspace in `dir` (an empty folder); `files` are the student's, by path in the
/// crate (already validated by [`crate::engine::archive`]).
pub fn assemble(dir: &Path, files: &BTreeMap<String, String>, suite: &Suite) -> io::Result<()> {
    write(&dir.join("Cargo.toml"), WORKSPACE_TOML)?;
    write(&dir.join("Cargo.lock"), WORKSPACE_LOCK)?;
    write(&dir.join(".cargo/config.toml"), &cargo_config())?;
    let runtime = dir.join("runtime");
    for (path, contents) in files {
        // The student's own integration tests are never built for grading; left out, one named
        // like the hidden tests' binary cannot be selected by its `--test` either.
        if matches!(suite, Suite::Hidden(_)) && path.starts_with("tests/") {
            continue;
        }
        write(&runtime.join(path), contents)?;
    }
    write(&runtime.join("Cargo.toml"), RUNTIME_TOML)?;
    let hidden = dir.join("hidden-tests");
    write(&hidden.join("Cargo.toml"), HIDDEN_TOML)?;
    match suite {
        Suite::Hidden(source) => {
            copy_sources(&source.join("src"), &hidden.join("src"))?;
            copy_sources(&source.join("tests"), &hidden.join("tests"))?;
        }
        Suite::Public => {
            // The package must exist for the locked workspace, but contributes no test.
            write(
                &hidden.join("src/lib.rs"),
                "//! Not used when running the public tests.\n",
            )?;
            for (path, contents) in PUBLIC_TESTS {
                write(&runtime.join(path), contents)?;
            }
        }
    }
    Ok(())
}

/// Whether the student's crate in the job workspace `dir` has the source of the binary `name`, in
/// one of the places cargo finds binaries without a `[[bin]]` section (the forced manifest has none).
pub fn has_binary(dir: &Path, name: &str) -> bool {
    let src = dir.join("runtime/src");
    src.join("bin").join(format!("{name}.rs")).is_file()
        || src.join("bin").join(name).join("main.rs").is_file()
        || (name == "runtime" && src.join("main.rs").is_file())
}

/// Copies every `.rs` file below `from` into the same relative place below `to`, keeping each
/// file's modification time: cargo judges a path package fresh by its sources' times, so the
/// hidden tests' library, compiled once into the warm cache, is not compiled again in every job.
pub fn copy_sources(from: &Path, to: &Path) -> io::Result<()> {
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.map_err(io::Error::from)?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target)?;
        } else if entry.path().extension().is_some_and(|e| e == "rs") {
            fs::copy(entry.path(), &target)?;
            let modified = entry.metadata().map_err(io::Error::from)?.modified()?;
            fs::File::options()
                .write(true)
                .open(&target)?
                .set_modified(modified)?;
        }
    }
    Ok(())
}
