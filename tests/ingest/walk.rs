//! Walks over a shifting history: large backlogs, events added and deleted
//! mid-walk, shared timestamps, late arrivals, restarts and bad events.

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};

use crate::helpers::{World, history, ids, login, pks};

#[tokio::test]
async fn large_history_then_three_new_events_cost_at_most_two_requests() {
    // 25,000 events retained over about a year, as a real server holds them.
    let events = history(25_000, TimeDelta::minutes(21), TimeDelta::hours(1));
    let world = World::start(events.clone(), vec![]).await;

    let started = std::time::Instant::now();
    let backfill = world.catch_up().await;
    let backfill_time = started.elapsed();

    assert_eq!(backfill.stored, 25_000);
    assert!(backfill.requests >= 250, "{} requests", backfill.requests);
    let before = world.authentik.events_requests();
    let now = Utc::now();
    world.authentik.add_events(vec![
        login(900_001, now - TimeDelta::seconds(30)),
        login(900_002, now - TimeDelta::seconds(20)),
        login(900_003, now - TimeDelta::seconds(10)),
    ]);

    let started = std::time::Instant::now();
    let tick = world.catch_up().await;
    let tick_time = started.elapsed();

    let requests = world.authentik.events_requests() - before;
    // The figures for the record; the assertions below are what must hold.
    eprintln!(
        "25,000-event backfill: {} requests in {backfill_time:?}; 3 new events: {requests} request(s) in {tick_time:?}",
        backfill.requests
    );
    assert_eq!(tick.stored, 3);
    assert!(requests <= 2, "{requests} requests for 3 new events");
    assert_eq!(world.stored().await.len(), 25_003);
}

#[tokio::test]
async fn backlog_spanning_ticks_resumes_and_stores_everything_once() {
    let events = history(1_050, TimeDelta::minutes(1), TimeDelta::hours(1));
    let mut world = World::start(events.clone(), vec![]).await;
    world.settings.max_pages = 3;
    let (ingest, _) = world.ingest().await;

    let first = ingest.tick(&Default::default()).await.unwrap();

    assert!(!first.caught_up, "a capped tick is not caught up");
    assert_eq!(first.requests, 3);
    assert_eq!(first.cursor.last_event_at, None, "the cursor moves only when a walk completes");
    drop(ingest);

    // A restart in the middle of the walk resumes it.
    let rest = world.catch_up().await;

    assert_eq!(first.stored + rest.stored, 1_050);
    assert_eq!(ids(&world.stored().await), pks(&events));
}

#[tokio::test]
async fn events_added_during_a_walk_are_all_stored() {
    let events = history(500, TimeDelta::minutes(1), TimeDelta::hours(2));
    let world = World::start(events.clone(), vec![]).await;
    let added = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = added.clone();
    world.authentik.on_events_request(Box::new(move |state, index| {
        // Before every request, three new events arrive at the top.
        let base = 800_000 + index as u64 * 10;
        let fresh: Vec<Value> =
            (0..3).map(|n| login(base + n, Utc::now() - TimeDelta::minutes(30))).collect();
        record.lock().unwrap().extend(fresh.clone());
        state.add_events(fresh);
    }));

    world.catch_up().await;
    world.authentik.on_events_request(Box::new(|_, _| {}));
    world.catch_up().await;

    let mut all = events;
    all.extend(added.lock().unwrap().clone());
    assert_eq!(ids(&world.stored().await), pks(&all));
}

#[tokio::test]
async fn events_deleted_during_a_walk_cost_no_other_event() {
    // Expiry deletes the oldest events and a deleted user takes theirs with
    // them, while the walk is under way.
    let mut events = history(600, TimeDelta::minutes(1), TimeDelta::hours(2));
    for (index, event) in events.iter_mut().enumerate() {
        if index % 7 == 0 {
            event["user"] = json!({"pk": 42, "username": "leaver", "email": "leaver@example.test"});
        }
    }
    let world = World::start(events.clone(), vec![]).await;
    // Expiry takes the 40 oldest events left after the user's are gone.
    let survivors: Vec<Value> =
        events.iter().filter(|event| event["user"]["pk"] != 42).skip(40).cloned().collect();
    world.authentik.on_events_request(Box::new(|state, index| match index {
        2 => {
            state.delete_where(|event| event["user"]["pk"] == 42);
        }
        4 => {
            let mut left = state.events();
            left.sort_by(|a, b| a["created"].as_str().cmp(&b["created"].as_str()));
            let oldest: Vec<Value> =
                left.into_iter().take(40).map(|event| event["pk"].clone()).collect();
            state.delete_where(|event| oldest.contains(&event["pk"]));
        }
        _ => {}
    }));

    world.catch_up().await;

    let stored = ids(&world.stored().await);
    for pk in pks(&survivors) {
        assert!(stored.binary_search(&pk).is_ok(), "lost {pk}");
    }
}

#[tokio::test]
async fn events_sharing_a_timestamp_across_a_page_boundary_are_all_stored() {
    let at = Utc::now() - TimeDelta::hours(1);
    let mut events = history(150, TimeDelta::minutes(1), TimeDelta::hours(3));
    events.extend((0..130).map(|n| login(500_000 + n, at)));
    let world = World::start(events.clone(), vec![]).await;

    world.catch_up().await;

    assert_eq!(ids(&world.stored().await), pks(&events));
}

#[tokio::test]
async fn event_visible_late_within_the_overlap_is_stored_next_tick() {
    let events = history(50, TimeDelta::minutes(1), TimeDelta::minutes(1));
    let world = World::start(events, vec![]).await;
    world.catch_up().await;
    // An event written three minutes ago commits only now.
    let late = login(700_000, Utc::now() - TimeDelta::minutes(4));
    world.authentik.add_events(vec![late.clone()]);

    let tick = world.catch_up().await;

    assert_eq!(tick.stored, 1);
    assert!(ids(&world.stored().await).contains(&late["pk"].as_str().unwrap().to_owned()));
}

#[tokio::test]
async fn unknown_and_custom_actions_fall_through_and_are_kept() {
    let now = Utc::now();
    let mut flow = login(1, now - TimeDelta::minutes(3));
    flow["action"] = json!("flow_execution");
    let mut custom = login(2, now - TimeDelta::minutes(2));
    custom["action"] = json!("custom_Backup.Done $now");
    let mut future = login(3, now - TimeDelta::minutes(1));
    future["action"] = json!("access_request_created");
    let world = World::start(vec![flow, custom, future], vec![]).await;

    world.catch_up().await;

    let stored = world.stored().await;
    let verbs: Vec<(&str, &str)> =
        stored.iter().map(|record| (record.action.as_str(), record.verb.as_str())).collect();
    assert_eq!(
        verbs,
        [
            ("access_request_created", "authentik.access_request_created"),
            ("custom_Backup.Done $now", "authentik.custom_backup_done__now"),
            ("flow_execution", "authentik.flow_execution"),
        ]
    );
}

#[tokio::test]
async fn malformed_event_is_set_aside_and_the_rest_are_stored() {
    let mut events = history(20, TimeDelta::minutes(1), TimeDelta::minutes(10));
    events[5]["created"] = json!("not a time");
    events[9].as_object_mut().unwrap().remove("pk");
    let world = World::start(events.clone(), vec![]).await;

    let report = world.catch_up().await;

    assert_eq!(report.stored, 18);
    assert_eq!(report.set_aside, 2);
    assert!(report.caught_up);
    let (_, store) = world.ingest().await;
    let status = ports::AuditReader::status(store.as_ref()).await.unwrap();
    assert_eq!(status[0].set_aside, 2);
    assert_eq!(status[0].stored, 18);
}

#[tokio::test]
async fn page_size_changed_across_a_restart_mid_walk_loses_nothing() {
    let events = history(300, TimeDelta::minutes(1), TimeDelta::hours(1));
    let mut world = World::start(events.clone(), vec![]).await;
    world.settings.page_size = 10;
    world.settings.max_pages = 3;
    let (ingest, _) = world.ingest().await;
    let first = ingest.tick(&Default::default()).await.unwrap();
    assert!(!first.caught_up);
    drop(ingest);

    world.settings.page_size = 100;
    world.settings.max_pages = 10;
    world.catch_up().await;

    assert_eq!(ids(&world.stored().await), pks(&events));
}

#[tokio::test]
async fn server_capping_pages_below_the_asked_size_loses_nothing_when_events_vanish() {
    let events = history(400, TimeDelta::minutes(1), TimeDelta::hours(1));
    let world = World::start(events.clone(), vec![]).await;
    // An admin lowered pagination_max_page_size; we still ask for 100.
    world.authentik.set_max_page_size(30);
    world.authentik.on_events_request(Box::new(|state, index| {
        if index == 3 {
            // A user deleted newer than the walk's position.
            let mut newest = state.events();
            newest.sort_by(|a, b| b["created"].as_str().cmp(&a["created"].as_str()));
            let doomed: Vec<Value> =
                newest.into_iter().take(7).map(|event| event["pk"].clone()).collect();
            state.delete_where(|event| doomed.contains(&event["pk"]));
        }
    }));

    world.catch_up().await;

    let stored = ids(&world.stored().await);
    let mut newest_first = events.clone();
    newest_first.reverse();
    for event in &newest_first[7..] {
        let pk = event["pk"].as_str().unwrap().to_owned();
        assert!(stored.binary_search(&pk).is_ok(), "lost {pk}");
    }
}

#[tokio::test]
async fn future_dated_event_does_not_hide_events_written_after_it() {
    let now = Utc::now();
    let mut events = history(20, TimeDelta::minutes(1), TimeDelta::minutes(5));
    events.push(login(600_000, now + TimeDelta::days(365)));
    let world = World::start(events.clone(), vec![]).await;
    world.catch_up().await;
    let later = login(600_001, Utc::now());
    world.authentik.add_events(vec![later.clone()]);

    let tick = world.catch_up().await;

    assert_eq!(tick.stored, 1);
    let mut all = events;
    all.push(later);
    assert_eq!(ids(&world.stored().await), pks(&all));
}

#[tokio::test]
async fn event_from_a_fast_clock_does_not_eat_the_overlap_of_late_events() {
    let mut events = history(50, TimeDelta::minutes(1), TimeDelta::minutes(1));
    // One worker's clock runs 4 min 50 s fast.
    events.push(login(800_001, Utc::now() + TimeDelta::seconds(290)));
    let world = World::start(events, vec![]).await;
    world.catch_up().await;
    // An event written 3 minutes ago, inside the 5-minute overlap, becomes
    // visible only now.
    let late = login(800_002, Utc::now() - TimeDelta::minutes(3));
    world.authentik.add_events(vec![late.clone()]);

    let second = world.catch_up().await;

    assert_eq!(second.stored, 1);
    assert!(ids(&world.stored().await).contains(&late["pk"].as_str().unwrap().to_owned()));
}

#[tokio::test]
async fn walk_ends_and_loses_nothing_when_the_history_changes_on_every_request() {
    // Steady traffic: on every request either a new login arrives at the
    // top or expiry deletes the oldest event, so the count moves each time.
    let events = history(500, TimeDelta::minutes(1), TimeDelta::minutes(10));
    let mut world = World::start(events.clone(), vec![]).await;
    world.settings.page_size = 20;
    world.settings.max_pages = 1_000;
    world.authentik.on_events_request(Box::new(move |state, index| {
        if index % 2 == 0 {
            state.add_events(vec![login(700_000 + index as u64, Utc::now())]);
        } else {
            let mut left = state.events();
            left.sort_by(|a, b| a["created"].as_str().cmp(&b["created"].as_str()));
            let oldest = left[0]["pk"].clone();
            state.delete_where(|event| event["pk"] == oldest);
        }
    }));
    let (ingest, _) = world.ingest().await;

    // A guard against a walk that never ends, not a measure of speed.
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        app::scheduler::catch_up(&ingest, &tokio_util::sync::CancellationToken::new()),
    )
    .await
    .expect("the walk never ended")
    .unwrap();

    let requests = world.authentik.events_requests();
    assert!(report.caught_up);
    // 25 pages at least; each step-back re-reads a few, and they are bounded.
    let log = world.authentik.requests_log();
    assert!(requests < 200, "{requests} requests: {:?}", &log[log.len().saturating_sub(40)..]);
    let stored = ids(&world.stored().await);
    let still_there: Vec<String> = pks(&world.authentik.events())
        .into_iter()
        .filter(|pk| events.iter().any(|event| event["pk"] == pk.as_str()))
        .collect();
    let lost: Vec<&String> = still_there.iter().filter(|pk| !stored.contains(pk)).collect();
    assert!(lost.is_empty(), "lost {} of {}: {lost:?}", lost.len(), still_there.len());
    eprintln!("{requests} requests; {} stored", stored.len());
}
