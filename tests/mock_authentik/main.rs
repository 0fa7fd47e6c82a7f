//! Checks that the mock Authentik answers as the real 2025.12 server did in
//! the captures of `shared/fixtures/authentik-2025.12/`.
//!
//! The captured event set is rebuilt from the two oldest-first pages (files
//! 45 and 46, 142 events); the captures of the default order were taken when
//! only the oldest 136 existed.

use serde_json::{Value, json};
use tests::fixtures::fixture;
use tests::mock_authentik::MockAuthentik;

const TOKEN: &str = "admin-token";

/// Every event of the capture session, oldest first.
fn all_events() -> Vec<Value> {
    let mut events = results(&fixture("45_all_events_asc_page1"));
    events.extend(results(&fixture("46_all_events_asc_page2")));
    events
}

/// The events that existed when files 01 to 37 were captured.
fn early_events() -> Vec<Value> {
    all_events().into_iter().take(136).collect()
}

fn results(page: &Value) -> Vec<Value> {
    page["results"].as_array().unwrap().clone()
}

fn pks(page: &Value) -> Vec<String> {
    page["results"].as_array().unwrap().iter().map(|event| event["pk"].to_string()).collect()
}

async fn mock_with(events: Vec<Value>) -> MockAuthentik {
    let mock = MockAuthentik::start(TOKEN).await;
    mock.set_events(events);
    mock
}

/// Sends `GET path_and_query` with `authorization` as the header, if any.
async fn get_with(
    mock: &MockAuthentik,
    path_and_query: &str,
    authorization: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{}{path_and_query}", mock.uri()));
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn get(mock: &MockAuthentik, query: &str) -> (u16, Value) {
    get_with(mock, &format!("/api/v3/events/events/?{query}"), Some(&format!("Bearer {TOKEN}")))
        .await
}

/// Events that all share one `created` value, with distinct pks.
fn tied_events(count: usize) -> Vec<Value> {
    (0..count)
        .map(|index| {
            json!({
                "pk": format!("00000000-0000-4000-8000-{index:012}"),
                "user": {},
                "action": "custom_tie",
                "app": "test",
                "context": {},
                "client_ip": null,
                "created": "2026-12-03T16:10:01Z",
            })
        })
        .collect()
}

fn newer_event(index: usize) -> Value {
    json!({
        "pk": format!("ffffffff-0000-4000-8000-{index:012}"),
        "user": {},
        "action": "custom_new",
        "app": "test",
        "context": {},
        "client_ip": null,
        "created": format!("2027-01-01T00:00:{index:02}.000001Z"),
    })
}

#[tokio::test]
async fn page_size_is_capped_at_100_when_1000_is_asked() {
    let mock = mock_with(early_events()).await;
    let expected = fixture("20_page_size_1000_capped");

    let (status, page) = get(&mock, "page_size=1000").await;

    assert_eq!(status, 200);
    assert_eq!(page["pagination"], expected["pagination"]);
    assert_eq!(page["results"], expected["results"]);
}

#[tokio::test]
async fn page_size_falls_back_to_20_when_invalid() {
    let mock = mock_with(early_events()).await;
    let expected = fixture("21_page_size_invalid");

    let (_, page) = get(&mock, "page_size=abc").await;

    assert_eq!(page["pagination"], expected["pagination"]);
    assert_eq!(pks(&page), pks(&expected));
}

#[tokio::test]
async fn default_order_is_newest_first_when_no_ordering_is_given() {
    let mock = mock_with(early_events()).await;

    let (_, first) = get(&mock, "page_size=5").await;
    let (_, second) = get(&mock, "page_size=5&page=2").await;

    assert_eq!(first["pagination"], fixture("01_list_page_size_5")["pagination"]);
    assert_eq!(first["results"], fixture("01_list_page_size_5")["results"]);
    assert_eq!(pks(&second), pks(&fixture("02_list_page_size_5_page_2")));
    assert!(first["autocomplete"].is_object());
}

#[tokio::test]
async fn last_page_has_next_zero_when_reached() {
    let mock = mock_with(early_events()).await;

    let (_, page) = get(&mock, "page_size=5&page=28").await;

    assert_eq!(page["pagination"], fixture("07_last_page")["pagination"]);
}

#[tokio::test]
async fn page_is_404_when_past_the_last_zero_or_not_a_number() {
    let mock = mock_with(early_events()).await;

    for (query, expected) in [
        ("page_size=5&page=29", fixture("05_past_last_page")),
        ("page_size=5&page=0", fixture("06_page_zero")),
        ("page_size=5&page=abc", fixture("05_past_last_page")),
    ] {
        let (status, body) = get(&mock, query).await;

        assert_eq!((status, body), (404, expected), "{query}");
    }
}

#[tokio::test]
async fn empty_set_serves_page_one_when_there_are_no_events() {
    let mock = mock_with(Vec::new()).await;

    let (status, page) = get(&mock, "").await;
    let (past, _) = get(&mock, "page=2").await;

    assert_eq!(status, 200);
    assert_eq!(page["pagination"], fixture("08_search_ql_created_gt_iso_T")["pagination"]);
    assert_eq!(page["results"], json!([]));
    assert_eq!(past, 404);
}

#[tokio::test]
async fn auth_failures_are_403_with_the_real_bodies_when_credentials_are_wrong() {
    let mock = mock_with(early_events()).await;
    mock.add_token_without_permission("alice-token");
    let path = "/api/v3/events/events/?page_size=5";

    for (authorization, expected) in [
        (Some("Bearer this-token-does-not-exist"), "15_bad_token"),
        (None, "16_no_auth"),
        (Some(&*format!("Token {TOKEN}")), "17_non_bearer_scheme"),
        (Some("Bearer alice-token"), "18_nonadmin_token_no_view_event"),
    ] {
        let (status, body) = get_with(&mock, path, authorization).await;

        assert_eq!((status, body), (403, fixture(expected)), "{expected}");
    }
}

#[tokio::test]
async fn bearer_scheme_matches_in_any_case_when_the_token_is_right() {
    let mock = mock_with(early_events()).await;

    let (status, _) =
        get_with(&mock, "/api/v3/events/events/", Some(&format!("bEaReR {TOKEN}"))).await;

    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_params_are_ignored_when_they_look_like_date_filters() {
    let mock = mock_with(early_events()).await;

    for query in [
        "page_size=5&created__gt=2099-01-01T00%3A00%3A00Z",
        "page_size=5&created__gte=2099-01-01T00%3A00%3A00Z",
        "page_size=5&since=2099-01-01T00%3A00%3A00Z&created_after=2099-01-01T00%3A00%3A00Z",
        "page_size=5&ordering=timestamp",
    ] {
        let (status, page) = get(&mock, query).await;

        assert_eq!(status, 200, "{query}");
        assert_eq!(page["results"], fixture("01_list_page_size_5")["results"], "{query}");
    }
}

#[tokio::test]
async fn search_finds_nothing_when_used_as_a_time_filter() {
    let mock = mock_with(early_events()).await;

    let (status, page) =
        get(&mock, "page_size=5&search=created+%3E+%222025-01-01T00%3A00%3A00%22").await;

    assert_eq!(status, 200);
    assert_eq!(page["pagination"], fixture("08_search_ql_created_gt_iso_T")["pagination"]);
}

#[tokio::test]
async fn ordering_by_created_then_pk_is_oldest_first_when_asked() {
    let mock = mock_with(all_events()).await;

    let (_, page) = get(&mock, "page_size=5&ordering=created,pk").await;

    assert_eq!(page["pagination"], fixture("38_ordering_created_then_pk")["pagination"]);
    assert_eq!(page["results"], fixture("38_ordering_created_then_pk")["results"]);
}

#[tokio::test]
async fn action_filters_match_the_captures_when_used() {
    let mock = mock_with(early_events()).await;

    let (_, icontains) = get(&mock, "page_size=20&action=login").await;
    let (_, exact) = get(&mock, "page_size=20&actions=login&actions=logout").await;
    let (status, invalid) = get(&mock, "page_size=5&actions=bogus_action").await;

    assert_eq!(icontains["pagination"]["count"], 7);
    assert_eq!(exact["pagination"]["count"], fixture("23_actions_multi")["pagination"]["count"]);
    assert_eq!((status, invalid), (400, fixture("24_actions_invalid_choice")));
}

#[tokio::test]
async fn ties_come_in_changing_order_when_the_default_ordering_is_used() {
    let mock = mock_with(tied_events(30)).await;

    let mut orders = Vec::new();
    for _ in 0..5 {
        orders.push(pks(&get(&mock, "page_size=30").await.1));
    }

    orders.sort();
    orders.dedup();
    assert!(orders.len() > 1, "five requests gave the same order of 30 tied events");
}

#[tokio::test]
async fn ties_keep_pk_order_when_pk_breaks_them() {
    let mock = mock_with(tied_events(30)).await;

    let mut orders = Vec::new();
    for _ in 0..5 {
        orders.push(pks(&get(&mock, "page_size=30&ordering=-created,pk").await.1));
    }

    let mut sorted = orders[0].clone();
    sorted.sort();
    assert_eq!(orders[0], sorted);
    assert!(orders.iter().all(|order| *order == orders[0]));
}

#[tokio::test]
async fn pages_shift_down_when_events_are_added_during_a_walk() {
    let mock = mock_with(early_events()).await;
    let (_, before) = get(&mock, "page_size=5&page=2").await;

    mock.add_events((0..6).map(newer_event).collect());
    let (_, after) = get(&mock, "page_size=5&page=2").await;

    assert_eq!(after["pagination"]["count"], 142);
    let before = pks(&before);
    assert!(pks(&after).iter().all(|pk| !before.contains(pk)), "page 2 kept some events");
}

#[tokio::test]
async fn pages_shift_up_when_old_events_are_deleted_by_a_hook() {
    let mock = mock_with(early_events()).await;
    let oldest = early_events()[0]["pk"].clone();
    mock.on_events_request(Box::new(move |state, request_index| {
        if request_index == 1 {
            state.delete_where(|event| event["pk"] == oldest);
        }
    }));

    let (_, first) = get(&mock, "page_size=5&ordering=created,pk").await;
    let (_, second) = get(&mock, "page_size=5&ordering=created,pk").await;

    assert_eq!(first["pagination"]["count"], 136);
    assert_eq!(second["pagination"]["count"], 135);
    assert_eq!(pks(&first)[1..], pks(&second)[..4]);
    assert_eq!(mock.events_requests(), 2);
    assert_eq!(mock.requests_log()[0], "page_size=5&ordering=created,pk");
}

#[tokio::test]
async fn max_page_size_is_configurable_when_set() {
    let mock = mock_with(early_events()).await;
    mock.set_max_page_size(10);

    let (_, page) = get(&mock, "page_size=50").await;

    assert_eq!(page["results"].as_array().unwrap().len(), 10);
    assert_eq!(page["pagination"]["total_pages"], 14);
}

#[tokio::test]
async fn user_detail_is_served_or_404_when_asked_by_pk() {
    let mock = MockAuthentik::start(TOKEN).await;
    mock.set_users(tests::fixtures::smoke_users());
    let bearer = format!("Bearer {TOKEN}");

    let (found, user) = get_with(&mock, "/api/v3/core/users/5/", Some(&bearer)).await;
    let (missing, body) = get_with(&mock, "/api/v3/core/users/1/", Some(&bearer)).await;
    let (refused, _) = get_with(&mock, "/api/v3/core/users/5/", None).await;

    assert_eq!((found, user["username"].as_str()), (200, Some("ana.example")));
    assert_eq!(missing, 404);
    assert_eq!(body, json!({"detail": "No User matches the given query."}));
    assert_eq!(refused, 403);
    assert_eq!(mock.user_requests(), 3);
    assert_eq!(mock.events_requests(), 0);
}

#[tokio::test]
async fn large_event_sets_are_served_when_walked_page_by_page() {
    let events: Vec<Value> = (0..25_000)
        .map(|index| {
            json!({
                "pk": format!("{index:08x}-0000-4000-8000-000000000000"),
                "action": "login",
                "created": format!("2026-01-01T00:00:00.{:06}Z", index % 1000),
            })
        })
        .collect();
    let mock = mock_with(events).await;

    let (_, last) = get(&mock, "page_size=100&page=250&ordering=-created,pk").await;

    assert_eq!(last["pagination"]["next"], 0);
    assert_eq!(last["results"].as_array().unwrap().len(), 100);
}
