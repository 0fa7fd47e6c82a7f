//! The events set aside as unreadable, kept whole with their reasons.

use chrono::Utc;
use domain::SourceName;
use ports::RejectedEvent;
use rusqlite::{Connection, params};

use crate::error::Failure;
use crate::time_text;

/// Inserts one item unless the same one is already set aside: the same
/// external id of the same source, or, without an id, the same raw text.
const INSERT: &str = "
INSERT INTO set_aside (source, external_id, at, reason, raw, set_aside_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT DO NOTHING";

/// One item set aside, as the row that stores it.
#[derive(Debug)]
pub(crate) struct SetAsideRow {
    source: String,
    external_id: Option<String>,
    at: Option<String>,
    reason: String,
    raw: String,
}

/// Returns the rows for the items of `source` in `rejected`.
pub(crate) fn encode(
    source: &SourceName,
    rejected: &[RejectedEvent],
) -> Result<Vec<SetAsideRow>, Failure> {
    rejected
        .iter()
        .map(|event| {
            Ok(SetAsideRow {
                source: source.as_str().to_owned(),
                external_id: event.external_id.clone(),
                at: event.at.map(time_text),
                reason: event.reason.clone(),
                raw: serde_json::to_string(&event.raw)
                    .map_err(|error| Failure::encode("raw", error))?,
            })
        })
        .collect()
}

/// Inserts `rows` in one transaction; rows already set aside are skipped and
/// keep their first reason and time.
pub(crate) fn insert(connection: &mut Connection, rows: &[SetAsideRow]) -> Result<u64, Failure> {
    let set_aside_at = time_text(Utc::now());
    let transaction = connection.transaction()?;
    let mut added = 0;
    {
        let mut insert = transaction.prepare_cached(INSERT)?;
        for row in rows {
            added += insert.execute(params![
                row.source,
                row.external_id,
                row.at,
                row.reason,
                row.raw,
                set_aside_at
            ])? as u64;
        }
    }
    transaction.commit()?;
    Ok(added)
}
