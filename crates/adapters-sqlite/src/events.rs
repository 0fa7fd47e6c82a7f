//! The audit records: storing batches and reading the timeline back.

use async_trait::async_trait;
use domain::{AuditRecord, SourceName, TenantSlug, Verb};
use ports::{
    AuditReader, AuditStore, RejectedEvent, SourceStatus, StoreError, StoreOutcome, TimelineQuery,
};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Failure;
use crate::{SqliteStore, parse_time, set_aside, status, time_text};

/// The columns a record is read back from, in [`decode`]'s order.
const COLUMNS: &str = "source, external_id, at, recorded_at, verb, action, actor, on_behalf_of, \
                       subject, tenant_slug, ip, user_agent, app, context";

/// Inserts one record unless its `(source, external_id)` is already stored.
const INSERT: &str = "
INSERT INTO audit_events (
    source, external_id, at, recorded_at, verb, action, actor, actor_username, actor_email,
    on_behalf_of, subject, tenant_slug, ip, user_agent, app, context, fingerprint
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
ON CONFLICT (source, external_id) WHERE external_id IS NOT NULL DO NOTHING";

/// Reads the fingerprint of the stored record a duplicate collided with.
const STORED_FINGERPRINT: &str =
    "SELECT fingerprint FROM audit_events WHERE source = ?1 AND external_id = ?2";

/// Gives a record stored before fingerprints were kept its fingerprint.
const SET_FINGERPRINT: &str = "UPDATE audit_events SET fingerprint = ?3 \
                               WHERE source = ?1 AND external_id = ?2 AND fingerprint IS NULL";

/// Records a changed version of a stored record, once per version.
const RECORD_CHANGE: &str = "
INSERT INTO source_changes (source, external_id, fingerprint, seen_at, record)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (source, external_id, fingerprint) DO NOTHING";

/// One record as the row that stores it.
#[derive(Debug)]
struct EventRow {
    source: String,
    external_id: Option<String>,
    at: String,
    recorded_at: String,
    verb: String,
    action: String,
    actor: Option<String>,
    actor_username: Option<String>,
    actor_email: Option<String>,
    on_behalf_of: Option<String>,
    subject: Option<String>,
    tenant_slug: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    app: Option<String>,
    context: String,
    fingerprint: String,
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn store_batch(&self, records: &[AuditRecord]) -> Result<Vec<StoreOutcome>, StoreError> {
        let operation = format!("storing a batch of {} events", records.len());
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let rows = records
            .iter()
            .map(encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|failure| failure.into_store_error(&operation))?;
        self.run(operation, move |connection| insert_batch(connection, &rows)).await
    }

    async fn set_aside(
        &self,
        source: &SourceName,
        rejected: &[RejectedEvent],
    ) -> Result<u64, StoreError> {
        let operation = format!("setting {} events of `{source}` aside", rejected.len());
        if rejected.is_empty() {
            return Ok(0);
        }
        let rows = set_aside::encode(source, rejected)
            .map_err(|failure| failure.into_store_error(&operation))?;
        self.run(operation, move |connection| set_aside::insert(connection, &rows)).await
    }
}

#[async_trait]
impl AuditReader for SqliteStore {
    async fn timeline(&self, query: &TimelineQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let query = query.clone();
        self.run("reading the timeline".to_owned(), move |connection| {
            select_timeline(connection, &query)
        })
        .await
    }

    async fn status(&self) -> Result<Vec<SourceStatus>, StoreError> {
        self.run("reading the status of every source".to_owned(), status::read).await
    }
}

/// Inserts `rows` in one transaction and says which were new.
fn insert_batch(
    connection: &mut Connection,
    rows: &[EventRow],
) -> Result<Vec<StoreOutcome>, Failure> {
    let transaction = connection.transaction()?;
    let mut outcomes = Vec::with_capacity(rows.len());
    {
        let mut insert = transaction.prepare_cached(INSERT)?;
        for row in rows {
            let changes = insert.execute(params![
                row.source,
                row.external_id,
                row.at,
                row.recorded_at,
                row.verb,
                row.action,
                row.actor,
                row.actor_username,
                row.actor_email,
                row.on_behalf_of,
                row.subject,
                row.tenant_slug,
                row.ip,
                row.user_agent,
                row.app,
                row.context,
                row.fingerprint,
            ])?;
            outcomes.push(match (changes, &row.external_id) {
                (0, Some(external_id)) => compare_with_stored(&transaction, row, external_id)?,
                _ => StoreOutcome::Stored,
            });
        }
    }
    transaction.commit()?;
    Ok(outcomes)
}

/// Says whether `row`, a duplicate of a stored record, is what the source
/// said before or a changed version, and records a changed version once.
fn compare_with_stored(
    connection: &Connection,
    row: &EventRow,
    external_id: &str,
) -> Result<StoreOutcome, Failure> {
    let stored: Option<String> = connection
        .prepare_cached(STORED_FINGERPRINT)?
        .query_row(params![row.source, external_id], |found| found.get(0))?;
    match stored {
        Some(stored) if stored != row.fingerprint => {
            let recorded = connection.prepare_cached(RECORD_CHANGE)?.execute(params![
                row.source,
                external_id,
                row.fingerprint,
                row.recorded_at,
                whole_record(row),
            ])?;
            Ok(if recorded == 0 { StoreOutcome::Duplicate } else { StoreOutcome::ChangedAtSource })
        }
        Some(_) => Ok(StoreOutcome::Duplicate),
        None => {
            connection.prepare_cached(SET_FINGERPRINT)?.execute(params![
                row.source,
                external_id,
                row.fingerprint,
            ])?;
            Ok(StoreOutcome::Duplicate)
        }
    }
}

/// Returns the record `row` stores as one JSON object with the schema's
/// field names, for the rare changed version: built from the row only then,
/// rather than for every record on the way in.
fn whole_record(row: &EventRow) -> String {
    let parsed = |text: Option<&str>| {
        text.and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    serde_json::json!({
        "source": row.source,
        "externalId": row.external_id,
        "at": row.at,
        "recordedAt": row.recorded_at,
        "verb": row.verb,
        "action": row.action,
        "actor": parsed(row.actor.as_deref()),
        "onBehalfOf": parsed(row.on_behalf_of.as_deref()),
        "subject": parsed(row.subject.as_deref()),
        "tenantSlug": row.tenant_slug,
        "ip": row.ip,
        "userAgent": row.user_agent,
        "app": row.app,
        "context": parsed(Some(&row.context)),
    })
    .to_string()
}

/// Returns the records matching `query`, newest first.
fn select_timeline(
    connection: &Connection,
    query: &TimelineQuery,
) -> Result<Vec<AuditRecord>, Failure> {
    let mut filter = Filter::default();
    if let Some(tenant) = &query.tenant {
        let tenant = filter.bind(tenant.as_str().to_owned());
        filter.add(format!("tenant_slug = {tenant}"));
    }
    if let Some(verb) = &query.verb {
        filter.add_verb(verb);
    }
    if let Some(actor) = &query.actor {
        let actor = filter.bind(actor.clone());
        filter.add(format!("(actor_username = {actor} OR actor_email = {actor})"));
    }
    if let Some(since) = query.since {
        let since = filter.bind(time_text(since));
        filter.add(format!("at >= {since}"));
    }
    if let Some(until) = query.until {
        let until = filter.bind(time_text(until));
        filter.add(format!("at < {until}"));
    }
    let limit = filter.bind(i64::from(query.limit));

    let filter_sql = if filter.conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filter.conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_events {filter_sql} \
         ORDER BY at DESC, external_id, id LIMIT {limit}"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(filter.values))?;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        records.push(decode(row)?);
    }
    Ok(records)
}

/// The `WHERE` conditions of a timeline query and the values they bind.
#[derive(Debug, Default)]
struct Filter {
    conditions: Vec<String>,
    values: Vec<Value>,
}

impl Filter {
    /// Binds `value` and returns the parameter that names it.
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("?{}", self.values.len())
    }

    fn add(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// Adds the verb rule: the verb itself, or the verb followed by `.` or
    /// `_` and anything.
    ///
    /// SQLite's `LIKE` ignores ASCII case, so the prefix is compared again
    /// exactly; without that, `authentik.LOGIN` would match
    /// `authentik.login_failed` but not `authentik.login`.
    fn add_verb(&mut self, verb: &str) {
        let escaped = escape_like(verb);
        let exact = self.bind(verb.to_owned());
        let dotted = self.bind(format!("{escaped}.%"));
        let underscored = self.bind(format!("{escaped}\\_%"));
        self.add(format!(
            "(verb = {exact} OR ((verb LIKE {dotted} ESCAPE '\\' OR verb LIKE {underscored} \
             ESCAPE '\\') AND substr(verb, 1, length({exact})) = {exact}))"
        ));
    }
}

/// Returns `text` with the `LIKE` wildcards and the escape character escaped
/// by `\`.
pub(crate) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn encode(record: &AuditRecord) -> Result<EventRow, Failure> {
    let actor = record.actor.as_ref();
    Ok(EventRow {
        source: record.source.as_str().to_owned(),
        external_id: record.external_id.clone(),
        at: time_text(record.at),
        recorded_at: time_text(record.recorded_at),
        verb: record.verb.as_str().to_owned(),
        action: record.action.clone(),
        actor: json_text("actor", record.actor.as_ref())?,
        actor_username: actor.and_then(|identity| identity.username.clone()),
        actor_email: actor.and_then(|identity| identity.email.clone()),
        on_behalf_of: json_text("onBehalfOf", record.on_behalf_of.as_ref())?,
        subject: json_text("subject", record.subject.as_ref())?,
        tenant_slug: record.tenant_slug.as_ref().map(|slug| slug.as_str().to_owned()),
        ip: record.ip.clone(),
        user_agent: record.user_agent.clone(),
        app: record.app.clone(),
        context: serde_json::to_string(&record.context)
            .map_err(|error| Failure::encode("context", error))?,
        fingerprint: record.source_fingerprint(),
    })
}

/// Returns `value` as JSON text, or `None` for no value, which is stored as
/// SQL `NULL`.
fn json_text<T: Serialize>(
    field: &'static str,
    value: Option<&T>,
) -> Result<Option<String>, Failure> {
    value.map(serde_json::to_string).transpose().map_err(|error| Failure::encode(field, error))
}

/// Returns the record in `row`, selected with [`COLUMNS`].
fn decode(row: &Row<'_>) -> Result<AuditRecord, Failure> {
    let tenant_slug = row
        .get::<_, Option<String>>(9)?
        .map(|slug| TenantSlug::parse(&slug))
        .transpose()
        .map_err(|error| Failure::corrupt("tenant_slug", error))?;
    let context: String = row.get(13)?;
    Ok(AuditRecord {
        source: SourceName::new(row.get::<_, String>(0)?),
        external_id: row.get(1)?,
        at: parse_time("at", &row.get::<_, String>(2)?)?,
        recorded_at: parse_time("recorded_at", &row.get::<_, String>(3)?)?,
        verb: Verb::new_unchecked(row.get::<_, String>(4)?),
        action: row.get(5)?,
        actor: from_json_column(row, 6, "actor")?,
        on_behalf_of: from_json_column(row, 7, "on_behalf_of")?,
        subject: from_json_column(row, 8, "subject")?,
        tenant_slug,
        ip: row.get(10)?,
        user_agent: row.get(11)?,
        app: row.get(12)?,
        context: serde_json::from_str(&context)
            .map_err(|error| Failure::corrupt("context", error))?,
    })
}

/// Returns the JSON value in column `index`, or `None` for SQL `NULL`.
pub(crate) fn from_json_column<T: DeserializeOwned>(
    row: &Row<'_>,
    index: usize,
    column: &'static str,
) -> Result<Option<T>, Failure> {
    let Some(text) = row.get::<_, Option<String>>(index)? else { return Ok(None) };
    serde_json::from_str(&text).map(Some).map_err(|error| Failure::corrupt(column, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_like_escapes_wildcards_and_the_escape_character() {
        assert_eq!(escape_like("authentik.login"), "authentik.login");
        assert_eq!(escape_like("a_b%c\\d"), "a\\_b\\%c\\\\d");
    }
}
