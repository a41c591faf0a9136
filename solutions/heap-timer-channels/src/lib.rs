//! An async runtime in the style of the async book: one shared timer thread with a deadline
//! heap, and an executor fed through an `mpsc` channel whose senders live in spawners and wakers.

pub mod custom_future;
pub mod executor;
pub mod timer;
