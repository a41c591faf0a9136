//! The web pages: log in with a token, the students' dashboard and upload form, a submission's
//! live progress and report, the instructors' gradebook. Server-rendered with askama; the few
//! lines of JavaScript (`static/app.js`) only add drag and drop, live updates, sorting and filtering.

mod gradebook;
mod regrade;
mod student;
mod submission;

use std::sync::LazyLock;

use askama::Template;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{self, HeaderMap, HeaderName};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::auth::{self, Session, SESSION_COOKIE, SESSION_TTL};
use super::error::AppError;
use super::AppState;

/// The pages' routes (merged into [`super::app`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/{file}", get(asset))
        .merge(student::router())
        .merge(submission::router())
        .merge(gradebook::router())
        .merge(regrade::router())
}

/// The stylesheet and the script, compiled into the binary: name, body, content type.
const ASSETS: [(&str, &str, &str); 2] = [
    (
        "style.css",
        include_str!("../../../static/style.css"),
        "text/css; charset=utf-8",
    ),
    (
        "app.js",
        include_str!("../../../static/app.js"),
        "text/javascript; charset=utf-8",
    ),
];

/// A hash of the assets: pages link `?v=HASH`, so the assets can be cached for a year and a new
/// binary's are fetched at once.
static ASSETS_VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = Sha256::new();
    for (_, body, _) in ASSETS {
        hasher.update(body.as_bytes());
    }
    hex::encode(&hasher.finalize()[..6])
});

fn asset_url(name: &str) -> String {
    format!("/static/{name}?v={}", *ASSETS_VERSION)
}

/// `GET /static/{file}`: the stylesheet or the script, with long-lived cache headers.
async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, body, content_type)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => PageError(AppError::NotFound).into_response(),
    }
}

/// Who a page's frame shows as logged in, with the CSRF token of its log-out form.
pub struct User {
    /// Roster id.
    pub id: String,
    /// Full name.
    pub name: String,
    /// Whether the gradebook is theirs to see.
    pub instructor: bool,
    /// The session's CSRF token.
    pub csrf: String,
}

/// What every page's frame needs.
pub struct Layout {
    /// The person logged in, if any.
    pub user: Option<User>,
    /// The stylesheet's versioned URL.
    pub css: String,
    /// The script's versioned URL.
    pub js: String,
}

impl Layout {
    /// The frame of a page seen without a session.
    fn anonymous() -> Layout {
        Layout {
            user: None,
            css: asset_url("style.css"),
            js: asset_url("app.js"),
        }
    }

    /// The frame of `session`'s pages.
    async fn of(state: &AppState, session: &Session) -> Result<Layout, AppError> {
        let (name,): (String,) = sqlx::query_as("SELECT name FROM people WHERE id = $1")
            .bind(&session.caller.id)
            .fetch_one(&state.db)
            .await?;
        Ok(Layout {
            user: Some(User {
                id: session.caller.id.clone(),
                name,
                instructor: session.caller.is_instructor(),
                csrf: session.csrf.clone(),
            }),
            ..Layout::anonymous()
        })
    }
}

/// An [`AppError`] shown as a page: no session leads to the log-in page, anything else to a page
/// that says what went wrong with the same status as the API's.
#[derive(Debug)]
pub struct PageError(AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError(e)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        PageError(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    title: &'static str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, _) = self.0.status_and_code();
        if status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/login").into_response();
        }
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "Upload too large",
            StatusCode::TOO_MANY_REQUESTS => "Too many uploads",
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
            _ => "Server error",
        };
        let page = ErrorPage {
            layout: Layout::anonymous(),
            title,
            message: self.0.public_message(),
        };
        match page.render() {
            Ok(body) => (status, security_headers(), Html(body)).into_response(),
            Err(e) => (status, format!("{title}: {} ({e})", self.0)).into_response(),
        }
    }
}

/// Headers of every page: never cached (they are personal), scripts and styles only from here.
fn security_headers() -> [(HeaderName, &'static str); 4] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ]
}

/// Renders `template` as a page with `status`.
fn page(status: StatusCode, template: &impl Template) -> Result<Response, PageError> {
    let body = template
        .render()
        .map_err(|e| AppError::Internal(format!("template: {e}")))?;
    Ok((status, security_headers(), Html(body)).into_response())
}

/// A page's session; without one the visitor is sent to the log-in page.
pub struct LoggedIn(pub Session);

impl FromRequestParts<AppState> for LoggedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        Ok(LoggedIn(Session::from_request_parts(parts, state).await?))
    }
}

/// A form that sends back the session's CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    /// The token the page put in the form.
    #[serde(default)]
    pub csrf: String,
}

impl LoggedIn {
    /// Refuses a form whose CSRF token is not the session's.
    fn check(&self, sent: &str) -> Result<(), PageError> {
        if self.0.csrf_ok(sent) {
            Ok(())
        } else {
            Err(AppError::Csrf.into())
        }
    }
}

/// `GET /`: the gradebook for instructors, the dashboard for students, else the log-in page.
async fn home(session: Result<Session, AppError>) -> Redirect {
    match session {
        Ok(s) if s.caller.is_instructor() => Redirect::to("/gradebook"),
        Ok(_) => Redirect::to("/dashboard"),
        Err(_) => Redirect::to("/login"),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    error: Option<&'static str>,
}

/// The form of `POST /login`.
#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login_page() -> Result<Response, PageError> {
    page(
        StatusCode::OK,
        &LoginPage {
            layout: Layout::anonymous(),
            error: None,
        },
    )
}

/// `POST /login`: a valid token opens a session (cookie `HttpOnly; SameSite=Strict`); an unknown
/// or revoked one shows the form again, with 401 and what to do.
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    // No session yet, so no CSRF token: a browser's own word that the form is ours stands in.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v != "same-origin" && v != "none")
    {
        return Err(AppError::Csrf.into());
    }
    let Some(caller) = auth::caller_of_token(&state.db, form.token.trim()).await? else {
        let page_ = LoginPage {
            layout: Layout::anonymous(),
            error: Some(
                "This token is unknown or has been revoked (a new token replaces the old one). \
                 Check that you pasted all of it, starting with rg_, or ask an instructor for a new one.",
            ),
        };
        return page(StatusCode::UNAUTHORIZED, &page_);
    };
    let cookie = auth::open_session(&state.db, &caller.id).await?;
    // Behind a TLS-terminating proxy the cookie must not travel over plain HTTP.
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v == "https");
    let set = format!(
        "{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    Ok(([(header::SET_COOKIE, set)], Redirect::to("/")).into_response())
}

/// `POST /logout`: ends the session in the database and clears the cookie.
async fn logout(
    State(state): State<AppState>,
    session: LoggedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    session.check(&form.csrf)?;
    auth::close_session(&state.db, &session.0.cookie).await?;
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response())
}

/// A moment shown on a page: for people (`2026-12-06 16:05 UTC`) and for machines (ISO 8601).
pub struct Stamp {
    /// As shown.
    pub shown: String,
    /// As `<time datetime>`.
    pub iso: String,
}

impl Stamp {
    /// The moment `ms` (Unix milliseconds).
    pub fn of(ms: i64) -> Stamp {
        let secs = ms.div_euclid(1000);
        let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = crate::server::time::civil_from_days(days);
        let (hh, mm, ss) = (rest / 3600, rest % 3600 / 60, rest % 60);
        Stamp {
            shown: format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC"),
            iso: format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
        }
    }
}

/// A span of time in words, to the minute (`2 d 3 h`, `3 h 5 min`, `4 min`, `less than a minute`).
pub fn span(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    let (d, h, m) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    match (d, h, m) {
        (0, 0, 0) => "less than a minute".into(),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// A submission's late mark: how late it came and the penalty it earned (`None` when on time).
pub fn late_mark(late_ms: Option<i64>, penalty_pct: i64) -> Option<String> {
    late_ms.map(|ms| format!("late by {}, −{penalty_pct} %", span(ms)))
}

/// A submission's status in words.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "queued" => "queued",
        "running" => "grading",
        "graded" => "graded",
        "rejected" => "rejected",
        "build_failed" => "did not compile",
        "error" => "grading failed",
        _ => "unknown",
    }
}

/// Whether a status carries a score.
pub fn scored(status: &str) -> bool {
    matches!(status, "graded" | "rejected" | "build_failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(Stamp::of(0).iso, "1970-01-01T00:00:00Z");
        // 2024-02-29 12:34:56 UTC, a leap day.
        let s = Stamp::of(1_709_210_096_000);
        assert_eq!(s.iso, "2024-02-29T12:34:56Z");
        assert_eq!(s.shown, "2024-02-29 12:34 UTC");
        assert_eq!(Stamp::of(1_798_761_599_000).iso, "2026-12-31T23:59:59Z");
    }
}
