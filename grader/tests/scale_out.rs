//! Scale-out on a real PostgreSQL (`GRADER_TEST_POSTGRES_URL`, which scripts/test.sh sets): a web
//! tier without workers of its own (in this process) and `grader worker` processes sharing one
//! queue. Every wait polls the database or the events; none sleeps to synchronise.

mod common;
#[path = "support/postgres.rs"]
mod postgres_db;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grader::server::auth::Role;
use grader::server::events::Update;
use grader::server::{self, db, roster, Server};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::AnyPool;

use postgres_db::TempDb;

/// The web tier and its database.
struct Cluster {
    pg: TempDb,
    _dir: tempfile::TempDir,
    db: AnyPool,
    server: Arc<Server>,
    token: String,
    logs: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let pg = TempDb::create().await;
        let db = db::connect(&pg.url).await.unwrap();
        let people = [common::person("s1", Role::Student)];
        let token = roster::import(&db, &people).await.unwrap().remove(0).1;
        let dir = tempfile::tempdir().unwrap();
        let options = common::web_tier(dir.path(), &pg.url, common::open_policy());
        let server = Arc::new(server::start(options, None).await.unwrap());
        Cluster {
            pg,
            _dir: dir,
            db,
            server,
            token,
            logs: tempfile::tempdir().unwrap(),
        }
    }

    /// Starts `grader worker` (one worker, leases of `lease_secs`) on the shared caches.
    fn worker(&self, lease_secs: u64) -> Worker {
        let log = self
            .logs
            .path()
            .join(format!("worker-{}.log", rand::random::<u32>()));
        let child = Command::new(env!("CARGO_BIN_EXE_grader"))
            .arg("--data-dir")
            .arg(common::data_dir())
            .arg("--hidden-tests")
            .arg(common::repo().join("hidden-tests"))
            .args(["--jobs", "1", "worker", "--workers", "1", "--lease-secs"])
            .arg(lease_secs.to_string())
            .env("GRADER_DATABASE_URL", &self.pg.url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Worker { child, log }
    }

    /// Polls `sql` (one BIGINT) until it is `want`, for at most `limit`.
    async fn until(&self, sql: &'static str, want: i64, limit: Duration, workers: &[&Worker]) {
        let start = Instant::now();
        loop {
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&self.db).await.unwrap();
            if n == want {
                return;
            }
            let logs: Vec<String> = workers.iter().map(|w| w.log()).collect();
            assert!(
                start.elapsed() < limit,
                "{sql} is {n}, not {want}, after {limit:?}; worker logs:\n{}",
                logs.join("\n---\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts a worker (leases of `lease_secs`), uploads the reference solution and waits until
    /// the worker grades it; the worker and the submission.
    async fn grading_the_reference(&self, lease_secs: u64) -> (Worker, i64) {
        let worker = self.worker(lease_secs);
        let limit = Duration::from_secs(60);
        self.until("SELECT COUNT(*) FROM workers", 1, limit, &[&worker])
            .await;
        let id = self
            .upload(&reqwest::Client::new(), common::reference_archive())
            .await;
        let running = "SELECT COUNT(*) FROM jobs WHERE state = 'running'";
        self.until(running, 1, limit, &[&worker]).await;
        (worker, id)
    }

    async fn upload(&self, client: &reqwest::Client, bytes: Vec<u8>) -> i64 {
        let part = reqwest::multipart::Part::bytes(bytes).file_name("02_runtime.tar.gz");
        let r = client
            .post(format!(
                "http://{}/api/submissions",
                self.server.addr().unwrap()
            ))
            .bearer_auth(&self.token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }
}

/// A `grader worker` process, killed when dropped.
struct Worker {
    child: Child,
    log: std::path::PathBuf,
}

impl Worker {
    /// How its jobs' `worker` column names it.
    fn marker(&self) -> String {
        format!("-{}-", self.child.id())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_grade_200_concurrent_uploads_each_once_and_the_web_tier_sees_every_result() {
    let c = Cluster::start().await;
    let (a, b) = (c.worker(60), c.worker(60));
    let limit = Duration::from_secs(60);
    c.until("SELECT COUNT(*) FROM workers", 2, limit, &[&a, &b])
        .await;
    let health = common::json_of(reqwest::get(format!(
        "http://{}/healthz",
        c.server.addr().unwrap()
    )))
    .await;
    assert_eq!(
        (&health["status"], &health["workers"]["processes_alive"]),
        (&Value::from("ok"), &Value::from(2)),
        "{health}"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", c.server.addr().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("grader_worker_processes 2\n")
            && metrics.contains("grader_worker_slots 2\n"),
        "{metrics}"
    );
    // Every `done` reaches the web tier, which grades nothing itself: through NOTIFY.
    let mut updates = c.server.state().events.subscribe();
    let done = tokio::spawn(async move {
        let (mut done, mut events) = (BTreeSet::new(), 0);
        while done.len() < 200 {
            if let Ok((id, Update::Done { .. })) = updates.recv().await {
                done.insert(id);
                events += 1;
            }
        }
        (done, events)
    });
    // Not archives: the intake refuses each at once, which keeps the test short.
    let client = reqwest::Client::new();
    let c = Arc::new(c);
    let uploads: Vec<_> = (0..200u32)
        .map(|n| {
            let (c, client) = (Arc::clone(&c), client.clone());
            tokio::spawn(async move { c.upload(&client, n.to_le_bytes().repeat(50)).await })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for u in uploads {
        ids.insert(u.await.unwrap());
    }
    assert_eq!(ids.len(), 200, "200 submissions");
    c.until(
        "SELECT COUNT(*) FROM jobs WHERE state = 'done'",
        200,
        Duration::from_secs(120),
        &[&a, &b],
    )
    .await;
    let jobs: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT submission_id, attempts, worker FROM jobs")
            .fetch_all(&c.db)
            .await
            .unwrap();
    assert_eq!(jobs.len(), 200, "one job per upload");
    assert!(
        jobs.iter().all(|(_, attempts, _)| *attempts == 1),
        "each job claimed once"
    );
    let mut by_worker = BTreeMap::new();
    for (_, _, worker) in &jobs {
        let which = [&a, &b]
            .iter()
            .position(|w| worker.contains(&w.marker()))
            .expect("graded by one of the two");
        *by_worker.entry(which).or_insert(0) += 1;
    }
    assert_eq!(by_worker.len(), 2, "both workers graded: {by_worker:?}");
    let (stored, results): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM uploads), \
         (SELECT COUNT(*) FROM submissions WHERE status = 'rejected' AND graded_at IS NOT NULL)",
    )
    .fetch_one(&c.db)
    .await
    .unwrap();
    assert_eq!(
        (stored, results),
        (200, 200),
        "no upload and no result lost"
    );
    let (seen, events) = tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .expect("every done reached the web tier")
        .unwrap();
    assert_eq!(seen, ids);
    // Relayed once: an update echoed between the workers would come again and again.
    assert_eq!(events, 200, "each done once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_grading_loses_its_lease_and_the_other_grades_the_job() {
    let c = Cluster::start().await;
    let (mut a, id) = c.grading_the_reference(3).await;
    let (holder,): (String,) = sqlx::query_as("SELECT worker FROM jobs")
        .fetch_one(&c.db)
        .await
        .unwrap();
    assert!(holder.contains(&a.marker()), "{holder}");
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let b = c.worker(3);
    c.until(
        "SELECT COUNT(*) FROM jobs WHERE state = 'done'",
        1,
        Duration::from_secs(180),
        &[&b],
    )
    .await;
    let (attempts, worker, status, score): (i64, String, String, Option<i64>) = sqlx::query_as(
        "SELECT j.attempts, j.worker, s.status, s.score FROM jobs j \
         JOIN submissions s ON s.id = j.submission_id WHERE s.id = $1",
    )
    .bind(id)
    .fetch_one(&c.db)
    .await
    .unwrap();
    assert!(
        worker.contains(&b.marker()),
        "graded by the other: {worker}"
    );
    assert_eq!(
        (attempts, status.as_str(), score),
        (2, "graded", Some(100)),
        "{}",
        b.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_stopped_by_sigterm_finishes_its_grading_and_leaves_the_workers_table() {
    let c = Cluster::start().await;
    let (mut a, _) = c.grading_the_reference(60).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(a.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let exited = tokio::task::spawn_blocking(move || {
        let status = a.child.wait().unwrap();
        (status, a)
    });
    let (status, a) = tokio::time::timeout(Duration::from_secs(180), exited)
        .await
        .expect("the worker exits once its grading is stored")
        .unwrap();
    assert!(status.success(), "{status}: {}", a.log());
    let (attempts, state, score, workers): (i64, String, Option<i64>, i64) = sqlx::query_as(
        "SELECT j.attempts, j.state, s.score, (SELECT COUNT(*) FROM workers) FROM jobs j \
         JOIN submissions s ON s.id = j.submission_id",
    )
    .fetch_one(&c.db)
    .await
    .unwrap();
    assert_eq!(
        (attempts, state.as_str(), score, workers),
        (1, "done", Some(100), 0),
        "graded once, by the stopping worker, which then left: {}",
        a.log()
    );
}

/// `grader serve --workers 0` on PostgreSQL starts on an empty data folder (no engine: no sandbox,
/// no caches to prepare), serves, and says that nothing grades yet.
#[tokio::test(flavor = "multi_thread")]
async fn a_web_tier_without_workers_serves_and_says_nothing_grades() {
    let pg = TempDb::create().await;
    let data = tempfile::tempdir().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_grader"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("--hidden-tests")
        .arg(common::repo().join("hidden-tests"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "0"])
        .env("GRADER_DATABASE_URL", &pg.url)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(serve.stderr.take().unwrap());
    let mut lines = std::io::BufRead::lines(stderr).map_while(Result::ok);
    let addr = lines.find_map(|l| {
        let rest = l.strip_prefix("listening on http://")?;
        Some(rest.split_whitespace().next()?.to_string())
    });
    // Keep reading its stderr so that it never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let health = match &addr {
        Some(addr) => reqwest::get(format!("http://{addr}/healthz")).await,
        None => panic!("the web tier did not start"),
    };
    let _ = serve.kill();
    let _ = serve.wait();
    let health = health.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["sandbox"], "no workers", "{body}");
    assert_eq!(body["workers"]["processes_alive"], 0, "{body}");
    assert!(
        !data.path().join("toolchain").exists(),
        "nothing prepared for grading"
    );
}

/// What cannot work is refused before anything is prepared (exit 2, saying why): a worker
/// process on SQLite, or a server without workers on it.
#[test]
fn a_worker_on_sqlite_and_a_server_without_workers_on_sqlite_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["worker"][..],
        &["worker", "--database", "sqlite:///tmp/x.db"],
        &["serve", "--workers", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_grader"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("GRADER_DATABASE_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("postgres://"), "{args:?}: {stderr}");
    }
}
