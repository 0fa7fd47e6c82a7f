//! Tenant inference: which tenant's timeline an event belongs to.
//!
//! The rule, also written down in `docs/tenants.md`:
//!
//! 1. The identity whose groups count is the one acted as: the impersonated
//!    user during impersonation, otherwise the event's user.
//! 2. Its groups in name order, admin groups removed; the first group whose
//!    name is a tenant slug wins.
//! 3. When that gives no tenant and the event is about a group or a user, the
//!    group's own name (when it is a tenant slug) or that user's groups by
//!    rule 2 decide.
//! 4. Otherwise there is no tenant and the event stays in the global timeline.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The longest tenant slug accepted, in bytes.
const MAX_SLUG_LEN: usize = 64;

/// A tenant's slug, such as `acme`: lower-case ASCII letters, digits, `-` and
/// `_`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantSlug(String);

/// The error for text that is not a tenant slug.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a tenant slug; use lower-case letters, digits, `-` and `_`, at most 64 characters"
)]
pub struct ParseSlugError(String);

impl TenantSlug {
    /// Returns the slug for `text`.
    ///
    /// # Errors
    /// [`ParseSlugError`] when `text` is empty, too long, or holds a character
    /// other than lower-case ASCII letters, digits, `-` and `_`.
    pub fn parse(text: &str) -> Result<Self, ParseSlugError> {
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c);
        let starts_well = text.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if starts_well && text.len() <= MAX_SLUG_LEN && text.chars().all(valid_char) {
            Ok(Self(text.to_owned()))
        } else {
            Err(ParseSlugError(text.to_owned()))
        }
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantSlug {
    type Error = ParseSlugError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<TenantSlug> for String {
    fn from(slug: TenantSlug) -> Self {
        slug.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The set of real tenants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSet(BTreeSet<TenantSlug>);

impl TenantSet {
    /// Returns the set of the given slugs.
    pub fn new(slugs: impl IntoIterator<Item = TenantSlug>) -> Self {
        Self(slugs.into_iter().collect())
    }

    /// Returns the tenant named `name`, if there is one.
    pub fn find(&self, name: &str) -> Option<&TenantSlug> {
        self.0.iter().find(|slug| slug.as_str() == name)
    }

    /// The slugs, in order.
    pub fn iter(&self) -> impl Iterator<Item = &TenantSlug> {
        self.0.iter()
    }

    /// Returns true when there are no tenants.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One entry of the admin-group rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupPattern {
    Exact(String),
    Suffix(String),
    Prefix(String),
}

/// Which groups are admin groups, and so never name a tenant.
///
/// Written as a comma-separated list of names, where `*` at the start or the
/// end of a name matches any text: `authentik Admins,*-admins` is the
/// default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminGroups(Vec<GroupPattern>);

/// The error for an admin-group rule that cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{0}` is not an admin group pattern; use a name, `*suffix` or `prefix*`")]
pub struct ParseAdminGroupsError(String);

impl AdminGroups {
    /// The default rule: `authentik Admins` and every name ending in
    /// `-admins`.
    pub const DEFAULT: &str = "authentik Admins,*-admins";

    /// Returns the rule written in `text`.
    ///
    /// # Errors
    /// [`ParseAdminGroupsError`] for an entry that is only `*`, or that has a
    /// `*` anywhere but at its start or end.
    pub fn parse(text: &str) -> Result<Self, ParseAdminGroupsError> {
        let entries = text.split(',').map(str::trim).filter(|entry| !entry.is_empty());
        entries.map(Self::parse_entry).collect::<Result<_, _>>().map(Self)
    }

    fn parse_entry(entry: &str) -> Result<GroupPattern, ParseAdminGroupsError> {
        let error = || ParseAdminGroupsError(entry.to_owned());
        let pattern = if let Some(suffix) = entry.strip_prefix('*') {
            GroupPattern::Suffix(suffix.to_owned())
        } else if let Some(prefix) = entry.strip_suffix('*') {
            GroupPattern::Prefix(prefix.to_owned())
        } else {
            GroupPattern::Exact(entry.to_owned())
        };
        match &pattern {
            GroupPattern::Exact(text) | GroupPattern::Suffix(text) | GroupPattern::Prefix(text)
                if text.is_empty() || text.contains('*') =>
            {
                Err(error())
            }
            _ => Ok(pattern),
        }
    }

    /// Returns true when `group` is an admin group.
    pub fn matches(&self, group: &str) -> bool {
        self.0.iter().any(|pattern| match pattern {
            GroupPattern::Exact(name) => group == name,
            GroupPattern::Suffix(suffix) => group.ends_with(suffix.as_str()),
            GroupPattern::Prefix(prefix) => group.starts_with(prefix.as_str()),
        })
    }
}

impl Default for AdminGroups {
    fn default() -> Self {
        Self::parse(Self::DEFAULT).expect("the default admin-group rule parses")
    }
}

/// What the source says of a user's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// The user exists and is in these groups, in any order.
    Groups(Vec<String>),
    /// The user no longer exists at the source.
    Gone,
    /// The source answered, but its answer could not be read, for the
    /// reason given. Such a user's groups name no tenant: an event is
    /// better kept without a tenant than not kept, and one unreadable
    /// answer must not hold back every event after it.
    Unreadable(String),
}

/// The inputs of the rule for one event, with the groups already looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About<'a> {
    /// The event is about nothing tenant-shaped.
    Nothing,
    /// The event is about the group of this name.
    Group(&'a str),
    /// The event is about a user with this membership.
    User(&'a Membership),
}

/// Which part of the rule decided the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The groups of the identity acted as (rule 2).
    Identity,
    /// The name of the group the event is about (rule 3).
    AboutGroup,
    /// The groups of the user the event is about (rule 3).
    AboutUser,
    /// Nothing matched (rule 4).
    Global,
}

/// The outcome of tenant inference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInference {
    /// The tenant, or `None` for the global timeline only.
    pub tenant: Option<TenantSlug>,
    /// Which part of the rule decided.
    pub basis: Basis,
}

/// The rule's configuration: the admin groups and the real tenants.
#[derive(Debug, Clone, Default)]
pub struct TenantRule {
    /// Groups that never name a tenant.
    pub admin_groups: AdminGroups,
    /// The real tenants.
    pub tenants: TenantSet,
}

impl TenantRule {
    /// Returns the tenant named by `membership` under rule 2.
    pub fn from_groups(&self, membership: &Membership) -> Option<TenantSlug> {
        let Membership::Groups(groups) = membership else { return None };
        let mut names: Vec<&str> = groups.iter().map(String::as_str).collect();
        names.sort_unstable();
        names
            .into_iter()
            .filter(|name| !self.admin_groups.matches(name))
            .find_map(|name| self.tenants.find(name))
            .cloned()
    }

    /// Infers the tenant of one event from the membership of the identity
    /// acted as (`None` when there is no such identity) and what the event
    /// is about.
    pub fn infer(&self, acted_as: Option<&Membership>, about: About<'_>) -> TenantInference {
        let decided = |tenant, basis| TenantInference { tenant: Some(tenant), basis };
        if let Some(tenant) = acted_as.and_then(|membership| self.from_groups(membership)) {
            return decided(tenant, Basis::Identity);
        }
        match about {
            About::Group(name) => {
                if let Some(tenant) =
                    self.tenants.find(name).filter(|_| !self.admin_groups.matches(name))
                {
                    return decided(tenant.clone(), Basis::AboutGroup);
                }
            }
            About::User(membership) => {
                if let Some(tenant) = self.from_groups(membership) {
                    return decided(tenant, Basis::AboutUser);
                }
            }
            About::Nothing => {}
        }
        TenantInference { tenant: None, basis: Basis::Global }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> TenantRule {
        let tenants = ["acme", "globex", "initech"].map(|slug| TenantSlug::parse(slug).unwrap());
        TenantRule { admin_groups: AdminGroups::default(), tenants: TenantSet::new(tenants) }
    }

    fn groups(names: &[&str]) -> Membership {
        Membership::Groups(names.iter().map(|name| (*name).to_owned()).collect())
    }

    fn check(acted_as: Option<&Membership>, about: About<'_>, expected: Option<&str>) {
        let inference = rule().infer(acted_as, about);
        assert_eq!(inference.tenant.as_ref().map(TenantSlug::as_str), expected);
    }

    #[test]
    fn single_tenant_group_names_the_tenant() {
        check(Some(&groups(&["acme"])), About::Nothing, Some("acme"));
    }

    #[test]
    fn admin_group_that_sorts_first_is_skipped() {
        check(Some(&groups(&["acme-admins", "acme"])), About::Nothing, Some("acme"));
        check(Some(&groups(&["acme", "authentik Admins"])), About::Nothing, Some("acme"));
    }

    #[test]
    fn two_tenant_groups_pick_the_first_in_name_order() {
        check(Some(&groups(&["initech", "globex"])), About::Nothing, Some("globex"));
        check(Some(&groups(&["globex", "initech"])), About::Nothing, Some("globex"));
    }

    #[test]
    fn no_groups_give_no_tenant() {
        check(Some(&groups(&[])), About::Nothing, None);
    }

    #[test]
    fn only_admin_groups_give_no_tenant() {
        check(Some(&groups(&["authentik Admins"])), About::Nothing, None);
        check(Some(&groups(&["platform-admins"])), About::Nothing, None);
    }

    #[test]
    fn groups_that_are_not_tenants_give_no_tenant() {
        check(Some(&groups(&["staff", "everyone"])), About::Nothing, None);
    }

    #[test]
    fn user_that_no_longer_exists_gives_no_tenant() {
        check(Some(&Membership::Gone), About::Nothing, None);
    }

    #[test]
    fn admin_changing_a_tenant_group_lands_in_that_tenant() {
        let admin = groups(&["authentik Admins"]);
        check(Some(&admin), About::Group("acme"), Some("acme"));
        check(Some(&admin), About::Group("acme-admins"), None);
        check(Some(&admin), About::Group("staff"), None);
    }

    #[test]
    fn admin_changing_a_user_lands_in_the_users_tenant() {
        let admin = groups(&["authentik Admins"]);
        check(Some(&admin), About::User(&groups(&["acme-admins", "acme"])), Some("acme"));
        check(Some(&admin), About::User(&Membership::Gone), None);
        check(None, About::User(&groups(&["globex"])), Some("globex"));
    }

    #[test]
    fn acted_as_tenant_wins_over_what_the_event_is_about() {
        check(Some(&groups(&["globex"])), About::Group("acme"), Some("globex"));
    }

    #[test]
    fn inference_says_which_rule_decided() {
        let admin = groups(&["authentik Admins"]);
        assert_eq!(rule().infer(Some(&groups(&["acme"])), About::Nothing).basis, Basis::Identity);
        assert_eq!(rule().infer(Some(&admin), About::Group("acme")).basis, Basis::AboutGroup);
        assert_eq!(rule().infer(None, About::Nothing).basis, Basis::Global);
    }

    #[test]
    fn admin_rule_reads_names_and_wildcards() {
        let admins = AdminGroups::parse("root, *-admins ,ops-*").unwrap();

        assert!(admins.matches("root"));
        assert!(admins.matches("acme-admins"));
        assert!(admins.matches("ops-east"));
        assert!(!admins.matches("acme"));
        assert!(!admins.matches("rooted"));
        assert!(AdminGroups::parse("*").is_err());
        assert!(AdminGroups::parse("a*b").is_err());
    }

    #[test]
    fn tenant_rule_with_custom_admin_groups_skips_them() {
        let mut rule = rule();
        rule.admin_groups = AdminGroups::parse("acme").unwrap();

        let inference = rule.infer(Some(&groups(&["acme", "globex"])), About::Nothing);

        assert_eq!(inference.tenant.unwrap().as_str(), "globex");
    }

    #[test]
    fn slugs_are_validated() {
        assert!(TenantSlug::parse("acme").is_ok());
        assert!(TenantSlug::parse("acme-2_b").is_ok());
        for bad in ["", "Acme", "a b", "-acme", "acme!", &"a".repeat(65)] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
