//! Wiring: builds the adapters the settings name and hands them to the
//! ingest loop as ports.

use std::sync::Arc;
use std::time::Duration;

use adapters_authentik::{
    AuthentikClient, AuthentikConfig, BuildError, Endpoint, RequestObserver, RequestOutcome,
    UserAccess, VIEW_USER,
};
use adapters_mongo::{CollectionNames, MongoStore, OpenError};
use adapters_sqlite::SqliteStore;
use anyhow::Context as _;
use ports::{
    AuditReader, AuditStore, CursorStore, EventSource, LeaseStore, SourcePage, TenantDirectory,
};

use crate::check::Finding;
use crate::config::{AuthentikSettings, MongoCollections, SettingError, Settings, StoreLocation};
use crate::ingest::{Ingest, Ports, TickSettings};
use crate::lease::{self, LeaseKeeper};
use crate::metrics::Metrics;

/// The store, seen through each of its ports.
pub struct Stores {
    /// Where records go.
    pub audit: Arc<dyn AuditStore>,
    /// Where cursors are kept.
    pub cursors: Arc<dyn CursorStore>,
    /// Where the timeline is read back.
    pub reader: Arc<dyn AuditReader>,
    /// Where the tenants are listed.
    pub tenants: Arc<dyn TenantDirectory>,
    /// The leases that keep replicas from ingesting one source at once.
    pub leases: Arc<dyn LeaseStore>,
}

impl Stores {
    /// Opens the store named by the settings and, when `TENANTS` is given,
    /// writes the tenant list to it.
    ///
    /// # Errors
    /// When the store cannot be opened or written.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        Self::open_inner(settings).await
    }

    /// Opens the store for reading only: a SQLite file that does not exist
    /// is an error rather than created empty, so that a mistyped
    /// `AUDIT_STORE` is noticed instead of answering "no sources yet".
    ///
    /// # Errors
    /// As for [`open`](Self::open), and when the SQLite file is missing.
    pub async fn open_existing(settings: &Settings) -> anyhow::Result<Self> {
        if let StoreLocation::Sqlite(path) = &settings.store
            && !path.exists()
        {
            anyhow::bail!(
                "there is no store at `{}`; check AUDIT_STORE, or run `audit-ingest once` to create it",
                settings.store.redacted()
            );
        }
        Self::open_inner(settings).await
    }

    async fn open_inner(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.store {
            StoreLocation::Sqlite(path) => {
                let store = SqliteStore::open(path).with_context(|| {
                    format!("opening the store `{}`", settings.store.redacted())
                })?;
                if let Some(tenants) = &settings.tenants {
                    store.set_tenants(tenants).await.context("writing TENANTS to the store")?;
                }
                let store = Arc::new(store);
                Ok(Self {
                    audit: store.clone(),
                    cursors: store.clone(),
                    reader: store.clone(),
                    tenants: store.clone(),
                    leases: store,
                })
            }
            StoreLocation::Mongo(uri) => {
                if settings.tenants.is_some() {
                    return Err(SettingError {
                        name: "TENANTS",
                        message: "cannot be used with a MongoDB store, whose tenants are the \
                                  platform's own `tenants` collection; unset TENANTS"
                            .into(),
                    }
                    .into());
                }
                let store =
                    open_mongo(uri, &settings.mongo_collections).await.with_context(|| {
                        format!("opening the store `{}`", settings.store.redacted())
                    })?;
                let store = Arc::new(store);
                Ok(Self {
                    audit: store.clone(),
                    cursors: store.clone(),
                    reader: store.clone(),
                    tenants: store.clone(),
                    leases: store,
                })
            }
        }
    }
}

/// Connects to MongoDB; a connection string or collection name the driver
/// refuses is a setting error, named as such.
async fn open_mongo(uri: &str, names: &MongoCollections) -> anyhow::Result<MongoStore> {
    let names = CollectionNames {
        events: names.events.clone(),
        cursors: names.cursors.clone(),
        tenants: names.tenants.clone(),
        set_aside: names.set_aside.clone(),
        source_changes: names.source_changes.clone(),
        leases: names.leases.clone(),
    };
    match MongoStore::open(uri, names).await {
        Ok(store) => Ok(store),
        Err(OpenError::Settings(message)) => {
            Err(SettingError { name: "AUDIT_STORE", message }.into())
        }
        Err(OpenError::Store(error)) => Err(error.into()),
    }
}

/// Everything a running ingest needs.
pub struct Wiring {
    /// The ingest of the Authentik source.
    pub ingest: Ingest,
    /// The store.
    pub stores: Stores,
    /// This process's hold on the source's lease.
    pub lease: LeaseKeeper,
}

impl Wiring {
    /// Builds the Authentik client and the store, and the ingest over them.
    ///
    /// # Errors
    /// When the client cannot be built or the store cannot be opened.
    pub async fn open(settings: &Settings, authentik: &AuthentikSettings) -> anyhow::Result<Self> {
        Self::open_with(settings, authentik, None).await
    }

    /// As [`open`](Self::open), with every request to Authentik counted in
    /// `metrics` when given.
    ///
    /// # Errors
    /// When the client cannot be built or the store cannot be opened.
    pub async fn open_with(
        settings: &Settings,
        authentik: &AuthentikSettings,
        metrics: Option<Arc<Metrics>>,
    ) -> anyhow::Result<Self> {
        let client = Arc::new(client(authentik, metrics)?);
        let stores = Stores::open(settings).await?;
        match stores.tenants.tenants().await {
            Ok(tenants) if tenants.is_empty() => tracing::warn!(
                "No tenants are known, so every event is stored without a tenant; set TENANTS \
                 (SQLite) or fill the tenants collection (MongoDB) before the first run."
            ),
            Ok(_) => {}
            // The first tick reads them again and reports the failure.
            Err(error) => tracing::warn!(error = %error, "Reading the tenants failed."),
        }
        let lease = LeaseKeeper::new(
            stores.leases.clone(),
            client.name().clone(),
            lease::holder_name(),
            lease_length(settings.ingest.interval),
        );
        let ports = Ports {
            source: client.clone(),
            groups: client,
            store: stores.audit.clone(),
            cursors: stores.cursors.clone(),
            tenants: stores.tenants.clone(),
        };
        let tick = TickSettings {
            page_size: settings.ingest.page_size,
            max_pages: settings.ingest.max_pages_per_tick,
            overlap: settings.ingest.overlap,
            admin_groups: settings.admin_groups.clone(),
        };
        Ok(Self { ingest: Ingest::new(ports, tick), stores, lease })
    }
}

/// How long a lease lasts: one tick interval, so that a standby replica
/// takes over within an interval and a third of the holder dying, and never
/// under a second, so that renewing it stays cheap.
pub fn lease_length(interval: Duration) -> Duration {
    interval.max(Duration::from_secs(1))
}

/// Builds the Authentik client, warning when the token would travel in the
/// clear.
fn client(
    authentik: &AuthentikSettings,
    metrics: Option<Arc<Metrics>>,
) -> anyhow::Result<AuthentikClient> {
    if authentik.url.scheme() == "http" && !is_loopback(&authentik.url) {
        tracing::warn!(
            authentik = %authentik.url,
            "AUTHENTIK_URL uses plain http to a host that is not loopback; the token travels unencrypted."
        );
    }
    let mut config = AuthentikConfig::new(authentik.url.clone(), authentik.token.clone());
    config.ca_bundle = authentik.ca_bundle.clone();
    config.observer =
        metrics.map(|metrics| Arc::new(RequestCounter(metrics)) as Arc<dyn RequestObserver>);
    AuthentikClient::new(config).map_err(|error| match error {
        // A CA bundle that cannot be used is a setting to fix, not a fault
        // to retry: say which setting, and exit as settings errors do.
        BuildError::ReadCaBundle { .. } | BuildError::ParseCaBundle { .. } => {
            let cause = std::error::Error::source(&error)
                .map(|source| format!(": {source}"))
                .unwrap_or_default();
            SettingError { name: "AUTHENTIK_CA_BUNDLE", message: format!("{error}{cause}") }.into()
        }
        BuildError::Token => {
            SettingError { name: "AUTHENTIK_TOKEN", message: error.to_string() }.into()
        }
        BuildError::BaseUrl { .. } => {
            SettingError { name: "AUTHENTIK_URL", message: error.to_string() }.into()
        }
        other => anyhow::Error::new(other).context("building the Authentik client"),
    })
}

/// Counts each request to Authentik in the metrics.
struct RequestCounter(Arc<Metrics>);

impl RequestObserver for RequestCounter {
    fn request_finished(&self, endpoint: Endpoint, outcome: RequestOutcome) {
        self.0.record_request(endpoint.as_str(), outcome.to_string());
    }
}

/// Reads a file of Authentik events: an API page or a JSON array.
///
/// # Errors
/// A short reason when the bytes are neither.
pub fn read_authentik_export(bytes: &[u8]) -> Result<SourcePage, String> {
    adapters_authentik::read_export(bytes)
}

/// Checks what the token may read in Authentik.
pub async fn check_authentik(authentik: &AuthentikSettings) -> Vec<Finding> {
    let client = match client(authentik, None) {
        Ok(client) => client,
        Err(error) => return vec![Finding::failed("authentik", format!("{error:#}"))],
    };
    let access = client.check_access().await;
    let events = match access.events {
        Ok(count) => {
            Finding::ok("authentik", format!("reads events at {} ({count} visible)", authentik.url))
        }
        Err(error) => Finding::failed("authentik", format!("cannot read events: {error}")),
    };
    let users = match access.users {
        UserAccess::Readable(count) => {
            Finding::ok("authentik", format!("reads users' groups ({count} users visible)"))
        }
        UserAccess::MissingPermission => Finding::failed(
            "authentik",
            format!(
                "cannot read users: the token lacks `{VIEW_USER}`, so every event would land in no tenant; grant it to the token's user through a role"
            ),
        ),
        UserAccess::Failed(reason) => {
            Finding::failed("authentik", format!("cannot read users: {reason}"))
        }
    };
    vec![events, users]
}

/// Checks that the store can be reached and that its indexes are as this
/// build needs.
///
/// A store file that does not exist is not created. Opening one applies
/// the schema as every command does, which recreates a missing index (or
/// fails, naming the duplicates' problem); an index of the right name but
/// another definition is left alone and reported.
///
/// MongoDB is checked by opening it, which verifies every index by name and
/// definition.
pub async fn check_store(settings: &Settings) -> Vec<Finding> {
    let shown = settings.store.redacted();
    match &settings.store {
        StoreLocation::Sqlite(path) if !path.exists() => vec![Finding::ok(
            "store",
            format!("`{shown}` does not exist yet; the first `run` or `once` creates it"),
        )],
        StoreLocation::Sqlite(path) => {
            let store = match SqliteStore::open(path) {
                Ok(store) => store,
                Err(error) => {
                    return vec![Finding::failed(
                        "store",
                        format!("cannot open `{shown}`: {error}"),
                    )];
                }
            };
            match store.index_states().await {
                Ok(states) => states
                    .into_iter()
                    .map(|state| match state.problem {
                        None => Finding::ok(
                            "store",
                            format!("index {} is as expected ({})", state.name, state.purpose),
                        ),
                        Some(problem) => {
                            Finding::failed("store", format!("index {}: {problem}", state.name))
                        }
                    })
                    .collect(),
                Err(error) => vec![Finding::failed("store", format!("{error}"))],
            }
        }
        // Opening a MongoDB store creates any missing index and stops,
        // naming it, at one whose definition differs: success means every
        // index is present and as this build defines it.
        StoreLocation::Mongo(uri) => match open_mongo(uri, &settings.mongo_collections).await {
            Ok(_) => vec![Finding::ok(
                "store",
                format!("reached `{shown}`; its indexes are present and as expected"),
            )],
            Err(error) => vec![Finding::failed("store", format!("`{shown}`: {error:#}"))],
        },
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}
