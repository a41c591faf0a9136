//! A fresh PostgreSQL database per test, on the server that scripts/test.sh starts and names in
//! `GRADER_TEST_POSTGRES_URL`; dropped when the test ends, passed or failed.

use sqlx::{Connection as _, Executor as _, PgConnection};

/// The variable naming the test server.
const VAR: &str = "GRADER_TEST_POSTGRES_URL";

/// A database of one test.
pub struct TempDb {
    /// Its URL.
    pub url: String,
    admin: String,
    name: String,
}

impl TempDb {
    /// Creates a database with a random name on the test server.
    pub async fn create() -> TempDb {
        let admin = std::env::var(VAR).unwrap_or_else(|_| {
            panic!(
                "{VAR} is not set: run scripts/test.sh (it starts PostgreSQL), or set it to a \
                 server whose role may create databases, e.g. \
                 postgres://grader_test:grader_test@127.0.0.1:5432/postgres"
            )
        });
        let name = format!("grader_test_{:016x}", rand::random::<u64>());
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {VAR} ({admin}): {e}"));
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        conn.close().await.unwrap();
        let base = admin.rsplit_once('/').expect("a URL with a database").0;
        TempDb {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // On a thread of its own: a test's runtime may be shutting down, or not exist.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await?;
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}
