//! Command-line interface: `grader grade`, `grader check`, `grader setup`, `grader validate`,
//! `grader serve` and `grader roster`; for students `check`, `login`, `submit`, `status` and
//! `history`.

pub mod client;
pub mod solutions;
pub mod student;
pub mod validate;

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::report::{Outcome, Report, Status};
use crate::engine::suite::{self, HiddenTests, HiddenTestsError};
use crate::engine::{Config, Engine, EngineError, Input, Mode, Progress};
use crate::server;
use crate::server::policy::ScorePolicy;

/// Grades `02_runtime` async-runtime crates: sandboxed build, one process per test, rubric scores.
#[derive(Debug, Parser)]
#[command(name = "grader", version)]
pub struct Cli {
    /// Data folder: toolchain copy, vendored crates, warm build cache, job folders, and the
    /// server's database (grader.db) and uploads. Default: /var/lib/runtime-grader for root,
    /// else $XDG_CACHE_HOME/runtime-grader or ~/.cache/runtime-grader.
    #[arg(
        long,
        env = "GRADER_DATA_DIR",
        default_value_os_t = student::default_data_dir(),
        global = true
    )]
    pub data_dir: PathBuf,
    /// The hidden tests package (its tests/, src/ and rubric.toml). Without it, the one that
    /// `grader setup --hidden-tests DIR` recorded in the data folder.
    #[arg(long, env = "GRADER_HIDDEN_TESTS", global = true)]
    pub hidden_tests: Option<PathBuf>,
    /// Job slots for test processes (default: the number of cores): each runs two busy test
    /// processes at once, and up to eight while a core is idle or the tests wait on timers.
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
    /// Format of the log lines on stderr (`RUST_LOG` chooses what is logged; default `info` for
    /// `serve`, else `warn`).
    #[arg(
        long,
        env = "GRADER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Grade a submission with the hidden tests and print its report (exit 0 whenever a report was
    /// produced, whatever the score; 2, without a report, when the path cannot be read).
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
    /// Check your crate locally: the same pipeline as the server, on the public tests (exit 0
    /// when all pass, 1 when one fails or the crate does not build, 2 when it cannot be used).
    Check {
        /// Your crate folder (or an archive of it).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Run without the bubblewrap sandbox even where it works (it is your own code).
        #[arg(long)]
        no_sandbox: bool,
    },
    /// Save the grading server's address and your token (in ~/.config/runtime-grader/config.toml,
    /// readable only by you) for submit, status and history.
    Login {
        /// The server, e.g. https://grader.example.edu
        url: String,
        /// Your API token (from your instructor).
        token: String,
    },
    /// Upload your crate for grading, follow it live and print your report (exit as for check).
    Submit {
        /// Your crate folder.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// The server and your token.
        #[command(flatten)]
        server: ServerArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show a submission's report: the given one, else your latest.
    Status {
        /// The submission's number.
        id: Option<i64>,
        /// The server and your token.
        #[command(flatten)]
        server: ServerArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List your submissions: time, status, score, late mark.
    History {
        /// The server and your token.
        #[command(flatten)]
        server: ServerArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Prepare the toolchain copy, the vendored crates and the warm build cache, check the hidden
    /// tests against their rubric and record their folder in the data folder, then exit.
    Setup,
    /// Instructors: grade every known solution (template, correct, buggy variants) and print the
    /// matrix of solution x category; exit 1 unless each gets what it must in every run.
    Validate {
        /// The repository holding exercise-template/ and solutions/.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Test runs per solution (one build each).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Only solutions whose name contains this.
        #[arg(long)]
        only: Option<String>,
    },
    /// Run the grading server (JSON API, durable queue in DATA_DIR/grader.db or PostgreSQL) until
    /// SIGINT or SIGTERM; then stop taking uploads, let running gradings finish, and exit 0.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "GRADER_BIND", default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// The database, workers and leases.
        #[command(flatten)]
        grading: GradingArgs,
        /// Largest accepted upload, in bytes (default: the intake's archive limit).
        #[arg(long, env = "GRADER_UPLOAD_LIMIT")]
        upload_limit: Option<u64>,
        /// Shortest time between two uploads of a student, in seconds (0: no limit).
        #[arg(long, env = "GRADER_MIN_INTERVAL_SECS", default_value_t = 30)]
        min_interval_secs: u64,
        /// Uploads a student may make in any 24 hours (0: no limit).
        #[arg(long, env = "GRADER_PER_DAY", default_value_t = 30)]
        per_day: u32,
        /// The deadline, RFC 3339 (e.g. 2026-12-24T23:59:00Z); later uploads are accepted, marked
        /// late and penalised.
        #[arg(long, env = "GRADER_DEADLINE", value_parser = parse_time)]
        deadline: Option<i64>,
        /// Percent of the score a late upload loses per started day late (capped at 100).
        #[arg(long, env = "GRADER_LATE_PENALTY", default_value_t = 10)]
        late_penalty: u32,
        /// Which submission of a student the gradebook counts.
        #[arg(long, env = "GRADER_SCORE_POLICY", value_enum, default_value_t = ScorePolicy::Best)]
        score_policy: ScorePolicy,
    },
    /// Grade jobs from a PostgreSQL queue shared with `grader serve --database postgres://…` and
    /// other workers, on this machine's caches and sandbox, until SIGINT or SIGTERM; then let
    /// running gradings finish and exit 0.
    Worker {
        /// The database, workers and leases.
        #[command(flatten)]
        grading: GradingArgs,
    },
    /// The server's people and their API tokens.
    Roster {
        /// The database (default: sqlite://DATA_DIR/grader.db).
        #[arg(long, env = "GRADER_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// What to do.
        #[command(subcommand)]
        command: RosterCommand,
    },
}

/// The options of the processes that grade from the queue (`serve`, `worker`).
#[derive(Debug, Clone, clap::Args)]
pub struct GradingArgs {
    /// The database: sqlite://FILE (one process owns it) or postgres://USER:PASSWORD@HOST/DB
    /// (shared by `serve` and any number of `worker`s). Default: sqlite://DATA_DIR/grader.db.
    #[arg(long, env = "GRADER_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Grading workers (default: half the cores, at least 1); each grades with
    /// cores / workers test processes unless --jobs says otherwise. `serve --workers 0` (with
    /// PostgreSQL only) leaves grading to `grader worker` processes.
    #[arg(long, env = "GRADER_WORKERS")]
    pub workers: Option<u32>,
    /// Seconds a claimed job stays its worker's without a heartbeat (renewed every third of
    /// it); a worker silent that long is taken for dead and its job graded again.
    #[arg(long, env = "GRADER_LEASE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(3..))]
    pub lease_secs: u64,
    /// Seconds shutdown waits for running gradings.
    #[arg(long, env = "GRADER_DRAIN_SECS", default_value_t = 300)]
    pub drain_secs: u64,
}

impl GradingArgs {
    /// Refuses what cannot work before anything is prepared: a worker process on SQLite (one
    /// process owns the file), no workers at all on SQLite (nothing else could grade).
    fn check(&self, worker: bool) -> Result<(), CliError> {
        let postgres = self.database.as_deref().is_some_and(|url| {
            server::db::Backend::of_url(url) == Some(server::db::Backend::Postgres)
        });
        if worker && !postgres {
            return Err(CliError::Usage(
                "grader worker needs --database postgres://…: a SQLite file belongs to the one \
                 `grader serve` that opened it, whose own workers grade"
                    .into(),
            ));
        }
        if self.workers == Some(0) && (worker || !postgres) {
            return Err(CliError::Usage(
                "--workers 0 leaves grading to `grader worker` processes, which need \
                 --database postgres://…"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The server's options for these arguments.
    fn options(&self, data_dir: PathBuf, workers: usize) -> server::Options {
        server::Options {
            data_dir,
            database: self.database.clone(),
            bind: None,
            workers,
            upload_limit: 0,
            drain: Duration::from_secs(self.drain_secs),
            retry_delay: server::RETRY_DELAY,
            lease: Duration::from_secs(self.lease_secs),
            rubric_entries: 0,
            policy: server::policy::Policy::default(),
        }
    }
}

/// `grader roster` subcommands (they need only the data folder's database).
#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// Create or update people from a CSV `id,name,email,role` (role: student or instructor) and
    /// print each new person's token, once (`id<TAB>token` per line).
    Import {
        /// The roster file.
        file: PathBuf,
    },
    /// Issue a new token for a person (their old one stops working) and print it.
    Token {
        /// The person's roster id.
        id: String,
    },
    /// Give a person their own deadline (replacing an earlier extension).
    Extend {
        /// The person's roster id.
        id: String,
        /// Their deadline, RFC 3339 (e.g. 2026-12-31T23:59:00Z).
        #[arg(value_parser = parse_time)]
        until: i64,
        /// Why, for the record.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// An RFC 3339 time as Unix milliseconds.
fn parse_time(text: &str) -> Result<i64, String> {
    server::time::parse_rfc3339(text)
}

/// Where the grading server is and who you are (else what `grader login` saved).
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The grading server's URL.
    #[arg(long, env = "GRADER_URL")]
    pub server: Option<String>,
    /// Your API token.
    #[arg(long, env = "GRADER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: colours on a terminal, a summary per category, each failure with its hint.
    Text,
    /// The stable JSON report (see the README).
    Json,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line (for log collectors), spans and their fields included.
    Json,
}

/// Entry point of the `grader` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Without RUST_LOG: the server logs every request and grading; the other commands print
    // their own output and log only problems.
    let default = match cli.command {
        Command::Serve { .. } | Command::Worker { .. } => "info",
        _ => "warn",
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// What stops the CLI before or instead of a report: the operator's mistakes and the grader's own
/// failures (exit 2), never a student's (those are reports).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The submission path cannot be read at all.
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No hidden tests were given or recorded.
    #[error(
        "no hidden tests configured: pass --hidden-tests DIR (or set GRADER_HIDDEN_TESTS), or record \
         them once with `grader setup --hidden-tests DIR` (data folder {})",
        .0.display()
    )]
    NoHiddenTests(PathBuf),
    /// The hidden tests package is unusable.
    #[error(transparent)]
    HiddenTests(#[from] HiddenTestsError),
    /// Recording the hidden tests in the data folder failed.
    #[error("cannot record the hidden tests in {}: {source}", .path.display())]
    Record {
        /// The data folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The solutions to validate cannot be chosen.
    #[error(transparent)]
    Validate(#[from] validate::ValidateError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The server failed to start or run.
    #[error(transparent)]
    Server(#[from] server::ServerError),
    /// A roster command failed.
    #[error(transparent)]
    Roster(#[from] server::roster::RosterError),
    /// The database could not be opened.
    #[error(transparent)]
    Db(#[from] server::db::DbError),
    /// Options that do not work together.
    #[error("{0}")]
    Usage(String),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Talking to the grading server failed.
    #[error(transparent)]
    Client(#[from] client::ClientError),
}

/// Runs a parsed command line. Arguments are checked before the engine prepares anything, so that a
/// mistake fails at once.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match &cli.command {
        Command::Roster { database, command } => {
            return roster(&cli.data_dir, database.as_deref(), command)
        }
        Command::Serve { grading, .. } => grading.check(false)?,
        Command::Worker { grading } => grading.check(true)?,
        _ => {}
    }
    // Students' commands need no hidden tests.
    let connect = |s: &ServerArgs| client::Client::new(s.server.clone(), s.token.clone());
    match &cli.command {
        Command::Check {
            path,
            format,
            no_sandbox,
        } => return student::check(cli.data_dir, cli.jobs, path, *format, *no_sandbox),
        Command::Login { url, token } => {
            let path = client::login(url, token)?;
            eprintln!("saved the server and your token in {}", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Submit {
            path,
            server,
            format,
        } => return Ok(connect(server)?.submit(path, *format)?),
        Command::Status { id, server, format } => return Ok(connect(server)?.status(*id, *format)?),
        Command::History { server, format } => return Ok(connect(server)?.history(*format)?),
        _ => {}
    }
    let hidden_dir = match cli.hidden_tests {
        Some(dir) => dir,
        None => suite::recorded(&cli.data_dir)
            .ok_or_else(|| CliError::NoHiddenTests(cli.data_dir.clone()))?,
    };
    let hidden = HiddenTests::open(&hidden_dir)?;
    // Whatever the command, first check what it was given.
    let chosen = match &cli.command {
        Command::Grade { path, .. } => {
            std::fs::metadata(path).map_err(|source| CliError::Unreadable {
                path: path.clone(),
                source,
            })?;
            None
        }
        Command::Validate { repo, only, .. } => Some(validate::select(repo, only.as_deref())?),
        _ => None,
    };
    eprintln!(
        "hidden tests: {} (version {}, {} tests, {} rubric entries)",
        hidden.dir().display(),
        hidden.version(),
        hidden.tests().len(),
        hidden.rubric().entries().len()
    );
    let mut config = Config::new(cli.data_dir, hidden_dir);
    let cores = config.jobs;
    let workers = match &cli.command {
        Command::Serve { grading, .. } | Command::Worker { grading } => {
            grading.workers.map_or((cores / 2).max(1), |w| w as usize)
        }
        _ => 1,
    };
    // Workers x test processes fit the cores (a web tier without workers grades nothing).
    config.jobs = cli.jobs.unwrap_or((cores / workers.max(1)).max(1));
    config.sandbox.allow_root_mapped = cli.allow_root_mapped_sandbox;
    let options = match &cli.command {
        Command::Serve {
            bind,
            grading,
            upload_limit,
            min_interval_secs,
            per_day,
            deadline,
            late_penalty,
            score_policy,
        } => Some(server::Options {
            upload_limit: upload_limit.unwrap_or(config.intake.max_packed_bytes),
            bind: Some(*bind),
            policy: server::policy::Policy {
                min_interval: Duration::from_secs(*min_interval_secs),
                per_day: *per_day,
                deadline: *deadline,
                late_penalty_per_day: *late_penalty,
                score_policy: *score_policy,
            },
            ..grading.options(config.data_dir.clone(), workers)
        }),
        Command::Worker { grading } => Some(grading.options(config.data_dir.clone(), workers)),
        _ => None,
    };
    if let Some(mut options) = options {
        options.rubric_entries = hidden.rubric().entries().len();
        // A web tier without workers grades nothing: no engine, so no sandbox and no caches.
        let engine = match workers {
            0 => None,
            _ => Some(Arc::new(Engine::new(config)?)),
        };
        return serve(options, engine);
    }
    let engine = Engine::new(config)?;
    let (path, format, mode, student) = match cli.command {
        Command::Setup => {
            let data = &engine.config().data_dir;
            let recorded =
                suite::record(data, hidden.dir()).map_err(|source| CliError::Record {
                    path: data.clone(),
                    source,
                })?;
            eprintln!(
                "ready: toolchain, vendored crates and warm cache are prepared; hidden tests {} \
                 recorded as the default",
                recorded.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Validate { runs, .. } => {
            let on_row = |row: &validate::Row| {
                eprintln!(
                    "{}: {}",
                    row.name,
                    row.problem.as_deref().unwrap_or("as expected")
                );
            };
            let chosen = chosen.unwrap_or_default();
            let rows = validate::run(&engine, &chosen, runs as usize, &on_row)?;
            print!("{}", validate::render(&rows));
            let ok = rows.iter().all(|r| r.problem.is_none());
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Serve { .. } | Command::Worker { .. } => unreachable!("served above"),
        Command::Roster { .. }
        | Command::Check { .. }
        | Command::Login { .. }
        | Command::Submit { .. }
        | Command::Status { .. }
        | Command::History { .. } => unreachable!("handled before the hidden tests are read"),
        Command::Grade {
            path,
            format,
            student,
        } => (path, format, Mode::Hidden, student),
    };
    let color = std::io::stdout().is_terminal() && format == Format::Text;
    let report = engine.grade(Input::Path(&path), mode, &terminal_progress)?;
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

/// Runs the server or worker process of `options` until a signal stops it.
fn serve(options: server::Options, engine: Option<Arc<Engine>>) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let result = runtime.block_on(server::run(options, engine));
    // A grading still running after the drain time must not hold the exit: its job stays
    // `running` and is graded again (re-queued at the next start, or when its lease runs out).
    runtime.shutdown_background();
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Shows the engine's progress on one line of a terminal (nothing when stderr is not one).
fn terminal_progress(p: Progress) {
    if std::io::stderr().is_terminal() {
        match p {
            Progress::Checking => eprint!("\rchecking the upload…"),
            Progress::Building => eprint!("\r\x1b[Kbuilding…"),
            Progress::Testing { done, total, .. } => eprint!("\r\x1b[Ktesting {done}/{total}"),
            Progress::Finished => eprint!("\r\x1b[K"),
        }
        let _ = std::io::Write::flush(&mut std::io::stderr());
    }
}

/// Runs a roster command on the data folder's database.
fn roster(
    data_dir: &std::path::Path,
    database: Option<&str>,
    command: &RosterCommand,
) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async {
        let db = match database {
            Some(url) => server::db::connect(url).await?,
            None => server::db::open(data_dir).await?,
        };
        match command {
            RosterCommand::Import { file } => {
                let entries = server::roster::read(file)?;
                let created = server::roster::import(&db, &entries).await?;
                for (id, token) in &created {
                    println!("{id}\t{token}");
                }
                eprintln!(
                    "{} people in the roster, {} new",
                    entries.len(),
                    created.len()
                );
                if !created.is_empty() {
                    eprintln!("the new people's tokens are above; they are not shown again");
                }
            }
            RosterCommand::Token { id } => {
                println!("{}", server::roster::new_token(&db, id).await?);
                eprintln!("new token for {id}; the old one no longer works");
            }
            RosterCommand::Extend { id, until, reason } => {
                let until = server::roster::extend(&db, id, *until, reason.as_deref()).await?;
                println!("{id}\t{until}");
                eprintln!("{id} may submit until {until} without a late penalty");
            }
        }
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// How many of a failing test's last output lines the text report shows.
const OUTPUT_LINES: usize = 8;

/// Whether `c` may reach a terminal: not a control character (escape sequences, carriage returns
/// that overwrite a line, backspaces) other than newline and tab, and not a bidirectional override
/// that reorders what is shown.
fn printable(c: char) -> bool {
    let bidi =
        matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    (!c.is_control() || c == '\n' || c == '\t') && !bidi
}

/// The report with every string stripped of what [`printable`] refuses: most of it comes from the
/// student (messages, compiler output, file names, test output).
fn sanitized(report: &Report) -> Report {
    let clean = |s: &mut String| s.retain(printable);
    let mut r = report.clone();
    r.message.iter_mut().for_each(clean);
    for t in &mut r.tests {
        clean(&mut t.name);
        clean(&mut t.category);
        for s in [&mut t.message, &mut t.hint, &mut t.output] {
            s.iter_mut().for_each(clean);
        }
    }
    for d in &mut r.diagnostics {
        clean(&mut d.rendered);
        clean(&mut d.message);
    }
    for f in &mut r.ignored_files {
        clean(&mut f.path);
        clean(&mut f.reason);
    }
    r
}

/// Renders a report for a terminal. Everything the report says passes through [`printable`]: the
/// only escape sequences in the result are the colours added here.
pub fn render_text(report: &Report, color: bool) -> String {
    let report = &sanitized(report);
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
            // A message that starts by naming the outcome must not be prefixed by it again.
            let what = match t.message.as_deref() {
                Some(m) if m.starts_with(outcome) => m.to_string(),
                Some(m) => format!("{outcome}: {m}"),
                None => outcome.to_string(),
            };
            let _ = writeln!(out, "      {what}");
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
