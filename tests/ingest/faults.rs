//! Faults from Authentik and from the store, injected in the middle of a
//! walk: each fails the tick it hits with a clear error, leaves the cursor
//! where the stored pages put it, and the next tick of the same process
//! recovers with nothing lost and nothing stored twice.

use std::sync::atomic::Ordering;
use std::time::Duration;

use app::ingest::{Ingest, TickError};
use chrono::TimeDelta;
use domain::{Cursor, SourceName};
use ports::{CursorStore, FetchError, StoreError};
use tests::mock_authentik::Fault;
use tokio_util::sync::CancellationToken;

use crate::helpers::{World, history, ids, pks};

const EVENTS: u64 = 250;

/// A world of 250 events read 50 to a page, two pages a tick, so a walk
/// spans three ticks.
async fn world() -> World {
    let mut world =
        World::start(history(EVENTS, TimeDelta::minutes(1), TimeDelta::minutes(10)), vec![]).await;
    world.settings.page_size = 50;
    world.settings.max_pages = 2;
    world.request_timeout = Duration::from_millis(500);
    world
}

async fn cursor(cursors: &dyn CursorStore) -> Option<Cursor> {
    cursors.load(&SourceName::new("authentik")).await.unwrap()
}

/// Ticks until caught up, and returns the total of what the ticks did.
async fn drain(ingest: &Ingest) -> app::ingest::TickReport {
    app::scheduler::catch_up(ingest, &CancellationToken::new()).await.unwrap()
}

#[tokio::test]
async fn each_authentik_fault_fails_one_tick_and_the_next_tick_loses_nothing() {
    let faults = [
        (Fault::Status(500), "500"),
        (Fault::Status(502), "502"),
        (Fault::Status(503), "503"),
        (
            Fault::Body(r#"{"pagination": {"next": 2, "previous": 0, "count": 25"#.into()),
            "truncated",
        ),
        (Fault::Body("<html><body>Bad gateway</body></html>".into()), "html"),
        (Fault::Body(r#"{"results": "none", "pagination": null}"#.into()), "envelope"),
        (Fault::Body(String::new()), "empty"),
        (Fault::Slow(Duration::from_secs(3)), "slow"),
    ];
    for (fault, name) in faults {
        let world = world().await;
        let (ingest, store) = world.ingest().await;
        ingest.tick(&CancellationToken::new()).await.unwrap();
        let before = cursor(store.as_ref()).await;

        world.authentik.inject([fault]);
        let failed = ingest.tick(&CancellationToken::new()).await;
        let after = cursor(store.as_ref()).await;
        let recovered = drain(&ingest).await;

        let error = failed.expect_err(name);
        assert!(
            matches!(
                error,
                TickError::Fetch(FetchError::Unavailable { .. } | FetchError::Malformed { .. })
            ),
            "{name}: {error}"
        );
        assert_eq!(after, before, "{name}: the failed tick moved the cursor");
        assert!(recovered.caught_up, "{name}");
        assert_eq!(ids(&world.stored().await), pks(&world.authentik.events()), "{name}");
        eprintln!("{name}: {error}");
    }
}

#[tokio::test]
async fn each_store_fault_fails_one_tick_and_the_next_tick_loses_nothing() {
    type Arm = fn(&tests::flaky_store::Faults);
    let faults: [(Arm, &str); 4] = [
        (|faults| faults.batches_refused.store(1, Ordering::SeqCst), "batch refused"),
        (
            |faults| faults.batches_lost_after_write.store(1, Ordering::SeqCst),
            "written, then failed",
        ),
        (|faults| faults.cursor_saves.store(1, Ordering::SeqCst), "cursor save refused"),
        (|faults| faults.tenant_reads.store(1, Ordering::SeqCst), "store unreachable"),
    ];
    for (arm, name) in faults {
        let world = world().await;
        let (ingest, store) = world.flaky_ingest().await;
        let first = ingest.tick(&CancellationToken::new()).await.unwrap();
        let before = cursor(store.as_ref()).await;

        arm(&store.faults);
        let failed = ingest.tick(&CancellationToken::new()).await;
        let after = cursor(store.as_ref()).await;
        let recovered = drain(&ingest).await;

        let error = failed.expect_err(name);
        assert!(
            matches!(error, TickError::Store(StoreError::Unavailable { .. })),
            "{name}: {error}"
        );
        assert_eq!(after, before, "{name}: the failed tick moved the cursor");
        assert!(recovered.caught_up, "{name}");
        assert_eq!(ids(&world.stored().await), pks(&world.authentik.events()), "{name}");
        // Whatever the failed tick wrote is read again and dropped as a
        // duplicate, never stored twice.
        assert_eq!(first.stored + recovered.stored, EVENTS - stored_by_failed_tick(name), "{name}");
        eprintln!(
            "{name}: {error}; the next ticks stored {} and dropped {} duplicates",
            recovered.stored, recovered.duplicates
        );
    }
}

/// Events a failed tick stored before failing: only the write whose
/// acknowledgement was lost reached the store.
fn stored_by_failed_tick(name: &str) -> u64 {
    if name == "written, then failed" || name == "cursor save refused" { 50 } else { 0 }
}

#[tokio::test]
async fn unreadable_groups_of_one_user_keep_their_events_without_a_tenant_and_block_nothing() {
    let now = chrono::Utc::now();
    let mut events = vec![
        tests::events::login(1, now - TimeDelta::minutes(3)),
        tests::events::login(2, now - TimeDelta::minutes(2)),
    ];
    events[1]["user"] =
        serde_json::json!({"pk": 6, "username": "bo.example", "email": "bo@globex.example.test"});
    let users = vec![
        serde_json::json!({"pk": 5, "username": "ana.example", "groups_obj": [{"name": "acme"}]}),
        // An answer without `groups_obj`: it will read the same next time.
        serde_json::json!({"pk": 6, "username": "bo.example"}),
    ];
    let world = World::start(events, users).await;

    let report = world.catch_up().await;

    assert_eq!((report.stored, report.set_aside), (2, 0));
    let stored = world.stored().await;
    let tenant_of = |username: &str| {
        let record = stored.iter().find(|record| {
            record.actor.as_ref().and_then(|actor| actor.username.as_deref()) == Some(username)
        });
        record.unwrap().tenant_slug.as_ref().map(|slug| slug.as_str().to_owned())
    };
    assert_eq!(tenant_of("ana.example").as_deref(), Some("acme"));
    assert_eq!(tenant_of("bo.example"), None);
}
