//! Several `audit-ingest run` processes on one store, and processes killed
//! at arbitrary points.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use tests::events::{history, login};
use tests::mock_authentik::MockAuthentik;

use super::{Daemon, Dir, TOKEN, audit_ingest, stored, with_authentik};

/// Waits until `ready`, and on a time-out fails naming `what` and showing
/// every log in `dir`.
async fn wait_for(dir: &Dir, what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() > limit {
            let mut logs = String::new();
            for entry in std::fs::read_dir(&dir.0).unwrap().flatten() {
                if entry.path().extension().is_some_and(|ext| ext == "log") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    logs.push_str(&format!("--- {}\n{text}", entry.path().display()));
                }
            }
            panic!("timed out waiting for {what}; stored {:?}\n{logs}", stored(dir));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `audit-ingest run` with JSON logs into `<dir>/<name>.log`.
fn spawn_run(dir: &Dir, authentik: &MockAuthentik, name: &str, extra: &[(&str, &str)]) -> Daemon {
    let mut command = with_authentik(audit_ingest(dir), authentik);
    let log = File::create(dir.0.join(format!("{name}.log"))).unwrap();
    command
        .arg("run")
        .env("INGEST_INTERVAL", "2s")
        .env("LOG_FORMAT", "json")
        .env("METRICS_ADDR", "")
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(log);
    Daemon::spawn(&mut command)
}

/// The log lines of `name` whose message is `message`.
fn logged(dir: &Dir, name: &str, message: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.0.join(format!("{name}.log"))).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"].as_str().is_some_and(|m| m.starts_with(message)))
        .collect()
}

fn signal(child: &Daemon, signal: &str) {
    let sent = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
}

async fn reap(child: Daemon) -> std::process::ExitStatus {
    child.reap().await
}

fn recent(count: u64, first: u64) -> Vec<Value> {
    let now = Utc::now();
    (0..count).map(|n| login(first + n, now - TimeDelta::seconds(1))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_replica_stays_idle_then_takes_over_within_two_intervals_when_the_first_dies() {
    let authentik = MockAuthentik::start(TOKEN).await;
    authentik.set_events(history(40, TimeDelta::seconds(10), TimeDelta::minutes(1)));
    let dir = Dir::new("replicas");
    let first = spawn_run(&dir, &authentik, "first", &[]);
    wait_for(&dir, "40 stored", Duration::from_secs(30), || stored(&dir) == Some(40)).await;
    let second = spawn_run(&dir, &authentik, "second", &[]);
    wait_for(&dir, "the second to wait", Duration::from_secs(30), || {
        !logged(&dir, "second", "Another replica holds the lease").is_empty()
    })
    .await;

    // While the first lives, it alone ingests what is new.
    authentik.add_events(recent(5, 1000));
    wait_for(&dir, "45 stored", Duration::from_secs(30), || stored(&dir) == Some(45)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(logged(&dir, "second", "Tick finished").is_empty(), "the idle replica ticked");

    signal(&first, "-KILL");
    let killed_at = SystemTime::now();
    reap(first).await;
    authentik.add_events(recent(5, 2000));
    wait_for(&dir, "50 stored", Duration::from_secs(30), || stored(&dir) == Some(50)).await;

    let taken = logged(&dir, "second", "Lease taken");
    assert_eq!(taken.len(), 1);
    let taken_at: DateTime<Utc> = taken[0]["timestamp"].as_str().unwrap().parse().unwrap();
    let takeover = taken_at - DateTime::<Utc>::from(killed_at);
    eprintln!(
        "the second replica took over {} ms after the first was killed",
        takeover.num_milliseconds()
    );
    assert!(takeover < TimeDelta::seconds(4), "took {takeover} for an interval of 2s");
    signal(&second, "-TERM");
    assert_eq!(reap(second).await.code(), Some(0));
    assert_eq!(stored(&dir), Some(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_arbitrary_points_restarts_lose_nothing_and_store_nothing_twice() {
    let authentik = MockAuthentik::start(TOKEN).await;
    let mut events = history(3000, TimeDelta::seconds(2), TimeDelta::minutes(2));
    authentik.set_events(events.clone());
    let dir = Dir::new("killed");
    // Small pages and a small page cap make a walk span many ticks, so the
    // kills land inside walks, between writes and cursor saves, and in
    // requests.
    let settings =
        [("INGEST_PAGE_SIZE", "20"), ("INGEST_MAX_PAGES_PER_TICK", "3"), ("INGEST_INTERVAL", "1s")];

    let mut kills = 0;
    for round in 0..8_u64 {
        let child = spawn_run(&dir, &authentik, &format!("round-{round}"), &settings);
        let started = Instant::now();
        // A restart first waits out the killed holder's lease (1 s), then
        // ingests; kill it somewhere in the work that follows.
        wait_for(&dir, "the lease", Duration::from_secs(30), || {
            !logged(&dir, &format!("round-{round}"), "Lease taken").is_empty()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(150 + 170 * round)).await;
        signal(&child, "-KILL");
        reap(child).await;
        kills += 1;
        eprintln!(
            "round {round}: killed after {} ms, {:?} stored",
            started.elapsed().as_millis(),
            stored(&dir)
        );
        let new = recent(7, 10_000 + round * 100);
        authentik.add_events(new.clone());
        events.extend(new);
    }

    let last = spawn_run(&dir, &authentik, "last", &settings);
    let total = events.len() as u64;
    wait_for(&dir, "total stored", Duration::from_secs(120), || stored(&dir) == Some(total)).await;
    signal(&last, "-TERM");
    assert_eq!(reap(last).await.code(), Some(0));

    assert_eq!(kills, 8);
    let mut timeline = audit_ingest(&dir);
    timeline.args(["timeline", "--json", "--limit", "100000"]);
    let output = timeline.output().unwrap();
    let mut ids: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["externalId"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> =
        events.iter().map(|event| event["pk"].as_str().unwrap().to_owned()).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_refuses_with_the_holder_named_while_a_daemon_holds_the_lease() {
    let authentik = MockAuthentik::start(TOKEN).await;
    authentik.set_events(history(5, TimeDelta::seconds(10), TimeDelta::minutes(1)));
    let dir = Dir::new("once-refused");
    let daemon = spawn_run(&dir, &authentik, "daemon", &[]);
    wait_for(&dir, "5 stored", Duration::from_secs(30), || stored(&dir) == Some(5)).await;
    let holder = logged(&dir, "daemon", "Lease taken")[0]["holder"].as_str().unwrap().to_owned();

    let mut once = with_authentik(audit_ingest(&dir), &authentik);
    once.arg("once");
    let output = once.output().unwrap();

    signal(&daemon, "-TERM");
    assert_eq!(reap(daemon).await.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("another replica (`{holder}`) is ingesting `authentik`")),
        "{stderr}"
    );
    // Once the daemon has stopped, it has given the lease up.
    let mut again = with_authentik(audit_ingest(&dir), &authentik);
    again.arg("once");
    assert_eq!(again.output().unwrap().status.code(), Some(0));
}
