//! The server's database, SQLite (one machine, the default: `DATA_DIR/grader.db`) or PostgreSQL
//! (shared by a web tier and `grader worker`s on many machines), through sqlx's `Any` driver:
//! opening it, applying its backend's migrations (`migrations/sqlite/`, `migrations/postgres/`),
//! and write transactions that serialise writers on both.

use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor as _, Transaction};

/// The database file's name inside the data folder.
pub const DB_FILE: &str = "grader.db";

/// Which database engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: one process owns it.
    Sqlite,
    /// A PostgreSQL server: any number of processes share it.
    Postgres,
}

impl Backend {
    /// The backend of `url`, by its scheme (`sqlite:`, `postgres:` or `postgresql:`).
    pub fn of_url(url: &str) -> Option<Backend> {
        let scheme = url.split(':').next()?;
        match scheme {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }

    /// The backend `db` was opened on.
    pub fn of(db: &AnyPool) -> Backend {
        Backend::of_url(db.connect_options().database_url.as_str()).unwrap_or(Backend::Sqlite)
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The data folder cannot be created.
    #[error("cannot create the data folder {path}: {source}")]
    Folder {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The URL names no database this grader knows.
    #[error(
        "unsupported database URL {0:?}: use sqlite://FILE or postgres://USER:PASSWORD@HOST/DB"
    )]
    Url(String),
    /// A SQLite file cannot be created because its folder does not exist.
    #[error(
        "cannot create the database {url}: the folder {folder} does not exist (check the path, or \
         create the folder first)"
    )]
    NoFolder {
        /// The database.
        url: String,
        /// The missing folder.
        folder: String,
    },
    /// The database refused to open (or create) it.
    #[error("cannot open the database {url}: {source}")]
    Open {
        /// The database, its password hidden.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed (or the database is newer than this grader).
    #[error("cannot migrate the database {url}: {source}")]
    Migrate {
        /// The database, its password hidden.
        url: String,
        /// Why.
        source: sqlx::migrate::MigrateError,
    },
}

/// The default database: `DATA_DIR/grader.db`, as a URL that creates the file if missing.
pub fn default_url(data_dir: &Path) -> String {
    let path = data_dir.join(DB_FILE).display().to_string();
    // The path is percent-decoded by sqlx; escape what a URL would read otherwise.
    let path = path
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    format!("sqlite://{path}?mode=rwc")
}

/// Opens (creating it and its folder if needed) and migrates the SQLite database in `data_dir`.
pub async fn open(data_dir: &Path) -> Result<AnyPool, DbError> {
    std::fs::create_dir_all(data_dir).map_err(|source| DbError::Folder {
        path: data_dir.display().to_string(),
        source,
    })?;
    connect(&default_url(data_dir)).await
}

/// `url` with its password replaced by `***`, for messages and logs.
pub fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let credentials = &url[start + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}:***{}", &url[..start + 3 + colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Opens and migrates the database at `url` (`sqlite://FILE?mode=rwc` or `postgres://…`).
pub async fn connect(url: &str) -> Result<AnyPool, DbError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url).ok_or_else(|| DbError::Url(shown(url)))?;
    let open_error = |source| DbError::Open {
        url: shown(url),
        source,
    };
    let url = match backend {
        Backend::Sqlite => sqlite_url(url)?,
        Backend::Postgres => url.to_string(),
    };
    let url = url.as_str();
    let options: AnyConnectOptions = url.parse().map_err(open_error)?;
    let pool = match backend {
        Backend::Sqlite => AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL: readers never block the writer. In WAL mode, NORMAL survives a crash
                    // of the process (not of the machine): a commit is on disk before the
                    // upload's 202. The busy timeout makes a second writer wait, not fail.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_error)?,
        // Each process keeps a few connections: requests, a listener and one per grading.
        Backend::Postgres => AnyPoolOptions::new()
            .max_connections(10)
            .connect_with(options)
            .await
            .map_err(open_error)?,
    };
    let migrated = match backend {
        Backend::Sqlite => sqlx::migrate!("../migrations/sqlite").run(&pool).await,
        Backend::Postgres => sqlx::migrate!("../migrations/postgres").run(&pool).await,
    };
    migrated.map_err(|source| DbError::Migrate {
        url: shown(url),
        source,
    })?;
    Ok(pool)
}

/// `url` ready to open: without a `mode` it creates a missing file, as the default URL does. A
/// file that does not exist yet needs an existing folder, so that a mistyped folder ends with a
/// message instead of sqlx's "unable to open database file"; a new file is logged.
fn sqlite_url(url: &str) -> Result<String, DbError> {
    let options =
        sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(|source| DbError::Open {
            url: url.to_string(),
            source,
        })?;
    let query = url.split_once('?').map(|(_, query)| query);
    let has_mode = query.is_some_and(|q| q.split('&').any(|pair| pair.starts_with("mode=")));
    if has_mode || url.contains(":memory:") {
        return Ok(url.to_string());
    }
    let file = options.get_filename();
    if !file.exists() {
        let folder = match file.parent() {
            Some(folder) if folder.as_os_str().is_empty() => Path::new("."),
            Some(folder) => folder,
            None => Path::new("/"),
        };
        if !folder.is_dir() {
            return Err(DbError::NoFolder {
                url: url.to_string(),
                folder: folder.display().to_string(),
            });
        }
        tracing::info!(file = %file.display(), "creating a new database");
    }
    let separator = match query {
        None => "?",
        Some(query) if query.is_empty() || query.ends_with('&') => "",
        Some(_) => "&",
    };
    Ok(format!("{url}{separator}mode=rwc"))
}

/// Starts a write transaction that runs alone among the server's write transactions, as the
/// checks they make before writing (a student's rate limit, a regrade's "not queued already")
/// rely on. SQLite: `BEGIN IMMEDIATE` takes the file's write lock at once, so a busy database
/// makes it wait (the busy timeout) instead of failing later when a read turns into a write.
/// PostgreSQL: a transaction-scoped advisory lock, so that every statement after it sees what the
/// previous writer committed (READ COMMITTED). The queue's claims, heartbeats and results do
/// not take it: they touch one job each, guarded by its lease.
pub async fn write(db: &AnyPool) -> Result<Transaction<'static, Any>, sqlx::Error> {
    match Backend::of(db) {
        Backend::Sqlite => db.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => {
            let mut tx = db.begin().await?;
            // Through a subquery: `Any` cannot decode the function's `void`.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                .bind(WRITE_LOCK)
                .execute(&mut *tx)
                .await?;
            Ok(tx)
        }
    }
}

/// The advisory lock key of [`write`] ("grader" in ASCII): any constant other applications on
/// the same database do not use.
const WRITE_LOCK: i64 = 0x0000_6772_6164_6572;

/// Now, in Unix milliseconds: how every time is stored.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_url_gets_a_creating_mode_only_when_it_names_none() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("grader.db").display());
        let with = |tail: &str| sqlite_url(&format!("{url}{tail}")).unwrap();
        assert_eq!(with(""), format!("{url}?mode=rwc"));
        assert_eq!(with("?"), format!("{url}?mode=rwc"));
        assert_eq!(
            with("?cache=shared"),
            format!("{url}?cache=shared&mode=rwc")
        );
        assert_eq!(with("?mode=ro"), format!("{url}?mode=ro"));
        let missing = dir.path().join("no-such-folder/grader.db");
        assert!(matches!(
            sqlite_url(&format!("sqlite://{}", missing.display())),
            Err(DbError::NoFolder { .. })
        ));
    }
}
