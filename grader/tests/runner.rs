//! The runner's lanes: test processes past the base start only while the host's cores are idle.
//! Real sandboxed processes (`sleep`, which waits without using the CPU); the host's CPU counters
//! are replaced by counters that say "idle" or "saturated", so the outcome does not depend on what
//! else the machine is doing.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use grader::engine::report::Outcome;
use grader::engine::runner::{self, Check, CpuCounters, Kind, Lanes, Standby};
use grader::engine::sandbox::{Limits, Sandbox, SandboxCommand, Toolchain};

/// Processes to run, how long each sleeps, and the lanes that always run.
const CHECKS: usize = 8;
const SLEEP: Duration = Duration::from_millis(300);
const BASE: usize = 2;

fn sandbox() -> Option<Sandbox> {
    let bwrap = ["/usr/bin/bwrap", "/bin/bwrap"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !common::require(bwrap, "bubblewrap (bwrap) installed") {
        return None;
    }
    let dest = std::env::temp_dir().join("runtime-grader-sandbox-test-toolchain");
    let toolchain = Toolchain::prepare(&dest).expect("prepare the toolchain copy");
    Some(Sandbox::new(toolchain).expect("sandbox setup"))
}

/// Counters that advance by 100 ticks of two cores per read, all of them idle or none.
fn counters(ticks: &AtomicU64, idle: bool) -> Option<CpuCounters> {
    let total = ticks.fetch_add(100, Ordering::SeqCst) + 100;
    Some(CpuCounters {
        idle: if idle { total } else { 0 },
        total,
        cores: 2,
    })
}

fn idle_host() -> Option<CpuCounters> {
    static TICKS: AtomicU64 = AtomicU64::new(0);
    counters(&TICKS, true)
}

fn saturated_host() -> Option<CpuCounters> {
    static TICKS: AtomicU64 = AtomicU64::new(0);
    counters(&TICKS, false)
}

/// Runs [`CHECKS`] sleeps with [`BASE`] lanes and up to one per check, marked as checks that wait
/// or not, returning how long it took.
fn run_sleeps(sandbox: &Sandbox, counters: fn() -> Option<CpuCounters>, waits: bool) -> Duration {
    run_sleeps_with(sandbox, &Standby::default(), counters, waits)
}

/// [`run_sleeps`], taking armed sandboxes from `standby` where it has them.
fn run_sleeps_with(
    sandbox: &Sandbox,
    standby: &Standby<'_>,
    counters: fn() -> Option<CpuCounters>,
    waits: bool,
) -> Duration {
    let checks: Vec<Check> = (0..CHECKS)
        .map(|i| Check {
            name: format!("sleep-{i}"),
            program: "/bin/sleep".into(),
            args: vec![format!("{}", SLEEP.as_secs_f64())],
            timeout: Duration::from_secs(10),
            kind: Kind::Binary,
            waits,
        })
        .collect();
    let lanes = Lanes {
        counters,
        ..Lanes::new(BASE, CHECKS)
    };
    let template = SandboxCommand::new("", Vec::<String>::new());
    let started = Instant::now();
    let results = runner::run_all(
        sandbox,
        standby,
        &template,
        &Limits::test(),
        &checks,
        lanes,
        &|_, _, _| {},
    )
    .expect("run the checks");
    let took = started.elapsed();
    assert!(
        results.iter().all(|r| r.outcome == Outcome::Passed),
        "{results:#?}"
    );
    took
}

#[test]
fn lanes_past_the_base_start_only_while_the_cores_are_idle() {
    let Some(sandbox) = sandbox() else { return };
    // Saturated: two at a time, so four rounds of sleeps at least.
    let serial = SLEEP * (CHECKS / BASE) as u32;
    let saturated = run_sleeps(&sandbox, saturated_host, false);
    assert!(
        saturated >= serial,
        "with busy cores only {BASE} processes may run at once, yet {CHECKS} sleeps of {SLEEP:?} \
         took {saturated:?}"
    );
    // Idle: the other lanes join within a few windows, and the sleeps overlap.
    let idle = run_sleeps(&sandbox, idle_host, false);
    assert!(
        idle < serial,
        "with idle cores more than {BASE} processes should run at once, yet {CHECKS} sleeps of \
         {SLEEP:?} took {idle:?}"
    );
}

#[test]
fn proc_stat_counts_idle_and_iowait_of_every_core() {
    let text = "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 3 0\n\
                cpu1 50 3 25 400 20 2 1 0 4 0\nintr 12345\n";
    let earlier = runner::parse_proc_stat(text).expect("parses");
    assert_eq!(
        earlier,
        CpuCounters {
            idle: 840,
            total: 1000,
            cores: 2
        }
    );
    // 100 more ticks, 60 of them idle: 0.6 of two cores.
    let later = CpuCounters {
        idle: 900,
        total: 1100,
        cores: 2,
    };
    assert!((later.idle_cores_since(&earlier) - 1.2).abs() < 1e-9);
    assert_eq!(runner::parse_proc_stat("intr 1\n"), None);
    // The host's own counters read, and time has passed since boot.
    let host = runner::host_cpu().expect("/proc/stat is readable");
    assert!(host.total > 0 && host.cores > 0, "{host:?}");
}

#[test]
fn checks_expected_to_wait_start_without_waiting_for_idle_cores() {
    let Some(sandbox) = sandbox() else { return };
    // Saturated, yet every sleep known to wait starts at once: the sleeps overlap.
    let serial = SLEEP * (CHECKS / BASE) as u32;
    let waiting = run_sleeps(&sandbox, saturated_host, true);
    assert!(
        waiting < serial,
        "{CHECKS} sleeps of {SLEEP:?} marked as waiting took {waiting:?}, as long as {BASE} at a \
         time would"
    );
}

#[test]
fn armed_sandboxes_serve_the_checks_and_are_armed_only_in_idle_time() {
    let Some(sandbox) = sandbox() else { return };
    let template = SandboxCommand::new("/bin/true", Vec::<String>::new());
    for (counters, idle) in [
        (saturated_host as fn() -> Option<CpuCounters>, false),
        (idle_host, true),
    ] {
        let standby = Standby::default();
        std::thread::scope(|s| {
            let _closing = standby.closing();
            let (standby, sandbox, template) = (&standby, &sandbox, &template);
            s.spawn(move || standby.arm(sandbox, template, &Limits::test(), CHECKS, counters));
            // Idle: the arming thread arms every one (it sees a window of idle time each time).
            let deadline = Instant::now() + Duration::from_secs(30);
            while idle && standby.ready() < CHECKS {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {CHECKS} sandboxes armed on an idle host",
                    standby.ready()
                );
                std::thread::yield_now();
            }
            run_sleeps_with(sandbox, standby, idle_host, true);
            // Busy cores: none was armed, and the checks started their own sandboxes.
            let expected = if idle { CHECKS } else { 0 };
            assert_eq!(standby.taken(), expected, "idle host: {idle}");
            assert_eq!(standby.ready(), 0);
        });
        assert!(
            sandbox.leftover_cgroups().is_empty(),
            "{:?}",
            sandbox.leftover_cgroups()
        );
    }
}
