//! The ingest benchmark, run by `cargo xtask bench [--events N[,N...]]
//! [--rounds R]`.
//!
//! One run starts the synthetic Authentik of `tests::synthetic` in a process
//! of its own, then measures four workloads, each in a fresh child process
//! of this same executable so that its peak memory is its own:
//!
//! - `once`: the `audit-ingest once` command, unchanged, ingesting every
//!   event from scratch into a new SQLite file;
//! - `fetch`: the same pages read and parsed through the Authentik adapter,
//!   nothing stored;
//! - `store`: the same records, prepared untimed page by page, stored into
//!   another new file; only the store calls are timed;
//! - `tick`: a steady-state tick of a daemon over the caught-up file: one
//!   tick to warm it up, then one measured for requests and CPU time.
//!
//! Peak memory is the child's `ru_maxrss` from `wait4`; CPU time is
//! `getrusage(RUSAGE_SELF)` around the measured tick, all threads included.
//! With `--rounds R`, each count is measured R times and the best
//! throughput of each workload is kept, with the worst memory figure.

mod children;
mod measure;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::measure::Exit;

/// The token the benchmark's children present to the mock.
const TOKEN: &str = "bench-token-0123456789";

/// The tenants written to the store, the ones the captured users' groups name.
const TENANTS: &str = "acme,globex,initech";

/// Events ingested when no `--events` is given.
const DEFAULT_EVENTS: u64 = 100_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some(mode @ ("serve" | "fetch" | "store" | "tick" | "once")) => {
            children::run(mode, &args[1..])
        }
        _ => bench(&args),
    };
    if let Err(error) = result {
        report(&format!("error: {error}"));
        std::process::exit(1);
    }
}

/// The figures of one run.
struct Figures {
    events: u64,
    end_to_end: f64,
    end_to_end_peak_kib: u64,
    fetch: f64,
    fetch_peak_kib: u64,
    store: f64,
    store_peak_kib: u64,
    tick_requests: u64,
    tick_cpu_ms: f64,
    load: (String, String),
    store_label: &'static str,
}

/// Runs the benchmark for each `--events` count and prints the figures.
fn bench(args: &[String]) -> Result<(), String> {
    let (counts, rounds) = options(args)?;
    let mongo = std::env::var("MONGODB_URI").ok().filter(|uri| !uri.trim().is_empty());
    let mut runs = Vec::new();
    for &events in &counts {
        let mut figures = run(events, &Target::Sqlite)?;
        for _ in 1..rounds {
            figures = figures.best_with(run(events, &Target::Sqlite)?);
        }
        print_figures(&figures);
        runs.push(figures);
    }
    match &mongo {
        None => report("MONGODB_URI is unset; the MongoDB store was not measured."),
        Some(uri) => {
            for &events in &counts {
                let mut figures = run(events, &Target::Mongo(uri.clone()))?;
                for _ in 1..rounds {
                    figures = figures.best_with(run(events, &Target::Mongo(uri.clone()))?);
                }
                print_figures(&figures);
            }
        }
    }
    if let (Some(first), Some(last)) = (runs.first(), runs.last())
        && runs.len() > 1
    {
        let change =
            (last.end_to_end_peak_kib as f64 / first.end_to_end_peak_kib as f64 - 1.0) * 100.0;
        report(&format!(
            "peak memory at N={} against N={}: {change:+.1}% (target: within 10%)",
            last.events, first.events
        ));
    }
    Ok(())
}

/// Reads `--events N[,N...]` and `--rounds R`; cargo's own `--bench` flag
/// is ignored.
fn options(args: &[String]) -> Result<(Vec<u64>, u32), String> {
    let mut counts = vec![DEFAULT_EVENTS];
    let mut rounds = 1;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--rounds" => {
                let text = args.next().ok_or("`--rounds` needs a number")?;
                rounds = text
                    .parse()
                    .ok()
                    .filter(|rounds| *rounds > 0)
                    .ok_or_else(|| format!("`--rounds {text}` is not a positive number"))?;
            }
            "--events" => {
                let text = args.next().ok_or("`--events` needs a number")?;
                counts = text
                    .split(',')
                    .map(|count| count.trim().replace('_', "").parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("`--events {text}` is not a list of numbers"))?;
                if counts.contains(&0) {
                    return Err("`--events` must be at least 1".into());
                }
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`; use `--events N[,N...]` and `--rounds R`"
                ));
            }
        }
    }
    Ok((counts, rounds))
}

impl Figures {
    /// Keeps the best throughput and CPU time of two rounds, which filters
    /// out rounds slowed by other work on the machine, and the higher
    /// memory and request figures, which must hold in every round.
    fn best_with(self, other: Figures) -> Figures {
        Figures {
            events: self.events,
            end_to_end: self.end_to_end.max(other.end_to_end),
            end_to_end_peak_kib: self.end_to_end_peak_kib.max(other.end_to_end_peak_kib),
            fetch: self.fetch.max(other.fetch),
            fetch_peak_kib: self.fetch_peak_kib.max(other.fetch_peak_kib),
            store: self.store.max(other.store),
            store_peak_kib: self.store_peak_kib.max(other.store_peak_kib),
            tick_requests: self.tick_requests.max(other.tick_requests),
            tick_cpu_ms: self.tick_cpu_ms.min(other.tick_cpu_ms),
            load: (self.load.0, other.load.1),
            store_label: self.store_label,
        }
    }
}

/// The store a run measures.
enum Target {
    /// A new SQLite file per workload.
    Sqlite,
    /// A new database per workload on the MongoDB server of this connection
    /// string, dropped afterwards.
    Mongo(String),
}

impl Target {
    /// Returns the `AUDIT_STORE` of workload `name`, in `dir` for SQLite.
    fn store(&self, dir: &Path, name: &str) -> Result<String, String> {
        match self {
            Target::Sqlite => {
                Ok(format!("sqlite://{}", path_text(&dir.join(format!("{name}.db")))?))
            }
            Target::Mongo(uri) => {
                Ok(with_database(uri, &format!("audit_ingest_bench_{}_{name}", std::process::id())))
            }
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Target::Sqlite => "SQLite (embedded)",
            Target::Mongo(_) => "MongoDB (MONGODB_URI)",
        }
    }
}

/// Returns the connection string `uri` with its database set to `database`,
/// its hosts and options kept. With credentials, the database they were
/// given for stays their `authSource`, since the database in the string is
/// also where the driver authenticates by default.
fn with_database(uri: &str, database: &str) -> String {
    let (base, options) =
        uri.split_once('?').map_or((uri, None), |(base, options)| (base, Some(options)));
    let hosts_start = base.find("://").map_or(0, |at| at + 3);
    let hosts_end = base[hosts_start..].find('/').map_or(base.len(), |at| hosts_start + at);
    let given = base.get(hosts_end + 1..).filter(|given| !given.is_empty()).unwrap_or("admin");
    let mut options: Vec<String> = options
        .into_iter()
        .flat_map(|options| options.split('&'))
        .filter(|option| !option.is_empty())
        .map(str::to_owned)
        .collect();
    let has_credentials = base[hosts_start..hosts_end].contains('@');
    if has_credentials && !options.iter().any(|option| option.starts_with("authSource=")) {
        options.push(format!("authSource={given}"));
    }
    let mut result = format!("{}/{database}", &base[..hosts_end]);
    if !options.is_empty() {
        result.push('?');
        result.push_str(&options.join("&"));
    }
    result
}

/// Measures every workload against a fresh mock of `events` events, storing
/// into `target`.
fn run(events: u64, target: &Target) -> Result<Figures, String> {
    report(&format!("N={events}, {}: starting the synthetic Authentik", target.label()));
    let load_before = load_average();
    let dir = tempfile::tempdir().map_err(|error| format!("creating a scratch folder: {error}"))?;
    let mut server = Server::start(events)?;
    let url = server.url.clone();

    report(&format!("N={events}: fetching without storing"));
    let (fetch, fetch_exit) = child(&["fetch", &url], &[])?;
    expect_count("fetch", &fetch, "events", events)?;

    report(&format!("N={events}: storing already-parsed records"));
    let store_target = target.store(dir.path(), "store")?;
    let stored = child(&["store", &url, &store_target], &[]);
    if matches!(target, Target::Mongo(_)) {
        child(&["drop", &store_target], &[])?;
    }
    let (store, store_exit) = stored?;
    expect_count("store", &store, "stored", events)?;

    report(&format!("N={events}: audit-ingest once, from scratch"));
    let once_target = target.store(dir.path(), "once")?;
    let mut env = vec![
        ("AUTHENTIK_URL", url.as_str()),
        ("AUTHENTIK_TOKEN", TOKEN),
        ("AUDIT_STORE", once_target.as_str()),
        ("RUST_LOG", "warn"),
        ("METRICS_ADDR", ""),
    ];
    match target {
        Target::Sqlite => env.push(("TENANTS", TENANTS)),
        // MongoDB's tenants are the platform's collection: fill it first.
        Target::Mongo(_) => drop(child(&["seed", &once_target], &[])?),
    }
    let started = Instant::now();
    let (once, once_exit) = child(&["once", "--json"], &env)?;
    let once_seconds = started.elapsed().as_secs_f64();
    expect_count("once", &once, "stored", events)?;
    expect_count("once", &once, "duplicates", 0)?;

    report(&format!("N={events}: one steady-state tick"));
    let ticked = child(&["tick", &url, &once_target], &[]);
    if matches!(target, Target::Mongo(_)) {
        child(&["drop", &once_target], &[])?;
    }
    let (tick, _) = ticked?;
    expect_count("tick", &tick, "stored", 0)?;
    server.stop()?;

    Ok(Figures {
        store_label: target.label(),
        events,
        end_to_end: events as f64 / once_seconds,
        end_to_end_peak_kib: once_exit.peak_kib,
        fetch: events as f64 / number(&fetch, "seconds")?,
        fetch_peak_kib: fetch_exit.peak_kib,
        store: events as f64 / number(&store, "seconds")?,
        store_peak_kib: store_exit.peak_kib,
        tick_requests: number(&tick, "requests")? as u64,
        tick_cpu_ms: number(&tick, "cpuMs")?,
        load: (load_before, load_average()),
    })
}

fn print_figures(figures: &Figures) {
    let slower = figures.fetch.min(figures.store);
    let ratio = figures.end_to_end / slower;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let lines = [
        format!("events                      {}", figures.events),
        format!("store                       {}", figures.store_label),
        format!(
            "load average (1 min)        {} at start, {} at end, on {} CPUs",
            figures.load.0,
            figures.load.1,
            std::thread::available_parallelism().map_or(0, usize::from)
        ),
        format!(
            "end to end (once)           {:>10.0} events/s   peak {:>6.1} MiB",
            figures.end_to_end,
            mib(figures.end_to_end_peak_kib)
        ),
        format!(
            "baseline: fetch only        {:>10.0} events/s   peak {:>6.1} MiB",
            figures.fetch,
            mib(figures.fetch_peak_kib)
        ),
        format!(
            "baseline: store only        {:>10.0} events/s   peak {:>6.1} MiB",
            figures.store,
            mib(figures.store_peak_kib)
        ),
        format!(
            "end to end / slower baseline {:>9.1}%   (target: at least 80%, {})",
            ratio * 100.0,
            verdict(ratio >= 0.8)
        ),
        format!(
            "peak memory                 {:>10.1} MiB  (target: under 64 MiB, {})",
            mib(figures.end_to_end_peak_kib),
            verdict(figures.end_to_end_peak_kib < 64 * 1024)
        ),
        format!(
            "steady-state tick           {:>10} request(s), {:.2} ms CPU (target: 1 and under 5 ms, {})",
            figures.tick_requests,
            figures.tick_cpu_ms,
            verdict(figures.tick_requests == 1 && figures.tick_cpu_ms < 5.0)
        ),
    ];
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
}

/// The synthetic Authentik, in a child process that lives until its
/// standard input closes.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(events: u64) -> Result<Self, String> {
        // Whole seconds, so that every child sees the same history.
        let newest = chrono::Utc::now().timestamp();
        let mut child = Command::new(executable()?)
            .args(["serve", &events.to_string(), &newest.to_string(), TOKEN])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| format!("starting the mock: {error}"))?;
        let stdout = child.stdout.take().ok_or("the mock has no standard output")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|error| format!("reading the mock's address: {error}"))?;
        let url = line.trim().to_owned();
        if !url.starts_with("http://") {
            return Err(format!("the mock did not say its address (said `{url}`)"));
        }
        Ok(Self { child, url })
    }

    fn stop(&mut self) -> Result<(), String> {
        drop(self.child.stdin.take());
        let status = self.child.wait().map_err(|error| format!("waiting for the mock: {error}"))?;
        if !status.success() {
            return Err(format!("the mock ended with {status}"));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing its input ends the mock; waiting reaps it.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Runs this executable with `args` and `env`, and returns the JSON object
/// it printed last and how it exited.
fn child(args: &[&str], env: &[(&str, &str)]) -> Result<(Value, Exit), String> {
    let mut command = Command::new(executable()?);
    command.args(args).envs(env.iter().copied()).stdout(Stdio::piped());
    let (exit, stdout) = measure::run(command).map_err(|error| format!("{}: {error}", args[0]))?;
    if !exit.success {
        return Err(format!("`{}` failed", args[0]));
    }
    let last = stdout.lines().rev().find(|line| line.starts_with('{')).unwrap_or_default();
    let value = serde_json::from_str(last)
        .map_err(|error| format!("`{}` printed no JSON summary: {error}", args[0]))?;
    Ok((value, exit))
}

fn expect_count(workload: &str, figures: &Value, key: &str, expected: u64) -> Result<(), String> {
    let found = figures[key].as_u64();
    if found != Some(expected) {
        return Err(format!("`{workload}` reported {key} = {found:?}, expected {expected}"));
    }
    Ok(())
}

fn number(figures: &Value, key: &str) -> Result<f64, String> {
    figures[key].as_f64().ok_or_else(|| format!("no `{key}` in {figures}"))
}

/// The machine's one-minute load average, which the figures depend on.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn executable() -> Result<std::path::PathBuf, String> {
    std::env::current_exe().map_err(|error| format!("finding the benchmark's executable: {error}"))
}

fn path_text(path: &Path) -> Result<String, String> {
    path.to_str().map(str::to_owned).ok_or_else(|| format!("`{}` is not UTF-8", path.display()))
}

#[allow(clippy::print_stderr, reason = "the benchmark reports progress on standard error")]
fn report(message: &str) {
    eprintln!("bench: {message}");
}
