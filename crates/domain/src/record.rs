//! The audit record: one event of one source, as every store keeps it.
//!
//! Field names are the audit schema's (`externalId`, `tenantSlug`, ...), the
//! same in the stores and in printed JSON, so the serde attributes here are
//! the schema.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tenant::TenantSlug;
use crate::verb::Verb;

/// The name of an ingest source, such as `authentik`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceName(String);

impl SourceName {
    /// Returns the source name for `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who someone is, as far as the source said.
///
/// Every part is optional: a failed login for an unknown name has a typed
/// username but no id, and some events know nobody at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The source's own id for the identity, as text.
    pub id: Option<String>,
    /// The login name.
    pub username: Option<String>,
    /// The e-mail address, as the source recorded it.
    pub email: Option<String>,
}

impl Identity {
    /// Returns true when the source said nothing about the identity.
    pub fn is_empty(&self) -> bool {
        self.id.is_none() && self.username.is_none() && self.email.is_none()
    }

    /// Returns true when both sides name the same identity.
    ///
    /// Ids decide when both have one; otherwise the usernames do.
    pub fn same_as(&self, other: &Identity) -> bool {
        match (&self.id, &other.id) {
            (Some(left), Some(right)) => left == right,
            _ => self.username.is_some() && self.username == other.username,
        }
    }
}

/// A model of the source that an event is about: a group, a user, a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSubject {
    /// The component that owns the model, such as `authentik_core`.
    pub app: Option<String>,
    /// The kind of model, such as `group` or `user`.
    pub model_name: Option<String>,
    /// The model's id, as text.
    pub pk: Option<String>,
    /// The model's display name.
    pub name: Option<String>,
}

/// Whom or what an event is about, when that is not the actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Subject {
    /// A user, such as the one whose password changed.
    User(Identity),
    /// A model, such as the group a `model_updated` event changed.
    Model(ModelSubject),
}

/// One event in the audit timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// The source the event came from.
    pub source: SourceName,
    /// The source's id for the event; `None` for events the platform records
    /// itself.
    pub external_id: Option<String>,
    /// When the event happened, in UTC, at the source's full precision.
    pub at: DateTime<Utc>,
    /// When this record was built from the source's event.
    pub recorded_at: DateTime<Utc>,
    /// The dotted verb, such as `authentik.login`.
    pub verb: Verb,
    /// The source's raw action, kept whole.
    pub action: String,
    /// Who did it, when the source says.
    pub actor: Option<Identity>,
    /// The identity the actor acted as, during impersonation.
    pub on_behalf_of: Option<Identity>,
    /// Whom or what the event is about, when that differs from the actor.
    pub subject: Option<Subject>,
    /// The tenant whose timeline the event belongs to; `None` for the global
    /// timeline only.
    pub tenant_slug: Option<TenantSlug>,
    /// The client address; `None` when the source has none or sends a
    /// placeholder.
    pub ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The part of the source that recorded the event.
    pub app: Option<String>,
    /// The source's own context for the event, kept whole.
    pub context: serde_json::Value,
}

impl AuditRecord {
    /// Returns a digest of what the source said about the event: every field
    /// taken from the source, and none that this program adds or derives
    /// (`recordedAt`, the verb, the tenant).
    ///
    /// Two reads of one event give the same fingerprint unless the source
    /// itself changed the event in between, which is how an edit at the
    /// source is told apart from a re-read. It is the lowercase hex SHA-256
    /// of a canonical JSON form (object keys sorted at every depth), so it
    /// is stable across processes, versions and stores.
    pub fn source_fingerprint(&self) -> String {
        // The canonical form of the object below, keys in sorted order,
        // written straight into the hash: the context is neither copied nor
        // turned into text on the way.
        let fields: [(&str, Field<'_>); 9] = [
            ("action", Field::Text(&self.action)),
            ("actor", Field::Owned(small(&self.actor))),
            ("app", Field::Owned(small(&self.app))),
            (
                "at",
                Field::Owned(self.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).into()),
            ),
            ("context", Field::Borrowed(&self.context)),
            ("ip", Field::Owned(small(&self.ip))),
            ("onBehalfOf", Field::Owned(small(&self.on_behalf_of))),
            ("subject", Field::Owned(small(&self.subject))),
            ("userAgent", Field::Owned(small(&self.user_agent))),
        ];
        let mut hash = HashWriter(Sha256::new());
        hash.put(b"{");
        for (index, (key, field)) in fields.iter().enumerate() {
            if index > 0 {
                hash.put(b",");
            }
            hash.string(key);
            hash.put(b":");
            match field {
                Field::Text(text) => hash.string(text),
                Field::Owned(value) => write_canonical(value, &mut hash),
                Field::Borrowed(value) => write_canonical(value, &mut hash),
            }
        }
        hash.put(b"}");
        hash.0.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// One field of the fingerprinted object.
enum Field<'a> {
    Text(&'a str),
    Owned(serde_json::Value),
    Borrowed(&'a serde_json::Value),
}

/// Returns one of the record's small fields (plain structs and strings) as
/// a JSON value, to be written canonically. Serialising them cannot fail;
/// `Null` would still fingerprint deterministically.
fn small<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// Feeds JSON text into a SHA-256.
struct HashWriter(Sha256);

impl HashWriter {
    fn put(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Writes `text` as a JSON string.
    fn string(&mut self, text: &str) {
        // Writing into a hash cannot fail.
        let _ = serde_json::to_writer(&mut *self, text);
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `value` as JSON with the keys of every object sorted, whatever
/// order the map keeps them in.
fn write_canonical(value: &serde_json::Value, out: &mut HashWriter) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
            out.put(b"{");
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.put(b",");
                }
                out.string(key);
                out.put(b":");
                write_canonical(item, out);
            }
            out.put(b"}");
        }
        serde_json::Value::Array(items) => {
            out.put(b"[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.put(b",");
                }
                write_canonical(item, out);
            }
            out.put(b"]");
        }
        // Numbers, booleans, null and strings: serde_json's own text.
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuditRecord {
        let at = DateTime::parse_from_rfc3339("2026-12-03T16:38:13.695935Z").unwrap().to_utc();
        AuditRecord {
            source: SourceName::new("authentik"),
            external_id: Some("e1".into()),
            at,
            recorded_at: at,
            verb: Verb::new_unchecked("authentik.login"),
            action: "login".into(),
            actor: None,
            on_behalf_of: None,
            subject: Some(Subject::User(Identity { id: Some("5".into()), ..Identity::default() })),
            tenant_slug: None,
            ip: None,
            user_agent: None,
            app: None,
            context: serde_json::json!({}),
        }
    }

    #[test]
    fn fingerprint_ignores_what_this_program_adds() {
        let original = sample();
        let mut reread = sample();
        reread.recorded_at += chrono::TimeDelta::hours(1);
        reread.tenant_slug = Some(TenantSlug::parse("acme").unwrap());
        reread.verb = Verb::new_unchecked("authentik.other");

        assert_eq!(original.source_fingerprint(), reread.source_fingerprint());
        assert_eq!(original.source_fingerprint().len(), 64);
    }

    #[test]
    fn fingerprint_changes_with_what_the_source_says() {
        let original = sample().source_fingerprint();
        let edits: [fn(&mut AuditRecord); 4] = [
            |record| record.context = serde_json::json!({"message": "edited"}),
            |record| record.ip = Some("10.0.0.1".into()),
            |record| record.at += chrono::TimeDelta::microseconds(1),
            |record| record.action = "logout".into(),
        ];
        for edit in edits {
            let mut edited = sample();
            edit(&mut edited);
            assert_ne!(edited.source_fingerprint(), original);
        }
    }

    #[test]
    fn fingerprint_is_the_same_in_every_version() {
        // Stored fingerprints are compared with new ones: a change of the
        // canonical form would report every stored event as changed.
        assert_eq!(
            sample().source_fingerprint(),
            "491b5dcd472e3a4b3ee3b429871c376258d7318c0baeecee0fe14d60948856da"
        );
    }

    #[test]
    fn fingerprint_does_not_depend_on_key_order() {
        let mut first = sample();
        first.context =
            serde_json::from_str(r#"{"a": 1, "b": {"y": [1, {"q": 1, "p": 2}], "x": null}}"#)
                .unwrap();
        let mut second = sample();
        second.context =
            serde_json::from_str(r#"{"b": {"x": null, "y": [1, {"p": 2, "q": 1}]}, "a": 1}"#)
                .unwrap();

        assert_eq!(first.source_fingerprint(), second.source_fingerprint());
    }

    #[test]
    fn record_serialises_with_the_schema_field_names() {
        let record = sample();

        let json = serde_json::to_value(&record).unwrap();

        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        for key in [
            "source",
            "externalId",
            "at",
            "recordedAt",
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
        ] {
            assert!(keys.contains(&key), "missing {key} in {keys:?}");
        }
        assert_eq!(json["at"], "2026-12-03T16:38:13.695935Z");
        assert_eq!(json["subject"]["kind"], "user");
        let back: AuditRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }
}
