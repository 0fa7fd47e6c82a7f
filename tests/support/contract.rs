//! The store contract: one suite every audit store must pass.
//!
//! Each check is an async function that takes a fresh, empty store and
//! panics when the store breaks the contract the `ports` traits document.
//! The checks know nothing of any one store, so the SQLite store and any
//! later one run the very same suite. [`store_contract!`](crate::store_contract) turns the checks
//! into one `#[tokio::test]` each, so every check passes or fails on its own
//! line of the test report:
//!
//! ```ignore
//! tests::store_contract!(async { SqliteStore::open_in_memory().unwrap() });
//! ```
//!
//! When the store needs something kept alive beside it, such as the
//! temporary directory of its file, build a fixture and say how to reach the
//! store in it:
//!
//! ```ignore
//! tests::store_contract!(
//!     fixture = async { let dir = tempdir().unwrap(); let store = open(&dir); (dir, store) },
//!     store = |fixture| fixture.1,
//! );
//! ```
//!
//! A store that is not reachable everywhere (a server, a container) gives
//! an `optional_fixture` whose `.await` is an `Option`: each check passes
//! without running when it is `None`, and the fixture says why it is.

use chrono::{DateTime, TimeDelta, Utc};
use domain::{
    AuditRecord, Cursor, EventKey, Identity, ModelSubject, SourceName, Subject, TenantSlug, Verb,
    Walk,
};
use ports::{
    AuditReader, AuditStore, CursorStore, Lease, LeaseOutcome, LeaseStore, RejectedEvent,
    SourceStatus, StoreOutcome, TimelineQuery,
};
use serde_json::json;

/// A store the contract can check: every store port at once.
pub trait ContractStore: AuditStore + CursorStore + AuditReader + LeaseStore + Send + Sync {}

impl<T: AuditStore + CursorStore + AuditReader + LeaseStore + Send + Sync> ContractStore for T {}

/// Expands to one `#[tokio::test]` per contract check, each against a fresh
/// store.
///
/// Takes either an expression whose `.await` is the store, or
/// `fixture = EXPR, store = |NAME| EXPR` when the store lives inside a
/// fixture that must outlive it, or `optional_fixture = EXPR, store = |NAME|
/// EXPR` when the fixture is an `Option` that is `None` where the store
/// cannot be reached.
#[macro_export]
macro_rules! store_contract {
    (fixture = $fixture:expr, store = |$bind:ident| $store:expr $(,)?) => {
        $crate::store_contract!(@checks ($fixture) ($bind) ($store) @list);
    };
    (optional_fixture = $fixture:expr, store = |$bind:ident| $store:expr $(,)?) => {
        $crate::store_contract!(@checks (optional $fixture) ($bind) ($store) @list);
    };
    (@checks ($($fixture:tt)+) ($bind:ident) ($store:expr) @list) => {
        $crate::store_contract!(@checks ($($fixture)+) ($bind) ($store)
            batch_is_reported_stored_when_every_record_is_new,
            batch_reports_nothing_when_empty,
            original_is_kept_when_a_changed_copy_is_stored_again,
            changed_version_is_counted_once_when_read_again,
            duplicate_is_plain_when_only_what_this_program_adds_differs,
            rest_of_the_batch_is_stored_when_a_duplicate_is_in_the_middle,
            second_copy_is_duplicate_when_one_batch_holds_the_same_id_twice,
            records_without_external_id_both_store_when_otherwise_equal,
            same_external_id_stores_twice_when_sources_differ,
            timeline_lists_newest_first_when_unfiltered,
            timeline_keeps_one_tenant_when_filtered_by_tenant,
            timeline_keeps_only_that_verb_when_filtered_by_a_whole_verb,
            timeline_keeps_verbs_under_the_prefix_when_filtered_by_a_prefix,
            timeline_keeps_the_actor_when_filtered_by_username,
            timeline_keeps_the_actor_when_filtered_by_email,
            timeline_keeps_the_half_open_range_when_filtered_by_since_and_until,
            timeline_stops_at_the_limit_when_more_records_match,
            record_reads_back_unchanged_when_stored,
            cursor_is_none_when_the_source_was_never_saved,
            cursor_reads_back_unchanged_when_saved_with_a_walk,
            cursor_moves_forward_when_saved_with_a_newer_time,
            cursor_keeps_the_newer_time_when_saved_with_an_older_one,
            cursor_keeps_its_time_when_saved_without_one,
            cursor_is_replaced_when_neither_has_a_time,
            set_aside_keeps_one_copy_when_an_event_is_set_aside_twice,
            set_aside_keeps_one_copy_when_an_event_without_id_is_set_aside_twice,
            status_counts_stored_events_per_source,
            status_lists_a_source_when_it_has_only_a_cursor,
            status_is_empty_when_the_store_is_new,
            lease_is_held_when_free,
            lease_is_refused_while_another_holds_it,
            lease_is_taken_over_when_it_lapsed,
            lease_is_extended_when_its_holder_renews_it,
            lease_is_free_when_its_holder_releases_it,
            lease_stays_when_another_releases_it,
            lease_goes_to_exactly_one_when_many_race,
            leases_of_different_sources_are_independent,
        );
    };
    (@checks (optional $fixture:expr) ($bind:ident) ($store:expr) $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                // `None` means the store cannot be reached here; the fixture
                // has said why.
                let Some($bind) = $fixture.await else { return };
                $crate::contract::$check(&$store).await;
            }
        )*
    };
    (@checks ($fixture:expr) ($bind:ident) ($store:expr) $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let $bind = $fixture.await;
                $crate::contract::$check(&$store).await;
            }
        )*
    };
    ($make:expr $(,)?) => {
        $crate::store_contract!(fixture = $make, store = |store| store);
    };
}

const SOURCE: &str = "authentik";

/// Returns a time on a fixed day, `minute` minutes in, with microseconds so
/// that a store that rounds them fails.
fn minute(minute: i64) -> DateTime<Utc> {
    let base = DateTime::parse_from_rfc3339("2026-12-03T16:00:00.695935Z").unwrap().to_utc();
    base + TimeDelta::minutes(minute)
}

/// Returns a plain login record of [`SOURCE`] with `id`, at `minute`.
fn record(id: &str, at_minute: i64) -> AuditRecord {
    AuditRecord {
        source: SourceName::new(SOURCE),
        external_id: Some(id.to_owned()),
        at: minute(at_minute),
        recorded_at: minute(at_minute + 1),
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

fn with_verb(mut record: AuditRecord, verb: &str) -> AuditRecord {
    record.verb = Verb::new_unchecked(verb);
    record
}

fn with_actor(mut record: AuditRecord, username: &str, email: &str) -> AuditRecord {
    record.actor = Some(Identity {
        id: Some(format!("id-{username}")),
        username: Some(username.to_owned()),
        email: Some(email.to_owned()),
    });
    record
}

fn everything() -> TimelineQuery {
    TimelineQuery { limit: 1_000, ..TimelineQuery::default() }
}

/// Stores `records`, asserting every one is new.
async fn store_all(store: &dyn ContractStore, records: &[AuditRecord]) {
    let outcomes = store.store_batch(records).await.unwrap();
    assert_eq!(outcomes, vec![StoreOutcome::Stored; records.len()], "every record is new");
}

/// Returns the external ids the timeline lists for `query`, in its order.
async fn ids(store: &dyn ContractStore, query: &TimelineQuery) -> Vec<String> {
    let records = store.timeline(query).await.unwrap();
    records.into_iter().map(|record| record.external_id.unwrap_or_default()).collect()
}

async fn status_of(store: &dyn ContractStore, source: &str) -> SourceStatus {
    let statuses = store.status().await.unwrap();
    let found = statuses.iter().find(|status| status.source.as_str() == source);
    found.cloned().unwrap_or_else(|| panic!("no status for `{source}` in {statuses:?}"))
}

/// Checks that a batch of new records comes back as stored, in order.
pub async fn batch_is_reported_stored_when_every_record_is_new(store: &dyn ContractStore) {
    let records = [record("e1", 1), record("e2", 2), record("e3", 3)];

    let outcomes = store.store_batch(&records).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::Stored; 3]);
    assert_eq!(ids(store, &everything()).await, ["e3", "e2", "e1"]);
}

/// Checks that an empty batch is no error and has no outcomes.
pub async fn batch_reports_nothing_when_empty(store: &dyn ContractStore) {
    let outcomes = store.store_batch(&[]).await.unwrap();

    assert!(outcomes.is_empty());
    assert!(store.timeline(&everything()).await.unwrap().is_empty());
}

/// Returns `original` as the source might send it after an admin edited it.
fn edited(original: &AuditRecord, note: &str) -> AuditRecord {
    let mut changed = original.clone();
    changed.action = "logout".to_owned();
    changed.recorded_at = minute(50);
    changed.context = json!({ "edited": note });
    changed
}

/// Checks that a record the source changed is reported as such, that the
/// first copy stays, and that the change is counted.
pub async fn original_is_kept_when_a_changed_copy_is_stored_again(store: &dyn ContractStore) {
    let original = record("e1", 1);
    store_all(store, std::slice::from_ref(&original)).await;

    let outcomes = store.store_batch(&[edited(&original, "once")]).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::ChangedAtSource]);
    assert_eq!(store.timeline(&everything()).await.unwrap(), [original]);
    assert_eq!(status_of(store, SOURCE).await.changed_at_source, 1);
}

/// Checks that each changed version counts once, however often it is read.
pub async fn changed_version_is_counted_once_when_read_again(store: &dyn ContractStore) {
    let original = record("e1", 1);
    store_all(store, std::slice::from_ref(&original)).await;
    store.store_batch(&[edited(&original, "once")]).await.unwrap();

    let again = store.store_batch(&[edited(&original, "once")]).await.unwrap();
    let twice = store.store_batch(&[edited(&original, "twice")]).await.unwrap();
    let unchanged = store.store_batch(std::slice::from_ref(&original)).await.unwrap();

    assert_eq!(again, [StoreOutcome::Duplicate]);
    assert_eq!(twice, [StoreOutcome::ChangedAtSource]);
    assert_eq!(unchanged, [StoreOutcome::Duplicate]);
    assert_eq!(status_of(store, SOURCE).await.changed_at_source, 2);
    assert_eq!(store.timeline(&everything()).await.unwrap(), [original]);
}

/// Checks that a re-read whose only differences are the ones this program
/// makes itself (when it read the event, the tenant it inferred) is a plain
/// duplicate.
pub async fn duplicate_is_plain_when_only_what_this_program_adds_differs(
    store: &dyn ContractStore,
) {
    let original = record("e1", 1);
    store_all(store, std::slice::from_ref(&original)).await;
    let mut reread = original.clone();
    reread.recorded_at = minute(99);
    reread.tenant_slug = Some(TenantSlug::parse("acme").unwrap());

    let outcomes = store.store_batch(&[reread]).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::Duplicate]);
    assert_eq!(status_of(store, SOURCE).await.changed_at_source, 0);
}

/// Checks that a duplicate does not stop the records after it.
pub async fn rest_of_the_batch_is_stored_when_a_duplicate_is_in_the_middle(
    store: &dyn ContractStore,
) {
    store_all(store, &[record("e2", 2)]).await;

    let outcomes =
        store.store_batch(&[record("e1", 1), record("e2", 2), record("e3", 3)]).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::Stored, StoreOutcome::Duplicate, StoreOutcome::Stored]);
    assert_eq!(ids(store, &everything()).await, ["e3", "e2", "e1"]);
}

/// Checks that the second of two records with one id in a batch is a
/// duplicate of the first.
pub async fn second_copy_is_duplicate_when_one_batch_holds_the_same_id_twice(
    store: &dyn ContractStore,
) {
    let first = record("e1", 1);
    let mut second = record("e1", 1);
    second.recorded_at = minute(2);

    let outcomes = store.store_batch(&[first.clone(), second]).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::Stored, StoreOutcome::Duplicate]);
    assert_eq!(store.timeline(&everything()).await.unwrap(), [first]);
}

/// Checks that records without an external id never collide.
pub async fn records_without_external_id_both_store_when_otherwise_equal(
    store: &dyn ContractStore,
) {
    let mut platform = record("unused", 1);
    platform.external_id = None;

    let outcomes = store.store_batch(&[platform.clone(), platform.clone()]).await.unwrap();
    let again = store.store_batch(std::slice::from_ref(&platform)).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::Stored, StoreOutcome::Stored]);
    assert_eq!(again, [StoreOutcome::Stored]);
    assert_eq!(store.timeline(&everything()).await.unwrap().len(), 3);
}

/// Checks that external ids are unique per source, not across sources.
pub async fn same_external_id_stores_twice_when_sources_differ(store: &dyn ContractStore) {
    let mut other = record("e1", 2);
    other.source = SourceName::new("other");

    let outcomes = store.store_batch(&[record("e1", 1), other]).await.unwrap();

    assert_eq!(outcomes, [StoreOutcome::Stored, StoreOutcome::Stored]);
    assert_eq!(status_of(store, SOURCE).await.stored, 1);
    assert_eq!(status_of(store, "other").await.stored, 1);
}

/// Checks that the timeline lists the newest record first, whatever the
/// order they were stored in.
pub async fn timeline_lists_newest_first_when_unfiltered(store: &dyn ContractStore) {
    store_all(store, &[record("b", 2), record("c", 3)]).await;
    store_all(store, &[record("a", 1), record("d", 4)]).await;

    assert_eq!(ids(store, &everything()).await, ["d", "c", "b", "a"]);
}

/// Checks the tenant filter.
pub async fn timeline_keeps_one_tenant_when_filtered_by_tenant(store: &dyn ContractStore) {
    let acme = TenantSlug::parse("acme").unwrap();
    let in_tenant = |id, at, slug: &str| {
        let mut record = record(id, at);
        record.tenant_slug = Some(TenantSlug::parse(slug).unwrap());
        record
    };
    store_all(store, &[in_tenant("a1", 1, "acme"), in_tenant("g1", 2, "globex"), record("n1", 3)])
        .await;
    store_all(store, &[in_tenant("a2", 4, "acme")]).await;

    let query = TimelineQuery { tenant: Some(acme), ..everything() };

    assert_eq!(ids(store, &query).await, ["a2", "a1"]);
}

fn verbs() -> [AuditRecord; 5] {
    [
        with_verb(record("login", 1), "authentik.login"),
        with_verb(record("login_failed", 2), "authentik.login_failed"),
        with_verb(record("logout", 3), "authentik.logout"),
        with_verb(record("login_sub", 4), "authentik.login.sub"),
        with_verb(record("other_login", 5), "other.authentik.login"),
    ]
}

/// Checks that a verb with nothing under it keeps only that verb.
pub async fn timeline_keeps_only_that_verb_when_filtered_by_a_whole_verb(
    store: &dyn ContractStore,
) {
    store_all(store, &verbs()).await;

    let query = TimelineQuery { verb: Some("authentik.login_failed".to_owned()), ..everything() };

    assert_eq!(ids(store, &query).await, ["login_failed"]);
}

/// Checks the prefix rule: a verb followed by `.` or `_`, nothing else.
pub async fn timeline_keeps_verbs_under_the_prefix_when_filtered_by_a_prefix(
    store: &dyn ContractStore,
) {
    store_all(store, &verbs()).await;

    let login = TimelineQuery { verb: Some("authentik.login".to_owned()), ..everything() };
    let authentik = TimelineQuery { verb: Some("authentik".to_owned()), ..everything() };
    let partial = TimelineQuery { verb: Some("authentik.log".to_owned()), ..everything() };

    assert_eq!(ids(store, &login).await, ["login_sub", "login_failed", "login"]);
    assert_eq!(ids(store, &authentik).await.len(), 4);
    assert!(ids(store, &partial).await.is_empty(), "a prefix stops only at `.` or `_`");
}

fn actors() -> [AuditRecord; 3] {
    [
        with_actor(record("alice1", 1), "alice", "alice@example.com"),
        with_actor(record("bob1", 2), "bob", "bob@example.com"),
        with_actor(record("alice2", 3), "alice", "alice@example.com"),
    ]
}

/// Checks the actor filter by username.
pub async fn timeline_keeps_the_actor_when_filtered_by_username(store: &dyn ContractStore) {
    store_all(store, &actors()).await;
    store_all(store, &[record("nobody", 4)]).await;

    let query = TimelineQuery { actor: Some("alice".to_owned()), ..everything() };

    assert_eq!(ids(store, &query).await, ["alice2", "alice1"]);
}

/// Checks the actor filter by e-mail.
pub async fn timeline_keeps_the_actor_when_filtered_by_email(store: &dyn ContractStore) {
    store_all(store, &actors()).await;

    let query = TimelineQuery { actor: Some("bob@example.com".to_owned()), ..everything() };
    let partial = TimelineQuery { actor: Some("example.com".to_owned()), ..everything() };

    assert_eq!(ids(store, &query).await, ["bob1"]);
    assert!(ids(store, &partial).await.is_empty(), "the actor must match whole");
}

/// Checks that `since` is inclusive and `until` exclusive, to the
/// microsecond.
pub async fn timeline_keeps_the_half_open_range_when_filtered_by_since_and_until(
    store: &dyn ContractStore,
) {
    store_all(store, &[record("e1", 1), record("e2", 2), record("e3", 3), record("e4", 4)]).await;
    let mut just_before = record("e2-", 0);
    just_before.at = minute(2) - TimeDelta::microseconds(1);
    store_all(store, &[just_before]).await;

    let query = TimelineQuery { since: Some(minute(2)), until: Some(minute(4)), ..everything() };
    let since = TimelineQuery { since: Some(minute(3)), ..everything() };
    let until = TimelineQuery { until: Some(minute(2)), ..everything() };

    assert_eq!(ids(store, &query).await, ["e3", "e2"]);
    assert_eq!(ids(store, &since).await, ["e4", "e3"]);
    assert_eq!(ids(store, &until).await, ["e2-", "e1"]);
}

/// Checks that the limit keeps the newest records.
pub async fn timeline_stops_at_the_limit_when_more_records_match(store: &dyn ContractStore) {
    store_all(store, &[record("e1", 1), record("e2", 2), record("e3", 3)]).await;

    let query = TimelineQuery { limit: 2, ..TimelineQuery::default() };

    assert_eq!(ids(store, &query).await, ["e3", "e2"]);
}

/// Checks that a record comes back exactly as stored: microseconds, nested
/// context, unusual text, and both kinds of subject.
pub async fn record_reads_back_unchanged_when_stored(store: &dyn ContractStore) {
    let text = "Zoë 日本 🚀 \u{202e}rtl e\u{301} \u{0}\u{1}\t\n\r\u{7f} \"quoted\" \\ '; --";
    let mut user = record("user", 2);
    user.at = DateTime::parse_from_rfc3339("2026-12-03T16:38:13.000001Z").unwrap().to_utc();
    user.recorded_at =
        DateTime::parse_from_rfc3339("2026-12-03T16:38:14.999999Z").unwrap().to_utc();
    user.verb = Verb::new_unchecked("authentik.password_changed");
    user.action = text.to_owned();
    user.actor = Some(Identity {
        id: Some("7".to_owned()),
        username: Some(text.to_owned()),
        email: Some("zoë@example.com".to_owned()),
    });
    user.on_behalf_of = Some(Identity { id: None, username: Some("bob".to_owned()), email: None });
    user.subject = Some(Subject::User(Identity {
        id: Some("9".to_owned()),
        username: None,
        email: Some("carol@example.com".to_owned()),
    }));
    user.tenant_slug = Some(TenantSlug::parse("acme_2-b").unwrap());
    user.ip = Some("2001:db8::1".to_owned());
    user.user_agent = Some(text.to_owned());
    user.app = Some("authentik.events.signals".to_owned());
    user.context = json!({
        "http_request": { "args": { "next": ["/a", "/b"] }, "method": "POST", "path": text },
        "geo": { "lat": 0.1, "long": -122.419_415_5, "tiny": 1e-7 },
        "numbers": [0, -1, 9_007_199_254_740_993_i64, i64::MIN, 1.5],
        "nothing": null,
        "flags": [true, false],
        "empty": { "object": {}, "array": [], "text": "" },
        "schlüssel 日本 🔑": text,
    });
    let mut model = record("model", 1);
    model.verb = Verb::new_unchecked("authentik.model_updated");
    model.subject = Some(Subject::Model(ModelSubject {
        app: Some("authentik_core".to_owned()),
        model_name: Some("group".to_owned()),
        pk: Some("0b7c0a4e-5bdf-4b0e-9c1e-2b0c3a3e7f11".to_owned()),
        name: None,
    }));
    model.context = json!(null);

    store_all(store, &[model.clone(), user.clone()]).await;

    assert_eq!(store.timeline(&everything()).await.unwrap(), [user, model]);
}

/// Checks that a source never saved has no cursor.
pub async fn cursor_is_none_when_the_source_was_never_saved(store: &dyn ContractStore) {
    store.save(&SourceName::new("other"), &Cursor::default()).await.unwrap();

    let cursor = store.load(&SourceName::new(SOURCE)).await.unwrap();

    assert_eq!(cursor, None);
}

fn walk(next_page: u32) -> Walk {
    Walk {
        top: Some(EventKey { at: minute(30), id: "top-event".to_owned() }),
        floor: Some(minute(-5)),
        next_page,
        count: 12_345,
        page_size: 100,
        step_backs: 2,
        furthest: next_page + 3,
        unsure_below: Some(minute(7)),
        ends_at_next: true,
    }
}

fn cursor_at(at_minute: Option<i64>, walk: Option<Walk>) -> Cursor {
    Cursor {
        last_event_at: at_minute.map(minute),
        last_event_id: at_minute.map(|at| format!("event-at-{at}")),
        walk,
    }
}

/// Checks that a cursor with a walk under way comes back exactly.
pub async fn cursor_reads_back_unchanged_when_saved_with_a_walk(store: &dyn ContractStore) {
    let source = SourceName::new(SOURCE);
    let cursor = cursor_at(Some(0), Some(walk(3)));

    store.save(&source, &cursor).await.unwrap();

    assert_eq!(store.load(&source).await.unwrap(), Some(cursor));
}

/// Checks that a newer cursor replaces the stored one, walk and all.
pub async fn cursor_moves_forward_when_saved_with_a_newer_time(store: &dyn ContractStore) {
    let source = SourceName::new(SOURCE);
    store.save(&source, &cursor_at(Some(0), Some(walk(3)))).await.unwrap();
    let same_time = cursor_at(Some(0), Some(walk(4)));
    store.save(&source, &same_time).await.unwrap();
    assert_eq!(store.load(&source).await.unwrap(), Some(same_time), "the same time may move on");

    let newer = cursor_at(Some(10), None);
    store.save(&source, &newer).await.unwrap();

    assert_eq!(store.load(&source).await.unwrap(), Some(newer));
}

/// Checks that a save never moves the cursor's time backwards.
pub async fn cursor_keeps_the_newer_time_when_saved_with_an_older_one(store: &dyn ContractStore) {
    let source = SourceName::new(SOURCE);
    let newer = cursor_at(Some(10), None);
    store.save(&source, &newer).await.unwrap();

    store.save(&source, &cursor_at(Some(9), Some(walk(2)))).await.unwrap();
    let mut a_microsecond_older = newer.clone();
    a_microsecond_older.last_event_at = Some(minute(10) - TimeDelta::microseconds(1));
    store.save(&source, &a_microsecond_older).await.unwrap();

    assert_eq!(store.load(&source).await.unwrap(), Some(newer));
}

/// Checks that a cursor without a time does not replace one with a time.
pub async fn cursor_keeps_its_time_when_saved_without_one(store: &dyn ContractStore) {
    let source = SourceName::new(SOURCE);
    let settled = cursor_at(Some(10), None);
    store.save(&source, &settled).await.unwrap();

    store.save(&source, &cursor_at(None, Some(walk(1)))).await.unwrap();

    assert_eq!(store.load(&source).await.unwrap(), Some(settled));
}

/// Checks that a first walk, which has no time yet, can record its progress.
pub async fn cursor_is_replaced_when_neither_has_a_time(store: &dyn ContractStore) {
    let source = SourceName::new(SOURCE);
    store.save(&source, &cursor_at(None, Some(walk(1)))).await.unwrap();

    let progressed = cursor_at(None, Some(walk(2)));
    store.save(&source, &progressed).await.unwrap();

    assert_eq!(store.load(&source).await.unwrap(), Some(progressed));
}

fn rejected(external_id: Option<&str>, raw: serde_json::Value) -> RejectedEvent {
    RejectedEvent {
        external_id: external_id.map(str::to_owned),
        at: Some(minute(1)),
        reason: "field `created` is not a time".to_owned(),
        raw,
    }
}

/// Checks that an event set aside twice is kept once, and counted.
pub async fn set_aside_keeps_one_copy_when_an_event_is_set_aside_twice(store: &dyn ContractStore) {
    let source = SourceName::new(SOURCE);
    let first = rejected(Some("bad-1"), json!({ "pk": "bad-1", "created": "yesterday" }));
    let other = rejected(Some("bad-2"), json!({ "pk": "bad-2" }));
    let added_first = store.set_aside(&source, std::slice::from_ref(&first)).await.unwrap();

    let mut again = first.clone();
    again.reason = "another reason".to_owned();
    let added_then = store.set_aside(&source, &[again, other]).await.unwrap();

    assert_eq!((added_first, added_then), (1, 1), "a copy read again is not counted again");
    let status = status_of(store, SOURCE).await;
    assert_eq!(status.set_aside, 2);
    assert_eq!(status.stored, 0, "set-aside events are not in the timeline");
    assert!(store.timeline(&everything()).await.unwrap().is_empty());
}

/// Checks that an item without an id set aside twice is kept once, while two
/// different items without an id are both kept.
pub async fn set_aside_keeps_one_copy_when_an_event_without_id_is_set_aside_twice(
    store: &dyn ContractStore,
) {
    let source = SourceName::new(SOURCE);
    let mut unreadable = rejected(None, json!(["not", "an", "event"]));
    unreadable.at = None;
    let different = rejected(None, json!("also not an event"));

    let added_first = store.set_aside(&source, &[unreadable.clone(), different]).await.unwrap();
    let added_again = store.set_aside(&source, &[unreadable]).await.unwrap();

    assert_eq!((added_first, added_again), (2, 0));
    assert_eq!(status_of(store, SOURCE).await.set_aside, 2);
}

/// Checks that the status counts each source's stored events, and that a
/// source with events but no cursor is listed.
pub async fn status_counts_stored_events_per_source(store: &dyn ContractStore) {
    let mut other = record("o1", 1);
    other.source = SourceName::new("other");
    store_all(store, &[record("e1", 1), record("e2", 2), other]).await;
    store.store_batch(&[record("e1", 1)]).await.unwrap();
    store.save(&SourceName::new(SOURCE), &cursor_at(Some(2), None)).await.unwrap();

    let status = status_of(store, SOURCE).await;
    let other = status_of(store, "other").await;

    assert_eq!((status.stored, status.set_aside), (2, 0));
    assert_eq!(status.cursor, Some(cursor_at(Some(2), None)));
    assert_eq!((other.stored, other.cursor), (1, None));
    assert_eq!(store.status().await.unwrap().len(), 2);
}

/// Checks that a source with a cursor and nothing stored is listed.
pub async fn status_lists_a_source_when_it_has_only_a_cursor(store: &dyn ContractStore) {
    let cursor = cursor_at(None, Some(walk(1)));
    store.save(&SourceName::new(SOURCE), &cursor).await.unwrap();

    let status = status_of(store, SOURCE).await;

    assert_eq!(status.cursor, Some(cursor));
    assert_eq!((status.stored, status.set_aside), (0, 0));
}

/// Checks that a new store knows no source.
pub async fn status_is_empty_when_the_store_is_new(store: &dyn ContractStore) {
    assert!(store.status().await.unwrap().is_empty());
}

const TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Returns the lease `holder` would get at `at_minute`.
fn lease(holder: &str, at_minute: i64) -> Lease {
    Lease {
        holder: holder.to_owned(),
        expires_at: truncated(minute(at_minute) + TimeDelta::minutes(1)),
    }
}

/// Returns `at` to the millisecond, the precision a lease is kept in.
fn truncated(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap()
}

async fn acquire(store: &dyn ContractStore, holder: &str, at_minute: i64) -> LeaseOutcome {
    store.acquire(&SourceName::new(SOURCE), holder, minute(at_minute), TTL).await.unwrap()
}

/// Checks that a lease nobody holds is taken.
pub async fn lease_is_held_when_free(store: &dyn ContractStore) {
    assert_eq!(acquire(store, "a", 0).await, LeaseOutcome::Held(lease("a", 0)));
}

/// Checks that a lease held and not lapsed is refused to another, who is
/// told who holds it and until when.
pub async fn lease_is_refused_while_another_holds_it(store: &dyn ContractStore) {
    acquire(store, "a", 0).await;

    let outcome = store
        .acquire(&SourceName::new(SOURCE), "b", minute(1) - TimeDelta::milliseconds(1), TTL)
        .await
        .unwrap();

    assert_eq!(outcome, LeaseOutcome::HeldByOther(lease("a", 0)));
}

/// Checks that a lapsed lease goes to whoever asks.
pub async fn lease_is_taken_over_when_it_lapsed(store: &dyn ContractStore) {
    acquire(store, "a", 0).await;

    assert_eq!(acquire(store, "b", 1).await, LeaseOutcome::Held(lease("b", 1)));
    assert_eq!(acquire(store, "a", 1).await, LeaseOutcome::HeldByOther(lease("b", 1)));
}

/// Checks that the holder renewing its lease moves its expiry on.
pub async fn lease_is_extended_when_its_holder_renews_it(store: &dyn ContractStore) {
    acquire(store, "a", 0).await;

    assert_eq!(acquire(store, "a", 30).await, LeaseOutcome::Held(lease("a", 30)));
    assert_eq!(acquire(store, "b", 30).await, LeaseOutcome::HeldByOther(lease("a", 30)));
}

/// Checks that a released lease is free at once.
pub async fn lease_is_free_when_its_holder_releases_it(store: &dyn ContractStore) {
    acquire(store, "a", 0).await;

    store.release(&SourceName::new(SOURCE), "a").await.unwrap();

    assert_eq!(acquire(store, "b", 0).await, LeaseOutcome::Held(lease("b", 0)));
}

/// Checks that only the holder can give a lease up.
pub async fn lease_stays_when_another_releases_it(store: &dyn ContractStore) {
    acquire(store, "a", 0).await;

    store.release(&SourceName::new(SOURCE), "b").await.unwrap();

    assert_eq!(acquire(store, "b", 0).await, LeaseOutcome::HeldByOther(lease("a", 0)));
}

/// Checks that of many asking for a free lease at once, exactly one gets it.
pub async fn lease_goes_to_exactly_one_when_many_race(store: &dyn ContractStore) {
    let holders: Vec<String> = (0..8).map(|index| format!("replica-{index}")).collect();

    let outcomes =
        futures::future::join_all(holders.iter().map(|holder| acquire(store, holder, 0))).await;

    let winners: Vec<&Lease> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            LeaseOutcome::Held(lease) => Some(lease),
            LeaseOutcome::HeldByOther(_) => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for outcome in &outcomes {
        let (LeaseOutcome::Held(lease) | LeaseOutcome::HeldByOther(lease)) = outcome;
        assert_eq!(lease, winners[0]);
    }
}

/// Checks that a lease on one source says nothing of another.
pub async fn leases_of_different_sources_are_independent(store: &dyn ContractStore) {
    acquire(store, "a", 0).await;

    let other = store.acquire(&SourceName::new("other"), "b", minute(0), TTL).await.unwrap();

    assert_eq!(other, LeaseOutcome::Held(lease("b", 0)));
}
