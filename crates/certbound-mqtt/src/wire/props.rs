//! MQTT 5 properties (§2.2.2): one struct for every packet, with the
//! packets each property may appear in checked when reading.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::WireError;
use super::decode::{read_binary, read_string, read_u8, read_u16, read_u32, read_varint};
use super::encode::{put_binary, put_string, put_varint, varint_len};

/// Which packet (or will) a property block belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    Ack,
    Subscribe,
    /// SUBACK and UNSUBACK.
    SubAck,
    Unsubscribe,
    Disconnect,
    Auth,
}

/// Every MQTT 5 property; `None`/empty when absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(clippy::struct_field_names)]
pub(crate) struct Properties {
    pub payload_format: Option<u8>,
    pub message_expiry: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub subscription_ids: Vec<u32>,
    pub session_expiry: Option<u32>,
    pub assigned_client_id: Option<String>,
    pub server_keep_alive: Option<u16>,
    pub auth_method: Option<String>,
    pub auth_data: Option<Bytes>,
    pub request_problem_info: Option<u8>,
    pub will_delay: Option<u32>,
    pub request_response_info: Option<u8>,
    pub response_info: Option<String>,
    pub server_reference: Option<String>,
    pub reason_string: Option<String>,
    pub receive_max: Option<u16>,
    pub topic_alias_max: Option<u16>,
    pub topic_alias: Option<u16>,
    pub max_qos: Option<u8>,
    pub retain_available: Option<u8>,
    pub user: Vec<(String, String)>,
    pub max_packet_size: Option<u32>,
    pub wildcard_sub_available: Option<u8>,
    pub sub_ids_available: Option<u8>,
    pub shared_sub_available: Option<u8>,
}

const PAYLOAD_FORMAT: u8 = 0x01;
const MESSAGE_EXPIRY: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_ID: u8 = 0x0B;
const SESSION_EXPIRY: u8 = 0x11;
const ASSIGNED_CLIENT_ID: u8 = 0x12;
const SERVER_KEEP_ALIVE: u8 = 0x13;
const AUTH_METHOD: u8 = 0x15;
const AUTH_DATA: u8 = 0x16;
const REQUEST_PROBLEM_INFO: u8 = 0x17;
const WILL_DELAY: u8 = 0x18;
const REQUEST_RESPONSE_INFO: u8 = 0x19;
const RESPONSE_INFO: u8 = 0x1A;
const SERVER_REFERENCE: u8 = 0x1C;
const REASON_STRING: u8 = 0x1F;
const RECEIVE_MAX: u8 = 0x21;
const TOPIC_ALIAS_MAX: u8 = 0x22;
const TOPIC_ALIAS: u8 = 0x23;
const MAX_QOS: u8 = 0x24;
const RETAIN_AVAILABLE: u8 = 0x25;
const USER_PROPERTY: u8 = 0x26;
const MAX_PACKET_SIZE: u8 = 0x27;
const WILDCARD_SUB_AVAILABLE: u8 = 0x28;
const SUB_IDS_AVAILABLE: u8 = 0x29;
const SHARED_SUB_AVAILABLE: u8 = 0x2A;

/// Whether property `id` may appear in `kind` (§2.2.2.2 table).
fn allowed(id: u8, kind: Kind) -> bool {
    use Kind::{Ack, Auth, ConnAck, Connect, Disconnect, Publish, SubAck, Subscribe, Will};
    match id {
        PAYLOAD_FORMAT | MESSAGE_EXPIRY | CONTENT_TYPE | RESPONSE_TOPIC | CORRELATION_DATA => {
            matches!(kind, Publish | Will)
        }
        SUBSCRIPTION_ID => matches!(kind, Publish | Subscribe),
        SESSION_EXPIRY => matches!(kind, Connect | ConnAck | Disconnect),
        ASSIGNED_CLIENT_ID
        | SERVER_KEEP_ALIVE
        | RESPONSE_INFO
        | MAX_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUB_AVAILABLE
        | SUB_IDS_AVAILABLE
        | SHARED_SUB_AVAILABLE => kind == ConnAck,
        AUTH_METHOD | AUTH_DATA => matches!(kind, Connect | ConnAck | Auth),
        REQUEST_PROBLEM_INFO | REQUEST_RESPONSE_INFO => kind == Connect,
        WILL_DELAY => kind == Will,
        SERVER_REFERENCE => matches!(kind, ConnAck | Disconnect),
        REASON_STRING => matches!(kind, ConnAck | Ack | SubAck | Disconnect | Auth),
        RECEIVE_MAX | TOPIC_ALIAS_MAX | MAX_PACKET_SIZE => matches!(kind, Connect | ConnAck),
        TOPIC_ALIAS => kind == Publish,
        USER_PROPERTY => true,
        _ => false,
    }
}

/// Stores `value` in `slot`, refusing a second occurrence.
fn once<T>(slot: &mut Option<T>, value: T, id: u8) -> Result<(), WireError> {
    if slot.is_some() {
        return Err(WireError::Protocol(format!(
            "property 0x{id:02x} appears twice"
        )));
    }
    *slot = Some(value);
    Ok(())
}

fn flag(value: u8, id: u8) -> Result<u8, WireError> {
    if value > 1 {
        return Err(WireError::Protocol(format!(
            "property 0x{id:02x} must be 0 or 1, not {value}"
        )));
    }
    Ok(value)
}

impl Properties {
    /// Reads a property block (length, then properties) for `kind`.
    pub(crate) fn read(buf: &mut Bytes, kind: Kind) -> Result<Properties, WireError> {
        let len = read_varint(buf)?;
        if buf.remaining() < len {
            return Err(WireError::Malformed(
                "property length runs past the packet".into(),
            ));
        }
        let mut block = buf.split_to(len);
        let mut p = Properties::default();
        while block.has_remaining() {
            let id = read_u8(&mut block)?;
            if !allowed(id, kind) {
                return Err(WireError::Protocol(format!(
                    "property 0x{id:02x} is not allowed in {kind:?}"
                )));
            }
            let b = &mut block;
            match id {
                PAYLOAD_FORMAT => once(&mut p.payload_format, flag(read_u8(b)?, id)?, id)?,
                MESSAGE_EXPIRY => once(&mut p.message_expiry, read_u32(b)?, id)?,
                CONTENT_TYPE => once(&mut p.content_type, read_string(b)?, id)?,
                RESPONSE_TOPIC => once(&mut p.response_topic, read_string(b)?, id)?,
                CORRELATION_DATA => once(&mut p.correlation_data, read_binary(b)?, id)?,
                SUBSCRIPTION_ID => {
                    let v = read_varint(b)?;
                    if v == 0 {
                        return Err(WireError::Protocol("subscription identifier 0".into()));
                    }
                    p.subscription_ids
                        .push(u32::try_from(v).unwrap_or(u32::MAX));
                }
                SESSION_EXPIRY => once(&mut p.session_expiry, read_u32(b)?, id)?,
                ASSIGNED_CLIENT_ID => once(&mut p.assigned_client_id, read_string(b)?, id)?,
                SERVER_KEEP_ALIVE => once(&mut p.server_keep_alive, read_u16(b)?, id)?,
                AUTH_METHOD => once(&mut p.auth_method, read_string(b)?, id)?,
                AUTH_DATA => once(&mut p.auth_data, read_binary(b)?, id)?,
                REQUEST_PROBLEM_INFO => {
                    once(&mut p.request_problem_info, flag(read_u8(b)?, id)?, id)?;
                }
                WILL_DELAY => once(&mut p.will_delay, read_u32(b)?, id)?,
                REQUEST_RESPONSE_INFO => {
                    once(&mut p.request_response_info, flag(read_u8(b)?, id)?, id)?;
                }
                RESPONSE_INFO => once(&mut p.response_info, read_string(b)?, id)?,
                SERVER_REFERENCE => once(&mut p.server_reference, read_string(b)?, id)?,
                REASON_STRING => once(&mut p.reason_string, read_string(b)?, id)?,
                RECEIVE_MAX => {
                    let v = read_u16(b)?;
                    if v == 0 {
                        return Err(WireError::Protocol("receive maximum 0".into()));
                    }
                    once(&mut p.receive_max, v, id)?;
                }
                TOPIC_ALIAS_MAX => once(&mut p.topic_alias_max, read_u16(b)?, id)?,
                TOPIC_ALIAS => once(&mut p.topic_alias, read_u16(b)?, id)?,
                MAX_QOS => once(&mut p.max_qos, flag(read_u8(b)?, id)?, id)?,
                RETAIN_AVAILABLE => once(&mut p.retain_available, flag(read_u8(b)?, id)?, id)?,
                USER_PROPERTY => {
                    let k = read_string(b)?;
                    let v = read_string(b)?;
                    p.user.push((k, v));
                }
                MAX_PACKET_SIZE => {
                    let v = read_u32(b)?;
                    if v == 0 {
                        return Err(WireError::Protocol("maximum packet size 0".into()));
                    }
                    once(&mut p.max_packet_size, v, id)?;
                }
                WILDCARD_SUB_AVAILABLE => {
                    once(&mut p.wildcard_sub_available, flag(read_u8(b)?, id)?, id)?;
                }
                SUB_IDS_AVAILABLE => once(&mut p.sub_ids_available, flag(read_u8(b)?, id)?, id)?,
                SHARED_SUB_AVAILABLE => {
                    once(&mut p.shared_sub_available, flag(read_u8(b)?, id)?, id)?;
                }
                _ => unreachable_property(id)?,
            }
        }
        Ok(p)
    }

    /// Length of the properties without the length prefix.
    pub(crate) fn len(&self) -> usize {
        let s = |v: &Option<String>| v.as_ref().map_or(0, |s| 3 + s.len());
        let b = |v: &Option<Bytes>| v.as_ref().map_or(0, |s| 3 + s.len());
        let n1 = |v: Option<u8>| v.map_or(0, |_| 2);
        let n2 = |v: Option<u16>| v.map_or(0, |_| 3);
        let n4 = |v: Option<u32>| v.map_or(0, |_| 5);
        n1(self.payload_format)
            + n4(self.message_expiry)
            + s(&self.content_type)
            + s(&self.response_topic)
            + b(&self.correlation_data)
            + self
                .subscription_ids
                .iter()
                .map(|&id| 1 + varint_len(id as usize))
                .sum::<usize>()
            + n4(self.session_expiry)
            + s(&self.assigned_client_id)
            + n2(self.server_keep_alive)
            + s(&self.auth_method)
            + b(&self.auth_data)
            + n1(self.request_problem_info)
            + n4(self.will_delay)
            + n1(self.request_response_info)
            + s(&self.response_info)
            + s(&self.server_reference)
            + s(&self.reason_string)
            + n2(self.receive_max)
            + n2(self.topic_alias_max)
            + n2(self.topic_alias)
            + n1(self.max_qos)
            + n1(self.retain_available)
            + self
                .user
                .iter()
                .map(|(k, v)| 5 + k.len() + v.len())
                .sum::<usize>()
            + n4(self.max_packet_size)
            + n1(self.wildcard_sub_available)
            + n1(self.sub_ids_available)
            + n1(self.shared_sub_available)
    }

    /// Writes the length prefix and the properties.
    pub(crate) fn write(&self, out: &mut BytesMut) {
        put_varint(out, self.len());
        let u1 = |out: &mut BytesMut, id: u8, v: Option<u8>| {
            if let Some(v) = v {
                out.put_u8(id);
                out.put_u8(v);
            }
        };
        let u2 = |out: &mut BytesMut, id: u8, v: Option<u16>| {
            if let Some(v) = v {
                out.put_u8(id);
                out.put_u16(v);
            }
        };
        let u4 = |out: &mut BytesMut, id: u8, v: Option<u32>| {
            if let Some(v) = v {
                out.put_u8(id);
                out.put_u32(v);
            }
        };
        let st = |out: &mut BytesMut, id: u8, v: &Option<String>| {
            if let Some(v) = v {
                out.put_u8(id);
                put_string(out, v);
            }
        };
        let bi = |out: &mut BytesMut, id: u8, v: &Option<Bytes>| {
            if let Some(v) = v {
                out.put_u8(id);
                put_binary(out, v);
            }
        };
        u1(out, PAYLOAD_FORMAT, self.payload_format);
        u4(out, MESSAGE_EXPIRY, self.message_expiry);
        st(out, CONTENT_TYPE, &self.content_type);
        st(out, RESPONSE_TOPIC, &self.response_topic);
        bi(out, CORRELATION_DATA, &self.correlation_data);
        for &id in &self.subscription_ids {
            out.put_u8(SUBSCRIPTION_ID);
            put_varint(out, id as usize);
        }
        u4(out, SESSION_EXPIRY, self.session_expiry);
        st(out, ASSIGNED_CLIENT_ID, &self.assigned_client_id);
        u2(out, SERVER_KEEP_ALIVE, self.server_keep_alive);
        st(out, AUTH_METHOD, &self.auth_method);
        bi(out, AUTH_DATA, &self.auth_data);
        u1(out, REQUEST_PROBLEM_INFO, self.request_problem_info);
        u4(out, WILL_DELAY, self.will_delay);
        u1(out, REQUEST_RESPONSE_INFO, self.request_response_info);
        st(out, RESPONSE_INFO, &self.response_info);
        st(out, SERVER_REFERENCE, &self.server_reference);
        st(out, REASON_STRING, &self.reason_string);
        u2(out, RECEIVE_MAX, self.receive_max);
        u2(out, TOPIC_ALIAS_MAX, self.topic_alias_max);
        u2(out, TOPIC_ALIAS, self.topic_alias);
        u1(out, MAX_QOS, self.max_qos);
        u1(out, RETAIN_AVAILABLE, self.retain_available);
        for (k, v) in &self.user {
            out.put_u8(USER_PROPERTY);
            put_string(out, k);
            put_string(out, v);
        }
        u4(out, MAX_PACKET_SIZE, self.max_packet_size);
        u1(out, WILDCARD_SUB_AVAILABLE, self.wildcard_sub_available);
        u1(out, SUB_IDS_AVAILABLE, self.sub_ids_available);
        u1(out, SHARED_SUB_AVAILABLE, self.shared_sub_available);
    }

    /// True when no property is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the properties that may only be sent when the peer asked for
    /// problem information (Reason String and User Properties, §3.1.2.11.7),
    /// keeping the rest.
    pub(crate) fn without_problem_info(mut self) -> Properties {
        self.reason_string = None;
        self.user.clear();
        self
    }
}

fn unreachable_property(id: u8) -> Result<(), WireError> {
    Err(WireError::Protocol(format!("unknown property 0x{id:02x}")))
}
