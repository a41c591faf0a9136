//! The instructors' regrade buttons (`POST /regrades`, a form with the CSRF token) and the page
//! that follows a regrade's progress (`GET /regrades/{id}`), refreshing itself until it is done.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::{page, Layout, LoggedIn, PageError, Stamp};
use crate::server::error::AppError;
use crate::server::regrade::{progress_of, queue, Progress, Target};
use crate::server::time::parse_rfc3339;
use crate::server::AppState;

/// The regrade routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/regrades", post(request))
        .route("/regrades/{id}", get(show))
}

/// The buttons' form: the CSRF token and one of the three scopes.
#[derive(Debug, Deserialize)]
struct RegradeForm {
    #[serde(default)]
    csrf: String,
    submission: Option<i64>,
    person: Option<String>,
    #[serde(default)]
    all: bool,
}

/// `POST /regrades`: queues the regrade and sends the browser to its progress page.
async fn request(
    State(state): State<AppState>,
    session: LoggedIn,
    Form(form): Form<RegradeForm>,
) -> Result<Response, PageError> {
    session.check(&form.csrf)?;
    let caller = &session.0.caller;
    if !caller.is_instructor() {
        return Err(AppError::Forbidden.into());
    }
    let target = Target::of(form.submission, form.person, form.all).ok_or_else(|| {
        AppError::BadRequest("regrade one submission, one student or everything".into())
    })?;
    let queued = queue(&state, &caller.id, target).await?;
    Ok(Redirect::to(&format!("/regrades/{}", queued.id)).into_response())
}

#[derive(Template)]
#[template(path = "regrade.html")]
struct RegradePage {
    layout: Layout,
    p: Progress,
    /// When it was requested, as shown.
    requested: Option<Stamp>,
}

/// `GET /regrades/{id}`: a regrade's progress (instructors only).
async fn show(
    State(state): State<AppState>,
    session: LoggedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    if !session.0.caller.is_instructor() {
        return Err(AppError::Forbidden.into());
    }
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let p = progress_of(&state, id).await?;
    page(
        StatusCode::OK,
        &RegradePage {
            layout: Layout::of(&state, &session.0).await?,
            requested: parse_rfc3339(&p.created_at).ok().map(Stamp::of),
            p,
        },
    )
}
