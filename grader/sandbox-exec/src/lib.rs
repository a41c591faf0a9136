//! The sandbox's exec helper: what must happen between the grader and bubblewrap (or, for a run
//! without bubblewrap, the program) before anything of the run exists. It joins the run's cgroups
//! (so that nothing it starts can escape them), sets the rlimits, makes the OOM killer prefer it,
//! closes every descriptor it inherited above 2, opens the status fifo as fd 3, drops to the
//! sandbox user where asked, and execs. One exec of this small program replaces a bash wrapper and
//! `setpriv` (two execs of bigger ones, about 2 ms of CPU more for every test process).
//!
//! The grader builds the command line with [`Request::to_args`]; the helper reads it back with
//! [`Request::parse`]. It runs as `grader-sandbox-exec`, or as `grader` with [`SELF_ARG`] first
//! where only the one binary was installed.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::prctl::set_no_new_privs;
use nix::sys::resource::{setrlimit, Resource};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};

/// The first argument by which the `grader` binary itself serves as the helper.
pub const SELF_ARG: &str = "__sandbox-exec";

/// The exit code of a helper whose setup failed: the program never ran.
pub const SETUP_FAILED: u8 = 125;

/// The descriptor bubblewrap writes the run's status to (`--json-status-fd 3`).
const STATUS_FD: i32 = 3;

/// A resource limit the helper sets before it execs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Core dump size (`RLIMIT_CORE`).
    Core,
    /// CPU seconds (`RLIMIT_CPU`).
    Cpu,
    /// Address space in bytes (`RLIMIT_AS`).
    AddressSpace,
    /// Processes of the user (`RLIMIT_NPROC`).
    Processes,
}

impl Limit {
    const ALL: [Limit; 4] = [
        Limit::Core,
        Limit::Cpu,
        Limit::AddressSpace,
        Limit::Processes,
    ];

    /// Its name on the helper's command line.
    fn name(self) -> &'static str {
        match self {
            Limit::Core => "core",
            Limit::Cpu => "cpu",
            Limit::AddressSpace => "as",
            Limit::Processes => "nproc",
        }
    }

    fn resource(self) -> Resource {
        match self {
            Limit::Core => Resource::RLIMIT_CORE,
            Limit::Cpu => Resource::RLIMIT_CPU,
            Limit::AddressSpace => Resource::RLIMIT_AS,
            Limit::Processes => Resource::RLIMIT_NPROC,
        }
    }
}

/// What the helper is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The fifo the grader reads the run's status from, opened for writing as fd 3.
    pub status_fifo: PathBuf,
    /// `cgroup.procs` files the helper writes its pid to, first of all.
    pub cgroup_procs: Vec<PathBuf>,
    /// Limits with their soft and hard values.
    pub rlimits: Vec<(Limit, u64, u64)>,
    /// The uid and gid (one number) to drop to, without supplementary groups and with no new
    /// privileges from then on.
    pub user: Option<u32>,
    /// Run the program as a child and write its exit code to fd 3 as bubblewrap would
    /// (`{"exit-code": N}`, 128 + N for a death by signal N), then exit with it: a run without
    /// bubblewrap. Otherwise the helper becomes the program, which inherits fd 3.
    pub report_exit: bool,
    /// The program and its arguments.
    pub command: Vec<OsString>,
}

impl Request {
    /// The helper's command line for this request (after the program name or [`SELF_ARG`]).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--status-fifo".into(), self.status_fifo.clone().into()];
        for procs in &self.cgroup_procs {
            args.extend(["--cgroup-procs".into(), procs.clone().into()]);
        }
        for (limit, soft, hard) in &self.rlimits {
            args.extend([
                "--rlimit".into(),
                limit.name().into(),
                soft.to_string().into(),
                hard.to_string().into(),
            ]);
        }
        if let Some(user) = self.user {
            args.extend(["--user".into(), user.to_string().into()]);
        }
        if self.report_exit {
            args.push("--report-exit".into());
        }
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        args
    }

    /// Reads a command line made by [`Request::to_args`].
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request, String> {
        let mut args = args.into_iter();
        let mut request = Request {
            status_fifo: PathBuf::new(),
            cgroup_procs: Vec::new(),
            rlimits: Vec::new(),
            user: None,
            report_exit: false,
            command: Vec::new(),
        };
        let value = |args: &mut dyn Iterator<Item = OsString>, of: &str| {
            args.next().ok_or_else(|| format!("{of} needs a value"))
        };
        let number = |text: OsString, of: &str| {
            text.to_str()
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or_else(|| format!("{of}: {text:?} is not a number"))
        };
        while let Some(arg) = args.next() {
            match arg.to_str().unwrap_or_default() {
                "--status-fifo" => request.status_fifo = value(&mut args, "--status-fifo")?.into(),
                "--cgroup-procs" => request
                    .cgroup_procs
                    .push(value(&mut args, "--cgroup-procs")?.into()),
                "--rlimit" => {
                    let name = value(&mut args, "--rlimit")?;
                    let limit = Limit::ALL
                        .into_iter()
                        .find(|l| OsStr::new(l.name()) == name)
                        .ok_or_else(|| format!("unknown limit {name:?}"))?;
                    let soft = number(value(&mut args, "--rlimit")?, "--rlimit")?;
                    let hard = number(value(&mut args, "--rlimit")?, "--rlimit")?;
                    request.rlimits.push((limit, soft, hard));
                }
                "--user" => {
                    let user = number(value(&mut args, "--user")?, "--user")?;
                    request.user =
                        Some(u32::try_from(user).map_err(|_| format!("--user {user} is too big"))?);
                }
                "--report-exit" => request.report_exit = true,
                "--" => {
                    request.command = args.collect();
                    break;
                }
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        if request.status_fifo.as_os_str().is_empty() {
            return Err("--status-fifo is missing".into());
        }
        if request.command.is_empty() {
            return Err("no program after --".into());
        }
        Ok(request)
    }
}

/// The helper's `main`: reads the request from the command line (after [`SELF_ARG`], if the
/// `grader` binary serves as the helper) and carries it out. Returns only on failure, with
/// [`SETUP_FAILED`], or with the program's exit code after [`Request::report_exit`].
pub fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|a| a == SELF_ARG) {
        args.next();
    }
    let outcome = Request::parse(args)
        .map_err(|e| {
            (
                "command line",
                io::Error::new(io::ErrorKind::InvalidInput, e),
            )
        })
        .and_then(run);
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err((step, error)) => {
            eprintln!("sandbox-exec: {step}: {error}");
            ExitCode::from(SETUP_FAILED)
        }
    }
}

type Step<T> = Result<T, (&'static str, io::Error)>;

fn step<T, E: Into<io::Error>>(name: &'static str, result: Result<T, E>) -> Step<T> {
    result.map_err(|e| (name, e.into()))
}

/// Carries out `request`; returns only after a report-exit run, or on failure.
fn run(request: Request) -> Step<u8> {
    let pid = std::process::id().to_string();
    for procs in &request.cgroup_procs {
        step("joining a cgroup", fs::write(procs, &pid))?;
    }
    for (limit, soft, hard) in &request.rlimits {
        step(
            "setting an rlimit",
            setrlimit(limit.resource(), *soft, *hard),
        )?;
    }
    step(
        "oom_score_adj",
        fs::write("/proc/self/oom_score_adj", "1000"),
    )?;
    step("closing inherited descriptors", close_inherited_fds())?;
    let status = step(
        "opening the status fifo",
        OpenOptions::new().write(true).open(&request.status_fifo),
    )?;
    if status.as_raw_fd() != STATUS_FD {
        return Err((
            "opening the status fifo",
            io::Error::other(format!("it is fd {}, not {STATUS_FD}", status.as_raw_fd())),
        ));
    }
    if let Some(id) = request.user {
        step("dropping supplementary groups", setgroups(&[]))?;
        let (uid, gid) = (Uid::from_raw(id), Gid::from_raw(id));
        step("setting the gid", setresgid(gid, gid, gid))?;
        step("setting the uid", setresuid(uid, uid, uid))?;
        step("setting no new privileges", set_no_new_privs())?;
    }
    let mut command = Command::new(&request.command[0]);
    command.args(&request.command[1..]);
    if request.report_exit {
        // fd 3 stays close-on-exec: the program does not get it.
        let exit = step("running the program", command.status())?;
        let code = exit
            .code()
            .unwrap_or_else(|| 128 + exit.signal().unwrap_or(0));
        report(status, code)?;
        return Ok(u8::try_from(code).unwrap_or(u8::MAX));
    }
    step(
        "keeping fd 3 open for the program",
        fcntl(&status, FcntlArg::F_SETFD(FdFlag::empty())),
    )?;
    let _inherited_by_the_program = status.into_raw_fd();
    Err(("executing the program", command.exec()))
}

/// Writes the exit code as bubblewrap's status line.
fn report(mut status: File, code: i32) -> Step<()> {
    step(
        "reporting the exit code",
        writeln!(status, "{{\"exit-code\": {code}}}"),
    )
}

/// Closes every descriptor above 2. Rust opens its own close-on-exec, but whoever started the
/// grader may have left some open that are not (this machine's shell leaves two), and every
/// process of the run would inherit them.
#[allow(unsafe_code)]
fn close_inherited_fds() -> io::Result<()> {
    // The listing's own descriptor is among those read, and closed once they all are.
    let listed: Vec<i32> = fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in listed.into_iter().filter(|&fd| fd > 2) {
        if fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok() {
            // SAFETY: `fd` is open (just checked), and nothing in this process refers to it: the
            // helper has opened nothing of its own yet, so it was inherited, and owning it here
            // to close it cannot leave another owner with a dangling descriptor.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_as_it_was_written() {
        let request = Request {
            status_fifo: "/tmp/fifo".into(),
            cgroup_procs: vec!["/sys/fs/cgroup/a/cgroup.procs".into(), "/b".into()],
            rlimits: vec![
                (Limit::Core, 0, 0),
                (Limit::Cpu, 6, 7),
                (Limit::Processes, 9, 9),
            ],
            user: Some(65534),
            report_exit: true,
            command: vec!["/usr/bin/bwrap".into(), "--".into(), "-x".into()],
        };
        assert_eq!(Request::parse(request.to_args()), Ok(request));
    }

    #[test]
    fn a_bad_command_line_is_refused_with_its_reason() {
        let parse = |args: &[&str]| Request::parse(args.iter().map(OsString::from));
        assert!(parse(&["--", "/bin/true"])
            .unwrap_err()
            .contains("--status-fifo"));
        assert!(parse(&["--status-fifo", "/f", "--"])
            .unwrap_err()
            .contains("no program"));
        let err = parse(&[
            "--status-fifo",
            "/f",
            "--rlimit",
            "cpu",
            "x",
            "1",
            "--",
            "p",
        ]);
        assert!(err.unwrap_err().contains("not a number"));
        let err = parse(&[
            "--status-fifo",
            "/f",
            "--rlimit",
            "disk",
            "1",
            "1",
            "--",
            "p",
        ]);
        assert!(err.unwrap_err().contains("unknown limit"));
        assert!(parse(&["--status-fifo", "/f", "--bogus", "--", "p"])
            .unwrap_err()
            .contains("unknown argument"));
    }
}
