//! The store contract and the MongoDB-specific checks, run against MongoDB
//! wherever one is reachable.
//!
//! The server is the one `MONGODB_URI` names when it is set, otherwise a
//! container of the pinned official `mongo` image started through
//! testcontainers when a Docker engine answers. Where neither exists, every
//! test here passes without running, and the binary says once, on standard
//! error, that it skipped them and why. Each test works in a database of its
//! own, dropped when the test ends.

mod server;
mod smoke;
mod specific;

/// The store contract against a fresh database per check.
mod contract {
    tests::store_contract!(
        optional_fixture = crate::server::TestDatabase::fresh(),
        store = |database| database.store,
    );
}
