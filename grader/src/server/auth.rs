//! Who is calling: API tokens (`rg_` + 64 hex digits; only their SHA-256 is stored), the web
//! pages' session cookies (random, only their SHA-256 stored, with a CSRF secret and an expiry) and
//! the extractors [`Caller`] (Bearer token, or the cookie for reading) and [`Session`] (the cookie).

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use sha2::{Digest as _, Sha256};
use sqlx::{AnyConnection, AnyPool};

use super::db::{now_ms, write};
use super::error::AppError;
use super::AppState;

/// The recognisable start of every token (so that a leaked one can be found in logs and commits).
pub const TOKEN_PREFIX: &str = "rg_";

/// What a person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sees and uploads their own submissions.
    Student,
    /// Sees everything.
    Instructor,
}

impl Role {
    /// The role as stored in the database and written in the roster.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Instructor => "instructor",
        }
    }

    /// Parses a stored or rostered role.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "student" => Some(Role::Student),
            "instructor" => Some(Role::Instructor),
            _ => None,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their roster id.
    pub id: String,
    /// Their role.
    pub role: Role,
}

impl Caller {
    /// Whether the caller is an instructor.
    pub fn is_instructor(&self) -> bool {
        self.role == Role::Instructor
    }
}

/// A fresh token: the prefix and 256 random bits.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// What the database keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues a new token for `person_id`, revoking every older one, and returns it (the only time it
/// is seen in clear). Runs inside the caller's transaction.
pub async fn issue_token(tx: &mut AnyConnection, person_id: &str) -> Result<String, sqlx::Error> {
    let token = new_token();
    let now = now_ms();
    sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE person_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(person_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO tokens (person_id, sha256, created_at) VALUES ($1, $2, $3)")
        .bind(person_id)
        .bind(token_hash(&token))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(token)
}

/// The person holding an unrevoked `token`, if any.
pub async fn caller_of_token(db: &AnyPool, token: &str) -> Result<Option<Caller>, AppError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT p.id, p.role FROM tokens t JOIN people p ON p.id = t.person_id \
         WHERE t.sha256 = $1 AND t.revoked_at IS NULL",
    )
    .bind(token_hash(token))
    .fetch_optional(db)
    .await?;
    row.map(|(id, role)| caller(id, &role)).transpose()
}

fn caller(id: String, role: &str) -> Result<Caller, AppError> {
    let role = Role::parse(role)
        .ok_or_else(|| AppError::Internal(format!("person {id} has the unknown role {role}")))?;
    Ok(Caller { id, role })
}

/// The name of the web pages' session cookie.
pub const SESSION_COOKIE: &str = "rg_session";
/// How long a web session lasts after logging in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// A logged-in web session: who, and the secret every state-changing form must send back.
#[derive(Debug, Clone)]
pub struct Session {
    /// The person logged in.
    pub caller: Caller,
    /// The CSRF token of the session's forms.
    pub csrf: String,
    /// The cookie's value (to log out).
    pub cookie: String,
}

impl Session {
    /// Whether `sent` is this session's CSRF token (compared in constant time).
    pub fn csrf_ok(&self, sent: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), sent.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Opens a session for `person_id` (dropping expired ones of everybody) and returns the cookie's
/// value, the only time it is seen in clear.
pub async fn open_session(db: &AnyPool, person_id: &str) -> Result<String, sqlx::Error> {
    let cookie = hex::encode(rand::random::<[u8; 32]>());
    let csrf = hex::encode(rand::random::<[u8; 32]>());
    let now = now_ms();
    let ttl = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
    let mut tx = write(db).await?;
    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO sessions (sha256, person_id, csrf, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&cookie))
    .bind(person_id)
    .bind(csrf)
    .bind(now)
    .bind(now.saturating_add(ttl))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(cookie)
}

/// Ends the session of `cookie` (logging out).
pub async fn close_session(db: &AnyPool, cookie: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE sha256 = $1")
        .bind(token_hash(cookie))
        .execute(db)
        .await?;
    Ok(())
}

/// The live session of `cookie`: not expired, and opened after the person's current token was
/// issued (a new token, which revokes the old one, also ends the sessions opened with it).
pub async fn session(db: &AnyPool, cookie: &str) -> Result<Option<Session>, AppError> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT p.id, p.role, s.csrf FROM sessions s JOIN people p ON p.id = s.person_id \
         WHERE s.sha256 = $1 AND s.expires_at > $2 AND EXISTS (SELECT 1 FROM tokens t \
           WHERE t.person_id = s.person_id AND t.revoked_at IS NULL \
           AND t.created_at <= s.created_at)",
    )
    .bind(token_hash(cookie))
    .bind(now_ms())
    .fetch_optional(db)
    .await?;
    row.map(|(id, role, csrf)| {
        Ok(Session {
            caller: caller(id, &role)?,
            csrf,
            cookie: cookie.to_string(),
        })
    })
    .transpose()
}

/// The session cookie's value in the request's `Cookie` headers.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

impl FromRequestParts<AppState> for Session {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let cookie = session_cookie(&parts.headers).ok_or(AppError::MissingToken)?;
        session(&state.db, cookie)
            .await?
            .ok_or(AppError::MissingToken)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    /// A Bearer token; without one, the session cookie, but only for reading (GET, HEAD): the
    /// pages' event streams use it (`EventSource` cannot send headers), while every change through
    /// the API needs the token, so a forged cross-site request has nothing to ride on.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            let reading = parts.method == Method::GET || parts.method == Method::HEAD;
            return match session_cookie(&parts.headers) {
                Some(cookie) if reading => session(&state.db, cookie)
                    .await?
                    .map(|s| s.caller)
                    .ok_or(AppError::BadToken),
                _ => Err(AppError::MissingToken),
            };
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AppError::MissingToken)?;
        caller_of_token(&state.db, token)
            .await?
            .ok_or(AppError::BadToken)
    }
}
