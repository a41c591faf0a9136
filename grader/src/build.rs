//! The build phase's output: cargo's JSON messages turned into test binaries, binaries and diagnostics
//! that point into the student's crate; errors inside the hidden tests become API-mismatch messages.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::report::Diagnostic;

/// Where the job workspace appears inside the sandbox.
pub const WORK_MOUNT: &str = "/work";

/// What a build produced.
#[derive(Debug, Default)]
pub struct Artifacts {
    /// Test executables (paths inside the sandbox).
    pub test_binaries: Vec<String>,
    /// Binaries of the student's crate by name (paths inside the sandbox).
    pub bins: BTreeMap<String, String>,
    /// Messages for the student.
    pub diagnostics: Vec<Diagnostic>,
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
    column_start: u32,
    is_primary: bool,
}

/// The public items of the exercise spec, with the signature a hidden test relies on. Longer names
/// first, so that `CountdownFuture::new` wins over `CountdownFuture`.
const API: &[(&str, &str)] = &[
    ("CountdownFuture::new", "`CountdownFuture::new` must be `pub fn new(count: u32) -> Self`"),
    ("TimerFuture::new", "`TimerFuture::new` must be `pub fn new(duration: Duration) -> Self`"),
    ("ManualFuture::new", "`ManualFuture::<T>::new` must be `pub fn new() -> (ManualFuture<T>, ManualHandle<T>)`"),
    ("MapFuture::new", "`MapFuture::new` must be `pub fn new(future: Fut, f: F) -> Self`"),
    ("FirstTimer::new", "`FirstTimer::new` must be `pub fn new(durations: &[Duration]) -> Self`"),
    ("new_executor_and_spawner_with_capacity", "`new_executor_and_spawner_with_capacity` must be `pub fn new_executor_and_spawner_with_capacity(capacity: usize) -> (Executor, Spawner)`"),
    ("new_executor_and_spawner", "`new_executor_and_spawner` must be `pub fn new_executor_and_spawner() -> (Executor, Spawner)`"),
    ("spawn_with_priority", "`Spawner::spawn_with_priority` must be `pub fn spawn_with_priority(&self, priority: Priority, future: impl Future<Output = ()> + Send + 'static) -> Result<(), SpawnError>`"),
    ("try_spawn", "`Spawner::try_spawn` must be `pub fn try_spawn(&self, future: impl Future<Output = ()> + Send + 'static) -> Result<(), SpawnError>`"),
    ("run_until_stalled", "`Executor::run_until_stalled` must be `pub fn run_until_stalled(&self) -> usize`"),
    ("MAX_QUEUED_TASKS", "`MAX_QUEUED_TASKS` must be `pub const MAX_QUEUED_TASKS: usize = 10_000`"),
    ("complete", "`ManualHandle::complete` must be `pub fn complete(self, value: T)`, and both halves `Send` when `T: Send`"),
    ("shutdown", "`Spawner::shutdown` must be `pub fn shutdown(&self)`"),
    ("metrics", "`Executor::metrics` must be `pub fn metrics(&self) -> Metrics`, with the spec's public fields"),
    ("Metrics", "`Metrics` must be the spec's struct with public fields `spawned`, `completed`, `polls`, `busy_time`, `max_poll_time` and derives `Debug, Clone, Copy, Default, PartialEq, Eq`"),
    ("SpawnError", "`SpawnError` must be `enum SpawnError { QueueFull, Shutdown }` with `Debug, Clone, Copy, PartialEq, Eq`, `Display` and `std::error::Error`"),
    ("Priority", "`Priority` must be `enum Priority { High, Low }` with `Debug, Clone, Copy, PartialEq, Eq, Hash, Default` (default `Low`)"),
    ("ManualHandle", "`ManualHandle<T>` must be `Send` when `T: Send`"),
    ("ManualFuture", "`ManualFuture<T>` must be a `Future<Output = T>`, `Unpin`, and `Send` when `T: Send`"),
    ("MapFuture", "`MapFuture<Fut, F>` must be a `Future<Output = T>` for `F: FnOnce(Fut::Output) -> T`, accepting inner futures that are not `Unpin`"),
    ("FirstTimer", "`FirstTimer` must be a `Future<Output = usize>` and `Send + 'static`"),
    ("CountdownFuture", "`CountdownFuture` must be a `Future<Output = String>` and `Send + 'static`"),
    ("TimerFuture", "both `TimerFuture`s must be `Future<Output = ()>` and `Send + 'static`"),
    ("Spawner", "`Spawner` must be `Clone + Send + Sync` with `spawn`, `try_spawn`, `spawn_with_priority` and `shutdown`"),
    ("Executor", "`Executor` must be `Send` with `run`, `run_until_stalled` and `metrics`"),
    ("spawn", "`Spawner::spawn` must be `pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static)`"),
    ("run", "`Executor::run` must be `pub fn run(&self)`"),
];

const SPECIFIC: &str = "API mismatch with the exercise spec: ";
const GENERAL: &str = "the grader's tests do not compile against your crate";

/// Explains a compile error inside the hidden tests in terms of the spec, without showing the
/// hidden source: the spec item named on the failing line, or a general statement.
fn api_mismatch(source_line: &str, compiler: &str) -> String {
    let item = API.iter().find(|(needle, _)| {
        source_line.match_indices(needle).any(|(i, _)| {
            let before = source_line[..i].chars().next_back();
            let after = source_line[i + needle.len()..].chars().next();
            let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            !ident(before) && !ident(after)
        })
    });
    match item {
        Some((_, expected)) => format!("{SPECIFIC}{expected} (the compiler said: {compiler})"),
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
                        let text = api_mismatch(&source_line, &m.message);
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
    // A named spec item says more than "the tests do not compile"; keep the general statement only
    // when nothing more precise was found.
    let named = |m: &str| m.starts_with(SPECIFIC) && !m.contains(GENERAL);
    if out.diagnostics.iter().any(|d| named(&d.message)) {
        out.diagnostics.retain(|d| !d.message.contains(GENERAL));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_spec_item_on_the_failing_line() {
        let m = api_mismatch(
            "    let f = CountdownFuture::new(3u32);",
            "mismatched types",
        );
        assert!(
            m.contains("`CountdownFuture::new` must be `pub fn new(count: u32) -> Self`"),
            "{m}"
        );
        let m = api_mismatch("    let n = exec.run_until_stalled();", "no method");
        assert!(m.contains("Executor::run_until_stalled"), "{m}");
        // `run` must not match inside `run_until_stalled` or `runtime`.
        let m = api_mismatch("use runtime::x; e.run_until_stalled();", "e");
        assert!(!m.contains("`Executor::run` must"), "{m}");
        let m = api_mismatch("    let x = 1;", "oops");
        assert!(m.contains("do not compile against your crate"), "{m}");
    }

    #[test]
    fn parses_artifacts_and_student_diagnostics() {
        let dir = tempfile::tempdir().unwrap();
        let json = [
            r#"{"reason":"compiler-artifact","manifest_path":"/work/hidden-tests/Cargo.toml","target":{"kind":["test"],"name":"timer"},"profile":{"test":true},"executable":"/work/target/debug/deps/timer-1"}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/work/runtime/Cargo.toml","target":{"kind":["bin"],"name":"runtime_demo"},"profile":{"test":false},"executable":"/work/target/debug/runtime_demo"}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/work/runtime/Cargo.toml","target":{"kind":["lib"],"name":"runtime"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"compiler-message","manifest_path":"/work/runtime/Cargo.toml","message":{"message":"expected `;`","level":"error","rendered":"error: expected `;`\n --> runtime/src/timer.rs:7:9","spans":[{"file_name":"runtime/src/timer.rs","line_start":7,"column_start":9,"is_primary":true}]}}"#,
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
