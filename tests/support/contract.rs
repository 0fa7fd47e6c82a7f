//! The store contract: one suite every audit store must pass.
