//! A small async runtime built from scratch: hand-written futures, thread-backed timers and a
//! single-threaded executor with priorities, capacity limits, shutdown and metrics.

pub mod custom_future;
pub mod executor;
pub mod timer;
