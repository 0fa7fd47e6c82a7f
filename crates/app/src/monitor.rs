//! The metrics and health listener of `run`: `/metrics`, `/healthz` and
//! `/readyz` on `METRICS_ADDR`.
//!
//! `/healthz` answers as long as the process serves requests at all, which
//! is what a liveness probe should restart on. `/readyz` is stricter: the
//! store must answer now and a tick must have succeeded within two
//! intervals, so a daemon whose token was revoked or whose store is gone
//! drops out of readiness (and pages someone) without being restarted in a
//! loop.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::Utc;
use domain::SourceName;
use ports::{CursorStore, Lease};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::ingest::{TickError, TickReport};
use crate::metrics::Metrics;
use crate::scheduler::TickObserver;

/// How long `/readyz` waits for the store before calling it unreachable.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The content type of Prometheus's text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the listener reports on: the metrics, and the state readiness is
/// judged from.
pub struct Monitor {
    metrics: Arc<Metrics>,
    source: SourceName,
    store: Arc<dyn CursorStore>,
    stale_after: Duration,
    last_success: Mutex<Option<Instant>>,
    /// When this replica last learned that another one holds the lease.
    last_standby: Mutex<Option<Instant>>,
}

impl Monitor {
    /// Returns a monitor of `source`, whose cursor in `store` is read to
    /// tell the store is reachable, and that counts as not ready once the
    /// last successful tick is more than two `interval`s old.
    pub fn new(
        metrics: Arc<Metrics>,
        source: SourceName,
        store: Arc<dyn CursorStore>,
        interval: Duration,
    ) -> Self {
        Self {
            metrics,
            source,
            store,
            stale_after: interval.saturating_mul(2),
            last_success: Mutex::new(None),
            last_standby: Mutex::new(None),
        }
    }

    /// Returns why the daemon is not ready, or `None` when it is.
    pub async fn not_ready(&self) -> Option<String> {
        match tokio::time::timeout(STORE_PROBE_TIMEOUT, self.store.load(&self.source)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Some(format!("the store is unreachable: {error}")),
            Err(_) => {
                return Some(format!(
                    "the store did not answer within {}s",
                    STORE_PROBE_TIMEOUT.as_secs()
                ));
            }
        }
        let last = *self.last_success.lock().unwrap_or_else(PoisonError::into_inner);
        let standby = *self.last_standby.lock().unwrap_or_else(PoisonError::into_inner);
        // A standby replica is ready as long as it keeps learning that the
        // holder renews the lease: it is doing its job, which is to wait.
        if let Some(standby) = standby
            && standby.elapsed() <= self.stale_after
            && last.is_none_or(|last| standby > last)
        {
            return None;
        }
        match last {
            None => Some("no tick has succeeded yet".into()),
            Some(at) if at.elapsed() > self.stale_after => Some(format!(
                "the last successful tick was {}s ago, more than two intervals",
                at.elapsed().as_secs()
            )),
            Some(_) => None,
        }
    }
}

impl TickObserver for Monitor {
    fn tick_finished(
        &self,
        source: &SourceName,
        outcome: &Result<TickReport, TickError>,
        took: Duration,
    ) {
        self.metrics.tick_finished(source, outcome, took);
        if outcome.is_ok() {
            *self.last_success.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(Instant::now());
        }
    }

    fn standing_by(&self, _: &SourceName, _: &Lease) {
        *self.last_standby.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }
}

/// Binds the listener's address.
///
/// # Errors
/// When the address cannot be bound (in use, not a local address).
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on METRICS_ADDR `{address}`"))
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until
/// `shutdown` is cancelled.
///
/// # Errors
/// When accepting connections fails for good.
pub async fn serve(
    listener: TcpListener,
    monitor: Arc<Monitor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(monitor);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("the metrics listener failed")
}

/// Serves the probes of a daemon whose ingest is turned off until
/// `shutdown` is cancelled: alive and ready, since idling is what it was
/// told to do, and no metrics to export.
///
/// # Errors
/// When accepting connections fails for good.
pub async fn serve_disabled(
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let router = Router::new()
        .route("/metrics", get(|| async { ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], "# EOF\n") }))
        .route("/healthz", get(healthz))
        .route("/readyz", get(|| async { "ready: ingest is disabled\n" }));
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("the metrics listener failed")
}

async fn metrics(State(monitor): State<Arc<Monitor>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], monitor.metrics.render(Utc::now()))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(monitor): State<Arc<Monitor>>) -> (StatusCode, String) {
    match monitor.not_ready().await {
        None => (StatusCode::OK, "ready\n".into()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
    }
}
