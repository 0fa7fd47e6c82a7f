//! Checks of what is particular to SQLite: the file, the schema, the stored
//! text. The store contract itself is checked in `tests/contract_sqlite`.

use chrono::DateTime;
use domain::{AuditRecord, Cursor, SourceName, TenantSet, TenantSlug, Verb};
use ports::{
    AuditReader, AuditStore, CursorStore, StoreError, StoreOutcome, TenantDirectory, TimelineQuery,
};

use super::*;

fn record(id: &str, verb: &str, at: &str) -> AuditRecord {
    let at = DateTime::parse_from_rfc3339(at).unwrap().to_utc();
    AuditRecord {
        source: SourceName::new("authentik"),
        external_id: Some(id.to_owned()),
        at,
        recorded_at: at,
        verb: Verb::new_unchecked(verb),
        action: "login".into(),
        actor: None,
        on_behalf_of: None,
        subject: None,
        tenant_slug: None,
        ip: None,
        user_agent: None,
        app: None,
        context: serde_json::json!({ "geo": { "lat": 0.1 } }),
    }
}

fn verbs_matching(store: &SqliteStore, verb: &str) -> Vec<String> {
    let query =
        TimelineQuery { verb: Some(verb.to_owned()), limit: 100, ..TimelineQuery::default() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let records = runtime.block_on(store.timeline(&query)).unwrap();
    let mut verbs: Vec<String> =
        records.into_iter().map(|record| record.verb.to_string()).collect();
    verbs.sort();
    verbs
}

fn raw_text(store: &SqliteStore, sql: &str) -> String {
    let connection = store.connection.lock().unwrap();
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[tokio::test]
async fn file_keeps_events_cursors_and_tenants_when_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let source = SourceName::new("authentik");
    let cursor = Cursor {
        last_event_at: Some(record("e", "v", "2026-01-01T00:00:00Z").at),
        ..Cursor::default()
    };
    let tenants = TenantSet::new([TenantSlug::parse("acme").unwrap()]);
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .store_batch(&[record("e1", "authentik.login", "2026-01-01T00:00:00Z")])
            .await
            .unwrap();
        store.save(&source, &cursor).await.unwrap();
        store.set_tenants(&tenants).await.unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();

    let query = TimelineQuery { limit: 10, ..TimelineQuery::default() };
    assert_eq!(store.timeline(&query).await.unwrap().len(), 1);
    assert_eq!(store.load(&source).await.unwrap(), Some(cursor));
    assert_eq!(store.tenants().await.unwrap(), tenants);
    let again = store.store_batch(&[record("e1", "authentik.login", "2026-01-01T00:00:00Z")]).await;
    assert_eq!(again.unwrap(), [StoreOutcome::Duplicate]);
}

#[test]
fn schema_is_unchanged_when_the_file_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let schema = |store: &SqliteStore| {
        raw_text(
            store,
            "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema ORDER BY name)",
        )
    };
    let first = schema(&SqliteStore::open(&path).unwrap());

    let store = SqliteStore::open(&path).unwrap();

    assert_eq!(schema(&store), first);
    assert_eq!(raw_text(&store, "SELECT CAST(user_version AS TEXT) FROM pragma_user_version"), "2");
    assert_eq!(raw_text(&store, "SELECT journal_mode FROM pragma_journal_mode"), "wal");
}

#[test]
fn open_names_the_missing_directory_when_the_parent_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("audit.db");

    let error = SqliteStore::open(&path).unwrap_err();

    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("does not exist"), "{text}");
}

#[test]
fn open_refuses_when_the_file_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    std::fs::write(&path, "this is not a database, just some text that is long enough").unwrap();

    let error = SqliteStore::open(&path).unwrap_err();

    assert!(matches!(error, StoreError::Other { .. }), "{error:?}");
}

#[test]
fn open_refuses_when_the_file_has_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();

    let error = SqliteStore::open(&path).unwrap_err();

    assert!(matches!(error, StoreError::Schema(_)), "{error:?}");
    assert!(error.to_string().contains("schema version 99"), "{error}");
}

#[tokio::test]
async fn stored_time_keeps_every_fractional_digit_when_written() {
    let store = SqliteStore::open_in_memory().unwrap();

    store.store_batch(&[record("e1", "v", "2026-12-03T16:38:13.695935Z")]).await.unwrap();

    assert_eq!(raw_text(&store, "SELECT at FROM audit_events"), "2026-12-03T16:38:13.695935000Z");
}

#[test]
fn stored_times_sort_as_text_in_time_order() {
    let times = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000001Z", "2026-01-01T00:00:00.1Z"];

    let texts: Vec<String> = times
        .iter()
        .map(|text| time_text(DateTime::parse_from_rfc3339(text).unwrap().to_utc()))
        .collect();

    let mut sorted = texts.clone();
    sorted.sort();
    assert_eq!(sorted, texts);
}

#[test]
fn verb_prefix_treats_like_wildcards_as_text_when_matching() {
    let store = SqliteStore::open_in_memory().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let verbs = ["x.login", "x.login_failed", "x.loginAfailed", "x.logout", "x.a%b", "x.a%_c"];
    let records: Vec<AuditRecord> = verbs
        .iter()
        .enumerate()
        .map(|(n, verb)| record(&format!("e{n}"), verb, "2026-01-01T00:00:00Z"))
        .collect();
    runtime.block_on(store.store_batch(&records)).unwrap();

    assert_eq!(verbs_matching(&store, "x.login"), ["x.login", "x.login_failed"]);
    assert_eq!(verbs_matching(&store, "x.%"), Vec::<String>::new());
    assert_eq!(verbs_matching(&store, "x.a%"), ["x.a%_c"]);
    assert_eq!(verbs_matching(&store, "x.a_b"), Vec::<String>::new());
    assert_eq!(verbs_matching(&store, "x.a\\"), Vec::<String>::new());
}

#[test]
fn verb_prefix_is_case_sensitive_when_matching() {
    let store = SqliteStore::open_in_memory().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let records = [
        record("e1", "x.login", "2026-01-01T00:00:00Z"),
        record("e2", "x.login_failed", "2026-01-01T00:00:00Z"),
    ];
    runtime.block_on(store.store_batch(&records)).unwrap();

    assert_eq!(verbs_matching(&store, "X.LOGIN"), Vec::<String>::new());
}

#[tokio::test]
async fn store_is_usable_when_its_lock_was_poisoned() {
    let store = SqliteStore::open_in_memory().unwrap();
    let poisoner = store.clone();
    let _ = std::thread::spawn(move || {
        let _guard = poisoner.connection.lock().unwrap();
        panic!("poisoning the lock on purpose");
    })
    .join();
    assert!(store.connection.is_poisoned());

    let outcomes = store.store_batch(&[record("e1", "v", "2026-01-01T00:00:00Z")]).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::Stored]);
}

#[tokio::test]
async fn changed_version_is_kept_whole_beside_the_original() {
    let store = SqliteStore::open_in_memory().unwrap();
    let original = record("e1", "authentik.login", "2026-01-01T00:00:00.123456Z");
    let mut changed = original.clone();
    changed.ip = Some("198.51.100.7".into());
    changed.actor =
        Some(domain::Identity { id: Some("5".into()), username: Some("ana".into()), email: None });
    changed.context = serde_json::json!({ "message": "edited", "nested": { "keys": [1, 2] } });
    store.store_batch(std::slice::from_ref(&original)).await.unwrap();

    store.store_batch(std::slice::from_ref(&changed)).await.unwrap();

    let kept: AuditRecord =
        serde_json::from_str(&raw_text(&store, "SELECT record FROM source_changes")).unwrap();
    assert_eq!(kept, changed);
}
