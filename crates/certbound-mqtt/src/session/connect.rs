//! CONNECT, and access tokens in the session (RFC 9431 with certbound's
//! certificate binding): Authentication Method `ace` in CONNECT, AUTH 0x19
//! to re-authenticate.
//!
//! RFC 9431 proves possession of the token's key with a signature over a
//! TLS exporter value or a challenge, because its TLS client is anonymous.
//! certbound's MQTT clients authenticate TLS with their certificate, and a
//! certbound token's `cnf` names that certificate's key: the handshake has
//! proved possession already, so the server checks the binding (the
//! authorizer's [`Authorizer::verify_token`]) and needs no extra round trip,
//! at CONNECT or at re-authentication. Authentication Data is the token,
//! bare or with RFC 9431's two-byte length prefix; anything after the
//! token is refused (certbound does not check a second proof).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{info, warn};

use super::{AdmitRequest, CloseReason, Event, Session, State, TokenState};
use crate::identity::{Authorizer, Identity};
use crate::message::{AppProps, Message};
use crate::topic::{has_control_chars, valid_topic};
use crate::wire::{self, Connect, Level, Packet, Properties, Reasoned, reason};

/// The Authentication Method of RFC 9431.
pub(crate) const ACE: &str = "ace";
/// Most topic aliases the server sets towards one client.
const MAX_ALIASES_OUT: u16 = 64;

impl Session {
    pub(super) fn on_connect(&mut self, connect: Connect, now: Instant, acl: &impl Authorizer) {
        self.level = connect.level;
        let props = &connect.props;
        if props.request_problem_info == Some(0) {
            self.problem_info = false;
        }
        let identity = match &self.auth {
            Ok(identity) => identity.clone(),
            Err(why) => {
                warn!(%why, "client certificate refused");
                self.events.push_back(Event::AuthRefused(why.clone()));
                let text = format!("client certificate refused: {why}");
                return self.refuse_with(reason::NOT_AUTHORIZED, &text, CloseReason::NotAuthorized);
            }
        };
        if has_control_chars(&connect.client_id) {
            warn!(client_id = ?connect.client_id, "client id with control characters; refusing");
            return self.refuse(reason::CLIENT_ID_NOT_VALID, CloseReason::ConnectRefused);
        }
        let mut assigned = None;
        if connect.client_id.is_empty() {
            if self.level == Level::V311 && !connect.clean_start {
                // §3.1.3-8: 3.1.1 needs a client id for a persistent session.
                return self.refuse(reason::CLIENT_ID_NOT_VALID, CloseReason::ConnectRefused);
            }
            if self.level == Level::V5 {
                assigned = Some(format!("cb-auto-{:016x}", self.conn_tag));
            }
        }
        if let Some(method) = &props.auth_method {
            if method != ACE {
                warn!(%method, "unsupported authentication method");
                let text =
                    format!("authentication method {method:?} is not supported; use \"ace\"");
                return self.refuse_with(
                    reason::BAD_AUTHENTICATION_METHOD,
                    &text,
                    CloseReason::ConnectRefused,
                );
            }
            let data = props.auth_data.clone().unwrap_or_default();
            if let Err(why) = self.accept_token(&identity, &data, now, acl) {
                warn!(%why, "access token refused at CONNECT");
                self.events.push_back(Event::AuthRefused(why.clone()));
                let text = format!("access token refused: {why}");
                return self.refuse_with(reason::NOT_AUTHORIZED, &text, CloseReason::NotAuthorized);
            }
            self.auth_method = Some(method.clone());
        }
        let mut will_message = None;
        if let Some(will) = connect.will {
            if !valid_topic(&will.topic) {
                warn!(topic = ?will.topic, "invalid will topic (empty, wildcards, NUL or control characters); closing");
                return self.refuse(
                    reason::TOPIC_NAME_INVALID,
                    CloseReason::InvalidTopic("invalid will topic".into()),
                );
            }
            if !self.may_publish(acl, &identity, &will.topic) {
                warn!(topic = %will.topic, "will topic refused by the ACL");
                self.events
                    .push_back(Event::PublishRefused(will.topic.clone()));
                let text = format!("the will topic {:?} is not allowed", will.topic);
                return self.refuse_with(reason::NOT_AUTHORIZED, &text, CloseReason::NotAuthorized);
            }
            let mut message = Message::new(&will.topic, will.payload, will.qos)
                .with_expiry_interval(will.props.message_expiry, now);
            message.retain = will.retain;
            message.props = AppProps::from_props(&will.props);
            will_message = Some((message, will.props.will_delay.unwrap_or(0)));
        }
        let client_id = assigned.clone().unwrap_or(connect.client_id);
        // Session expiry: 3.1.1 Clean Session 0 keeps the session as long as allowed.
        let asked_expiry = match self.level {
            Level::V5 => props.session_expiry.unwrap_or(0),
            Level::V311 if connect.clean_start => 0,
            Level::V311 => u32::MAX,
        };
        let session_expiry = asked_expiry.min(self.config.max_session_expiry);
        let request = AdmitRequest {
            client_id: &client_id,
            clean_start: connect.clean_start,
            persistent: session_expiry > 0 && !client_id.is_empty(),
        };
        let resumed = match self.admission.as_mut().map(|admit| admit(&request)) {
            Some(Err(why)) => {
                warn!(%identity, %why, "CONNECT refused: connection cap");
                let text = why.clone();
                return self.refuse_with(
                    reason::QUOTA_EXCEEDED,
                    &text,
                    CloseReason::ConnectionCap(why),
                );
            }
            Some(Ok(resumed)) => resumed,
            None => None,
        };
        self.will = will_message;
        self.session_expiry = session_expiry;
        if let Some(max) = props.receive_max {
            self.send_quota = self.config.max_inflight.min(usize::from(max));
        }
        if let Some(max) = props.max_packet_size {
            self.client_max_packet = usize::try_from(max).unwrap_or(usize::MAX);
        }
        self.alias_out_max = props.topic_alias_max.unwrap_or(0).min(MAX_ALIASES_OUT);
        let max_keep_alive = self.config.max_keep_alive;
        let (keep_alive, server_keep_alive) = match self.level {
            Level::V5 if connect.keep_alive == 0 || connect.keep_alive > max_keep_alive => {
                (max_keep_alive, Some(max_keep_alive))
            }
            _ => (connect.keep_alive, None),
        };
        let grace = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
        self.state = State::Connected {
            grace,
            last_seen: now,
        };
        let session_present = resumed.is_some();
        if let Some(snapshot) = resumed {
            self.subscriptions = snapshot.subscriptions;
            self.incoming_qos2 = snapshot.incoming_qos2.into_iter().collect();
            self.last_pkid = snapshot
                .outgoing
                .iter()
                .map(|(id, _)| *id)
                .max()
                .unwrap_or(0);
            self.resend = snapshot.outgoing;
        }
        info!(
            client_id = %client_id,
            level = ?self.level,
            keep_alive,
            session_present,
            session_expiry = self.session_expiry,
            token = self.token.is_some(),
            "connected"
        );
        self.events.push_back(Event::Connected {
            client_id: client_id.clone(),
        });
        let connack_props = Properties {
            session_expiry: (props.session_expiry.is_some() && self.session_expiry != asked_expiry)
                .then_some(self.session_expiry),
            receive_max: Some(self.config.receive_maximum),
            max_packet_size: u32::try_from(wire::packet_size(self.config.max_packet_size)).ok(),
            topic_alias_max: Some(self.config.topic_alias_max),
            assigned_client_id: assigned,
            server_keep_alive,
            auth_method: self.auth_method.clone(),
            ..Properties::default()
        };
        self.send(&Packet::ConnAck(wire::ConnAck {
            session_present,
            code: reason::SUCCESS,
            props: connack_props,
        }));
        self.resend_stored(now);
    }

    /// AUTH from the client: re-authentication with a fresh token.
    pub(super) fn on_auth(
        &mut self,
        auth: Reasoned,
        identity: &Identity,
        now: Instant,
        acl: &impl Authorizer,
    ) {
        let Some(method) = self.auth_method.clone() else {
            // §4.12: AUTH without an Authentication Method in CONNECT.
            return self
                .protocol_error("AUTH on a session that did not authenticate with a method");
        };
        if auth.props.auth_method.as_deref() != Some(method.as_str()) {
            return self.protocol_error("AUTH with another authentication method than CONNECT");
        }
        if auth.code != reason::REAUTHENTICATE {
            return self.protocol_error("AUTH from the client must be Re-authenticate (0x19)");
        }
        let data = auth.props.auth_data.unwrap_or_default();
        match self.accept_token(identity, &data, now, acl) {
            Ok(()) => {
                info!("re-authenticated with a fresh access token");
                self.drop_unauthorized_subscriptions(identity, acl);
                self.send(&Packet::Auth(Reasoned {
                    code: reason::SUCCESS,
                    props: Properties {
                        auth_method: Some(method),
                        ..Properties::default()
                    },
                }));
            }
            Err(why) => {
                warn!(%why, "re-authentication refused");
                self.events.push_back(Event::AuthRefused(why.clone()));
                self.disconnect(
                    reason::NOT_AUTHORIZED,
                    &format!("re-authentication refused: {why}"),
                    CloseReason::NotAuthorized,
                );
            }
        }
    }

    /// Verifies a token from Authentication Data and makes it the session's.
    fn accept_token(
        &mut self,
        identity: &Identity,
        data: &Bytes,
        now: Instant,
        acl: &impl Authorizer,
    ) -> Result<(), String> {
        let token = token_from_auth_data(data)?;
        let der: Arc<[u8]> = self
            .peer_cert
            .clone()
            .ok_or("no client certificate to bind the token to")?;
        let grant = acl.verify_token(identity, &der, token)?;
        self.events.push_back(Event::TokenAccepted(grant.id));
        self.token = Some(TokenState {
            expires: now + grant.lifetime,
            publish: grant.publish,
            subscribe: grant.subscribe,
        });
        Ok(())
    }

    /// Whether `identity` may publish to `topic`: by the ACL, or by the
    /// session's token.
    pub(super) fn may_publish(
        &self,
        acl: &impl Authorizer,
        identity: &Identity,
        topic: &str,
    ) -> bool {
        acl.may_publish(identity, topic)
            || self
                .token
                .as_ref()
                .is_some_and(|t| t.publish.iter().any(|f| crate::topic::matches(topic, f)))
    }
}

/// The token in RFC 9431 Authentication Data: `u16 length ‖ token`, or the
/// token alone.
fn token_from_auth_data(data: &[u8]) -> Result<&[u8], String> {
    if data.is_empty() {
        return Err("no Authentication Data: send the access token".into());
    }
    if let [hi, lo, rest @ ..] = data {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if len == rest.len() {
            return Ok(rest);
        }
        if len < rest.len() && len > 0 {
            return Err(
                "Authentication Data holds more than the token: certbound binds tokens to the \
                 TLS client certificate and takes no separate proof of possession; send the \
                 token alone"
                    .into(),
            );
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::token_from_auth_data;

    #[test]
    fn auth_data_framing() {
        assert_eq!(
            token_from_auth_data(&[0, 2, 0xd2, 0x84]),
            Ok(&[0xd2, 0x84][..])
        );
        assert_eq!(
            token_from_auth_data(&[0xd2, 0x84, 0x43]),
            Ok(&[0xd2, 0x84, 0x43][..])
        );
        assert!(
            token_from_auth_data(&[0, 1, 0xd2, 0x84]).is_err(),
            "trailing proof"
        );
        assert!(token_from_auth_data(&[]).is_err());
    }
}
