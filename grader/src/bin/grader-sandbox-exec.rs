//! The `grader-sandbox-exec` binary: the sandbox's exec helper ([`sandbox_exec`]), small enough to
//! start in well under a millisecond.

fn main() -> std::process::ExitCode {
    sandbox_exec::main()
}
