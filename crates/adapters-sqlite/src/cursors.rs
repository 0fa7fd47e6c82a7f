//! The sources' cursors, one row per source.

use async_trait::async_trait;
use domain::{Cursor, SourceName};
use ports::{CursorStore, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Failure;
use crate::events::from_json_column;
use crate::{SqliteStore, parse_time, time_text};

/// The columns a cursor is read back from, in [`decode`]'s order.
const COLUMNS: &str = "last_event_at, last_event_id, walk";

/// Saves a cursor unless that would move `last_event_at` backwards.
///
/// A stored cursor with a time is replaced only by one whose time is the same
/// or later; `NULL >= time` is not true, so a cursor without a time never
/// replaces one with a time. A stored cursor without a time, which only a
/// first walk has, is replaced by any cursor. The times are text of one fixed
/// width, so text order is time order.
const UPSERT: &str = "
INSERT INTO ingest_cursors (source, last_event_at, last_event_id, walk)
VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (source) DO UPDATE SET
    last_event_at = excluded.last_event_at,
    last_event_id = excluded.last_event_id,
    walk = excluded.walk
WHERE excluded.last_event_at >= ingest_cursors.last_event_at
   OR ingest_cursors.last_event_at IS NULL";

#[async_trait]
impl CursorStore for SqliteStore {
    async fn load(&self, source: &SourceName) -> Result<Option<Cursor>, StoreError> {
        let source = source.clone();
        self.run(format!("loading the cursor of `{source}`"), move |connection| {
            let sql = format!("SELECT {COLUMNS} FROM ingest_cursors WHERE source = ?1");
            let mut statement = connection.prepare_cached(&sql)?;
            statement.query_row([source.as_str()], |row| Ok(decode(row))).optional()?.transpose()
        })
        .await
    }

    async fn save(&self, source: &SourceName, cursor: &Cursor) -> Result<(), StoreError> {
        let operation = format!("saving the cursor of `{source}`");
        let walk = cursor
            .walk
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|error| Failure::encode("walk", error).into_store_error(&operation))?;
        let source = source.as_str().to_owned();
        let last_event_at = cursor.last_event_at.map(time_text);
        let last_event_id = cursor.last_event_id.clone();
        self.run(operation, move |connection| {
            let mut statement = connection.prepare_cached(UPSERT)?;
            statement.execute(params![source, last_event_at, last_event_id, walk])?;
            Ok(())
        })
        .await
    }
}

/// Returns every stored cursor with its source, in source order.
pub(crate) fn read_all(connection: &Connection) -> Result<Vec<(SourceName, Cursor)>, Failure> {
    let sql = format!("SELECT source, {COLUMNS} FROM ingest_cursors ORDER BY source");
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query([])?;
    let mut cursors = Vec::new();
    while let Some(row) = rows.next()? {
        let source = SourceName::new(row.get::<_, String>(0)?);
        let cursor = decode_from(row, 1)?;
        cursors.push((source, cursor));
    }
    Ok(cursors)
}

fn decode(row: &Row<'_>) -> Result<Cursor, Failure> {
    decode_from(row, 0)
}

/// Returns the cursor whose [`COLUMNS`] start at column `first`.
fn decode_from(row: &Row<'_>, first: usize) -> Result<Cursor, Failure> {
    let last_event_at = row
        .get::<_, Option<String>>(first)?
        .map(|text| parse_time("last_event_at", &text))
        .transpose()?;
    Ok(Cursor {
        last_event_at,
        last_event_id: row.get(first + 1)?,
        walk: from_json_column(row, first + 2, "walk")?,
    })
}
