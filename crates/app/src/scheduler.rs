//! The daemon's loop: tick, wait, repeat, until asked to stop.

use std::time::Duration;

use domain::SourceName;
use ports::{FetchError, Lease};
use tokio_util::sync::CancellationToken;

use crate::ingest::{Ingest, TickError, TickReport};
use crate::lease::LeaseKeeper;

/// Learns how each tick of the daemon ended: metrics and readiness.
pub trait TickObserver: Send + Sync {
    /// Records that a tick of `source` ended with `outcome` after `took`.
    fn tick_finished(
        &self,
        source: &SourceName,
        outcome: &Result<TickReport, TickError>,
        took: Duration,
    );

    /// Records that another replica holds the lease of `source`, so this
    /// one stands by. It is called at every ask while standing by.
    fn standing_by(&self, source: &SourceName, holder: &Lease) {
        let _ = (source, holder);
    }
}

/// Observes nothing.
impl TickObserver for () {
    fn tick_finished(&self, _: &SourceName, _: &Result<TickReport, TickError>, _: Duration) {}
}

/// Runs ticks of `ingest` every `interval` while this replica holds the
/// source's lease, until `shutdown` is cancelled.
///
/// Without the lease it waits for it; when it loses the lease it stops
/// after the batch in hand and waits again. On shutdown it gives the lease
/// up, so another replica takes over at once.
pub async fn run(
    ingest: &Ingest,
    interval: Duration,
    lease: &LeaseKeeper,
    shutdown: &CancellationToken,
    observer: &dyn TickObserver,
) {
    while let Some(held) = lease.acquire(shutdown, observer).await {
        tick_until(ingest, interval, &held.token, observer).await;
        held.release().await;
        if shutdown.is_cancelled() {
            break;
        }
        tracing::warn!("Ingest paused until this replica holds the lease again.");
    }
    tracing::info!("Ingest stopped.");
}

/// Runs ticks of `ingest` every `interval` until `shutdown` is cancelled.
///
/// A tick that stopped at its page cap is followed at once by the next, so a
/// backlog drains without waiting out the interval. A failed tick is logged
/// once with its reason and the next tick tries again; when the source asked
/// for a pause, the wait is at least that long. `observer` learns how each
/// tick ended.
async fn tick_until(
    ingest: &Ingest,
    interval: Duration,
    shutdown: &CancellationToken,
    observer: &dyn TickObserver,
) {
    while !shutdown.is_cancelled() {
        let started = std::time::Instant::now();
        let outcome = ingest.tick(shutdown).await;
        observer.tick_finished(ingest.source(), &outcome, started.elapsed());
        let wait = match outcome {
            Ok(report) => {
                tracing::info!(
                    fetched = report.fetched,
                    stored = report.stored,
                    duplicates = report.duplicates,
                    set_aside = report.set_aside,
                    changed_at_source = report.changed_at_source,
                    requests = report.requests,
                    caught_up = report.caught_up,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "Tick finished."
                );
                if report.caught_up { interval } else { Duration::ZERO }
            }
            Err(TickError::Fetch(FetchError::RateLimited { retry_after })) => {
                tracing::warn!(
                    retry_after_s = retry_after.as_secs(),
                    "Tick rate limited by the source."
                );
                interval.max(retry_after)
            }
            Err(error) => {
                tracing::error!(error = %error, duration_ms = started.elapsed().as_millis() as u64, "Tick failed.");
                interval
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

/// Runs ticks until the source is caught up, and returns what they did.
///
/// # Errors
/// The first [`TickError`]; ticks before it stay stored.
pub async fn catch_up(
    ingest: &Ingest,
    shutdown: &CancellationToken,
) -> Result<crate::ingest::TickReport, TickError> {
    let mut total = crate::ingest::TickReport::default();
    loop {
        let report = ingest.tick(shutdown).await?;
        total.absorb(report);
        if total.caught_up || total.interrupted {
            return Ok(total);
        }
    }
}
