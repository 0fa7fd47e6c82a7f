//! The captured Authentik responses in `../shared/fixtures/`.
//!
//! `shared/` lies beside the repository checkout, both on a developer's
//! machine and in CI, so paths are taken from this package's manifest
//! directory. Every loader panics with the path when a file is missing or
//! not JSON: these are test inputs, and a missing one is a broken setup.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Returns the `shared/` folder beside the repository checkout.
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// Returns the 78 events of the smoke scenario, oldest first.
pub fn smoke_events() -> Vec<Value> {
    as_list(read_json(&smoke_dir().join("events.json")))
}

/// Returns the one event the smoke scenario's extra login produced.
pub fn smoke_next_login() -> Value {
    // The file holds a list of the one event, as the API listed it.
    let mut events = as_list(read_json(&smoke_dir().join("next-login.json")));
    assert_eq!(events.len(), 1, "next-login.json holds one event");
    events.remove(0)
}

/// Returns the user details (`GET /api/v3/core/users/{pk}/`) of every user
/// the smoke events name.
pub fn smoke_users() -> Vec<Value> {
    as_list(read_json(&smoke_dir().join("users.json")))
}

/// Returns the verb and tenant expected for each of the 79 smoke events.
pub fn smoke_expected() -> Vec<Value> {
    as_list(read_json(&smoke_dir().join("expected.json")))
}

/// Returns the Authentik 2025.12 capture `name`, with or without `.json`,
/// such as `01_list_page_size_5`.
pub fn fixture(name: &str) -> Value {
    let file = if name.ends_with(".json") { name.to_owned() } else { format!("{name}.json") };
    read_json(&shared_dir().join("fixtures/authentik-2025.12").join(file))
}

fn smoke_dir() -> PathBuf {
    shared_dir().join("fixtures/smoke-78")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read fixture `{}`: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("fixture `{}` is not JSON: {error}", path.display()))
}

fn as_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("expected a JSON list, found {other}"),
    }
}
