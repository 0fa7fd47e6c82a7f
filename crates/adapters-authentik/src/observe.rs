//! A hook that learns the outcome of every request the client sends.
//!
//! The client counts nothing itself: the program that embeds it decides
//! what to do with each outcome (the `app` crate turns them into Prometheus
//! counters). A trait keeps this crate free of any metrics library.

use std::fmt;

/// Which Authentik endpoint a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// The event list, `/api/v3/events/events/`.
    Events,
    /// The users, `/api/v3/core/users/...`.
    Users,
}

impl Endpoint {
    /// Returns a short lower-case name, fit for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Users => "users",
        }
    }
}

/// How one request (one try, retries included) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// Authentik answered with this HTTP status.
    Status(u16),
    /// No answer came: the connection failed or the request timed out.
    Transport,
}

impl fmt::Display for RequestOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "{status}"),
            Self::Transport => f.write_str("error"),
        }
    }
}

/// Learns the outcome of every request an
/// [`AuthentikClient`](crate::AuthentikClient) sends, each retry included.
///
/// Called on the request's task; implementations must return quickly and
/// must not block.
pub trait RequestObserver: Send + Sync {
    /// Records that a request to `endpoint` ended with `outcome`.
    fn request_finished(&self, endpoint: Endpoint, outcome: RequestOutcome);
}
