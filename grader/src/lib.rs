//! runtime-grader: grades students' `02_runtime` async-runtime crates in a sandbox.
//!
//! Data flows one way: upload -> [`archive`] (validated submission) -> [`policy`] (static checks)
//! -> [`sandbox`]ed build and test runs ([`engine`]) -> [`report`].

pub mod archive;
pub mod assembly;
pub mod build;
pub mod cache;
pub mod cli;
pub mod engine;
pub mod job;
pub mod policy;
pub mod report;
pub mod rubric;
pub mod runner;
pub mod sandbox;
pub mod server;
pub mod solutions;
pub mod suite;
pub mod validate;
