//! `audit-ingest import FILE…`: loads events from files through the live
//! path's mapping, tenant inference and dedupe.
//!
//! Each file holds one Authentik API page or a JSON array of events. A file
//! that cannot be read, or holds neither shape, is reported and skipped;
//! the other files are still imported. An unreadable event is set aside as
//! the live path does. The cursor is never touched: importing an archive
//! neither skips nor repeats anything the live walk will read.
//!
//! Tenant inference looks users' groups up in Authentik, so an import needs
//! `AUTHENTIK_URL` and a token like the daemon's. Storing without the
//! lookups would file events under no tenant for good, because the store
//! keeps the first copy of each event.

use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ports::SourcePage;
use serde::Serialize;

use crate::ingest::{Ingest, TickReport};
use crate::output::{error_line, terminal_safe};
use crate::wiring;

/// Events stored per batch: one store transaction and one progress step.
const BATCH: usize = 200;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// Files whose events were all handled.
    pub files: u64,
    /// Files skipped because they could not be read.
    pub failed_files: u64,
    /// Events read from the files, readable or not.
    pub read: u64,
    /// Events stored for the first time.
    pub stored: u64,
    /// Events that were already stored.
    pub duplicates: u64,
    /// Events set aside as unreadable.
    pub set_aside: u64,
    /// Stored events the files hold in a changed version; the stored
    /// originals were kept and the changed versions recorded beside them.
    pub changed_at_source: u64,
}

/// Imports `files` in order and returns what was done.
///
/// Progress goes to standard error: a bar on a terminal, a line per batch
/// otherwise.
///
/// # Errors
/// When the store or the group lookups fail; what was stored before stays
/// stored, and importing the same files again is harmless.
pub async fn run(ingest: &Ingest, files: &[PathBuf]) -> anyhow::Result<ImportSummary> {
    let mut summary = ImportSummary::default();
    for path in files {
        let shown = terminal_safe(&path.display().to_string()).into_owned();
        let page = match read(path) {
            Ok(page) => page,
            Err(error) => {
                error_line(&format!("error: {shown}: {error:#}; skipped"));
                summary.failed_files += 1;
                continue;
            }
        };
        let report = import_file(ingest, &shown, page).await?;
        summary.files += 1;
        summary.read += report.fetched;
        summary.stored += report.stored;
        summary.duplicates += report.duplicates;
        summary.set_aside += report.set_aside;
        summary.changed_at_source += report.changed_at_source;
    }
    Ok(summary)
}

/// Prints `summary` on standard output.
///
/// # Errors
/// When standard output cannot be written.
pub fn print(summary: &ImportSummary, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(summary)?)?;
        return Ok(());
    }
    writeln!(out, "files       {} ({} skipped)", summary.files, summary.failed_files)?;
    writeln!(out, "read        {}", summary.read)?;
    writeln!(out, "stored      {}", summary.stored)?;
    writeln!(out, "duplicates  {}", summary.duplicates)?;
    writeln!(out, "set aside   {}", summary.set_aside)?;
    writeln!(out, "changed     {}", summary.changed_at_source)?;
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<SourcePage> {
    let bytes = std::fs::read(path).context("cannot read the file")?;
    wiring::read_authentik_export(&bytes).map_err(anyhow::Error::msg)
}

/// Imports one file's events in batches, showing progress.
async fn import_file(ingest: &Ingest, shown: &str, page: SourcePage) -> anyhow::Result<TickReport> {
    let total = page.len as u64;
    let mut progress = Progress::new(shown, total);
    let mut report = TickReport::default();
    // Unreadable events go with the first batch; every batch counts the
    // events it holds as read.
    let mut rejected = page.rejected;
    let mut events = page.events.into_iter().peekable();
    while events.peek().is_some() || !rejected.is_empty() {
        let batch: Vec<_> = events.by_ref().take(BATCH).collect();
        let len = batch.len() + rejected.len();
        let chunk = SourcePage {
            count: total,
            has_next: false,
            len,
            events: batch,
            rejected: std::mem::take(&mut rejected),
        };
        let done = ingest.import(chunk).await.with_context(|| format!("importing {shown}"))?;
        report.fetched += done.fetched;
        report.stored += done.stored;
        report.duplicates += done.duplicates;
        report.set_aside += done.set_aside;
        report.changed_at_source += done.changed_at_source;
        progress.advance(len as u64);
    }
    progress.finish(&report);
    Ok(report)
}

/// A file's progress: a bar on a terminal, plain lines otherwise.
enum Progress {
    Bar(ProgressBar),
    Lines { shown: String, total: u64, done: u64 },
}

impl Progress {
    fn new(shown: &str, total: u64) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Lines { shown: shown.to_owned(), total, done: 0 };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} events ({eta})")
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(shown.to_owned());
        Self::Bar(bar)
    }

    fn advance(&mut self, events: u64) {
        match self {
            Self::Bar(bar) => bar.inc(events),
            Self::Lines { shown, total, done } => {
                *done += events;
                error_line(&format!("{shown}: {done}/{total} events"));
            }
        }
    }

    fn finish(&self, report: &TickReport) {
        let line = format!(
            "stored {}, duplicates {}, set aside {}",
            report.stored, report.duplicates, report.set_aside
        );
        match self {
            Self::Bar(bar) => bar.finish_with_message(format!("{} done: {line}", bar.message())),
            Self::Lines { shown, .. } => error_line(&format!("{shown}: done: {line}")),
        }
    }
}
