//! Reads Authentik's event log and its users' groups over the REST API.
//!
//! One [`AuthentikClient`] implements both ports the ingest loop needs from
//! Authentik: [`ports::EventSource`] (pages of `/api/v3/events/events/`,
//! newest first with `pk` as tie-breaker) and [`ports::GroupDirectory`]
//! (`/api/v3/core/users/{pk}/`, cached). Both share one HTTP client, one
//! retry policy and one token, which goes out only as a Bearer header.
//!
//! What Authentik really does, and why the requests look the way they do, is
//! written down in `shared/authentik-api.md`: errors are 403 and never 401,
//! there is no date filter, and pages shift while they are walked.

mod access;
mod client;
mod config;
mod events;
mod export;
mod groups;
mod observe;
mod parse;

pub use access::{AccessReport, UserAccess, VIEW_USER};
pub use client::{AuthentikClient, BuildError};
pub use config::AuthentikConfig;
pub use export::read_export;
pub use observe::{Endpoint, RequestObserver, RequestOutcome};
