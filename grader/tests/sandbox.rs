//! The sandbox against real hostile programs: every test runs commands in bubblewrap and asserts
//! the safe outcome. Meant to run as root (CI does). A missing prerequisite (bwrap, root, cgroup v1)
//! fails the test under CI and skips it visibly elsewhere ([`common::require`]).

mod common;

use std::fs;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grader::engine::sandbox::{
    CgroupMode, ExitStatusKind, Identity, JobDir, LimitKind, Limits, Mechanism, RunResult, Sandbox,
    SandboxCommand, SandboxError, SandboxOptions, Toolchain,
};

const MIB: u64 = 1 << 20;

fn toolchain() -> Toolchain {
    static TOOLCHAIN: OnceLock<Toolchain> = OnceLock::new();
    TOOLCHAIN
        .get_or_init(|| {
            let dest = std::env::temp_dir().join("runtime-grader-sandbox-test-toolchain");
            Toolchain::prepare(&dest).expect("prepare the toolchain copy")
        })
        .clone()
}

fn bwrap_installed() -> bool {
    ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// A fresh sandbox per test, so that each test can check that its own cgroups are gone.
fn sandbox_with(mode: CgroupMode) -> Option<Sandbox> {
    if !common::require(bwrap_installed(), "bubblewrap (bwrap) installed") {
        return None;
    }
    let options = SandboxOptions {
        cgroups: mode,
        ..SandboxOptions::default()
    };
    Some(Sandbox::with_options(toolchain(), options).expect("sandbox setup"))
}

macro_rules! sandbox {
    () => {
        sandbox!(CgroupMode::Auto)
    };
    ($mode:expr) => {
        match sandbox_with($mode) {
            Some(sandbox) => sandbox,
            None => return,
        }
    };
}

fn sh(script: &str) -> SandboxCommand {
    SandboxCommand::new("/bin/sh", ["-c", script])
}

fn in_job(mut cmd: SandboxCommand, job: &JobDir) -> SandboxCommand {
    cmd.rw_mounts
        .push((job.path().to_owned(), "/work".to_owned()));
    cmd.cwd = "/work".to_owned();
    cmd
}

fn run(sandbox: &Sandbox, cmd: &SandboxCommand, limits: &Limits) -> RunResult {
    let result = sandbox.run(cmd, limits).expect("sandbox run");
    assert!(
        sandbox.leftover_cgroups().is_empty(),
        "cgroups left after a run: {:?}",
        sandbox.leftover_cgroups()
    );
    result
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn job_dir(size: u64) -> JobDir {
    JobDir::create(&std::env::temp_dir(), size).expect("job dir")
}

/// Whether a cgroup enforces a limit (so that hitting it is reported) in a sandbox of `mode`. With
/// cgroups allowed, a limit left to an rlimit is a missing prerequisite: under CI the test fails,
/// elsewhere it checks the rlimit's effect only and says so. Without cgroups it is the point.
fn by_cgroup(mode: CgroupMode, mechanism: Mechanism) -> bool {
    mode != CgroupMode::Disabled
        && common::require(
            mechanism != Mechanism::Rlimit,
            "a cgroup enforcing this limit (only an rlimit does here: checking its effect only)",
        )
}

/// A small task limit for bomb tests. `RLIMIT_NPROC` (no cgroups) counts every process of uid
/// 65534 on the host, those of concurrently running tests included, and a run that starts above
/// it fails at setup: leave them room.
fn tasks_limit(mode: CgroupMode) -> u64 {
    match mode {
        CgroupMode::Disabled => 512,
        _ => 64,
    }
}

/// Compiles `source` with the toolchain's rustc inside the sandbox; returns the binary's path
/// inside.
fn compile(sandbox: &Sandbox, job: &JobDir, name: &str, source: &str) -> String {
    fs::write(job.path().join(format!("{name}.rs")), source).unwrap();
    let cmd = in_job(
        SandboxCommand::new(
            sandbox.toolchain().rustc(),
            ["--edition", "2021", "-o", name, &format!("{name}.rs")],
        ),
        job,
    );
    let result = run(sandbox, &cmd, &Limits::build());
    assert!(
        result.status.success(),
        "rustc failed: {}",
        text(&result.stderr)
    );
    format!("/work/{name}")
}

fn unique_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{nanos:09}", std::process::id())
}

/// Host processes whose command line contains `needle`.
fn host_processes_with(needle: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .map(|cmdline| text(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(needle))
        .collect()
}

#[test]
fn runs_as_uid_65534_without_capabilities() {
    let sandbox = sandbox!();
    let capabilities = sandbox.probe();
    let root = nix::unistd::geteuid().is_root();
    if root {
        assert_eq!(capabilities.identity, Identity::Unprivileged);
        assert!(capabilities.unprivileged_uid);
        // A supplementary group for the sandbox to drop (root here has none of its own); group 0
        // is root's own, so the other tests of this process gain nothing from it.
        nix::unistd::setgroups(&[nix::unistd::Gid::from_raw(0)]).unwrap();
    }
    let job = job_dir(16 * MIB);
    let cmd = in_job(
        sh(
            "id -u; grep CapEff /proc/self/status; touch /work/mine; cat /proc/self/uid_map; \
            grep -E '^(NoNewPrivs|Groups):' /proc/self/status; \
            if unshare -U true; then echo nested-userns; fi",
        ),
        &job,
    );
    let result = run(&sandbox, &cmd, &Limits::test());
    assert!(result.status.success(), "{}", text(&result.stderr));
    let out = text(&result.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "65534", "{out}");
    assert_eq!(lines[1].split_whitespace().nth(1), Some("0000000000000000"));
    assert_eq!(lines[3].split_whitespace().collect::<Vec<_>>(), ["Groups:"]);
    assert_eq!(
        lines[4].split_whitespace().nth(1),
        Some("1"),
        "no new privileges"
    );
    assert!(!out.contains("nested-userns"), "--disable-userns");
    // uid_map's outside column is relative to bwrap's intermediate namespace (0 there); the file
    // the sandbox created shows the uid it really has on the host.
    if root {
        let owner = fs::metadata(job.path().join("mine")).unwrap().uid();
        assert_eq!(
            owner, 65534,
            "host uid of the sandboxed process; uid_map: {}",
            lines[2]
        );
    }
}

#[test]
fn host_secrets_and_other_jobs_are_invisible() {
    let sandbox = sandbox!();
    let (job, other) = (job_dir(16 * MIB), job_dir(16 * MIB));
    fs::write(other.path().join("secret"), "other job").unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let paths = [
        "/etc/shadow".into(),
        "/etc/passwd".into(),
        "/root".into(),
        "/home".into(),
        "/var".into(),
        repo.display().to_string(),
        other.path().display().to_string(),
        other.path().join("secret").display().to_string(),
    ];
    let script =
        r#"for p in "$@"; do if [ -e "$p" ]; then echo "visible: $p"; fi; done; cat /etc/shadow"#;
    let mut cmd = in_job(sh(script), &job);
    cmd.args.push("check".into());
    cmd.args.extend(paths);
    let result = run(&sandbox, &cmd, &Limits::test());
    assert_eq!(text(&result.stdout), "", "stderr: {}", text(&result.stderr));
    assert!(!result.status.success(), "reading /etc/shadow must fail");
    assert!(text(&result.stderr).contains("No such file"));
}

#[test]
fn network_is_loopback_only() {
    let sandbox = sandbox!();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("cat /proc/net/dev; echo hello > /dev/tcp/127.0.0.1/{port}");
    let result = run(
        &sandbox,
        &SandboxCommand::new("/bin/bash", ["-c", &script]),
        &Limits::test(),
    );
    assert!(!result.status.success(), "connecting must fail");
    let interfaces: Vec<String> = text(&result.stdout)
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .collect();
    assert_eq!(interfaces, ["lo"]);
    listener.set_nonblocking(true).unwrap();
    let accepted = listener.accept();
    assert_eq!(
        accepted.map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the listener received a connection"
    );
}

#[test]
fn only_standard_fds_are_open() {
    let sandbox = sandbox!();
    // dup(2) makes an fd without close-on-exec, like those a grader may inherit from its parent.
    let leaked = nix::unistd::dup(std::io::stderr()).unwrap();
    for stdin in [None, Some(b"input".to_vec())] {
        let mut cmd = sh("ls /proc/$$/fd");
        cmd.stdin = stdin;
        let result = run(&sandbox, &cmd, &Limits::test());
        assert_eq!(
            text(&result.stdout),
            "0\n1\n2\n",
            "{}",
            text(&result.stderr)
        );
    }
    drop(leaked);
}

#[test]
fn environment_is_the_allowlist() {
    let sandbox = sandbox!();
    let mut cmd = SandboxCommand::new("/usr/bin/env", Vec::<String>::new());
    cmd.env.push(("EXTRA".into(), "yes".into()));
    cmd.env.push(("HOME".into(), "/work".into()));
    let result = run(&sandbox, &cmd, &Limits::test());
    let mut vars: Vec<String> = text(&result.stdout).lines().map(str::to_owned).collect();
    vars.sort();
    assert_eq!(
        vars,
        [
            "CARGO_HOME=/tmp/cargo-home",
            "EXTRA=yes",
            "HOME=/work",
            "PATH=/opt/rust/bin:/usr/bin:/bin",
            "PWD=/tmp", // set by bwrap's --chdir
            "TMPDIR=/tmp",
        ]
    );
}

#[test]
fn fork_bomb_hits_the_task_limit() {
    let sandbox = sandbox!();
    let limits = Limits {
        tasks: 64,
        ..Limits::test()
    };
    let result = run(&sandbox, &sh("while :; do sleep 1000 & done"), &limits);
    if by_cgroup(CgroupMode::Auto, result.enforcement.tasks) {
        assert_eq!(result.limit_hit, Some(LimitKind::Tasks), "{result:?}");
    } else {
        assert!(text(&result.stderr).contains("fork"), "{result:?}");
    }
    assert!(
        result.wall < limits.wall,
        "it returned on its own: {result:?}"
    );
}

#[test]
fn thread_bomb_hits_the_task_limit() {
    let sandbox = sandbox!();
    let job = job_dir(256 * MIB);
    let program = compile(
        &sandbox,
        &job,
        "threads",
        r#"fn main() {
            let mut count = 0;
            while std::thread::Builder::new()
                .spawn(|| std::thread::sleep(std::time::Duration::from_secs(1000)))
                .is_ok()
            {
                count += 1;
            }
            println!("{count}");
            std::process::exit(3);
        }"#,
    );
    let limits = Limits {
        tasks: 100,
        ..Limits::test()
    };
    let result = run(
        &sandbox,
        &in_job(SandboxCommand::new(program, Vec::<String>::new()), &job),
        &limits,
    );
    if by_cgroup(CgroupMode::Auto, result.enforcement.tasks) {
        assert_eq!(result.limit_hit, Some(LimitKind::Tasks), "{result:?}");
    }
    assert_eq!(result.status, ExitStatusKind::Exited(3));
    let threads: u64 = text(&result.stdout).trim().parse().unwrap();
    assert!(threads < 100, "{threads} threads");
}

#[test]
fn allocating_32_gib_hits_the_memory_limit() {
    let sandbox = sandbox!();
    let job = job_dir(256 * MIB);
    let program = compile(
        &sandbox,
        &job,
        "hog",
        r#"fn main() {
            // 64 MiB at a time, every page touched, up to 32 GiB.
            let mut chunks = Vec::new();
            for _ in 0..512 {
                chunks.push(vec![1u8; 64 << 20]);
            }
            println!("allocated {}", chunks.len());
        }"#,
    );
    let result = run(
        &sandbox,
        &in_job(SandboxCommand::new(program, Vec::<String>::new()), &job),
        &Limits::test(),
    );
    if by_cgroup(CgroupMode::Auto, result.enforcement.memory) {
        assert_eq!(result.limit_hit, Some(LimitKind::Memory), "{result:?}");
        assert_eq!(result.status, ExitStatusKind::Signaled(9));
    } else {
        // RLIMIT_AS: the allocation fails and Rust aborts.
        assert_eq!(result.status, ExitStatusKind::Signaled(6), "{result:?}");
    }
    assert_eq!(text(&result.stdout), "");
    if let Some(peak) = result.peak_memory_bytes {
        assert!(peak <= Limits::test().memory_bytes, "peak {peak}");
    }
}

#[test]
fn a_run_without_the_toolchain_sees_only_usr_and_the_loader_cache() {
    let sandbox = sandbox!();
    let view = "ls /etc; if [ -e /opt/rust ]; then echo toolchain; fi";
    let mut cmd = sh(view);
    cmd.toolchain = false;
    let result = run(&sandbox, &cmd, &Limits::test());
    assert_eq!(
        text(&result.stdout),
        "ld.so.cache\n",
        "{}",
        text(&result.stderr)
    );
    // What compiles gets the toolchain and the C linker's `/etc` files.
    let result = run(&sandbox, &sh(view), &Limits::test());
    let out = text(&result.stdout);
    assert!(
        out.contains("alternatives\n") && out.ends_with("toolchain\n"),
        "{out}"
    );
}

#[test]
fn toolchain_cargo_works_inside() {
    let sandbox = sandbox!();
    let cmd = SandboxCommand::new(sandbox.toolchain().cargo(), ["--version"]);
    let result = run(&sandbox, &cmd, &Limits::test());
    assert!(result.status.success(), "{}", text(&result.stderr));
    assert!(text(&result.stdout).starts_with("cargo "));
    // The proxy in ~/.cargo/bin is not reachable, so `rust-toolchain.toml` has no effect.
    let result = run(
        &sandbox,
        &sh("command -v rustup || echo none"),
        &Limits::test(),
    );
    assert_eq!(text(&result.stdout), "none\n");
}

#[test]
fn cargo_builds_and_tests_a_crate_offline() {
    let sandbox = sandbox!();
    let job = job_dir(256 * MIB);
    fs::create_dir_all(job.path().join("demo/src")).unwrap();
    fs::write(
        job.path().join("demo/Cargo.toml"),
        "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    fs::write(
        job.path().join("demo/src/lib.rs"),
        "pub fn two() -> u32 { 2 }\n#[test]\nfn it_works() { assert_eq!(two(), 2); }\n",
    )
    .unwrap();
    job.hand_over().unwrap();
    let mut cmd = in_job(
        SandboxCommand::new(
            sandbox.toolchain().cargo(),
            ["test", "--offline", "-q", "--lib"],
        ),
        &job,
    );
    cmd.cwd = "/work/demo".into();
    cmd.env
        .push(("CARGO_TARGET_DIR".into(), "/work/target".into()));
    let result = run(&sandbox, &cmd, &Limits::build());
    assert!(result.status.success(), "{}", text(&result.stderr));
    assert!(
        text(&result.stdout).contains("1 passed"),
        "{}",
        text(&result.stdout)
    );
}

#[test]
fn sleeping_hits_the_wall_limit_with_little_cpu() {
    let sandbox = sandbox!();
    let limits = Limits {
        wall: Duration::from_secs(2),
        ..Limits::test()
    };
    let result = run(&sandbox, &SandboxCommand::new("sleep", ["100"]), &limits);
    assert_eq!(result.limit_hit, Some(LimitKind::Wall));
    assert_eq!(result.status, ExitStatusKind::Signaled(9));
    assert!(
        result.wall >= limits.wall && result.wall < Duration::from_secs(4),
        "{result:?}"
    );
    assert!(result.cpu < Duration::from_millis(300), "{result:?}");
}

#[test]
fn busy_loop_burns_cpu_until_killed() {
    let sandbox = sandbox!();
    let limits = Limits {
        wall: Duration::from_secs(2),
        ..Limits::test()
    };
    let result = run(&sandbox, &sh("while :; do :; done"), &limits);
    assert!(
        matches!(result.limit_hit, Some(LimitKind::Wall | LimitKind::Cpu)),
        "{result:?}"
    );
    assert!(result.wall < Duration::from_secs(4), "{result:?}");
    // On an idle machine CPU ≈ wall; the bound leaves room for a heavily shared one.
    assert!(result.cpu >= result.wall / 4, "{result:?}");
}

#[test]
fn cpu_limit_kills_a_busy_loop() {
    let sandbox = sandbox!();
    let limits = Limits {
        wall: Duration::from_secs(60),
        cpu: Duration::from_secs(1),
        ..Limits::test()
    };
    let result = run(&sandbox, &sh("while :; do :; done"), &limits);
    assert_eq!(result.limit_hit, Some(LimitKind::Cpu), "{result:?}");
    assert!(result.cpu >= limits.cpu, "{result:?}");
    assert!(result.cpu < Duration::from_millis(1500), "{result:?}");
}

#[test]
fn huge_output_is_capped_without_blocking() {
    let sandbox = sandbox!();
    let limits = Limits {
        wall: Duration::from_secs(60),
        ..Limits::test()
    };
    let result = run(
        &sandbox,
        &sh("head -c 2000000000 /dev/zero; echo done >&2"),
        &limits,
    );
    assert_eq!(result.status, ExitStatusKind::Exited(0), "{result:?}");
    assert_eq!(result.limit_hit, None);
    assert_eq!(result.stdout.len(), 64 * 1024);
    assert!(result.stdout_truncated);
    assert_eq!(text(&result.stderr), "done\n");
    assert!(!result.stderr_truncated);
}

#[test]
fn filling_tmp_hits_its_size() {
    let sandbox = sandbox!();
    let limits = Limits {
        tmp_bytes: 8 * MIB,
        ..Limits::test()
    };
    let result = run(
        &sandbox,
        &sh("dd if=/dev/zero of=/tmp/fill bs=1M count=64"),
        &limits,
    );
    assert!(!result.status.success());
    assert!(
        text(&result.stderr).contains("No space left on device"),
        "{}",
        text(&result.stderr)
    );
}

#[test]
fn filling_the_job_dir_hits_its_cap() {
    let sandbox = sandbox!();
    let job = job_dir(8 * MIB);
    if !common::require(
        nix::unistd::geteuid().is_root(),
        "root (job folder size caps)",
    ) {
        return;
    }
    assert!(job.is_size_capped());
    let cmd = in_job(sh("dd if=/dev/zero of=/work/fill bs=1M count=64"), &job);
    let result = run(&sandbox, &cmd, &Limits::test());
    assert!(
        text(&result.stderr).contains("No space left on device"),
        "{}",
        text(&result.stderr)
    );
    let size = fs::metadata(job.path().join("fill")).unwrap().len();
    assert!(size <= 8 * MIB, "{size} bytes");
    let path: PathBuf = job.path().to_owned();
    drop(job);
    assert!(!path.exists(), "job dir removed on drop");
}

/// Background processes die with the run, whatever kills them.
fn assert_no_survivors(mode: CgroupMode) {
    let sandbox = sandbox!(mode);
    let token = unique_token();
    let script = format!(
        "sleep 1000.{token} & sleep 1000.{token} < /dev/null > /dev/null 2>&1 & echo started"
    );
    let result = run(&sandbox, &sh(&script), &Limits::test());
    assert_eq!(result.status, ExitStatusKind::Exited(0), "{result:?}");
    assert_eq!(text(&result.stdout), "started\n");
    assert!(result.wall < Duration::from_secs(5), "{result:?}");
    assert_eq!(host_processes_with(&token), Vec::<String>::new());
}

#[test]
fn background_processes_are_gone_after_run() {
    assert_no_survivors(CgroupMode::Auto);
}

#[test]
fn background_processes_are_gone_with_v1_freezer() {
    assert_no_survivors(CgroupMode::V1Only);
}

#[test]
fn background_processes_are_gone_without_cgroups() {
    assert_no_survivors(CgroupMode::Disabled);
}

/// A fork storm (forks failing at the task limit, exiting shells freeing slots for new forks)
/// until the wall limit: the kill must still catch every process.
fn assert_fork_storm_is_killed(mode: CgroupMode) {
    let sandbox = sandbox!(mode);
    let limits = Limits {
        wall: Duration::from_secs(2),
        tasks: tasks_limit(mode),
        ..Limits::test()
    };
    let result = run(&sandbox, &sh("f() { f & f; }; f"), &limits);
    assert!(result.wall < Duration::from_secs(5), "{result:?}");
    if by_cgroup(mode, result.enforcement.tasks) {
        assert_eq!(result.limit_hit, Some(LimitKind::Tasks), "{result:?}");
    }
}

#[test]
fn fork_storm_is_killed() {
    assert_fork_storm_is_killed(CgroupMode::Auto);
}

#[test]
fn fork_storm_is_killed_with_v1_freezer() {
    assert_fork_storm_is_killed(CgroupMode::V1Only);
}

#[test]
fn fork_storm_is_killed_without_cgroups() {
    assert_fork_storm_is_killed(CgroupMode::Disabled);
}

#[test]
fn v1_only_mode_enforces_limits() {
    let sandbox = sandbox!(CgroupMode::V1Only);
    let capabilities = sandbox.probe();
    if !common::require(capabilities.cgroup_v1, "a usable cgroup v1 hierarchy") {
        return;
    }
    assert!(!capabilities.cgroup_v2);
    let limits = Limits {
        wall: Duration::from_secs(2),
        ..Limits::test()
    };
    let result = run(&sandbox, &sh("sleep 1000 & while :; do :; done"), &limits);
    assert_eq!(result.enforcement.kill, Mechanism::CgroupV1);
    assert!(
        matches!(result.limit_hit, Some(LimitKind::Wall | LimitKind::Cpu)),
        "{result:?}"
    );
    assert!(result.cpu >= result.wall / 4, "{result:?}");
}

#[test]
fn rlimits_only_mode_still_limits() {
    let sandbox = sandbox!(CgroupMode::Disabled);
    let capabilities = sandbox.probe();
    assert!(capabilities.rlimits_only);
    assert_eq!(capabilities.enforcement.memory, Mechanism::Rlimit);
    assert_eq!(capabilities.enforcement.kill, Mechanism::PidNamespace);
    let limits = Limits {
        wall: Duration::from_secs(2),
        ..Limits::test()
    };
    let cmd = SandboxCommand::new("/bin/bash", ["-c", "ulimit -v; ulimit -u; sleep 100"]);
    let result = run(&sandbox, &cmd, &limits);
    assert_eq!(result.limit_hit, Some(LimitKind::Wall));
    assert_eq!(
        text(&result.stdout),
        format!("{}\n{}\n", limits.memory_bytes / 1024, limits.tasks)
    );

    let limits = Limits {
        tasks: tasks_limit(CgroupMode::Disabled),
        ..Limits::test()
    };
    let result = run(&sandbox, &sh("while :; do sleep 1000 & done"), &limits);
    assert!(text(&result.stderr).contains("fork"), "{result:?}");
    assert!(result.wall < limits.wall, "{result:?}");

    let cmd = SandboxCommand::new("/bin/bash", ["-c", "x=y; while :; do x=$x$x; done"]);
    let result = run(&sandbox, &cmd, &Limits::test());
    assert!(
        text(&result.stderr).contains("cannot allocate"),
        "{result:?}"
    );
    assert!(result.wall < Limits::test().wall, "{result:?}");
}

#[test]
fn exit_codes_and_signals_are_reported() {
    let sandbox = sandbox!();
    let cases = [
        ("exit 3", ExitStatusKind::Exited(3)),
        ("kill -SEGV $$", ExitStatusKind::Signaled(11)),
        ("kill -KILL $$", ExitStatusKind::Signaled(9)),
        ("true", ExitStatusKind::Exited(0)),
    ];
    for (script, expected) in cases {
        let result = run(&sandbox, &sh(script), &Limits::test());
        assert_eq!(result.status, expected, "{script}");
        assert_eq!(result.limit_hit, None, "{script}");
    }
}

#[test]
fn stdin_is_fed_and_closed() {
    let sandbox = sandbox!();
    let mut cmd = SandboxCommand::new("cat", Vec::<String>::new());
    cmd.stdin = Some(b"hello sandbox".to_vec());
    let result = run(&sandbox, &cmd, &Limits::test());
    assert_eq!(text(&result.stdout), "hello sandbox");
}

#[test]
fn setup_failures_are_errors_not_results() {
    let sandbox = sandbox!();
    let mut cmd = sh("true");
    cmd.cwd = "/does/not/exist".into();
    assert!(matches!(
        sandbox.run(&cmd, &Limits::test()),
        Err(SandboxError::Setup { .. })
    ));
    let mut cmd = sh("true");
    cmd.ro_mounts.push(("/does/not/exist".into(), "/x".into()));
    assert!(matches!(
        sandbox.run(&cmd, &Limits::test()),
        Err(SandboxError::InvalidCommand(_))
    ));
    let mut cmd = sh("true");
    cmd.rw_mounts
        .push((std::env::temp_dir(), "/work/../etc".into()));
    assert!(matches!(
        sandbox.run(&cmd, &Limits::test()),
        Err(SandboxError::InvalidCommand(_))
    ));
    assert!(sandbox.leftover_cgroups().is_empty());
}

#[test]
fn toolchain_prepare_is_idempotent() {
    let first = toolchain();
    let marker = first.host_dir().join(".grader-toolchain-version");
    let written = fs::metadata(&marker).unwrap().modified().unwrap();
    let again = Toolchain::prepare(first.host_dir()).unwrap();
    assert_eq!(first, again);
    let unchanged = fs::metadata(&marker).unwrap().modified().unwrap();
    assert_eq!(written, unchanged, "an up-to-date copy is not rebuilt");
    assert!(first.version().contains("rustc"));
    for part in ["bin/cargo", "bin/rustc", "lib"] {
        assert!(first.host_dir().join(part).exists(), "{part}");
    }
}

// ---------------------------------------------------------------------------------------------
// Failing closed

#[test]
fn a_missing_prerequisite_fails_under_ci_and_skips_visibly_elsewhere() {
    const NAME: &str = "a_missing_prerequisite_fails_under_ci_and_skips_visibly_elsewhere";
    if common::in_child() {
        if common::require(false, "a prerequisite no host has") {
            panic!("a missing prerequisite was reported present");
        }
        return;
    }
    let ci = common::rerun_alone(NAME, &[("CI", "true")], &[]);
    let output = format!("{}{}", text(&ci.stdout), text(&ci.stderr));
    assert!(!ci.status.success(), "passed under CI:\n{output}");
    assert!(output.contains("prerequisite missing under CI"), "{output}");

    let local = common::rerun_alone(NAME, &[], &["CI"]);
    common::assert_child_passed(&local);
    let stderr = text(&local.stderr);
    assert!(
        stderr.contains(&format!("SKIPPED {NAME}: prerequisite missing")),
        "{stderr}"
    );
}

/// Where bubblewrap cannot start as the unprivileged user, the sandbox refuses to start, with an
/// error naming the kernel settings and the opt-in, unless the operator opted in; the identity in
/// use is part of the enforcement report. The unprivileged set-up is made to fail for real: with
/// `RLIMIT_NPROC` at 0 (in a child process), uid 65534 cannot start bwrap, while root-owned
/// processes are exempt, as a root-mapped sandbox's are.
#[test]
fn without_unprivileged_namespaces_the_sandbox_fails_closed_unless_opted_in() {
    const NAME: &str = "without_unprivileged_namespaces_the_sandbox_fails_closed_unless_opted_in";
    if !common::require(bwrap_installed(), "bubblewrap (bwrap) installed")
        || !common::require(nix::unistd::geteuid().is_root(), "root (identities)")
    {
        return;
    }
    if !common::in_child() {
        common::assert_child_passed(&common::rerun_alone(NAME, &[], &[]));
        return;
    }
    let toolchain = toolchain();
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NPROC, 0, 0).unwrap();

    let error = Sandbox::new(toolchain.clone()).expect_err("fell back to a weaker identity");
    assert!(
        matches!(error, SandboxError::UnprivilegedUnavailable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    for needle in [
        "cannot run as the unprivileged user (uid 65534)",
        "kernel.apparmor_restrict_unprivileged_userns",
        "user.max_user_namespaces",
        "--allow-root-mapped-sandbox",
    ] {
        assert!(
            message.contains(needle),
            "`{needle}` missing from: {message}"
        );
    }

    let options = SandboxOptions {
        allow_root_mapped: true,
        ..SandboxOptions::default()
    };
    let sandbox = Sandbox::with_options(toolchain, options).expect("the opted-in sandbox");
    let capabilities = sandbox.probe();
    assert_eq!(capabilities.identity, Identity::RootMapped);
    assert!(!capabilities.unprivileged_uid);
    assert!(
        capabilities
            .enforcement
            .to_string()
            .starts_with("identity=root-mapped "),
        "{}",
        capabilities.enforcement
    );
    let result = run(&sandbox, &sh("id -u"), &Limits::test());
    assert_eq!(text(&result.stdout), "65534\n");
    assert_eq!(result.enforcement.identity, Identity::RootMapped);
}

#[test]
fn the_enforcement_report_names_the_identity() {
    let sandbox = sandbox!();
    let expected = if nix::unistd::geteuid().is_root() {
        "identity=unprivileged "
    } else {
        "identity=invoker "
    };
    let enforcement = sandbox.probe().enforcement.to_string();
    assert!(enforcement.starts_with(expected), "{enforcement}");
}

/// A crate folder that takes over any rustup proxy started in it: its `rust-toolchain.toml` names
/// a "toolchain" whose `rustc` and `cargo` leave a mark; also given as an inherited
/// `RUSTUP_TOOLCHAIN` (as a rustup proxy sets it for the programs it starts). Returns the folder and
/// the mark's path.
fn hijacking_crate(root: &Path) -> (PathBuf, PathBuf) {
    let crate_dir = root.join("student");
    let bin = crate_dir.join("evil-toolchain/bin");
    fs::create_dir_all(&bin).unwrap();
    let mark = root.join("hijacked");
    for tool in ["rustc", "cargo"] {
        let script = format!(
            "#!/bin/sh\necho {tool} >> {}\necho {}\n",
            mark.display(),
            crate_dir.join("evil-toolchain").display()
        );
        fs::write(bin.join(tool), script).unwrap();
        fs::set_permissions(
            bin.join(tool),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    fs::write(
        crate_dir.join("rust-toolchain.toml"),
        format!(
            "[toolchain]\npath = \"{}\"\n",
            crate_dir.join("evil-toolchain").display()
        ),
    )
    .unwrap();
    (crate_dir, mark)
}

/// `grader check` run inside a student's crate: the host-side `rustc --print sysroot` runs from the
/// data folder, so the crate's `rust-toolchain.toml` (and a `RUSTUP_TOOLCHAIN` a proxy derived from
/// such a file) cannot choose the toolchain, that is, run the student's program as root.
#[test]
fn host_tools_ignore_the_folder_the_grader_is_started_in() {
    const NAME: &str = "host_tools_ignore_the_folder_the_grader_is_started_in";
    if !common::in_child() {
        let toolchain = toolchain();
        let root = tempfile::tempdir().unwrap();
        let (crate_dir, _) = hijacking_crate(root.path());
        let evil = crate_dir.join("evil-toolchain");
        let evil = evil.to_str().unwrap();
        common::assert_child_passed(&common::rerun_alone(
            NAME,
            &[
                ("GRADER_TEST_ROOT", root.path().to_str().unwrap()),
                (
                    "GRADER_TEST_TOOLCHAIN",
                    toolchain.host_dir().to_str().unwrap(),
                ),
                ("RUSTUP_TOOLCHAIN", evil),
                ("RUSTUP_TOOLCHAIN_SOURCE", "toolchain-file"),
                ("RUSTC", &format!("{evil}/bin/rustc")),
            ],
            &[],
        ));
        return;
    }
    let root = PathBuf::from(std::env::var_os("GRADER_TEST_ROOT").unwrap());
    let dest = PathBuf::from(std::env::var_os("GRADER_TEST_TOOLCHAIN").unwrap());
    let (crate_dir, mark) = (root.join("student"), root.join("hijacked"));
    std::env::set_current_dir(&crate_dir).unwrap();
    let prepared = Toolchain::prepare(&dest);
    assert!(
        !mark.exists(),
        "the student's toolchain ran: {:?}",
        fs::read_to_string(&mark)
    );
    let prepared = prepared.expect("the real toolchain");
    assert!(
        prepared.version().starts_with("rustc 1."),
        "{}",
        prepared.version()
    );
}

/// `cargo vendor` (the crates every job builds with) runs the toolchain copy's own cargo from the
/// data folder: started by a grader run directly (no `RUSTUP_TOOLCHAIN` inherited from a proxy) in
/// a student's crate, the rustup proxy would have run the cargo its `rust-toolchain.toml` names,
/// as root. Offline (from cargo's download cache), so that the test needs no network.
#[test]
fn vendoring_ignores_the_folder_the_grader_is_started_in() {
    const NAME: &str = "vendoring_ignores_the_folder_the_grader_is_started_in";
    if !common::in_child() {
        let toolchain = toolchain();
        let root = tempfile::tempdir().unwrap();
        hijacking_crate(root.path());
        let data = root.path().join("data");
        fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::symlink(toolchain.host_dir(), data.join("toolchain")).unwrap();
        common::assert_child_passed(&common::rerun_alone(
            NAME,
            &[
                ("GRADER_TEST_ROOT", root.path().to_str().unwrap()),
                ("CARGO_NET_OFFLINE", "true"),
            ],
            &["RUSTUP_TOOLCHAIN", "RUSTUP_TOOLCHAIN_SOURCE"],
        ));
        return;
    }
    let root = PathBuf::from(std::env::var_os("GRADER_TEST_ROOT").unwrap());
    std::env::set_current_dir(root.join("student")).unwrap();
    let data = grader::engine::cache::DataDir::open(&root.join("data")).unwrap();
    let vendored = grader::engine::cache::vendor(&data, "test-key");
    assert!(
        !root.join("hijacked").exists(),
        "the student's toolchain ran: {vendored:?}"
    );
    vendored.expect("vendoring from crates.io's cache");
    let crates: Vec<String> = fs::read_dir(data.vendor())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        crates.iter().any(|name| name.starts_with("futures")),
        "{crates:?}"
    );
}

/// What an armed sandbox is for: the same run as [`Sandbox::run`]'s, its setup done beforehand.
fn armed_run(sandbox: &Sandbox, cmd: &SandboxCommand, limits: &Limits) -> RunResult {
    let armed = sandbox
        .arm(cmd, limits)
        .expect("arming")
        .expect("this sandbox arms (cgroups account CPU)");
    let result = armed.run(cmd, limits).expect("armed run");
    assert!(sandbox.leftover_cgroups().is_empty());
    result
}

#[test]
fn an_armed_sandbox_runs_what_a_new_one_runs() {
    let sandbox = sandbox!();
    let job = job_dir(16 * MIB);
    fs::write(job.path().join("input"), "from the job").unwrap();
    // Arguments with spaces, an empty one and a backslash; the environment, the folder, the
    // mounts, the uid and stdin (empty, as for every test process).
    let script = r#"printf '[%s]' "$@"; echo; id -u; echo "$HOME $PWD"; cat input; cat; echo end"#;
    let mut cmd = in_job(sh(script), &job);
    cmd.args
        .extend(["x", "a b", "", r"back\slash"].map(String::from));
    let fresh = run(&sandbox, &cmd, &Limits::test());
    let armed = armed_run(&sandbox, &cmd, &Limits::test());
    assert_eq!(
        text(&armed.stdout),
        "[a b][][back\\slash]\n65534\n/tmp /work\nfrom the jobend\n"
    );
    assert_eq!(text(&armed.stdout), text(&fresh.stdout));
    assert_eq!(armed.status, ExitStatusKind::Exited(0));
    for (script, expected) in [
        ("exit 3", ExitStatusKind::Exited(3)),
        ("kill -SEGV $$", ExitStatusKind::Signaled(11)),
    ] {
        let result = armed_run(&sandbox, &sh(script), &Limits::test());
        assert_eq!(result.status, expected, "{script}");
    }
}

#[test]
fn an_armed_sandbox_counts_its_limits_from_its_run() {
    let sandbox = sandbox!();
    let limits = Limits {
        wall: Duration::from_secs(1),
        ..Limits::test()
    };
    let cmd = sh("sleep 0.3");
    let armed = sandbox.arm(&cmd, &limits).unwrap().unwrap();
    // The scenario, not a synchronisation: armed longer ago than its wall limit.
    std::thread::sleep(Duration::from_millis(1500));
    let result = armed.run(&cmd, &limits).unwrap();
    assert_eq!(result.status, ExitStatusKind::Exited(0), "{result:?}");
    assert_eq!(result.limit_hit, None);
    assert!(result.wall < Duration::from_secs(1), "{result:?}");
    // And they hold: a hang is still killed at its wall limit.
    let hang = armed_run(&sandbox, &sh("sleep 30"), &limits);
    assert_eq!(hang.limit_hit, Some(LimitKind::Wall), "{hang:?}");
}

#[test]
fn an_armed_sandbox_for_another_command_or_program_changes_nothing() {
    let sandbox = sandbox!();
    let job = job_dir(16 * MIB);
    fs::write(job.path().join("input"), "mounted").unwrap();
    let armed = sandbox.arm(&sh("true"), &Limits::test()).unwrap().unwrap();
    // Armed without the job's mount: the run still has it (a new sandbox runs it).
    let result = armed
        .run(&in_job(sh("cat input"), &job), &Limits::test())
        .unwrap();
    assert_eq!(text(&result.stdout), "mounted");
    // A program that does not exist is the sandbox's setup error, as without arming, not a
    // program that failed.
    let armed = sandbox.arm(&sh("true"), &Limits::test()).unwrap().unwrap();
    let missing = SandboxCommand::new("/usr/bin/no-such-program", Vec::<String>::new());
    assert!(matches!(
        armed.run(&missing, &Limits::test()),
        Err(SandboxError::Setup { .. })
    ));
    // More CPU time than it was armed for: run anew, under the limit asked for.
    let limits = Limits {
        cpu: Duration::from_secs(1),
        ..Limits::test()
    };
    let armed = sandbox.arm(&sh("true"), &limits).unwrap().unwrap();
    let result = armed.run(&sh("true"), &Limits::test()).unwrap();
    assert!(result.status.success());
    assert!(sandbox.leftover_cgroups().is_empty());
}

#[test]
fn an_armed_sandbox_that_cannot_start_is_a_setup_error() {
    let sandbox = sandbox!();
    let mut cmd = sh("true");
    cmd.cwd = "/does/not/exist".into();
    let armed = sandbox.arm(&cmd, &Limits::test()).unwrap().unwrap();
    assert!(matches!(
        armed.run(&cmd, &Limits::test()),
        Err(SandboxError::Setup { .. })
    ));
    assert!(sandbox.leftover_cgroups().is_empty());
}

#[test]
fn an_unused_armed_sandbox_leaves_nothing_behind() {
    let sandbox = sandbox!();
    let token = unique_token();
    let mut cmd = sh("true");
    // Marks the armed sandboxes' command lines (bwrap's `--setenv`).
    cmd.env.push(("ARMED_TOKEN".into(), token.clone()));
    let armed: Vec<_> = (0..4)
        .map(|_| sandbox.arm(&cmd, &Limits::test()).unwrap().unwrap())
        .collect();
    assert!(!sandbox.leftover_cgroups().is_empty());
    assert!(!host_processes_with(&token).is_empty());
    drop(armed);
    assert!(sandbox.leftover_cgroups().is_empty());
    assert_eq!(host_processes_with(&token), Vec::<String>::new());
}
