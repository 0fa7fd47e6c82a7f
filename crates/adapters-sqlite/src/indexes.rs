//! The state of the store's indexes, for `audit-ingest check`.
//!
//! The unique index on `(source, external_id)` is what makes every event
//! stored once; without it, or with another definition, the store would
//! keep duplicates without a word. It is therefore checked in detail, from
//! SQLite's own catalogue rather than from the text it was created with.

use rusqlite::Connection;

use crate::SqliteStore;
use crate::error::Failure;

/// The index that keeps each event once.
const UNIQUE_EVENT_INDEX: &str = "audit_events_source_external_id";

/// The indexes the timeline's queries rely on, on `audit_events`.
const QUERY_INDEXES: [&str; 3] =
    ["audit_events_at", "audit_events_tenant_at", "audit_events_verb_at"];

/// One index and whether it is as this build expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexState {
    /// The index's name.
    pub name: &'static str,
    /// What it is for.
    pub purpose: &'static str,
    /// What is wrong with it; `None` when it is as expected.
    pub problem: Option<String>,
}

impl SqliteStore {
    /// Returns the state of each index the store needs.
    ///
    /// # Errors
    /// [`ports::StoreError`] when the catalogue cannot be read.
    pub async fn index_states(&self) -> Result<Vec<IndexState>, ports::StoreError> {
        self.run("reading the index list".into(), read).await
    }
}

fn read(connection: &mut Connection) -> Result<Vec<IndexState>, Failure> {
    let listed = index_list(connection)?;
    let mut states = vec![IndexState {
        name: UNIQUE_EVENT_INDEX,
        purpose: "each event stored once per (source, external_id)",
        problem: unique_index_problem(connection, &listed)?,
    }];
    for name in QUERY_INDEXES {
        let problem = (!listed.iter().any(|(listed, _, _)| listed == name))
            .then(|| "missing; the timeline's queries scan the table".to_owned());
        states.push(IndexState { name, purpose: "timeline queries", problem });
    }
    Ok(states)
}

/// Returns `(name, unique, partial)` of each index on `audit_events`.
fn index_list(connection: &Connection) -> Result<Vec<(String, bool, bool)>, Failure> {
    let mut statement = connection.prepare("PRAGMA index_list(audit_events)")?;
    let rows = statement.query_map([], |row| {
        let name: String = row.get("name")?;
        let unique: i64 = row.get("unique")?;
        let partial: i64 = row.get("partial")?;
        Ok((name, unique == 1, partial == 1))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn unique_index_problem(
    connection: &Connection,
    listed: &[(String, bool, bool)],
) -> Result<Option<String>, Failure> {
    let Some((_, unique, partial)) = listed.iter().find(|(name, _, _)| name == UNIQUE_EVENT_INDEX)
    else {
        return Ok(Some("missing; duplicates would be stored".into()));
    };
    if !unique {
        return Ok(Some("not unique; duplicates would be stored".into()));
    }
    let mut statement = connection.prepare(&format!("PRAGMA index_info({UNIQUE_EVENT_INDEX})"))?;
    let columns: Vec<String> =
        statement.query_map([], |row| row.get::<_, String>("name"))?.collect::<Result<_, _>>()?;
    if columns != ["source", "external_id"] {
        return Ok(Some(format!("covers ({}), not (source, external_id)", columns.join(", "))));
    }
    let sql: String = connection.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
        [UNIQUE_EVENT_INDEX],
        |row| row.get(0),
    )?;
    let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
    if !partial || !sql.ends_with("where external_id is not null") {
        return Ok(Some(
            "not limited to rows with an external id; records without one would collide".into(),
        ));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(change: &str) -> SqliteStore {
        let store = SqliteStore::open_in_memory().unwrap();
        if !change.is_empty() {
            store.connection.lock().unwrap().execute_batch(change).unwrap();
        }
        store
    }

    fn problem(states: &[IndexState], name: &str) -> Option<String> {
        states.iter().find(|state| state.name == name).unwrap().problem.clone()
    }

    #[tokio::test]
    async fn fresh_store_has_every_index_as_expected() {
        let states = store_with("").index_states().await.unwrap();

        assert_eq!(states.len(), 4);
        assert!(states.iter().all(|state| state.problem.is_none()), "{states:?}");
    }

    #[tokio::test]
    async fn missing_unique_index_is_reported() {
        let store = store_with("DROP INDEX audit_events_source_external_id;");

        let states = store.index_states().await.unwrap();

        assert!(problem(&states, UNIQUE_EVENT_INDEX).unwrap().starts_with("missing"));
    }

    #[tokio::test]
    async fn unique_index_with_another_definition_is_reported() {
        let cases = [
            (
                "CREATE INDEX audit_events_source_external_id ON audit_events (source, external_id);",
                "not unique",
            ),
            (
                "CREATE UNIQUE INDEX audit_events_source_external_id ON audit_events (external_id);",
                "covers (external_id)",
            ),
            (
                "CREATE UNIQUE INDEX audit_events_source_external_id ON audit_events (source, external_id);",
                "not limited",
            ),
        ];
        for (create, expected) in cases {
            let store = store_with(&format!("DROP INDEX {UNIQUE_EVENT_INDEX}; {create}"));

            let states = store.index_states().await.unwrap();

            let found = problem(&states, UNIQUE_EVENT_INDEX).unwrap();
            assert!(found.starts_with(expected), "{create}: {found}");
        }
    }

    #[tokio::test]
    async fn missing_query_index_is_reported() {
        let store = store_with("DROP INDEX audit_events_verb_at;");

        let states = store.index_states().await.unwrap();

        assert!(problem(&states, "audit_events_verb_at").is_some());
        assert!(problem(&states, UNIQUE_EVENT_INDEX).is_none());
    }
}
