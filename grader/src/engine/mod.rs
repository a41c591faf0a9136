//! The grading engine: submission + configuration + progress callback -> [`Report`].
//!
//! `grader grade`, `grader check`, the server's workers and the tests all call [`Engine::grade`]. It
//! is the pipeline, one call per step: intake ([`archive`]), [`policy`], [`assembly`], the sandboxed
//! [`build`], the [`runner`]'s listing, plan and test processes, and the [`report`]'s scoring.
//! Every compile and every test process runs in the [`sandbox`](sandbox); each test gets its
//! own process and timeout, and its outcome comes from the exit status and the sandbox's accounting.

pub mod archive;
pub mod assembly;
pub mod build;
pub mod cache;
pub mod job;
pub mod policy;
pub mod report;
pub mod rubric;
pub mod runner;
pub mod sandbox;
pub mod suite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use archive::Submission;
use assembly::Suite;
use build::BuildError;
use cache::{DataDir, JobsArea};
use report::{Diagnostic, IgnoredFile, LimitsReport, Report};
use rubric::{Rubric, RubricError};
use runner::{Plan, RunnerError};
use sandbox::{JobDir, Limits, Sandbox, SandboxError, SandboxOptions, Toolchain};

/// The data folder when none is configured.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/runtime-grader";
/// The student's benchmark binary, which the grader leaves out.
const COMPARISON_BIN: &str = "src/bin/executor_comparison.rs";
/// Test processes per configured job slot ([`Config::jobs`]) that always run: a test process
/// spends much of its life outside the CPU (the sandbox's setup and teardown, timers, waiting for
/// wakes), so two per slot keep the cores busy; measured on two cores, the reference's 88
/// processes took 2.3 s one per slot and 1.3 s two per slot. The hidden tests are written to pass
/// on a loaded machine, and a busy loop still shows as busy (it gets at least a quarter of a core).
const PROCESSES_PER_JOB: usize = 2;
/// The most test processes per job slot: busy ones past [`PROCESSES_PER_JOB`] only while a whole
/// core is idle, checks known to wait whenever a lane is free (see [`runner::Lanes`]). The
/// reference's 88 processes use about 0.9 s of CPU in 3.5 s of wall time, a dozen of them mostly
/// waiting on timers: with eight lanes per slot those start at once and no longer hold the busy
/// ones back (its run phase on two cores: 0.65 to 0.75 s, against 0.85 s with four per slot).
const IDLE_PROCESSES_PER_JOB: usize = 8;
/// Timeout of each public test (they carry no rubric).
const PUBLIC_TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the engine needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data folder (toolchain copy, vendored crates, warm target, job folders).
    pub data_dir: PathBuf,
    /// The hidden tests package with its `rubric.toml`; `None` for an engine that runs only the
    /// public tests (`grader check`, where students have no hidden tests).
    pub hidden_tests: Option<PathBuf>,
    /// Job slots for test processes; each keeps two busy test processes going, and up to eight
    /// processes while the cores are idle or the tests wait (see `IDLE_PROCESSES_PER_JOB`).
    pub jobs: usize,
    /// Limits of the build.
    pub build_limits: Limits,
    /// Limits of each test (the wall limit comes from the rubric).
    pub test_limits: Limits,
    /// Size cap of a job's work folder.
    pub job_dir_bytes: u64,
    /// Limits of the intake.
    pub intake: archive::Limits,
    /// How the sandbox is set up (the operator's opt-in to a root-mapped sandbox is here).
    pub sandbox: SandboxOptions,
}

impl Config {
    /// The defaults, with the given data folder and hidden tests.
    pub fn new(data_dir: PathBuf, hidden_tests: PathBuf) -> Config {
        Config {
            hidden_tests: Some(hidden_tests),
            ..Config::public_only(data_dir)
        }
    }

    /// The defaults for an engine without hidden tests: it grades only in [`Mode::Public`].
    pub fn public_only(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            hidden_tests: None,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            build_limits: Limits::build(),
            test_limits: Limits::test(),
            job_dir_bytes: 1 << 30,
            intake: archive::Limits::default(),
            sandbox: SandboxOptions::default(),
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
    /// The build phase could not do its work (a crate that does not compile is not an error).
    #[error("{0}")]
    Build(#[from] BuildError),
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

/// A built job: its folder (kept until the runs are over), the pre-filled report and the plan.
struct Built {
    job: JobDir,
    /// The kept target folder the job was built in, if any (locked until the runs are over).
    kept: Option<cache::KeptTarget>,
    report: Report,
    plan: Plan,
    elapsed_before_tests: Duration,
}

/// A ready-to-use grading engine: the sandbox, the rubric and the warm caches.
pub struct Engine {
    config: Config,
    sandbox: Sandbox,
    /// `None` without hidden tests.
    rubric: Option<Rubric>,
    /// The module (category file) of each hidden test, by rubric name: what an API mismatch sinks.
    modules: BTreeMap<String, String>,
    /// How long each check took when it last passed, to start the longest first.
    durations: Mutex<cache::Durations>,
    data: DataDir,
    /// A job folder that already holds a copy of the warm cache, made while the previous job's
    /// tests ran, for the next build to start without the copy. (Declared before `jobs`, which
    /// holds it: fields drop in order.)
    staged: Mutex<Option<JobDir>>,
    /// Test runs started so far: an engine stages job folders from its second run on, once it is
    /// evidently grading more than one submission (a one-shot `grader grade` or `check` would
    /// throw the copy away).
    test_runs: std::sync::atomic::AtomicUsize,
    /// This engine's job folders and scratch files (leftovers of crashed engines are cleared first).
    jobs: JobsArea,
}

impl Engine {
    /// Prepares everything once: the toolchain copy, the vendored crates and the warm target folder
    /// (built in the sandbox exactly as jobs build, so that jobs only compile the student's crate).
    pub fn new(config: Config) -> Result<Engine, EngineError> {
        let (rubric, modules, library) = match &config.hidden_tests {
            Some(dir) => {
                let hidden = crate::engine::suite::HiddenTests::open(dir)
                    .map_err(|e| EngineError::Setup(e.to_string()))?;
                let modules = hidden
                    .tests()
                    .iter()
                    .map(|t| (t.name.clone(), suite::module_of(&t.file).to_string()))
                    .collect();
                let library = hidden.library_version().to_string();
                (Some(hidden.into_rubric()), modules, library)
            }
            None => (None, BTreeMap::new(), "none".to_string()),
        };
        let data = DataDir::open(&config.data_dir)?;
        let durations = Mutex::new(cache::Durations::load(&data.durations()));
        let _lock = data.lock()?;
        let jobs = data.start_jobs()?;
        let toolchain = Toolchain::prepare(&data.toolchain())?;
        let key = cache::dependency_key(toolchain.version());
        cache::vendor(&data, &key).map_err(|e| EngineError::Setup(e.to_string()))?;
        let sandbox = Sandbox::with_options(toolchain, config.sandbox)?;
        // The warm cache holds the dependencies, which are the same whatever the hidden tests
        // are: without them, an empty package of theirs builds it.
        let hidden_tests = match &config.hidden_tests {
            Some(dir) => dir.clone(),
            None => {
                let stub = jobs.path().join("no-hidden-tests");
                std::fs::create_dir_all(stub.join("src"))?;
                std::fs::create_dir_all(stub.join("tests/all"))?;
                std::fs::write(stub.join("src/lib.rs"), "//! No hidden tests.\n")?;
                // The one test binary, so that building it builds the dependencies.
                std::fs::write(stub.join("tests/all/main.rs"), "//! No hidden tests.\n")?;
                stub
            }
        };
        // The warm cache holds the hidden tests' library compiled too: another library is another
        // cache (cargo alone might take sources older than the cache for unchanged ones).
        let key = format!("{key}-{library}");
        // Unsandboxed, the dependencies' paths are the host's, not the sandbox's: a warm cache
        // built the other way would be rebuilt by every job.
        let warm_key = match sandbox.probe().identity {
            sandbox::Identity::Unsandboxed => format!("{key}-unsandboxed"),
            _ => key,
        };
        let data = data.for_warm_key(&warm_key);
        build::warm_up(
            &sandbox,
            &data,
            jobs.path(),
            &hidden_tests,
            config.job_dir_bytes,
            &config.build_limits,
            &warm_key,
        )?;
        data.prune_warm_targets()?;
        Ok(Engine {
            config,
            sandbox,
            rubric,
            modules,
            durations,
            data,
            staged: Mutex::new(None),
            test_runs: Default::default(),
            jobs,
        })
    }

    /// The rubric in use (`None` without hidden tests).
    pub fn rubric(&self) -> Option<&Rubric> {
        self.rubric.as_ref()
    }

    /// Who runs the sandboxed programs ([`sandbox::Identity::Unsandboxed`] when nothing does).
    pub fn sandbox_identity(&self) -> sandbox::Identity {
        self.sandbox.probe().identity
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
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
        if mode == Mode::Hidden && self.rubric.is_none() {
            return Err(EngineError::Setup(
                "this engine has no hidden tests; it runs only the public tests".into(),
            ));
        }
        let standby = runner::Standby::default();
        std::thread::scope(|scope| {
            // Closed however this ends, so that the arming thread ends before the scope waits.
            let _closing = standby.closing();
            // Only hidden gradings arm: their checks, the rubric's, are known before the build.
            let arm = |template: sandbox::SandboxCommand| {
                let (Mode::Hidden, Some(rubric)) = (mode, &self.rubric) else {
                    return;
                };
                let count = rubric.entries().len() + 1;
                let (standby, limits) = (&standby, self.armed_limits(rubric));
                scope.spawn(move || {
                    standby.arm(&self.sandbox, &template, &limits, count, runner::host_cpu)
                });
            };
            let built = match self.build_stage(input, mode, progress, &arm, &standby)? {
                Stage::Done(mut report) => {
                    report.timings.total_ms = millis(started.elapsed());
                    progress(Progress::Finished);
                    return Ok(vec![report]);
                }
                Stage::Built(built) => built,
            };
            let mut reports = Vec::new();
            for _ in 0..runs.max(1) {
                let run_started = Instant::now();
                let mut report = self.test_stage(&built, progress, &standby)?;
                // Armed sandboxes serve the first run; the matrix's repeats start their own.
                standby.close();
                report.timings.total_ms =
                    millis(built.elapsed_before_tests + run_started.elapsed());
                progress(Progress::Finished);
                reports.push(report);
            }
            Ok(reports)
        })
    }

    /// The limits sandboxes are armed with: the test limits, with the most CPU time the listing's
    /// first try and any of the `rubric`'s checks may have.
    fn armed_limits(&self, rubric: &rubric::Rubric) -> Limits {
        let limits = &self.config.test_limits;
        let longest = rubric.entries().iter().map(|e| e.timeout()).max();
        Limits {
            cpu: longest.map_or(limits.cpu, |t| limits.cpu.max(t * 2)),
            ..limits.clone()
        }
    }

    /// Intake, policy, assembly, build, listing and plan: either a final report (refused, did not
    /// build) or a built job ready for its test runs.
    ///
    /// Once the job is assembled, `arm(template)` may start arming sandboxes for the listing and
    /// the checks in `standby`, which the listing then takes from.
    fn build_stage(
        &self,
        input: Input<'_>,
        mode: Mode,
        progress: &(dyn Fn(Progress) + Sync),
        arm: &dyn Fn(sandbox::SandboxCommand),
        standby: &runner::Standby<'_>,
    ) -> Result<Stage, EngineError> {
        let started = Instant::now();
        progress(Progress::Checking);
        let mut report = self.unscored_report(mode);
        let submission = match intake(input, &self.config.intake) {
            Ok(s) => s,
            Err(message) => {
                report.reject(message, Vec::new());
                return Ok(Stage::Done(report));
            }
        };
        let (files, ignored) = graded_files(&submission);
        report.ignored_files = ignored;
        if let Some((message, refusals)) = refusals(&files) {
            report.reject(message, refusals);
            return Ok(Stage::Done(report));
        }

        progress(Progress::Building);
        // A crate checked from its folder is likely checked again: it keeps its target folder.
        let kept = match input {
            Input::Path(path)
                if mode == Mode::Public
                    && self.sandbox_identity() != sandbox::Identity::Unsandboxed =>
            {
                Some(cache::KeptTarget::open(&self.data, path)?)
            }
            _ => None,
        };
        let job = match kept {
            Some(_) => JobDir::create(self.jobs.path(), self.config.job_dir_bytes)?,
            None => self.job_dir()?,
        };
        let suite = self.suite(mode);
        assembly::assemble(job.path(), &files, &suite)?;
        let kept_target = kept.as_ref().map(|k| k.path());
        if kept.is_some() {
            // The mount point, made while the job folder is still writable.
            std::fs::create_dir_all(job.path().join("target"))?;
        }
        let assembled = started.elapsed();
        arm(job::read_only(job.path(), kept_target));
        // The rubric's binaries that the crate has: naming one it lacks would fail cargo's call.
        let bins: Vec<String> = match (mode, &self.rubric) {
            (Mode::Hidden, Some(rubric)) => rubric
                .binaries()
                .filter_map(|e| e.binary.clone())
                .filter(|b| assembly::has_binary(job.path(), b))
                .collect(),
            _ => Vec::new(),
        };
        let build = build::build(
            &self.sandbox,
            &self.data,
            job.path(),
            kept_target,
            &suite,
            &bins,
            &self.config.build_limits,
        )?;
        let compiled = started.elapsed();
        report.diagnostics = build.artifacts.diagnostics;
        if let Some(message) = build.failure {
            report.build_failed(message);
            report.timings.build_ms = millis(started.elapsed());
            return Ok(Stage::Done(report));
        }
        let listed = runner::list_tests(
            &self.sandbox,
            standby,
            &job::read_only(job.path(), kept_target),
            &self.config.test_limits,
            &build.artifacts.test_binaries,
        )?;
        // Where a grading's time goes, for whoever tunes it (`RUST_LOG=grader::engine=debug`).
        tracing::debug!(
            intake_and_assembly_ms = millis(assembled),
            cargo_ms = millis(compiled - assembled),
            listing_ms = millis(started.elapsed() - compiled),
            "build stage"
        );
        let mut plan = match mode {
            Mode::Hidden => runner::plan_rubric(
                self.rubric.as_ref().expect("checked in grade_repeatedly"),
                &listed,
                &build.artifacts.bins,
            ),
            Mode::Public => {
                // Public tests are known only once listed.
                let (tests, max) = rubric::public_tests(listed.keys());
                report.tests = tests;
                report.tally(&max);
                runner::plan_listed(&listed, PUBLIC_TEST_TIMEOUT)
            }
        };
        for (i, why) in &plan.unplanned {
            let test = &mut report.tests[*i];
            let sunk = self.modules.get(&test.name).and_then(|m| build.sunk.get(m));
            test.message = Some(match sunk {
                Some(errors) => format!(
                    "its category does not compile against your crate: {}",
                    errors.join("; ")
                ),
                None => why.clone(),
            });
        }
        let durations = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        plan.schedule(|c| durations.get(&c.name));
        drop(durations);
        report.timings.build_ms = millis(started.elapsed());
        Ok(Stage::Built(Built {
            job,
            kept,
            report,
            plan,
            elapsed_before_tests: started.elapsed(),
        }))
    }

    /// Runs every check of a built job and scores the report.
    fn test_stage(
        &self,
        built: &Built,
        progress: &(dyn Fn(Progress) + Sync),
        standby: &runner::Standby<'_>,
    ) -> Result<Report, EngineError> {
        let started = Instant::now();
        let mut report = built.report.clone();
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
        let earlier_runs = self.test_runs.fetch_add(1, Ordering::Relaxed);
        let results = std::thread::scope(|s| {
            // The tests mostly wait: the next job's folder is made ready meanwhile.
            if earlier_runs > 0 {
                s.spawn(|| self.stage_job_dir());
            }
            runner::run_all(
                &self.sandbox,
                standby,
                &job::read_only(built.job.path(), built.kept.as_ref().map(|k| k.path())),
                &self.config.test_limits,
                &built.plan.checks,
                runner::Lanes::new(
                    self.config.jobs * PROCESSES_PER_JOB,
                    self.config.jobs * IDLE_PROCESSES_PER_JOB,
                ),
                &on_done,
            )
        })?;
        tracing::debug!(
            processes = results.len(),
            run_ms = millis(started.elapsed()),
            sum_wall_ms = results.iter().map(|r| millis(r.wall)).sum::<u64>(),
            sum_cpu_ms = results.iter().map(|r| millis(r.cpu)).sum::<u64>(),
            "test stage"
        );
        let mut durations = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        for (r, &i) in results.into_iter().zip(&built.plan.slots) {
            if r.outcome == report::Outcome::Passed {
                durations.set(&report.tests[i].name, r.wall, r.cpu);
            }
            let (wall, cpu) = (millis(r.wall), millis(r.cpu));
            report.record(i, r.outcome, r.message, wall, cpu, r.output);
        }
        // Only an ordering hint: a failed write costs the next grading its order, nothing more.
        if let Err(e) = durations.save(&self.data.durations()) {
            tracing::warn!(error = %e, "cannot record the tests' durations");
        }
        drop(durations);
        report.finish_scoring();
        report.timings.run_ms = millis(started.elapsed());
        Ok(report)
    }

    /// A job folder for a new build: the staged one if its copy of the warm cache is current,
    /// else a new, empty one (whose build copies the warm cache first).
    fn job_dir(&self) -> std::io::Result<JobDir> {
        // Only a mark for pruning (see `DataDir::prune_warm_targets`), never worth failing a job.
        if let Err(e) = self.data.mark_warm_target_used() {
            tracing::warn!(error = %e, "cannot mark the warm cache as used");
        }
        let staged = self.staged.lock().unwrap_or_else(|e| e.into_inner()).take();
        match staged {
            Some(job) if build::staged_is_current(&self.data, job.path()) => Ok(job),
            _ => JobDir::create(self.jobs.path(), self.config.job_dir_bytes),
        }
    }

    /// Makes a job folder ready for the next build (see [`build::stage_warm_target`]) unless one
    /// is. Only a head start: on failure the next build copies the warm cache itself.
    fn stage_job_dir(&self) {
        if self
            .staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return;
        }
        let staged = JobDir::create(self.jobs.path(), self.config.job_dir_bytes)
            .map_err(build::BuildError::from)
            .and_then(|job| {
                build::stage_warm_target(
                    &self.sandbox,
                    &self.data,
                    job.path(),
                    &self.config.build_limits,
                )?;
                Ok(job)
            });
        match staged {
            Ok(job) => {
                let mut slot = self.staged.lock().unwrap_or_else(|e| e.into_inner());
                // Another grading's may have got there first; one is enough.
                if slot.is_none() {
                    *slot = Some(job);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot stage a job folder"),
        }
    }

    /// The tests a mode runs.
    fn suite(&self, mode: Mode) -> Suite {
        match mode {
            Mode::Hidden => Suite::Hidden(
                self.config
                    .hidden_tests
                    .clone()
                    .expect("checked in grade_repeatedly"),
            ),
            Mode::Public => Suite::Public,
        }
    }

    /// A report with every check `not_run` and every category at zero.
    fn unscored_report(&self, mode: Mode) -> Report {
        let (tests, max) = match mode {
            Mode::Hidden => {
                let rubric = self.rubric.as_ref().expect("checked in grade_repeatedly");
                (rubric.unscored(), rubric.max_by_category())
            }
            Mode::Public => (Vec::new(), crate::engine::suite::public_max_by_category()),
        };
        let limits = LimitsReport {
            build_wall_secs: self.config.build_limits.wall.as_secs(),
            build_memory_bytes: self.config.build_limits.memory_bytes,
            test_memory_bytes: self.config.test_limits.memory_bytes,
            test_tasks: self.config.test_limits.tasks,
            output_bytes: self.config.test_limits.output_bytes,
            enforcement: self.sandbox.probe().enforcement.to_string(),
        };
        Report::unscored(tests, &max, limits)
    }
}

/// The submission, validated, or what to tell the student about it.
fn intake(input: Input<'_>, limits: &archive::Limits) -> Result<Submission, String> {
    match input {
        Input::Path(p) => archive::from_path(p, limits),
        Input::Upload { file_name, bytes } => archive::from_bytes(file_name, bytes, limits),
    }
    .map_err(|e| e.to_string())
}

/// The files that are graded and those that are not (with the reason).
fn graded_files(submission: &Submission) -> (BTreeMap<String, String>, Vec<IgnoredFile>) {
    let mut ignored: Vec<IgnoredFile> = submission
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
        ignored.push(IgnoredFile {
            path: COMPARISON_BIN.into(),
            reason: "for your own measurements; the grader neither builds nor runs it".into(),
        });
    }
    (files, ignored)
}

/// The policy's refusals as a message and one diagnostic each, or `None` when the code may be
/// built. (Here rather than in `policy`, which does not know the report.)
fn refusals(files: &BTreeMap<String, String>) -> Option<(String, Vec<Diagnostic>)> {
    // A file the policy cannot parse is refused too: what it could not read is never compiled.
    let refused = policy::check(files);
    if refused.is_empty() {
        return None;
    }
    let message = policy::refusal_message(&refused);
    let diagnostics = refused
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
    Some((message, diagnostics))
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}
