//! The project's own tasks, run as `cargo xtask <task>`.
//!
//! `ci` runs every check CI runs, in the order a developer wants to see them
//! fail: formatting, lints, tests, docs. Each step runs cargo through the
//! `CARGO` that invoked us, from the workspace root.
//!
//! `bench` builds and runs the ingest benchmark (`tests/bench/`) in release
//! mode. It is not part of `ci`, which only compiles and lints it: a run
//! takes minutes and its figures mean something only on a quiet machine.

mod tidy;

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let task = env::args().nth(1);
    match task.as_deref() {
        Some("ci") => ci(),
        Some("tidy") => tidy::check(&root()),
        Some("bench") => bench(env::args().skip(2).collect()),
        _ => {
            bail!(
                "usage: cargo xtask <task>\n\ntasks:\n  ci     runs every check CI runs\n  tidy   checks file headers and markers\n  bench  [--events N[,N...]] [--rounds R] measures ingest throughput and memory (default N = 100000)"
            )
        }
    }
}

/// Runs formatting, lints, tidy, tests and docs, stopping at the first
/// failure.
fn ci() -> anyhow::Result<()> {
    let root = root();
    cargo(&root, &["fmt", "--all", "--check"], &[])?;
    cargo(
        &root,
        &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"],
        &[],
    )?;
    tidy::check(&root)?;
    cargo(&root, &["test", "--workspace", "--locked"], &[])?;
    cargo(
        &root,
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    step("all checks passed");
    Ok(())
}

/// Runs the ingest benchmark in release mode, passing `args` through.
fn bench(args: Vec<String>) -> anyhow::Result<()> {
    let mut command = vec!["bench", "--package", "tests", "--bench", "ingest", "--locked", "--"];
    command.extend(args.iter().map(String::as_str));
    cargo(&root(), &command, &[])
}

fn cargo(root: &Path, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<()> {
    step(&format!("cargo {}", args.join(" ")));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root)
        .status()
        .with_context(|| format!("starting `cargo {}`", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

#[allow(clippy::print_stderr, reason = "xtask reports its steps on standard error")]
fn step(message: &str) {
    eprintln!("xtask: {message}");
}

/// The workspace root: the parent of this crate's manifest directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}
