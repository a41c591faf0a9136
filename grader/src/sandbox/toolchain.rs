//! A world-readable copy of the pinned Rust toolchain, mounted read-only at `/opt/rust` in every
//! sandbox.
//!
//! The rustup toolchains live under `/root/.rustup`, which the sandbox user cannot reach (`/root`
//! is mode 0700), and the rustup proxies in `~/.cargo/bin` would honour a `rust-toolchain.toml`
//! with `path = ...` in the submission (which runs any program). So the sandbox gets only the
//! toolchain's own `bin/cargo`, `bin/rustc`, `lib/` and `libexec/`, hard-linked when possible.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use walkdir::WalkDir;

use super::ensure_world_traversable;

/// Where the toolchain is mounted inside the sandbox.
pub const TOOLCHAIN_MOUNT: &str = "/opt/rust";

/// Name of the file inside a prepared copy that records which toolchain it holds.
const VERSION_FILE: &str = ".grader-toolchain-version";

/// A prepared, world-readable toolchain copy on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    host_dir: PathBuf,
    version: String,
}

impl Toolchain {
    /// Prepares (or reuses) a copy at `dest` of the toolchain that `rustc --print sysroot` names.
    ///
    /// `rustc` is looked up in `PATH` and run from the current directory, so the toolchain pinned
    /// for the grader (rustup's rules) is the one copied. See [`Toolchain::prepare_from`].
    pub fn prepare(dest: &Path) -> io::Result<Toolchain> {
        let output = Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "`rustc --print sysroot` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Self::prepare_from(Path::new(&sysroot), dest)
    }

    /// Prepares (or reuses) a copy at `dest` of the toolchain whose sysroot is `sysroot`.
    ///
    /// Idempotent: when `dest` already holds this exact toolchain (same `rustc -vV` and
    /// `cargo -V`), nothing is copied. Otherwise the copy is built next to `dest` and renamed into
    /// place, so a concurrent or interrupted preparation never leaves a half-copied toolchain at
    /// `dest`. Files are hard-linked (`cp -al`) when `sysroot` and `dest` share a filesystem,
    /// copied (`cp -a`) otherwise; anything not readable by others is made so (for hard links this
    /// also changes the original, which only adds read permission). Fails if the sandbox user
    /// could not reach `dest`.
    pub fn prepare_from(sysroot: &Path, dest: &Path) -> io::Result<Toolchain> {
        let version = toolchain_version(sysroot)?;
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| invalid(format!("{} has no parent folder", dest.display())))?;
        fs::create_dir_all(parent)?;
        ensure_world_traversable(parent)?;
        let prepared = || Toolchain {
            host_dir: dest.to_owned(),
            version: version.clone(),
        };
        if recorded_version(dest).as_deref() == Some(version.as_str()) {
            return Ok(prepared());
        }

        let name = dest
            .file_name()
            .ok_or_else(|| invalid(format!("{} has no file name", dest.display())))?
            .to_string_lossy();
        let staging = parent.join(format!(".{name}.staging-{}", std::process::id()));
        remove_if_present(&staging)?;
        let result = build_copy(sysroot, &staging, &version).and_then(|()| {
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            if dest.exists() {
                fs::rename(dest, &old)?;
            }
            let renamed = fs::rename(&staging, dest);
            remove_if_present(&old)?;
            match renamed {
                Ok(()) => Ok(()),
                // Another process put the same toolchain in place first.
                Err(_) if recorded_version(dest).as_deref() == Some(version.as_str()) => Ok(()),
                Err(e) => Err(e),
            }
        });
        remove_if_present(&staging)?;
        result.map(|()| prepared())
    }

    /// The copy's folder on the host.
    pub fn host_dir(&self) -> &Path {
        &self.host_dir
    }

    /// The `rustc -vV` and `cargo -V` output identifying the toolchain.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Path of the toolchain's own `cargo` inside the sandbox (never the rustup proxy).
    pub fn cargo(&self) -> &'static str {
        "/opt/rust/bin/cargo"
    }

    /// Path of the toolchain's own `rustc` inside the sandbox (never the rustup proxy).
    pub fn rustc(&self) -> &'static str {
        "/opt/rust/bin/rustc"
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn toolchain_version(sysroot: &Path) -> io::Result<String> {
    let mut version = String::new();
    for (program, arg) in [("rustc", "-vV"), ("cargo", "-V")] {
        let path = sysroot.join("bin").join(program);
        let output = Command::new(&path).arg(arg).output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "`{} {arg}` failed: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        version.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    Ok(version)
}

fn recorded_version(dest: &Path) -> Option<String> {
    fs::read_to_string(dest.join(VERSION_FILE)).ok()
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn build_copy(sysroot: &Path, staging: &Path, version: &str) -> io::Result<()> {
    fs::create_dir(staging)?;
    fs::set_permissions(staging, fs::Permissions::from_mode(0o755))?;
    fs::create_dir(staging.join("bin"))?;
    fs::set_permissions(staging.join("bin"), fs::Permissions::from_mode(0o755))?;
    let same_fs = fs::metadata(sysroot)?.dev() == fs::metadata(staging)?.dev();
    let cp_flags = if same_fs { "-al" } else { "-a" };
    let parts = [
        ("bin/cargo", "bin/"),
        ("bin/rustc", "bin/"),
        ("lib", ""),
        ("libexec", ""),
    ];
    for (part, into) in parts {
        let source = sysroot.join(part);
        if part == "libexec" && !source.exists() {
            continue;
        }
        let status = Command::new("cp")
            .arg(cp_flags)
            .arg(&source)
            .arg(staging.join(into))
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "cp {cp_flags} {} failed ({status})",
                source.display()
            )));
        }
    }
    make_world_readable(staging)?;
    fs::write(staging.join(VERSION_FILE), version)?;
    Ok(())
}

/// Adds read permission for others everywhere, and search/execute where the owner has it.
fn make_world_readable(root: &Path) -> io::Result<()> {
    for entry in WalkDir::new(root) {
        let entry = entry.map_err(io::Error::other)?;
        if entry.path_is_symlink() {
            continue;
        }
        let mode = entry
            .metadata()
            .map_err(io::Error::other)?
            .permissions()
            .mode();
        let wanted = mode | 0o004 | if mode & 0o100 != 0 { 0o001 } else { 0 };
        if wanted != mode {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(wanted))?;
        }
    }
    Ok(())
}
