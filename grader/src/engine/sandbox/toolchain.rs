//! A world-readable copy of the pinned Rust toolchain, mounted read-only at `/opt/rust` in every
//! sandbox.
//!
//! The rustup toolchains live under `/root/.rustup`, which the sandbox user cannot reach (`/root`
//! is mode 0700), and the rustup proxies in `~/.cargo/bin` would honour a `rust-toolchain.toml`
//! with `path = ...` in the submission (which runs any program). So the sandbox gets only the
//! toolchain's own `bin/cargo`, `bin/rustc`, `lib/` and `libexec/`, hard-linked when possible.
//!
//! The few Rust tools the grader runs on the host (`rustc --print sysroot` to find the toolchain,
//! `cargo vendor`) go through [`host_tool`]: they run from the data folder, never from the folder
//! the grader was started in (a student's crate for `grader check`, whose `rust-toolchain.toml`
//! could name any program as the toolchain and whose `.cargo/config.toml` would configure cargo),
//! and without the environment variables that would redirect them.

use std::ffi::OsStr;
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

/// A command for a Rust tool run on the host: started in `trusted_dir` (the data folder: rustup
/// and cargo read their toolchain file and configuration from the current folder and its
/// ancestors), without the variables that choose another compiler, wrapper, flags or crate source
/// (`RUSTC*`, `RUSTFLAGS`, `CARGO_*` but for `CARGO_HOME` and the network settings), and without a
/// `RUSTUP_TOOLCHAIN` that a rustup proxy set from some folder's toolchain file or override (one the
/// operator set, or chose with `cargo +toolchain`, is kept).
pub fn host_tool(program: impl AsRef<OsStr>, trusted_dir: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(trusted_dir);
    let chosen_by_operator = std::env::var("RUSTUP_TOOLCHAIN_SOURCE")
        .map_or(true, |source| source == "env" || source == "cli");
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let redirects = key.starts_with("RUSTC")
            || key.starts_with("RUSTDOC")
            || key == "RUSTFLAGS"
            || key == "CARGO"
            || (key.starts_with("CARGO_")
                && key != "CARGO_HOME"
                && !key.starts_with("CARGO_HTTP_")
                && !key.starts_with("CARGO_NET_"))
            || key == "RUSTUP_TOOLCHAIN_SOURCE"
            || (key == "RUSTUP_TOOLCHAIN" && !chosen_by_operator);
        if redirects {
            command.env_remove(key);
        }
    }
    command
}

impl Toolchain {
    /// Prepares (or reuses) a copy at `dest` of the toolchain that `rustc --print sysroot` names.
    ///
    /// `rustc` (the rustup proxy, looked up in `PATH`) runs through [`host_tool`] in `dest`'s
    /// parent, the data folder: the toolchain is the one rustup picks there (`RUSTUP_TOOLCHAIN` set
    /// by the operator, an override or `rust-toolchain.toml` of the data folder, else the
    /// default), whatever folder the grader was started in. See [`Toolchain::prepare_from`].
    pub fn prepare(dest: &Path) -> io::Result<Toolchain> {
        let data_dir = trusted_parent(dest)?;
        fs::create_dir_all(data_dir)?;
        let output = host_tool("rustc", data_dir)
            .args(["--print", "sysroot"])
            .output()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => io::Error::new(
                    e.kind(),
                    "`rustc` is not on PATH: install Rust (rustup) or put its bin folder on PATH",
                ),
                _ => e,
            })?;
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
        let parent = trusted_parent(dest)?;
        fs::create_dir_all(parent)?;
        let version = toolchain_version(sysroot, parent)?;
        // Only root's sandbox runs as another user; a user's sandbox (or unsandboxed run) is
        // the user, who can reach their own cache folder under a private home.
        if nix::unistd::geteuid().is_root() {
            ensure_world_traversable(parent)?;
        }
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

/// The folder holding `dest` (the data folder), where host tools run.
fn trusted_parent(dest: &Path) -> io::Result<&Path> {
    dest.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| invalid(format!("{} has no parent folder", dest.display())))
}

fn toolchain_version(sysroot: &Path, trusted_dir: &Path) -> io::Result<String> {
    let mut version = String::new();
    for (program, arg) in [("rustc", "-vV"), ("cargo", "-V")] {
        let path = sysroot.join("bin").join(program);
        let output = host_tool(&path, trusted_dir).arg(arg).output()?;
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
        let copy = |flags: &str| {
            Command::new("cp")
                .arg(flags)
                .arg(&source)
                .arg(staging.join(into))
                .stderr(std::process::Stdio::null())
                .status()
        };
        let mut status = copy(cp_flags)?;
        // Hard links to files of another user are refused where `protected_hardlinks` is on
        // (a student's toolchain may be the system's): copy instead.
        if !status.success() && cp_flags == "-al" {
            status = copy("-a")?;
        }
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
