//! Turns Authentik's JSON into pages and [`SourceEvent`]s.
//!
//! Each result is read on its own from a [`Value`], so one event of an
//! unexpected shape is set aside as a [`RejectedEvent`] instead of failing
//! its page. The fields that identify an event (`pk`, `created`, `action`)
//! and the shape of `user` are checked strictly; `context` is free JSON, so
//! the parts read from it (`http_request.user_agent`, `model`) are taken
//! only when they have the expected type.

use chrono::{DateTime, Utc};
use domain::{Identity, ModelSubject, Principal, SourceEvent};
use ports::{RejectedEvent, SourcePage};
use serde_json::{Map, Value};

/// Reads one page of `GET /api/v3/events/events/` from its body.
///
/// Keys other than `pagination` and `results` (such as `autocomplete`) are
/// ignored.
///
/// # Errors
/// A short reason, without the body, when the body is not the envelope.
pub(crate) fn parse_page(body: &[u8]) -> Result<SourcePage, String> {
    // The envelope is read first, with each result kept as raw text: one
    // event too deep for the JSON reader (it stops at 128 levels) or with
    // a number out of range then fails alone, not its page, and the walk
    // goes on past it.
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|error| format!("the body is not JSON: {error}"))?;
    let pagination = envelope
        .pagination
        .as_ref()
        .and_then(Value::as_object)
        .ok_or("the body has no `pagination` object")?;
    let count = pagination
        .get("count")
        .and_then(Value::as_u64)
        .ok_or("`pagination.count` is missing or not a count")?;
    let next = match pagination.get("next") {
        Some(Value::Null) => 0,
        Some(next) => next.as_u64().ok_or("`pagination.next` is not a page number")?,
        None => return Err("`pagination.next` is missing".into()),
    };
    let results = envelope.results.ok_or("the body has no `results` list")?;

    let mut events = Vec::with_capacity(results.len());
    let mut rejected = Vec::new();
    for raw in &results {
        match read_event(raw.get()) {
            Ok(event) => events.push(event),
            Err(rejection) => rejected.push(*rejection),
        }
    }
    Ok(SourcePage { count, has_next: next != 0, len: results.len(), events, rejected })
}

/// The envelope of a page of events, its results not yet read.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    pagination: Option<Value>,
    #[serde(borrow)]
    results: Option<Vec<&'a serde_json::value::RawValue>>,
}

/// Reads one result from its JSON text: too large, not readable as JSON,
/// or not an event is a rejection.
pub(crate) fn read_event(text: &str) -> Result<SourceEvent, Box<RejectedEvent>> {
    if text.len() > MAX_EVENT_BYTES {
        let item = serde_json::from_str::<Value>(text).ok();
        let field =
            |key: &str| item.as_ref().and_then(|item| item.get(key)).and_then(Value::as_str);
        return Err(Box::new(RejectedEvent {
            external_id: field("pk").map(str::to_owned),
            at: field("created").and_then(parse_time),
            reason: format!(
                "the event is {} bytes of JSON, over the limit of {MAX_EVENT_BYTES}",
                text.len()
            ),
            raw: item.unwrap_or_else(|| Value::String(text.to_owned())),
        }));
    }
    let item: Value = serde_json::from_str(text).map_err(|error| {
        Box::new(RejectedEvent {
            external_id: None,
            at: None,
            reason: format!("the event cannot be read as JSON: {error}"),
            // Kept whole, as the text it came as.
            raw: Value::String(text.to_owned()),
        })
    })?;
    parse_event(&item).map_err(Box::new)
}

/// The largest event stored, as JSON text. Authentik's own events are a few
/// kilobytes; one past this is set aside rather than stored, so that no
/// store's document limit (MongoDB's is 16 MB) can fail a whole batch.
pub(crate) const MAX_EVENT_BYTES: usize = 1024 * 1024;

pub(crate) fn parse_event(item: &Value) -> Result<SourceEvent, RejectedEvent> {
    let external_id = item.get("pk").and_then(Value::as_str).filter(|pk| !pk.is_empty());
    let at = item.get("created").and_then(Value::as_str).and_then(parse_time);
    let reject = |reason: String| RejectedEvent {
        external_id: external_id.map(str::to_owned),
        at,
        reason,
        raw: item.clone(),
    };

    let Some(object) = item.as_object() else {
        return Err(reject("the event is not a JSON object".into()));
    };
    let Some(external_id) = external_id else {
        return Err(reject("`pk` is missing, empty or not a string".into()));
    };
    let Some(at) = at else {
        return Err(reject(match object.get("created") {
            Some(Value::String(created)) => {
                format!("`created` is not an RFC 3339 time: `{created}`")
            }
            _ => "`created` is missing or not a string".into(),
        }));
    };
    let Some(action) = object.get("action").and_then(Value::as_str) else {
        return Err(reject("`action` is missing or not a string".into()));
    };
    let user = optional_object(object, "user", "user")
        .and_then(|user| user.map(|user| principal(user, "user")).transpose())
        .map_err(&reject)?;
    let client_ip = optional_string(object, "client_ip", "client_ip").map_err(&reject)?;
    let app = optional_string(object, "app", "app").map_err(&reject)?;

    let context = match object.get("context") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(context) => context.clone(),
    };
    let user_agent =
        context.pointer("/http_request/user_agent").and_then(Value::as_str).map(str::to_owned);
    let model = context.get("model").and_then(Value::as_object).map(model_subject);

    Ok(SourceEvent {
        external_id: external_id.to_owned(),
        at,
        action: action.to_owned(),
        user,
        client_ip,
        user_agent,
        app,
        model,
        context,
    })
}

/// Parses an Authentik time, with or without fractional seconds.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|at| at.with_timezone(&Utc))
}

/// Reads a user object and the identities nested in it; `path` names it in
/// reasons.
fn principal(user: &Map<String, Value>, path: &str) -> Result<Principal, String> {
    let anonymous = match user.get("is_anonymous") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(anonymous)) => *anonymous,
        Some(_) => return Err(format!("`{path}.is_anonymous` is not a boolean")),
    };
    let on_behalf_of = optional_object(user, "on_behalf_of", path)?
        .map(|other| identity(other, &format!("{path}.on_behalf_of")))
        .transpose()?;
    let authenticated_as = optional_object(user, "authenticated_as", path)?
        .map(|other| principal(other, &format!("{path}.authenticated_as")).map(Box::new))
        .transpose()?;
    Ok(Principal { identity: identity(user, path)?, anonymous, on_behalf_of, authenticated_as })
}

/// Reads the `pk`, `username` and `email` of a user object.
fn identity(user: &Map<String, Value>, path: &str) -> Result<Identity, String> {
    let id = match user.get("pk") {
        None | Some(Value::Null) => None,
        Some(Value::Number(pk)) if pk.is_i64() || pk.is_u64() => Some(pk.to_string()),
        Some(Value::String(pk)) => Some(pk.clone()),
        Some(_) => return Err(format!("`{path}.pk` is not an integer or a string")),
    };
    Ok(Identity {
        id,
        username: optional_string(user, "username", path)?,
        email: optional_string(user, "email", path)?,
    })
}

/// Reads `context.model`; its parts are free JSON, so a part of another
/// type is left out rather than rejected.
fn model_subject(model: &Map<String, Value>) -> ModelSubject {
    let text = |key: &str| model.get(key).and_then(Value::as_str).map(str::to_owned);
    let pk = match model.get("pk") {
        Some(Value::String(pk)) => Some(pk.clone()),
        Some(Value::Number(pk)) => Some(pk.to_string()),
        _ => None,
    };
    ModelSubject { app: text("app"), model_name: text("model_name"), pk, name: text("name") }
}

/// Reads `key` of `object` as a string; missing and null are `None`.
fn optional_string(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("`{}` is not a string", join(path, key))),
    }
}

/// Reads `key` of `object` as an object; missing, null and `{}` are `None`.
fn optional_object<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) if inner.is_empty() => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(_) => Err(format!("`{}` is not an object", join(path, key))),
    }
}

/// Returns the dotted path of `key` below `path`; a top-level key is its own
/// path.
fn join(path: &str, key: &str) -> String {
    if path == key { key.to_owned() } else { format!("{path}.{key}") }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

    const EXAMPLES: &[&str] = &[
        "30_example_configuration_error",
        "30_example_impersonation_ended",
        "30_example_impersonation_started",
        "30_example_login",
        "30_example_login_failed",
        "30_example_logout",
        "30_example_model_created",
        "30_example_model_deleted",
        "30_example_model_updated",
        "30_example_password_set",
        "30_example_secret_view",
        "30_example_user_write",
    ];

    fn read(relative: &str) -> Vec<u8> {
        let path = format!("{FIXTURES}/{relative}");
        std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read `{path}`: {error}"))
    }

    fn smoke_events() -> Vec<Value> {
        serde_json::from_slice(&read("smoke-78/events.json")).unwrap()
    }

    fn smoke_event(number: usize) -> SourceEvent {
        parse_event(&smoke_events()[number - 1]).unwrap()
    }

    fn valid_event() -> Value {
        json!({
            "pk": "e1",
            "user": {"pk": 5, "username": "ana", "email": "ana@example.test"},
            "action": "login",
            "app": "authentik.events.signals",
            "context": {"http_request": {"user_agent": "curl/8"}},
            "client_ip": "203.0.113.10",
            "created": "2026-12-03T16:10:01Z",
        })
    }

    fn check_rejected(event: Value, expected_reason: &str) {
        let rejection = parse_event(&event).unwrap_err();

        assert_eq!(rejection.reason, expected_reason);
        assert_eq!(rejection.raw, event);
    }

    #[test]
    fn example_fixtures_parse_without_rejection_when_read_as_pages() {
        for name in EXAMPLES {
            let page = parse_page(&read(&format!("authentik-2025.12/{name}.json"))).unwrap();

            assert!(page.rejected.is_empty(), "{name}: {:?}", page.rejected);
            assert_eq!(page.events.len(), page.len, "{name}");
            assert!(page.len > 0, "{name}");
        }
    }

    #[test]
    fn smoke_events_parse_without_rejection_when_read_one_by_one() {
        let events = smoke_events();

        let parsed: Vec<_> = events.iter().map(parse_event).collect::<Result<_, _>>().unwrap();

        assert_eq!(parsed.len(), 78);
    }

    #[test]
    fn envelope_gives_count_and_next_when_a_next_page_exists() {
        let page = parse_page(&read("authentik-2025.12/01_list_page_size_5.json")).unwrap();

        assert_eq!((page.count, page.has_next, page.len), (136, true, 5));
        assert_eq!(page.events[0].external_id, "bcec622a-1de0-4e04-a6fd-0d7b28412570");
    }

    #[test]
    fn envelope_has_no_next_when_next_is_zero() {
        let page = parse_page(&read("authentik-2025.12/07_last_page.json")).unwrap();

        assert!(!page.has_next);
        assert_eq!(page.len, 1);
    }

    #[test]
    fn envelope_is_malformed_when_the_shape_is_wrong() {
        let bodies: &[&[u8]] = &[
            b"{\"pagination\": {\"next\": 2, \"count\"",
            b"[]",
            b"{\"results\": []}",
            b"{\"pagination\": {\"next\": \"2\", \"count\": 3}, \"results\": []}",
            b"{\"pagination\": {\"next\": 0, \"count\": 3}, \"results\": {}}",
            b"<html>bad gateway</html>",
        ];
        for body in bodies {
            assert!(parse_page(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn created_parses_when_it_has_no_fractional_seconds() {
        let event = parse_event(&valid_event()).unwrap();

        assert_eq!(event.at.to_rfc3339(), "2026-12-03T16:10:01+00:00");
        assert_eq!(event.user_agent.as_deref(), Some("curl/8"));
    }

    #[test]
    fn created_keeps_microseconds_when_they_are_given() {
        let mut event = valid_event();
        event["created"] = json!("2026-12-03T16:10:01.315264Z");

        let event = parse_event(&event).unwrap();

        assert_eq!(event.at.timestamp_subsec_micros(), 315_264);
    }

    #[test]
    fn event_is_set_aside_with_its_size_when_over_the_limit() {
        let mut big = valid_event();
        big["context"] = serde_json::json!({ "blob": "x".repeat(MAX_EVENT_BYTES) });
        let small = valid_event();
        let body = serde_json::to_vec(&serde_json::json!({
            "pagination": {"next": 0, "previous": 0, "count": 2, "current": 1, "total_pages": 1, "start_index": 1, "end_index": 2},
            "results": [big, small],
        }))
        .unwrap();

        let page = parse_page(&body).unwrap();

        assert_eq!((page.len, page.events.len(), page.rejected.len()), (2, 1, 1));
        assert!(
            page.rejected[0].reason.contains("over the limit of 1048576"),
            "{}",
            page.rejected[0].reason
        );
        assert!(page.rejected[0].external_id.is_some());
    }

    #[test]
    fn event_too_deep_or_out_of_range_is_set_aside_alone() {
        let deep = format!(
            r#"{{"pk":"deep","created":"2026-12-03T16:10:01Z","action":"login","context":{}1{}}}"#,
            "[".repeat(300),
            "]".repeat(300)
        );
        let huge = r#"{"pk":"huge","created":"2026-12-03T16:10:02Z","action":"login","context":{"n":1e400}}"#;
        let body = format!(
            r#"{{"pagination":{{"next":0,"count":3}},"results":[{deep},{},{huge}]}}"#,
            valid_event()
        );

        let page = parse_page(body.as_bytes()).unwrap();

        assert_eq!((page.len, page.events.len(), page.rejected.len()), (3, 1, 2));
        assert!(page.rejected.iter().all(|item| item.reason.contains("cannot be read as JSON")));
        assert_eq!(page.rejected[0].raw, Value::String(deep));
    }

    #[test]
    fn event_is_rejected_when_pk_is_missing() {
        let mut event = valid_event();
        event.as_object_mut().unwrap().remove("pk");

        check_rejected(event, "`pk` is missing, empty or not a string");
    }

    #[test]
    fn event_is_rejected_when_created_is_not_a_time() {
        let mut event = valid_event();
        event["created"] = json!("yesterday");

        check_rejected(event, "`created` is not an RFC 3339 time: `yesterday`");
    }

    #[test]
    fn event_is_rejected_when_action_is_not_a_string() {
        let mut event = valid_event();
        event["action"] = json!(7);

        let rejection = parse_event(&event).unwrap_err();

        assert_eq!(rejection.reason, "`action` is missing or not a string");
        assert_eq!(rejection.external_id.as_deref(), Some("e1"));
        assert!(rejection.at.is_some());
    }

    #[test]
    fn event_is_rejected_when_user_fields_have_wrong_types() {
        let cases = [
            (json!("akadmin"), "`user` is not an object"),
            (json!({"pk": 1.5}), "`user.pk` is not an integer or a string"),
            (json!({"pk": 3, "username": 3}), "`user.username` is not a string"),
            (json!({"pk": 3, "is_anonymous": "yes"}), "`user.is_anonymous` is not a boolean"),
            (
                json!({"pk": 3, "on_behalf_of": {"pk": 5, "email": false}}),
                "`user.on_behalf_of.email` is not a string",
            ),
            (
                json!({"pk": 3, "authenticated_as": {"pk": [1]}}),
                "`user.authenticated_as.pk` is not an integer or a string",
            ),
        ];
        for (user, reason) in cases {
            let mut event = valid_event();
            event["user"] = user;

            check_rejected(event, reason);
        }
    }

    #[test]
    fn user_is_none_when_empty_null_or_missing() {
        for user in [Some(json!({})), Some(Value::Null), None] {
            let mut event = valid_event();
            match user {
                Some(user) => event["user"] = user,
                None => drop(event.as_object_mut().unwrap().remove("user")),
            }

            assert_eq!(parse_event(&event).unwrap().user, None);
        }
    }

    #[test]
    fn failed_login_keeps_the_typed_name_when_the_user_is_unknown() {
        let user = smoke_event(48).user.unwrap();

        assert_eq!(user.identity.id, None);
        assert_eq!(user.identity.username.as_deref(), Some("administrator"));
        let session = user.authenticated_as.unwrap();
        assert!(session.anonymous);
        assert_eq!(session.identity.id.as_deref(), Some("1"));
        assert_eq!(session.identity.email.as_deref(), Some(""));
    }

    #[test]
    fn impersonation_names_both_users_when_started() {
        let event = smoke_event(67);

        let user = event.user.as_ref().unwrap();
        assert_eq!(user.identity.id.as_deref(), Some("3"));
        assert_eq!(user.on_behalf_of.as_ref().unwrap().username.as_deref(), Some("ana.example"));
        assert_eq!(event.acted_as(), Some("5"));
    }

    #[test]
    fn nested_session_user_keeps_its_on_behalf_of_when_writing_while_impersonating() {
        let event = smoke_event(68);

        let session = event.user.unwrap().authenticated_as.unwrap();
        assert_eq!(session.identity.id.as_deref(), Some("3"));
        assert_eq!(session.on_behalf_of.unwrap().id.as_deref(), Some("5"));
        let model = event.model.unwrap();
        assert_eq!(model.pk.as_deref(), Some("5"));
        assert_eq!(model.model_name.as_deref(), Some("user"));
    }

    #[test]
    fn placeholder_ip_and_empty_context_are_kept_when_there_was_no_request() {
        let event = smoke_event(1);

        assert_eq!(event.client_ip.as_deref(), Some("255.255.255.255"));
        assert_eq!(event.context, json!({}));
        assert_eq!(event.user_agent, None);
    }

    #[test]
    fn group_model_pk_stays_hex_when_the_model_is_a_group() {
        let page = parse_page(&read("authentik-2025.12/01_list_page_size_5.json")).unwrap();

        let model = page.events[0].model.clone().unwrap();

        assert_eq!(model.pk.as_deref(), Some("74609353a8b647ffb8209d2f81b722ad"));
        assert_eq!(model.name.as_deref(), Some("bulk-temp-44"));
        assert_eq!(model.app.as_deref(), Some("authentik_core"));
    }
}
