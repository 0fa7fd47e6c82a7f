//! Which identity is which: the actor, the identity acted as, the subject.
//!
//! Sources nest identities. During impersonation the user is the admin and
//! `on_behalf_of` the impersonated user. During a flow the user may be the
//! flow's pending user, with the session's own user in `authenticated_as`.
//! Some actions record the user they are about instead of the one acting.

use crate::event::{Principal, SourceEvent};
use crate::record::{Identity, Subject};

/// The identities of one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parties {
    /// Who did it, when known.
    pub actor: Option<Identity>,
    /// The identity the actor acted as, during impersonation.
    pub on_behalf_of: Option<Identity>,
    /// Whom or what the event is about, when that differs from the actor.
    pub subject: Option<Subject>,
}

/// Decides the parties of `event`.
///
/// `user_is_subject` says that the source records the action under the user
/// it is about (Authentik's `password_set`): that user becomes the subject,
/// and the actor is known only when a session user is recorded beside it.
pub fn resolve_parties(event: &SourceEvent, user_is_subject: bool) -> Parties {
    let Some(user) = &event.user else {
        return Parties { subject: model_subject(event), ..Parties::default() };
    };
    let session = session_user(user);
    let acting = session.unwrap_or(user);
    let on_behalf_of = acting.on_behalf_of.clone().or_else(|| user.on_behalf_of.clone());

    if user_is_subject {
        let actor = session.map(|session| session.identity.clone());
        let subject = known(&user.identity).map(|identity| Subject::User(identity.clone()));
        return Parties { actor, on_behalf_of, subject };
    }

    let actor = known(&acting.identity).cloned();
    let pending = session.and_then(|_| known(&user.identity));
    let subject = model_subject(event).or_else(|| pending.map(|user| Subject::User(user.clone())));
    Parties { actor, on_behalf_of, subject }
}

/// Returns the session user recorded beside a flow's pending user, when it is
/// a real user other than the pending one.
fn session_user(user: &Principal) -> Option<&Principal> {
    let session = user.authenticated_as.as_deref()?;
    let real = !session.anonymous && !session.identity.is_empty();
    (real && !session.identity.same_as(&user.identity)).then_some(session)
}

fn known(identity: &Identity) -> Option<&Identity> {
    (!identity.is_empty()).then_some(identity)
}

fn model_subject(event: &SourceEvent) -> Option<Subject> {
    event.model.clone().map(Subject::Model)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::record::ModelSubject;

    fn identity(id: Option<&str>, username: &str) -> Identity {
        Identity {
            id: id.map(str::to_owned),
            username: Some(username.to_owned()),
            email: Some(format!("{username}@example.test")),
        }
    }

    fn principal(id: Option<&str>, username: &str) -> Principal {
        Principal { identity: identity(id, username), ..Principal::default() }
    }

    fn event(user: Option<Principal>) -> SourceEvent {
        SourceEvent {
            external_id: "e".into(),
            at: Utc::now(),
            action: "login".into(),
            user,
            client_ip: None,
            user_agent: None,
            app: None,
            model: None,
            context: serde_json::json!({}),
        }
    }

    fn check(event: &SourceEvent, user_is_subject: bool, expected: Parties) {
        assert_eq!(resolve_parties(event, user_is_subject), expected);
    }

    fn ana() -> Identity {
        identity(Some("5"), "ana")
    }

    fn admin() -> Identity {
        identity(Some("3"), "akadmin")
    }

    #[test]
    fn plain_user_is_the_actor() {
        check(
            &event(Some(principal(Some("5"), "ana"))),
            false,
            Parties { actor: Some(ana()), ..Parties::default() },
        );
    }

    #[test]
    fn empty_user_gives_no_parties() {
        check(&event(None), false, Parties::default());
        check(&event(Some(Principal::default())), false, Parties::default());
    }

    #[test]
    fn impersonating_admin_acts_on_behalf_of_the_user() {
        let mut user = principal(Some("3"), "akadmin");
        user.on_behalf_of = Some(ana());

        check(
            &event(Some(user)),
            false,
            Parties { actor: Some(admin()), on_behalf_of: Some(ana()), subject: None },
        );
    }

    #[test]
    fn write_while_impersonating_in_a_flow_is_the_admins_as_the_user() {
        let mut session = principal(Some("3"), "akadmin");
        session.on_behalf_of = Some(ana());
        let mut user = principal(Some("5"), "ana");
        user.authenticated_as = Some(Box::new(session));

        check(
            &event(Some(user)),
            false,
            Parties {
                actor: Some(admin()),
                on_behalf_of: Some(ana()),
                subject: Some(Subject::User(ana())),
            },
        );
    }

    #[test]
    fn failed_login_for_an_unknown_name_keeps_the_typed_name() {
        let mut user = principal(None, "administrator");
        user.authenticated_as = Some(Box::new(Principal {
            identity: identity(Some("1"), "AnonymousUser"),
            anonymous: true,
            ..Principal::default()
        }));

        check(
            &event(Some(user)),
            false,
            Parties { actor: Some(identity(None, "administrator")), ..Parties::default() },
        );
    }

    #[test]
    fn session_user_that_is_the_pending_user_changes_nothing() {
        let mut user = principal(Some("5"), "ana");
        user.authenticated_as = Some(Box::new(principal(Some("5"), "ana")));

        check(&event(Some(user)), false, Parties { actor: Some(ana()), ..Parties::default() });
    }

    #[test]
    fn pending_user_in_an_admins_flow_is_the_subject() {
        let mut user = principal(Some("5"), "ana");
        user.authenticated_as = Some(Box::new(principal(Some("3"), "akadmin")));

        check(
            &event(Some(user)),
            false,
            Parties {
                actor: Some(admin()),
                subject: Some(Subject::User(ana())),
                ..Parties::default()
            },
        );
    }

    #[test]
    fn password_set_names_the_user_whose_password_changed() {
        check(
            &event(Some(principal(Some("5"), "ana"))),
            true,
            Parties { subject: Some(Subject::User(ana())), ..Parties::default() },
        );
    }

    #[test]
    fn password_set_in_an_admins_flow_names_the_admin_as_actor() {
        let mut user = principal(Some("5"), "ana");
        user.authenticated_as = Some(Box::new(principal(Some("3"), "akadmin")));

        check(
            &event(Some(user)),
            true,
            Parties {
                actor: Some(admin()),
                subject: Some(Subject::User(ana())),
                ..Parties::default()
            },
        );
    }

    #[test]
    fn model_event_is_about_its_model() {
        let model = ModelSubject {
            app: Some("authentik_core".into()),
            model_name: Some("group".into()),
            pk: Some("35273bf1b1214099a9bfb43014894b65".into()),
            name: Some("acme".into()),
        };
        let mut event = event(Some(principal(Some("3"), "akadmin")));
        event.model = Some(model.clone());

        check(
            &event,
            false,
            Parties {
                actor: Some(admin()),
                subject: Some(Subject::Model(model)),
                ..Parties::default()
            },
        );
    }

    #[test]
    fn anonymous_user_is_kept_as_the_actor() {
        let user = Principal {
            identity: identity(Some("1"), "AnonymousUser"),
            anonymous: true,
            ..Principal::default()
        };

        let parties = resolve_parties(&event(Some(user)), false);

        assert_eq!(parties.actor.unwrap().username.as_deref(), Some("AnonymousUser"));
    }
}
