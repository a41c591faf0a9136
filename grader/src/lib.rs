//! runtime-grader: grades students' `02_runtime` async-runtime crates in a sandbox.
//!
//! The modules are grouped by layer, and data flows one way through them: upload ->
//! [`engine`] (archive -> policy -> assembly -> sandboxed build -> one process per test -> rubric ->
//! report) -> [`server`] (database, queue, workers, web API, live events). [`cli`] is the `grader`
//! command on top of both. Lower layers never import higher ones: the engine knows nothing of the
//! server or the command line.

pub mod cli;
pub mod engine;
pub mod server;
