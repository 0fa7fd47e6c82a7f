//! The settings of the Authentik client.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::observe::RequestObserver;

/// The settings of an [`AuthentikClient`](crate::AuthentikClient).
///
/// `Debug` never shows the token, nor credentials in the base URL.
#[derive(Clone)]
pub struct AuthentikConfig {
    /// The server's root, such as `https://auth.example.com/`; the API paths
    /// are joined below it, so a sub-path deployment keeps its prefix.
    pub base_url: Url,
    /// The API token, sent only as `Authorization: Bearer <token>`.
    pub token: SecretString,
    /// The time one request may take from start to the end of its body;
    /// default 30 s.
    pub timeout: Duration,
    /// The time a connection may take to open; default 10 s.
    pub connect_timeout: Duration,
    /// How often a request is repeated after a transport failure, time-out
    /// or server error before the call fails; default 3.
    pub max_retries: u32,
    /// A PEM file of extra root certificates, for a server behind a private
    /// CA; default none (the system's roots only).
    pub ca_bundle: Option<PathBuf>,
    /// How long a user's looked-up groups are reused; default 5 min.
    pub group_cache_ttl: Duration,
    /// Told the outcome of every request, for metrics; default none.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

impl AuthentikConfig {
    /// The default request time-out.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default connect time-out.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default number of retries.
    pub const DEFAULT_MAX_RETRIES: u32 = 3;
    /// The default lifetime of a cached group lookup.
    pub const DEFAULT_GROUP_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

    /// Returns the settings for `base_url` and `token`, with every other
    /// setting at its default.
    pub fn new(base_url: Url, token: SecretString) -> Self {
        Self {
            base_url,
            token,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            max_retries: Self::DEFAULT_MAX_RETRIES,
            ca_bundle: None,
            group_cache_ttl: Self::DEFAULT_GROUP_CACHE_TTL,
            observer: None,
        }
    }
}

impl fmt::Debug for AuthentikConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthentikConfig")
            .field("base_url", &redacted(&self.base_url))
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("ca_bundle", &self.ca_bundle)
            .field("group_cache_ttl", &self.group_cache_ttl)
            .field("observer", &self.observer.as_ref().map(|_| "set"))
            .finish()
    }
}

/// Returns `url` as text without any user name or password in it.
pub(crate) fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        // Both calls fail only for URLs that cannot carry credentials at all.
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_token_and_url_credentials_when_printed() {
        let url = Url::parse("https://reader:hunter2@auth.example.test/").unwrap();
        let config = AuthentikConfig::new(url, SecretString::from("s3cr3t-token"));

        let printed = format!("{config:?}");

        assert!(!printed.contains("s3cr3t-token"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("auth.example.test"), "{printed}");
    }

    #[test]
    fn defaults_match_the_documented_values_when_built_with_new() {
        let url = Url::parse("https://auth.example.test/").unwrap();

        let config = AuthentikConfig::new(url, SecretString::from("t"));

        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.connect_timeout, Duration::from_secs(10));
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.group_cache_ttl, Duration::from_secs(300));
        assert_eq!(config.ca_bundle, None);
    }
}
