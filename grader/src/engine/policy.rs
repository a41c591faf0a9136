//! Static policy: before anything is compiled, the student's sources are parsed (with `syn`) and
//! refused if they reach outside the exercise: `std::process`/`env`/`fs`/`net`/`os`/`arch` (however
//! spelled: `::std`, `core::`, renames, nested `use` trees, inside macros), `include!`-like and
//! `env!`-like macros, `#[path]`, `extern` blocks and crates, linkage attributes, `asm!`, `unsafe`,
//! and crate attributes such as `#![no_std]` or `#![feature]`.
//!
//! Why it matters: with this policy a test process can exit 0 only by finishing its test, which makes
//! the exit status a trustworthy verdict. `forbid(unsafe_code)` alone is not enough: on this
//! toolchain a `#[unsafe(naked)]` function made of `naked_asm!` compiles under it.
//!
//! A file that does not parse yields one [`Violation`] at the parse error
//! ([`Violation::is_syntax_error`]), and refuses the submission like any other: code the policy
//! could not read is never compiled (with a parse error skipped, every rule would be skipped for
//! that file). Code nested too deeply for the parser's stack is refused before parsing.
//! [`refusal_message`] sums a refusal up for the student.

use std::collections::BTreeMap;
use std::fmt;
use std::thread;

use proc_macro2::{Delimiter, LineColumn, Spacing, Span, TokenStream, TokenTree};
use serde::Serialize;
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Ident, Meta, UseTree};

/// A place in a student's source that the policy refuses, with a message for the student.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Violation {
    /// The file, relative to the crate root (`src/executor.rs`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is not allowed and why.
    pub message: String,
}

/// How the message of a file that does not parse starts.
const SYNTAX_ERROR: &str = "this file is not valid Rust syntax";

impl Violation {
    /// Whether this is a file that did not parse (refused all the same: what the policy cannot read
    /// is never compiled) rather than a rule the code breaks.
    pub fn is_syntax_error(&self) -> bool {
        self.message.starts_with(SYNTAX_ERROR)
    }

    fn at(file: &str, span: Span, message: String) -> Self {
        let LineColumn { line, column } = span.start();
        Self {
            file: file.to_owned(),
            line: line.max(1),
            column: column + 1,
            message,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// The summary shown with a refusal: a syntax error is explained as such, not as a rule broken.
pub fn refusal_message(violations: &[Violation]) -> String {
    let unreadable = violations.iter().filter(|v| v.is_syntax_error()).count();
    let refused = violations.len() - unreadable;
    match (unreadable, refused) {
        (0, _) => format!(
            "Your code uses {refused} thing(s) this exercise does not allow; nothing was compiled. \
             See the messages below."
        ),
        (_, 0) => format!(
            "{unreadable} file(s) are not valid Rust syntax; nothing was compiled. Fix the syntax \
             error(s) below and try again."
        ),
        _ => format!(
            "{unreadable} file(s) are not valid Rust syntax and your code uses {refused} thing(s) \
             this exercise does not allow; nothing was compiled. See the messages below."
        ),
    }
}

/// Checks every `.rs` file of a submission (paths as in [`crate::engine::archive::Submission::files`]) and
/// returns the violations sorted by file and position; empty means accepted.
///
/// # Panics
///
/// If the checker thread cannot be started (the system is out of threads or memory).
pub fn check(files: &BTreeMap<String, String>) -> Vec<Violation> {
    // A thread of our own: its stack is sized for the deepest nesting `too_deep` lets through, and
    // the span table that `proc-macro2` keeps per thread (it grows with every file parsed) is freed
    // when it ends.
    thread::scope(|scope| {
        thread::Builder::new()
            .name("policy".into())
            .stack_size(CHECKER_STACK_BYTES)
            .spawn_scoped(scope, || check_on_this_thread(files))
            .expect("could not start the policy checker thread")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn check_on_this_thread(files: &BTreeMap<String, String>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut parsed = Vec::new();
    for (path, source) in files.iter().filter(|(path, _)| path.ends_with(".rs")) {
        match parse(path, source) {
            Ok(file) => parsed.push((path, file)),
            Err(violation) => violations.push(violation),
        }
    }
    // Renames are collected across all files: `pub use std as s;` in one module can be used as
    // `crate::s::process` in another.
    let mut collector = AliasCollector::default();
    for (_, file) in &parsed {
        collector.visit_file(file);
    }
    let aliases = collector.resolve();
    for (path, file) in &parsed {
        let mut checker = Checker {
            file: path,
            aliases: &aliases,
            violations: Vec::new(),
        };
        checker.visit_file(file);
        violations.append(&mut checker.violations);
    }
    violations.sort();
    violations.dedup();
    violations
}

fn parse(path: &str, source: &str) -> Result<syn::File, Violation> {
    let source = strip_bom_and_shebang(source);
    let tokens: TokenStream = source
        .parse()
        .map_err(|error: proc_macro2::LexError| syntax_error(path, error.span(), &error))?;
    if let Some(span) = too_deep(tokens.clone(), MAX_NESTING) {
        return Err(Violation::at(
            path,
            span,
            "this code is nested too deeply for the grader to check; simplify it".into(),
        ));
    }
    syn::parse2(tokens).map_err(|error| syntax_error(path, error.span(), &error))
}

fn syntax_error(path: &str, span: Span, error: &dyn fmt::Display) -> Violation {
    Violation::at(
        path,
        span,
        format!(
            "{SYNTAX_ERROR} ({error}): the grader reads every file before compiling anything; fix \
             this line (if `cargo build` accepts it, write it more simply)"
        ),
    )
}

/// As `syn::parse_file` does; slicing from the newline keeps line numbers right.
fn strip_bom_and_shebang(source: &str) -> &str {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    match source.strip_prefix("#!") {
        Some(rest) if !rest.trim_start().starts_with('[') => {
            &source[source.find('\n').unwrap_or(source.len())..]
        }
        _ => source,
    }
}

// ---------------------------------------------------------------------------------------------
// Nesting guard

/// Largest nesting cost (see [`too_deep`]) a file may have; real code stays below 30.
const MAX_NESTING: usize = 256;
/// Stack of the checker thread. Parsing and checking code at [`MAX_NESTING`] fits in 16 MiB
/// in a debug build (nested type generics are the hungriest), so this leaves a wide margin; only
/// the pages actually touched are ever committed.
const CHECKER_STACK_BYTES: usize = 128 << 20;

/// `syn` parses recursively, so a 256 KiB file of `((((`, `!!!!` or `V<V<V<` would overflow any
/// stack and abort the whole grader. This bounds the recursion before parsing: every group, operator
/// and keyword that can open a nested expression, type or pattern costs 1, and the cost falls back
/// to the enclosing group's level only where the nesting must have ended (at `;`; at `,` or after a
/// `{}` block, unless a `<` is still open or a `|` was seen since). Returns where the bound is passed. Real code
/// stays far below it (the reference solution peaks around 20).
fn too_deep(tokens: TokenStream, limit: usize) -> Option<Span> {
    struct Level {
        tokens: proc_macro2::token_stream::IntoIter,
        base: usize,
        cost: usize,
        open_angles: usize,
        pipes: usize,
        after_block: bool,
        joint: Option<char>,
    }
    impl Level {
        fn new(tokens: TokenStream, base: usize) -> Self {
            Self {
                tokens: tokens.into_iter(),
                base,
                cost: base,
                open_angles: 0,
                pipes: 0,
                after_block: false,
                joint: None,
            }
        }
        fn reset_if_closed(&mut self) {
            if self.open_angles == 0 && self.pipes == 0 {
                self.cost = self.base;
            }
        }
    }
    const NESTING_KEYWORDS: &[&str] = &[
        "as", "async", "box", "break", "dyn", "else", "if", "impl", "let", "loop", "match", "move",
        "return", "unsafe", "while", "yield",
    ];

    let mut stack = vec![Level::new(tokens, 0)];
    while let Some(level) = stack.last_mut() {
        let Some(token) = level.tokens.next() else {
            stack.pop();
            continue;
        };
        if std::mem::take(&mut level.after_block) {
            // After `{...}`, only `else`, `as` or an operator continue the same expression.
            let continues = match &token {
                TokenTree::Ident(ident) => ident == "else" || ident == "as",
                TokenTree::Punct(punct) => punct.as_char() != '#',
                TokenTree::Group(_) | TokenTree::Literal(_) => true,
            };
            if !continues {
                level.reset_if_closed();
            }
        }
        let joint_before = level.joint.take();
        match &token {
            TokenTree::Group(group) => {
                let base = level.cost + 1;
                if base > limit {
                    return Some(group.span());
                }
                level.after_block = group.delimiter() == Delimiter::Brace;
                stack.push(Level::new(group.stream(), base));
                continue;
            }
            TokenTree::Ident(ident) => {
                if NESTING_KEYWORDS.iter().any(|keyword| ident == keyword) {
                    level.cost += 1;
                }
            }
            TokenTree::Punct(punct) => {
                let char = punct.as_char();
                if punct.spacing() == Spacing::Joint {
                    level.joint = Some(char);
                }
                match char {
                    ';' => {
                        level.open_angles = 0;
                        level.pipes = 0;
                        level.cost = level.base;
                    }
                    ',' => level.reset_if_closed(),
                    ':' | '#' | '$' | '\'' => {}
                    '.' => {
                        if joint_before == Some('.') {
                            level.cost += 1;
                        }
                    }
                    '<' => {
                        level.open_angles += 1;
                        level.cost += 1;
                    }
                    '>' => {
                        if !matches!(joint_before, Some('-' | '=')) {
                            level.open_angles = level.open_angles.saturating_sub(1);
                        }
                        level.cost += 1;
                    }
                    '|' => {
                        level.pipes += 1;
                        level.cost += 1;
                    }
                    _ => level.cost += 1,
                }
            }
            TokenTree::Literal(_) => {}
        }
        if level.cost > limit {
            return Some(token.span());
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// What is refused

const ROOTS: &[&str] = &["std", "core", "alloc"];

/// The modules that reach outside the exercise, with what they would let the code do.
const BANNED_MODULES: &[(&str, &str)] = &[
    ("process", "exit or start processes"),
    ("env", "read the environment or the command line"),
    ("fs", "use the file system"),
    ("net", "use the network"),
    ("os", "use operating-system APIs"),
    ("arch", "run machine-specific instructions"),
];

const BANNED_MACROS: &[(&str, &str)] = &[
    (
        "include",
        "it reads files at compile time; write your code in .rs files under src/",
    ),
    ("include_str", "it reads files at compile time"),
    ("include_bytes", "it reads files at compile time"),
    ("env", "it reads the build environment"),
    ("option_env", "it reads the build environment"),
    ("asm", "inline assembly is not allowed"),
    ("global_asm", "inline assembly is not allowed"),
    ("naked_asm", "inline assembly is not allowed"),
];

const LINKAGE: &str = "it changes how your code is linked into the test programs";

const BANNED_ATTRIBUTES: &[(&str, &str)] = &[
    ("path", "modules must live at their usual place under src/"),
    ("no_mangle", LINKAGE),
    ("export_name", LINKAGE),
    ("link", LINKAGE),
    ("link_name", LINKAGE),
    ("link_section", LINKAGE),
    ("used", LINKAGE),
    (
        "global_allocator",
        "the memory allocator is not yours to replace",
    ),
    ("naked", "naked functions are made of assembly"),
    (
        "unsafe",
        "unsafe attributes are unsafe code, which this exercise does not need",
    ),
    (
        "feature",
        "unstable features are not available: the grader builds with stable Rust",
    ),
    ("no_std", "your crate must use the standard library"),
    ("no_core", "your crate must use the standard library"),
    (
        "no_main",
        "programs must keep the normal `main` entry point",
    ),
    ("debugger_visualizer", "it reads files at compile time"),
];

/// Attribute names refused even as bare identifiers in macro bodies, where `#[$attr]` could hide
/// them; unlike `path` or `used`, no ordinary code uses these words.
const LINKAGE_WORDS: &[&str] = &[
    "no_mangle",
    "export_name",
    "link_section",
    "link_name",
    "global_allocator",
];

const SANDBOX: &str =
    "the grader runs your code in a sandbox and judges it by how it finishes, so \
                       it may not";

fn lookup(table: &[(&str, &'static str)], name: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(_, why)| *why)
}

fn name_of(ident: &Ident) -> String {
    ident.unraw().to_string()
}

// ---------------------------------------------------------------------------------------------
// Aliases of std/core/alloc

/// Collects every `use ... as name` and `extern crate ... as name`, with the path it renames.
#[derive(Default)]
struct AliasCollector {
    renames: Vec<(String, String)>,
}

impl AliasCollector {
    fn use_tree(&mut self, tree: &UseTree, last: Option<String>) {
        match tree {
            UseTree::Path(path) => self.use_tree(&path.tree, Some(name_of(&path.ident))),
            UseTree::Rename(rename) => {
                let renamed = match name_of(&rename.ident) {
                    name if name == "self" => last,
                    name => Some(name),
                };
                if let Some(renamed) = renamed {
                    self.renames.push((renamed, name_of(&rename.rename)));
                }
            }
            UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(tree, last.clone());
                }
            }
            UseTree::Name(_) | UseTree::Glob(_) => {}
        }
    }

    /// Names that stand for a root: a rename of a root, or of such a name, through any chain.
    fn resolve(self) -> BTreeMap<String, &'static str> {
        let mut aliases: BTreeMap<String, &'static str> = BTreeMap::new();
        loop {
            let mut changed = false;
            for (renamed, alias) in &self.renames {
                let root = ROOTS
                    .iter()
                    .find(|root| *root == renamed)
                    .copied()
                    .or_else(|| aliases.get(renamed).copied());
                if let Some(root) = root {
                    if aliases.insert(alias.clone(), root).is_none() {
                        changed = true;
                    }
                }
            }
            if !changed {
                return aliases;
            }
        }
    }
}

impl<'ast> Visit<'ast> for AliasCollector {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&item.tree, None);
    }

    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        if let Some((_, alias)) = &item.rename {
            self.renames.push((name_of(&item.ident), name_of(alias)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checker

struct Checker<'a> {
    file: &'a str,
    aliases: &'a BTreeMap<String, &'static str>,
    violations: Vec<Violation>,
}

impl Checker<'_> {
    fn report(&mut self, span: Span, message: String) {
        self.violations
            .push(Violation::at(self.file, span, message));
    }

    /// `std`, `core`, `alloc`, or a name that was made to stand for one of them.
    fn root_of(&self, name: &str) -> Option<&'static str> {
        ROOTS
            .iter()
            .find(|root| **root == name)
            .copied()
            .or_else(|| self.aliases.get(name).copied())
    }

    /// Reports `root::module` for a banned module; returns whether it did.
    fn check_pair(&mut self, root: &str, module: &str, span: Span) -> bool {
        let (Some(canonical), Some(what)) = (self.root_of(root), lookup(BANNED_MODULES, module))
        else {
            return false;
        };
        let written = if root == canonical {
            format!("`{root}::{module}`")
        } else {
            format!("`{root}::{module}` (`{root}` stands for `{canonical}`)")
        };
        self.report(
            span,
            format!("{written} is not allowed in this exercise: {SANDBOX} {what}"),
        );
        true
    }

    /// A path given as its segments: refused where a root is directly followed by a banned module,
    /// wherever that happens (`::std::process`, `crate::s::fs`).
    fn check_segments(&mut self, segments: &[(String, Span)]) -> bool {
        let mut found = false;
        for pair in segments.windows(2) {
            found |= self.check_pair(&pair[0].0, &pair[1].0, pair[0].1);
        }
        found
    }

    fn check_macro_name(&mut self, name: &str, span: Span) -> bool {
        let Some(why) = lookup(BANNED_MACROS, name) else {
            return false;
        };
        self.report(
            span,
            format!("`{name}!` is not allowed in this exercise: {why}"),
        );
        true
    }

    fn check_use_tree(&mut self, tree: &UseTree, prefix: &mut Vec<(String, Span)>) {
        match tree {
            UseTree::Path(path) => {
                prefix.push((name_of(&path.ident), path.ident.span()));
                self.check_use_tree(&path.tree, prefix);
                prefix.pop();
            }
            UseTree::Name(name) => self.check_use_name(prefix, &name.ident),
            UseTree::Rename(rename) => self.check_use_name(prefix, &rename.ident),
            UseTree::Glob(_) => {
                if self.check_segments(prefix) {
                    return;
                }
                let Some((last, span)) = prefix.last() else {
                    return;
                };
                if let Some(root) = self.root_of(last) {
                    let shown: Vec<&str> = prefix.iter().map(|(name, _)| name.as_str()).collect();
                    let message = format!(
                        "`use {}::*` is not allowed in this exercise: it would bring in \
                         `{root}::process` and other modules that are not allowed; import the \
                         items you need by name",
                        shown.join("::")
                    );
                    self.report(*span, message);
                }
            }
            UseTree::Group(group) => {
                for tree in &group.items {
                    self.check_use_tree(tree, prefix);
                }
            }
        }
    }

    /// The end of a `use` path (`name` or `name as alias`; `self` stands for the prefix).
    fn check_use_name(&mut self, prefix: &[(String, Span)], ident: &Ident) {
        let name = name_of(ident);
        let mut full = prefix.to_vec();
        if name != "self" {
            full.push((name.clone(), ident.span()));
        }
        // `use std::include_str as s;` would let `s!` dodge the check of macro names.
        if !self.check_segments(&full) && full.len() > 1 {
            self.check_macro_name(&name, ident.span());
        }
    }

    fn check_attribute(&mut self, attribute: &Attribute) {
        self.check_meta(&attribute.meta);
    }

    fn check_meta(&mut self, meta: &Meta) {
        let path = meta.path();
        let name = path
            .segments
            .last()
            .map(|segment| name_of(&segment.ident))
            .unwrap_or_default();
        if name == "cfg_attr" {
            // `#[cfg_attr(all(), no_mangle)]`: check every attribute it may apply.
            let nested = meta.require_list().and_then(|list| {
                list.parse_args_with(Punctuated::<Meta, syn::Token![,]>::parse_terminated)
            });
            match nested {
                Ok(nested) => nested.iter().skip(1).for_each(|meta| self.check_meta(meta)),
                Err(_) => {
                    if let Meta::List(list) = meta {
                        self.scan_tokens(list.tokens.clone());
                    }
                }
            }
            return;
        }
        if let Some(why) = lookup(BANNED_ATTRIBUTES, &name) {
            let shown = match name.as_str() {
                "unsafe" => "#[unsafe(...)]".to_owned(),
                _ => format!("#[{name}]"),
            };
            self.report(
                path.segments
                    .last()
                    .map_or_else(Span::call_site, |segment| segment.ident.span()),
                format!("`{shown}` is not allowed in this exercise: {why}"),
            );
            return;
        }
        if let Meta::List(list) = meta {
            self.scan_tokens(list.tokens.clone());
        }
        // Values such as `#[doc = include_str!("...")]`.
        visit::visit_meta(self, meta);
    }

    /// Looks through unparsed tokens (macro bodies, `macro_rules!` arms, attribute arguments,
    /// syntax `syn` keeps verbatim) for what would be refused in parsed code.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let mut pending = vec![tokens];
        while let Some(stream) = pending.pop() {
            let tokens: Vec<TokenTree> = stream.into_iter().collect();
            let mut skip_group = None;
            for (at, token) in tokens.iter().enumerate() {
                match token {
                    TokenTree::Group(group) => {
                        if skip_group != Some(at) {
                            pending.push(group.stream());
                        }
                    }
                    TokenTree::Ident(ident) => self.scan_ident(ident, &tokens[at + 1..]),
                    TokenTree::Punct(punct) => {
                        if let Some(group) = self.scan_punct(punct, &tokens[at + 1..]) {
                            skip_group = Some(at + group);
                        }
                    }
                    TokenTree::Literal(_) => {}
                }
            }
        }
    }

    fn scan_ident(&mut self, ident: &Ident, rest: &[TokenTree]) {
        let name = name_of(ident);
        let span = ident.span();
        if name == "unsafe" || name == "extern" {
            self.report(
                span,
                format!("`{name}` is not allowed in this exercise, also not inside macros"),
            );
            return;
        }
        if LINKAGE_WORDS.contains(&name.as_str()) {
            self.report(
                span,
                format!("`{name}` is not allowed in this exercise: {LINKAGE}"),
            );
            return;
        }
        if let Some(TokenTree::Punct(bang)) = rest.first() {
            let is_not_equal = bang.spacing() == Spacing::Joint
                && matches!(rest.get(1), Some(TokenTree::Punct(next)) if next.as_char() == '=');
            if bang.as_char() == '!' && !is_not_equal && self.check_macro_name(&name, span) {
                return;
            }
        }
        if self.root_of(&name).is_none() {
            return;
        }
        if matches!(rest.first(), Some(TokenTree::Ident(next)) if next == "as") {
            self.report(
                span,
                format!(
                    "renaming `{name}` inside a macro is not allowed in this exercise: the grader \
                     could not follow the new name"
                ),
            );
            return;
        }
        if !starts_with_path_separator(rest) {
            return;
        }
        match rest.get(2) {
            Some(TokenTree::Ident(module)) => {
                self.check_pair(&name, &name_of(module), span);
            }
            Some(TokenTree::Punct(dollar)) if dollar.as_char() == '$' => {
                self.report(span, built_path_message(&format!("{name}::$")));
            }
            Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => {
                // `std::{process, self as s}` in a macro body.
                let items: Vec<TokenTree> = group.stream().into_iter().collect();
                for (at, item) in items.iter().enumerate() {
                    let TokenTree::Ident(item) = item else {
                        continue;
                    };
                    let starts_item = at == 0
                        || matches!(&items[at - 1], TokenTree::Punct(comma) if comma.as_char() == ',');
                    if !starts_item {
                        continue;
                    }
                    if item == "self"
                        && matches!(items.get(at + 1), Some(TokenTree::Ident(next)) if next == "as")
                    {
                        self.report(
                            span,
                            format!(
                                "renaming `{name}` inside a macro is not allowed in this exercise: \
                                 the grader could not follow the new name"
                            ),
                        );
                    } else {
                        self.check_pair(&name, &name_of(item), span);
                    }
                }
            }
            _ => {}
        }
    }

    /// Handles `$var::...` paths and `#[...]` attributes in token streams; returns the offset (from
    /// the token after `punct`) of an attribute group it checked, which need not be scanned again.
    fn scan_punct(&mut self, punct: &proc_macro2::Punct, rest: &[TokenTree]) -> Option<usize> {
        match punct.as_char() {
            '$' => {
                if let Some(TokenTree::Ident(var)) = rest.first() {
                    if var != "crate" && starts_with_path_separator(&rest[1..]) {
                        self.report(punct.span(), built_path_message(&format!("${var}::")));
                    }
                }
                None
            }
            '#' => {
                let offset = match rest.first() {
                    Some(TokenTree::Punct(bang)) if bang.as_char() == '!' => 1,
                    _ => 0,
                };
                let Some(TokenTree::Group(group)) = rest.get(offset) else {
                    return None;
                };
                if group.delimiter() != Delimiter::Bracket {
                    return None;
                }
                match syn::parse2::<Meta>(group.stream()) {
                    Ok(meta) => self.check_meta(&meta),
                    // `#[$attr]` and the like: scan the tokens as they are.
                    Err(_) => return None,
                }
                Some(offset + 1)
            }
            _ => None,
        }
    }
}

fn starts_with_path_separator(tokens: &[TokenTree]) -> bool {
    matches!(
        tokens,
        [TokenTree::Punct(first), TokenTree::Punct(second), ..]
            if first.as_char() == ':' && first.spacing() == Spacing::Joint && second.as_char() == ':'
    )
}

fn built_path_message(shown: &str) -> String {
    format!(
        "paths built from macro arguments (`{shown}...`) are not allowed in this exercise: the \
         grader could not check where they lead"
    )
}

fn unsafe_message(what: &str) -> String {
    format!(
        "{what} is not allowed in this exercise: no unsafe code is needed (the crate is built with \
         `unsafe_code = \"forbid\"`)"
    )
}

impl<'ast> Visit<'ast> for Checker<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<(String, Span)> = path
            .segments
            .iter()
            .map(|segment| (name_of(&segment.ident), segment.ident.span()))
            .collect();
        self.check_segments(&segments);
        visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.check_use_tree(&item.tree, &mut Vec::new());
        for attribute in &item.attrs {
            self.visit_attribute(attribute);
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let last = mac.path.segments.last();
        let banned = last.is_some_and(|segment| {
            self.check_macro_name(&name_of(&segment.ident), segment.ident.span())
        });
        if !banned {
            self.visit_path(&mac.path);
        }
        self.scan_tokens(mac.tokens.clone());
    }

    fn visit_attribute(&mut self, attribute: &'ast Attribute) {
        self.check_attribute(attribute);
    }

    fn visit_item_foreign_mod(&mut self, item: &'ast syn::ItemForeignMod) {
        self.report(
            item.abi.extern_token.span,
            "`extern` blocks are not allowed in this exercise: they declare foreign functions, \
             which only unsafe code could call"
                .into(),
        );
        visit::visit_item_foreign_mod(self, item);
    }

    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        self.report(
            item.extern_token.span,
            "`extern crate` is not allowed in this exercise: the crate's dependencies are fixed; \
             use `use` to import"
                .into(),
        );
        visit::visit_item_extern_crate(self, item);
    }

    fn visit_expr_unsafe(&mut self, expr: &'ast syn::ExprUnsafe) {
        self.report(expr.unsafe_token.span, unsafe_message("an `unsafe` block"));
        visit::visit_expr_unsafe(self, expr);
    }

    fn visit_signature(&mut self, signature: &'ast syn::Signature) {
        if let Some(token) = &signature.unsafety {
            self.report(token.span, unsafe_message("an `unsafe fn`"));
        }
        visit::visit_signature(self, signature);
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if let Some(token) = &item.unsafety {
            self.report(token.span, unsafe_message("an `unsafe impl`"));
        }
        visit::visit_item_impl(self, item);
    }

    fn visit_item_trait(&mut self, item: &'ast syn::ItemTrait) {
        if let Some(token) = &item.unsafety {
            self.report(token.span, unsafe_message("an `unsafe trait`"));
        }
        visit::visit_item_trait(self, item);
    }

    // Syntax `syn` does not model is kept as raw tokens: scan those.

    fn visit_item(&mut self, item: &'ast syn::Item) {
        if let syn::Item::Verbatim(tokens) = item {
            self.scan_tokens(tokens.clone());
        }
        visit::visit_item(self, item);
    }

    fn visit_foreign_item(&mut self, item: &'ast syn::ForeignItem) {
        if let syn::ForeignItem::Verbatim(tokens) = item {
            self.scan_tokens(tokens.clone());
        }
        visit::visit_foreign_item(self, item);
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if let syn::ImplItem::Verbatim(tokens) = item {
            self.scan_tokens(tokens.clone());
        }
        visit::visit_impl_item(self, item);
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        if let syn::TraitItem::Verbatim(tokens) = item {
            self.scan_tokens(tokens.clone());
        }
        visit::visit_trait_item(self, item);
    }

    fn visit_expr(&mut self, expr: &'ast syn::Expr) {
        if let syn::Expr::Verbatim(tokens) = expr {
            self.scan_tokens(tokens.clone());
        }
        visit::visit_expr(self, expr);
    }

    fn visit_type(&mut self, ty: &'ast syn::Type) {
        if let syn::Type::Verbatim(tokens) = ty {
            self.scan_tokens(tokens.clone());
        }
        visit::visit_type(self, ty);
    }

    fn visit_pat(&mut self, pat: &'ast syn::Pat) {
        if let syn::Pat::Verbatim(tokens) = pat {
            self.scan_tokens(tokens.clone());
        }
        visit::visit_pat(self, pat);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn passes(source: &str) -> bool {
        too_deep(source.parse().unwrap(), MAX_NESTING).is_none()
    }

    fn needs(source: &str) -> usize {
        let tokens: TokenStream = source.parse().unwrap();
        (0..=MAX_NESTING)
            .find(|limit| too_deep(tokens.clone(), *limit).is_none())
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn real_code_stays_far_below_the_nesting_limit() {
        let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../exercise-template/src");
        let mut checked = 0;
        for entry in walkdir::WalkDir::new(template) {
            let path = entry.unwrap().into_path();
            if path.extension().is_some_and(|ext| ext == "rs") {
                let need = needs(&std::fs::read_to_string(&path).unwrap());
                assert!(need <= MAX_NESTING / 8, "{}: {need}", path.display());
                checked += 1;
            }
        }
        assert!(checked >= 6);
    }

    /// Nestings that `syn` parses recursively, `levels` deep, each with its cost per level.
    fn attacks(levels: usize) -> Vec<(&'static str, String)> {
        let n = levels;
        vec![
            (
                "parens",
                format!("const X: u8 = {}1{};", "(".repeat(n), ")".repeat(n)),
            ),
            ("not", format!("const X: bool = {}true;", "!".repeat(n))),
            (
                "generics",
                format!("type T = {}u8{};", "V<".repeat(n), ">".repeat(n)),
            ),
            (
                "generic lists",
                format!("type T = {}u8{};", "V<u8, ".repeat(n), ">".repeat(n)),
            ),
            (
                "assignments",
                format!("fn f() {{ {}a; }}", "a = ".repeat(n)),
            ),
            ("closures", format!("fn f() {{ {}1; }}", "|| ".repeat(n))),
            // Binary `|` before each closure must not make the `,` in its parameters look closed.
            (
                "closure params",
                format!("fn f() {{ {}x; }}", "x | |a, b| x | x | |a, b| ".repeat(n)),
            ),
            // Comparisons must not pre-close the `<` of generics that follow.
            (
                "comparisons",
                format!(
                    "fn f() {{ let _ = {} f::<{}u8{}>(); }}",
                    "a > b && ".repeat(n),
                    "V<u8, ".repeat(n),
                    ">".repeat(n)
                ),
            ),
            (
                "blocks",
                format!("fn f() {}{}", "{".repeat(n), "}".repeat(n)),
            ),
            (
                "assigned blocks",
                format!("fn f() {{ a = {}{{1}}; }}", "{1} = ".repeat(n)),
            ),
            (
                "else if",
                format!("fn f() {{ {} {{}} }}", "if a {} else ".repeat(n)),
            ),
            (
                "fn pointers",
                format!("type T = {}u8;", "fn() -> ".repeat(n)),
            ),
            ("references", format!("type T = {}u8;", "& ".repeat(n))),
            ("returns", format!("fn f() {{ {}1; }}", "return ".repeat(n))),
            (
                "dyn",
                format!("type T = {}u8{};", "Box<dyn A<".repeat(n), ">>".repeat(n)),
            ),
            (
                "modules",
                format!("{}{}", "mod a { ".repeat(n), "}".repeat(n)),
            ),
        ]
    }

    #[test]
    fn every_recursive_construct_is_bounded() {
        for (name, source) in attacks(20_000) {
            assert!(!passes(&source), "{name}: 20,000 levels got through");
        }
    }

    #[test]
    fn the_checker_stack_holds_the_deepest_accepted_code() {
        // For each construct, the deepest nesting that passes the guard is parsed and checked for
        // real on the checker thread: a stack overflow would abort this test binary.
        for (name, _) in attacks(1) {
            let (mut low, mut high) = (1, 4 * MAX_NESTING);
            while low + 1 < high {
                let mid = (low + high) / 2;
                let source = attacks(mid)
                    .into_iter()
                    .find(|(n, _)| *n == name)
                    .unwrap()
                    .1;
                if passes(&source) {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            let source = attacks(low)
                .into_iter()
                .find(|(n, _)| *n == name)
                .unwrap()
                .1;
            let files = BTreeMap::from([("src/lib.rs".to_owned(), source)]);
            let violations = check(&files);
            assert!(
                violations
                    .iter()
                    .all(|v| !v.message.contains("nested too deeply")),
                "{name} at {low} levels: {violations:?}"
            );
        }
    }
}
