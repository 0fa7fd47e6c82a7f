//! The directories the tenant rule reads: users' groups and the tenants.

use std::collections::HashMap;

use async_trait::async_trait;
use domain::{Membership, TenantSet};
use thiserror::Error;

use crate::error::{BoxError, StoreError};

/// The error from looking up users' groups.
#[derive(Debug, Error)]
#[error("looking up groups of user `{user}` failed: {message}")]
pub struct LookupError {
    /// The user whose lookup failed.
    pub user: String,
    /// What went wrong, without credentials.
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<BoxError>,
}

/// Where users' group memberships are looked up.
#[async_trait]
pub trait GroupDirectory: Send + Sync {
    /// Returns the membership of each user in `users`.
    ///
    /// Implementations SHOULD cache answers for a while and MUST NOT make
    /// more than one request per distinct user per call. A user who no
    /// longer exists is [`Membership::Gone`], and one whose answer came but
    /// cannot be read is [`Membership::Unreadable`]: neither is an error,
    /// since retrying would get the same answer and hold back every event
    /// after it.
    ///
    /// # Errors
    /// [`LookupError`] when a lookup failed in a way a later try may not
    /// (transport, refusal, a server error); the caller then stores nothing
    /// of the batch, so that no event is filed under a wrong tenant.
    async fn memberships(
        &self,
        users: &[String],
    ) -> Result<HashMap<String, Membership>, LookupError>;
}

/// Where the real tenants are listed.
#[async_trait]
pub trait TenantDirectory: Send + Sync {
    /// Returns the tenants.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the list cannot be read now.
    async fn tenants(&self) -> Result<TenantSet, StoreError>;
}
