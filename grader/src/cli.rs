//! Command-line interface: `grader grade`, `grader check`, `grader setup` (being written).

use std::process::ExitCode;

/// Entry point of the `grader` binary.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
