//! What the token may read: the check `audit-ingest check` runs.
//!
//! Reading events is tried for real (page 1, one event), so the answer goes
//! through the same 403 classification as the live path. Whether the token
//! may read users is judged from the user list: every Authentik has at least
//! the token's own user, so a token holding `authentik_core.view_user` is
//! never shown an empty list. Without that permission Authentik does not
//! refuse; it hides the users (404 for each, an empty list), which is why an
//! empty list is the tell.

use ports::{EventSource, FetchError, PageRequest};
use reqwest::StatusCode;
use serde_json::Value;

use crate::client::{AuthentikClient, detail};

/// The permission that reading users' groups needs.
pub const VIEW_USER: &str = "authentik_core.view_user";

/// What the token may read.
#[derive(Debug)]
pub struct AccessReport {
    /// The number of events the token sees, or why it cannot read them.
    pub events: Result<u64, FetchError>,
    /// Whether the token may read users, for tenant inference.
    pub users: UserAccess,
}

/// Whether the token may read users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAccess {
    /// Users are readable; the number the token sees.
    Readable(u64),
    /// The token lacks [`VIEW_USER`]; events then land in no tenant.
    MissingPermission,
    /// The check itself failed, for the reason given.
    Failed(String),
}

impl AuthentikClient {
    /// Checks what the token may read, with two small requests.
    pub async fn check_access(&self) -> AccessReport {
        let events =
            self.fetch_page(PageRequest { page: 1, page_size: 1 }).await.map(|page| page.count);
        AccessReport { events, users: self.user_access().await }
    }

    async fn user_access(&self) -> UserAccess {
        let mut url = self.inner.users_url.clone();
        url.set_query(Some("page_size=1"));
        let answer = match self.get(&url).await {
            Ok(answer) => answer,
            Err(failure) => return UserAccess::Failed(failure.message),
        };
        match answer.status {
            StatusCode::OK => match user_count(&answer.body) {
                Some(0) => UserAccess::MissingPermission,
                Some(count) => UserAccess::Readable(count),
                None => UserAccess::Failed("the user list is not Authentik's page".into()),
            },
            StatusCode::FORBIDDEN
                if detail(&answer.body).as_deref()
                    == Some("You do not have permission to perform this action.") =>
            {
                UserAccess::MissingPermission
            }
            status => UserAccess::Failed(format!(
                "the user list answered {status} ({})",
                detail(&answer.body).unwrap_or_else(|| "no detail".into())
            )),
        }
    }
}

/// Reads `pagination.count` of a list page.
fn user_count(body: &[u8]) -> Option<u64> {
    let page: Value = serde_json::from_slice(body).ok()?;
    page.pointer("/pagination/count")?.as_u64()
}
