//! End-to-end ingest suites: the real smoke scenario and the walks that
//! shifting pages make hard, against a mock Authentik with the real server's
//! semantics and the embedded store.

mod edits;
mod faults;
mod helpers;
mod overlap;
mod smoke;
mod walk;
