//! Reads files of Authentik events: saved API pages and plain arrays.
//!
//! An export made with `curl` holds one page as the API sends it
//! (`{"pagination": …, "results": […]}`); an archive may hold just the
//! events as a JSON array. Both are read with the live path's parser, so an
//! imported event becomes the same [`domain::SourceEvent`] a fetched one
//! does, and an unreadable one is set aside the same way.

use ports::SourcePage;

use crate::parse::{parse_page, read_event};

/// Reads the events in `bytes`: an API page or a JSON array of events.
///
/// The page's `count` is the number of items read, and `has_next` is false:
/// a file is not a walk.
///
/// # Errors
/// A short reason, without the content, when `bytes` is neither shape.
pub fn read_export(bytes: &[u8]) -> Result<SourcePage, String> {
    // Each item is kept as raw text first and read on its own, as a live
    // page's are: one item too deep or too large fails alone.
    let items: Vec<&serde_json::value::RawValue> = match serde_json::from_slice(bytes) {
        Ok(items) => items,
        Err(_) => {
            let mut page = parse_page(bytes).map_err(|error| {
                if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
                    error
                } else {
                    format!(
                        "neither an Authentik API page (`results`) nor a JSON array of events: {error}"
                    )
                }
            })?;
            page.count = page.len as u64;
            page.has_next = false;
            return Ok(page);
        }
    };
    let mut events = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for item in &items {
        match read_event(item.get()) {
            Ok(event) => events.push(event),
            Err(rejection) => rejected.push(*rejection),
        }
    }
    Ok(SourcePage {
        count: items.len() as u64,
        has_next: false,
        len: items.len(),
        events,
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn event(pk: &str) -> Value {
        json!({
            "pk": pk, "action": "login", "created": "2026-12-03T16:10:01.315264Z",
            "user": {"pk": 7, "username": "alice", "email": "alice@example.test"},
            "app": "authentik.events.signals", "client_ip": "10.0.0.1", "context": {}
        })
    }

    #[test]
    fn array_of_events_is_read_and_a_bad_item_set_aside() {
        let body = json!([event("a"), {"pk": "b", "created": "yesterday"}, event("c")]);

        let page = read_export(body.to_string().as_bytes()).unwrap();

        assert_eq!(page.len, 3);
        assert_eq!(page.events.len(), 2);
        assert_eq!(page.rejected.len(), 1);
        assert_eq!(page.rejected[0].external_id.as_deref(), Some("b"));
    }

    #[test]
    fn api_page_is_read_and_never_says_there_is_more() {
        let body = json!({
            "pagination": {"next": 2, "previous": 0, "count": 500},
            "results": [event("a")],
        });

        let page = read_export(body.to_string().as_bytes()).unwrap();

        assert_eq!((page.len, page.count, page.has_next), (1, 1, false));
        assert_eq!(page.events[0].external_id, "a");
    }

    #[test]
    fn other_shapes_are_refused_with_a_reason() {
        assert!(read_export(b"{\"detail\": \"Invalid page.\"}").unwrap_err().contains("neither"));
        assert!(read_export(b"not json").unwrap_err().contains("not JSON"));
        assert!(read_export(b"{\"results\": 5}").is_err());
    }
}
