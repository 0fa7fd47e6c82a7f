//! Events an admin edits at the source after they were stored.

use chrono::TimeDelta;
use ports::AuditReader;
use serde_json::json;

use crate::helpers::{World, history};

#[tokio::test]
async fn event_edited_at_the_source_keeps_the_original_and_is_counted_once() {
    let events = history(10, TimeDelta::seconds(20), TimeDelta::minutes(1));
    let world = World::start(events.clone(), vec![]).await;
    world.catch_up().await;
    let edited_pk = events[8]["pk"].as_str().unwrap().to_owned();
    let mut edited = events.clone();
    edited[8]["context"] = json!({"message": "nothing to see here"});
    edited[8]["client_ip"] = json!("198.51.100.7");
    world.authentik.set_events(edited);

    let second = world.catch_up().await;
    let third = world.catch_up().await;

    assert_eq!((second.stored, second.changed_at_source), (0, 1));
    assert_eq!(second.duplicates, 9);
    assert_eq!((third.stored, third.changed_at_source, third.duplicates), (0, 0, 10));
    let stored = world.stored().await;
    let kept = stored.iter().find(|record| record.external_id.as_deref() == Some(&edited_pk));
    let kept = kept.unwrap();
    assert_eq!(kept.ip.as_deref(), Some("203.0.113.10"));
    assert_eq!(kept.context["auth_method"], "password");
    let (_, store) = world.ingest().await;
    let status = store.status().await.unwrap();
    assert_eq!((status[0].stored, status[0].changed_at_source), (10, 1));
}
