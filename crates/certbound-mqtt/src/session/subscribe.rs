//! SUBSCRIBE and UNSUBSCRIBE, with the topic rights of the certificate
//! (the ACL) and of the session's access token.

use tracing::{debug, info, warn};

use super::{CloseReason, Event, Session};
use crate::acl::BROKER_SHARE_GROUP;
use crate::identity::{Authorizer, Identity};
use crate::message::SubOpts;
use crate::topic::{filter_covers, has_control_chars, parse_filter};
use crate::wire::{Packet, SubAck, Subscribe, Unsubscribe, reason};

impl Session {
    pub(super) fn on_subscribe(
        &mut self,
        subscribe: Subscribe,
        identity: &Identity,
        acl: &impl Authorizer,
    ) {
        let sub_id = subscribe.props.subscription_ids.first().copied();
        let mut granted = Vec::new();
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        for f in subscribe.filters {
            if has_control_chars(&f.filter) {
                warn!(filter = ?f.filter, "topic filter with NUL or control characters; closing");
                return self.disconnect(
                    reason::TOPIC_FILTER_INVALID,
                    "control characters in a topic filter",
                    CloseReason::InvalidTopic("control characters in a topic filter".into()),
                );
            }
            let known = self.subscriptions.contains_key(&f.filter);
            let Some(parsed) = parse_filter(&f.filter) else {
                debug!(filter = %f.filter, "invalid topic filter");
                codes.push(reason::TOPIC_FILTER_INVALID);
                continue;
            };
            let shared = parsed.group.is_some();
            if !known && self.subscriptions.len() >= self.config.max_subscriptions {
                warn!(
                    filter = %f.filter,
                    max = self.config.max_subscriptions,
                    "subscription refused: the session holds the most subscriptions allowed"
                );
                self.events.push_back(Event::SubscribeRefused(f.filter));
                codes.push(reason::QUOTA_EXCEEDED);
            } else if !self.may_subscribe(acl, identity, &f.filter) {
                warn!(filter = %f.filter, "subscription refused by the ACL");
                self.events.push_back(Event::SubscribeRefused(f.filter));
                codes.push(reason::NOT_AUTHORIZED);
            } else {
                let opts = SubOpts {
                    qos: f.qos,
                    no_local: f.no_local,
                    retain_as_published: f.retain_as_published,
                    sub_id,
                };
                // Retain Handling (§3.3.1.3); never for shared subscriptions.
                let send_retained = !shared
                    && match f.retain_handling {
                        0 => true,
                        1 => !known,
                        _ => false,
                    };
                codes.push(crate::wire::qos_bits(f.qos));
                self.subscriptions.insert(f.filter.clone(), opts);
                granted.push((f.filter, opts, send_retained));
            }
        }
        if !granted.is_empty() {
            self.events.push_back(Event::Subscribe(granted));
        }
        self.send(&Packet::SubAck(SubAck {
            pkid: subscribe.pkid,
            codes,
            props: crate::wire::Properties::default(),
        }));
    }

    pub(super) fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let codes = unsubscribe
            .filters
            .iter()
            .map(|f| {
                if self.subscriptions.remove(f).is_some() {
                    reason::SUCCESS
                } else {
                    reason::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        self.events
            .push_back(Event::Unsubscribe(unsubscribe.filters));
        self.send(&Packet::UnsubAck(SubAck {
            pkid: unsubscribe.pkid,
            codes,
            props: crate::wire::Properties::default(),
        }));
    }

    /// Whether `identity` may subscribe to `raw`: by the ACL, or because the
    /// session's token grants a filter that covers it (never the broker's
    /// share group).
    fn may_subscribe(&self, acl: &impl Authorizer, identity: &Identity, raw: &str) -> bool {
        if acl.may_subscribe(identity, raw) {
            return true;
        }
        let (Some(token), Some(parsed)) = (&self.token, parse_filter(raw)) else {
            return false;
        };
        parsed.group != Some(BROKER_SHARE_GROUP)
            && token
                .subscribe
                .iter()
                .any(|granted| filter_covers(granted, parsed.filter))
    }

    /// After re-authentication: removes the subscriptions the new token no
    /// longer allows.
    pub(super) fn drop_unauthorized_subscriptions(
        &mut self,
        identity: &Identity,
        acl: &impl Authorizer,
    ) {
        let gone: Vec<String> = self
            .subscriptions
            .keys()
            .filter(|f| !self.may_subscribe(acl, identity, f))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        info!(filters = ?gone, "the new token no longer allows these subscriptions; removed");
        for f in &gone {
            self.subscriptions.remove(f);
        }
        self.events.push_back(Event::Unsubscribe(gone));
    }
}
