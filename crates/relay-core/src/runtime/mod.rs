//! What runs the use cases in a process: their settings from the environment and the queue
//! consumer loop of `relay dev` and the tests.

pub mod consume;
pub mod settings;
