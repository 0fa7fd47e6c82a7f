//! The audit record and the pure rules that build it.
//!
//! Everything here is a function of its inputs: no I/O, no clock, no async
//! runtime. Adapters translate what a source sends into a [`SourceEvent`];
//! the rules in this crate decide the verb, the identities and the tenant,
//! and produce the [`AuditRecord`] every store keeps. The cursor rules in
//! [`cursor`] decide which page of a source to read next so that no event is
//! lost while the source's history shifts underneath a walk.

pub mod cursor;
pub mod event;
pub mod identity;
pub mod record;
pub mod tenant;
pub mod verb;

pub use cursor::{Cursor, EventKey, PageObservation, Walk, WalkPolicy, WalkStep};
pub use event::{Principal, RecordContext, SourceEvent, build_record};
pub use identity::{Parties, resolve_parties};
pub use record::{AuditRecord, Identity, ModelSubject, SourceName, Subject};
pub use tenant::{AdminGroups, Membership, TenantInference, TenantRule, TenantSet, TenantSlug};
pub use verb::{ActionMap, Verb};
