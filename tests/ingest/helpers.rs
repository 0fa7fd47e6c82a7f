//! The world each ingest test builds: a mock Authentik, a SQLite store in a
//! temporary directory, and the ingest over them.

use std::path::PathBuf;
use std::sync::Arc;

use adapters_authentik::{AuthentikClient, AuthentikConfig};
use adapters_sqlite::SqliteStore;
use app::ingest::{Ingest, Ports, TickReport, TickSettings};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use domain::{AdminGroups, AuditRecord, TenantSet, TenantSlug};
use ports::{AuditReader, TimelineQuery};
use serde_json::{Value, json};
use tests::mock_authentik::MockAuthentik;
use tokio_util::sync::CancellationToken;

pub(crate) const TOKEN: &str = "test-token-0123456789";

/// A mock Authentik, a store file, and ingest settings.
pub(crate) struct World {
    pub(crate) authentik: MockAuthentik,
    pub(crate) dir: PathBuf,
    pub(crate) settings: TickSettings,
    pub(crate) tenants: Vec<&'static str>,
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
        Self { authentik, dir, settings, tenants: vec!["acme", "globex", "initech"] }
    }

    /// Opens the store and builds an ingest over it, as a process start
    /// would: every call is a fresh client with an empty group cache.
    pub(crate) async fn ingest(&self) -> (Ingest, Arc<SqliteStore>) {
        let store = Arc::new(SqliteStore::open(&self.dir.join("audit.db")).unwrap());
        let tenants =
            TenantSet::new(self.tenants.iter().map(|slug| TenantSlug::parse(slug).unwrap()));
        store.set_tenants(&tenants).await.unwrap();
        let url = url::Url::parse(&self.authentik.uri()).unwrap();
        let mut config = AuthentikConfig::new(url, secrecy::SecretString::from(TOKEN));
        config.max_retries = 0;
        let client = Arc::new(AuthentikClient::new(config).unwrap());
        let ports = Ports {
            source: client.clone(),
            groups: client,
            store: store.clone(),
            cursors: store.clone(),
            tenants: store.clone(),
        };
        (Ingest::new(ports, self.settings.clone()), store)
    }

    /// Runs ticks until the source is caught up.
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

/// Returns a login event of user 5 (`ana.example`, tenant acme) at `at`,
/// shaped like the captured ones.
pub(crate) fn login(n: u64, at: DateTime<Utc>) -> Value {
    json!({
        "pk": format!("00000000-0000-4000-8000-{n:012x}"),
        "user": {"pk": 5, "email": "ana.example@acme.example.test", "username": "ana.example"},
        "action": "login",
        "app": "authentik.events.signals",
        "context": {
            "auth_method": "password",
            "http_request": {
                "args": {"next": "/"},
                "path": "/api/v3/flows/executor/default-authentication-flow/",
                "method": "GET",
                "request_id": format!("{n:032x}"),
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
            },
            "auth_method_args": {"known_device": false}
        },
        "client_ip": "203.0.113.10",
        "created": at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "expires": (at + TimeDelta::days(365)).to_rfc3339_opts(SecondsFormat::Micros, true),
        "brand": {"pk": "a7503b9bb92d4c35bc6e0737c30aa98d", "app": "authentik_brands", "name": "Default brand", "model_name": "brand"}
    })
}

/// Returns `count` logins, one every `spacing`, the newest `newest_ago`
/// before now, oldest first.
pub(crate) fn history(count: u64, spacing: TimeDelta, newest_ago: TimeDelta) -> Vec<Value> {
    let newest = Utc::now() - newest_ago;
    (0..count).map(|n| login(n, newest - spacing * i32::try_from(count - 1 - n).unwrap())).collect()
}

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
