//! Logging: human-readable lines by default, JSON with `LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

use crate::config::SettingError;

/// Installs the global log subscriber, writing to standard error.
///
/// The level comes from `RUST_LOG` (default `info`); the format from
/// `LOG_FORMAT` (`text` or `json`).
///
/// # Errors
/// [`SettingError`] when `LOG_FORMAT` or `RUST_LOG` cannot be read.
pub fn init() -> Result<(), SettingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|error| SettingError {
                name: "RUST_LOG",
                message: format!("`{directives}` is not a log filter: {error}"),
            })?,
        _ => EnvFilter::new("info"),
    };
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    let json = match format.trim().to_ascii_lowercase().as_str() {
        "" | "text" => false,
        "json" => true,
        _ => {
            return Err(SettingError {
                name: "LOG_FORMAT",
                message: format!("`{format}` is not `text` or `json`"),
            });
        }
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // Tests and embedders may already have a subscriber; keeping theirs is
    // the right outcome, so a failure to install is not an error.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init()
    };
    Ok(())
}
