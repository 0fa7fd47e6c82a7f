//! Finding a MongoDB server for the tests, and a fresh database on it.

use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adapters_mongo::{CollectionNames, MongoStore};
use mongodb::Client;
use testcontainers::core::{IntoContainerPort as _, WaitFor};
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{GenericImage, ImageExt as _};

/// The official image and its pinned version.
pub(crate) const MONGO_IMAGE: (&str, &str) = ("mongo", "8.0.4");

/// How long a container may live. The container outlives no test binary by
/// more than this: its `mongod` is stopped after it, and Docker then removes
/// the container, even when the binary was killed before it could.
const CONTAINER_LIFETIME_SECS: u32 = 1800;

/// Where the tests' server is, or why there is none.
static SERVER: OnceLock<Result<String, String>> = OnceLock::new();

static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

/// Returns the connection string of the tests' server, starting a container
/// the first time when that is how the server is reached; or `None`, after
/// saying once why the MongoDB tests are skipped.
///
/// # Panics
/// When a Docker engine answers but the container cannot be started: that
/// is a broken test machine, not one without MongoDB.
pub(crate) fn server_uri() -> Option<String> {
    let server = SERVER.get_or_init(find_server);
    match server {
        Ok(uri) => Some(uri.clone()),
        Err(why) => {
            skipped(why);
            None
        }
    }
}

fn find_server() -> Result<String, String> {
    if let Ok(uri) = std::env::var("MONGODB_URI")
        && !uri.trim().is_empty()
    {
        return Ok(uri.trim().to_owned());
    }
    let docker = docker_endpoint();
    if let Err(why) = reachable(&docker) {
        return Err(format!("no Docker engine at {docker} ({why}) and MONGODB_URI unset"));
    }
    // The container is started on a runtime of its own, which outlives the
    // test that happens to start it; every test then shares it.
    let started = std::thread::spawn(start_container).join();
    match started {
        Ok(Ok(uri)) => Ok(uri),
        Ok(Err(error)) => panic!("a Docker engine answers at {docker}, but {error}"),
        Err(_) => panic!("starting the MongoDB container panicked"),
    }
}

/// Says once per test binary, on standard error, that the MongoDB tests
/// were skipped and why.
fn skipped(why: &str) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        // Written to the process's standard error rather than with
        // `eprintln!`, which the test harness captures and hides for tests
        // that pass.
        let _ = writeln!(std::io::stderr(), "MongoDB tests skipped: {why}.");
    });
}

/// Returns where the Docker engine should answer: `DOCKER_HOST`, or the
/// default socket.
fn docker_endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|host| !host.trim().is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

/// Checks that something accepts connections at `endpoint`.
fn reachable(endpoint: &str) -> Result<(), String> {
    if let Some(path) = endpoint.strip_prefix("unix://") {
        #[cfg(unix)]
        return std::os::unix::net::UnixStream::connect(path)
            .map(drop)
            .map_err(|error| error.to_string());
        #[cfg(not(unix))]
        return Err(format!("no unix sockets here for `{path}`"));
    }
    if let Some(address) = endpoint.strip_prefix("tcp://") {
        use std::net::ToSocketAddrs as _;
        let addresses = address.to_socket_addrs().map_err(|error| error.to_string())?;
        for address in addresses {
            if std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok() {
                return Ok(());
            }
        }
        return Err("nothing accepts connections there".to_owned());
    }
    Err("an endpoint these tests cannot reach".to_owned())
}

/// Starts the pinned image and returns its connection string.
fn start_container() -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("no runtime to start the container: {error}"))?;
    runtime.block_on(async {
        let (name, tag) = MONGO_IMAGE;
        let lifetime = CONTAINER_LIFETIME_SECS.to_string();
        let container = GenericImage::new(name, tag)
            .with_exposed_port(27017.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Waiting for connections"))
            // The image's entry point runs any command that is not `mongod`
            // as it is; `timeout` bounds the server's life.
            .with_cmd(["timeout", lifetime.as_str(), "mongod", "--bind_ip_all"])
            .with_host_config_modifier(|config| config.auto_remove = Some(true))
            .with_startup_timeout(Duration::from_secs(180))
            .start()
            .await
            .map_err(|error| format!("the `{name}:{tag}` container did not start: {error}"))?;
        let host = container.get_host().await.map_err(|error| error.to_string())?;
        let port = container.get_host_port_ipv4(27017).await.map_err(|error| error.to_string())?;
        // Dropping the handle would remove the container at once, while
        // other tests still use it; its lifetime above removes it instead.
        std::mem::forget(container);
        Ok(format!("mongodb://{host}:{port}/?directConnection=true"))
    })
}

/// A database of its own for one test, dropped when the test ends.
pub(crate) struct Scratch {
    /// A client of the server.
    pub(crate) client: Client,
    /// The database's name.
    pub(crate) name: String,
    uri: String,
}

impl Scratch {
    /// Returns a fresh, empty database, or `None` when no server is
    /// reachable.
    pub(crate) async fn new() -> Option<Self> {
        let uri = server_uri()?;
        let client = Client::with_uri_str(&uri).await.expect("the test server's URI parses");
        let name = format!(
            "audit_ingest_test_{}_{}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        Some(Self { client, name, uri })
    }

    /// Returns the database.
    pub(crate) fn database(&self) -> mongodb::Database {
        self.client.database(&self.name)
    }

    /// Opens a store on the database with `names` through a client of its
    /// own, as a process start would.
    ///
    /// # Errors
    /// As [`MongoStore::on`].
    pub(crate) async fn open(
        &self,
        names: CollectionNames,
    ) -> Result<MongoStore, adapters_mongo::OpenError> {
        let client = Client::with_uri_str(&self.uri).await.expect("the test server's URI parses");
        MongoStore::on(client.database(&self.name), names).await
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop_database(&self.uri, &self.name);
    }
}

/// A store on a database of its own, dropped with it.
pub(crate) struct TestDatabase {
    /// The store.
    pub(crate) store: MongoStore,
    /// The database the store is on.
    pub(crate) scratch: Scratch,
}

impl TestDatabase {
    /// Returns a store on a fresh, empty database with the default
    /// collection names, or `None` when no server is reachable.
    pub(crate) async fn fresh() -> Option<Self> {
        let scratch = Scratch::new().await?;
        let store = scratch
            .open(CollectionNames::default())
            .await
            .expect("the store opens on a fresh database");
        Some(Self { store, scratch })
    }

    /// Opens another store on the same database, as a restart would.
    pub(crate) async fn reopen(&self) -> MongoStore {
        self.scratch.open(self.store.names().clone()).await.expect("the store opens again")
    }
}

/// Drops database `name`, from a thread and client of its own: `Drop` runs
/// inside the test's runtime, which cannot wait on itself.
fn drop_database(uri: &str, name: &str) {
    let (uri, owned) = (uri.to_owned(), name.to_owned());
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        runtime.block_on(async {
            let client = Client::with_uri_str(&uri).await.ok()?;
            client.database(&owned).drop().await.ok()
        })
    })
    .join();
    if !matches!(dropped, Ok(Some(()))) {
        let _ = writeln!(std::io::stderr(), "could not drop the test database `{name}`");
    }
}
