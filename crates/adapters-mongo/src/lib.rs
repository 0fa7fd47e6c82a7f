//! The production audit store on MongoDB.
//!
//! Not built yet: `AUDIT_STORE=mongodb://...` is refused at start with a
//! clear error until this crate implements the store ports (issue 4). The
//! store contract in `tests/support/contract.rs` is what it will have to
//! pass.
