//! The `grader` binary: a thin shell around [`grader::cli`], and the sandbox's exec helper where
//! `grader-sandbox-exec` is not installed beside it.

fn main() -> std::process::ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == sandbox_exec::SELF_ARG)
    {
        return sandbox_exec::main();
    }
    grader::engine::sandbox::executable_serves_as_helper();
    grader::cli::main()
}
