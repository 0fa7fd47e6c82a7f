//! Shared pieces of the end-to-end suites and the benchmark: a mock
//! Authentik that behaves like the real one, a synthetic one that serves
//! any number of events without holding them, the captured fixtures, and the
//! store contract every store adapter must pass.

pub mod contract;
pub mod events;
pub mod fixtures;
pub mod flaky_store;
pub mod mock_authentik;
pub mod synthetic;
