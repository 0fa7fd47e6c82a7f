//! The daemon's metrics and health listener, served for real on a local
//! port and scraped over HTTP while the scheduler ticks against the mock
//! Authentik.

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::config::RawSettings;
use app::metrics::Metrics;
use app::monitor::{self, Monitor};
use app::wiring::Wiring;
use async_trait::async_trait;
use domain::{Cursor, SourceName};
use ports::{CursorStore, StoreError};
use tests::fixtures;
use tests::mock_authentik::MockAuthentik;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "daemon-test-token-5a4b3c";

/// A running daemon: the scheduler and the listener, stopped on drop.
struct Daemon {
    base: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the scheduler (a tick now, the next in an hour) and the listener
/// on a free local port, as `run` wires them.
async fn start_daemon(authentik: &MockAuthentik, token: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let raw = RawSettings {
        authentik_url: Some(authentik.uri()),
        authentik_token: Some(token.into()),
        audit_store: Some(format!("sqlite://{}", dir.path().join("audit.db").display())),
        ingest_interval: Some("1h".into()),
        tenants: Some("acme,globex,initech".into()),
        metrics_addr: Some("127.0.0.1:0".into()),
        ..RawSettings::default()
    };
    let settings = raw.settings().unwrap();
    let metrics = Arc::new(Metrics::new());
    let wiring = Wiring::open_with(&settings, &raw.authentik().unwrap(), Some(metrics.clone()))
        .await
        .unwrap();
    let source = wiring.ingest.source().clone();
    let observer = Arc::new(Monitor::new(
        metrics,
        source,
        wiring.stores.cursors.clone(),
        Duration::from_secs(3600),
    ));
    let listener = monitor::bind(settings.metrics_addr.unwrap()).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(monitor::serve(listener, observer.clone(), shutdown.clone()));
    let stop = shutdown.clone();
    tokio::spawn(async move {
        app::scheduler::run(
            &wiring.ingest,
            Duration::from_secs(3600),
            &wiring.lease,
            &stop,
            observer.as_ref(),
        )
        .await;
    });
    Daemon { base, shutdown, _dir: dir }
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Scrapes `/metrics` until `ready` holds for the text, or fails after 20 s.
async fn scrape_until(base: &str, ready: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let (status, text) = get(&format!("{base}/metrics")).await;
        assert_eq!(status, 200);
        if ready(&text) {
            return text;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "timed out; last scrape:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Returns the value of the sample whose name and labels are `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_tick_against_the_mock_and_probes_pass() {
    let authentik = MockAuthentik::start(TOKEN).await;
    authentik.set_events(fixtures::smoke_events());
    authentik.set_users(fixtures::smoke_users());
    let daemon = start_daemon(&authentik, TOKEN).await;

    let text = scrape_until(&daemon.base, |text| {
        sample(text, r#"audit_ingest_ticks_total{source="authentik",result="ok"}"#).is_some()
    })
    .await;
    let (health, _) = get(&format!("{}/healthz", daemon.base)).await;
    let (ready, reason) = get(&format!("{}/readyz", daemon.base)).await;

    let source = r#"{source="authentik"}"#;
    assert_eq!(sample(&text, &format!("audit_ingest_events_fetched_total{source}")), Some(78.0));
    assert_eq!(sample(&text, &format!("audit_ingest_events_stored_total{source}")), Some(78.0));
    assert_eq!(sample(&text, &format!("audit_ingest_events_duplicate_total{source}")), Some(0.0));
    assert_eq!(sample(&text, &format!("audit_ingest_events_set_aside_total{source}")), Some(0.0));
    assert_eq!(
        sample(&text, &format!("audit_ingest_tick_duration_seconds_count{source}")),
        Some(1.0)
    );
    let events_ok = r#"audit_ingest_authentik_requests_total{endpoint="events",status="200"}"#;
    assert_eq!(sample(&text, events_ok), Some(authentik.events_requests() as f64));
    let users_ok = r#"audit_ingest_authentik_requests_total{endpoint="users",status="200"}"#;
    let users_gone = r#"audit_ingest_authentik_requests_total{endpoint="users",status="404"}"#;
    let user_requests =
        sample(&text, users_ok).unwrap_or(0.0) + sample(&text, users_gone).unwrap_or(0.0);
    assert_eq!(user_requests, authentik.user_requests() as f64);
    assert!(user_requests > 0.0);
    let lag = sample(&text, &format!("audit_ingest_cursor_lag_seconds{source}")).unwrap();
    assert!(lag > 0.0, "{lag}");
    let last = sample(&text, &format!("audit_ingest_last_success_timestamp_seconds{source}"));
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(last.is_some_and(|last| (now - last).abs() < 60.0), "{last:?}");
    assert_eq!(health, 200);
    assert_eq!(ready, 200, "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_counted_by_status_and_the_daemon_is_not_ready() {
    let authentik = MockAuthentik::start(TOKEN).await;
    authentik.add_token_without_permission("no-view-event");
    let daemon = start_daemon(&authentik, "no-view-event").await;

    let text = scrape_until(&daemon.base, |text| {
        sample(text, r#"audit_ingest_ticks_total{source="authentik",result="failed"}"#).is_some()
    })
    .await;
    let (ready, reason) = get(&format!("{}/readyz", daemon.base)).await;

    let refused = r#"audit_ingest_authentik_requests_total{endpoint="events",status="403"}"#;
    assert_eq!(sample(&text, refused), Some(1.0));
    assert_eq!(ready, 503);
    assert!(reason.contains("no tick has succeeded"), "{reason}");
}

/// A cursor store whose every call fails, as a store that is gone does.
struct Unreachable;

#[async_trait]
impl CursorStore for Unreachable {
    async fn load(&self, _: &SourceName) -> Result<Option<Cursor>, StoreError> {
        Err(StoreError::Unavailable { message: "disk I/O error".into(), source: None })
    }

    async fn save(&self, _: &SourceName, _: &Cursor) -> Result<(), StoreError> {
        Err(StoreError::Unavailable { message: "disk I/O error".into(), source: None })
    }
}

async fn serve(monitor: Arc<Monitor>) -> (String, CancellationToken) {
    let listener = monitor::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(monitor::serve(listener, monitor, shutdown.clone()));
    (base, shutdown)
}

fn succeeded(monitor: &Monitor) {
    use app::scheduler::TickObserver as _;
    let source = SourceName::new("authentik");
    monitor.tick_finished(&source, &Ok(app::ingest::TickReport::default()), Duration::ZERO);
}

#[tokio::test]
async fn readyz_is_503_when_the_store_is_unreachable() {
    let monitor = Arc::new(Monitor::new(
        Arc::new(Metrics::new()),
        SourceName::new("authentik"),
        Arc::new(Unreachable),
        Duration::from_secs(60),
    ));
    succeeded(&monitor);
    let (base, shutdown) = serve(monitor).await;

    let (ready, reason) = get(&format!("{base}/readyz")).await;
    let (health, _) = get(&format!("{base}/healthz")).await;

    shutdown.cancel();
    assert_eq!(ready, 503);
    assert!(reason.contains("store is unreachable: store unavailable: disk I/O error"), "{reason}");
    assert_eq!(health, 200);
}

#[tokio::test]
async fn readyz_turns_503_when_the_last_success_is_older_than_two_intervals() {
    let store = Arc::new(adapters_sqlite::SqliteStore::open_in_memory().unwrap());
    let interval = Duration::from_millis(100);
    let monitor = Arc::new(Monitor::new(
        Arc::new(Metrics::new()),
        SourceName::new("authentik"),
        store,
        interval,
    ));
    let (base, shutdown) = serve(monitor.clone()).await;

    let before = get(&format!("{base}/readyz")).await;
    succeeded(&monitor);
    let fresh = get(&format!("{base}/readyz")).await;
    tokio::time::sleep(interval * 3).await;
    let stale = get(&format!("{base}/readyz")).await;

    shutdown.cancel();
    assert_eq!(before.0, 503, "{}", before.1);
    assert_eq!(fresh.0, 200, "{}", fresh.1);
    assert_eq!(stale.0, 503, "{}", stale.1);
    assert!(stale.1.contains("more than two intervals"), "{}", stale.1);
}

#[tokio::test]
async fn readyz_is_200_for_a_standby_while_the_holder_keeps_its_lease() {
    use app::scheduler::TickObserver as _;
    let store = Arc::new(adapters_sqlite::SqliteStore::open_in_memory().unwrap());
    let interval = Duration::from_millis(100);
    let monitor = Arc::new(Monitor::new(
        Arc::new(Metrics::new()),
        SourceName::new("authentik"),
        store,
        interval,
    ));
    let (base, shutdown) = serve(monitor.clone()).await;
    let lease = ports::Lease { holder: "other".into(), expires_at: chrono::Utc::now() };

    monitor.standing_by(&SourceName::new("authentik"), &lease);
    let standing_by = get(&format!("{base}/readyz")).await;
    tokio::time::sleep(interval * 3).await;
    let silent = get(&format!("{base}/readyz")).await;

    shutdown.cancel();
    assert_eq!(standing_by.0, 200, "{}", standing_by.1);
    assert_eq!(silent.0, 503, "{}", silent.1);
}
