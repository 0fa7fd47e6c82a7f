//! The schema, created on open and versioned with `PRAGMA user_version`.
//!
//! Every statement is `IF NOT EXISTS`, so opening a store that already has
//! the schema changes nothing. A later version that changes the schema adds
//! a step from the version before it and bumps [`SCHEMA_VERSION`].

use rusqlite::Connection;

use crate::error::Failure;

/// The schema version this build writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// The tables and indexes of version 1.
///
/// Uniqueness of `(source, external_id)` is a partial index, so that records
/// without an external id never collide. Rows set aside without an id are
/// deduplicated by their raw text instead: the same unreadable item read on
/// two walks is the same text, while two different unreadable items never
/// are. The raw text is kept whole in that index; items set aside are few.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS audit_events (
    id             INTEGER PRIMARY KEY,
    source         TEXT NOT NULL,
    external_id    TEXT,
    at             TEXT NOT NULL,
    recorded_at    TEXT NOT NULL,
    verb           TEXT NOT NULL,
    action         TEXT NOT NULL,
    actor          TEXT,
    actor_username TEXT,
    actor_email    TEXT,
    on_behalf_of   TEXT,
    subject        TEXT,
    tenant_slug    TEXT,
    ip             TEXT,
    user_agent     TEXT,
    app            TEXT,
    context        TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_source_external_id
    ON audit_events (source, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at);
CREATE INDEX IF NOT EXISTS audit_events_tenant_at ON audit_events (tenant_slug, at);
CREATE INDEX IF NOT EXISTS audit_events_verb_at ON audit_events (verb, at);

CREATE TABLE IF NOT EXISTS set_aside (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    external_id  TEXT,
    at           TEXT,
    reason       TEXT NOT NULL,
    raw          TEXT NOT NULL,
    set_aside_at TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS set_aside_source_external_id
    ON set_aside (source, external_id) WHERE external_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS set_aside_source_raw
    ON set_aside (source, raw) WHERE external_id IS NULL;

CREATE TABLE IF NOT EXISTS ingest_cursors (
    source        TEXT PRIMARY KEY,
    last_event_at TEXT,
    last_event_id TEXT,
    walk          TEXT
) STRICT;

CREATE TABLE IF NOT EXISTS tenants (
    slug TEXT PRIMARY KEY
) STRICT;
";

/// What version 2 adds to version 1.
///
/// `fingerprint` is each record's [`source_fingerprint`], so that a re-read
/// event the source has changed since is told apart from a plain re-read;
/// rows stored by version 1 have none until they are next read again, which
/// sets it without counting a change. `source_changes` keeps each changed
/// version once, beside the original it does not replace. `leases` holds
/// one lease per source, its expiry in milliseconds since the Unix epoch.
///
/// [`source_fingerprint`]: domain::AuditRecord::source_fingerprint
const SCHEMA_V2: &str = "
ALTER TABLE audit_events ADD COLUMN fingerprint TEXT;

CREATE TABLE IF NOT EXISTS source_changes (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    seen_at     TEXT NOT NULL,
    record      TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS source_changes_version
    ON source_changes (source, external_id, fingerprint);

CREATE TABLE IF NOT EXISTS leases (
    source     TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
";

/// Brings the database on `connection` to [`SCHEMA_VERSION`].
///
/// Returns [`Failure::Schema`] when the database is newer than this build.
pub(crate) fn migrate(connection: &mut Connection) -> Result<(), Failure> {
    // IMMEDIATE takes the write lock first, waiting out the busy timeout.
    // A deferred transaction would read the version under a shared lock and
    // then fail at once with "database is locked" when another process
    // opening the same file (the daemon and `status`, say) wrote first:
    // SQLite does not wait on a lock upgrade, which could deadlock.
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = transaction.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Failure::Schema { found: version });
    }
    transaction.execute_batch(SCHEMA_V1)?;
    if version < 2 {
        transaction.execute_batch(SCHEMA_V2)?;
    }
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(connection: &Connection) -> i64 {
        connection.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap()
    }

    #[test]
    fn migrate_changes_nothing_when_run_twice() {
        let mut connection = Connection::open_in_memory().unwrap();

        migrate(&mut connection).unwrap();
        migrate(&mut connection).unwrap();

        assert_eq!(version(&connection), SCHEMA_VERSION);
        let tables: i64 = connection
            .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'table'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(tables, 6);
    }

    #[test]
    fn migrate_brings_a_version_1_store_up_keeping_its_rows() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(SCHEMA_V1).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
        connection
            .execute(
                "INSERT INTO audit_events (source, external_id, at, recorded_at, verb, action, \
                 context) VALUES ('authentik', 'e1', 't', 't', 'authentik.login', 'login', '{}')",
                [],
            )
            .unwrap();

        migrate(&mut connection).unwrap();

        assert_eq!(version(&connection), SCHEMA_VERSION);
        let fingerprint: Option<String> = connection
            .query_row("SELECT fingerprint FROM audit_events WHERE external_id = 'e1'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(fingerprint, None);
    }

    #[test]
    fn migrate_refuses_when_the_database_is_newer() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();

        let failure = migrate(&mut connection).unwrap_err();

        assert!(matches!(failure, Failure::Schema { found } if found == SCHEMA_VERSION + 1));
    }
}
