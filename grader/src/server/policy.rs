//! The course's rules for uploads: the per-student rate limit, the deadline with its per-student
//! extensions and the late penalty, and which submission counts. Also the student's own view of
//! them (`GET /api/me`) and the instructors' extensions (`/api/extensions`).

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::auth::Caller;
use super::db::{now_ms, write};
use super::error::AppError;
use super::time::{format_ms, parse_rfc3339};
use super::AppState;

/// A day in milliseconds: the rate limit's window and the late penalty's unit.
const DAY_MS: i64 = 86_400_000;

/// Which of a student's scored submissions counts in the gradebook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScorePolicy {
    /// The highest score after late penalties (the earliest of equals).
    Best,
    /// The latest scored submission.
    Latest,
}

impl ScorePolicy {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ScorePolicy::Best => "best",
            ScorePolicy::Latest => "latest",
        }
    }
}

/// The rules, fixed for a run of the server.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Shortest time between two uploads of a student (zero: no limit).
    pub min_interval: Duration,
    /// Uploads a student may make in any 24 hours (0: no limit).
    pub per_day: u32,
    /// The deadline (Unix ms), if any; a person's extension replaces it when later.
    pub deadline: Option<i64>,
    /// Percent of the score lost per started day late (capped at 100).
    pub late_penalty_per_day: u32,
    /// Which submission the gradebook counts.
    pub score_policy: ScorePolicy,
}

impl Default for Policy {
    /// 1 upload per 30 s, 30 per day, no deadline, 10 % per day late, best score.
    fn default() -> Self {
        Policy {
            min_interval: Duration::from_secs(30),
            per_day: 30,
            deadline: None,
            late_penalty_per_day: 10,
            score_policy: ScorePolicy::Best,
        }
    }
}

/// A student's uploads against the rate limit.
#[derive(Debug, Clone)]
pub struct Quota {
    /// Uploads in the last 24 hours.
    pub used_today: i64,
    /// When the next upload is allowed (Unix ms), if that is later than now.
    pub next_at: Option<i64>,
}

impl Policy {
    /// Where `person` stands against the rate limit at `now`.
    pub async fn quota(
        &self,
        conn: &mut AnyConnection,
        person: &str,
        now: i64,
    ) -> Result<Quota, sqlx::Error> {
        let (used_today, last): (i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM submissions WHERE person_id = $1 AND created_at > $2), \
                    (SELECT MAX(created_at) FROM submissions WHERE person_id = $1)",
        )
        .bind(person)
        .bind(now - DAY_MS)
        .fetch_one(&mut *conn)
        .await?;
        let interval = i64::try_from(self.min_interval.as_millis()).unwrap_or(i64::MAX);
        // Without an interval, none applies: a concurrent upload that committed after `now` was
        // taken is no reason to wait.
        let mut next = match last {
            Some(l) if interval > 0 => l.saturating_add(interval),
            _ => i64::MIN,
        };
        if self.per_day > 0 && used_today >= i64::from(self.per_day) {
            // The window frees a place when the per_day-th latest upload is a day old.
            let (nth,): (i64,) = sqlx::query_as(
                "SELECT created_at FROM submissions WHERE person_id = $1 \
                 ORDER BY created_at DESC LIMIT 1 OFFSET $2",
            )
            .bind(person)
            .bind(i64::from(self.per_day) - 1)
            .fetch_one(&mut *conn)
            .await?;
            next = next.max(nth + DAY_MS);
        }
        Ok(Quota {
            used_today,
            next_at: (next > now).then_some(next),
        })
    }

    /// Refuses an upload of `caller` at `now` over the rate limit (instructors have none).
    pub async fn admit(
        &self,
        conn: &mut AnyConnection,
        caller: &Caller,
        now: i64,
    ) -> Result<(), AppError> {
        if caller.is_instructor() {
            return Ok(());
        }
        match self.quota(conn, &caller.id, now).await?.next_at {
            None => Ok(()),
            Some(at) => Err(AppError::RateLimited {
                limit: self.describe_limit(),
                at: format_ms(at),
                // Rounded up: a client retrying after Retry-After is admitted.
                retry_after: u64::try_from((at - now + 999) / 1000).unwrap_or(1).max(1),
            }),
        }
    }

    /// The rate limit in words.
    pub fn describe_limit(&self) -> String {
        let mut parts = Vec::new();
        if !self.min_interval.is_zero() {
            parts.push(format!("1 upload per {} s", self.min_interval.as_secs()));
        }
        if self.per_day > 0 {
            parts.push(format!("{} per day", self.per_day));
        }
        parts.join(", ")
    }

    /// The deadline that applies to `person`: their extension when it is later than the course's.
    pub async fn deadline_for(
        &self,
        conn: &mut AnyConnection,
        person: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let extension: Option<(i64,)> =
            sqlx::query_as("SELECT deadline FROM extensions WHERE person_id = $1")
                .bind(person)
                .fetch_optional(&mut *conn)
                .await?;
        Ok(match (self.deadline, extension) {
            (Some(d), Some((e,))) => Some(d.max(e)),
            (d, e) => d.or(e.map(|(e,)| e)),
        })
    }

    /// How late an upload at `now` against `deadline` is (ms, `None` when on time) and the
    /// penalty it earns, in percent.
    pub fn lateness(&self, deadline: Option<i64>, now: i64) -> (Option<i64>, u32) {
        match deadline {
            Some(d) if now > d => {
                let late = now - d;
                let days = u32::try_from((late + DAY_MS - 1) / DAY_MS).unwrap_or(u32::MAX);
                (
                    Some(late),
                    days.saturating_mul(self.late_penalty_per_day).min(100),
                )
            }
            _ => (None, 0),
        }
    }
}

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/me", get(me)).route(
        "/api/extensions",
        get(list_extensions).post(grant_extension),
    )
}

/// A submission's score as the student's data shows it.
#[derive(Debug, sqlx::FromRow)]
struct Scored {
    id: i64,
    status: String,
    score: Option<i64>,
    final_score: Option<i64>,
    max_score: Option<i64>,
    late_ms: Option<i64>,
    penalty_pct: i64,
}

impl Scored {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "score": self.score,
            "final_score": self.final_score,
            "max_score": self.max_score,
            "late": self.late_ms.is_some(),
            "late_ms": self.late_ms,
            "penalty_pct": self.penalty_pct,
        })
    }
}

/// `GET /api/me`: who the caller is, their best and latest scores, the rate limit with what is
/// left of it, and their deadline.
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, AppError> {
    let policy = &state.policy;
    let now = now_ms();
    let mut conn = state.db.acquire().await?;
    let (name, email): (String, String) =
        sqlx::query_as("SELECT name, email FROM people WHERE id = $1")
            .bind(&caller.id)
            .fetch_one(&mut *conn)
            .await?;
    let quota = policy.quota(&mut conn, &caller.id, now).await?;
    let deadline = policy.deadline_for(&mut conn, &caller.id).await?;
    macro_rules! scored {
        ($order:literal) => {
            concat!(
                "SELECT id, status, score, final_score, max_score, late_ms, penalty_pct ",
                "FROM submissions WHERE person_id = $1 AND final_score IS NOT NULL ",
                "AND status IN ('graded', 'rejected', 'build_failed') ORDER BY ",
                $order,
                " LIMIT 1"
            )
        };
    }
    let best: Option<Scored> = sqlx::query_as(scored!("final_score DESC, id"))
        .bind(&caller.id)
        .fetch_optional(&mut *conn)
        .await?;
    let latest: Option<Scored> = sqlx::query_as(scored!("id DESC"))
        .bind(&caller.id)
        .fetch_optional(&mut *conn)
        .await?;
    let (submissions,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM submissions WHERE person_id = $1")
            .bind(&caller.id)
            .fetch_one(&mut *conn)
            .await?;
    let limited = !caller.is_instructor();
    let per_day = (limited && policy.per_day > 0).then_some(i64::from(policy.per_day));
    Ok(Json(json!({
        "id": caller.id,
        "name": name,
        "email": email,
        "role": caller.role.as_str(),
        "submissions": submissions,
        "best": best.as_ref().map(Scored::json),
        "latest": latest.as_ref().map(Scored::json),
        "score_policy": policy.score_policy.as_str(),
        "limits": {
            "min_interval_secs": limited.then_some(policy.min_interval.as_secs()),
            "per_day": per_day,
            "used_today": quota.used_today,
            "remaining_today": per_day.map(|p| (p - quota.used_today).max(0)),
            "next_upload_at": if limited { quota.next_at.map(format_ms) } else { None },
        },
        "deadline": deadline.map(format_ms),
        "late_penalty_pct_per_day": policy.late_penalty_per_day,
    })))
}

/// `GET /api/extensions` (instructors): every extension granted.
async fn list_extensions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, AppError> {
    if !caller.is_instructor() {
        return Err(AppError::Forbidden);
    }
    let rows: Vec<(String, i64, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT person_id, deadline, reason, granted_by FROM extensions ORDER BY person_id",
    )
    .fetch_all(&state.db)
    .await?;
    let extensions: Vec<Value> = rows
        .into_iter()
        .map(|(person, deadline, reason, by)| {
            json!({"person": person, "until": format_ms(deadline), "reason": reason, "granted_by": by})
        })
        .collect();
    Ok(Json(json!({ "extensions": extensions })))
}

/// Body of `POST /api/extensions`.
#[derive(Debug, serde::Deserialize)]
struct Grant {
    /// The student's roster id.
    person: String,
    /// The new deadline, RFC 3339.
    until: String,
    /// Why, for the record.
    reason: Option<String>,
}

/// `POST /api/extensions` (instructors): gives a person their own deadline.
async fn grant_extension(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Grant>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    if !caller.is_instructor() {
        return Err(AppError::Forbidden);
    }
    let Json(grant) = body.map_err(|e| {
        AppError::BadRequest(format!(
            "{}; send {{\"person\": ID, \"until\": \"2026-12-24T23:59:00Z\", \"reason\": ...}}",
            e.body_text()
        ))
    })?;
    let until = parse_rfc3339(&grant.until).map_err(AppError::BadRequest)?;
    let mut tx = write(&state.db).await?;
    extend(
        &mut tx,
        &grant.person,
        until,
        grant.reason.as_deref(),
        Some(&caller.id),
    )
    .await?
    .then_some(())
    .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    state.gradebook.invalidate();
    Ok((
        StatusCode::CREATED,
        Json(json!({"person": grant.person, "until": format_ms(until), "reason": grant.reason})),
    ))
}

/// Grants (or replaces) `person`'s extension to `until`; `false` when nobody has that id.
pub async fn extend(
    conn: &mut AnyConnection,
    person: &str,
    until: i64,
    reason: Option<&str>,
    granted_by: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let known: Option<(String,)> = sqlx::query_as("SELECT id FROM people WHERE id = $1")
        .bind(person)
        .fetch_optional(&mut *conn)
        .await?;
    if known.is_none() {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO extensions (person_id, deadline, reason, granted_by, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (person_id) DO UPDATE SET deadline = excluded.deadline, \
         reason = excluded.reason, granted_by = excluded.granted_by, created_at = excluded.created_at",
    )
    .bind(person)
    .bind(until)
    .bind(reason)
    .bind(granted_by)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(true)
}
