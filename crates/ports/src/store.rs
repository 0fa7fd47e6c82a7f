//! The audit store and cursor store ports.

use async_trait::async_trait;
use std::time::Duration;

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
    /// A record with the same source and external id was already stored, and
    /// the source still says the same of it; the stored one was kept.
    Duplicate,
    /// A record with the same source and external id was already stored, but
    /// the source now says something else of it (an edit at the source, see
    /// [`AuditRecord::source_fingerprint`]). The stored original was kept and
    /// the changed version recorded beside it; a version already recorded
    /// comes back as [`Duplicate`](Self::Duplicate).
    ChangedAtSource,
    /// The record cannot be kept in this store as it is (MongoDB's, for one
    /// past its 16 MiB document limit). It was set aside with the reason
    /// instead, like an event that could not be read, and is counted in
    /// [`SourceStatus::set_aside`].
    SetAside,
}

/// Where audit records are kept.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Stores `records`, each exactly once per `(source, externalId)`.
    ///
    /// Returns one outcome per record, in order. A record whose
    /// `(source, externalId)` is already stored MUST come back as
    /// [`StoreOutcome::Duplicate`], not as an error, and leave the stored one
    /// untouched; one the source has changed since MUST come back as
    /// [`StoreOutcome::ChangedAtSource`] the first time that version is seen.
    /// Records without an external id never collide. A record the store
    /// cannot keep MUST be set aside with the reason and come back as
    /// [`StoreOutcome::SetAside`], not fail the batch.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`] when the batch
    /// could not be written. The caller then treats every record of the
    /// batch as not stored, so the write MUST be safe to repeat.
    async fn store_batch(&self, records: &[AuditRecord]) -> Result<Vec<StoreOutcome>, StoreError>;

    /// Sets events that could not be read aside, with their reasons, so that
    /// they are kept and counted.
    ///
    /// Setting the same event aside twice keeps one copy. Returns how many
    /// of `rejected` were set aside for the first time, so that an event
    /// read again on a later walk is not counted again.
    ///
    /// # Errors
    /// As for [`store_batch`](Self::store_batch).
    async fn set_aside(
        &self,
        source: &SourceName,
        rejected: &[RejectedEvent],
    ) -> Result<u64, StoreError>;
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
    /// The number of changed versions of stored events the source sent.
    pub changed_at_source: u64,
}

impl SourceStatus {
    /// Returns the status of `source` before anything is known of it: no
    /// cursor, nothing counted. Stores fill it in as they read.
    pub fn empty(source: SourceName) -> Self {
        Self { source, cursor: None, stored: 0, set_aside: 0, changed_at_source: 0 }
    }
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

/// A lease on a source: while it holds, only its holder ingests the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// Who holds it.
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// Returns when a lease taken at `now` for `ttl` lapses; a length past
    /// the calendar's end lapses at its end.
    pub fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
        chrono::TimeDelta::from_std(ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// The answer to [`LeaseStore::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller holds the lease, until the time given.
    Held(Lease),
    /// Someone else holds it.
    HeldByOther(Lease),
}

/// Where the leases that keep replicas from ingesting one source at once
/// are kept.
///
/// Time is the caller's: `now` comes from the replica's clock, so replicas'
/// clocks must agree to well within a lease's length.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes or renews the lease on `source` for `holder`, until `now + ttl`.
    ///
    /// It succeeds when nobody holds the lease, when it lapsed at or before
    /// `now`, or when `holder` already holds it; otherwise the lease is left
    /// as it is and its holder returned. Two callers racing for a free lease
    /// MUST NOT both get it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`] when the lease
    /// could not be read or written; the caller must then act as if it did
    /// not hold it once its last confirmed expiry has passed.
    async fn acquire(
        &self,
        source: &SourceName,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError>;

    /// Gives the lease on `source` up, when `holder` holds it, so another
    /// replica can take over at once. A lease held by someone else is left
    /// alone.
    ///
    /// # Errors
    /// As for [`acquire`](Self::acquire).
    async fn release(&self, source: &SourceName, holder: &str) -> Result<(), StoreError>;
}
