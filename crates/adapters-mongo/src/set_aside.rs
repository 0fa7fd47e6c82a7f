//! The events set aside, kept with their reasons: events the source sent
//! that could not be read, and records too large to store.
//!
//! Each is one document keyed by `(source, key)`, where `key` is `id:` and
//! the external id, or, for an item without one, `raw:` and the SHA-256 of
//! its JSON text; a unique index on the pair keeps one copy of each, with its
//! first reason. `raw` is the item in the escaped form of [`crate::context`].

use chrono::Utc;
use domain::{AuditRecord, SourceName};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};
use ports::RejectedEvent;
use sha2::{Digest, Sha256};

use crate::context::{self, MAX_DOCUMENT_BYTES};
use crate::error::{Failure, duplicate_positions};
use crate::indexes::SET_ASIDE_KEY_INDEX;
use crate::{MongoStore, bson_date, exact_text};

/// Returns the document that sets `event` of `source` aside.
pub(crate) fn document(source: &SourceName, event: &RejectedEvent) -> RawDocumentBuf {
    build(source, event.external_id.as_deref(), event.at, &event.reason, &event.raw)
}

/// Returns the document that sets aside `record`, which cannot be stored for
/// `reason`; the record is kept without its context.
pub(crate) fn unstorable(record: &AuditRecord, reason: &str) -> RawDocumentBuf {
    let header = crate::record::without_context(record);
    build(&record.source, record.external_id.as_deref(), Some(record.at), reason, &header)
}

fn build(
    source: &SourceName,
    external_id: Option<&str>,
    at: Option<chrono::DateTime<Utc>>,
    reason: &str,
    raw: &serde_json::Value,
) -> RawDocumentBuf {
    let raw_text = raw.to_string();
    let key = match external_id {
        Some(id) => format!("id:{id}"),
        None => {
            let digest = Sha256::digest(raw_text.as_bytes());
            let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("raw:{hex}")
        }
    };
    let now = Utc::now();
    let mut document = doc! {
        "_id": ObjectId::new(),
        "source": source.as_str(),
        "key": key,
        "externalId": external_id.map_or(Bson::Null, Bson::from),
        "at": at.map_or(Bson::Null, |at| bson_date(at).into()),
        "atExact": at.map_or(Bson::Null, |at| exact_text(at).into()),
        "reason": reason,
        "setAsideAt": bson_date(now),
    };
    document.insert("raw", context::encode(raw));
    match RawDocumentBuf::try_from(&document) {
        Ok(bytes) if bytes.as_bytes().len() <= MAX_DOCUMENT_BYTES => bytes,
        // Too large (or, in theory, not writable): keep the reason and the
        // size, which fit, and say the item itself could not be kept.
        _ => {
            document.insert("raw", Bson::Null);
            document.insert(
                "reason",
                format!(
                    "{reason}; the item itself ({} bytes of JSON) is too large to keep",
                    raw_text.len()
                ),
            );
            RawDocumentBuf::try_from(&document).unwrap_or_else(|_| placeholder(&document))
        }
    }
}

/// Returns the document with only its fixed fields, which are always
/// writable.
fn placeholder(document: &Document) -> RawDocumentBuf {
    let mut kept = Document::new();
    for field in ["_id", "source", "key", "externalId", "at", "atExact", "setAsideAt"] {
        if let Some(value) = document.get(field) {
            kept.insert(field, value.clone());
        }
    }
    kept.insert("reason", "the item and its reason cannot be written as BSON");
    RawDocumentBuf::try_from(&kept).unwrap_or_default()
}

/// Inserts `documents`, skipping the ones already set aside.
pub(crate) async fn insert(
    store: &MongoStore,
    documents: Vec<RawDocumentBuf>,
) -> Result<u64, Failure> {
    if documents.is_empty() {
        return Ok(0);
    }
    let sent = documents.len();
    let collection = store.database.collection::<RawDocumentBuf>(&store.names.set_aside);
    match collection.insert_many(documents).ordered(false).await {
        Ok(_) => Ok(sent as u64),
        Err(error) => duplicate_positions(error, SET_ASIDE_KEY_INDEX)
            .map(|duplicates| sent.saturating_sub(duplicates.len()) as u64)
            .map_err(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rejected(external_id: Option<&str>, raw: serde_json::Value) -> RejectedEvent {
        RejectedEvent {
            external_id: external_id.map(str::to_owned),
            at: None,
            reason: "field `created` is not a time".into(),
            raw,
        }
    }

    fn stored(bytes: &RawDocumentBuf) -> Document {
        Document::try_from(bytes.as_ref()).unwrap()
    }

    #[test]
    fn key_is_the_external_id_when_there_is_one() {
        let document = stored(&document(&SourceName::new("a"), &rejected(Some("e1"), json!({}))));

        assert_eq!(document.get_str("key").unwrap(), "id:e1");
    }

    #[test]
    fn key_is_the_digest_of_the_raw_text_otherwise() {
        let source = SourceName::new("a");
        let first = stored(&document(&source, &rejected(None, json!(["x"]))));
        let again = stored(&document(&source, &rejected(None, json!(["x"]))));
        let other = stored(&document(&source, &rejected(None, json!(["y"]))));

        assert_eq!(first.get_str("key").ok(), again.get_str("key").ok());
        assert_ne!(first.get_str("key").ok(), other.get_str("key").ok());
        assert!(first.get_str("key").unwrap().starts_with("raw:"));
    }

    #[test]
    fn raw_is_escaped_and_reads_back() {
        let raw = json!({ "$bad": { "a.b": "\u{0}" } });

        let document = stored(&document(&SourceName::new("a"), &rejected(Some("e1"), raw.clone())));

        assert_eq!(context::decode(document.get("raw").unwrap()).unwrap(), raw);
    }

    #[test]
    fn raw_too_large_is_dropped_and_the_reason_says_so() {
        let raw = json!({ "blob": "x".repeat(MAX_DOCUMENT_BYTES) });

        let bytes = document(&SourceName::new("a"), &rejected(Some("e1"), raw));

        let document = stored(&bytes);
        assert!(bytes.as_bytes().len() < 1024);
        assert_eq!(document.get("raw"), Some(&Bson::Null));
        assert!(document.get_str("reason").unwrap().contains("too large to keep"));
    }
}
