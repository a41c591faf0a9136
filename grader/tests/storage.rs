//! The storage layer on both backends: every test body runs once on SQLite and once on a fresh
//! PostgreSQL database (`GRADER_TEST_POSTGRES_URL`, which scripts/test.sh sets; without it the
//! PostgreSQL half fails, saying so). The queue (order, one claim per job, leases), uploads, the
//! rate limit under concurrent uploads and the HTTP API's reads and writes.

mod common;
#[path = "support/postgres.rs"]
mod postgres_db;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use grader::server::db::{self, now_ms};
use grader::server::policy::Policy;
use grader::server::queue::{self, Failed, LEASE, MAX_ATTEMPTS};
use grader::server::{self, roster, uploads, Server};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::AnyPool;

use common::report_scoring;
use postgres_db::TempDb;

/// A database of one test, with students s1, s2 and instructor t1.
struct Store {
    dir: tempfile::TempDir,
    /// Kept until the end: dropping it drops the database.
    _pg: Option<TempDb>,
    url: String,
    db: AnyPool,
    tokens: Vec<(String, String)>,
}

impl Store {
    async fn sqlite() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let url = db::default_url(dir.path());
        Store::on(dir, None, url).await
    }

    async fn postgres() -> Store {
        let pg = TempDb::create().await;
        let url = pg.url.clone();
        Store::on(tempfile::tempdir().unwrap(), Some(pg), url).await
    }

    async fn on(dir: tempfile::TempDir, pg: Option<TempDb>, url: String) -> Store {
        let db = db::connect(&url).await.unwrap();
        let tokens = roster::import(&db, &common::people()).await.unwrap();
        Store {
            dir,
            _pg: pg,
            url,
            db,
            tokens,
        }
    }

    fn token(&self, id: &str) -> &str {
        &self.tokens.iter().find(|(who, _)| who == id).unwrap().1
    }

    /// Records an upload of `person` and queues it, as the upload handler does.
    async fn submit(&self, person: &str, bytes: &[u8]) -> i64 {
        let mut tx = db::write(&self.db).await.unwrap();
        let id = self.submit_in(&mut tx, person).await;
        sqlx::query("UPDATE submissions SET size_bytes = $1 WHERE id = $2")
            .bind(bytes.len() as i64)
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        uploads::store(&mut tx, id, bytes).await.unwrap();
        queue::enqueue(&mut tx, id, queue::UPLOAD_PRIORITY)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// Inserts a submission of `person` in `tx`; its id.
    async fn submit_in(&self, tx: &mut sqlx::AnyConnection, person: &str) -> i64 {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO submissions (person_id, created_at, file_name, size_bytes, sha256, \
             status) VALUES ($1, $2, 'a.tar.gz', 0, 'x', 'queued') RETURNING id",
        )
        .bind(person)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        id
    }

    /// A server without workers on this database.
    async fn serve(&self, policy: Policy) -> Server {
        let options = common::web_tier(self.dir.path(), &self.url, policy);
        server::start(options, None).await.unwrap()
    }

    /// Ends the lease of every running job, as if its worker had died long ago.
    async fn expire_leases(&self) {
        sqlx::query("UPDATE jobs SET lease_until = 0 WHERE state = 'running'")
            .execute(&self.db)
            .await
            .unwrap();
    }
}

/// Runs each test body on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                super::$name(super::Store::sqlite().await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                super::$name(super::Store::postgres().await).await;
            })*
        }
    };
}

on_both!(
    uploads_come_before_regrades_and_concurrent_claims_take_each_job_once,
    a_worker_that_lost_its_lease_stores_nothing_and_the_next_owner_does,
    a_job_whose_worker_keeps_dying_ends_in_error_never_as_a_zero,
    uploads_are_kept_in_the_database_and_old_upload_files_are_still_read,
    the_rate_limit_counts_concurrent_uploads_one_by_one,
    write_transactions_run_one_at_a_time,
    the_api_writes_and_reads_every_kind_of_row,
);

async fn uploads_come_before_regrades_and_concurrent_claims_take_each_job_once(s: Store) {
    let first = s.submit("s1", b"1").await;
    let mut tx = db::write(&s.db).await.unwrap();
    queue::enqueue(&mut tx, first, queue::REGRADE_PRIORITY)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut uploads = vec![first];
    for n in 0..19u8 {
        uploads.push(s.submit("s2", &[n]).await);
    }
    let claimed = queue::claim(&s.db, "w0", LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.submission_id, first, "the oldest upload first");
    let next = queue::claim(&s.db, "w0", LEASE).await.unwrap().unwrap();
    assert_eq!(
        next.submission_id, uploads[1],
        "the next upload, not the regrade queued before it"
    );
    // Eight claimers at once take the other 19 jobs: each exactly once.
    let db = Arc::new(s.db.clone());
    let claimers: Vec<_> = (1..=8)
        .map(|w| {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(job) = queue::claim(&db, &format!("w{w}"), LEASE).await.unwrap() {
                    got.push(job);
                }
                got
            })
        })
        .collect();
    let mut jobs = vec![claimed, next];
    for c in claimers {
        jobs.extend(c.await.unwrap());
    }
    let ids: BTreeSet<i64> = jobs.iter().map(|j| j.id).collect();
    assert_eq!((jobs.len(), ids.len()), (21, 21), "each job once");
    let (claims,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND attempts = 1 AND worker IS NOT NULL",
    )
    .fetch_one(&s.db)
    .await
    .unwrap();
    assert_eq!(claims, 21);
}

async fn a_worker_that_lost_its_lease_stores_nothing_and_the_next_owner_does(s: Store) {
    let id = s.submit("s1", b"archive").await;
    let lost = queue::claim(&s.db, "dead", LEASE).await.unwrap().unwrap();
    assert!(queue::heartbeat(&s.db, &lost, LEASE).await.unwrap());
    s.expire_leases().await;
    assert_eq!(queue::reclaim_expired(&s.db).await.unwrap(), (1, 0));
    assert_eq!(queue::position(&s.db, id).await.unwrap(), Some(1));
    let owner = queue::claim(&s.db, "alive", LEASE).await.unwrap().unwrap();
    assert_eq!((owner.id, owner.attempts), (lost.id, 2));
    assert!(!queue::heartbeat(&s.db, &lost, LEASE).await.unwrap());
    let stale = queue::finish(&s.db, &lost, &report_scoring(10), "v1").await;
    assert!(!stale.unwrap(), "a lost lease stores nothing");
    let failed = queue::fail(&s.db, &lost, "late error", Duration::ZERO).await;
    assert_eq!(failed.unwrap(), Failed::Lost);
    assert!(queue::finish(&s.db, &owner, &report_scoring(90), "v1")
        .await
        .unwrap());
    let (status, score, worker): (String, Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT s.status, s.score, j.worker FROM submissions s JOIN jobs j \
         ON j.submission_id = s.id WHERE s.id = $1",
    )
    .bind(id)
    .fetch_one(&s.db)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), score, worker.as_deref()),
        ("graded", Some(90), Some("alive"))
    );
}

async fn a_job_whose_worker_keeps_dying_ends_in_error_never_as_a_zero(s: Store) {
    let id = s.submit("s1", b"archive").await;
    for attempt in 1..=MAX_ATTEMPTS {
        let job = queue::claim(&s.db, "w", LEASE).await.unwrap().unwrap();
        assert_eq!(job.attempts, attempt);
        s.expire_leases().await;
        let expected = if attempt < MAX_ATTEMPTS {
            (1, 0)
        } else {
            (0, 1)
        };
        assert_eq!(queue::reclaim_expired(&s.db).await.unwrap(), expected);
    }
    assert!(queue::claim(&s.db, "w", LEASE).await.unwrap().is_none());
    let (status, score, error): (String, Option<i64>, Option<String>) =
        sqlx::query_as("SELECT status, score, error FROM submissions WHERE id = $1")
            .bind(id)
            .fetch_one(&s.db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), score), ("error", None));
    assert!(error.unwrap().contains("lease"));
}

async fn uploads_are_kept_in_the_database_and_old_upload_files_are_still_read(s: Store) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let id = s.submit("s1", &bytes).await;
    let read = uploads::read(&s.db, s.dir.path(), id).await.unwrap();
    assert_eq!(read.as_deref(), Some(&bytes[..]));
    // A submission an earlier version stored as a file: no row, read from the data folder.
    let old = s.submit("s2", b"x").await;
    sqlx::query("DELETE FROM uploads WHERE submission_id = $1")
        .bind(old)
        .execute(&s.db)
        .await
        .unwrap();
    assert_eq!(uploads::read(&s.db, s.dir.path(), old).await.unwrap(), None);
    let path = uploads::legacy_path(s.dir.path(), old);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"from an earlier version").unwrap();
    let read = uploads::read(&s.db, s.dir.path(), old).await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"from an earlier version"[..]));
}

async fn upload(client: &reqwest::Client, server: &Server, token: &str) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(vec![1u8; 100]).file_name("02_runtime.tar.gz");
    client
        .post(format!("http://{}/api/submissions", server.addr().unwrap()))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap()
}

async fn the_rate_limit_counts_concurrent_uploads_one_by_one(s: Store) {
    let policy = Policy {
        min_interval: Duration::ZERO,
        per_day: 3,
        ..Default::default()
    };
    let server = Arc::new(s.serve(policy).await);
    let client = reqwest::Client::new();
    let token = s.token("s1").to_string();
    let tries: Vec<_> = (0..12)
        .map(|_| {
            let (server, client, token) = (Arc::clone(&server), client.clone(), token.clone());
            tokio::spawn(async move { upload(&client, &server, &token).await.status() })
        })
        .collect();
    let mut accepted = 0;
    for t in tries {
        match t.await.unwrap() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(accepted, 3, "exactly the day's allowance");
}

/// What the rate limit (and a regrade's "not queued already") relies on: a second write
/// transaction starts only once the first one committed, and then sees what it wrote.
async fn write_transactions_run_one_at_a_time(s: Store) {
    let mut first = db::write(&s.db).await.unwrap();
    s.submit_in(&mut first, "s1").await;
    let db = s.db.clone();
    let mut second = tokio::spawn(async move {
        let mut tx = db::write(&db).await.unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM submissions")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        n
    });
    // Only a wrong grader ends this wait early: then the second started while the first is open.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut second).await;
    assert!(early.is_err(), "the second write began inside the first");
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), 1, "it sees the first one's row");
}

async fn the_api_writes_and_reads_every_kind_of_row(s: Store) {
    let server = s.serve(common::open_policy()).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.addr().unwrap());
    let get = |path: &str, token: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(token.to_string())
            .send()
    };
    let accepted: Value = upload(&client, &server, s.token("s1"))
        .await
        .json()
        .await
        .unwrap();
    let id = accepted["id"].as_i64().unwrap();
    assert_eq!(accepted["position"], 1);
    let job = queue::claim(&s.db, "w", LEASE).await.unwrap().unwrap();
    assert!(queue::finish(&s.db, &job, &report_scoring(77), "v1")
        .await
        .unwrap());
    let shown = common::json_of(get(&format!("/api/submissions/{id}"), s.token("s1"))).await;
    assert_eq!(
        (&shown["status"], &shown["score"]),
        (&Value::from("graded"), &Value::from(77)),
        "{shown}"
    );
    let download = get(&format!("/api/submissions/{id}/upload"), s.token("s1"))
        .await
        .unwrap();
    assert_eq!(download.bytes().await.unwrap().to_vec(), vec![1u8; 100]);
    let me = common::json_of(get("/api/me", s.token("s1"))).await;
    assert_eq!(me["submissions"], 1, "{me}");
    let book = common::json_of(get("/api/gradebook", s.token("t1"))).await;
    assert!(book.to_string().contains("77"), "{book}");
    let csv = get("/api/gradebook.csv", s.token("t1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.contains("s1"), "{csv}");
    let regrade = client
        .post(format!("{base}/api/regrades"))
        .bearer_auth(s.token("t1"))
        .json(&serde_json::json!({"person": "s1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        regrade.status(),
        StatusCode::ACCEPTED,
        "{:?}",
        regrade.text().await
    );
    let progress = common::json_of(get("/api/regrades/1", s.token("t1"))).await;
    assert_eq!(progress["total"], 1, "{progress}");
    let extension = client
        .post(format!("{base}/api/extensions"))
        .bearer_auth(s.token("t1"))
        .json(&serde_json::json!({"person": "s2", "until": "2030-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert!(
        extension.status().is_success(),
        "{:?}",
        extension.text().await
    );
    let health = get("/healthz", s.token("t1")).await.unwrap();
    assert_eq!(
        health.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "nothing grades"
    );
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["queue"]["queued"], 1, "the regrade waits: {health}");
    let metrics = get("/metrics", s.token("t1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("grader_jobs"), "{metrics}");
    server.shutdown().await;
}

/// A database made by the grader before this storage layer (migrations 0001 and 0002 only, an
/// upload kept as a file) opens, migrates and keeps every upload.
#[tokio::test(flavor = "multi_thread")]
async fn an_earlier_sqlite_database_migrates_and_keeps_its_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    for file in ["0001_initial.sql", "0002_limits_deadline_regrades.sql"] {
        std::fs::copy(
            common::repo().join("migrations/sqlite").join(file),
            old.path().join(file),
        )
        .unwrap();
    }
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join(db::DB_FILE))
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(old.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO people VALUES ('s1', 'S', 's@example.org', 'student', 0, 0); \
             INSERT INTO submissions (person_id, created_at, file_name, size_bytes, sha256, status) \
             VALUES ('s1', 0, 'a.tar.gz', 3, 'x', 'queued'); \
             INSERT INTO jobs (submission_id, state, created_at) VALUES (1, 'queued', 0);",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    std::fs::create_dir_all(dir.path().join(uploads::LEGACY_DIR)).unwrap();
    std::fs::write(uploads::legacy_path(dir.path(), 1), b"old").unwrap();
    let db = db::open(dir.path()).await.unwrap();
    let read = uploads::read(&db, dir.path(), 1).await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"old"[..]));
    let job = queue::claim(&db, "w", LEASE).await.unwrap().unwrap();
    assert_eq!(job.submission_id, 1, "its queue carries on");
}

/// Point 6's figure, not a test (scripts/bench-queue.sh runs it): the queue's own cost per job,
/// enqueue + claim + finish, each in its transaction as the server runs them, one client, on
/// SQLite and on PostgreSQL side by side.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: scripts/bench-queue.sh"]
async fn queue_overhead_per_job() {
    const JOBS: usize = 500;
    let mut rows = Vec::new();
    for (name, s) in [
        ("SQLite", Store::sqlite().await),
        ("PostgreSQL", Store::postgres().await),
    ] {
        let mut ids = Vec::with_capacity(JOBS);
        for _ in 0..JOBS {
            let mut tx = db::write(&s.db).await.unwrap();
            ids.push(s.submit_in(&mut tx, "s1").await);
            tx.commit().await.unwrap();
        }
        let started = Instant::now();
        for &id in &ids {
            let mut tx = db::write(&s.db).await.unwrap();
            queue::enqueue(&mut tx, id, queue::UPLOAD_PRIORITY)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let enqueued = started.elapsed();
        let started = Instant::now();
        let mut jobs = Vec::with_capacity(JOBS);
        while let Some(job) = queue::claim(&s.db, "w", LEASE).await.unwrap() {
            jobs.push(job);
        }
        let claimed = started.elapsed();
        assert_eq!(jobs.len(), JOBS);
        let report = report_scoring(50);
        let started = Instant::now();
        for job in &jobs {
            assert!(queue::finish(&s.db, job, &report, "v1").await.unwrap());
        }
        let finished = started.elapsed();
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / JOBS as f64;
        rows.push(format!(
            "{name:<11} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            per(enqueued),
            per(claimed),
            per(finished),
            per(enqueued + claimed + finished)
        ));
    }
    println!("queue overhead per job over {JOBS} jobs, ms (one client, debug build)");
    println!(
        "{:<11} {:>8} {:>8} {:>8} {:>8}",
        "backend", "enqueue", "claim", "finish", "total"
    );
    for row in rows {
        println!("{row}");
    }
}
