//! A mock Authentik that serves events with the real server's semantics.
//!
//! It follows `shared/authentik-api.md` (a)–(c) and (h) and the captures in
//! `shared/fixtures/authentik-2025.12/`: every auth failure is a 403 with
//! the real `detail` texts; `ordering` takes comma-separated fields and the
//! default `-created` has no tie-breaker, so events sharing a `created`
//! value come back in an order that changes from one request to the next;
//! unknown parameters are ignored; `page_size` falls back to 20 and is
//! capped at 100; a page past the end is a 404.
//!
//! The event set lives behind a lock that tests can change at any time,
//! also from a hook run as each list request arrives, to shift pages under a
//! walk the way new and expiring events do on the real server.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The page size Authentik 2025.12 uses when none or an invalid one is
/// asked for (`pagination_default_page_size`).
pub const DEFAULT_PAGE_SIZE: usize = 20;

/// The largest page size Authentik 2025.12 serves by default
/// (`pagination_max_page_size`).
pub const DEFAULT_MAX_PAGE_SIZE: usize = 100;

/// The path of the event list.
pub const EVENTS_PATH: &str = "/api/v3/events/events/";

/// The prefix of the user detail path, `/api/v3/core/users/{pk}/`.
pub const USERS_PATH: &str = "/api/v3/core/users/";

/// The event actions Authentik 2025.12 accepts in `actions=`.
const ACTIONS: &[&str] = &[
    "login",
    "login_failed",
    "logout",
    "user_write",
    "suspicious_request",
    "password_set",
    "secret_view",
    "secret_rotate",
    "invitation_used",
    "authorize_application",
    "source_linked",
    "impersonation_started",
    "impersonation_ended",
    "flow_execution",
    "policy_execution",
    "policy_exception",
    "property_mapping_exception",
    "system_task_execution",
    "system_task_exception",
    "system_exception",
    "configuration_error",
    "model_created",
    "model_updated",
    "model_deleted",
    "email_sent",
    "update_available",
    "export_ready",
    "custom_",
];

/// A closure run as each event-list request arrives, before it is answered,
/// with the request's index from 0.
pub type EventsHook = Box<dyn FnMut(&mut State, usize) + Send>;

/// What the mock answers one event-list request with instead of its page,
/// for fault-injection tests.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status, with the plain-text body a proxy or Django's error
    /// page would send.
    Status(u16),
    /// A 200 with this body as `application/json`: truncated or malformed
    /// JSON, or the wrong envelope.
    Body(String),
    /// The right page, after this delay.
    Slow(std::time::Duration),
}

/// A running mock Authentik.
pub struct MockAuthentik {
    server: MockServer,
    shared: Arc<Mutex<Shared>>,
}

/// The mock's data and counters; hooks receive it to change the event set
/// during a walk.
pub struct State {
    events: Vec<StoredEvent>,
    users: HashMap<String, Value>,
    token: String,
    tokens_without_permission: HashSet<String>,
    tokens_without_view_user: HashSet<String>,
    max_page_size: usize,
    events_requests: usize,
    user_requests: usize,
    requests_log: Vec<String>,
}

struct Shared {
    state: State,
    hook: Option<EventsHook>,
    faults: std::collections::VecDeque<Fault>,
}

/// An event with the fields the mock sorts and filters on read once.
struct StoredEvent {
    created: Option<DateTime<Utc>>,
    pk: String,
    action: String,
    app: Option<String>,
    client_ip: Option<String>,
    json: Value,
}

/// One field of an `ordering` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortField {
    Created,
    Pk,
    Action,
    App,
    ClientIp,
}

struct Responder(Arc<Mutex<Shared>>);

impl MockAuthentik {
    /// Starts a mock that accepts `token` as a Bearer token with every
    /// permission, and serves no events and no users.
    pub async fn start(token: &str) -> MockAuthentik {
        let server = MockServer::start().await;
        let state = State {
            events: Vec::new(),
            users: HashMap::new(),
            token: token.to_owned(),
            tokens_without_permission: HashSet::new(),
            tokens_without_view_user: HashSet::new(),
            max_page_size: DEFAULT_MAX_PAGE_SIZE,
            events_requests: 0,
            user_requests: 0,
            requests_log: Vec::new(),
        };
        let shared = Arc::new(Mutex::new(Shared { state, hook: None, faults: Default::default() }));
        Mock::given(any()).respond_with(Responder(shared.clone())).mount(&server).await;
        MockAuthentik { server, shared }
    }

    /// Answers the next event-list requests, one each, with `faults`
    /// instead of their pages. Each request is still counted and logged.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.shared).faults.extend(faults);
    }

    /// The server's root URL, such as `http://127.0.0.1:4321`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Adds events, as Authentik's API returns them.
    pub fn add_events(&self, events: Vec<Value>) {
        self.state().add_events(events);
    }

    /// Deletes every event for which `doomed` is true; returns how many.
    pub fn delete_where(&self, doomed: impl FnMut(&Value) -> bool) -> usize {
        self.state().delete_where(doomed)
    }

    /// Replaces all events.
    pub fn set_events(&self, events: Vec<Value>) {
        self.state().set_events(events);
    }

    /// Returns the events, in the order they were added.
    pub fn events(&self) -> Vec<Value> {
        self.state().events()
    }

    /// Replaces the user details served at `/api/v3/core/users/{pk}/`.
    pub fn set_users(&self, users: Vec<Value>) {
        self.state().set_users(users);
    }

    /// Makes `token` valid but without `authentik_events.view_event`.
    pub fn add_token_without_permission(&self, token: &str) {
        self.state().tokens_without_permission.insert(token.to_owned());
    }

    /// Makes `token` valid with `authentik_events.view_event` but without
    /// `authentik_core.view_user`: as in Authentik, the users then seem not
    /// to exist (404 for each, an empty list).
    pub fn add_token_without_view_user(&self, token: &str) {
        self.state().tokens_without_view_user.insert(token.to_owned());
    }

    /// Sets the largest page size served (Authentik's default is 100).
    pub fn set_max_page_size(&self, max_page_size: usize) {
        self.state().max_page_size = max_page_size.max(1);
    }

    /// Runs `hook` as each later event-list request arrives, before it is
    /// answered, replacing any earlier hook.
    pub fn on_events_request(&self, hook: EventsHook) {
        self.shared().hook = Some(hook);
    }

    /// The number of event-list requests so far, answered or refused.
    pub fn events_requests(&self) -> usize {
        self.state().events_requests
    }

    /// The number of user-detail requests so far, answered or refused.
    pub fn user_requests(&self) -> usize {
        self.state().user_requests
    }

    /// The query strings of the event-list requests so far, as sent.
    pub fn requests_log(&self) -> Vec<String> {
        self.state().requests_log.clone()
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    fn state(&self) -> StateGuard<'_> {
        StateGuard(self.shared())
    }
}

/// A locked [`State`].
struct StateGuard<'a>(MutexGuard<'a, Shared>);

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0.state
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0.state
    }
}

impl State {
    /// Adds events, as Authentik's API returns them.
    pub fn add_events(&mut self, events: Vec<Value>) {
        self.events.extend(events.into_iter().map(StoredEvent::new));
    }

    /// Deletes every event for which `doomed` is true; returns how many.
    pub fn delete_where(&mut self, mut doomed: impl FnMut(&Value) -> bool) -> usize {
        let before = self.events.len();
        self.events.retain(|event| !doomed(&event.json));
        before - self.events.len()
    }

    /// Replaces all events.
    pub fn set_events(&mut self, events: Vec<Value>) {
        self.events.clear();
        self.add_events(events);
    }

    /// Returns the events, in the order they were added.
    pub fn events(&self) -> Vec<Value> {
        self.events.iter().map(|event| event.json.clone()).collect()
    }

    /// The number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Returns true when there are no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Replaces the user details, keyed by their `pk`.
    pub fn set_users(&mut self, users: Vec<Value>) {
        self.users = users.into_iter().map(|user| (text_of(&user["pk"]), user)).collect();
    }

    /// Answers `GET /api/v3/events/events/` like Authentik 2025.12.
    fn list_events(&self, request: &Request, request_index: usize) -> ResponseTemplate {
        if let Some(refusal) = self.refusal(request) {
            return refusal;
        }
        let query = Query::new(request);
        let actions: Vec<&str> = query.all("actions").filter(|action| !action.is_empty()).collect();
        if let Some(bogus) = actions.iter().find(|action| !ACTIONS.contains(action)) {
            let message =
                format!("Select a valid choice. {bogus} is not one of the available choices.");
            return answer(400, &json!({ "actions": [message] }));
        }

        let mut selected: Vec<&StoredEvent> =
            self.events.iter().filter(|event| query.matches(event, &actions)).collect();
        sort(&mut selected, &query.ordering(), request_index);

        let page_size = query.page_size(self.max_page_size);
        let total_pages = selected.len().div_ceil(page_size).max(1);
        let Some(page) = query.page(total_pages) else {
            return answer(404, &json!({ "detail": "Invalid page." }));
        };
        let start = (page - 1) * page_size;
        let results: Vec<&Value> =
            selected.iter().skip(start).take(page_size).map(|event| &event.json).collect();
        let (start_index, end_index) =
            if results.is_empty() { (0, 0) } else { (start + 1, start + results.len()) };
        let envelope = json!({
            "pagination": {
                "next": if page < total_pages { page + 1 } else { 0 },
                "previous": page - 1,
                "count": selected.len(),
                "current": page,
                "total_pages": total_pages,
                "start_index": start_index,
                "end_index": end_index,
            },
            "results": results,
            "autocomplete": {},
        });
        answer(200, &envelope)
    }

    /// Answers `GET /api/v3/core/users/{pk}/`.
    fn user_detail(&self, request: &Request, pk: &str) -> ResponseTemplate {
        if let Some(refusal) = self.refusal(request) {
            return refusal;
        }
        match self.users.get(pk) {
            Some(user) if self.may_view_users(request) => answer(200, user),
            _ => answer(404, &json!({ "detail": "No User matches the given query." })),
        }
    }

    /// Answers `GET /api/v3/core/users/`: the users the token may view.
    fn list_users(&self, request: &Request) -> ResponseTemplate {
        if let Some(refusal) = self.refusal(request) {
            return refusal;
        }
        let mut users: Vec<&Value> =
            if self.may_view_users(request) { self.users.values().collect() } else { Vec::new() };
        users.sort_by_key(|user| text_of(&user["pk"]));
        let page_size = Query::new(request).page_size(self.max_page_size);
        let results: Vec<&Value> = users.iter().take(page_size).copied().collect();
        let envelope = json!({
            "pagination": {
                "next": if users.len() > page_size { 2 } else { 0 },
                "previous": 0,
                "count": users.len(),
                "current": 1,
                "total_pages": users.len().div_ceil(page_size).max(1),
                "start_index": usize::from(!results.is_empty()),
                "end_index": results.len(),
            },
            "results": results,
            "autocomplete": {},
        });
        answer(200, &envelope)
    }

    /// Returns whether this request's token holds `authentik_core.view_user`.
    fn may_view_users(&self, request: &Request) -> bool {
        let header = request.headers.get("authorization").and_then(|value| value.to_str().ok());
        let key = header.and_then(|header| header.trim().split_once(' ')).map(|(_, key)| key);
        !key.is_some_and(|key| self.tokens_without_view_user.contains(key))
    }

    /// Returns the 403 Authentik gives this request's credentials, if any.
    fn refusal(&self, request: &Request) -> Option<ResponseTemplate> {
        let header = request.headers.get("authorization").and_then(|value| value.to_str().ok());
        let refuse = |detail: &str| Some(answer(403, &json!({ "detail": detail })));
        // As Authentik's `validate_auth`: a header without a space or with
        // another scheme counts as no credentials at all.
        let credentials = header.map(str::trim).and_then(|header| header.split_once(' '));
        let Some((_, key)) =
            credentials.filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        else {
            return refuse("Authentication credentials were not provided.");
        };
        if key.is_empty() || key.contains(' ') {
            return refuse("Malformed header");
        }
        if self.tokens_without_permission.contains(key) {
            return refuse("You do not have permission to perform this action.");
        }
        if key != self.token && !self.tokens_without_view_user.contains(key) {
            return refuse("Token invalid/expired");
        }
        None
    }
}

impl StoredEvent {
    fn new(json: Value) -> Self {
        let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
        let created = json
            .get("created")
            .and_then(Value::as_str)
            .and_then(|created| DateTime::parse_from_rfc3339(created).ok())
            .map(|created| created.with_timezone(&Utc));
        StoredEvent {
            created,
            pk: json.get("pk").map(text_of).unwrap_or_default(),
            action: text("action").unwrap_or_default(),
            app: text("app"),
            client_ip: text("client_ip"),
            json,
        }
    }
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut shared = lock(&self.0);
        let Shared { state, hook, faults } = &mut *shared;
        let path = request.url.path();
        if request.method != wiremock::http::Method::GET {
            let method = request.method.as_str();
            return answer(405, &json!({ "detail": format!("Method \"{method}\" not allowed.") }));
        }
        if path == EVENTS_PATH {
            let request_index = state.events_requests;
            state.events_requests += 1;
            state.requests_log.push(request.url.query().unwrap_or_default().to_owned());
            if let Some(hook) = hook {
                hook(state, request_index);
            }
            return match faults.pop_front() {
                None => state.list_events(request, request_index),
                Some(Fault::Status(status)) => ResponseTemplate::new(status)
                    .set_body_raw(format!("Error ({status})"), "text/plain"),
                Some(Fault::Body(body)) => {
                    ResponseTemplate::new(200).set_body_raw(body, "application/json")
                }
                Some(Fault::Slow(delay)) => {
                    state.list_events(request, request_index).set_delay(delay)
                }
            };
        }
        if path == USERS_PATH {
            return state.list_users(request);
        }
        let user = path.strip_prefix(USERS_PATH).and_then(|rest| rest.strip_suffix('/'));
        match user {
            Some(pk) if !pk.is_empty() && !pk.contains('/') => {
                state.user_requests += 1;
                state.user_detail(request, pk)
            }
            _ => answer(404, &json!({ "detail": "Not found." })),
        }
    }
}

/// The decoded query parameters of one request.
struct Query(Vec<(String, String)>);

impl Query {
    fn new(request: &Request) -> Self {
        Self(
            request
                .url
                .query_pairs()
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The last value of `key`, as Django's `QueryDict.get` gives it.
    fn last(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.0.iter().filter(move |(name, _)| name == key).map(|(_, value)| value.as_str())
    }

    /// Applies `actions=` (exact), `action=` (case-insensitive substring) and
    /// `search=` (no license: a plain text search that never matches the
    /// time queries pollers send, so it is modelled as matching nothing).
    fn matches(&self, event: &StoredEvent, actions: &[&str]) -> bool {
        if !actions.is_empty() && !actions.contains(&event.action.as_str()) {
            return false;
        }
        let action = self.last("action").unwrap_or_default().to_lowercase();
        if !event.action.to_lowercase().contains(&action) {
            return false;
        }
        self.last("search").is_none_or(str::is_empty)
    }

    /// The `ordering` fields; unknown ones are dropped, and `-created`
    /// applies when none remain.
    fn ordering(&self) -> Vec<(SortField, bool)> {
        let fields: Vec<(SortField, bool)> = self
            .last("ordering")
            .unwrap_or_default()
            .split(',')
            .filter_map(|term| {
                let term = term.trim();
                let (descending, name) =
                    term.strip_prefix('-').map_or((false, term), |name| (true, name));
                let field = match name {
                    "created" => SortField::Created,
                    "pk" => SortField::Pk,
                    "action" => SortField::Action,
                    "app" => SortField::App,
                    "client_ip" => SortField::ClientIp,
                    _ => return None,
                };
                Some((field, descending))
            })
            .collect();
        if fields.is_empty() { vec![(SortField::Created, true)] } else { fields }
    }

    /// `page_size`: 20 when missing or not a positive integer, capped at
    /// `max` without a word.
    fn page_size(&self, max: usize) -> usize {
        let asked = self.last("page_size").and_then(|size| size.trim().parse::<usize>().ok());
        asked.filter(|size| *size > 0).unwrap_or(DEFAULT_PAGE_SIZE).min(max)
    }

    /// `page`: 1 when missing, `last` for the last page, `None` (a 404) when
    /// not a number from 1 to `total_pages`.
    fn page(&self, total_pages: usize) -> Option<usize> {
        match self.last("page") {
            None => Some(1),
            Some("last") => Some(total_pages),
            Some(page) => page.trim().parse().ok().filter(|page| (1..=total_pages).contains(page)),
        }
    }
}

/// Sorts by `fields`; what they leave tied comes in an order drawn afresh
/// for each request, as PostgreSQL gives no promise about it.
fn sort(events: &mut Vec<&StoredEvent>, fields: &[(SortField, bool)], request_index: usize) {
    let seed = mix(0x5EED_0000_0000_0000 ^ request_index as u64);
    let mut keyed: Vec<(u64, &StoredEvent)> =
        events.drain(..).map(|event| (mix(seed ^ fnv1a(&event.pk)), event)).collect();
    keyed.sort_by(|(left_tie, left), (right_tie, right)| {
        fields
            .iter()
            .map(|(field, descending)| {
                let order = compare(*field, left, right);
                if *descending { order.reverse() } else { order }
            })
            .find(|order| order.is_ne())
            .unwrap_or_else(|| left_tie.cmp(right_tie))
    });
    events.extend(keyed.into_iter().map(|(_, event)| event));
}

/// Compares one field; missing values sort last ascending, first descending,
/// as PostgreSQL's NULLs do.
fn compare(field: SortField, left: &StoredEvent, right: &StoredEvent) -> Ordering {
    fn nulls_last<T: Ord>(left: Option<T>, right: Option<T>) -> Ordering {
        (left.is_none(), left).cmp(&(right.is_none(), right))
    }
    match field {
        SortField::Created => nulls_last(left.created, right.created),
        SortField::Pk => left.pk.cmp(&right.pk),
        SortField::Action => left.action.cmp(&right.action),
        SortField::App => nulls_last(left.app.as_deref(), right.app.as_deref()),
        SortField::ClientIp => nulls_last(left.client_ip.as_deref(), right.client_ip.as_deref()),
    }
}

/// SplitMix64's finaliser: spreads the bits of `value`.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// Returns a string as itself and any other JSON value as its JSON text, so
/// that a `pk` of `5` and `"5"` key alike.
fn text_of(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

fn answer(status: u16, body: &impl serde::Serialize) -> ResponseTemplate {
    let body = serde_json::to_vec(body).expect("a JSON value serialises");
    ResponseTemplate::new(status).set_body_raw(body, "application/json")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked inside a hook poisons the lock; the state is
    // still usable for the other assertions.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
