//! Sandboxes set up ahead of their program: the exec helper's work, bubblewrap's namespaces and
//! mounts and the cgroups all exist, and a shell inside waits to become the program. A sandbox's
//! setup is most of its cost (about four fifths of the CPU time of a short test's process on the
//! development machine), so a grading arms its test processes' sandboxes while the crate still
//! builds, when a core is often idle, and its test processes then start in a sandbox that is
//! already there. The isolation is the same as [`Sandbox::run`]'s: one sandbox per process.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use tracing::warn;

use super::toolchain::TOOLCHAIN_MOUNT;
use super::{
    validate, wait_until_gone, Identity, Limits, Mechanism, RunResult, Sandbox, SandboxCommand,
    SandboxError, Spawned,
};

/// What bubblewrap runs in an armed sandbox: reads the program and its arguments from stdin, one
/// per line, until it closes, then becomes the program with stdin on `/dev/null`, as a run's
/// program has it. Nothing read (the sandbox was disarmed): it exits without running anything.
const LAUNCHER: &str = r#"while IFS= read -r arg; do set -- "$@" "$arg"; done
[ $# -gt 0 ] || exit 125
exec "$@" </dev/null"#;

/// A sandbox armed by [`Sandbox::arm`], waiting for its program. [`Armed::run`] runs one;
/// dropped unused, it is disarmed: its processes killed, its cgroups removed.
pub struct Armed<'s> {
    sandbox: &'s Sandbox,
    /// The launcher's command: the template's mounts, environment and folder.
    launcher: SandboxCommand,
    limits: Limits,
    spawned: Option<Spawned>,
}

impl Sandbox {
    /// Arms a sandbox for a later run ([`Armed::run`]) of a command with `template`'s mounts,
    /// environment and working folder (its program and arguments are not used) under `limits`
    /// (their CPU time the most a run may have). `None` where arming does not apply: runs without
    /// a sandbox, and CPU time limited only by `RLIMIT_CPU`, which is set before the program is
    /// known.
    ///
    /// Bubblewrap dies with the thread that armed it (`--die-with-parent`): that thread must live
    /// until the armed sandbox has run or been dropped.
    pub fn arm(
        &self,
        template: &SandboxCommand,
        limits: &Limits,
    ) -> Result<Option<Armed<'_>>, SandboxError> {
        if self.setup.identity == Identity::Unsandboxed
            || self.capabilities.enforcement.cpu == Mechanism::Rlimit
        {
            return Ok(None);
        }
        let launcher = SandboxCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), LAUNCHER.into(), "launcher".into()],
            stdin: None,
            ..template.clone()
        };
        validate(&launcher, limits)?;
        let spawned = self.spawn(&launcher, limits, Stdio::piped(), true)?;
        Ok(Some(Armed {
            sandbox: self,
            launcher,
            limits: limits.clone(),
            spawned: Some(spawned),
        }))
    }
}

impl Armed<'_> {
    /// Runs `cmd` under `limits` in this sandbox, with the result [`Sandbox::run`] would give
    /// (limits count from now). A command or limits this sandbox was not armed for (other mounts,
    /// environment, folder, toolchain, input, memory, tasks or `/tmp`, more CPU time, a program
    /// that does not exist) run through [`Sandbox::run`] instead.
    pub fn run(mut self, cmd: &SandboxCommand, limits: &Limits) -> Result<RunResult, SandboxError> {
        validate(cmd, limits)?;
        if !self.fits(cmd, limits) {
            let sandbox = self.sandbox;
            drop(self);
            return sandbox.run(cmd, limits);
        }
        let mut spawned = self.spawned.take().expect("armed until run or dropped");
        let mut lines = Vec::new();
        for arg in std::iter::once(&cmd.program).chain(&cmd.args) {
            lines.extend_from_slice(arg.as_bytes());
            lines.push(b'\n');
        }
        // Its setup used only idle time; its program gets the usual share.
        let normal = spawned.cgroup.set_low_weight(false);
        if let Err(e) = normal {
            self.sandbox.disarm(spawned);
            return Err(SandboxError::Cgroup(e));
        }
        spawned.started = Instant::now();
        if let Some(mut stdin) = spawned.child.stdin.take() {
            // A sandbox that died in its setup reads nothing: `finish` reports why.
            let _ = stdin.write_all(&lines);
        }
        self.sandbox.finish(spawned, cmd, limits)
    }

    fn fits(&self, cmd: &SandboxCommand, limits: &Limits) -> bool {
        let (armed, armed_limits) = (&self.launcher, &self.limits);
        let one_line_each = !std::iter::once(&cmd.program)
            .chain(&cmd.args)
            .any(|a| a.contains('\n'));
        cmd.env == armed.env
            && cmd.cwd == armed.cwd
            && cmd.toolchain == armed.toolchain
            && cmd.ro_mounts == armed.ro_mounts
            && cmd.rw_mounts == armed.rw_mounts
            && cmd.stdin.is_none()
            && limits.memory_bytes == armed_limits.memory_bytes
            && limits.tasks == armed_limits.tasks
            && limits.tmp_bytes == armed_limits.tmp_bytes
            && limits.cpu <= armed_limits.cpu
            && one_line_each
            && self.program_exists(&cmd.program)
    }

    /// Whether `program` is a file on the host side of the mounts. bwrap refuses a program it
    /// cannot run (a setup error, the grader's fault), while the launcher would exit with the
    /// shell's 127 like a program that failed: such a run must go through [`Sandbox::run`].
    /// Names looked up in `PATH` are trusted.
    fn program_exists(&self, program: &str) -> bool {
        let program = Path::new(program);
        if !program.is_absolute() {
            return true;
        }
        let toolchain = (self.sandbox.toolchain.host_dir(), TOOLCHAIN_MOUNT);
        let mounts = self
            .launcher
            .ro_mounts
            .iter()
            .chain(&self.launcher.rw_mounts)
            .map(|(host, inside)| (host.as_path(), inside.as_str()))
            .chain(self.launcher.toolchain.then_some(toolchain));
        let host: PathBuf = mounts
            .filter_map(|(host, inside)| Some((host, program.strip_prefix(inside).ok()?, inside)))
            .max_by_key(|(_, _, inside)| inside.len())
            // Outside every mount: the read-only system view, the host's own paths.
            .map_or_else(|| program.to_owned(), |(host, rest, _)| host.join(rest));
        let plain = host
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        plain && host.is_file()
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        if let Some(spawned) = self.spawned.take() {
            self.sandbox.disarm(spawned);
        }
    }
}

impl Sandbox {
    /// Kills an armed sandbox that will not run and removes its cgroups.
    fn disarm(&self, spawned: Spawned) {
        let Spawned {
            cgroup,
            mut fifo,
            mut child,
            ..
        } = spawned;
        // The launcher reads nothing and exits; whatever is left is killed.
        drop(child.stdin.take());
        let killed = self.kill_run(&mut child, &cgroup, &mut fifo);
        let _ = child.wait();
        let gone = fifo.sandbox_init().map_or(Ok(()), wait_until_gone);
        let removed = cgroup.remove();
        if let Err(error) = killed {
            warn!(%error, "disarming a sandbox: killing it failed");
        }
        if let Err(error) = gone.and(removed) {
            warn!(%error, "disarming a sandbox: its clean-up failed");
        }
    }
}
