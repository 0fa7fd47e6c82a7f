//! An audit record as the document that stores it, and back.
//!
//! The field names are the audit schema's. Beside the two BSON dates `at`
//! and `recordedAt` sit `atExact` and `recordedAtExact`, the same times as
//! text with every digit (see [`crate::exact_text`]). `fingerprint` is
//! [`AuditRecord::source_fingerprint`], compared when the source sends a
//! stored event again.

use domain::{AuditRecord, SourceName, TenantSlug, Verb};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{self, Bson, Document, RawDocumentBuf, doc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::{self, MAX_DOCUMENT_BYTES};
use crate::error::Failure;
use crate::{bson_date, exact_text, parse_exact};

/// A record ready to insert.
#[derive(Debug)]
pub(crate) struct Encoded {
    /// The document, as the bytes the server gets.
    pub(crate) document: RawDocumentBuf,
    /// The record's fingerprint.
    pub(crate) fingerprint: String,
}

/// Why a record cannot be stored as a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unstorable {
    /// What is wrong, for the set-aside reason.
    pub(crate) reason: String,
}

/// Returns the document that stores `record`, or why it cannot be stored.
///
/// Context is escaped as [`context`] documents, so no key or nesting can fail
/// the insert; only a document past MongoDB's size limit is unstorable.
pub(crate) fn encode(record: &AuditRecord) -> Result<Encoded, Unstorable> {
    let fingerprint = record.source_fingerprint();
    let document = document(record, &fingerprint);
    let bytes = RawDocumentBuf::try_from(&document).map_err(|error| Unstorable {
        reason: format!("the event cannot be written as BSON: {error}"),
    })?;
    let size = bytes.as_bytes().len();
    if size > MAX_DOCUMENT_BYTES {
        return Err(Unstorable {
            reason: format!(
                "the event's document is {size} bytes, past MongoDB's limit of \
                 {MAX_DOCUMENT_BYTES}; its context is not kept"
            ),
        });
    }
    Ok(Encoded { document: bytes, fingerprint })
}

/// Returns the document of `record` with `fingerprint`.
///
/// The `_id` is made here rather than by the driver, so that the size
/// checked against the limit is the size the server gets.
fn document(record: &AuditRecord, fingerprint: &str) -> Document {
    doc! {
        "_id": ObjectId::new(),
        "source": record.source.as_str(),
        "externalId": record.external_id.as_deref().map_or(Bson::Null, Bson::from),
        "at": bson_date(record.at),
        "atExact": exact_text(record.at),
        "recordedAt": bson_date(record.recorded_at),
        "recordedAtExact": exact_text(record.recorded_at),
        "verb": record.verb.as_str(),
        "action": record.action.as_str(),
        "actor": plain(record.actor.as_ref()),
        "onBehalfOf": plain(record.on_behalf_of.as_ref()),
        "subject": plain(record.subject.as_ref()),
        "tenantSlug": record.tenant_slug.as_ref().map_or(Bson::Null, |slug| slug.as_str().into()),
        "ip": text(record.ip.as_deref()),
        "userAgent": text(record.user_agent.as_deref()),
        "app": text(record.app.as_deref()),
        "context": context::encode(&record.context),
        "fingerprint": fingerprint,
    }
}

/// Returns the record as JSON without its context, for the set-aside copy of
/// a record too large to store.
pub(crate) fn without_context(record: &AuditRecord) -> serde_json::Value {
    let mut header = record.clone();
    header.context = serde_json::Value::Null;
    serde_json::to_value(&header).unwrap_or(serde_json::Value::Null)
}

/// Returns the document that records `record` as a changed version of a
/// stored one, first seen when the record was built.
///
/// A version too large to keep whole is kept without its context, and says
/// so; it is still counted, and its fingerprint still recognised.
pub(crate) fn change(record: &AuditRecord, fingerprint: &str) -> RawDocumentBuf {
    let mut change = doc! {
        "_id": ObjectId::new(),
        "source": record.source.as_str(),
        "externalId": record.external_id.as_deref().unwrap_or_default(),
        "fingerprint": fingerprint,
        "seenAt": bson_date(record.recorded_at),
        "seenAtExact": exact_text(record.recorded_at),
    };
    let mut whole = document(record, fingerprint);
    whole.remove("_id");
    change.insert("record", whole);
    match RawDocumentBuf::try_from(&change) {
        Ok(bytes) if bytes.as_bytes().len() <= MAX_DOCUMENT_BYTES => bytes,
        _ => {
            if let Ok(record) = change.get_document_mut("record") {
                record.insert("context", Bson::Null);
            }
            change.insert(
                "contextOmitted",
                format!(
                    "the changed version is past MongoDB's limit of {MAX_DOCUMENT_BYTES} bytes"
                ),
            );
            RawDocumentBuf::try_from(&change).unwrap_or_default()
        }
    }
}

fn text(value: Option<&str>) -> Bson {
    value.map_or(Bson::Null, Bson::from)
}

/// Returns a value of fixed shape (identities, subjects: names and ids as
/// text) as BSON through serde, or null.
fn plain<T: Serialize>(value: Option<&T>) -> Bson {
    // These types hold only strings and options of them under fixed field
    // names, which BSON always takes.
    value.and_then(|value| bson::serialize_to_bson(value).ok()).unwrap_or(Bson::Null)
}

/// Returns the record stored in `document`.
///
/// # Errors
/// [`Failure::Corrupt`] naming the first field that cannot be read back.
pub(crate) fn decode(document: &Document) -> Result<AuditRecord, Failure> {
    let tenant_slug = optional_text(document, "tenantSlug")?
        .map(|slug| TenantSlug::parse(&slug))
        .transpose()
        .map_err(|error| Failure::corrupt("tenantSlug", error))?;
    Ok(AuditRecord {
        source: SourceName::new(required_text(document, "source")?),
        external_id: optional_text(document, "externalId")?,
        at: parse_exact("atExact", &required_text(document, "atExact")?)?,
        recorded_at: parse_exact("recordedAtExact", &required_text(document, "recordedAtExact")?)?,
        verb: Verb::new_unchecked(required_text(document, "verb")?),
        action: required_text(document, "action")?,
        actor: optional_plain(document, "actor")?,
        on_behalf_of: optional_plain(document, "onBehalfOf")?,
        subject: optional_plain(document, "subject")?,
        tenant_slug,
        ip: optional_text(document, "ip")?,
        user_agent: optional_text(document, "userAgent")?,
        app: optional_text(document, "app")?,
        context: context::decode(document.get("context").unwrap_or(&Bson::Null))?,
    })
}

/// Returns the text in `field`, which must be there.
pub(crate) fn required_text(document: &Document, field: &'static str) -> Result<String, Failure> {
    optional_text(document, field)?.ok_or_else(|| Failure::corrupt(field, "it is missing"))
}

/// Returns the text in `field`, or `None` when it is null or missing.
pub(crate) fn optional_text(
    document: &Document,
    field: &'static str,
) -> Result<Option<String>, Failure> {
    match document.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(text)) => Ok(Some(text.clone())),
        Some(other) => {
            Err(Failure::corrupt(field, format!("{:?} is not text", other.element_type())))
        }
    }
}

fn optional_plain<T: DeserializeOwned>(
    document: &Document,
    field: &'static str,
) -> Result<Option<T>, Failure> {
    match document.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(value) => bson::deserialize_from_bson(value.clone())
            .map(Some)
            .map_err(|error| Failure::corrupt(field, error)),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use domain::{Identity, ModelSubject, Subject};
    use serde_json::json;

    use super::*;

    fn record() -> AuditRecord {
        let at = DateTime::parse_from_rfc3339("2026-12-03T16:38:13.000001Z").unwrap().to_utc();
        AuditRecord {
            source: SourceName::new("authentik"),
            external_id: Some("e1".into()),
            at,
            recorded_at: DateTime::parse_from_rfc3339("2026-12-03T16:38:14.999999Z")
                .unwrap()
                .to_utc(),
            verb: Verb::new_unchecked("authentik.login"),
            action: "login \u{0} 日本".into(),
            actor: Some(Identity {
                id: Some("7".into()),
                username: Some("ana".into()),
                email: Some("ana@example.test".into()),
            }),
            on_behalf_of: Some(Identity { id: None, username: Some("bob".into()), email: None }),
            subject: Some(Subject::Model(ModelSubject {
                app: Some("authentik_core".into()),
                model_name: Some("group".into()),
                pk: None,
                name: Some("acme-admins".into()),
            })),
            tenant_slug: Some(TenantSlug::parse("acme").unwrap()),
            ip: Some("2001:db8::1".into()),
            user_agent: None,
            app: Some("authentik.events.signals".into()),
            context: json!({ "$where": { "a.b": [1, u64::MAX] }, "geo": { "lat": 0.1 } }),
        }
    }

    fn stored(encoded: &Encoded) -> Document {
        Document::try_from(encoded.document.as_ref()).unwrap()
    }

    #[test]
    fn record_reads_back_unchanged_through_its_document() {
        let record = record();

        let encoded = encode(&record).unwrap();

        assert_eq!(decode(&stored(&encoded)).unwrap(), record);
        assert_eq!(encoded.fingerprint, record.source_fingerprint());
    }

    #[test]
    fn times_are_bson_dates_with_the_exact_text_beside_them() {
        let document = stored(&encode(&record()).unwrap());

        assert_eq!(document.get_datetime("at").unwrap().timestamp_millis() % 1000, 0);
        assert_eq!(document.get_str("atExact").unwrap(), "2026-12-03T16:38:13.000001000Z");
        assert_eq!(document.get_datetime("recordedAt").unwrap().timestamp_millis() % 1000, 999);
        assert_eq!(document.get_str("recordedAtExact").unwrap(), "2026-12-03T16:38:14.999999000Z");
    }

    #[test]
    fn document_uses_the_schema_field_names() {
        let document = stored(&encode(&record()).unwrap());

        let keys: Vec<&str> = document.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "_id",
                "source",
                "externalId",
                "at",
                "atExact",
                "recordedAt",
                "recordedAtExact",
                "verb",
                "action",
                "actor",
                "onBehalfOf",
                "subject",
                "tenantSlug",
                "ip",
                "userAgent",
                "app",
                "context",
                "fingerprint"
            ]
        );
        assert_eq!(document.get_document("actor").unwrap().get_str("username").unwrap(), "ana");
        assert_eq!(document.get_document("subject").unwrap().get_str("kind").unwrap(), "model");
        assert!(document.get_document("context").unwrap().contains_key("%24where"));
    }

    #[test]
    fn platform_record_has_a_null_external_id() {
        let mut record = record();
        record.external_id = None;

        let document = stored(&encode(&record).unwrap());

        assert_eq!(document.get("externalId"), Some(&Bson::Null));
        assert_eq!(decode(&document).unwrap(), record);
    }

    #[test]
    fn record_past_the_size_limit_is_unstorable_with_the_reason() {
        let mut record = record();
        record.context = json!({ "blob": "x".repeat(MAX_DOCUMENT_BYTES) });

        let unstorable = encode(&record).unwrap_err();

        assert!(unstorable.reason.contains("past MongoDB's limit of 16777216"), "{unstorable:?}");
    }

    #[test]
    fn record_just_under_the_size_limit_is_stored() {
        let mut record = record();
        record.context = json!({ "blob": "" });
        let overhead = encode(&record).unwrap().document.as_bytes().len();
        record.context = json!({ "blob": "x".repeat(MAX_DOCUMENT_BYTES - overhead) });

        let encoded = encode(&record).unwrap();

        assert_eq!(encoded.document.as_bytes().len(), MAX_DOCUMENT_BYTES);
    }

    #[test]
    fn missing_or_mistyped_field_is_named_when_decoded() {
        let mut document = stored(&encode(&record()).unwrap());
        document.insert("atExact", 5_i32);
        let error = decode(&document).unwrap_err().into_store_error("reading");
        assert!(error.to_string().contains("`atExact`"), "{error}");

        document.remove("atExact");
        let error = decode(&document).unwrap_err().into_store_error("reading");
        assert!(error.to_string().contains("`atExact`"), "{error}");
    }

    #[test]
    fn change_keeps_the_whole_version_or_says_what_it_left_out() {
        let small = record();
        let mut large = record();
        large.context = json!({ "blob": "x".repeat(MAX_DOCUMENT_BYTES) });

        let kept = Document::try_from(change(&small, "f1").as_ref()).unwrap();
        let trimmed = change(&large, "f2");

        let inner = kept.get_document("record").unwrap();
        assert_eq!(decode(inner).unwrap(), small);
        assert_eq!(kept.get_str("fingerprint").unwrap(), "f1");
        assert!(trimmed.as_bytes().len() < 4096);
        let trimmed = Document::try_from(trimmed.as_ref()).unwrap();
        assert!(trimmed.get_str("contextOmitted").unwrap().contains("16777216"));
        assert_eq!(trimmed.get_str("fingerprint").unwrap(), "f2");
    }

    #[test]
    fn header_keeps_everything_but_the_context() {
        let header = without_context(&record());

        assert_eq!(header["externalId"], "e1");
        assert_eq!(header["context"], serde_json::Value::Null);
    }
}
