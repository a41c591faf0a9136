//! Adversarial tests of the static policy (`grader::engine::policy`): one case per rule, the tricky
//! spellings that try to slip past it, and real code that must pass untouched. The policy works on
//! strings in memory only, so there is nothing on disk to check here.

use std::collections::BTreeMap;
use std::path::Path;

use grader::engine::policy::{check, refusal_message, Violation};

fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(path, source)| (path.to_string(), source.to_string()))
        .collect()
}

fn violations(source: &str) -> Vec<Violation> {
    check(&files(&[("src/lib.rs", source)]))
}

/// `source` must be refused with a violation on `line` whose message contains `needle`, and no
/// violation may be a syntax error (the case must be valid Rust, or it would prove nothing).
#[track_caller]
fn assert_refused(source: &str, line: usize, needle: &str) {
    let found = violations(source);
    assert!(
        found.iter().all(|v| !v.is_syntax_error()),
        "not valid Rust: {found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.line == line && v.message.contains(needle)),
        "expected `{needle}` on line {line} for:\n{source}\ngot: {found:#?}"
    );
}

#[track_caller]
fn assert_allowed(source: &str) {
    let found = violations(source);
    assert!(found.is_empty(), "refused:\n{source}\n{found:#?}");
}

// ---------------------------------------------------------------------------------------------
// Banned modules

#[test]
fn each_banned_module_is_refused_in_paths() {
    for module in ["process", "env", "fs", "net", "os", "arch"] {
        let source = format!("fn f() {{\n    let _ = std::{module}::thing;\n}}\n");
        assert_refused(&source, 2, &format!("`std::{module}` is not allowed"));
    }
}

#[test]
fn exit_is_refused_with_a_message_for_students() {
    let source = "pub fn run() {\n    std::process::exit(0);\n}\n";
    let found = violations(source);
    assert_eq!(found.len(), 1, "{found:#?}");
    let violation = &found[0];
    assert_eq!((violation.line, violation.column), (2, 5));
    assert!(!violation.is_syntax_error());
    assert_eq!(
        violation.to_string(),
        "src/lib.rs:2:5: `std::process` is not allowed in this exercise: the grader runs your \
         code in a sandbox and judges it by how it finishes, so it may not exit or start processes"
    );
}

#[test]
fn core_and_alloc_equivalents_are_refused() {
    assert_refused(
        "fn f() { let _ = core::arch::x86_64::_rdtsc; }",
        1,
        "`core::arch`",
    );
    assert_refused("use core::os;", 1, "`core::os`");
    assert_refused(
        "extern crate alloc; fn f() { alloc::fs::x(); }",
        1,
        "`alloc::fs`",
    );
}

#[test]
fn leading_colons_and_raw_identifiers_are_refused() {
    assert_refused(
        "fn f() {\n    ::std::process::abort();\n}",
        2,
        "`std::process`",
    );
    assert_refused("fn f() { r#std::r#process::exit(0); }", 1, "`std::process`");
    assert_refused("use ::std::env::args;", 1, "`std::env`");
}

#[test]
fn banned_modules_in_types_patterns_and_qualified_paths_are_refused() {
    assert_refused("struct S(std::process::Child);", 1, "`std::process`");
    assert_refused("fn f(_: impl std::os::fd::AsRawFd) {}", 1, "`std::os`");
    assert_refused(
        "fn f() { let _ = <std::fs::File as std::io::Read>::read; }",
        1,
        "`std::fs`",
    );
    assert_refused("type T = Vec<std::net::TcpStream>;", 1, "`std::net`");
}

#[test]
fn use_trees_are_followed() {
    assert_refused("use std::{io, process::exit};", 1, "`std::process`");
    assert_refused("use std::{\n    io,\n    env,\n};", 1, "`std::env`");
    assert_refused("use std::{fs::{self, File}};", 1, "`std::fs`");
    assert_refused("use std::net as n;", 1, "`std::net`");
    assert_refused("use {std::os::unix};", 1, "`std::os`");
}

#[test]
fn renames_of_std_are_followed() {
    assert_refused(
        "use std as s;\nfn f() {\n    s::process::exit(0);\n}",
        3,
        "`s::process` (`s` stands for `std`)",
    );
    assert_refused(
        "use std::{self as x};\nfn f() {\n    let _ = x::fs::read(\"/etc/passwd\");\n}",
        3,
        "`x::fs`",
    );
    assert_refused(
        "use core as c;\nuse c as d;\nfn f() { d::arch::x86_64::_rdtsc(); }",
        3,
        "`d::arch`",
    );
    // Inside a function, and used from a nested module through `super`.
    assert_refused(
        "fn f() {\n    use ::core as k;\n    k::env::var(\"X\");\n}",
        3,
        "`k::env`",
    );
}

#[test]
fn extern_crate_renames_are_refused_and_followed() {
    let source = "extern crate std as y;\nfn f() { y::process::exit(0); }";
    assert_refused(source, 1, "`extern crate` is not allowed");
    assert_refused(source, 2, "`y::process`");
}

#[test]
fn renames_are_followed_across_files() {
    let found = check(&files(&[
        ("src/lib.rs", "pub mod executor;\npub use std as s;\n"),
        (
            "src/executor.rs",
            "use crate::s as t;\npub fn run() {\n    crate::s::process::exit(0);\n    t::env::args();\n}\n",
        ),
    ]));
    let places: Vec<(&str, usize)> = found.iter().map(|v| (v.file.as_str(), v.line)).collect();
    assert_eq!(
        places,
        [("src/executor.rs", 3), ("src/executor.rs", 4)],
        "{found:#?}"
    );
}

#[test]
fn glob_imports_from_std_roots_and_banned_modules_are_refused() {
    assert_refused("use std::*;", 1, "`use std::*` is not allowed");
    assert_refused("use core::*;", 1, "`use core::*`");
    assert_refused("use ::alloc::*;", 1, "`use alloc::*`");
    assert_refused("use std::{*};", 1, "`use std::*`");
    assert_refused("use std::process::*;", 1, "`std::process`");
    assert_refused("use std::os::unix::*;", 1, "`std::os`");
    assert_refused("use std as s;\nuse s::*;", 2, "`use s::*`");
}

// ---------------------------------------------------------------------------------------------
// Macros

#[test]
fn banned_paths_inside_macro_invocations_are_refused() {
    assert_refused(
        "fn f() {\n    println!(\"{}\", std::process::id());\n}",
        2,
        "`std::process`",
    );
    assert_refused(
        "fn f() -> Vec<String> {\n    vec![std::env::args().collect()]\n}",
        2,
        "`std::env`",
    );
    assert_refused(
        "use std as s;\nfn f() { assert!(s::fs::metadata(\"x\").is_ok()); }",
        2,
        "`s::fs`",
    );
}

#[test]
fn banned_paths_in_macro_rules_bodies_are_refused() {
    let source = "macro_rules! bye {\n    () => {\n        std::process::exit(0)\n    };\n}\n";
    assert_refused(source, 3, "`std::process`");
    assert_refused(
        "macro_rules! m { () => { use std::{process}; } }",
        1,
        "`std::process`",
    );
}

#[test]
fn paths_built_from_macro_arguments_are_refused() {
    assert_refused(
        "macro_rules! p {\n    ($m:ident) => { std::$m::exit(0) };\n}\nfn f() { p!(process) }",
        2,
        "paths built from macro arguments",
    );
    assert_refused(
        "macro_rules! p {\n    ($r:ident) => { $r::process::exit(0) };\n}\nfn f() { p!(std) }",
        2,
        "paths built from macro arguments",
    );
    // `$crate::` is how macros name their own crate: fine.
    assert_allowed("#[macro_export]\nmacro_rules! m { () => { $crate::f() }; }\npub fn f() {}");
}

#[test]
fn renaming_std_inside_a_macro_is_refused() {
    assert_refused(
        "macro_rules! m { () => { use std as s; } }",
        1,
        "renaming `std` inside a macro",
    );
    assert_refused(
        "macro_rules! m { () => { use std::{self as s}; } }",
        1,
        "renaming `std` inside a macro",
    );
}

#[test]
fn include_and_env_macros_are_refused() {
    for (call, name) in [
        ("include!(\"other.rs\")", "include!"),
        ("include_str!(\"/etc/passwd\")", "include_str!"),
        (
            "include_bytes!(\"../../hidden-tests/src/lib.rs\")",
            "include_bytes!",
        ),
        ("env!(\"HOME\")", "env!"),
        ("option_env!(\"HOME\")", "option_env!"),
        ("std::include!(\"x.rs\")", "include!"),
        ("core::include_str!(\"x\")", "include_str!"),
        ("::core::env!(\"X\")", "env!"),
    ] {
        let source = format!("fn f() {{\n    let _ = {call};\n}}\n");
        assert_refused(&source, 2, &format!("`{name}` is not allowed"));
    }
}

#[test]
fn include_macros_nested_in_other_macros_and_attributes_are_refused() {
    assert_refused(
        "fn f() { println!(\"{}\", include_str!(\"/etc/passwd\")); }",
        1,
        "`include_str!`",
    );
    assert_refused(
        "#[doc = include_str!(\"../../secret.txt\")]\npub struct S;",
        1,
        "`include_str!`",
    );
    assert_refused(
        "macro_rules! m { () => { include!(\"x.rs\") } }",
        1,
        "`include!`",
    );
}

#[test]
fn importing_a_banned_macro_under_another_name_is_refused() {
    assert_refused("use std::include_str as read;", 1, "`include_str!`");
    assert_refused("use core::{option_env as oe};", 1, "`option_env!`");
}

#[test]
fn assembly_macros_are_refused_however_named() {
    for (call, name) in [
        ("asm!(\"nop\")", "asm!"),
        ("std::arch::asm!(\"nop\")", "asm!"),
        ("core::arch::asm!(\"nop\")", "asm!"),
        ("naked_asm!(\"ret\")", "naked_asm!"),
    ] {
        let source = format!("fn f() {{\n    {call};\n}}\n");
        assert_refused(&source, 2, &format!("`{name}` is not allowed"));
    }
    assert_refused("core::arch::global_asm!(\"nop\");", 1, "`global_asm!`");
    assert_refused("global_asm!(\".globl main\");", 1, "`global_asm!`");
    assert_refused("use std::arch::asm;", 1, "`std::arch`");
}

#[test]
fn a_variable_named_like_a_macro_is_fine() {
    assert_allowed(
        "pub fn f(env: u8, include: u8) -> bool {\n    env != include && !(env == 1)\n}",
    );
}

// ---------------------------------------------------------------------------------------------
// Attributes

#[test]
fn path_attributes_are_refused() {
    assert_refused(
        "#[path = \"../../hidden-tests/src/lib.rs\"]\nmod stolen;",
        1,
        "`#[path]` is not allowed",
    );
    assert_refused("mod a {\n    #![path = \"x\"]\n}", 2, "`#[path]`");
}

#[test]
fn linkage_attributes_are_refused() {
    for (attribute, name) in [
        ("#[no_mangle]", "no_mangle"),
        ("#[export_name = \"main\"]", "export_name"),
        ("#[link(name = \"c\")]", "link"),
        ("#[link_name = \"exit\"]", "link_name"),
        ("#[link_section = \".init_array\"]", "link_section"),
        ("#[used]", "used"),
        ("#[global_allocator]", "global_allocator"),
        ("#[naked]", "naked"),
    ] {
        let source = format!("pub static X: u8 = 0;\n{attribute}\npub fn f() {{}}\n");
        assert_refused(&source, 2, &format!("`#[{name}]` is not allowed"));
    }
}

#[test]
fn unsafe_attributes_are_refused() {
    assert_refused(
        "#[unsafe(no_mangle)]\npub extern \"C\" fn exit() {}",
        1,
        "`#[unsafe(...)]` is not allowed",
    );
    // The case `forbid(unsafe_code)` lets through on this toolchain.
    let naked =
        "#[unsafe(naked)]\npub extern \"C\" fn f() {\n    core::arch::naked_asm!(\"ret\")\n}";
    assert_refused(naked, 1, "`#[unsafe(...)]`");
    assert_refused(naked, 3, "`naked_asm!`");
    assert_refused(
        "#[unsafe(link_section = \".init_array\")]\nstatic INIT: fn() = f;\nfn f() {}",
        1,
        "`#[unsafe(...)]`",
    );
}

#[test]
fn attributes_hidden_in_cfg_attr_are_refused() {
    assert_refused(
        "#[cfg_attr(all(), no_mangle)]\npub fn f() {}",
        1,
        "`#[no_mangle]`",
    );
    assert_refused(
        "#[cfg_attr(not(test), path = \"x.rs\")]\nmod m;",
        1,
        "`#[path]`",
    );
    assert_refused(
        "#[cfg_attr(any(), allow(dead_code), cfg_attr(all(), export_name = \"x\"))]\npub fn f() {}",
        1,
        "`#[export_name]`",
    );
    assert_refused(
        "#[cfg_attr(all(), unsafe(no_mangle))]\npub fn f() {}",
        1,
        "not allowed",
    );
}

#[test]
fn attributes_in_macro_bodies_are_refused() {
    assert_refused(
        "macro_rules! m { () => { #[no_mangle] pub fn f() {} } }",
        1,
        "`#[no_mangle]`",
    );
    // `#[$attr]` with the name passed in: the name is refused where it is written.
    assert_refused(
        "macro_rules! m { ($a:meta) => { #[$a] pub fn f() {} } }\nm!(no_mangle);",
        2,
        "`no_mangle`",
    );
    assert_refused(
        "macro_rules! m { () => { #[path = \"x.rs\"] mod x; } }",
        1,
        "`#[path]`",
    );
}

#[test]
fn crate_attributes_are_refused() {
    for (attribute, name) in [
        ("#![feature(naked_functions)]", "feature"),
        ("#![no_std]", "no_std"),
        ("#![no_main]", "no_main"),
        ("#![no_core]", "no_core"),
    ] {
        let source = format!("//! My crate.\n{attribute}\npub mod executor;\n");
        assert_refused(&source, 2, &format!("`#[{name}]` is not allowed"));
    }
}

// ---------------------------------------------------------------------------------------------
// extern and unsafe

#[test]
fn extern_blocks_and_crates_are_refused() {
    assert_refused(
        "extern \"C\" {\n    fn exit(code: i32) -> !;\n}",
        1,
        "`extern` blocks are not allowed",
    );
    assert_refused(
        "unsafe extern \"C\" {\n    safe fn abs(x: i32) -> i32;\n}",
        1,
        "`extern` blocks",
    );
    assert_refused("extern {}", 1, "`extern` blocks");
    assert_refused("extern crate core;", 1, "`extern crate` is not allowed");
    assert_refused(
        "macro_rules! m { () => { extern \"C\" { fn exit(c: i32); } } }",
        1,
        "`extern` is not allowed",
    );
}

#[test]
fn unsafe_code_is_refused_in_every_form() {
    assert_refused("fn f() {\n    unsafe {}\n}", 2, "an `unsafe` block");
    assert_refused("pub unsafe fn f() {}", 1, "an `unsafe fn`");
    assert_refused(
        "struct S;\nunsafe impl Send for S {}",
        2,
        "an `unsafe impl`",
    );
    assert_refused("unsafe trait T {}", 1, "an `unsafe trait`");
    assert_refused("trait T {\n    unsafe fn f();\n}", 2, "an `unsafe fn`");
    assert_refused(
        "macro_rules! m { () => { unsafe { core::hint::unreachable_unchecked() } } }",
        1,
        "`unsafe` is not allowed",
    );
}

// ---------------------------------------------------------------------------------------------
// Files that do not parse, or are built to crash the parser

#[test]
fn a_syntax_error_is_reported_as_such_with_its_line() {
    let found = check(&files(&[
        ("src/lib.rs", "pub mod executor;\n"),
        ("src/executor.rs", "pub fn f() {\n    let x = ;\n}\n"),
    ]));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].file, "src/executor.rs");
    assert_eq!(found[0].line, 2);
    assert!(found[0].is_syntax_error());
    assert!(
        found[0]
            .message
            .contains("not valid Rust syntax (expected an expression)"),
        "{}",
        found[0]
    );
}

#[test]
fn an_unbalanced_file_is_a_syntax_error() {
    let found = violations("fn f() {\n\n    (\n}\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].is_syntax_error());
}

#[test]
fn a_syntax_error_in_one_file_does_not_hide_violations_in_another() {
    let found = check(&files(&[
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        ("src/a.rs", "fn f( {"),
        ("src/b.rs", "fn g() { std::process::exit(0) }"),
    ]));
    assert!(found
        .iter()
        .any(|v| v.file == "src/a.rs" && v.is_syntax_error()));
    assert!(found
        .iter()
        .any(|v| v.file == "src/b.rs" && !v.is_syntax_error()));
}

#[test]
fn the_refusal_explains_a_syntax_error_as_one() {
    let syntax = violations("fn f( {");
    let message = refusal_message(&syntax);
    assert!(message.contains("not valid Rust syntax"), "{message}");
    assert!(!message.contains("does not allow"), "{message}");
    let rule = violations("fn f() { std::process::exit(0) }");
    let message = refusal_message(&rule);
    assert!(
        message.contains("1 thing(s) this exercise does not allow"),
        "{message}"
    );
    assert!(!message.contains("syntax"), "{message}");
    let both: Vec<Violation> = syntax.into_iter().chain(rule).collect();
    let message = refusal_message(&both);
    assert!(
        message.contains("not valid Rust syntax") && message.contains("does not allow"),
        "{message}"
    );
}

#[test]
fn deeply_nested_code_is_refused_without_crashing() {
    // 256 KiB files that would overflow the stack of a recursive parser.
    let n = 100_000;
    for source in [
        format!("const X: u8 = {}1{};", "(".repeat(n), ")".repeat(n)),
        format!("const X: bool = {}true;", "!".repeat(2 * n)),
        format!("type T = {}u8{};", "V<".repeat(n), ">".repeat(n)),
        format!("fn f() {{ {}1; }}", "|| ".repeat(n)),
    ] {
        let found = violations(&source);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("nested too deeply"), "{found:#?}");
        assert!(!found[0].is_syntax_error());
    }
}

// ---------------------------------------------------------------------------------------------
// What must pass

#[test]
fn allowed_std_modules_pass() {
    assert_allowed(
        r#"
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::{self, Display};
use std::future::Future;
use std::io::{self, BufRead, Write};
use std::mem;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};
use core::hint;
use futures::executor::block_on;

pub fn run() -> io::Result<()> {
    let line = io::stdin().lock().lines().next();
    writeln!(io::stdout(), "{line:?}")?;
    let handle = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(1)));
    handle.join().unwrap();
    println!("{}", std::mem::size_of::<Waker>());
    eprintln!("{:?}", std::time::Instant::now());
    let _ = hint::black_box(core::cmp::max(1, 2));
    assert_eq!(format!("{}", 1), "1");
    Ok(())
}
"#,
    );
}

#[test]
fn lookalikes_pass() {
    assert_allowed(
        r#"
mod fs {
    pub fn read() {}
}
pub struct Task { process: u8 }
impl Task {
    pub fn process(&self) -> u8 { self.process }
}
pub fn f(task: &Task, os: u8) -> u8 {
    fs::read();
    let env = task.process();
    self::fs::read();
    crate::fs::read();
    println!("{} {}", env, os);
    env + os
}
#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn works() { assert_eq!(f(&Task { process: 1 }, 2), 3); }
}
"#,
    );
}

#[test]
fn ordinary_attributes_pass() {
    assert_allowed(
        r#"
//! Docs.
#![allow(dead_code)]
#![warn(missing_docs)]
/// A thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[must_use]
pub enum Priority { High, #[default] Low }
#[inline]
#[track_caller]
#[cfg(not(test))]
#[cfg_attr(test, allow(unused))]
#[doc = "more docs"]
#[deprecated(note = "use g")]
pub fn f() {}
#[cfg(test)]
#[test]
#[should_panic(expected = "boom")]
fn t() { panic!("boom") }
"#,
    );
}

fn rust_files(dir: &Path, prefix: &str) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "rs"))
        .map(|entry| {
            let relative = entry.path().strip_prefix(dir).unwrap();
            (
                format!("{prefix}{}", relative.display()),
                std::fs::read_to_string(entry.path()).unwrap(),
            )
        })
        .collect()
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn the_reference_solution_passes() {
    // The library modules (src/*.rs); see the report about src/bin/executor_comparison.rs.
    let sources: BTreeMap<String, String> = rust_files(&repo("solutions/reference/src"), "src/")
        .into_iter()
        .filter(|(path, _)| !path.starts_with("src/bin/"))
        .collect();
    assert!(sources.len() >= 4, "{:?}", sources.keys());
    let found = check(&sources);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_exercise_template_and_its_public_tests_pass() {
    let sources = rust_files(&repo("exercise-template/src"), "src/");
    assert!(sources.contains_key("src/executor/tests.rs"));
    assert!(sources.contains_key("src/bin/runtime_demo.rs"));
    let found = check(&sources);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn only_rust_files_are_checked_and_violations_are_sorted() {
    let found = check(&files(&[
        (
            "src/lib.rs",
            "fn a() { std::env::args(); }\nfn b() { std::fs::read(\"x\"); }",
        ),
        ("README.md", "std::process::exit(0)"),
        (
            "src/a.rs",
            "fn c() { std::net::TcpStream::connect(\"x\"); }",
        ),
    ]));
    let places: Vec<(&str, usize)> = found.iter().map(|v| (v.file.as_str(), v.line)).collect();
    assert_eq!(
        places,
        [("src/a.rs", 1), ("src/lib.rs", 1), ("src/lib.rs", 2)]
    );
    let json = serde_json::to_value(&found[0]).unwrap();
    assert_eq!(json["file"], "src/a.rs");
    assert_eq!(json["line"], 1);
}
