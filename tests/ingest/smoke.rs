//! The 78-event smoke scenario from a real multi-tenant Authentik.

use serde_json::Value;
use tests::fixtures;

use crate::helpers::{World, ids, pks};

async fn smoke_world() -> World {
    World::start(fixtures::smoke_events(), fixtures::smoke_users()).await
}

#[tokio::test]
async fn fresh_store_takes_all_78_events_with_expected_verbs_and_tenants() {
    let world = smoke_world().await;

    let report = world.catch_up().await;

    assert_eq!(report.stored, 78);
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.set_aside, 0);
    assert!(report.caught_up);
    let stored = world.stored().await;
    assert_eq!(ids(&stored), pks(&fixtures::smoke_events()));
    let expected = fixtures::smoke_expected();
    for want in &expected[..78] {
        let id = want["externalId"].as_str().unwrap();
        let record =
            stored.iter().find(|record| record.external_id.as_deref() == Some(id)).unwrap();
        assert_eq!(record.verb.as_str(), want["verb"].as_str().unwrap(), "verb of {id}");
        assert_eq!(
            record.tenant_slug.as_ref().map(|slug| slug.as_str()),
            want["tenantSlug"].as_str(),
            "tenant of {id} ({})",
            record.action
        );
    }
}

#[tokio::test]
async fn group_lookups_are_made_once_per_user_not_per_event() {
    let world = smoke_world().await;

    world.catch_up().await;

    // Nine users and one unknown name appear on 78 events.
    let lookups = world.authentik.user_requests();
    assert!(lookups <= 9, "{lookups} user lookups for 78 events");
    assert!(lookups >= 1);
}

#[tokio::test]
async fn restart_and_second_pass_store_nothing_new() {
    let world = smoke_world().await;
    world.catch_up().await;

    let second = world.catch_up().await;

    assert_eq!(second.stored, 0);
    assert_eq!(second.set_aside, 0);
    assert!(second.caught_up);
    assert_eq!(second.requests, 1, "a caught-up source costs one request");
    assert_eq!(world.stored().await.len(), 78);
}

#[tokio::test]
async fn next_login_appears_on_the_next_tick_with_email_and_ip() {
    let world = smoke_world().await;
    world.catch_up().await;
    let login: Value = fixtures::smoke_next_login();
    world.authentik.add_events(vec![login.clone()]);

    let report = world.catch_up().await;

    assert_eq!(report.stored, 1, "{report:?}");
    let stored = world.stored().await;
    assert_eq!(stored.len(), 79);
    let newest = &stored[0];
    assert_eq!(newest.external_id.as_deref(), login["pk"].as_str());
    assert_eq!(newest.verb.as_str(), "authentik.login");
    let actor = newest.actor.as_ref().unwrap();
    assert_eq!(actor.email.as_deref(), Some("ana.example@acme.example.test"));
    assert_eq!(newest.ip.as_deref(), Some("203.0.113.99"));
    assert!(newest.user_agent.as_deref().unwrap().ends_with("TenantTimelineSmoke/1.0"));
    let expected = &fixtures::smoke_expected()[78];
    assert_eq!(
        newest.tenant_slug.as_ref().map(|slug| slug.as_str()),
        expected["tenantSlug"].as_str()
    );
}

#[tokio::test]
async fn repulled_events_are_dropped_silently() {
    let world = smoke_world().await;
    world.catch_up().await;
    // A cursor far behind makes the next pass read everything again.
    let (_, store) = world.ingest().await;
    ports::CursorStore::save(
        store.as_ref(),
        &domain::SourceName::new("authentik"),
        &domain::Cursor::default(),
    )
    .await
    .unwrap();

    let again = world.catch_up().await;

    assert_eq!(again.stored, 0);
    assert_eq!(again.duplicates, 78);
    assert_eq!(world.stored().await.len(), 78);
}

#[tokio::test]
async fn impersonation_records_the_admin_acting_as_the_user() {
    let world = smoke_world().await;
    world.catch_up().await;

    let stored = world.stored().await;

    let started = stored.iter().find(|record| record.action == "impersonation_started").unwrap();
    assert_eq!(started.actor.as_ref().unwrap().username.as_deref(), Some("akadmin"));
    assert_eq!(started.on_behalf_of.as_ref().unwrap().username.as_deref(), Some("ana.example"));
    let written = stored
        .iter()
        .find(|record| record.action == "user_write" && record.on_behalf_of.is_some())
        .unwrap();
    assert_eq!(written.actor.as_ref().unwrap().username.as_deref(), Some("akadmin"));
    let reset = stored
        .iter()
        .find(|record| {
            record.external_id.as_deref() == Some("6dc755a2-89cd-4720-ad5d-fc57da72479e")
        })
        .unwrap();
    assert_eq!(reset.ip, None, "the placeholder 255.255.255.255 is not an address");
}
