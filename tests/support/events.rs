//! Synthetic Authentik events of the real shape, for suites that need many.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

/// Returns a login event of user 5 (`ana.example`, tenant acme) at `at`,
/// shaped like the captured ones.
pub fn login(n: u64, at: DateTime<Utc>) -> Value {
    json!({
        "pk": format!("00000000-0000-4000-8000-{n:012x}"),
        "user": {"pk": 5, "email": "ana.example@acme.example.test", "username": "ana.example"},
        "action": "login",
        "app": "authentik.events.signals",
        "context": {
            "auth_method": "password",
            "http_request": {
                "args": {"next": "/"},
                "path": "/api/v3/flows/executor/default-authentication-flow/",
                "method": "GET",
                "request_id": format!("{n:032x}"),
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
            },
            "auth_method_args": {"known_device": false}
        },
        "client_ip": "203.0.113.10",
        "created": at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "expires": (at + TimeDelta::days(365)).to_rfc3339_opts(SecondsFormat::Micros, true),
        "brand": {"pk": "a7503b9bb92d4c35bc6e0737c30aa98d", "app": "authentik_brands", "name": "Default brand", "model_name": "brand"}
    })
}

/// Returns `count` logins, one every `spacing`, the newest `newest_ago`
/// before now, oldest first.
pub fn history(count: u64, spacing: TimeDelta, newest_ago: TimeDelta) -> Vec<Value> {
    let newest = Utc::now() - newest_ago;
    (0..count).map(|n| login(n, newest - spacing * i32::try_from(count - 1 - n).unwrap())).collect()
}
