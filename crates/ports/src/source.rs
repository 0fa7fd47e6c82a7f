//! The event source port.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{SourceEvent, SourceName};
use serde::{Deserialize, Serialize};

use crate::error::FetchError;

/// One page to read, newest events first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The page number, from 1.
    pub page: u32,
    /// The number of events asked for; the source may serve fewer.
    pub page_size: u32,
}

/// An event the adapter could not turn into a [`SourceEvent`], kept whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedEvent {
    /// The source's id for the event, when it could be read.
    pub external_id: Option<String>,
    /// The event's time, when it could be read.
    pub at: Option<DateTime<Utc>>,
    /// Why it was rejected.
    pub reason: String,
    /// The event as the source sent it.
    pub raw: serde_json::Value,
}

/// One page of a source's events.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePage {
    /// The source's total number of events when it served the page.
    pub count: u64,
    /// True when the source says there is a page after this one.
    pub has_next: bool,
    /// The number of items on the page, readable or not.
    pub len: usize,
    /// The readable events, in page order (newest first).
    pub events: Vec<SourceEvent>,
    /// The items that could not be read, in page order.
    pub rejected: Vec<RejectedEvent>,
}

/// A source of audit events that serves its history in numbered pages,
/// newest first, with ties in a stable order.
#[async_trait]
pub trait EventSource: Send + Sync {
    /// The source's name, which every record and cursor of it carries.
    fn name(&self) -> &SourceName;

    /// Reads one page.
    ///
    /// One event that cannot be read does not fail the page: it MUST be
    /// returned in [`SourcePage::rejected`] with the reason.
    ///
    /// # Errors
    /// - [`FetchError::PageOutOfRange`] when the page is past the last one.
    /// - [`FetchError::Unauthorized`] when the credentials are refused, saying
    ///   which way.
    /// - [`FetchError::RateLimited`] when the source asks for a pause, with
    ///   its length.
    /// - [`FetchError::Unavailable`] for transport failures, time-outs and
    ///   server errors, once the adapter's own retries are spent.
    /// - [`FetchError::Malformed`] when the response is not a page.
    async fn fetch_page(&self, request: PageRequest) -> Result<SourcePage, FetchError>;
}
