//! A mock Authentik that serves a large synthetic history for the benchmark.
//!
//! The history is never held in memory: event `i` (0 is the newest) is
//! written on demand from one of the 78 captured smoke events, with its own
//! `pk`, a `created` time 10 s (plus a sub-second jitter) older than event
//! `i - 1`, the matching `expires`, and a user drawn from a pool of
//! [`USER_VARIANTS`] copies of each captured user. The spacing keeps a
//! steady-state walk to one page with the default overlap, as on a server
//! with about 8,600 events a day.
//!
//! Paging follows the real server (`shared/authentik-api.md` (c)):
//! `page_size` falls back to 20 and is capped at 100, `pagination.next` is
//! a page number or 0, a page past the end is a 404 `{"detail":"Invalid
//! page."}`, and every page carries the total `count` and the captured
//! `autocomplete` object. Only newest-first orderings are served; any other
//! is refused with a 400 rather than answered wrongly.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::fixtures;
use crate::mock_authentik::{DEFAULT_MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE, EVENTS_PATH, USERS_PATH};

/// The path that answers the request counters as JSON, for the benchmark.
pub const COUNTERS_PATH: &str = "/_bench/counters";

/// How many users share each captured user's groups.
pub const USER_VARIANTS: u64 = 50;

/// The time between two consecutive synthetic events.
pub const SPACING: TimeDelta = TimeDelta::seconds(10);

/// The offset between two variants of one captured user's `pk`.
const VARIANT_STRIDE: u64 = 1_000;

const PK: &str = "\"@@pk@@\"";
const CREATED: &str = "\"@@created@@\"";
const EXPIRES: &str = "\"@@expires@@\"";
const USER_PK: &str = "\"@@user@@\"";

/// A running synthetic Authentik.
pub struct SyntheticAuthentik {
    server: MockServer,
    history: Arc<History>,
}

/// The synthetic history and the request counters.
pub struct History {
    events: u64,
    newest: DateTime<Utc>,
    token: String,
    templates: Vec<Template>,
    autocomplete: String,
    users: HashMap<u64, Value>,
    events_requests: AtomicU64,
    user_requests: AtomicU64,
}

/// One captured event as text, cut where the per-event values go.
struct Template {
    /// Literal text, with one value between each two pieces.
    pieces: Vec<String>,
    /// The value after each piece but the last.
    slots: Vec<Slot>,
    /// The captured user's `pk`, when the event has one.
    user: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Pk,
    Created,
    Expires,
    User,
}

impl SyntheticAuthentik {
    /// Starts a mock serving `events` synthetic events to `token`, the newest
    /// dated `newest`.
    pub async fn start(events: u64, newest: DateTime<Utc>, token: &str) -> Self {
        let history = Arc::new(History::new(events, newest, token));
        // Recording would keep every request for the life of the server.
        let server = MockServer::builder().disable_request_recording().start().await;
        Mock::given(any()).respond_with(Responder(history.clone())).mount(&server).await;
        Self { server, history }
    }

    /// The server's root URL, such as `http://127.0.0.1:4321`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The history served.
    pub fn history(&self) -> &History {
        &self.history
    }
}

impl History {
    /// Builds the history of `events` events, the newest dated `newest`.
    ///
    /// # Panics
    /// When the captured fixtures are missing or not of the expected shape.
    pub fn new(events: u64, newest: DateTime<Utc>, token: &str) -> Self {
        let templates = fixtures::smoke_events().into_iter().map(Template::new).collect();
        let autocomplete = fixtures::fixture("01_list_page_size_5")["autocomplete"].to_string();
        let users = fixtures::smoke_users()
            .into_iter()
            .map(|user| (user["pk"].as_u64().expect("a captured user has a numeric pk"), user))
            .collect();
        Self {
            events,
            newest,
            token: token.to_owned(),
            templates,
            autocomplete,
            users,
            events_requests: AtomicU64::new(0),
            user_requests: AtomicU64::new(0),
        }
    }

    /// The number of events.
    pub fn len(&self) -> u64 {
        self.events
    }

    /// Returns true when the history is empty.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The number of event-list requests answered so far.
    pub fn events_requests(&self) -> u64 {
        self.events_requests.load(Ordering::Relaxed)
    }

    /// The number of user-detail requests answered so far.
    pub fn user_requests(&self) -> u64 {
        self.user_requests.load(Ordering::Relaxed)
    }

    /// The `pk` of event `index`: a UUID4-shaped string drawn from 122 bits
    /// that are a function of `index`, so distinct in practice.
    pub fn pk(index: u64) -> String {
        let high = mix(index);
        let low = mix(index ^ 0xA5A5_A5A5_A5A5_A5A5);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xFFFF,
            high & 0xFFF,
            0x8000 | ((low >> 48) & 0x3FFF),
            low & 0xFFFF_FFFF_FFFF
        )
    }

    /// The `created` time of event `index`.
    pub fn created(&self, index: u64) -> DateTime<Utc> {
        let jitter = TimeDelta::microseconds((mix(index) % 1_000_000) as i64);
        self.newest - SPACING * i32::try_from(index).expect("fewer than 2^31 events") - jitter
    }

    /// Writes event `index` as Authentik's API returns it.
    pub fn write_event(&self, index: u64, out: &mut String) {
        let template = &self.templates[(index % self.templates.len() as u64) as usize];
        let created = self.created(index);
        // Authentik computes `expires` a moment before `created` is set.
        let expires = created + TimeDelta::days(365) - TimeDelta::microseconds(1_238);
        let variant = (index / self.templates.len() as u64) % USER_VARIANTS;
        for (piece, slot) in template.pieces.iter().zip(&template.slots) {
            out.push_str(piece);
            let _ = match slot {
                Slot::Pk => write!(out, "\"{}\"", Self::pk(index)),
                Slot::Created => write!(out, "\"{}\"", time(created)),
                Slot::Expires => write!(out, "\"{}\"", time(expires)),
                Slot::User => {
                    write!(out, "{}", template.user.unwrap_or_default() + variant * VARIANT_STRIDE)
                }
            };
        }
        out.push_str(template.pieces.last().expect("a template has a last piece"));
    }

    /// Writes the list page `page` (from 1) of `page_size` events, or
    /// returns `None` when there is no such page.
    pub fn write_page(&self, page: u64, page_size: u64, out: &mut String) -> Option<()> {
        let total_pages = self.events.div_ceil(page_size).max(1);
        if page == 0 || page > total_pages {
            return None;
        }
        let start = (page - 1) * page_size;
        let end = (start + page_size).min(self.events);
        let (start_index, end_index) = if start < end { (start + 1, end) } else { (0, 0) };
        let next = if page < total_pages { page + 1 } else { 0 };
        let _ = write!(
            out,
            "{{\"pagination\":{{\"next\":{next},\"previous\":{},\"count\":{},\"current\":{page},\
             \"total_pages\":{total_pages},\"start_index\":{start_index},\"end_index\":{end_index}}},\
             \"results\":[",
            page - 1,
            self.events
        );
        for index in start..end {
            if index > start {
                out.push(',');
            }
            self.write_event(index, out);
        }
        let _ = write!(out, "],\"autocomplete\":{}}}", self.autocomplete);
        Some(())
    }

    /// Returns the details of user `pk`, a variant of a captured user.
    pub fn user(&self, pk: u64) -> Option<Value> {
        let variant = pk / VARIANT_STRIDE;
        if variant >= USER_VARIANTS {
            return None;
        }
        let mut user = self.users.get(&(pk % VARIANT_STRIDE))?.clone();
        user["pk"] = json!(pk);
        Some(user)
    }

    fn answer_events(&self, request: &Request) -> ResponseTemplate {
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let ordering = query.get("ordering").map_or("-created", String::as_str);
        if !ordering.starts_with("-created") {
            let detail = format!("the benchmark's mock serves only newest first, not `{ordering}`");
            return answer(400, json!({ "detail": detail }).to_string());
        }
        let page_size = query
            .get("page_size")
            .and_then(|size| size.parse::<u64>().ok())
            .filter(|size| *size > 0)
            .unwrap_or(DEFAULT_PAGE_SIZE as u64)
            .min(DEFAULT_MAX_PAGE_SIZE as u64);
        let page = query.get("page").map_or(Some(1), |page| page.parse::<u64>().ok());
        let mut body = String::with_capacity(page_size as usize * 900 + 4_096);
        match page.and_then(|page| self.write_page(page, page_size, &mut body)) {
            Some(()) => answer(200, body),
            None => answer(404, json!({ "detail": "Invalid page." }).to_string()),
        }
    }

    fn authorised(&self, request: &Request) -> bool {
        let header = request.headers.get("authorization").and_then(|value| value.to_str().ok());
        header.and_then(|header| header.strip_prefix("Bearer ")) == Some(self.token.as_str())
    }
}

impl Template {
    fn new(mut event: Value) -> Self {
        let user = event.pointer("/user/pk").and_then(Value::as_u64);
        event["pk"] = json!(&PK[1..PK.len() - 1]);
        event["created"] = json!(&CREATED[1..CREATED.len() - 1]);
        event["expires"] = json!(&EXPIRES[1..EXPIRES.len() - 1]);
        if user.is_some() {
            event["user"]["pk"] = json!(&USER_PK[1..USER_PK.len() - 1]);
        }
        let mut rest = event.to_string();
        let mut pieces = Vec::new();
        let mut slots = Vec::new();
        loop {
            let found = [(PK, Slot::Pk), (CREATED, Slot::Created), (EXPIRES, Slot::Expires)]
                .into_iter()
                .chain(user.map(|_| (USER_PK, Slot::User)))
                .filter_map(|(marker, slot)| rest.find(marker).map(|at| (at, marker, slot)))
                .min_by_key(|(at, _, _)| *at);
            let Some((at, marker, slot)) = found else { break };
            pieces.push(rest[..at].to_owned());
            slots.push(slot);
            rest = rest[at + marker.len()..].to_owned();
        }
        pieces.push(rest);
        Self { pieces, slots, user }
    }
}

struct Responder(Arc<History>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let history = &self.0;
        let path = request.url.path();
        if path == COUNTERS_PATH {
            let counters = json!({
                "events": history.events_requests(),
                "users": history.user_requests(),
            });
            return answer(200, counters.to_string());
        }
        if !history.authorised(request) {
            return answer(403, json!({ "detail": "Token invalid/expired" }).to_string());
        }
        if path == EVENTS_PATH {
            history.events_requests.fetch_add(1, Ordering::Relaxed);
            return history.answer_events(request);
        }
        let user = path.strip_prefix(USERS_PATH).and_then(|rest| rest.strip_suffix('/'));
        if let Some(pk) = user {
            history.user_requests.fetch_add(1, Ordering::Relaxed);
            if let Some(user) = pk.parse().ok().and_then(|pk| history.user(pk)) {
                return answer(200, user.to_string());
            }
            return answer(
                404,
                json!({ "detail": "No User matches the given query." }).to_string(),
            );
        }
        answer(404, json!({ "detail": "Not found." }).to_string())
    }
}

/// Returns `at` as Authentik writes it: microseconds and a `Z`.
fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// SplitMix64's finaliser: a bijection that spreads the bits of `value`.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn answer(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into_bytes(), "application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(events: u64) -> History {
        History::new(events, DateTime::from_timestamp(1_800_000_000, 0).unwrap(), "t")
    }

    #[test]
    fn pages_hold_distinct_newest_first_events_of_the_captured_shapes() {
        let history = history(250);
        let mut seen = std::collections::HashSet::new();
        let mut last = None;

        for page in 1..=3 {
            let mut body = String::new();
            history.write_page(page, 100, &mut body).unwrap();
            let page: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(page["pagination"]["count"], 250);
            for event in page["results"].as_array().unwrap() {
                let created = DateTime::parse_from_rfc3339(event["created"].as_str().unwrap())
                    .unwrap()
                    .to_utc();
                assert!(last.is_none_or(|last| created < last), "newest first");
                last = Some(created);
                assert!(seen.insert(event["pk"].as_str().unwrap().to_owned()), "unique pk");
                assert!(event["action"].is_string() && event["context"].is_object());
            }
        }

        assert_eq!(seen.len(), 250);
    }

    #[test]
    fn last_page_says_no_next_and_the_page_after_it_is_missing() {
        let history = history(250);
        let mut body = String::new();

        history.write_page(3, 100, &mut body).unwrap();
        let page: Value = serde_json::from_str(&body).unwrap();

        assert_eq!(page["pagination"]["next"], 0);
        assert_eq!(page["results"].as_array().unwrap().len(), 50);
        assert!(history.write_page(4, 100, &mut String::new()).is_none());
        assert!(history.write_page(0, 100, &mut String::new()).is_none());
    }

    #[test]
    fn every_user_an_event_names_can_be_looked_up() {
        let history = history(78 * USER_VARIANTS);
        let mut body = String::new();

        for index in 0..history.len() {
            body.clear();
            history.write_event(index, &mut body);
            let event: Value = serde_json::from_str(&body).unwrap();
            if let Some(pk) = event.pointer("/user/pk").and_then(Value::as_u64) {
                assert_eq!(history.user(pk).unwrap()["pk"], pk);
            }
        }
    }
}
