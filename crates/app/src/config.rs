//! Settings: read from flags and environment variables, then checked.
//!
//! Every setting has one name, used as the environment variable and, in
//! lower case with dashes, as the flag. A value that cannot be used ends the
//! program with one line naming the setting and exit code 2.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::TimeDelta;
use clap::Args;
use domain::{AdminGroups, TenantSet, TenantSlug};
use secrecy::SecretString;
use url::Url;

/// The settings as given, before they are checked.
///
/// `Debug` shows whether a token was given, never the token.
#[derive(Clone, Default, Args)]
pub struct RawSettings {
    /// Base URL of the Authentik server, such as `https://auth.example.com`.
    #[arg(long, env = "AUTHENTIK_URL", global = true)]
    pub authentik_url: Option<String>,
    /// API token of a user allowed `authentik_events.view_event`. Prefer the
    /// environment variable or a token file to a flag, which other users of
    /// the machine can see.
    #[arg(long, env = "AUTHENTIK_TOKEN", hide_env_values = true, global = true)]
    pub authentik_token: Option<String>,
    /// File holding the API token (surrounding white space is ignored).
    #[arg(long, env = "AUTHENTIK_TOKEN_FILE", global = true)]
    pub authentik_token_file: Option<PathBuf>,
    /// File of PEM certificates to trust besides the system's, for an
    /// Authentik behind a private CA.
    #[arg(long, env = "AUTHENTIK_CA_BUNDLE", global = true)]
    pub authentik_ca_bundle: Option<PathBuf>,
    /// Where the audit timeline is kept: `sqlite://PATH` or `mongodb://...`
    /// [default: sqlite://audit.db]
    #[arg(long, env = "AUDIT_STORE", global = true)]
    pub audit_store: Option<String>,
    /// Time between ticks, such as `60s` or `5m` [default: 60s].
    #[arg(long, env = "INGEST_INTERVAL", global = true)]
    pub ingest_interval: Option<String>,
    /// Events asked for per page, 1 to 100 [default: 100].
    #[arg(long, env = "INGEST_PAGE_SIZE", global = true)]
    pub ingest_page_size: Option<String>,
    /// Pages read at most per tick [default: 10].
    #[arg(long, env = "INGEST_MAX_PAGES_PER_TICK", global = true)]
    pub ingest_max_pages_per_tick: Option<String>,
    /// How far below the last stored event each walk reads again, for
    /// events that become visible late [default: 5m].
    #[arg(long, env = "INGEST_OVERLAP", global = true)]
    pub ingest_overlap: Option<String>,
    /// `false` to keep the daemon from ingesting [default: true].
    #[arg(long, env = "AUDIT_INGEST_ENABLED", global = true)]
    pub audit_ingest_enabled: Option<String>,
    /// Comma-separated tenant slugs; when given, replaces the store's list.
    #[arg(long, env = "TENANTS", global = true)]
    pub tenants: Option<String>,
    /// Comma-separated admin groups, `*` matching any text at either end
    /// [default: "authentik Admins,*-admins"].
    #[arg(long, env = "ADMIN_GROUPS", global = true)]
    pub admin_groups: Option<String>,
    /// Address of the metrics and health listener for `run`, an IP and a
    /// port; empty to turn it off [default: 127.0.0.1:9464].
    #[arg(long, env = "METRICS_ADDR", global = true)]
    pub metrics_addr: Option<String>,
    /// MongoDB collection of the audit timeline [default: audit_events].
    #[arg(long, env = "MONGO_EVENTS_COLLECTION", global = true)]
    pub mongo_events_collection: Option<String>,
    /// MongoDB collection of the cursors, one per source [default:
    /// ingest_cursors].
    #[arg(long, env = "MONGO_CURSORS_COLLECTION", global = true)]
    pub mongo_cursors_collection: Option<String>,
    /// MongoDB collection of the platform's tenants, read for their `slug`
    /// [default: tenants].
    #[arg(long, env = "MONGO_TENANTS_COLLECTION", global = true)]
    pub mongo_tenants_collection: Option<String>,
    /// MongoDB collection of the events set aside [default: set_aside].
    #[arg(long, env = "MONGO_SET_ASIDE_COLLECTION", global = true)]
    pub mongo_set_aside_collection: Option<String>,
    /// MongoDB collection of changed versions of stored events [default:
    /// source_changes].
    #[arg(long, env = "MONGO_SOURCE_CHANGES_COLLECTION", global = true)]
    pub mongo_source_changes_collection: Option<String>,
    /// MongoDB collection of the ingest leases [default: ingest_leases].
    #[arg(long, env = "MONGO_LEASES_COLLECTION", global = true)]
    pub mongo_leases_collection: Option<String>,
}

impl fmt::Debug for RawSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSettings")
            .field("authentik_url", &self.authentik_url)
            .field("authentik_token", &self.authentik_token.as_ref().map(|_| "[REDACTED]"))
            .field("authentik_token_file", &self.authentik_token_file)
            .field("authentik_ca_bundle", &self.authentik_ca_bundle)
            .field("audit_store", &self.audit_store)
            .field("ingest_interval", &self.ingest_interval)
            .field("ingest_page_size", &self.ingest_page_size)
            .field("ingest_max_pages_per_tick", &self.ingest_max_pages_per_tick)
            .field("ingest_overlap", &self.ingest_overlap)
            .field("audit_ingest_enabled", &self.audit_ingest_enabled)
            .field("tenants", &self.tenants)
            .field("metrics_addr", &self.metrics_addr)
            .field("admin_groups", &self.admin_groups)
            .field("mongo_events_collection", &self.mongo_events_collection)
            .field("mongo_cursors_collection", &self.mongo_cursors_collection)
            .field("mongo_tenants_collection", &self.mongo_tenants_collection)
            .field("mongo_set_aside_collection", &self.mongo_set_aside_collection)
            .field("mongo_source_changes_collection", &self.mongo_source_changes_collection)
            .field("mongo_leases_collection", &self.mongo_leases_collection)
            .finish()
    }
}

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The setting's environment variable name.
    pub name: &'static str,
    /// What is wrong with it, never quoting a secret.
    pub message: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for SettingError {}

fn invalid(name: &'static str, message: impl Into<String>) -> SettingError {
    SettingError { name, message: message.into() }
}

/// Where the audit timeline is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A MongoDB deployment, by connection string.
    Mongo(String),
}

impl StoreLocation {
    /// Returns the location as safe to print: a MongoDB password is hidden.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Mongo(uri) => redact_userinfo(uri),
        }
    }
}

/// Returns the connection string `uri` with the password of its user info
/// replaced. It works on the text, not through a URL parser: a MongoDB
/// string may name several hosts (`h1:27017,h2:27017`), which is not a URL.
fn redact_userinfo(uri: &str) -> String {
    let authority_start = uri.find("://").map_or(0, |at| at + 3);
    let authority_end =
        uri[authority_start..].find(['/', '?']).map_or(uri.len(), |at| authority_start + at);
    let authority = &uri[authority_start..authority_end];
    // The user info ends at the last `@` before the hosts: a password may
    // hold an escaped `@` but never a raw one, and hosts hold none.
    let Some(at) = authority.rfind('@') else { return uri.to_owned() };
    let user = authority[..at].split_once(':').map_or(&authority[..at], |(user, _)| user);
    let password_given = authority[..at].contains(':');
    let shown = if password_given { format!("{user}:****") } else { user.to_owned() };
    format!("{}{shown}{}", &uri[..authority_start], &uri[authority_start + at..])
}

/// The names of the MongoDB store's collections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoCollections {
    /// The audit timeline.
    pub events: String,
    /// The cursors, one per source.
    pub cursors: String,
    /// The platform's tenants, read for their `slug`.
    pub tenants: String,
    /// The events set aside.
    pub set_aside: String,
    /// The changed versions of stored events.
    pub source_changes: String,
    /// The ingest leases.
    pub leases: String,
}

/// How to reach Authentik.
#[derive(Debug, Clone)]
pub struct AuthentikSettings {
    /// The server's base URL.
    pub url: Url,
    /// The API token.
    pub token: SecretString,
    /// Extra trusted certificates.
    pub ca_bundle: Option<PathBuf>,
}

/// How the ingest loop runs.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Time between ticks.
    pub interval: Duration,
    /// Events asked for per page.
    pub page_size: u32,
    /// Pages read at most per tick.
    pub max_pages_per_tick: u32,
    /// How far below the last stored event each walk reads again.
    pub overlap: TimeDelta,
    /// Whether the daemon ingests at all.
    pub enabled: bool,
}

/// The settings every command needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the audit timeline is kept.
    pub store: StoreLocation,
    /// The tenants to write to the store, when given.
    pub tenants: Option<TenantSet>,
    /// The admin-group rule.
    pub admin_groups: AdminGroups,
    /// How the ingest loop runs.
    pub ingest: IngestSettings,
    /// Where `run` serves metrics and health; `None` when turned off.
    pub metrics_addr: Option<SocketAddr>,
    /// The collection names, used when the store is MongoDB.
    pub mongo_collections: MongoCollections,
}

/// The largest page Authentik serves (2025.12 and later cap silently).
const MAX_PAGE_SIZE: u32 = 100;

impl RawSettings {
    /// Checks the settings every command needs.
    ///
    /// # Errors
    /// [`SettingError`] naming the first setting that cannot be used.
    pub fn settings(&self) -> Result<Settings, SettingError> {
        let ingest = IngestSettings {
            interval: duration("INGEST_INTERVAL", self.ingest_interval.as_deref(), "60s")?,
            page_size: number("INGEST_PAGE_SIZE", self.ingest_page_size.as_deref(), 100)?,
            max_pages_per_tick: number(
                "INGEST_MAX_PAGES_PER_TICK",
                self.ingest_max_pages_per_tick.as_deref(),
                10,
            )?,
            overlap: overlap(self.ingest_overlap.as_deref())?,
            enabled: boolean("AUDIT_INGEST_ENABLED", self.audit_ingest_enabled.as_deref())?,
        };
        if ingest.interval < Duration::from_secs(1) {
            return Err(invalid("INGEST_INTERVAL", "must be at least 1s"));
        }
        if ingest.page_size > MAX_PAGE_SIZE {
            return Err(invalid(
                "INGEST_PAGE_SIZE",
                format!(
                    "`{}` is above {MAX_PAGE_SIZE}, the most Authentik serves",
                    ingest.page_size
                ),
            ));
        }
        Ok(Settings {
            store: store(self.audit_store.as_deref())?,
            tenants: self.tenants.as_deref().map(tenants).transpose()?,
            admin_groups: match &self.admin_groups {
                Some(text) => AdminGroups::parse(text)
                    .map_err(|error| invalid("ADMIN_GROUPS", error.to_string()))?,
                None => AdminGroups::default(),
            },
            ingest,
            metrics_addr: metrics_addr(self.metrics_addr.as_deref())?,
            mongo_collections: self.mongo_collections()?,
        })
    }

    /// Checks the MongoDB collection names: each one MongoDB accepts, and
    /// no two the same.
    fn mongo_collections(&self) -> Result<MongoCollections, SettingError> {
        let given = [
            ("MONGO_EVENTS_COLLECTION", &self.mongo_events_collection, "audit_events"),
            ("MONGO_CURSORS_COLLECTION", &self.mongo_cursors_collection, "ingest_cursors"),
            ("MONGO_TENANTS_COLLECTION", &self.mongo_tenants_collection, "tenants"),
            ("MONGO_SET_ASIDE_COLLECTION", &self.mongo_set_aside_collection, "set_aside"),
            (
                "MONGO_SOURCE_CHANGES_COLLECTION",
                &self.mongo_source_changes_collection,
                "source_changes",
            ),
            ("MONGO_LEASES_COLLECTION", &self.mongo_leases_collection, "ingest_leases"),
        ];
        let mut names: Vec<(&'static str, String)> = Vec::with_capacity(given.len());
        for (name, value, default) in given {
            let value = value.as_deref().map_or(default, str::trim).to_owned();
            if value.is_empty() {
                return Err(invalid(name, "is empty; give a collection name"));
            }
            if value.contains(['$', '\0']) || value.starts_with("system.") || value.len() > 200 {
                return Err(invalid(
                    name,
                    format!(
                        "`{}` is not a collection name MongoDB accepts (no `$`, no NUL, \
                         no `system.` prefix, at most 200 bytes)",
                        value.escape_debug()
                    ),
                ));
            }
            if let Some((other, _)) = names.iter().find(|(_, earlier)| *earlier == value) {
                return Err(invalid(name, format!("`{value}` is also {other}; give each its own")));
            }
            names.push((name, value));
        }
        let mut values = names.into_iter().map(|(_, value)| value);
        let mut next = || values.next().unwrap_or_default();
        Ok(MongoCollections {
            events: next(),
            cursors: next(),
            tenants: next(),
            set_aside: next(),
            source_changes: next(),
            leases: next(),
        })
    }

    /// Checks the settings for reaching Authentik.
    ///
    /// # Errors
    /// [`SettingError`] naming the first setting that is missing or cannot be
    /// used.
    pub fn authentik(&self) -> Result<AuthentikSettings, SettingError> {
        let text =
            self.authentik_url.as_deref().filter(|text| !text.trim().is_empty()).ok_or_else(
                || invalid("AUTHENTIK_URL", "is not set; give the Authentik base URL"),
            )?;
        // The text is quoted back only once it is known to hold no
        // credentials.
        let url = Url::parse(text.trim())
            .map_err(|error| invalid("AUTHENTIK_URL", format!("is not a URL: {error}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "AUTHENTIK_URL",
                "must not carry credentials; give the token in AUTHENTIK_TOKEN",
            ));
        }
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid("AUTHENTIK_URL", format!("`{text}` is not an http(s) URL")));
        }
        if let Some(path) = &self.authentik_ca_bundle {
            std::fs::File::open(path).map_err(|error| {
                invalid("AUTHENTIK_CA_BUNDLE", format!("cannot read `{}`: {error}", path.display()))
            })?;
        }
        Ok(AuthentikSettings {
            url,
            token: self.token()?,
            ca_bundle: self.authentik_ca_bundle.clone(),
        })
    }

    fn token(&self) -> Result<SecretString, SettingError> {
        let token = match (&self.authentik_token, &self.authentik_token_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "AUTHENTIK_TOKEN",
                    "is set together with AUTHENTIK_TOKEN_FILE; set only one",
                ));
            }
            (Some(token), None) => token.trim().to_owned(),
            (None, Some(path)) => read_token(path)?,
            (None, None) => {
                return Err(invalid(
                    "AUTHENTIK_TOKEN",
                    "is not set; set it or AUTHENTIK_TOKEN_FILE to an Authentik API token",
                ));
            }
        };
        if token.is_empty() {
            return Err(invalid("AUTHENTIK_TOKEN", "is empty"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("AUTHENTIK_TOKEN", "holds white space or control characters"));
        }
        Ok(SecretString::from(token))
    }
}

fn read_token(path: &Path) -> Result<String, SettingError> {
    std::fs::read_to_string(path).map(|text| text.trim().to_owned()).map_err(|error| {
        invalid("AUTHENTIK_TOKEN_FILE", format!("cannot read `{}`: {error}", path.display()))
    })
}

fn duration(
    name: &'static str,
    text: Option<&str>,
    default: &str,
) -> Result<Duration, SettingError> {
    let text = text.unwrap_or(default).trim();
    humantime::parse_duration(text).map_err(|error| {
        invalid(name, format!("`{text}` is not a duration such as `60s` or `5m`: {error}"))
    })
}

fn overlap(text: Option<&str>) -> Result<TimeDelta, SettingError> {
    let overlap = duration("INGEST_OVERLAP", text, "5m")?;
    // A walk reads back this far on every pass; beyond a week it is a typo,
    // and far beyond it the cursor's arithmetic would leave the calendar.
    if overlap > Duration::from_secs(7 * 24 * 3600) {
        return Err(invalid("INGEST_OVERLAP", "is longer than 7 days; give a few minutes"));
    }
    TimeDelta::from_std(overlap).map_err(|_| invalid("INGEST_OVERLAP", "is too long"))
}

fn number(name: &'static str, text: Option<&str>, default: u32) -> Result<u32, SettingError> {
    let Some(text) = text else { return Ok(default) };
    match text.trim().parse::<u32>() {
        Ok(0) => Err(invalid(name, "must be at least 1")),
        Ok(value) => Ok(value),
        Err(_) => Err(invalid(name, format!("`{text}` is not a whole number"))),
    }
}

fn boolean(name: &'static str, text: Option<&str>) -> Result<bool, SettingError> {
    let Some(text) = text else { return Ok(true) };
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, format!("`{text}` is not `true` or `false`"))),
    }
}

fn store(text: Option<&str>) -> Result<StoreLocation, SettingError> {
    let text = text.unwrap_or("sqlite://audit.db").trim();
    if let Some(path) = text.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(invalid(
                "AUDIT_STORE",
                "`sqlite://` needs a file path, such as `sqlite://audit.db`",
            ));
        }
        return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
    }
    if text.starts_with("mongodb://") || text.starts_with("mongodb+srv://") {
        return Ok(StoreLocation::Mongo(text.to_owned()));
    }
    Err(invalid("AUDIT_STORE", "must start with `sqlite://` or `mongodb://`"))
}

fn metrics_addr(text: Option<&str>) -> Result<Option<SocketAddr>, SettingError> {
    let text = text.unwrap_or("127.0.0.1:9464").trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        invalid(
            "METRICS_ADDR",
            format!("`{text}` is not an IP address and port such as `127.0.0.1:9464`; leave it empty to turn the listener off"),
        )
    })
}

fn tenants(text: &str) -> Result<TenantSet, SettingError> {
    if text.trim().is_empty() {
        // An empty value is most often a variable left unset by a template;
        // taking it as "no tenants" would wipe the stored list.
        return Err(invalid("TENANTS", "is empty; unset it to keep the stored tenant list"));
    }
    let slugs = text.split(',').map(str::trim).filter(|slug| !slug.is_empty());
    let slugs = slugs
        .map(|slug| TenantSlug::parse(slug).map_err(|error| invalid("TENANTS", error.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TenantSet::new(slugs))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn raw() -> RawSettings {
        RawSettings {
            authentik_url: Some("https://auth.example.test".into()),
            authentik_token: Some("secret-token".into()),
            ..RawSettings::default()
        }
    }

    fn error_name(result: Result<impl fmt::Debug, SettingError>) -> &'static str {
        result.unwrap_err().name
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let settings = raw().settings().unwrap();

        assert_eq!(settings.store, StoreLocation::Sqlite("audit.db".into()));
        assert_eq!(settings.ingest.interval, Duration::from_secs(60));
        assert_eq!(settings.ingest.page_size, 100);
        assert_eq!(settings.ingest.max_pages_per_tick, 10);
        assert_eq!(settings.ingest.overlap, TimeDelta::minutes(5));
        assert!(settings.ingest.enabled);
        assert_eq!(settings.tenants, None);
        assert!(settings.admin_groups.matches("acme-admins"));
        assert_eq!(settings.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
    }

    #[test]
    fn empty_metrics_addr_turns_the_listener_off() {
        let mut raw = raw();
        raw.metrics_addr = Some(" ".into());

        assert_eq!(raw.settings().unwrap().metrics_addr, None);
    }

    #[test]
    fn malformed_values_name_their_setting() {
        type Change = fn(&mut RawSettings);
        let cases: [(Change, &str); 14] = [
            (|raw| raw.metrics_addr = Some("localhost".into()), "METRICS_ADDR"),
            (|raw| raw.metrics_addr = Some("0.0.0.0:99999".into()), "METRICS_ADDR"),
            (|raw| raw.ingest_interval = Some("soon".into()), "INGEST_INTERVAL"),
            (|raw| raw.ingest_interval = Some("0s".into()), "INGEST_INTERVAL"),
            (|raw| raw.ingest_page_size = Some("1000".into()), "INGEST_PAGE_SIZE"),
            (|raw| raw.ingest_page_size = Some("ten".into()), "INGEST_PAGE_SIZE"),
            (|raw| raw.ingest_max_pages_per_tick = Some("0".into()), "INGEST_MAX_PAGES_PER_TICK"),
            (|raw| raw.ingest_overlap = Some("-5m".into()), "INGEST_OVERLAP"),
            (|raw| raw.ingest_overlap = Some("300000y".into()), "INGEST_OVERLAP"),
            (|raw| raw.audit_ingest_enabled = Some("maybe".into()), "AUDIT_INGEST_ENABLED"),
            (|raw| raw.tenants = Some("acme,Globex".into()), "TENANTS"),
            (|raw| raw.audit_store = Some("postgres://x".into()), "AUDIT_STORE"),
            (|raw| raw.tenants = Some(" ".into()), "TENANTS"),
            (|raw| raw.ingest_interval = Some("1ns".into()), "INGEST_INTERVAL"),
        ];
        for (change, name) in cases {
            let mut raw = raw();
            change(&mut raw);

            assert_eq!(error_name(raw.settings()), name);
        }
    }

    #[test]
    fn authentik_settings_need_url_and_token() {
        let mut missing_url = raw();
        missing_url.authentik_url = None;
        let mut bad_url = raw();
        bad_url.authentik_url = Some("auth.example.test".into());
        let mut missing_token = raw();
        missing_token.authentik_token = None;
        let mut both = raw();
        both.authentik_token_file = Some("/nonexistent".into());

        assert_eq!(error_name(missing_url.authentik()), "AUTHENTIK_URL");
        assert_eq!(error_name(bad_url.authentik()), "AUTHENTIK_URL");
        assert_eq!(error_name(missing_token.authentik()), "AUTHENTIK_TOKEN");
        assert_eq!(error_name(both.authentik()), "AUTHENTIK_TOKEN");
    }

    #[test]
    fn url_with_credentials_is_refused_without_quoting_them() {
        let mut raw = raw();
        raw.authentik_url = Some("ftp://user:SUPERSECRET@auth.example.test".into());

        let error = raw.authentik().unwrap_err();

        assert_eq!(error.name, "AUTHENTIK_URL");
        assert!(!error.to_string().contains("SUPERSECRET"), "{error}");
    }

    #[test]
    fn missing_ca_bundle_names_its_setting() {
        let mut raw = raw();
        raw.authentik_ca_bundle = Some("/nonexistent/ca.pem".into());

        assert_eq!(error_name(raw.authentik()), "AUTHENTIK_CA_BUNDLE");
    }

    #[test]
    fn debug_never_shows_the_token() {
        assert!(!format!("{:?}", raw()).contains("secret-token"));
    }

    #[test]
    fn token_is_read_from_a_file_and_never_shown() {
        let dir = std::env::temp_dir().join(format!("audit-ingest-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "file-token\n").unwrap();
        let mut raw = raw();
        raw.authentik_token = None;
        raw.authentik_token_file = Some(path);

        let authentik = raw.authentik().unwrap();

        assert_eq!(authentik.token.expose_secret(), "file-token");
        assert!(!format!("{authentik:?}").contains("file-token"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unreadable_token_file_names_the_setting() {
        let mut raw = raw();
        raw.authentik_token = None;
        raw.authentik_token_file = Some("/nonexistent/token".into());

        assert_eq!(error_name(raw.authentik()), "AUTHENTIK_TOKEN_FILE");
    }

    #[test]
    fn tenants_and_store_are_read() {
        let mut raw = raw();
        raw.tenants = Some(" acme, globex ,".into());
        raw.audit_store = Some("mongodb://db.example.test:27017/audit".into());

        let settings = raw.settings().unwrap();

        let slugs: Vec<&str> =
            settings.tenants.as_ref().unwrap().iter().map(TenantSlug::as_str).collect();
        assert_eq!(slugs, ["acme", "globex"]);
        assert_eq!(
            settings.store,
            StoreLocation::Mongo("mongodb://db.example.test:27017/audit".into())
        );
    }

    #[test]
    fn mongo_collections_default_to_the_schema_names() {
        let settings = raw().settings().unwrap();

        let names = settings.mongo_collections;
        assert_eq!(
            [names.events, names.cursors, names.tenants],
            ["audit_events", "ingest_cursors", "tenants"]
        );
        assert_eq!(
            [names.set_aside, names.source_changes, names.leases],
            ["set_aside", "source_changes", "ingest_leases"]
        );
    }

    #[test]
    fn mongo_collections_are_read_and_checked() {
        let mut renamed = raw();
        renamed.mongo_events_collection = Some(" audit_timeline ".into());
        let mut dollar = raw();
        dollar.mongo_tenants_collection = Some("ten$ants".into());
        let mut empty = raw();
        empty.mongo_cursors_collection = Some(" ".into());
        let mut shared = raw();
        shared.mongo_leases_collection = Some("audit_events".into());

        assert_eq!(renamed.settings().unwrap().mongo_collections.events, "audit_timeline");
        assert_eq!(error_name(dollar.settings()), "MONGO_TENANTS_COLLECTION");
        assert_eq!(error_name(empty.settings()), "MONGO_CURSORS_COLLECTION");
        let error = shared.settings().unwrap_err();
        assert_eq!(error.name, "MONGO_LEASES_COLLECTION");
        assert!(error.message.contains("MONGO_EVENTS_COLLECTION"), "{error}");
    }

    #[test]
    fn mongo_password_is_redacted() {
        let cases = [
            (
                "mongodb://user:hunter2@db.example.test/audit",
                "mongodb://user:****@db.example.test/audit",
            ),
            (
                "mongodb://audit:hunter2@db1:27017,db2:27017/audit?replicaSet=rs0",
                "mongodb://audit:****@db1:27017,db2:27017/audit?replicaSet=rs0",
            ),
            (
                "mongodb+srv://a:b%40c@cluster.example.test/x",
                "mongodb+srv://a:****@cluster.example.test/x",
            ),
            ("mongodb://db.example.test/audit", "mongodb://db.example.test/audit"),
            (
                "mongodb://only-user@db.example.test/audit",
                "mongodb://only-user@db.example.test/audit",
            ),
        ];
        for (given, shown) in cases {
            assert_eq!(StoreLocation::Mongo(given.into()).redacted(), shown);
        }
    }
}
