//! Who is calling: API tokens (`rg_` + 64 hex digits; only their SHA-256 is stored) and the
//! `Authorization: Bearer TOKEN` extractor [`Caller`].

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest as _, Sha256};
use sqlx::SqliteConnection;

use super::db::now_ms;
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
pub async fn issue_token(
    tx: &mut SqliteConnection,
    person_id: &str,
) -> Result<String, sqlx::Error> {
    let token = new_token();
    let now = now_ms();
    sqlx::query("UPDATE tokens SET revoked_at = ? WHERE person_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(person_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO tokens (person_id, sha256, created_at) VALUES (?, ?, ?)")
        .bind(person_id)
        .bind(token_hash(&token))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(token)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(AppError::MissingToken)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AppError::MissingToken)?;
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT p.id, p.role FROM tokens t JOIN people p ON p.id = t.person_id \
             WHERE t.sha256 = ? AND t.revoked_at IS NULL",
        )
        .bind(token_hash(token))
        .fetch_optional(&state.db)
        .await?;
        let (id, role) = row.ok_or(AppError::BadToken)?;
        let role = Role::parse(&role).ok_or_else(|| {
            AppError::Internal(format!("person {id} has the unknown role {role}"))
        })?;
        Ok(Caller { id, role })
    }
}
