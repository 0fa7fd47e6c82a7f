//! The store contract run against the SQLite store, in memory and in a file.
//!
//! Both are checked because they differ where bugs hide: a file is in WAL
//! mode and goes through the operating system, memory is neither.

use adapters_sqlite::SqliteStore;

/// The contract against a private in-memory database per check.
mod in_memory {
    use super::SqliteStore;

    tests::store_contract!(async { SqliteStore::open_in_memory().unwrap() });
}

/// The contract against a file in a fresh temporary directory per check; the
/// directory lives as long as the store and is removed after the check.
mod in_file {
    use super::SqliteStore;

    tests::store_contract!(
        fixture = async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("audit.db")).unwrap();
            (dir, store)
        },
        store = |fixture| fixture.1,
    );
}
