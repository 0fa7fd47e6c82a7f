//! The `audit-ingest` program: settings, wiring, the scheduler and the
//! commands.
//!
//! This crate is the only one that knows every adapter. It reads the
//! settings, opens the store and the Authentik client, and hands them to the
//! ingest loop in [`ingest`] as the traits of the `ports` crate, so the loop
//! itself never learns which adapters it runs on.

pub mod check;
pub mod cli;
pub mod config;
pub mod import;
pub mod ingest;
pub mod lease;
pub mod metrics;
pub mod monitor;
pub mod output;
pub mod scheduler;
pub mod telemetry;
pub mod wiring;
