//! The production audit store on MongoDB.
//!
//! One database, named by the connection string, holds the timeline
//! (`audit_events`), one cursor per source (`ingest_cursors`), the events set
//! aside (`set_aside`), the changed versions the source sent of stored events
//! (`source_changes`), the ingest leases (`ingest_leases`), and the tenants
//! the platform keeps (`tenants`, read only: its `slug` field). Every name is
//! configurable through [`CollectionNames`].
//!
//! Exactly-once storage rests on a partial unique index on
//! `(source, externalId)`, limited to string ids so that the platform's own
//! records (`externalId: null`) never collide; see [`indexes`] for every
//! index and how an existing one is checked. A batch is one unordered bulk
//! insert: a duplicate-key error on that index means "already stored", any
//! other error fails the batch.
//!
//! BSON dates keep milliseconds and the source sends microseconds, so each
//! time is stored twice: as a BSON date for the platform's queries, and as
//! fixed-width RFC 3339 text with nine fractional digits (`atExact`) that
//! keeps every digit and sorts as text in time order. The timeline orders
//! and filters on both. Event context is untrusted JSON and is stored in the
//! escaped form [`context`] documents.

pub mod context;
mod cursors;
mod error;
mod events;
pub mod indexes;
mod leases;
mod record;
mod set_aside;
mod status;
mod tenants;

use chrono::{DateTime, SecondsFormat, Utc};
use mongodb::bson::Document;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use ports::StoreError;
use thiserror::Error;

pub use crate::context::{MAX_CONTEXT_DEPTH, MAX_DOCUMENT_BYTES};

/// The names of the collections the store uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionNames {
    /// The audit timeline [default: `audit_events`].
    pub events: String,
    /// One cursor per source [default: `ingest_cursors`].
    pub cursors: String,
    /// The tenants, read for their `slug` [default: `tenants`].
    pub tenants: String,
    /// The events set aside as unreadable or unstorable [default:
    /// `set_aside`].
    pub set_aside: String,
    /// The changed versions of stored events [default: `source_changes`].
    pub source_changes: String,
    /// The ingest leases, one per source [default: `ingest_leases`].
    pub leases: String,
}

impl Default for CollectionNames {
    fn default() -> Self {
        Self {
            events: "audit_events".into(),
            cursors: "ingest_cursors".into(),
            tenants: "tenants".into(),
            set_aside: "set_aside".into(),
            source_changes: "source_changes".into(),
            leases: "ingest_leases".into(),
        }
    }
}

impl CollectionNames {
    /// Returns each name with the role it plays, for messages.
    pub fn roles(&self) -> [(&'static str, &str); 6] {
        [
            ("events", &self.events),
            ("cursors", &self.cursors),
            ("tenants", &self.tenants),
            ("set_aside", &self.set_aside),
            ("source_changes", &self.source_changes),
            ("leases", &self.leases),
        ]
    }

    /// Checks that every name is one MongoDB accepts and that no two roles
    /// share a collection.
    ///
    /// # Errors
    /// A message naming the first role whose name cannot be used.
    pub fn check(&self) -> Result<(), String> {
        let roles = self.roles();
        for (index, (role, name)) in roles.iter().enumerate() {
            if name.is_empty() {
                return Err(format!("the {role} collection name is empty"));
            }
            if name.contains(['$', '\0']) || name.starts_with("system.") {
                return Err(format!(
                    "the {role} collection name `{}` is not allowed; MongoDB refuses `$`, NUL \
                     and a `system.` prefix",
                    name.escape_debug()
                ));
            }
            if name.len() > 200 {
                return Err(format!("the {role} collection name is longer than 200 bytes"));
            }
            if let Some((other, _)) = roles[..index].iter().find(|(_, earlier)| earlier == name) {
                return Err(format!(
                    "the {role} and {other} collections are both named `{name}`; give each its own"
                ));
            }
        }
        Ok(())
    }
}

/// The error from opening the store.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The connection string or a collection name cannot be used; nothing
    /// was contacted.
    #[error("{0}")]
    Settings(String),
    /// The deployment could not be reached, or its indexes differ from what
    /// this store needs.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The MongoDB store: implements every store port of `ports` over one
/// database.
///
/// Cloning is cheap: every clone shares the driver's connection pool.
#[derive(Debug, Clone)]
pub struct MongoStore {
    database: Database,
    names: CollectionNames,
}

impl MongoStore {
    /// Connects to the deployment `uri` names, uses the database it names,
    /// and creates the indexes the store needs where they are missing.
    ///
    /// Any standard connection string works, `mongodb+srv://` included, with
    /// its replica-set, TLS and authentication options. Nothing is written
    /// when an existing index has the name of one this store needs but a
    /// different definition.
    ///
    /// # Errors
    /// - [`OpenError::Settings`] when `uri` cannot be parsed, names no
    ///   database, or `names` cannot be used.
    /// - [`OpenError::Store`] with [`StoreError::Schema`] when an index
    ///   differs, and [`StoreError::Unavailable`] when the deployment cannot
    ///   be reached.
    pub async fn open(uri: &str, names: CollectionNames) -> Result<Self, OpenError> {
        names.check().map_err(OpenError::Settings)?;
        // The driver's messages never quote the password, but they may quote
        // the rest of the string, which the caller prints redacted anyway.
        let mut options = ClientOptions::parse(uri).await.map_err(|error| {
            // A `mongodb+srv://` string is resolved through DNS while it is
            // parsed; a lookup that fails is the network's doing, not the
            // setting's.
            if matches!(error.kind.as_ref(), mongodb::error::ErrorKind::DnsResolve { .. }) {
                OpenError::Store(StoreError::unavailable(
                    "resolving the MongoDB connection string failed",
                    error,
                ))
            } else {
                OpenError::Settings(format!(
                    "is not a usable MongoDB connection string: {}",
                    error.kind
                ))
            }
        })?;
        let Some(database) = options.default_database.clone() else {
            return Err(OpenError::Settings(
                "names no database; add it after the hosts, as in \
                 `mongodb://host:27017/audit`"
                    .into(),
            ));
        };
        if options.app_name.is_none() {
            options.app_name = Some("audit-ingest".into());
        }
        let client = Client::with_options(options)
            .map_err(|error| StoreError::other("building the MongoDB client failed", error))?;
        Self::on(client.database(&database), names).await
    }

    /// Opens the store on `database` of a client already built, creating the
    /// indexes as [`open`](Self::open) does.
    ///
    /// # Errors
    /// As for [`open`](Self::open).
    pub async fn on(database: Database, names: CollectionNames) -> Result<Self, OpenError> {
        names.check().map_err(OpenError::Settings)?;
        let store = Self { database, names };
        indexes::ensure(&store.database, &store.names).await?;
        Ok(store)
    }

    /// The database the store uses.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The collection names the store uses.
    pub fn names(&self) -> &CollectionNames {
        &self.names
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.database.collection(name)
    }
}

/// Returns `at` as the text stored beside its BSON date: RFC 3339 in UTC
/// with nine fractional digits, whose text order is time order for the years
/// 0 to 9999.
pub(crate) fn exact_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Returns the BSON date of `at`: its milliseconds, rounded down, so that a
/// date never sorts after the exact time it stands for.
pub(crate) fn bson_date(at: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(at.timestamp_millis())
}

/// Returns the time stored as exact text in `field`.
pub(crate) fn parse_exact(
    field: &'static str,
    text: &str,
) -> Result<DateTime<Utc>, error::Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.to_utc())
        .map_err(|error| error::Failure::corrupt(field, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_pass_the_check() {
        assert_eq!(CollectionNames::default().check(), Ok(()));
    }

    #[test]
    fn names_are_refused_when_unusable_or_shared() {
        let cases: [fn(&mut CollectionNames); 5] = [
            |names| names.events = String::new(),
            |names| names.cursors = "a$b".into(),
            |names| names.tenants = "system.users".into(),
            |names| names.leases = "x".repeat(201),
            |names| names.set_aside = "audit_events".into(),
        ];
        for case in cases {
            let mut names = CollectionNames::default();
            case(&mut names);
            assert!(names.check().is_err(), "{names:?}");
        }
    }

    #[test]
    fn shared_name_error_names_both_roles() {
        let names =
            CollectionNames { source_changes: "audit_events".into(), ..CollectionNames::default() };

        let message = names.check().unwrap_err();

        assert!(message.contains("source_changes and events"), "{message}");
    }

    #[tokio::test]
    async fn open_refuses_a_connection_string_without_a_database_before_connecting() {
        let error = MongoStore::open("mongodb://db.example.test:27017", CollectionNames::default())
            .await
            .unwrap_err();

        let OpenError::Settings(message) = error else { panic!("{error:?}") };
        assert!(message.contains("names no database"), "{message}");
    }

    #[tokio::test]
    async fn open_refuses_a_malformed_connection_string_without_quoting_the_password() {
        let error = MongoStore::open(
            "mongodb://user:hunter2@db.example.test:notaport/audit",
            CollectionNames::default(),
        )
        .await
        .unwrap_err();

        let OpenError::Settings(message) = error else { panic!("{error:?}") };
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn bson_date_rounds_down_to_the_millisecond() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T16:38:13.695935Z").unwrap().to_utc();
        let before = DateTime::parse_from_rfc3339("1969-12-31T23:59:59.9995Z").unwrap().to_utc();

        assert_eq!(bson_date(at).timestamp_millis(), 1_796_315_893_695);
        assert_eq!(bson_date(before).timestamp_millis(), -1);
        assert_eq!(exact_text(at), "2026-12-03T16:38:13.695935000Z");
    }
}
