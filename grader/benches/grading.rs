//! Benchmark: upload -> score with a warm cache for three submissions (the reference, a buggy
//! variant whose tests hang, and the reference with one wrong `Metrics` field type), side by side
//! with the baseline for the reference — plain `cargo test --offline` of the same assembled
//! workspace in a warm target folder, without any sandbox — and beside them the floor of any
//! grader that runs each test in its own process (the bare build, then every test as a plain
//! process without a sandbox); reported separately, the first-ever grading with a cold data folder.
//!
//! Then `grader check`'s pipeline (the engine on the public tests, from the crate's folder, warm)
//! on the reference against `cargo test --lib` of the same crate (the reference with the
//! template's public tests) after `touch src/lib.rs`, with its own warm target (target: at most
//! 1.25).
//!
//! `cargo bench -p grader --bench grading [-- RUNS]` (default 5 runs each). Prints every run, the
//! medians and the ratios grader/baseline (targets: reference at most 3 s and 0.7; check 1.25),
//! and the reference's run phase beside the CPU time its test processes used in their sandboxes
//! (spread over every core, a floor for the run phase).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use grader::cli::solutions;
use grader::engine::assembly::{self, Suite};
use grader::engine::cache::Durations;
use grader::engine::report::Report;
use grader::engine::{Config, Engine, Input, Mode};

/// The buggy variant whose tests hang (its `run` never returns once the work is done).
const HANGING_VARIANT: &str = "buggy/run_never_returns";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A submission as a student uploads it: `02_runtime/src/**` packed as `.tar.gz`.
struct Upload {
    name: &'static str,
    bytes: Vec<u8>,
    check: fn(&Report),
}

fn pack(crate_dir: &Path) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all("02_runtime/src", crate_dir.join("src"))
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// The sources of a known solution (`reference`, `buggy/<name>`), materialised in `dir`.
fn solution(name: &str, dir: &Path) {
    let all = solutions::discover(&repo()).unwrap();
    let s = all.iter().find(|s| s.name == name).unwrap();
    s.materialize(dir).unwrap();
}

/// The files of a crate folder by relative path (what the baseline's workspace is made of).
fn files_of(dir: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap();
            (
                rel.to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

/// A plain cargo workspace of the same job, outside any sandbox, using the same vendored crates.
fn baseline_workspace(dir: &Path, files: &BTreeMap<String, String>, vendor: &Path) {
    assembly::assemble(dir, files, &Suite::Hidden(repo().join("hidden-tests"))).unwrap();
    std::fs::write(
        dir.join(".cargo/config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"vendored\"\n[source.vendored]\ndirectory = \"{}\"\n[net]\noffline = true\n",
            vendor.display()
        ),
    )
    .unwrap();
}

/// The reference as a student's crate with the template's public tests and manifest, building
/// offline from the vendored crates: what `grader check`'s baseline runs `cargo test --lib` in.
fn student_crate(dir: &Path, reference: &Path, vendor: &Path) {
    grader::cli::solutions::copy_sources(&reference.join("src"), &dir.join("src")).unwrap();
    for (path, contents) in assembly::PUBLIC_TESTS {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    std::fs::write(dir.join("Cargo.toml"), assembly::RUNTIME_TOML).unwrap();
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    std::fs::write(
        dir.join(".cargo/config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"vendored\"\n[source.vendored]\ndirectory = \"{}\"\n",
            vendor.display()
        ),
    )
    .unwrap();
}

/// `cargo test --lib` of the student's crate after `touch src/lib.rs` (its target warm).
fn cargo_test_lib(dir: &Path) -> Duration {
    let lib = dir.join("src/lib.rs");
    std::fs::write(&lib, std::fs::read(&lib).unwrap()).unwrap();
    timed_cargo(
        Command::new(env!("CARGO"))
            .args(["test", "--offline", "--lib", "-q"])
            .current_dir(dir),
    )
}

/// Bare `cargo test` of the hidden tests in the assembled workspace `dir`, its target `target`.
fn cargo_test(dir: &Path, target: &Path) -> Duration {
    timed_cargo(
        Command::new(env!("CARGO"))
            .args(["test", "--offline", "--locked", "-q", "-p", "hidden-tests"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(dir),
    )
}

/// The floor of any grader that builds the same workspace and runs each test in its own process,
/// measured without a sandbox: the bare build of what a grading builds (the hidden tests' one
/// binary and the demo) in the warm target folder `target`, then every listed test and the demo as
/// plain processes, `lanes` at once, longest first by the engine's record `durations`. Returns the
/// build's and the run's (with the listing) wall times.
fn floor(dir: &Path, target: &Path, durations: &Durations, lanes: usize) -> (Duration, Duration) {
    let started = Instant::now();
    let out = plain(&mut Command::new(env!("CARGO")))
        .args([
            "build",
            "--offline",
            "--locked",
            "--message-format=json",
            "-q",
        ])
        .args([
            "-p",
            "hidden-tests",
            "--test",
            "all",
            "-p",
            "runtime",
            "--bin",
            "runtime_demo",
        ])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(dir)
        .output()
        .unwrap();
    let build = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let executable = |name: &str| {
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|m| m["target"]["name"] == name && m["executable"].is_string())
            .map(|m| PathBuf::from(m["executable"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("cargo names the executable of `{name}`"))
    };
    let (binary, demo) = (executable("all"), executable("runtime_demo"));
    let started = Instant::now();
    let listing = plain(&mut Command::new(&binary))
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap();
    // Each process as (the rubric's name, the command line); the demo is one of them.
    let mut processes: Vec<(String, Vec<String>)> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(|test| {
            let name = test.rsplit("::").next().unwrap_or(test).to_string();
            let args = ["--exact", test, "-q"].map(str::to_string).to_vec();
            (name, args)
        })
        .collect();
    assert!(processes.len() > 1, "the test binary lists its tests");
    processes.push(("runtime_demo".to_string(), Vec::new()));
    processes.sort_by_key(|(name, _)| {
        std::cmp::Reverse(durations.get(name).map_or(Duration::MAX, |t| t.wall))
    });
    let next = std::sync::Mutex::new(processes.into_iter());
    std::thread::scope(|s| {
        for _ in 0..lanes {
            s.spawn(|| loop {
                let Some((name, args)) = next.lock().unwrap().next() else {
                    break;
                };
                let program = if args.is_empty() { &demo } else { &binary };
                let out = plain(&mut Command::new(program))
                    .args(&args)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{name} fails without the sandbox");
            });
        }
    });
    (build, started.elapsed())
}

/// `command` with the settings the engine gives every test and build
/// ([`grader::engine::job::RUN_SETTINGS`]): `RUST_BACKTRACE=1` in the shell that runs the bench
/// would otherwise make every panicking test symbolize a backtrace in the plain runs only, and
/// `MALLOC_ARENA_MAX` changes what threads cost.
fn plain(command: &mut Command) -> &mut Command {
    command.envs(grader::engine::job::RUN_SETTINGS)
}

/// How long `cargo` took; it must succeed (a failing baseline would measure nothing).
fn timed_cargo(cargo: &mut Command) -> Duration {
    let started = Instant::now();
    let out = plain(cargo).output().unwrap();
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{cargo:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let crates = tempfile::tempdir().unwrap();
    let reference = crates.path().join("reference");
    solution("reference", &reference);
    let hanging = crates.path().join("hanging");
    solution(HANGING_VARIANT, &hanging);
    let mismatch = crates.path().join("mismatch");
    solution("reference", &mismatch);
    let executor = mismatch.join("src/executor.rs");
    let text = std::fs::read_to_string(&executor).unwrap();
    assert!(text.contains("pub polls: u64,"));
    std::fs::write(
        &executor,
        text.replace("pub polls: u64,", "pub polls: u32,"),
    )
    .unwrap();
    let uploads = [
        Upload {
            name: "reference",
            bytes: pack(&reference),
            check: |r| assert_eq!(r.score, 100, "the reference must score 100"),
        },
        Upload {
            name: "hanging variant",
            bytes: pack(&hanging),
            check: |r| assert!(r.score < 100, "{HANGING_VARIANT} must lose points"),
        },
        Upload {
            name: "one wrong signature",
            bytes: pack(&mismatch),
            check: |r| {
                assert_eq!(r.categories["metrics"].score, 0);
                assert_eq!(r.score, 100 - r.categories["metrics"].max_score);
            },
        },
    ];
    let grade = |engine: &Engine, upload: &Upload| {
        let started = Instant::now();
        let report = engine
            .grade(
                Input::Upload {
                    file_name: "02_runtime.tar.gz",
                    bytes: &upload.bytes,
                },
                Mode::Hidden,
                &|_| {},
            )
            .unwrap();
        let took = started.elapsed();
        (upload.check)(&report);
        (took, report)
    };

    // Cold: a fresh data folder (toolchain copy, vendoring, warm build), then the first grading.
    let cold_dir = tempfile::Builder::new()
        .prefix("grader-bench-cold")
        .tempdir_in("/var/tmp")
        .unwrap();
    let cold_started = Instant::now();
    let engine = Engine::new(Config::new(
        cold_dir.path().to_path_buf(),
        repo().join("hidden-tests"),
    ))
    .unwrap();
    let setup = cold_started.elapsed();
    grade(&engine, &uploads[0]);
    let cold = cold_started.elapsed();
    println!(
        "cold: setup {} + first grading {} = {}",
        secs(setup),
        secs(cold - setup),
        secs(cold)
    );

    // Baseline preparation: a warm target folder built by plain cargo.
    let base = tempfile::tempdir().unwrap();
    let ws = base.path().join("ws");
    let files = files_of(&reference);
    let vendor = cold_dir.path().join("vendor");
    baseline_workspace(&ws, &files, &vendor);
    let warm = base.path().join("warm-target");
    cargo_test(&ws, &warm);

    let mut graded: Vec<Vec<Duration>> = vec![Vec::new(); uploads.len()];
    let mut plain = Vec::new();
    // The floor's build and run, and its lanes: at most as many test processes at once as the
    // engine ever runs (eight per core).
    let mut floors: Vec<(Duration, Duration)> = Vec::new();
    let lanes = 8 * std::thread::available_parallelism().map_or(1, |n| n.get());
    // The reference's run phase and the CPU time its test processes used inside their sandboxes.
    let mut reference_runs: Vec<(Duration, Duration)> = Vec::new();
    print!("{:>4}", "run");
    for u in &uploads {
        print!(" {:>20}", u.name);
    }
    println!(
        " {:>20} {:>20}",
        "baseline (reference)", "floor (build+run)"
    );
    for i in 0..runs {
        print!("{:>4}", i + 1);
        for (u, times) in uploads.iter().zip(&mut graded) {
            let (took, report) = grade(&engine, u);
            times.push(took);
            let t = &report.timings;
            if u.name == uploads[0].name {
                let cpu: u64 = report.tests.iter().map(|t| t.cpu_ms).sum();
                reference_runs.push((Duration::from_millis(t.run_ms), Duration::from_millis(cpu)));
            }
            print!(
                " {:>20}",
                format!(
                    "{} ({:.1}+{:.1})",
                    secs(took),
                    t.build_ms as f64 / 1e3,
                    t.run_ms as f64 / 1e3
                )
            );
        }
        // The baseline and the floor each start from a copy of the warm folder, as each grading
        // does, with the student's sources written anew (as each job's are).
        let target = base.path().join(format!("target-{i}"));
        let fresh = || {
            std::fs::remove_dir_all(&target).ok();
            grader::engine::cache::copy_tree(&warm, &target).unwrap();
            std::fs::remove_dir_all(ws.join("runtime/src")).ok();
            baseline_workspace(&ws, &files, &vendor);
        };
        fresh();
        plain.push(cargo_test(&ws, &target));
        fresh();
        let durations = Durations::load(&cold_dir.path().join("test-durations.tsv"));
        floors.push(floor(&ws, &target, &durations, lanes));
        std::fs::remove_dir_all(&target).unwrap();
        let (b, r) = floors[i];
        println!(
            " {:>20} {:>20}",
            secs(plain[i]),
            format!(
                "{} ({:.1}+{:.1})",
                secs(b + r),
                b.as_secs_f64(),
                r.as_secs_f64()
            )
        );
    }
    let p = median(plain);
    for (u, times) in uploads.iter().zip(graded) {
        let g = median(times);
        println!(
            "median {:<20} {} = {:.2} x baseline",
            u.name,
            secs(g),
            g.as_secs_f64() / p.as_secs_f64()
        );
    }
    println!(
        "median baseline (bare warm cargo test of the reference's workspace) {}; targets: reference <= 3 s and <= 0.7 x baseline",
        secs(p)
    );
    let floor_build = median(floors.iter().map(|f| f.0).collect());
    let floor_run = median(floors.iter().map(|f| f.1).collect());
    let floor_total = median(floors.iter().map(|f| f.0 + f.1).collect());
    println!(
        "median floor (bare build {} + every test as a plain process, {lanes} at once, {}) {} = {:.2} x baseline: \
         no grader that builds this workspace and runs each test in its own process gets below it",
        secs(floor_build),
        secs(floor_run),
        secs(floor_total),
        floor_total.as_secs_f64() / p.as_secs_f64()
    );
    // Whether the reference's run phase is bounded by the CPU: its processes' own CPU time
    // (without what the grader spends on them outside their sandboxes) spread over every core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = median(reference_runs.iter().map(|r| r.0).collect());
    let cpu = median(reference_runs.iter().map(|r| r.1).collect());
    println!(
        "reference's run phase: median {} of wall time; its test processes used {} of CPU inside their sandboxes, at least {} on {cores} cores",
        secs(run),
        secs(cpu),
        secs(cpu / cores as u32)
    );

    // `grader check`: a public-only engine (a data folder of its own, sharing the toolchain and
    // vendored crates) on the reference's folder, against `cargo test --lib` of the same crate.
    let check_dir = tempfile::Builder::new()
        .prefix("grader-bench-check")
        .tempdir_in("/var/tmp")
        .unwrap();
    for part in ["toolchain", "vendor"] {
        std::os::unix::fs::symlink(cold_dir.path().join(part), check_dir.path().join(part))
            .unwrap();
    }
    let checker = Engine::new(Config::public_only(check_dir.path().to_path_buf())).unwrap();
    let check = |engine: &Engine| {
        let started = Instant::now();
        let report = engine
            .grade(Input::Path(&reference), Mode::Public, &|_| {})
            .unwrap();
        assert_eq!(report.score, report.max_score, "the reference passes");
        (started.elapsed(), report.timings)
    };
    let student = base.path().join("student");
    student_crate(&student, &reference, &vendor);
    // Warm: the check's kept target folder and the crate's own target.
    check(&checker);
    cargo_test_lib(&student);
    let (mut checks, mut libs) = (Vec::new(), Vec::new());
    println!(
        "{:>4} {:>20} {:>20}",
        "run", "grader check", "cargo test --lib"
    );
    for i in 0..runs {
        let (took, t) = check(&checker);
        checks.push(took);
        libs.push(cargo_test_lib(&student));
        println!(
            "{:>4} {:>20} {:>20}",
            i + 1,
            format!(
                "{} ({:.1}+{:.1})",
                secs(took),
                t.build_ms as f64 / 1e3,
                t.run_ms as f64 / 1e3
            ),
            secs(libs[i])
        );
    }
    let (c, l) = (median(checks), median(libs));
    println!(
        "median grader check {} = {:.2} x cargo test --lib {} (target <= 1.25)",
        secs(c),
        c.as_secs_f64() / l.as_secs_f64(),
        secs(l)
    );
}
