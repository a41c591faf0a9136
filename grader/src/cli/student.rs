//! What students run on their own machine: `grader check` (the public tests through the server's
//! pipeline, in a cache folder of their own), and what `grader submit` packs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::engine::archive;
use crate::engine::assembly::{PUBLIC_TESTS, RUNTIME_TOML};
use crate::engine::report::{IgnoredFile, Outcome, Report, Status};
use crate::engine::sandbox::{Identity, Unsandboxed};
use crate::engine::{cache::DataDir, Config, Engine, Input, Mode, DEFAULT_DATA_DIR};

use super::{render_text, CliError, Format};

/// Exit code for input the grader cannot use (an unreadable path, a refused archive).
pub const UNUSABLE: u8 = 2;

/// The data folder when none is given: root keeps the server's [`DEFAULT_DATA_DIR`]; anyone else
/// gets `$XDG_CACHE_HOME/runtime-grader`, else `~/.cache/runtime-grader`.
pub fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from(DEFAULT_DATA_DIR);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("runtime-grader")
}

/// How a report ends the command: 0 when every test passed, 2 when the submission was refused
/// (nothing could be tested), 1 otherwise.
pub fn exit_code(report: &Report) -> ExitCode {
    match report.status {
        Status::Rejected => ExitCode::from(UNUSABLE),
        Status::BuildFailed => ExitCode::FAILURE,
        Status::Graded => {
            let all = !report.tests.is_empty()
                && report.tests.iter().all(|t| t.outcome == Outcome::Passed);
            if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `grader check`: prepares the data folder on first use (saying so), runs the public tests in
/// the sandbox (or, where none works or `no_sandbox` asks, without one, saying so) and prints the
/// report.
pub fn check(
    data_dir: PathBuf,
    jobs: Option<usize>,
    path: &Path,
    format: Format,
    no_sandbox: bool,
) -> Result<ExitCode, CliError> {
    if let Err(source) = std::fs::metadata(path) {
        eprintln!("error: cannot read {}: {source}", path.display());
        return Ok(ExitCode::from(UNUSABLE));
    }
    let first_run = DataDir::open(&data_dir)
        .map(|d| !std::fs::read_dir(d.warm_targets()).is_ok_and(|mut e| e.next().is_some()))
        .unwrap_or(true);
    if first_run {
        eprintln!(
            "preparing {} (first run only: a copy of the Rust toolchain, the exercise's \
             dependencies and a warm build cache; this takes a few minutes)…",
            data_dir.display()
        );
    }
    let mut config = Config::public_only(data_dir);
    if let Some(jobs) = jobs {
        config.jobs = jobs;
    }
    // Root's check (an instructor's) never falls back: unsandboxed, the code would run as root.
    config.sandbox.unsandboxed = match (no_sandbox, nix::unistd::geteuid().is_root()) {
        (true, _) => Unsandboxed::Always,
        (false, false) => Unsandboxed::Fallback,
        (false, true) => Unsandboxed::Never,
    };
    let engine = Engine::new(config)?;
    if first_run {
        eprintln!("ready; later runs reuse it");
    }
    if engine.sandbox_identity() == Identity::Unsandboxed {
        eprintln!(
            "note: running WITHOUT a sandbox ({}): your tests run as you, on this machine; \
             the server always sandboxes them",
            if no_sandbox {
                "--no-sandbox"
            } else {
                "bubblewrap or user namespaces do not work here"
            }
        );
    }
    let mut report = engine.grade(Input::Path(path), Mode::Public, &super::terminal_progress)?;
    report.ignored_files.extend(replaced_public_tests(path));
    for file in &mut report.ignored_files {
        if file.path == MANIFEST {
            file.reason = manifest_reason(path, &file.reason);
        }
    }
    report.ignored_files.sort_by(|a, b| a.path.cmp(&b.path));
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialise")
        ),
        Format::Text => {
            let color = std::io::stdout().is_terminal();
            print!("{}", render_text(&report, color));
            if !report.ignored_files.is_empty() {
                println!(
                    "(The grader builds only src/**/*.rs and tests/*.rs, always with its own \
                     Cargo.toml and its own public tests, here and on the server.)"
                );
            }
        }
    }
    Ok(exit_code(&report))
}

/// The student's own copies of the public tests, which the check replaces with the grader's (an
/// edited copy changes nothing): listed with the ignored files.
fn replaced_public_tests(path: &Path) -> Vec<IgnoredFile> {
    let Ok(submission) = archive::from_path(path, &archive::Limits::default()) else {
        return Vec::new();
    };
    PUBLIC_TESTS
        .iter()
        .filter(|(file, _)| submission.files().contains_key(*file))
        .map(|(file, _)| IgnoredFile {
            path: (*file).to_string(),
            reason: "the check runs the grader's own copy of the public tests".into(),
        })
        .collect()
}

/// The student's manifest, which the grader replaces with its own ([`RUNTIME_TOML`]).
const MANIFEST: &str = "Cargo.toml";

/// The dependency tables of a manifest.
const DEPENDENCY_TABLES: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];

/// `reason` (why the student's `Cargo.toml` is ignored), made precise for the crate folder `dir`:
/// which of its dependencies their code cannot use, since only the grader's are there, and which
/// of its other changes from the template's manifest have no effect. A folder's manifest that
/// cannot be read or parsed, or an archive, keeps the plain reason.
fn manifest_reason(dir: &Path, reason: &str) -> String {
    let parse = |text: &str| text.parse::<toml::Table>().ok();
    let theirs = std::fs::read_to_string(dir.join(MANIFEST))
        .ok()
        .and_then(|text| parse(&text));
    let (Some(theirs), Some(ours)) = (theirs, parse(RUNTIME_TOML)) else {
        return reason.to_string();
    };
    let names = |manifest: &toml::Table, table: &str| -> Vec<String> {
        manifest
            .get(table)
            .and_then(toml::Value::as_table)
            .map(|deps| deps.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut notes = Vec::new();
    let added: Vec<String> = DEPENDENCY_TABLES
        .iter()
        .flat_map(|table| {
            let available = names(&ours, table);
            names(&theirs, table)
                .into_iter()
                .filter(move |name| !available.contains(name))
        })
        .collect();
    if !added.is_empty() {
        notes.push(format!(
            "your code cannot use {}, only {}",
            added.join(", "),
            names(&ours, "dependencies").join(", ")
        ));
    }
    let mut changed: Vec<String> = theirs
        .keys()
        .chain(ours.keys())
        .filter(|key| !DEPENDENCY_TABLES.contains(&key.as_str()))
        .filter(|key| theirs.get(*key) != ours.get(*key))
        .map(|key| format!("[{key}]"))
        .collect();
    changed.sort();
    changed.dedup();
    if !changed.is_empty() {
        notes.push(format!(
            "your changes to {} have no effect",
            changed.join(", ")
        ));
    }
    if notes.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}: {}", notes.join("; "))
    }
}

/// What `grader submit` uploads: a `.tar.gz` of the kept files, and what it leaves out (path,
/// reason).
pub struct Packed {
    /// The archive's bytes.
    pub archive: Vec<u8>,
    /// The files left out, with the intake's reason.
    pub left_out: Vec<(String, String)>,
}

/// Reads `dir` through the server's own intake and packs only what it keeps; a folder the intake
/// refuses is the intake's message.
pub fn kept_files(dir: &Path) -> Result<Packed, String> {
    let submission =
        archive::from_path(dir, &archive::Limits::default()).map_err(|e| e.to_string())?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, text) in submission.files() {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, text.as_bytes())
            .map_err(|e| format!("cannot pack {path}: {e}"))?;
    }
    let archive = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| format!("cannot pack the archive: {e}"))?;
    let left_out = submission
        .ignored()
        .iter()
        .map(|i| {
            let reason = if i.path == MANIFEST {
                manifest_reason(dir, &i.reason)
            } else {
                i.reason.clone()
            };
            (i.path.clone(), reason)
        })
        .collect();
    Ok(Packed { archive, left_out })
}
