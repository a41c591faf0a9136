//! The grading server against the real thing: a real SQLite file in a temporary folder, a real
//! listener on a free port, reqwest as the client and, for gradings, the real engine in its
//! sandbox. Waiting is done on the server's own events or by polling with a deadline, never by
//! sleeping.
//!
//! The gradings need root and bubblewrap, like `tests/engine.rs`, and the grader's data folder
//! (`GRADER_DATA_DIR`).

mod common;
use common::{open_policy, reference_archive, repo, report_scoring};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use grader::engine::Engine;
use grader::server::policy::{Policy, ScorePolicy};
use grader::server::{self, db, queue, roster, uploads, Options, Server};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

/// How long one grading may take before a test gives up (the reference grades in ~10 s alone).
const GRADING_DEADLINE: Duration = Duration::from_secs(300);

fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    Arc::clone(ENGINE.get_or_init(|| {
        let mut config = common::config(repo().join("hidden-tests"));
        config.jobs = 2;
        Arc::new(Engine::new(config).expect("engine"))
    }))
}

/// A server on a fresh data folder with students s1, s2 and instructor t1.
struct Fixture {
    dir: tempfile::TempDir,
    server: Server,
    client: Client,
    s1: String,
    s2: String,
    t1: String,
}

fn options(dir: &std::path::Path, workers: usize, upload_limit: u64) -> Options {
    Options {
        data_dir: dir.to_path_buf(),
        database: None,
        bind: Some("127.0.0.1:0".parse().unwrap()),
        workers,
        upload_limit,
        drain: GRADING_DEADLINE,
        retry_delay: Duration::ZERO,
        lease: queue::LEASE,
        rubric_entries: 0,
        policy: open_policy(),
    }
}

impl Fixture {
    /// Starts a server without limits; with `engine`, one worker grades.
    async fn start(engine: Option<Arc<Engine>>, upload_limit: u64) -> Fixture {
        Fixture::with_policy(engine, upload_limit, open_policy()).await
    }

    /// Starts a server with `policy`.
    async fn with_policy(
        engine: Option<Arc<Engine>>,
        upload_limit: u64,
        policy: Policy,
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pool = db::open(dir.path()).await.unwrap();
        let tokens = roster::import(&pool, &common::people()).await.unwrap();
        pool.close().await;
        let token = |id: &str| {
            tokens
                .iter()
                .find(|(who, _)| who == id)
                .map(|(_, t)| t.clone())
                .unwrap()
        };
        let options = Options {
            policy,
            ..options(dir.path(), 1, upload_limit)
        };
        let server = server::start(options, engine).await.unwrap();
        Fixture {
            s1: token("s1"),
            s2: token("s2"),
            t1: token("t1"),
            dir,
            server,
            client: Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr().unwrap())
    }

    async fn get(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn upload(&self, token: &str, bytes: Vec<u8>) -> Response {
        let part = reqwest::multipart::Part::bytes(bytes).file_name("02_runtime.tar.gz");
        let form = reqwest::multipart::Form::new().part("file", part);
        self.client
            .post(self.url("/api/submissions"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }
}

async fn json(response: Response) -> Value {
    response.json().await.unwrap()
}

#[track_caller]
fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// A submission's server-sent events, read one at a time.
struct Events {
    response: Response,
    buffer: String,
    /// The id of the last event read.
    last_id: Option<String>,
}

impl Events {
    async fn open(f: &Fixture, id: i64, token: &str) -> Events {
        Events::resume(f, id, token, None).await
    }

    /// Opens the stream as a client reconnecting after event `last_id` would.
    async fn resume(f: &Fixture, id: i64, token: &str, last_id: Option<&str>) -> Events {
        let mut request = f
            .client
            .get(f.url(&format!("/api/submissions/{id}/events")))
            .bearer_auth(token);
        if let Some(last) = last_id {
            request = request.header("Last-Event-ID", last);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Events {
            response,
            buffer: String::new(),
            last_id: None,
        }
    }

    /// The next event's name and data; `None` when the stream ended.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).unwrap());
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        self.last_id = Some(v.to_string());
                    }
                }
                match (name, data) {
                    (Some(n), Some(d)) => return Some((n, d)),
                    _ => continue, // a keep-alive comment
                }
            }
            let chunk = self.response.chunk().await.unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Reads events until one named `name`, returning the names seen before it and its data.
    async fn until(&mut self, name: &str) -> (Vec<String>, Value) {
        let mut seen = Vec::new();
        let wait = async {
            while let Some((n, data)) = self.next().await {
                if n == name {
                    return data;
                }
                seen.push(n);
            }
            panic!("the event stream ended before `{name}`");
        };
        let data = tokio::time::timeout(GRADING_DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("no `{name}` event within {GRADING_DEADLINE:?}"));
        (seen, data)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_bad_or_revoked_tokens_answer_401_with_a_json_error() {
    let f = Fixture::start(None, 1 << 20).await;
    let bare = f
        .client
        .get(f.url("/api/submissions"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bare.headers()["www-authenticate"], "Bearer");
    assert_error(&json(bare).await, "unauthorized");
    let bad = f.get("/api/submissions", "rg_not-a-token").await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_error(&json(bad).await, "unauthorized");
    // An upload without credentials is refused before its body is read.
    let anonymous = f.upload("", reference_archive()).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        f.get("/api/submissions", &f.s1).await.status(),
        StatusCode::OK
    );
    let pool = db::open(f.dir.path()).await.unwrap();
    let new = roster::new_token(&pool, "s1").await.unwrap();
    assert!(new.starts_with("rg_") && new.len() > 60, "{new}");
    let old = f.get("/api/submissions", &f.s1).await;
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the old token was revoked"
    );
    assert_eq!(
        f.get("/api/submissions", &new).await.status(),
        StatusCode::OK
    );
    let stored: Vec<(String,)> = sqlx::query_as("SELECT sha256 FROM tokens")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(stored
        .iter()
        .all(|(h,)| h.len() == 64 && !h.starts_with("rg_")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_student_sees_only_their_own_submissions_and_instructors_see_all() {
    let f = Fixture::start(None, 1 << 20).await;
    let archive = reference_archive();
    let accepted = f.upload(&f.s1, archive.clone()).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let body = json(accepted).await;
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["status"], "queued");
    assert_eq!(body["position"], 1);
    assert_eq!(
        body["urls"]["events"],
        format!("/api/submissions/{id}/events")
    );
    // Stored durably before the 202: the bytes are there, with the recorded SHA-256.
    let state = f.server.state();
    let stored = uploads::read(&state.db, &state.data_dir, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, archive);
    use sha2::Digest as _;
    assert_eq!(body["sha256"], hex::encode(sha2::Sha256::digest(&archive)));

    let path = format!("/api/submissions/{id}");
    let own = f.get(&path, &f.s1).await;
    assert_eq!(own.status(), StatusCode::OK);
    let own = json(own).await;
    assert_eq!(own["status"], "queued");
    assert!(
        own.get("person").is_none(),
        "students get the student view: {own}"
    );
    for other in [path.clone(), format!("{path}/events")] {
        let r = f.get(&other, &f.s2).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{other}");
        assert_error(&json(r).await, "not_found");
    }
    assert_eq!(
        f.get("/api/submissions/999", &f.s1).await.status(),
        StatusCode::NOT_FOUND
    );
    let mine = json(f.get("/api/submissions", &f.s2).await).await;
    assert_eq!(mine["submissions"].as_array().unwrap().len(), 0);
    let mine = json(f.get("/api/submissions", &f.s1).await).await;
    assert_eq!(mine["submissions"][0]["id"], id);
    let full = json(f.get(&path, &f.t1).await).await;
    assert_eq!(full["person"], "s1");
    // The code itself: its owner and instructors only.
    let upload = format!("{path}/upload");
    for token in [&f.s1, &f.t1] {
        let r = f.get(&upload, token).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.unwrap().as_ref(), archive.as_slice());
    }
    assert_eq!(f.get(&upload, &f.s2).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_over_the_limit_answers_413_and_stores_nothing() {
    let limit = 64 * 1024;
    let f = Fixture::start(None, limit).await;
    let too_big = f.upload(&f.s1, vec![7u8; 4 * limit as usize]).await;
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&json(too_big).await, "payload_too_large");
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM submissions")
        .fetch_one(&f.server.state().db)
        .await
        .unwrap();
    assert_eq!(count, 0);
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM uploads")
        .fetch_one(&f.server.state().db)
        .await
        .unwrap();
    assert_eq!(left, 0, "nothing of the partial upload was stored");
    // Just under the limit is taken.
    let fits = f.upload(&f.s1, vec![7u8; limit as usize]).await;
    assert_eq!(fits.status(), StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_left_running_by_a_crash_is_requeued_at_start() {
    let f = Fixture::start(None, 1 << 20).await;
    let id = json(f.upload(&f.s1, reference_archive()).await).await["id"]
        .as_i64()
        .unwrap();
    f.server.shutdown().await;
    // A worker claims the job, then the process dies before it stores anything.
    let pool = db::open(f.dir.path()).await.unwrap();
    let claimed = queue::claim(&pool, "crashed-worker", queue::LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.submission_id, id);
    pool.close().await;

    let server = server::start(options(f.dir.path(), 1, 1 << 20), None)
        .await
        .unwrap();
    let body: Value = f
        .client
        .get(format!(
            "http://{}/api/submissions/{id}",
            server.addr().unwrap()
        ))
        .bearer_auth(&f.s1)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "queued", "{body}");
    assert_eq!(body["position"], 1, "{body}");
    let (state, worker): (String, Option<String>) =
        sqlx::query_as("SELECT state, worker FROM jobs WHERE submission_id = ?")
            .bind(id)
            .fetch_one(&server.state().db)
            .await
            .unwrap();
    assert_eq!((state.as_str(), worker), ("queued", None));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_is_graded_to_full_marks_with_live_progress() {
    let engine = tokio::task::spawn_blocking(engine).await.unwrap();
    let version = grader::engine::suite::HiddenTests::open(&repo().join("hidden-tests"))
        .unwrap()
        .version()
        .to_string();
    let f = Fixture::start(Some(engine), 1 << 20).await;
    let accepted = f.upload(&f.s1, reference_archive()).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let id = json(accepted).await["id"].as_i64().unwrap();
    let mut events = Events::open(&f, id, &f.s1).await;
    // A client that already saw step 2 (building) resumes after it.
    let mut resumed = Events::resume(&f, id, &f.s1, Some("2")).await;
    let (seen, done) = events.until("done").await;
    assert_eq!(done["status"], "graded", "{done}");
    assert_eq!(
        (done["score"].as_i64(), done["max_score"].as_i64()),
        (Some(100), Some(100))
    );
    assert!(seen.iter().any(|e| e == "building"), "{seen:?}");
    assert!(seen.iter().any(|e| e == "testing"), "{seen:?}");
    assert_eq!(events.next().await, None, "the stream ends after `done`");
    let (seen_resumed, done_resumed) = resumed.until("done").await;
    assert_eq!(done_resumed, done);
    assert!(
        seen_resumed.iter().all(|e| e == "queued" || e == "testing"),
        "nothing up to Last-Event-ID is sent again: {seen_resumed:?}"
    );
    assert!(
        seen_resumed.iter().any(|e| e == "testing"),
        "{seen_resumed:?}"
    );

    let path = format!("/api/submissions/{id}");
    let student = json(f.get(&path, &f.s1).await).await;
    assert_eq!(
        (student["status"].as_str(), student["score"].as_i64()),
        (Some("graded"), Some(100))
    );
    let tests = student["report"]["tests"].as_array().unwrap();
    assert!(!tests.is_empty());
    assert!(
        tests.iter().all(|t| t["visible"] == true || t["name"].as_str().unwrap().starts_with("hidden test")),
        "hidden tests are unnamed for students"
    );
    assert!(student.get("hidden_tests_version").is_none());
    let refused = f.get(&format!("{path}?view=full"), &f.s1).await;
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "hidden output is for instructors"
    );
    assert_error(&json(refused).await, "forbidden");
    let as_student = json(f.get(&format!("{path}?view=student"), &f.t1).await).await;
    assert_eq!(as_student["report"], student["report"]);
    let full = json(f.get(&format!("{path}?view=full"), &f.t1).await).await;
    assert_ne!(full["report"], student["report"]);
    assert_eq!(full["hidden_tests_version"], version.as_str());
    assert_eq!(full["report"]["score"], 100);
    let book = json(f.get("/api/gradebook", &f.t1).await).await;
    let s1 = &book["students"][0];
    assert_eq!(
        (
            s1["id"].as_str(),
            s1["counted"]["id"].as_i64(),
            s1["counted"]["final_score"].as_i64()
        ),
        (Some("s1"), Some(id), Some(100)),
        "{book}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_refuses_uploads_with_503_and_lets_the_running_grading_finish() {
    let engine = tokio::task::spawn_blocking(engine).await.unwrap();
    let f = Fixture::start(Some(engine), 1 << 20).await;
    let id = json(f.upload(&f.s1, reference_archive()).await).await["id"]
        .as_i64()
        .unwrap();
    let mut events = Events::open(&f, id, &f.s1).await;
    events.until("building").await;
    let Fixture {
        server,
        client,
        s1,
        dir,
        ..
    } = f;
    let url = format!("http://{}/api/submissions", server.addr().unwrap());
    let stopping = tokio::spawn(server.shutdown());
    // Uploads are refused from the moment shutdown begins; poll until it has.
    let refused = tokio::time::timeout(GRADING_DEADLINE, async {
        loop {
            let part = reqwest::multipart::Part::bytes(reference_archive()).file_name("a.tar.gz");
            let r = client
                .post(&url)
                .bearer_auth(&s1)
                .multipart(reqwest::multipart::Form::new().part("file", part))
                .send()
                .await
                .unwrap();
            if r.status() != StatusCode::ACCEPTED {
                return r;
            }
        }
    })
    .await
    .expect("uploads refused");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&json(refused).await, "unavailable");
    assert!(
        stopping.await.unwrap(),
        "the running grading finished within the drain time"
    );
    let pool = db::open(dir.path()).await.unwrap();
    let (status, score): (String, Option<i64>) =
        sqlx::query_as("SELECT status, score FROM submissions WHERE id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), score), ("graded", Some(100)));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_internal_error_is_retried_twice_then_shown_as_an_error_never_as_a_zero() {
    let f = Fixture::start(None, 1 << 20).await;
    let id = json(f.upload(&f.s1, reference_archive()).await).await["id"]
        .as_i64()
        .unwrap();
    // The stored upload vanishes (a damaged database): every attempt fails inside the grader.
    sqlx::query("DELETE FROM uploads WHERE submission_id = ?")
        .bind(id)
        .execute(&f.server.state().db)
        .await
        .unwrap();
    f.server.shutdown().await;
    let engine = tokio::task::spawn_blocking(engine).await.unwrap();
    let server = server::start(options(f.dir.path(), 1, 1 << 20), Some(engine))
        .await
        .unwrap();
    let g = Fixture { server, ..f };
    let mut events = Events::open(&g, id, &g.s1).await;
    let (_, done) = events.until("done").await;
    assert_eq!(done["status"], "error", "{done}");
    assert_eq!(done["score"], Value::Null);
    let (attempts, state): (i64, String) =
        sqlx::query_as("SELECT attempts, state FROM jobs WHERE submission_id = ?")
            .bind(id)
            .fetch_one(&g.server.state().db)
            .await
            .unwrap();
    assert_eq!((attempts, state.as_str()), (queue::MAX_ATTEMPTS, "error"));
    let path = format!("/api/submissions/{id}");
    let student = json(g.get(&path, &g.s1).await).await;
    assert_eq!(student["status"], "error");
    assert!(
        student.get("score").is_none(),
        "no score for an error: {student}"
    );
    assert!(student["message"]
        .as_str()
        .unwrap()
        .contains("not your score"));
    let full = json(g.get(&path, &g.t1).await).await;
    assert!(
        full["error"]
            .as_str()
            .unwrap()
            .contains("cannot read the stored upload"),
        "{full}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_positions_follow_upload_order_and_move_up_when_a_job_starts() {
    let f = Fixture::start(None, 1 << 20).await;
    let mut ids = Vec::new();
    for (n, token) in [&f.s1, &f.s2, &f.s1].into_iter().enumerate() {
        let body = json(f.upload(token, reference_archive()).await).await;
        assert_eq!(body["position"], n as i64 + 1, "{body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    let claimed = queue::claim(&f.server.state().db, "w", queue::LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        claimed.submission_id, ids[0],
        "the oldest upload goes first"
    );
    let first = json(f.get(&format!("/api/submissions/{}", ids[0]), &f.s1).await).await;
    assert_eq!(
        (first["status"].as_str(), &first["position"]),
        (Some("running"), &Value::Null)
    );
    let second = json(f.get(&format!("/api/submissions/{}", ids[1]), &f.s2).await).await;
    assert_eq!(second["position"], 1);
    let third = json(f.get(&format!("/api/submissions/{}", ids[2]), &f.s1).await).await;
    assert_eq!(third["position"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_claims_hand_each_job_to_exactly_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let pool = db::open(dir.path()).await.unwrap();
    roster::import(&pool, &common::people()).await.unwrap();
    const JOBS: i64 = 40;
    for n in 0..JOBS {
        let mut tx = pool.begin().await.unwrap();
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO submissions (person_id, created_at, file_name, size_bytes, sha256, status) \
             VALUES ('s1', ?, 'a.tar.gz', 1, 'x', 'queued') RETURNING id",
        )
        .bind(n)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        queue::enqueue(&mut tx, id, queue::UPLOAD_PRIORITY)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let claimers: Vec<_> = (0..8)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(job) = queue::claim(&pool, &format!("w{w}"), queue::LEASE)
                    .await
                    .unwrap()
                {
                    mine.push(job.id);
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=JOBS).collect::<Vec<_>>(), "each job claimed once");
    let (running,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE state = 'running'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(running, JOBS);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_the_intake_refuses_is_stored_as_a_rejected_report() {
    let engine = tokio::task::spawn_blocking(engine).await.unwrap();
    let f = Fixture::start(Some(engine), 1 << 20).await;
    let id = json(
        f.upload(&f.s1, b"this is not a gzip archive".to_vec())
            .await,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let (_, done) = Events::open(&f, id, &f.s1).await.until("done").await;
    assert_eq!(done["status"], "rejected", "{done}");
    let student = json(f.get(&format!("/api/submissions/{id}"), &f.s1).await).await;
    assert_eq!(student["status"], "rejected");
    assert_eq!(student["score"], 0);
    assert!(
        student["report"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "the student is told why: {student}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_job_waits_out_its_backoff_before_it_is_claimed_again() {
    let f = Fixture::start(None, 1 << 20).await;
    let db = &f.server.state().db;
    let id = json(f.upload(&f.s1, reference_archive()).await).await["id"]
        .as_i64()
        .unwrap();
    let job = queue::claim(db, "w", queue::LEASE).await.unwrap().unwrap();
    let failed = queue::fail(db, &job, "sandbox: out of pids", Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(failed, queue::Failed::Retried);
    assert!(
        queue::claim(db, "w", queue::LEASE).await.unwrap().is_none(),
        "not before its backoff"
    );
    let body = json(f.get(&format!("/api/submissions/{id}"), &f.s1).await).await;
    assert_eq!(body["status"], "queued", "a retry waits as queued: {body}");
    sqlx::query("UPDATE jobs SET run_after = 0")
        .execute(db)
        .await
        .unwrap();
    let again = queue::claim(db, "w", queue::LEASE).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (job.id, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_uploads_are_all_accepted_stored_queued_once_and_graded() {
    // Not archives: the real engine's intake rejects each quickly, which keeps this test short.
    let engine = tokio::task::spawn_blocking(engine).await.unwrap();
    let f = Arc::new(Fixture::start(Some(engine), 1 << 20).await);
    let mut updates = f.server.state().events.subscribe();
    let uploads: Vec<_> = (0..50u8)
        .map(|n| {
            let f = Arc::clone(&f);
            tokio::spawn(async move {
                let token = if n % 2 == 0 { &f.s1 } else { &f.s2 };
                let bytes = vec![n; 1000 + usize::from(n)];
                let r = f.upload(token, bytes.clone()).await;
                assert_eq!(r.status(), StatusCode::ACCEPTED);
                (json(r).await["id"].as_i64().unwrap(), bytes)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for u in uploads {
        let (id, bytes) = u.await.unwrap();
        let state = f.server.state();
        assert_eq!(
            uploads::read(&state.db, &state.data_dir, id)
                .await
                .unwrap()
                .unwrap(),
            bytes
        );
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    let mut done = Fixture::done_events(&mut updates, 50).await;
    done.sort_unstable();
    assert_eq!(done, ids, "each graded once");
    let (jobs, rejected): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'done'), \
                (SELECT COUNT(*) FROM submissions WHERE status = 'rejected')",
    )
    .fetch_one(&f.server.state().db)
    .await
    .unwrap();
    assert_eq!((jobs, rejected), (50, 50));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_instructors_read_the_gradebook() {
    let f = Fixture::start(None, 1 << 20).await;
    let id = json(f.upload(&f.s2, reference_archive()).await).await["id"]
        .as_i64()
        .unwrap();
    let refused = f.get("/api/gradebook", &f.s1).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_error(&json(refused).await, "forbidden");
    let book = f.get("/api/gradebook", &f.t1).await;
    assert_eq!(book.status(), StatusCode::OK);
    let book = json(book).await;
    let students = book["students"].as_array().unwrap();
    let ids: Vec<&str> = students.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["s1", "s2"], "students only, in id order");
    assert_eq!(students[0]["submissions"], 0);
    assert_eq!(students[1]["submissions"], 1);
    assert_eq!(
        students[1]["counted"],
        Value::Null,
        "submission {id} is not graded yet"
    );
    // The gradebook kept from the last request follows later writes, the server's own and others'.
    f.upload(&f.s1, vec![1; 10]).await;
    let pool = db::open(f.dir.path()).await.unwrap();
    roster::extend(&pool, "s2", 0, None).await.unwrap();
    let book = json(f.get("/api/gradebook", &f.t1).await).await;
    assert_eq!(book["students"][0]["submissions"], 1, "{book}");
    assert_eq!(
        book["students"][1]["extension"], "1970-01-01T00:00:00Z",
        "{book}"
    );
    for path in ["/api/gradebook.csv", "/api/extensions"] {
        let refused = f.get(path, &f.s1).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
        assert_error(&json(refused).await, "forbidden");
    }
}

impl Fixture {
    async fn post_json(&self, path: &str, token: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Waits for `n` gradings to end (`done` events of any submission) on `updates`, subscribed
    /// before they could end.
    async fn done_events(
        updates: &mut tokio::sync::broadcast::Receiver<(i64, server::events::Update)>,
        n: usize,
    ) -> Vec<i64> {
        let mut done = Vec::new();
        tokio::time::timeout(GRADING_DEADLINE, async {
            while done.len() < n {
                if let (id, server::events::Update::Done { .. }) = updates.recv().await.unwrap() {
                    done.push(id);
                }
            }
        })
        .await
        .expect("gradings ended in time");
        done
    }
}

/// A 429's `Retry-After` (seconds) and its JSON error.
async fn rate_limited(refused: Response) -> (u64, Value) {
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = json(refused).await;
    assert_error(&body, "rate_limited");
    (retry, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_student_over_the_rate_limit_gets_429_with_retry_after_and_sees_what_is_left() {
    let policy = Policy {
        min_interval: Duration::from_secs(30),
        per_day: 0,
        ..Policy::default()
    };
    let f = Fixture::with_policy(None, 1 << 20, policy).await;
    assert_eq!(
        f.upload(&f.s1, vec![1; 10]).await.status(),
        StatusCode::ACCEPTED
    );
    let (retry, body) = rate_limited(f.upload(&f.s1, vec![2; 10]).await).await;
    assert!((1..=30).contains(&retry), "{retry}");
    let message = body["error"]["message"].as_str().unwrap();
    let at = body["error"]["retry_at"].as_str().unwrap();
    assert!(
        message.contains(at) && at.ends_with('Z'),
        "says when: {body}"
    );
    // Other students and instructors are not held back.
    assert_eq!(
        f.upload(&f.s2, vec![3; 10]).await.status(),
        StatusCode::ACCEPTED
    );
    for _ in 0..2 {
        assert_eq!(
            f.upload(&f.t1, vec![4; 10]).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let me = json(f.get("/api/me", &f.s1).await).await;
    assert_eq!(me["limits"]["used_today"], 1, "{me}");
    assert_eq!(me["limits"]["next_upload_at"], at, "{me}");
    assert_eq!(me["submissions"], 1, "the refused upload was not stored");

    let daily = Policy {
        min_interval: Duration::ZERO,
        per_day: 2,
        ..Policy::default()
    };
    let f = Fixture::with_policy(None, 1 << 20, daily).await;
    for n in 0..2 {
        assert_eq!(
            f.upload(&f.s1, vec![n; 10]).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let me = json(f.get("/api/me", &f.s1).await).await;
    assert_eq!(
        (&me["limits"]["per_day"], &me["limits"]["remaining_today"]),
        (&Value::from(2), &Value::from(0)),
        "{me}"
    );
    let (retry, _) = rate_limited(f.upload(&f.s1, vec![9; 10]).await).await;
    assert!(
        (86_000..=86_400).contains(&retry),
        "a place frees when the first upload is a day old: {retry}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_uploads_of_one_student_cannot_slip_past_the_rate_limit() {
    let policy = Policy {
        min_interval: Duration::from_secs(30),
        per_day: 0,
        ..Policy::default()
    };
    let f = Arc::new(Fixture::with_policy(None, 1 << 20, policy).await);
    let uploads: Vec<_> = (0..10u8)
        .map(|n| {
            let f = Arc::clone(&f);
            tokio::spawn(async move { f.upload(&f.s1, vec![n; 100]).await.status() })
        })
        .collect();
    let mut accepted = 0;
    for u in uploads {
        match u.await.unwrap() {
            StatusCode::ACCEPTED => accepted += 1,
            other => assert_eq!(other, StatusCode::TOO_MANY_REQUESTS),
        }
    }
    assert_eq!(accepted, 1);
}

/// Unix milliseconds `hours` from now (negative: ago).
fn hours_from_now(hours: i64) -> i64 {
    db::now_ms() + hours * 3_600_000
}

#[tokio::test(flavor = "multi_thread")]
async fn late_uploads_are_marked_and_penalised_extensions_move_the_deadline_and_the_csv_matches_the_json(
) {
    let engine = tokio::task::spawn_blocking(engine).await.unwrap();
    let policy = Policy {
        deadline: Some(hours_from_now(-36)),
        late_penalty_per_day: 10,
        ..open_policy()
    };
    let f = Fixture::with_policy(Some(engine), 1 << 20, policy).await;
    let mut updates = f.server.state().events.subscribe();
    // Students may not grant extensions; instructors may, to known people only.
    let until = server::time::format_ms(hours_from_now(24));
    let grant = json!({"person": "s2", "until": until, "reason": "ill"});
    let refused = f.post_json("/api/extensions", &f.s2, grant.clone()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let unknown = json!({"person": "nobody", "until": until});
    let r = f.post_json("/api/extensions", &f.t1, unknown).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = f
        .post_json(
            "/api/extensions",
            &f.t1,
            json!({"person": "s2", "until": "soon"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_error(&json(r).await, "bad_request");
    let granted = f.post_json("/api/extensions", &f.t1, grant).await;
    assert_eq!(granted.status(), StatusCode::CREATED);
    let listed = json(f.get("/api/extensions", &f.t1).await).await;
    assert_eq!(listed["extensions"][0]["until"], until.as_str());

    let late = json(f.upload(&f.s1, reference_archive()).await).await;
    let late_ms = late["late_ms"].as_i64().unwrap();
    assert_eq!(
        (&late["late"], &late["penalty_pct"]),
        (&json!(true), &json!(20)),
        "{late}"
    );
    assert!(
        (36 * 3_600_000..37 * 3_600_000).contains(&late_ms),
        "{late}"
    );
    let on_time = json(f.upload(&f.s2, b"not an archive".to_vec()).await).await;
    assert_eq!(
        (&on_time["late"], &on_time["penalty_pct"]),
        (&json!(false), &json!(0))
    );
    // Built while the gradings run; the one read below must show their scores all the same.
    let early = json(f.get("/api/gradebook", &f.t1).await).await;
    assert_eq!(early["students"][0]["counted"], Value::Null, "{early}");
    Fixture::done_events(&mut updates, 2).await;
    let graded = json(f.get("/api/gradebook", &f.t1).await).await;
    assert_eq!(
        graded["students"][0]["counted"]["final_score"], 80,
        "{graded}"
    );
    // s1 again, later but worse: the best score still counts.
    let worse = json(f.upload(&f.s1, b"not an archive either".to_vec()).await).await;
    Fixture::done_events(&mut updates, 1).await;

    let id = late["id"].as_i64().unwrap();
    let graded = json(f.get(&format!("/api/submissions/{id}"), &f.s1).await).await;
    assert_eq!(
        (&graded["score"], &graded["final_score"], &graded["late"]),
        (&json!(100), &json!(80), &json!(true)),
        "{graded}"
    );
    let me = json(f.get("/api/me", &f.s1).await).await;
    assert_eq!(me["best"]["id"], id, "{me}");
    assert_eq!(me["latest"]["id"], worse["id"], "{me}");
    assert_eq!(
        json(f.get("/api/me", &f.s2).await).await["deadline"],
        until.as_str()
    );

    let book = json(f.get("/api/gradebook", &f.t1).await).await;
    assert_eq!(book["policy"], "best");
    let s1 = &book["students"][0];
    assert_eq!(s1["counted"]["id"], id, "{book}");
    assert_eq!(
        (&s1["submissions"], &s1["late_submissions"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(s1["counted"]["final_score"], 80);
    let s2 = &book["students"][1];
    assert_eq!(
        (&s2["counted"]["status"], &s2["extension"]),
        (&json!("rejected"), &json!(until))
    );
    let categories: Vec<String> = serde_json::from_value(book["categories"].clone()).unwrap();
    assert!(!categories.is_empty());

    let csv = f.get("/api/gradebook.csv", &f.t1).await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[header.len() - categories.len()..], categories[..]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let cell = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (row, line) in rows.iter().zip(book["students"].as_array().unwrap()) {
        let counted = &line["counted"];
        for (column, value) in header.iter().zip(row.iter()) {
            let expected = match column.as_str() {
                "submission_id" => &counted["id"],
                c if categories.iter().any(|k| k == c) => &counted["categories"][c],
                c if line.get(c).is_some() => &line[c],
                c => &counted[c],
            };
            assert_eq!(value, cell(expected), "column {column} of {}", line["id"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn regrades_are_for_instructors_and_wait_behind_fresh_uploads() {
    let f = Fixture::start(None, 1 << 20).await;
    let db = &f.server.state().db;
    let a = json(f.upload(&f.s1, vec![1; 10]).await).await["id"]
        .as_i64()
        .unwrap();
    // Submission a has been graded once.
    let job = queue::claim(db, "w", queue::LEASE).await.unwrap().unwrap();
    sqlx::query("UPDATE jobs SET state = 'done' WHERE id = ?")
        .bind(job.id)
        .execute(db)
        .await
        .unwrap();
    let body = json!({"submission": a});
    let refused = f.post_json("/api/regrades", &f.s1, body.clone()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_error(&json(refused).await, "forbidden");
    for bad in [
        json!({}),
        json!({"all": true, "person": "s1"}),
        json!({"everything": 1}),
    ] {
        let r = f.post_json("/api/regrades", &f.t1, bad.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = f
        .post_json("/api/regrades", &f.t1, json!({"person": "nobody"}))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let regrade = f.post_json("/api/regrades", &f.t1, body.clone()).await;
    assert_eq!(regrade.status(), StatusCode::ACCEPTED);
    let regrade = json(regrade).await;
    assert_eq!(
        (&regrade["queued"], &regrade["skipped"]),
        (&json!(1), &json!(0))
    );
    // Asked twice, it is queued once.
    let again = json(f.post_json("/api/regrades", &f.t1, body).await).await;
    assert_eq!(
        (&again["queued"], &again["skipped"]),
        (&json!(0), &json!(1))
    );
    let b = json(f.upload(&f.s2, vec![2; 10]).await).await;
    assert_eq!(
        b["position"], 1,
        "a fresh upload goes before the regrade: {b}"
    );
    let shown = json(f.get(&format!("/api/submissions/{a}"), &f.t1).await).await;
    assert_eq!(shown["position"], 2);
    let progress_url = regrade["urls"]["self"].as_str().unwrap().to_string();
    assert_eq!(
        f.get(&progress_url, &f.s1).await.status(),
        StatusCode::FORBIDDEN
    );
    let progress = json(f.get(&progress_url, &f.t1).await).await;
    assert_eq!(
        (&progress["queued"], &progress["finished"]),
        (&json!(1), &json!(false))
    );
    let first = queue::claim(db, "w", queue::LEASE).await.unwrap().unwrap();
    assert_eq!(
        (first.submission_id, first.is_regrade()),
        (b["id"].as_i64().unwrap(), false)
    );
    let second = queue::claim(db, "w", queue::LEASE).await.unwrap().unwrap();
    assert_eq!((second.submission_id, second.is_regrade()), (a, true));
    let progress = json(f.get(&progress_url, &f.t1).await).await;
    assert_eq!(
        (&progress["running"], &progress["total"]),
        (&json!(1), &json!(1))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_position_skips_jobs_in_backoff_and_a_job_in_backoff_waits_behind_the_runnable_ones() {
    let f = Fixture::start(None, 1 << 20).await;
    let db = &f.server.state().db;
    let a = json(f.upload(&f.s1, vec![1; 10]).await).await["id"]
        .as_i64()
        .unwrap();
    let b = json(f.upload(&f.s2, vec![2; 10]).await).await["id"]
        .as_i64()
        .unwrap();
    let job = queue::claim(db, "w", queue::LEASE).await.unwrap().unwrap();
    assert_eq!(job.submission_id, a);
    assert_eq!(
        queue::fail(db, &job, "sandbox busy", Duration::from_secs(3600))
            .await
            .unwrap(),
        queue::Failed::Retried
    );
    assert_eq!(
        queue::position(db, b).await.unwrap(),
        Some(1),
        "a is not ahead while it waits"
    );
    assert_eq!(queue::position(db, a).await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_tell_the_queue_gradings_and_requests() {
    let idle = Fixture::start(None, 1 << 20).await;
    assert_eq!(
        idle.upload(&idle.s1, vec![1; 10]).await.status(),
        StatusCode::ACCEPTED
    );
    let health = idle.client.get(idle.url("/healthz")).send().await.unwrap();
    assert_eq!(
        health.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "no worker, no grading"
    );
    let health = json(health).await;
    assert_eq!(
        (&health["database"], &health["queue"]["queued"]),
        (&json!("ok"), &json!(1))
    );

    let engine = tokio::task::spawn_blocking(engine).await.unwrap();
    let f = Fixture::start(Some(engine), 1 << 20).await;
    let mut updates = f.server.state().events.subscribe();
    let id = json(f.upload(&f.s1, b"not an archive".to_vec()).await).await["id"]
        .as_i64()
        .unwrap();
    Fixture::done_events(&mut updates, 1).await;
    let health = f.client.get(f.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(json(health).await["sandbox"], "ready");
    // A regrade records the hidden tests' version again and ends like a grading.
    let regrade = json(
        f.post_json("/api/regrades", &f.t1, json!({"all": true}))
            .await,
    )
    .await;
    assert_eq!(regrade["queued"], 1);
    Fixture::done_events(&mut updates, 1).await;
    let progress = json(
        f.get(regrade["urls"]["self"].as_str().unwrap(), &f.t1)
            .await,
    )
    .await;
    assert_eq!(
        (&progress["done"], &progress["finished"]),
        (&json!(1), &json!(true))
    );
    let shown = json(f.get(&format!("/api/submissions/{id}"), &f.t1).await).await;
    assert!(
        shown["hidden_tests_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{shown}"
    );

    // A client that saw `done` is told there is nothing more (and its browser stops asking).
    let mut events = Events::open(&f, id, &f.s1).await;
    events.until("done").await;
    let last = events.last_id.clone().unwrap();
    assert!(
        last.parse::<u64>().unwrap() < 1_000_000,
        "a step number: {last}"
    );
    let again = f
        .client
        .get(f.url(&format!("/api/submissions/{id}/events")))
        .bearer_auth(&f.s1)
        .header("Last-Event-ID", &last)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NO_CONTENT);

    let metrics = f.client.get(f.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    for line in [
        "grader_gradings_total{outcome=\"rejected\"} 2",
        "grader_http_requests_total{route=\"/api/submissions\",status=\"202\"} 1",
        "grader_http_requests_total{route=\"/api/regrades\",status=\"202\"} 1",
        "grader_jobs{kind=\"grade\",state=\"queued\"} 0",
        "grader_submissions{status=\"rejected\"} 1",
        "grader_grading_seconds_count 2",
        "grader_queue_wait_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

/// A graded report of `score` out of 100, without tests (enough for the gradebook).

#[tokio::test(flavor = "multi_thread")]
async fn the_gradebook_counts_the_best_or_the_latest_score_as_configured() {
    for (policy, counted) in [(ScorePolicy::Best, 0), (ScorePolicy::Latest, 1)] {
        let f = Fixture::with_policy(
            None,
            1 << 20,
            Policy {
                score_policy: policy,
                ..open_policy()
            },
        )
        .await;
        let db = &f.server.state().db;
        let mut ids = Vec::new();
        for score in [80, 55] {
            ids.push(json(f.upload(&f.s1, vec![1; 10]).await).await["id"].clone());
            let job = queue::claim(db, "w", queue::LEASE).await.unwrap().unwrap();
            queue::finish(db, &job, &report_scoring(score), "v1")
                .await
                .unwrap();
            f.server.state().gradebook.invalidate();
        }
        let book = json(f.get("/api/gradebook", &f.t1).await).await;
        assert_eq!(book["policy"], policy.as_str());
        assert_eq!(book["students"][0]["counted"]["id"], ids[counted], "{book}");
        let me = json(f.get("/api/me", &f.s1).await).await;
        assert_eq!(
            (&me["best"]["final_score"], &me["latest"]["final_score"]),
            (&json!(80), &json!(55)),
            "{me}"
        );
    }
}
