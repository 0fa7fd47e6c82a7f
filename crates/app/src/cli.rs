//! The command line: `run`, `once`, `check`, `import`, `status` and
//! `timeline`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use domain::TenantSlug;
use ports::TimelineQuery;
use tokio_util::sync::CancellationToken;

use crate::config::{AuthentikSettings, RawSettings, SettingError, Settings};
use crate::metrics::Metrics;
use crate::monitor::{self, Monitor};
use crate::{check, import, output, scheduler, wiring};

/// Pulls Authentik's event log into the audit timeline.
#[derive(Debug, Parser)]
#[command(name = "audit-ingest", version)]
pub struct Cli {
    #[command(flatten)]
    settings: RawSettings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the daemon: a tick every INGEST_INTERVAL until SIGINT or SIGTERM.
    Run,
    /// Catches up until nothing is new, prints a summary and exits.
    Once {
        /// Prints the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Checks the settings, what the token may read in Authentik, and the
    /// store and its indexes; exits 0 only when all is well.
    Check,
    /// Loads events from files holding Authentik API pages or JSON arrays of
    /// events, as the live path would store them; the cursor is untouched.
    Import {
        /// The files to import, in order.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Prints the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Shows each source's cursor and the number of stored events.
    Status {
        /// Prints JSON.
        #[arg(long)]
        json: bool,
    },
    /// Shows the audit timeline, newest first.
    Timeline(TimelineArgs),
}

#[derive(Debug, clap::Args)]
struct TimelineArgs {
    /// Only this tenant's events.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this verb, or verbs starting with it, such as `authentik.login`.
    #[arg(long)]
    verb: Option<String>,
    /// Only events whose actor has this username or e-mail.
    #[arg(long)]
    actor: Option<String>,
    /// Only events at or after this time: RFC 3339, or a duration ago such as `2h`.
    #[arg(long)]
    since: Option<String>,
    /// Only events before this time: RFC 3339, or a duration ago such as `30m`.
    #[arg(long)]
    until: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Prints JSON lines with the audit record's field names.
    #[arg(long)]
    json: bool,
}

/// Runs the command line and returns the process's exit code.
pub async fn main(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(error) => match error.downcast_ref::<SettingError>() {
            Some(setting) => {
                output::error_line(&format!("error: {setting}"));
                ExitCode::from(2)
            }
            None => {
                output::error_line(&format!("error: {error:#}"));
                ExitCode::FAILURE
            }
        },
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings.settings()?;
    if matches!(cli.command, Command::Run | Command::Once { .. })
        && settings.ingest.overlap < chrono::TimeDelta::minutes(1)
    {
        tracing::warn!(
            overlap_s = settings.ingest.overlap.num_seconds(),
            "INGEST_OVERLAP is under a minute; events that become visible later than that are missed."
        );
    }
    match cli.command {
        Command::Run => {
            if !settings.ingest.enabled {
                // A daemon that exited here would be restarted over and over
                // by Kubernetes or systemd; it idles until told to stop.
                tracing::info!(
                    "Ingest is disabled by AUDIT_INGEST_ENABLED=false; idling until stopped."
                );
                let shutdown = shutdown_on_signal();
                match settings.metrics_addr {
                    Some(address) => {
                        monitor::serve_disabled(monitor::bind(address).await?, shutdown).await?;
                    }
                    None => shutdown.cancelled().await,
                }
                return Ok(ExitCode::SUCCESS);
            }
            let authentik = cli.settings.authentik()?;
            run_daemon(&settings, &authentik).await
        }
        Command::Once { json } => {
            let authentik = cli.settings.authentik()?;
            let wiring = wiring::Wiring::open(&settings, &authentik).await?;
            let shutdown = shutdown_on_signal();
            let held = wiring.lease.try_acquire(&shutdown).await?;
            let report = scheduler::catch_up(&wiring.ingest, &held.token).await;
            held.release().await;
            let report = report.context("ingest failed")?;
            output::summary(&report, json)?;
            if report.interrupted {
                // A script must not take a stopped catch-up for a finished
                // one; the next run resumes where this one stopped.
                output::error_line(
                    "error: interrupted before catching up; what was read is stored, and the next run resumes from there",
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let authentik = cli.settings.authentik()?;
            check::run(&settings, &authentik).await
        }
        Command::Import { files, json } => {
            let authentik = cli.settings.authentik()?;
            let wiring = wiring::Wiring::open(&settings, &authentik).await?;
            let summary = import::run(&wiring.ingest, &files).await?;
            import::print(&summary, json)?;
            Ok(if summary.failed_files == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Status { json } => {
            let stores = wiring::Stores::open_existing(&settings).await?;
            let status = stores.reader.status().await.context("reading the status failed")?;
            output::status(&status, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Timeline(args) => {
            let query = args.query(Utc::now())?;
            let stores = wiring::Stores::open_existing(&settings).await?;
            let records =
                stores.reader.timeline(&query).await.context("reading the timeline failed")?;
            output::timeline(&records, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs the daemon with its metrics and health listener until a signal.
async fn run_daemon(
    settings: &Settings,
    authentik: &AuthentikSettings,
) -> anyhow::Result<ExitCode> {
    let listener = match settings.metrics_addr {
        Some(address) => Some(monitor::bind(address).await?),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let wiring = wiring::Wiring::open_with(settings, authentik, Some(metrics.clone())).await?;
    let shutdown = shutdown_on_signal();
    let source = wiring.ingest.source().clone();
    if let Some(at) = wiring
        .stores
        .cursors
        .load(&source)
        .await
        .context("reading the cursor")?
        .and_then(|cursor| cursor.last_event_at)
    {
        metrics.record_newest(&source, at);
    }
    let observer = Arc::new(Monitor::new(
        metrics,
        source,
        wiring.stores.cursors.clone(),
        settings.ingest.interval,
    ));
    let server = match listener {
        Some(listener) => {
            tracing::info!(
                address = %listener.local_addr().context("reading METRICS_ADDR")?,
                "Serving /metrics, /healthz and /readyz."
            );
            let serving = monitor::serve(listener, observer.clone(), shutdown.clone());
            Some(tokio::spawn(async move {
                // The daemon keeps ingesting without its listener;
                // readiness probes then fail, which is the alarm.
                if let Err(error) = serving.await {
                    tracing::error!(error = %format!("{error:#}"), "Metrics listener failed.");
                }
            }))
        }
        None => None,
    };
    tracing::info!(
        store = %settings.store.redacted(),
        authentik = %authentik.url,
        interval_s = settings.ingest.interval.as_secs(),
        "Ingest started."
    );
    scheduler::run(
        &wiring.ingest,
        settings.ingest.interval,
        &wiring.lease,
        &shutdown,
        observer.as_ref(),
    )
    .await;
    if let Some(server) = server {
        let _ = server.await;
    }
    Ok(ExitCode::SUCCESS)
}

impl TimelineArgs {
    fn query(&self, now: DateTime<Utc>) -> anyhow::Result<TimelineQuery> {
        let tenant =
            self.tenant.as_deref().map(TenantSlug::parse).transpose().context("--tenant")?;
        Ok(TimelineQuery {
            tenant,
            verb: self.verb.clone(),
            actor: self.actor.clone(),
            since: self
                .since
                .as_deref()
                .map(|text| moment(text, now))
                .transpose()
                .context("--since")?,
            until: self
                .until
                .as_deref()
                .map(|text| moment(text, now))
                .transpose()
                .context("--until")?,
            limit: self.limit,
        })
    }
}

/// Reads a time given as RFC 3339 or as a duration before `now`.
fn moment(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.to_utc());
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        anyhow::anyhow!("`{text}` is neither an RFC 3339 time nor a duration such as `2h`")
    })?;
    let ago = chrono::TimeDelta::from_std(ago).context("duration too long")?;
    now.checked_sub_signed(ago).context("duration too long")
}

/// Returns a token cancelled on SIGINT or SIGTERM.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Shutdown requested; finishing the batch in hand.");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moment_reads_rfc3339_and_durations() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z").unwrap().to_utc();

        assert_eq!(
            moment("2026-12-03T10:00:00Z", now).unwrap().to_rfc3339(),
            "2026-12-03T10:00:00+00:00"
        );
        assert_eq!(moment("2h", now).unwrap().to_rfc3339(), "2026-12-03T10:00:00+00:00");
        assert!(moment("yesterday", now).is_err());
    }

    #[test]
    fn configuration_doc_lists_every_setting() {
        use clap::CommandFactory;
        let doc = include_str!("../../../docs/configuration.md");
        let command = Cli::command();
        let mut arguments: Vec<&clap::Arg> = command.get_arguments().collect();
        for subcommand in command.get_subcommands() {
            arguments.extend(subcommand.get_arguments());
        }
        let mut checked = 0;
        for argument in arguments {
            if let Some(name) = argument.get_env() {
                let name = name.to_str().unwrap();
                assert!(doc.contains(&format!("| `{name}` |")), "{name} is not in the doc");
                checked += 1;
            }
            if let Some(flag) = argument.get_long() {
                assert!(doc.contains(&format!("`--{flag}")), "--{flag} is not in the doc");
            }
        }
        assert_eq!(checked, 19, "a setting was added or removed; update this count and the doc");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
