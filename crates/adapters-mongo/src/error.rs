//! How the driver's errors become the port's [`StoreError`], and which
//! write errors mean "already stored".

use mongodb::error::{
    Error as DriverError, ErrorKind, RETRYABLE_ERROR, RETRYABLE_WRITE_ERROR,
    SYSTEM_OVERLOADED_ERROR, WriteFailure,
};
use ports::{BoxError, StoreError};
use thiserror::Error;

/// MongoDB's code for a write that would break a unique index.
pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// MongoDB's code for a collection that does not exist.
pub(crate) const NAMESPACE_NOT_FOUND: i32 = 26;

/// Server codes that say the deployment is changing hands or overloaded:
/// worth retrying later, as the driver's own retry rules treat them.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// What went wrong inside one operation, before the operation is named.
#[derive(Debug, Error)]
pub(crate) enum Failure {
    /// The driver or the server refused or failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A stored value cannot be read back as what it should hold.
    #[error("field `{field}` holds a value that cannot be read back")]
    Corrupt {
        /// The field.
        field: &'static str,
        /// Why it cannot be read.
        #[source]
        source: BoxError,
    },
}

impl Failure {
    /// Returns a [`Failure::Corrupt`] for `field`.
    pub(crate) fn corrupt(field: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Corrupt { field, source: source.into() }
    }

    /// Returns the store error for this failure during `operation`, such as
    /// `storing a batch of 3 events`.
    ///
    /// Network failures, a deployment without a reachable primary, and
    /// errors the server labels retryable are [`StoreError::Unavailable`];
    /// the rest is [`StoreError::Other`].
    pub(crate) fn into_store_error(self, operation: &str) -> StoreError {
        let message = format!("{operation} failed");
        match self {
            Self::Driver(error) if is_transient(&error) => StoreError::unavailable(message, error),
            Self::Driver(error) => StoreError::other(message, error),
            Self::Corrupt { field, source } => StoreError::Other {
                message: format!(
                    "{message}: field `{field}` holds a value that cannot be read back"
                ),
                source: Some(source),
            },
        }
    }
}

/// Returns true when `error` is worth retrying later.
pub(crate) fn is_transient(error: &DriverError) -> bool {
    if [RETRYABLE_WRITE_ERROR, RETRYABLE_ERROR, SYSTEM_OVERLOADED_ERROR]
        .iter()
        .any(|label| error.contains_label(label))
    {
        return true;
    }
    match error.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(command) => TRANSIENT_CODES.contains(&command.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        ErrorKind::InsertMany(insert) => insert.write_concern_error.is_some(),
        _ => false,
    }
}

/// Returns the server's code for `error`, when it is a single command or
/// write error.
pub(crate) fn code(error: &DriverError) -> Option<i32> {
    match error.kind.as_ref() {
        ErrorKind::Command(command) => Some(command.code),
        ErrorKind::Write(WriteFailure::WriteError(write)) => Some(write.code),
        _ => None,
    }
}

/// Returns true when `error` is a duplicate-key error of one write.
pub(crate) fn is_duplicate_key(error: &DriverError) -> bool {
    code(error) == Some(DUPLICATE_KEY)
}

/// Returns the positions, in the batch handed to an unordered
/// `insert_many`, of the documents that broke the unique index `index`; or
/// `error` itself when anything else went wrong, which fails the batch.
///
/// A duplicate-key error that names another index (an operator's own unique
/// index, say) is not "already stored" and fails the batch too. The server
/// names the index in its message (`... index: NAME dup key: ...`); a message
/// that names none is taken at its code.
pub(crate) fn duplicate_positions(
    error: DriverError,
    index: &str,
) -> Result<Vec<usize>, DriverError> {
    let ErrorKind::InsertMany(insert) = error.kind.as_ref() else { return Err(error) };
    if insert.write_concern_error.is_some() {
        return Err(error);
    }
    let Some(write_errors) = &insert.write_errors else { return Err(error) };
    let named = format!("index: {index} ");
    let all_ours = write_errors.iter().all(|write| {
        write.code == DUPLICATE_KEY
            && (!write.message.contains("index: ") || write.message.contains(&named))
    });
    if !all_ours {
        return Err(error);
    }
    Ok(write_errors.iter().map(|write| write.index).collect())
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{self, doc};
    use mongodb::error::{CommandError, InsertManyError};

    use super::*;

    const INDEX: &str = "source_externalId_unique";

    fn insert_many_error(errors: bson::Document) -> DriverError {
        let insert: InsertManyError = bson::deserialize_from_document(errors).unwrap();
        DriverError::from(ErrorKind::InsertMany(insert))
    }

    fn duplicate(index: i32) -> bson::Document {
        doc! {
            "index": index,
            "code": DUPLICATE_KEY,
            "errmsg": format!(
                "E11000 duplicate key error collection: audit.audit_events index: {INDEX} \
                 dup key: {{ source: \"authentik\", externalId: \"e{index}\" }}"
            ),
        }
    }

    fn command_error(code: i32) -> DriverError {
        let command: CommandError = bson::deserialize_from_document(
            doc! { "code": code, "codeName": "X", "errmsg": "failed" },
        )
        .unwrap();
        DriverError::from(ErrorKind::Command(command))
    }

    #[test]
    fn duplicates_on_our_index_give_their_positions() {
        let error = insert_many_error(doc! { "writeErrors": [duplicate(1), duplicate(4)] });

        assert_eq!(duplicate_positions(error, INDEX).unwrap(), [1, 4]);
    }

    #[test]
    fn another_write_error_fails_the_batch() {
        let validation = doc! { "index": 2, "code": 121, "errmsg": "Document failed validation" };
        let error = insert_many_error(doc! { "writeErrors": [duplicate(1), validation] });

        assert!(duplicate_positions(error, INDEX).is_err());
    }

    #[test]
    fn duplicate_on_another_index_fails_the_batch() {
        let other = doc! {
            "index": 0,
            "code": DUPLICATE_KEY,
            "errmsg": "E11000 duplicate key error collection: audit.audit_events index: \
                       verb_1 dup key: { verb: \"x\" }",
        };
        let error = insert_many_error(doc! { "writeErrors": [other] });

        assert!(duplicate_positions(error, INDEX).is_err());
    }

    #[test]
    fn write_concern_error_fails_the_batch_and_is_transient() {
        let error = insert_many_error(doc! {
            "writeErrors": [duplicate(0)],
            "writeConcernError": { "code": 64, "codeName": "WriteConcernFailed", "errmsg": "timeout" },
        });

        assert!(is_transient(&error));
        assert!(duplicate_positions(error, INDEX).is_err());
    }

    #[test]
    fn error_that_is_not_a_bulk_insert_fails_the_batch() {
        assert!(duplicate_positions(command_error(DUPLICATE_KEY), INDEX).is_err());
    }

    #[test]
    fn single_duplicate_key_is_recognised() {
        assert!(is_duplicate_key(&command_error(DUPLICATE_KEY)));
        assert!(!is_duplicate_key(&command_error(2)));
    }

    #[test]
    fn lost_primary_is_unavailable_and_bad_input_is_other() {
        let stepped_down = Failure::from(command_error(10107)).into_store_error("storing");
        let bad_value = Failure::from(command_error(2)).into_store_error("storing");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let unreachable =
            Failure::from(DriverError::from(ErrorKind::Io(std::sync::Arc::new(refused))))
                .into_store_error("storing");

        assert!(matches!(stepped_down, StoreError::Unavailable { .. }), "{stepped_down:?}");
        assert!(matches!(bad_value, StoreError::Other { .. }), "{bad_value:?}");
        assert!(matches!(unreachable, StoreError::Unavailable { .. }), "{unreachable:?}");
        assert_eq!(unreachable.to_string(), "store unavailable: storing failed");
    }

    #[test]
    fn corrupt_value_names_the_field() {
        let error = Failure::corrupt("atExact", "not a time").into_store_error("reading");

        assert_eq!(
            error.to_string(),
            "reading failed: field `atExact` holds a value that cannot be read back"
        );
    }
}
