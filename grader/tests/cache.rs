//! The data folder's caches and job areas: the warm cache is built in a fresh folder, checked and
//! published in one step whatever a crash left behind, one per key (pruned only when long unused),
//! and a start clears the job areas (and their tmpfs mounts) of crashed graders while keeping those
//! of running ones; the record of the checks' timings survives a round trip and reads the older
//! format.
//!
//! The mount test needs root (the README's test command runs as root).

use std::fs;
use std::path::Path;

use std::time::Duration;

use grader::engine::cache::{self, DataDir, Durations, Timing};

/// A target folder laid out as a warm-up build leaves it.
fn built_target(root: &Path, marker: &str) -> std::path::PathBuf {
    let target = root.join("built/target");
    fs::create_dir_all(target.join("debug/deps")).unwrap();
    fs::write(target.join("debug/deps/libfutures_util-0123.rlib"), marker).unwrap();
    target
}

fn mounted_below(dir: &Path) -> bool {
    let dir = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m.starts_with(&dir))
}

#[test]
fn the_warm_cache_is_laid_out_right_whatever_a_crash_left_behind() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    let scratch = root.join("scratch");
    // What the old fixed-name scheme left after a crash (and what pid 1 finds in every container).
    fs::create_dir_all(scratch.join(format!("warm-{}", std::process::id()))).unwrap();
    fs::create_dir_all(scratch.join("warm-1")).unwrap();
    let warm = root.join("warm-target");
    let built = built_target(&root, "first");
    cache::publish_warm_target(&built, &warm, &scratch, "key-1").unwrap();
    let rlib = warm.join("debug/deps/libfutures_util-0123.rlib");
    assert_eq!(fs::read_to_string(&rlib).unwrap(), "first");
    assert!(cache::is_ready(&warm, "key-1"));
    assert!(!cache::is_ready(&warm, "key-2"));
    // A newer dependency set replaces it in one step.
    fs::write(built.join("debug/deps/libfutures_util-0123.rlib"), "second").unwrap();
    cache::publish_warm_target(&built, &warm, &scratch, "key-2").unwrap();
    assert_eq!(fs::read_to_string(&rlib).unwrap(), "second");
    assert!(cache::is_ready(&warm, "key-2"));
}

#[test]
fn a_warm_up_without_dependencies_is_not_published() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    let scratch = root.join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let empty = root.join("built/target/debug/deps");
    fs::create_dir_all(&empty).unwrap();
    let warm = root.join("warm-target");
    let err = cache::publish_warm_target(&root.join("built/target"), &warm, &scratch, "k");
    assert!(err.unwrap_err().to_string().contains("libfutures_util"));
    assert!(!warm.exists());
}

#[test]
fn a_start_clears_the_job_areas_of_crashed_graders_only() {
    assert!(
        nix::unistd::geteuid().is_root() || std::env::var_os("CI").is_none(),
        "CI runs this test as root"
    );
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::open(root.path()).unwrap();
    let running = data.start_jobs().unwrap();
    fs::write(running.path().join("work"), "in use").unwrap();
    // A crashed grader's area: its owner file unlocked, a job folder with a tmpfs still mounted.
    let crashed = data.jobs().join("area-crashed");
    let job = crashed.join("job-1");
    fs::create_dir_all(&job).unwrap();
    fs::write(crashed.join(".owner"), "").unwrap();
    let is_root = nix::unistd::geteuid().is_root();
    if is_root {
        nix::mount::mount(
            Some("tmpfs"),
            &job,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap();
        fs::write(job.join("left"), "x").unwrap();
        assert!(mounted_below(&crashed));
    }
    // Folders of the older layout, named by pid.
    let old = data.jobs().join("warm-1");
    fs::create_dir_all(old.join("target")).unwrap();
    let stray = data.jobs().join("stray-file");
    fs::write(&stray, "x").unwrap();

    let started = data.start_jobs().unwrap();
    assert!(
        !crashed.exists(),
        "the crashed grader's area is still there"
    );
    assert!(!old.exists(), "an old-layout leftover is still there");
    assert!(!stray.exists(), "a stray file is still there");
    if is_root {
        assert!(!mounted_below(&crashed), "its tmpfs is still mounted");
    }
    assert_eq!(
        fs::read_to_string(running.path().join("work")).unwrap(),
        "in use",
        "a running grader's area was touched"
    );
    assert_ne!(started.path(), running.path());
    let area = started.path().to_path_buf();
    drop(started);
    assert!(!area.exists(), "a dropped area is removed");
}

/// A sandbox on the toolchain copy the sandbox tests share, or `None` (skipped) without bwrap.
fn sandbox() -> Option<grader::engine::sandbox::Sandbox> {
    use grader::engine::sandbox::{Sandbox, Toolchain};
    let bwrap = ["/usr/bin/bwrap", "/bin/bwrap"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !bwrap {
        assert!(std::env::var_os("CI").is_none(), "CI has bubblewrap");
        return None;
    }
    let dest = std::env::temp_dir().join("runtime-grader-sandbox-test-toolchain");
    let toolchain = Toolchain::prepare(&dest).expect("prepare the toolchain copy");
    Some(Sandbox::new(toolchain).expect("sandbox setup"))
}

#[test]
fn a_staged_job_folder_holds_the_warm_cache_until_a_newer_one_is_published() {
    use grader::engine::build;
    use grader::engine::sandbox::{JobDir, Limits};
    let Some(sandbox) = sandbox() else { return };
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::open(root.path()).unwrap();
    fs::create_dir_all(data.vendor()).unwrap();
    let scratch = root.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let built = built_target(root.path(), "first");
    cache::publish_warm_target(&built, &data.warm_target(), &scratch, "key-1").unwrap();

    let job = JobDir::create(&data.jobs(), 64 << 20).unwrap();
    build::stage_warm_target(&sandbox, &data, job.path(), &Limits::build()).unwrap();
    let rlib = job
        .path()
        .join("target/debug/deps/libfutures_util-0123.rlib");
    assert_eq!(fs::read_to_string(&rlib).unwrap(), "first");
    assert!(build::staged_is_current(&data, job.path()));
    // Staging again keeps what is there (a build's own copy is skipped the same way).
    build::stage_warm_target(&sandbox, &data, job.path(), &Limits::build()).unwrap();
    // A newer warm cache makes the staged copy stale: the next build must not use it.
    cache::publish_warm_target(&built, &data.warm_target(), &scratch, "key-2").unwrap();
    assert!(!build::staged_is_current(&data, job.path()));
    // A job folder never staged is not current either.
    let fresh = JobDir::create(&data.jobs(), 64 << 20).unwrap();
    assert!(!build::staged_is_current(&data, fresh.path()));
}

#[test]
fn the_kept_target_serves_one_crate_until_another_crate_or_a_newer_warm_cache() {
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::open(root.path()).unwrap();
    let scratch = root.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let built = built_target(root.path(), "warm");
    cache::publish_warm_target(&built, &data.warm_target(), &scratch, "key-1").unwrap();
    let (one, other) = (root.path().join("one"), root.path().join("other"));
    fs::create_dir_all(&one).unwrap();
    fs::create_dir_all(&other).unwrap();

    // Made from the warm cache, then kept with what the crate's builds added.
    let kept = cache::KeptTarget::open(&data, &one).unwrap();
    let rlib = kept.path().join("debug/deps/libfutures_util-0123.rlib");
    assert_eq!(fs::read_to_string(&rlib).unwrap(), "warm");
    let own = kept.path().join("debug/incremental-of-one");
    fs::write(&own, "built").unwrap();
    drop(kept);
    let again = cache::KeptTarget::open(&data, &one.join("../one")).unwrap();
    assert!(again.path().join("debug/incremental-of-one").exists());
    drop(again);
    // Another crate gets a fresh copy.
    let kept = cache::KeptTarget::open(&data, &other).unwrap();
    assert!(!kept.path().join("debug/incremental-of-one").exists());
    fs::write(kept.path().join("debug/incremental-of-other"), "built").unwrap();
    drop(kept);
    // So does the same crate once the warm cache is newer.
    cache::publish_warm_target(&built, &data.warm_target(), &scratch, "key-2").unwrap();
    let kept = cache::KeptTarget::open(&data, &other).unwrap();
    assert!(!kept.path().join("debug/incremental-of-other").exists());
    assert!(cache::is_ready(kept.path(), "key-2"));
}

#[test]
fn the_timings_record_keeps_wall_and_cpu_time_and_reads_older_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test-durations.tsv");
    let ms = Duration::from_millis;
    let mut record = Durations::load(&path);
    assert_eq!(record.get("waits"), None, "no file, no record");
    record.set("waits", ms(420), ms(8));
    record.set("busy", ms(60), ms(55));
    record.save(&path).unwrap();
    let reread = Durations::load(&path);
    assert_eq!(
        reread.get("waits"),
        Some(Timing {
            wall: ms(420),
            cpu: Some(ms(8))
        })
    );
    assert_eq!(reread.get("busy").and_then(|t| t.cpu), Some(ms(55)));
    // A record written before CPU time was kept: the wall time only; garbage is skipped.
    fs::write(&path, "old\t300\nbroken\tx\n").unwrap();
    let old = Durations::load(&path);
    assert_eq!(
        old.get("old"),
        Some(Timing {
            wall: ms(300),
            cpu: None
        })
    );
    assert_eq!(old.get("broken"), None);
}

#[test]
fn each_key_has_its_own_warm_cache_and_only_long_unused_ones_are_pruned() {
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::open(root.path()).unwrap();
    let scratch = root.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let built = built_target(root.path(), "warm");
    let view = |key: &str| data.clone().for_warm_key(key);
    for key in ["old", "recent", "mine"] {
        cache::publish_warm_target(&built, &view(key).warm_target(), &scratch, key).unwrap();
    }
    assert!(cache::is_ready(&view("old").warm_target(), "old"));
    assert!(
        cache::is_ready(&view("mine").warm_target(), "mine"),
        "none replaced another"
    );
    let long_ago =
        std::time::SystemTime::now() - cache::WARM_TARGET_UNUSED - Duration::from_secs(60);
    for key in ["old", "mine"] {
        fs::File::options()
            .write(true)
            .open(view(key).warm_target().join(cache::KEY_FILE))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }
    fs::create_dir_all(root.path().join("warm-target")).unwrap();

    view("mine").prune_warm_targets().unwrap();
    assert!(!view("old").warm_target().exists(), "unused for too long");
    assert!(view("recent").warm_target().exists(), "used lately");
    assert!(view("mine").warm_target().exists(), "its own, however old");
    assert!(
        !root.path().join("warm-target").exists(),
        "the older layout's"
    );
    view("mine").mark_warm_target_used().unwrap();
    let used = fs::metadata(view("mine").warm_target().join(cache::KEY_FILE))
        .and_then(|m| m.modified())
        .unwrap();
    assert!(used.elapsed().unwrap() < cache::WARM_TARGET_UNUSED);
}
