//! An async runtime built from unusual but legal pieces: a global, self-retiring timer thread
//! that owns every timer's state, a `ManualFuture` made of a `std::sync::mpsc` channel, and an
//! executor with one priority heap, generational task slots, counted spawner tickets and a
//! `Condvar` on which `run` sleeps.

pub mod custom_future;
pub mod executor;
pub mod timer;
