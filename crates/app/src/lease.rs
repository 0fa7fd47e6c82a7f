//! The lease that lets one replica at a time ingest a source.
//!
//! Every `audit-ingest run` asks the store for the source's lease before it
//! ingests, and renews it in the background, every third of its length,
//! while it works and while it waits between ticks. A replica that does not
//! hold the lease asks again at the same pace, so when the holder dies the
//! lease lapses after one length and the next replica takes it within a
//! third of a length more. With the length set to the tick interval, that
//! is well within two intervals.
//!
//! Losing the lease (another replica took it after a stall, or the store
//! could not confirm it before it lapsed) cancels the holder's work token:
//! the tick in hand stores its batch and stops, and the replica goes back to
//! waiting. Two replicas overlapping for that moment cannot store an event
//! twice, because the store's uniqueness on `(source, externalId)` does not
//! depend on the lease; the lease only keeps replicas from doing the same
//! work twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::SourceName;
use ports::{Lease, LeaseOutcome, LeaseStore, StoreError};
use thiserror::Error;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::scheduler::TickObserver;

/// Takes, keeps and gives up one source's lease for this process.
#[derive(Clone)]
pub struct LeaseKeeper {
    store: Arc<dyn LeaseStore>,
    source: SourceName,
    holder: String,
    ttl: Duration,
}

/// Why the lease could not be taken at once.
#[derive(Debug, Error)]
pub enum LeaseError {
    /// Another replica holds it.
    #[error(
        "another replica (`{}`) is ingesting `{name}`; its lease runs until {} unless renewed",
        .lease.holder,
        .lease.expires_at.to_rfc3339()
    )]
    HeldByOther {
        /// The source.
        name: SourceName,
        /// The other replica's lease.
        lease: Lease,
    },
    /// The store could not be asked.
    #[error("taking the lease failed: {0}")]
    Store(StoreError),
}

/// The lease, held; renewed in the background until released or dropped.
pub struct Held {
    /// Cancelled when the lease is lost or the process is asked to stop: the
    /// work done under the lease stops at its next safe point.
    pub token: CancellationToken,
    keeper: LeaseKeeper,
    renewal: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Returns a keeper of `source`'s lease for `holder`, `ttl` long.
    pub fn new(
        store: Arc<dyn LeaseStore>,
        source: SourceName,
        holder: String,
        ttl: Duration,
    ) -> Self {
        Self { store, source, holder, ttl }
    }

    /// Who this process is, as the lease names it.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes the lease now, or says who holds it.
    ///
    /// # Errors
    /// [`LeaseError`] when another replica holds the lease or the store
    /// cannot be asked.
    pub async fn try_acquire(&self, shutdown: &CancellationToken) -> Result<Held, LeaseError> {
        match self.ask().await.map_err(LeaseError::Store)? {
            LeaseOutcome::Held(lease) => Ok(self.hold(lease, shutdown)),
            LeaseOutcome::HeldByOther(lease) => {
                Err(LeaseError::HeldByOther { name: self.source.clone(), lease })
            }
        }
    }

    /// Waits until the lease is this process's, asking every third of its
    /// length and telling `observer` each time another replica holds it;
    /// `None` when `shutdown` came first.
    ///
    /// Who holds it is logged when the waiting starts and whenever the
    /// holder changes, not at every ask; a store that cannot be asked is
    /// logged each time, since it keeps every replica idle.
    pub async fn acquire(
        &self,
        shutdown: &CancellationToken,
        observer: &dyn TickObserver,
    ) -> Option<Held> {
        let mut last_holder: Option<String> = None;
        loop {
            match self.ask().await {
                Ok(LeaseOutcome::Held(lease)) => {
                    tracing::info!(
                        source = %self.source,
                        holder = %self.holder,
                        "Lease taken; this replica ingests the source."
                    );
                    return Some(self.hold(lease, shutdown));
                }
                Ok(LeaseOutcome::HeldByOther(lease)) => {
                    observer.standing_by(&self.source, &lease);
                    if last_holder.as_deref() != Some(lease.holder.as_str()) {
                        tracing::info!(
                            source = %self.source,
                            holder = %lease.holder,
                            expires_at = %lease.expires_at.to_rfc3339(),
                            "Another replica holds the lease; waiting to take over."
                        );
                        last_holder = Some(lease.holder);
                    }
                }
                Err(error) => {
                    tracing::warn!(source = %self.source, error = %error, "Asking for the lease failed.");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.ttl / 3) => {}
                () = shutdown.cancelled() => return None,
            }
        }
    }

    async fn ask(&self) -> Result<LeaseOutcome, StoreError> {
        self.store.acquire(&self.source, &self.holder, Utc::now(), self.ttl).await
    }

    /// Starts renewing `lease` and returns it held.
    fn hold(&self, lease: Lease, shutdown: &CancellationToken) -> Held {
        let token = shutdown.child_token();
        let renewal = tokio::spawn(self.clone().renew(lease.expires_at, token.clone()));
        Held { token, keeper: self.clone(), renewal }
    }

    /// Renews the lease every third of its length until `token` is
    /// cancelled, and cancels `token` when the lease is lost.
    async fn renew(self, mut confirmed_until: DateTime<Utc>, token: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.ttl / 3) => {}
                () = token.cancelled() => return,
            }
            match self.ask().await {
                Ok(LeaseOutcome::Held(lease)) => confirmed_until = lease.expires_at,
                Ok(LeaseOutcome::HeldByOther(lease)) => {
                    tracing::error!(
                        source = %self.source,
                        holder = %lease.holder,
                        "Lease lost to another replica; stopping after the batch in hand."
                    );
                    token.cancel();
                    return;
                }
                Err(error) if Utc::now() >= confirmed_until => {
                    tracing::error!(
                        source = %self.source,
                        error = %error,
                        "Lease lapsed while the store could not renew it; stopping after the batch in hand."
                    );
                    token.cancel();
                    return;
                }
                Err(error) => {
                    tracing::warn!(source = %self.source, error = %error, "Renewing the lease failed; trying again.");
                }
            }
        }
    }
}

impl Held {
    /// Stops renewing and gives the lease up, so another replica can take
    /// over at once. A failure to give it up is logged: the lease then
    /// lapses on its own.
    pub async fn release(self) {
        self.renewal.abort();
        let keeper = &self.keeper;
        if let Err(error) = keeper.store.release(&keeper.source, &keeper.holder).await {
            tracing::warn!(source = %keeper.source, error = %error, "Giving up the lease failed; it lapses on its own.");
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// Returns a name for this process that differs between replicas and
/// between restarts: the host name, the process id and a random suffix.
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}/{}/{:04x}", std::process::id(), rand::random::<u16>())
}
