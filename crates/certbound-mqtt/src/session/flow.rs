//! PUBLISH both ways: QoS 0, 1 and 2, topic aliases, flow control, the
//! client's Maximum Packet Size, and the messages a resumed session resends.

use std::sync::Arc;
use std::time::Instant;

use rumqttc::QoS;
use tracing::{debug, warn};

use super::{CloseReason, Event, Outgoing, Session, Stage};
use crate::identity::{Authorizer, Identity};
use crate::message::{AppProps, Message};
use crate::topic::valid_topic;
use crate::wire::{self, Ack, Level, Packet, Properties, Publish, reason};

impl Session {
    pub(super) fn on_publish(
        &mut self,
        mut publish: Publish,
        identity: &Identity,
        now: Instant,
        acl: &impl Authorizer,
    ) {
        if !publish.props.subscription_ids.is_empty() {
            return self.protocol_error("PUBLISH from a client with a subscription identifier");
        }
        if let Some(alias) = publish.props.topic_alias {
            if alias == 0 || alias > self.config.topic_alias_max {
                warn!(alias, "invalid topic alias; closing");
                return self.disconnect(
                    reason::TOPIC_ALIAS_INVALID,
                    &format!(
                        "topic alias {alias} is outside 1..={}",
                        self.config.topic_alias_max
                    ),
                    CloseReason::Protocol("topic alias invalid".into()),
                );
            }
            if publish.topic.is_empty() {
                match self.aliases_in.get(&alias) {
                    Some(topic) => publish.topic.clone_from(topic),
                    None => {
                        return self.disconnect(
                            reason::PROTOCOL_ERROR,
                            &format!("topic alias {alias} was never set on this connection"),
                            CloseReason::Protocol("unknown topic alias".into()),
                        );
                    }
                }
            } else if valid_topic(&publish.topic) {
                self.aliases_in.insert(alias, publish.topic.clone());
            }
        }
        if !valid_topic(&publish.topic) {
            warn!(
                topic = ?publish.topic,
                "refusing PUBLISH: invalid topic name (empty, wildcards, NUL or control characters); closing"
            );
            return self.disconnect(
                reason::TOPIC_NAME_INVALID,
                "invalid topic name",
                CloseReason::InvalidTopic("invalid topic name in PUBLISH".into()),
            );
        }
        let (qos, pkid) = (publish.qos, publish.pkid);
        if qos == QoS::ExactlyOnce && self.incoming_qos2.contains(&pkid) {
            // A retransmission of a message already routed (method B, §4.3.3).
            return self.ack_rec(pkid, reason::SUCCESS);
        }
        if qos == QoS::ExactlyOnce
            && self.incoming_qos2.len() >= usize::from(self.config.receive_maximum)
        {
            warn!("client sent more QoS 2 messages than the Receive Maximum; closing");
            return self.disconnect(
                reason::RECEIVE_MAXIMUM_EXCEEDED,
                "more unreleased QoS 2 messages than the Receive Maximum",
                CloseReason::Protocol("receive maximum exceeded".into()),
            );
        }
        if !self.may_publish(acl, identity, &publish.topic) {
            warn!(topic = %publish.topic, "PUBLISH refused by the ACL");
            self.events
                .push_back(Event::PublishRefused(publish.topic.clone()));
            let text = format!("publishing to {:?} is not allowed", publish.topic);
            // PUBACK/PUBREC carry the reason code only: the Paho suite's
            // codec (and clients built like it) refuse properties there.
            return match (self.level, qos) {
                (Level::V5, QoS::AtLeastOnce) => self.ack_pub(pkid, reason::NOT_AUTHORIZED),
                (Level::V5, QoS::ExactlyOnce) => self.ack_rec(pkid, reason::NOT_AUTHORIZED),
                // 3.1.1 has no negative PUBACK; MQTT 5 QoS 0 has no ack at all.
                _ => self.disconnect(
                    reason::NOT_AUTHORIZED,
                    &text,
                    CloseReason::UnauthorizedPublish,
                ),
            };
        }
        let mut message = Message::new(&publish.topic, publish.payload, qos)
            .with_expiry_interval(publish.props.message_expiry, now);
        message.retain = publish.retain;
        message.props = AppProps::from_props(&publish.props);
        self.events.push_back(Event::Publish(message));
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.ack_pub(pkid, reason::SUCCESS),
            QoS::ExactlyOnce => {
                self.incoming_qos2.insert(pkid);
                self.ack_rec(pkid, reason::SUCCESS);
            }
        }
    }

    fn ack_pub(&mut self, pkid: u16, code: u8) {
        self.send(&Packet::PubAck(Ack {
            pkid,
            code,
            props: Properties::default(),
        }));
    }

    fn ack_rec(&mut self, pkid: u16, code: u8) {
        self.send(&Packet::PubRec(Ack {
            pkid,
            code,
            props: Properties::default(),
        }));
    }

    pub(super) fn on_puback(&mut self, pkid: u16) {
        match self.inflight.get(&pkid).map(|o| o.stage) {
            Some(Stage::PubAck) => {
                self.inflight.remove(&pkid);
            }
            other => debug!(pkid, ?other, "PUBACK for a packet id not awaiting one"),
        }
    }

    pub(super) fn on_pubrec(&mut self, ack: &Ack) {
        let pkid = ack.pkid;
        match self.inflight.get_mut(&pkid) {
            Some(out) if out.stage == Stage::PubRec => {
                if ack.code >= 0x80 {
                    // The client refused the message: the exchange ends here.
                    self.inflight.remove(&pkid);
                    return;
                }
                out.stage = Stage::PubComp;
                self.send_pubrel(pkid, reason::SUCCESS);
            }
            _ => self.send_pubrel(pkid, reason::PACKET_ID_NOT_FOUND),
        }
    }

    pub(super) fn on_pubrel(&mut self, pkid: u16) {
        let code = if self.incoming_qos2.remove(&pkid) {
            reason::SUCCESS
        } else {
            reason::PACKET_ID_NOT_FOUND
        };
        self.send(&Packet::PubComp(Ack {
            pkid,
            code,
            props: Properties::default(),
        }));
    }

    pub(super) fn on_pubcomp(&mut self, pkid: u16) {
        match self.inflight.get(&pkid).map(|o| o.stage) {
            Some(Stage::PubComp) => {
                self.inflight.remove(&pkid);
            }
            other => debug!(pkid, ?other, "PUBCOMP for a packet id not awaiting one"),
        }
    }

    fn send_pubrel(&mut self, pkid: u16, code: u8) {
        self.send(&Packet::PubRel(Ack {
            pkid,
            code,
            props: Properties::default(),
        }));
    }

    /// Sends `message` (already at its effective QoS) to the client. Ignored
    /// unless connected; call only while [`Session::can_deliver`]. An expired
    /// message, or one larger than the client's Maximum Packet Size, is
    /// dropped (§3.1.2.11.4).
    pub(crate) fn deliver(&mut self, message: &Message, now: Instant) {
        if !self.is_connected() || message.expired(now) {
            return;
        }
        let pkid = match message.qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce | QoS::ExactlyOnce => match self.next_pkid() {
                Some(pkid) => pkid,
                None => {
                    return self.disconnect(
                        reason::IMPLEMENTATION_SPECIFIC,
                        "no free packet id",
                        CloseReason::Server("no free packet id"),
                    );
                }
            },
        };
        let (topic, topic_alias, new_alias) = self.outgoing_topic(&message.topic);
        let publish = publish_packet(message, pkid, false, topic, topic_alias, now);
        if !self.send(&Packet::Publish(publish)) {
            debug!(topic = %message.topic, "message larger than the client accepts; dropped");
            return;
        }
        if let (true, Some(alias)) = (new_alias, topic_alias) {
            self.aliases_out.insert(Arc::clone(&message.topic), alias);
        }
        if pkid != 0 {
            let stage = if message.qos == QoS::ExactlyOnce {
                Stage::PubRec
            } else {
                Stage::PubAck
            };
            self.inflight.insert(
                pkid,
                Outgoing {
                    message: message.clone(),
                    stage,
                },
            );
        }
    }

    /// The topic and alias to send `topic` with (MQTT 5 Topic Alias: the
    /// first message sets it, later ones send an empty topic), and whether
    /// the alias is new (recorded once the PUBLISH is sent).
    fn outgoing_topic(&self, topic: &Arc<str>) -> (String, Option<u16>, bool) {
        if self.alias_out_max == 0 || self.level != Level::V5 {
            return (topic.to_string(), None, false);
        }
        if let Some(&alias) = self.aliases_out.get(topic) {
            return (String::new(), Some(alias), false);
        }
        let used = u16::try_from(self.aliases_out.len()).unwrap_or(u16::MAX);
        if used < self.alias_out_max {
            return (topic.to_string(), Some(used + 1), true);
        }
        (topic.to_string(), None, false)
    }

    /// Resends what a resumed session left unacknowledged (§4.4): PUBLISH
    /// with DUP for messages awaiting PUBACK/PUBREC, PUBREL for those
    /// awaiting PUBCOMP, with their packet ids.
    pub(super) fn resend_stored(&mut self, now: Instant) {
        for (pkid, out) in std::mem::take(&mut self.resend) {
            match out.stage {
                Stage::PubComp => self.send_pubrel(pkid, reason::SUCCESS),
                Stage::PubAck | Stage::PubRec => {
                    let publish = publish_packet(
                        &out.message,
                        pkid,
                        true,
                        out.message.topic.to_string(),
                        None,
                        now,
                    );
                    self.send(&Packet::Publish(publish));
                }
            }
            self.inflight.insert(pkid, out);
        }
    }

    /// A free packet id.
    fn next_pkid(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last_pkid = self.last_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.last_pkid) {
                return Some(self.last_pkid);
            }
        }
        None
    }
}

fn publish_packet(
    message: &Message,
    pkid: u16,
    dup: bool,
    topic: String,
    topic_alias: Option<u16>,
    now: Instant,
) -> Publish {
    let app = message.props.as_deref();
    let props = Properties {
        payload_format: app.and_then(|a| a.payload_format),
        content_type: app.and_then(|a| a.content_type.clone()),
        response_topic: app.and_then(|a| a.response_topic.clone()),
        correlation_data: app.and_then(|a| a.correlation_data.clone()),
        user: app.map(|a| a.user.clone()).unwrap_or_default(),
        message_expiry: message.expiry_left(now),
        subscription_ids: message.sub_ids.clone(),
        topic_alias,
        ..Properties::default()
    };
    wire::Publish {
        dup,
        qos: message.qos,
        retain: message.retain,
        topic,
        pkid,
        payload: message.payload.clone(),
        props,
    }
}
