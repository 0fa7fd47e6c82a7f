//! The state of every source the store knows, for `status`.

use std::collections::BTreeMap;

use domain::SourceName;
use ports::SourceStatus;
use rusqlite::Connection;

use crate::cursors;
use crate::error::Failure;

/// Returns one status per source that has a cursor, stored events or events
/// set aside, in source order.
///
/// Counting groups every row of a source. That is a scan of the table, fine
/// for a command run by hand; a store of many millions of events would keep
/// per-source counters updated with each batch instead.
pub(crate) fn read(connection: &mut Connection) -> Result<Vec<SourceStatus>, Failure> {
    let mut statuses: BTreeMap<SourceName, SourceStatus> = BTreeMap::new();
    for (source, cursor) in cursors::read_all(connection)? {
        entry(&mut statuses, source).cursor = Some(cursor);
    }
    for (source, count) in counts(connection, "audit_events")? {
        entry(&mut statuses, source).stored = count;
    }
    for (source, count) in counts(connection, "set_aside")? {
        entry(&mut statuses, source).set_aside = count;
    }
    for (source, count) in counts(connection, "source_changes")? {
        entry(&mut statuses, source).changed_at_source = count;
    }
    Ok(statuses.into_values().collect())
}

/// Returns the status of `source` in `statuses`, added empty when missing.
fn entry(
    statuses: &mut BTreeMap<SourceName, SourceStatus>,
    source: SourceName,
) -> &mut SourceStatus {
    statuses.entry(source.clone()).or_insert_with(|| SourceStatus::empty(source))
}

/// Returns the number of rows of each source in `table`.
fn counts(connection: &Connection, table: &str) -> Result<Vec<(SourceName, u64)>, Failure> {
    let sql = format!("SELECT source, count(*) FROM {table} GROUP BY source");
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map([], |row| {
        let source: String = row.get(0)?;
        let count: i64 = row.get(1)?;
        Ok((SourceName::new(source), u64::try_from(count).unwrap_or(0)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
