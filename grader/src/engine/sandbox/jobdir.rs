//! Per-job work folders on the host, size-capped by a private tmpfs when we are root.

use std::fmt;
use std::io;
use std::os::unix::fs::lchown;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chown, geteuid, Gid, Uid};
use tempfile::TempDir;
use tracing::warn;
use walkdir::WalkDir;

use super::{ensure_world_traversable, SANDBOX_GID, SANDBOX_UID};

/// Default size cap of a job folder: 1 GiB.
pub const DEFAULT_JOB_DIR_BYTES: u64 = 1 << 30;

/// A fresh, private job folder, bound read-write into the sandbox (usually at `/work`).
///
/// When we are root, a tmpfs of `size_limit` bytes (mode 0700, owned by the sandbox user, `nosuid`,
/// `nodev`) is mounted on it, so filling it fails with `ENOSPC` instead of filling the host disk;
/// otherwise it is a plain folder and [`JobDir::is_size_capped`] says the cap did not hold. On drop
/// the tmpfs is unmounted (lazily if still busy) and the folder removed with everything in it.
pub struct JobDir {
    dir: TempDir,
    size_limit: u64,
    mounted: bool,
}

impl JobDir {
    /// Creates a job folder inside `parent`, which the sandbox user must be able to traverse.
    pub fn create(parent: &Path, size_limit: u64) -> io::Result<JobDir> {
        let root = geteuid().is_root();
        if root {
            ensure_world_traversable(parent)?;
        }
        let dir = tempfile::Builder::new().prefix("job-").tempdir_in(parent)?;
        let mut job = JobDir {
            dir,
            size_limit,
            mounted: false,
        };
        if !root {
            return Ok(job);
        }
        let options = format!("size={size_limit},mode=0700,uid={SANDBOX_UID},gid={SANDBOX_GID}");
        match mount(
            Some("tmpfs"),
            job.dir.path(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_str()),
        ) {
            Ok(()) => job.mounted = true,
            Err(e) => {
                warn!(
                    error = %e,
                    path = %job.path().display(),
                    "no tmpfs for the job folder: its size is not capped"
                );
                chown(
                    job.dir.path(),
                    Some(Uid::from_raw(SANDBOX_UID)),
                    Some(Gid::from_raw(SANDBOX_GID)),
                )?;
            }
        }
        Ok(job)
    }

    /// The folder on the host.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the size cap holds (a tmpfs is mounted on the folder).
    pub fn is_size_capped(&self) -> bool {
        self.mounted
    }

    /// Gives everything in the folder to the sandbox user, so that runs can modify what the grader
    /// wrote there (files written as root are only readable to the sandbox). Links are not
    /// followed. Call it only while no run uses the folder: a running sandbox could swap a folder
    /// for a link under the walk.
    pub fn hand_over(&self) -> io::Result<()> {
        if !geteuid().is_root() {
            return Ok(());
        }
        for entry in WalkDir::new(self.path()).follow_links(false) {
            let entry = entry.map_err(io::Error::other)?;
            lchown(entry.path(), Some(SANDBOX_UID), Some(SANDBOX_GID))?;
        }
        Ok(())
    }

    /// The requested size cap in bytes (enforced only if [`JobDir::is_size_capped`]).
    pub fn size_limit(&self) -> u64 {
        self.size_limit
    }
}

impl fmt::Debug for JobDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobDir")
            .field("path", &self.path())
            .field("size_limit", &self.size_limit)
            .field("size_capped", &self.mounted)
            .finish()
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let path = self.dir.path();
        let result = match umount2(path, MntFlags::empty()) {
            Err(Errno::EBUSY) => umount2(path, MntFlags::MNT_DETACH),
            other => other,
        };
        if let Err(e) = result {
            // Removing the folder would now delete the tmpfs contents one by one; leave it.
            warn!(error = %e, path = %path.display(), "cannot unmount job folder");
            self.dir.disable_cleanup(true);
        }
    }
}
