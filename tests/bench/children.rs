//! The benchmark's child processes: the mock, the two baselines, the
//! `audit-ingest once` command and the steady-state tick.
//!
//! Each measured child prints one JSON object on its last line of standard
//! output; the parent reads its figures from there.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters_authentik::{AuthentikClient, AuthentikConfig};
use adapters_mongo::{CollectionNames, MongoStore};
use adapters_sqlite::SqliteStore;
use app::config::RawSettings;
use app::ingest::TickReport;
use chrono::{DateTime, Utc};
use clap::Parser as _;
use domain::{
    ActionMap, AdminGroups, RecordContext, SourceName, TenantRule, TenantSet, TenantSlug,
    build_record,
};
use ports::{AuditStore, EventSource, GroupDirectory, PageRequest, StoreOutcome};
use serde_json::{Value, json};
use tests::synthetic::{COUNTERS_PATH, SyntheticAuthentik};
use tokio_util::sync::CancellationToken;

use crate::{TENANTS, TOKEN};

/// The page size every workload asks for: the default and Authentik's cap.
const PAGE_SIZE: u32 = 100;

/// Runs the child `mode` with `args`.
pub(crate) fn run(mode: &str, args: &[String]) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("starting the runtime: {error}"))?;
    let arg = |index: usize| -> Result<&str, String> {
        args.get(index).map(String::as_str).ok_or_else(|| format!("`{mode}` needs more arguments"))
    };
    let figures = match mode {
        "serve" => return runtime.block_on(serve(arg(0)?, arg(1)?, arg(2)?)),
        "once" => return once(&runtime, args),
        "fetch" => runtime.block_on(fetch(arg(0)?))?,
        "store" => runtime.block_on(store(arg(0)?, arg(1)?))?,
        "tick" => runtime.block_on(tick(arg(0)?, arg(1)?))?,
        "seed" => runtime.block_on(seed(arg(0)?))?,
        "drop" => runtime.block_on(drop_database(arg(0)?))?,
        other => return Err(format!("unknown child `{other}`")),
    };
    let _ = writeln!(std::io::stdout().lock(), "{figures}");
    Ok(())
}

/// Serves the synthetic history until standard input closes.
async fn serve(events: &str, newest: &str, token: &str) -> Result<(), String> {
    let events = events.parse().map_err(|_| format!("`{events}` is not a count"))?;
    let newest = newest
        .parse()
        .ok()
        .and_then(|seconds| DateTime::<Utc>::from_timestamp(seconds, 0))
        .ok_or_else(|| format!("`{newest}` is not a Unix time"))?;
    let mock = SyntheticAuthentik::start(events, newest, token).await;
    let _ = writeln!(std::io::stdout().lock(), "{}", mock.uri());
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()))
        .await
        .map_err(|error| format!("waiting for standard input: {error}"))?
        .map_err(|error| format!("reading standard input: {error}"))?;
    Ok(())
}

/// Runs `audit-ingest once` exactly as the binary does.
fn once(runtime: &tokio::runtime::Runtime, args: &[String]) -> Result<(), String> {
    let cli = app::cli::Cli::try_parse_from(
        ["audit-ingest", "once"].into_iter().map(str::to_owned).chain(args.iter().cloned()),
    )
    .map_err(|error| error.to_string())?;
    app::telemetry::init().map_err(|error| error.to_string())?;
    let code = runtime.block_on(app::cli::main(cli));
    if code != ExitCode::SUCCESS {
        return Err("`audit-ingest once` failed".into());
    }
    Ok(())
}

/// Reads every page through the Authentik adapter and stores nothing.
async fn fetch(url: &str) -> Result<Value, String> {
    let client = client(url)?;
    let started = Instant::now();
    let mut events = 0;
    let mut page = 1;
    loop {
        let read = client
            .fetch_page(PageRequest { page, page_size: PAGE_SIZE })
            .await
            .map_err(|error| error.to_string())?;
        events += read.len;
        if !read.has_next {
            break;
        }
        page += 1;
    }
    Ok(json!({ "events": events, "seconds": started.elapsed().as_secs_f64() }))
}

/// Prepares each page's records as the tick does, untimed, and times only
/// storing them.
async fn store(url: &str, target: &str) -> Result<Value, String> {
    let client = client(url)?;
    let store = open_seeded(target).await?;
    let tenants = tenants();
    let rule = TenantRule { admin_groups: AdminGroups::default(), tenants };
    let actions = ActionMap::authentik();
    let source = SourceName::new("authentik");

    let mut storing = Duration::ZERO;
    let mut stored = 0;
    let mut page = 1;
    loop {
        let read = client
            .fetch_page(PageRequest { page, page_size: PAGE_SIZE })
            .await
            .map_err(|error| error.to_string())?;
        let users: BTreeSet<String> =
            read.events.iter().flat_map(|event| event.group_lookups()).map(str::to_owned).collect();
        let users: Vec<String> = users.into_iter().collect();
        let memberships = if users.is_empty() {
            HashMap::new()
        } else {
            client.memberships(&users).await.map_err(|error| error.to_string())?
        };
        let context = RecordContext {
            source: &source,
            actions: &actions,
            tenants: &rule,
            memberships: &memberships,
            recorded_at: Utc::now(),
        };
        let records: Vec<_> =
            read.events.into_iter().map(|event| build_record(event, &context)).collect();

        let started = Instant::now();
        let outcomes = store.store_batch(&records).await.map_err(|error| error.to_string())?;
        storing += started.elapsed();
        stored += outcomes.iter().filter(|outcome| **outcome == StoreOutcome::Stored).count();
        if !read.has_next {
            break;
        }
        page += 1;
    }
    Ok(json!({ "stored": stored, "seconds": storing.as_secs_f64() }))
}

/// The tenants the captured users' groups name.
fn tenants() -> TenantSet {
    TenantSet::new(
        TENANTS
            .split(',')
            .map(|slug| TenantSlug::parse(slug).expect("the benchmark's tenants are valid slugs")),
    )
}

/// Opens the store `target` names (`sqlite://PATH` or a MongoDB connection
/// string naming a database) with the benchmark's tenants written to it.
async fn open_seeded(target: &str) -> Result<Arc<dyn AuditStore>, String> {
    if let Some(path) = target.strip_prefix("sqlite://") {
        let store = SqliteStore::open(Path::new(path)).map_err(|error| error.to_string())?;
        store.set_tenants(&tenants()).await.map_err(|error| error.to_string())?;
        return Ok(Arc::new(store));
    }
    let store = MongoStore::open(target, CollectionNames::default())
        .await
        .map_err(|error| format!("opening MongoDB: {error}"))?;
    // The tenants collection is the platform's; the benchmark plays the
    // platform and fills it, as `TENANTS` does for SQLite.
    let documents: Vec<mongodb::bson::Document> =
        tenants().iter().map(|slug| mongodb::bson::doc! { "slug": slug.as_str() }).collect();
    store
        .database()
        .collection::<mongodb::bson::Document>(&store.names().tenants)
        .insert_many(documents)
        .await
        .map_err(|error| format!("writing the tenants to MongoDB: {error}"))?;
    Ok(Arc::new(store))
}

/// Writes the benchmark's tenants into the store `target` names, for an
/// `audit-ingest once` that reads them from there.
async fn seed(target: &str) -> Result<Value, String> {
    open_seeded(target).await?;
    Ok(json!({ "seeded": true }))
}

/// Drops the MongoDB database `target` names.
async fn drop_database(target: &str) -> Result<Value, String> {
    let store = MongoStore::open(target, CollectionNames::default())
        .await
        .map_err(|error| format!("opening MongoDB: {error}"))?;
    store.database().drop().await.map_err(|error| format!("dropping the database: {error}"))?;
    Ok(json!({ "dropped": true }))
}

/// Runs two ticks over the caught-up store `path` with the daemon's own
/// wiring, and measures the second: a daemon's tick when nothing is new.
async fn tick(url: &str, target: &str) -> Result<Value, String> {
    let raw = RawSettings {
        authentik_url: Some(url.to_owned()),
        authentik_token: Some(TOKEN.to_owned()),
        audit_store: Some(target.to_owned()),
        ..RawSettings::default()
    };
    let settings = raw.settings().map_err(|error| error.to_string())?;
    let authentik = raw.authentik().map_err(|error| error.to_string())?;
    let wiring = app::wiring::Wiring::open(&settings, &authentik)
        .await
        .map_err(|error| format!("{error:#}"))?;
    let shutdown = CancellationToken::new();
    let tick = || async { wiring.ingest.tick(&shutdown).await.map_err(|error| error.to_string()) };

    // The first tick of a process fills the group cache and the
    // connection pool; a daemon pays that once.
    tick().await?;
    let before = counters(url).await?;
    let cpu = crate::measure::cpu_time();
    let report: TickReport = tick().await?;
    let cpu = crate::measure::cpu_time() - cpu;
    let after = counters(url).await?;

    let events_requests = after.0 - before.0;
    let user_requests = after.1 - before.1;
    Ok(json!({
        "stored": report.stored,
        "fetched": report.fetched,
        "caughtUp": report.caught_up,
        "eventsRequests": events_requests,
        "userRequests": user_requests,
        "requests": events_requests + user_requests,
        "cpuMs": cpu.as_secs_f64() * 1_000.0,
    }))
}

/// Reads the mock's request counters: event-list and user-detail requests.
async fn counters(url: &str) -> Result<(u64, u64), String> {
    let answer: Value = reqwest::get(format!("{url}{COUNTERS_PATH}"))
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| format!("reading the mock's counters: {error}"))?
        .json()
        .await
        .map_err(|error| format!("reading the mock's counters: {error}"))?;
    let count = |key: &str| answer[key].as_u64().ok_or_else(|| format!("no `{key}` counter"));
    Ok((count("events")?, count("users")?))
}

fn client(url: &str) -> Result<Arc<AuthentikClient>, String> {
    let url = url::Url::parse(url).map_err(|error| error.to_string())?;
    let config = AuthentikConfig::new(url, secrecy::SecretString::from(TOKEN));
    AuthentikClient::new(config).map(Arc::new).map_err(|error| error.to_string())
}
