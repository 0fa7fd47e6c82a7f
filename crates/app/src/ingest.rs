//! The ingest loop's unit of work: one tick of one source.
//!
//! A tick reads the source's cursor, walks pages newest first as the cursor
//! rules in [`domain::cursor`] direct, stores each page's wanted events in one
//! batch, and saves the cursor after every stored page. Because the cursor
//! is saved only after its page is stored, a crash or a failed write at any
//! point leaves a cursor that reads the page again; the store drops what was
//! already there.
//!
//! The next page is read while the current one is stored: the walk's next
//! step depends only on the page just read, never on the store, so reading
//! ahead asks for exactly the page a one-at-a-time walk would, only sooner.
//! At most two pages are in memory, the one being stored and the one being
//! read.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
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
        // The next page, read while the page before it was being stored.
        let mut prefetch: Option<Prefetch<'_>> = None;

        for requested in 1..=self.settings.max_pages {
            // A walk under way keeps the page size its page numbers were
            // counted in, whatever the setting says after a restart.
            let page_size = self.page_size(&cursor);
            let pending = match prefetch.take() {
                Some(pending) => pending,
                None => {
                    report.requests += 1;
                    self.prefetch(cursor.clone(), page_size, &rule)
                }
            };
            let prepared = tokio::select! {
                prepared = pending.finish() => prepared,
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
            report.fetched += prepared.len as u64;

            // The walk's next step depends only on the page just read, so
            // the next page is known before this one is stored, and is read
            // while it is. At most two pages are in memory at once.
            let step = &prepared.step;
            let more = !step.is_done() && requested < self.settings.max_pages;
            let mut next = (more && !shutdown.is_cancelled()).then(|| {
                report.requests += 1;
                let next_cursor = step.cursor().clone();
                self.prefetch(next_cursor.clone(), self.page_size(&next_cursor), &rule)
            });

            // From here the page is stored and its cursor saved whatever
            // happens to `shutdown`: a batch in hand is never abandoned.
            let store = async {
                self.commit(&prepared.records, &prepared.rejected, &mut report).await?;
                self.ports.cursors.save(&source, step.cursor()).await?;
                Ok(())
            };
            while_reading(store, next.as_mut()).await?;
            cursor = step.cursor().clone();
            if step.is_done() {
                report.caught_up = true;
                break;
            }
            if shutdown.is_cancelled() {
                report.interrupted = true;
                break;
            }
            prefetch = next;
        }
        report.cursor = cursor;
        Ok(report)
    }

    /// The page size of the walk `cursor` is in, or the setting's for a new
    /// walk.
    fn page_size(&self, cursor: &Cursor) -> u32 {
        cursor.walk.as_ref().map_or(self.settings.page_size, |walk| walk.page_size)
    }

    /// Starts reading the page `cursor` names next; the read makes progress
    /// only while it is polled.
    fn prefetch<'a>(
        &'a self,
        cursor: Cursor,
        page_size: u32,
        rule: &'a TenantRule,
    ) -> Prefetch<'a> {
        let request = PageRequest { page: cursor.next_page(), page_size };
        Prefetch {
            read: Box::pin(async move { self.prepare(&cursor, request, rule).await }),
            done: None,
        }
    }

    /// Reads one page, takes the walk's step after it, and builds the
    /// records of its wanted events, with the group lookups tenant inference
    /// needs. Nothing is written, so this step may be abandoned at any point.
    async fn prepare(
        &self,
        cursor: &Cursor,
        request: PageRequest,
        rule: &TenantRule,
    ) -> Result<Prepared, TickError> {
        let mut page = self.ports.source.fetch_page(request).await?;
        let step = self.observe(cursor, &page, request.page_size);
        // The page's events become the records: nothing below reads the page
        // again, so they are moved rather than copied.
        let overlap = self.settings.overlap;
        let wanted: Vec<SourceEvent> = std::mem::take(&mut page.events)
            .into_iter()
            .filter(|event| cursor.wants(event.at, overlap))
            .collect();
        let rejected: Vec<RejectedEvent> = std::mem::take(&mut page.rejected)
            .into_iter()
            .filter(|rejected| rejected.at.is_none_or(|at| cursor.wants(at, overlap)))
            .collect();

        let records = self.records(wanted, rule).await?;
        Ok(Prepared { step, len: page.len, records, rejected })
    }

    /// Builds the records of `events`, with the group lookups tenant
    /// inference needs.
    async fn records(
        &self,
        events: Vec<SourceEvent>,
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
        Ok(events.into_iter().map(|event| build_record(event, &context)).collect())
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
        let mut report = TickReport { fetched: page.len as u64, ..TickReport::default() };
        let records = self.records(page.events, &rule).await?;
        self.commit(&records, &page.rejected, &mut report).await?;
        Ok(report)
    }

    /// Stores a prepared page's records and sets its unreadable events aside.
    async fn commit(
        &self,
        records: &[AuditRecord],
        rejected: &[RejectedEvent],
        report: &mut TickReport,
    ) -> Result<(), TickError> {
        if !records.is_empty() {
            let outcomes = self.ports.store.store_batch(records).await?;
            for (record, outcome) in records.iter().zip(outcomes) {
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
        if !rejected.is_empty() {
            let added = self.ports.store.set_aside(self.ports.source.name(), rejected).await?;
            // An unreadable event read again on a later walk is already
            // kept: it is neither counted nor reported again.
            for item in rejected {
                if added > 0 {
                    tracing::warn!(
                        external_id = item.external_id.as_deref(),
                        reason = %item.reason,
                        "Event set aside as unreadable."
                    );
                } else {
                    tracing::debug!(
                        external_id = item.external_id.as_deref(),
                        "Unreadable event read again; already set aside."
                    );
                }
            }
            report.set_aside += added;
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
            // No event dated after our clock becomes the top: one from a
            // fast clock would lift the next floor by its skew and eat the
            // overlap that late events need. It is stored all the same, and
            // read again as a duplicate until its time has come.
            future_tolerance: TimeDelta::zero(),
        };
        cursor.observe(&observation, &policy)
    }
}

/// Runs `work` to its end and, while it runs, drives `next`'s read, which
/// it leaves unfinished when `work` ends first.
async fn while_reading(
    work: impl Future<Output = Result<(), TickError>>,
    next: Option<&mut Prefetch<'_>>,
) -> Result<(), TickError> {
    let Some(next) = next else { return work.await };
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            done = &mut work => return done,
            read = &mut next.read, if next.done.is_none() => next.done = Some(read),
        }
    }
}

/// A page being read ahead of the one being stored.
struct Prefetch<'a> {
    /// The read, which makes progress only while it is polled.
    read: Pin<Box<dyn Future<Output = Result<Prepared, TickError>> + Send + 'a>>,
    /// The read's result, once it finished while the store was busy.
    done: Option<Result<Prepared, TickError>>,
}

impl Prefetch<'_> {
    /// Returns the read's result, waiting for it when it is still under way.
    async fn finish(mut self) -> Result<Prepared, TickError> {
        match self.done.take() {
            Some(done) => done,
            None => self.read.await,
        }
    }
}

/// A page read and turned into records, not yet stored.
struct Prepared {
    /// The walk's step after the page.
    step: domain::WalkStep,
    /// The number of items on the page, readable or not.
    len: usize,
    records: Vec<AuditRecord>,
    rejected: Vec<RejectedEvent>,
}
