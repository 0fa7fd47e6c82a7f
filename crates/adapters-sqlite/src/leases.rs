//! The leases that let one replica at a time ingest a source.
//!
//! A lease is one row per source. Taking it is a single upsert that only
//! writes when the row is free, lapsed, or already the caller's, so two
//! processes racing for it are ordered by SQLite's write lock and exactly
//! one of them sees its write applied.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::SourceName;
use ports::{Lease, LeaseOutcome, LeaseStore, StoreError};
use rusqlite::{Connection, params};

use crate::SqliteStore;
use crate::error::Failure;

/// Takes or renews the lease when it is free, lapsed or the holder's own.
const TAKE: &str = "
INSERT INTO leases (source, holder, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (source) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4";

const READ: &str = "SELECT holder, expires_at FROM leases WHERE source = ?1";

const RELEASE: &str = "DELETE FROM leases WHERE source = ?1 AND holder = ?2";

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire(
        &self,
        source: &SourceName,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let operation = format!("taking the lease on `{source}`");
        let expires_at = Lease::expiry(now, ttl);
        let source = source.as_str().to_owned();
        let holder = holder.to_owned();
        self.run(operation, move |connection| take(connection, &source, &holder, now, expires_at))
            .await
    }

    async fn release(&self, source: &SourceName, holder: &str) -> Result<(), StoreError> {
        let operation = format!("giving up the lease on `{source}`");
        let source = source.as_str().to_owned();
        let holder = holder.to_owned();
        self.run(operation, move |connection| {
            connection.prepare_cached(RELEASE)?.execute(params![source, holder])?;
            Ok(())
        })
        .await
    }
}

/// Takes the lease in one transaction and returns who holds it after.
fn take(
    connection: &mut Connection,
    source: &str,
    holder: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<LeaseOutcome, Failure> {
    // IMMEDIATE takes the write lock first, so the read below sees the row
    // this transaction's own upsert left, not one another process wrote
    // between the two statements.
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let written = transaction.prepare_cached(TAKE)?.execute(params![
        source,
        holder,
        expires_at.timestamp_millis(),
        now.timestamp_millis()
    ])?;
    let (current, millis): (String, i64) = transaction
        .prepare_cached(READ)?
        .query_row([source], |row| Ok((row.get(0)?, row.get(1)?)))?;
    transaction.commit()?;
    let lease = Lease {
        holder: current,
        expires_at: DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| Failure::corrupt("expires_at", format!("{millis} is out of range")))?,
    };
    Ok(if written == 1 && lease.holder == holder {
        LeaseOutcome::Held(lease)
    } else {
        LeaseOutcome::HeldByOther(lease)
    })
}
