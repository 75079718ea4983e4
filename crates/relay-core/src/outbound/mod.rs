//! Delivering to subscribers: the HTTP client that sends one signed attempt (`delivery`) and the
//! guard that keeps it off non-global addresses (`netguard`).

pub mod delivery;
pub mod netguard;
