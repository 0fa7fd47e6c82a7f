//! The event source: pages of `GET /api/v3/events/events/`.
//!
//! Pages are asked for newest first with `pk` as the tie-breaker
//! (`ordering=-created,pk`): Authentik's default order has none, so events
//! sharing a `created` value could swap places between two requests. No date
//! filter is sent, because Authentik has none and ignores unknown
//! parameters.

use async_trait::async_trait;
use chrono::Utc;
use domain::SourceName;
use ports::{AuthFailure, EventSource, FetchError, PageRequest, SourcePage};
use reqwest::StatusCode;

use crate::client::{Answer, AuthentikClient, detail, retry_after};
use crate::config::redacted;
use crate::parse::parse_page;

/// The permission that reading the event list needs.
const VIEW_EVENT: &str = "authentik_events.view_event";

#[async_trait]
impl EventSource for AuthentikClient {
    fn name(&self) -> &SourceName {
        &self.inner.name
    }

    #[tracing::instrument(skip_all, fields(page = request.page, page_size = request.page_size))]
    async fn fetch_page(&self, request: PageRequest) -> Result<SourcePage, FetchError> {
        let mut url = self.inner.events_url.clone();
        url.set_query(Some(&format!(
            "ordering=-created,pk&page={}&page_size={}",
            request.page, request.page_size
        )));

        let answer = self.get(&url).await.map_err(|failure| FetchError::Unavailable {
            message: failure.message,
            source: failure.source.map(Into::into),
        })?;
        if answer.status != StatusCode::OK {
            return Err(status_error(&answer, request.page, &url));
        }
        let page = parse_page(&answer.body).map_err(FetchError::Malformed)?;
        if !page.rejected.is_empty() {
            tracing::warn!(
                rejected = page.rejected.len(),
                "Set unreadable Authentik events aside."
            );
        }
        Ok(page)
    }
}

/// Maps an answer other than 200 to the error the port names for it.
fn status_error(answer: &Answer, page: u32, url: &url::Url) -> FetchError {
    match answer.status {
        // Authentik says "Invalid page." past the last page; any other 404
        // (a proxy, a wrong sub-path) means the URL does not lead to the API.
        StatusCode::NOT_FOUND if detail(&answer.body).as_deref() == Some("Invalid page.") => {
            FetchError::PageOutOfRange { page }
        }
        StatusCode::NOT_FOUND => FetchError::Other {
            message: format!(
                "`{}` answered 404 without Authentik's page error; check that AUTHENTIK_URL is the server's base URL",
                redacted(url)
            ),
            source: None,
        },
        StatusCode::FORBIDDEN => FetchError::Unauthorized(auth_failure(&answer.body)),
        StatusCode::TOO_MANY_REQUESTS => {
            FetchError::RateLimited { retry_after: retry_after(&answer.headers, Utc::now()) }
        }
        status => FetchError::Other {
            message: format!("`{}` answered {status}", redacted(url)),
            source: None,
        },
    }
}

/// Reads why Authentik refused a request; it answers 403, never 401, and
/// tells the cases apart only by `detail`.
fn auth_failure(body: &[u8]) -> AuthFailure {
    let detail = detail(body);
    match detail.as_deref() {
        Some("Token invalid/expired") => AuthFailure::InvalidToken,
        Some("Authentication credentials were not provided.") => AuthFailure::MissingCredentials,
        Some("You do not have permission to perform this action.") => {
            AuthFailure::MissingPermission { permission: VIEW_EVENT.into() }
        }
        other => {
            // An unknown text most likely comes from a newer Authentik or a
            // proxy; the permission is the usual cause, but say what was seen.
            let detail: String = other.unwrap_or("<no detail>").chars().take(200).collect();
            tracing::warn!(%detail, "Authentik refused the request for an unrecognised reason.");
            AuthFailure::MissingPermission { permission: VIEW_EVENT.into() }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;
    use serde_json::{Value, json};
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::AuthentikConfig;

    const FIXTURES: &str =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/authentik-2025.12");
    const EVENTS: &str = "/api/v3/events/events/";
    const TOKEN: &str = "reader-token";

    fn fixture(name: &str) -> String {
        let path = format!("{FIXTURES}/{name}.json");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read `{path}`: {error}"))
    }

    fn client(server: &MockServer, max_retries: u32) -> AuthentikClient {
        let mut config = AuthentikConfig::new(
            server.uri().parse().unwrap(),
            SecretString::from(TOKEN.to_owned()),
        );
        config.max_retries = max_retries;
        config.timeout = Duration::from_secs(5);
        AuthentikClient::new(config).unwrap()
    }

    fn json_body(body: String) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_raw(body, "application/json")
    }

    fn first_page() -> PageRequest {
        PageRequest { page: 1, page_size: 5 }
    }

    async fn answering(status: u16, body: String) -> MockServer {
        let server = MockServer::start().await;
        let response = ResponseTemplate::new(status).set_body_raw(body, "application/json");
        Mock::given(method("GET")).and(path(EVENTS)).respond_with(response).mount(&server).await;
        server
    }

    #[tokio::test]
    async fn request_carries_bearer_token_and_stable_order_when_fetching_a_page() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(query_param("ordering", "-created,pk"))
            .and(query_param("page", "2"))
            .and(query_param("page_size", "5"))
            .respond_with(json_body(fixture("02_list_page_size_5_page_2")))
            .expect(1)
            .mount(&server)
            .await;

        let page = client(&server, 0).fetch_page(PageRequest { page: 2, page_size: 5 }).await;

        let page = page.unwrap();
        assert_eq!((page.count, page.has_next, page.len), (136, true, 5));
        let requests = server.received_requests().await.unwrap();
        let query = requests[0].url.query().unwrap();
        assert!(query.contains("ordering=-created,pk"), "{query}");
        assert!(!query.contains("created__"), "{query}");
    }

    #[tokio::test]
    async fn name_is_authentik_when_asked() {
        let server = MockServer::start().await;

        assert_eq!(client(&server, 0).name().as_str(), "authentik");
    }

    #[tokio::test]
    async fn fetch_maps_each_auth_body_when_authentik_answers_403() {
        let cases = [
            ("15_bad_token", AuthFailure::InvalidToken),
            ("16_no_auth", AuthFailure::MissingCredentials),
            ("17_non_bearer_scheme", AuthFailure::MissingCredentials),
            (
                "18_nonadmin_token_no_view_event",
                AuthFailure::MissingPermission { permission: VIEW_EVENT.into() },
            ),
        ];
        for (name, expected) in cases {
            let server = answering(403, fixture(name)).await;

            let error = client(&server, 3).fetch_page(first_page()).await.unwrap_err();

            assert!(
                matches!(&error, FetchError::Unauthorized(f) if *f == expected),
                "{name}: {error:?}"
            );
            assert!(!error.to_string().contains(TOKEN));
        }
    }

    #[tokio::test]
    async fn fetch_is_missing_permission_when_403_has_an_unknown_detail() {
        let server = answering(403, r#"{"detail":"Blocked by policy."}"#.into()).await;

        let error = client(&server, 0).fetch_page(first_page()).await.unwrap_err();

        assert!(matches!(error, FetchError::Unauthorized(AuthFailure::MissingPermission { .. })));
    }

    #[tokio::test]
    async fn fetch_is_page_out_of_range_when_past_the_last_page() {
        let server = answering(404, fixture("05_past_last_page")).await;

        let error = client(&server, 3).fetch_page(PageRequest { page: 29, page_size: 5 }).await;

        assert!(matches!(error, Err(FetchError::PageOutOfRange { page: 29 })), "{error:?}");
    }

    #[tokio::test]
    async fn fetch_names_the_url_setting_when_a_404_is_not_authentiks() {
        let server = answering(404, "<html>Not Found</html>".into()).await;

        let error = client(&server, 0).fetch_page(first_page()).await.unwrap_err();

        assert!(matches!(error, FetchError::Other { .. }), "{error:?}");
        assert!(error.to_string().contains("AUTHENTIK_URL"), "{error}");
    }

    #[tokio::test]
    async fn fetch_is_rate_limited_with_the_given_pause_when_answered_429() {
        let server = MockServer::start().await;
        Mock::given(path(EVENTS))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "12"))
            .expect(1)
            .mount(&server)
            .await;

        let error = client(&server, 3).fetch_page(first_page()).await.unwrap_err();

        assert!(
            matches!(error, FetchError::RateLimited { retry_after } if retry_after == Duration::from_secs(12)),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn fetch_succeeds_when_a_server_error_is_followed_by_a_page() {
        let server = MockServer::start().await;
        Mock::given(path(EVENTS))
            .respond_with(ResponseTemplate::new(502))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(path(EVENTS))
            .respond_with(json_body(fixture("01_list_page_size_5")))
            .expect(1)
            .mount(&server)
            .await;

        let page = client(&server, 3).fetch_page(first_page()).await.unwrap();

        assert_eq!(page.events.len(), 5);
    }

    #[tokio::test]
    async fn fetch_is_unavailable_without_credentials_when_retries_are_spent() {
        let server = MockServer::start().await;
        Mock::given(path(EVENTS))
            .respond_with(ResponseTemplate::new(503))
            .expect(2)
            .mount(&server)
            .await;

        let error = client(&server, 1).fetch_page(first_page()).await.unwrap_err();

        let FetchError::Unavailable { message, .. } = &error else { panic!("{error:?}") };
        assert!(message.contains(&server.uri()), "{message}");
        assert!(message.contains("503"), "{message}");
        assert!(!format!("{error:?}").contains(TOKEN));
    }

    #[tokio::test]
    async fn fetch_is_unavailable_when_nothing_listens() {
        // A port that was just free; wiremock keeps dropped servers alive in
        // a pool, so one of them cannot stand for "nothing listens".
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let mut config = AuthentikConfig::new(url, SecretString::from(TOKEN.to_owned()));
        config.max_retries = 0;

        let error = AuthentikClient::new(config).unwrap().fetch_page(first_page()).await;

        let Err(FetchError::Unavailable { message, .. }) = error else { panic!("{error:?}") };
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    }

    #[tokio::test]
    async fn fetch_is_malformed_when_the_body_is_not_the_envelope() {
        let bodies = [
            r#"{"pagination": {"next": 2, "count": 136}, "results": [{"pk""#.to_owned(),
            r#"{"results": []}"#.to_owned(),
            "not json".to_owned(),
        ];
        for body in bodies {
            let server = answering(200, body.clone()).await;

            let error = client(&server, 0).fetch_page(first_page()).await.unwrap_err();

            assert!(matches!(error, FetchError::Malformed(_)), "{body}: {error:?}");
        }
    }

    #[tokio::test]
    async fn page_keeps_the_readable_events_when_one_event_is_broken() {
        let mut envelope: Value = serde_json::from_str(&fixture("01_list_page_size_5")).unwrap();
        envelope["results"][2]["created"] = json!("not a time");
        let server = answering(200, envelope.to_string()).await;

        let page = client(&server, 0).fetch_page(first_page()).await.unwrap();

        assert_eq!((page.len, page.events.len(), page.rejected.len()), (5, 4, 1));
        let rejected = &page.rejected[0];
        assert_eq!(rejected.external_id.as_deref(), envelope["results"][2]["pk"].as_str());
        assert!(rejected.reason.contains("`created`"), "{}", rejected.reason);
        assert_eq!(rejected.raw, envelope["results"][2]);
    }
}
