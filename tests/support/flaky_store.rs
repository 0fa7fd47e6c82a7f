//! A store that fails on demand, wrapped around a real one.
//!
//! Each fault is a count of operations to fail, taken one at a time, so a
//! test says "the next two batch writes fail" and then checks what the
//! ingest did. A write can also fail *after* it reached the store, which is
//! what a crash between a write and its acknowledgement looks like to the
//! caller.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{AuditRecord, Cursor, SourceName, TenantSet};
use ports::{
    AuditReader, AuditStore, CursorStore, LeaseOutcome, LeaseStore, RejectedEvent, SourceStatus,
    StoreError, StoreOutcome, TenantDirectory, TimelineQuery,
};

/// The faults a [`FlakyStore`] has left to inject.
#[derive(Debug, Default)]
pub struct Faults {
    /// Batch writes to refuse before they reach the store.
    pub batches_refused: AtomicU32,
    /// Batch writes to make, then report as failed.
    pub batches_lost_after_write: AtomicU32,
    /// Cursor saves to refuse.
    pub cursor_saves: AtomicU32,
    /// Tenant reads to refuse (the first thing a tick does).
    pub tenant_reads: AtomicU32,
}

/// A store that passes everything to `inner` except the faults it is told
/// to inject.
pub struct FlakyStore<S> {
    inner: S,
    /// What to fail next.
    pub faults: Faults,
}

impl<S> FlakyStore<S> {
    /// Wraps `inner`, failing nothing until told to.
    pub fn new(inner: S) -> Self {
        Self { inner, faults: Faults::default() }
    }
}

/// Takes one from `counter` and says whether there was one to take.
fn take(counter: &AtomicU32) -> bool {
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1)).is_ok()
}

fn injected(what: &str) -> StoreError {
    StoreError::Unavailable { message: format!("injected fault: {what}"), source: None }
}

#[async_trait]
impl<S: AuditStore> AuditStore for FlakyStore<S> {
    async fn store_batch(&self, records: &[AuditRecord]) -> Result<Vec<StoreOutcome>, StoreError> {
        if take(&self.faults.batches_refused) {
            return Err(injected("batch refused"));
        }
        let outcomes = self.inner.store_batch(records).await?;
        if take(&self.faults.batches_lost_after_write) {
            return Err(injected("batch written, acknowledgement lost"));
        }
        Ok(outcomes)
    }

    async fn set_aside(
        &self,
        source: &SourceName,
        rejected: &[RejectedEvent],
    ) -> Result<u64, StoreError> {
        self.inner.set_aside(source, rejected).await
    }
}

#[async_trait]
impl<S: CursorStore> CursorStore for FlakyStore<S> {
    async fn load(&self, source: &SourceName) -> Result<Option<Cursor>, StoreError> {
        self.inner.load(source).await
    }

    async fn save(&self, source: &SourceName, cursor: &Cursor) -> Result<(), StoreError> {
        if take(&self.faults.cursor_saves) {
            return Err(injected("cursor save refused"));
        }
        self.inner.save(source, cursor).await
    }
}

#[async_trait]
impl<S: TenantDirectory> TenantDirectory for FlakyStore<S> {
    async fn tenants(&self) -> Result<TenantSet, StoreError> {
        if take(&self.faults.tenant_reads) {
            return Err(injected("store unreachable"));
        }
        self.inner.tenants().await
    }
}

#[async_trait]
impl<S: AuditReader> AuditReader for FlakyStore<S> {
    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.timeline(query).await
    }

    async fn status(&self) -> Result<Vec<SourceStatus>, StoreError> {
        self.inner.status().await
    }
}

#[async_trait]
impl<S: LeaseStore> LeaseStore for FlakyStore<S> {
    async fn acquire(
        &self,
        source: &SourceName,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        self.inner.acquire(source, holder, now, ttl).await
    }

    async fn release(&self, source: &SourceName, holder: &str) -> Result<(), StoreError> {
        self.inner.release(source, holder).await
    }
}
