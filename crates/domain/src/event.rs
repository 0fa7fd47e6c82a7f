//! The event a source adapter hands over, and how it becomes an audit record.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::identity::resolve_parties;
use crate::record::{AuditRecord, Identity, ModelSubject, SourceName};
use crate::tenant::{About, Membership, TenantInference, TenantRule};
use crate::verb::ActionMap;

/// The client address sources send when there was no request.
const PLACEHOLDER_IP: &str = "255.255.255.255";

/// A user as a source records it on an event, with the identities nested in
/// it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// The user itself.
    pub identity: Identity,
    /// True for the source's stand-in for nobody logged in.
    pub anonymous: bool,
    /// The impersonated user, while this user impersonates someone.
    pub on_behalf_of: Option<Identity>,
    /// The session's own user, when this user is a flow's pending user.
    pub authenticated_as: Option<Box<Principal>>,
}

/// One event as a source adapter parsed it, before any rule ran.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceEvent {
    /// The source's id for the event.
    pub external_id: String,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// The source's raw action.
    pub action: String,
    /// The user on the event; `None` when the source names nobody.
    pub user: Option<Principal>,
    /// The client address as sent.
    pub client_ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The part of the source that recorded the event.
    pub app: Option<String>,
    /// The model the event is about, for events that change one.
    pub model: Option<ModelSubject>,
    /// The source's own context, kept whole.
    pub context: serde_json::Value,
}

impl SourceEvent {
    /// The identity whose groups decide the tenant: the impersonated user
    /// when there is one, otherwise the event's user, when it has an id.
    pub fn acted_as(&self) -> Option<&str> {
        let user = self.user.as_ref()?;
        let identity = user.on_behalf_of.as_ref().unwrap_or(&user.identity);
        identity.id.as_deref()
    }

    /// The user the event is about, when it changes a user model.
    pub fn about_user(&self) -> Option<&str> {
        let model = self.model.as_ref()?;
        (model.model_name.as_deref() == Some("user")).then_some(model.pk.as_deref()).flatten()
    }

    /// The group the event is about, when it changes a group model.
    pub fn about_group(&self) -> Option<&str> {
        let model = self.model.as_ref()?;
        (model.model_name.as_deref() == Some("group")).then_some(model.name.as_deref()).flatten()
    }

    /// The user ids whose groups the tenant rule may need for this event.
    pub fn group_lookups(&self) -> impl Iterator<Item = &str> {
        self.acted_as().into_iter().chain(self.about_user())
    }

    /// Infers the tenant of this event, given the memberships of the users
    /// named by [`group_lookups`](Self::group_lookups). A user missing from
    /// `memberships` counts as having no groups.
    pub fn infer_tenant(
        &self,
        rule: &TenantRule,
        memberships: &HashMap<String, Membership>,
    ) -> TenantInference {
        let acted_as = self.acted_as().and_then(|id| memberships.get(id));
        let about = match (self.about_group(), self.about_user()) {
            (Some(group), _) => About::Group(group),
            (None, Some(user)) => memberships.get(user).map_or(About::Nothing, About::User),
            (None, None) => About::Nothing,
        };
        rule.infer(acted_as, about)
    }
}

/// Everything [`build_record`] needs besides the event.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext<'a> {
    /// The source the event came from.
    pub source: &'a SourceName,
    /// How the source's actions become verbs.
    pub actions: &'a ActionMap,
    /// The tenant rule.
    pub tenants: &'a TenantRule,
    /// The memberships of the users the tenant rule needs.
    pub memberships: &'a HashMap<String, Membership>,
    /// When the record is built.
    pub recorded_at: DateTime<Utc>,
}

/// Builds the audit record of `event`.
pub fn build_record(event: SourceEvent, context: &RecordContext<'_>) -> AuditRecord {
    let parties = resolve_parties(&event, context.actions.user_is_subject(&event.action));
    let tenant = event.infer_tenant(context.tenants, context.memberships);
    let ip = event.client_ip.filter(|ip| !ip.is_empty() && ip != PLACEHOLDER_IP);
    AuditRecord {
        source: context.source.clone(),
        external_id: Some(event.external_id),
        at: event.at,
        recorded_at: context.recorded_at,
        verb: context.actions.verb(&event.action),
        action: event.action,
        actor: parties.actor,
        on_behalf_of: parties.on_behalf_of,
        subject: parties.subject,
        tenant_slug: tenant.tenant,
        ip,
        user_agent: event.user_agent,
        app: event.app,
        context: event.context,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{AdminGroups, TenantSet, TenantSlug};

    fn event() -> SourceEvent {
        SourceEvent {
            external_id: "e1".into(),
            at: Utc::now(),
            action: "login".into(),
            user: Some(Principal {
                identity: Identity { id: Some("5".into()), ..Identity::default() },
                ..Principal::default()
            }),
            client_ip: Some("203.0.113.10".into()),
            user_agent: None,
            app: None,
            model: None,
            context: serde_json::json!({"auth_method": "password"}),
        }
    }

    fn build(event: SourceEvent, memberships: &[(&str, &[&str])]) -> AuditRecord {
        let memberships = memberships
            .iter()
            .map(|(id, groups)| {
                let groups = groups.iter().map(|group| (*group).to_owned()).collect();
                ((*id).to_owned(), Membership::Groups(groups))
            })
            .collect();
        let rule = TenantRule {
            admin_groups: AdminGroups::default(),
            tenants: TenantSet::new([TenantSlug::parse("acme").unwrap()]),
        };
        let source = SourceName::new("authentik");
        let context = RecordContext {
            source: &source,
            actions: &ActionMap::authentik(),
            tenants: &rule,
            memberships: &memberships,
            recorded_at: Utc::now(),
        };
        build_record(event, &context)
    }

    #[test]
    fn record_keeps_the_raw_action_and_context() {
        let record = build(event(), &[("5", &["acme"])]);

        assert_eq!(record.verb.as_str(), "authentik.login");
        assert_eq!(record.action, "login");
        assert_eq!(record.context["auth_method"], "password");
        assert_eq!(record.external_id.as_deref(), Some("e1"));
        assert_eq!(record.tenant_slug.unwrap().as_str(), "acme");
        assert_eq!(record.ip.as_deref(), Some("203.0.113.10"));
    }

    #[test]
    fn placeholder_and_missing_ips_are_dropped() {
        for ip in [Some("255.255.255.255"), None, Some("")] {
            let mut event = event();
            event.client_ip = ip.map(str::to_owned);

            assert_eq!(build(event, &[]).ip, None, "ip {ip:?}");
        }
    }

    #[test]
    fn impersonated_users_groups_decide_the_tenant() {
        let mut event = event();
        let user = event.user.as_mut().unwrap();
        user.identity.id = Some("3".into());
        user.on_behalf_of = Some(Identity { id: Some("5".into()), ..Identity::default() });

        let record = build(event, &[("3", &["authentik Admins"]), ("5", &["acme"])]);

        assert_eq!(record.tenant_slug.unwrap().as_str(), "acme");
    }

    #[test]
    fn lookups_name_the_acted_as_user_and_the_user_changed() {
        let mut event = event();
        event.model = Some(ModelSubject {
            app: None,
            model_name: Some("user".into()),
            pk: Some("9".into()),
            name: None,
        });

        assert_eq!(event.group_lookups().collect::<Vec<_>>(), ["5", "9"]);
    }

    #[test]
    fn user_without_an_id_needs_no_lookup() {
        let mut event = event();
        event.user.as_mut().unwrap().identity.id = None;

        assert_eq!(event.group_lookups().count(), 0);
    }
}
