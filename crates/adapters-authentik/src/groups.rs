//! The group directory: users' groups from `GET /api/v3/core/users/{pk}/`.
//!
//! Answers, including "no such user", are cached for the configured time, so
//! a batch of events by the same few users costs one request per user per
//! cache period. Uncached users are looked up a few at a time.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use async_trait::async_trait;
use domain::Membership;
use ports::{GroupDirectory, LookupError};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::client::{AuthentikClient, detail};

/// How many user lookups run at once; small, to stay gentle on the server.
const CONCURRENT_LOOKUPS: usize = 4;

#[async_trait]
impl GroupDirectory for AuthentikClient {
    #[tracing::instrument(skip_all, fields(users = users.len()))]
    async fn memberships(
        &self,
        users: &[String],
    ) -> Result<HashMap<String, Membership>, LookupError> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        let mut seen = HashSet::new();
        {
            let now = Instant::now();
            let ttl = self.inner.group_cache_ttl;
            let mut cache =
                self.inner.group_cache.lock().expect("no lookup panics holding the cache");
            cache.retain(|_, (at, _)| now.duration_since(*at) < ttl);
            for user in users.iter().filter(|user| seen.insert(user.as_str())) {
                match cache.get(user) {
                    Some((_, membership)) => {
                        found.insert(user.clone(), membership.clone());
                    }
                    None if user_pk(user).is_some() => missing.push(user.clone()),
                    // Authentik's user ids are integers; anything else names
                    // no user and must not reach a URL path. Leaving it out
                    // counts as having no groups.
                    None => {
                        tracing::warn!(user = %user, "Skipped a group lookup for a non-numeric user id.")
                    }
                }
            }
        }

        let mut lookups = JoinSet::new();
        let mut missing = missing.into_iter();
        loop {
            while lookups.len() < CONCURRENT_LOOKUPS {
                let Some(user) = missing.next() else { break };
                let client = self.clone();
                lookups.spawn(async move {
                    let membership = client.lookup(&user).await;
                    (user, membership)
                });
            }
            let Some(joined) = lookups.join_next().await else { break };
            let (user, membership) = joined.map_err(|error| LookupError {
                user: "<unknown>".into(),
                message: "a lookup task failed".into(),
                source: Some(error.into()),
            })?;
            let membership = membership?;
            self.remember(&user, &membership);
            found.insert(user, membership);
        }
        Ok(found)
    }
}

impl AuthentikClient {
    /// Asks Authentik for the groups of `user`, a numeric id.
    async fn lookup(&self, user: &str) -> Result<Membership, LookupError> {
        let failed = |message: String| LookupError { user: user.to_owned(), message, source: None };
        let pk = user_pk(user).ok_or_else(|| failed("the user id is not numeric".into()))?;
        let url = self
            .inner
            .users_url
            .join(&format!("{pk}/"))
            .expect("a number joins onto the users URL");

        let answer = self.get(&url).await.map_err(|failure| LookupError {
            user: user.to_owned(),
            message: failure.message,
            source: failure.source.map(Into::into),
        })?;
        match answer.status {
            // An answer that is not JSON at all is most likely a proxy's or
            // a login page, which a later try may get past: fail the tick.
            // JSON of the wrong shape will read the same every time.
            StatusCode::OK => match serde_json::from_slice::<Value>(&answer.body) {
                Err(error) => Err(failed(format!("the user answer is not JSON: {error}"))),
                Ok(user) => {
                    Ok(group_names(&user).map_or_else(Membership::Unreadable, Membership::Groups))
                }
            },
            StatusCode::NOT_FOUND => Ok(Membership::Gone),
            StatusCode::FORBIDDEN => Err(failed(format!(
                "Authentik refused the lookup ({}); the token needs `authentik_core.view_user`",
                detail(&answer.body).unwrap_or_else(|| "no detail".into())
            ))),
            status => Err(failed(format!("Authentik answered {status}"))),
        }
    }

    fn remember(&self, user: &str, membership: &Membership) {
        let mut cache = self.inner.group_cache.lock().expect("no lookup panics holding the cache");
        cache.insert(user.to_owned(), (Instant::now(), membership.clone()));
    }
}

/// Returns the user id as a number, when it is one.
fn user_pk(user: &str) -> Option<u64> {
    user.parse().ok()
}

/// Reads the group names of a user from `groups_obj[].name`.
fn group_names(user: &Value) -> Result<Vec<String>, String> {
    let groups = user
        .get("groups_obj")
        .and_then(Value::as_array)
        .ok_or("the user answer has no `groups_obj` list")?;
    groups
        .iter()
        .map(|group| {
            group
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "a group in `groups_obj` has no `name`".to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::AuthentikConfig;

    const USERS: &str =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/smoke-78/users.json");

    fn user_json(pk: u64) -> Value {
        let users: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(USERS).unwrap()).unwrap();
        users.into_iter().find(|user| user["pk"] == pk).unwrap()
    }

    fn client(server: &MockServer, ttl: Duration) -> AuthentikClient {
        let mut config =
            AuthentikConfig::new(server.uri().parse().unwrap(), SecretString::from("t0ken"));
        config.group_cache_ttl = ttl;
        config.max_retries = 0;
        AuthentikClient::new(config).unwrap()
    }

    async fn serve_user(server: &MockServer, pk: u64, expected_requests: u64) {
        Mock::given(method("GET"))
            .and(path(format!("/api/v3/core/users/{pk}/")))
            .respond_with(ResponseTemplate::new(200).set_body_json(user_json(pk)))
            .expect(expected_requests)
            .mount(server)
            .await;
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[tokio::test]
    async fn memberships_come_from_groups_obj_when_the_user_exists() {
        let server = MockServer::start().await;
        serve_user(&server, 7, 1).await;

        let found = client(&server, Duration::from_secs(60)).memberships(&ids(&["7"])).await;

        let Membership::Groups(mut groups) = found.unwrap().remove("7").unwrap() else { panic!() };
        groups.sort();
        assert_eq!(groups, ["globex", "initech"]);
    }

    #[tokio::test]
    async fn second_call_makes_no_request_when_the_answer_is_cached() {
        let server = MockServer::start().await;
        serve_user(&server, 5, 1).await;
        let client = client(&server, Duration::from_secs(60));

        client.memberships(&ids(&["5", "5"])).await.unwrap();
        let found = client.memberships(&ids(&["5"])).await.unwrap();

        assert_eq!(found["5"], Membership::Groups(vec!["acme".into()]));
    }

    #[tokio::test]
    async fn user_is_asked_again_when_the_cache_entry_expired() {
        let server = MockServer::start().await;
        serve_user(&server, 5, 2).await;
        let client = client(&server, Duration::ZERO);

        client.memberships(&ids(&["5"])).await.unwrap();
        client.memberships(&ids(&["5"])).await.unwrap();
    }

    #[tokio::test]
    async fn user_is_gone_and_cached_when_authentik_answers_404() {
        let server = MockServer::start().await;
        Mock::given(path("/api/v3/core/users/1/"))
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_string(r#"{"detail":"No User matches the given query."}"#),
            )
            .expect(1)
            .mount(&server)
            .await;
        let client = client(&server, Duration::from_secs(60));

        let first = client.memberships(&ids(&["1"])).await.unwrap();
        let second = client.memberships(&ids(&["1"])).await.unwrap();

        assert_eq!(first["1"], Membership::Gone);
        assert_eq!(second["1"], Membership::Gone);
    }

    #[tokio::test]
    async fn many_users_are_all_answered_when_looked_up_concurrently() {
        let server = MockServer::start().await;
        for pk in [3, 5, 6, 7, 8, 9, 10, 11, 12] {
            serve_user(&server, pk, 1).await;
        }
        let users = ids(&["3", "5", "6", "7", "8", "9", "10", "11", "12"]);

        let found = client(&server, Duration::from_secs(60)).memberships(&users).await.unwrap();

        assert_eq!(found.len(), 9);
        assert_eq!(found["10"], Membership::Groups(vec!["globex".into()]));
    }

    #[tokio::test]
    async fn non_numeric_id_is_skipped_without_a_request_when_looked_up() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;

        let found =
            client(&server, Duration::from_secs(60)).memberships(&ids(&["../events", "a b"])).await;

        assert!(found.unwrap().is_empty());
    }

    #[tokio::test]
    async fn lookup_fails_naming_the_user_when_authentik_refuses() {
        let server = MockServer::start().await;
        Mock::given(path("/api/v3/core/users/5/"))
            .respond_with(ResponseTemplate::new(403).set_body_string(
                r#"{"detail":"You do not have permission to perform this action."}"#,
            ))
            .mount(&server)
            .await;

        let error =
            client(&server, Duration::from_secs(60)).memberships(&ids(&["5"])).await.unwrap_err();

        assert_eq!(error.user, "5");
        assert!(error.message.contains("view_user"), "{}", error.message);
        assert!(!error.to_string().contains("t0ken"));
    }

    #[tokio::test]
    async fn user_is_unreadable_with_the_reason_when_the_answer_has_no_groups() {
        let server = MockServer::start().await;
        Mock::given(path("/api/v3/core/users/5/"))
            .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"pk": 5}"#))
            .mount(&server)
            .await;
        Mock::given(path("/api/v3/core/users/6/"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"pk\": 6, \"groups_obj\""))
            .mount(&server)
            .await;

        let client = client(&server, Duration::from_secs(60));

        let found = client.memberships(&ids(&["5"])).await.unwrap();
        let not_json = client.memberships(&ids(&["6"])).await.unwrap_err();

        assert!(
            matches!(&found["5"], Membership::Unreadable(reason) if reason.contains("groups_obj"))
        );
        assert!(not_json.message.contains("not JSON"), "{not_json}");
    }
}
