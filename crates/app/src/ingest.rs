//! The ingest loop's unit of work: one tick of one source.
//!
//! A tick reads the source's cursor, walks pages newest first as the cursor
//! rules in [`domain::cursor`] direct, stores each page's wanted events in one
//! batch, and saves the cursor after every stored page. Because the cursor
//! is saved only after its page is stored, a crash or a failed write at any
//! point leaves a cursor that reads the page again; the store drops what was
//! already there.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use domain::AuditRecord;
use domain::{
    ActionMap, AdminGroups, Cursor, PageObservation, RecordContext, SourceEvent, TenantRule,
    WalkPolicy, build_record,
};
use ports::{
    AuditStore, CursorStore, EventSource, FetchError, GroupDirectory, LookupError, PageRequest,
    RejectedEvent, SourcePage, StoreError, StoreOutcome, TenantDirectory,
};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// The adapters one source's ingest works with.
#[derive(Clone)]
pub struct Ports {
    /// Where events come from.
    pub source: Arc<dyn EventSource>,
    /// Where users' groups are looked up.
    pub groups: Arc<dyn GroupDirectory>,
    /// Where records go.
    pub store: Arc<dyn AuditStore>,
    /// Where the cursor is kept.
    pub cursors: Arc<dyn CursorStore>,
    /// Where the tenants are listed.
    pub tenants: Arc<dyn TenantDirectory>,
}

/// How ticks walk the source.
#[derive(Debug, Clone)]
pub struct TickSettings {
    /// Events asked for per page.
    pub page_size: u32,
    /// Pages read at most per tick.
    pub max_pages: u32,
    /// How far below the last stored event each walk reads again.
    pub overlap: TimeDelta,
    /// The admin-group rule.
    pub admin_groups: AdminGroups,
}

/// What one tick, or several, did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickReport {
    /// Events read from the source, wanted or not.
    pub fetched: u64,
    /// Events stored for the first time.
    pub stored: u64,
    /// Events that were already stored.
    pub duplicates: u64,
    /// Stored events the source sent changed: the stored originals were
    /// kept and the changed versions recorded beside them.
    pub changed_at_source: u64,
    /// Events set aside as unreadable.
    pub set_aside: u64,
    /// Requests made to the source's event list.
    pub requests: u64,
    /// True when the source had nothing more to read.
    pub caught_up: bool,
    /// True when the tick stopped early for a shutdown.
    pub interrupted: bool,
    /// The cursor after the tick.
    pub cursor: Cursor,
}

impl TickReport {
    /// Adds the counts of `later` to these and takes its state.
    pub fn absorb(&mut self, later: TickReport) {
        self.fetched += later.fetched;
        self.stored += later.stored;
        self.duplicates += later.duplicates;
        self.changed_at_source += later.changed_at_source;
        self.set_aside += later.set_aside;
        self.requests += later.requests;
        self.caught_up = later.caught_up;
        self.interrupted = later.interrupted;
        self.cursor = later.cursor;
    }
}

/// The error that ends a tick early. Whatever was stored before it stays
/// stored, and the cursor stays at the last page that was stored whole.
///
/// Each variant's text already holds the error it wraps, so the wrapped
/// error is not also exposed as a `source`: printing the chain would say
/// everything twice.
#[derive(Debug, Error)]
pub enum TickError {
    /// Reading the source failed.
    #[error("reading the source failed: {0}")]
    Fetch(FetchError),
    /// Looking up groups for tenant inference failed.
    #[error("{0}")]
    Lookup(LookupError),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(StoreError),
}

impl From<FetchError> for TickError {
    fn from(error: FetchError) -> Self {
        Self::Fetch(error)
    }
}

impl From<LookupError> for TickError {
    fn from(error: LookupError) -> Self {
        Self::Lookup(error)
    }
}

impl From<StoreError> for TickError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Ingests one source.
pub struct Ingest {
    ports: Ports,
    settings: TickSettings,
    actions: ActionMap,
    /// Held for the length of a tick, so that two ticks of the source never
    /// run at once.
    running: Mutex<()>,
}

impl Ingest {
    /// Returns an ingest of `ports.source` with `settings`.
    pub fn new(ports: Ports, settings: TickSettings) -> Self {
        Self { ports, settings, actions: ActionMap::authentik(), running: Mutex::new(()) }
    }

    /// Returns the name of the source this ingest reads.
    pub fn source(&self) -> &domain::SourceName {
        self.ports.source.name()
    }

    /// Runs one tick: reads at most the configured number of pages and
    /// stores what is new.
    ///
    /// A shutdown requested through `shutdown` abandons a request in flight
    /// but never a batch being written: the tick ends after the batch and its
    /// cursor are saved.
    ///
    /// # Errors
    /// [`TickError`] when the source, the group lookups or the store fail;
    /// the cursor then names the first page not stored.
    pub async fn tick(&self, shutdown: &CancellationToken) -> Result<TickReport, TickError> {
        let _running = self.running.lock().await;
        let source = self.ports.source.name().clone();
        let rule = TenantRule {
            admin_groups: self.settings.admin_groups.clone(),
            tenants: self.ports.tenants.tenants().await?,
        };
        let mut cursor = self.ports.cursors.load(&source).await?.unwrap_or_default();
        let mut report = TickReport::default();

        for _ in 0..self.settings.max_pages {
            // A walk under way keeps the page size its page numbers were
            // counted in, whatever the setting says after a restart.
            let page_size =
                cursor.walk.as_ref().map_or(self.settings.page_size, |walk| walk.page_size);
            let request = PageRequest { page: cursor.next_page(), page_size };
            report.requests += 1;
            let prepared = tokio::select! {
                prepared = self.prepare(&cursor, request, &rule) => prepared,
                () = shutdown.cancelled() => {
                    report.interrupted = true;
                    break;
                }
            };
            let prepared = match prepared {
                Ok(prepared) => prepared,
                Err(TickError::Fetch(FetchError::PageOutOfRange { page })) if page > 1 => {
                    tracing::debug!(page, "Page past the end; the history shrank.");
                    cursor = cursor.page_missing();
                    continue;
                }
                Err(error) => return Err(error),
            };
            report.fetched += prepared.page.len as u64;

            // From here the page is stored and its cursor saved whatever
            // happens to `shutdown`: a batch in hand is never abandoned.
            self.commit(&prepared, &mut report).await?;
            let step = self.observe(&cursor, &prepared.page, page_size);
            cursor = step.cursor().clone();
            self.ports.cursors.save(&source, &cursor).await?;
            if step.is_done() {
                report.caught_up = true;
                break;
            }
            if shutdown.is_cancelled() {
                report.interrupted = true;
                break;
            }
        }
        report.cursor = cursor;
        Ok(report)
    }

    /// Reads one page and builds the records of its wanted events, with
    /// the group lookups tenant inference needs. Nothing is written, so this
    /// step may be abandoned at any point.
    async fn prepare(
        &self,
        cursor: &Cursor,
        request: PageRequest,
        rule: &TenantRule,
    ) -> Result<Prepared, TickError> {
        let page = self.ports.source.fetch_page(request).await?;
        let overlap = self.settings.overlap;
        let wanted: Vec<&SourceEvent> =
            page.events.iter().filter(|event| cursor.wants(event.at, overlap)).collect();
        let rejected: Vec<RejectedEvent> = page
            .rejected
            .iter()
            .filter(|rejected| rejected.at.is_none_or(|at| cursor.wants(at, overlap)))
            .cloned()
            .collect();

        let records = self.records(wanted, rule).await?;
        Ok(Prepared { page, records, rejected })
    }

    /// Builds the records of `events`, with the group lookups tenant
    /// inference needs.
    async fn records(
        &self,
        events: Vec<&SourceEvent>,
        rule: &TenantRule,
    ) -> Result<Vec<AuditRecord>, TickError> {
        let users: BTreeSet<String> =
            events.iter().flat_map(|event| event.group_lookups()).map(str::to_owned).collect();
        let users: Vec<String> = users.into_iter().collect();
        let memberships = if users.is_empty() {
            HashMap::new()
        } else {
            self.ports.groups.memberships(&users).await?
        };
        for (user, membership) in &memberships {
            if let domain::Membership::Unreadable(reason) = membership {
                tracing::warn!(
                    user = %user,
                    reason = %reason,
                    "The groups of a user could not be read; the user's events are stored without a tenant."
                );
            }
        }

        let context = RecordContext {
            source: self.ports.source.name(),
            actions: &self.actions,
            tenants: rule,
            memberships: &memberships,
            recorded_at: Utc::now(),
        };
        Ok(events.into_iter().map(|event| build_record(event.clone(), &context)).collect())
    }

    /// Stores the events of `page`, read from somewhere other than the live
    /// walk (a file), as a tick would store them: the same records, tenant
    /// inference and dedupe, and unreadable events set aside.
    ///
    /// The cursor is neither read nor moved: an import is not the walk, and
    /// the next tick resumes where the last one stopped.
    ///
    /// # Errors
    /// [`TickError`] when the group lookups or the store fail; the records
    /// of `page` are then not stored.
    pub async fn import(&self, page: SourcePage) -> Result<TickReport, TickError> {
        let rule = TenantRule {
            admin_groups: self.settings.admin_groups.clone(),
            tenants: self.ports.tenants.tenants().await?,
        };
        let records = self.records(page.events.iter().collect(), &rule).await?;
        let rejected = page.rejected.clone();
        let mut report = TickReport { fetched: page.len as u64, ..TickReport::default() };
        self.commit(&Prepared { page, records, rejected }, &mut report).await?;
        Ok(report)
    }

    /// Stores a prepared page's records and sets its unreadable events aside.
    async fn commit(&self, prepared: &Prepared, report: &mut TickReport) -> Result<(), TickError> {
        if !prepared.records.is_empty() {
            let outcomes = self.ports.store.store_batch(&prepared.records).await?;
            for (record, outcome) in prepared.records.iter().zip(outcomes) {
                tracing::debug!(
                    external_id = record.external_id.as_deref(),
                    at = %record.at,
                    verb = record.verb.as_str(),
                    tenant = record.tenant_slug.as_ref().map(|slug| slug.as_str()),
                    outcome = ?outcome,
                    "Event ingested."
                );
                match outcome {
                    StoreOutcome::Stored => report.stored += 1,
                    StoreOutcome::Duplicate => report.duplicates += 1,
                    StoreOutcome::ChangedAtSource => {
                        tracing::warn!(
                            external_id = record.external_id.as_deref(),
                            at = %record.at,
                            action = %record.action,
                            "The source changed an event already stored; the original is kept \
                             and the changed version recorded beside it."
                        );
                        report.changed_at_source += 1;
                    }
                    StoreOutcome::SetAside => {
                        tracing::warn!(
                            external_id = record.external_id.as_deref(),
                            at = %record.at,
                            action = %record.action,
                            "Event set aside as unstorable."
                        );
                        report.set_aside += 1;
                    }
                }
            }
        }
        if !prepared.rejected.is_empty() {
            for item in &prepared.rejected {
                tracing::warn!(
                    external_id = item.external_id.as_deref(),
                    reason = %item.reason,
                    "Event set aside as unreadable."
                );
            }
            self.ports.store.set_aside(self.ports.source.name(), &prepared.rejected).await?;
            report.set_aside += prepared.rejected.len() as u64;
        }
        Ok(())
    }

    /// Returns the walk's next step after `page`, read at `page_size`.
    fn observe(&self, cursor: &Cursor, page: &SourcePage, page_size: u32) -> domain::WalkStep {
        let keys: Vec<(DateTime<Utc>, &str)> =
            page.events.iter().map(|event| (event.at, event.external_id.as_str())).collect();
        let observation = PageObservation {
            page: cursor.next_page(),
            count: page.count,
            has_next: page.has_next,
            len: page.len,
            keys: &keys,
        };
        let policy = WalkPolicy {
            overlap: self.settings.overlap,
            page_size,
            now: Utc::now(),
            // An event dated within the overlap ahead of our clock may become
            // the top: the next floor then still lies at or before now, so
            // events written afterwards by a correct clock are above it.
            future_tolerance: self.settings.overlap,
        };
        cursor.observe(&observation, &policy)
    }
}

/// A page read and turned into records, not yet stored.
struct Prepared {
    page: SourcePage,
    records: Vec<AuditRecord>,
    rejected: Vec<RejectedEvent>,
}
