//! The library's layers: data flows engine -> server -> cli, so a lower layer never names a higher
//! one (the engine is a library call that the server's workers, the CLI and the tests share).

use std::path::Path;

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    out
}

/// The files of layer `lower` that name one of the `higher` layers.
fn offenders(lower: &str, higher: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    sources(&src.join(lower))
        .into_iter()
        .filter(|(_, text)| {
            higher.iter().any(|h| {
                text.contains(&format!("crate::{h}"))
                    || text.contains(&format!("super::super::{h}"))
            })
        })
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn the_engine_imports_neither_the_server_nor_the_cli() {
    let found = offenders("engine", &["server", "cli"]);
    assert!(
        found.is_empty(),
        "the engine names a higher layer in {found:?}"
    );
    assert!(
        sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine")).len() > 10,
        "the engine's sources were not found"
    );
}

#[test]
fn the_server_does_not_import_the_cli() {
    let found = offenders("server", &["cli"]);
    assert!(found.is_empty(), "the server names the CLI in {found:?}");
}
