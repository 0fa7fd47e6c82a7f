//! The audit store and cursor store ports.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{AuditRecord, Cursor, SourceName, TenantSlug};
use serde::Serialize;

use crate::error::StoreError;
use crate::source::RejectedEvent;

/// What became of one record handed to [`AuditStore::store_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// The record was new and is now stored.
    Stored,
    /// A record with the same source and external id was already stored; the
    /// stored one was kept.
    Duplicate,
}

/// Where audit records are kept.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Stores `records`, each exactly once per `(source, externalId)`.
    ///
    /// Returns one outcome per record, in order. A record whose
    /// `(source, externalId)` is already stored MUST come back as
    /// [`StoreOutcome::Duplicate`], not as an error, and leave the stored one
    /// untouched. Records without an external id never collide.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`] when the batch
    /// could not be written. The caller then treats every record of the
    /// batch as not stored, so the write MUST be safe to repeat.
    async fn store_batch(&self, records: &[AuditRecord]) -> Result<Vec<StoreOutcome>, StoreError>;

    /// Sets events that could not be read aside, with their reasons, so that
    /// they are kept and counted.
    ///
    /// Setting the same event aside twice keeps one copy.
    ///
    /// # Errors
    /// As for [`store_batch`](Self::store_batch).
    async fn set_aside(
        &self,
        source: &SourceName,
        rejected: &[RejectedEvent],
    ) -> Result<(), StoreError>;
}

/// Where each source's cursor is kept.
#[async_trait]
pub trait CursorStore: Send + Sync {
    /// Returns the cursor of `source`, or `None` before its first save.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be read now;
    /// [`StoreError::Other`] when the stored cursor cannot be read back.
    async fn load(&self, source: &SourceName) -> Result<Option<Cursor>, StoreError>;

    /// Saves the cursor of `source`.
    ///
    /// A save MUST NOT move `lastEventAt` backwards: when the stored cursor is
    /// newer, the stored one is kept.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`] when the cursor
    /// could not be saved; the stored cursor is then unchanged.
    async fn save(&self, source: &SourceName, cursor: &Cursor) -> Result<(), StoreError>;
}

/// A filter on the audit timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimelineQuery {
    /// Only this tenant's events.
    pub tenant: Option<TenantSlug>,
    /// Only events whose verb is this, or starts with this followed by `.`
    /// or `_`.
    pub verb: Option<String>,
    /// Only events whose actor's username or e-mail is this.
    pub actor: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many events.
    pub limit: u32,
}

/// One source's state, for `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// The source.
    pub source: SourceName,
    /// Its cursor, when it has one.
    pub cursor: Option<Cursor>,
    /// The number of its events stored.
    pub stored: u64,
    /// The number of its events set aside as unreadable.
    pub set_aside: u64,
}

/// Reads the audit timeline back.
#[async_trait]
pub trait AuditReader: Send + Sync {
    /// Returns the events that match `query`, newest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be read now;
    /// [`StoreError::Other`] when a stored record cannot be read back.
    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Returns the state of every source the store knows.
    ///
    /// # Errors
    /// As for [`timeline`](Self::timeline).
    async fn status(&self) -> Result<Vec<SourceStatus>, StoreError>;
}
