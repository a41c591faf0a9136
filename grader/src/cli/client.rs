//! The students' client of the grading server: `grader login`, `grader submit` (pack, upload,
//! follow the live events, print the report), `grader status` and `grader history`.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::student::{exit_code, kept_files, Packed};
use super::{render_text, Format};
use crate::engine::report::Report;

/// Where `grader login` keeps the server and token, below the user's config folder.
const CONFIG_FILE: &str = "runtime-grader/config.toml";
/// Reconnections of a dropped event stream before falling back to polling.
const RECONNECTS: u32 = 3;
/// Pause between polls of a submission's state.
const POLL: Duration = Duration::from_secs(1);

/// What stops a client command: each is one line for the student.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No server or token configured.
    #[error(
        "no {0} configured: run `grader login URL TOKEN` once (or pass --server/--token, or set \
         GRADER_URL/GRADER_TOKEN)"
    )]
    NotConfigured(&'static str),
    /// The server cannot be reached.
    #[error("cannot reach the grading server at {url}: {why}")]
    Unreachable {
        /// The server.
        url: String,
        /// What failed.
        why: String,
    },
    /// 401.
    #[error("the server refused your token (401): check it, or ask an instructor for a new one")]
    BadToken,
    /// 429: the server's message, which says when to retry (else `Retry-After` does).
    #[error("too many submissions (429): {0}")]
    RateLimited(String),
    /// Any other refusal, with the server's message.
    #[error("the server answered {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The server's `error.message`.
        message: String,
    },
    /// `grader status ID` for an id that is not one of the student's submissions (the server
    /// answers 404 for another's as for none).
    #[error("you have no submission #{0}: `grader history` lists yours")]
    NoSuchSubmission(i64),
    /// The submission folder cannot be packed.
    #[error("{0}")]
    Pack(String),
    /// The config file cannot be read or written.
    #[error("{path}: {why}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What failed.
        why: String,
    },
    /// The server's answer is not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// The file `grader login` writes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Login {
    /// The server's base URL.
    pub server: Option<String>,
    /// The student's API token.
    pub token: Option<String>,
}

/// The config file's path: `$XDG_CONFIG_HOME/runtime-grader/config.toml`, else
/// `~/.config/runtime-grader/config.toml`.
pub fn config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join(CONFIG_FILE))
}

/// Writes the server and token to the config file, readable by the user only (mode 0600).
pub fn login(server: &str, token: &str) -> Result<PathBuf, ClientError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = config_path().ok_or(ClientError::Config {
        path: PathBuf::from("~/.config"),
        why: "neither XDG_CONFIG_HOME nor HOME is set".into(),
    })?;
    let fail = |e: std::io::Error| ClientError::Config {
        path: path.clone(),
        why: e.to_string(),
    };
    std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(fail)?;
    let text = toml::to_string(&Login {
        server: Some(server.trim_end_matches('/').to_string()),
        token: Some(token.to_string()),
    })
    .expect("serialises");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(fail)?;
    // An older file keeps its mode on open: make it private too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    Ok(path)
}

fn read_login() -> Result<Login, ClientError> {
    let Some(path) = config_path() else {
        return Ok(Login::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| ClientError::Config {
            path,
            why: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Login::default()),
        Err(e) => Err(ClientError::Config {
            path,
            why: e.to_string(),
        }),
    }
}

/// A connection to the server: base URL and token.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// From the flags (which clap already filled from `GRADER_URL`/`GRADER_TOKEN`), else the
    /// config file.
    pub fn new(server: Option<String>, token: Option<String>) -> Result<Client, ClientError> {
        let saved = read_login()?;
        let base = server
            .or(saved.server)
            .ok_or(ClientError::NotConfigured("server"))?
            .trim_end_matches('/')
            .to_string();
        let token = token
            .or(saved.token)
            .ok_or(ClientError::NotConfigured("token"))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Client {
            base,
            token,
            http,
            runtime,
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            why = s.to_string();
            source = s.source();
        }
        ClientError::Unreachable {
            url: self.base.clone(),
            why,
        }
    }

    /// Sends a request and turns refusals into [`ClientError`]s.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let when = retry_after(response.headers());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
            .to_string();
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::BadToken,
            StatusCode::TOO_MANY_REQUESTS => {
                let when = when.unwrap_or_else(|| "later".into());
                ClientError::RateLimited(if message.contains(&when) {
                    message
                } else {
                    format!("{}; try again {when}", message.trim_end_matches('.'))
                })
            }
            _ => ClientError::Refused { status, message },
        })
    }

    async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let response = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `grader submit`: packs the kept files, uploads them, follows the grading and prints the
    /// report.
    pub fn submit(&self, dir: &Path, format: Format) -> Result<ExitCode, ClientError> {
        let packed = kept_files(dir).map_err(ClientError::Pack)?;
        let Packed { archive, left_out } = packed;
        for (path, why) in &left_out {
            eprintln!("left out: {path} ({why})");
        }
        self.runtime.block_on(async {
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(archive).file_name("02_runtime.tar.gz"),
            );
            let url = format!("{}/api/submissions", self.base);
            let accepted = self.send(self.http.post(url).multipart(form)).await?;
            let body: Value = accepted
                .json()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            let id = body["id"]
                .as_i64()
                .ok_or_else(|| ClientError::Protocol(format!("no id in {body}")))?;
            eprintln!("submitted as #{id}{}", late_mark(&body).unwrap_or_default());
            self.follow(id).await?;
            self.show(id, format).await
        })
    }

    /// Follows the submission's events until `done`: resumes a dropped stream with
    /// `Last-Event-ID`, and polls when the stream cannot be had.
    async fn follow(&self, id: i64) -> Result<(), ClientError> {
        let mut line = ProgressLine::new();
        let mut last: Option<String> = None;
        let mut failures = 0;
        while failures <= RECONNECTS {
            match self.stream_events(id, &mut last, &mut line).await {
                Ok(true) => {
                    line.finish();
                    return Ok(());
                }
                // Bad tokens and missing submissions do not get better by retrying.
                Err(e @ (ClientError::BadToken | ClientError::Refused { .. })) => return Err(e),
                Ok(false) | Err(_) => {
                    failures += 1;
                    if failures <= RECONNECTS {
                        line.note("connection dropped; resuming the live progress");
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
                    }
                }
            }
        }
        line.note("no live progress; asking the server every second instead");
        loop {
            let v = self.get_json(&format!("/api/submissions/{id}")).await?;
            let status = v["status"].as_str().unwrap_or("");
            if status != "queued" && status != "running" {
                line.finish();
                return Ok(());
            }
            line.show(&match v["position"].as_i64() {
                Some(p) => format!("queued (position {p})"),
                None => status.to_string(),
            });
            tokio::time::sleep(POLL).await;
        }
    }

    /// Reads one connection's events; `Ok(true)` once `done` arrived, `Ok(false)` when the stream
    /// ended before it.
    async fn stream_events(
        &self,
        id: i64,
        last: &mut Option<String>,
        line: &mut ProgressLine,
    ) -> Result<bool, ClientError> {
        let mut request = self
            .http
            .get(format!("{}/api/submissions/{id}/events", self.base))
            .header(ACCEPT, "text/event-stream");
        if let Some(last) = last.as_deref() {
            request = request.header("Last-Event-ID", last);
        }
        let mut response = self.send(request).await?;
        // The server answers 204 to a client that already saw `done`.
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(true);
        }
        let mut parser = SseParser::default();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            for event in parser.feed(&chunk) {
                if let Some(id) = event.id {
                    *last = Some(id);
                }
                let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                match event.name.as_str() {
                    "queued" => line.show(&format!(
                        "queued (position {})",
                        data["position"].as_i64().unwrap_or(1)
                    )),
                    "checking" => line.show("checking the upload"),
                    "building" => line.show("building"),
                    "testing" => line.show(&format!(
                        "testing {} of {}",
                        data["done"].as_u64().unwrap_or(0),
                        data["total"].as_u64().unwrap_or(0)
                    )),
                    "done" => return Ok(true),
                    _ => {}
                }
            }
        }
        Ok(false)
    }

    /// Prints a submission's student view; the exit code says how it went.
    async fn show(&self, id: i64, format: Format) -> Result<ExitCode, ClientError> {
        let v = self
            .get_json(&format!("/api/submissions/{id}?view=student"))
            .await?;
        let status = v["status"].as_str().unwrap_or("unknown");
        if format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
        }
        let report = match &v["report"] {
            Value::Null => None,
            r => Some(
                serde_json::from_value::<Report>(r.clone())
                    .map_err(|e| ClientError::Protocol(format!("report: {e}")))?,
            ),
        };
        let late = late_mark(&v).unwrap_or_default();
        if format == Format::Text {
            println!("Submission #{id}: {status}{late}");
            if v["final_score"]
                .as_i64()
                .is_some_and(|f| Some(f) != v["score"].as_i64())
            {
                println!("Score after the late penalty: {}", score_of(&v));
            }
            match (&report, v["message"].as_str()) {
                (Some(r), _) => {
                    let color = std::io::stdout().is_terminal();
                    print!("{}", render_text(r, color));
                }
                (None, Some(m)) => println!("{m}"),
                (None, None) => {}
            }
        }
        Ok(match (&report, status) {
            (Some(r), _) => exit_code(r),
            (None, "queued" | "running") => ExitCode::SUCCESS,
            (None, _) => ExitCode::FAILURE,
        })
    }

    /// `grader status [ID]`: the given submission, else the latest.
    pub fn status(&self, id: Option<i64>, format: Format) -> Result<ExitCode, ClientError> {
        self.runtime.block_on(async {
            let id = match id {
                Some(id) => {
                    return self.show(id, format).await.map_err(|e| match e {
                        ClientError::Refused {
                            status: StatusCode::NOT_FOUND,
                            ..
                        } => ClientError::NoSuchSubmission(id),
                        e => e,
                    })
                }
                None => {
                    let list = self.get_json("/api/submissions").await?;
                    let latest = list["submissions"]
                        .as_array()
                        .and_then(|s| s.iter().filter_map(|v| v["id"].as_i64()).max());
                    match latest {
                        Some(id) => id,
                        None => {
                            eprintln!("no submissions yet: send one with `grader submit`");
                            return Ok(ExitCode::SUCCESS);
                        }
                    }
                }
            };
            self.show(id, format).await
        })
    }

    /// `grader history`: one line per submission, newest first.
    pub fn history(&self, format: Format) -> Result<ExitCode, ClientError> {
        self.runtime.block_on(async {
            let list = self.get_json("/api/submissions").await?;
            let rows = list["submissions"].as_array().cloned().unwrap_or_default();
            if format == Format::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).expect("serialises")
                );
                return Ok(ExitCode::SUCCESS);
            }
            if rows.is_empty() {
                println!("no submissions yet: send one with `grader submit`");
            }
            for v in &rows {
                let score = score_of(v);
                println!(
                    "#{:<5} {}  {:<12} {:>7}{}",
                    v["id"].as_i64().unwrap_or(0),
                    v["created_at"]
                        .as_i64()
                        .map_or_else(|| "?".into(), utc_time),
                    v["status"].as_str().unwrap_or("?"),
                    score,
                    late_mark(v).unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        })
    }
}

/// `Retry-After` (seconds or an HTTP date) in words.
fn retry_after(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().to_string();
    Some(match value.parse::<u64>() {
        Ok(secs) => format!("in {secs} s"),
        Err(_) => format!("after {value}"),
    })
}

/// `, late by 2 h 05 min (penalty 10%)` when the server marked the submission late (`late`,
/// `late_ms`, `penalty_pct`).
fn late_mark(v: &Value) -> Option<String> {
    if v["late"].as_bool() != Some(true) {
        return None;
    }
    let mut mark = String::from(", late");
    if let Some(ms) = v["late_ms"].as_i64() {
        let minutes = (ms + 59_999) / 60_000;
        let _ = match (minutes / 1440, minutes % 1440 / 60, minutes % 60) {
            (0, 0, m) => write!(mark, " by {m} min"),
            (0, h, m) => write!(mark, " by {h} h {m:02} min"),
            (d, h, _) => write!(mark, " by {d} d {h} h"),
        };
    }
    if let Some(p) = v["penalty_pct"].as_i64().filter(|p| *p > 0) {
        let _ = write!(mark, " (penalty {p}%)");
    }
    Some(mark)
}

/// `score/max`, the penalised score first when a late penalty changed it.
fn score_of(v: &Value) -> String {
    match (
        v["score"].as_i64(),
        v["final_score"].as_i64(),
        v["max_score"].as_i64(),
    ) {
        (Some(s), Some(f), Some(m)) if f != s => format!("{f}/{m} ({s} before the penalty)"),
        (Some(s), _, Some(m)) => format!("{s}/{m}"),
        _ => "-".into(),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM UTC`.
fn utc_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::server::time::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// One server-sent event.
#[derive(Debug, Default, PartialEq, Eq)]
struct SseEvent {
    name: String,
    id: Option<String>,
    data: String,
}

/// Splits a byte stream into events (`event:`, `id:`, `data:` lines, a blank line ends one).
#[derive(Debug, Default)]
struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
}

impl SseParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let event = std::mem::take(&mut self.current);
                if !event.name.is_empty() || !event.data.is_empty() {
                    events.push(event);
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.name = value.to_string(),
                "id" => self.current.id = Some(value.to_string()),
                "data" => {
                    if !self.current.data.is_empty() {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                }
                _ => {}
            }
        }
        events
    }
}

/// The progress line on stderr: rewritten in place on a terminal, one line per change otherwise.
struct ProgressLine {
    terminal: bool,
    shown: String,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine {
            terminal: std::io::stderr().is_terminal(),
            shown: String::new(),
        }
    }

    fn show(&mut self, text: &str) {
        if text == self.shown {
            return;
        }
        // Off a terminal, one line per phase (not per finished test) keeps logs short.
        let phase = |s: &str| s.split(' ').next().unwrap_or("").to_string();
        if self.terminal {
            eprint!("\r\x1b[K{text}");
        } else if phase(text) != phase(&self.shown) || text.starts_with("queued") {
            eprintln!("{text}");
        }
        self.shown = text.to_string();
    }

    fn note(&mut self, text: &str) {
        let mut out = String::new();
        if self.terminal && !self.shown.is_empty() {
            out.push('\n');
        }
        let _ = write!(out, "{text}");
        eprintln!("{out}");
        self.shown.clear();
    }

    fn finish(&mut self) {
        if self.terminal && !self.shown.is_empty() {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_parsed() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: testing\nid: 5\nda").is_empty());
        let events = p.feed(b"ta: {\"done\":3}\n\n: keep-alive\n\nevent: done\ndata: {}\n\n");
        assert_eq!(
            events,
            [
                SseEvent {
                    name: "testing".into(),
                    id: Some("5".into()),
                    data: "{\"done\":3}".into()
                },
                SseEvent {
                    name: "done".into(),
                    id: None,
                    data: "{}".into()
                }
            ]
        );
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_time(1_796_558_400_000), "2026-12-06 12:00 UTC");
    }

    #[test]
    fn late_marks_say_what_the_server_says() {
        assert_eq!(late_mark(&serde_json::json!({"late": false})), None);
        assert_eq!(late_mark(&serde_json::json!({})), None);
        let late = serde_json::json!({"late": true, "late_ms": 7_440_000, "penalty_pct": 10,
                                      "score": 80, "final_score": 72, "max_score": 100});
        assert_eq!(
            late_mark(&late).unwrap(),
            ", late by 2 h 04 min (penalty 10%)"
        );
        assert_eq!(score_of(&late), "72/100 (80 before the penalty)");
    }
}
