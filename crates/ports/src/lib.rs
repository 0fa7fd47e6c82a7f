//! The ports: the traits the ingest loop is written against, and the types
//! in their signatures.
//!
//! The traits are object-safe and used as `Arc<dyn Trait>`: the store is
//! chosen at run time from `AUDIT_STORE`, and the loop should not be compiled
//! once per adapter combination. Every trait is `Send + Sync` so one adapter
//! can serve the scheduler and the command line at once. Methods are async
//! through `async_trait`, which keeps the traits usable behind `dyn`.
//!
//! Each trait's documentation is its contract: the `# Errors` section says
//! which error an implementation must return for each kind of failure, and
//! the shared contract tests in `tests/` hold every store to it.
#![deny(missing_docs)]

mod directory;
mod error;
mod source;
mod store;

pub use directory::{GroupDirectory, LookupError, TenantDirectory};
pub use error::{AuthFailure, BoxError, FetchError, StoreError};
pub use source::{EventSource, PageRequest, RejectedEvent, SourcePage};
pub use store::{
    AuditReader, AuditStore, CursorStore, Lease, LeaseOutcome, LeaseStore, SourceStatus,
    StoreOutcome, TimelineQuery,
};
