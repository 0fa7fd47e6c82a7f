//! The 78-event smoke scenario against a mock Authentik, stored in MongoDB:
//! on a fresh database, then again after a restart.

use std::collections::HashSet;
use std::sync::Arc;

use adapters_authentik::{AuthentikClient, AuthentikConfig};
use adapters_mongo::MongoStore;
use app::ingest::{Ingest, Ports, TickReport, TickSettings};
use chrono::TimeDelta;
use domain::AdminGroups;
use mongodb::bson::{Document, doc};
use ports::{AuditReader, TimelineQuery};
use tests::fixtures;
use tests::mock_authentik::MockAuthentik;
use tokio_util::sync::CancellationToken;

use crate::server::TestDatabase;

const TOKEN: &str = "test-token-0123456789";

/// Runs ticks until the source is caught up, with a fresh client and the
/// store given, as one process start would.
async fn catch_up(authentik: &MockAuthentik, store: MongoStore) -> TickReport {
    let url = url::Url::parse(&authentik.uri()).unwrap();
    let mut config = AuthentikConfig::new(url, secrecy::SecretString::from(TOKEN));
    config.max_retries = 0;
    let client = Arc::new(AuthentikClient::new(config).unwrap());
    let store = Arc::new(store);
    let ports = Ports {
        source: client.clone(),
        groups: client,
        store: store.clone(),
        cursors: store.clone(),
        tenants: store,
    };
    let settings = TickSettings {
        page_size: 100,
        max_pages: 10,
        overlap: TimeDelta::minutes(5),
        admin_groups: AdminGroups::default(),
    };
    let ingest = Ingest::new(ports, settings);
    app::scheduler::catch_up(&ingest, &CancellationToken::new()).await.unwrap()
}

#[tokio::test]
async fn smoke_gives_78_events_and_no_duplicates_fresh_and_after_a_restart() {
    let Some(test) = TestDatabase::fresh().await else { return };
    let tenants: Vec<Document> =
        ["acme", "globex", "initech"].iter().map(|slug| doc! { "slug": slug }).collect();
    test.scratch.database().collection::<Document>("tenants").insert_many(tenants).await.unwrap();
    let authentik = MockAuthentik::start(TOKEN).await;
    authentik.set_events(fixtures::smoke_events());
    authentik.set_users(fixtures::smoke_users());

    let fresh = catch_up(&authentik, test.store.clone()).await;
    let restarted = catch_up(&authentik, test.reopen().await).await;

    assert_eq!((fresh.stored, fresh.duplicates, fresh.set_aside), (78, 0, 0), "{fresh:?}");
    assert_eq!((restarted.stored, restarted.set_aside), (0, 0), "{restarted:?}");
    let query = TimelineQuery { limit: u32::MAX, ..TimelineQuery::default() };
    let stored = test.reopen().await.timeline(&query).await.unwrap();
    assert_eq!(stored.len(), 78);
    let ids: HashSet<&str> =
        stored.iter().filter_map(|record| record.external_id.as_deref()).collect();
    assert_eq!(ids.len(), 78, "each event is stored once");
    let expected = fixtures::smoke_expected();
    for want in &expected[..78] {
        let id = want["externalId"].as_str().unwrap();
        let record =
            stored.iter().find(|record| record.external_id.as_deref() == Some(id)).unwrap();
        assert_eq!(record.verb.as_str(), want["verb"].as_str().unwrap(), "verb of {id}");
        assert_eq!(
            record.tenant_slug.as_ref().map(|slug| slug.as_str()),
            want["tenantSlug"].as_str(),
            "tenant of {id}"
        );
    }
    let status = test.store.status().await.unwrap();
    assert_eq!((status[0].stored, status[0].set_aside), (78, 0));
}
