//! The `audit-ingest` binary, run as an operator would, against a mock
//! Authentik.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::fixtures;
use tests::mock_authentik::MockAuthentik;

mod replicas;

const TOKEN: &str = "cli-test-token-9f8e7d6c";

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("audit-ingest-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn store(&self) -> String {
        format!("sqlite://{}", self.0.join("audit.db").display())
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A spawned `audit-ingest`, killed if the test ends before it does (a
/// failed assertion, say), so that no daemon outlives its test.
struct Daemon(Option<std::process::Child>);

impl Daemon {
    fn spawn(command: &mut Command) -> Self {
        Self(Some(command.spawn().unwrap()))
    }

    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, std::process::Child::id)
    }

    fn is_running(&mut self) -> bool {
        self.0.as_mut().is_some_and(|child| child.try_wait().unwrap().is_none())
    }

    /// Waits for the process to exit and returns how it did.
    async fn reap(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().unwrap();
        tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A command with a clean environment: only what the test sets.
fn audit_ingest(dir: &Dir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_audit-ingest"));
    command.env_clear().env("AUDIT_STORE", dir.store()).current_dir(&dir.0);
    command
}

fn with_authentik(mut command: Command, authentik: &MockAuthentik) -> Command {
    command
        .env("AUTHENTIK_URL", authentik.uri())
        .env("AUTHENTIK_TOKEN", TOKEN)
        .env("TENANTS", "acme,globex,initech");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_no_token(output: &Output) {
    assert!(!text(&output.stdout).contains(TOKEN), "token in stdout");
    assert!(!text(&output.stderr).contains(TOKEN), "token in stderr");
}

async fn smoke_authentik() -> MockAuthentik {
    let authentik = MockAuthentik::start(TOKEN).await;
    authentik.set_events(fixtures::smoke_events());
    authentik.set_users(fixtures::smoke_users());
    authentik
}

async fn run(command: Command) -> Output {
    let mut command = command;
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

#[tokio::test]
async fn missing_url_ends_with_one_line_naming_it_and_exit_code_2() {
    let dir = Dir::new("missing-url");
    let mut command = audit_ingest(&dir);
    command.arg("once").env("AUTHENTIK_TOKEN", TOKEN);

    let output = run(command).await;

    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("AUTHENTIK_URL"), "{stderr}");
    assert_no_token(&output);
}

#[tokio::test]
async fn malformed_setting_ends_with_one_line_naming_it_and_exit_code_2() {
    for (name, value) in [
        ("INGEST_INTERVAL", "soon"),
        ("INGEST_PAGE_SIZE", "500"),
        ("INGEST_OVERLAP", "x"),
        ("AUDIT_INGEST_ENABLED", "perhaps"),
        ("TENANTS", "Acme Corp"),
        ("AUDIT_STORE", "ftp://x"),
        ("TENANTS", ""),
        ("AUTHENTIK_CA_BUNDLE", "/nonexistent/ca.pem"),
        ("LOG_FORMAT", "xml"),
        ("RUST_LOG", "info,[[["),
        ("METRICS_ADDR", "localhost:9464"),
    ] {
        let dir = Dir::new(&format!("bad-{name}"));
        let mut command = audit_ingest(&dir);
        command
            .arg("once")
            .env("AUTHENTIK_URL", "http://127.0.0.1:9")
            .env("AUTHENTIK_TOKEN", TOKEN)
            .env(name, value);

        let output = run(command).await;

        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = text(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert_no_token(&output);
    }
}

#[tokio::test]
async fn unusable_mongodb_setting_ends_with_one_line_naming_it_before_connecting() {
    for (name, store, extra) in [
        ("AUDIT_STORE", "mongodb://db.example.test:27017", None),
        ("AUDIT_STORE", "mongodb://user:hunter2@db.example.test:x/audit", None),
        ("TENANTS", "mongodb://db.example.test/audit", Some(("TENANTS", "acme"))),
        (
            "MONGO_EVENTS_COLLECTION",
            "mongodb://db.example.test/audit",
            Some(("MONGO_EVENTS_COLLECTION", "audit$events")),
        ),
    ] {
        let dir = Dir::new(&format!("mongo-{name}"));
        let mut command = audit_ingest(&dir);
        command.arg("status").env("AUDIT_STORE", store);
        if let Some((variable, value)) = extra {
            command.env(variable, value);
        }

        let output = run(command).await;

        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = text(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn once_ingests_the_smoke_scenario_and_prints_a_json_summary() {
    let authentik = smoke_authentik().await;
    let dir = Dir::new("once");
    let mut command = with_authentik(audit_ingest(&dir), &authentik);
    command.args(["once", "--json"]);

    let output = run(command).await;

    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_no_token(&output);
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["fetched"], 78);
    assert_eq!(summary["stored"], 78);
    assert_eq!(summary["duplicates"], 0);
    assert_eq!(summary["setAside"], 0);
    assert_eq!(summary["cursor"]["lastEventId"], fixtures::smoke_events()[77]["pk"]);
}

#[tokio::test]
async fn status_and_timeline_read_back_what_once_stored() {
    let authentik = smoke_authentik().await;
    let dir = Dir::new("read-back");
    let mut once = with_authentik(audit_ingest(&dir), &authentik);
    once.arg("once");
    assert!(run(once).await.status.success());

    let mut status = audit_ingest(&dir);
    status.args(["status", "--json"]);
    let status = run(status).await;
    let mut timeline = audit_ingest(&dir);
    timeline.args([
        "timeline",
        "--json",
        "--tenant",
        "acme",
        "--verb",
        "authentik.login",
        "--limit",
        "100",
    ]);
    let timeline = run(timeline).await;
    let mut table = audit_ingest(&dir);
    table.args(["timeline", "--actor", "gia.testcase@initech.example.test"]);
    let table = run(table).await;

    assert!(status.status.success(), "{}", text(&status.stderr));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["source"], "authentik");
    assert_eq!(status[0]["stored"], 78);
    let lines: Vec<Value> =
        text(&timeline.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    // acme's logins and failed logins, newest first: ben logs in after one
    // failed try, ana logged in before them.
    let verbs: Vec<&str> = lines.iter().map(|line| line["verb"].as_str().unwrap()).collect();
    assert_eq!(verbs, ["authentik.login", "authentik.login_failed", "authentik.login"]);
    for line in &lines {
        assert_eq!(line["tenantSlug"], "acme");
        for key in [
            "source",
            "externalId",
            "at",
            "action",
            "actor",
            "onBehalfOf",
            "subject",
            "ip",
            "userAgent",
            "app",
            "context",
            "recordedAt",
        ] {
            assert!(line.get(key).is_some(), "missing {key}");
        }
    }
    let table = text(&table.stdout);
    assert!(table.starts_with("AT"), "{table}");
    // gia's two failed logins and one login; her password reset names her
    // as the subject, not the actor.
    assert_eq!(table.lines().count(), 1 + 3, "{table}");
}

#[tokio::test]
async fn run_with_ingest_disabled_idles_until_sigterm_and_exits_0() {
    let authentik = smoke_authentik().await;
    let dir = Dir::new("disabled");
    let mut command = with_authentik(audit_ingest(&dir), &authentik);
    let log = dir.0.join("disabled.log");
    command
        .arg("run")
        .env("AUDIT_INGEST_ENABLED", "false")
        .env("METRICS_ADDR", "")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = Daemon::spawn(&mut command);
    wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("idling until stopped")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still_running = child.is_running();

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.reap().await;

    assert!(still_running, "a disabled daemon exited by itself, and would be restarted in a loop");
    assert!(killed.success());
    assert_eq!(status.code(), Some(0));
    assert_eq!(authentik.events_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_on_sigterm_with_exit_0_and_a_saved_cursor() {
    let authentik = smoke_authentik().await;
    let dir = Dir::new("sigterm");
    let mut command = with_authentik(audit_ingest(&dir), &authentik);
    command
        .arg("run")
        .env("INGEST_INTERVAL", "1h")
        .env("METRICS_ADDR", "")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = Daemon::spawn(&mut command);
    // The first tick has stored everything once `status` counts 78.
    wait_until(Duration::from_secs(30), || stored(&dir) == Some(78)).await;

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.reap().await;

    assert!(killed.success());
    assert_eq!(status.code(), Some(0));
    let mut status = audit_ingest(&dir);
    status.args(["status", "--json"]);
    let status: Value = serde_json::from_slice(&run(status).await.stdout).unwrap();
    assert_eq!(status[0]["stored"], 78);
    assert!(status[0]["cursor"]["lastEventAt"].is_string());
}

fn stored(dir: &Dir) -> Option<u64> {
    let mut status = audit_ingest(dir);
    status.args(["status", "--json"]);
    let output = status.output().ok()?;
    let status: Value = serde_json::from_slice(&output.stdout).ok()?;
    status[0]["stored"].as_u64()
}

async fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Returns a local port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_metrics_and_probes_on_metrics_addr() {
    let authentik = smoke_authentik().await;
    let dir = Dir::new("metrics");
    let address = format!("127.0.0.1:{}", free_port());
    let mut command = with_authentik(audit_ingest(&dir), &authentik);
    command
        .arg("run")
        .env("INGEST_INTERVAL", "1h")
        .env("METRICS_ADDR", &address)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = Daemon::spawn(&mut command);
    let metrics_url = format!("http://{address}/metrics");

    let started = Instant::now();
    let text = loop {
        if let Ok(response) = reqwest::get(&metrics_url).await {
            let text = response.text().await.unwrap();
            if text.contains(r#"audit_ingest_events_stored_total{source="authentik"} 78"#) {
                break text;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no metrics in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ready = reqwest::get(format!("http://{address}/readyz")).await.unwrap().status();
    let live = reqwest::get(format!("http://{address}/healthz")).await.unwrap().status();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.reap().await;

    assert!(text.contains("# TYPE audit_ingest_tick_duration_seconds histogram"), "{text}");
    assert!(
        text.contains(r#"audit_ingest_authentik_requests_total{endpoint="events",status="200"}"#)
    );
    assert_eq!(ready.as_u16(), 200);
    assert_eq!(live.as_u16(), 200);
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn check_passes_with_a_full_token_and_a_sound_store() {
    let authentik = smoke_authentik().await;
    let dir = Dir::new("check-ok");
    let mut once = with_authentik(audit_ingest(&dir), &authentik);
    once.arg("once");
    assert!(run(once).await.status.success());
    let mut command = with_authentik(audit_ingest(&dir), &authentik);
    command.arg("check");

    let output = run(command).await;

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("reads events"), "{stdout}");
    assert!(stdout.contains("reads users' groups"), "{stdout}");
    assert!(stdout.contains("index audit_events_source_external_id is as expected"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert_no_token(&output);
}

#[tokio::test]
async fn check_names_the_missing_permission_and_exits_1() {
    let authentik = smoke_authentik().await;
    authentik.add_token_without_permission("token-without-view-event");
    authentik.add_token_without_view_user("token-without-view-user");
    for (token, expected) in [
        ("token-without-view-event", "authentik_events.view_event"),
        ("token-without-view-user", "authentik_core.view_user"),
        ("not-a-known-token", "invalid or expired"),
    ] {
        let dir = Dir::new("check-permission");
        let mut command = with_authentik(audit_ingest(&dir), &authentik);
        command.arg("check").env("AUTHENTIK_TOKEN", token);

        let output = run(command).await;

        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{token}: {stdout}");
        let failures: Vec<&str> = stdout.lines().filter(|line| line.starts_with("FAIL")).collect();
        assert!(failures.iter().any(|line| line.contains(expected)), "{token}: {stdout}");
        assert!(stdout.contains("problem(s) found"), "{stdout}");
    }
}

/// Writes `events` to `dir` as one Authentik API page and returns its path.
fn write_page(dir: &Dir, name: &str, events: &[Value]) -> PathBuf {
    let page = serde_json::json!({
        "pagination": { "next": 0, "previous": 0, "count": events.len(), "current": 1 },
        "results": events,
        "autocomplete": {},
    });
    let path = dir.0.join(name);
    std::fs::write(&path, page.to_string()).unwrap();
    path
}

/// Returns the timeline as JSON lines without the time each was recorded.
async fn timeline_without_recorded_at(dir: &Dir) -> Vec<Value> {
    let mut command = audit_ingest(dir);
    command.args(["timeline", "--json", "--limit", "1000"]);
    let output = run(command).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            record.as_object_mut().unwrap().remove("recordedAt");
            record
        })
        .collect()
}

#[tokio::test]
async fn import_stores_what_the_live_path_stores_and_leaves_the_cursor_alone() {
    let authentik = smoke_authentik().await;
    let live = Dir::new("import-live");
    let mut once = with_authentik(audit_ingest(&live), &authentik);
    once.arg("once");
    assert!(run(once).await.status.success());
    let dir = Dir::new("import");
    let events = fixtures::smoke_events();
    let (first, second) = events.split_at(30);
    let page = write_page(&dir, "page.json", first);
    let array = dir.0.join("array.json");
    std::fs::write(&array, Value::Array(second.to_vec()).to_string()).unwrap();
    let mut command = with_authentik(audit_ingest(&dir), &authentik);
    command.args(["import", "--json"]).arg(&page).arg(&array);

    let output = run(command).await;

    assert!(output.status.success(), "{}", text(&output.stderr));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["files"], 2);
    assert_eq!(summary["read"], 78);
    assert_eq!(summary["stored"], 78);
    assert_eq!(timeline_without_recorded_at(&dir).await, timeline_without_recorded_at(&live).await);
    let mut status = audit_ingest(&dir);
    status.args(["status", "--json"]);
    let status: Value = serde_json::from_slice(&run(status).await.stdout).unwrap();
    assert_eq!(status[0]["stored"], 78);
    assert_eq!(status[0]["cursor"], Value::Null, "an import must not move the cursor");
    assert_no_token(&output);
}

#[tokio::test]
async fn import_skips_a_bad_file_sets_a_bad_event_aside_and_counts_duplicates() {
    let authentik = smoke_authentik().await;
    let dir = Dir::new("import-bad");
    let mut events = fixtures::smoke_events()[..10].to_vec();
    events
        .push(serde_json::json!({ "pk": "broken-1", "created": "not a time", "action": "login" }));
    let good = write_page(&dir, "good.json", &events);
    let bad = dir.0.join("bad.json");
    std::fs::write(&bad, "{\"detail\": \"Invalid page.\"}").unwrap();
    let missing = dir.0.join("missing.json");
    let mut command = with_authentik(audit_ingest(&dir), &authentik);
    command.args(["import", "--json"]).arg(&bad).arg(&good).arg(&missing).arg(&good);

    let output = run(command).await;

    assert_eq!(output.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["files"], 2);
    assert_eq!(summary["failedFiles"], 2);
    assert_eq!(summary["read"], 22);
    assert_eq!(summary["stored"], 10);
    assert_eq!(summary["duplicates"], 10);
    // The broken event of the file imported twice is set aside once.
    assert_eq!(summary["setAside"], 1);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("bad.json: neither an Authentik API page"), "{stderr}");
    assert!(stderr.contains("missing.json: cannot read the file"), "{stderr}");
    assert!(stderr.contains("good.json: 11/11 events"), "{stderr}");
    let mut status = audit_ingest(&dir);
    status.args(["status", "--json"]);
    let status: Value = serde_json::from_slice(&run(status).await.stdout).unwrap();
    assert_eq!(status[0]["stored"], 10);
    assert_eq!(status[0]["setAside"], 1);
}

#[tokio::test]
async fn unusable_ca_bundle_ends_with_one_line_naming_it_and_exit_code_2() {
    let dir = Dir::new("ca-bundle");
    let bundle = dir.0.join("bundle.pem");
    std::fs::write(&bundle, "not a certificate\n").unwrap();
    let mut command = audit_ingest(&dir);
    command
        .arg("once")
        .env("AUTHENTIK_URL", "https://127.0.0.1:9")
        .env("AUTHENTIK_TOKEN", TOKEN)
        .env("AUTHENTIK_CA_BUNDLE", &bundle);

    let output = run(command).await;

    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("AUTHENTIK_CA_BUNDLE"), "{stderr}");
    assert_eq!(stderr.lines().filter(|line| line.starts_with("error")).count(), 1, "{stderr}");
}

#[tokio::test]
async fn status_of_a_missing_store_says_so_and_creates_nothing() {
    let dir = Dir::new("missing-store");
    let mut command = audit_ingest(&dir);
    command
        .arg("status")
        .env("AUDIT_STORE", format!("sqlite://{}", dir.0.join("typo.db").display()));

    let output = run(command).await;

    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("there is no store at"), "{stderr}");
    assert!(!dir.0.join("typo.db").exists());
}
