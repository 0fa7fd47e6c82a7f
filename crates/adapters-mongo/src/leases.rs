//! The leases that let one replica at a time ingest a source.
//!
//! A lease is one document per source, `{_id: source, holder, expiresAt}`.
//! Taking it is one `findOneAndUpdate` whose filter matches only a lease
//! that is lapsed or already the caller's, with upsert for a source nobody
//! leased yet. When the filter matches nothing because someone else holds
//! the lease, the upsert's insert collides with that document's `_id`; the
//! duplicate-key error means "held by another", whose lease is then read.
//! The server applies each update to a document atomically, so of replicas
//! racing for a free lease exactly one gets it.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::SourceName;
use mongodb::bson::{Document, doc};
use mongodb::options::ReturnDocument;
use ports::{Lease, LeaseOutcome, LeaseStore, StoreError};

use crate::error::{Failure, is_duplicate_key};
use crate::record::required_text;
use crate::{MongoStore, bson_date};

/// How often a lease is tried when it is released between the failed take
/// and the read of its holder.
const ATTEMPTS: usize = 3;

#[async_trait]
impl LeaseStore for MongoStore {
    async fn acquire(
        &self,
        source: &SourceName,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let operation = format!("taking the lease on `{source}`");
        self.take(source, holder, now, Lease::expiry(now, ttl))
            .await
            .map_err(|failure| failure.into_store_error(&operation))
    }

    async fn release(&self, source: &SourceName, holder: &str) -> Result<(), StoreError> {
        let operation = format!("giving up the lease on `{source}`");
        self.collection(&self.names.leases)
            .delete_one(doc! { "_id": source.as_str(), "holder": holder })
            .await
            .map_err(|error| Failure::from(error).into_store_error(&operation))?;
        Ok(())
    }
}

impl MongoStore {
    async fn take(
        &self,
        source: &SourceName,
        holder: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<LeaseOutcome, Failure> {
        let collection = self.collection(&self.names.leases);
        let (filter, update) = take_operation(source, holder, now, expires_at);
        for _ in 0..ATTEMPTS {
            let taken = collection
                .find_one_and_update(filter.clone(), update.clone())
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await;
            match taken {
                Ok(Some(document)) => return Ok(LeaseOutcome::Held(decode(&document)?)),
                // With upsert and the new document returned, the server
                // always answers with one; read the lease to be sure.
                Ok(None) => {}
                Err(error) if is_duplicate_key(&error) => {}
                Err(error) => return Err(error.into()),
            }
            if let Some(document) = collection.find_one(doc! { "_id": source.as_str() }).await? {
                let lease = decode(&document)?;
                return Ok(if lease.holder == holder {
                    LeaseOutcome::Held(lease)
                } else {
                    LeaseOutcome::HeldByOther(lease)
                });
            }
        }
        Err(Failure::corrupt(
            "holder",
            format!("the lease changed hands {ATTEMPTS} times while it was being taken"),
        ))
    }
}

/// Returns the filter and update that take the lease on `source` for
/// `holder` until `expires_at`, when it is free at `now` or already theirs.
///
/// Times are BSON dates, so a lease is kept to the millisecond.
pub(crate) fn take_operation(
    source: &SourceName,
    holder: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> (Document, Document) {
    let filter = doc! {
        "_id": source.as_str(),
        "$or": [ { "holder": holder }, { "expiresAt": { "$lte": bson_date(now) } } ],
    };
    let update = doc! { "$set": { "holder": holder, "expiresAt": bson_date(expires_at) } };
    (filter, update)
}

fn decode(document: &Document) -> Result<Lease, Failure> {
    let expires_at =
        document.get_datetime("expiresAt").map_err(|error| Failure::corrupt("expiresAt", error))?;
    let expires_at = DateTime::from_timestamp_millis(expires_at.timestamp_millis())
        .ok_or_else(|| Failure::corrupt("expiresAt", "the date is out of range"))?;
    Ok(Lease { holder: required_text(document, "holder")?, expires_at })
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn take_matches_a_lapsed_lease_or_the_holders_own() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T16:00:00.695935Z").unwrap().to_utc();
        let later = now + TimeDelta::minutes(1);

        let (filter, update) = take_operation(&SourceName::new("authentik"), "a", now, later);

        assert_eq!(
            filter,
            doc! {
                "_id": "authentik",
                "$or": [ { "holder": "a" }, { "expiresAt": { "$lte": bson_date(now) } } ],
            }
        );
        assert_eq!(update, doc! { "$set": { "holder": "a", "expiresAt": bson_date(later) } });
    }

    #[test]
    fn lease_reads_back_to_the_millisecond() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T16:01:00.695935Z").unwrap().to_utc();
        let document = doc! { "_id": "authentik", "holder": "a", "expiresAt": bson_date(at) };

        let lease = decode(&document).unwrap();

        assert_eq!(lease.holder, "a");
        assert_eq!(lease.expires_at.timestamp_millis(), at.timestamp_millis());
        assert_eq!(lease.expires_at.timestamp_subsec_micros(), 695_000);
    }
}
