//! A submission's page: live progress while it waits or is graded, then its score, a bar per
//! category, the tests, and for a crate that did not compile or was refused the messages beside
//! the student's own lines. Students see their report's student view; instructors see everything,
//! with the submitted files.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{late_mark, page, status_label, Layout, LoggedIn, PageError, Stamp};
use crate::engine::archive;
use crate::engine::report::{Diagnostic, IgnoredFile, Outcome, Report, TestResult};
use crate::server::api::{visible, Row, ERROR_FOR_STUDENT};
use crate::server::error::AppError;
use crate::server::uploads;
use crate::server::{queue, AppState};

/// The submission page's route.
pub fn router() -> Router<AppState> {
    Router::new().route("/submissions/{id}", get(show))
}

/// A category's score.
pub struct Bar {
    /// The category.
    pub name: String,
    /// Points earned.
    pub score: u32,
    /// Points possible.
    pub max: u32,
    /// Below half (for the meter's colours).
    pub low: u32,
}

/// A test's line.
pub struct TestLine {
    /// Its name (`hidden test N` for a student's hidden test).
    pub name: String,
    /// Its category.
    pub category: String,
    /// The outcome in words (`timed out: idle`).
    pub outcome: &'static str,
    /// `passed`, `failed` or `not_run` (for styling).
    pub class: &'static str,
    /// Points.
    pub points: String,
    /// `0.03 s`.
    pub duration: String,
    /// The explanation, if any.
    pub message: Option<String>,
    /// The rubric's hint, when it did not pass.
    pub hint: Option<String>,
    /// Captured output (never for a student's hidden test).
    pub output: Option<String>,
}

impl TestLine {
    fn of(t: TestResult) -> TestLine {
        let message = t.message.unwrap_or_default();
        let (outcome, class) = match t.outcome {
            Outcome::Passed => ("passed", "passed"),
            Outcome::Failed => ("failed", "failed"),
            Outcome::TimedOut if message.contains("it was idle") => ("timed out: idle", "failed"),
            Outcome::TimedOut if message.contains("it was busy") => ("timed out: busy", "failed"),
            Outcome::TimedOut => ("timed out", "failed"),
            Outcome::Crashed => ("crashed", "failed"),
            Outcome::MemoryLimit => ("memory limit", "failed"),
            Outcome::NotRun => ("not run", "not_run"),
        };
        TestLine {
            name: t.name,
            category: t.category,
            outcome,
            class,
            points: format!("{}/{}", t.score, t.max_score),
            duration: format!("{:.2} s", t.duration_ms as f64 / 1000.0),
            message: (!message.is_empty()).then_some(message),
            hint: t.hint,
            output: t.output.filter(|o| !o.is_empty()),
        }
    }
}

/// One numbered source line.
pub struct CodeLine {
    /// 1-based.
    pub number: usize,
    /// The text.
    pub text: String,
    /// The line a message points at.
    pub marked: bool,
}

/// A compiler or policy message, with the lines it points at.
pub struct DiagnosticView {
    /// `error`, `warning`, `refused`.
    pub level: String,
    /// `src/timer.rs:3:22`, when it points into the crate.
    pub location: Option<String>,
    /// The one-line message.
    pub message: String,
    /// The compiler's full rendering.
    pub rendered: String,
    /// The student's lines around the one pointed at.
    pub excerpt: Vec<CodeLine>,
}

/// Lines shown before and after the line a message points at.
const CONTEXT: usize = 2;

impl DiagnosticView {
    fn of(d: Diagnostic, files: &BTreeMap<String, String>) -> DiagnosticView {
        let location = d.file.as_ref().map(|f| match (d.line, d.column) {
            (Some(l), Some(c)) => format!("{f}:{l}:{c}"),
            (Some(l), None) => format!("{f}:{l}"),
            _ => f.clone(),
        });
        let excerpt = match (d.file.as_ref().and_then(|f| files.get(f)), d.line) {
            (Some(source), Some(line)) => {
                let line = line as usize;
                source
                    .lines()
                    .enumerate()
                    .map(|(i, text)| (i + 1, text))
                    .skip(line.saturating_sub(CONTEXT + 1))
                    .take_while(|(n, _)| *n <= line + CONTEXT)
                    .map(|(number, text)| CodeLine {
                        number,
                        text: text.to_string(),
                        marked: number == line,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        DiagnosticView {
            level: d.level,
            location,
            message: d.message,
            rendered: d.rendered,
            excerpt,
        }
    }
}

/// A submitted file, numbered.
pub struct SourceFile {
    /// Its path in the crate.
    pub path: String,
    /// Its lines.
    pub lines: Vec<String>,
}

#[derive(Template)]
#[template(path = "submission.html")]
struct SubmissionPage {
    layout: Layout,
    id: i64,
    file_name: String,
    when: Stamp,
    status: String,
    status_label: &'static str,
    /// Whether it waits or is being graded (the page listens to its events).
    live: bool,
    position: Option<i64>,
    /// Whose it is: roster id and name (instructors only).
    owner: Option<(String, String)>,
    hidden_version: Option<String>,
    /// Why grading itself failed (the student's message, or the error for instructors).
    error: Option<String>,
    report: Option<ReportView>,
    files: Vec<SourceFile>,
    /// An instructor looking at the student's view (`?view=student`).
    as_student: bool,
    /// Its late mark (how late, the penalty), when it came after the deadline.
    late: Option<String>,
    /// The score after the late penalty, when one applies.
    penalised: Option<i64>,
}

/// `?view=student`: an instructor sees the page as its student does.
#[derive(Debug, Deserialize)]
struct View {
    view: Option<String>,
}

/// The report as the page shows it.
struct ReportView {
    score: u32,
    max_score: u32,
    message: Option<String>,
    bars: Vec<Bar>,
    tests: Vec<TestLine>,
    failed: usize,
    diagnostics: Vec<DiagnosticView>,
    ignored: Vec<IgnoredFile>,
}

impl ReportView {
    fn of(report: Report, files: &BTreeMap<String, String>) -> ReportView {
        let bars = report
            .categories
            .iter()
            .map(|(name, c)| Bar {
                name: name.clone(),
                score: c.score,
                max: c.max_score,
                low: c.max_score / 2,
            })
            .collect();
        let mut tests: Vec<TestLine> = report.tests.into_iter().map(TestLine::of).collect();
        // What did not pass comes first (the sort is stable: rubric order within each part).
        tests.sort_by_key(|t| t.class == "passed");
        ReportView {
            score: report.score,
            max_score: report.max_score,
            message: report.message,
            bars,
            failed: tests.iter().filter(|t| t.class != "passed").count(),
            tests,
            diagnostics: report
                .diagnostics
                .into_iter()
                .map(|d| DiagnosticView::of(d, files))
                .collect(),
            ignored: report.ignored_files,
        }
    }
}

/// The submitted source files, unpacked again from the stored upload (empty when it cannot be
/// read: then it was refused at intake, and the report says why).
async fn source_files(state: &AppState, row: &Row) -> BTreeMap<String, String> {
    let Ok(Some(bytes)) = uploads::read(&state.db, &state.data_dir, row.id).await else {
        return BTreeMap::new();
    };
    archive::from_bytes(&row.file_name, &bytes, &archive::Limits::default())
        .map(|s| s.files().clone())
        .unwrap_or_default()
}

/// `GET /submissions/{id}`: the caller's own submission, or any for instructors; 404 otherwise.
async fn show(
    State(state): State<AppState>,
    session: LoggedIn,
    Path(id): Path<String>,
    Query(view): Query<View>,
) -> Result<Response, PageError> {
    let caller = &session.0.caller;
    let row = visible(&state, caller, &id).await?;
    let as_student = caller.is_instructor() && view.view.as_deref() == Some("student");
    let instructor = caller.is_instructor() && !as_student;
    let position = if row.status == "queued" {
        queue::position(&state.db, row.id).await?
    } else {
        None
    };
    let report = match &row.report {
        Some(text) if row.status != "error" => {
            let report: Report = serde_json::from_str(text).map_err(|e| {
                AppError::Internal(format!("stored report of submission {}: {e}", row.id))
            })?;
            Some(if instructor {
                report
            } else {
                report.for_student()
            })
        }
        _ => None,
    };
    let points_into_crate = report
        .as_ref()
        .is_some_and(|r| r.diagnostics.iter().any(|d| d.line.is_some()));
    let files = if instructor || points_into_crate {
        source_files(&state, &row).await
    } else {
        BTreeMap::new()
    };
    let error = (row.status == "error").then(|| {
        if instructor {
            row.error.clone().unwrap_or_default()
        } else {
            ERROR_FOR_STUDENT.to_string()
        }
    });
    let owner = if instructor {
        let (name,): (String,) = sqlx::query_as("SELECT name FROM people WHERE id = $1")
            .bind(&row.person_id)
            .fetch_one(&state.db)
            .await?;
        Some((row.person_id.clone(), name))
    } else {
        None
    };
    let report = report.map(|r| ReportView::of(r, &files));
    let shown_files = if instructor {
        files
            .into_iter()
            .map(|(path, text)| SourceFile {
                path,
                lines: text.lines().map(str::to_string).collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    page(
        StatusCode::OK,
        &SubmissionPage {
            layout: Layout::of(&state, &session.0).await?,
            id: row.id,
            when: Stamp::of(row.created_at),
            status_label: status_label(&row.status),
            live: matches!(row.status.as_str(), "queued" | "running"),
            position,
            owner,
            hidden_version: if instructor { row.hidden_version } else { None },
            error,
            report,
            files: shown_files,
            as_student,
            late: late_mark(row.late_ms, row.penalty_pct),
            penalised: row.final_score.filter(|_| row.penalty_pct > 0),
            file_name: row.file_name,
            status: row.status,
        },
    )
}
