//! The audit records: storing batches and reading the timeline back.

use std::collections::HashMap;

use async_trait::async_trait;
use domain::{AuditRecord, SourceName};
use futures::TryStreamExt as _;
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};
use ports::{
    AuditReader, AuditStore, RejectedEvent, SourceStatus, StoreError, StoreOutcome, TimelineQuery,
};

use crate::error::{Failure, duplicate_positions};
use crate::indexes::{CHANGE_KEY_INDEX, EVENT_KEY_INDEX};
use crate::record::{self, Encoded, optional_text};
use crate::{MongoStore, bson_date, exact_text, set_aside, status};

#[async_trait]
impl AuditStore for MongoStore {
    async fn store_batch(&self, records: &[AuditRecord]) -> Result<Vec<StoreOutcome>, StoreError> {
        let operation = format!("storing a batch of {} events", records.len());
        self.insert_batch(records).await.map_err(|failure| failure.into_store_error(&operation))
    }

    async fn set_aside(
        &self,
        source: &SourceName,
        rejected: &[RejectedEvent],
    ) -> Result<u64, StoreError> {
        let operation = format!("setting {} events of `{source}` aside", rejected.len());
        let documents: Vec<RawDocumentBuf> =
            rejected.iter().map(|event| set_aside::document(source, event)).collect();
        set_aside::insert(self, documents)
            .await
            .map_err(|failure| failure.into_store_error(&operation))
    }
}

#[async_trait]
impl AuditReader for MongoStore {
    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.select_timeline(query)
            .await
            .map_err(|failure| failure.into_store_error("reading the timeline"))
    }

    async fn status(&self) -> Result<Vec<SourceStatus>, StoreError> {
        status::read(self)
            .await
            .map_err(|failure| failure.into_store_error("reading the status of every source"))
    }
}

impl MongoStore {
    /// Inserts the storable records of `records` in one unordered bulk
    /// insert, sets the unstorable ones aside, and says what became of each.
    async fn insert_batch(&self, records: &[AuditRecord]) -> Result<Vec<StoreOutcome>, Failure> {
        let mut outcomes = vec![StoreOutcome::Stored; records.len()];
        let mut documents = Vec::with_capacity(records.len());
        // For each document handed to the insert, the record it came from.
        let mut positions = Vec::with_capacity(records.len());
        let mut fingerprints = Vec::with_capacity(records.len());
        let mut unstorable = Vec::new();
        for (position, record) in records.iter().enumerate() {
            match record::encode(record) {
                Ok(Encoded { document, fingerprint }) => {
                    documents.push(document);
                    positions.push(position);
                    fingerprints.push(fingerprint);
                }
                Err(why) => {
                    outcomes[position] = StoreOutcome::SetAside;
                    unstorable.push(set_aside::unstorable(record, &why.reason));
                }
            }
        }

        if !unstorable.is_empty() {
            set_aside::insert(self, unstorable).await?;
        }
        if documents.is_empty() {
            return Ok(outcomes);
        }
        let events = self.database.collection::<RawDocumentBuf>(&self.names.events);
        let duplicates = match events.insert_many(documents).ordered(false).await {
            Ok(_) => Vec::new(),
            Err(error) => duplicate_positions(error, EVENT_KEY_INDEX)?,
        };
        if duplicates.is_empty() {
            return Ok(outcomes);
        }

        let collided: Vec<(usize, &str)> = duplicates
            .iter()
            .map(|&index| (positions[index], fingerprints[index].as_str()))
            .collect();
        for (position, outcome) in self.compare_with_stored(records, &collided).await? {
            outcomes[position] = outcome;
        }
        Ok(outcomes)
    }

    /// Says, for each record at a position in `collided` with its
    /// fingerprint, whether it is what the source said before or a changed
    /// version, and records each changed version once.
    async fn compare_with_stored(
        &self,
        records: &[AuditRecord],
        collided: &[(usize, &str)],
    ) -> Result<Vec<(usize, StoreOutcome)>, Failure> {
        let stored = self.stored_fingerprints(records, collided).await?;
        let mut outcomes = Vec::with_capacity(collided.len());
        let mut changes = Vec::new();
        let mut change_positions = Vec::new();
        for &(position, fingerprint) in collided {
            let record = &records[position];
            let key = key_of(record);
            match stored.get(&key) {
                Some(Some(stored)) if stored != fingerprint => {
                    changes.push(record::change(record, fingerprint));
                    change_positions.push(position);
                }
                Some(Some(_)) => outcomes.push((position, StoreOutcome::Duplicate)),
                // A record stored without a fingerprint (by an earlier tool)
                // gets this one, so the next version can be compared.
                Some(None) | None => {
                    self.adopt_fingerprint(record, fingerprint).await?;
                    outcomes.push((position, StoreOutcome::Duplicate));
                }
            }
        }
        if changes.is_empty() {
            return Ok(outcomes);
        }

        let source_changes = self.database.collection::<RawDocumentBuf>(&self.names.source_changes);
        let repeated = match source_changes.insert_many(changes).ordered(false).await {
            Ok(_) => Vec::new(),
            Err(error) => duplicate_positions(error, CHANGE_KEY_INDEX)?,
        };
        for (index, position) in change_positions.into_iter().enumerate() {
            let outcome = if repeated.contains(&index) {
                StoreOutcome::Duplicate
            } else {
                StoreOutcome::ChangedAtSource
            };
            outcomes.push((position, outcome));
        }
        Ok(outcomes)
    }

    /// Returns the fingerprint stored for each `(source, externalId)` among
    /// the `collided` records; `None` for a stored record without one.
    async fn stored_fingerprints(
        &self,
        records: &[AuditRecord],
        collided: &[(usize, &str)],
    ) -> Result<HashMap<(String, String), Option<String>>, Failure> {
        let mut by_source: HashMap<&str, Vec<&str>> = HashMap::new();
        for &(position, _) in collided {
            let record = &records[position];
            if let Some(external_id) = record.external_id.as_deref() {
                by_source.entry(record.source.as_str()).or_default().push(external_id);
            }
        }
        let mut alternatives: Vec<Document> = by_source
            .into_iter()
            .map(|(source, ids)| doc! { "source": source, "externalId": { "$in": ids } })
            .collect();
        if alternatives.is_empty() {
            return Ok(HashMap::new());
        }
        let filter = if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            doc! { "$or": alternatives }
        };
        let projection = doc! { "_id": 0, "source": 1, "externalId": 1, "fingerprint": 1 };
        let found: Vec<Document> = self
            .collection(&self.names.events)
            .find(filter)
            .projection(projection)
            .await?
            .try_collect()
            .await?;
        let mut fingerprints = HashMap::with_capacity(found.len());
        for document in found {
            let source = record::required_text(&document, "source")?;
            let external_id = record::required_text(&document, "externalId")?;
            fingerprints.insert((source, external_id), optional_text(&document, "fingerprint")?);
        }
        Ok(fingerprints)
    }

    async fn adopt_fingerprint(
        &self,
        record: &AuditRecord,
        fingerprint: &str,
    ) -> Result<(), Failure> {
        let filter = doc! {
            "source": record.source.as_str(),
            "externalId": record.external_id.as_deref().map_or(Bson::Null, Bson::from),
            "fingerprint": Bson::Null,
        };
        let update = doc! { "$set": { "fingerprint": fingerprint } };
        self.collection(&self.names.events).update_one(filter, update).await?;
        Ok(())
    }

    /// Returns the records matching `query`, newest first.
    async fn select_timeline(&self, query: &TimelineQuery) -> Result<Vec<AuditRecord>, Failure> {
        // MongoDB reads a limit of 0 as "no limit".
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let documents: Vec<Document> = self
            .collection(&self.names.events)
            .find(timeline_filter(query))
            .sort(doc! { "at": -1, "atExact": -1, "externalId": 1, "_id": 1 })
            .limit(i64::from(query.limit))
            .await?
            .try_collect()
            .await?;
        documents.iter().map(record::decode).collect()
    }
}

/// Returns the `(source, externalId)` of `record`.
fn key_of(record: &AuditRecord) -> (String, String) {
    (record.source.as_str().to_owned(), record.external_id.clone().unwrap_or_default())
}

/// Returns the filter of a timeline query.
///
/// Time bounds are checked on the exact text, which keeps every digit, and
/// also on the BSON date rounded down, which says the same but lets the
/// server use the timeline indexes.
pub(crate) fn timeline_filter(query: &TimelineQuery) -> Document {
    let mut conditions: Vec<Document> = Vec::new();
    if let Some(tenant) = &query.tenant {
        conditions.push(doc! { "tenantSlug": tenant.as_str() });
    }
    if let Some(verb) = &query.verb {
        let prefix = format!("^{}[._]", escape_regex(verb));
        conditions.push(doc! { "$or": [ { "verb": verb }, { "verb": { "$regex": prefix } } ] });
    }
    if let Some(actor) = &query.actor {
        conditions.push(doc! { "$or": [ { "actor.username": actor }, { "actor.email": actor } ] });
    }
    if let Some(since) = query.since {
        conditions.push(doc! { "at": { "$gte": bson_date(since) } });
        conditions.push(doc! { "atExact": { "$gte": exact_text(since) } });
    }
    if let Some(until) = query.until {
        conditions.push(doc! { "at": { "$lte": bson_date(until) } });
        conditions.push(doc! { "atExact": { "$lt": exact_text(until) } });
    }
    match conditions.len() {
        0 => Document::new(),
        1 => conditions.remove(0),
        _ => doc! { "$and": conditions },
    }
}

/// Returns `text` with every character a regular expression gives meaning
/// to escaped, so that a verb is matched as it is written.
fn escape_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}-/#".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use domain::TenantSlug;

    use super::*;

    #[test]
    fn empty_query_has_an_empty_filter() {
        assert_eq!(timeline_filter(&TimelineQuery::default()), Document::new());
    }

    #[test]
    fn verb_matches_itself_or_an_escaped_prefix() {
        let query =
            TimelineQuery { verb: Some("authentik.login".into()), ..TimelineQuery::default() };

        let filter = timeline_filter(&query);

        assert_eq!(
            filter,
            doc! { "$or": [
                { "verb": "authentik.login" },
                { "verb": { "$regex": "^authentik\\.login[._]" } },
            ] }
        );
    }

    #[test]
    fn regex_characters_in_a_verb_are_taken_literally() {
        assert_eq!(escape_regex("a.b*c(d)[e]^$|\\"), "a\\.b\\*c\\(d\\)\\[e\\]\\^\\$\\|\\\\");
        assert_eq!(escape_regex("x_y"), "x_y");
    }

    #[test]
    fn time_bounds_keep_every_digit_and_use_the_dates() {
        let since = DateTime::parse_from_rfc3339("2026-12-03T16:00:00.000001Z").unwrap().to_utc();
        let until = DateTime::parse_from_rfc3339("2026-12-03T17:00:00.0000005Z").unwrap().to_utc();
        let query = TimelineQuery {
            tenant: Some(TenantSlug::parse("acme").unwrap()),
            since: Some(since),
            until: Some(until),
            ..TimelineQuery::default()
        };

        let filter = timeline_filter(&query);

        assert_eq!(
            filter,
            doc! { "$and": [
                { "tenantSlug": "acme" },
                { "at": { "$gte": bson_date(since) } },
                { "atExact": { "$gte": "2026-12-03T16:00:00.000001000Z" } },
                { "at": { "$lte": bson_date(until) } },
                { "atExact": { "$lt": "2026-12-03T17:00:00.000000500Z" } },
            ] }
        );
    }

    #[test]
    fn actor_matches_username_or_email() {
        let query = TimelineQuery { actor: Some("ana".into()), ..TimelineQuery::default() };

        assert_eq!(
            timeline_filter(&query),
            doc! { "$or": [ { "actor.username": "ana" }, { "actor.email": "ana" } ] }
        );
    }
}
