//! The build phase: cargo, offline and locked, in the sandbox (for a job, and once for the warm
//! cache), and its output: cargo's JSON messages turned into test binaries, binaries and
//! diagnostics that point into the student's crate; errors inside the hidden tests become
//! API-mismatch messages.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::Deserialize;

use crate::engine::assembly::{self, Suite, VENDOR_MOUNT};
use crate::engine::cache::{self, DataDir};
use crate::engine::job::{self, WARM_MOUNT, WORK_MOUNT};
use crate::engine::report::Diagnostic;
use crate::engine::sandbox::{
    JobDir, LimitKind, Limits, RunResult, Sandbox, SandboxCommand, SandboxError,
};

/// Why the build phase could not do its work (never the submission's fault).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The sandbox could not run cargo.
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// A file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The warm-up build compiled no dependency.
    #[error("setup: the warm-up build compiled no dependency: {0}")]
    Cold(String),
}

/// A job's build: what it produced, and why it failed (in words for the student), if it did.
#[derive(Debug)]
pub struct Build {
    /// Test binaries, binaries and diagnostics.
    pub artifacts: Artifacts,
    /// Set when the crate did not build: what to tell the student.
    pub failure: Option<String>,
    /// Hidden-test modules (categories) left out because they do not compile against the crate,
    /// each with the API-mismatch messages that cost it (the other modules were built on their own).
    pub sunk: BTreeMap<String, Vec<String>>,
}

/// Builds the job's tests (the suite's package) and the student's binaries named in `bins` in the
/// same cargo invocation, starting from the warm cache. The hidden tests are one test binary; when it
/// does not compile only because the crate differs from the spec, each category module is built on
/// its own, so that the mismatch sinks only the modules that use the mismatched item. A crate that
/// does not compile is a [`Build`] with a failure, not an error.
///
/// `kept_target` is a target folder kept between gradings (see [`job::KEPT_TARGET_MOUNT`]), used
/// instead of a copy of the warm cache, with rustc's incremental cache on.
pub fn build(
    sandbox: &Sandbox,
    data: &DataDir,
    job: &Path,
    kept_target: Option<&Path>,
    suite: &Suite,
    bins: &[String],
    limits: &Limits,
) -> Result<Build, BuildError> {
    let args = match suite {
        Suite::Hidden(_) => hidden_args(bins),
        Suite::Public => public_args(),
    };
    let first = cargo(sandbox, data, job, kept_target, &args, limits)?;
    let artifacts = parse(&String::from_utf8_lossy(&first.stdout), job, package(suite));
    // The tests built: a binary that did not (its errors are among the diagnostics) costs only
    // its own check.
    if !artifacts.test_binaries.is_empty() {
        return Ok(Build {
            artifacts,
            failure: None,
            sunk: BTreeMap::new(),
        });
    }
    let student_errors = artifacts
        .diagnostics
        .iter()
        .any(|d| d.level == "error" && d.file.is_some());
    if matches!(suite, Suite::Hidden(_))
        && first.limit_hit.is_none()
        && !student_errors
        && !artifacts.failed_targets.is_empty()
    {
        if let Some(mut build) =
            build_each_module(sandbox, data, job, kept_target, &artifacts, limits)?
        {
            // The one binary's messages first: they hold the conformance check's, naming the item.
            let mut diagnostics = artifacts.diagnostics;
            for d in build.artifacts.diagnostics {
                if !diagnostics.contains(&d) {
                    diagnostics.push(d);
                }
            }
            build.artifacts.diagnostics = named_first(diagnostics);
            build.artifacts.bins = artifacts.bins;
            return Ok(build);
        }
    }
    if artifacts.diagnostics.is_empty() {
        tracing::warn!(
            stderr = %String::from_utf8_lossy(&first.stderr),
            "build failed without compiler messages"
        );
    }
    let failure = Some(failure_message(&first, &artifacts.diagnostics));
    Ok(Build {
        artifacts,
        failure,
        sunk: BTreeMap::new(),
    })
}

/// The fallback after an API mismatch: every category module of `hidden-tests/tests/all/` (not the
/// conformance check) as a test binary of its own, in one cargo invocation that keeps going past
/// the modules that fail. A module is sunk when it does not compile, or when a conformance error of
/// the one-binary build (`first`) is about a type the module names. `None` when no module built.
fn build_each_module(
    sandbox: &Sandbox,
    data: &DataDir,
    job: &Path,
    kept_target: Option<&Path>,
    first: &Artifacts,
    limits: &Limits,
) -> Result<Option<Build>, BuildError> {
    let modules = write_module_targets(job)?;
    let mut args = cargo_args("build", "hidden-tests");
    args.push("--keep-going".into());
    for (module, _) in &modules {
        args.extend(["--test".to_string(), module.clone()]);
    }
    let r = cargo(sandbox, data, job, kept_target, &args, limits)?;
    if r.limit_hit.is_some() {
        return Ok(None);
    }
    let mut artifacts = parse(&String::from_utf8_lossy(&r.stdout), job, "hidden-tests");
    let mut sunk = std::mem::take(&mut artifacts.failed_targets);
    for (item, message) in &first.api_errors {
        for (module, source) in &modules {
            if mentions(source, &owner(item)) {
                let messages = sunk.entry(module.clone()).or_default();
                if !messages.contains(message) {
                    messages.push(message.clone());
                }
            }
        }
    }
    // A sunk module's binary (built although its type was mismatched) must not run.
    artifacts.test_binaries.retain(|b| {
        !sunk.keys().any(|m| {
            b.rsplit('/')
                .next()
                .is_some_and(|f| f.starts_with(&format!("{m}-")))
        })
    });
    if artifacts.test_binaries.is_empty() {
        return Ok(None);
    }
    Ok(Some(Build {
        artifacts,
        failure: None,
        sunk,
    }))
}

/// The one-binary crate's module of helpers that name the student's types (`crate::support`),
/// which every category module may use.
const SUPPORT: &str = "support";
/// The modules of the one-binary crate that are not categories: its root, the conformance check
/// and the helpers.
const NOT_CATEGORIES: [&str; 3] = ["main", "api", SUPPORT];

/// Writes `hidden-tests/tests/<module>.rs` (`#[path = "all/<module>.rs"] mod <module>;`, and the
/// same for [`SUPPORT`]) for every category module of the one-binary crate, so that each can be
/// built alone with the same paths and test names (`<module>::<test>`); returns the modules with
/// their sources.
fn write_module_targets(job: &Path) -> io::Result<Vec<(String, String)>> {
    let tests = job.join("hidden-tests/tests");
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(tests.join(ONE_BINARY))? {
        let path = entry?.path();
        let Some(module) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs") && !NOT_CATEGORIES.contains(&module) {
            let source = std::fs::read_to_string(&path)?;
            let mut root = String::new();
            for m in [SUPPORT, module] {
                root += &format!("#[path = \"{ONE_BINARY}/{m}.rs\"]\nmod {m};\n");
            }
            std::fs::write(tests.join(format!("{module}.rs")), root)?;
            modules.push((module.to_string(), source));
        }
    }
    modules.sort();
    Ok(modules)
}

/// The type (or free item) a spec item belongs to: `Metrics::polls` -> `Metrics`.
fn owner(item: &str) -> String {
    let plain = without_generics(item);
    plain
        .split("::")
        .next()
        .unwrap_or(&plain)
        .trim()
        .to_string()
}

/// Builds the warm cache once for `key`: an empty crate with the hidden tests, built in the sandbox
/// exactly as jobs build (every cargo invocation they make), so that every dependency is compiled
/// for every feature set they select; then published (see [`cache::publish_warm_target`]).
pub fn warm_up(
    sandbox: &Sandbox,
    data: &DataDir,
    scratch: &Path,
    hidden_tests: &Path,
    job_dir_bytes: u64,
    limits: &Limits,
    key: &str,
) -> Result<(), BuildError> {
    let warm = data.warm_target();
    if cache::is_ready(&warm, key) {
        return Ok(());
    }
    tracing::info!("building the warm dependency cache (once)");
    let job = JobDir::create(scratch, job_dir_bytes)?;
    // An empty crate: its dependents fail to compile, but with --keep-going every dependency
    // is built.
    let files = [("src/lib.rs".to_string(), "//! warm-up\n".to_string())]
        .into_iter()
        .collect();
    let hidden = Suite::Hidden(hidden_tests.to_path_buf());
    assembly::assemble(job.path(), &files, &hidden)?;
    for args in [hidden_args(&[]), public_args()] {
        let r = run_cargo(
            sandbox,
            in_job(data, job.path(), None, false),
            &args,
            "",
            limits,
        )?;
        if !cache::is_warm(&job.path().join("target")) {
            let stderr = String::from_utf8_lossy(&r.stderr);
            return Err(BuildError::Cold(
                stderr.lines().rev().take(15).collect::<Vec<_>>().join("\n"),
            ));
        }
    }
    cache::publish_warm_target(&job.path().join("target"), &warm, scratch, key)?;
    Ok(())
}

/// Runs one cargo command of a job in its sandbox, the job folder writable at /work, starting from
/// the warm cache: a copy of it becomes the target folder first (unless the job folder was staged
/// with one, see [`stage_warm_target`]), or the kept target folder is mounted there instead.
fn cargo(
    sandbox: &Sandbox,
    data: &DataDir,
    job: &Path,
    kept_target: Option<&Path>,
    args: &[String],
    limits: &Limits,
) -> Result<RunResult, SandboxError> {
    let mut cmd = in_job(data, job, kept_target, kept_target.is_none());
    let prelude = match kept_target {
        None => copy_warm_target(),
        Some(_) => {
            // The kept folder serves the same crate again and again: rustc's incremental cache
            // then recompiles only what changed, as a student's own `cargo test` does.
            cmd.env.push(("CARGO_INCREMENTAL".into(), "1".into()));
            String::new()
        }
    };
    run_cargo(sandbox, cmd, args, &prelude, limits)
}

/// `cargo args` through `cmd` (a shell in the job's sandbox), after the shell lines of `prelude`.
fn run_cargo(
    sandbox: &Sandbox,
    mut cmd: SandboxCommand,
    args: &[String],
    prelude: &str,
    limits: &Limits,
) -> Result<RunResult, SandboxError> {
    let script = format!("set -e\n{prelude}exec cargo \"$@\"\n");
    cmd.args = vec!["-c".to_string(), script, "cargo".to_string()];
    cmd.args.extend(args.iter().cloned());
    let mut limits = limits.clone();
    // cargo's JSON messages can be long; diagnostics must not be cut off.
    limits.output_bytes = limits.output_bytes.max(4 << 20);
    sandbox.run(&cmd, &limits)
}

/// The shell line that copies the warm cache into the job as its target folder, unless it is
/// there already.
fn copy_warm_target() -> String {
    format!("[ -d {WORK_MOUNT}/target ] || cp -a {WARM_MOUNT} {WORK_MOUNT}/target\n")
}

/// `/bin/sh` (arguments still to set) in the job's sandbox: the job folder writable at /work
/// (with `kept_target`, that folder writable at /work/target on top), the vendored crates and,
/// `with_warm`, the warm cache read-only.
fn in_job(
    data: &DataDir,
    job: &Path,
    kept_target: Option<&Path>,
    with_warm: bool,
) -> SandboxCommand {
    let mut ro = vec![(data.vendor(), VENDOR_MOUNT.to_string())];
    if with_warm {
        ro.push((data.warm_target(), WARM_MOUNT.to_string()));
    }
    let mut rw = vec![(job.to_path_buf(), WORK_MOUNT.to_string())];
    rw.extend(kept_target.map(|t| (t.to_path_buf(), job::KEPT_TARGET_MOUNT.to_string())));
    SandboxCommand {
        program: "/bin/sh".into(),
        args: Vec::new(),
        env: job::env(),
        cwd: WORK_MOUNT.into(),
        ro_mounts: ro,
        rw_mounts: rw,
        stdin: None,
        toolchain: true,
    }
}

/// Copies the warm cache into an empty job folder as its target folder, in the sandbox exactly as
/// a job's first cargo call would (same user, same command), so that a job folder can be made
/// ready while the tests of the previous job run and the next build starts without the copy.
pub fn stage_warm_target(
    sandbox: &Sandbox,
    data: &DataDir,
    job: &Path,
    limits: &Limits,
) -> Result<(), BuildError> {
    let mut cmd = in_job(data, job, None, true);
    cmd.args = vec!["-c".to_string(), format!("set -e\n{}", copy_warm_target())];
    let r = sandbox.run(&cmd, limits)?;
    if r.status.success() && r.limit_hit.is_none() {
        Ok(())
    } else {
        Err(BuildError::Io(io::Error::other(format!(
            "copying the warm cache failed ({:?}): {}",
            r.status,
            String::from_utf8_lossy(&r.stderr).trim()
        ))))
    }
}

/// Whether the target folder of a staged job folder is a copy of the warm cache as it is now (a
/// newer cache may have been published since it was copied).
pub fn staged_is_current(data: &DataDir, job: &Path) -> bool {
    std::fs::read_to_string(data.warm_target().join(cache::KEY_FILE))
        .is_ok_and(|key| cache::is_ready(&job.join("target"), &key))
}

/// The package whose test binaries a suite runs.
fn package(suite: &Suite) -> &'static str {
    match suite {
        Suite::Hidden(_) => "hidden-tests",
        Suite::Public => "runtime",
    }
}

/// The test target holding every hidden test (`hidden-tests/tests/all/main.rs`).
pub const ONE_BINARY: &str = "all";

/// `cargo <command>` for `package`, offline, locked, with JSON messages.
fn cargo_args(command: &str, package: &str) -> Vec<String> {
    [
        command,
        "--offline",
        "--locked",
        "--message-format=json",
        "-p",
        package,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The hidden tests' one test binary and the student's binaries named in `bins`: one invocation
/// that keeps going, so that a test binary that does not compile still leaves the binaries built.
/// Only the named binaries: a student's own extra ones are not graded, and each would hold one of
/// cargo's jobs while the test binary, the longest unit, waits for it.
fn hidden_args(bins: &[String]) -> Vec<String> {
    let mut args = cargo_args("build", "hidden-tests");
    args.extend(["--keep-going".into(), "--test".into(), ONE_BINARY.into()]);
    if !bins.is_empty() {
        args.extend(["-p".into(), "runtime".into()]);
        for bin in bins {
            args.extend(["--bin".into(), bin.clone()]);
        }
    }
    args
}

/// The public tests: the student's library with the template's unit tests.
fn public_args() -> Vec<String> {
    let mut args = cargo_args("test", "runtime");
    args.extend(["--no-run".into(), "--no-fail-fast".into(), "--lib".into()]);
    args
}

/// What a student reads when the build failed.
fn failure_message(built: &RunResult, diagnostics: &[Diagnostic]) -> String {
    if let Some(limit) = built.limit_hit {
        let what = match limit {
            LimitKind::Wall => "its time limit",
            LimitKind::Cpu => "its CPU-time limit",
            LimitKind::Memory => "its memory limit",
            LimitKind::Tasks => "its limit on processes and threads",
        };
        return format!(
            "The build was stopped: it hit {what}. Very deep macro recursion or endless constant \
             evaluation can cause this."
        );
    }
    let errors = diagnostics.iter().filter(|d| d.level == "error").count();
    if errors > 0 {
        format!("Your crate did not compile: {errors} error(s). Fix them and try again.")
    } else {
        "Your crate did not compile.".into()
    }
}

/// What a build produced.
#[derive(Debug, Default)]
pub struct Artifacts {
    /// Test executables (paths inside the sandbox).
    pub test_binaries: Vec<String>,
    /// Binaries of the student's crate by name (paths inside the sandbox).
    pub bins: BTreeMap<String, String>,
    /// Messages for the student.
    pub diagnostics: Vec<Diagnostic>,
    /// Test targets of the package that did not compile, with their errors (as the student reads
    /// them: API-mismatch messages for errors inside the hidden tests).
    pub failed_targets: BTreeMap<String, Vec<String>>,
    /// Errors in the conformance check: (spec item, message), the item as its comment names it.
    pub api_errors: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    manifest_path: String,
    target: Option<Target>,
    profile: Option<Profile>,
    executable: Option<String>,
    message: Option<CompilerMessage>,
}

#[derive(Deserialize)]
struct Target {
    kind: Vec<String>,
    name: String,
}

#[derive(Deserialize)]
struct Profile {
    test: bool,
}

#[derive(Deserialize)]
struct CompilerMessage {
    message: String,
    level: String,
    rendered: Option<String>,
    spans: Vec<Span>,
}

#[derive(Deserialize)]
struct Span {
    file_name: String,
    line_start: u32,
    line_end: u32,
    column_start: u32,
    column_end: u32,
    is_primary: bool,
}

const SPECIFIC: &str = "API mismatch with the exercise spec: ";
const GENERAL: &str = "the grader's tests do not compile against your crate";

/// Where the hidden tests state the spec, one `// spec:` comment per item (see that file).
const API_FILE: &str = "hidden-tests/tests/all/api.rs";

/// The spec's wording of each public item, read from the `// spec:` comments of the hidden tests'
/// [`API_FILE`], their one source: by line of that file, and by the name code elsewhere uses.
#[derive(Debug, Default)]
struct Spec {
    /// 1-based line of the API file -> the comment that covers it.
    by_line: BTreeMap<u32, String>,
    /// (name as code writes it, wording), longer names first so that `CountdownFuture::new` wins
    /// over `CountdownFuture`.
    by_name: Vec<(String, String)>,
}

impl Spec {
    fn parse(api_rs: &str) -> Spec {
        let mut spec = Spec::default();
        let mut current: Option<&str> = None;
        for (i, line) in api_rs.lines().enumerate() {
            let line = line.trim();
            if let Some(text) = line.strip_prefix("// spec:") {
                current = Some(text.trim());
            } else if line.is_empty() || line.starts_with("//") {
                current = None;
            } else if let Some(text) = current {
                spec.by_line.insert(i as u32 + 1, text.to_string());
            }
        }
        for text in spec.by_line.values() {
            let Some(name) = text.split('`').nth(1).map(code_name) else {
                continue;
            };
            if !spec.by_name.iter().any(|(n, _)| *n == name) {
                spec.by_name.push((name, text.clone()));
            }
        }
        spec.by_name
            .sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        spec
    }

    /// The wording for an error at `line` of `file` (inside the hidden tests), whose span covers
    /// `snippet` of `source_line`.
    fn explain(&self, file: &str, line: u32, snippet: &str, source_line: &str) -> Option<&str> {
        if file.ends_with(API_FILE) {
            if let Some(text) = self.by_line.get(&line) {
                return Some(text);
            }
        }
        [snippet, source_line].iter().find_map(|code| {
            self.by_name
                .iter()
                .find(|(name, _)| mentions(code, name))
                .map(|(_, text)| text.as_str())
        })
    }
}

/// How code names a spec item: without generic arguments; a constructor as `Type::new`, a method
/// by its own name (it is called on a value).
fn code_name(item: &str) -> String {
    let plain = without_generics(item);
    let segments: Vec<&str> = plain.split("::").filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., ty, "new"] => format!("{ty}::new"),
        [.., last] => last.to_string(),
        [] => plain,
    }
}

/// `code` without generic arguments (`ManualFuture::<u8>::new` -> `ManualFuture::new`).
fn without_generics(code: &str) -> String {
    let mut plain = String::new();
    let mut depth = 0usize;
    let mut previous = ' ';
    for c in code.chars() {
        match c {
            '<' => depth += 1,
            // `->` is an arrow, not the end of generic arguments.
            '>' if previous != '-' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
        previous = c;
    }
    plain.replace("::::", "::")
}

/// Whether `code` uses `name` as a whole identifier (`run` is not in `run_until_stalled`).
fn mentions(code: &str, name: &str) -> bool {
    let code = without_generics(code);
    code.match_indices(name).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + name.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// Explains a compile error inside the hidden tests in terms of the spec, without showing the
/// hidden source: the spec item of the failing line, or a general statement.
fn api_mismatch(explained: Option<&str>, compiler: &str) -> String {
    match explained {
        Some(expected) => format!("{SPECIFIC}{expected} (the compiler said: {compiler})"),
        None => format!(
            "{SPECIFIC}{GENERAL} (the compiler said: {compiler}); check every signature against the spec"
        ),
    }
}

/// Path of a compiler span relative to the student's crate, when it points there.
fn student_path(file_name: &str) -> Option<String> {
    let rel = file_name
        .strip_prefix(WORK_MOUNT)
        .map(|p| p.trim_start_matches('/'))
        .unwrap_or(file_name);
    rel.strip_prefix("runtime/").map(str::to_string)
}

/// Parses cargo's `--message-format=json` output. `job_dir` is the job workspace on the host (to read
/// the hidden test line an error points at); `package` is the package whose test binaries count.
pub fn parse(stdout: &str, job_dir: &Path, package: &str) -> Artifacts {
    let mut out = Artifacts::default();
    let manifest = format!("/{package}/Cargo.toml");
    let mut seen = std::collections::BTreeSet::new();
    let mut spec: Option<Spec> = None;
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let Ok(msg) = serde_json::from_str::<Message>(line) else {
            continue;
        };
        match msg.reason.as_str() {
            "compiler-artifact" => {
                let (Some(target), Some(profile), Some(exe)) =
                    (msg.target, msg.profile, msg.executable)
                else {
                    continue;
                };
                if profile.test && msg.manifest_path.ends_with(&manifest) {
                    out.test_binaries.push(exe);
                } else if !profile.test && target.kind.iter().any(|k| k == "bin") {
                    out.bins.insert(target.name, exe);
                }
            }
            "compiler-message" => {
                let Some(m) = msg.message else { continue };
                if m.level != "error" && m.level != "warning" {
                    continue;
                }
                // The test target of the package whose error this is, if it is one.
                let failed_test = msg
                    .target
                    .filter(|t| {
                        m.level == "error"
                            && msg.manifest_path.ends_with(&manifest)
                            && t.kind.iter().any(|k| k == "test")
                    })
                    .map(|t| t.name);
                let primary = m.spans.iter().find(|s| s.is_primary);
                let in_student = primary.and_then(|s| student_path(&s.file_name));
                let diagnostic = match (in_student, primary) {
                    (Some(file), Some(span)) => Diagnostic {
                        file: Some(file),
                        line: Some(span.line_start),
                        column: Some(span.column_start),
                        level: m.level,
                        message: m.message,
                        // Paths as the student knows them: relative to their crate.
                        rendered: m
                            .rendered
                            .unwrap_or_default()
                            .replace("--> runtime/", "--> "),
                    },
                    // Warnings outside the student's crate are ours to fix, not theirs to read.
                    _ if m.level != "error" => continue,
                    (None, Some(span)) if span.file_name.contains("hidden-tests/") => {
                        let spec = spec.get_or_insert_with(|| {
                            Spec::parse(
                                &std::fs::read_to_string(job_dir.join(API_FILE))
                                    .unwrap_or_default(),
                            )
                        });
                        let source_line = std::fs::read_to_string(
                            job_dir.join(
                                span.file_name
                                    .trim_start_matches(WORK_MOUNT)
                                    .trim_start_matches('/'),
                            ),
                        )
                        .ok()
                        .and_then(|s| {
                            s.lines()
                                .nth(span.line_start as usize - 1)
                                .map(str::to_string)
                        })
                        .unwrap_or_default();
                        let snippet = if span.line_end == span.line_start {
                            source_line
                                .chars()
                                .skip(span.column_start as usize - 1)
                                .take(span.column_end.saturating_sub(span.column_start) as usize)
                                .collect()
                        } else {
                            String::new()
                        };
                        let explained =
                            spec.explain(&span.file_name, span.line_start, &snippet, &source_line);
                        let text = api_mismatch(explained, &m.message);
                        if let Some(item) = explained
                            .filter(|_| span.file_name.ends_with(API_FILE))
                            .and_then(|e| e.split('`').nth(1))
                        {
                            out.api_errors.push((item.to_string(), text.clone()));
                        }
                        Diagnostic {
                            file: None,
                            line: None,
                            column: None,
                            level: "error".into(),
                            message: text.clone(),
                            rendered: text,
                        }
                    }
                    _ => Diagnostic {
                        file: None,
                        line: None,
                        column: None,
                        level: m.level,
                        message: m.message.clone(),
                        rendered: m.message,
                    },
                };
                if let Some(target) = failed_test {
                    let messages = out.failed_targets.entry(target).or_default();
                    if !messages.contains(&diagnostic.message) {
                        messages.push(diagnostic.message.clone());
                    }
                }
                // The same message comes once per target that compiles the file; show it once.
                if seen.insert((
                    diagnostic.file.clone(),
                    diagnostic.line,
                    diagnostic.message.clone(),
                )) {
                    out.diagnostics.push(diagnostic);
                }
            }
            _ => {}
        }
    }
    out.diagnostics = named_first(out.diagnostics);
    out
}

/// A named spec item says more than "the tests do not compile": the general statement is kept
/// only when nothing more precise was found.
fn named_first(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let named = |m: &str| m.starts_with(SPECIFIC) && !m.contains(GENERAL);
    if diagnostics.iter().any(|d| named(&d.message)) {
        diagnostics.retain(|d| !d.message.contains(GENERAL));
    }
    diagnostics
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hidden tests' own API file, where the spec's wording lives.
    fn spec() -> Spec {
        Spec::parse(include_str!("../../../hidden-tests/tests/all/api.rs"))
    }

    fn explain(file: &str, line: u32, snippet: &str, source_line: &str) -> String {
        let spec = spec();
        api_mismatch(spec.explain(file, line, snippet, source_line), "c")
    }

    #[test]
    fn names_the_spec_item_on_the_failing_line() {
        let m = explain("t.rs", 9, "", "    let f = CountdownFuture::new(3u32);");
        assert!(
            m.contains("`CountdownFuture::new` must be `pub fn new(count: u32) -> Self`"),
            "{m}"
        );
        let m = explain("t.rs", 9, "", "    let n = exec.run_until_stalled();");
        assert!(m.contains("Executor::run_until_stalled"), "{m}");
        // `run` must not match inside `run_until_stalled` or `runtime`.
        let m = explain("t.rs", 9, "", "use runtime::x; e.run_until_stalled();");
        assert!(!m.contains("`Executor::run` must"), "{m}");
        let m = explain("t.rs", 9, "", "    let x = 1;");
        assert!(m.contains("do not compile against your crate"), "{m}");
        // The span's own text decides among several items on one line.
        let m = explain("t.rs", 9, "Metrics", "    Executor, Metrics, Priority,");
        assert!(m.contains("`Metrics` must be the spec's struct"), "{m}");
        let m = explain(
            "t.rs",
            9,
            "",
            "let _: fn() -> (ManualFuture<u8>, ManualHandle<u8>) = ManualFuture::<u8>::new;",
        );
        assert!(m.contains("`ManualFuture::<T>::new` must be"), "{m}");
    }

    #[test]
    fn an_error_in_the_api_file_gets_the_comment_above_its_line() {
        let api = include_str!("../../../hidden-tests/tests/all/api.rs");
        let spec = spec();
        assert!(spec.by_line.len() >= 40, "{:#?}", spec.by_line);
        let line = api
            .lines()
            .position(|l| l.contains("= Executor::run;"))
            .unwrap() as u32
            + 1;
        let m = explain("/work/hidden-tests/tests/all/api.rs", line, "", "");
        assert!(
            m.contains("`Executor::run` must be `pub fn run(&self)`"),
            "{m}"
        );
    }

    #[test]
    fn parses_artifacts_and_student_diagnostics() {
        let dir = tempfile::tempdir().unwrap();
        let json = [
            r#"{"reason":"compiler-artifact","manifest_path":"/work/hidden-tests/Cargo.toml","target":{"kind":["test"],"name":"timer"},"profile":{"test":true},"executable":"/work/target/debug/deps/timer-1"}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/work/runtime/Cargo.toml","target":{"kind":["bin"],"name":"runtime_demo"},"profile":{"test":false},"executable":"/work/target/debug/runtime_demo"}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/work/runtime/Cargo.toml","target":{"kind":["lib"],"name":"runtime"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"compiler-message","manifest_path":"/work/runtime/Cargo.toml","message":{"message":"expected `;`","level":"error","rendered":"error: expected `;`\n --> runtime/src/timer.rs:7:9","spans":[{"file_name":"runtime/src/timer.rs","line_start":7,"line_end":7,"column_start":9,"column_end":10,"is_primary":true}]}}"#,
            "   Compiling runtime v0.1.0",
        ]
        .join("\n");
        let a = parse(&json, dir.path(), "hidden-tests");
        assert_eq!(a.test_binaries, vec!["/work/target/debug/deps/timer-1"]);
        assert_eq!(a.bins["runtime_demo"], "/work/target/debug/runtime_demo");
        assert_eq!(a.diagnostics.len(), 1);
        let d = &a.diagnostics[0];
        assert_eq!(
            (d.file.as_deref(), d.line, d.column),
            (Some("src/timer.rs"), Some(7), Some(9))
        );
    }
}
