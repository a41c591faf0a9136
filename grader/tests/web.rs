//! The web pages, fast: the whole application answering `oneshot` requests over a real SQLite
//! database in a temporary folder, without workers (gradings are the browser tests' and
//! `tests/server.rs`'s). Sessions, CSRF, who may see what, and how reports are shown.

mod common;
use common::{reference_archive, repo};

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use grader::server::{self, db, roster, Options, Server};
use serde_json::json;
use tower::ServiceExt as _;

/// A server's application on a fresh data folder with students s1, s2 and instructor t1.
struct Site {
    _dir: tempfile::TempDir,
    server: Server,
    tokens: Vec<(String, String)>,
}

/// What a request got back.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }
}

impl Site {
    async fn new() -> Site {
        Site::with_policy(common::open_policy()).await
    }

    async fn with_policy(policy: server::policy::Policy) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let pool = db::open(dir.path()).await.unwrap();
        let tokens = roster::import(&pool, &common::people()).await.unwrap();
        pool.close().await;
        let options = Options {
            data_dir: dir.path().to_path_buf(),
            database: None,
            bind: Some("127.0.0.1:0".parse().unwrap()),
            workers: 0,
            upload_limit: 1 << 20,
            drain: Duration::from_secs(5),
            retry_delay: Duration::ZERO,
            lease: grader::server::queue::LEASE,
            rubric_entries: 0,
            policy,
        };
        let server = server::start(options, None).await.unwrap();
        Site {
            _dir: dir,
            server,
            tokens,
        }
    }

    fn app(&self) -> Router {
        server::app(self.server.state().clone())
    }

    fn token(&self, id: &str) -> &str {
        &self.tokens.iter().find(|(who, _)| who == id).unwrap().1
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, path: &str, cookie: &str) -> Reply {
        let request = Request::get(path)
            .header(header::COOKIE, format!("rg_session={cookie}"))
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    async fn post_form(&self, path: &str, cookie: Option<&str>, form: &str) -> Reply {
        let mut request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, format!("rg_session={cookie}"));
        }
        self.send(request.body(Body::from(form.to_string())).unwrap())
            .await
    }

    /// Logs in through the form and returns the session cookie's value.
    async fn log_in(&self, id: &str) -> String {
        let reply = self
            .post_form("/login", None, &format!("token={}", self.token(id)))
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
        let set = reply.headers[header::SET_COOKIE].to_str().unwrap();
        set.strip_prefix("rg_session=")
            .and_then(|rest| rest.split(';').next())
            .unwrap()
            .to_string()
    }

    /// The dashboard's upload form sent with `csrf` (first, as the page orders it); the file is
    /// the reference solution.
    async fn upload(&self, cookie: &str, csrf: Option<&str>) -> Reply {
        let boundary = "XyZboundary";
        let mut body = Vec::new();
        if let Some(csrf) = csrf {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"02_runtime.tar.gz\"\r\nContent-Type: application/gzip\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&reference_archive());
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = Request::post("/submissions")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header(header::COOKIE, format!("rg_session={cookie}"))
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.server.state().db)
            .await
            .unwrap()
    }
}

/// The CSRF token a page put in its forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 64].to_string()
}

#[tokio::test]
async fn logging_in_sets_a_strict_http_only_cookie_that_is_stored_hashed_and_logging_out_ends_it() {
    let site = Site::new().await;
    let reply = site
        .post_form("/login", None, &format!("token={}", site.token("s1")))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/");
    let set = reply.headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = site.log_in("s1").await;
    assert_eq!(cookie.len(), 64);
    let in_clear: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE sha256 = ?")
        .bind(&cookie)
        .fetch_one(&site.server.state().db)
        .await
        .unwrap();
    assert_eq!(in_clear, 0, "the cookie is stored in clear");

    let home = site.get("/", &cookie).await;
    assert_eq!(home.location(), "/dashboard");
    let dashboard = site.get("/dashboard", &cookie).await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(dashboard
        .body
        .contains("<title>My submissions · runtime-grader</title>"));
    assert!(dashboard.body.contains("Person s1"));
    assert_eq!(dashboard.headers[header::CACHE_CONTROL], "no-store");
    let csrf = csrf_of(&dashboard.body);

    let forged = site.post_form("/logout", Some(&cookie), "csrf=nope").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(site.get("/dashboard", &cookie).await.status, StatusCode::OK);

    let out = site
        .post_form("/logout", Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = site.get("/dashboard", &cookie).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/login");
}

#[tokio::test]
async fn a_wrong_token_gets_the_log_in_page_again_with_401_and_a_cross_site_form_is_refused() {
    let site = Site::new().await;
    let reply = site
        .post_form("/login", None, &format!("token=rg_{}", "0".repeat(64)))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.headers.get(header::SET_COOKIE).is_none());
    assert!(
        reply.body.contains("Wrong or revoked token"),
        "{}",
        reply.body
    );
    assert!(reply
        .body
        .contains("<title>Log in · runtime-grader</title>"));

    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(Body::from(format!("token={}", site.token("s1"))))
        .unwrap();
    let reply = site.send(request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_new_token_or_the_expiry_ends_a_session() {
    let site = Site::new().await;
    let cookie = site.log_in("s1").await;
    roster::new_token(&site.server.state().db, "s1")
        .await
        .unwrap();
    assert_eq!(site.get("/dashboard", &cookie).await.location(), "/login");

    let cookie = site.log_in("s2").await;
    assert_eq!(site.get("/dashboard", &cookie).await.status, StatusCode::OK);
    sqlx::query("UPDATE sessions SET expires_at = 0")
        .execute(&site.server.state().db)
        .await
        .unwrap();
    assert_eq!(site.get("/dashboard", &cookie).await.location(), "/login");
}

#[tokio::test]
async fn the_upload_form_needs_its_csrf_token_and_leads_to_the_live_submission_page() {
    let site = Site::new().await;
    let cookie = site.log_in("s1").await;
    let csrf = csrf_of(&site.get("/dashboard", &cookie).await.body);

    let forged = site.upload(&cookie, None).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = site.upload(&cookie, Some(&"0".repeat(64))).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(site.count("SELECT COUNT(*) FROM submissions").await, 0);

    let sent = site.upload(&cookie, Some(&csrf)).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(sent.location(), "/submissions/1");
    let page = site.get("/submissions/1", &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Queued: position 1 in the queue."));
    assert!(page
        .body
        .contains("data-events=\"/api/submissions/1/events\""));
    assert!(page.body.contains("href=\"/submissions/1\" id=\"refresh\""));
    let dashboard = site.get("/dashboard", &cookie).await;
    assert!(dashboard.body.contains("href=\"/submissions/1\""));

    // The cookie reads through the API (the page's event stream) but changes nothing there.
    assert_eq!(
        site.get("/api/submissions/1", &cookie).await.status,
        StatusCode::OK
    );
    let request = Request::post("/api/submissions")
        .header(header::COOKIE, format!("rg_session={cookie}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(site.send(request).await.status, StatusCode::UNAUTHORIZED);
    // Bearer tokens still work for the API.
    let request = Request::get("/api/submissions/1")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", site.token("s1")),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(site.send(request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn students_see_neither_others_submissions_nor_the_gradebook() {
    let site = Site::new().await;
    let s1 = site.log_in("s1").await;
    let csrf = csrf_of(&site.get("/dashboard", &s1).await.body);
    assert_eq!(
        site.upload(&s1, Some(&csrf)).await.status,
        StatusCode::SEE_OTHER
    );
    let s2 = site.log_in("s2").await;
    let other = site.get("/submissions/1", &s2).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(other
        .body
        .contains("<title>Not found · runtime-grader</title>"));
    assert!(!other.body.contains("02_runtime.tar.gz"));
    assert_eq!(
        site.get("/submissions/x", &s2).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        site.get("/gradebook", &s2).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        site.get("/students/s1", &s2).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(site.get("/", &s2).await.location(), "/dashboard");
    let t1 = site.log_in("t1").await;
    assert_eq!(site.get("/", &t1).await.location(), "/gradebook");
    assert_eq!(site.get("/submissions/1", &t1).await.status, StatusCode::OK);
}

/// A stored report for submission 1: it did not compile because of line 4 of `src/lib.rs`; one
/// visible and one hidden test, both not run, the hidden one with output.
async fn store_build_failed(site: &Site) {
    let report = json!({
        "status": "build_failed", "score": 0, "max_score": 3,
        "message": "your crate does not compile: 1 error",
        "categories": {"timer": {"score": 0, "max_score": 3}},
        "tests": [
            {"name": "visible_timer_test", "category": "timer", "outcome": "not_run", "score": 0,
             "max_score": 1, "duration_ms": 0, "cpu_ms": 0, "hint": "Wake the task.",
             "visible": true},
            {"name": "secret_hidden_timer_test", "category": "timer", "outcome": "failed",
             "score": 0, "max_score": 2, "duration_ms": 1200, "cpu_ms": 3,
             "output": "SECRET OUTPUT", "hint": "Store the waker.", "visible": false}
        ],
        "diagnostics": [{"file": "src/lib.rs", "line": 4, "column": 9, "level": "error",
                         "message": "mismatched types", "rendered": "error[E0308]: mismatched types"}],
        "ignored_files": [],
        "limits": {"build_wall_secs": 1, "build_memory_bytes": 1, "test_memory_bytes": 1,
                   "test_tasks": 1, "output_bytes": 1, "enforcement": "test"},
        "timings": {"build_ms": 1, "run_ms": 1, "total_ms": 2}
    });
    sqlx::query(
        "UPDATE submissions SET status = 'build_failed', score = 0, max_score = 3, report = ?, \
         final_score = 0, categories = '{\"timer\":0}' WHERE id = 1",
    )
    .bind(report.to_string())
    .execute(&site.server.state().db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_build_failure_shows_the_students_line_and_hides_hidden_tests_from_students_only() {
    let site = Site::new().await;
    let s1 = site.log_in("s1").await;
    let csrf = csrf_of(&site.get("/dashboard", &s1).await.body);
    site.upload(&s1, Some(&csrf)).await;
    store_build_failed(&site).await;
    let lib = std::fs::read_to_string(repo().join("solutions/reference/src/lib.rs")).unwrap();
    let line4 = lib.lines().nth(3).unwrap();
    let escaped = line4.replace('\'', "&#39;").replace('"', "&#34;");

    let page = site.get("/submissions/1", &s1).await.body;
    assert!(page.contains("<title>Submission #1: did not compile 0/3 · runtime-grader</title>"));
    assert!(page.contains("src/lib.rs:4:9"), "{page}");
    assert!(
        page.contains(&format!(
            "<tr class=\"mark\"><th scope=\"row\">4</th><td><code>{escaped}</code></td></tr>"
        )),
        "the offending line is not marked: {page}"
    );
    assert!(page.contains("hidden test 1"));
    assert!(page.contains("Hint:</strong> Store the waker."));
    assert!(!page.contains("secret_hidden_timer_test"));
    assert!(!page.contains("SECRET OUTPUT"));
    assert!(
        !page.contains("id=\"files\""),
        "students get no file listing"
    );
    assert!(
        !page.contains("id=\"progress\""),
        "a graded page does not listen"
    );

    let t1 = site.log_in("t1").await;
    let full = site.get("/submissions/1", &t1).await.body;
    assert!(full.contains("secret_hidden_timer_test"));
    assert!(full.contains("SECRET OUTPUT"));
    assert!(full.contains("<a href=\"/students/s1\">Person s1</a> (s1)"));
    assert!(full.contains("id=\"files\""));
    assert!(full.contains("<code>src/executor.rs</code>"));
    let as_student = site.get("/submissions/1?view=student", &t1).await.body;
    assert!(as_student.contains("hidden test 1") && !as_student.contains("SECRET OUTPUT"));
    assert!(!as_student.contains("id=\"files\""));
    // A student asking for it sees just their own view.
    assert!(!site
        .get("/submissions/1?view=full", &s1)
        .await
        .body
        .contains("SECRET OUTPUT"));

    let gradebook = site.get("/gradebook", &t1).await.body;
    assert!(gradebook.contains(">timer</button>"), "{gradebook}");
    assert!(!gradebook.contains("missed_wake"));
    assert!(gradebook.contains("<a href=\"/submissions/1\">0/3</a>"));
    assert!(gradebook.contains("Person s2"));
    let filtered = site.get("/gradebook?q=S2", &t1).await.body;
    assert!(filtered.contains("Person s2") && !filtered.contains("Person s1"));
    let student = site.get("/students/s1", &t1).await;
    assert_eq!(student.status, StatusCode::OK);
    assert!(student.body.contains("did not compile"));
}

#[tokio::test]
async fn a_refused_upload_shows_its_reasons_with_file_and_line() {
    let site = Site::new().await;
    let s1 = site.log_in("s1").await;
    let csrf = csrf_of(&site.get("/dashboard", &s1).await.body);
    site.upload(&s1, Some(&csrf)).await;
    let report = json!({
        "status": "rejected", "score": 0, "max_score": 3,
        "message": "your code reaches outside the exercise",
        "categories": {"timer": {"score": 0, "max_score": 3}}, "tests": [],
        "diagnostics": [{"file": "src/lib.rs", "line": 5, "level": "refused",
                         "message": "`std::process` is not allowed", "rendered": ""}],
        "ignored_files": [],
        "limits": {"build_wall_secs": 1, "build_memory_bytes": 1, "test_memory_bytes": 1,
                   "test_tasks": 1, "output_bytes": 1, "enforcement": "test"},
        "timings": {"build_ms": 0, "run_ms": 0, "total_ms": 0}
    });
    sqlx::query("UPDATE submissions SET status = 'rejected', score = 0, report = ? WHERE id = 1")
        .bind(report.to_string())
        .execute(&site.server.state().db)
        .await
        .unwrap();
    let page = site.get("/submissions/1", &s1).await.body;
    assert!(page.contains("Why it was refused"), "{page}");
    assert!(page
        .contains("<code class=\"location\">src/lib.rs:5</code>: `std::process` is not allowed"));
    assert!(page.contains("<tr class=\"mark\"><th scope=\"row\">5</th>"));
    assert!(page.contains("your code reaches outside the exercise"));
}

#[tokio::test]
async fn the_stylesheet_and_script_are_served_with_long_cache_headers() {
    let site = Site::new().await;
    let login = site
        .send(Request::get("/login").body(Body::empty()).unwrap())
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login
        .body
        .starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    let at = login.body.find("/static/style.css?v=").unwrap();
    let href = &login.body[at..login.body[at..].find('"').unwrap() + at];
    for (path, kind) in [(href, "text/css"), ("/static/app.js", "text/javascript")] {
        let reply = site
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert!(reply.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age=31536000"));
    }
    let missing = site
        .send(
            Request::get("/static/nope.css")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Without a session every page leads to the log-in form.
    let request = Request::builder()
        .method(Method::GET)
        .uri("/gradebook")
        .body(Body::empty())
        .unwrap();
    assert_eq!(site.send(request).await.location(), "/login");
}

#[tokio::test]
async fn the_dashboard_states_the_limits_and_the_deadline_and_marks_late_submissions() {
    const DAY_MS: i64 = 86_400_000;
    let site = Site::with_policy(server::policy::Policy {
        min_interval: Duration::from_secs(3600),
        per_day: 2,
        // Two and a half days ago: three started days late, 10 % each.
        deadline: Some(db::now_ms() - 5 * DAY_MS / 2),
        late_penalty_per_day: 10,
        ..Default::default()
    })
    .await;
    let cookie = site.log_in("s1").await;
    let dashboard = site.get("/dashboard", &cookie).await.body;
    assert!(
        dashboard.contains("1 upload per 3600 s, 2 per day"),
        "{dashboard}"
    );
    assert!(dashboard.contains("id=\"attempts-left\">2 in the last 24 hours"));
    assert!(dashboard.contains("id=\"next-upload\">allowed now"));
    assert!(dashboard.contains("(passed 2 d 12 h ago; each day late costs 10 %"));

    let sent = site.upload(&cookie, Some(&csrf_of(&dashboard))).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let dashboard = site.get("/dashboard", &cookie).await.body;
    assert!(dashboard.contains("id=\"attempts-left\">1 in the last 24 hours"));
    assert!(dashboard.contains("id=\"next-upload\">allowed from <time"));
    assert!(dashboard.contains("</time> (in 59 min)"), "{dashboard}");
    assert!(dashboard.contains("late by 2 d 12 h, −30 %"), "{dashboard}");

    // Over the limit, the form gets a page that says so, not the API's JSON.
    let refused = site.upload(&cookie, Some(&csrf_of(&dashboard))).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        refused.body.contains("<h1>Too many uploads</h1>"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("1 upload per 3600 s"));

    // Graded, the submission's page gives the score before and after the penalty.
    store_build_failed(&site).await;
    sqlx::query("UPDATE submissions SET score = 3, final_score = 2 WHERE id = 1")
        .execute(&site.server.state().db)
        .await
        .unwrap();
    let page = site.get("/submissions/1", &cookie).await.body;
    assert!(page.contains("id=\"late\"><span class=\"late\">late by 2 d 12 h, −30 %"));
    assert!(page.contains("id=\"score\">2/3</p>"), "{page}");
    assert!(page.contains("0/3 before the late penalty, 2/3 after it."));
    // The list and the best score count the score after the penalty, as /api/me does.
    let dashboard = site.get("/dashboard", &cookie).await.body;
    assert!(dashboard.contains("id=\"best\">2/3</span>"), "{dashboard}");
}

#[tokio::test]
async fn without_a_deadline_the_dashboard_says_so_and_nothing_is_late() {
    let site = Site::new().await;
    let cookie = site.log_in("s1").await;
    let dashboard = site.get("/dashboard", &cookie).await.body;
    assert!(dashboard.contains("id=\"deadline\">no deadline"));
    site.upload(&cookie, Some(&csrf_of(&dashboard))).await;
    let dashboard = site.get("/dashboard", &cookie).await.body;
    assert!(dashboard.contains("<td>on time</td>"), "{dashboard}");
}

#[tokio::test]
async fn the_gradebook_shows_the_policy_late_marks_and_counts_and_its_rows_are_the_csvs() {
    const DAY_MS: i64 = 86_400_000;
    let site = Site::with_policy(server::policy::Policy {
        deadline: Some(db::now_ms() - DAY_MS / 2),
        late_penalty_per_day: 10,
        ..common::open_policy()
    })
    .await;
    let student = site.log_in("s1").await;
    let csrf = csrf_of(&site.get("/dashboard", &student).await.body);
    site.upload(&student, Some(&csrf)).await;
    site.upload(&student, Some(&csrf)).await;
    store_build_failed(&site).await;

    let teacher = site.log_in("t1").await;
    let page = site.get("/gradebook", &teacher).await.body;
    assert!(
        page.contains("<strong>best</strong> submission counts"),
        "{page}"
    );
    assert!(page.contains("href=\"/api/gradebook.csv\""));
    assert!(
        page.contains("late by 12 h 0 min, −10 % (from 0)"),
        "{page}"
    );
    assert!(page.contains("2 <span class=\"late\">(2 late)</span>"));
    // Every row of the CSV is on the page, with the same counted score.
    let request = Request::get("/api/gradebook.csv")
        .header(header::COOKIE, format!("rg_session={teacher}"))
        .body(Body::empty())
        .unwrap();
    let csv = site.send(request).await.body;
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let (id, final_score, max) = (row[0], row[10], row[11]);
        let at = page.find(&format!("data-id=\"{id}\"")).expect(id);
        let shown = if final_score.is_empty() {
            "–".to_string()
        } else {
            format!("{final_score}/{max}")
        };
        let line = &page[at..at + page[at..].find("</tr>").unwrap()];
        assert!(
            line.contains(&format!(">{shown}<")),
            "{id}: {shown} in {line}"
        );
    }
}

#[tokio::test]
async fn regrade_buttons_need_the_csrf_token_and_lead_to_the_regrades_progress() {
    let site = Site::new().await;
    let student = site.log_in("s1").await;
    let csrf = csrf_of(&site.get("/dashboard", &student).await.body);
    site.upload(&student, Some(&csrf)).await;
    // The upload's own grading is over (no workers here).
    let db = &site.server.state().db;
    sqlx::query("UPDATE jobs SET state = 'done'")
        .execute(db)
        .await
        .unwrap();

    let teacher = site.log_in("t1").await;
    let drill_down = site.get("/submissions/1", &teacher).await.body;
    assert!(drill_down.contains("name=\"submission\" value=\"1\""));
    assert!(site
        .get("/students/s1", &teacher)
        .await
        .body
        .contains("name=\"person\" value=\"s1\""));
    let book = site.get("/gradebook", &teacher).await.body;
    assert!(book.contains("name=\"all\" value=\"true\""));
    let csrf = csrf_of(&book);

    let forged = site
        .post_form("/regrades", Some(&teacher), "submission=1")
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let by_student = site
        .post_form(
            "/regrades",
            Some(&student),
            &format!(
                "csrf={}&submission=1",
                csrf_of(&site.get("/dashboard", &student).await.body)
            ),
        )
        .await;
    assert_eq!(by_student.status, StatusCode::FORBIDDEN);
    assert_eq!(site.count("SELECT COUNT(*) FROM regrades").await, 0);

    let sent = site
        .post_form(
            "/regrades",
            Some(&teacher),
            &format!("csrf={csrf}&submission=1"),
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(sent.location(), "/regrades/1");
    let progress = site.get("/regrades/1", &teacher).await.body;
    assert!(progress.contains("0 of 1 graded, 1 waiting."), "{progress}");
    assert!(progress.contains("http-equiv=\"refresh\""));
    sqlx::query("UPDATE jobs SET state = 'done' WHERE regrade_id = 1")
        .execute(db)
        .await
        .unwrap();
    let progress = site.get("/regrades/1", &teacher).await.body;
    assert!(progress.contains("Finished: 1 of 1 graded."), "{progress}");
    assert!(!progress.contains("http-equiv=\"refresh\""));

    for form in [
        format!("csrf={csrf}&person=s1"),
        format!("csrf={csrf}&all=true"),
    ] {
        let sent = site.post_form("/regrades", Some(&teacher), &form).await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{form}: {}", sent.body);
    }
    assert_eq!(site.count("SELECT COUNT(*) FROM regrades").await, 3);
    assert_eq!(
        site.get("/regrades/1", &student).await.status,
        StatusCode::FORBIDDEN
    );
}
