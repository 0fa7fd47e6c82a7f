//! Verbs: the dotted names the timeline files events under.
//!
//! A source's action is untrusted, open-ended text. Known actions map to a
//! chosen verb; every other action still gets a verb, built from the action
//! itself and made safe, so that no event is ever dropped for its action.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest verb a fallthrough produces, in bytes.
pub const MAX_VERB_LEN: usize = 64;

/// A dotted verb, such as `authentik.login`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Verb(String);

impl Verb {
    /// Returns a verb from text that is already known to be one, such as a
    /// verb read back from a store.
    pub fn new_unchecked(verb: impl Into<String>) -> Self {
        Self(verb.into())
    }

    /// The verb as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How one source's actions become verbs.
#[derive(Debug, Clone, Copy)]
pub struct ActionMap {
    prefix: &'static str,
    table: &'static [(&'static str, &'static str)],
    user_is_subject: &'static [&'static str],
}

/// The Authentik actions with a verb of their own; the rest fall through.
const AUTHENTIK: &[(&str, &str)] = &[
    ("login", "authentik.login"),
    ("login_failed", "authentik.login_failed"),
    ("logout", "authentik.logout"),
    ("password_set", "authentik.password_changed"),
    ("user_write", "authentik.user_written"),
    ("suspicious_request", "authentik.suspicious_request"),
    ("secret_view", "authentik.secret_viewed"),
    ("secret_rotate", "authentik.secret_rotated"),
    ("invitation_used", "authentik.invitation_used"),
    ("authorize_application", "authentik.application_authorized"),
    ("source_linked", "authentik.source_linked"),
    ("impersonation_started", "authentik.impersonation_started"),
    ("impersonation_ended", "authentik.impersonation_ended"),
    ("model_created", "authentik.model_created"),
    ("model_updated", "authentik.model_updated"),
    ("model_deleted", "authentik.model_deleted"),
];

impl ActionMap {
    /// Returns the map for Authentik's event actions.
    pub const fn authentik() -> Self {
        // Authentik records `password_set` under the user whose password
        // changed, not under whoever changed it.
        Self { prefix: "authentik", table: AUTHENTIK, user_is_subject: &["password_set"] }
    }

    /// Returns a map with the given verb prefix, table of `(action, verb)`
    /// pairs, and the actions whose user is the subject, not the actor.
    pub const fn new(
        prefix: &'static str,
        table: &'static [(&'static str, &'static str)],
        user_is_subject: &'static [&'static str],
    ) -> Self {
        Self { prefix, table, user_is_subject }
    }

    /// Returns true when the source records `action` under the user it is
    /// about rather than the user who did it.
    pub fn user_is_subject(&self, action: &str) -> bool {
        self.user_is_subject.contains(&action)
    }

    /// The actions that have a verb of their own, with their verbs.
    pub fn known(&self) -> &'static [(&'static str, &'static str)] {
        self.table
    }

    /// Returns the verb for `action`.
    ///
    /// A known action gets its table verb. Any other action becomes
    /// `<prefix>.<action>`, lower-cased, with every character outside
    /// `[a-z0-9_]` replaced by `_`, cut to [`MAX_VERB_LEN`] bytes.
    pub fn verb(&self, action: &str) -> Verb {
        if let Some((_, verb)) = self.table.iter().find(|(known, _)| *known == action) {
            return Verb((*verb).to_owned());
        }
        let budget = MAX_VERB_LEN - self.prefix.len() - 1;
        let mut verb = String::with_capacity(MAX_VERB_LEN);
        verb.push_str(self.prefix);
        verb.push('.');
        verb.extend(action.chars().take(budget).map(|c| match c.to_ascii_lowercase() {
            lower @ ('a'..='z' | '0'..='9' | '_') => lower,
            _ => '_',
        }));
        if action.is_empty() {
            // An empty action still deserves a readable verb; it cannot be
            // mistaken for a real action because actions are never `_`.
            verb.push('_');
        }
        Verb(verb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(action: &str, expected: &str) {
        assert_eq!(ActionMap::authentik().verb(action).as_str(), expected, "action {action:?}");
    }

    #[test]
    fn every_mapped_action_gets_its_verb() {
        let table = [
            ("login", "authentik.login"),
            ("login_failed", "authentik.login_failed"),
            ("logout", "authentik.logout"),
            ("password_set", "authentik.password_changed"),
            ("user_write", "authentik.user_written"),
            ("suspicious_request", "authentik.suspicious_request"),
            ("secret_view", "authentik.secret_viewed"),
            ("secret_rotate", "authentik.secret_rotated"),
            ("invitation_used", "authentik.invitation_used"),
            ("authorize_application", "authentik.application_authorized"),
            ("source_linked", "authentik.source_linked"),
            ("impersonation_started", "authentik.impersonation_started"),
            ("impersonation_ended", "authentik.impersonation_ended"),
            ("model_created", "authentik.model_created"),
            ("model_updated", "authentik.model_updated"),
            ("model_deleted", "authentik.model_deleted"),
        ];
        for (action, verb) in table {
            check(action, verb);
        }
        assert_eq!(ActionMap::authentik().known().len(), 16);
    }

    #[test]
    fn unknown_actions_fall_through_to_prefixed_verbs() {
        check("flow_execution", "authentik.flow_execution");
        check("system_exception", "authentik.system_exception");
        check("review_attested", "authentik.review_attested");
        check("custom_backup_done", "authentik.custom_backup_done");
    }

    #[test]
    fn fallthrough_lower_cases_ascii_letters() {
        check("LOGIN", "authentik.login");
        check("Custom_Thing", "authentik.custom_thing");
    }

    #[test]
    fn fallthrough_replaces_each_unsafe_character() {
        check("custom_a b", "authentik.custom_a_b");
        check("custom.a.b", "authentik.custom_a_b");
        check("custom_$where", "authentik.custom__where");
        check("custom_é", "authentik.custom__");
        check("custom_日本", "authentik.custom___");
        check("custom_\u{0}\n", "authentik.custom___");
        check("custom-x/y", "authentik.custom_x_y");
    }

    #[test]
    fn fallthrough_caps_the_verb_length() {
        let long = format!("custom_{}", "a".repeat(193));
        assert_eq!(long.len(), 200);

        let verb = ActionMap::authentik().verb(&long);

        assert_eq!(verb.as_str().len(), MAX_VERB_LEN);
        assert!(verb.as_str().starts_with("authentik.custom_aaa"));
        let wide = "日".repeat(200);
        assert_eq!(ActionMap::authentik().verb(&wide).as_str().len(), MAX_VERB_LEN);
    }

    #[test]
    fn fallthrough_of_an_empty_action_is_still_a_verb() {
        check("", "authentik._");
    }
}
