//! The HTTP client shared by the event source and the group directory, with
//! its retry policy.
//!
//! Transport failures, time-outs and 5xx answers are repeated here with
//! exponential backoff and full jitter, so callers see only answers they can
//! act on. Every other status is handed back for the caller to map.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::{Membership, SourceName};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use url::Url;

use crate::config::{AuthentikConfig, redacted};
use crate::observe::{Endpoint, RequestObserver, RequestOutcome};

/// The first backoff step; each retry doubles it up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The longest pause between two tries.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// The pause assumed when a 429 names none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The error from building an [`AuthentikClient`].
#[derive(Debug, Error)]
pub enum BuildError {
    /// The base URL cannot serve as the API root.
    #[error("the Authentik URL `{url}` is not usable: {reason}")]
    BaseUrl {
        /// The URL, without credentials.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The token holds characters an HTTP header cannot carry.
    #[error(
        "the Authentik token holds characters an HTTP header cannot carry; check AUTHENTIK_TOKEN"
    )]
    Token,
    /// The CA bundle could not be read.
    #[error("cannot read the CA bundle `{path}`")]
    ReadCaBundle {
        /// The bundle's path.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle holds no usable certificate.
    #[error("the CA bundle `{path}` holds no usable PEM certificate")]
    ParseCaBundle {
        /// The bundle's path.
        path: PathBuf,
        /// Why it was refused, when the TLS library said.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// A client of one Authentik server: its event log and its users' groups.
///
/// Cloning is cheap and shares the connection pool and the group cache.
#[derive(Clone)]
pub struct AuthentikClient {
    pub(crate) inner: Arc<Inner>,
}

/// The state one client and its clones share.
pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) token: SecretString,
    pub(crate) name: SourceName,
    pub(crate) events_url: Url,
    pub(crate) users_url: Url,
    pub(crate) max_retries: u32,
    pub(crate) group_cache_ttl: Duration,
    pub(crate) group_cache: Mutex<HashMap<String, (Instant, Membership)>>,
    pub(crate) observer: Option<Arc<dyn RequestObserver>>,
}

/// An answer that is not a transport failure or a server error.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// The server stayed unreachable or failing through every retry.
pub(crate) struct Unreachable {
    /// What went wrong, naming the URL without credentials.
    pub(crate) message: String,
    /// The last transport error, when there was one.
    pub(crate) source: Option<reqwest::Error>,
}

impl AuthentikClient {
    /// Builds a client from `config`.
    ///
    /// # Errors
    /// [`BuildError`] when the base URL carries credentials or cannot be a
    /// base, when the token cannot be sent in a header, when the CA bundle
    /// cannot be read, or when the TLS setup fails.
    pub fn new(config: AuthentikConfig) -> Result<Self, BuildError> {
        let base = base_url(&config.base_url)?;
        let bearer = format!("Bearer {}", config.token.expose_secret());
        if reqwest::header::HeaderValue::from_str(&bearer).is_err() {
            return Err(BuildError::Token);
        }

        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("audit-ingest/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_bundle {
            builder = builder.tls_certs_merge(read_ca_bundle(path)?);
        }
        let http = builder.build().map_err(BuildError::Client)?;

        let join = |path| base.join(path).expect("a relative path joins onto a base URL");
        let inner = Inner {
            http,
            token: config.token,
            name: SourceName::new("authentik"),
            events_url: join("api/v3/events/events/"),
            users_url: join("api/v3/core/users/"),
            max_retries: config.max_retries,
            group_cache_ttl: config.group_cache_ttl,
            group_cache: Mutex::new(HashMap::new()),
            observer: config.observer,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Sends `GET url` with the token, repeating it on transport failures,
    /// time-outs and 5xx answers.
    pub(crate) async fn get(&self, url: &Url) -> Result<Answer, Unreachable> {
        let mut attempt = 0;
        loop {
            let result = self.try_get(url).await;
            self.observe(url, &result);
            let failure = match result {
                Ok(answer) if !answer.status.is_server_error() => return Ok(answer),
                Ok(answer) => Unreachable {
                    message: format!("`{}` answered {}", redacted(url), answer.status),
                    source: None,
                },
                Err(error) => Unreachable {
                    message: format!("cannot reach `{}`: {}", redacted(url), describe(&error)),
                    source: Some(error.without_url()),
                },
            };
            if attempt >= self.inner.max_retries {
                return Err(failure);
            }
            let delay = backoff(attempt);
            attempt += 1;
            tracing::debug!(
                url = %redacted(url),
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %failure.message,
                "Retrying a failed Authentik request."
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Tells the observer, when there is one, how a request to `url` ended.
    fn observe(&self, url: &Url, result: &Result<Answer, reqwest::Error>) {
        let Some(observer) = &self.inner.observer else { return };
        let endpoint = if url.as_str().starts_with(self.inner.events_url.as_str()) {
            Endpoint::Events
        } else {
            Endpoint::Users
        };
        let outcome = match result {
            Ok(answer) => RequestOutcome::Status(answer.status.as_u16()),
            Err(error) => match error.status() {
                Some(status) => RequestOutcome::Status(status.as_u16()),
                None => RequestOutcome::Transport,
            },
        };
        observer.request_finished(endpoint, outcome);
    }

    async fn try_get(&self, url: &Url) -> Result<Answer, reqwest::Error> {
        let response = self
            .inner
            .http
            .get(url.clone())
            .bearer_auth(self.inner.token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = scrub(response.bytes().await?.to_vec(), self.inner.token.expose_secret());
        Ok(Answer { status, headers, body })
    }
}

/// Returns `body` with every copy of `token` replaced, so that a server or
/// proxy that echoes the request's credentials (in a 403's `detail`, say)
/// cannot carry the token into an error, a log line or a stored event.
fn scrub(body: Vec<u8>, token: &str) -> Vec<u8> {
    if token.is_empty() || memchr::memmem::find(&body, token.as_bytes()).is_none() {
        return body;
    }
    let mut clean = Vec::with_capacity(body.len());
    let mut rest = body.as_slice();
    while let Some(at) = memchr::memmem::find(rest, token.as_bytes()) {
        clean.extend_from_slice(&rest[..at]);
        clean.extend_from_slice(b"[redacted]");
        rest = &rest[at + token.len()..];
    }
    clean.extend_from_slice(rest);
    clean
}

impl fmt::Debug for AuthentikClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthentikClient")
            .field("events_url", &redacted(&self.inner.events_url))
            .field("token", &self.inner.token)
            .field("max_retries", &self.inner.max_retries)
            .field("group_cache_ttl", &self.inner.group_cache_ttl)
            .finish_non_exhaustive()
    }
}

/// Returns the `detail` of an Authentik error body, when it has one.
pub(crate) fn detail(body: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    body.get("detail")?.as_str().map(str::to_owned)
}

/// Returns the pause a 429 asks for: `Retry-After` in seconds or as an HTTP
/// date, else [`DEFAULT_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Duration {
    read_retry_after(headers, now).min(MAX_RETRY_AFTER)
}

/// The longest pause a `Retry-After` is obeyed for: a server (or a proxy)
/// asking for more would otherwise stop ingest for as long as it likes.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

fn read_retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Duration {
    let Some(value) = headers.get(RETRY_AFTER).and_then(|value| value.to_str().ok()) else {
        return DEFAULT_RETRY_AFTER;
    };
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Duration::from_secs(seconds);
    }
    match DateTime::parse_from_rfc2822(value) {
        Ok(at) => (at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO),
        Err(_) => DEFAULT_RETRY_AFTER,
    }
}

/// Checks the base URL and gives it a trailing slash, so that joining keeps
/// a sub-path such as `/authentik/`.
fn base_url(url: &Url) -> Result<Url, BuildError> {
    let refuse = |reason| Err(BuildError::BaseUrl { url: redacted(url), reason });
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("it carries credentials; pass the token as AUTHENTIK_TOKEN instead");
    }
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return refuse("it must be an http or https URL");
    }
    let mut base = url.clone();
    base.set_query(None);
    base.set_fragment(None);
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

fn read_ca_bundle(path: &PathBuf) -> Result<Vec<reqwest::Certificate>, BuildError> {
    let pem = std::fs::read(path)
        .map_err(|source| BuildError::ReadCaBundle { path: path.clone(), source })?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(certificates),
        Ok(_) => Err(BuildError::ParseCaBundle { path: path.clone(), source: None }),
        Err(source) => Err(BuildError::ParseCaBundle { path: path.clone(), source: Some(source) }),
    }
}

/// Returns the pause before retry `attempt` (from 0): a uniform draw from
/// zero to `min(cap, base * 2^attempt)` ("full jitter").
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(2u32.saturating_pow(attempt)).min(BACKOFF_CAP);
    // `RandomState` is seeded from the OS and bumped per instance: random
    // enough for jitter without a random-number crate.
    let draw = RandomState::new().hash_one(attempt);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(draw % (millis + 1))
}

/// Names the kind of transport failure, without the URL reqwest would add.
fn describe(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "the request timed out"
    } else if error.is_connect() {
        "the connection failed"
    } else if error.is_body() || error.is_decode() {
        "the response body could not be read"
    } else {
        "the request failed"
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        headers
    }

    fn config(url: &str) -> AuthentikConfig {
        AuthentikConfig::new(Url::parse(url).unwrap(), SecretString::from("t0ken"))
    }

    #[test]
    fn retry_after_reads_seconds_when_given_as_a_number() {
        assert_eq!(retry_after(&headers("7"), Utc::now()), Duration::from_secs(7));
    }

    #[test]
    fn retry_after_reads_an_http_date_when_given_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z").unwrap().to_utc();

        let pause = retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT"), now);

        assert_eq!(pause, Duration::from_secs(60));
    }

    #[test]
    fn retry_after_defaults_to_thirty_seconds_when_missing_or_unreadable() {
        assert_eq!(retry_after(&HeaderMap::new(), Utc::now()), DEFAULT_RETRY_AFTER);
        assert_eq!(retry_after(&headers("soon"), Utc::now()), DEFAULT_RETRY_AFTER);
    }

    #[test]
    fn backoff_stays_under_the_cap_when_attempts_grow() {
        for attempt in [0, 1, 5, 40] {
            let ceiling =
                BACKOFF_BASE.saturating_mul(2u32.saturating_pow(attempt)).min(BACKOFF_CAP);

            assert!(backoff(attempt) <= ceiling, "attempt {attempt}");
        }
    }

    #[test]
    fn client_keeps_a_sub_path_when_the_base_url_lacks_a_trailing_slash() {
        let client = AuthentikClient::new(config("https://example.test/authentik")).unwrap();

        assert_eq!(
            client.inner.events_url.as_str(),
            "https://example.test/authentik/api/v3/events/events/"
        );
    }

    #[test]
    fn client_is_refused_when_the_base_url_carries_credentials() {
        let error = AuthentikClient::new(config("https://u:secret@example.test/")).unwrap_err();

        assert!(matches!(error, BuildError::BaseUrl { .. }));
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn client_is_refused_when_the_ca_bundle_is_missing() {
        let mut config = config("https://example.test/");
        config.ca_bundle = Some(PathBuf::from("/nonexistent/ca.pem"));

        let error = AuthentikClient::new(config).unwrap_err();

        assert!(matches!(error, BuildError::ReadCaBundle { .. }), "{error}");
    }

    #[test]
    fn client_is_refused_when_the_token_cannot_be_a_header() {
        let mut config = config("https://example.test/");
        config.token = SecretString::from("line\nbreak");

        assert!(matches!(AuthentikClient::new(config), Err(BuildError::Token)));
    }

    #[test]
    fn retry_after_is_capped_at_fifteen_minutes_when_huge() {
        let now = Utc::now();

        assert_eq!(retry_after(&headers("99999999999"), now), Duration::from_secs(900));
        assert_eq!(retry_after(&headers("600"), now), Duration::from_secs(600));
    }

    #[test]
    fn scrub_replaces_every_copy_of_the_token() {
        let body = br#"{"detail": "denied for Bearer s3cret; again s3cret"}"#.to_vec();

        let clean = scrub(body, "s3cret");

        assert_eq!(clean, br#"{"detail": "denied for Bearer [redacted]; again [redacted]"}"#);
        assert_eq!(scrub(b"nothing here".to_vec(), "s3cret"), b"nothing here");
    }

    #[test]
    fn debug_hides_the_token_when_the_client_is_printed() {
        let client = AuthentikClient::new(config("https://example.test/")).unwrap();

        let printed = format!("{client:?}");

        assert!(!printed.contains("t0ken"), "{printed}");
    }
}
