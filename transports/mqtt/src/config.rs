//! The `mqtt` block of the driver entry (mqtt.md §2), deserialized by `vscp_config::Reader`
//! straight into [`MqttConfig`] (errors name file and dotted key, unknown keys warn).
//!
//! Every documented key is read at its documented place (REF reads the sub-objects' keys from
//! the outer object, so `reconnect`, `mqtt-options`, `tls` and `filter` never took effect
//! there). Publish entries accept both `bretain` (what REF reads) and `retain` (what the samples
//! write); top-level `publish-format`, `subscribe-format`, `qos` and `bretain` are the defaults
//! for entries that omit them, as the vscpd docs promise. Our extension: `max-offline-events`.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use vscp_config::{block, config_block, flag, parsed_by, Block, ConfigError, Flag, Int};
use vscp_config::{Nothing, Origin, Reader, Text};
use vscp_proto::{Filter, Guid};

use crate::codec::{Protocol, QoS};
use crate::payload::{PublishFormat, SubscribeFormat};
use crate::template::Template;

/// Default broker port.
pub const DEFAULT_PORT: u16 = 1883;
/// Default broker port with TLS (IANA `secure-mqtt`), for a TLS scheme in `host` and no port.
pub const DEFAULT_TLS_PORT: u16 = 8883;
/// Host schemes that ask for TLS (vscpd and the mosquitto/paho tools use all of these).
const TLS_SCHEMES: &[&str] = &["stcp", "mqtts", "ssl", "tls", "wss"];
/// Host schemes that ask for MQTT over websockets (MQTT 3.1.1 §6), on ports 80 and 443 unless
/// one is given, as in any URL.
const WS_SCHEMES: &[&str] = &["ws", "wss"];
/// Default capacity of the offline buffer, in publishes (one per event and publish entry).
pub const DEFAULT_MAX_OFFLINE_EVENTS: usize = 10_000;
/// Unacknowledged QoS 1/2 publishes we allow ourselves. REF's 20 (never applied) bounds a
/// bridge to 20 per broker round trip; brokers take far more from one client under MQTT 3.1.1,
/// and MQTT 5 caps this with the broker's receive maximum. Measured in docs/BENCHMARKS.md.
pub const DEFAULT_SEND_MAXIMUM: u64 = 1000;
const FIVE_SECONDS: Duration = Duration::from_secs(5);

/// One `subscribe[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeEntry {
    pub topic: Template,
    pub qos: QoS,
    /// MQTT 5 subscription options byte (no-local 0x04, retain-as-published 0x08, retain
    /// handling 0x10/0x20); ignored for 3.1.1.
    pub v5_options: u8,
    pub format: SubscribeFormat,
}

/// One `publish[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishEntry {
    pub topic: Template,
    /// 0, 1 or 2 (QoS 2 with the PUBREC/PUBREL/PUBCOMP exchange).
    pub qos: QoS,
    pub retain: bool,
    pub format: PublishFormat,
}

/// Lowest TLS version the bridge accepts (`tls.version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 or 1.3 (also what older versions in the config become: rustls has nothing
    /// older than 1.2).
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// How the broker's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVerify {
    /// Chain to a trust anchor and the host name (the default, `cert-reqs` ≥ 1).
    Full,
    /// Chain only (`no-hostname-checking: true`): any certificate from the trusted CAs is
    /// accepted for any host, so a different server holding such a certificate can pose as the
    /// broker.
    ChainOnly,
    /// Nothing but the handshake signature (`cert-reqs: 0`): anyone on the path can pose as the
    /// broker. Start-up warns.
    None,
}

/// The `tls` block, or a TLS scheme in `host`: TLS to the broker (rustls). Paths are only
/// recorded here; the files are read when the bridge is created (runtime::MqttBridge::new), so
/// this module stays free of I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// File and key of the block (`mqtt.tls`), so file errors name both.
    pub origin: Origin,
    /// `cafile`: PEM file of trust anchors.
    pub ca_file: Option<PathBuf>,
    /// `capath`: directory whose PEM files are trust anchors.
    pub ca_path: Option<PathBuf>,
    /// `certfile` + `keyfile`: client certificate chain and its (unencrypted) key, PEM.
    pub client_auth: Option<(PathBuf, PathBuf)>,
    pub verify: TlsVerify,
    /// `version`: lowest accepted protocol version (default: rustls's, 1.2).
    pub min_version: TlsVersion,
}

// Fields are named after their keys unless `key` says otherwise; meanings, defaults and ranges
// are docs/mqtt.md's. Comments here say only what the docs do not.
config_block! {
    /// `reconnect`: the backoff schedule after a failed or lost connection.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Reconnect {
        /// Default 2 s (REF's fixed value).
        pub delay: Duration = Duration::from_secs(2), with "Int::<0, 3600>::secs";
        /// At least `delay`. Default 10 s (REF's fixed value) or `delay` (`MAX`: not given).
        pub delay_max: Duration = Duration::MAX, with "Int::<0, 86_400>::secs";
        /// Double the wait after each failure (up to `delay-max`); otherwise always `delay`.
        pub exponential: bool, key "exponential-backoff", with "flag";
    }

    /// `will`: the last-will message (mqtt.md §7).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Will {
        pub topic: Template = Template::parse(""), with "template";
        /// Default 1 (vscpd docs; REF leaves it uninitialised).
        pub qos: QoS = QoS::AtLeastOnce;
        /// Default true (vscpd docs). A retained will is cleared on every connect.
        pub retain: bool = true, with "flag";
        pub payload: String;
    }

    /// The validated `mqtt` block.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct MqttConfig {
        /// File and key of the block, for the checks the bridge finishes later (rendered topics).
        #[serde(skip)] pub origin: Origin;
        /// Without scheme and port.
        pub host: String = "localhost".into();
        /// `port`, else a port in `host`, else 1883 (8883 with a TLS scheme).
        pub port: u16, with "Int::<1, 65535>::de";
        pub bind: Option<SocketAddr>, with "bind";
        /// `tls` or a TLS scheme in `host`; `None` is plain TCP.
        #[serde(skip)] pub tls: Option<TlsConfig>;
        /// `ws://` or `wss://` in `host`: MQTT over websockets, upgraded on this URL path.
        #[serde(skip)] pub websocket: Option<String>;
        pub user: String;
        pub password: String;
        /// As written; `{{rnd}}` and the static variables are rendered at start. Empty: the
        /// broker assigns one and a clean session is forced.
        pub client_id: String, key "clientid";
        /// Default 30 (REF; its docs claim 60).
        pub keepalive: Duration = Duration::from_secs(30), with "Int::<0, 65535>::secs";
        pub connection_timeout: Duration = FIVE_SECONDS, with "Int::<100, 300_000>::millis";
        /// Forced true without a client id.
        pub clean_session: bool, key "bcleansession", with "flag";
        pub json_measurement_block: bool = true, key "bjsonmeasurementblock", with "flag";
        pub topic_event_defaults: bool, key "bUseTopicForEventDefaults", with "flag";
        pub escape_pub_topics: bool = true, key "bescape-pub-topics", with "flag";
        pub user_escapes: Vec<(String, String)>, with "pairs";
        /// These four are `mqtt-options`' `protocol-version`, `tcp-nodelay`, `receive-maximum`
        /// and `send-maximum`.
        #[serde(skip)] pub protocol: Protocol = Protocol::V311;
        #[serde(skip)] pub tcp_nodelay: bool;
        #[serde(skip)] pub receive_maximum: u16;
        #[serde(skip)] pub send_maximum: u16;
        pub reconnect: Reconnect, with "block";
        /// REF parses it but never applies it.
        pub filter: Filter, with "filter";
        /// Set only when both topic and payload are non-empty, as REF does.
        pub will: Option<Will>, with "will";
        #[serde(skip)] pub subscribe: Vec<SubscribeEntry>;
        #[serde(skip)] pub publish: Vec<PublishEntry>;
        /// `v5.user-properties`.
        #[serde(skip)] pub user_properties: Vec<(String, String)>;
        /// At most a million: a publish holds a topic and a payload of a few KiB.
        pub max_offline_events: usize = DEFAULT_MAX_OFFLINE_EVENTS,
            with "Int::<0, 1_000_000>::de";
        pub backpressure: bool = true, with "flag";
        pub ack_from_broker: bool, with "flag";
        pub ack_timeout: Duration = FIVE_SECONDS, with "Int::<100, 300_000>::millis";
        pub drain_timeout: Duration = FIVE_SECONDS, with "Int::<0, 300_000>::millis";
    }

    /// What the block holds that [`MqttConfig`] has no field for, read from the same object.
    struct Extra {
        mqtt_options: Block<Options>;
        publish_format: Option<PublishFormat>;
        subscribe_format: Option<SubscribeFormat>;
        qos: Option<QoS>;
        bretain: Option<Flag>;
        /// Whether it was given: a contradiction with an empty `clientid` is warned about.
        bcleansession: Option<Flag>;
        tls: Block<TlsKeys>;
        subscribe: Vec<Entry<SubscribeKeys>>;
        publish: Vec<Entry<PublishKeys>>;
        v5: Block<V5>;
    }

    struct Options {
        tcp_nodelay: bool = true, with "flag";
        protocol_version: Protocol = Protocol::V311;
        receive_maximum: u16 = 20, with "Int::<1, 65535>::de";
        send_maximum: u16 = DEFAULT_SEND_MAXIMUM as u16, with "Int::<1, 65535>::de";
        // OpenSSL context knobs of REF, warned about when on: rustls has no OCSP stapling
        // check, always starts from its own safe defaults and trusts the OS store without
        // cafile/capath.
        ssl_ctx_with_defaults: bool, with "flag";
        tls_ocsp_required: bool, with "flag";
        tls_use_os_certs: bool, with "flag";
    }

    /// The `tls` keys. Paths are trimmed, empty is the same as absent (REF's sample block); what
    /// rustls cannot do is refused with the key named rather than ignored.
    struct TlsKeys {
        cafile: Option<PathBuf>, with "path_text";
        capath: Option<PathBuf>, with "path_text";
        certfile: Option<PathBuf>, with "path_text";
        keyfile: Option<PathBuf>, with "path_text";
        pwkeyfile: (), with "no_pwkeyfile";
        no_hostname_checking: bool, with "flag";
        cert_reqs: Option<Int<0, 2>>;
        version: String;
        ciphers: Option<PathBuf>, with "path_text";
        psk: (), with "no_psk";
        psk_identity: (), with "no_psk";
    }

    /// `filter`: numbers may be written as text in any notation (`"0xFFFF"`), as REF reads them.
    struct FilterKeys {
        priority_filter: u8, with "Int::<0, 7, true>::de";
        priority_mask: u8, with "Int::<0, 7, true>::de";
        class_filter: u16, with "Int::<0, 65535, true>::de";
        class_mask: u16, with "Int::<0, 65535, true>::de";
        type_filter: u16, with "Int::<0, 65535, true>::de";
        type_mask: u16, with "Int::<0, 65535, true>::de";
        guid_filter: Guid, with "guid";
        guid_mask: Guid, with "guid";
    }

    struct SubscribeKeys {
        topic: Option<String>;
        qos: Option<QoS>;
        v5_options: u8, with "v5_options_de";
        format: Option<SubscribeFormat>;
    }

    struct PublishKeys {
        topic: Option<String>;
        qos: Option<QoS>;
        bretain: Option<Flag>;
        retain: Option<Flag>;
        format: Option<PublishFormat>;
    }

    struct V5 {
        user_properties: Vec<(String, String)>, with "pairs";
    }
}

parsed_by!(
    PublishFormat => |v: Value| publish_format(&v),
    SubscribeFormat => |v: Value| subscribe_format(&v),
    Protocol => |v: Value| match v.as_u64() {
        Some(311) => Ok(Protocol::V311),
        Some(500) => Ok(Protocol::V5),
        _ => Err(format!("expected 311 (MQTT 3.1.1) or 500 (MQTT 5), found {v}")),
    },
    QoS => |n: Int<0, 2>| Ok::<_, String>(match n.0 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }),
);

parsed_by! {
    fn bind -> Option<SocketAddr> = |t: String| parse_bind(&t);
    fn path_text -> Option<PathBuf> = |t: String| Ok::<_, String>(Some(t.trim()).filter(|t| !t.is_empty()).map(PathBuf::from));
    fn template -> Template = |t: String| Ok::<_, String>(Template::parse(&t));
    fn pairs -> Vec<(String, String)> = |m: BTreeMap<String, Text>| {
        Ok::<_, String>(m.into_iter().map(|(k, v)| (k, v.0)).collect())
    };
    fn filter -> Filter = |b: Block<FilterKeys>| Ok::<_, String>(Filter {
        filter_priority: b.0.priority_filter, mask_priority: b.0.priority_mask,
        filter_class: b.0.class_filter, mask_class: b.0.class_mask,
        filter_type: b.0.type_filter, mask_type: b.0.type_mask,
        filter_guid: b.0.guid_filter, mask_guid: b.0.guid_mask,
    });
    fn will -> Option<Will> = |b: Block<Will>| {
        let set = |w: &Will| !w.topic.source().is_empty() && !w.payload.is_empty();
        Ok::<_, String>(Some(b.0).filter(set))
    };
    fn guid -> Guid = |t: String| Guid::parse(&t).map_err(|e| e.to_string());
    fn v5_options_de -> u8 = |v: Value| v5_options(&v);
    // Keys that must be empty: rustls has no PSK suites and reads no encrypted keys.
    fn no_psk -> () = |t: String| refused(&t, "TLS pre-shared keys are not supported (rustls has no PSK cipher suites); use certificates (tls.cafile) instead");
    fn no_pwkeyfile -> () = |t: String| refused(&t, "encrypted private keys are not supported; decrypt the key (openssl pkey -in key.pem -out plain.pem) and leave pwkeyfile empty");
}

fn refused(text: &str, why: &'static str) -> Result<(), &'static str> {
    text.trim().is_empty().then_some(()).ok_or(why)
}

/// A `subscribe[]`/`publish[]` item and whether it was a bare string. REF skips plain strings;
/// one is taken as a topic with the defaults instead, because that is what its writer means.
struct Entry<T>(T, bool);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entry<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Entry<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object or a topic string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Entry<T>, E> {
                let fields = T::deserialize(serde_json::json!({ "topic": s }));
                fields.map(|t| Entry(t, true)).map_err(E::custom)
            }
            // Through the caller's `MapAccess`, so paths and unknown keys are still tracked.
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry<T>, A::Error> {
                let fields = T::deserialize(de::value::MapAccessDeserializer::new(map));
                fields.map(|t| Entry(t, false))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl MqttConfig {
    /// Reads and validates the block. `value` is the `mqtt` object itself, `file` labels errors
    /// and warnings, `prefix` is the block's key path (`mqtt`). Returns the config and the
    /// warnings (one per unknown or unused key).
    pub fn from_value(
        value: &Value,
        file: &str,
        prefix: &str,
    ) -> Result<(MqttConfig, Vec<String>), ConfigError> {
        let mut r = Reader::new(file, prefix);
        let (mut cfg, extra, Nothing {}): (MqttConfig, Extra, _) = r.read(value, "")?;
        cfg.origin = r.origin.clone();
        let scheme = cfg
            .host
            .trim()
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        let scheme = scheme.is_some_and(|s| TLS_SCHEMES.contains(&s.as_str()));
        let (host, host_port, websocket) = parse_host(&cfg.host).map_err(|e| r.err("host", e))?;
        let default_port = match (&websocket, scheme) {
            (None, tls) => [DEFAULT_PORT, DEFAULT_TLS_PORT][usize::from(tls)],
            (Some(_), tls) => [80, 443][usize::from(tls)],
        };
        if cfg.port == 0 {
            cfg.port = host_port.unwrap_or(default_port);
        }
        (cfg.host, cfg.websocket) = (host, websocket);
        cfg.tls = extra.tls.0.validate(&mut r, scheme)?;
        if cfg.client_id.is_empty() {
            if extra.bcleansession.is_some_and(|f| !f.0) {
                let (c, i) = (r.origin.key("bcleansession"), r.origin.key("clientid"));
                r.warn(format_args!("\"{c}\" is false but \"{i}\" is empty: MQTT requires a clean session without a client id, so it is used"));
            }
            cfg.clean_session = true;
        }
        let options = extra.mqtt_options.0;
        for (k, on) in [
            ("ssl-ctx-with-defaults", options.ssl_ctx_with_defaults),
            ("tls-ocsp-required", options.tls_ocsp_required),
            ("tls-use-os-certs", options.tls_use_os_certs),
        ] {
            if on {
                let key = r.origin.key(&format!("mqtt-options.{k}"));
                r.warn(format_args!("\"{key}\" accepted but not used: it is an OpenSSL option (the bridge uses rustls; without tls.cafile/capath it trusts the OS store)"));
            }
        }
        (cfg.protocol, cfg.tcp_nodelay) = (options.protocol_version, options.tcp_nodelay);
        (cfg.receive_maximum, cfg.send_maximum) = (options.receive_maximum, options.send_maximum);
        let rc = &mut cfg.reconnect;
        if rc.delay_max == Duration::MAX {
            rc.delay_max = rc.delay.max(Duration::from_secs(10));
        } else if rc.delay_max < rc.delay {
            let (max, delay) = (rc.delay_max.as_secs(), rc.delay.as_secs());
            let reason = format!("{max} is less than reconnect.delay ({delay})");
            return Err(r.err("reconnect.delay-max", reason));
        }
        let default_qos = extra.qos.unwrap_or(QoS::AtMostOnce);
        // The topic of list item `at` and the key its errors name (`at` itself for a bare string).
        let topic = |topic: Option<String>, bare, at: String| {
            let key = if bare { at } else { format!("{at}.topic") };
            match topic {
                Some(t) if !t.trim().is_empty() => Ok((Template::parse(&t), key)),
                _ => Err(r.err(&key, "a topic is required")),
            }
        };
        for (i, Entry(e, bare)) in extra.subscribe.into_iter().enumerate() {
            cfg.subscribe.push(SubscribeEntry {
                topic: topic(e.topic, bare, format!("subscribe[{i}]"))?.0,
                qos: e.qos.unwrap_or(default_qos),
                v5_options: e.v5_options,
                format: (e.format.or(extra.subscribe_format)).unwrap_or(SubscribeFormat::Auto),
            });
        }
        for (i, Entry(e, bare)) in extra.publish.into_iter().enumerate() {
            let (topic, topic_key) = topic(e.topic, bare, format!("publish[{i}]"))?;
            if topic.is_literal() && topic.source().contains(['+', '#']) {
                let reason = "a publish topic cannot contain the wildcards + or #";
                return Err(r.err(&topic_key, reason));
            }
            if matches!((e.bretain, e.retain), (Some(b), Some(x)) if b != x) {
                let reason = "both bretain and retain are given and they differ; keep one";
                return Err(r.err(&format!("publish[{i}].retain"), reason));
            }
            cfg.publish.push(PublishEntry {
                topic,
                qos: e.qos.unwrap_or(default_qos),
                retain: (e.bretain.or(e.retain).or(extra.bretain)).is_some_and(|f| f.0),
                format: (e.format.or(extra.publish_format)).unwrap_or(PublishFormat::Json),
            });
        }
        cfg.user_properties = extra.v5.0.user_properties;
        Ok((cfg, r.warnings))
    }
}

impl TlsKeys {
    /// TLS is on with a TLS scheme in `host` or a `tls` block naming any file. REF's sample
    /// block (every path empty) left REF on plain TCP, so such a block keeps plain TCP too.
    /// What rustls cannot do (PSK, encrypted keys) stops start-up with the key named, rather
    /// than silently connecting with weaker settings than asked for.
    fn validate(self, r: &mut Reader, scheme: bool) -> Result<Option<TlsConfig>, ConfigError> {
        let client_auth = match (self.certfile, self.keyfile) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(r.err("tls.keyfile", "tls.certfile is set: its key is needed too"))
            }
            (None, Some(_)) => {
                let reason = "tls.keyfile is set: the certificate it belongs to is needed too";
                return Err(r.err("tls.certfile", reason));
            }
        };
        let (file, prefix) = (r.origin.file.clone(), r.origin.key("tls"));
        let origin = Origin { file, prefix };
        let version = self.version;
        let min_version = match version.trim().to_ascii_lowercase().as_str() {
            "" | "tlsv1.2" | "tls1.2" | "1.2" => TlsVersion::Tls12,
            "tlsv1.3" | "tls1.3" | "1.3" => TlsVersion::Tls13,
            "tlsv1" | "tlsv1.0" | "tls1" | "tls1.0" | "1.0" | "tlsv1.1" | "tls1.1" | "1.1" => {
                let key = origin.key("version");
                r.warn(format_args!("\"{key}\" is {version:?}: TLS 1.0/1.1 are not offered (insecure, not in rustls); TLS 1.2 is the minimum"));
                TlsVersion::Tls12
            }
            _ => {
                let reason = format!("expected \"tlsv1.2\" or \"tlsv1.3\", found {version:?}");
                return Err(r.err("tls.version", reason));
            }
        };
        if self.ciphers.is_some() {
            // OpenSSL cipher lists do not map onto rustls's fixed set of modern AEAD suites;
            // those are all considered safe, so ignoring the list cannot weaken anything.
            let key = origin.key("ciphers");
            r.warn(format_args!(
                "\"{key}\" ignored: rustls offers its own fixed set of modern cipher suites"
            ));
        }
        let (ca_file, ca_path) = (self.cafile, self.capath);
        if !(scheme || ca_file.is_some() || ca_path.is_some() || client_auth.is_some()) {
            return Ok(None);
        }
        let verify = if self.cert_reqs.is_some_and(|n| n.0 == 0) {
            let key = origin.key("cert-reqs");
            r.warn(format_args!("\"{key}\" is 0: the broker's certificate is NOT verified; anyone on the network path can pose as the broker and read the credentials and events"));
            TlsVerify::None
        } else if self.no_hostname_checking {
            let key = origin.key("no-hostname-checking");
            r.warn(format_args!("\"{key}\" is true: any certificate from the trusted CAs is accepted, whatever host it was issued for"));
            TlsVerify::ChainOnly
        } else {
            TlsVerify::Full
        };
        Ok(Some(TlsConfig {
            origin,
            ca_file,
            ca_path,
            client_auth,
            verify,
            min_version,
        }))
    }
}

/// `bind`: empty (none), an IP address (any local port), or `ip:port` / `[v6]:port`.
fn parse_bind(text: &str) -> Result<Option<SocketAddr>, String> {
    let expected = || {
        format!("expected a local IP address, optionally with :port ([v6]:port), found {text:?}")
    };
    match vscp_config::split_address(text).map_err(|_| expected())? {
        (_, "", None) => Ok(None),
        (scheme, host, port) if scheme.is_empty() => {
            let ip = host.parse::<IpAddr>().map_err(|_| expected())?;
            Ok(Some(SocketAddr::new(ip, port.unwrap_or(0))))
        }
        _ => Err(expected()),
    }
}

/// `host`: optional scheme, a name or address, optional `:port` (`[v6]:port` for IPv6); after
/// `ws://` or `wss://` also a URL path, `/mqtt` when none is given (what paho and MQTT.js use).
fn parse_host(text: &str) -> Result<(String, Option<u16>, Option<String>), String> {
    let text = text.trim();
    let scheme = text.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let ws = scheme.as_deref().is_some_and(|s| WS_SCHEMES.contains(&s));
    let start = text.find("://").map_or(0, |i| i + 3);
    let (address, path) = match text[start..].find('/') {
        Some(i) if ws => (&text[..start + i], Some(&text[start + i..])),
        _ => (text, None),
    };
    let (scheme, host, port) = vscp_config::split_address(address)?;
    let known = ["", "tcp", "mqtt"]
        .iter()
        .chain(TLS_SCHEMES)
        .chain(WS_SCHEMES);
    if !known.into_iter().any(|k| *k == scheme) {
        return Err(format!(
            "unsupported scheme in {text:?}; use tcp://, mqtt://, ws:// or (TLS) mqtts://, ssl://, wss://"
        ));
    }
    let path = ws.then(|| path.unwrap_or("/mqtt").to_owned());
    match (host, port) {
        ("", _) => Err("no host name or address".into()),
        (_, Some(0)) => Err(format!("{text:?}: port 0 is out of range 1..=65535")),
        _ => Ok((host.to_owned(), port, path)),
    }
}

/// A payload format's number (json 0, xml 1, string 2, binary 3, auto 4), given as the number
/// or a name. Names are matched by substring after lower-casing, in REF's order (mqtt.md §3):
/// binary, string, json, xml, auto.
fn format_number(v: &Value) -> Option<usize> {
    let names = ["json", "xml", "string", "binary", "auto"];
    let named = |s: &String, i: &usize| s.to_ascii_lowercase().contains(names[*i]);
    match v {
        Value::Number(n) => n.as_u64().filter(|&n| n <= 4).map(|n| n as usize),
        Value::String(s) => [3, 2, 0, 1, 4].into_iter().find(|i| named(s, i)),
        _ => None,
    }
}

/// A subscribe format: a name or a number 0..=4 (4 = auto).
fn subscribe_format(v: &Value) -> Result<SubscribeFormat, String> {
    use SubscribeFormat as F;
    let found = format_number(v).map(|i| [F::Json, F::Xml, F::String, F::Binary, F::Auto][i]);
    found.ok_or_else(|| format!("expected json, xml, string, binary or auto (or 0..=4), found {v}"))
}

/// A publish format: as a subscribe format, without auto. REF falls back to JSON for anything
/// else; a typo is reported here instead.
fn publish_format(v: &Value) -> Result<PublishFormat, String> {
    use PublishFormat as P;
    let found = format_number(v).and_then(|i| [P::Json, P::Xml, P::String, P::Binary].get(i));
    found
        .copied()
        .ok_or_else(|| format!("expected json, xml, string or binary (or 0..=3), found {v}"))
}

/// `v5-options`: a number, or tokens (`NO_LOCAL`, `RETAIN_AS_PUBLISHED`, `SEND_RETAIN_ALWAYS`,
/// `SEND_RETAIN_NEW`, `SEND_RETAIN_NEVER`) separated by `|`, `,`, `+` or spaces.
fn v5_options(v: &Value) -> Result<u8, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .filter(|n| n & 0xC3 == 0 && n & 0x30 != 0x30)
            .ok_or_else(|| format!("{n} is not a valid options byte (0x04 no-local, 0x08 retain-as-published, 0x10/0x20 retain handling)")),
        Value::String(s) => {
            let mut out = 0u8;
            for tok in s.split(['|', ',', '+', ' ']).filter(|t| !t.is_empty()) {
                out |= match tok.trim().to_ascii_uppercase().as_str() {
                    "NO_LOCAL" => 0x04,
                    "RETAIN_AS_PUBLISHED" => 0x08,
                    "SEND_RETAIN_ALWAYS" => 0x00,
                    "SEND_RETAIN_NEW" => 0x10,
                    "SEND_RETAIN_NEVER" => 0x20,
                    other => return Err(format!("unknown option {other:?}")),
                };
            }
            if out & 0x30 == 0x30 {
                return Err("SEND_RETAIN_NEW and SEND_RETAIN_NEVER exclude each other".into());
            }
            Ok(out)
        }
        other => Err(format!("expected a number or option names, found {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<(MqttConfig, Vec<String>), ConfigError> {
        MqttConfig::from_value(&v, "<test>", "mqtt")
    }

    fn key_of(v: Value) -> String {
        match parse(v) {
            Err(e) => e.key().unwrap_or_default().to_owned(),
            Ok(c) => panic!("expected an error, got {c:?}"),
        }
    }

    /// The vscpd driver entry's `mqtt` block from the seed README, verbatim.
    fn seed_block() -> Value {
        json!({
            "bind": "",
            "host": "test.mqtt.org",
            "port": 1883,
            "mqtt-options": {
              "tcp-nodelay": true,
              "protocol-version": 311,
              "receive-maximum": 20,
              "send-maximum": 20,
              "ssl-ctx-with-defaults": 0,
              "tls-ocsp-required": 0,
              "tls-use-os-certs": 0
            },
            "user": "vscp",
            "password": "secret",
            "clientid": "the-vscp-daemon websocksrv driver",
            "publish-format": "json",
            "subscribe-format": "auto",
            "qos": 1,
            "bcleansession": false,
            "bretain": false,
            "keepalive": 60,
            "bjsonmeasurementblock": true,
            "reconnect": { "delay": 2, "delay-max": 10, "exponential-backoff": false },
            "tls": {
              "cafile": "", "capath": "", "certfile": "", "keyfile": "", "pwkeyfile": "",
              "no-hostname-checking": true, "cert-reqs": 0, "version": "", "ciphers": "",
              "psk": "", "psk-identity": ""
            },
            "will": {
              "topic": "vscp-daemon/{{srvguid}}/will",
              "qos": 1,
              "retain": true,
              "payload": "VSCP Daemon is down"
            },
            "subscribe" : [
              { "topic": "vscp/websocksrv/{{guid}}/#", "qos": 0, "v5-options": 0, "format": "auto" }
            ],
            "publish" : [
              { "topic": "vscp/{{guid}}/{{class}}/{{type}}/{{nodeid}}", "qos": 1, "retain": false, "format": "json" }
            ]
        })
    }

    #[test]
    fn seed_block_reads_without_warnings() {
        let (c, w) = parse(seed_block()).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.host, "test.mqtt.org");
        assert_eq!(c.port, 1883);
        assert_eq!(c.user, "vscp");
        assert_eq!(c.client_id, "the-vscp-daemon websocksrv driver");
        assert_eq!(c.keepalive, Duration::from_secs(60));
        assert!(!c.clean_session);
        assert!(c.json_measurement_block);
        assert_eq!(c.protocol, Protocol::V311);
        assert!(c.tcp_nodelay);
        assert_eq!((c.receive_maximum, c.send_maximum), (20, 20));
        assert_eq!(
            c.reconnect,
            Reconnect {
                delay: Duration::from_secs(2),
                delay_max: Duration::from_secs(10),
                exponential: false
            }
        );
        let will = c.will.unwrap();
        assert_eq!(will.topic.source(), "vscp-daemon/{{srvguid}}/will");
        assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, true));
        assert_eq!(c.subscribe.len(), 1);
        assert_eq!(c.subscribe[0].format, SubscribeFormat::Auto);
        assert_eq!(c.subscribe[0].qos, QoS::AtMostOnce);
        assert_eq!(c.publish.len(), 1);
        assert_eq!(c.publish[0].qos, QoS::AtLeastOnce);
        assert!(!c.publish[0].retain);
        assert_eq!(c.publish[0].format, PublishFormat::Json);
        assert_eq!(c.filter, Filter::ALL_PASS);
    }

    #[test]
    fn defaults() {
        let (c, w) = parse(json!({})).unwrap();
        assert!(w.is_empty());
        assert_eq!((c.host.as_str(), c.port), ("localhost", 1883));
        assert_eq!(c.keepalive, Duration::from_secs(30));
        assert_eq!(c.connection_timeout, Duration::from_millis(5000));
        assert!(c.clean_session, "no client id forces a clean session");
        assert!(c.escape_pub_topics);
        assert!(!c.topic_event_defaults);
        assert_eq!(c.max_offline_events, DEFAULT_MAX_OFFLINE_EVENTS);
        assert!(
            c.backpressure,
            "a connected broker's pace holds the clients back"
        );
        assert!(
            !parse(json!({"backpressure": false}))
                .unwrap()
                .0
                .backpressure
        );
        assert!(c.will.is_none());
        assert!(c.publish.is_empty() && c.subscribe.is_empty());
        assert!(!c.ack_from_broker);
        assert_eq!(c.ack_timeout, Duration::from_millis(5000));
        assert_eq!((c.receive_maximum, c.send_maximum), (20, 1000));
        assert_eq!(c.drain_timeout, Duration::from_millis(5000));
        let (a, _) = parse(json!({"ack-from-broker": true, "ack-timeout": 250})).unwrap();
        assert!(a.ack_from_broker);
        assert_eq!(a.ack_timeout, Duration::from_millis(250));
    }

    /// REF's outer-object bug: sub-keys are read where they are documented.
    #[test]
    fn nested_objects_are_read() {
        let (c, _) = parse(json!({
            "clientid": "x",
            "mqtt-options": {"protocol-version": 500, "tcp-nodelay": false, "receive-maximum": 5, "send-maximum": 7},
            "reconnect": {"delay": 1, "delay-max": 30, "exponential-backoff": true},
            "filter": {"class-filter": 10, "class-mask": "0xFFFF", "guid-filter": "FF:01", "priority-mask": 7, "priority-filter": 3}
        }))
        .unwrap();
        assert_eq!(c.protocol, Protocol::V5);
        assert!(!c.tcp_nodelay);
        assert_eq!((c.receive_maximum, c.send_maximum), (5, 7));
        assert_eq!(c.reconnect.delay, Duration::from_secs(1));
        assert_eq!(c.reconnect.delay_max, Duration::from_secs(30));
        assert!(c.reconnect.exponential);
        assert_eq!((c.filter.filter_class, c.filter.mask_class), (10, 0xFFFF));
        assert_eq!(c.filter.filter_guid.0[..2], [0xFF, 0x01]);
        assert_eq!((c.filter.filter_priority, c.filter.mask_priority), (3, 7));
    }

    #[test]
    fn entry_defaults_come_from_top_level() {
        let (c, w) = parse(json!({
            "qos": 1, "bretain": true, "publish-format": "xml", "subscribe-format": "string",
            "publish": [{"topic": "a"}, {"topic": "b", "bretain": false, "format": 3, "qos": 0}, "c"],
            "subscribe": [{"topic": "s/#"}, {"topic": "t", "format": "BINARY", "qos": 0}, "u/+"]
        }))
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        let p: Vec<_> = c
            .publish
            .iter()
            .map(|e| (e.qos, e.retain, e.format))
            .collect();
        assert_eq!(
            p,
            [
                (QoS::AtLeastOnce, true, PublishFormat::Xml),
                (QoS::AtMostOnce, false, PublishFormat::Binary),
                (QoS::AtLeastOnce, true, PublishFormat::Xml),
            ]
        );
        let s: Vec<_> = c.subscribe.iter().map(|e| (e.qos, e.format)).collect();
        assert_eq!(
            s,
            [
                (QoS::AtLeastOnce, SubscribeFormat::String),
                (QoS::AtMostOnce, SubscribeFormat::Binary),
                (QoS::AtLeastOnce, SubscribeFormat::String),
            ]
        );
        assert_eq!(c.subscribe[2].topic.source(), "u/+");
    }

    #[test]
    fn retain_and_bretain() {
        let (c, _) = parse(json!({"publish": [{"topic": "a", "retain": true}, {"topic": "b", "bretain": true}, {"topic": "c", "retain": true, "bretain": true}]})).unwrap();
        assert!(c.publish.iter().all(|e| e.retain));
        assert_eq!(
            key_of(json!({"publish": [{"topic": "a", "retain": true, "bretain": false}]})),
            "mqtt.publish[0].retain"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(publish_format(&json!("Json")), Ok(PublishFormat::Json));
        assert_eq!(publish_format(&json!("format-xml")), Ok(PublishFormat::Xml));
        assert_eq!(publish_format(&json!(2)), Ok(PublishFormat::String));
        assert!(publish_format(&json!("auto")).is_err());
        assert!(publish_format(&json!("jsn")).is_err());
        assert!(publish_format(&json!(4)).is_err());
        assert_eq!(subscribe_format(&json!("auto")), Ok(SubscribeFormat::Auto));
        assert_eq!(subscribe_format(&json!(4)), Ok(SubscribeFormat::Auto));
        // REF's order: "binary" is checked before "string".
        assert_eq!(
            subscribe_format(&json!("binarystring")),
            Ok(SubscribeFormat::Binary)
        );
        assert!(subscribe_format(&json!(true)).is_err());
    }

    #[test]
    fn v5_option_forms() {
        assert_eq!(v5_options(&json!(0)), Ok(0));
        assert_eq!(v5_options(&json!(0x24)), Ok(0x24));
        assert_eq!(v5_options(&json!("NO_LOCAL|RETAIN_AS_PUBLISHED")), Ok(0x0C));
        assert_eq!(v5_options(&json!("no_local, send_retain_new")), Ok(0x14));
        assert!(v5_options(&json!(1)).is_err(), "QoS bits belong to qos");
        assert!(v5_options(&json!(0x30)).is_err());
        assert!(v5_options(&json!("NOPE")).is_err());
        assert!(v5_options(&json!("SEND_RETAIN_NEW|SEND_RETAIN_NEVER")).is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            parse_host("tcp://h:1884"),
            Ok(("h".into(), Some(1884), None))
        );
        assert_eq!(
            parse_host("mqtt://10.0.0.1"),
            Ok(("10.0.0.1".into(), None, None))
        );
        assert_eq!(parse_host("[::1]:1"), Ok(("::1".into(), Some(1), None)));
        assert_eq!(parse_host("::1"), Ok(("::1".into(), None, None)));
        assert_eq!(parse_host("h/"), Ok(("h".into(), None, None)));
        assert!(
            parse_host("tcp://h/mqtt").is_err(),
            "a path only after ws://"
        );
        assert!(parse_host("https://h").is_err());
        let ws = |p: &str| Some(p.to_owned());
        assert_eq!(parse_host("ws://h"), Ok(("h".into(), None, ws("/mqtt"))));
        assert_eq!(
            parse_host("WS://[::1]:9001/"),
            Ok(("::1".into(), Some(9001), ws("/")))
        );
        assert_eq!(
            parse_host("wss://h:8443/a/b?x"),
            Ok(("h".into(), Some(8443), ws("/a/b?x")))
        );
        for (host, port, tls, path) in [
            ("ws://b", 80, false, "/mqtt"),
            ("wss://b", 443, true, "/mqtt"),
            ("ws://b:9001/ws", 9001, false, "/ws"),
        ] {
            let (c, _) = parse(json!({ "host": host })).unwrap();
            assert_eq!((c.host.as_str(), c.port), ("b", port), "{host}");
            assert_eq!(
                (c.tls.is_some(), c.websocket.as_deref()),
                (tls, Some(path)),
                "{host}"
            );
        }
        let (c, _) = parse(json!({"host": "tcp://b"})).unwrap();
        assert_eq!(c.websocket, None);
        assert!(parse_host("h:0").is_err());
        assert!(parse_host("h:x").is_err());
        assert!(parse_host("").is_err());
        let (c, _) = parse(json!({"host": "tcp://b:1999"})).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("b", 1999));
        let (c, _) = parse(json!({"host": "tcp://b:1999", "port": 2000})).unwrap();
        assert_eq!(c.port, 2000, "port overrides a port in host");
    }

    #[test]
    fn errors_name_the_key() {
        for (v, key) in [
            (json!([]), "mqtt"),
            (json!({"host": 5}), "mqtt.host"),
            (json!({"host": "https://h"}), "mqtt.host"),
            (json!({"port": 0}), "mqtt.port"),
            (json!({"port": 70000}), "mqtt.port"),
            (json!({"bind": "eth0"}), "mqtt.bind"),
            (json!({"bind": "1.2.3.4:x"}), "mqtt.bind"),
            (json!({"keepalive": -1}), "mqtt.keepalive"),
            (json!({"connection-timeout": 1}), "mqtt.connection-timeout"),
            (json!({"bcleansession": "yes"}), "mqtt.bcleansession"),
            (json!({"reconnect": {"delay": "2"}}), "mqtt.reconnect.delay"),
            (
                json!({"reconnect": {"delay": 5, "delay-max": 2}}),
                "mqtt.reconnect.delay-max",
            ),
            (json!({"reconnect": 3}), "mqtt.reconnect"),
            (
                json!({"mqtt-options": {"protocol-version": 310}}),
                "mqtt.mqtt-options.protocol-version",
            ),
            (
                json!({"mqtt-options": {"send-maximum": 0}}),
                "mqtt.mqtt-options.send-maximum",
            ),
            (json!({"tls": {"cafile": 5}}), "mqtt.tls.cafile"),
            (
                json!({"filter": {"class-filter": 70000}}),
                "mqtt.filter.class-filter",
            ),
            (
                json!({"filter": {"guid-mask": "zz"}}),
                "mqtt.filter.guid-mask",
            ),
            (
                json!({"will": {"qos": 3, "topic": "t", "payload": "p"}}),
                "mqtt.will.qos",
            ),
            (json!({"subscribe": {}}), "mqtt.subscribe"),
            (
                json!({"subscribe": [{"qos": 0}]}),
                "mqtt.subscribe[0].topic",
            ),
            (json!({"subscribe": [5]}), "mqtt.subscribe[0]"),
            (
                json!({"subscribe": [{"topic": "a", "format": "yaml"}]}),
                "mqtt.subscribe[0].format",
            ),
            (
                json!({"subscribe": [{"topic": "a", "v5-options": "X"}]}),
                "mqtt.subscribe[0].v5-options",
            ),
            (
                json!({"publish": [{"topic": "a"}, {"topic": "a/#"}]}),
                "mqtt.publish[1].topic",
            ),
            (
                json!({"publish": [{"topic": "a", "format": "auto"}]}),
                "mqtt.publish[0].format",
            ),
            (json!({"publish-format": "nope"}), "mqtt.publish-format"),
            (json!({"qos": 5}), "mqtt.qos"),
            (json!({"user-escapes": {"a": []}}), "mqtt.user-escapes.a"),
            (
                json!({"v5": {"user-properties": 1}}),
                "mqtt.v5.user-properties",
            ),
            (
                json!({"max-offline-events": 2_000_000}),
                "mqtt.max-offline-events",
            ),
            (json!({"backpressure": "yes"}), "mqtt.backpressure"),
            (json!({"ack-timeout": 10}), "mqtt.ack-timeout"),
        ] {
            assert_eq!(key_of(v.clone()), key, "{v}");
        }
    }

    #[test]
    fn bind_addresses() {
        let (c, _) = parse(json!({})).unwrap();
        assert_eq!(c.bind, None);
        let (c, _) = parse(json!({"bind": ""})).unwrap();
        assert_eq!(c.bind, None);
        let (c, _) = parse(json!({"bind": "127.0.0.2"})).unwrap();
        assert_eq!(c.bind, Some("127.0.0.2:0".parse().unwrap()));
        let (c, _) = parse(json!({"bind": "127.0.0.1:4000"})).unwrap();
        assert_eq!(c.bind, Some("127.0.0.1:4000".parse().unwrap()));
        let (c, _) = parse(json!({"bind": "::1"})).unwrap();
        assert_eq!(c.bind, Some("[::1]:0".parse().unwrap()));
        let (c, _) = parse(json!({"bind": "[::1]:4000"})).unwrap();
        assert_eq!(c.bind, Some("[::1]:4000".parse().unwrap()));
    }

    #[test]
    fn tls_keys_map() {
        // REF's sample block (all empty) stays plain TCP.
        let sample = json!({"tls": {"cafile": "", "capath": "", "certfile": "", "keyfile": "",
            "pwkeyfile": "", "no-hostname-checking": false, "cert-reqs": 0, "version": "",
            "ciphers": "", "psk": "", "psk-identity": ""}});
        let (c, w) = parse(sample).unwrap();
        assert_eq!(c.tls, None);
        assert!(w.is_empty(), "{w:?}");

        // A TLS scheme alone: OS trust store, full checks, port 8883.
        for scheme in ["mqtts", "ssl", "stcp", "tls", "MQTTS"] {
            let (c, _) = parse(json!({"host": format!("{scheme}://broker")})).unwrap();
            assert_eq!((c.host.as_str(), c.port), ("broker", DEFAULT_TLS_PORT));
            let t = c.tls.expect("tls on");
            assert_eq!(t.origin.prefix, "mqtt.tls");
            assert_eq!((t.ca_file, t.ca_path, t.client_auth), (None, None, None));
            assert_eq!(t.verify, TlsVerify::Full);
            assert_eq!(t.min_version, TlsVersion::Tls12);
        }
        let (c, _) = parse(json!({"host": "mqtts://broker:9000"})).unwrap();
        assert_eq!(c.port, 9000);

        // cafile / capath alone turn TLS on (plain host).
        let (c, _) = parse(json!({"host": "b", "tls": {"cafile": "/ca.pem"}})).unwrap();
        let t = c.tls.expect("tls on");
        assert_eq!(t.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.port, DEFAULT_PORT, "no TLS scheme: the port stays 1883");
        let (c, _) = parse(json!({"tls": {"capath": "/etc/ssl/certs"}})).unwrap();
        assert_eq!(
            c.tls.expect("tls on").ca_path,
            Some(PathBuf::from("/etc/ssl/certs"))
        );

        // certfile + keyfile: client authentication; one without the other names the other.
        let (c, _) = parse(json!({"tls": {"certfile": "/c.pem", "keyfile": "/k.pem"}})).unwrap();
        assert_eq!(
            c.tls.expect("tls on").client_auth,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
        assert_eq!(
            key_of(json!({"tls": {"certfile": "/c.pem"}})),
            "mqtt.tls.keyfile"
        );
        assert_eq!(
            key_of(json!({"tls": {"keyfile": "/k.pem"}})),
            "mqtt.tls.certfile"
        );

        // Verification levels, each weakening warned about.
        let tls = |t: Value| parse(json!({"host": "mqtts://b", "tls": t})).unwrap();
        let (c, w) = tls(json!({"no-hostname-checking": true}));
        assert_eq!(c.tls.expect("tls").verify, TlsVerify::ChainOnly);
        assert!(
            w.iter()
                .any(|x| x.contains("mqtt.tls.no-hostname-checking")),
            "{w:?}"
        );
        let (c, w) = tls(json!({"cert-reqs": 0}));
        assert_eq!(c.tls.expect("tls").verify, TlsVerify::None);
        assert!(
            w.iter()
                .any(|x| x.contains("mqtt.tls.cert-reqs") && x.contains("NOT verified")),
            "{w:?}"
        );
        let (c, w) = tls(json!({"cert-reqs": 2}));
        assert_eq!(c.tls.expect("tls").verify, TlsVerify::Full);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            key_of(json!({"host": "mqtts://b", "tls": {"cert-reqs": 3}})),
            "mqtt.tls.cert-reqs"
        );

        // version: minimum protocol version.
        let (c, _) = tls(json!({"version": "tlsv1.3"}));
        assert_eq!(c.tls.expect("tls").min_version, TlsVersion::Tls13);
        let (c, _) = tls(json!({"version": "tlsv1.2"}));
        assert_eq!(c.tls.expect("tls").min_version, TlsVersion::Tls12);
        let (c, w) = tls(json!({"version": "tlsv1.1"}));
        assert_eq!(c.tls.expect("tls").min_version, TlsVersion::Tls12);
        assert!(w.iter().any(|x| x.contains("mqtt.tls.version")), "{w:?}");
        assert_eq!(
            key_of(json!({"host": "mqtts://b", "tls": {"version": "sslv3"}})),
            "mqtt.tls.version"
        );

        // ciphers: ignored with a warning.
        let (c, w) = tls(json!({"ciphers": "ECDHE-RSA-AES256-GCM-SHA384"}));
        assert!(c.tls.is_some());
        assert!(w.iter().any(|x| x.contains("mqtt.tls.ciphers")), "{w:?}");

        // What rustls cannot do is refused, naming the key — even in an otherwise plain block.
        for (k, v) in [
            ("psk", "deadbeef"),
            ("psk-identity", "me"),
            ("pwkeyfile", "secret"),
        ] {
            let mut t = serde_json::Map::new();
            t.insert(k.into(), json!(v));
            let e = parse(json!({"tls": t})).unwrap_err();
            assert_eq!(e.key(), Some(format!("mqtt.tls.{k}").as_str()));
            assert!(e.to_string().contains("not supported"), "{e}");
        }
        assert_eq!(key_of(json!({"tls": 1})), "mqtt.tls");
        assert_eq!(
            key_of(json!({"tls": {"no-hostname-checking": "x"}})),
            "mqtt.tls.no-hostname-checking"
        );
    }

    #[test]
    fn warnings() {
        let (c, w) = parse(json!({
            "frob": 1, "reconnect": {"x": 1}, "mqtt-options": {"tls-use-os-certs": 1},
            "bcleansession": false, "publish": [{"topic": "a", "qos": 2}],
            "will": {"topic": "t", "payload": ""}
        }))
        .unwrap();
        let has = |s: &str| w.iter().filter(|x| x.contains(s)).count();
        assert_eq!(has("unknown key \"mqtt.frob\""), 1, "{w:?}");
        let (_, w) = parse(json!({"hots": "x", "reconnect": {"delay-mx": 1}})).unwrap();
        assert!(
            w.iter()
                .any(|x| x.ends_with(r#""mqtt.hots" ignored; did you mean "mqtt.host"?"#)),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|x| x.contains(r#"did you mean "mqtt.reconnect.delay-max"?"#)),
            "{w:?}"
        );
        assert_eq!(has("unknown key \"mqtt.reconnect.x\""), 1, "{w:?}");
        assert_eq!(has("mqtt.mqtt-options.tls-use-os-certs"), 1, "{w:?}");
        assert_eq!(has("mqtt.bcleansession"), 1, "{w:?}");
        assert_eq!(
            has("mqtt.publish[0].qos"),
            0,
            "QoS 2 is published as such: {w:?}"
        );
        assert_eq!(c.publish[0].qos, QoS::ExactlyOnce);
        assert!(c.will.is_none(), "a will needs topic and payload");
        assert!(c.clean_session);
    }

    /// The value rules shared with the driver config (docs/config.md "Value types").
    #[test]
    fn unified_value_rules() {
        let e = parse(json!({"reconnect": [1, 30, true]})).unwrap_err();
        assert_eq!(e.key(), Some("mqtt.reconnect"));
        assert!(
            e.to_string().starts_with("<test>: key \"mqtt.reconnect\""),
            "{e}"
        );
        let (c, _) =
            parse(json!({"host": null, "will": null, "bcleansession": 1, "clientid": "c"}))
                .unwrap();
        assert_eq!(c.host, "localhost");
        assert!(c.clean_session);
        let (_, w) = parse(json!({"publish": [{"topic": "a", "colour": 1}]})).unwrap();
        assert_eq!(
            w,
            ["<test>: unknown key \"mqtt.publish[0].colour\" ignored"]
        );
    }

    #[test]
    fn user_maps() {
        let (c, _) = parse(
            json!({"user-escapes": {"site": "x", "n": 5}, "v5": {"user-properties": {"k": "v"}}}),
        )
        .unwrap();
        assert_eq!(
            c.user_escapes,
            [
                ("n".to_string(), "5".to_string()),
                ("site".to_string(), "x".to_string())
            ]
        );
        assert_eq!(c.user_properties, [("k".to_string(), "v".to_string())]);
    }
}
