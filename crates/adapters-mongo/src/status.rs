//! The state of every source the store knows, for `status`.

use std::collections::BTreeMap;

use domain::SourceName;
use futures::TryStreamExt as _;
use mongodb::bson::{Bson, Document, doc};
use ports::SourceStatus;

use crate::error::Failure;
use crate::{MongoStore, cursors};

/// Returns one status per source that has a cursor, stored events, events
/// set aside or changed versions, in source order.
///
/// Counting groups every document of a collection by source. That is a scan,
/// fine for a command run by hand; a store of many millions of events would
/// keep per-source counters updated with each batch instead.
pub(crate) async fn read(store: &MongoStore) -> Result<Vec<SourceStatus>, Failure> {
    let mut statuses: BTreeMap<SourceName, SourceStatus> = BTreeMap::new();
    for (source, cursor) in cursors::read_all(store).await? {
        entry(&mut statuses, source).cursor = Some(cursor);
    }
    for (source, count) in counts(store, &store.names.events).await? {
        entry(&mut statuses, source).stored = count;
    }
    for (source, count) in counts(store, &store.names.set_aside).await? {
        entry(&mut statuses, source).set_aside = count;
    }
    for (source, count) in counts(store, &store.names.source_changes).await? {
        entry(&mut statuses, source).changed_at_source = count;
    }
    Ok(statuses.into_values().collect())
}

fn entry(
    statuses: &mut BTreeMap<SourceName, SourceStatus>,
    source: SourceName,
) -> &mut SourceStatus {
    statuses.entry(source.clone()).or_insert_with(|| SourceStatus::empty(source))
}

/// Returns the number of documents of each source in `collection`.
async fn counts(store: &MongoStore, collection: &str) -> Result<Vec<(SourceName, u64)>, Failure> {
    let pipeline = [doc! { "$group": { "_id": "$source", "count": { "$sum": 1 } } }];
    let groups: Vec<Document> =
        store.collection(collection).aggregate(pipeline).await?.try_collect().await?;
    groups.iter().map(count_of).collect()
}

/// Returns the source and count of one `$group` result.
fn count_of(group: &Document) -> Result<(SourceName, u64), Failure> {
    let Ok(source) = group.get_str("_id") else {
        return Err(Failure::corrupt("source", "a document's source is not text"));
    };
    let count = match group.get("count") {
        Some(Bson::Int32(count)) => u64::try_from(*count).unwrap_or(0),
        Some(Bson::Int64(count)) => u64::try_from(*count).unwrap_or(0),
        _ => return Err(Failure::corrupt("count", "the server's count is not an integer")),
    };
    Ok((SourceName::new(source), count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_either_integer_width() {
        let small = count_of(&doc! { "_id": "authentik", "count": 3 }).unwrap();
        let large = count_of(&doc! { "_id": "authentik", "count": 5_000_000_000_i64 }).unwrap();

        assert_eq!(small, (SourceName::new("authentik"), 3));
        assert_eq!(large.1, 5_000_000_000);
    }

    #[test]
    fn group_without_a_text_source_is_corrupt() {
        assert!(count_of(&doc! { "_id": Bson::Null, "count": 1 }).is_err());
    }
}
