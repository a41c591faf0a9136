//! An async runtime assembled from the `futures` toolkit: `oneshot` and `Map` for the hand-made
//! futures, `AtomicWaker` and one global timer thread for the timers, and an executor whose
//! ready queues are `futures::channel::mpsc` channels and which sleeps inside
//! `futures::executor::block_on`.

pub mod custom_future;
pub mod executor;
pub mod timer;
