//! The roster: `grader roster import FILE.csv` (id,name,email,role), `grader roster token ID` and
//! `grader roster extend ID UNTIL`.

use std::path::Path;

use sqlx::AnyPool;

use super::auth::{issue_token, Role};
use super::db::{now_ms, write};

/// One person of a roster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Roster id (student number, login).
    pub id: String,
    /// Full name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Student or instructor.
    pub role: Role,
}

/// An operator's mistake in a roster command.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    /// The file cannot be read.
    #[error("cannot read the roster {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `id,name,email,role`.
    #[error("roster {path}, line {line}: {problem}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong, in words.
        problem: String,
    },
    /// `roster token` for someone not on the roster.
    #[error("no person with id {0:?} on the roster (import them first)")]
    UnknownPerson(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Reads a roster CSV: a header `id,name,email,role` (in that order), then one person per line.
pub fn read(path: &Path) -> Result<Vec<Entry>, RosterError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RosterError::Read {
        path: shown.clone(),
        source,
    })?;
    let line_error = |line: u64, problem: String| RosterError::Line {
        path: shown.clone(),
        line,
        problem,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| line_error(1, e.to_string()))?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>();
    if header != ["id", "name", "email", "role"] {
        return Err(line_error(
            1,
            format!(
                "the header must be `id,name,email,role`, found `{}`",
                header.join(",")
            ),
        ));
    }
    let mut entries: Vec<Entry> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            line_error(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("").to_string();
        let (id, name, email, role) = (field(0), field(1), field(2), field(3));
        if id.is_empty() {
            return Err(line_error(line, "empty id".into()));
        }
        let role = Role::parse(&role.to_ascii_lowercase()).ok_or_else(|| {
            line_error(
                line,
                format!("role {role:?} is neither `student` nor `instructor`"),
            )
        })?;
        if entries.iter().any(|e| e.id == id) {
            return Err(line_error(line, format!("id {id:?} appears twice")));
        }
        entries.push(Entry {
            id,
            name,
            email,
            role,
        });
    }
    Ok(entries)
}

/// Creates or updates everyone in `entries` in one transaction; returns the new people's ids with
/// their tokens (people already known keep theirs).
pub async fn import(db: &AnyPool, entries: &[Entry]) -> Result<Vec<(String, String)>, RosterError> {
    let now = now_ms();
    let mut created = Vec::new();
    let mut tx = write(db).await?;
    for e in entries {
        let existed: Option<(String,)> = sqlx::query_as("SELECT id FROM people WHERE id = $1")
            .bind(&e.id)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO people (id, name, email, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email, \
             role = excluded.role, updated_at = excluded.updated_at",
        )
        .bind(&e.id)
        .bind(&e.name)
        .bind(&e.email)
        .bind(e.role.as_str())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if existed.is_none() {
            created.push((e.id.clone(), issue_token(&mut tx, &e.id).await?));
        }
    }
    // Committed only now: either everyone is imported with a printed token, or nobody.
    tx.commit().await?;
    Ok(created)
}

/// Issues a new token for `id`, revoking the old one.
pub async fn new_token(db: &AnyPool, id: &str) -> Result<String, RosterError> {
    let known: Option<(String,)> = sqlx::query_as("SELECT id FROM people WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    if known.is_none() {
        return Err(RosterError::UnknownPerson(id.to_string()));
    }
    let mut tx = write(db).await?;
    let token = issue_token(&mut tx, id).await?;
    tx.commit().await?;
    Ok(token)
}

/// Gives `id` their own deadline `until` (Unix ms); returns it in RFC 3339.
pub async fn extend(
    db: &AnyPool,
    id: &str,
    until: i64,
    reason: Option<&str>,
) -> Result<String, RosterError> {
    let mut tx = write(db).await?;
    if !super::policy::extend(&mut tx, id, until, reason, None).await? {
        return Err(RosterError::UnknownPerson(id.to_string()));
    }
    tx.commit().await?;
    Ok(super::time::format_ms(until))
}
