//! `grader roster` and `grader serve` through the real binary: tokens printed once, re-imports
//! that change nobody's token, `roster token` revoking the old one, `roster extend`, an explicit
//! SQLite file created (or its missing folder named), a roster mistake named with exit 2 (no
//! hidden tests are needed for these), and a server killed with SIGKILL mid-grading that
//! grades the upload after a restart, then exits 0 on SIGTERM; and the README's own `curl` lines,
//! run as written, read 100/100 in the report, the gradebook and its CSV.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn grader(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grader"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("GRADER_HIDDEN_TESTS")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn roster_import_prints_new_tokens_once_and_token_replaces_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = dir.path().join("roster.csv");
    std::fs::write(
        &csv,
        "id,name,email,role\ns1,Ann Lee,ann@example.org,student\n\
         s2,\"Doe, Bob\",bob@example.org,Student\nt1,Prof X,x@example.org,instructor\n",
    )
    .unwrap();
    let first = grader(&data, &["roster", "import", csv.to_str().unwrap()]);
    assert!(first.status.success(), "{first:?}");
    let lines: Vec<(String, String)> = stdout(&first)
        .lines()
        .map(|l| {
            let (id, token) = l.split_once('\t').unwrap();
            (id.to_string(), token.to_string())
        })
        .collect();
    let ids: Vec<&str> = lines.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2", "t1"]);
    assert!(lines
        .iter()
        .all(|(_, t)| t.starts_with("rg_") && t.len() == 67));
    assert!(data.join("grader.db").is_file());

    let again = grader(&data, &["roster", "import", csv.to_str().unwrap()]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(stdout(&again), "", "known people keep their tokens");

    let renewed = grader(&data, &["roster", "token", "s1"]);
    assert!(renewed.status.success(), "{renewed:?}");
    let token = stdout(&renewed).trim().to_string();
    assert!(token.starts_with("rg_") && token != lines[0].1);

    let unknown = grader(&data, &["roster", "token", "nobody"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));

    // An extension, given with an offset, is stored and printed in UTC.
    let extended = grader(
        &data,
        &[
            "roster",
            "extend",
            "s2",
            "2027-01-01T00:30:00+01:00",
            "--reason",
            "ill",
        ],
    );
    assert!(extended.status.success(), "{extended:?}");
    assert_eq!(stdout(&extended), "s2\t2026-12-31T23:30:00Z\n");
    for args in [
        ["roster", "extend", "nobody", "2027-01-01T00:00:00Z"],
        ["roster", "extend", "s2", "next week"],
    ] {
        let refused = grader(&data, &args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
    }
}

/// An explicit `--database sqlite://FILE` creates a file that does not exist yet, as the default
/// database does; one in a folder that does not exist ends with exit 2 naming the folder, and
/// creates nothing.
#[test]
fn an_explicit_sqlite_file_is_created_and_a_missing_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = dir.path().join("roster.csv");
    std::fs::write(&csv, "id,name,email,role\ns1,Ann,ann@example.org,student\n").unwrap();
    let import = |url: &str| {
        grader(
            &data,
            &["roster", "--database", url, "import", csv.to_str().unwrap()],
        )
    };
    let file = dir.path().join("class.db");
    let url = format!("sqlite://{}", file.display());
    let created = import(&url);
    assert!(created.status.success(), "{created:?}");
    assert!(stdout(&created).starts_with("s1\trg_"), "{created:?}");
    assert!(file.is_file());
    let token = grader(&data, &["roster", "--database", &url, "token", "s1"]);
    assert!(token.status.success(), "the same file again: {token:?}");

    let missing = dir.path().join("no-such-folder");
    let url = format!("sqlite://{}/class.db", missing.display());
    let refused = import(&url);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!("the folder {} does not exist", missing.display())),
        "{err}"
    );
    assert!(!missing.exists());
}

#[test]
fn a_roster_mistake_is_named_with_its_line_and_imports_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = dir.path().join("roster.csv");
    std::fs::write(
        &csv,
        "id,name,email,role\ns1,Ann,ann@example.org,student\ns2,Bob,bob@example.org,teacher\n",
    )
    .unwrap();
    let out = grader(&data, &["roster", "import", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("teacher"), "{err}");
    assert_eq!(stdout(&out), "");
    // Nobody was imported: s1 is unknown.
    let token = grader(&data, &["roster", "token", "s1"]);
    assert_eq!(token.status.code(), Some(2));
}

/// Polls the submission until `done` says so, with a deadline.
async fn poll_until(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let body: serde_json::Value = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_grading_grades_the_upload_after_a_restart_and_stops_on_sigterm() {
    let dir = common::data_dir_sharing_the_caches();
    let csv = dir.path().join("roster.csv");
    std::fs::write(&csv, "id,name,email,role\ns1,Ann,ann@example.org,student\n").unwrap();
    let imported = grader(dir.path(), &["roster", "import", csv.to_str().unwrap()]);
    let token = stdout(&imported)
        .trim()
        .split_once('\t')
        .unwrap()
        .1
        .to_string();
    let client = reqwest::Client::new();

    let (mut first, addr) = common::serve(dir.path());
    let part =
        reqwest::multipart::Part::bytes(common::reference_archive()).file_name("02_runtime.tar.gz");
    let accepted = client
        .post(format!("http://{addr}/api/submissions"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), reqwest::StatusCode::ACCEPTED);
    let id = accepted.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let url = |addr: &str| format!("http://{addr}/api/submissions/{id}");
    poll_until(&client, &url(&addr), &token, |b| b["status"] == "running").await;
    kill(Pid::from_raw(first.id() as i32), Signal::SIGKILL).unwrap();
    first.wait().unwrap();

    let (mut second, addr) = common::serve(dir.path());
    let done = poll_until(&client, &url(&addr), &token, |b| {
        !matches!(b["status"].as_str(), Some("queued" | "running"))
    })
    .await;
    assert_eq!(done["status"], "graded", "{done}");
    assert_eq!(done["score"], 100, "{done}");

    kill(Pid::from_raw(second.id() as i32), Signal::SIGTERM).unwrap();
    let status = second.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM ends the server cleanly");
}

/// The README's `curl` lines, as written there (its host replaced by the test server's).
fn readme_curl_lines(addr: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    readme
        .lines()
        .filter(|l| l.starts_with("curl ") && l.contains("http://127.0.0.1:8080/api/"))
        .map(|l| l.replace("http://127.0.0.1:8080", &format!("http://{addr}")))
        .collect()
}

/// Runs one README line in `dir` through the shell, with the tokens in the environment.
fn run_line(dir: &Path, line: &str, tokens: &[(&str, &str)]) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(dir)
        .envs(tokens.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}: {out:?}");
    stdout(&out)
}

#[test]
fn the_readme_walkthrough_with_curl_reads_100_in_the_report_the_gradebook_and_its_csv() {
    let have_curl = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !common::require(have_curl, "curl") {
        return;
    }
    let dir = common::data_dir_sharing_the_caches();
    let csv = dir.path().join("roster.csv");
    std::fs::write(
        &csv,
        "id,name,email,role\ns1,Ann,ann@example.org,student\nt1,Tess,t@example.org,instructor\n",
    )
    .unwrap();
    let imported = stdout(&grader(
        dir.path(),
        &["roster", "import", csv.to_str().unwrap()],
    ));
    let token_of = |id: &str| {
        imported
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{id}\t")))
            .unwrap()
            .to_string()
    };
    let (student, instructor) = (token_of("s1"), token_of("t1"));
    let tokens = [
        ("TOKEN", student.as_str()),
        ("INSTRUCTOR_TOKEN", instructor.as_str()),
    ];
    let (server, addr) = common::serve(dir.path());
    let mut server = StopOnDrop(Some(server));
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("02_runtime.tar.gz"),
        common::reference_archive(),
    )
    .unwrap();
    let lines = readme_curl_lines(&addr);
    let line = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("the README has no curl line with {needle}: {lines:?}"))
            .clone()
    };

    let accepted: serde_json::Value =
        serde_json::from_str(&run_line(work.path(), &line("-F file=@"), &tokens)).unwrap();
    assert_eq!(accepted["id"], 1, "{accepted}");
    // The events end by themselves once the grading is done: `curl -N` returns.
    let events = run_line(work.path(), &line("/events"), &tokens);
    // (`queued` may be over before the stream starts: it begins with the current state.)
    for step in ["event: building", "event: testing", "event: done"] {
        assert!(events.contains(step), "no {step} in {events}");
    }
    let report: serde_json::Value = serde_json::from_str(&run_line(
        work.path(),
        &line("/api/submissions/1 "),
        &tokens,
    ))
    .unwrap();
    assert_eq!(
        (report["status"].as_str(), report["score"].as_i64()),
        (Some("graded"), Some(100)),
        "{report}"
    );
    let gradebook: serde_json::Value =
        serde_json::from_str(&run_line(work.path(), &line("/api/gradebook "), &tokens)).unwrap();
    assert!(gradebook.to_string().contains("\"s1\""), "{gradebook}");
    assert!(
        gradebook.to_string().contains("\"final_score\":100"),
        "{gradebook}"
    );
    let csv = run_line(work.path(), &line("/api/gradebook.csv"), &tokens);
    let row = csv
        .lines()
        .find(|l| l.starts_with("s1,"))
        .unwrap_or_else(|| panic!("no row of s1 in {csv}"));
    assert!(row.split(',').any(|cell| cell == "100"), "{row}");

    let mut server = server.0.take().unwrap();
    kill(Pid::from_raw(server.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(server.wait().unwrap().code(), Some(0));
}

/// A server that a failing test must not leave running (it holds the test's output pipe).
struct StopOnDrop(Option<std::process::Child>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
