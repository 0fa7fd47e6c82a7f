//! Reading ahead: the next page is read while the current one is stored,
//! without the cursor ever passing an event that was not stored; and the
//! benchmark's synthetic history, counted exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adapters_authentik::{AuthentikClient, AuthentikConfig};
use adapters_sqlite::SqliteStore;
use app::ingest::{Ingest, Ports, TickError};
use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use domain::{AuditRecord, SourceName};
use ports::{AuditStore, CursorStore, RejectedEvent, StoreError, StoreOutcome};
use tests::synthetic::SyntheticAuthentik;
use tokio_util::sync::CancellationToken;

use crate::helpers::{TOKEN, World, history, ids, pks};

/// A store that, before each batch, waits a while for the event list to
/// have been asked for the page after the batch's, and can fail a batch.
struct WatchedStore {
    inner: Arc<SqliteStore>,
    list_requests: Arc<AtomicUsize>,
    batches: AtomicUsize,
    read_ahead: AtomicUsize,
    fail_batch: Option<usize>,
}

#[async_trait]
impl AuditStore for WatchedStore {
    async fn store_batch(&self, records: &[AuditRecord]) -> Result<Vec<StoreOutcome>, StoreError> {
        let batch = self.batches.fetch_add(1, Ordering::SeqCst) + 1;
        // Batch `n` holds page `n`; page `n + 1` is request `n + 1`.
        for _ in 0..200 {
            if self.list_requests.load(Ordering::SeqCst) > batch {
                self.read_ahead.fetch_add(1, Ordering::SeqCst);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if self.fail_batch == Some(batch) {
            return Err(StoreError::Unavailable {
                message: "the disk is full".into(),
                source: None,
            });
        }
        self.inner.store_batch(records).await
    }

    async fn set_aside(
        &self,
        source: &SourceName,
        rejected: &[RejectedEvent],
    ) -> Result<u64, StoreError> {
        self.inner.set_aside(source, rejected).await
    }
}

async fn watched(world: &World, fail_batch: Option<usize>) -> (Ingest, Arc<WatchedStore>) {
    let list_requests = Arc::new(AtomicUsize::new(0));
    let counter = list_requests.clone();
    world.authentik.on_events_request(Box::new(move |_, index| {
        counter.store(index + 1, Ordering::SeqCst);
    }));
    let (plain, inner) = world.ingest().await;
    drop(plain);
    let store = Arc::new(WatchedStore {
        inner: inner.clone(),
        list_requests,
        batches: AtomicUsize::new(0),
        read_ahead: AtomicUsize::new(0),
        fail_batch,
    });
    let url = url::Url::parse(&world.authentik.uri()).unwrap();
    let mut config = AuthentikConfig::new(url, secrecy::SecretString::from(TOKEN));
    config.max_retries = 0;
    let client = Arc::new(AuthentikClient::new(config).unwrap());
    let ports = Ports {
        source: client.clone(),
        groups: client,
        store: store.clone(),
        cursors: inner.clone(),
        tenants: inner,
    };
    (Ingest::new(ports, world.settings.clone()), store)
}

#[tokio::test]
async fn next_page_is_read_while_the_current_one_is_stored() {
    let events = history(450, TimeDelta::minutes(1), TimeDelta::hours(1));
    let world = World::start(events.clone(), vec![]).await;
    let (ingest, store) = watched(&world, None).await;

    let report = ingest.tick(&CancellationToken::new()).await.unwrap();

    assert!(report.caught_up);
    assert_eq!(report.stored, 450);
    assert_eq!(report.requests, 5);
    // Every page but the last had its successor asked for while it was
    // being stored; the last has none.
    assert_eq!(store.batches.load(Ordering::SeqCst), 5);
    assert_eq!(store.read_ahead.load(Ordering::SeqCst), 4);
    assert_eq!(ids(&world.stored().await), pks(&events));
}

#[tokio::test]
async fn failed_batch_keeps_the_cursor_at_it_and_the_next_pass_loses_nothing() {
    let events = history(450, TimeDelta::minutes(1), TimeDelta::hours(1));
    let world = World::start(events.clone(), vec![]).await;
    let (ingest, store) = watched(&world, Some(2)).await;

    let failed = ingest.tick(&CancellationToken::new()).await;

    assert!(matches!(failed, Err(TickError::Store(_))), "{failed:?}");
    let source = SourceName::new("authentik");
    let cursor = store.inner.load(&source).await.unwrap().unwrap();
    assert_eq!(cursor.next_page(), 2, "the cursor names the page that was not stored");
    assert_eq!(world.stored().await.len(), 100);
    drop(ingest);

    let rest = world.catch_up().await;

    assert_eq!(rest.stored, 350);
    assert_eq!(ids(&world.stored().await), pks(&events));
}

#[tokio::test]
async fn shutdown_while_a_batch_is_stored_saves_it_and_drops_the_read_ahead() {
    let events = history(450, TimeDelta::minutes(1), TimeDelta::hours(1));
    let world = World::start(events.clone(), vec![]).await;
    let (ingest, store) = watched(&world, None).await;
    let shutdown = CancellationToken::new();
    let cancel = shutdown.clone();
    let watcher = store.clone();
    tokio::spawn(async move {
        while watcher.batches.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        cancel.cancel();
    });

    let report = ingest.tick(&shutdown).await.unwrap();

    assert!(report.interrupted);
    assert_eq!(report.stored, 100, "the batch in hand is stored");
    assert_eq!(report.cursor.next_page(), 2);
    let source = SourceName::new("authentik");
    assert_eq!(store.inner.load(&source).await.unwrap().unwrap(), report.cursor);
    assert_eq!(world.stored().await.len(), 100);
}

#[tokio::test]
async fn synthetic_history_is_stored_exactly_once_and_a_quiet_tick_costs_one_request() {
    let mock = SyntheticAuthentik::start(2_000, Utc::now(), TOKEN).await;
    let world = World::start(vec![], vec![]).await;
    let store = Arc::new(SqliteStore::open(&world.dir.join("synthetic.db")).unwrap());
    let url = url::Url::parse(&mock.uri()).unwrap();
    let client = Arc::new(AuthentikClient::new(AuthentikConfig::new(url, TOKEN.into())).unwrap());
    let ports = Ports {
        source: client.clone(),
        groups: client,
        store: store.clone(),
        cursors: store.clone(),
        tenants: store.clone(),
    };
    let ingest = Ingest::new(ports, world.settings.clone());

    let backfill = app::scheduler::catch_up(&ingest, &CancellationToken::new()).await.unwrap();

    assert_eq!(backfill.fetched, 2_000);
    assert_eq!(backfill.stored, 2_000);
    assert_eq!(backfill.duplicates, 0);
    assert_eq!(backfill.set_aside, 0);
    assert_eq!(backfill.requests, 20);
    assert_eq!(mock.history().events_requests(), 20);

    let (events_before, users_before) =
        (mock.history().events_requests(), mock.history().user_requests());
    let quiet = ingest.tick(&CancellationToken::new()).await.unwrap();

    assert!(quiet.caught_up);
    assert_eq!(quiet.stored, 0);
    assert_eq!(quiet.requests, 1);
    assert_eq!(mock.history().events_requests() - events_before, 1);
    assert_eq!(mock.history().user_requests() - users_before, 0, "groups come from the cache");
}
