//! Shared pieces of the end-to-end suites and the benchmark: a mock
//! Authentik that behaves like the real one, the captured fixtures, and the
//! store contract every store adapter must pass.

pub mod contract;
pub mod events;
pub mod fixtures;
pub mod flaky_store;
pub mod mock_authentik;
