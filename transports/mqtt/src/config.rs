//! The `mqtt` block of the driver entry (mqtt.md §2), read from a [`serde_json::Value`].
//!
//! Every documented key is read at its documented place (REF reads the sub-objects'
//! keys from the outer object, so `reconnect`, `mqtt-options`, `tls` and `filter` never took
//! effect there). Publish entries accept both `bretain` (what REF reads) and `retain` (what the
//! samples write); top-level `publish-format`, `subscribe-format`, `qos` and `bretain` are the
//! defaults for entries that omit them, as the vscpd docs promise. Unknown keys produce one
//! warning each; a wrong type or an out-of-range value is an error naming the key.
//!
//! Our own extension: `max-offline-events` (see [`MqttConfig::max_offline_events`]).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};
use vscp_proto::number::read_u64;
use vscp_proto::{Filter, Guid};

use crate::error::ConfigError;
use crate::template::Template;

/// Default broker port.
pub const DEFAULT_PORT: u16 = 1883;
/// Default broker port with TLS (IANA `secure-mqtt`), used when the host has a TLS scheme and
/// no port.
pub const DEFAULT_TLS_PORT: u16 = 8883;
/// Host schemes that ask for TLS (vscpd and the mosquitto/paho tools use all of these).
const TLS_SCHEMES: &[&str] = &["stcp://", "mqtts://", "ssl://", "tls://"];
/// Default keepalive (REF default; its docs claim 60).
pub const DEFAULT_KEEPALIVE_SECS: u64 = 30;
/// Default deadline for TCP connect plus CONNACK.
pub const DEFAULT_CONNECTION_TIMEOUT_MS: u64 = 5000;
/// Default `mqtt-options.receive-maximum` / `send-maximum` (REF defaults).
pub const DEFAULT_INFLIGHT: u16 = 20;
/// Default reconnect delays (seconds) — REF's fixed values.
pub const DEFAULT_RECONNECT_DELAY_SECS: u64 = 2;
pub const DEFAULT_RECONNECT_DELAY_MAX_SECS: u64 = 10;
/// Default capacity of the offline buffer, in publishes (one per event and publish entry).
pub const DEFAULT_MAX_OFFLINE_EVENTS: usize = 10_000;
/// Upper bound of `max-offline-events`: a publish holds a topic and a payload of up to a few
/// KiB, so a million is already gigabytes in the worst case.
pub const MAX_MAX_OFFLINE_EVENTS: usize = 1_000_000;

const KNOWN: &[&str] = &[
    "host",
    "port",
    "bind",
    "user",
    "password",
    "clientid",
    "keepalive",
    "connection-timeout",
    "bcleansession",
    "bjsonmeasurementblock",
    "bUseTopicForEventDefaults",
    "bescape-pub-topics",
    "user-escapes",
    "mqtt-options",
    "reconnect",
    "tls",
    "filter",
    "will",
    "subscribe",
    "publish",
    "publish-format",
    "subscribe-format",
    "qos",
    "bretain",
    "v5",
    "max-offline-events",
];
const KNOWN_OPTIONS: &[&str] = &[
    "tcp-nodelay",
    "protocol-version",
    "receive-maximum",
    "send-maximum",
    "ssl-ctx-with-defaults",
    "tls-ocsp-required",
    "tls-use-os-certs",
];
const KNOWN_RECONNECT: &[&str] = &["delay", "delay-max", "exponential-backoff"];
const KNOWN_TLS: &[&str] = &[
    "cafile",
    "capath",
    "certfile",
    "keyfile",
    "pwkeyfile",
    "no-hostname-checking",
    "cert-reqs",
    "version",
    "ciphers",
    "psk",
    "psk-identity",
];
const KNOWN_FILTER: &[&str] = &[
    "priority-filter",
    "priority-mask",
    "class-filter",
    "class-mask",
    "type-filter",
    "type-mask",
    "guid-filter",
    "guid-mask",
];
const KNOWN_WILL: &[&str] = &["topic", "qos", "retain", "payload"];
const KNOWN_SUBSCRIBE: &[&str] = &["topic", "qos", "v5-options", "format"];
const KNOWN_PUBLISH: &[&str] = &["topic", "qos", "bretain", "retain", "format"];
const KNOWN_V5: &[&str] = &["user-properties"];

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

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Payload format of a publish entry (`enumMqttMsgFormat` 0..=3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishFormat {
    Json,
    Xml,
    String,
    Binary,
}

impl PublishFormat {
    /// The `fmtpublish` topic variable.
    pub fn name(self) -> &'static str {
        match self {
            PublishFormat::Json => "json",
            PublishFormat::Xml => "xml",
            PublishFormat::String => "string",
            PublishFormat::Binary => "binary",
        }
    }
}

/// Payload format of a subscription; `Auto` detects it per message (mqtt.md §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeFormat {
    Json,
    Xml,
    String,
    Binary,
    Auto,
}

/// `reconnect`: the backoff schedule after a failed or lost connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// `delay` (s): wait before the first retry. Default 2.
    pub delay: Duration,
    /// `delay-max` (s): the longest wait. Default 10.
    pub delay_max: Duration,
    /// `exponential-backoff`: double the wait after each failure (up to `delay-max`);
    /// otherwise every retry waits `delay`. Default false.
    pub exponential: bool,
}

/// `will`: the last-will message (mqtt.md §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    pub topic: Template,
    /// Default 1 (vscpd docs; REF leaves it uninitialised).
    pub qos: QoS,
    /// Default true (vscpd docs). A retained will is cleared on every connect.
    pub retain: bool,
    pub payload: String,
}

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
    /// Key path of the block (`mqtt.tls`), so file errors name the key.
    pub key_path: String,
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

/// The validated `mqtt` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttConfig {
    /// `host` without scheme and port (default `localhost`).
    pub host: String,
    /// `port`, else a port in `host`, else 1883 (8883 with a TLS scheme).
    pub port: u16,
    /// `bind`: local address (and optionally port) the broker connection is made from.
    pub bind: Option<SocketAddr>,
    /// TLS to the broker; `None` is plain TCP.
    pub tls: Option<TlsConfig>,
    pub user: String,
    pub password: String,
    /// `clientid` as written; `{{rnd}}` and the static variables are rendered at start.
    /// Empty: the broker assigns one and a clean session is forced.
    pub client_id: String,
    /// `keepalive` (s); 0 disables PINGREQ. Default 30.
    pub keepalive: Duration,
    /// `connection-timeout` (ms): TCP connect plus CONNACK. Default 5000.
    pub connection_timeout: Duration,
    /// `bcleansession`: default false; forced true without a client id.
    pub clean_session: bool,
    /// `bjsonmeasurementblock`: default true.
    pub json_measurement_block: bool,
    /// `bUseTopicForEventDefaults`: default false (mqtt.md §6.2 step 5).
    pub topic_event_defaults: bool,
    /// `bescape-pub-topics`: render publish and will topics as templates. Default true.
    pub escape_pub_topics: bool,
    /// `user-escapes`: extra template variables.
    pub user_escapes: Vec<(String, String)>,
    /// `mqtt-options.protocol-version`: 311 (default) or 500.
    pub protocol: Protocol,
    /// `mqtt-options.tcp-nodelay`: default true.
    pub tcp_nodelay: bool,
    /// `mqtt-options.receive-maximum`: QoS 1/2 messages the broker may have in flight to us
    /// (MQTT 5 CONNECT property). Default 20.
    pub receive_maximum: u16,
    /// `mqtt-options.send-maximum`: our in-flight window of unacknowledged QoS 1/2 publishes
    /// (further capped by the broker's receive maximum in MQTT 5). Default 20.
    pub send_maximum: u16,
    pub reconnect: Reconnect,
    /// `filter`: events from the broker must pass it to reach the sessions (REF parses it
    /// but never applies it). Default: all pass.
    pub filter: Filter,
    pub will: Option<Will>,
    pub subscribe: Vec<SubscribeEntry>,
    pub publish: Vec<PublishEntry>,
    /// `v5.user-properties`: attached to every publish in MQTT 5.
    pub user_properties: Vec<(String, String)>,
    /// `max-offline-events` (our extension): publishes held while the broker is away or the
    /// in-flight window is full. When full, the oldest is dropped and counted. Default 10000.
    pub max_offline_events: usize,
}

impl MqttConfig {
    /// Reads and validates the block. `value` is the `mqtt` object itself; `prefix` is its
    /// key path (`mqtt`). Returns the config and the warnings (one per unknown or unused key).
    pub fn from_value(
        value: &Value,
        prefix: &str,
    ) -> Result<(MqttConfig, Vec<String>), ConfigError> {
        let mut r = Reader {
            warnings: Vec::new(),
        };
        let cfg = r.config(value, prefix)?;
        Ok((cfg, r.warnings))
    }
}

struct Reader {
    warnings: Vec<String>,
}

fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Reader {
    fn check_keys(&mut self, obj: &Map<String, Value>, path: &str, known: &[&str]) {
        for k in obj.keys() {
            if !known.contains(&k.as_str()) {
                self.warnings
                    .push(format!("unknown key \"{path}.{k}\" ignored"));
            }
        }
    }

    fn object<'v>(&self, v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, ConfigError> {
        v.as_object()
            .ok_or_else(|| err(path, format!("expected an object, found {}", type_name(v))))
    }

    fn string(
        &self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        default: &str,
    ) -> Result<String, ConfigError> {
        match obj.get(key) {
            None => Ok(default.to_owned()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(err(
                &format!("{path}.{key}"),
                format!("expected a string, found {}", type_name(v)),
            )),
        }
    }

    /// A boolean; `0`/`1` are accepted too because REF samples write some flags that way.
    fn boolean(
        &self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        default: bool,
    ) -> Result<bool, ConfigError> {
        match obj.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
            Some(v) => Err(err(
                &format!("{path}.{key}"),
                format!("expected true or false, found {v}"),
            )),
        }
    }

    fn uint(
        &self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let Some(v) = obj.get(key) else {
            return Ok(default);
        };
        let k = format!("{path}.{key}");
        let n = v
            .as_u64()
            .ok_or_else(|| err(&k, format!("expected a whole number, found {v}")))?;
        if n < min || n > max {
            return Err(err(&k, format!("{n} is out of range {min}..={max}")));
        }
        Ok(n)
    }

    fn qos(
        &self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        default: QoS,
    ) -> Result<QoS, ConfigError> {
        let n = self.uint(obj, path, key, default as u64, 0, 2)?;
        // uint() checked the range.
        Ok(QoS::from_u8(n as u8).unwrap_or(default))
    }

    /// `name → string` object (`user-escapes`, `v5.user-properties`). Numbers and booleans are
    /// taken as their JSON text because the values end up in topics and properties as text.
    fn string_map(&self, v: &Value, path: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let obj = self.object(v, path)?;
        let mut out = Vec::with_capacity(obj.len());
        for (k, v) in obj {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                other => {
                    return Err(err(
                        &format!("{path}.{k}"),
                        format!("expected a string, found {}", type_name(other)),
                    ))
                }
            };
            out.push((k.clone(), s));
        }
        Ok(out)
    }

    fn config(&mut self, value: &Value, p: &str) -> Result<MqttConfig, ConfigError> {
        let obj = self.object(value, p)?;
        self.check_keys(obj, p, KNOWN);

        let host_text = self.string(obj, p, "host", "localhost")?;
        let (host, host_port) = parse_host(&host_text).map_err(|r| err(&format!("{p}.host"), r))?;
        let tls = self.tls(obj, p, &host_text)?;
        let default_port = if tls_scheme(&host_text) {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        };
        let port = match obj.get("port") {
            None => host_port.unwrap_or(default_port),
            Some(_) => self.uint(obj, p, "port", 0, 1, 65535)? as u16,
        };
        let bind = parse_bind(&self.string(obj, p, "bind", "")?)
            .map_err(|r| err(&format!("{p}.bind"), r))?;
        let user = self.string(obj, p, "user", "")?;
        let password = self.string(obj, p, "password", "")?;
        let client_id = self.string(obj, p, "clientid", "")?;
        let keepalive = self.uint(obj, p, "keepalive", DEFAULT_KEEPALIVE_SECS, 0, 65535)?;
        let connection_timeout = self.uint(
            obj,
            p,
            "connection-timeout",
            DEFAULT_CONNECTION_TIMEOUT_MS,
            100,
            300_000,
        )?;
        let mut clean_session = self.boolean(obj, p, "bcleansession", false)?;
        if client_id.is_empty() {
            if obj.get("bcleansession") == Some(&Value::Bool(false)) {
                self.warnings.push(format!(
                    "\"{p}.bcleansession\" is false but \"{p}.clientid\" is empty: MQTT requires a clean session without a client id, so it is used"
                ));
            }
            clean_session = true;
        }
        let json_measurement_block = self.boolean(obj, p, "bjsonmeasurementblock", true)?;
        let topic_event_defaults = self.boolean(obj, p, "bUseTopicForEventDefaults", false)?;
        let escape_pub_topics = self.boolean(obj, p, "bescape-pub-topics", true)?;
        let user_escapes = match obj.get("user-escapes") {
            None => Vec::new(),
            Some(v) => self.string_map(v, &format!("{p}.user-escapes"))?,
        };

        let (protocol, tcp_nodelay, receive_maximum, send_maximum) = self.options(obj, p)?;
        let reconnect = self.reconnect(obj, p)?;
        let filter = match obj.get("filter") {
            None => Filter::ALL_PASS,
            Some(v) => self.filter(v, &format!("{p}.filter"))?,
        };
        let will = match obj.get("will") {
            None | Some(Value::Null) => None,
            Some(v) => self.will(v, &format!("{p}.will"))?,
        };

        let default_qos = self.qos(obj, p, "qos", QoS::AtMostOnce)?;
        let default_retain = self.boolean(obj, p, "bretain", false)?;
        let default_pub_format = match obj.get("publish-format") {
            None => PublishFormat::Json,
            Some(v) => publish_format(v).map_err(|r| err(&format!("{p}.publish-format"), r))?,
        };
        let default_sub_format = match obj.get("subscribe-format") {
            None => SubscribeFormat::Auto,
            Some(v) => subscribe_format(v).map_err(|r| err(&format!("{p}.subscribe-format"), r))?,
        };

        let mut subscribe = Vec::new();
        if let Some(v) = obj.get("subscribe") {
            let path = format!("{p}.subscribe");
            let arr = v
                .as_array()
                .ok_or_else(|| err(&path, format!("expected an array, found {}", type_name(v))))?;
            for (i, e) in arr.iter().enumerate() {
                subscribe.push(self.subscribe_entry(
                    e,
                    &format!("{path}[{i}]"),
                    default_qos,
                    default_sub_format,
                )?);
            }
        }
        let mut publish = Vec::new();
        if let Some(v) = obj.get("publish") {
            let path = format!("{p}.publish");
            let arr = v
                .as_array()
                .ok_or_else(|| err(&path, format!("expected an array, found {}", type_name(v))))?;
            for (i, e) in arr.iter().enumerate() {
                publish.push(self.publish_entry(
                    e,
                    &format!("{path}[{i}]"),
                    default_qos,
                    default_retain,
                    default_pub_format,
                )?);
            }
        }
        let user_properties = match obj.get("v5") {
            None => Vec::new(),
            Some(v) => {
                let path = format!("{p}.v5");
                let o = self.object(v, &path)?;
                self.check_keys(o, &path, KNOWN_V5);
                match o.get("user-properties") {
                    None => Vec::new(),
                    Some(v) => self.string_map(v, &format!("{path}.user-properties"))?,
                }
            }
        };
        let max_offline_events = self.uint(
            obj,
            p,
            "max-offline-events",
            DEFAULT_MAX_OFFLINE_EVENTS as u64,
            0,
            MAX_MAX_OFFLINE_EVENTS as u64,
        )? as usize;

        Ok(MqttConfig {
            host,
            port,
            bind,
            tls,
            user,
            password,
            client_id,
            keepalive: Duration::from_secs(keepalive),
            connection_timeout: Duration::from_millis(connection_timeout),
            clean_session,
            json_measurement_block,
            topic_event_defaults,
            escape_pub_topics,
            user_escapes,
            protocol,
            tcp_nodelay,
            receive_maximum,
            send_maximum,
            reconnect,
            filter,
            will,
            subscribe,
            publish,
            user_properties,
            max_offline_events,
        })
    }

    fn options(
        &mut self,
        obj: &Map<String, Value>,
        p: &str,
    ) -> Result<(Protocol, bool, u16, u16), ConfigError> {
        let Some(v) = obj.get("mqtt-options") else {
            return Ok((Protocol::V311, true, DEFAULT_INFLIGHT, DEFAULT_INFLIGHT));
        };
        let path = format!("{p}.mqtt-options");
        let o = self.object(v, &path)?;
        self.check_keys(o, &path, KNOWN_OPTIONS);
        let nodelay = self.boolean(o, &path, "tcp-nodelay", true)?;
        let protocol = match o.get("protocol-version") {
            None => Protocol::V311,
            Some(v) => match v.as_u64() {
                Some(311) => Protocol::V311,
                Some(500) => Protocol::V5,
                _ => {
                    return Err(err(
                        &format!("{path}.protocol-version"),
                        format!("expected 311 (MQTT 3.1.1) or 500 (MQTT 5), found {v}"),
                    ))
                }
            },
        };
        let rx = self.uint(
            o,
            &path,
            "receive-maximum",
            DEFAULT_INFLIGHT.into(),
            1,
            65535,
        )? as u16;
        let tx = self.uint(o, &path, "send-maximum", DEFAULT_INFLIGHT.into(), 1, 65535)? as u16;
        for k in [
            "ssl-ctx-with-defaults",
            "tls-ocsp-required",
            "tls-use-os-certs",
        ] {
            if self.boolean(o, &path, k, false)? {
                // OpenSSL context knobs of REF: rustls has no OCSP stapling check and always
                // starts from its own safe defaults; the OS trust store is used whenever no
                // tls.cafile/capath is given.
                self.warnings.push(format!(
                    "\"{path}.{k}\" accepted but not used: it is an OpenSSL option (the bridge uses rustls; without tls.cafile/capath it trusts the OS store)"
                ));
            }
        }
        Ok((protocol, nodelay, rx, tx))
    }

    fn reconnect(&mut self, obj: &Map<String, Value>, p: &str) -> Result<Reconnect, ConfigError> {
        let mut r = Reconnect {
            delay: Duration::from_secs(DEFAULT_RECONNECT_DELAY_SECS),
            delay_max: Duration::from_secs(DEFAULT_RECONNECT_DELAY_MAX_SECS),
            exponential: false,
        };
        let Some(v) = obj.get("reconnect") else {
            return Ok(r);
        };
        let path = format!("{p}.reconnect");
        let o = self.object(v, &path)?;
        self.check_keys(o, &path, KNOWN_RECONNECT);
        let delay = self.uint(o, &path, "delay", DEFAULT_RECONNECT_DELAY_SECS, 0, 3600)?;
        let default_max = delay.max(DEFAULT_RECONNECT_DELAY_MAX_SECS);
        let delay_max = self.uint(o, &path, "delay-max", default_max, 0, 86_400)?;
        if delay_max < delay {
            return Err(err(
                &format!("{path}.delay-max"),
                format!("{delay_max} is less than reconnect.delay ({delay})"),
            ));
        }
        r.delay = Duration::from_secs(delay);
        r.delay_max = Duration::from_secs(delay_max);
        r.exponential = self.boolean(o, &path, "exponential-backoff", false)?;
        Ok(r)
    }

    /// TLS is on with a TLS scheme in `host` or a `tls` block naming any file. REF's sample
    /// block (every path empty) left REF on plain TCP, so such a block keeps plain TCP too.
    /// What rustls cannot do (PSK, encrypted keys) stops start-up with the key named, rather
    /// than silently connecting with weaker settings than asked for.
    fn tls(
        &mut self,
        obj: &Map<String, Value>,
        p: &str,
        host: &str,
    ) -> Result<Option<TlsConfig>, ConfigError> {
        let path = format!("{p}.tls");
        let empty = Map::new();
        let o = match obj.get("tls") {
            None | Some(Value::Null) => &empty,
            Some(v) => self.object(v, &path)?,
        };
        self.check_keys(o, &path, KNOWN_TLS);
        let key = |k: &str| format!("{path}.{k}");
        let file = |r: &Self, k: &str| -> Result<Option<PathBuf>, ConfigError> {
            let s = r.string(o, &path, k, "")?;
            Ok((!s.trim().is_empty()).then(|| PathBuf::from(s.trim())))
        };
        for k in ["psk", "psk-identity"] {
            if !self.string(o, &path, k, "")?.is_empty() {
                return Err(err(
                    &key(k),
                    "TLS pre-shared keys are not supported (rustls has no PSK cipher suites); use certificates (tls.cafile) instead",
                ));
            }
        }
        if !self.string(o, &path, "pwkeyfile", "")?.is_empty() {
            return Err(err(
                &key("pwkeyfile"),
                "encrypted private keys are not supported; decrypt the key (openssl pkey -in key.pem -out plain.pem) and leave pwkeyfile empty",
            ));
        }
        let ca_file = file(self, "cafile")?;
        let ca_path = file(self, "capath")?;
        let certfile = file(self, "certfile")?;
        let keyfile = file(self, "keyfile")?;
        let client_auth = match (certfile, keyfile) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(err(
                    &key("keyfile"),
                    "tls.certfile is set: its key is needed too",
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    &key("certfile"),
                    "tls.keyfile is set: the certificate it belongs to is needed too",
                ))
            }
        };
        let no_hostname = self.boolean(o, &path, "no-hostname-checking", false)?;
        let cert_reqs = self.uint(o, &path, "cert-reqs", 1, 0, 2)?;
        let version = self.string(o, &path, "version", "")?;
        let min_version = match version.trim().to_ascii_lowercase().as_str() {
            "" | "tlsv1.2" | "tls1.2" | "1.2" => TlsVersion::Tls12,
            "tlsv1.3" | "tls1.3" | "1.3" => TlsVersion::Tls13,
            "tlsv1" | "tlsv1.0" | "tls1" | "tls1.0" | "1.0" | "tlsv1.1" | "tls1.1" | "1.1" => {
                self.warnings.push(format!(
                    "\"{path}.version\" is {version:?}: TLS 1.0/1.1 are not offered (insecure, not in rustls); TLS 1.2 is the minimum"
                ));
                TlsVersion::Tls12
            }
            _ => {
                return Err(err(
                    &key("version"),
                    format!("expected \"tlsv1.2\" or \"tlsv1.3\", found {version:?}"),
                ))
            }
        };
        if !self.string(o, &path, "ciphers", "")?.trim().is_empty() {
            // OpenSSL cipher lists do not map onto rustls's fixed set of modern AEAD suites;
            // those are all considered safe, so ignoring the list cannot weaken anything.
            self.warnings.push(format!(
                "\"{path}.ciphers\" ignored: rustls offers its own fixed set of modern cipher suites"
            ));
        }

        let wanted =
            tls_scheme(host) || ca_file.is_some() || ca_path.is_some() || client_auth.is_some();
        if !wanted {
            return Ok(None);
        }
        let verify = if cert_reqs == 0 {
            self.warnings.push(format!(
                "\"{path}.cert-reqs\" is 0: the broker's certificate is NOT verified; anyone on the network path can pose as the broker and read the credentials and events"
            ));
            TlsVerify::None
        } else if no_hostname {
            self.warnings.push(format!(
                "\"{path}.no-hostname-checking\" is true: any certificate from the trusted CAs is accepted, whatever host it was issued for"
            ));
            TlsVerify::ChainOnly
        } else {
            TlsVerify::Full
        };
        Ok(Some(TlsConfig {
            key_path: path,
            ca_file,
            ca_path,
            client_auth,
            verify,
            min_version,
        }))
    }

    fn filter(&mut self, v: &Value, path: &str) -> Result<Filter, ConfigError> {
        let o = self.object(v, path)?;
        self.check_keys(o, path, KNOWN_FILTER);
        let num = |key: &str, max: u64| -> Result<u64, ConfigError> {
            let k = format!("{path}.{key}");
            let n = match o.get(key) {
                None => 0,
                Some(Value::Number(n)) => n
                    .as_u64()
                    .ok_or_else(|| err(&k, format!("expected a whole number, found {n}")))?,
                Some(Value::String(s)) => {
                    read_u64("filter", s).map_err(|e| err(&k, e.to_string()))?
                }
                Some(v) => {
                    return Err(err(
                        &k,
                        format!("expected a number, found {}", type_name(v)),
                    ))
                }
            };
            if n > max {
                return Err(err(&k, format!("{n} is out of range 0..={max}")));
            }
            Ok(n)
        };
        let guid = |key: &str| -> Result<Guid, ConfigError> {
            let k = format!("{path}.{key}");
            match o.get(key) {
                None => Ok(Guid::ZERO),
                Some(Value::String(s)) => Guid::parse(s).map_err(|e| err(&k, e.to_string())),
                Some(v) => Err(err(
                    &k,
                    format!("expected a GUID string, found {}", type_name(v)),
                )),
            }
        };
        Ok(Filter {
            filter_priority: num("priority-filter", 7)? as u8,
            mask_priority: num("priority-mask", 7)? as u8,
            filter_class: num("class-filter", 0xFFFF)? as u16,
            mask_class: num("class-mask", 0xFFFF)? as u16,
            filter_type: num("type-filter", 0xFFFF)? as u16,
            mask_type: num("type-mask", 0xFFFF)? as u16,
            filter_guid: guid("guid-filter")?,
            mask_guid: guid("guid-mask")?,
        })
    }

    fn will(&mut self, v: &Value, path: &str) -> Result<Option<Will>, ConfigError> {
        let o = self.object(v, path)?;
        self.check_keys(o, path, KNOWN_WILL);
        let topic = self.string(o, path, "topic", "")?;
        let payload = self.string(o, path, "payload", "")?;
        let qos = self.qos(o, path, "qos", QoS::AtLeastOnce)?;
        let retain = self.boolean(o, path, "retain", true)?;
        // REF sets a will only when both are non-empty.
        if topic.is_empty() || payload.is_empty() {
            return Ok(None);
        }
        Ok(Some(Will {
            topic: Template::parse(&topic),
            qos,
            retain,
            payload,
        }))
    }

    fn subscribe_entry(
        &mut self,
        v: &Value,
        path: &str,
        qos: QoS,
        format: SubscribeFormat,
    ) -> Result<SubscribeEntry, ConfigError> {
        // REF skips plain strings; a string is taken as a topic with the defaults instead,
        // because that is what someone who writes one means.
        if let Value::String(s) = v {
            return topic_entry(s, path).map(|topic| SubscribeEntry {
                topic,
                qos,
                v5_options: 0,
                format,
            });
        }
        let o = self.object(v, path)?;
        self.check_keys(o, path, KNOWN_SUBSCRIBE);
        let topic = topic_entry(
            &self.string(o, path, "topic", "")?,
            &format!("{path}.topic"),
        )?;
        let qos = self.qos(o, path, "qos", qos)?;
        let v5_options = match o.get("v5-options") {
            None => 0,
            Some(v) => v5_options(v).map_err(|r| err(&format!("{path}.v5-options"), r))?,
        };
        let format = match o.get("format") {
            None => format,
            Some(v) => subscribe_format(v).map_err(|r| err(&format!("{path}.format"), r))?,
        };
        Ok(SubscribeEntry {
            topic,
            qos,
            v5_options,
            format,
        })
    }

    fn publish_entry(
        &mut self,
        v: &Value,
        path: &str,
        qos: QoS,
        retain: bool,
        format: PublishFormat,
    ) -> Result<PublishEntry, ConfigError> {
        if let Value::String(s) = v {
            return topic_entry(s, path).map(|topic| PublishEntry {
                topic,
                qos,
                retain,
                format,
            });
        }
        let o = self.object(v, path)?;
        self.check_keys(o, path, KNOWN_PUBLISH);
        let topic_text = self.string(o, path, "topic", "")?;
        let topic = topic_entry(&topic_text, &format!("{path}.topic"))?;
        if topic.is_literal() && (topic_text.contains('+') || topic_text.contains('#')) {
            return Err(err(
                &format!("{path}.topic"),
                "a publish topic cannot contain the wildcards + or #",
            ));
        }
        let qos = self.qos(o, path, "qos", qos)?;
        let retain = match (o.get("bretain"), o.get("retain")) {
            (Some(_), Some(_)) => {
                let b = self.boolean(o, path, "bretain", false)?;
                let r = self.boolean(o, path, "retain", false)?;
                if b != r {
                    return Err(err(
                        &format!("{path}.retain"),
                        "both bretain and retain are given and they differ; keep one",
                    ));
                }
                b
            }
            (Some(_), None) => self.boolean(o, path, "bretain", retain)?,
            (None, _) => self.boolean(o, path, "retain", retain)?,
        };
        let format = match o.get("format") {
            None => format,
            Some(v) => publish_format(v).map_err(|r| err(&format!("{path}.format"), r))?,
        };
        Ok(PublishEntry {
            topic,
            qos,
            retain,
            format,
        })
    }
}

fn topic_entry(s: &str, path: &str) -> Result<Template, ConfigError> {
    if s.trim().is_empty() {
        return Err(err(path, "a topic is required"));
    }
    Ok(Template::parse(s))
}

/// Whether `host` starts with a TLS scheme.
fn tls_scheme(host: &str) -> bool {
    let lower = host.trim().to_ascii_lowercase();
    TLS_SCHEMES.iter().any(|s| lower.starts_with(s))
}

/// `bind`: empty (none), an IP address (any local port), or `ip:port` / `[v6]:port`.
fn parse_bind(text: &str) -> Result<Option<SocketAddr>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(Some(SocketAddr::new(ip, 0)));
    }
    t.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!("expected a local IP address, optionally with :port ([v6]:port), found {text:?}")
    })
}

/// `host`: optional scheme, a name or address, optional `:port` (`[v6]:port` for IPv6).
fn parse_host(text: &str) -> Result<(String, Option<u16>), String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let rest = ["tcp://", "mqtt://"]
        .iter()
        .find(|s| lower.starts_with(*s))
        .map_or(t, |s| &t[s.len()..]);
    let rest = TLS_SCHEMES
        .iter()
        .find(|s| lower.starts_with(*s))
        .map_or(rest, |s| &t[s.len()..]);
    if rest.contains("://") {
        return Err(format!(
            "unsupported scheme in {text:?}; use tcp://, mqtt:// or (TLS) mqtts://, ssl://"
        ));
    }
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unterminated [IPv6] address in {text:?}"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(format!("unexpected text after the address in {text:?}")),
        }
    } else if rest.matches(':').count() == 1 {
        let (h, p) = rest.split_once(':').unwrap_or((rest, ""));
        (h, Some(p))
    } else {
        (rest, None)
    };
    if host.is_empty() {
        return Err("no host name or address".into());
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| format!("invalid port {p:?} in {text:?}"))?,
        ),
    };
    Ok((host.to_owned(), port))
}

/// Format names are matched by substring after lower-casing, in REF's order (mqtt.md §3).
fn format_by_name(s: &str) -> Option<SubscribeFormat> {
    let l = s.to_ascii_lowercase();
    [
        ("binary", SubscribeFormat::Binary),
        ("string", SubscribeFormat::String),
        ("json", SubscribeFormat::Json),
        ("xml", SubscribeFormat::Xml),
        ("auto", SubscribeFormat::Auto),
    ]
    .into_iter()
    .find(|(name, _)| l.contains(name))
    .map(|(_, f)| f)
}

/// A publish format: a name, or REF's number 0..=3. REF falls back to JSON for anything
/// else; a typo is reported here instead.
fn publish_format(v: &Value) -> Result<PublishFormat, String> {
    let f = match v {
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(SubscribeFormat::Json),
            Some(1) => Some(SubscribeFormat::Xml),
            Some(2) => Some(SubscribeFormat::String),
            Some(3) => Some(SubscribeFormat::Binary),
            _ => None,
        },
        Value::String(s) => format_by_name(s),
        _ => None,
    };
    match f {
        Some(SubscribeFormat::Json) => Ok(PublishFormat::Json),
        Some(SubscribeFormat::Xml) => Ok(PublishFormat::Xml),
        Some(SubscribeFormat::String) => Ok(PublishFormat::String),
        Some(SubscribeFormat::Binary) => Ok(PublishFormat::Binary),
        _ => Err(format!(
            "expected json, xml, string or binary (or 0..=3), found {v}"
        )),
    }
}

/// A subscribe format: a name or a number 0..=4 (4 = auto).
fn subscribe_format(v: &Value) -> Result<SubscribeFormat, String> {
    let f = match v {
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(SubscribeFormat::Json),
            Some(1) => Some(SubscribeFormat::Xml),
            Some(2) => Some(SubscribeFormat::String),
            Some(3) => Some(SubscribeFormat::Binary),
            Some(4) => Some(SubscribeFormat::Auto),
            _ => None,
        },
        Value::String(s) => format_by_name(s),
        _ => None,
    };
    f.ok_or_else(|| format!("expected json, xml, string, binary or auto (or 0..=4), found {v}"))
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
        MqttConfig::from_value(&v, "mqtt")
    }

    fn key_of(v: Value) -> String {
        match parse(v) {
            Err(e) => e.key,
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
        assert!(c.will.is_none());
        assert!(c.publish.is_empty() && c.subscribe.is_empty());
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
        assert_eq!(parse_host("tcp://h:1884"), Ok(("h".into(), Some(1884))));
        assert_eq!(parse_host("mqtt://10.0.0.1"), Ok(("10.0.0.1".into(), None)));
        assert_eq!(parse_host("[::1]:1"), Ok(("::1".into(), Some(1))));
        assert_eq!(parse_host("::1"), Ok(("::1".into(), None)));
        assert_eq!(parse_host("h/"), Ok(("h".into(), None)));
        assert!(parse_host("ws://h").is_err());
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
            assert_eq!(t.key_path, "mqtt.tls");
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
            assert_eq!(e.key, format!("mqtt.tls.{k}"));
            assert!(e.reason.contains("not supported"), "{e}");
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
