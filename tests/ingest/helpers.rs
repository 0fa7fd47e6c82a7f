//! The world each ingest test builds: a mock Authentik, a SQLite store in a
//! temporary directory, and the ingest over them.

use std::path::PathBuf;
use std::sync::Arc;

use adapters_authentik::{AuthentikClient, AuthentikConfig};
use adapters_sqlite::SqliteStore;
use app::ingest::{Ingest, Ports, TickReport, TickSettings};
use chrono::TimeDelta;
use domain::{AdminGroups, AuditRecord, TenantSet, TenantSlug};
use ports::{AuditReader, AuditStore, CursorStore, TenantDirectory, TimelineQuery};
use serde_json::Value;
use tests::flaky_store::FlakyStore;
use tests::mock_authentik::MockAuthentik;
use tokio_util::sync::CancellationToken;

pub(crate) const TOKEN: &str = "test-token-0123456789";

/// A mock Authentik, a store file, and ingest settings.
pub(crate) struct World {
    pub(crate) authentik: MockAuthentik,
    pub(crate) dir: PathBuf,
    pub(crate) settings: TickSettings,
    pub(crate) tenants: Vec<&'static str>,
    /// How long the client waits for Authentik's answer.
    pub(crate) request_timeout: std::time::Duration,
}

impl World {
    /// Starts a mock Authentik serving `events` and `users`.
    pub(crate) async fn start(events: Vec<Value>, users: Vec<Value>) -> Self {
        let authentik = MockAuthentik::start(TOKEN).await;
        authentik.set_events(events);
        authentik.set_users(users);
        let dir = std::env::temp_dir().join(format!(
            "audit-ingest-test-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let settings = TickSettings {
            page_size: 100,
            max_pages: 10,
            overlap: TimeDelta::minutes(5),
            admin_groups: AdminGroups::default(),
        };
        Self {
            authentik,
            dir,
            settings,
            tenants: vec!["acme", "globex", "initech"],
            request_timeout: std::time::Duration::from_secs(30),
        }
    }

    /// Opens the store and builds an ingest over it, as a process start
    /// would: every call is a fresh client with an empty group cache.
    pub(crate) async fn ingest(&self) -> (Ingest, Arc<SqliteStore>) {
        let store = Arc::new(self.open_store().await);
        (self.ingest_on(store.clone()), store)
    }

    /// The ingest over a store that fails on demand.
    pub(crate) async fn flaky_ingest(&self) -> (Ingest, Arc<FlakyStore<SqliteStore>>) {
        let store = Arc::new(FlakyStore::new(self.open_store().await));
        (self.ingest_on(store.clone()), store)
    }

    async fn open_store(&self) -> SqliteStore {
        let store = SqliteStore::open(&self.dir.join("audit.db")).unwrap();
        let tenants =
            TenantSet::new(self.tenants.iter().map(|slug| TenantSlug::parse(slug).unwrap()));
        store.set_tenants(&tenants).await.unwrap();
        store
    }

    fn ingest_on<S>(&self, store: Arc<S>) -> Ingest
    where
        S: AuditStore + CursorStore + TenantDirectory + 'static,
    {
        let url = url::Url::parse(&self.authentik.uri()).unwrap();
        let mut config = AuthentikConfig::new(url, secrecy::SecretString::from(TOKEN));
        config.max_retries = 0;
        config.timeout = self.request_timeout;
        let client = Arc::new(AuthentikClient::new(config).unwrap());
        let ports = Ports {
            source: client.clone(),
            groups: client,
            store: store.clone(),
            cursors: store.clone(),
            tenants: store,
        };
        Ingest::new(ports, self.settings.clone())
    }

    pub(crate) async fn catch_up(&self) -> TickReport {
        let (ingest, _) = self.ingest().await;
        app::scheduler::catch_up(&ingest, &CancellationToken::new()).await.unwrap()
    }

    /// Every stored record, newest first.
    pub(crate) async fn stored(&self) -> Vec<AuditRecord> {
        let (_, store) = self.ingest().await;
        let query = TimelineQuery { limit: u32::MAX, ..TimelineQuery::default() };
        store.timeline(&query).await.unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT_DIR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub(crate) use tests::events::{history, login};

/// The external ids of `records`, sorted.
pub(crate) fn ids(records: &[AuditRecord]) -> Vec<String> {
    let mut ids: Vec<String> =
        records.iter().filter_map(|record| record.external_id.clone()).collect();
    ids.sort();
    ids
}

/// The `pk`s of `events`, sorted.
pub(crate) fn pks(events: &[Value]) -> Vec<String> {
    let mut pks: Vec<String> =
        events.iter().map(|event| event["pk"].as_str().unwrap().to_owned()).collect();
    pks.sort();
    pks
}
