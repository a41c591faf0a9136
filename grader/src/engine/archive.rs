//! Intake: turns an upload (a `.tar.gz`/`.tgz`/`.zip` archive) or a crate directory into a validated,
//! in-memory [`Submission`] holding only `src/**/*.rs` and `tests/*.rs`.
//!
//! Nothing is ever extracted: archives are decompressed in memory through byte budgets that abort as
//! soon as a limit is passed (bombs never get decompressed in full), and a directory is only read.
//! Anything that could make writing the files out dangerous (absolute paths, `..`, links, special
//! files, odd names, paths too deep or too long, a damaged gzip trailer, duplicates) refuses the
//! whole upload with a message the student can act on, and so does an upload whose sources are all
//! empty; harmless extras (`Cargo.toml`, `target/`, READMEs...) are dropped and listed in
//! [`Submission::ignored`].

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Cursor, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde::Serialize;
use walkdir::WalkDir;

/// Upper bound on the entries looked at in one upload (files, folders, metadata entries), so that an
/// archive of a million empty entries is refused after a bounded amount of work.
pub const MAX_ENTRIES: usize = 10_000;
/// Most folders a path may be nested in (`src/a/b.rs` is 3 components deep).
pub const MAX_DEPTH: usize = 16;
/// Longest file or folder name, in bytes: below every file system's limit (255), so that a kept
/// name can always be written.
pub const MAX_NAME_BYTES: usize = 100;
/// Longest path, in bytes, well below `PATH_MAX` once it is placed under a job folder.
pub const MAX_PATH_BYTES: usize = 512;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Size and count limits applied to every upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most source files kept (`src/**/*.rs` plus `tests/*.rs`).
    pub max_files: usize,
    /// Largest single kept file, in bytes.
    pub max_file_bytes: u64,
    /// Most bytes decompressed from an archive (everything in a tar stream, kept files of a zip) or
    /// read from a directory (kept files).
    pub max_unpacked_bytes: u64,
    /// Largest archive file, in bytes (not applied to directories).
    pub max_packed_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_files: 100,
            max_file_bytes: 256 * KIB,
            max_unpacked_bytes: 4 * MIB,
            max_packed_bytes: MIB,
        }
    }
}

/// A validated submission, held in memory: the student's kept source files and what was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    files: BTreeMap<String, String>,
    ignored: Vec<Ignored>,
}

impl Submission {
    /// The kept files: relative path with `/` separators (`src/lib.rs`, `src/bin/runtime_demo.rs`,
    /// `tests/mine.rs`) mapped to UTF-8 source text.
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// What was dropped and why, sorted by path; a dropped folder (`target/`, `.git/`, `docs/`) is
    /// listed once rather than file by file.
    pub fn ignored(&self) -> &[Ignored] {
        &self.ignored
    }

    /// Writes the kept files under `crate_dir`, creating folders as needed. The paths were validated
    /// on intake (relative, no `..`, no special characters), so they all land inside `crate_dir`.
    pub fn write_to(&self, crate_dir: &Path) -> io::Result<()> {
        for (path, source) in &self.files {
            let target = crate_dir.join(path);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&target, source)?;
        }
        Ok(())
    }
}

/// A path of the upload that the grader does not use, with the reason shown to the student.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// The path as uploaded (after stripping a wrapping folder); folders end with `/`.
    pub path: String,
    /// Why it is not used, e.g. "the grader uses its own Cargo.toml".
    pub reason: String,
}

/// Why an upload was refused. Every message is addressed to the student.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The file name has none of the supported extensions.
    #[error(
        "`{name}` is not a supported upload: upload your crate as a .tar.gz, .tgz or .zip archive"
    )]
    UnsupportedFormat {
        /// The uploaded file name.
        name: String,
    },
    /// The bytes do not start like the format the file name announces.
    #[error("`{name}` is not a valid {format} archive: the file is damaged or is not what its name says")]
    NotAnArchive {
        /// The uploaded file name.
        name: String,
        /// The format announced by the name ("gzip" or "zip").
        format: &'static str,
    },
    /// The archive could not be read to the end.
    #[error("the archive is damaged and cannot be read ({detail}); create it again and re-upload")]
    Corrupt {
        /// What the decoder reported.
        detail: String,
    },
    /// An entry uses a zip compression method other than stored/deflate.
    #[error("{path} uses a zip compression method the grader cannot read; create the zip with the standard (deflate) compression")]
    UnsupportedCompression {
        /// The entry.
        path: String,
    },
    /// The archive file is larger than `max_packed_bytes`.
    #[error("the upload is larger than {}; upload only src/ and tests/ (leave out target/)", size(*limit))]
    TooLargePacked {
        /// The limit in bytes.
        limit: u64,
    },
    /// Decompressing (or reading) passed `max_unpacked_bytes`.
    #[error("the upload unpacks to more than {}; upload only src/ and tests/ (leave out target/ and other large files)", size(*limit))]
    TooLargeUnpacked {
        /// The limit in bytes.
        limit: u64,
    },
    /// A kept file is larger than `max_file_bytes`.
    #[error("{path} is larger than {}; source files must be smaller", size(*limit))]
    FileTooLarge {
        /// The file.
        path: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// More kept files than `max_files`.
    #[error("the upload has {count} source files; at most {limit} are accepted")]
    TooManyFiles {
        /// How many files would have been kept.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// More entries than [`MAX_ENTRIES`].
    #[error("the upload has more than {limit} files and folders; upload only src/ and tests/")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// An entry name starts with `/`.
    #[error("the archive contains an absolute path ({path}); archive your crate folder with relative paths")]
    AbsolutePath {
        /// The entry name.
        path: String,
    },
    /// An entry name has a `..` component.
    #[error("the archive contains a path that leaves the crate folder ({path}); remove `..` from the paths")]
    ParentDir {
        /// The entry name.
        path: String,
    },
    /// An entry name holds characters that are not allowed (backslash, control characters).
    #[error("the name {path:?} contains a backslash or a control character; rename the file")]
    BadName {
        /// The entry name.
        path: String,
    },
    /// An entry name is not valid UTF-8.
    #[error("the name {path:?} is not valid UTF-8; rename the file")]
    NonUtf8Name {
        /// The entry name, with invalid bytes replaced.
        path: String,
    },
    /// A symbolic link.
    #[error("the upload contains a symbolic link ({path}); upload plain files only")]
    Symlink {
        /// The link.
        path: String,
    },
    /// A hard link.
    #[error("the upload contains a hard link ({path}); upload plain files only")]
    HardLink {
        /// The link.
        path: String,
    },
    /// A device, fifo, socket, sparse file or other non-regular entry.
    #[error("the upload contains {path}, which is not a plain file or folder (device, pipe or other special file); upload plain files only")]
    SpecialFile {
        /// The entry.
        path: String,
    },
    /// A password-protected zip entry.
    #[error("{path} is encrypted; upload an archive without a password")]
    Encrypted {
        /// The entry.
        path: String,
    },
    /// The same path appears twice.
    #[error("the archive contains {} more than once; create the archive again", duplicate(.path))]
    Duplicate {
        /// The repeated path, when the format tells which one.
        path: Option<String>,
    },
    /// A path is used both as a file and as a folder.
    #[error("{path} is both a file and a folder in the upload; create the archive again")]
    PathConflict {
        /// The file path.
        path: String,
    },
    /// A kept file is not valid UTF-8 text.
    #[error("{path} is not UTF-8 text; save it as UTF-8")]
    NonUtf8Content {
        /// The file.
        path: String,
    },
    /// A path is nested more than [`MAX_DEPTH`] folders deep.
    #[error(
        "{path} is nested more than {limit} folders deep; keep your modules in a shallower tree"
    )]
    TooDeep {
        /// The path (shortened if long).
        path: String,
        /// The limit.
        limit: usize,
    },
    /// A file or folder name longer than [`MAX_NAME_BYTES`].
    #[error("{path} has a name longer than {limit} bytes; use shorter file and folder names")]
    NameTooLong {
        /// The path (shortened if long).
        path: String,
        /// The limit.
        limit: usize,
    },
    /// A path longer than [`MAX_PATH_BYTES`].
    #[error("{path} is a path longer than {limit} bytes; use shorter file and folder names")]
    PathTooLong {
        /// The path (shortened).
        path: String,
        /// The limit.
        limit: usize,
    },
    /// The archive has no entries at all.
    #[error("the archive is empty")]
    Empty,
    /// Every kept source file is empty (or only white space).
    #[error("nothing to grade: every source file in the upload is empty; upload the crate with your code")]
    NothingToGrade,
    /// There is no `src/lib.rs` after stripping a wrapping folder.
    #[error("the upload has no src/lib.rs; archive the crate folder (the one containing src/) or src/ itself")]
    MissingLibRs,
    /// A directory could not be read.
    #[error("could not read {path}: {source}")]
    Io {
        /// What was being read.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
}

fn size(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn duplicate(path: &Option<String>) -> &str {
    path.as_deref().unwrap_or("a path")
}

/// Reads a crate directory, or an archive chosen by its file name (`.tar.gz`, `.tgz`, `.zip`).
pub fn from_path(path: &Path, limits: &Limits) -> Result<Submission, IntakeError> {
    let io_error = |source| IntakeError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = fs::metadata(path).map_err(io_error)?;
    if meta.is_dir() {
        return read_directory(path, limits);
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    format_of(&name)?;
    if !meta.is_file() {
        return Err(IntakeError::SpecialFile { path: name });
    }
    if meta.len() > limits.max_packed_bytes {
        return Err(IntakeError::TooLargePacked {
            limit: limits.max_packed_bytes,
        });
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|file| {
            file.take(limits.max_packed_bytes + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(io_error)?;
    from_bytes(&name, &bytes, limits)
}

/// Reads an uploaded archive; `file_name` (the upload's name) chooses the format.
pub fn from_bytes(
    file_name: &str,
    bytes: &[u8],
    limits: &Limits,
) -> Result<Submission, IntakeError> {
    let format = format_of(file_name)?;
    if bytes.len() as u64 > limits.max_packed_bytes {
        return Err(IntakeError::TooLargePacked {
            limit: limits.max_packed_bytes,
        });
    }
    let not_an_archive = || IntakeError::NotAnArchive {
        name: file_name.to_owned(),
        format: format.name(),
    };
    match format {
        Format::TarGz => {
            if !bytes.starts_with(&[0x1f, 0x8b]) {
                return Err(not_an_archive());
            }
            intake(&mut TarGz { bytes, limits }, limits)
        }
        Format::Zip => {
            if !(bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")) {
                return Err(not_an_archive());
            }
            let archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
            intake(&mut Zip { archive }, limits)
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    TarGz,
    Zip,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::TarGz => "gzip",
            Format::Zip => "zip",
        }
    }
}

fn format_of(file_name: &str) -> Result<Format, IntakeError> {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        Ok(Format::TarGz)
    } else if lower.ends_with(".zip") {
        Ok(Format::Zip)
    } else {
        Err(IntakeError::UnsupportedFormat {
            name: file_name.to_owned(),
        })
    }
}

/// One file or folder of an upload, as listed (before deciding what to keep).
#[derive(Debug)]
struct Entry {
    /// Normal components of the path as uploaded (no empty, `.` or `..` components).
    components: Vec<String>,
    is_dir: bool,
    /// Where the source finds the entry again in [`Source::load`].
    index: usize,
}

/// An upload format, read in two passes: list every entry (validating names and types), then load
/// the contents of the entries chosen to be kept. Two passes let the wrapping-folder decision see
/// every name before any content is read; a tar stream is simply decompressed again (it is small).
trait Source {
    fn list(&mut self) -> Result<Vec<Entry>, IntakeError>;
    /// Loads the entries with the given [`Entry::index`]es (mapped to their final paths, used in
    /// messages), in index order, charging every byte to `budget`.
    fn load(
        &mut self,
        wanted: &BTreeMap<usize, String>,
        budget: &mut ReadBudget,
    ) -> Result<Vec<Vec<u8>>, IntakeError>;
}

/// Lists, decides, loads and checks: the part shared by every upload format.
fn intake(source: &mut dyn Source, limits: &Limits) -> Result<Submission, IntakeError> {
    let entries = source.list()?;
    if entries.is_empty() {
        return Err(IntakeError::Empty);
    }
    check_paths_unique(&entries)?;
    let wrapper = wrapping_folder(&entries);
    let mut kept = BTreeMap::new();
    let mut ignored = BTreeMap::new();
    for entry in &entries {
        let components = match wrapper {
            Some(top) if entry.components[0] == top => &entry.components[1..],
            _ => &entry.components[..],
        };
        if components.is_empty() {
            continue;
        }
        match classify(components, entry.is_dir) {
            Class::Keep => {
                kept.insert(entry.index, components.join("/"));
            }
            Class::Ignore(path, reason) => {
                ignored.entry(path).or_insert(reason);
            }
            Class::Silent => {}
        }
    }
    if kept.len() > limits.max_files {
        return Err(IntakeError::TooManyFiles {
            count: kept.len(),
            limit: limits.max_files,
        });
    }
    if !kept.values().any(|path| path == "src/lib.rs") {
        return Err(IntakeError::MissingLibRs);
    }
    let mut budget = ReadBudget {
        remaining: limits.max_unpacked_bytes,
        limits: *limits,
    };
    let contents = source.load(&kept, &mut budget)?;
    let mut files = BTreeMap::new();
    for (path, bytes) in kept.into_values().zip(contents) {
        let source = String::from_utf8(bytes)
            .map_err(|_| IntakeError::NonUtf8Content { path: path.clone() })?;
        files.insert(path, source);
    }
    if files.values().all(|source| source.trim().is_empty()) {
        return Err(IntakeError::NothingToGrade);
    }
    let ignored = ignored
        .into_iter()
        .map(|(path, reason)| Ignored {
            path,
            reason: reason.to_owned(),
        })
        .collect();
    Ok(Submission { files, ignored })
}

/// Refuses a path that appears twice, or a file that is also the parent of another entry (either
/// would make writing the files out ambiguous). Folders may repeat: tar tools sometimes do that.
fn check_paths_unique(entries: &[Entry]) -> Result<(), IntakeError> {
    let mut seen: BTreeMap<String, bool> = BTreeMap::new();
    for entry in entries {
        let path = entry.components.join("/");
        match seen.insert(path.clone(), entry.is_dir) {
            None => {}
            Some(true) if entry.is_dir => {}
            Some(false) if !entry.is_dir => {
                return Err(IntakeError::Duplicate { path: Some(path) })
            }
            Some(_) => return Err(IntakeError::PathConflict { path }),
        }
    }
    for entry in entries {
        for end in 1..entry.components.len() {
            let parent = entry.components[..end].join("/");
            if seen.get(&parent) == Some(&false) {
                return Err(IntakeError::PathConflict { path: parent });
            }
        }
    }
    Ok(())
}

/// The one top-level folder everything sits in (e.g. `02_runtime/`), if there is one and no `src/`
/// at the top level. Hidden entries and macOS `__MACOSX/` metadata next to it do not count.
fn wrapping_folder(entries: &[Entry]) -> Option<&str> {
    let mut tops = entries
        .iter()
        .map(|entry| entry.components[0].as_str())
        .filter(|top| !is_hidden(top) && *top != "__MACOSX");
    let first = tops.next()?;
    if first == "src" || tops.any(|top| top != first) {
        return None;
    }
    let is_folder = entries
        .iter()
        .filter(|entry| entry.components[0] == first)
        .all(|entry| entry.is_dir || entry.components.len() > 1);
    is_folder.then_some(first)
}

fn is_hidden(component: &str) -> bool {
    component.starts_with('.')
}

/// What happens to one entry (path relative to the crate root).
#[derive(Debug, PartialEq, Eq)]
enum Class {
    Keep,
    /// Listed in `ignored()` under this path (a whole folder where it makes sense).
    Ignore(String, &'static str),
    /// Folders under `src/` and `tests/`: structure, not worth listing.
    Silent,
}

const NOT_SOURCE: &str = "only src/**/*.rs and tests/*.rs are used";

fn classify(components: &[String], is_dir: bool) -> Class {
    let folder = |count: usize| format!("{}/", components[..count].join("/"));
    if components[0] == "__MACOSX" {
        return Class::Ignore(folder(1), "macOS archive metadata is not used");
    }
    if let Some(at) = components.iter().position(|c| is_hidden(c)) {
        let path = if at + 1 < components.len() || is_dir {
            folder(at + 1)
        } else {
            components.join("/")
        };
        let reason = match components[at].as_str() {
            ".cargo" => "the grader uses its own cargo configuration",
            ".git" => "version-control data is not used",
            _ => "hidden files and folders are not used",
        };
        return Class::Ignore(path, reason);
    }
    let top = components[0].as_str();
    let last = components[components.len() - 1].as_str();
    let nested = components.len() > 1 || is_dir;
    match top {
        "src" | "tests" if is_dir => Class::Silent,
        "src" if nested => {
            if last.ends_with(".rs") {
                Class::Keep
            } else {
                Class::Ignore(components.join("/"), "only .rs files under src/ are used")
            }
        }
        "tests" if components.len() == 2 && last.ends_with(".rs") => Class::Keep,
        "tests" if nested => Class::Ignore(
            components.join("/"),
            "only .rs files directly in tests/ are used",
        ),
        "target" if nested => Class::Ignore(
            folder(1),
            "build output is not used: the grader builds your code itself",
        ),
        _ if nested => Class::Ignore(folder(1), NOT_SOURCE),
        "Cargo.toml" => Class::Ignore(top.to_owned(), "the grader uses its own Cargo.toml"),
        "Cargo.lock" => Class::Ignore(top.to_owned(), "the grader uses its own Cargo.lock"),
        "build.rs" => Class::Ignore(
            top.to_owned(),
            "never run: the grader's own Cargo.toml has no build script",
        ),
        "rust-toolchain" | "rust-toolchain.toml" => {
            Class::Ignore(top.to_owned(), "the grader uses its own Rust toolchain")
        }
        _ => Class::Ignore(top.to_owned(), NOT_SOURCE),
    }
}

/// Validates an entry name and splits it into normal components (dropping empty and `.` ones, so
/// `./src//lib.rs` is `src/lib.rs`). Returns `None` for the root itself (`./`).
fn split_name(name: &str) -> Result<Option<Vec<String>>, IntakeError> {
    if name.starts_with('/') {
        return Err(IntakeError::AbsolutePath {
            path: name.to_owned(),
        });
    }
    if name.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(IntakeError::BadName {
            path: name.to_owned(),
        });
    }
    let components: Vec<String> = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
        .collect();
    if components.iter().any(|c| c == "..") {
        return Err(IntakeError::ParentDir {
            path: name.to_owned(),
        });
    }
    check_shape(&components)?;
    Ok((!components.is_empty()).then_some(components))
}

/// Refuses a path too deep or with a name too long to be written out safely (a long name would
/// otherwise fail only when the job folder is written, as an error of the grader).
fn check_shape(components: &[String]) -> Result<(), IntakeError> {
    let shown = || shorten(&components.join("/"));
    if components.len() > MAX_DEPTH {
        return Err(IntakeError::TooDeep {
            path: shown(),
            limit: MAX_DEPTH,
        });
    }
    if components.iter().any(|c| c.len() > MAX_NAME_BYTES) {
        return Err(IntakeError::NameTooLong {
            path: shown(),
            limit: MAX_NAME_BYTES,
        });
    }
    let separators = components.len().saturating_sub(1);
    if components.iter().map(String::len).sum::<usize>() + separators > MAX_PATH_BYTES {
        return Err(IntakeError::PathTooLong {
            path: shown(),
            limit: MAX_PATH_BYTES,
        });
    }
    Ok(())
}

/// `path` cut to a length that reads well in a message.
fn shorten(path: &str) -> String {
    const SHOWN_CHARS: usize = 60;
    if path.chars().count() <= SHOWN_CHARS {
        return path.to_owned();
    }
    let head: String = path.chars().take(SHOWN_CHARS).collect();
    format!("{head}...")
}

fn utf8_name(raw: &[u8]) -> Result<&str, IntakeError> {
    std::str::from_utf8(raw).map_err(|_| IntakeError::NonUtf8Name {
        path: String::from_utf8_lossy(raw).into_owned(),
    })
}

fn too_many_entries() -> IntakeError {
    IntakeError::TooManyEntries { limit: MAX_ENTRIES }
}

/// What is left of `max_unpacked_bytes` for loading kept files.
struct ReadBudget {
    remaining: u64,
    limits: Limits,
}

impl ReadBudget {
    /// Reads one kept file, never pulling more than one byte past the per-file or total limit out of
    /// `reader` (whatever size the entry declares). `io_error` turns read failures into the
    /// source's own error (a damaged stream, a tripped decompression budget...).
    fn read(
        &mut self,
        reader: impl Read,
        path: &str,
        io_error: impl FnOnce(io::Error) -> IntakeError,
    ) -> Result<Vec<u8>, IntakeError> {
        let file_limit = self.limits.max_file_bytes;
        let mut bytes = Vec::new();
        reader
            .take(file_limit.min(self.remaining) + 1)
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
        let len = bytes.len() as u64;
        if len > file_limit {
            return Err(IntakeError::FileTooLarge {
                path: path.to_owned(),
                limit: file_limit,
            });
        }
        self.remaining = self
            .remaining
            .checked_sub(len)
            .ok_or(IntakeError::TooLargeUnpacked {
                limit: self.limits.max_unpacked_bytes,
            })?;
        Ok(bytes)
    }
}

/// A reader that fails as soon as more than `remaining` bytes came through it, and records that it
/// did, so a decompression bomb is stopped while streaming: whatever wraps it (the tar parser) turns
/// the I/O error into its own, and `exceeded` tells the two cases apart.
struct StreamBudget<'a, R> {
    inner: R,
    remaining: u64,
    exceeded: &'a Cell<bool>,
}

impl<R: Read> Read for StreamBudget<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.remaining.checked_sub(n as u64) {
            Some(remaining) => {
                self.remaining = remaining;
                Ok(n)
            }
            None => {
                self.exceeded.set(true);
                Err(io::Error::other("decompression limit exceeded"))
            }
        }
    }
}

type TarEntry<'a, 'b> = tar::Entry<'a, StreamBudget<'b, GzDecoder<&'b [u8]>>>;

/// A gzip-compressed tar stream. Everything that comes out of the decompressor (headers, long-name
/// and pax records, skipped file data) is charged to one `max_unpacked_bytes` budget.
struct TarGz<'a> {
    bytes: &'a [u8],
    limits: &'a Limits,
}

impl TarGz<'_> {
    /// Decompresses the stream once, calling `visit` with each entry's position until it returns
    /// `Ok(false)`; if it never does, the stream is read to its end, which checks the gzip trailer.
    /// `visit` also gets the mapping of stream I/O errors to intake errors.
    fn for_each(
        &self,
        mut visit: impl FnMut(
            usize,
            &mut TarEntry<'_, '_>,
            &dyn Fn(io::Error) -> IntakeError,
        ) -> Result<bool, IntakeError>,
    ) -> Result<(), IntakeError> {
        let exceeded = Cell::new(false);
        let stream_error = |error: io::Error| {
            if exceeded.get() {
                IntakeError::TooLargeUnpacked {
                    limit: self.limits.max_unpacked_bytes,
                }
            } else {
                IntakeError::Corrupt {
                    detail: error.to_string(),
                }
            }
        };
        let mut archive = tar::Archive::new(StreamBudget {
            inner: GzDecoder::new(self.bytes),
            remaining: self.limits.max_unpacked_bytes,
            exceeded: &exceeded,
        });
        let entries = archive.entries().map_err(stream_error)?;
        for (position, entry) in entries.enumerate() {
            if position >= MAX_ENTRIES {
                return Err(too_many_entries());
            }
            let mut entry = entry.map_err(stream_error)?;
            if !visit(position, &mut entry, &stream_error)? {
                return Ok(());
            }
        }
        // The tar parser stops at its end blocks; the gzip trailer (CRC and length) is checked
        // only when the decoder reaches the end of the stream.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(stream_error)?;
        Ok(())
    }
}

impl Source for TarGz<'_> {
    fn list(&mut self) -> Result<Vec<Entry>, IntakeError> {
        let mut listed = Vec::new();
        self.for_each(|index, entry, _| {
            let name = utf8_name(&entry.path_bytes())?.to_owned();
            let is_dir = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => name.ends_with('/'),
                tar::EntryType::Directory => true,
                // `git archive` writes a global pax header (the commit id): metadata, not a file.
                tar::EntryType::XGlobalHeader => return Ok(true),
                tar::EntryType::Symlink => return Err(IntakeError::Symlink { path: name }),
                tar::EntryType::Link => return Err(IntakeError::HardLink { path: name }),
                _ => return Err(IntakeError::SpecialFile { path: name }),
            };
            if let Some(components) = split_name(&name)? {
                listed.push(Entry {
                    components,
                    is_dir,
                    index,
                });
            }
            Ok(true)
        })?;
        Ok(listed)
    }

    fn load(
        &mut self,
        wanted: &BTreeMap<usize, String>,
        budget: &mut ReadBudget,
    ) -> Result<Vec<Vec<u8>>, IntakeError> {
        let mut contents = Vec::with_capacity(wanted.len());
        let last = wanted.keys().next_back().copied();
        self.for_each(|index, entry, stream_error| {
            if let Some(path) = wanted.get(&index) {
                contents.push(budget.read(entry, path, stream_error)?);
            }
            Ok(Some(index) != last)
        })?;
        Ok(contents)
    }
}

/// A zip archive, read through its central directory. Only kept entries are decompressed, each
/// through the per-file limit whatever size it declares.
struct Zip<'a> {
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
}

fn zip_error(error: zip::result::ZipError) -> IntakeError {
    IntakeError::Corrupt {
        detail: error.to_string(),
    }
}

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

impl Source for Zip<'_> {
    fn list(&mut self) -> Result<Vec<Entry>, IntakeError> {
        // The central directory was parsed whole, but the packed-size limit bounds it.
        if self.archive.has_duplicate_names() {
            return Err(IntakeError::Duplicate { path: None });
        }
        if self.archive.len() > MAX_ENTRIES {
            return Err(too_many_entries());
        }
        let mut listed = Vec::new();
        for index in 0..self.archive.len() {
            let entry = self.archive.by_index_data(index).map_err(zip_error)?;
            // Check the raw name ourselves: `name()` decodes non-UTF-8 names as CP437, and
            // `enclosed_name()` silently accepts `a/../b`.
            let name = utf8_name(entry.name_raw())?;
            let path = || name.to_owned();
            match entry.unix_mode().map(|mode| mode & S_IFMT) {
                None | Some(0 | S_IFREG | S_IFDIR) => {}
                Some(S_IFLNK) => return Err(IntakeError::Symlink { path: path() }),
                Some(_) => return Err(IntakeError::SpecialFile { path: path() }),
            }
            if entry.encrypted() {
                return Err(IntakeError::Encrypted { path: path() });
            }
            let is_dir = name.ends_with('/') || entry.is_dir();
            if let Some(components) = split_name(name)? {
                listed.push(Entry {
                    components,
                    is_dir,
                    index,
                });
            }
        }
        Ok(listed)
    }

    fn load(
        &mut self,
        wanted: &BTreeMap<usize, String>,
        budget: &mut ReadBudget,
    ) -> Result<Vec<Vec<u8>>, IntakeError> {
        let mut contents = Vec::with_capacity(wanted.len());
        for (&index, path) in wanted {
            let file = self.archive.by_index(index).map_err(|error| match error {
                zip::result::ZipError::CompressionMethodNotSupported(_) => {
                    IntakeError::UnsupportedCompression { path: path.clone() }
                }
                zip::result::ZipError::UnsupportedArchive(_) => {
                    IntakeError::Encrypted { path: path.clone() }
                }
                other => zip_error(other),
            })?;
            // The reader fails on a CRC mismatch or on more data than the entry declared.
            contents.push(budget.read(file, path, |error| IntakeError::Corrupt {
                detail: error.to_string(),
            })?);
        }
        Ok(contents)
    }
}

/// A crate directory on disk: walked without following links and only read. `target/` (outside
/// `src/` and `tests/`) and hidden folders are listed but never entered.
struct Directory {
    root: PathBuf,
    paths: Vec<PathBuf>,
}

fn read_directory(root: &Path, limits: &Limits) -> Result<Submission, IntakeError> {
    intake(
        &mut Directory {
            root: root.to_owned(),
            paths: Vec::new(),
        },
        limits,
    )
}

impl Directory {
    fn io_error(&self, path: &Path, source: io::Error) -> IntakeError {
        IntakeError::Io {
            path: path
                .strip_prefix(&self.root)
                .unwrap_or(path)
                .display()
                .to_string(),
            source,
        }
    }
}

impl Source for Directory {
    fn list(&mut self) -> Result<Vec<Entry>, IntakeError> {
        let mut listed = Vec::new();
        let mut walk = WalkDir::new(&self.root)
            .min_depth(1)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(item) = walk.next() {
            if listed.len() >= MAX_ENTRIES {
                return Err(too_many_entries());
            }
            let item = item.map_err(|error| {
                let path = error.path().unwrap_or(&self.root).to_owned();
                self.io_error(&path, error.into())
            })?;
            let relative = item.path().strip_prefix(&self.root).unwrap_or(item.path());
            let components = relative
                .iter()
                .map(|c| {
                    c.to_str()
                        .map(str::to_owned)
                        .ok_or_else(|| IntakeError::NonUtf8Name {
                            path: relative.to_string_lossy().into_owned(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            check_shape(&components)?;
            let kind = item.file_type();
            let path = || components.join("/");
            if kind.is_symlink() {
                return Err(IntakeError::Symlink { path: path() });
            }
            if !kind.is_dir() && !kind.is_file() {
                return Err(IntakeError::SpecialFile { path: path() });
            }
            let is_dir = kind.is_dir();
            let name = &components[components.len() - 1];
            let in_sources = components[..components.len() - 1]
                .iter()
                .any(|c| c == "src" || c == "tests");
            if is_dir && (is_hidden(name) || (name == "target" && !in_sources)) {
                walk.skip_current_dir();
            }
            listed.push(Entry {
                components,
                is_dir,
                index: self.paths.len(),
            });
            self.paths.push(item.into_path());
        }
        Ok(listed)
    }

    fn load(
        &mut self,
        wanted: &BTreeMap<usize, String>,
        budget: &mut ReadBudget,
    ) -> Result<Vec<Vec<u8>>, IntakeError> {
        let mut contents = Vec::with_capacity(wanted.len());
        for (&index, path) in wanted {
            let on_disk = &self.paths[index];
            let io_error = |source| self.io_error(on_disk, source);
            // O_NOFOLLOW and a check of the opened file close the gap between listing and reading
            // (a file swapped for a link or a fifo in between); O_NONBLOCK keeps a fifo from hanging.
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(
                    (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits(),
                )
                .open(on_disk)
                .map_err(|error| match error.raw_os_error() {
                    Some(code) if code == nix::errno::Errno::ELOOP as i32 => {
                        IntakeError::Symlink { path: path.clone() }
                    }
                    _ => io_error(error),
                })?;
            let meta = file.metadata().map_err(io_error)?;
            if !meta.is_file() {
                return Err(IntakeError::SpecialFile { path: path.clone() });
            }
            if meta.nlink() > 1 {
                return Err(IntakeError::HardLink { path: path.clone() });
            }
            if meta.len() > budget.limits.max_file_bytes {
                return Err(IntakeError::FileTooLarge {
                    path: path.clone(),
                    limit: budget.limits.max_file_bytes,
                });
            }
            contents.push(budget.read(file, path, io_error)?);
        }
        Ok(contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, is_dir: bool) -> Entry {
        Entry {
            components: split_name(path).unwrap().unwrap(),
            is_dir,
            index: 0,
        }
    }

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(
            split_name("./a//b/./c.rs").unwrap(),
            Some(vec!["a".into(), "b".into(), "c.rs".into()])
        );
        assert_eq!(split_name("./").unwrap(), None);
        assert!(matches!(
            split_name("a/./../b"),
            Err(IntakeError::ParentDir { .. })
        ));
        assert!(matches!(
            split_name("//etc"),
            Err(IntakeError::AbsolutePath { .. })
        ));
        assert!(matches!(
            split_name("a\0b"),
            Err(IntakeError::BadName { .. })
        ));
    }

    #[test]
    fn only_a_lone_top_folder_is_a_wrapper() {
        let wrapped = [entry("w/src/lib.rs", false), entry(".DS_Store", false)];
        assert_eq!(wrapping_folder(&wrapped), Some("w"));
        // A top-level file of that name is not a folder.
        let file = [entry("w", false)];
        assert_eq!(wrapping_folder(&file), None);
        let two = [entry("a/src/lib.rs", false), entry("b/x", false)];
        assert_eq!(wrapping_folder(&two), None);
        let src = [entry("src/lib.rs", false)];
        assert_eq!(wrapping_folder(&src), None);
    }

    #[test]
    fn classification_follows_the_rules() {
        let class = |path: &str, is_dir| classify(&split_name(path).unwrap().unwrap(), is_dir);
        assert_eq!(class("src/a/b.rs", false), Class::Keep);
        assert_eq!(class("tests/t.rs", false), Class::Keep);
        assert_eq!(class("src/bin", true), Class::Silent);
        assert_eq!(
            class("tests/a/b.rs", false),
            Class::Ignore(
                "tests/a/b.rs".into(),
                "only .rs files directly in tests/ are used"
            )
        );
        assert_eq!(
            class("src/.idea/x.rs", false),
            Class::Ignore("src/.idea/".into(), "hidden files and folders are not used")
        );
        assert!(matches!(class("target", true), Class::Ignore(path, _) if path == "target/"));
        assert!(matches!(class("target", false), Class::Ignore(path, _) if path == "target"));
        assert!(
            matches!(class("lib.rs", false), Class::Ignore(path, NOT_SOURCE) if path == "lib.rs")
        );
    }

    #[test]
    fn the_stream_budget_trips_past_its_limit() {
        let exceeded = Cell::new(false);
        let mut budget = StreamBudget {
            inner: io::repeat(7).take(10),
            remaining: 9,
            exceeded: &exceeded,
        };
        let mut out = Vec::new();
        assert!(budget.read_to_end(&mut out).is_err());
        assert!(exceeded.get());
        let mut exact = StreamBudget {
            inner: io::repeat(7).take(9),
            remaining: 9,
            exceeded: &exceeded,
        };
        exceeded.set(false);
        assert_eq!(exact.read_to_end(&mut Vec::new()).unwrap(), 9);
        assert!(!exceeded.get());
    }
}
