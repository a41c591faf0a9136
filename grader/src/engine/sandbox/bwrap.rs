//! The command line of a sandboxed run: the exec helper (cgroups, rlimits, fd hygiene, the drop
//! to the sandbox uid; see [`sandbox_exec`]) execs bubblewrap, which execs the program; and the
//! `--json-status-fd` channel through which bwrap tells us the program's exit code.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{mkfifo, Pid};
use sandbox_exec::{Limit, Request};
use serde::Serialize;

use super::host::PathMap;
use super::toolchain::TOOLCHAIN_MOUNT;
use super::{Limits, SandboxCommand, SANDBOX_GID, SANDBOX_UID};

// The helper drops to one number for both.
const _: () = assert!(SANDBOX_UID == SANDBOX_GID);

/// `PATH` inside the sandbox: the toolchain first, never a rustup proxy.
const SANDBOX_PATH: &str = "/opt/rust/bin:/usr/bin:/bin";

/// Host paths bound read-only when present, for every run: the dynamic loader's cache.
const LOADER_FILES: [&str; 1] = ["/etc/ld.so.cache"];

/// Host paths bound read-only when present, for runs that compile: the C linker's `cc`
/// alternatives and the loader's configuration.
const BUILD_FILES: [&str; 3] = ["/etc/alternatives", "/etc/ld.so.conf", "/etc/ld.so.conf.d"];

/// Top-level folders that are symlinks into `/usr` on merged-usr systems, real folders otherwise.
const USR_LINKS: [&str; 6] = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// Who bubblewrap runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Identity {
    /// bwrap runs as the sandbox uid/gid (65534, dropped to by the exec helper) in its own user
    /// namespace: on the host the sandboxed processes are uid 65534 with no capabilities.
    Unprivileged,
    /// Only where the operator opted in (see [`super::SandboxOptions::allow_root_mapped`]), when
    /// unprivileged user namespaces do not work: bwrap runs as root with `--unshare-user --uid
    /// 65534 --gid 65534 --cap-drop ALL`; inside it is uid 65534 without capabilities, but on the
    /// host the processes are still uid 0.
    RootMapped,
    /// We are not root: bwrap runs as the invoking user.
    Invoker,
    /// No sandbox at all: the program runs as the invoking user on the host, with the mounts
    /// emulated by path translation (see `host.rs`). Only where the caller allowed it
    /// ([`super::SandboxOptions::unsandboxed`]): `grader check` on a student's own machine.
    Unsandboxed,
}

impl Identity {
    /// The name used in reports (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Identity::Unprivileged => "unprivileged",
            Identity::RootMapped => "root-mapped",
            Identity::Invoker => "invoker",
            Identity::Unsandboxed => "unsandboxed",
        }
    }
}

/// Where the exec helper is: its own small binary, or the `grader` binary with
/// [`sandbox_exec::SELF_ARG`] first.
#[derive(Debug, Clone)]
pub(super) struct Helper {
    pub(super) program: PathBuf,
    pub(super) self_arg: bool,
}

/// Programs and host layout, fixed for a [`super::Sandbox`].
#[derive(Debug, Clone)]
pub(super) struct Setup {
    helper: Helper,
    pub(super) bwrap: PathBuf,
    pub(super) identity: Identity,
    /// bwrap options making the read-only system view of every run.
    system: Vec<OsString>,
    /// bwrap options adding what compiling needs (see [`SandboxCommand::toolchain`]).
    build_view: Vec<OsString>,
}

impl Setup {
    pub(super) fn new(
        helper: Helper,
        bwrap: PathBuf,
        identity: Identity,
        toolchain: PathBuf,
    ) -> Setup {
        let mut build_view = existing(&BUILD_FILES);
        build_view.extend(bind("--ro-bind", &toolchain, TOOLCHAIN_MOUNT));
        Setup {
            helper,
            bwrap,
            identity,
            system: system_view(),
            build_view,
        }
    }

    /// The full command for one run (stdio not yet configured).
    pub(super) fn command(
        &self,
        cmd: &SandboxCommand,
        limits: &Limits,
        rlimits: &[(Limit, u64, u64)],
        cgroup_procs: &[PathBuf],
        status_fifo: &Path,
    ) -> Command {
        let mut program = vec![self.bwrap.clone().into_os_string()];
        program.extend(self.bwrap_args(cmd, limits));
        let request = Request {
            status_fifo: status_fifo.to_owned(),
            cgroup_procs: cgroup_procs.to_vec(),
            rlimits: rlimits.to_vec(),
            user: (self.identity == Identity::Unprivileged).then_some(SANDBOX_UID),
            report_exit: false,
            command: program,
        };
        let mut command = self.helper_command(&request);
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/");
        command
    }

    /// The command for an unsandboxed run of `cmd`: the helper runs it with its paths, working
    /// folder and allowlisted environment translated to the host's by `paths`, in a process group
    /// of its own.
    pub(super) fn unsandboxed_command(
        &self,
        cmd: &SandboxCommand,
        paths: &PathMap,
        rlimits: &[(Limit, u64, u64)],
        cgroup_procs: &[PathBuf],
        status_fifo: &Path,
    ) -> Command {
        use std::os::unix::process::CommandExt;
        let mut program = vec![paths.to_host(&cmd.program).into()];
        program.extend(cmd.args.iter().map(|a| paths.to_host(a).into()));
        let request = Request {
            status_fifo: status_fifo.to_owned(),
            cgroup_procs: cgroup_procs.to_vec(),
            rlimits: rlimits.to_vec(),
            user: None,
            report_exit: true,
            command: program,
        };
        let mut command = self.helper_command(&request);
        command
            .env_clear()
            .current_dir(paths.to_host(&cmd.cwd))
            .process_group(0);
        for (key, value) in environment(cmd) {
            command.env(key, paths.to_host(&value));
        }
        command
    }

    fn helper_command(&self, request: &Request) -> Command {
        let mut command = Command::new(&self.helper.program);
        if self.helper.self_arg {
            command.arg(sandbox_exec::SELF_ARG);
        }
        command.args(request.to_args());
        command
    }

    fn bwrap_args(&self, cmd: &SandboxCommand, limits: &Limits) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        push(
            &mut args,
            &["--unshare-all", "--unshare-user", "--disable-userns"],
        );
        if self.identity == Identity::RootMapped {
            push(&mut args, &["--uid", &SANDBOX_UID.to_string()]);
            push(&mut args, &["--gid", &SANDBOX_GID.to_string()]);
        }
        push(
            &mut args,
            &["--die-with-parent", "--new-session", "--cap-drop", "ALL"],
        );
        push(&mut args, &["--hostname", "sandbox", "--clearenv"]);
        for (key, value) in environment(cmd) {
            push(&mut args, &["--setenv", &key, &value]);
        }
        args.extend(self.system.iter().cloned());
        if cmd.toolchain {
            args.extend(self.build_view.iter().cloned());
        }
        push(&mut args, &["--proc", "/proc", "--dev", "/dev"]);
        push(
            &mut args,
            &["--size", &limits.tmp_bytes.to_string(), "--tmpfs", "/tmp"],
        );
        // Parents before children, so that e.g. a read-only /work/vendor stays visible in /work.
        let mut mounts: Vec<(&str, &Path, &str)> = cmd
            .rw_mounts
            .iter()
            .map(|(host, inside)| ("--bind", host.as_path(), inside.as_str()))
            .chain(
                cmd.ro_mounts
                    .iter()
                    .map(|(host, inside)| ("--ro-bind", host.as_path(), inside.as_str())),
            )
            .collect();
        mounts.sort_by_key(|(_, _, inside)| Path::new(inside).components().count());
        for (option, host, inside) in mounts {
            args.extend(bind(option, host, inside));
        }
        push(
            &mut args,
            &[
                "--chdir",
                &cmd.cwd,
                "--json-status-fd",
                "3",
                "--",
                &cmd.program,
            ],
        );
        args.extend(cmd.args.iter().map(OsString::from));
        args
    }
}

fn push(args: &mut Vec<OsString>, items: &[&str]) {
    args.extend(items.iter().map(OsString::from));
}

fn bind(option: &str, host: &Path, inside: &str) -> [OsString; 3] {
    [option.into(), host.into(), inside.into()]
}

/// The allowlisted environment, overridden and extended by the command's own variables.
fn environment(cmd: &SandboxCommand) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PATH", SANDBOX_PATH),
        ("HOME", "/tmp"),
        ("TMPDIR", "/tmp"),
        ("CARGO_HOME", "/tmp/cargo-home"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (key, value) in &cmd.env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    env
}

/// Read-only `/usr`, the `/bin`-style links (or folders) and the loader's cache.
fn system_view() -> Vec<OsString> {
    let mut args: Vec<OsString> = bind("--ro-bind", Path::new("/usr"), "/usr").into();
    for path in USR_LINKS {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = fs::read_link(path) {
                    args.extend(["--symlink".into(), target.into(), path.into()]);
                }
            }
            Ok(meta) if meta.is_dir() => args.extend(bind("--ro-bind", Path::new(path), path)),
            _ => {}
        }
    }
    args.extend(existing(&LOADER_FILES));
    args
}

/// Read-only binds of those of `paths` that exist on the host, each at its own path.
fn existing(paths: &[&str]) -> Vec<OsString> {
    paths
        .iter()
        .filter(|path| Path::new(path).exists())
        .flat_map(|path| bind("--ro-bind", Path::new(path), path))
        .collect()
}

/// The fifo given to bwrap as `--json-status-fd`: bwrap writes `{"child-pid": N, ...}` once the
/// sandbox's pid 1 exists, and `{"exit-code": N}` only if the program was started (setup
/// finished), with the shell encoding (128 + signal for a signal death).
pub(super) struct StatusFifo {
    path: PathBuf,
    reader: File,
    text: String,
}

impl StatusFifo {
    /// Creates the fifo at `path` and opens its reading end (non-blocking, so that it never waits
    /// for a writer), before bwrap starts.
    pub(super) fn create(path: PathBuf) -> io::Result<StatusFifo> {
        mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR)?;
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(&path);
        match reader {
            Ok(reader) => Ok(StatusFifo {
                path,
                reader,
                text: String::new(),
            }),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The sandbox's pid 1, once bwrap reported it.
    pub(super) fn sandbox_init(&mut self) -> Option<SandboxInit> {
        Some(SandboxInit {
            pid: Pid::from_raw(i32::try_from(self.field("child-pid")?).ok()?),
            pid_namespace: self.field("pid-namespace")?,
        })
    }

    /// The program's exit code (shell encoding), if bwrap reported one.
    pub(super) fn exit_code(&mut self) -> Option<i32> {
        i32::try_from(self.field("exit-code")?).ok()
    }

    fn field(&mut self, key: &str) -> Option<i64> {
        let mut chunk = Vec::new();
        // WouldBlock (writer open, nothing new) and EOF (no writer) both end the read.
        let _ = self.reader.read_to_end(&mut chunk);
        self.text.push_str(&String::from_utf8_lossy(&chunk));
        self.text.lines().find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            value.get(key)?.as_i64()
        })
    }
}

/// The sandbox's pid 1 (bwrap's reaper), identified by its host pid and its pid namespace, so
/// that a recycled pid is never mistaken for it. When it dies the kernel kills every process in
/// its namespace, and it turns into a zombie only once they are all gone.
#[derive(Debug, Clone, Copy)]
pub(super) struct SandboxInit {
    pid: Pid,
    pid_namespace: i64,
}

impl SandboxInit {
    /// Whether it still runs (or is still tearing its namespace down).
    pub(super) fn is_alive(&self) -> bool {
        let ns = fs::read_link(format!("/proc/{}/ns/pid", self.pid));
        let ours =
            ns.is_ok_and(|link| link.to_string_lossy() == format!("pid:[{}]", self.pid_namespace));
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // The state follows the parenthesised command name, which may itself contain ") ".
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']));
        ours && !zombie
    }

    /// SIGKILLs it (and so its whole namespace) if it is still alive.
    pub(super) fn kill(&self) {
        if self.is_alive() {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

impl Drop for StatusFifo {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
