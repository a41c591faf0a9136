//! The grader's data folder: the world-readable toolchain copy, the vendored dependency sources and
//! the warm target folders that jobs start from (one per key), each prepared once and reused, and
//! the jobs folder, in which each running engine owns an area that a crash leaves for the next
//! start to clear.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::fcntl::{renameat2, Flock, FlockArg, RenameFlags};
use nix::mount::{umount2, MntFlags};

use crate::engine::assembly;
use crate::engine::sandbox::host_tool;

/// Paths inside the data folder, as one engine sees it: its warm cache is the one for its key
/// (see [`DataDir::for_warm_key`]).
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    warm_key: Option<String>,
}

impl DataDir {
    /// Uses (and creates, world-readable, since the sandbox's unprivileged user reads from it) `root`.
    pub fn open(root: &Path) -> io::Result<DataDir> {
        fs::create_dir_all(root.join("jobs"))?;
        set_mode(root, 0o755)?;
        set_mode(&root.join("jobs"), 0o755)?;
        Ok(DataDir {
            // Absolute, as mounts and renames need it.
            root: root.canonicalize()?,
            warm_key: None,
        })
    }

    /// The same data folder, its warm cache being the one for `key` (a file name: the keys made by
    /// the engine are hex digits, dashes and words).
    pub fn for_warm_key(self, key: &str) -> DataDir {
        DataDir {
            warm_key: Some(key.to_string()),
            ..self
        }
    }

    /// The toolchain copy.
    pub fn toolchain(&self) -> PathBuf {
        self.root.join("toolchain")
    }

    /// The vendored crates.
    pub fn vendor(&self) -> PathBuf {
        self.root.join("vendor")
    }

    /// The warm target folders, one per key.
    pub fn warm_targets(&self) -> PathBuf {
        self.root.join("warm-targets")
    }

    /// The warm target folder for this view's key (`unkeyed` without one). Each key has its own:
    /// engines with other hidden tests, or `grader check` beside `grader serve`, on one data folder
    /// never replace the cache that another engine's jobs copy (a job that started from a cache
    /// built for other hidden tests would compile against their library, which cargo takes as
    /// fresh, and fail).
    pub fn warm_target(&self) -> PathBuf {
        self.warm_targets()
            .join(self.warm_key.as_deref().unwrap_or("unkeyed"))
    }

    /// Marks this view's warm cache as used now (its key file's time), so that
    /// [`DataDir::prune_warm_targets`] keeps it while an engine grades with it.
    pub fn mark_warm_target_used(&self) -> io::Result<()> {
        fs::File::options()
            .write(true)
            .open(self.warm_target().join(KEY_FILE))?
            .set_modified(std::time::SystemTime::now())
    }

    /// Removes the warm caches of other keys that no engine has used for [`WARM_TARGET_UNUSED`]
    /// (older hidden tests; a cache comes back, built anew, when its key is used again) and the
    /// single `warm-target/` of older versions. Call it under [`DataDir::lock`].
    pub fn prune_warm_targets(&self) -> io::Result<()> {
        let legacy = self.root.join("warm-target");
        if legacy.exists() {
            fs::remove_dir_all(&legacy)?;
        }
        let Ok(entries) = fs::read_dir(self.warm_targets()) else {
            return Ok(());
        };
        let mine = self.warm_target();
        for entry in entries.filter_map(Result::ok) {
            let dir = entry.path();
            let last_used = fs::metadata(dir.join(KEY_FILE)).and_then(|m| m.modified());
            let unused = last_used
                .map(|t| t.elapsed().unwrap_or_default() > WARM_TARGET_UNUSED)
                .unwrap_or(true);
            if dir != mine && unused {
                tracing::info!(dir = %dir.display(), "removing an unused warm cache");
                fs::remove_dir_all(&dir)?;
            }
        }
        Ok(())
    }

    /// The folder of the target folder `grader check` keeps ([`KeptTarget`]).
    pub fn kept_target(&self) -> PathBuf {
        self.root.join("check-target")
    }

    /// The recorded durations of the checks ([`Durations`]).
    pub fn durations(&self) -> PathBuf {
        self.root.join("test-durations.tsv")
    }

    /// The folder of every engine's [`JobsArea`].
    pub fn jobs(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// Clears what crashed graders left in the jobs folder, then claims a fresh area for this
    /// engine's job folders and scratch files. Call it under [`DataDir::lock`]: areas are made under
    /// it too, so the clearing never sees one half made.
    ///
    /// An area is left over when the lock on its `.owner` file is free (a lock dies with its
    /// process; a process id cannot tell, as every container's grader may be pid 1). Anything else
    /// in the jobs folder is from an older layout and left over too. Mounts (the job folders'
    /// tmpfs) below a leftover are detached before it is removed.
    pub fn start_jobs(&self) -> io::Result<JobsArea> {
        for entry in fs::read_dir(self.jobs())? {
            let path = entry?.path();
            let owner = path.join(OWNER_FILE);
            let live = fs::File::open(&owner)
                .ok()
                .is_some_and(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err());
            if !live {
                tracing::warn!(path = %path.display(), "removing a job area left by a crash");
                // Grading can go on beside a leftover that resists; the next start tries again.
                if let Err(e) = remove_area(&path) {
                    tracing::error!(error = %e, path = %path.display(), "cannot remove the leftover");
                }
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("area-")
            .tempdir_in(self.jobs())?
            .keep();
        set_mode(&dir, 0o755)?;
        let file = fs::File::create(dir.join(OWNER_FILE))?;
        let owner = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| io::Error::from(e))?;
        Ok(JobsArea { dir, _owner: owner })
    }

    /// Takes the data folder's preparation lock, so that concurrent graders prepare it once.
    pub fn lock(&self) -> io::Result<Flock<fs::File>> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(".lock"))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))
    }
}

const OWNER_FILE: &str = ".owner";

/// One engine's part of the jobs folder: its job folders and scratch files live here, and the lock
/// it holds on the area's `.owner` file tells other engines that it is in use. Dropped, it is removed.
#[derive(Debug)]
pub struct JobsArea {
    dir: PathBuf,
    _owner: Flock<fs::File>,
}

impl JobsArea {
    /// The area's folder (absolute).
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for JobsArea {
    fn drop(&mut self) {
        if let Err(e) = remove_area(&self.dir) {
            tracing::warn!(error = %e, path = %self.dir.display(), "cannot remove the job area");
        }
    }
}

/// Detaches every mount at or below `dir` (deepest first), then removes it (or the stray file or
/// link that is there instead).
fn remove_area(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return fs::remove_file(dir),
        Ok(_) => {}
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for mount in mounts {
        match umount2(&mount, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `/proc/self/mountinfo` writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape_mount_path(p: &str) -> String {
    let mut out = Vec::with_capacity(p.len());
    let bytes = p.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// The target folder kept between gradings of one crate (what `grader check` uses, see
/// [`crate::engine::job::KEPT_TARGET_MOUNT`]), locked for one grading at a time. It starts as a
/// copy of the warm cache and is made anew when it served another crate or an older warm cache.
#[derive(Debug)]
pub struct KeptTarget {
    target: PathBuf,
    _lock: Flock<fs::File>,
}

/// The file of the kept target's folder naming the crate it serves.
const KEPT_FOR: &str = "crate";

impl KeptTarget {
    /// Locks the data folder's kept target folder for the crate at `source` (waiting while another
    /// grading uses it) and makes it ready.
    pub fn open(data: &DataDir, source: &Path) -> io::Result<KeptTarget> {
        let dir = data.kept_target();
        fs::create_dir_all(&dir)?;
        set_mode(&dir, 0o755)?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))?;
        let lock =
            Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
        let source = source
            .canonicalize()
            .unwrap_or_else(|_| source.to_path_buf());
        let source = source.to_string_lossy();
        let target = dir.join("target");
        let warm_key = fs::read_to_string(data.warm_target().join(KEY_FILE))?;
        let current = fs::read_to_string(dir.join(KEPT_FOR)).is_ok_and(|s| s == source)
            && is_ready(&target, &warm_key);
        if !current {
            match fs::remove_dir_all(&target) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            copy_tree(&data.warm_target(), &target)?;
            fs::write(dir.join(KEPT_FOR), source.as_bytes())?;
        }
        Ok(KeptTarget {
            target,
            _lock: lock,
        })
    }

    /// The target folder on the host.
    pub fn path(&self) -> &Path {
        &self.target
    }
}

/// How long each check took when it last passed, in wall and CPU time (`name<TAB>wall ms<TAB>cpu
/// ms` lines in the data folder; older records have no CPU column), so that gradings start the
/// longest tests first and know which of them mostly wait. Only a scheduling hint: a missing or
/// garbled file orders by the rubric's timeouts, and engines sharing the data folder may overwrite
/// each other's record.
#[derive(Debug, Default)]
pub struct Durations(std::collections::BTreeMap<String, Timing>);

/// One check's last pass: its wall time and, where recorded, its CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Wall time.
    pub wall: std::time::Duration,
    /// CPU time of all its processes (unknown in older records).
    pub cpu: Option<std::time::Duration>,
}

impl Durations {
    /// The record at `path` (empty when there is none).
    pub fn load(path: &Path) -> Durations {
        let ms = |field: &str| field.parse().ok().map(std::time::Duration::from_millis);
        let text = fs::read_to_string(path).unwrap_or_default();
        Durations(
            text.lines()
                .filter_map(|l| {
                    let mut fields = l.split('\t');
                    let name = fields.next()?;
                    let wall = ms(fields.next()?)?;
                    let cpu = fields.next().and_then(ms);
                    Some((name.to_string(), Timing { wall, cpu }))
                })
                .collect(),
        )
    }

    /// The timing of `name`'s last pass.
    pub fn get(&self, name: &str) -> Option<Timing> {
        self.0.get(name).copied()
    }

    /// Records a pass of `name` that took `wall`, `cpu` of it on a CPU.
    pub fn set(&mut self, name: &str, wall: std::time::Duration, cpu: std::time::Duration) {
        let timing = Timing {
            wall,
            cpu: Some(cpu),
        };
        self.0.insert(name.to_string(), timing);
    }

    /// Writes the record to `path` (a whole file replaces the old one in one step).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let text: String = self
            .0
            .iter()
            .map(|(name, t)| match t.cpu {
                Some(cpu) => format!("{name}\t{}\t{}\n", t.wall.as_millis(), cpu.as_millis()),
                None => format!("{name}\t{}\n", t.wall.as_millis()),
            })
            .collect();
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        io::Write::write_all(&mut tmp, text.as_bytes())?;
        tmp.persist(path).map(drop).map_err(|e| e.error)
    }
}

/// Identifies the dependency set: a warm folder or vendor folder made for another one is rebuilt.
pub fn dependency_key(toolchain_version: &str) -> String {
    let mut h = std::hash::DefaultHasher::new();
    (
        assembly::WORKSPACE_TOML,
        assembly::WORKSPACE_LOCK,
        assembly::RUNTIME_TOML,
        assembly::HIDDEN_TOML,
        toolchain_version,
        WARM_RECIPE,
    )
        .hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The cargo invocations jobs make (see `build`): a warm cache built by other invocations may
/// have compiled the dependencies for other profiles or feature sets. Bump it when they change.
const WARM_RECIPE: &str = "one-binary build with bins; public lib tests";

/// How long a warm cache of another key stays unused before an engine's start removes it.
pub const WARM_TARGET_UNUSED: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// The file that marks a cache folder complete, holding its key.
pub const KEY_FILE: &str = ".grader-key";

/// Whether `dir` was completed for `key`.
pub fn is_ready(dir: &Path, key: &str) -> bool {
    fs::read_to_string(dir.join(KEY_FILE)).is_ok_and(|k| k == key)
}

/// Marks `tmp` complete for `key` and moves it to `dir` in one step: a reader sees the old folder or
/// the new one, never none or half of one. An older `dir` ends up at `tmp` (for the caller to
/// remove once no job may still read it). Both must be absolute and on one file system.
pub fn publish(tmp: &Path, dir: &Path, key: &str) -> io::Result<()> {
    fs::write(tmp.join(KEY_FILE), key)?;
    // Absolute paths make the directory handle irrelevant; any open one will do.
    let here = fs::File::open("/")?;
    let flags = if dir.exists() {
        RenameFlags::RENAME_EXCHANGE
    } else {
        RenameFlags::RENAME_NOREPLACE
    };
    renameat2(&here, tmp, &here, dir, flags).map_err(io::Error::from)
}

/// The dependency every job's build needs most; a warm target without it is not warm.
const WARM_PROBE: &str = "libfutures_util";

/// Whether a target folder holds compiled dependencies where jobs look for them (`debug/deps/`).
pub fn is_warm(target: &Path) -> bool {
    fs::read_dir(target.join("debug/deps")).is_ok_and(|d| {
        d.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(WARM_PROBE))
    })
}

/// Publishes the target folder of a warm-up build (`built`) as the warm cache `warm` for `key`: it
/// is copied into a fresh folder inside `scratch` (never a fixed name, which a crash could have left
/// behind with other contents), checked to be laid out as jobs expect (`debug/deps/` holding the
/// dependencies) and then published atomically. An older cache is left in `scratch` (an engine's
/// [`JobsArea`], removed with it), since jobs that started from it may still be copying it.
pub fn publish_warm_target(built: &Path, warm: &Path, scratch: &Path, key: &str) -> io::Result<()> {
    let fresh = tempfile::Builder::new()
        .prefix("warm-")
        .tempdir_in(scratch)?
        .keep();
    let copy = fresh.join("target");
    copy_tree(built, &copy)?;
    if let Some(parent) = warm.parent() {
        fs::create_dir_all(parent)?;
        // The sandbox's unprivileged user copies it.
        set_mode(parent, 0o755)?;
    }
    if !is_warm(&copy) {
        return Err(io::Error::other(format!(
            "the warm-up build left no {WARM_PROBE} in {}; not publishing it",
            copy.join("debug/deps").display()
        )));
    }
    publish(&copy, warm, key)
}

/// Vendors every locked dependency into the data folder (the one step that needs the registry;
/// later builds run offline). Runs the toolchain copy's own cargo (prepared before, so never a
/// rustup proxy that a `rust-toolchain.toml` could redirect) on our own manifests only, from the
/// data folder ([`host_tool`]): nothing of the folder the grader was started in is read.
pub fn vendor(data: &DataDir, key: &str) -> io::Result<()> {
    let dest = data.vendor();
    if is_ready(&dest, key) {
        return Ok(());
    }
    let scratch = tempfile::tempdir()?;
    let ws = scratch.path().join("ws");
    let files = [("src/lib.rs".to_string(), String::new())]
        .into_iter()
        .collect();
    assembly::assemble(&ws, &files, &assembly::Suite::Public)?;
    // Vendoring must read crates.io, not the vendored source this config points at.
    fs::remove_dir_all(ws.join(".cargo"))?;
    let tmp = data.root.join("vendor.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    let bin = data.toolchain().join("bin");
    let out = host_tool(bin.join("cargo"), &data.root)
        .env("RUSTC", bin.join("rustc"))
        .args(["vendor", "--locked", "--manifest-path"])
        .arg(ws.join("Cargo.toml"))
        .arg(&tmp)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "cargo vendor failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    publish(&tmp, &dest, key)
}

/// Copies a folder tree with `cp -a` (keeping the timestamps cargo's fingerprints rely on).
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "cp -a {} {} failed",
            from.display(),
            to.display()
        )))
    }
}
