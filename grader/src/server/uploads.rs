//! Uploaded archives' bytes: stored in the database, where every grading process reads them on
//! any machine, and read back from `DATA_DIR/uploads/ID.upload` for uploads that versions before
//! the `uploads` table stored there (nothing is moved or lost on upgrade).

use std::path::{Path, PathBuf};

use sqlx::{AnyConnection, AnyPool};

/// The folder of uploads stored by earlier versions, inside the data folder.
pub const LEGACY_DIR: &str = "uploads";

/// Where an earlier version stored submission `id`'s upload.
pub fn legacy_path(data_dir: &Path, id: i64) -> PathBuf {
    data_dir.join(LEGACY_DIR).join(format!("{id}.upload"))
}

/// Stores submission `id`'s upload, inside the caller's transaction.
pub async fn store(tx: &mut AnyConnection, id: i64, bytes: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO uploads (submission_id, bytes) VALUES ($1, $2)")
        .bind(id)
        .bind(bytes)
        .execute(tx)
        .await?;
    Ok(())
}

/// Submission `id`'s upload: from the database, else from an earlier version's file in
/// `data_dir`; `None` when neither has it.
pub async fn read(db: &AnyPool, data_dir: &Path, id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let stored: Option<(Vec<u8>,)> =
        sqlx::query_as("SELECT bytes FROM uploads WHERE submission_id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    if let Some((bytes,)) = stored {
        return Ok(Some(bytes));
    }
    match tokio::fs::read(legacy_path(data_dir, id)).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(sqlx::Error::Io(e)),
    }
}
