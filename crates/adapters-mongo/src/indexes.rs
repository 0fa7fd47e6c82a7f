//! The indexes the store needs, and how they are created and checked.
//!
//! On open, the store lists the indexes of each of its collections. An index
//! with the name of one in [`specs`] must have the same definition: the same
//! keys in the same order, the same uniqueness and partial filter, and
//! nothing that would change what it admits or keeps (`sparse`, a
//! `collation`, `expireAfterSeconds`). When any differs, the store stops with
//! [`StoreError::Schema`] naming them all, before it creates anything. The
//! missing ones are then created; creating an index that exists with the very
//! same definition does nothing, so replicas opening at once are safe.

use std::fmt::Write as _;

use mongodb::Database;
use mongodb::IndexModel;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::IndexOptions;
use ports::StoreError;

use crate::CollectionNames;
use crate::error::{Failure, NAMESPACE_NOT_FOUND, code};

/// The name of the index that keeps one record per `(source, externalId)`.
pub const EVENT_KEY_INDEX: &str = "source_externalId_unique";

/// The name of the index that keeps one changed version per fingerprint.
pub const CHANGE_KEY_INDEX: &str = "source_externalId_fingerprint_unique";

/// The name of the index that keeps one copy of each event set aside.
pub const SET_ASIDE_KEY_INDEX: &str = "source_key_unique";

/// One index the store needs.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    /// The index's name.
    pub name: &'static str,
    /// The keys, in order.
    pub keys: Document,
    /// Whether the keys are unique.
    pub unique: bool,
    /// The documents the index covers, when not all.
    pub partial_filter: Option<Document>,
}

impl IndexSpec {
    fn new(name: &'static str, keys: Document) -> Self {
        Self { name, keys, unique: false, partial_filter: None }
    }

    fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// Returns the driver's model of this index.
    pub fn model(&self) -> IndexModel {
        let options = IndexOptions::builder()
            .name(self.name.to_owned())
            .unique(self.unique.then_some(true))
            .partial_filter_expression(self.partial_filter.clone())
            .build();
        IndexModel::builder().keys(self.keys.clone()).options(options).build()
    }
}

/// Returns the indexes each collection needs, by collection name.
///
/// The event key is partial, not sparse: records the platform makes itself
/// carry `externalId: null`, which a sparse index would still index, so two
/// of them would collide. Only string ids are indexed.
pub fn specs(names: &CollectionNames) -> Vec<(String, Vec<IndexSpec>)> {
    let event_key = IndexSpec {
        partial_filter: Some(doc! { "externalId": { "$type": "string" } }),
        ..IndexSpec::new(EVENT_KEY_INDEX, doc! { "source": 1, "externalId": 1 }).unique()
    };
    vec![
        (
            names.events.clone(),
            vec![
                event_key,
                IndexSpec::new("timeline_at", doc! { "at": -1, "atExact": -1 }),
                IndexSpec::new(
                    "timeline_tenant_at",
                    doc! { "tenantSlug": 1, "at": -1, "atExact": -1 },
                ),
                IndexSpec::new("timeline_verb_at", doc! { "verb": 1, "at": -1 }),
                IndexSpec::new(
                    "timeline_actor_username_at",
                    doc! { "actor.username": 1, "at": -1 },
                ),
                IndexSpec::new("timeline_actor_email_at", doc! { "actor.email": 1, "at": -1 }),
            ],
        ),
        (
            names.source_changes.clone(),
            vec![
                IndexSpec::new(
                    CHANGE_KEY_INDEX,
                    doc! { "source": 1, "externalId": 1, "fingerprint": 1 },
                )
                .unique(),
            ],
        ),
        (
            names.set_aside.clone(),
            vec![IndexSpec::new(SET_ASIDE_KEY_INDEX, doc! { "source": 1, "key": 1 }).unique()],
        ),
    ]
}

/// Returns how the index `existing` (as `listIndexes` lists it) differs from
/// `wanted`, or `None` when it is the same.
pub fn difference(existing: &Document, wanted: &IndexSpec) -> Option<String> {
    let mut differences = Vec::new();
    let keys = existing.get_document("key").cloned().unwrap_or_default();
    if !same_keys(&keys, &wanted.keys) {
        differences.push(format!("keys {keys} instead of {}", wanted.keys));
    }
    let unique = truthy(existing.get("unique"));
    if unique != wanted.unique {
        differences.push(format!("unique is {unique} instead of {}", wanted.unique));
    }
    let partial = existing.get_document("partialFilterExpression").ok();
    if !same_option(partial, wanted.partial_filter.as_ref()) {
        let shown = |filter: Option<&Document>| filter.map_or("none".into(), Document::to_string);
        differences.push(format!(
            "partial filter {} instead of {}",
            shown(partial),
            shown(wanted.partial_filter.as_ref())
        ));
    }
    if truthy(existing.get("sparse")) {
        differences.push("it is sparse".into());
    }
    for option in ["collation", "expireAfterSeconds"] {
        if existing.contains_key(option) {
            differences.push(format!("it has `{option}`"));
        }
    }
    (!differences.is_empty()).then(|| differences.join(", "))
}

/// Creates the indexes [`specs`] lists where they are missing, after
/// checking every existing one of the same name.
///
/// # Errors
/// [`StoreError::Schema`] when an index differs (nothing is then created),
/// or when the server refuses one because an index of other name has its
/// keys; otherwise as for any driver failure.
pub(crate) async fn ensure(database: &Database, names: &CollectionNames) -> Result<(), StoreError> {
    let specs = specs(names);
    let mut missing = Vec::new();
    let mut problems = String::new();
    for (collection, wanted) in &specs {
        let existing = list(database, collection).await?;
        for spec in wanted {
            let found = existing.iter().find(|index| index.get_str("name").ok() == Some(spec.name));
            match found.map(|index| difference(index, spec)) {
                None => missing.push((collection, spec)),
                Some(None) => {}
                Some(Some(difference)) => {
                    let _ = write!(
                        problems,
                        "; index `{}` on `{collection}` differs: {difference}",
                        spec.name
                    );
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(StoreError::Schema(format!(
            "the indexes differ from what this store needs{problems}; drop or rename them, \
             and the store creates its own on the next start"
        )));
    }
    for (collection, spec) in missing {
        create(database, collection, spec).await?;
    }
    Ok(())
}

/// Returns the indexes of `collection`, none when it does not exist yet.
async fn list(database: &Database, collection: &str) -> Result<Vec<Document>, StoreError> {
    let operation = format!("listing the indexes of `{collection}`");
    // A collection has at most 64 indexes, so the first batch holds them all.
    let command = doc! { "listIndexes": collection, "cursor": { "batchSize": 1000 } };
    let reply = match database.run_command(command).await {
        Ok(reply) => reply,
        Err(error) if code(&error) == Some(NAMESPACE_NOT_FOUND) => return Ok(Vec::new()),
        Err(error) => return Err(Failure::from(error).into_store_error(&operation)),
    };
    let batch = reply
        .get_document("cursor")
        .and_then(|cursor| cursor.get_array("firstBatch"))
        .map_err(|error| Failure::corrupt("listIndexes", error).into_store_error(&operation))?;
    Ok(batch.iter().filter_map(|index| index.as_document().cloned()).collect())
}

async fn create(database: &Database, collection: &str, spec: &IndexSpec) -> Result<(), StoreError> {
    let operation = format!("creating the index `{}` on `{collection}`", spec.name);
    let collection_handle = database.collection::<Document>(collection);
    match collection_handle.create_index(spec.model()).await {
        Ok(_) => Ok(()),
        // IndexOptionsConflict and IndexKeySpecsConflict: an index with other
        // name or options covers the same keys.
        Err(error) if matches!(code(&error), Some(85 | 86)) => Err(StoreError::Schema(format!(
            "{operation} failed: an index with the same keys and another name or definition \
             exists; drop it, and the store creates its own on the next start: {error}"
        ))),
        Err(error) => Err(Failure::from(error).into_store_error(&operation)),
    }
}

/// Returns true when both key documents list the same fields in the same
/// order with the same directions, whatever numeric type the server chose.
fn same_keys(left: &Document, right: &Document) -> bool {
    left.len() == right.len()
        && left.iter().zip(right).all(|((left_key, left_value), (right_key, right_value))| {
            left_key == right_key && same_value(left_value, right_value)
        })
}

fn same_option(left: Option<&Document>, right: Option<&Document>) -> bool {
    match (left, right) {
        (None, None) => true,
        (Some(left), Some(right)) => same_keys(left, right),
        _ => false,
    }
}

fn same_value(left: &Bson, right: &Bson) -> bool {
    match (number(left), number(right)) {
        (Some(left), Some(right)) => left == right,
        _ => match (left, right) {
            (Bson::Document(left), Bson::Document(right)) => same_keys(left, right),
            (Bson::Array(left), Bson::Array(right)) => {
                left.len() == right.len()
                    && left.iter().zip(right).all(|(left, right)| same_value(left, right))
            }
            _ => left == right,
        },
    }
}

fn number(value: &Bson) -> Option<f64> {
    match value {
        Bson::Int32(number) => Some(f64::from(*number)),
        // Index directions and options are small; the cast is exact there.
        #[allow(clippy::cast_precision_loss, reason = "index numbers are small integers")]
        Bson::Int64(number) => Some(*number as f64),
        Bson::Double(number) => Some(*number),
        _ => None,
    }
}

/// Returns the truth of an index option, which old servers may keep as a
/// number.
fn truthy(value: Option<&Bson>) -> bool {
    match value {
        Some(Bson::Boolean(flag)) => *flag,
        Some(other) => number(other).is_some_and(|number| number != 0.0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_key() -> IndexSpec {
        specs(&CollectionNames::default())[0].1[0].clone()
    }

    fn listed() -> Document {
        doc! {
            "v": 2,
            "key": { "source": 1, "externalId": 1 },
            "name": EVENT_KEY_INDEX,
            "unique": true,
            "partialFilterExpression": { "externalId": { "$type": "string" } },
        }
    }

    #[test]
    fn event_key_is_unique_and_partial_on_string_ids() {
        let spec = event_key();

        assert_eq!(spec.name, "source_externalId_unique");
        assert_eq!(spec.keys, doc! { "source": 1, "externalId": 1 });
        assert!(spec.unique);
        assert_eq!(spec.partial_filter, Some(doc! { "externalId": { "$type": "string" } }));
        let model = spec.model();
        let options = model.options.unwrap();
        assert_eq!(options.unique, Some(true));
        assert_eq!(options.sparse, None);
        assert_eq!(options.name.as_deref(), Some(EVENT_KEY_INDEX));
    }

    #[test]
    fn indexes_go_on_the_configured_collections() {
        let names = CollectionNames {
            events: "e".into(),
            source_changes: "c".into(),
            set_aside: "s".into(),
            ..CollectionNames::default()
        };

        let collections: Vec<String> = specs(&names).into_iter().map(|(name, _)| name).collect();

        assert_eq!(collections, ["e", "c", "s"]);
    }

    #[test]
    fn index_as_listed_is_the_same_whatever_the_number_types() {
        let mut doubles = listed();
        doubles.insert("key", doc! { "source": 1.0, "externalId": 1_i64 });

        assert_eq!(difference(&listed(), &event_key()), None);
        assert_eq!(difference(&doubles, &event_key()), None);
    }

    #[test]
    fn sparse_index_of_the_same_name_differs() {
        let mut sparse = listed();
        sparse.remove("partialFilterExpression");
        sparse.insert("sparse", true);

        let difference = difference(&sparse, &event_key()).unwrap();

        assert!(difference.contains("partial filter none"), "{difference}");
        assert!(difference.contains("it is sparse"), "{difference}");
    }

    #[test]
    fn each_change_of_definition_is_a_difference() {
        let changes: [fn(&mut Document); 7] = [
            |index| {
                index.insert("key", doc! { "externalId": 1, "source": 1 });
            },
            |index| {
                index.insert("key", doc! { "source": 1, "externalId": -1 });
            },
            |index| {
                index.insert("key", doc! { "source": 1 });
            },
            |index| {
                index.remove("unique");
            },
            |index| {
                index.insert("partialFilterExpression", doc! { "externalId": { "$exists": true } });
            },
            |index| {
                index.insert("expireAfterSeconds", 3600);
            },
            |index| {
                index.insert("collation", doc! { "locale": "en", "strength": 2 });
            },
        ];
        for change in changes {
            let mut index = listed();
            change(&mut index);

            assert!(difference(&index, &event_key()).is_some(), "{index}");
        }
    }

    #[test]
    fn plain_index_is_not_unique_or_partial() {
        let timeline = &specs(&CollectionNames::default())[0].1[1];
        let listed = doc! { "v": 2, "key": { "at": -1, "atExact": -1 }, "name": "timeline_at" };

        assert_eq!(difference(&listed, timeline), None);
        assert!(difference(&doc! { "key": { "at": 1, "atExact": -1 } }, timeline).is_some());
    }
}
