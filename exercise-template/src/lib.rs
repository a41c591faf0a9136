pub mod custom_future;
pub mod timer;
pub mod executor;
