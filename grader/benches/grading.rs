//! Benchmark: grading the reference solution with a warm cache, side by side with the baseline — plain
//! `cargo test --offline` of the same assembled workspace in a warm target folder, without any sandbox —
//! and, reported separately, the first-ever grading with a cold data folder.
//!
//! `cargo bench -p grader --bench grading [-- RUNS]` (default 5 runs each). Prints every run, the medians
//! and the ratio grader/baseline (target: at most 1.25).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use grader::engine::assembly::{self, Suite};
use grader::engine::{Config, Engine, Input, Mode};

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

/// A plain cargo workspace of the same job, outside any sandbox, using the same vendored crates.
fn baseline_workspace(
    dir: &Path,
    files: &std::collections::BTreeMap<String, String>,
    vendor: &Path,
) {
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

fn cargo_test(dir: &Path, target: &Path) -> Duration {
    let started = Instant::now();
    let out = Command::new(env!("CARGO"))
        .args(["test", "--offline", "--locked", "-q", "-p", "hidden-tests"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(dir)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "baseline failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    elapsed
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let src = tempfile::tempdir().unwrap();
    grader::cli::solutions::copy_sources(
        &repo().join("solutions/reference/src"),
        &src.path().join("src"),
    )
    .unwrap();
    let files: std::collections::BTreeMap<String, String> = walkdir::WalkDir::new(src.path())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(src.path())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();

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
    let first = engine
        .grade(Input::Path(src.path()), Mode::Hidden, &|_| {})
        .unwrap();
    let cold = cold_started.elapsed();
    assert_eq!(first.score, 100, "the reference must score 100");
    println!(
        "cold: setup {} + first grading {} = {}",
        secs(setup),
        secs(cold - setup),
        secs(cold)
    );

    // Baseline preparation: a warm target folder built by plain cargo.
    let base = tempfile::tempdir().unwrap();
    let ws = base.path().join("ws");
    baseline_workspace(&ws, &files, &cold_dir.path().join("vendor"));
    let warm = base.path().join("warm-target");
    cargo_test(&ws, &warm);

    let mut graded = Vec::new();
    let mut plain = Vec::new();
    println!("{:>4} {:>10} {:>10}", "run", "grader", "baseline");
    for i in 0..runs {
        let started = Instant::now();
        let report = engine
            .grade(Input::Path(src.path()), Mode::Hidden, &|_| {})
            .unwrap();
        graded.push(started.elapsed());
        assert_eq!(report.score, 100);
        // Each baseline run starts from a copy of the warm folder, as each grading does.
        let target = base.path().join(format!("target-{i}"));
        grader::engine::cache::copy_tree(&warm, &target).unwrap();
        std::fs::remove_dir_all(ws.join("runtime/src")).ok();
        baseline_workspace(&ws, &files, &cold_dir.path().join("vendor"));
        plain.push(cargo_test(&ws, &target));
        std::fs::remove_dir_all(&target).unwrap();
        println!(
            "{:>4} {:>10} {:>10}",
            i + 1,
            secs(graded[i]),
            secs(plain[i])
        );
    }
    let (g, p) = (median(graded), median(plain));
    println!(
        "median: grader {} baseline {} ratio {:.2} (target <= 1.25)",
        secs(g),
        secs(p),
        g.as_secs_f64() / p.as_secs_f64()
    );
}
