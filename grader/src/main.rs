//! The `grader` binary: a thin shell around [`grader::cli`].

fn main() -> std::process::ExitCode {
    grader::cli::main()
}
