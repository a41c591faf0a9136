//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};

use grader::engine::{Config, DEFAULT_DATA_DIR};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared data folder (`GRADER_DATA_DIR`, as the CLI reads it).
pub fn data_dir() -> PathBuf {
    std::env::var_os("GRADER_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// An engine configuration on the shared data folder, with the given hidden tests.
pub fn config(hidden_tests: PathBuf) -> Config {
    Config::new(data_dir(), hidden_tests)
}
