//! Adversarial tests of intake (`grader::engine::archive`): hostile archives and directories are built here,
//! in memory or in temp dirs, and every test checks the safe outcome (the exact refusal, or exactly
//! the expected kept files) and that nothing was written outside the test's temp dir.

use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use grader::engine::archive::{
    from_bytes, from_path, IntakeError, Limits, Submission, MAX_DEPTH, MAX_ENTRIES, MAX_NAME_BYTES,
    MAX_PATH_BYTES,
};
use tar::{EntryType, Header};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const LIB: &[u8] = b"pub mod executor;\n";
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

// ---------------------------------------------------------------------------------------------
// Archive builders

/// One tar entry: raw name bytes (written straight into the header, so `..`, absolute and
/// non-UTF-8 names are possible), type, link target and contents.
struct TarItem {
    name: Vec<u8>,
    kind: EntryType,
    link: Option<&'static str>,
    data: Box<dyn Read>,
    size: u64,
}

fn file(name: impl AsRef<[u8]>, data: &[u8]) -> TarItem {
    TarItem {
        name: name.as_ref().to_vec(),
        kind: EntryType::Regular,
        link: None,
        data: Box::new(Cursor::new(data.to_vec())),
        size: data.len() as u64,
    }
}

fn dir(name: &str) -> TarItem {
    special(name, EntryType::Directory, None)
}

fn special(name: &str, kind: EntryType, link: Option<&'static str>) -> TarItem {
    TarItem {
        name: name.as_bytes().to_vec(),
        kind,
        link,
        data: Box::new(io::empty()),
        size: 0,
    }
}

/// `size` zero bytes, streamed into the archive without ever being held in memory.
fn zeros(name: &str, size: u64) -> TarItem {
    TarItem {
        name: name.as_bytes().to_vec(),
        kind: EntryType::Regular,
        link: None,
        data: Box::new(io::repeat(0).take(size)),
        size,
    }
}

/// The tar header for `item`. `Header::set_path` refuses `..` and absolute paths, so the name
/// bytes are written into the header directly.
fn header(item: &TarItem) -> Header {
    let mut header = Header::new_gnu();
    header.as_old_mut().name[..item.name.len()].copy_from_slice(&item.name);
    header.set_entry_type(item.kind);
    header.set_mode(0o644);
    header.set_size(item.size);
    header.set_mtime(0);
    if let Some(link) = item.link {
        header.set_link_name_literal(link).unwrap();
    }
    header.set_cksum();
    header
}

fn tar_gz(items: Vec<TarItem>) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for item in items {
        builder.append(&header(&item), item.data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A `.tar.gz` whose tar stream is `before`, then the header of `bomb`, then `bomb.size` zero bytes
/// (and the zero padding and end blocks). Compressing that many zeros with flate2 in a debug build
/// takes many seconds, so the zeros are encoded by hand ([`deflate_then_zeros`]).
fn gzip_bomb(before: Vec<TarItem>, bomb: TarItem) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in before {
        builder.append(&header(&item), item.data).unwrap();
    }
    let mut prefix = builder.get_ref().clone();
    prefix.extend_from_slice(header(&bomb).as_bytes());
    let zeros = bomb.size.next_multiple_of(512) + 1024;
    let mut crc = flate2::Crc::new();
    crc.update(&prefix);
    let chunk = vec![0u8; MIB];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(MIB as u64) as usize;
        crc.update(&chunk[..n]);
        left -= n as u64;
    }
    let mut gzip = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    gzip.extend(deflate_then_zeros(&prefix, zeros));
    gzip.extend(crc.sum().to_le_bytes());
    gzip.extend((crc.amount()).to_le_bytes());
    gzip
}

/// A raw deflate stream (one fixed-Huffman block) of `prefix` followed by `zeros` zero bytes: the
/// zeros are one literal and then back-references of length 258 at distance 1 (13 bits each).
fn deflate_then_zeros(prefix: &[u8], zeros: u64) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        len: u32,
    }
    impl Bits {
        /// Header fields and extra bits go least significant bit first.
        fn raw(&mut self, value: u32, len: u32) {
            self.acc |= u64::from(value) << self.len;
            self.len += len;
            while self.len >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.len -= 8;
            }
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u32, len: u32) {
            self.raw(code.reverse_bits() >> (32 - len), len);
        }
        fn literal(&mut self, byte: u8) {
            match byte {
                0..=143 => self.code(0x30 + u32::from(byte), 8),
                _ => self.code(0x190 + u32::from(byte) - 144, 9),
            }
        }
    }
    let mut bits = Bits {
        out: Vec::new(),
        acc: 0,
        len: 0,
    };
    bits.raw(1, 1); // final block
    bits.raw(1, 2); // fixed Huffman codes
    prefix.iter().for_each(|&byte| bits.literal(byte));
    let mut left = zeros;
    if left > 0 {
        bits.literal(0);
        left -= 1;
    }
    while left >= 258 {
        bits.code(0xc5, 8); // length 258 (symbol 285)
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    (0..left).for_each(|_| bits.literal(0));
    bits.code(0, 7); // end of block (symbol 256)
    bits.raw(0, 7); // flush the last byte
    bits.out
}

/// A zip written by hand (the writer compresses itself): `(name, method, declared size, data)`,
/// with `data` already compressed for method 8 and the CRC of `content`.
fn raw_zip(entries: &[(&str, u16, u32, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let u16le = |v: u16| v.to_le_bytes();
    let u32le = |v: u32| v.to_le_bytes();
    for &(name, method, crc, declared, data) in entries {
        let offset = out.len() as u32;
        let common = [
            &u16le(20)[..],
            &u16le(0),
            &u16le(method),
            &u16le(0),
            &u16le(0x21),
            &u32le(crc),
            &u32le(data.len() as u32),
            &u32le(declared),
            &u16le(name.len() as u16),
            &u16le(0),
        ]
        .concat();
        out.extend(u32le(0x0403_4b50));
        out.extend(&common);
        out.extend(name.as_bytes());
        out.extend(data);
        central.extend(u32le(0x0201_4b50));
        central.extend(u16le(3 << 8 | 20));
        central.extend(&common);
        central.extend([0; 6]); // comment length, disk, internal attributes
        central.extend(u32le(0o100_644 << 16));
        central.extend(u32le(offset));
        central.extend(name.as_bytes());
    }
    let central_offset = out.len() as u32;
    let count = entries.len() as u16;
    out.extend(&central);
    out.extend(u32le(0x0605_4b50));
    out.extend([0; 4]);
    out.extend(u16le(count));
    out.extend(u16le(count));
    out.extend(u32le(central.len() as u32));
    out.extend(u32le(central_offset));
    out.extend(u16le(0));
    out
}

/// A zip of `src/lib.rs` and `src/bomb.rs` (`size` zeros, declared as `declared`).
fn zip_bomb(size: u64, declared: u32) -> Vec<u8> {
    let crc_of = |data: &[u8]| {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        crc.sum()
    };
    let mut crc = flate2::Crc::new();
    let chunk = vec![0u8; MIB];
    for _ in 0..size / MIB as u64 {
        crc.update(&chunk);
    }
    assert_eq!(size % MIB as u64, 0);
    let bomb = deflate_then_zeros(&[], size);
    raw_zip(&[
        ("src/lib.rs", 0, crc_of(LIB), LIB.len() as u32, LIB),
        ("src/bomb.rs", 8, crc.sum(), declared, &bomb),
    ])
}

fn zip_of(items: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in items {
        if name.ends_with('/') {
            zip.add_directory(*name, deflated()).unwrap();
        } else {
            zip.start_file(*name, deflated()).unwrap();
            zip.write_all(data).unwrap();
        }
    }
    zip.finish().unwrap().into_inner()
}

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

/// Offsets of every local (`PK\x03\x04`) and central (`PK\x01\x02`) header in a zip.
fn zip_headers(bytes: &[u8], signature: &[u8; 4]) -> Vec<usize> {
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, window)| window == signature)
        .map(|(at, _)| at)
        .collect()
}

fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut at = 0;
    let mut replaced = 0;
    while at + from.len() <= bytes.len() {
        if &bytes[at..at + from.len()] == from {
            bytes[at..at + from.len()].copy_from_slice(to);
            replaced += 1;
        }
        at += 1;
    }
    assert!(replaced > 0, "nothing to patch");
}

/// Bytes that do not compress (xorshift), to build an archive above the packed limit.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checks

fn limits() -> Limits {
    Limits::default()
}

#[track_caller]
fn refused(name: &str, bytes: &[u8]) -> IntakeError {
    match from_bytes(name, bytes, &limits()) {
        Ok(submission) => panic!("{name} was accepted: {:?}", submission.files().keys()),
        Err(error) => error,
    }
}

#[track_caller]
fn accepted(name: &str, bytes: &[u8]) -> Submission {
    from_bytes(name, bytes, &limits()).unwrap_or_else(|error| panic!("{name} refused: {error}"))
}

/// Every file (not folder) under `root`, relative, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| !entry.file_type().is_dir())
        .map(|entry| {
            entry
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    files
}

/// A name no other test uses, for files a broken intake might create outside its temp dir.
fn marker(test: &str) -> String {
    format!("grader-archive-escape-{test}-{}.rs", std::process::id())
}

/// The places a path-traversal bug would have written `name` to.
#[track_caller]
fn assert_not_written_anywhere(name: &str, temp: &Path) {
    let cwd = std::env::current_dir().unwrap();
    let mut candidates: Vec<PathBuf> = cwd.ancestors().map(|dir| dir.join(name)).collect();
    candidates.push(temp.join(name));
    candidates.push(std::env::temp_dir().join(name));
    for candidate in candidates {
        assert!(!candidate.exists(), "{} was written", candidate.display());
    }
}

#[track_caller]
fn assert_quick(started: Instant) {
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: not stopped while streaming"
    );
}

// ---------------------------------------------------------------------------------------------
// Paths

#[test]
fn absolute_path_in_tar_is_refused_and_nothing_is_written() {
    let temp = tempfile::tempdir().unwrap();
    let target = temp.path().join(marker("abs"));
    let name = target.to_str().unwrap();
    let bytes = tar_gz(vec![file("src/lib.rs", LIB), file(name, b"evil")]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(
        matches!(&error, IntakeError::AbsolutePath { path } if path == name),
        "{error:?}"
    );
    assert!(error.to_string().contains("absolute path"));
    assert!(!target.exists());
}

#[test]
fn absolute_path_in_zip_is_refused() {
    let bytes = zip_of(&[("src/lib.rs", LIB), ("/etc/cron.d/evil", b"x")]);
    let error = refused("sub.zip", &bytes);
    assert!(
        matches!(error, IntakeError::AbsolutePath { .. }),
        "{error:?}"
    );
}

#[test]
fn parent_dir_in_tar_is_refused_and_nothing_is_written() {
    let temp = tempfile::tempdir().unwrap();
    let name = format!("src/../../{}", marker("dotdot-tar"));
    let bytes = tar_gz(vec![file("src/lib.rs", LIB), file(&name, b"evil")]);
    let error = refused("sub.tgz", &bytes);
    assert!(
        matches!(&error, IntakeError::ParentDir { path } if *path == name),
        "{error:?}"
    );
    assert!(error.to_string().contains("`..`"));
    assert_not_written_anywhere(&marker("dotdot-tar"), temp.path());
}

#[test]
fn parent_dir_in_zip_is_refused_even_where_it_stays_inside() {
    // `enclosed_name` would accept `src/../lib.rs`; any `..` is refused.
    for name in ["../escape.rs", "src/../lib.rs", "a/../../escape.rs"] {
        let bytes = zip_of(&[("src/lib.rs", LIB), (name, b"x")]);
        let error = refused("sub.zip", &bytes);
        assert!(
            matches!(error, IntakeError::ParentDir { .. }),
            "{name}: {error:?}"
        );
    }
}

#[test]
fn backslash_and_control_characters_in_names_are_refused() {
    for name in ["src\\lib.rs", "src/a\nb.rs", "src/a\u{7f}.rs"] {
        let bytes = zip_of(&[("src/lib.rs", LIB), (name, b"x")]);
        let error = refused("sub.zip", &bytes);
        assert!(
            matches!(error, IntakeError::BadName { .. }),
            "{name:?}: {error:?}"
        );
    }
}

#[test]
fn non_utf8_name_in_tar_is_refused() {
    let bytes = tar_gz(vec![
        file("src/lib.rs", LIB),
        file(b"src/\xff\xfe.rs", b"x"),
    ]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(
        matches!(error, IntakeError::NonUtf8Name { .. }),
        "{error:?}"
    );
}

#[test]
fn non_utf8_name_in_zip_is_refused_not_decoded_as_cp437() {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("src/lib.rs", deflated()).unwrap();
    zip.write_all(LIB).unwrap();
    zip.start_file_with_options(deflated().name(b"src/\xff.rs"))
        .unwrap();
    zip.write_all(b"x").unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let error = refused("sub.zip", &bytes);
    assert!(
        matches!(error, IntakeError::NonUtf8Name { .. }),
        "{error:?}"
    );
}

#[test]
fn duplicate_entries_in_tar_are_refused() {
    let bytes = tar_gz(vec![
        file("src/lib.rs", LIB),
        file("src/lib.rs", b"pub fn other() {}"),
    ]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(
        matches!(&error, IntakeError::Duplicate { path: Some(path) } if path == "src/lib.rs"),
        "{error:?}"
    );
}

#[test]
fn duplicate_entries_after_normalisation_are_refused() {
    let bytes = tar_gz(vec![file("src/lib.rs", LIB), file("./src//lib.rs", LIB)]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(matches!(error, IntakeError::Duplicate { .. }), "{error:?}");
}

#[test]
fn duplicate_entries_in_zip_are_refused() {
    // The writer refuses duplicates, so rename the second entry in the bytes.
    let mut bytes = zip_of(&[("src/lib.rs", LIB), ("src/lie.rs", b"pub fn evil() {}")]);
    replace_all(&mut bytes, b"src/lie.rs", b"src/lib.rs");
    let error = refused("sub.zip", &bytes);
    assert!(matches!(error, IntakeError::Duplicate { .. }), "{error:?}");
}

#[test]
fn a_path_that_is_both_file_and_folder_is_refused() {
    let bytes = tar_gz(vec![
        file("src/lib.rs", LIB),
        file("src/timer.rs", b""),
        file("src/timer.rs/inner.rs", b""),
    ]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(
        matches!(&error, IntakeError::PathConflict { path } if path == "src/timer.rs"),
        "{error:?}"
    );
}

/// A `.tar.gz` of regular files whose names may be longer than a tar header holds: `tar` writes
/// GNU long-name records for them.
fn tar_gz_long_names(items: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, data) in items {
        let mut header = Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn a_1000_byte_file_name_is_refused_with_a_short_message() {
    let name = format!("src/{}.rs", "n".repeat(1000));
    for (archive, bytes) in [
        (
            "sub.tar.gz",
            tar_gz_long_names(&[("src/lib.rs", LIB), (&name, b"pub fn f() {}")]),
        ),
        (
            "sub.zip",
            zip_of(&[("src/lib.rs", LIB), (&name, b"pub fn f() {}")]),
        ),
    ] {
        let error = refused(archive, &bytes);
        assert!(
            matches!(
                error,
                IntakeError::NameTooLong {
                    limit: MAX_NAME_BYTES,
                    ..
                }
            ),
            "{archive}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("longer than"), "{message}");
        assert!(
            message.len() < 200,
            "the message repeats the name: {message}"
        );
    }
    // A whole path too long, made of names that are each short enough.
    let folder = "d".repeat(MAX_NAME_BYTES);
    let long_path = format!("src/{}x.rs", format!("{folder}/").repeat(MAX_DEPTH - 3));
    assert!(long_path.len() > MAX_PATH_BYTES);
    let error = refused(
        "sub.tar.gz",
        &tar_gz_long_names(&[("src/lib.rs", LIB), (&long_path, b"")]),
    );
    assert!(
        matches!(
            error,
            IntakeError::PathTooLong {
                limit: MAX_PATH_BYTES,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_file_2000_folders_deep_is_refused() {
    let deep = format!("src/{}x.rs", "a/".repeat(2000));
    let bytes = tar_gz_long_names(&[("src/lib.rs", LIB), (&deep, b"pub fn f() {}")]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(
        matches!(
            error,
            IntakeError::TooDeep {
                limit: MAX_DEPTH,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().len() < 200, "{error}");
}

#[test]
fn depth_is_limited_at_exactly_max_depth() {
    let at_limit = format!("src/{}x.rs", "a/".repeat(MAX_DEPTH - 2));
    let submission = accepted(
        "sub.tar.gz",
        &tar_gz_long_names(&[("src/lib.rs", LIB), (&at_limit, b"")]),
    );
    assert!(submission.files().contains_key(&at_limit));
    let past = format!("src/{}x.rs", "a/".repeat(MAX_DEPTH - 1));
    let error = refused(
        "sub.tar.gz",
        &tar_gz_long_names(&[("src/lib.rs", LIB), (&past, b"")]),
    );
    assert!(matches!(error, IntakeError::TooDeep { .. }), "{error:?}");

    // The same on disk, where the walk stops at the limit.
    let temp = tempfile::tempdir().unwrap();
    write(temp.path(), "src/lib.rs", LIB);
    write(temp.path(), &format!("src/{}x.rs", "a/".repeat(40)), b"");
    let error = from_path(temp.path(), &limits()).unwrap_err();
    assert!(matches!(error, IntakeError::TooDeep { .. }), "{error:?}");
}

#[test]
fn a_wrong_gzip_crc_or_length_is_refused() {
    let good = tar_gz(vec![file("src/lib.rs", LIB)]);
    accepted("sub.tar.gz", &good);
    let trailer = good.len() - 8;
    for (what, at) in [("CRC", trailer), ("length", trailer + 4)] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        let error = refused("sub.tar.gz", &bad);
        assert!(
            matches!(error, IntakeError::Corrupt { .. }),
            "{what}: {error:?}"
        );
        assert!(error.to_string().contains("damaged"), "{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Entry types

#[test]
fn symlink_in_tar_is_refused() {
    let bytes = tar_gz(vec![
        file("src/lib.rs", LIB),
        special("src/evil.rs", EntryType::Symlink, Some("/etc/passwd")),
    ]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(
        matches!(&error, IntakeError::Symlink { path } if path == "src/evil.rs"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the upload contains a symbolic link (src/evil.rs); upload plain files only"
    );
}

#[test]
fn symlink_even_in_an_ignored_folder_is_refused() {
    let bytes = tar_gz(vec![
        file("src/lib.rs", LIB),
        special("target/link", EntryType::Symlink, Some("/")),
    ]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(matches!(error, IntakeError::Symlink { .. }), "{error:?}");
}

#[test]
fn hard_link_in_tar_is_refused() {
    let bytes = tar_gz(vec![
        file("src/lib.rs", LIB),
        special("src/evil.rs", EntryType::Link, Some("/etc/shadow")),
    ]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(matches!(error, IntakeError::HardLink { .. }), "{error:?}");
}

#[test]
fn devices_fifos_and_other_special_entries_in_tar_are_refused() {
    for kind in [
        EntryType::Char,
        EntryType::Block,
        EntryType::Fifo,
        EntryType::GNUSparse,
        EntryType::new(b'Z'),
    ] {
        let bytes = tar_gz(vec![
            file("src/lib.rs", LIB),
            special("src/dev.rs", kind, None),
        ]);
        let error = refused("sub.tar.gz", &bytes);
        assert!(
            matches!(
                error,
                IntakeError::SpecialFile { .. } | IntakeError::Corrupt { .. }
            ),
            "{kind:?}: {error:?}"
        );
    }
    let bytes = tar_gz(vec![
        file("src/lib.rs", LIB),
        special("dev/null", EntryType::Char, None),
    ]);
    assert!(matches!(
        refused("sub.tar.gz", &bytes),
        IntakeError::SpecialFile { .. }
    ));
}

#[test]
fn symlink_in_zip_is_refused() {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("src/lib.rs", deflated()).unwrap();
    zip.write_all(LIB).unwrap();
    zip.add_symlink("src/evil.rs", "/etc/passwd", deflated())
        .unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let error = refused("sub.zip", &bytes);
    assert!(
        matches!(&error, IntakeError::Symlink { path } if path == "src/evil.rs"),
        "{error:?}"
    );
}

#[test]
fn special_file_mode_in_zip_is_refused() {
    const S_IFCHR: u32 = 0o020_000;
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("src/lib.rs", deflated()).unwrap();
    zip.write_all(LIB).unwrap();
    zip.start_file(
        "src/dev.rs",
        deflated().external_attributes((S_IFCHR | 0o644) << 16),
    )
    .unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let error = refused("sub.zip", &bytes);
    assert!(
        matches!(error, IntakeError::SpecialFile { .. }),
        "{error:?}"
    );
}

#[test]
fn encrypted_zip_entry_is_refused() {
    let mut bytes = zip_of(&[("src/lib.rs", LIB)]);
    for at in zip_headers(&bytes, b"PK\x03\x04") {
        bytes[at + 6] |= 1;
    }
    for at in zip_headers(&bytes, b"PK\x01\x02") {
        bytes[at + 8] |= 1;
    }
    let error = refused("sub.zip", &bytes);
    assert!(matches!(error, IntakeError::Encrypted { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------------------------
// Sizes and counts

#[test]
fn more_than_100_kept_files_are_refused_and_100_accepted() {
    let build = |count: usize| {
        let mut items = vec![file("src/lib.rs", LIB)];
        items.extend((1..count).map(|i| file(format!("src/m{i}.rs"), b"")));
        tar_gz(items)
    };
    let submission = accepted("sub.tar.gz", &build(100));
    assert_eq!(submission.files().len(), 100);
    let error = refused("sub.tar.gz", &build(101));
    assert!(
        matches!(
            error,
            IntakeError::TooManyFiles {
                count: 101,
                limit: 100
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_300_kib_file_is_refused_in_tar_and_zip() {
    let big = vec![b'a'; 300 * KIB];
    let bytes = tar_gz(vec![file("src/lib.rs", LIB), file("src/big.rs", &big)]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(
        matches!(&error, IntakeError::FileTooLarge { path, .. } if path == "src/big.rs"),
        "{error:?}"
    );
    assert!(error.to_string().contains("256 KiB"), "{error}");

    let bytes = zip_of(&[("src/lib.rs", LIB), ("src/big.rs", &big)]);
    let error = refused("sub.zip", &bytes);
    assert!(
        matches!(error, IntakeError::FileTooLarge { .. }),
        "{error:?}"
    );
}

#[test]
fn a_large_ignored_file_does_not_count_against_the_file_limit() {
    let doc = vec![b'a'; 300 * KIB];
    let bytes = tar_gz(vec![file("src/lib.rs", LIB), file("README.md", &doc)]);
    let submission = accepted("sub.tar.gz", &bytes);
    assert_eq!(submission.files().len(), 1);
}

#[test]
fn more_than_4_mib_of_kept_sources_is_refused() {
    let chunk = vec![b'a'; 250 * KIB];
    let mut items = vec![file("src/lib.rs", LIB)];
    items.extend((0..17).map(|i| file(format!("src/m{i}.rs"), &chunk)));
    let bytes = tar_gz(items);
    let error = refused("sub.tar.gz", &bytes);
    assert!(
        matches!(error, IntakeError::TooLargeUnpacked { .. }),
        "{error:?}"
    );

    let entries: Vec<(String, &[u8])> = (0..17)
        .map(|i| (format!("src/m{i}.rs"), chunk.as_slice()))
        .collect();
    let mut items: Vec<(&str, &[u8])> = vec![("src/lib.rs", LIB)];
    items.extend(entries.iter().map(|(name, data)| (name.as_str(), *data)));
    let error = refused("sub.zip", &zip_of(&items));
    assert!(
        matches!(error, IntakeError::TooLargeUnpacked { .. }),
        "{error:?}"
    );
}

const BOMB: u64 = 50 * MIB as u64;

/// Refuses `bytes` and checks that it took a small fraction of the time a full decompression of
/// the same bytes takes: the budget stopped it while streaming.
#[track_caller]
fn refused_while_streaming(
    name: &str,
    bytes: &[u8],
    full_decompression: impl FnOnce(),
) -> IntakeError {
    assert!(
        bytes.len() < MIB,
        "bomb of {} bytes would trip the packed limit",
        bytes.len()
    );
    let started = Instant::now();
    let error = refused(name, bytes);
    let refusing = started.elapsed();
    let started = Instant::now();
    full_decompression();
    let full = started.elapsed();
    assert!(
        refusing * 3 < full,
        "refused in {refusing:?}, full decompression takes {full:?}: not stopped while streaming"
    );
    error
}

fn gunzip_all(bytes: &[u8]) {
    let read = io::copy(&mut flate2::read::GzDecoder::new(bytes), &mut io::sink()).unwrap();
    assert!(read > BOMB);
}

#[test]
fn gzip_bomb_in_a_kept_file_is_stopped_while_streaming() {
    let bytes = gzip_bomb(vec![file("src/lib.rs", LIB)], zeros("src/bomb.rs", BOMB));
    let error = refused_while_streaming("bomb.tar.gz", &bytes, || gunzip_all(&bytes));
    assert!(
        matches!(error, IntakeError::TooLargeUnpacked { limit } if limit == 4 * MIB as u64),
        "{error:?}"
    );
}

#[test]
fn gzip_bomb_in_an_ignored_file_is_stopped_by_the_stream_budget() {
    // The tar parser has to decompress through ignored data to reach the next header: that is
    // charged to the unpacked budget too.
    let bytes = gzip_bomb(vec![file("src/lib.rs", LIB)], zeros("target/blob", BOMB));
    let error = refused_while_streaming("bomb.tar.gz", &bytes, || gunzip_all(&bytes));
    assert!(
        matches!(error, IntakeError::TooLargeUnpacked { .. }),
        "{error:?}"
    );
}

#[test]
fn gzip_bomb_in_a_gnu_long_name_is_stopped_by_the_stream_budget() {
    // The tar parser reads a GNU long-name record whole into memory: the budget stops it.
    let long_name = zeros("././@LongLink", BOMB).with_kind(EntryType::GNULongName);
    let bytes = gzip_bomb(vec![file("src/lib.rs", LIB)], long_name);
    let error = refused_while_streaming("bomb.tar.gz", &bytes, || gunzip_all(&bytes));
    assert!(
        matches!(error, IntakeError::TooLargeUnpacked { .. }),
        "{error:?}"
    );
}

#[test]
fn a_gzip_bomb_is_a_valid_archive_below_the_limits() {
    // The bombs above are real: with limits large enough, the same construction is accepted.
    let bytes = gzip_bomb(
        vec![file("src/lib.rs", LIB)],
        zeros("target/blob", 2 * MIB as u64),
    );
    let roomy = Limits {
        max_unpacked_bytes: 3 * MIB as u64,
        ..Limits::default()
    };
    let submission = from_bytes("ok.tar.gz", &bytes, &roomy).unwrap();
    assert_eq!(submission.files()["src/lib.rs"], "pub mod executor;\n");
    let error = from_bytes("ok.tar.gz", &bytes, &limits()).map(|_| ());
    assert!(error.is_ok(), "{error:?}");
}

fn inflate_bomb(bytes: &[u8]) {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut raw = archive.by_index_raw(1).unwrap();
    let mut compressed = Vec::new();
    raw.read_to_end(&mut compressed).unwrap();
    let read = io::copy(
        &mut flate2::read::DeflateDecoder::new(compressed.as_slice()),
        &mut io::sink(),
    )
    .unwrap();
    assert_eq!(read, BOMB);
}

#[test]
fn zip_bomb_with_honest_size_is_refused_without_decompressing() {
    let bytes = zip_bomb(BOMB, BOMB as u32);
    let error = refused_while_streaming("bomb.zip", &bytes, || inflate_bomb(&bytes));
    assert!(
        matches!(&error, IntakeError::FileTooLarge { path, .. } if path == "src/bomb.rs"),
        "{error:?}"
    );
}

#[test]
fn zip_bomb_with_a_lying_declared_size_is_stopped_while_decompressing() {
    for declared in [100, 256 * KIB as u32] {
        let bytes = zip_bomb(BOMB, declared);
        let error = refused_while_streaming("bomb.zip", &bytes, || inflate_bomb(&bytes));
        assert!(
            matches!(
                error,
                IntakeError::FileTooLarge { .. } | IntakeError::Corrupt { .. }
            ),
            "{declared}: {error:?}"
        );
    }
}

#[test]
fn a_zip_bomb_is_a_valid_archive_below_the_limits() {
    let bytes = zip_bomb(MIB as u64, MIB as u32);
    let roomy = Limits {
        max_file_bytes: 2 * MIB as u64,
        ..Limits::default()
    };
    let submission = from_bytes("ok.zip", &bytes, &roomy).unwrap();
    assert_eq!(submission.files()["src/bomb.rs"].len(), MIB);
}

#[test]
fn upload_over_1_mib_packed_is_refused_before_reading() {
    let bytes = tar_gz(vec![
        file("src/lib.rs", LIB),
        file("README.md", &noise(3 * MIB / 2)),
    ]);
    assert!(bytes.len() > MIB);
    let error = refused("sub.tar.gz", &bytes);
    assert!(
        matches!(error, IntakeError::TooLargePacked { limit } if limit == MIB as u64),
        "{error:?}"
    );
    assert!(error.to_string().contains("1 MiB"));
}

#[test]
fn twenty_thousand_empty_entries_are_refused() {
    let items = |count: usize| (0..count).map(|i| file(format!("e{i}"), b"")).collect();
    let bytes = tar_gz(items(20_000));
    let started = Instant::now();
    let error = refused("many.tar.gz", &bytes);
    assert_quick(started);
    // 20,000 headers are 10 MB of tar stream, so the unpacked budget may trip first...
    assert!(
        matches!(
            error,
            IntakeError::TooManyEntries { .. } | IntakeError::TooLargeUnpacked { .. }
        ),
        "{error:?}"
    );
    // ...with a larger budget, the entry cap does.
    let roomy = Limits {
        max_unpacked_bytes: 1 << 30,
        ..Limits::default()
    };
    let error = from_bytes("many.tar.gz", &bytes, &roomy).unwrap_err();
    assert!(
        matches!(error, IntakeError::TooManyEntries { limit: MAX_ENTRIES }),
        "{error:?}"
    );
}

#[test]
fn twenty_thousand_empty_zip_entries_are_refused() {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..20_000 {
        zip.start_file(format!("e{i}"), SimpleFileOptions::default())
            .unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    assert!(matches!(
        refused("many.zip", &bytes),
        IntakeError::TooLargePacked { .. } | IntakeError::TooManyEntries { .. }
    ));
    let roomy = Limits {
        max_packed_bytes: 1 << 30,
        ..Limits::default()
    };
    let error = from_bytes("many.zip", &bytes, &roomy).unwrap_err();
    assert!(
        matches!(error, IntakeError::TooManyEntries { .. }),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Not an archive, or the wrong one

#[test]
fn a_zip_that_is_actually_gzip_is_refused_and_vice_versa() {
    let tgz = tar_gz(vec![file("src/lib.rs", LIB)]);
    let error = refused("sub.zip", &tgz);
    assert!(
        matches!(error, IntakeError::NotAnArchive { format: "zip", .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("not what its name says"));
    let zip = zip_of(&[("src/lib.rs", LIB)]);
    let error = refused("sub.tar.gz", &zip);
    assert!(
        matches!(error, IntakeError::NotAnArchive { format: "gzip", .. }),
        "{error:?}"
    );
}

#[test]
fn garbage_bytes_are_refused() {
    let garbage = noise(4096);
    for name in ["sub.zip", "sub.tgz", "sub.tar.gz"] {
        let error = refused(name, &garbage);
        assert!(
            matches!(error, IntakeError::NotAnArchive { .. }),
            "{name}: {error:?}"
        );
    }
}

#[test]
fn corrupt_data_behind_a_valid_magic_is_refused() {
    let mut gzip_garbage = vec![0x1f, 0x8b];
    gzip_garbage.extend(noise(4096));
    assert!(matches!(
        refused("sub.tar.gz", &gzip_garbage),
        IntakeError::Corrupt { .. }
    ));

    let mut zip_garbage = b"PK\x03\x04".to_vec();
    zip_garbage.extend(noise(4096));
    assert!(matches!(
        refused("sub.zip", &zip_garbage),
        IntakeError::Corrupt { .. }
    ));

    // A gzip stream of something that is not a tar.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(&noise(4096)).unwrap();
    let not_tar = encoder.finish().unwrap();
    assert!(matches!(
        refused("sub.tgz", &not_tar),
        IntakeError::Corrupt { .. }
    ));
}

#[test]
fn truncated_archives_are_refused() {
    let content = noise(64 * KIB);
    let tgz = tar_gz(vec![file("src/lib.rs", LIB), file("src/data.rs", &content)]);
    let error = refused("sub.tar.gz", &tgz[..tgz.len() / 2]);
    assert!(matches!(error, IntakeError::Corrupt { .. }), "{error:?}");
    let zip = zip_of(&[("src/lib.rs", LIB), ("src/data.rs", &content)]);
    let error = refused("sub.zip", &zip[..zip.len() - 30]);
    assert!(matches!(error, IntakeError::Corrupt { .. }), "{error:?}");
}

#[test]
fn unsupported_extensions_are_refused() {
    let tgz = tar_gz(vec![file("src/lib.rs", LIB)]);
    for name in ["sub.tar", "sub.rar", "sub.7z", "lib.rs", "sub"] {
        let error = refused(name, &tgz);
        assert!(
            matches!(&error, IntakeError::UnsupportedFormat { name: n } if n == name),
            "{error:?}"
        );
    }
}

#[test]
fn empty_archives_are_refused() {
    let error = refused("empty.tar.gz", &tar_gz(Vec::new()));
    assert!(matches!(error, IntakeError::Empty), "{error:?}");
    let error = refused("empty.zip", &zip_of(&[]));
    assert!(matches!(error, IntakeError::Empty), "{error:?}");
    // Only the root folder is as good as empty.
    let error = refused("root.tar.gz", &tar_gz(vec![dir("./")]));
    assert!(matches!(error, IntakeError::Empty), "{error:?}");
}

#[test]
fn a_crate_without_src_lib_rs_is_refused() {
    for bytes in [
        tar_gz(vec![
            file("src/main.rs", b"fn main() {}"),
            file("Cargo.toml", b""),
        ]),
        tar_gz(vec![file("lib.rs", LIB)]),
        // Two levels of wrapping: only one is stripped.
        tar_gz(vec![file("a/b/src/lib.rs", LIB)]),
    ] {
        let error = refused("sub.tar.gz", &bytes);
        assert!(matches!(error, IntakeError::MissingLibRs), "{error:?}");
    }
}

#[test]
fn a_crate_whose_files_are_all_empty_is_nothing_to_grade() {
    let bytes = tar_gz(vec![
        file("src/lib.rs", b""),
        file("src/executor.rs", b"\n  \n"),
        file("README.md", b"# my runtime"),
    ]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(matches!(error, IntakeError::NothingToGrade), "{error:?}");
    assert!(error.to_string().starts_with("nothing to grade"), "{error}");
    let error = refused("sub.zip", &zip_of(&[("src/lib.rs", b"")]));
    assert!(matches!(error, IntakeError::NothingToGrade), "{error:?}");
    // One file with code is enough.
    accepted(
        "sub.tar.gz",
        &tar_gz(vec![
            file("src/lib.rs", b""),
            file("src/a.rs", b"fn f() {}"),
        ]),
    );
}

#[test]
fn non_utf8_content_of_a_kept_file_is_refused_but_not_of_an_ignored_one() {
    let bytes = tar_gz(vec![
        file("src/lib.rs", LIB),
        file("src/bad.rs", b"fn \xff() {}"),
    ]);
    let error = refused("sub.tar.gz", &bytes);
    assert!(
        matches!(&error, IntakeError::NonUtf8Content { path } if path == "src/bad.rs"),
        "{error:?}"
    );
    let bytes = tar_gz(vec![
        file("src/lib.rs", LIB),
        file("logo.png", b"\x89PNG\xff"),
    ]);
    accepted("sub.tar.gz", &bytes);
}

// ---------------------------------------------------------------------------------------------
// Accepted uploads

fn full_crate(prefix: &str) -> Vec<(String, Vec<u8>)> {
    [
        (
            "Cargo.toml",
            b"[package]\nname = \"evil\"\nbuild = \"build.rs\"\n".as_slice(),
        ),
        ("Cargo.lock", b"# lock"),
        ("build.rs", b"fn main() { std::process::exit(1) }"),
        (".cargo/config.toml", b"[build]\nrustflags = []"),
        ("rust-toolchain.toml", b"[toolchain]\npath = \"/evil\""),
        ("README.md", b"# my runtime"),
        ("target/debug/runtime", b"\x7fELF"),
        ("target/debug/deps/libruntime.rlib", b"!<arch>"),
        (".git/HEAD", b"ref: refs/heads/main"),
        (".git/objects/ab/cdef", b"\x78\x9c"),
        ("src/lib.rs", LIB),
        ("src/executor.rs", b"pub fn run() {}"),
        ("src/notes.txt", b"todo"),
        ("src/.hidden.rs", b"fn hidden() {}"),
        ("src/bin/runtime_demo.rs", b"fn main() {}"),
        ("tests/mine.rs", b"#[test] fn t() {}"),
        ("tests/common/mod.rs", b"pub fn helper() {}"),
        ("examples/demo.rs", b"fn main() {}"),
    ]
    .into_iter()
    .map(|(path, data)| (format!("{prefix}{path}"), data.to_vec()))
    .collect()
}

fn assert_full_crate(submission: &Submission) {
    let kept: Vec<&str> = submission.files().keys().map(String::as_str).collect();
    assert_eq!(
        kept,
        [
            "src/bin/runtime_demo.rs",
            "src/executor.rs",
            "src/lib.rs",
            "tests/mine.rs"
        ]
    );
    assert_eq!(submission.files()["src/lib.rs"], "pub mod executor;\n");
    let ignored: Vec<(&str, &str)> = submission
        .ignored()
        .iter()
        .map(|ignored| (ignored.path.as_str(), ignored.reason.as_str()))
        .collect();
    let paths: Vec<&str> = ignored.iter().map(|(path, _)| *path).collect();
    assert_eq!(
        paths,
        [
            ".cargo/",
            ".git/",
            "Cargo.lock",
            "Cargo.toml",
            "README.md",
            "build.rs",
            "examples/",
            "rust-toolchain.toml",
            "src/.hidden.rs",
            "src/notes.txt",
            "target/",
            "tests/common/mod.rs",
        ]
    );
    let reason = |path: &str| ignored.iter().find(|(p, _)| *p == path).unwrap().1;
    assert_eq!(reason("Cargo.toml"), "the grader uses its own Cargo.toml");
    assert!(reason("build.rs").contains("never run"));
    assert!(reason(".cargo/").contains("cargo configuration"));
    assert!(reason("rust-toolchain.toml").contains("toolchain"));
    assert!(reason("target/").contains("builds your code itself"));
}

fn tar_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    tar_gz(
        entries
            .iter()
            .map(|(path, data)| file(path, data))
            .collect(),
    )
}

fn zip_of_owned(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(path, data)| (path.as_str(), data.as_slice()))
        .collect();
    zip_of(&borrowed)
}

#[test]
fn extras_are_ignored_and_listed_once_per_folder() {
    assert_full_crate(&accepted("sub.tar.gz", &tar_of(&full_crate(""))));
    assert_full_crate(&accepted("sub.zip", &zip_of_owned(&full_crate(""))));
}

#[test]
fn a_wrapping_folder_is_stripped() {
    let mut entries = full_crate("02_runtime/");
    entries.push(("__MACOSX/02_runtime/._lib.rs".into(), b"\0\x05".to_vec()));
    entries.push((".DS_Store".into(), b"\0".to_vec()));
    let mut items = vec![dir("02_runtime/"), dir("02_runtime/src/")];
    items.extend(entries.iter().map(|(path, data)| file(path, data)));
    let submission = accepted("02_runtime.tgz", &tar_gz(items));
    assert_full_crate_with_extras(&submission);
    let submission = accepted("02_runtime.zip", &zip_of_owned(&entries));
    assert_full_crate_with_extras(&submission);
}

fn assert_full_crate_with_extras(submission: &Submission) {
    assert!(submission.files().contains_key("src/lib.rs"));
    assert_eq!(submission.files().len(), 4);
    let paths: Vec<&str> = submission
        .ignored()
        .iter()
        .map(|i| i.path.as_str())
        .collect();
    assert!(paths.contains(&"__MACOSX/"), "{paths:?}");
    assert!(paths.contains(&".DS_Store"), "{paths:?}");
    assert!(paths.contains(&"target/"), "{paths:?}");
}

#[test]
fn a_top_level_src_is_never_stripped() {
    let bytes = tar_gz(vec![
        dir("src/"),
        file("src/lib.rs", LIB),
        file("src/src/lib.rs", b"// nested"),
    ]);
    let submission = accepted("sub.tar.gz", &bytes);
    assert_eq!(submission.files()["src/lib.rs"], "pub mod executor;\n");
    assert!(submission.files().contains_key("src/src/lib.rs"));
}

#[test]
fn an_archive_of_src_alone_is_accepted() {
    let bytes = tar_gz(vec![dir("src"), file("src/lib.rs", LIB)]);
    let submission = accepted("src.tar.gz", &bytes);
    assert_eq!(
        submission.files().keys().collect::<Vec<_>>(),
        ["src/lib.rs"]
    );
    assert!(submission.ignored().is_empty());
}

#[test]
fn a_git_archive_with_a_global_pax_header_and_dot_slash_names_is_accepted() {
    let bytes = tar_gz(vec![
        file(
            "pax_global_header",
            b"52 comment=0123456789abcdef0123456789abcdef01234567\n",
        )
        .with_kind(EntryType::XGlobalHeader),
        dir("./"),
        dir("./runtime/"),
        file("./runtime/src/lib.rs", LIB),
    ]);
    let submission = accepted("runtime.tar.gz", &bytes);
    assert_eq!(
        submission.files().keys().collect::<Vec<_>>(),
        ["src/lib.rs"]
    );
}

trait WithKind {
    fn with_kind(self, kind: EntryType) -> Self;
}

impl WithKind for TarItem {
    fn with_kind(mut self, kind: EntryType) -> Self {
        self.kind = kind;
        self
    }
}

#[test]
fn write_to_writes_exactly_the_kept_files_inside_the_crate_dir() {
    let temp = tempfile::tempdir().unwrap();
    let crate_dir = temp.path().join("runtime");
    let submission = accepted("sub.tar.gz", &tar_of(&full_crate("02_runtime/")));
    submission.write_to(&crate_dir).unwrap();
    assert_eq!(
        files_under(temp.path()),
        [
            "runtime/src/bin/runtime_demo.rs",
            "runtime/src/executor.rs",
            "runtime/src/lib.rs",
            "runtime/tests/mine.rs"
        ]
    );
    assert_eq!(
        fs::read_to_string(crate_dir.join("src/executor.rs")).unwrap(),
        "pub fn run() {}"
    );
}

#[test]
fn ignored_entries_serialize_to_json() {
    let submission = accepted("sub.tar.gz", &tar_of(&full_crate("")));
    let json = serde_json::to_value(submission.ignored()).unwrap();
    assert_eq!(json[0]["path"], ".cargo/");
    assert!(json[0]["reason"].is_string());
}

// ---------------------------------------------------------------------------------------------
// Directories and files on disk

fn write(root: &Path, path: &str, data: &[u8]) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// Every entry under `root` with its size and modification time: the "read, never written" check.
fn snapshot(root: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .map(|entry| {
            let meta = entry.path().symlink_metadata().unwrap();
            (
                entry.path().to_owned(),
                meta.len(),
                meta.modified().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_normal_crate_directory_is_accepted_and_left_untouched() {
    let temp = tempfile::tempdir().unwrap();
    for (path, data) in full_crate("") {
        write(temp.path(), &path, &data);
    }
    let before = snapshot(temp.path());
    let submission = from_path(temp.path(), &limits()).unwrap();
    assert_full_crate(&submission);
    assert_eq!(snapshot(temp.path()), before);
}

#[test]
fn a_wrapped_crate_directory_is_stripped() {
    let temp = tempfile::tempdir().unwrap();
    for (path, data) in full_crate("02_runtime/") {
        write(temp.path(), &path, &data);
    }
    assert_full_crate(&from_path(temp.path(), &limits()).unwrap());
}

#[test]
fn a_directory_with_a_symlink_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    write(temp.path(), "src/lib.rs", LIB);
    symlink("/etc/passwd", temp.path().join("src/evil.rs")).unwrap();
    let error = from_path(temp.path(), &limits()).unwrap_err();
    assert!(
        matches!(&error, IntakeError::Symlink { path } if path == "src/evil.rs"),
        "{error:?}"
    );

    let temp = tempfile::tempdir().unwrap();
    write(temp.path(), "src/lib.rs", LIB);
    symlink("/etc", temp.path().join("src/linked_dir")).unwrap();
    let error = from_path(temp.path(), &limits()).unwrap_err();
    assert!(matches!(error, IntakeError::Symlink { .. }), "{error:?}");
}

#[test]
fn a_directory_with_a_fifo_is_refused_without_opening_it() {
    let temp = tempfile::tempdir().unwrap();
    write(temp.path(), "src/lib.rs", LIB);
    nix::unistd::mkfifo(
        &temp.path().join("src/pipe.rs"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    let error = from_path(temp.path(), &limits()).unwrap_err();
    assert!(
        matches!(&error, IntakeError::SpecialFile { path } if path == "src/pipe.rs"),
        "{error:?}"
    );
}

#[test]
fn a_directory_with_a_hard_linked_source_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    write(temp.path(), "src/lib.rs", LIB);
    write(temp.path(), "secret", b"exam answers");
    fs::hard_link(temp.path().join("secret"), temp.path().join("src/leak.rs")).unwrap();
    let error = from_path(temp.path(), &limits()).unwrap_err();
    assert!(matches!(error, IntakeError::HardLink { .. }), "{error:?}");
}

#[test]
fn target_and_hidden_folders_of_a_directory_are_not_entered() {
    let temp = tempfile::tempdir().unwrap();
    write(temp.path(), "src/lib.rs", LIB);
    // Each of these would be refused if it were looked at: a fifo, a symlink, too many entries.
    fs::create_dir_all(temp.path().join("target/debug")).unwrap();
    nix::unistd::mkfifo(
        &temp.path().join("target/debug/pipe"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    fs::create_dir_all(temp.path().join(".git")).unwrap();
    symlink("/", temp.path().join(".git/root")).unwrap();
    for i in 0..MAX_ENTRIES + 10 {
        fs::write(temp.path().join(format!("target/f{i}")), b"").unwrap();
    }
    let submission = from_path(temp.path(), &limits()).unwrap();
    assert_eq!(
        submission.files().keys().collect::<Vec<_>>(),
        ["src/lib.rs"]
    );
    let paths: Vec<&str> = submission
        .ignored()
        .iter()
        .map(|i| i.path.as_str())
        .collect();
    assert_eq!(paths, [".git/", "target/"]);
}

#[test]
fn a_module_folder_named_target_inside_src_is_kept() {
    let temp = tempfile::tempdir().unwrap();
    write(temp.path(), "src/lib.rs", b"mod target;");
    write(temp.path(), "src/target/mod.rs", b"");
    let submission = from_path(temp.path(), &limits()).unwrap();
    assert!(submission.files().contains_key("src/target/mod.rs"));
}

#[test]
fn directory_limits_apply_to_kept_files() {
    let temp = tempfile::tempdir().unwrap();
    write(temp.path(), "src/lib.rs", LIB);
    write(temp.path(), "src/big.rs", &vec![b'a'; 300 * KIB]);
    let error = from_path(temp.path(), &limits()).unwrap_err();
    assert!(
        matches!(error, IntakeError::FileTooLarge { .. }),
        "{error:?}"
    );

    let temp = tempfile::tempdir().unwrap();
    write(temp.path(), "src/lib.rs", LIB);
    for i in 0..100 {
        write(temp.path(), &format!("tests/t{i}.rs"), b"");
    }
    let error = from_path(temp.path(), &limits()).unwrap_err();
    assert!(
        matches!(error, IntakeError::TooManyFiles { .. }),
        "{error:?}"
    );
}

#[test]
fn archive_files_on_disk_are_read_by_extension() {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("02_runtime.tar.gz");
    fs::write(&path, tar_of(&full_crate("02_runtime/"))).unwrap();
    assert_full_crate(&from_path(&path, &limits()).unwrap());

    let path = temp.path().join("sub.zip");
    fs::write(&path, zip_of_owned(&full_crate(""))).unwrap();
    assert_full_crate(&from_path(&path, &limits()).unwrap());

    let path = temp.path().join("big.zip");
    fs::write(&path, noise(MIB + 1)).unwrap();
    let error = from_path(&path, &limits()).unwrap_err();
    assert!(
        matches!(error, IntakeError::TooLargePacked { .. }),
        "{error:?}"
    );

    let path = temp.path().join("notes.txt");
    fs::write(&path, b"hello").unwrap();
    let error = from_path(&path, &limits()).unwrap_err();
    assert!(
        matches!(error, IntakeError::UnsupportedFormat { .. }),
        "{error:?}"
    );

    let error = from_path(&temp.path().join("missing.zip"), &limits()).unwrap_err();
    assert!(matches!(error, IntakeError::Io { .. }), "{error:?}");
}
