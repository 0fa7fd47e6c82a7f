//! What the commands print, for people and for programs.
//!
//! Everything printed for people passes through [`terminal_safe`], because
//! event fields are untrusted text: a control character in a username must
//! not be able to move the cursor or rewrite what the operator sees.

use std::borrow::Cow;
use std::io::Write;

use domain::{AuditRecord, Identity, Subject};
use ports::SourceStatus;

use crate::ingest::TickReport;

/// Writes one line to standard error, escaped for the terminal, ignoring a
/// closed stream.
pub fn error_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", terminal_safe(line));
}

/// Prints the summary of `once`.
///
/// # Errors
/// When standard output cannot be written.
pub fn summary(report: &TickReport, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
        return Ok(());
    }
    let cursor = match (&report.cursor.last_event_at, &report.cursor.last_event_id) {
        (Some(at), Some(id)) => format!("{} ({})", at.to_rfc3339(), terminal_safe(id)),
        _ => "none".to_owned(),
    };
    writeln!(out, "fetched     {}", report.fetched)?;
    writeln!(out, "stored      {}", report.stored)?;
    writeln!(out, "duplicates  {}", report.duplicates)?;
    writeln!(out, "set aside   {}", report.set_aside)?;
    writeln!(
        out,
        "changed     {}  (stored events the source has changed since)",
        report.changed_at_source
    )?;
    writeln!(out, "requests    {}", report.requests)?;
    let state = if report.interrupted {
        "interrupted; the next run resumes"
    } else if report.caught_up {
        "caught up"
    } else {
        "not caught up"
    };
    writeln!(out, "state       {state}")?;
    writeln!(out, "cursor      {cursor}")?;
    Ok(())
}

/// Prints `status`.
///
/// # Errors
/// When standard output cannot be written.
pub fn status(sources: &[SourceStatus], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(sources)?)?;
        return Ok(());
    }
    if sources.is_empty() {
        writeln!(out, "no sources yet; run `audit-ingest once` first")?;
    }
    for status in sources {
        let cursor = status.cursor.as_ref();
        let last_at = cursor.and_then(|cursor| cursor.last_event_at).map(|at| at.to_rfc3339());
        let last_id = cursor.and_then(|cursor| cursor.last_event_id.as_deref());
        let walking = cursor.and_then(|cursor| cursor.walk.as_ref()).map(|walk| walk.next_page);
        writeln!(out, "{}", terminal_safe(status.source.as_str()))?;
        writeln!(out, "  last event at  {}", last_at.as_deref().unwrap_or("none"))?;
        writeln!(out, "  last event id  {}", terminal_safe(last_id.unwrap_or("none")))?;
        if let Some(page) = walking {
            writeln!(out, "  walk under way, next page {page}")?;
        }
        writeln!(out, "  stored         {}", status.stored)?;
        writeln!(out, "  set aside      {}", status.set_aside)?;
        writeln!(
            out,
            "  changed        {}  (at the source, after they were stored)",
            status.changed_at_source
        )?;
    }
    Ok(())
}

/// Prints the timeline, as a table or as JSON lines.
///
/// # Errors
/// When standard output cannot be written.
pub fn timeline(records: &[AuditRecord], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for record in records {
            writeln!(out, "{}", serde_json::to_string(record)?)?;
        }
        return Ok(());
    }
    let header = ["AT", "VERB", "ACTOR", "TENANT", "IP"];
    writeln!(
        out,
        "{:<27}  {:<34}  {:<28}  {:<12}  {}",
        header[0], header[1], header[2], header[3], header[4]
    )?;
    for record in records {
        let actor = record.actor.as_ref().map(identity_label).unwrap_or_default();
        let actor = match (&record.on_behalf_of, &record.subject) {
            (Some(acted_as), _) => format!("{actor} as {}", identity_label(acted_as)),
            (None, Some(Subject::User(user))) if actor.is_empty() => {
                format!("({})", identity_label(user))
            }
            _ => actor,
        };
        writeln!(
            out,
            "{:<27}  {:<34}  {:<28}  {:<12}  {}",
            record.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            terminal_safe(record.verb.as_str()),
            terminal_safe(&actor),
            record.tenant_slug.as_ref().map_or("-", |slug| slug.as_str()),
            terminal_safe(record.ip.as_deref().unwrap_or("-")),
        )?;
    }
    Ok(())
}

fn identity_label(identity: &Identity) -> String {
    identity
        .username
        .clone()
        .or_else(|| identity.email.clone())
        .or_else(|| identity.id.as_ref().map(|id| format!("#{id}")))
        .unwrap_or_default()
}

/// Returns `text` with control and bidirectional formatting characters
/// escaped, safe to print on a terminal.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            safe.extend(c.escape_unicode());
        } else {
            safe.push(c);
        }
    }
    Cow::Owned(safe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_safe_escapes_control_and_bidi_characters() {
        assert_eq!(terminal_safe("ana.example"), "ana.example");
        assert_eq!(terminal_safe("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(terminal_safe("x\ny"), "x\\u{a}y");
        assert_eq!(terminal_safe("evil\u{202e}txt"), "evil\\u{202e}txt");
        assert_eq!(terminal_safe("日本"), "日本");
    }
}
