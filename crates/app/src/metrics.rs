//! The daemon's metrics, in Prometheus's text format.
//!
//! The scheduler reports each tick here (through [`TickObserver`]) and the
//! Authentik client reports each request (through a small bridge in
//! `wiring.rs`), so neither the tick nor the adapter knows a metrics
//! library. Cursor lag is computed when the metrics are read, so it keeps
//! growing while ticks fail instead of freezing at its last value.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::SourceName;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::ingest::{TickError, TickReport};
use crate::scheduler::TickObserver;

/// The labels of a per-source metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// The labels of a tick's result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TickLabels {
    source: String,
    result: &'static str,
}

/// The labels of a request to Authentik.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: String,
}

type Seconds = Gauge<f64, AtomicU64>;

/// Every metric the daemon exports, and the registry that prints them.
pub struct Metrics {
    registry: Registry,
    fetched: Family<SourceLabels, Counter>,
    stored: Family<SourceLabels, Counter>,
    duplicates: Family<SourceLabels, Counter>,
    set_aside: Family<SourceLabels, Counter>,
    changed_at_source: Family<SourceLabels, Counter>,
    ticks: Family<TickLabels, Counter>,
    tick_duration: Family<SourceLabels, Histogram>,
    requests: Family<RequestLabels, Counter>,
    cursor_lag: Family<SourceLabels, Seconds>,
    last_success: Family<SourceLabels, Seconds>,
    /// The newest event stored with everything before it, per source.
    newest: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Returns the metrics, all at zero, registered under `audit_ingest_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("audit_ingest");
        let fetched = Family::default();
        let stored = Family::default();
        let duplicates = Family::default();
        let set_aside = Family::default();
        let changed_at_source = Family::default();
        let ticks = Family::default();
        // 50 ms to about 7 min: a steady-state tick is one request, a
        // backlog tick is up to INGEST_MAX_PAGES_PER_TICK of them.
        let tick_duration = Family::<SourceLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.05, 2.0, 14))
        });
        let requests = Family::default();
        let cursor_lag = Family::default();
        let last_success = Family::default();

        registry.register("events_fetched", "Events read from the source", fetched.clone());
        registry.register("events_stored", "Events stored for the first time", stored.clone());
        registry.register(
            "events_duplicate",
            "Events read again that were already stored",
            duplicates.clone(),
        );
        registry.register("events_set_aside", "Events set aside as unreadable", set_aside.clone());
        registry.register(
            "events_changed_at_source",
            "Stored events the source sent again changed; the originals are kept",
            changed_at_source.clone(),
        );
        registry.register("ticks", "Ticks finished, by result", ticks.clone());
        registry.register_with_unit(
            "tick_duration",
            "Time one tick took, failed ones included",
            Unit::Seconds,
            tick_duration.clone(),
        );
        registry.register(
            "authentik_requests",
            "Requests to Authentik, each retry included, by HTTP status (`error`: no answer)",
            requests.clone(),
        );
        registry.register_with_unit(
            "cursor_lag",
            "Now minus the newest event stored with everything before it",
            Unit::Seconds,
            cursor_lag.clone(),
        );
        registry.register_with_unit(
            "last_success_timestamp",
            "Unix time of the last successful tick",
            Unit::Seconds,
            last_success.clone(),
        );
        Self {
            registry,
            fetched,
            stored,
            duplicates,
            set_aside,
            changed_at_source,
            ticks,
            tick_duration,
            requests,
            cursor_lag,
            last_success,
            newest: Mutex::new(HashMap::new()),
        }
    }

    /// Records a request to Authentik's `endpoint` that ended with `status`.
    pub fn record_request(&self, endpoint: &'static str, status: String) {
        self.requests.get_or_create(&RequestLabels { endpoint, status }).inc();
    }

    /// Records that `source` has every event up to `at` stored, as a cursor
    /// read at start or saved by a tick says.
    pub fn record_newest(&self, source: &SourceName, at: DateTime<Utc>) {
        let mut newest = self.newest.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = newest.entry(source.as_str().to_owned()).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// Returns every metric in Prometheus's text format, with the cursor
    /// lag as of `now`.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        {
            let newest = self.newest.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (source, at) in newest.iter() {
                let lag = (now - *at).as_seconds_f64().max(0.0);
                self.cursor_lag.get_or_create(&SourceLabels { source: source.clone() }).set(lag);
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    fn labels(source: &SourceName) -> SourceLabels {
        SourceLabels { source: source.as_str().to_owned() }
    }
}

impl TickObserver for Metrics {
    fn tick_finished(
        &self,
        source: &SourceName,
        outcome: &Result<TickReport, TickError>,
        took: Duration,
    ) {
        let labels = Self::labels(source);
        self.tick_duration.get_or_create(&labels).observe(took.as_secs_f64());
        let result = if outcome.is_ok() { "ok" } else { "failed" };
        self.ticks.get_or_create(&TickLabels { source: labels.source.clone(), result }).inc();
        let Ok(report) = outcome else { return };
        self.fetched.get_or_create(&labels).inc_by(report.fetched);
        self.stored.get_or_create(&labels).inc_by(report.stored);
        self.duplicates.get_or_create(&labels).inc_by(report.duplicates);
        self.set_aside.get_or_create(&labels).inc_by(report.set_aside);
        self.changed_at_source.get_or_create(&labels).inc_by(report.changed_at_source);
        let now = Utc::now();
        self.last_success.get_or_create(&labels).set(now.timestamp_millis() as f64 / 1000.0);
        if let Some(at) = report.cursor.last_event_at {
            self.record_newest(source, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> TickReport {
        let mut report = TickReport {
            fetched: 5,
            stored: 3,
            duplicates: 1,
            set_aside: 1,
            ..TickReport::default()
        };
        report.cursor.last_event_at = Some("2026-12-03T12:00:00Z".parse().unwrap());
        report
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in\n{text}"))
    }

    #[test]
    fn a_tick_adds_its_counts_and_sets_the_lag() {
        let metrics = Metrics::new();
        let source = SourceName::new("authentik");

        metrics.tick_finished(&source, &Ok(report()), Duration::from_millis(120));
        metrics.tick_finished(&source, &Ok(report()), Duration::from_millis(80));
        let text = metrics.render("2026-12-03T12:01:30Z".parse().unwrap());

        assert_eq!(
            line(&text, "audit_ingest_events_fetched_total{"),
            "audit_ingest_events_fetched_total{source=\"authentik\"} 10"
        );
        assert_eq!(
            line(&text, "audit_ingest_events_stored_total{"),
            "audit_ingest_events_stored_total{source=\"authentik\"} 6"
        );
        assert_eq!(
            line(&text, "audit_ingest_events_duplicate_total{"),
            "audit_ingest_events_duplicate_total{source=\"authentik\"} 2"
        );
        assert_eq!(
            line(&text, "audit_ingest_events_set_aside_total{"),
            "audit_ingest_events_set_aside_total{source=\"authentik\"} 2"
        );
        assert_eq!(
            line(&text, "audit_ingest_tick_duration_seconds_count{"),
            "audit_ingest_tick_duration_seconds_count{source=\"authentik\"} 2"
        );
        assert_eq!(
            line(&text, "audit_ingest_cursor_lag_seconds{"),
            "audit_ingest_cursor_lag_seconds{source=\"authentik\"} 90.0"
        );
    }

    #[test]
    fn a_failed_tick_counts_as_failed_and_moves_nothing_else() {
        let metrics = Metrics::new();
        let source = SourceName::new("authentik");
        let failed = Err(TickError::Fetch(ports::FetchError::Malformed("x".into())));

        metrics.tick_finished(&source, &failed, Duration::from_millis(10));
        let text = metrics.render(Utc::now());

        assert_eq!(
            line(&text, "audit_ingest_ticks_total{"),
            "audit_ingest_ticks_total{source=\"authentik\",result=\"failed\"} 1"
        );
        assert!(!text.contains("audit_ingest_last_success_timestamp_seconds{"), "{text}");
        assert!(!text.contains("audit_ingest_events_stored_total{"), "{text}");
    }
}
