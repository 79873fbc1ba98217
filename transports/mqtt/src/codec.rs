//! MQTT packet encoding and decoding — the only module that touches `mqttbytes`.
//!
//! mqttbytes 0.6 is unmaintained, so it is kept behind this module's own packet types: the
//! client state machine never sees an mqttbytes type, and replacing the crate touches only this
//! file. Known quirks handled here:
//! - `Connect::write` patches its flags byte at an offset counted from the start of the
//!   *buffer*, not the packet, so CONNECT is always written into a fresh buffer first;
//! - the v5 reader rejects the short DISCONNECT forms MQTT 5 allows (no reason code, or no
//!   property length), so DISCONNECT is decoded here;
//! - oversized packets are skipped by length instead of being reported as fatal, so one huge
//!   retained message cannot put the bridge into a reconnect loop.

use bytes::{Buf, Bytes, BytesMut};
use mqttbytes::{v4, v5};

/// MQTT protocol version (`mqtt-options.protocol-version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// 311: MQTT 3.1.1 (the default).
    V311,
    /// 500: MQTT 5.
    V5,
}

/// Quality of service of a publish or subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

/// A packet from the broker, in our own terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    ConnAck {
        session_present: bool,
        /// `Err(reason)` when the broker refused the connection.
        result: Result<(), String>,
        /// MQTT 5: how many QoS 1/2 publishes the broker accepts in flight.
        receive_maximum: Option<u16>,
        /// MQTT 5: keepalive imposed by the broker (seconds).
        server_keepalive: Option<u16>,
    },
    Publish(Message),
    PubAck {
        pkid: u16,
    },
    PubRec {
        pkid: u16,
    },
    PubRel {
        pkid: u16,
    },
    PubComp {
        pkid: u16,
    },
    SubAck {
        pkid: u16,
        /// Number of filters the broker refused.
        failures: usize,
    },
    UnsubAck,
    PingResp,
    /// MQTT 5 server DISCONNECT, with its reason.
    Disconnect {
        reason: String,
    },
    /// A packet larger than the limit was skipped.
    Oversized {
        bytes: usize,
    },
}

/// An application message from the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub pkid: u16,
    pub retain: bool,
    pub dup: bool,
}

/// A publish to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutPublish<'a> {
    pub topic: &'a str,
    pub payload: &'a Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub dup: bool,
    /// 0 for QoS 0.
    pub pkid: u16,
    /// MQTT 5 user properties.
    pub user_properties: &'a [(String, String)],
}

/// What CONNECT carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    pub client_id: String,
    pub clean_session: bool,
    pub keepalive_secs: u16,
    pub user: String,
    pub password: String,
    pub will: Option<WillMessage>,
    /// MQTT 5 receive maximum property.
    pub receive_maximum: u16,
}

/// The rendered last will.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WillMessage {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

/// The packets of the QoS 1/2 handshakes, which carry nothing but a packet id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

/// One filter of a SUBSCRIBE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeFilter {
    pub filter: String,
    pub qos: QoS,
    /// MQTT 5 options byte without the QoS bits.
    pub v5_options: u8,
}

/// The broker sent something that is not valid MQTT for us.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// Encoder/decoder for one protocol version, with the largest packet we accept.
#[derive(Debug)]
pub struct Codec {
    protocol: Protocol,
    max_packet_bytes: usize,
    /// Bytes of an oversized packet still to be thrown away.
    skip: usize,
}

fn to_qos(q: QoS) -> mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => mqttbytes::QoS::ExactlyOnce,
    }
}

fn from_qos(q: mqttbytes::QoS) -> QoS {
    match q {
        mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// Fixed header: (packet type, header length, remaining length), or `None` if incomplete.
fn fixed_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, CodecError> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((byte1 >> 4, 2 + i, len)));
        }
    }
    Err(CodecError("malformed remaining length".into()))
}

fn mqtt_err(e: mqttbytes::Error) -> CodecError {
    CodecError(format!("{e:?}"))
}

impl Codec {
    pub fn new(protocol: Protocol, max_packet_bytes: usize) -> Codec {
        Codec {
            protocol,
            max_packet_bytes,
            skip: 0,
        }
    }

    /// Forgets partial state (a new connection starts clean).
    pub fn reset(&mut self) {
        self.skip = 0;
    }

    /// Takes the next complete packet out of `buf`; `Ok(None)` when more bytes are needed
    /// (the buffer is then left as it was, apart from skipped oversized bytes).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, CodecError> {
        if self.skip > 0 {
            let n = self.skip.min(buf.len());
            buf.advance(n);
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        let Some((ptype, header_len, remaining)) = fixed_header(buf)? else {
            return Ok(None);
        };
        let frame = header_len + remaining;
        if remaining > self.max_packet_bytes {
            self.skip = frame;
            let n = frame.min(buf.len());
            buf.advance(n);
            self.skip -= n;
            return Ok(Some(Incoming::Oversized { bytes: frame }));
        }
        if buf.len() < frame {
            return Ok(None);
        }
        // DISCONNECT is decoded here: mqttbytes refuses the legal MQTT 5 forms without
        // reason code or without property length, and only the reason code matters to us.
        if ptype == 14 {
            let code = if remaining == 0 { 0 } else { buf[header_len] };
            buf.advance(frame);
            return Ok(Some(Incoming::Disconnect {
                reason: format!("reason code 0x{code:02X}"),
            }));
        }
        let max = self.max_packet_bytes;
        match self.protocol {
            Protocol::V311 => decode_v4(v4::read(buf, max).map_err(mqtt_err)?),
            Protocol::V5 => decode_v5(v5::read(buf, max).map_err(mqtt_err)?),
        }
        .map(Some)
    }

    /// Appends CONNECT.
    pub fn encode_connect(&self, c: &ConnectOptions, out: &mut BytesMut) -> Result<(), CodecError> {
        // Fresh buffer: see the module docs on Connect::write.
        let mut tmp = BytesMut::with_capacity(64 + c.client_id.len());
        let login = (!c.user.is_empty() || !c.password.is_empty())
            .then(|| (c.user.clone(), c.password.clone()));
        match self.protocol {
            Protocol::V311 => {
                let mut p = v4::Connect::new(c.client_id.clone());
                p.keep_alive = c.keepalive_secs;
                p.clean_session = c.clean_session;
                p.last_will = c.will.as_ref().map(|w| v4::LastWill {
                    topic: w.topic.clone(),
                    message: w.payload.clone(),
                    qos: to_qos(w.qos),
                    retain: w.retain,
                });
                p.login = login.map(|(u, pw)| v4::Login::new(u, pw));
                p.write(&mut tmp).map_err(mqtt_err)?;
            }
            Protocol::V5 => {
                let mut p = v5::Connect::new(c.client_id.clone());
                p.keep_alive = c.keepalive_secs;
                p.clean_session = c.clean_session;
                p.last_will = c.will.as_ref().map(|w| {
                    v5::LastWill::new(w.topic.clone(), w.payload.to_vec(), to_qos(w.qos), w.retain)
                });
                p.login = login.map(|(u, pw)| v5::Login::new(u, pw));
                p.properties = Some(v5::ConnectProperties {
                    // Keep the session while we reconnect when the user asked for a
                    // persistent session (MQTT 5 drops it at disconnect otherwise).
                    session_expiry_interval: (!c.clean_session).then_some(u32::MAX),
                    receive_maximum: Some(c.receive_maximum),
                    max_packet_size: None,
                    topic_alias_max: None,
                    request_response_info: None,
                    request_problem_info: None,
                    user_properties: Vec::new(),
                    authentication_method: None,
                    authentication_data: None,
                });
                p.write(&mut tmp).map_err(mqtt_err)?;
            }
        }
        out.extend_from_slice(&tmp);
        Ok(())
    }

    /// Appends PUBLISH.
    pub fn encode_publish(&self, p: &OutPublish<'_>, out: &mut BytesMut) -> Result<(), CodecError> {
        match self.protocol {
            Protocol::V311 => {
                let mut m = v4::Publish::from_bytes(p.topic, to_qos(p.qos), p.payload.clone());
                m.retain = p.retain;
                m.dup = p.dup;
                m.pkid = p.pkid;
                m.write(out).map_err(mqtt_err)?;
            }
            Protocol::V5 => {
                let mut m = v5::Publish::from_bytes(p.topic, to_qos(p.qos), p.payload.clone());
                m.retain = p.retain;
                m.dup = p.dup;
                m.pkid = p.pkid;
                if !p.user_properties.is_empty() {
                    m.properties = Some(v5::PublishProperties {
                        payload_format_indicator: None,
                        message_expiry_interval: None,
                        topic_alias: None,
                        response_topic: None,
                        correlation_data: None,
                        user_properties: p.user_properties.to_vec(),
                        subscription_identifiers: Vec::new(),
                        content_type: None,
                    });
                }
                m.write(out).map_err(mqtt_err)?;
            }
        }
        Ok(())
    }

    /// Appends SUBSCRIBE for all `filters`.
    pub fn encode_subscribe(
        &self,
        pkid: u16,
        filters: &[SubscribeFilter],
        out: &mut BytesMut,
    ) -> Result<(), CodecError> {
        match self.protocol {
            Protocol::V311 => {
                let mut s = v4::Subscribe::empty_subscribe();
                s.pkid = pkid;
                for f in filters {
                    s.add(f.filter.clone(), to_qos(f.qos));
                }
                s.write(out).map_err(mqtt_err)?;
            }
            Protocol::V5 => {
                let mut s = v5::Subscribe::empty_subscribe();
                s.pkid = pkid;
                for f in filters {
                    let mut sf = v5::SubscribeFilter::new(f.filter.clone(), to_qos(f.qos));
                    sf.set_nolocal(f.v5_options & 0x04 != 0);
                    sf.set_preserve_retain(f.v5_options & 0x08 != 0);
                    sf.set_retain_forward_rule(match (f.v5_options >> 4) & 0x03 {
                        1 => v5::RetainForwardRule::OnNewSubscribe,
                        2 => v5::RetainForwardRule::Never,
                        _ => v5::RetainForwardRule::OnEverySubscribe,
                    });
                    s.filters.push(sf);
                }
                s.write(out).map_err(mqtt_err)?;
            }
        }
        Ok(())
    }

    /// Appends PUBACK, PUBREC, PUBREL or PUBCOMP for `pkid`.
    pub fn encode_ack(&self, ack: Ack, pkid: u16, out: &mut BytesMut) -> Result<(), CodecError> {
        match (self.protocol, ack) {
            (Protocol::V311, Ack::PubAck) => v4::PubAck::new(pkid).write(out),
            (Protocol::V311, Ack::PubRec) => v4::PubRec::new(pkid).write(out),
            (Protocol::V311, Ack::PubRel) => v4::PubRel::new(pkid).write(out),
            (Protocol::V311, Ack::PubComp) => v4::PubComp::new(pkid).write(out),
            (Protocol::V5, Ack::PubAck) => v5::PubAck::new(pkid).write(out),
            (Protocol::V5, Ack::PubRec) => v5::PubRec::new(pkid).write(out),
            (Protocol::V5, Ack::PubRel) => v5::PubRel::new(pkid).write(out),
            (Protocol::V5, Ack::PubComp) => v5::PubComp::new(pkid).write(out),
        }
        .map(drop)
        .map_err(mqtt_err)
    }

    pub fn encode_pingreq(&self, out: &mut BytesMut) -> Result<(), CodecError> {
        v4::PingReq.write(out).map(drop).map_err(mqtt_err)
    }

    pub fn encode_disconnect(&self, out: &mut BytesMut) -> Result<(), CodecError> {
        match self.protocol {
            Protocol::V311 => v4::Disconnect.write(out),
            Protocol::V5 => v5::Disconnect::new().write(out),
        }
        .map(drop)
        .map_err(mqtt_err)
    }
}

fn unexpected(what: &str) -> Result<Incoming, CodecError> {
    Err(CodecError(format!(
        "unexpected {what} packet from the broker"
    )))
}

/// The decoding both protocol versions share: `$v` is the mqttbytes module (`v4` or `v5`),
/// `$failed` tells a refused subscription among SUBACK's return codes, and `$own` are the arms
/// that differ between the versions (CONNACK, DISCONNECT).
macro_rules! decode_packet {
    ($v:ident, $packet:expr, suback_failed: $failed:expr, { $($own:tt)* }) => {
        Ok(match $packet {
            $($own)*
            $v::Packet::SubAck(s) => Incoming::SubAck {
                pkid: s.pkid,
                failures: s.return_codes.iter().filter($failed).count(),
            },
            $v::Packet::Publish(p) => Incoming::Publish(Message {
                topic: p.topic,
                payload: p.payload,
                qos: from_qos(p.qos),
                pkid: p.pkid,
                retain: p.retain,
                dup: p.dup,
            }),
            $v::Packet::PubAck(a) => Incoming::PubAck { pkid: a.pkid },
            $v::Packet::PubRec(a) => Incoming::PubRec { pkid: a.pkid },
            $v::Packet::PubRel(a) => Incoming::PubRel { pkid: a.pkid },
            $v::Packet::PubComp(a) => Incoming::PubComp { pkid: a.pkid },
            $v::Packet::UnsubAck(_) => Incoming::UnsubAck,
            $v::Packet::PingResp => Incoming::PingResp,
            $v::Packet::Connect(_) => return unexpected("CONNECT"),
            $v::Packet::Subscribe(_) => return unexpected("SUBSCRIBE"),
            $v::Packet::Unsubscribe(_) => return unexpected("UNSUBSCRIBE"),
            $v::Packet::PingReq => return unexpected("PINGREQ"),
        })
    };
}

/// CONNACK's result: `Ok` for success, else the broker's reason.
fn connack_result<C: PartialEq + std::fmt::Debug>(code: C, success: C) -> Result<(), String> {
    if code == success {
        Ok(())
    } else {
        Err(format!("{code:?}"))
    }
}

fn decode_v4(p: v4::Packet) -> Result<Incoming, CodecError> {
    decode_packet!(v4, p, suback_failed: |c| matches!(c, v4::SubscribeReasonCode::Failure), {
        v4::Packet::ConnAck(c) => Incoming::ConnAck {
            session_present: c.session_present,
            result: connack_result(c.code, v4::ConnectReturnCode::Success),
            receive_maximum: None,
            server_keepalive: None,
        },
        // Decoded before mqttbytes sees it (see Codec::decode).
        v4::Packet::Disconnect => return unexpected("DISCONNECT"),
    })
}

fn decode_v5(p: v5::Packet) -> Result<Incoming, CodecError> {
    decode_packet!(v5, p, suback_failed: |c| (**c as u8) >= 0x80, {
        v5::Packet::ConnAck(c) => Incoming::ConnAck {
            session_present: c.session_present,
            result: connack_result(c.code, v5::ConnectReturnCode::Success),
            receive_maximum: c.properties.as_ref().and_then(|p| p.receive_max),
            server_keepalive: c.properties.as_ref().and_then(|p| p.server_keep_alive),
        },
        // Decoded before mqttbytes sees it (see Codec::decode).
        v5::Packet::Disconnect(_) => return unexpected("DISCONNECT"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// CONNECT options with every field set (a will, a user and a password).
    pub(crate) fn connect_opts() -> ConnectOptions {
        ConnectOptions {
            client_id: "cid".into(),
            clean_session: true,
            keepalive_secs: 30,
            user: "u".into(),
            password: "p".into(),
            will: Some(WillMessage {
                topic: "w".into(),
                payload: Bytes::from_static(b"down"),
                qos: QoS::AtLeastOnce,
                retain: true,
            }),
            receive_maximum: 20,
        }
    }

    #[test]
    fn connect_v4_bytes_even_after_other_packets() {
        let c = Codec::new(Protocol::V311, 1 << 20);
        let mut out = BytesMut::new();
        // A packet already in the buffer must not shift the flags byte (mqttbytes quirk).
        c.encode_pingreq(&mut out).unwrap();
        c.encode_connect(&connect_opts(), &mut out).unwrap();
        let want: &[u8] = &[
            0xC0,
            0x00, // PINGREQ
            0x10,
            0x1E,
            0x00,
            0x04,
            b'M',
            b'Q',
            b'T',
            b'T',
            0x04,
            0b1110_1110, // user, password, will retain, will qos 1, will, clean session
            0x00,
            0x1E,
            0x00,
            0x03,
            b'c',
            b'i',
            b'd',
            0x00,
            0x01,
            b'w',
            0x00,
            0x04,
            b'd',
            b'o',
            b'w',
            b'n',
            0x00,
            0x01,
            b'u',
            0x00,
            0x01,
            b'p',
        ];
        assert_eq!(&out[..], want);
    }

    #[test]
    fn connect_v5_has_properties() {
        let c = Codec::new(Protocol::V5, 1 << 20);
        let mut out = BytesMut::new();
        let mut o = connect_opts();
        o.will = None;
        o.clean_session = false;
        c.encode_connect(&o, &mut out).unwrap();
        assert_eq!(out[8], 0x05, "protocol level 5");
        assert_eq!(out[9], 0b1100_0000, "user + password, no clean start");
        // Properties: session expiry (0x11, u32::MAX) and receive maximum (0x21, 20).
        assert_eq!(
            &out[12..21],
            &[8, 0x11, 0xFF, 0xFF, 0xFF, 0xFF, 0x21, 0x00, 0x14]
        );
    }

    #[test]
    fn publish_round_trip_both_versions() {
        for proto in [Protocol::V311, Protocol::V5] {
            let c = Codec::new(proto, 1 << 20);
            let payload = Bytes::from_static(b"hello");
            let mut out = BytesMut::new();
            c.encode_publish(
                &OutPublish {
                    topic: "a/b",
                    payload: &payload,
                    qos: QoS::AtLeastOnce,
                    retain: true,
                    dup: true,
                    pkid: 7,
                    user_properties: &[],
                },
                &mut out,
            )
            .unwrap();
            out.extend_from_slice(&[0xDE, 0xAD]);
            let mut c2 = Codec::new(proto, 1 << 20);
            let got = c2.decode(&mut out).unwrap().unwrap();
            assert_eq!(
                got,
                Incoming::Publish(Message {
                    topic: "a/b".into(),
                    payload,
                    qos: QoS::AtLeastOnce,
                    pkid: 7,
                    retain: true,
                    dup: true,
                }),
                "{proto:?}"
            );
            assert_eq!(&out[..], &[0xDE, 0xAD], "trailing bytes stay");
        }
    }

    #[test]
    fn v5_publish_user_properties() {
        let c = Codec::new(Protocol::V5, 1 << 20);
        let payload = Bytes::from_static(b"x");
        let props = vec![("k".to_string(), "v".to_string())];
        let mut out = BytesMut::new();
        c.encode_publish(
            &OutPublish {
                topic: "t",
                payload: &payload,
                qos: QoS::AtMostOnce,
                retain: false,
                dup: false,
                pkid: 0,
                user_properties: &props,
            },
            &mut out,
        )
        .unwrap();
        // 0x26 = user property.
        assert!(out.windows(3).any(|w| w == [0x26, 0x00, 0x01]));
        let mut c2 = Codec::new(Protocol::V5, 1 << 20);
        match c2.decode(&mut out).unwrap() {
            Some(Incoming::Publish(m)) => assert_eq!(&m.payload[..], b"x"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_input_needs_more() {
        let mut c = Codec::new(Protocol::V311, 1 << 20);
        let full: &[u8] = &[0x20, 0x02, 0x01, 0x00]; // CONNACK session present, success
        for cut in 0..full.len() {
            let mut b = BytesMut::from(&full[..cut]);
            assert_eq!(c.decode(&mut b), Ok(None), "cut {cut}");
            assert_eq!(b.len(), cut, "buffer untouched");
        }
        let mut b = BytesMut::from(full);
        assert_eq!(
            c.decode(&mut b),
            Ok(Some(Incoming::ConnAck {
                session_present: true,
                result: Ok(()),
                receive_maximum: None,
                server_keepalive: None
            }))
        );
    }

    #[test]
    fn connack_refused_and_acks() {
        let mut c = Codec::new(Protocol::V311, 1 << 20);
        let mut b = BytesMut::from(
            &[
                0x20, 0x02, 0x00, 0x05, // refused: not authorised
                0x40, 0x02, 0x00, 0x09, // PUBACK 9
                0x90, 0x04, 0x00, 0x03, 0x01, 0x80, // SUBACK 3: granted 1, failure
                0xD0, 0x00, // PINGRESP
                0x62, 0x02, 0x00, 0x04, // PUBREL 4
            ][..],
        );
        assert!(matches!(
            c.decode(&mut b),
            Ok(Some(Incoming::ConnAck { result: Err(_), .. }))
        ));
        assert_eq!(c.decode(&mut b), Ok(Some(Incoming::PubAck { pkid: 9 })));
        assert_eq!(
            c.decode(&mut b),
            Ok(Some(Incoming::SubAck {
                pkid: 3,
                failures: 1
            }))
        );
        assert_eq!(c.decode(&mut b), Ok(Some(Incoming::PingResp)));
        assert_eq!(c.decode(&mut b), Ok(Some(Incoming::PubRel { pkid: 4 })));
        assert_eq!(c.decode(&mut b), Ok(None));
    }

    #[test]
    fn v5_connack_properties_and_disconnect() {
        let mut c = Codec::new(Protocol::V5, 1 << 20);
        let mut b = BytesMut::from(
            &[
                0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0x00, 0x05, 0x13, 0x00, 0x0A, // CONNACK
                0xE0, 0x00, // DISCONNECT, no reason code
                0xE0, 0x01, 0x8B, // DISCONNECT, server shutting down
            ][..],
        );
        assert_eq!(
            c.decode(&mut b),
            Ok(Some(Incoming::ConnAck {
                session_present: false,
                result: Ok(()),
                receive_maximum: Some(5),
                server_keepalive: Some(10)
            }))
        );
        assert_eq!(
            c.decode(&mut b),
            Ok(Some(Incoming::Disconnect {
                reason: "reason code 0x00".into()
            }))
        );
        assert_eq!(
            c.decode(&mut b),
            Ok(Some(Incoming::Disconnect {
                reason: "reason code 0x8B".into()
            }))
        );
    }

    #[test]
    fn oversized_packets_are_skipped_across_reads() {
        let mut c = Codec::new(Protocol::V311, 10);
        // PUBLISH with 20 bytes remaining, delivered in two parts, then a PINGRESP.
        let mut pkt = vec![0x30, 20];
        pkt.extend_from_slice(&[0x00, 0x01, b't']);
        pkt.extend_from_slice(&[b'x'; 17]);
        let mut b = BytesMut::from(&pkt[..8]);
        assert_eq!(
            c.decode(&mut b),
            Ok(Some(Incoming::Oversized { bytes: 22 }))
        );
        assert!(b.is_empty());
        b.extend_from_slice(&pkt[8..]);
        b.extend_from_slice(&[0xD0, 0x00]);
        assert_eq!(c.decode(&mut b), Ok(Some(Incoming::PingResp)));
    }

    #[test]
    fn garbage_is_an_error() {
        let mut c = Codec::new(Protocol::V311, 1 << 20);
        let mut b = BytesMut::from(&[0x20, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..]);
        assert!(c.decode(&mut b).is_err());
        let mut b = BytesMut::from(&[0x10, 0x00][..]);
        assert!(c.decode(&mut b).is_err(), "CONNECT from a broker");
        let mut b = BytesMut::from(&[0x00, 0x00][..]);
        assert!(c.decode(&mut b).is_err(), "packet type 0");
    }

    #[test]
    fn encoders() {
        let c = Codec::new(Protocol::V311, 1 << 20);
        let mut out = BytesMut::new();
        c.encode_ack(Ack::PubAck, 5, &mut out).unwrap();
        c.encode_ack(Ack::PubRec, 6, &mut out).unwrap();
        c.encode_ack(Ack::PubComp, 7, &mut out).unwrap();
        c.encode_pingreq(&mut out).unwrap();
        c.encode_disconnect(&mut out).unwrap();
        c.encode_subscribe(
            8,
            &[SubscribeFilter {
                filter: "a/#".into(),
                qos: QoS::AtLeastOnce,
                v5_options: 0x04,
            }],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            &out[..],
            &[
                0x40, 2, 0, 5, 0x50, 2, 0, 6, 0x70, 2, 0, 7, 0xC0, 0, 0xE0, 0, 0x82, 8, 0, 8, 0, 3,
                b'a', b'/', b'#', 1
            ]
        );
        let c5 = Codec::new(Protocol::V5, 1 << 20);
        let mut out = BytesMut::new();
        c5.encode_subscribe(
            8,
            &[SubscribeFilter {
                filter: "a".into(),
                qos: QoS::AtLeastOnce,
                v5_options: 0x04 | 0x08 | 0x20,
            }],
            &mut out,
        )
        .unwrap();
        assert_eq!(out.last(), Some(&(1 | 0x04 | 0x08 | 0x20)));
    }
}
