//! Running without a sandbox ([`Identity::Unsandboxed`]): the student's own code on their own
//! machine, where bubblewrap or user namespaces are missing. No namespace hides the host, so the
//! mounts a [`SandboxCommand`] asks for are emulated by translating paths: inside paths in the
//! program, arguments, working folder and environment (and in the cargo configuration files that
//! cargo would read there) become the host paths they are bound from, and host paths in what the
//! program prints become inside paths again, so that the engine reads the same output as from a
//! sandbox. Limits still hold where rlimits and cgroups enforce them; runs are killed through
//! their process group.
//!
//! [`Identity::Unsandboxed`]: super::Identity::Unsandboxed

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::SandboxCommand;

/// Inside path -> host path, longest inside path first.
#[derive(Debug, Clone)]
pub(super) struct PathMap {
    pairs: Vec<(String, String)>,
}

/// Characters that may precede or follow a path inside a string (a script, `PATH`, a TOML value).
fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '=' | ':' | ';')
}

impl PathMap {
    /// The mounts of `cmd`, the toolchain at `toolchain_mount` and the run's private `/tmp`.
    pub(super) fn new(
        cmd: &SandboxCommand,
        toolchain: (&Path, &str),
        tmp: &Path,
    ) -> io::Result<PathMap> {
        let mut pairs = vec![
            (toolchain.1.to_owned(), absolute(toolchain.0)?),
            ("/tmp".to_owned(), absolute(tmp)?),
        ];
        for (host, inside) in cmd.rw_mounts.iter().chain(&cmd.ro_mounts) {
            pairs.push((inside.clone(), absolute(host)?));
        }
        pairs.sort_by_key(|(inside, _)| std::cmp::Reverse(inside.len()));
        Ok(PathMap { pairs })
    }

    /// `text` with every inside path that starts at a boundary replaced by its host path.
    pub(super) fn to_host(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut previous: Option<char> = None;
        'scan: while let Some(c) = rest.chars().next() {
            if c == '/' && previous.is_none_or(is_delimiter) {
                for (inside, host) in &self.pairs {
                    if let Some(after) = rest.strip_prefix(inside.as_str()) {
                        let next = after.chars().next();
                        if next.is_none_or(|n| n == '/' || is_delimiter(n)) {
                            out.push_str(host);
                            previous = inside.chars().last();
                            rest = after;
                            continue 'scan;
                        }
                    }
                }
            }
            out.push(c);
            previous = Some(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }

    /// `output` with every host path replaced by its inside path (longest host path first).
    pub(super) fn to_inside(&self, output: &[u8]) -> Vec<u8> {
        let mut by_host: Vec<&(String, String)> = self.pairs.iter().collect();
        by_host.sort_by_key(|(_, host)| std::cmp::Reverse(host.len()));
        let mut out = output.to_vec();
        for (inside, host) in by_host {
            out = replace_bytes(&out, host.as_bytes(), inside.as_bytes());
        }
        out
    }

    /// Rewrites the cargo configuration files cargo would read in `cwd` (a host path) and its
    /// ancestors below a mount: their inside paths (a vendored source's `directory`, say) become
    /// host paths. Quoted values equal to a mount point or below one are rewritten once: a
    /// rewritten file starts with a marker line.
    pub(super) fn rewrite_cargo_configs(&self, cwd: &Path) -> io::Result<()> {
        const MARKER: &str = "# paths rewritten for an unsandboxed run\n";
        let mounted = |dir: &Path| self.pairs.iter().any(|(_, host)| dir.starts_with(host));
        for dir in cwd.ancestors().take_while(|d| mounted(d)) {
            let file = dir.join(".cargo/config.toml");
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            if text.starts_with(MARKER) {
                continue;
            }
            fs::write(&file, format!("{MARKER}{}", self.to_host(&text)))?;
        }
        Ok(())
    }
}

fn absolute(path: &Path) -> io::Result<String> {
    let path: PathBuf = path.canonicalize()?;
    path.into_os_string()
        .into_string()
        .map_err(|p| io::Error::other(format!("{} is not UTF-8", Path::new(&p).display())))
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> PathMap {
        PathMap {
            pairs: vec![
                ("/opt/warm-target".into(), "/h/data/warm".into()),
                ("/opt/vendor".into(), "/h/data/vendor".into()),
                ("/opt/rust".into(), "/h/data/toolchain".into()),
                ("/work".into(), "/work/wt/job-1".into()),
                ("/tmp".into(), "/var/t/run-1".into()),
            ],
        }
    }

    #[test]
    fn inside_paths_become_host_paths_only_at_boundaries() {
        let m = map();
        assert_eq!(
            m.to_host("[ -d /work/target ] || cp -a /opt/warm-target /work/target"),
            "[ -d /work/wt/job-1/target ] || cp -a /h/data/warm /work/wt/job-1/target"
        );
        assert_eq!(
            m.to_host("/opt/rust/bin:/usr/bin:/bin"),
            "/h/data/toolchain/bin:/usr/bin:/bin"
        );
        assert_eq!(m.to_host("/tmp/cargo-home"), "/var/t/run-1/cargo-home");
        assert_eq!(
            m.to_host("directory = \"/opt/vendor\""),
            "directory = \"/h/data/vendor\""
        );
        // Not a mount: a longer name, a path below another folder, a relative path.
        for same in [
            "/workshop",
            "/usr/work",
            "work/target",
            "/opt/rusty",
            "/tmp.x",
        ] {
            assert_eq!(m.to_host(same), same);
        }
    }

    #[test]
    fn host_paths_in_output_become_inside_paths() {
        let m = map();
        let out = m.to_inside(b"{\"executable\":\"/work/wt/job-1/target/debug/deps/t-1\"}");
        assert_eq!(out, b"{\"executable\":\"/work/target/debug/deps/t-1\"}");
    }
}
