//! The `audit-ingest` binary.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = app::cli::Cli::parse();
    app::telemetry::init();
    app::cli::main(cli).await
}
