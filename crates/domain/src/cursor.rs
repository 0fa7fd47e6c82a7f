//! Cursor rules: where a source's walk resumes, and when it is done.
//!
//! The sources we read list their events newest first in numbered pages,
//! with no date filter, and their history shifts while we read it: new
//! events push every page down, deletions (expiry, removed users) pull later
//! events up. A walk therefore reads pages newest first from page 1 down to
//! the *floor*, the oldest time it still needs, and uses the total `count`
//! that comes with every page to notice when events were deleted above its
//! position. When the count fell by `d`, events may have moved up by as many
//! as `d` places, past the start of the next page, so the walk steps back
//! `ceil(d / page size) + 1` pages before it goes on. The extra page is for
//! a source that counts and slices in two statements: a deletion between
//! them shifts a page without lowering the count served with it, and shows
//! only in the next page's count. Re-reading is harmless: the store drops
//! duplicates.
//!
//! Step-backs are bounded: two, and one more for every four pages the walk
//! has reached. A history that shrinks on nearly every request (expiry
//! deleting the oldest events one by one while new ones arrive) would
//! otherwise send the walk back as often as it moves forward, for ever.
//! Once they are spent, a shrink no longer sends the walk back; it marks
//! the walk unsure below that page's newest event, and the finished walk
//! leaves its cursor no newer than that, so the next walk reads that part
//! again. Likewise a page past the end, met with no step-backs left, makes
//! the page before it the walk's last.
//!
//! When the count did not fall, additions at least matched deletions. New
//! events arrive at the top, so they push the walk's position down, not up.
//! The one exception is an event that becomes visible late *below* the
//! walk's position while another is deleted above it: the two cancel in the
//! count, and one event at the walk's position can be skipped. Late events
//! are at most a few minutes old when they appear, so the skipped event is
//! that recent too, and the next walk, whose floor lies `overlap` below this
//! walk's top, reads it again. That is why `INGEST_OVERLAP` must cover the
//! longest delay with which events become visible.
//!
//! The cursor's `lastEventAt` moves only when a walk is complete, to the
//! newest event the walk saw on its first page. The next walk's floor is that
//! time less the overlap window, so that an event which becomes visible a few
//! minutes after newer ones is still read. Events dated further in the future
//! than [`WalkPolicy::future_tolerance`] are stored but never become the
//! top, so that one bad clock cannot lift the floor above events still to
//! come.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Where a source's ingest stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// The time of the newest event known to be stored with everything
    /// before it, less late arrivals the overlap window catches.
    pub last_event_at: Option<DateTime<Utc>>,
    /// The id of that event.
    pub last_event_id: Option<String>,
    /// The walk under way, when one did not finish in its tick.
    pub walk: Option<Walk>,
}

/// The state of a walk that spans more than one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Walk {
    /// The newest event the walk saw, which becomes the cursor when the walk
    /// is done; `None` until the walk sees an event.
    pub top: Option<EventKey>,
    /// The oldest time the walk still needs; `None` to read all history.
    pub floor: Option<DateTime<Utc>>,
    /// The page to read next.
    pub next_page: u32,
    /// The source's event count when the last page was read; page numbers
    /// refer to the history as it was then.
    pub count: u64,
    /// The number of events on a full page, as the source serves them.
    pub page_size: u32,
    /// How many times the walk stepped back for a shrinking count.
    #[serde(default)]
    pub step_backs: u32,
    /// The furthest page the walk has read.
    #[serde(default)]
    pub furthest: u32,
    /// When the count shrank once the walk had no step-backs left: the
    /// newest time below which events may have been skipped. The walk then
    /// finishes with its cursor no newer than this, so that the next walk
    /// reads that part again.
    #[serde(default)]
    pub unsure_below: Option<DateTime<Utc>>,
    /// True when the next page read ends the walk: a page past the end was
    /// asked for once the step-backs were spent, so the page before it is
    /// read once more and the walk stops there, instead of bouncing between
    /// the two while the last page comes and goes.
    #[serde(default)]
    pub ends_at_next: bool,
}

impl Walk {
    /// The step-backs a walk may take: two, and one more for every four
    /// pages it has reached. Each costs at most a few pages, so a history
    /// that shrinks on every request still lets the walk get to its end;
    /// without a bound it would step back forever.
    fn may_step_back(&self) -> bool {
        self.step_backs < 2 + self.furthest / 4
    }
}

/// An event's time and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventKey {
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// The source's id for it.
    pub id: String,
}

/// The settings that shape a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkPolicy {
    /// How far below the last cursor a walk reads again, for events that
    /// become visible late.
    pub overlap: TimeDelta,
    /// The page size requested.
    pub page_size: u32,
    /// The current time, for telling future-dated events apart.
    pub now: DateTime<Utc>,
    /// How far in the future an event may be and still become the top.
    pub future_tolerance: TimeDelta,
}

/// What one page response said, as much as the walk needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageObservation<'a> {
    /// The page number that was read.
    pub page: u32,
    /// The source's total event count with this page.
    pub count: u64,
    /// True when the source says there is a page after this one.
    pub has_next: bool,
    /// The number of events on the page, readable or not.
    pub len: usize,
    /// The time and id of each readable event, in page order.
    pub keys: &'a [(DateTime<Utc>, &'a str)],
}

/// What the walk does after a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkStep {
    /// Read the page the cursor names next.
    Continue(Cursor),
    /// The source is caught up; the cursor is final for this walk.
    Done(Cursor),
}

impl WalkStep {
    /// The cursor after the step.
    pub fn cursor(&self) -> &Cursor {
        match self {
            Self::Continue(cursor) | Self::Done(cursor) => cursor,
        }
    }

    /// Returns true when the walk is complete.
    pub fn is_done(&self) -> bool {
        matches!(self, Self::Done(_))
    }
}

impl Cursor {
    /// The page to read next.
    pub fn next_page(&self) -> u32 {
        self.walk.as_ref().map_or(1, |walk| walk.next_page)
    }

    /// The oldest event time the current or next walk needs; `None` when it
    /// needs all history.
    pub fn floor(&self, overlap: TimeDelta) -> Option<DateTime<Utc>> {
        match &self.walk {
            Some(walk) => walk.floor,
            None => self.last_event_at.map(|at| at - overlap),
        }
    }

    /// Returns true when an event at `at` falls in the range the walk reads.
    pub fn wants(&self, at: DateTime<Utc>, overlap: TimeDelta) -> bool {
        self.floor(overlap).is_none_or(|floor| at >= floor)
    }

    /// Returns the cursor after the source said the page the cursor named
    /// does not exist: the history shrank, so the walk tries the page before.
    pub fn page_missing(&self) -> Cursor {
        let mut cursor = self.clone();
        if let Some(walk) = &mut cursor.walk {
            walk.next_page = walk.next_page.saturating_sub(1).max(1);
            if walk.may_step_back() {
                walk.step_backs += 1;
            } else {
                walk.ends_at_next = true;
            }
        }
        cursor
    }

    /// Returns the step after the page in `observation` was read and every
    /// wanted event on it stored.
    pub fn observe(&self, observation: &PageObservation<'_>, policy: &WalkPolicy) -> WalkStep {
        let mut walk = self.walk.clone().unwrap_or_else(|| Walk {
            top: None,
            floor: self.floor(policy.overlap),
            next_page: observation.page,
            count: observation.count,
            page_size: policy.page_size,
            step_backs: 0,
            furthest: 0,
            unsure_below: None,
            ends_at_next: false,
        });
        walk.furthest = walk.furthest.max(observation.page);
        if walk.top.is_none() {
            let latest = policy.now + policy.future_tolerance;
            walk.top = observation
                .keys
                .iter()
                .find(|(at, _)| *at <= latest)
                .map(|(at, id)| EventKey { at: *at, id: (*id).to_owned() });
        }
        if observation.has_next && observation.len > 0 {
            // Sources may cap the page size without saying so; a full page
            // tells the size the page numbers really use.
            walk.page_size = u32::try_from(observation.len).unwrap_or(u32::MAX);
        }

        let shrunk_by = walk.count.saturating_sub(observation.count);
        walk.count = observation.count;
        if shrunk_by > 0 && observation.page > 1 {
            if walk.may_step_back() && !walk.ends_at_next {
                let back = shrunk_by.div_ceil(u64::from(walk.page_size.max(1))) + 1;
                let back = u32::try_from(back).unwrap_or(u32::MAX);
                walk.next_page = observation.page.saturating_sub(back).max(1);
                walk.step_backs += 1;
                return WalkStep::Continue(Cursor { walk: Some(walk), ..self.clone() });
            }
            // Out of step-backs: go on, but remember that events just newer
            // than this page's may have moved past the walk. This page's
            // newest event is older than any of them, so a walk down to it
            // reads them all.
            let newest_here = observation.keys.first().map(|(at, _)| *at).or(walk.floor);
            walk.unsure_below = match (walk.unsure_below, newest_here) {
                (Some(unsure), Some(here)) => Some(unsure.min(here)),
                (unsure, here) => unsure.or(here),
            };
        }

        let oldest = observation.keys.last().map(|(at, _)| *at);
        let below_floor = matches!((walk.floor, oldest), (Some(floor), Some(at)) if at < floor);
        if !observation.has_next || below_floor || walk.ends_at_next {
            return WalkStep::Done(self.finish(walk));
        }
        walk.next_page = observation.page + 1;
        WalkStep::Continue(Cursor { walk: Some(walk), ..self.clone() })
    }

    fn finish(&self, walk: Walk) -> Cursor {
        if let Some(unsure) = walk.unsure_below {
            // Not every event above the floor is known stored: the cursor
            // goes no newer than the point below which one may be missing
            // (it never goes backwards, and the store keeps it from doing
            // so either), and the next walk reads down to there again.
            let at = walk.top.as_ref().map_or(unsure, |top| top.at.min(unsure));
            let at = self.last_event_at.map_or(at, |last| last.max(at));
            let id = if self.last_event_at == Some(at) { self.last_event_id.clone() } else { None };
            return Cursor { last_event_at: Some(at), last_event_id: id, walk: None };
        }
        match walk.top {
            Some(top) if self.last_event_at.is_none_or(|last| top.at >= last) => {
                Cursor { last_event_at: Some(top.at), last_event_id: Some(top.id), walk: None }
            }
            // A walk that saw nothing newer keeps the cursor where it was.
            _ => Cursor { walk: None, ..self.clone() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
    }

    fn policy() -> WalkPolicy {
        WalkPolicy {
            overlap: TimeDelta::minutes(5),
            page_size: 3,
            now: at(1_000),
            future_tolerance: TimeDelta::minutes(5),
        }
    }

    fn observe(
        cursor: &Cursor,
        page: u32,
        count: u64,
        has_next: bool,
        minutes: &[i64],
    ) -> WalkStep {
        let keys: Vec<(DateTime<Utc>, String)> =
            minutes.iter().map(|minute| (at(*minute), format!("e{minute}"))).collect();
        let keys: Vec<(DateTime<Utc>, &str)> =
            keys.iter().map(|(at, id)| (*at, id.as_str())).collect();
        let observation = PageObservation { page, count, has_next, len: keys.len(), keys: &keys };
        cursor.observe(&observation, &policy())
    }

    fn settled(minute: i64) -> Cursor {
        Cursor {
            last_event_at: Some(at(minute)),
            last_event_id: Some(format!("e{minute}")),
            walk: None,
        }
    }

    #[test]
    fn fresh_cursor_walks_all_history() {
        let cursor = Cursor::default();
        assert_eq!(cursor.next_page(), 1);
        assert_eq!(cursor.floor(TimeDelta::minutes(5)), None);

        let step = observe(&cursor, 1, 7, true, &[90, 80, 70]);

        assert!(!step.is_done());
        assert_eq!(step.cursor().next_page(), 2);
        assert_eq!(step.cursor().last_event_at, None, "cursor moves only at the end");
    }

    #[test]
    fn walk_ends_on_the_last_page_at_its_top() {
        let step = observe(&Cursor::default(), 1, 7, true, &[90, 80, 70]);
        let step = observe(step.cursor(), 2, 7, true, &[60, 50, 40]);
        let step = observe(step.cursor(), 3, 7, false, &[30]);

        assert_eq!(step, WalkStep::Done(settled(90)));
    }

    #[test]
    fn walk_ends_once_a_page_reaches_below_the_floor() {
        let cursor = settled(60);

        let step = observe(&cursor, 1, 100, true, &[70, 62, 54]);

        assert_eq!(step, WalkStep::Done(settled(70)));
    }

    #[test]
    fn event_exactly_at_the_floor_does_not_end_the_walk() {
        let cursor = settled(60);

        let step = observe(&cursor, 1, 100, true, &[70, 62, 55]);

        assert_eq!(step.cursor().next_page(), 2, "events sharing the floor time may continue");
        assert!(!step.is_done());
    }

    #[test]
    fn floor_is_the_last_event_less_the_overlap() {
        let cursor = settled(60);

        assert_eq!(cursor.floor(TimeDelta::minutes(5)), Some(at(55)));
        assert!(cursor.wants(at(55), TimeDelta::minutes(5)));
        assert!(!cursor.wants(at(54), TimeDelta::minutes(5)));
    }

    #[test]
    fn nothing_new_keeps_the_cursor() {
        let cursor = settled(60);

        let step = observe(&cursor, 1, 100, true, &[60, 50, 40]);

        assert_eq!(step, WalkStep::Done(cursor));
    }

    #[test]
    fn empty_history_keeps_an_empty_cursor() {
        let step = observe(&Cursor::default(), 1, 0, false, &[]);

        assert_eq!(step, WalkStep::Done(Cursor::default()));
    }

    #[test]
    fn deletions_above_the_position_step_the_walk_back() {
        let step = observe(&Cursor::default(), 1, 30, true, &[90, 89, 88]);
        let step = observe(step.cursor(), 2, 30, true, &[87, 86, 85]);
        let step = observe(step.cursor(), 3, 30, true, &[84, 83, 82]);
        assert_eq!(step.cursor().next_page(), 4);

        // Four events vanished: page 4 may now start up to four places late.
        let step = observe(step.cursor(), 4, 26, true, &[77, 76, 75]);

        assert!(!step.is_done());
        assert_eq!(step.cursor().next_page(), 1, "steps back ceil(4 / 3) + 1 pages");
        assert_eq!(step.cursor().walk.as_ref().unwrap().count, 26);
    }

    #[test]
    fn one_deletion_steps_back_two_pages_for_a_count_that_lagged() {
        let mut step = observe(&Cursor::default(), 1, 30, true, &[90, 89, 88]);
        for page in 2..=4 {
            step = observe(step.cursor(), page, 30, true, &[80, 79, 78]);
        }

        let step = observe(step.cursor(), 5, 29, true, &[70, 69, 68]);

        assert_eq!(step.cursor().next_page(), 3);
    }

    #[test]
    fn deletion_does_not_end_the_walk_even_below_the_floor() {
        let cursor = settled(60);
        let step = observe(&cursor, 1, 30, true, &[90, 80, 70]);

        let step = observe(step.cursor(), 2, 29, true, &[50, 40, 30]);

        assert!(!step.is_done(), "the page before may now hold an unread event");
        assert_eq!(step.cursor().next_page(), 1);
    }

    #[test]
    fn additions_during_a_walk_move_it_on() {
        let step = observe(&Cursor::default(), 1, 30, true, &[90, 89, 88]);

        let step = observe(step.cursor(), 2, 35, true, &[89, 88, 87]);

        assert_eq!(step.cursor().next_page(), 3);
    }

    #[test]
    fn shrinking_count_on_the_first_page_needs_no_step_back() {
        let step = observe(&Cursor::default(), 1, 30, true, &[90, 89, 88]);
        let mut cursor = step.cursor().clone();
        cursor.walk.as_mut().unwrap().next_page = 1;

        let step = observe(&cursor, 1, 20, true, &[90, 89, 88]);

        assert_eq!(step.cursor().next_page(), 2);
    }

    #[test]
    fn missing_page_sends_the_walk_one_page_back() {
        let step = observe(&Cursor::default(), 1, 30, true, &[90, 89, 88]);
        let step = observe(step.cursor(), 2, 30, true, &[87, 86, 85]);

        let cursor = step.cursor().page_missing();

        assert_eq!(cursor.next_page(), 2);
        assert_eq!(Cursor::default().page_missing(), Cursor::default());
    }

    #[test]
    fn capped_page_size_is_learned_from_a_full_page() {
        let step = observe(&Cursor::default(), 1, 30, true, &[90, 89]);

        assert_eq!(step.cursor().walk.as_ref().unwrap().page_size, 2);
    }

    #[test]
    fn future_dated_event_never_becomes_the_top() {
        let step = observe(&Cursor::default(), 1, 3, false, &[5_000, 90, 80]);

        assert_eq!(step, WalkStep::Done(settled(90)));
    }

    #[test]
    fn walk_state_round_trips_through_json() {
        let step = observe(&Cursor::default(), 1, 30, true, &[90, 89, 88]);

        let json = serde_json::to_string(step.cursor()).unwrap();

        assert!(json.contains("\"lastEventAt\""), "{json}");
        assert_eq!(&serde_json::from_str::<Cursor>(&json).unwrap(), step.cursor());
    }

    #[test]
    fn walk_stops_stepping_back_when_out_of_step_backs_and_keeps_its_cursor_below_the_doubt() {
        let mut cursor = Cursor::default();
        let mut count = 30;
        // Every second page shows a smaller count, forever.
        for _ in 0..2 {
            cursor = observe(&cursor, 1, count, true, &[100, 99, 98]).cursor().clone();
            count -= 1;
            let step = observe(&cursor, 2, count, true, &[97, 96, 95]);
            assert_eq!(step.cursor().next_page(), 1, "a step-back while some are left");
            cursor = step.cursor().clone();
        }
        cursor = observe(&cursor, 1, count, true, &[100, 99, 98]).cursor().clone();
        count -= 1;

        let step = observe(&cursor, 2, count, true, &[97, 96, 95]);

        assert_eq!(step.cursor().next_page(), 3, "no step-back once they are spent");
        let walk = step.cursor().walk.clone().unwrap();
        assert_eq!((walk.step_backs, walk.unsure_below), (2, Some(at(97))));
        let done = observe(step.cursor(), 3, count, false, &[94, 93]);
        assert!(done.is_done());
        assert_eq!(done.cursor().last_event_at, Some(at(97)));
    }

    #[test]
    fn walk_ends_after_the_page_before_a_missing_one_once_out_of_step_backs() {
        let mut walk_cursor =
            observe(&Cursor::default(), 1, 9, true, &[100, 99, 98]).cursor().clone();
        walk_cursor.walk.as_mut().unwrap().step_backs = 2;

        let missing = walk_cursor.page_missing();
        let step = observe(&missing, 1, 9, true, &[100, 99, 98]);

        assert!(missing.walk.as_ref().unwrap().ends_at_next);
        assert!(step.is_done());
    }
}
