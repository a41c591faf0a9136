//! The students' command line through the real binary, run as a student would: as a normal user
//! (uid 65534 through `setpriv` when the tests run as root), with a home folder of its own and the
//! Rust toolchain on its `PATH`. `grader check` on the template (exit 1), the reference (exit 0)
//! and a broken archive (exit 2), in a cache folder it prepares on first use; `--no-sandbox`;
//! `login`, `submit`, `status` and `history` against a real `grader serve`; an event stream cut
//! mid-grading, resumed with `Last-Event-ID`; the one-line messages for a bad token, an
//! unreachable server and a rate limit; and that the release binary students get holds no hidden
//! test.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output};

/// The student's uid when the tests run as root.
const STUDENT_UID: u32 = 65534;

/// A student's home: a folder they own, holding copies of the crates they check.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let copy = |from: &str, to: &str| {
            let status = Command::new("cp")
                .arg("-r")
                .arg(common::repo().join(from))
                .arg(dir.path().join(to))
                .status()
                .unwrap();
            assert!(status.success());
        };
        copy("exercise-template", "template");
        copy("solutions/reference", "reference");
        // The binary as students get it: a file of their own (the build's folder may be private).
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_grader"), dir.path().join("bin/grader")).unwrap();
        // The toolchain and vendored crates come from the shared data folder (no network); the
        // warm cache is the student's own, built on the first check.
        let cache = dir.path().join(".cache/runtime-grader");
        std::fs::create_dir_all(&cache).unwrap();
        for part in ["toolchain", "vendor"] {
            std::os::unix::fs::symlink(common::data_dir().join(part), cache.join(part)).unwrap();
        }
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", &format!("{STUDENT_UID}:{STUDENT_UID}")])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        Home { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The grader run as the student, in their home, with only HOME and PATH (the toolchain's
    /// `rustc`/`cargo` first, as rustup would put them) set.
    fn grader(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// As [`Home::grader`], on a machine without bubblewrap: the tests (root) hide it in a mount
    /// namespace of the run's own.
    fn grader_without_bwrap(&self, args: &[&str]) -> Output {
        let inner = self.command(args);
        let bwrap = ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
            .into_iter()
            .filter(|p| Path::new(p).exists())
            .map(|p| format!("mount --bind /dev/null {p} && "))
            .collect::<String>();
        let mut outer = Command::new("unshare");
        outer
            .args(["--mount", "sh", "-c", &format!("{bwrap}exec \"$@\""), "sh"])
            .arg(inner.get_program())
            .args(inner.get_args())
            .current_dir(self.path())
            .env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))));
        outer.output().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.as_student(self.path().join("bin/grader"));
        command.args(args);
        command
    }

    /// `script` run by `bash -e` as the student, in `dir` (below their home), as a terminal of
    /// theirs would run it.
    fn shell(&self, dir: &str, script: &str) -> Output {
        let mut command = self.as_student("bash");
        command
            .args(["-e", "-c", script])
            .current_dir(self.path().join(dir));
        command.output().unwrap()
    }

    /// `program` as the student (see [`Home::grader`]), in their home.
    fn as_student(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={STUDENT_UID}"),
                &format!("--regid={STUDENT_UID}"),
                "--clear-groups",
                "--",
            ])
            .arg(program);
            c
        } else {
            Command::new(program)
        };
        let path = format!(
            "{}:/usr/bin:/bin",
            common::data_dir().join("toolchain/bin").display()
        );
        command
            .current_dir(self.path())
            .env_clear()
            .env("HOME", self.path())
            .env("PATH", path);
        command
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn check_as_a_student_prepares_its_cache_once_and_exits_by_the_outcome() {
    let home = Home::new();
    let first = home.grader(&["check", "template"]);
    assert_exit(&first, 1);
    let err = text(&first.stderr);
    assert!(
        err.contains("preparing") && err.contains(".cache/runtime-grader"),
        "{err}"
    );
    let out = text(&first.stdout);
    assert!(out.contains("Score: 0/34"), "{out}");
    // Its own copies of the public tests are named too: the check runs the grader's.
    assert!(
        out.contains("src/timer/tests.rs (the check runs the grader's own copy"),
        "{out}"
    );
    let warm = home.path().join(".cache/runtime-grader/warm-targets");
    assert_eq!(
        std::fs::read_dir(&warm).unwrap().count(),
        1,
        "one warm cache"
    );

    let reference = home.grader(&["check", "reference"]);
    assert_exit(&reference, 0);
    assert!(!text(&reference.stderr).contains("preparing"), "reused");
    let out = text(&reference.stdout);
    assert!(out.contains("Score: 34/34"), "{out}");
    // Which files the grader leaves out, and why.
    assert!(
        out.contains("Cargo.toml (the grader uses its own Cargo.toml)"),
        "{out}"
    );
    assert!(!text(&reference.stderr).contains("WITHOUT a sandbox"));

    // A crate with more than the grader uses: each file ignored is named with the precise reason.
    let extra = home.path().join("extra");
    let status = Command::new("cp")
        .args(["-r", "--no-preserve=ownership"])
        .arg(home.path().join("reference"))
        .arg(&extra)
        .status()
        .unwrap();
    assert!(status.success());
    let manifest = std::fs::read_to_string(extra.join("Cargo.toml")).unwrap();
    let manifest = manifest.replace("[dependencies]\n", "[dependencies]\ntokio = \"1\"\n")
        + "\n[profile.dev]\nopt-level = 1\n";
    for (file, contents) in [
        ("Cargo.toml", manifest.as_str()),
        ("build.rs", "fn main() {}\n"),
        ("notes.txt", "mine\n"),
        ("src/data.json", "{}\n"),
        ("tests/helper/mod.rs", "\n"),
    ] {
        let path = extra.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", &format!("{STUDENT_UID}:{STUDENT_UID}")])
            .arg(&extra)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let checked = home.grader(&["check", "extra"]);
    assert_exit(&checked, 0);
    let out = text(&checked.stdout);
    for line in [
        "  Cargo.toml (the grader uses its own Cargo.toml: your code cannot use tokio, only \
         futures; your changes to [profile] have no effect)\n",
        "  build.rs (never run: the grader's own Cargo.toml has no build script)\n",
        "  notes.txt (only src/**/*.rs and tests/*.rs are used)\n",
        "  src/data.json (only .rs files under src/ are used)\n",
        "  tests/helper/mod.rs (only .rs files directly in tests/ are used)\n",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }

    let json = home.grader(&["check", "reference", "--format", "json"]);
    assert_exit(&json, 0);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["score"], 34);

    std::fs::write(home.path().join("broken.tar.gz"), b"not a gzip stream").unwrap();
    if is_root() {
        std::os::unix::fs::chown(home.path().join("broken.tar.gz"), Some(STUDENT_UID), None)
            .unwrap();
    }
    let broken = home.grader(&["check", "broken.tar.gz"]);
    assert_exit(&broken, 2);
    assert!(text(&broken.stdout).contains("Submission refused"));
    let missing = home.grader(&["check", "no-such-folder"]);
    assert_exit(&missing, 2);

    // Without the sandbox: one line says so, and the verdict is the same.
    let unsandboxed = home.grader(&["check", "--no-sandbox", "template"]);
    assert_exit(&unsandboxed, 1);
    let err = text(&unsandboxed.stderr);
    assert_eq!(err.matches("WITHOUT a sandbox").count(), 1, "{err}");
    // Without bubblewrap installed, check falls back to that by itself (hiding it needs root).
    if common::require(is_root(), "root, to hide bubblewrap in a mount namespace") {
        let fallback = home.grader_without_bwrap(&["check", "reference"]);
        assert_exit(&fallback, 0);
        let err = text(&fallback.stderr);
        assert_eq!(
            err.lines().count(),
            1,
            "one line and no other warning: {err}"
        );
        assert!(
            err.contains("WITHOUT a sandbox (bubblewrap or user namespaces do not work here)"),
            "{err}"
        );
    }
}

/// A running `grader serve`, stopped when dropped: also when a test fails, whose orphaned server
/// would otherwise keep running and hold the test run's output open.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a roster of two students and a real server on the shared caches: (data folder, server,
/// its URL, the first student's token, the second's).
fn server_with_two_students() -> (tempfile::TempDir, Server, String, String, String) {
    let data = common::data_dir_sharing_the_caches();
    let csv = data.path().join("roster.csv");
    std::fs::write(
        &csv,
        "id,name,email,role\ns1,Ann,ann@example.org,student\ns2,Bo,bo@example.org,student\n",
    )
    .unwrap();
    let imported = Command::new(env!("CARGO_BIN_EXE_grader"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["roster", "import"])
        .arg(&csv)
        .output()
        .unwrap();
    let tokens: Vec<String> = text(&imported.stdout)
        .lines()
        .map(|line| line.split_once('\t').unwrap().1.to_string())
        .collect();
    let [first, second] = <[String; 2]>::try_from(tokens).unwrap();
    let (server, addr) = common::serve(data.path());
    (
        data,
        Server(server),
        format!("http://{addr}"),
        first,
        second,
    )
}

#[test]
fn submit_status_and_history_against_a_real_server() {
    let (_data, server, url, token, _) = server_with_two_students();
    let home = Home::new();

    let login = home.grader(&["login", &url, &token]);
    assert_exit(&login, 0);
    let config = home.path().join(".config/runtime-grader/config.toml");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is the student's alone");

    let submitted = home.grader(&["submit", "reference"]);
    assert_exit(&submitted, 0);
    let err = text(&submitted.stderr);
    assert!(err.contains("left out: Cargo.toml"), "{err}");
    assert!(err.contains("submitted as #1"), "{err}");
    assert!(err.contains("testing"), "progress is shown: {err}");
    let out = text(&submitted.stdout);
    assert!(
        out.contains("Submission #1: graded") && out.contains("Score: 100/100"),
        "{out}"
    );
    // The student's view: hidden tests are never named.
    assert!(!out.contains("deadlock_"), "{out}");

    let status = home.grader(&["status"]);
    assert_exit(&status, 0);
    assert!(text(&status.stdout).contains("Submission #1: graded"));
    let history = home.grader(&["history"]);
    assert_exit(&history, 0);
    let line = text(&history.stdout);
    assert!(
        line.contains("#1") && line.contains("graded") && line.contains("100/100"),
        "{line}"
    );

    // A wrong token: one line, exit 2, nothing uploaded.
    let bad = home.grader(&["submit", "reference", "--token", "rg_wrong"]);
    assert_exit(&bad, 2);
    let err = text(&bad.stderr);
    assert!(err.contains("refused your token (401)"), "{err}");
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1,
        "{err}"
    );

    drop(server);
    let down = home.grader(&["status", "--server", &url]);
    assert_exit(&down, 2);
    assert!(
        text(&down.stderr).contains("cannot reach the grading server"),
        "{}",
        text(&down.stderr)
    );
}

/// A TCP proxy to `upstream` that cuts the first event stream after its first event, as a
/// dropped connection would. Returns its URL and everything the clients sent through it.
fn proxy_cutting_the_first_event_stream(
    upstream: &str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use std::net::{Shutdown, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&sent);
    let cut_done = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let mut server = TcpStream::connect(&upstream).unwrap();
            let (mut from_client, mut to_server) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = from_client.read(&mut buf) {
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to_server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to_server.shutdown(Shutdown::Write);
            });
            let cut_done = Arc::clone(&cut_done);
            std::thread::spawn(move || {
                // Server to client; an event stream is cut once its first event went through.
                let mut stream_from: Option<usize> = None;
                let mut forwarded = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = server.read(&mut buf) {
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    forwarded.extend_from_slice(&buf[..n]);
                    let seen = text(&forwarded);
                    if stream_from.is_none() && !cut_done.load(Ordering::SeqCst) {
                        stream_from = seen.find("text/event-stream");
                    }
                    let first_event_done = stream_from.is_some_and(|at| {
                        seen[at..].contains("event:") && seen[at..].contains("\n\n")
                    });
                    if first_event_done && !cut_done.swap(true, Ordering::SeqCst) {
                        break;
                    }
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        }
    });
    (url, sent)
}

#[test]
fn a_dropped_event_stream_is_resumed_with_the_last_event_id() {
    let (_data, server, url, token, _) = server_with_two_students();
    let (proxy, sent) = proxy_cutting_the_first_event_stream(&url);
    let home = Home::new();
    let out = home.grader(&["submit", "reference", "--server", &proxy, "--token", &token]);
    drop(server);
    assert_exit(&out, 0);
    let err = text(&out.stderr);
    assert!(err.contains("connection dropped; resuming"), "{err}");
    assert!(text(&out.stdout).contains("Score: 100/100"));
    let sent = text(&sent.lock().unwrap()).to_ascii_lowercase();
    assert!(sent.matches("/events").count() >= 2, "{sent}");
    assert!(sent.contains("last-event-id:"), "{sent}");
}

/// A listener that answers every request with `response` (such as the server's rate-limit
/// contract: 429, `Retry-After`, a JSON error), until dropped.
fn answer_every_request_with(response: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            // Read the whole request (headers, then Content-Length bytes), then answer.
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            let complete = |r: &[u8]| {
                let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return false;
                };
                let head = String::from_utf8_lossy(&r[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                r.len() >= end + 4 + length
            };
            while !complete(&request) {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(response);
        }
    });
    url
}

#[test]
fn a_rate_limit_says_when_to_try_again() {
    let body = r#"{"error":{"code":"rate_limited","message":"one submission per 30 s"}}"#;
    let response: &'static str = Box::leak(
        format!(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 17\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let url = answer_every_request_with(response.as_bytes());
    let home = Home::new();
    let out = home.grader(&["submit", "reference", "--server", &url, "--token", "rg_x"]);
    assert_exit(&out, 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("too many submissions (429): one submission per 30 s; try again in 17 s"),
        "{err}"
    );
}

/// The `sh` blocks of the handout's "Checking and submitting" section, in order.
fn handout_blocks(handout: &str) -> Vec<String> {
    let start = handout.find("## Checking and submitting").unwrap();
    let end = start + handout[start..].find("### What is submitted").unwrap();
    handout[start..end]
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_string())
        .collect()
}

#[test]
fn the_handout_followed_word_for_word_installs_checks_and_submits() {
    // The course page publishes the release binary; the course runs a server with two students.
    let binary = std::fs::read(release_binary()).unwrap();
    let mut page = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        binary.len()
    )
    .into_bytes();
    page.extend(binary);
    let course = answer_every_request_with(page.leak());
    let (_data, server, url, token, other_token) = server_with_two_students();
    let home = Home::new();

    // One terminal session of the student: every block as written, but the placeholders; the
    // crate is a finished one (the reference), and they `cd` into it after installing.
    let mut session = String::new();
    let handout =
        std::fs::read_to_string(common::repo().join("exercise-template/README.md")).unwrap();
    for block in handout_blocks(&handout) {
        if block.starts_with("rustup ") {
            // Needs rustup and the network, which the tests have neither of (tried by hand); the
            // version it names is the server's (the Dockerfile's).
            let dockerfile = std::fs::read_to_string(common::repo().join("Dockerfile")).unwrap();
            let pinned = dockerfile
                .lines()
                .find_map(|line| line.strip_prefix("ARG RUST_VERSION="))
                .unwrap();
            let minor = pinned.rsplit_once('.').unwrap().0;
            let expected = format!(
                "rustup toolchain install {minor} --profile minimal\n\
                 RUSTUP_TOOLCHAIN={minor} grader check\n"
            );
            assert_eq!(block, expected);
            assert!(handout.contains(&format!("The server compiles with Rust {minor};")));
            continue;
        }
        // The upload by hand is the second student's: the first's rate limit is running.
        let own = if block.contains("tar czf") {
            &other_token
        } else {
            &token
        };
        session.push_str(
            &block
                .replace("https://<course-page>", &course)
                .replace("https://<grader-host>", &url)
                .replace("<your-token>", own),
        );
        if block.starts_with("mkdir -p ~/.local/bin") {
            session.push_str("cd reference\n");
        }
    }
    assert!(
        !session.contains('<'),
        "a placeholder the test does not know: {session}"
    );
    let out = home.shell(".", &session);
    // The login saved above also serves the plain commands; an id that is not theirs is one line.
    let unknown = home.grader(&["status", "12"]);
    drop(server);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    for expected in [
        "grader 0.1.0\n",
        "Score: 34/34",
        "Submission #1: graded",
        "Score: 100/100",
        "#1 ",
        "\"id\":2",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    assert_exit(&unknown, 2);
    assert_eq!(
        text(&unknown.stderr).trim(),
        "error: you have no submission #12: `grader history` lists yours"
    );
}

/// The binary the course publishes (README, "How students get it"), built here as the course
/// builds it (`cargo build --release --locked -p grader`, into this build's target folder) so that
/// the file scanned is never stale: a no-op when the test command built it before the tests
/// (`scripts/test.sh` does), a full release build otherwise. A failed build fails the test.
fn release_binary() -> std::path::PathBuf {
    let target = Path::new(env!("CARGO_BIN_EXE_grader"))
        .parent()
        .and_then(Path::parent)
        .unwrap();
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "grader",
            "--target-dir",
        ])
        .arg(target)
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "the release build failed:\n{}",
        text(&built.stderr)
    );
    target.join("release/grader")
}

/// Searches `binary` for every line of `needles` at once (the binary is large): what was found.
fn found_in(binary: &Path, needles: &[String]) -> Vec<String> {
    let patterns = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(patterns.path(), needles.join("\n") + "\n").unwrap();
    let found = Command::new("grep")
        .args(["--text", "--only-matching", "--fixed-strings", "--file"])
        .arg(patterns.path())
        .arg(binary)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(
        matches!(found.status.code(), Some(0 | 1)),
        "grep failed: {}",
        text(&found.stderr)
    );
    text(&found.stdout).lines().map(String::from).collect()
}

/// Lines of `source` long enough to tell something (at least 24 characters, trimmed).
fn telling_lines(source: &str) -> impl Iterator<Item = &str> {
    source
        .lines()
        .map(str::trim)
        .filter(|line| line.len() >= 24)
}

#[test]
fn the_release_binary_students_get_holds_no_hidden_test() {
    // What the students have anyway (the template's files, the spec) is no secret.
    let mut public = std::fs::read_to_string(common::repo().join("docs/exercise-spec.md")).unwrap();
    let mut public_tests = Vec::new();
    for entry in walkdir::WalkDir::new(common::repo().join("exercise-template")) {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(entry.path()).unwrap();
            if entry.path().ends_with("tests.rs") {
                public_tests.extend(telling_lines(&source).map(String::from));
            }
            public.push_str(&source);
        }
    }
    // Every hidden test's name, and every line of theirs long enough to tell something.
    let mut needles = Vec::new();
    let mut names = 0;
    for entry in walkdir::WalkDir::new(common::repo().join("hidden-tests/tests")) {
        let path = entry.unwrap().into_path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for test in grader::engine::suite::test_functions(&name, &source).unwrap() {
            let short = test.name.rsplit("::").next().unwrap();
            // A few share their name with a public test (`test_<name>`).
            if !public.contains(short) {
                needles.push(short.to_string());
                names += 1;
            }
        }
        for line in telling_lines(&source) {
            if !public.contains(line.trim_end_matches([',', ';'])) {
                needles.push(line.to_string());
            }
        }
    }
    assert!(
        names >= 80 && needles.len() >= 500,
        "{names} names, {} needles",
        needles.len()
    );
    let binary = release_binary();
    // The search sees the binary's text: the public tests, compiled in, are found.
    let public_found = found_in(&binary, &public_tests);
    assert!(
        public_found.len() >= 100,
        "only {} of the public tests' {} lines found in {}: the search does not work",
        public_found.len(),
        public_tests.len(),
        binary.display()
    );
    let found = found_in(&binary, &needles);
    assert!(
        found.is_empty(),
        "{} holds {} of the hidden tests' names or lines, such as:\n{}",
        binary.display(),
        found.len(),
        found[..found.len().min(10)].join("\n")
    );
}
