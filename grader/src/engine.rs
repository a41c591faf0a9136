//! The grading engine: submission + configuration + progress callback -> [`Report`].
//!
//! `grader grade`, `grader check`, the server's workers and the tests all call [`Engine::grade`]. Every
//! compile and every test process runs in the [`sandbox`](crate::sandbox); each test gets its own
//! process and timeout, and its outcome comes from the exit status and the sandbox's accounting only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::archive::{self, IntakeError};
use crate::assembly::{self, Suite, VENDOR_MOUNT};
use crate::build::{self, Artifacts, WORK_MOUNT};
use crate::cache::{self, DataDir};
use crate::policy;
use crate::report::{
    Diagnostic, IgnoredFile, LimitsReport, Outcome, Report, Status, TestResult, Timings,
};
use crate::rubric::{Rubric, RubricError};
use crate::runner::{self, Check, RunnerError};
use crate::sandbox::{
    JobDir, LimitKind, Limits, RunResult, Sandbox, SandboxCommand, SandboxError, Toolchain,
};

/// The data folder when none is configured.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/runtime-grader";
/// Where the warm target folder appears inside the sandbox.
const WARM_MOUNT: &str = "/opt/warm-target";
/// The student's benchmark binary, which the grader leaves out.
const COMPARISON_BIN: &str = "src/bin/executor_comparison.rs";
/// Timeout of each public test (they carry no rubric).
const PUBLIC_TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the engine needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data folder (toolchain copy, vendored crates, warm target, job folders).
    pub data_dir: PathBuf,
    /// The hidden tests package with its `rubric.toml`.
    pub hidden_tests: PathBuf,
    /// Test processes run at once.
    pub jobs: usize,
    /// Limits of the build.
    pub build_limits: Limits,
    /// Limits of each test (the wall limit comes from the rubric).
    pub test_limits: Limits,
    /// Size cap of a job's work folder.
    pub job_dir_bytes: u64,
    /// Limits of the intake.
    pub intake: archive::Limits,
}

impl Config {
    /// The defaults, with the given data folder and hidden tests.
    pub fn new(data_dir: PathBuf, hidden_tests: PathBuf) -> Config {
        Config {
            data_dir,
            hidden_tests,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            build_limits: Limits::build(),
            test_limits: Limits::test(),
            job_dir_bytes: 1 << 30,
            intake: archive::Limits::default(),
        }
    }
}

/// Which tests to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The hidden tests, scored by the rubric: what the server does.
    Hidden,
    /// The template's public tests, one point each: what `grader check` does.
    Public,
}

/// A submission as it arrives.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A crate folder or an archive on disk.
    Path(&'a Path),
    /// An uploaded file.
    Upload {
        /// The uploaded file's name (its extension picks the format).
        file_name: &'a str,
        /// Its bytes.
        bytes: &'a [u8],
    },
}

/// Progress of one grading, for live pages and terminals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Unpacking and checking the upload.
    Checking,
    /// Compiling.
    Building,
    /// A test process finished: `done` of `total`.
    Testing {
        /// Finished so far.
        done: usize,
        /// All checks.
        total: usize,
        /// The one that just finished (as the student may see it: hidden names are not leaked).
        name: String,
    },
    /// The report is ready.
    Finished,
}

/// A failure of the grader itself (never of the submission, which always gets a report).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The sandbox could not run something.
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// A file operation of the grader failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The rubric is unusable.
    #[error("{0}")]
    Rubric(#[from] RubricError),
    /// Listing or running the tests failed in a way that is not the submission's.
    #[error("{0}")]
    Runner(#[from] RunnerError),
    /// Preparing the toolchain, vendored crates or warm cache failed.
    #[error("setup: {0}")]
    Setup(String),
}

/// Where a job stands after its build stage.
enum Stage {
    /// Refused or not built: the report is final.
    Done(Report),
    /// Built: the checks can run (repeatedly).
    Built(Built),
}

/// A built job: its folder (kept until the runs are over), the pre-filled report and the checks.
struct Built {
    job: JobDir,
    report: Report,
    checks: Vec<Check>,
    indices: Vec<usize>,
    elapsed_before_tests: Duration,
}

/// A ready-to-use grading engine: the sandbox, the rubric and the warm caches.
pub struct Engine {
    config: Config,
    sandbox: Sandbox,
    rubric: Rubric,
    data: DataDir,
}

impl Engine {
    /// Prepares everything once: the toolchain copy, the vendored crates and the warm target folder
    /// (built in the sandbox exactly as jobs build, so that jobs only compile the student's crate).
    pub fn new(config: Config) -> Result<Engine, EngineError> {
        let rubric = Rubric::load(&config.hidden_tests.join("rubric.toml"))?;
        let data = DataDir::open(&config.data_dir)?;
        let _lock = data.lock()?;
        let toolchain = Toolchain::prepare(&data.toolchain())?;
        let key = cache::dependency_key(toolchain.version());
        cache::vendor(&data, &key).map_err(|e| EngineError::Setup(e.to_string()))?;
        let sandbox = Sandbox::new(toolchain)?;
        let engine = Engine {
            config,
            sandbox,
            rubric,
            data,
        };
        engine.warm_up(&key)?;
        Ok(engine)
    }

    /// The rubric in use.
    pub fn rubric(&self) -> &Rubric {
        &self.rubric
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn warm_up(&self, key: &str) -> Result<(), EngineError> {
        let warm = self.data.warm_target();
        if cache::is_ready(&warm, key) {
            return Ok(());
        }
        tracing::info!("building the warm dependency cache (once)");
        let job = JobDir::create(&self.data.jobs(), self.config.job_dir_bytes)?;
        // An empty crate: its dependents fail to compile, but with --keep-going every dependency
        // is built, for each feature set the jobs' cargo invocations select.
        let files = [("src/lib.rs".to_string(), "//! warm-up\n".to_string())]
            .into_iter()
            .collect();
        assembly::assemble(
            job.path(),
            &files,
            &Suite::Hidden(self.config.hidden_tests.clone()),
        )?;
        for args in [
            cargo_args(Mode::Hidden),
            cargo_args(Mode::Public),
            bins_args(),
        ] {
            let mut args = args;
            args.push(
                if args[0] == "test" {
                    "--no-fail-fast"
                } else {
                    "--keep-going"
                }
                .into(),
            );
            let r = self.cargo(job.path(), &args, false)?;
            let deps = job.path().join("target/debug/deps");
            let built_futures = std::fs::read_dir(&deps).is_ok_and(|d| {
                d.filter_map(Result::ok).any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("libfutures_util")
                })
            });
            if !built_futures {
                let stderr = String::from_utf8_lossy(&r.stderr);
                return Err(EngineError::Setup(format!(
                    "the warm-up build compiled no dependency: {}",
                    stderr.lines().rev().take(15).collect::<Vec<_>>().join("\n")
                )));
            }
        }
        let tmp = self
            .data
            .jobs()
            .join(format!("warm-{}", std::process::id()));
        cache::copy_tree(&job.path().join("target"), &tmp)?;
        cache::publish(&tmp, &warm, key)?;
        Ok(())
    }

    /// Runs one cargo command in the job's sandbox (the job folder writable at /work).
    fn cargo(
        &self,
        job: &Path,
        args: &[String],
        from_warm: bool,
    ) -> Result<RunResult, EngineError> {
        let mut script = String::from("set -e\n");
        if from_warm {
            script.push_str(&format!(
                "[ -d {WORK_MOUNT}/target ] || cp -a {WARM_MOUNT} {WORK_MOUNT}/target\n"
            ));
        }
        script.push_str("exec cargo \"$@\"\n");
        let mut all = vec!["-c".to_string(), script, "cargo".to_string()];
        all.extend(args.iter().cloned());
        let mut ro = vec![(self.data.vendor(), VENDOR_MOUNT.to_string())];
        if from_warm {
            ro.push((self.data.warm_target(), WARM_MOUNT.to_string()));
        }
        let cmd = SandboxCommand {
            program: "/bin/sh".into(),
            args: all,
            env: base_env(),
            cwd: WORK_MOUNT.into(),
            ro_mounts: ro,
            rw_mounts: vec![(job.to_path_buf(), WORK_MOUNT.to_string())],
            stdin: None,
        };
        let mut limits = self.config.build_limits.clone();
        // cargo's JSON messages can be long; diagnostics must not be cut off.
        limits.output_bytes = limits.output_bytes.max(4 << 20);
        Ok(self.sandbox.run(&cmd, &limits)?)
    }

    /// Grades one submission. A refused or broken submission still gets a report; only a failure of
    /// the grader itself is an error.
    pub fn grade(
        &self,
        input: Input<'_>,
        mode: Mode,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Report, EngineError> {
        Ok(self.grade_repeatedly(input, mode, 1, progress)?.remove(0))
    }

    /// Builds once and runs the tests `runs` times (at least once), one report per run: how the
    /// validation matrix proves that race tests catch their bug every time and never fail correct code.
    pub fn grade_repeatedly(
        &self,
        input: Input<'_>,
        mode: Mode,
        runs: usize,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Vec<Report>, EngineError> {
        let started = Instant::now();
        let built = match self.build_stage(input, mode, progress)? {
            Stage::Done(report) => return Ok(vec![finish(report, started, progress)]),
            Stage::Built(built) => built,
        };
        let mut reports = Vec::new();
        for _ in 0..runs.max(1) {
            let run_started = Instant::now();
            let mut report = self.test_stage(&built, progress)?;
            report.timings.total_ms = millis(built.elapsed_before_tests + run_started.elapsed());
            progress(Progress::Finished);
            reports.push(report);
        }
        Ok(reports)
    }

    /// Intake, policy, assembly and build: either a final report (refused, did not build) or a
    /// built job ready for its test runs.
    fn build_stage(
        &self,
        input: Input<'_>,
        mode: Mode,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Stage, EngineError> {
        let started = Instant::now();
        progress(Progress::Checking);
        let mut report = self.empty_report(mode);
        let submission = match input {
            Input::Path(p) => archive::from_path(p, &self.config.intake),
            Input::Upload { file_name, bytes } => {
                archive::from_bytes(file_name, bytes, &self.config.intake)
            }
        };
        let submission = match submission {
            Ok(s) => s,
            Err(e) => return Ok(Stage::Done(reject(report, &e))),
        };
        report.ignored_files = submission
            .ignored()
            .iter()
            .map(|i| IgnoredFile {
                path: i.path.clone(),
                reason: i.reason.clone(),
            })
            .collect();
        let mut files = submission.files().clone();
        // The comparison binary is the student's own measuring tool: it may read its arguments and
        // set its exit code, and since it is never built here, nothing it does can touch a verdict.
        if files.remove(COMPARISON_BIN).is_some() {
            report.ignored_files.push(IgnoredFile {
                path: COMPARISON_BIN.into(),
                reason: "for your own measurements; the grader neither builds nor runs it".into(),
            });
        }
        let refused: Vec<_> = policy::check(&files)
            .into_iter()
            .filter(|v| !v.message.starts_with("syntax error"))
            .collect();
        if !refused.is_empty() {
            report.status = Status::Rejected;
            report.message = Some(format!(
                "Your code uses {} thing(s) this exercise does not allow; nothing was compiled. \
                 See the messages below.",
                refused.len()
            ));
            report.diagnostics = refused
                .iter()
                .map(|v| Diagnostic {
                    file: Some(v.file.clone()),
                    line: Some(v.line as u32),
                    column: Some(v.column as u32),
                    level: "refused".into(),
                    message: v.message.clone(),
                    rendered: v.to_string(),
                })
                .collect();
            return Ok(Stage::Done(report));
        }

        progress(Progress::Building);
        let job = JobDir::create(&self.data.jobs(), self.config.job_dir_bytes)?;
        let suite = match mode {
            Mode::Hidden => Suite::Hidden(self.config.hidden_tests.clone()),
            Mode::Public => Suite::Public,
        };
        assembly::assemble(job.path(), &files, &suite)?;
        let package = match mode {
            Mode::Hidden => "hidden-tests",
            Mode::Public => "runtime",
        };
        let built = self.cargo(job.path(), &cargo_args(mode), true)?;
        let artifacts = build::parse(&String::from_utf8_lossy(&built.stdout), job.path(), package);
        report.diagnostics = artifacts.diagnostics.clone();
        if !built.status.success() || artifacts.test_binaries.is_empty() {
            report.timings.build_ms = millis(started.elapsed());
            report.status = Status::BuildFailed;
            report.message = Some(build_failure_message(&built, &report.diagnostics));
            if report.diagnostics.is_empty() {
                tracing::warn!(
                    stderr = %String::from_utf8_lossy(&built.stderr),
                    "build failed without compiler messages"
                );
            }
            for t in &mut report.tests {
                t.message = Some("the crate did not compile".into());
            }
            return Ok(Stage::Done(report));
        }
        let mut bins = BTreeMap::new();
        if mode == Mode::Hidden && self.rubric.binaries().next().is_some() {
            let built_bins = self.cargo(job.path(), &bins_args(), true)?;
            let more = build::parse(
                &String::from_utf8_lossy(&built_bins.stdout),
                job.path(),
                package,
            );
            for d in more.diagnostics {
                if !report.diagnostics.contains(&d) {
                    report.diagnostics.push(d);
                }
            }
            bins = more.bins;
        }
        let listed = self.list_tests(job.path(), &artifacts)?;
        let (checks, indices) = self.plan(mode, &mut report, &listed, &bins);
        report.timings.build_ms = millis(started.elapsed());
        Ok(Stage::Built(Built {
            job,
            report,
            checks,
            indices,
            elapsed_before_tests: started.elapsed(),
        }))
    }

    /// Runs every check of a built job and scores the report.
    fn test_stage(
        &self,
        built: &Built,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Report, EngineError> {
        let started = Instant::now();
        let mut report = built.report.clone();
        let test_cmd = SandboxCommand {
            program: String::new(),
            args: Vec::new(),
            env: base_env(),
            cwd: WORK_MOUNT.into(),
            ro_mounts: vec![(built.job.path().to_path_buf(), WORK_MOUNT.to_string())],
            rw_mounts: Vec::new(),
            stdin: None,
        };
        // Progress names tests as the student sees them: hidden names must not leak.
        let shown = report.for_student().tests;
        let on_done = |done: usize, total: usize, name: &str| {
            let i = report.tests.iter().position(|t| t.name == name);
            progress(Progress::Testing {
                done,
                total,
                name: i.map_or(name, |i| shown[i].name.as_str()).to_string(),
            });
        };
        let results = runner::run_all(
            &self.sandbox,
            &test_cmd,
            &self.config.test_limits,
            &built.checks,
            self.config.jobs,
            &on_done,
        )?;
        for (result, &i) in results.into_iter().zip(&built.indices) {
            let t = &mut report.tests[i];
            t.outcome = result.outcome;
            t.score = if result.outcome == Outcome::Passed {
                t.max_score
            } else {
                0
            };
            t.message = result.message;
            t.duration_ms = millis(result.wall);
            t.cpu_ms = millis(result.cpu);
            t.output = Some(result.output);
        }
        for t in &mut report.tests {
            if t.outcome == Outcome::Passed {
                t.hint = None;
            }
        }
        report.timings.run_ms = millis(started.elapsed());
        report.status = Status::Graded;
        let max = report
            .categories
            .iter()
            .map(|(c, s)| (c.clone(), s.max_score))
            .collect();
        report.tally(&max);
        Ok(report)
    }

    /// A report with every check `not_run` and every category at zero.
    fn empty_report(&self, mode: Mode) -> Report {
        let tests = match mode {
            Mode::Hidden => self
                .rubric
                .entries()
                .iter()
                .map(|e| TestResult {
                    name: e.name.clone(),
                    category: e.category.clone(),
                    outcome: Outcome::NotRun,
                    score: 0,
                    max_score: e.points,
                    duration_ms: 0,
                    cpu_ms: 0,
                    message: None,
                    hint: Some(e.hint.clone()),
                    output: None,
                    visible: e.visible,
                })
                .collect(),
            // Public tests are known only once listed.
            Mode::Public => Vec::new(),
        };
        let mut report = Report {
            status: Status::Graded,
            score: 0,
            max_score: 0,
            message: None,
            categories: BTreeMap::new(),
            tests,
            diagnostics: Vec::new(),
            ignored_files: Vec::new(),
            limits: LimitsReport {
                build_wall_secs: self.config.build_limits.wall.as_secs(),
                build_memory_bytes: self.config.build_limits.memory_bytes,
                test_memory_bytes: self.config.test_limits.memory_bytes,
                test_tasks: self.config.test_limits.tasks,
                output_bytes: self.config.test_limits.output_bytes,
                enforcement: self.sandbox.probe().enforcement.to_string(),
            },
            timings: Timings::default(),
        };
        let max = match mode {
            Mode::Hidden => self.rubric.max_by_category(),
            Mode::Public => BTreeMap::new(),
        };
        report.tally(&max);
        report
    }

    /// Lists the tests of every test binary (see [`runner::list_tests`]).
    fn list_tests(
        &self,
        job: &Path,
        artifacts: &Artifacts,
    ) -> Result<BTreeMap<String, String>, EngineError> {
        let cmd = SandboxCommand {
            program: String::new(),
            args: Vec::new(),
            env: base_env(),
            cwd: WORK_MOUNT.into(),
            ro_mounts: vec![(job.to_path_buf(), WORK_MOUNT.to_string())],
            rw_mounts: Vec::new(),
            stdin: None,
        };
        Ok(runner::list_tests(
            &self.sandbox,
            &cmd,
            &self.config.test_limits,
            &artifacts.test_binaries,
        )?)
    }

    /// Turns the rubric (or, for public tests, the listing) into checks; returns them with the index
    /// of the report entry each fills. Rubric entries missing from the build stay `not_run`.
    fn plan(
        &self,
        mode: Mode,
        report: &mut Report,
        listed: &BTreeMap<String, String>,
        bins: &BTreeMap<String, String>,
    ) -> (Vec<Check>, Vec<usize>) {
        if mode == Mode::Public {
            report.tests = listed
                .keys()
                .map(|name| TestResult {
                    name: name.clone(),
                    category: name.split("::").next().unwrap_or("tests").to_string(),
                    outcome: Outcome::NotRun,
                    score: 0,
                    max_score: 1,
                    duration_ms: 0,
                    cpu_ms: 0,
                    message: None,
                    hint: None,
                    output: None,
                    visible: true,
                })
                .collect();
            let mut max: BTreeMap<String, u32> = BTreeMap::new();
            for t in &report.tests {
                *max.entry(t.category.clone()).or_default() += 1;
            }
            report.tally(&max);
            let checks = listed
                .iter()
                .map(|(name, bin)| Check::test(name, bin, PUBLIC_TEST_TIMEOUT))
                .collect();
            return (checks, (0..listed.len()).collect());
        }
        let mut checks = Vec::new();
        let mut indices = Vec::new();
        for (i, entry) in self.rubric.entries().iter().enumerate() {
            let check = match &entry.binary {
                Some(bin) => bins
                    .get(bin)
                    .map(|path| Check::binary(&entry.name, path, entry.timeout())),
                None => listed
                    .get(&entry.name)
                    .map(|b| Check::test(&entry.name, b, entry.timeout())),
            };
            match check {
                Some(c) => {
                    checks.push(c);
                    indices.push(i);
                }
                None => {
                    report.tests[i].message = Some(match &entry.binary {
                        Some(bin) => {
                            format!("the binary `{bin}` did not build (see the diagnostics)")
                        }
                        None => "this test was not found in the build".into(),
                    });
                }
            }
        }
        (checks, indices)
    }
}

/// The cargo arguments of the test build.
fn cargo_args(mode: Mode) -> Vec<String> {
    let package: &[&str] = match mode {
        Mode::Hidden => &["-p", "hidden-tests", "--tests"],
        Mode::Public => &["-p", "runtime", "--lib"],
    };
    [
        "test",
        "--no-run",
        "--offline",
        "--locked",
        "--message-format=json",
    ]
    .iter()
    .chain(package)
    .map(|s| s.to_string())
    .collect()
}

/// The cargo arguments of the binaries' build.
fn bins_args() -> Vec<String> {
    [
        "build",
        "--offline",
        "--locked",
        "--message-format=json",
        "-p",
        "runtime",
        "--bins",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The environment of every sandboxed process (the sandbox clears everything else).
fn base_env() -> Vec<(String, String)> {
    [
        ("PATH", "/opt/rust/bin:/usr/bin:/bin"),
        ("HOME", "/tmp"),
        ("CARGO_HOME", "/tmp/cargo-home"),
        ("CARGO_TARGET_DIR", "/work/target"),
        ("RUST_BACKTRACE", "0"),
        // glibc reserves a malloc arena per thread; where memory is capped as address space (the
        // sandbox's rlimit fallback) a thread-per-timer design would run out of it long before
        // using real memory.
        ("MALLOC_ARENA_MAX", "2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

fn reject(mut report: Report, e: &IntakeError) -> Report {
    report.status = Status::Rejected;
    report.message = Some(e.to_string());
    report
}

fn build_failure_message(built: &RunResult, diagnostics: &[Diagnostic]) -> String {
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
        format!("Your crate did not compile: {errors} error(s). Fix them and submit again.")
    } else {
        "Your crate did not compile.".into()
    }
}

fn finish(mut report: Report, started: Instant, progress: &(dyn Fn(Progress) + Sync)) -> Report {
    report.timings.total_ms = millis(started.elapsed());
    progress(Progress::Finished);
    report
}
