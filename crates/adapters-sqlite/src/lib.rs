//! The embedded audit store: events, cursors and tenants in one SQLite file.
//!
//! SQLite is the default store because it needs no server: one file beside
//! the daemon holds the timeline, the cursors, the events set aside and the
//! tenant list. `rusqlite` blocks, so every operation runs on Tokio's
//! blocking pool, and one connection behind a mutex serves them all. The
//! daemon writes one batch at a time, so a pool of connections would add
//! nothing but lock contention inside SQLite itself.
//!
//! Times are stored as RFC 3339 text with nine fractional digits and a `Z`,
//! so that no precision is lost and text order is time order; the timeline's
//! range filters and ordering rely on that.

mod cursors;
mod error;
mod events;
mod indexes;
mod leases;
mod schema;
mod set_aside;
mod status;
mod tenants;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use ports::StoreError;
use rusqlite::Connection;

use crate::error::Failure;

pub use indexes::IndexState;

/// How long a statement waits for a lock another process holds before it
/// gives up with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store: implements every store port of `ports` over one
/// database file, or over a private in-memory database.
///
/// Cloning is cheap and every clone shares the one connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens the store in the file at `path`, creating the file and the
    /// schema when they do not exist.
    ///
    /// The file is put in WAL mode with `synchronous=NORMAL`: a power cut
    /// may lose the last transactions, and the cursor saves after them with
    /// them, so the next walk reads those events again; the file itself is
    /// never corrupted.
    ///
    /// # Errors
    /// - [`StoreError::Unavailable`] when the directory of `path` does not
    ///   exist or the file cannot be opened.
    /// - [`StoreError::Schema`] when the file was written by a newer version.
    /// - [`StoreError::Other`] when the file is not a database of this store.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let operation = format!("opening the store at `{}`", path.display());
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(StoreError::Unavailable {
                message: format!(
                    "{operation} failed: directory `{}` does not exist; create it first",
                    parent.display()
                ),
                source: None,
            });
        }
        let connection = Connection::open(path)
            .map_err(|error| Failure::from(error).into_store_error(&operation))?;
        Self::prepare(connection, &operation)
    }

    /// Opens a store in a fresh in-memory database, private to this store
    /// and its clones and gone when the last of them is dropped.
    ///
    /// # Errors
    /// [`StoreError::Other`] when SQLite cannot create the database.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let operation = "opening an in-memory store";
        let connection = Connection::open_in_memory()
            .map_err(|error| Failure::from(error).into_store_error(operation))?;
        Self::prepare(connection, operation)
    }

    fn prepare(mut connection: Connection, operation: &str) -> Result<Self, StoreError> {
        let configure = |connection: &mut Connection| -> Result<(), Failure> {
            connection.busy_timeout(BUSY_TIMEOUT)?;
            // WAL is a property of the file: set once, by whoever opens it
            // first. Asking again only when it is not set keeps an open from
            // contending with a writer in another process. An in-memory
            // database answers `memory` and stays that way.
            let mode: String =
                connection.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                connection.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
            }
            connection.pragma_update(None, "synchronous", "NORMAL")?;
            schema::migrate(connection)
        };
        configure(&mut connection).map_err(|failure| failure.into_store_error(operation))?;
        Ok(Self { connection: Arc::new(Mutex::new(connection)) })
    }

    /// Runs `work` on the blocking pool with the connection, and names
    /// `operation` in any error.
    async fn run<T, F>(&self, operation: String, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        let task = tokio::task::spawn_blocking(move || {
            // A panic while the lock was held cannot leave a transaction
            // open: dropping it on unwind rolls it back, so the connection
            // is still sound.
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut connection)
        });
        match task.await {
            Ok(result) => result.map_err(|failure| failure.into_store_error(&operation)),
            Err(join_error) => Err(StoreError::other(
                format!("{operation} failed: the blocking task did not finish"),
                join_error,
            )),
        }
    }
}

/// Returns `at` as stored: RFC 3339 in UTC with nine fractional digits.
///
/// Text order is time order for the years 0 to 9999, which chrono writes
/// with four digits; no audit event lies outside them.
pub(crate) fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Returns the time stored as `text`.
pub(crate) fn parse_time(column: &'static str, text: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.to_utc())
        .map_err(|error| Failure::corrupt(column, error))
}
