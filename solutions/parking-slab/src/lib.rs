//! An async runtime built from parking primitives: a thread per timer that sleeps with
//! `park_timeout`, and an executor that keeps its tasks in a slab and parks while idle.

pub mod custom_future;
pub mod executor;
pub mod timer;
