//! The errors ports return.

use std::time::Duration;

use thiserror::Error;

/// A boxed error from below an adapter, kept as the source of an opaque
/// variant.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a source refused our credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// The token is unknown or expired.
    InvalidToken,
    /// The request carried no credentials the source accepts.
    MissingCredentials,
    /// The token is valid but lacks the named permission.
    MissingPermission {
        /// The permission needed.
        permission: String,
    },
}

/// The error from reading a source.
#[derive(Debug, Error)]
pub enum FetchError {
    /// The page asked for does not exist (past the last page).
    #[error("page {page} does not exist")]
    PageOutOfRange {
        /// The page asked for.
        page: u32,
    },
    /// The source refused the credentials.
    #[error("{}", describe_auth(.0))]
    Unauthorized(AuthFailure),
    /// The source asked us to slow down.
    #[error("rate limited by the source; retry after {retry_after:?}")]
    RateLimited {
        /// How long the source asked us to wait.
        retry_after: Duration,
    },
    /// The source could not be reached or failed on its side; worth retrying.
    #[error("source unavailable: {message}")]
    Unavailable {
        /// What went wrong, without credentials.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The source answered with something that is not a page.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// Anything else.
    #[error("{message}")]
    Other {
        /// What went wrong, without credentials.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

fn describe_auth(failure: &AuthFailure) -> String {
    match failure {
        AuthFailure::InvalidToken => {
            "the source rejected the token as invalid or expired; check AUTHENTIK_TOKEN".into()
        }
        AuthFailure::MissingCredentials => {
            "the source saw no credentials; check that AUTHENTIK_TOKEN is set and sent as a Bearer token".into()
        }
        AuthFailure::MissingPermission { permission } => {
            format!("the token lacks the permission `{permission}`; grant it to the token's user through a role")
        }
    }
}

/// The error from a store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store could not be reached, or failed in a way worth retrying.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What went wrong, without credentials.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The store's schema or indexes differ from what this version needs.
    #[error("store schema mismatch: {0}")]
    Schema(String),
    /// Anything else.
    #[error("{message}")]
    Other {
        /// What went wrong, without credentials.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// Returns an [`StoreError::Other`] with `message` and `source`.
    pub fn other(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Other { message: message.into(), source: Some(source.into()) }
    }

    /// Returns an [`StoreError::Unavailable`] with `message` and `source`.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable { message: message.into(), source: Some(source.into()) }
    }
}
