//! `grader roster` and `grader serve` through the real binary: tokens printed once, re-imports
//! that change nobody's token, `roster token` revoking the old one, `roster extend`, a roster mistake named with
//! exit 2 (no hidden tests are needed for these), and a server killed with SIGKILL mid-grading that
//! grades the upload after a restart, then exits 0 on SIGTERM.

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
