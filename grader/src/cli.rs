//! Command-line interface: `grader grade`, `grader check`, `grader setup` and `grader validate`.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::{Config, Engine, Input, Mode, Progress, DEFAULT_DATA_DIR};
use crate::report::{Outcome, Report, Status};
use crate::validate;

/// Grades `02_runtime` async-runtime crates: sandboxed build, one process per test, rubric scores.
#[derive(Debug, Parser)]
#[command(name = "grader", version)]
pub struct Cli {
    /// Data folder: toolchain copy, vendored crates, warm build cache and job folders.
    #[arg(
        long,
        env = "GRADER_DATA_DIR",
        default_value = DEFAULT_DATA_DIR,
        global = true
    )]
    pub data_dir: PathBuf,
    /// The hidden tests package (with its rubric.toml).
    #[arg(long, env = "GRADER_HIDDEN_TESTS", default_value = default_hidden_tests(), global = true)]
    pub hidden_tests: PathBuf,
    /// Test processes run at once (default: the number of cores).
    #[arg(long, env = "GRADER_JOBS", global = true)]
    pub jobs: Option<usize>,
    /// Where unprivileged user namespaces are restricted, run sandboxes as root mapped to uid 65534
    /// (weaker: their processes are uid 0 on the host) instead of refusing to grade.
    #[arg(
        long,
        env = "GRADER_ALLOW_ROOT_MAPPED_SANDBOX",
        global = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_root_mapped_sandbox: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

fn default_hidden_tests() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../hidden-tests")
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Grade a submission with the hidden tests and print its report (exit 0 whenever a report was
    /// produced, whatever the score).
    Grade {
        /// A crate folder, or a .tar.gz/.tgz/.zip archive of one.
        path: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Show the report as the student sees it (hidden tests unnamed, no hidden output).
        #[arg(long)]
        student: bool,
    },
    /// Check your crate locally: the same pipeline as the server, on the public tests.
    Check {
        /// Your crate folder (or an archive of it).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Prepare the toolchain copy, the vendored crates and the warm build cache, then exit.
    Setup,
    /// Instructors: grade every known solution (template, correct, buggy variants) and print the
    /// matrix of solution x category; exit 1 unless each gets what it must in every run.
    Validate {
        /// The repository holding exercise-template/ and solutions/.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
        repo: PathBuf,
        /// Test runs per solution (one build each).
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Only solutions whose name contains this.
        #[arg(long)]
        only: Option<String>,
    },
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: colours on a terminal, a summary per category, each failure with its hint.
    Text,
    /// The stable JSON report (see the README).
    Json,
}

/// Entry point of the `grader` binary.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, crate::engine::EngineError> {
    let mut config = Config::new(cli.data_dir, cli.hidden_tests);
    if let Some(jobs) = cli.jobs {
        config.jobs = jobs;
    }
    config.sandbox.allow_root_mapped = cli.allow_root_mapped_sandbox;
    let engine = Engine::new(config)?;
    let (path, format, mode, student) = match cli.command {
        Command::Setup => {
            eprintln!("ready: toolchain, vendored crates and warm cache are prepared");
            return Ok(ExitCode::SUCCESS);
        }
        Command::Validate { repo, runs, only } => {
            let on_row = |row: &validate::Row| {
                eprintln!(
                    "{}: {}",
                    row.name,
                    row.problem.as_deref().unwrap_or("as expected")
                );
            };
            let rows = validate::run(&engine, &repo, runs, only.as_deref(), &on_row)?;
            print!("{}", validate::render(&rows));
            let ok = rows.iter().all(|r| r.problem.is_none());
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Grade {
            path,
            format,
            student,
        } => (path, format, Mode::Hidden, student),
        Command::Check { path, format } => (path, format, Mode::Public, false),
    };
    let color = std::io::stdout().is_terminal() && format == Format::Text;
    let progress = |p: Progress| {
        if std::io::stderr().is_terminal() {
            match p {
                Progress::Checking => eprint!("\rchecking the upload…"),
                Progress::Building => eprint!("\r\x1b[Kbuilding…"),
                Progress::Testing { done, total, .. } => eprint!("\r\x1b[Ktesting {done}/{total}"),
                Progress::Finished => eprint!("\r\x1b[K"),
            }
        }
    };
    let report = engine.grade(Input::Path(&path), mode, &progress)?;
    let report = if student {
        report.for_student()
    } else {
        report
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialise")
        ),
        Format::Text => print!("{}", render_text(&report, color)),
    }
    Ok(ExitCode::SUCCESS)
}

/// How many of a failing test's last output lines the text report shows.
const OUTPUT_LINES: usize = 8;

/// Renders a report for a terminal.
pub fn render_text(report: &Report, color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let headline = format!("Score: {}/{}", report.score, report.max_score);
    let _ = writeln!(out, "{}", paint("1", &headline));
    match report.status {
        Status::Graded => {}
        Status::Rejected => {
            let _ = writeln!(out, "{}", paint("31", "Submission refused."));
        }
        Status::BuildFailed => {
            let _ = writeln!(out, "{}", paint("31", "Build failed."));
        }
    }
    if let Some(m) = &report.message {
        let _ = writeln!(out, "{m}");
    }
    for d in &report.diagnostics {
        let _ = writeln!(out, "\n{}", d.rendered.trim_end());
    }
    if !report.categories.is_empty() {
        let _ = writeln!(out, "\nBy category:");
        for (name, c) in &report.categories {
            let code = if c.score == c.max_score { "32" } else { "33" };
            let _ = writeln!(
                out,
                "  {:<16} {}",
                name,
                paint(code, &format!("{:>3}/{:<3}", c.score, c.max_score))
            );
        }
    }
    let failures: Vec<_> = report.failures().collect();
    if !failures.is_empty() && report.status == Status::Graded {
        let _ = writeln!(out, "\nNot passed:");
        for t in failures {
            let outcome = match t.outcome {
                Outcome::Passed => "passed",
                Outcome::Failed => "failed",
                Outcome::TimedOut => "timed out",
                Outcome::Crashed => "crashed",
                Outcome::MemoryLimit => "memory limit",
                Outcome::NotRun => "not run",
            };
            let _ = writeln!(
                out,
                "  {} {} [{}] {} ms",
                paint("31", "✗"),
                paint("1", &t.name),
                t.category,
                t.duration_ms
            );
            let _ = writeln!(
                out,
                "      {outcome}{}",
                t.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            if let Some(h) = &t.hint {
                let _ = writeln!(out, "      hint: {h}");
            }
            if let Some(output) = &t.output {
                // libtest's own scaffolding says nothing the outcome line does not.
                let scaffolding = |l: &str| {
                    let t = l.trim();
                    t.is_empty()
                        || t == "failures:"
                        || t.starts_with("---- ")
                        || t.starts_with("running ")
                        || t.starts_with("test result:")
                        || t.starts_with("note: run with `RUST_BACKTRACE")
                        || (t.starts_with("test ") && t.ends_with(" ... FAILED"))
                        || (!t.contains(' ') && t.contains("::"))
                };
                let lines: Vec<&str> = output.lines().filter(|l| !scaffolding(l)).collect();
                let shown = &lines[lines.len().saturating_sub(OUTPUT_LINES)..];
                for line in shown {
                    let _ = writeln!(out, "      | {}", line.replace("runtime/src/", "src/"));
                }
            }
        }
    }
    if !report.ignored_files.is_empty() {
        let _ = writeln!(out, "\nIgnored files:");
        for f in &report.ignored_files {
            let _ = writeln!(out, "  {} ({})", f.path, f.reason);
        }
    }
    let t = &report.timings;
    let _ = writeln!(
        out,
        "\n{}",
        paint(
            "2",
            &format!(
                "build {} ms, tests {} ms, total {} ms",
                t.build_ms, t.run_ms, t.total_ms
            )
        )
    );
    out
}
