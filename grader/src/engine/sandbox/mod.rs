//! Sandboxed execution: every compile and every test run of a submission goes through
//! [`Sandbox::run`].
//!
//! # Layers
//!
//! 1. **bubblewrap** (`bwrap`), run as the unprivileged uid/gid 65534 by the exec helper (see
//!    [`Identity`]): new user (with `--disable-userns`), pid, network (only `lo`), ipc, uts and
//!    cgroup namespaces; `--die-with-parent`, `--new-session`, `--cap-drop ALL`, `--clearenv`
//!    plus an allowlist (`PATH`, `HOME=/tmp`, `TMPDIR=/tmp`, `CARGO_HOME=/tmp/cargo-home`, the
//!    command's own variables, and the `PWD` bwrap sets). The filesystem is a fresh root holding
//!    read-only `/usr`, the `/bin`, `/lib*` links, `/etc/alternatives` and the `ld.so` files (no
//!    other `/etc`, no `/root`, `/home`, `/var`), the [`Toolchain`] at `/opt/rust`, the caller's
//!    read-only and writable binds (a [`JobDir`] at `/work`), a fresh `/proc` and `/dev`, and a
//!    size-capped tmpfs `/tmp`. Only fds 0-2 reach the program. If bwrap cannot start as uid 65534
//!    (unprivileged user namespaces restricted by the kernel), the sandbox refuses to start with an
//!    error naming the kernel settings, unless the operator opted in to a root-mapped sandbox
//!    ([`SandboxOptions::allow_root_mapped`]); [`Enforcement`] names the identity in use.
//! 2. **cgroups**, one per run in every usable hierarchy, joined by the exec helper
//!    ([`sandbox_exec`]: `grader-sandbox-exec` beside the running executable, else the `grader`
//!    binary itself, see [`executable_serves_as_helper`]) before it drops to the sandbox uid and
//!    execs `bwrap`, so nothing of the run ever runs outside them: memory, task count,
//!    CPU accounting and killing (see [`Enforcement`]).
//! 3. **rlimits**: always `RLIMIT_CORE` 0 and `RLIMIT_CPU` (a per-process backstop one second
//!    past the CPU limit when cgroups account CPU); `RLIMIT_AS` and `RLIMIT_NPROC` only where no
//!    cgroup controller enforces memory or tasks.
//! 4. **the supervisor** ([`Sandbox::run`]) watches the wall clock and the cgroup's CPU time,
//!    kills the whole run when a limit passes, and after every run kills whatever is left, waits
//!    until the sandbox's pid namespace is gone (bwrap exits with the program and leaves the rest
//!    to its pid 1, whose `--die-with-parent` kill comes asynchronously) and removes the cgroups,
//!    so no process of a run outlives [`Sandbox::run`].
//!
//! # Which limits hold where
//!
//! *cgroup v1* (the development machine: v1 `memory`, `pids`, `cpuacct`, `freezer`, plus a
//! controller-less cgroup2 mount at `/sys/fs/cgroup/unified`): memory through
//! `memory.limit_in_bytes` (+ `memory.memsw.limit_in_bytes` when swap is accounted), "memory
//! limit hit" from the `oom_kill` count in `memory.oom_control`, peak from
//! `memory.max_usage_in_bytes`; tasks through `pids.max`, "task limit hit" from `max` in
//! `pids.events`; CPU time from `cpuacct.usage`; killing by freezing the cgroup, SIGKILLing every
//! pid in `cgroup.procs`, thawing, until empty. When a cgroup2 hierarchy is also mounted and
//! writable (hybrid, as on the development machine), [`CgroupMode::Auto`] takes CPU time from its
//! `cpu.stat` and kills with its `cgroup.kill` instead, keeping v1 for memory and tasks: every
//! limit holds. The run cgroups live in `runtime-grader/` below the grader's own cgroup of each
//! hierarchy.
//!
//! *cgroup v2*: `cpu.stat` always works, `cgroup.kill` from Linux 5.14 on; memory (`memory.max`,
//! `memory.swap.max` 0, `memory.peak`, `oom_kill` in `memory.events`) and tasks (`pids.max`,
//! `pids.events`) need the controllers enabled for the run cgroups' parent, and v2 lets a cgroup
//! enable them only if it holds no process (or is the root). So the grader puts `runtime-grader/`
//! below its own cgroup if the controllers can be enabled there, else below the hierarchy's root
//! (as root), else moves itself into a leaf `runtime-grader-supervisor` when it is alone in its
//! cgroup (a service or container running just the grader) and retries. If all fail (say, in a
//! container sharing its cgroup with other processes), memory falls back to `RLIMIT_AS` (virtual
//! memory, coarse) and tasks to `RLIMIT_NPROC` (counts every process of uid 65534, concurrent
//! runs included, so a run started above it fails at setup), and [`RunResult::enforcement`] says
//! so.
//!
//! *no usable cgroup*: rlimits only, no CPU accounting (`cpu` is zero), no memory peak, and the
//! kill is SIGKILL to the sandbox's pid 1 (the kernel then kills the whole pid namespace).
//!
//! # Exit status
//!
//! bwrap 0.8 reports the program's death by signal N as exit code 128+N (also in its
//! `--json-status-fd` output), so [`ExitStatusKind::Signaled`] is decoded from that: a program
//! that calls `exit(128 + N)` itself is indistinguishable from one killed by signal N. The status
//! fd does tell whether the program started at all: when bwrap exits without reporting an exit
//! code (a mount failed, say) [`Sandbox::run`] returns [`SandboxError::Setup`] rather than a
//! result.

mod armed;
mod bwrap;
mod cgroup;
mod host;
mod jobdir;
mod pipes;
mod toolchain;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::{geteuid, Pid};
use sandbox_exec::Limit;
use serde::{Serialize, Serializer};
use tracing::{debug, warn};

pub use armed::Armed;
pub use bwrap::Identity;
use bwrap::{Helper, SandboxInit, Setup, StatusFifo};
pub use cgroup::{CgroupMode, Enforcement, Mechanism};
use cgroup::{Hierarchies, RunCgroup};
pub use jobdir::{JobDir, DEFAULT_JOB_DIR_BYTES};
use pipes::Capture;
pub use toolchain::{host_tool, Toolchain, TOOLCHAIN_MOUNT};

/// The uid the sandboxed processes run as (`nobody`).
pub const SANDBOX_UID: u32 = 65534;
/// The gid the sandboxed processes run as (`nogroup`).
pub const SANDBOX_GID: u32 = 65534;

/// How often the supervisor checks the CPU time of a running program.
const CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// Numbers the sandboxes of this process, for unique cgroup names.
static SANDBOXES: AtomicU64 = AtomicU64::new(0);

/// A failure to set up or clean up a run: never the program's own failure.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A required program (bwrap) is missing.
    #[error("required program `{0}` not found")]
    MissingProgram(&'static str),
    /// The exec helper is neither installed beside the running executable nor served by it.
    #[error(
        "the sandbox's helper `{HELPER}` is not installed beside {0} (`cargo build -p grader` \
         builds both binaries; install them side by side)"
    )]
    MissingHelper(PathBuf),
    /// No way to run bubblewrap works on this host.
    #[error("bubblewrap does not work here: {0}")]
    Unsupported(String),
    /// Running as root, bubblewrap could not start as the unprivileged sandbox user, and the
    /// operator did not opt in to a root-mapped sandbox ([`SandboxOptions::allow_root_mapped`]).
    #[error(
        "the sandbox cannot run as the unprivileged user (uid {SANDBOX_UID}): {failure}. Unprivileged \
         user namespaces are probably restricted on this host{settings}; allow them (for example \
         `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, \
         `sysctl -w kernel.unprivileged_userns_clone=1` or `sysctl -w user.max_user_namespaces=10000`, \
         whichever this kernel has), or opt in explicitly to a root-mapped sandbox, whose processes \
         are uid 0 on the host (grader: --allow-root-mapped-sandbox or \
         GRADER_ALLOW_ROOT_MAPPED_SANDBOX=true)"
    )]
    UnprivilegedUnavailable {
        /// How the unprivileged probe failed.
        failure: String,
        /// The user-namespace settings of this kernel with their values (` (a = 1, ...)`), if any
        /// could be read.
        settings: String,
    },
    /// The command or limits are malformed.
    #[error("invalid sandbox command: {0}")]
    InvalidCommand(String),
    /// Creating or configuring the run's cgroups failed.
    #[error("cgroup setup failed: {0}")]
    Cgroup(#[source] io::Error),
    /// Starting the sandbox failed.
    #[error("cannot start the sandbox: {0}")]
    Spawn(#[source] io::Error),
    /// bwrap or its wrapper failed before the program started (exit code, their stderr).
    #[error("sandbox setup failed (exit code {code}): {stderr}")]
    Setup {
        /// Exit code of the wrapper or bwrap.
        code: i32,
        /// What they printed.
        stderr: String,
    },
    /// Processes of the run could not be killed or its cgroups removed.
    #[error("sandbox cleanup failed: {0}")]
    Cleanup(#[source] io::Error),
    /// Other I/O failure of the supervisor.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What to run in the sandbox. All paths except the mounts' host sides are inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxCommand {
    /// The program (an absolute path, or a name looked up in the sandbox's `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables (added to, or overriding, the allowlist).
    pub env: Vec<(String, String)>,
    /// Working directory, absolute.
    pub cwd: String,
    /// Read-only binds: host path, absolute path inside.
    pub ro_mounts: Vec<(PathBuf, String)>,
    /// Writable binds: host path, absolute path inside.
    pub rw_mounts: Vec<(PathBuf, String)>,
    /// Bytes fed to stdin (then closed); `None` connects stdin to `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Whether the run compiles: the [`Toolchain`] at `/opt/rust` and the `/etc` files the C
    /// linker needs are mounted only then. A built program needs only `/usr` and the loader's
    /// cache, and each mount is bubblewrap's work at every start.
    pub toolchain: bool,
}

impl SandboxCommand {
    /// `program` with `args`, in `/tmp`, with no extra variables, mounts or input.
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        SandboxCommand {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: "/tmp".to_owned(),
            ro_mounts: Vec::new(),
            rw_mounts: Vec::new(),
            stdin: None,
            toolchain: true,
        }
    }
}

/// Resource limits of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Wall-clock time, from start to the kill of the whole run.
    #[serde(serialize_with = "seconds")]
    pub wall: Duration,
    /// CPU time of all processes together (cgroup accounting; per process with rlimits only).
    #[serde(serialize_with = "seconds")]
    pub cpu: Duration,
    /// Memory (with cgroups: resident + page cache + tmpfs pages, swap included).
    pub memory_bytes: u64,
    /// Processes and threads together.
    pub tasks: u64,
    /// Size of the `/tmp` tmpfs.
    pub tmp_bytes: u64,
    /// Bytes kept from each of stdout and stderr; the rest is read and discarded.
    pub output_bytes: usize,
}

const MIB: u64 = 1 << 20;

impl Limits {
    /// Defaults for a build: 180 s wall (and CPU), 2 GiB, 512 tasks, 512 MiB `/tmp`, 64 KiB output.
    pub fn build() -> Limits {
        Limits {
            wall: Duration::from_secs(180),
            cpu: Duration::from_secs(180),
            memory_bytes: 2048 * MIB,
            tasks: 512,
            tmp_bytes: 512 * MIB,
            output_bytes: 64 * 1024,
        }
    }

    /// Defaults for a test run: 10 s wall (and CPU), 512 MiB, 2048 tasks, 64 MiB `/tmp`, 64 KiB
    /// output.
    pub fn test() -> Limits {
        Limits {
            wall: Duration::from_secs(10),
            cpu: Duration::from_secs(10),
            memory_bytes: 512 * MIB,
            tasks: 2048,
            tmp_bytes: 64 * MIB,
            output_bytes: 64 * 1024,
        }
    }
}

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitStatusKind {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal (see the module docs for the 128+N ambiguity).
    Signaled(i32),
}

impl ExitStatusKind {
    /// Exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatusKind::Exited(0)
    }
}

/// The limit that ended (or hampered) a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitKind {
    /// Killed by the supervisor at the wall-clock limit.
    Wall,
    /// Killed at the CPU-time limit (supervisor or `RLIMIT_CPU`).
    Cpu,
    /// The kernel killed a process at the memory limit.
    Memory,
    /// A fork or thread creation failed at the task limit.
    Tasks,
}

/// The outcome of one run. Serializes without the output bytes (only their truncation flags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunResult {
    /// How the program ended.
    pub status: ExitStatusKind,
    /// Captured stdout, at most [`Limits::output_bytes`].
    #[serde(skip)]
    pub stdout: Vec<u8>,
    /// Captured stderr, at most [`Limits::output_bytes`].
    #[serde(skip)]
    pub stderr: Vec<u8>,
    /// stdout had more bytes than were kept.
    pub stdout_truncated: bool,
    /// stderr had more bytes than were kept.
    pub stderr_truncated: bool,
    /// Wall-clock time from start to the end of the sandbox.
    #[serde(serialize_with = "seconds")]
    pub wall: Duration,
    /// CPU time of all processes (zero without cgroup CPU accounting).
    #[serde(serialize_with = "seconds")]
    pub cpu: Duration,
    /// Highest memory use (cgroup accounting, includes page cache), if known.
    pub peak_memory_bytes: Option<u64>,
    /// The limit that was hit, if any: memory and tasks first (causes), then wall or CPU.
    pub limit_hit: Option<LimitKind>,
    /// Which mechanisms enforced the limits.
    pub enforcement: Enforcement,
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// How a [`Sandbox`] is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SandboxOptions {
    /// Which cgroup hierarchies it may use.
    pub cgroups: CgroupMode,
    /// Running as root, accept [`Identity::RootMapped`] when bubblewrap cannot start as the
    /// unprivileged user: the operator's explicit choice of a weaker sandbox. Without it the
    /// sandbox refuses to start ([`SandboxError::UnprivilegedUnavailable`]).
    pub allow_root_mapped: bool,
    /// Whether runs may go without a sandbox ([`Identity::Unsandboxed`]). Only `grader check`
    /// allows it (the student's own code on their own machine); never grading or the server.
    pub unsandboxed: Unsandboxed,
}

/// Whether a [`Sandbox`] may run programs without bubblewrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unsandboxed {
    /// Never: without a working bubblewrap the sandbox refuses to start.
    #[default]
    Never,
    /// Only when no bubblewrap identity works here.
    Fallback,
    /// Always (the student asked for it).
    Always,
}

/// The kernel settings that can forbid unprivileged user namespaces, with the value they need.
const USERNS_SETTINGS: [(&str, &str); 3] = [
    ("kernel/apparmor_restrict_unprivileged_userns", "0"),
    ("kernel/unprivileged_userns_clone", "1"),
    ("user/max_user_namespaces", "a positive number"),
];

/// ` (name = value, ...)` for the [`USERNS_SETTINGS`] this kernel has, or nothing.
fn userns_settings() -> String {
    let found: Vec<String> = USERNS_SETTINGS
        .iter()
        .filter_map(|(path, needed)| {
            let value = fs::read_to_string(Path::new("/proc/sys").join(path)).ok()?;
            Some(format!(
                "{} = {} (needs {needed})",
                path.replace('/', "."),
                value.trim()
            ))
        })
        .collect();
    if found.is_empty() {
        String::new()
    } else {
        format!(" ({})", found.join(", "))
    }
}

/// What holds on this host, as found by [`Sandbox::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Who bwrap runs as.
    pub identity: Identity,
    /// The sandboxed processes are uid 65534 on the host too, without capabilities.
    pub unprivileged_uid: bool,
    /// Some cgroup v1 controller is used.
    pub cgroup_v1: bool,
    /// A cgroup v2 subtree is used.
    pub cgroup_v2: bool,
    /// No cgroup at all: limits are rlimits only.
    pub rlimits_only: bool,
    /// Which mechanism enforces each limit.
    pub enforcement: Enforcement,
    /// [`JobDir`]s get a size-capped tmpfs.
    pub tmpfs_job_dirs: bool,
}

/// A run whose wrapper has been started: what [`Sandbox::finish`] supervises and cleans up.
struct Spawned {
    cgroup: RunCgroup,
    fifo: StatusFifo,
    child: Child,
    /// The path translation and private `/tmp` of an unsandboxed run.
    unsandboxed: Option<(host::PathMap, tempfile::TempDir)>,
    /// When the run's limits start counting.
    started: Instant,
}

/// Runs commands in bubblewrap under cgroup limits; see the module docs. Shareable between threads.
#[derive(Debug)]
pub struct Sandbox {
    toolchain: Toolchain,
    setup: Setup,
    cgroups: Hierarchies,
    /// Prefix of this sandbox's run names: `<pid>-<sandbox number>`.
    prefix: String,
    runs: AtomicU64,
    /// Private folder for the status fifos.
    fifo_dir: tempfile::TempDir,
    capabilities: Capabilities,
}

impl Sandbox {
    /// A sandbox with the default [`SandboxOptions`]: every cgroup mechanism available, and only
    /// the unprivileged identity when running as root.
    pub fn new(toolchain: Toolchain) -> Result<Sandbox, SandboxError> {
        Sandbox::with_options(toolchain, SandboxOptions::default())
    }

    /// A sandbox set up as `options` say. Checks that bubblewrap works: as root, as uid 65534
    /// (else, only if [`SandboxOptions::allow_root_mapped`], as root with a mapped uid); the
    /// identity in use is in [`Sandbox::probe`] and in every [`Enforcement`].
    pub fn with_options(
        toolchain: Toolchain,
        options: SandboxOptions,
    ) -> Result<Sandbox, SandboxError> {
        let mode = options.cgroups;
        let root = geteuid().is_root();
        // Without bubblewrap, only an unsandboxed run is left (where it is allowed).
        let bwrap = match find_program("bwrap") {
            Some(bwrap) => Some(bwrap),
            None if options.unsandboxed != Unsandboxed::Never => None,
            None => return Err(SandboxError::MissingProgram("bwrap")),
        };
        let helper = find_helper().ok_or_else(|| {
            SandboxError::MissingHelper(std::env::current_exe().unwrap_or_default())
        })?;
        if root {
            ensure_world_traversable(toolchain.host_dir())?;
        }
        // Not root, only a delegated v2 subtree can be writable: discovery finds what is.
        let cgroups = Hierarchies::discover(mode);
        let fifo_dir = tempfile::Builder::new()
            .prefix("runtime-grader-sandbox-")
            .tempdir()?;
        let tmpfs_job_dirs = JobDir::create(&std::env::temp_dir(), MIB)
            .map(|job| job.is_size_capped())
            .unwrap_or(false);
        let enforcement = cgroups.enforcement(Identity::Invoker);
        let capabilities = Capabilities {
            identity: Identity::Invoker,
            unprivileged_uid: false,
            cgroup_v1: cgroups.uses_v1(),
            cgroup_v2: cgroups.uses_v2(),
            rlimits_only: !cgroups.uses_v1() && !cgroups.uses_v2(),
            enforcement,
            tmpfs_job_dirs,
        };
        let prefix = format!(
            "{}-{}",
            std::process::id(),
            SANDBOXES.fetch_add(1, Ordering::Relaxed)
        );
        cgroups
            .reclaim(&format!("{prefix}-"))
            .map_err(SandboxError::Cleanup)?;
        let mut sandbox = Sandbox {
            setup: Setup::new(
                helper,
                bwrap.clone().unwrap_or_default(),
                Identity::Invoker,
                toolchain.host_dir().to_owned(),
            ),
            toolchain,
            cgroups,
            prefix,
            runs: AtomicU64::new(0),
            fifo_dir,
            capabilities,
        };
        let mut candidates = match (root, options.allow_root_mapped) {
            (true, true) => vec![Identity::Unprivileged, Identity::RootMapped],
            (true, false) => vec![Identity::Unprivileged],
            (false, _) => vec![Identity::Invoker],
        };
        match options.unsandboxed {
            Unsandboxed::Never => {}
            Unsandboxed::Fallback => candidates.push(Identity::Unsandboxed),
            Unsandboxed::Always => candidates = vec![Identity::Unsandboxed],
        }
        let mut failures = Vec::new();
        if bwrap.is_none() {
            candidates = vec![Identity::Unsandboxed];
            failures.push("bwrap is not installed".to_string());
        }
        for &identity in &candidates {
            sandbox.setup.identity = identity;
            sandbox.capabilities.identity = identity;
            sandbox.capabilities.enforcement.identity = identity;
            sandbox.capabilities.unprivileged_uid = identity == Identity::Unprivileged;
            if identity == Identity::Unsandboxed {
                let e = &mut sandbox.capabilities.enforcement;
                if e.kill == Mechanism::PidNamespace {
                    e.kill = Mechanism::ProcessGroup;
                }
                if e.tasks == Mechanism::Rlimit {
                    e.tasks = Mechanism::Unenforced;
                }
            }
            let probe = SandboxCommand::new("/usr/bin/true", Vec::<String>::new());
            match sandbox.run(&probe, &Limits::test()) {
                Ok(result) if result.status.success() => {
                    // The caller of an allowed unsandboxed fallback says so itself, once.
                    if !failures.is_empty() && identity != Identity::Unsandboxed {
                        warn!(
                            ?identity,
                            ?failures,
                            "sandbox falls back to a weaker identity"
                        );
                    }
                    debug!(capabilities = ?sandbox.capabilities, "sandbox ready");
                    return Ok(sandbox);
                }
                Ok(result) => failures.push(format!(
                    "{identity:?}: {:?}: {}",
                    result.status,
                    String::from_utf8_lossy(&result.stderr).trim()
                )),
                Err(e) => failures.push(format!("{identity:?}: {e}")),
            }
        }
        if candidates == [Identity::Unprivileged] {
            return Err(SandboxError::UnprivilegedUnavailable {
                failure: failures.join("; "),
                settings: userns_settings(),
            });
        }
        Err(SandboxError::Unsupported(failures.join("; ")))
    }

    /// The toolchain mounted at `/opt/rust`.
    pub fn toolchain(&self) -> &Toolchain {
        &self.toolchain
    }

    /// Which mechanisms hold on this host.
    pub fn probe(&self) -> Capabilities {
        self.capabilities.clone()
    }

    /// Run cgroups of this sandbox that still exist: always empty between runs.
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        self.cgroups.existing(&format!("{}-", self.prefix))
    }

    /// Runs `cmd` under `limits` and returns once every process it started is gone.
    ///
    /// The program's own failures (exit codes, signals, limits) are in the [`RunResult`]; errors
    /// are setup or cleanup failures of the sandbox.
    pub fn run(&self, cmd: &SandboxCommand, limits: &Limits) -> Result<RunResult, SandboxError> {
        validate(cmd, limits)?;
        let stdin = if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let spawned = self.spawn(cmd, limits, stdin, false)?;
        self.finish(spawned, cmd, limits)
    }

    /// Creates the run's cgroups (with the least CPU weight if `low_weight`) and status fifo and
    /// starts `cmd`'s wrapper (validated).
    fn spawn(
        &self,
        cmd: &SandboxCommand,
        limits: &Limits,
        stdin: Stdio,
        low_weight: bool,
    ) -> Result<Spawned, SandboxError> {
        let name = format!(
            "{}-{}",
            self.prefix,
            self.runs.fetch_add(1, Ordering::Relaxed)
        );
        let cgroup = RunCgroup::create(&self.cgroups, &name, limits.memory_bytes, limits.tasks)
            .map_err(SandboxError::Cgroup)?;
        if low_weight {
            cgroup.set_low_weight(true).map_err(SandboxError::Cgroup)?;
        }
        let fifo = StatusFifo::create(self.fifo_dir.path().join(&name))?;
        let rlimits = rlimits(&self.capabilities.enforcement, limits);
        let unsandboxed = match self.setup.identity {
            Identity::Unsandboxed => Some(self.unsandboxed_run(cmd, &name)?),
            _ => None,
        };
        let mut command = match &unsandboxed {
            Some((paths, _tmp)) => self.setup.unsandboxed_command(
                cmd,
                paths,
                &rlimits,
                &cgroup.procs_files(),
                fifo.path(),
            ),
            None => self
                .setup
                .command(cmd, limits, &rlimits, &cgroup.procs_files(), fifo.path()),
        };
        command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let child = command.spawn().map_err(SandboxError::Spawn)?;
        Ok(Spawned {
            cgroup,
            fifo,
            child,
            unsandboxed,
            started,
        })
    }

    /// Supervises a spawned run of `cmd` to its end (limits counted from its `started`), then
    /// kills whatever is left, removes its cgroups and reads its result.
    fn finish(
        &self,
        spawned: Spawned,
        cmd: &SandboxCommand,
        limits: &Limits,
    ) -> Result<RunResult, SandboxError> {
        let Spawned {
            cgroup,
            mut fifo,
            mut child,
            unsandboxed,
            started: start,
        } = spawned;
        let enforcement = self.capabilities.enforcement;
        let streams = start_streams(&mut child, cmd, limits);
        let (stdout, stderr, feeder) = match streams {
            Ok(streams) => streams,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        };
        let supervised = self.supervise(&mut child, &cgroup, &mut fifo, limits, start);
        let wall = start.elapsed();
        // Stragglers (daemons, orphans) die now; then every writer of the pipes is gone.
        if unsandboxed.is_some() {
            kill_process_group(&child);
        }
        let killed = cgroup.kill_all();
        let (os_status, killed_for) = supervised.inspect_err(|_| {
            let _ = child.kill();
            let _ = child.wait();
        })?;
        killed.map_err(SandboxError::Cleanup)?;
        // bwrap exits as soon as the program does and leaves the rest of the namespace to its
        // pid 1, which dies (with everything else) only then: wait for it.
        if let Some(init) = fifo.sandbox_init() {
            wait_until_gone(init).map_err(SandboxError::Cleanup)?;
        }
        let mut stdout = stdout.finish();
        let mut stderr = stderr.finish();
        if let Some((paths, _tmp)) = &unsandboxed {
            stdout.bytes = paths.to_inside(&stdout.bytes);
            stderr.bytes = paths.to_inside(&stderr.bytes);
        }
        if let Some(feeder) = feeder {
            let _ = feeder.join();
        }

        let cpu = cgroup.cpu_usage().unwrap_or_default();
        let peak_memory_bytes = cgroup.peak_memory();
        let memory_hit = cgroup.memory_limit_hit();
        let tasks_hit = cgroup.tasks_limit_hit();
        cgroup.remove().map_err(SandboxError::Cleanup)?;

        let status = match (os_status.signal(), os_status.code()) {
            (Some(signal), _) => ExitStatusKind::Signaled(signal),
            (None, Some(code)) if fifo.exit_code().is_some() || killed_for.is_some() => {
                decode_exit_code(code)
            }
            (None, code) => {
                return Err(SandboxError::Setup {
                    code: code.unwrap_or(-1),
                    stderr: String::from_utf8_lossy(&stderr.bytes).trim().to_owned(),
                })
            }
        };
        let rlimit_cpu = status == ExitStatusKind::Signaled(Signal::SIGXCPU as i32)
            || (status == ExitStatusKind::Signaled(Signal::SIGKILL as i32) && cpu >= limits.cpu);
        let limit_hit = if memory_hit {
            Some(LimitKind::Memory)
        } else if tasks_hit {
            Some(LimitKind::Tasks)
        } else if killed_for.is_some() {
            killed_for
        } else {
            rlimit_cpu.then_some(LimitKind::Cpu)
        };
        Ok(RunResult {
            status,
            stdout: stdout.bytes,
            stderr: stderr.bytes,
            stdout_truncated: stdout.truncated,
            stderr_truncated: stderr.truncated,
            wall,
            cpu,
            peak_memory_bytes,
            limit_hit,
            enforcement,
        })
    }

    /// Waits for bwrap to end, killing the run at the wall-clock or CPU limit. Returns bwrap's
    /// status and the limit the run was killed for.
    fn supervise(
        &self,
        child: &mut Child,
        cgroup: &RunCgroup,
        fifo: &mut StatusFifo,
        limits: &Limits,
        start: Instant,
    ) -> Result<(ExitStatus, Option<LimitKind>), SandboxError> {
        let exited = exit_notifier(child)?;
        let mut killed_for = None;
        loop {
            let to_deadline = limits.wall.saturating_sub(start.elapsed());
            match exited.recv_timeout(to_deadline.min(CHECK_INTERVAL)) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
            if killed_for.is_none() {
                killed_for = if start.elapsed() >= limits.wall {
                    Some(LimitKind::Wall)
                } else if cgroup.cpu_usage().is_some_and(|cpu| cpu >= limits.cpu) {
                    Some(LimitKind::Cpu)
                } else {
                    None
                };
                if killed_for.is_some() {
                    self.kill_run(child, cgroup, fifo)?;
                }
            }
        }
        Ok((child.wait()?, killed_for))
    }

    /// The path translation of an unsandboxed run of `cmd` and its private `/tmp` (removed when
    /// dropped); the cargo configuration in its working folder is translated too.
    fn unsandboxed_run(
        &self,
        cmd: &SandboxCommand,
        name: &str,
    ) -> Result<(host::PathMap, tempfile::TempDir), SandboxError> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{name}-tmp-"))
            .tempdir_in(self.fifo_dir.path())?;
        let toolchain = (self.toolchain.host_dir(), TOOLCHAIN_MOUNT);
        let paths = host::PathMap::new(cmd, toolchain, tmp.path())?;
        paths.rewrite_cargo_configs(Path::new(&paths.to_host(&cmd.cwd)))?;
        Ok((paths, tmp))
    }

    fn kill_run(
        &self,
        child: &mut Child,
        cgroup: &RunCgroup,
        fifo: &mut StatusFifo,
    ) -> Result<(), SandboxError> {
        if self.setup.identity == Identity::Unsandboxed {
            kill_process_group(child);
        }
        if self.capabilities.enforcement.kill == Mechanism::PidNamespace {
            if let Some(init) = fifo.sandbox_init() {
                init.kill();
            }
            let _ = child.kill();
        }
        cgroup.kill_all().map_err(SandboxError::Cleanup)
    }
}

/// SIGKILLs the process group an unsandboxed run started (its id is the wrapper's pid, which the
/// kernel does not hand out again while the group has members).
fn kill_process_group(child: &Child) {
    let group = Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
}

/// A channel that gets a message once `child` has exited, leaving it unreaped (`WNOWAIT`) so that
/// its pid stays valid for killing until [`Child::wait`] reaps it.
fn exit_notifier(child: &Child) -> io::Result<Receiver<()>> {
    let pid = Pid::from_raw(child.id() as i32);
    let (sender, receiver) = mpsc::channel();
    thread::Builder::new()
        .name("sandbox-waiter".into())
        .spawn(move || {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
            while waitid(Id::Pid(pid), flags) == Err(Errno::EINTR) {}
            let _ = sender.send(());
        })?;
    Ok(receiver)
}

/// Waits until the sandbox's pid namespace is gone, killing its pid 1 if needed.
fn wait_until_gone(init: SandboxInit) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_micros(100);
    while init.is_alive() {
        if Instant::now() > deadline {
            return Err(io::Error::other("the sandbox's pid namespace survives"));
        }
        init.kill();
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
    Ok(())
}

type Streams = (Capture, Capture, Option<thread::JoinHandle<()>>);

fn start_streams(child: &mut Child, cmd: &SandboxCommand, limits: &Limits) -> io::Result<Streams> {
    let missing = || io::Error::other("child stdio not piped");
    let stdout = Capture::spawn(
        child.stdout.take().ok_or_else(missing)?,
        limits.output_bytes,
    )?;
    let stderr = Capture::spawn(
        child.stderr.take().ok_or_else(missing)?,
        limits.output_bytes,
    )?;
    let feeder = match (&cmd.stdin, child.stdin.take()) {
        (Some(input), Some(pipe)) => Some(pipes::feed(pipe, input.clone())?),
        _ => None,
    };
    Ok((stdout, stderr, feeder))
}

/// Exit code in the shell encoding (128 + signal for a signal death) to a status.
fn decode_exit_code(code: i32) -> ExitStatusKind {
    match code - 128 {
        signal @ 1..=64 => ExitStatusKind::Signaled(signal),
        _ => ExitStatusKind::Exited(code),
    }
}

/// The rlimits of a run (limit, soft, hard) for the exec helper.
fn rlimits(enforcement: &Enforcement, limits: &Limits) -> Vec<(Limit, u64, u64)> {
    let cpu_seconds = limits.cpu.as_secs_f64().ceil().max(1.0) as u64;
    // With cgroup accounting the supervisor kills at the exact limit; the rlimit is a backstop.
    let soft_cpu = if enforcement.cpu == Mechanism::Rlimit {
        cpu_seconds
    } else {
        cpu_seconds + 1
    };
    let mut options = vec![(Limit::Core, 0, 0), (Limit::Cpu, soft_cpu, soft_cpu + 1)];
    if enforcement.memory == Mechanism::Rlimit {
        options.push((
            Limit::AddressSpace,
            limits.memory_bytes,
            limits.memory_bytes,
        ));
    }
    if enforcement.tasks == Mechanism::Rlimit {
        options.push((Limit::Processes, limits.tasks, limits.tasks));
    }
    options
}

fn validate(cmd: &SandboxCommand, limits: &Limits) -> Result<(), SandboxError> {
    let invalid = |message: String| Err(SandboxError::InvalidCommand(message));
    let inside_path_ok = |path: &str| {
        let path = Path::new(path);
        path.is_absolute()
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
    };
    let strings = std::iter::once(&cmd.program)
        .chain(&cmd.args)
        .chain(std::iter::once(&cmd.cwd))
        .chain(cmd.env.iter().flat_map(|(k, v)| [k, v]))
        .chain(
            cmd.ro_mounts
                .iter()
                .chain(&cmd.rw_mounts)
                .map(|(_, inside)| inside),
        );
    for string in strings {
        if string.contains('\0') {
            return invalid(format!("NUL byte in {string:?}"));
        }
    }
    if cmd.program.is_empty() {
        return invalid("empty program".to_owned());
    }
    if !inside_path_ok(&cmd.cwd) {
        return invalid(format!(
            "working directory {:?} is not a plain absolute path",
            cmd.cwd
        ));
    }
    if let Some((key, _)) = cmd
        .env
        .iter()
        .find(|(k, _)| k.is_empty() || k.contains('='))
    {
        return invalid(format!("bad environment variable name {key:?}"));
    }
    for (host, inside) in cmd.ro_mounts.iter().chain(&cmd.rw_mounts) {
        if !inside_path_ok(inside) || inside == "/" {
            return invalid(format!(
                "mount point {inside:?} is not a plain absolute path"
            ));
        }
        if !host.exists() {
            return invalid(format!("mount source {} does not exist", host.display()));
        }
    }
    let zero = limits.wall.is_zero()
        || limits.cpu.is_zero()
        || limits.memory_bytes == 0
        || limits.tasks == 0
        || limits.tmp_bytes == 0;
    if zero {
        return invalid(format!("zero limit in {limits:?}"));
    }
    Ok(())
}

/// Looks `name` up in `PATH`, then in the usual system folders.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// The exec helper's binary name.
const HELPER: &str = "grader-sandbox-exec";

/// Whether the running executable serves as the exec helper (see [`executable_serves_as_helper`]).
static SELF_HELPER: OnceLock<()> = OnceLock::new();

/// Declares that the running executable becomes the exec helper when its first argument is
/// [`sandbox_exec::SELF_ARG`], as the `grader` binary does: where `grader-sandbox-exec` is not
/// installed beside it (a student's one downloaded file), the sandbox runs it instead.
pub fn executable_serves_as_helper() {
    let _ = SELF_HELPER.set(());
}

/// The exec helper: `grader-sandbox-exec` beside the running executable (or, for cargo's tests and
/// benches in `target/*/deps/`, beside the binaries one folder up), else the executable itself if
/// it serves as one.
fn find_helper() -> Option<Helper> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let cargo_deps = dir.file_name().is_some_and(|n| n == "deps");
    let beside = [Some(dir), dir.parent().filter(|_| cargo_deps)]
        .into_iter()
        .flatten()
        .map(|d| d.join(HELPER))
        .find(|p| is_executable(p))
        .map(|program| Helper {
            program,
            self_arg: false,
        });
    beside.or_else(|| {
        SELF_HELPER.get().map(|()| Helper {
            program: exe,
            self_arg: true,
        })
    })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails unless `path` and all its ancestors can be traversed by others (the sandbox uid), which
/// bwrap needs to bind anything below it.
fn ensure_world_traversable(path: &Path) -> io::Result<()> {
    let path = path.canonicalize()?;
    for dir in path.ancestors() {
        if fs::metadata(dir)?.permissions().mode() & 0o001 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not traversable by the sandbox user (uid {SANDBOX_UID}), \
                     so {} cannot be mounted",
                    dir.display(),
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_encoded_exit_codes_decode_to_signals() {
        assert_eq!(decode_exit_code(0), ExitStatusKind::Exited(0));
        assert_eq!(decode_exit_code(101), ExitStatusKind::Exited(101));
        assert_eq!(decode_exit_code(128), ExitStatusKind::Exited(128));
        assert_eq!(decode_exit_code(137), ExitStatusKind::Signaled(9));
        assert_eq!(decode_exit_code(139), ExitStatusKind::Signaled(11));
        assert_eq!(decode_exit_code(255), ExitStatusKind::Exited(255));
    }

    #[test]
    fn malformed_commands_are_refused() {
        let ok = SandboxCommand::new("/bin/true", Vec::<String>::new());
        assert!(validate(&ok, &Limits::test()).is_ok());
        let cases: [fn(&mut SandboxCommand); 5] = [
            |c| c.program.clear(),
            |c| c.cwd = "relative".into(),
            |c| c.cwd = "/work/../etc".into(),
            |c| c.env.push(("A=B".into(), "x".into())),
            |c| c.args.push("nul\0byte".into()),
        ];
        for break_it in cases {
            let mut cmd = ok.clone();
            break_it(&mut cmd);
            assert!(validate(&cmd, &Limits::test()).is_err(), "{cmd:?}");
        }
        let no_time = Limits {
            wall: Duration::ZERO,
            ..Limits::test()
        };
        assert!(validate(&ok, &no_time).is_err());
    }

    #[test]
    fn rlimits_back_up_what_cgroups_do_not_enforce() {
        let cgroups = Enforcement {
            identity: Identity::Unprivileged,
            memory: Mechanism::CgroupV1,
            tasks: Mechanism::CgroupV1,
            cpu: Mechanism::CgroupV2,
            kill: Mechanism::CgroupV2,
        };
        let limits = Limits::test();
        assert_eq!(
            rlimits(&cgroups, &limits),
            [(Limit::Core, 0, 0), (Limit::Cpu, 11, 12)]
        );
        let none = Enforcement {
            identity: Identity::Unprivileged,
            memory: Mechanism::Rlimit,
            tasks: Mechanism::Rlimit,
            cpu: Mechanism::Rlimit,
            kill: Mechanism::PidNamespace,
        };
        assert_eq!(
            rlimits(&none, &limits),
            [
                (Limit::Core, 0, 0),
                (Limit::Cpu, 10, 11),
                (Limit::AddressSpace, 512 << 20, 512 << 20),
                (Limit::Processes, 2048, 2048)
            ]
        );
    }
}
