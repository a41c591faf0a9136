//! The grader's data folder: the world-readable toolchain copy, the vendored dependency sources and
//! the warm target folder that every job starts from, each prepared once and reused.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

use crate::assembly;
use crate::sandbox::host_tool;

/// Paths inside the data folder.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Uses (and creates, world-readable, since the sandbox's unprivileged user reads from it) `root`.
    pub fn open(root: &Path) -> io::Result<DataDir> {
        fs::create_dir_all(root.join("jobs"))?;
        set_mode(root, 0o755)?;
        Ok(DataDir {
            root: root.to_path_buf(),
        })
    }

    /// The toolchain copy.
    pub fn toolchain(&self) -> PathBuf {
        self.root.join("toolchain")
    }

    /// The vendored crates.
    pub fn vendor(&self) -> PathBuf {
        self.root.join("vendor")
    }

    /// The warm target folder.
    pub fn warm_target(&self) -> PathBuf {
        self.root.join("warm-target")
    }

    /// Where job folders are created.
    pub fn jobs(&self) -> PathBuf {
        self.root.join("jobs")
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

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
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
    )
        .hash(&mut h);
    format!("{:016x}", h.finish())
}

const KEY_FILE: &str = ".grader-key";

/// Whether `dir` was completed for `key`.
pub fn is_ready(dir: &Path, key: &str) -> bool {
    fs::read_to_string(dir.join(KEY_FILE)).is_ok_and(|k| k == key)
}

/// Marks `tmp` complete for `key` and moves it to `dir`, replacing an older one.
pub fn publish(tmp: &Path, dir: &Path, key: &str) -> io::Result<()> {
    fs::write(tmp.join(KEY_FILE), key)?;
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    fs::rename(tmp, dir)
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
