//! Control groups for sandbox runs: discovery of usable hierarchies (v2 and/or v1), one cgroup per
//! run in each of them, limits, accounting, killing everything inside, removal.
//!
//! Each hierarchy gets a base folder `runtime-grader` below the grader's own cgroup there (its
//! delegated subtree), and each run a folder `<pid>-<sandbox>-<run>` below it. The base folders
//! stay (they are shared with concurrent sandboxes); run folders are removed after every run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use super::bwrap::Identity;

/// Name of the per-hierarchy folder holding all run cgroups.
const BASE_NAME: &str = "runtime-grader";

/// Leaf cgroup v2 the grader moves itself into when its own cgroup must delegate controllers.
const SUPERVISOR_LEAF: &str = "runtime-grader-supervisor";

/// How long [`RunCgroup::kill_all`] waits for the cgroup to empty before giving up.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Which cgroup hierarchies a [`super::Sandbox`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CgroupMode {
    /// cgroup v2 where a writable subtree has the controller, v1 for the rest, rlimits last.
    #[default]
    Auto,
    /// Only cgroup v1 hierarchies (freezer-based killing), rlimits for the rest.
    V1Only,
    /// No cgroups at all: rlimits and the pid namespace only.
    Disabled,
}

/// A mechanism enforcing one limit or killing a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// A cgroup v2 controller (`memory.max`, `pids.max`, `cpu.stat`, `cgroup.kill`).
    CgroupV2,
    /// A cgroup v1 controller (`memory`, `pids`, `cpuacct`, `freezer`).
    CgroupV1,
    /// A per-process resource limit (`RLIMIT_AS`, `RLIMIT_NPROC` (per uid), `RLIMIT_CPU`).
    Rlimit,
    /// Killing the sandbox's pid 1, which makes the kernel kill its whole pid namespace.
    PidNamespace,
    /// Killing the run's process group (unsandboxed runs without a cgroup to kill through).
    ProcessGroup,
    /// Nothing enforces it (unsandboxed runs: `RLIMIT_NPROC` would count every process of the
    /// student's own account).
    Unenforced,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::CgroupV2 => "cgroup-v2",
            Mechanism::CgroupV1 => "cgroup-v1",
            Mechanism::Rlimit => "rlimit",
            Mechanism::PidNamespace => "pid-namespace",
            Mechanism::ProcessGroup => "process-group",
            Mechanism::Unenforced => "none",
        }
    }
}

/// Cgroup version of one controller in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    V1,
    V2,
}

impl Flavour {
    fn mechanism(self) -> Mechanism {
        match self {
            Flavour::V1 => Mechanism::CgroupV1,
            Flavour::V2 => Mechanism::CgroupV2,
        }
    }
}

/// One role (memory, pids, cpu, kill) filled by the hierarchy at `base` index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Role {
    base: usize,
    flavour: Flavour,
}

/// Which limits hold and how, for one run, and who the run's processes are on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enforcement {
    /// Who bubblewrap runs as: the sandbox's first wall, which every limit relies on.
    pub identity: Identity,
    /// Memory limit: cgroup (memory + swap where accounted), else `RLIMIT_AS` (virtual memory).
    pub memory: Mechanism,
    /// Task (process + thread) limit: cgroup pids, else `RLIMIT_NPROC` (counts every process of the
    /// sandbox uid, including concurrent runs').
    pub tasks: Mechanism,
    /// CPU time: cgroup accounting watched by the supervisor (with `RLIMIT_CPU` as a per-process
    /// backstop), else `RLIMIT_CPU` alone (per process) and no CPU accounting.
    pub cpu: Mechanism,
    /// How every process of a run is killed: `cgroup.kill` (v2), freeze + SIGKILL loop (v1), else
    /// killing the sandbox's pid 1 (the kernel then kills its pid namespace).
    pub kill: Mechanism,
}

impl std::fmt::Display for Enforcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "identity={} memory={} tasks={} cpu={} kill={}",
            self.identity.name(),
            self.memory.name(),
            self.tasks.name(),
            self.cpu.name(),
            self.kill.name()
        )
    }
}

/// The usable hierarchies, found once per [`super::Sandbox`].
#[derive(Debug, Clone, Default)]
pub(super) struct Hierarchies {
    /// Base folders, one per hierarchy in use.
    bases: Vec<PathBuf>,
    memory: Option<Role>,
    pids: Option<Role>,
    cpu: Option<Role>,
    kill: Option<Role>,
    /// CPU weight (v2 `cpu.weight`, v1 `cpu.shares`): how armed sandboxes yield the cores.
    weight: Option<Role>,
}

impl Hierarchies {
    /// Finds the hierarchies usable under `mode`, creating their base folders.
    pub(super) fn discover(mode: CgroupMode) -> Hierarchies {
        let mut found = Hierarchies::default();
        if mode == CgroupMode::Disabled {
            return found;
        }
        let (Ok(mountinfo), Ok(own)) = (
            fs::read_to_string("/proc/self/mountinfo"),
            fs::read_to_string("/proc/self/cgroup"),
        ) else {
            return found;
        };
        let mounts = parse_mounts(&mountinfo);
        if mode == CgroupMode::Auto {
            found.add_v2(&mounts, &own);
        }
        found.add_v1(&mounts, &own);
        found
    }

    /// Picks a v2 subtree: first one where memory and pids can be enabled (below our own cgroup,
    /// else below the hierarchy's root), moving ourselves into a leaf if that is what it takes;
    /// else any writable one (for `cpu.stat` and `cgroup.kill`).
    fn add_v2(&mut self, mounts: &[CgroupMount], own: &str) {
        let Some(mount) = mounts.iter().find(|m| m.v2) else {
            return;
        };
        let Some(own_path) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
            return;
        };
        // A previous Sandbox may have moved us into the leaf: the subtree is still its parent's.
        let own_path = own_path
            .strip_suffix(&format!("/{SUPERVISOR_LEAF}"))
            .unwrap_or(own_path);
        let own_dir = mount.dir_of(own_path);
        let mut parents = vec![own_dir.clone()];
        if own_dir != mount.mount_point {
            parents.push(mount.mount_point.clone());
        }
        let complete = |subtree: &V2Subtree| subtree.memory && subtree.pids;
        let subtree = parents
            .iter()
            .filter_map(|parent| V2Subtree::enable(parent))
            .find(complete)
            .or_else(|| {
                move_into_leaf(&own_dir)
                    .then(|| V2Subtree::enable(&own_dir))
                    .flatten()
                    .filter(complete)
            })
            .or_else(|| parents.iter().find_map(|parent| V2Subtree::enable(parent)));
        let Some(subtree) = subtree else {
            return;
        };
        let role = Some(Role {
            base: self.bases.len(),
            flavour: Flavour::V2,
        });
        if subtree.memory {
            self.memory = role;
        }
        if subtree.pids {
            self.pids = role;
        }
        if subtree.cpu_stat {
            self.cpu = role;
        }
        if subtree.kill {
            self.kill = role;
        }
        if subtree.cpu {
            self.weight = role;
        }
        self.bases.push(subtree.base);
    }

    fn add_v1(&mut self, mounts: &[CgroupMount], own: &str) {
        type Slot = fn(&mut Hierarchies) -> &mut Option<Role>;
        let wanted: [(&str, &str, Slot); 5] = [
            ("memory", "memory.limit_in_bytes", |h| &mut h.memory),
            ("pids", "pids.max", |h| &mut h.pids),
            ("cpuacct", "cpuacct.usage", |h| &mut h.cpu),
            ("freezer", "freezer.state", |h| &mut h.kill),
            ("cpu", "cpu.shares", |h| &mut h.weight),
        ];
        for (controller, file, slot) in wanted {
            if slot(self).is_some() {
                continue;
            }
            let Some(mount) = mounts
                .iter()
                .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))
            else {
                continue;
            };
            let Some(own_path) = own.lines().find_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (_, names, path) = (fields.next()?, fields.next()?, fields.next()?);
                names.split(',').any(|n| n == controller).then_some(path)
            }) else {
                continue;
            };
            let base = mount.dir_of(own_path).join(BASE_NAME);
            if !usable_base(&base, file) {
                continue;
            }
            let index = match self.bases.iter().position(|b| *b == base) {
                Some(index) => index,
                None => {
                    self.bases.push(base);
                    self.bases.len() - 1
                }
            };
            *slot(self) = Some(Role {
                base: index,
                flavour: Flavour::V1,
            });
        }
    }

    /// Whether any cgroup v1 hierarchy is in use.
    pub(super) fn uses_v1(&self) -> bool {
        self.roles().any(|r| r.flavour == Flavour::V1)
    }

    /// Whether any cgroup v2 subtree is in use.
    pub(super) fn uses_v2(&self) -> bool {
        self.roles().any(|r| r.flavour == Flavour::V2)
    }

    fn roles(&self) -> impl Iterator<Item = Role> + '_ {
        [self.memory, self.pids, self.cpu, self.kill, self.weight]
            .into_iter()
            .flatten()
    }

    /// What runs of `identity` get from these hierarchies.
    pub(super) fn enforcement(&self, identity: Identity) -> Enforcement {
        let or = |role: Option<Role>, fallback| role.map_or(fallback, |r| r.flavour.mechanism());
        Enforcement {
            identity,
            memory: or(self.memory, Mechanism::Rlimit),
            tasks: or(self.pids, Mechanism::Rlimit),
            cpu: or(self.cpu, Mechanism::Rlimit),
            kill: or(self.kill, Mechanism::PidNamespace),
        }
    }

    /// Kills and removes the run cgroups whose name starts with `prefix`: left by a crashed
    /// process that had our pid (common in containers, where the grader's pid is always the same).
    pub(super) fn reclaim(&self, prefix: &str) -> io::Result<()> {
        let mut names: Vec<_> = self
            .existing(prefix)
            .into_iter()
            .filter_map(|dir| dir.file_name().map(ToOwned::to_owned))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            tracing::warn!(?name, "removing a stale sandbox cgroup");
            RunCgroup {
                dirs: self.bases.iter().map(|base| base.join(&name)).collect(),
                plan: self.clone(),
            }
            .remove()?;
        }
        Ok(())
    }

    /// Existing run cgroups whose name starts with `prefix`.
    pub(super) fn existing(&self, prefix: &str) -> Vec<PathBuf> {
        self.bases
            .iter()
            .filter_map(|base| fs::read_dir(base).ok())
            .flat_map(|entries| entries.flatten())
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path())
            .collect()
    }
}

/// A cgroup mount from `/proc/self/mountinfo`.
#[derive(Debug)]
struct CgroupMount {
    /// Path of the mount's root inside the hierarchy.
    root: String,
    mount_point: PathBuf,
    v2: bool,
    controllers: Vec<String>,
}

impl CgroupMount {
    /// The folder of the cgroup at `path` (as `/proc/self/cgroup` names it).
    fn dir_of(&self, path: &str) -> PathBuf {
        let relative = path.strip_prefix(self.root.as_str()).unwrap_or(path);
        self.mount_point.join(relative.trim_start_matches('/'))
    }
}

fn parse_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut after = after.split(' ');
            let fs_type = after.next()?;
            let options = after.nth(1)?;
            let (root, mount_point) = (fields.get(3)?, fields.get(4)?);
            let v2 = match fs_type {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(CgroupMount {
                root: (*root).to_owned(),
                mount_point: PathBuf::from(mount_point),
                v2,
                controllers: options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// A `runtime-grader` folder in the v2 hierarchy and what its children get.
struct V2Subtree {
    base: PathBuf,
    memory: bool,
    pids: bool,
    /// `cpu.stat` (usage_usec) exists in every v2 cgroup, with or without the cpu controller.
    cpu_stat: bool,
    /// `cgroup.kill` exists from Linux 5.14 on.
    kill: bool,
    /// The cpu controller (`cpu.weight`) is enabled for the children.
    cpu: bool,
}

impl V2Subtree {
    /// Creates `parent/runtime-grader` and enables memory, pids and cpu for its children where
    /// possible. Enabling in `parent` fails (harmlessly) when `parent` holds processes and is not
    /// the root: cgroup v2 allows processes only in leaves.
    fn enable(parent: &Path) -> Option<V2Subtree> {
        let base = parent.join(BASE_NAME);
        if !usable_base(&base, "cgroup.procs") {
            return None;
        }
        let available = read_string(&parent.join("cgroup.controllers"));
        for controller in ["memory", "pids", "cpu"] {
            if available.split_whitespace().any(|c| c == controller) {
                let enable = format!("+{controller}");
                let _ = fs::write(parent.join("cgroup.subtree_control"), &enable);
                let _ = fs::write(base.join("cgroup.subtree_control"), &enable);
            }
        }
        let enabled = read_string(&base.join("cgroup.subtree_control"));
        let has = |c: &str| enabled.split_whitespace().any(|e| e == c);
        Some(V2Subtree {
            memory: has("memory"),
            pids: has("pids"),
            cpu_stat: base.join("cpu.stat").exists(),
            kill: base.join("cgroup.kill").exists(),
            cpu: has("cpu"),
            base,
        })
    }
}

/// Creates the base folder `base` if needed; usable when it has the controller's `file` and we may
/// create run cgroups in it (it may exist already, made by another user's grader).
fn usable_base(base: &Path, file: &str) -> bool {
    use nix::unistd::{access, AccessFlags};
    fs::create_dir_all(base).is_ok()
        && base.join(file).exists()
        && access(base, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
}

/// Moves this process into `own_dir/runtime-grader-supervisor` when it is the only process in
/// `own_dir` (a service or container running just the grader), which frees `own_dir` to enable
/// controllers for its children. Returns whether it moved.
fn move_into_leaf(own_dir: &Path) -> bool {
    let ours = std::process::id().to_string();
    let procs = read_string(&own_dir.join("cgroup.procs"));
    if procs.lines().ne([ours.as_str()]) {
        return false;
    }
    let leaf = own_dir.join(SUPERVISOR_LEAF);
    let moved =
        fs::create_dir_all(&leaf).and_then(|()| fs::write(leaf.join("cgroup.procs"), &ours));
    moved.is_ok()
}

/// The cgroups of one run, one per hierarchy in use; removed on drop.
#[derive(Debug)]
pub(super) struct RunCgroup {
    dirs: Vec<PathBuf>,
    plan: Hierarchies,
}

impl RunCgroup {
    /// Creates the run's cgroups named `name` and applies the limits.
    pub(super) fn create(
        hierarchies: &Hierarchies,
        name: &str,
        memory_bytes: u64,
        tasks: u64,
    ) -> io::Result<RunCgroup> {
        let mut cgroup = RunCgroup {
            dirs: Vec::new(),
            plan: hierarchies.clone(),
        };
        for base in &hierarchies.bases {
            let dir = base.join(name);
            fs::create_dir(&dir)?;
            cgroup.dirs.push(dir);
        }
        if let Some(dir) = cgroup.dir(cgroup.plan.memory) {
            let limit = memory_bytes.to_string();
            match cgroup.plan.memory.map(|r| r.flavour) {
                Some(Flavour::V1) => {
                    // memsw (memory + swap) must stay >= the memory limit, so it goes second.
                    fs::write(dir.join("memory.limit_in_bytes"), &limit)?;
                    write_if_present(&dir.join("memory.memsw.limit_in_bytes"), &limit)?;
                }
                _ => {
                    fs::write(dir.join("memory.max"), &limit)?;
                    write_if_present(&dir.join("memory.swap.max"), "0")?;
                }
            }
        }
        if let Some(dir) = cgroup.dir(cgroup.plan.pids) {
            fs::write(dir.join("pids.max"), tasks.to_string())?;
        }
        Ok(cgroup)
    }

    fn dir(&self, role: Option<Role>) -> Option<&Path> {
        role.and_then(|r| self.dirs.get(r.base))
            .map(PathBuf::as_path)
    }

    /// The `cgroup.procs` files a process must join (every hierarchy in use).
    pub(super) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Gives the run the least CPU weight (`low`: only what others leave idle) or the usual one,
    /// where a cpu controller is in use; else nothing changes.
    pub(super) fn set_low_weight(&self, low: bool) -> io::Result<()> {
        let Some(dir) = self.dir(self.plan.weight) else {
            return Ok(());
        };
        match (self.plan.weight.map(|r| r.flavour), low) {
            (Some(Flavour::V1), true) => fs::write(dir.join("cpu.shares"), "2"),
            (Some(Flavour::V1), false) => fs::write(dir.join("cpu.shares"), "1024"),
            (_, true) => fs::write(dir.join("cpu.weight"), "1"),
            (_, false) => fs::write(dir.join("cpu.weight"), "100"),
        }
    }

    /// CPU time used so far by everything in the run, if accounted.
    pub(super) fn cpu_usage(&self) -> Option<Duration> {
        let dir = self.dir(self.plan.cpu)?;
        match self.plan.cpu?.flavour {
            Flavour::V1 => read_u64(&dir.join("cpuacct.usage")).map(Duration::from_nanos),
            Flavour::V2 => read_key(&dir.join("cpu.stat"), "usage_usec").map(Duration::from_micros),
        }
    }

    /// Highest memory use (including page cache) seen, if accounted.
    pub(super) fn peak_memory(&self) -> Option<u64> {
        let dir = self.dir(self.plan.memory)?;
        match self.plan.memory?.flavour {
            Flavour::V1 => read_u64(&dir.join("memory.max_usage_in_bytes")),
            Flavour::V2 => read_u64(&dir.join("memory.peak")),
        }
    }

    /// Whether the memory limit made the kernel kill a process of the run.
    pub(super) fn memory_limit_hit(&self) -> bool {
        let Some(dir) = self.dir(self.plan.memory) else {
            return false;
        };
        let file = match self.plan.memory.map(|r| r.flavour) {
            Some(Flavour::V1) => "memory.oom_control",
            _ => "memory.events",
        };
        read_key(&dir.join(file), "oom_kill").is_some_and(|n| n > 0)
    }

    /// Whether a fork or thread creation failed because of the task limit.
    pub(super) fn tasks_limit_hit(&self) -> bool {
        self.dir(self.plan.pids)
            .and_then(|dir| read_key(&dir.join("pids.events"), "max"))
            .is_some_and(|n| n > 0)
    }

    /// Kills every process in the run and waits until the cgroups are empty.
    pub(super) fn kill_all(&self) -> io::Result<()> {
        let deadline = Instant::now() + KILL_TIMEOUT;
        match (self.dir(self.plan.kill), self.plan.kill.map(|r| r.flavour)) {
            (Some(dir), Some(Flavour::V2)) => {
                if self.is_populated() {
                    fs::write(dir.join("cgroup.kill"), "1")?;
                }
                self.wait_empty(deadline)
            }
            (Some(dir), Some(Flavour::V1)) => {
                // Frozen tasks cannot fork, so one pass over cgroup.procs catches them all.
                while self.is_populated() {
                    fs::write(dir.join("freezer.state"), "FROZEN")?;
                    let frozen_by = Instant::now() + Duration::from_secs(1);
                    while read_string(&dir.join("freezer.state")).trim() != "FROZEN"
                        && Instant::now() < frozen_by
                    {
                        thread::sleep(Duration::from_millis(1));
                    }
                    kill_listed(&dir.join("cgroup.procs"));
                    fs::write(dir.join("freezer.state"), "THAWED")?;
                    if self
                        .wait_empty(Instant::now() + Duration::from_millis(200))
                        .is_ok()
                    {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(io::Error::other("processes survive the freezer kill"));
                    }
                }
                Ok(())
            }
            _ => {
                while self.is_populated() && Instant::now() < deadline {
                    for procs in self.procs_files() {
                        kill_listed(&procs);
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                self.wait_empty(deadline)
            }
        }
    }

    fn is_populated(&self) -> bool {
        self.dirs
            .iter()
            .any(|d| !read_string(&d.join("cgroup.procs")).trim().is_empty())
    }

    fn wait_empty(&self, deadline: Instant) -> io::Result<()> {
        let mut pause = Duration::from_micros(100);
        while self.is_populated() {
            if Instant::now() > deadline {
                return Err(io::Error::other("processes still in the run's cgroup"));
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Kills what is left and removes the cgroups.
    pub(super) fn remove(mut self) -> io::Result<()> {
        self.remove_dirs()
    }

    fn remove_dirs(&mut self) -> io::Result<()> {
        let killed = self.kill_all();
        let mut result = killed;
        for dir in self.dirs.drain(..).rev() {
            let mut attempts = 0;
            let removed = loop {
                match fs::remove_dir(&dir) {
                    Err(e) if e.raw_os_error() == Some(Errno::EBUSY as i32) && attempts < 100 => {
                        attempts += 1;
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break Ok(()),
                    other => break other,
                }
            };
            if let Err(e) = removed {
                result = result.and(Err(io::Error::new(
                    e.kind(),
                    format!("cannot remove cgroup {}: {e}", dir.display()),
                )));
            }
        }
        result
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove_dirs() {
            tracing::error!(error = %e, "sandbox cgroup cleanup failed");
        }
    }
}

fn write_if_present(path: &Path, value: &str) -> io::Result<()> {
    if path.exists() {
        fs::write(path, value)?;
    }
    Ok(())
}

fn read_string(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn read_u64(path: &Path) -> Option<u64> {
    read_string(path).trim().parse().ok()
}

/// Reads the value of `key` from `key value` lines (cpu.stat, memory.events, pids.events,
/// memory.oom_control).
fn read_key(path: &Path, key: &str) -> Option<u64> {
    read_string(path).lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn kill_listed(procs: &Path) {
    for pid in read_string(procs)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
    {
        // ESRCH: it exited meanwhile.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
24 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
35 24 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 24 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
37 24 0:32 /container /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate";

    #[test]
    fn finds_cgroup_mounts_and_their_controllers() {
        let mounts = parse_mounts(MOUNTINFO);
        assert_eq!(mounts.len(), 3);
        assert!(!mounts[0].v2);
        assert_eq!(mounts[1].controllers, ["rw", "cpu", "cpuacct"]);
        assert!(mounts[2].v2);
        assert_eq!(
            mounts[0].dir_of("/process_api/x"),
            Path::new("/sys/fs/cgroup/memory/process_api/x")
        );
        // A mount of a subtree: paths from /proc/self/cgroup are relative to the hierarchy root.
        assert_eq!(
            mounts[2].dir_of("/container/job"),
            Path::new("/sys/fs/cgroup/unified/job")
        );
    }

    #[test]
    fn reads_keyed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.oom_control");
        fs::write(&path, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        assert_eq!(read_key(&path, "oom_kill"), Some(2));
        assert_eq!(read_key(&path, "under_oom"), Some(0));
        assert_eq!(read_key(&path, "missing"), None);
    }
}
