//! Wiring: builds the adapters the settings name and hands them to the
//! ingest loop as ports.

use std::sync::Arc;

use adapters_authentik::{AuthentikClient, AuthentikConfig};
use adapters_mongo::{CollectionNames, MongoStore, OpenError};
use adapters_sqlite::SqliteStore;
use anyhow::Context as _;
use ports::{AuditReader, AuditStore, CursorStore, TenantDirectory};

use crate::config::{AuthentikSettings, MongoCollections, SettingError, Settings, StoreLocation};
use crate::ingest::{Ingest, Ports, TickSettings};

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
}

impl Stores {
    /// Opens the store named by the settings and, when `TENANTS` is given,
    /// writes the tenant list to it.
    ///
    /// # Errors
    /// When the store cannot be opened or written.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
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
                    tenants: store,
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
                    tenants: store,
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
}

impl Wiring {
    /// Builds the Authentik client and the store, and the ingest over them.
    ///
    /// # Errors
    /// When the client cannot be built or the store cannot be opened.
    pub async fn open(settings: &Settings, authentik: &AuthentikSettings) -> anyhow::Result<Self> {
        if authentik.url.scheme() == "http" && !is_loopback(&authentik.url) {
            tracing::warn!(
                authentik = %authentik.url,
                "AUTHENTIK_URL uses plain http to a host that is not loopback; the token travels unencrypted."
            );
        }
        let mut config = AuthentikConfig::new(authentik.url.clone(), authentik.token.clone());
        config.ca_bundle = authentik.ca_bundle.clone();
        let client =
            Arc::new(AuthentikClient::new(config).context("building the Authentik client")?);
        let stores = Stores::open(settings).await?;
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
        Ok(Self { ingest: Ingest::new(ports, tick), stores })
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
