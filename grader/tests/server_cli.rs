//! `grader roster` through the real binary: tokens printed once, re-imports that change nobody's
//! token, `roster token` revoking the old one, and a roster mistake named with exit 2. No hidden
//! tests are needed for these commands.

use std::path::Path;
use std::process::{Command, Output};

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
