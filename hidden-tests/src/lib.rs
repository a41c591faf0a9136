//! Hidden tests: see tests/ and rubric.toml.
