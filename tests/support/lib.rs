//! Shared pieces of the end-to-end suites and the benchmark: a mock
//! Authentik that behaves like the real one, the captured fixtures, and the
//! store contract every store adapter must pass.

pub mod contract;
pub mod fixtures;
pub mod mock_authentik;
pub mod synthetic;
