//! `audit-ingest check`: whether the daemon could run as configured.
//!
//! Each finding is one line an operator can act on. The settings are
//! checked first, by the same code every command uses, so a bad one ends
//! the command with exit code 2 before anything is reached; then Authentik
//! and the store are each asked what they allow. The exit code is 0 only
//! when every finding is good.

use std::io::Write;
use std::process::ExitCode;

use crate::config::{AuthentikSettings, Settings};
use crate::output::terminal_safe;
use crate::wiring;

/// One thing checked and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// True when it is as it should be.
    pub ok: bool,
    /// What was checked: `settings`, `authentik` or `store`.
    pub subject: &'static str,
    /// What was found, and what to do when it is wrong.
    pub detail: String,
}

impl Finding {
    /// Returns a good finding.
    pub fn ok(subject: &'static str, detail: impl Into<String>) -> Self {
        Self { ok: true, subject, detail: detail.into() }
    }

    /// Returns a finding that needs the operator.
    pub fn failed(subject: &'static str, detail: impl Into<String>) -> Self {
        Self { ok: false, subject, detail: detail.into() }
    }
}

/// Checks Authentik and the store, prints a line per finding and returns
/// the exit code: 0 when all is well, 1 otherwise.
///
/// # Errors
/// When standard output cannot be written.
pub async fn run(settings: &Settings, authentik: &AuthentikSettings) -> anyhow::Result<ExitCode> {
    let mut findings = vec![Finding::ok(
        "settings",
        format!(
            "valid: store {}, interval {}s, page size {}, metrics {}",
            settings.store.redacted(),
            settings.ingest.interval.as_secs(),
            settings.ingest.page_size,
            settings.metrics_addr.map_or_else(|| "off".to_owned(), |address| address.to_string()),
        ),
    )];
    findings.extend(wiring::check_authentik(authentik).await);
    findings.extend(wiring::check_store(settings).await);

    let mut out = std::io::stdout().lock();
    for finding in &findings {
        let mark = if finding.ok { "ok  " } else { "FAIL" };
        writeln!(out, "{mark}  {:<9} {}", finding.subject, terminal_safe(&finding.detail))?;
    }
    let failed = findings.iter().filter(|finding| !finding.ok).count();
    if failed == 0 {
        writeln!(out, "all is well")?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(out, "{failed} problem(s) found")?;
        Ok(ExitCode::FAILURE)
    }
}
