//! How SQLite's errors become the port's [`StoreError`].

use ports::{BoxError, StoreError};
use rusqlite::ErrorCode;
use thiserror::Error;

use crate::schema::SCHEMA_VERSION;

/// What went wrong inside one operation, before the operation is named.
#[derive(Debug, Error)]
pub(crate) enum Failure {
    /// SQLite refused or failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value cannot be read back as what it should hold.
    #[error("column `{column}` holds a value that cannot be read back")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// Why it cannot be read.
        #[source]
        source: BoxError,
    },
    /// The database was written by a newer version of this store.
    #[error(
        "the store has schema version {found}, newer than version {} this build reads; \
         run a newer audit-ingest",
        SCHEMA_VERSION
    )]
    Schema {
        /// The version found in the database.
        found: i64,
    },
    /// A value cannot be written as JSON.
    #[error("`{field}` cannot be written as JSON")]
    Encode {
        /// The field.
        field: &'static str,
        /// Why it cannot be written.
        #[source]
        source: serde_json::Error,
    },
}

impl Failure {
    /// Returns a [`Failure::Corrupt`] for `column`.
    pub(crate) fn corrupt(column: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Corrupt { column, source: source.into() }
    }

    /// Returns a [`Failure::Encode`] for `field`.
    pub(crate) fn encode(field: &'static str, source: serde_json::Error) -> Self {
        Self::Encode { field, source }
    }

    /// Returns the store error for this failure during `operation`, such as
    /// `storing a batch of 3 events`.
    ///
    /// Busy and locked databases, I/O errors and files that cannot be opened
    /// are worth retrying and so [`StoreError::Unavailable`]; the rest is
    /// [`StoreError::Other`].
    pub(crate) fn into_store_error(self, operation: &str) -> StoreError {
        let message = format!("{operation} failed");
        let detail = self.to_string();
        match self {
            Self::Sqlite(error) if is_transient(&error) => StoreError::unavailable(message, error),
            Self::Sqlite(error) => StoreError::other(message, error),
            Self::Corrupt { source, .. } => {
                StoreError::Other { message: format!("{message}: {detail}"), source: Some(source) }
            }
            Self::Encode { source, .. } => {
                StoreError::other(format!("{message}: {detail}"), source)
            }
            Self::Schema { .. } => StoreError::Schema(format!("{message}: {detail}")),
        }
    }
}

fn is_transient(error: &rusqlite::Error) -> bool {
    let rusqlite::Error::SqliteFailure(failure, _) = error else { return false };
    matches!(
        failure.code,
        ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_failure(code: i32) -> Failure {
        Failure::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None))
    }

    #[test]
    fn busy_database_is_unavailable_when_mapped() {
        let error = sqlite_failure(rusqlite::ffi::SQLITE_BUSY).into_store_error("storing a batch");

        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        assert_eq!(error.to_string(), "store unavailable: storing a batch failed");
    }

    #[test]
    fn constraint_failure_is_other_when_mapped() {
        let error = sqlite_failure(rusqlite::ffi::SQLITE_CONSTRAINT).into_store_error("saving");

        assert!(matches!(error, StoreError::Other { .. }), "{error:?}");
    }

    #[test]
    fn corrupt_value_names_the_column_when_mapped() {
        let failure = Failure::corrupt("at", "not a time");

        let error = failure.into_store_error("reading the timeline");

        assert_eq!(
            error.to_string(),
            "reading the timeline failed: column `at` holds a value that cannot be read back"
        );
    }
}
