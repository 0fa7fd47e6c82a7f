//! What is particular to MongoDB: the indexes as created, records without
//! an external id, bulk inserts with duplicates, escaped context, documents
//! past the size limit, and cursors saved by racing writers.

use adapters_mongo::indexes::{self, EVENT_KEY_INDEX};
use adapters_mongo::{CollectionNames, MAX_DOCUMENT_BYTES, OpenError};
use chrono::{DateTime, TimeDelta, Utc};
use domain::{AuditRecord, Cursor, SourceName, Verb};
use futures::TryStreamExt as _;
use mongodb::bson::{Bson, Document, doc};
use ports::{AuditReader, AuditStore, CursorStore, StoreError, StoreOutcome, TimelineQuery};
use serde_json::json;

use crate::server::{Scratch, TestDatabase};

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-03T16:00:00.695935Z").unwrap().to_utc()
        + TimeDelta::minutes(minute)
}

fn record(id: Option<&str>, minute: i64) -> AuditRecord {
    AuditRecord {
        source: SourceName::new("authentik"),
        external_id: id.map(str::to_owned),
        at: at(minute),
        recorded_at: at(minute + 1),
        verb: Verb::new_unchecked("authentik.login"),
        action: "login".to_owned(),
        actor: None,
        on_behalf_of: None,
        subject: None,
        tenant_slug: None,
        ip: None,
        user_agent: None,
        app: None,
        context: json!({}),
    }
}

fn everything() -> TimelineQuery {
    TimelineQuery { limit: 1_000, ..TimelineQuery::default() }
}

async fn indexes_of(database: &mongodb::Database, collection: &str) -> Vec<Document> {
    let reply = database.run_command(doc! { "listIndexes": collection }).await;
    match reply {
        Ok(reply) => reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .iter()
            .map(|index| index.as_document().unwrap().clone())
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn count(database: &mongodb::Database, collection: &str, filter: Document) -> u64 {
    database.collection::<Document>(collection).count_documents(filter).await.unwrap()
}

#[tokio::test]
async fn event_key_index_is_created_unique_and_partial_on_string_ids() {
    let Some(test) = TestDatabase::fresh().await else { return };

    let listed = indexes_of(&test.scratch.database(), "audit_events").await;

    let key =
        listed.iter().find(|index| index.get_str("name").ok() == Some(EVENT_KEY_INDEX)).unwrap();
    assert_eq!(key.get_document("key").unwrap(), &doc! { "source": 1, "externalId": 1 });
    assert_eq!(key.get_bool("unique").ok(), Some(true));
    assert_eq!(
        key.get_document("partialFilterExpression").unwrap(),
        &doc! { "externalId": { "$type": "string" } }
    );
    assert!(!key.contains_key("sparse"));
    for (collection, specs) in indexes::specs(&CollectionNames::default()) {
        let listed = indexes_of(&test.scratch.database(), &collection).await;
        for spec in specs {
            let found = listed.iter().find(|index| index.get_str("name").ok() == Some(spec.name));
            let found = found.unwrap_or_else(|| panic!("no index {} on {collection}", spec.name));
            assert_eq!(indexes::difference(found, &spec), None, "{found}");
        }
    }
}

#[tokio::test]
async fn reopening_leaves_the_indexes_as_they_are() {
    let Some(test) = TestDatabase::fresh().await else { return };
    let before = indexes_of(&test.scratch.database(), "audit_events").await;

    test.reopen().await;

    assert_eq!(indexes_of(&test.scratch.database(), "audit_events").await, before);
}

#[tokio::test]
async fn index_of_the_same_name_and_another_definition_stops_the_store_before_any_write() {
    let Some(scratch) = Scratch::new().await else { return };
    let database = scratch.database();
    database
        .run_command(doc! {
            "createIndexes": "audit_events",
            "indexes": [ {
                "key": { "source": 1, "externalId": 1 },
                "name": EVENT_KEY_INDEX,
                "unique": true,
                "sparse": true,
            } ],
        })
        .await
        .unwrap();

    let error = scratch.open(CollectionNames::default()).await.unwrap_err();

    let OpenError::Store(StoreError::Schema(message)) = &error else { panic!("{error:?}") };
    assert!(message.contains(EVENT_KEY_INDEX) && message.contains("sparse"), "{message}");
    let names: Vec<String> = indexes_of(&database, "audit_events")
        .await
        .iter()
        .map(|index| index.get_str("name").unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "only `_id_` and the operator's index: {names:?}");
    let collections = database.list_collection_names().await.unwrap();
    assert_eq!(collections, ["audit_events"], "nothing else was created");
}

#[tokio::test]
async fn platform_records_without_external_id_both_insert() {
    let Some(test) = TestDatabase::fresh().await else { return };
    let platform = record(None, 1);

    let outcomes = test.store.store_batch(&[platform.clone(), platform]).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::Stored, StoreOutcome::Stored]);
    let database = test.scratch.database();
    assert_eq!(count(&database, "audit_events", doc! { "externalId": Bson::Null }).await, 2);
}

#[tokio::test]
async fn duplicate_in_the_middle_of_a_bulk_insert_does_not_stop_the_others() {
    let Some(test) = TestDatabase::fresh().await else { return };
    test.store.store_batch(&[record(Some("e3"), 3)]).await.unwrap();
    let batch: Vec<AuditRecord> = (1..=5).map(|n| record(Some(&format!("e{n}")), n)).collect();

    let outcomes = test.store.store_batch(&batch).await.unwrap();

    use StoreOutcome::{Duplicate, Stored};
    assert_eq!(outcomes, [Stored, Stored, Duplicate, Stored, Stored]);
    assert_eq!(count(&test.scratch.database(), "audit_events", doc! {}).await, 5);
}

#[tokio::test]
async fn awkward_context_is_stored_escaped_and_reads_back() {
    let Some(test) = TestDatabase::fresh().await else { return };
    let deep = (0..120).fold(json!("bottom"), |inner, _| json!({ "d": inner }));
    let mut awkward = record(Some("awkward"), 1);
    awkward.context = json!({
        "$where": "1", "a.b": { "$gt": 1 }, "nul\u{0}": [u64::MAX, i64::MIN], "deep": deep,
    });

    let outcomes = test.store.store_batch(std::slice::from_ref(&awkward)).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::Stored]);
    assert_eq!(test.store.timeline(&everything()).await.unwrap(), [awkward]);
    let stored: Document = test
        .scratch
        .database()
        .collection::<Document>("audit_events")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    let context = stored.get_document("context").unwrap();
    assert!(context.contains_key("%24where") && context.contains_key("a%2Eb"), "{context}");
}

#[tokio::test]
async fn record_past_the_size_limit_is_set_aside_and_the_rest_stored() {
    let Some(test) = TestDatabase::fresh().await else { return };
    let mut huge = record(Some("huge"), 2);
    huge.context = json!({ "blob": "x".repeat(MAX_DOCUMENT_BYTES) });
    let batch = [record(Some("e1"), 1), huge, record(Some("e3"), 3)];

    let outcomes = test.store.store_batch(&batch).await.unwrap();
    let again = test.store.store_batch(&batch[1..2]).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::Stored, StoreOutcome::SetAside, StoreOutcome::Stored]);
    assert_eq!(again, [StoreOutcome::SetAside]);
    let status = test.store.status().await.unwrap();
    assert_eq!((status[0].stored, status[0].set_aside), (2, 1));
    let set_aside: Document = test
        .scratch
        .database()
        .collection::<Document>("set_aside")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert!(set_aside.get_str("reason").unwrap().contains("16777216"), "{set_aside}");
}

#[tokio::test]
async fn cursor_never_moves_backwards_when_writers_race() {
    let Some(test) = TestDatabase::fresh().await else { return };
    let source = SourceName::new("authentik");
    let stores = futures::future::join_all((0..8).map(|_| test.reopen())).await;

    let saves = stores.iter().enumerate().map(|(n, store)| {
        let cursor = Cursor {
            last_event_at: Some(at(i64::try_from(n).unwrap())),
            last_event_id: Some(format!("e{n}")),
            walk: None,
        };
        let source = source.clone();
        async move { store.save(&source, &cursor).await }
    });
    let results = futures::future::join_all(saves).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let cursor = test.store.load(&source).await.unwrap().unwrap();
    assert_eq!(cursor.last_event_at, Some(at(7)));
    assert_eq!(cursor.last_event_id.as_deref(), Some("e7"));
}

#[tokio::test]
async fn configured_collection_names_are_used() {
    let Some(scratch) = Scratch::new().await else { return };
    let names = CollectionNames {
        events: "timeline".into(),
        cursors: "cursors".into(),
        ..CollectionNames::default()
    };
    let store = scratch.open(names).await.unwrap();

    store.store_batch(&[record(Some("e1"), 1)]).await.unwrap();
    store.save(&SourceName::new("authentik"), &Cursor::default()).await.unwrap();

    let mut collections = scratch.database().list_collection_names().await.unwrap();
    collections.sort();
    assert!(collections.contains(&"timeline".to_owned()), "{collections:?}");
    assert!(collections.contains(&"cursors".to_owned()), "{collections:?}");
    assert!(!collections.contains(&"audit_events".to_owned()), "{collections:?}");
    let listed: Vec<Document> = scratch
        .database()
        .collection::<Document>("timeline")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}
