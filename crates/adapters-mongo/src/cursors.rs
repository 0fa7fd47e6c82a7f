//! The sources' cursors, one document per source.
//!
//! A cursor document is `{_id: source, source, lastEventAt, lastEventAtExact,
//! lastEventId, walk}`: the BSON date for the platform, the exact text for
//! comparisons, and the walk under way (its times as RFC 3339 text, which
//! keeps every digit) for the next tick to resume.
//!
//! A save is one conditional upsert: it writes only when the stored cursor
//! has no time, or a time at or before the new one. When the condition
//! fails, the upsert tries to insert a second document with the source's
//! `_id` and gets a duplicate-key error, which means "the stored cursor is
//! newer" and is no error. Two writers racing are ordered by the server's
//! per-document atomicity, so `lastEventAt` never moves backwards.

use async_trait::async_trait;
use domain::{Cursor, SourceName, Walk};
use futures::TryStreamExt as _;
use mongodb::bson::{self, Bson, Document, doc};
use ports::{CursorStore, StoreError};

use crate::error::{Failure, is_duplicate_key};
use crate::record::optional_text;
use crate::{MongoStore, bson_date, exact_text, parse_exact};

#[async_trait]
impl CursorStore for MongoStore {
    async fn load(&self, source: &SourceName) -> Result<Option<Cursor>, StoreError> {
        let operation = format!("loading the cursor of `{source}`");
        let found = self
            .collection(&self.names.cursors)
            .find_one(doc! { "_id": source.as_str() })
            .await
            .map_err(|error| Failure::from(error).into_store_error(&operation))?;
        found
            .as_ref()
            .map(decode)
            .transpose()
            .map_err(|failure| failure.into_store_error(&operation))
    }

    async fn save(&self, source: &SourceName, cursor: &Cursor) -> Result<(), StoreError> {
        let operation = format!("saving the cursor of `{source}`");
        let (filter, update) = save_operation(source, cursor)
            .map_err(|failure| failure.into_store_error(&operation))?;
        let collection = self.collection(&self.names.cursors);
        // The first duplicate-key error may be two first saves racing to
        // insert; the second try then compares with the one that won.
        for attempt in 0..2 {
            match collection.update_one(filter.clone(), update.clone()).upsert(true).await {
                Ok(_) => return Ok(()),
                Err(error) if is_duplicate_key(&error) && attempt == 0 => {}
                Err(error) if is_duplicate_key(&error) => return Ok(()),
                Err(error) => return Err(Failure::from(error).into_store_error(&operation)),
            }
        }
        Ok(())
    }
}

/// Returns the filter and update that save `cursor` of `source` unless the
/// stored one is newer.
pub(crate) fn save_operation(
    source: &SourceName,
    cursor: &Cursor,
) -> Result<(Document, Document), Failure> {
    let filter = match cursor.last_event_at {
        Some(at) => doc! {
            "_id": source.as_str(),
            "$or": [
                { "lastEventAtExact": Bson::Null },
                { "lastEventAtExact": { "$lte": exact_text(at) } },
            ],
        },
        None => doc! { "_id": source.as_str(), "lastEventAtExact": Bson::Null },
    };
    let update = doc! { "$set": encode(source, cursor)? };
    Ok((filter, update))
}

/// Returns the fields of the document that stores `cursor` of `source`.
pub(crate) fn encode(source: &SourceName, cursor: &Cursor) -> Result<Document, Failure> {
    let walk = match &cursor.walk {
        Some(walk) => {
            bson::serialize_to_bson(walk).map_err(|error| Failure::corrupt("walk", error))?
        }
        None => Bson::Null,
    };
    Ok(doc! {
        "source": source.as_str(),
        "lastEventAt": cursor.last_event_at.map_or(Bson::Null, |at| bson_date(at).into()),
        "lastEventAtExact": cursor.last_event_at.map_or(Bson::Null, |at| exact_text(at).into()),
        "lastEventId": cursor.last_event_id.as_deref().map_or(Bson::Null, Bson::from),
        "walk": walk,
    })
}

/// Returns the cursor stored in `document`.
pub(crate) fn decode(document: &Document) -> Result<Cursor, Failure> {
    let last_event_at = optional_text(document, "lastEventAtExact")?
        .map(|text| parse_exact("lastEventAtExact", &text))
        .transpose()?;
    let walk = match document.get("walk") {
        None | Some(Bson::Null) => None,
        Some(walk) => Some(
            bson::deserialize_from_bson::<Walk>(walk.clone())
                .map_err(|error| Failure::corrupt("walk", error))?,
        ),
    };
    Ok(Cursor { last_event_at, last_event_id: optional_text(document, "lastEventId")?, walk })
}

/// Returns every stored cursor with its source, in source order.
pub(crate) async fn read_all(store: &MongoStore) -> Result<Vec<(SourceName, Cursor)>, Failure> {
    let documents: Vec<Document> = store
        .collection(&store.names.cursors)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await?
        .try_collect()
        .await?;
    documents
        .iter()
        .map(|document| {
            let source = document.get_str("_id").map_err(|error| Failure::corrupt("_id", error))?;
            Ok((SourceName::new(source), decode(document)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use domain::EventKey;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn cursor() -> Cursor {
        Cursor {
            last_event_at: Some(at("2026-12-03T16:38:13.695935Z")),
            last_event_id: Some("e1".into()),
            walk: Some(Walk {
                top: Some(EventKey { at: at("2026-12-03T16:40:00.000001Z"), id: "top".into() }),
                floor: Some(at("2026-12-03T16:33:13.695935Z")),
                next_page: 3,
                count: 12_345_678_901,
                page_size: 100,
                step_backs: 1,
                furthest: 5,
                unsure_below: Some(at("2026-12-03T16:35:00.000001Z")),
                ends_at_next: false,
            }),
        }
    }

    #[test]
    fn cursor_reads_back_unchanged_through_its_document() {
        let source = SourceName::new("authentik");

        let document = encode(&source, &cursor()).unwrap();

        assert_eq!(decode(&document).unwrap(), cursor());
        assert_eq!(
            decode(&encode(&source, &Cursor::default()).unwrap()).unwrap(),
            Cursor::default()
        );
    }

    #[test]
    fn document_has_a_date_and_the_exact_time() {
        let document = encode(&SourceName::new("authentik"), &cursor()).unwrap();

        assert_eq!(document.get_str("lastEventAtExact").unwrap(), "2026-12-03T16:38:13.695935000Z");
        assert_eq!(document.get_datetime("lastEventAt").unwrap().timestamp_millis() % 1000, 695);
        let walk = document.get_document("walk").unwrap();
        assert_eq!(
            walk.get_document("top").unwrap().get_str("at").unwrap(),
            "2026-12-03T16:40:00.000001Z"
        );
    }

    #[test]
    fn save_with_a_time_only_replaces_an_older_or_timeless_cursor() {
        let (filter, update) = save_operation(&SourceName::new("authentik"), &cursor()).unwrap();

        assert_eq!(
            filter,
            doc! {
                "_id": "authentik",
                "$or": [
                    { "lastEventAtExact": Bson::Null },
                    { "lastEventAtExact": { "$lte": "2026-12-03T16:38:13.695935000Z" } },
                ],
            }
        );
        assert!(update.get_document("$set").unwrap().contains_key("walk"));
    }

    #[test]
    fn save_without_a_time_only_replaces_a_timeless_cursor() {
        let (filter, _) = save_operation(&SourceName::new("a"), &Cursor::default()).unwrap();

        assert_eq!(filter, doc! { "_id": "a", "lastEventAtExact": Bson::Null });
    }
}
