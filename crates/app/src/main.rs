//! The `audit-ingest` binary.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = app::cli::Cli::parse();
    if let Err(error) = app::telemetry::init() {
        app::output::error_line(&format!("error: {error}"));
        return ExitCode::from(2);
    }
    app::cli::main(cli).await
}
