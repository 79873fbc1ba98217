//! Driver configuration: the REF driver's JSON file (seed README, spec ws1.md §9), read once at
//! start-up. `vscp_config::Reader` deserializes it straight into [`Config`], so every error names
//! the file and the dotted key (`logging.file-max-size`). Unknown keys only warn (deployments
//! carry keys of other VSCP versions); wrong types and out-of-range values fail start-up.
//!
//! The rest of the server sees only a validated [`Config`]: addresses parsed, ranges checked, the
//! shared key read, the users file known to be readable and relative paths resolved against the
//! folder of the config file. Key reference (meaning, default, range): `docs/config.md`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::keepalive::KeepaliveSettings;
use crate::tls::settings::{TlsKeys, TopKeys};
use serde_json::{Map, Value};
use vscp_config::{block, config_block, flag, parsed_by, Block, Flag, Int, Reader, Redacted};
use vscp_proto::{Filter, Guid};

pub use vscp_config::ConfigError;

/// Port used when `interface` names no port (SPEC and REF default).
pub const DEFAULT_PORT: u16 = 8884;
/// Default listen address: loopback only, like REF (`ws://localhost:8884`), so a fresh install
/// is not reachable from the network before the operator decides it should be.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(LOCALHOST, DEFAULT_PORT);
/// Default `tcpip-interface` (tcp.md §7): the VSCP tcp/ip port, on loopback.
pub const DEFAULT_TCPIP_LISTEN: SocketAddr = SocketAddr::new(LOCALHOST, 9598);
/// Default `metrics-interface`: loopback, so metrics are not exposed by accident.
pub const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::new(LOCALHOST, 9884);
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Upper bound of both queue sizes: a ring of a million events per pair of cores is already
/// hundreds of MiB of worst-case memory; anything larger is a typo, not a tuning decision.
const MAX_QUEUE: u64 = 1_000_000;
/// Upper bound of `auth-timeout` and `idle-timeout` (one day).
const MAX_SECS: u64 = 86_400;
const KEEPALIVE: KeepaliveSettings = KeepaliveSettings::DEFAULT;
const PATTERN: &str = "[vscp-websocksrv %c] [%^%l%$] %v";

/// The shipped sample config (`deploy/websocksrv.json`): every key at its default. Embedded so
/// the binary can print it (`print-default-config`) without the deploy folder at hand.
pub const SAMPLE_CONFIG: &str = include_str!("../deploy/websocksrv.json");

const INIT_HINT: &str = "; `vscp-websocksrv init DIR` writes a fresh key file and a users.json \
    (with a random admin password) beside a sample config, keeping files that exist";

/// REF keys that we accept without acting on them, each with the reason shown to the operator,
/// so someone migrating a REF config is told *why* a setting has no effect.
const UNUSED_TOP: &str = "\
write: configuration is never written back to disk
encryption: no VSCP client implements an encrypted tcp/ip link; use stcp:// (TLS) for confidentiality; ws1/ws2 AUTH always uses AES-128
response-timeout: a tcp/ip link client setting; see auth-timeout and idle-timeout
web-root: static file serving is not implemented
enable-rest: the REST placeholder endpoint is not implemented
enable-static: static file serving is not implemented
url-rest: the REST placeholder endpoint is not implemented
mongoose-debug: there is no mongoose; use logging.*-log-level
max-client-queue-size: REF never applied it; the per-session queue is max-out-queue
rx-filter: REF never applied it; use filter.out-filter/filter.out-mask";

/// Log levels of the REF logging block (spdlog names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LogLevel {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
    /// `tracing` has no level above error, so this maps to error.
    Critical,
    Off,
}

impl LogLevel {
    /// The matching `tracing` filter. `Critical` becomes ERROR because tracing has nothing above it.
    pub fn to_level_filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            LogLevel::Trace => LevelFilter::TRACE,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error | LogLevel::Critical => LevelFilter::ERROR,
            LogLevel::Off => LevelFilter::OFF,
        }
    }
}

// Fields are named after their keys unless `key` says otherwise; meanings, defaults and ranges
// are docs/config.md's. Comments here say only what the docs do not.
config_block! {
    /// The `logging` block. Patterns are spdlog syntax: the flags `crate::logging::Pattern`
    /// knows are interpreted, others printed as written.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct LoggingConfig {
        /// `file-enable-log` or its alias `file-enable`, see [`FileEnable`].
        #[serde(skip)] pub file_enable: bool;
        pub file_level: LogLevel, key "file-log-level";
        pub file_pattern: String = PATTERN.into();
        pub file_path: PathBuf = "/tmp/vscp-websocksrv.log".into(), with "path";
        pub file_max_size: u64 = 5_242_880, with "Int::<1024, { 1 << 40 }>::de";
        pub file_max_files: usize = 7, with "Int::<1, 1000>::de";
        pub console_enable: bool = true, key "console-enable-log", with "flag";
        pub console_level: LogLevel, key "console-log-level";
        pub console_pattern: String = PATTERN.into();
    }

    /// The validated driver configuration. `Debug` hides the shared key and the `mqtt` block.
    #[derive(Clone, Debug)]
    pub struct Config {
        /// The file this came from; `None` for built-in defaults and inline JSON.
        #[serde(skip)] pub source: Option<PathBuf>;
        /// The label errors about this config start with: the file, `<inline>`, ...
        #[serde(skip)] pub origin: String;
        pub listen: SocketAddr = DEFAULT_LISTEN, key "interface", with "interface";
        /// `interface` has a TLS scheme (`wss://`).
        #[serde(skip)] pub listen_tls: bool;
        /// `tcpip-interface`; `None` = off, see [`default_tcpip_listen`] for an absent key.
        #[serde(skip)] pub tcpip_listen: Option<SocketAddr>;
        /// `tcpip-interface` has a TLS scheme (`stcp://`).
        #[serde(skip)] pub tcpip_tls: bool;
        /// The `ssl_*` keys (or the `tls` block) when a listener uses TLS; their files were read
        /// and make a working configuration.
        #[serde(skip)] pub tls: Option<crate::tls::TlsSettings>;
        pub url_ws1: String = "/ws1".into(), with "url_path";
        pub url_ws2: String = "/ws2".into(), with "url_path";
        pub enable_ws1: bool = true, with "flag";
        pub enable_ws2: bool = true, with "flag";
        /// AES-128 key for AUTH: the first 32 hex digits of `key-file` (ws1.md §4.1).
        #[serde(skip)] pub key: Redacted<[u8; 16]>;
        /// Resolved against the config file's folder (as `users_file`).
        pub key_file: PathBuf, with "path";
        /// Known to be a readable file (the users module parses it).
        pub users_file: PathBuf, key "path-users", with "path";
        /// All zero means "derive one", see [`Config::interface_guid`].
        pub guid: [u8; 16], with "guid";
        pub max_in_queue: usize = 32_000, with "Int::<1, MAX_QUEUE>::de";
        pub max_out_queue: usize = 32_000, with "Int::<1, MAX_QUEUE>::de";
        pub receive_sent_events: bool, with "flag";
        /// `filter.in-filter`/`in-mask`: for events from the uplink on their way to clients.
        #[serde(skip)] pub in_filter: Filter;
        /// `filter.out-filter`/`out-mask`: for client events, before they are routed anywhere.
        #[serde(skip)] pub out_filter: Filter;
        pub max_clients: usize = 100, with "Int::<0, 1_000_000>::de";
        /// 64 KiB: a ws2 event with 512 data bytes is about 3 KiB, and a client must not make us
        /// buffer megabytes; at least 512: a legal ws1 event line still fits; at most 16 MiB:
        /// tungstenite's default.
        pub max_message_bytes: usize = 65_536,
            key "max-message-size", with "Int::<512, 16_777_216>::de";
        pub auth_timeout: Duration = Duration::from_secs(30), with "Int::<0, MAX_SECS>::secs";
        pub idle_timeout: Duration, with "Int::<0, MAX_SECS>::secs";
        pub ws_ping_interval: Duration, with "Int::<0, MAX_SECS>::secs";
        pub ws_pong_timeout: Duration = Duration::from_secs(20), with "Int::<1, MAX_SECS>::secs";
        // Linux takes at most 32767 s for TCP_KEEPIDLE and TCP_KEEPINTVL, 127 for TCP_KEEPCNT.
        pub tcp_keepalive_idle: Duration = KEEPALIVE.idle, with "Int::<0, 32_767>::secs";
        pub tcp_keepalive_interval: Duration = KEEPALIVE.interval, with "Int::<1, 32_767>::secs";
        pub tcp_keepalive_count: u32 = KEEPALIVE.count, with "Int::<1, 127>::de";
        /// Accept a ws2 AUTH IV other than the SID (re-opens replay).
        pub ws2_accept_client_iv: bool, with "flag";
        pub check_interface_rights: bool, with "flag";
        /// `None` = off.
        pub metrics_listen: Option<SocketAddr> = Some(DEFAULT_METRICS_LISTEN),
            key "metrics-interface", with "metrics";
        /// Our extension: executor threads; `None` (absent or 0) = one per CPU.
        pub shards: Option<usize>, with "shards";
        pub logging: LoggingConfig, with "block";
        pub debug: bool, with "flag";
        // Abuse limits (docs/config.md "Abuse limits"; `settings.rs` resolves them into an
        // `admission::Policy`, SIGHUP re-applies them except `address-table-size`).
        pub handshake_timeout: Duration = Duration::from_secs(10), with "Int::<1, 3600>::secs";
        pub login_failure_budget: u32 = 20, with "Int::<0, 1_000_000>::de";
        pub login_failure_refill: Duration = Duration::from_secs(3),
            with "Int::<1, MAX_SECS>::secs";
        pub login_failure_cooldown: Duration = Duration::from_secs(60),
            with "Int::<0, MAX_SECS>::secs";
        pub connection_rate: u32 = 1000, with "Int::<0, 1_000_000>::de";
        pub connection_burst: u32 = 2000, with "Int::<1, 1_000_000>::de";
        pub max_clients_per_address: usize, with "Int::<0, 1_000_000>::de";
        /// `None` (absent) = half of `max-clients`.
        pub max_unauthenticated: Option<usize>, with "optional_count";
        /// `None` = a quarter of `max_unauthenticated`.
        pub max_unauthenticated_per_address: Option<usize>, with "optional_count";
        pub address_table_size: usize = 16_384, with "Int::<64, 16_777_216>::de";
        pub proxy_protocol_from: Vec<ipnet::IpNet>, with "proxy_from";
        /// The bridge block, kept raw for `vscp-mqtt` to validate
        /// (`vscp_websocksrv::mqtt::MqttUplink::new`); `None`: no bridge, in-process bus only.
        pub mqtt: Option<Redacted<Value>>, with "mqtt";
    }

    /// What the file holds that [`Config`] has no field for, read from the same object (the
    /// seed's top-level `ssl_*` keys are [`TopKeys`], the third).
    struct Extra {
        filter: Block<Filters>;
        logging: Block<FileEnable>;
        /// `Some(None)`: given empty (off); `None`: absent (see [`default_tcpip_listen`]).
        tcpip_interface: Option<Option<(SocketAddr, bool)>>, with "tcpip";
        /// Whether `interface` asks for TLS (its address is `Config::listen`).
        interface_tls: bool, key "interface", with "interface_tls";
        /// The `tls` block of the seed's sample (the same settings as the `ssl_*` keys).
        tls: Option<Block<TlsKeys>>;
    }

    /// The `filter` block. Each half is in the ws1 `SETFILTER` string form
    /// `priority,class,type,GUID` (events.md §8.3), checked by the protocol's own reader; absent
    /// is all zero: every event passes.
    struct Filters {
        in_filter: FilterHalf;
        in_mask: FilterHalf;
        out_filter: FilterHalf;
        out_mask: FilterHalf;
    }

    /// `file-enable` is what the REF docs call it, `file-enable-log` what the REF sample uses.
    struct FileEnable {
        file_enable_log: Option<Flag>;
        file_enable: Option<Flag>;
    }
}

#[derive(Default)]
struct FilterHalf(String);

parsed_by!(
    // Case-insensitive: the spdlog names REF documents plus `error` and `warning`, which
    // people write anyway.
    LogLevel => |t: String| Ok(match t.trim().to_ascii_lowercase().as_str() {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" | "warning" => LogLevel::Warn,
        "err" | "error" => LogLevel::Error,
        "critical" => LogLevel::Critical,
        "off" => LogLevel::Off,
        _ => return Err(format!(
            "unknown level {t:?}; expected trace, debug, info, warn, err, error, critical or off"
        )),
    }),
    FilterHalf => |t: String| match Filter::parse_filter_half(&t) {
        Ok(_) => Ok(FilterHalf(t)),
        Err(e) => Err(format!("{t:?}: {e}; expected priority,class,type,GUID")),
    },
);

parsed_by! {
    fn interface -> SocketAddr = |t: String| parse_interface(&t);
    fn interface_tls -> bool = |t: String| parse_listen(&t, DEFAULT_PORT).map(|(_, tls)| tls);
    fn tcpip -> Option<Option<(SocketAddr, bool)>> = |t: String| match t.trim() {
        "" => Ok(Some(None)),
        t => parse_listen(t, DEFAULT_TCPIP_LISTEN.port()).map(|a| Some(Some(a))),
    };
    // Always plain: the endpoint is meant for loopback or a private network (docs/metrics.md).
    fn metrics -> Option<SocketAddr> = |t: String| match t.trim() {
        "" => Ok(None),
        t => match parse_listen(t, DEFAULT_METRICS_LISTEN.port())? {
            (addr, false) => Ok(Some(addr)),
            _ => Err(format!("{t:?}: the metrics endpoint has no TLS; use http:// (or no scheme) \
                              and keep it on loopback or a private network")),
        },
    };
    // Compared exactly against the request path, which never holds whitespace, controls, `?`
    // or `#`: a value with them could never match, better to say so. REF adds a missing `/`.
    fn url_path -> String = |t: String| {
        let t = t.trim();
        match t.chars().find(|&c| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
            _ if t.is_empty() => Err("must not be empty".to_owned()),
            Some(c) => Err(format!("{t:?} contains {c:?}; expected a plain URL path")),
            None => Ok(format!("/{}", t.strip_prefix('/').unwrap_or(t))),
        }
    };
    // Resolved against the config folder later; empty is refused, so empty means absent.
    fn path -> PathBuf = |t: String| match t.trim() {
        "" => Err("must not be empty"),
        t => Ok(PathBuf::from(t)),
    };
    fn guid -> [u8; 16] = |t: String| parse_guid(&t);
    // 0 reads as "pick for me", like max-clients' 0 = "no limit".
    fn shards -> Option<usize> = |n: Int<0, 1024>| {
        Ok::<_, String>(Some(n.0 as usize).filter(|&n| n != 0))
    };
    fn optional_count -> Option<usize> = |n: Int<0, 1_000_000>| Ok::<_, String>(Some(n.0 as usize));
    fn proxy_from -> Vec<ipnet::IpNet> = crate::admission::policy::parse_cidrs;
    fn mqtt -> Option<Redacted<Value>> = |m: Map<String, Value>| {
        Ok::<_, String>(Some(Redacted(Value::Object(m))))
    };
}

impl Config {
    /// The `tcp-keepalive-*` keys, for the accepted sockets.
    pub fn keepalive(&self) -> KeepaliveSettings {
        KeepaliveSettings {
            idle: self.tcp_keepalive_idle,
            interval: self.tcp_keepalive_interval,
            count: self.tcp_keepalive_count,
        }
    }

    /// Starts from a vscpd configuration (`vscpd.conf`) instead: the `drivers.level2[]` entry
    /// named `driver` gives `path-config` (a file, relative to vscpd.conf's folder, or the JSON
    /// text itself when it starts with `{`), `guid` and `mqtt`, exactly as vscpd would hand
    /// them to the driver library. The entry's `guid` and `mqtt` win over the same keys in the
    /// driver config.
    pub fn from_vscpd(path: &Path, driver: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let root = vscp_config::read_json_file(path)?;
        // Not through `Reader::read`: vscpd.conf holds much that is not ours to warn about.
        let mut r = Reader::new(&path.display().to_string(), "");
        let entries = root.pointer("/drivers/level2").and_then(Value::as_array);
        let entries = entries.ok_or_else(|| r.err("drivers.level2", "missing, or not an array"))?;
        let named = |e: &Value| e.get("name").and_then(Value::as_str) == Some(driver);
        let Some(index) = entries.iter().position(named) else {
            let reason = format!("no entry with \"name\": {driver:?}");
            return Err(r.err("drivers.level2", reason));
        };
        let entry = &entries[index];
        let at = |key: &str| format!("drivers.level2[{index}].{key}");
        if entry.get("enable").and_then(Value::as_bool) == Some(false) {
            let key = at("enable");
            r.warn(format!(
                "{key}: the entry is disabled (\"enable\": false); starting it anyway"
            ));
        }
        let config_ref = entry.get("path-config").and_then(Value::as_str);
        let missing = || r.err(&at("path-config"), "missing, or not a string");
        let base_dir = path.parent().unwrap_or_else(|| Path::new(""));
        let (mut cfg, more) = match config_ref.ok_or_else(missing)?.trim() {
            inline if inline.starts_with('{') => {
                let origin = format!("{} ({})", r.origin.file, at("path-config"));
                Config::from_json_str(inline, base_dir, &origin)?
            }
            file => Config::load(&base_dir.join(file))?,
        };
        r.warnings.extend(more);
        if let Some(g) = entry.get("guid") {
            let guid = g.as_str().ok_or_else(|| "expected a string".to_owned());
            let guid = guid
                .and_then(parse_guid)
                .map_err(|e| r.err(&at("guid"), e))?;
            if guid != [0; 16] {
                cfg.guid = guid;
            }
        }
        if let Some(m) = entry.get("mqtt") {
            if cfg.mqtt.is_some() {
                let key = at("mqtt");
                r.warn(format!(
                    "{key}: replaces the mqtt block of the driver config"
                ));
            }
            cfg.mqtt = Some(Redacted(m.clone()));
        }
        Ok((cfg, r.warnings))
    }

    /// Reads and validates the config file at `path`. Relative paths inside it resolve against
    /// the file's folder. Returns the config and the warnings (unknown or unused keys), which the
    /// caller logs once logging is set up.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let value = vscp_config::read_json_file(path)?;
        // `parent()` of a bare file name is `Some("")`, which joins to paths relative to the
        // working directory: the same folder the file was found in.
        let base_dir = path.parent().unwrap_or_else(|| Path::new(""));
        let origin = path.display().to_string();
        let (mut cfg, warnings) = Config::from_value(&value, base_dir, &origin)?;
        cfg.source = Some(path.to_path_buf());
        Ok((cfg, warnings))
    }

    /// Parses config text handed over directly (vscpd passes the JSON itself when the
    /// `path-config` value starts with `{`). `base_dir` anchors relative paths; `origin` labels
    /// errors (e.g. `<inline>`). `source` is left `None`.
    pub fn from_json_str(text: &str, base_dir: &Path, origin: &str) -> Result<Loaded, ConfigError> {
        Config::from_value(&vscp_config::parse_json(text, origin)?, base_dir, origin)
    }

    /// The checks across keys, and the files the config names.
    fn from_value(value: &Value, base_dir: &Path, origin: &str) -> Result<Loaded, ConfigError> {
        let mut r = Reader::new(origin, "");
        let (mut cfg, extra, top): (Config, Extra, TopKeys) = r.read(value, UNUSED_TOP)?;
        cfg.origin = origin.into();
        let (ws1, ws2) = (&cfg.url_ws1, &cfg.url_ws2);
        if cfg.enable_ws1 && cfg.enable_ws2 && ws1 == ws2 {
            let reason =
                format!("same path as url-ws1 ({ws1}); the two protocols need different paths");
            return Err(r.err("url-ws2", reason));
        }
        if !cfg.enable_ws1 && !cfg.enable_ws2 {
            r.warn("both enable-ws1 and enable-ws2 are false; no websocket session can be opened");
        }
        let key = |t: &str| vscp_proto::auth::parse_key_file(t).map_err(|e| e.to_string());
        cfg.key.0 = read_file(&r, "key-file", &mut cfg.key_file, base_dir, "vscp.key", key)?;
        let users = &mut cfg.users_file;
        read_file(&r, "path-users", users, base_dir, "users.json", |_| Ok(()))?;
        let f = extra.filter.0;
        let pair = |f: FilterHalf, m: FilterHalf| Filter::from_strings(&f.0, &m.0);
        cfg.in_filter = pair(f.in_filter, f.in_mask).expect("both halves parsed when read");
        cfg.out_filter = pair(f.out_filter, f.out_mask).expect("both halves parsed when read");
        (cfg.tcpip_listen, cfg.tcpip_tls) = match extra.tcpip_interface {
            Some(Some((addr, tls))) => (Some(addr), tls),
            Some(None) => (None, false),
            None => (default_tcpip_listen(cfg.listen, &mut r), false),
        };
        cfg.listen_tls = extra.interface_tls;
        let used = cfg.listen_tls || (cfg.tcpip_tls && cfg.tcpip_listen.is_some());
        let block = extra.tls.map(|b| b.0);
        cfg.tls = crate::tls::settings::read(&mut r, top, block, base_dir, used)?;
        if let Some(tls) = &cfg.tls {
            // Read the files now, so a bad one stops start-up (and check-config) naming its key.
            crate::tls::build::build(tls)?;
        }
        let log = &mut cfg.logging;
        log.file_path = base_dir.join(&log.file_path);
        // Both are accepted, and a contradiction is reported rather than resolved silently.
        let (main, alias) = (extra.logging.0.file_enable_log, extra.logging.0.file_enable);
        match (main, alias) {
            (Some(Flag(main)), Some(Flag(alias))) if main != alias => r.warn(format_args!(
                "\"logging.file-enable\" ({alias}) contradicts \"logging.file-enable-log\" \
                 ({main}); using file-enable-log"
            )),
            _ => {}
        }
        log.file_enable = main.or(alias).is_some_and(|f| f.0);
        Ok((cfg, r.warnings))
    }

    /// The built-in defaults used when no config file is given: listen on `127.0.0.1:8884`,
    /// `/ws1` and `/ws2`, key `deploy_dir/vscp.key`, users `deploy_dir/users.json`. Fails like a
    /// config file would if those two files are unusable.
    pub fn samples(deploy_dir: &Path) -> Result<Config, ConfigError> {
        // An empty object yields every default with relative paths anchored at `deploy_dir`,
        // so the defaults are defined in exactly one place.
        Ok(Config::from_json_str("{}", deploy_dir, "<built-in defaults>")?.0)
    }

    /// The GUID this server stamps on client events that carry an all-zero GUID (ws1.md Q9).
    /// If `guid` is configured (non-zero) it is used as is; otherwise it is derived from the
    /// listen address as the IPv4-based form `FF:FF:FF:FF:FF:FF:FF:FD:<IPv4>:00:00:00:00`, with
    /// the four address bytes zero when listening on IPv6 or on `0.0.0.0`.
    pub fn interface_guid(&self) -> [u8; 16] {
        if self.guid != [0; 16] {
            return self.guid;
        }
        let mut guid = [0u8; 16];
        guid[..7].fill(0xFF);
        guid[7] = 0xFD;
        if let IpAddr::V4(v4) = self.listen.ip() {
            guid[8..12].copy_from_slice(&v4.octets());
        }
        guid
    }
}

/// A config and the warnings of reading it, which the caller logs once logging is set up.
type Loaded = (Config, Vec<String>);

/// Resolves the path key `key` (empty: not given, `default`) against the config file's folder
/// and hands the text of the regular file it names to `check`. A path that came from a default
/// says so, so a "file not found" for a key never written is no mystery.
fn read_file<T>(
    r: &Reader,
    key: &str,
    path: &mut PathBuf,
    base_dir: &Path,
    default: &str,
    check: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let given = (!path.as_os_str().is_empty()).then(|| path.clone());
    *path = base_dir.join(given.as_deref().unwrap_or(Path::new(default)));
    let shown = match given {
        Some(_) => path.display().to_string(),
        None => format!("{} (default; set \"{key}\" to change)", path.display()),
    };
    if path.is_dir() {
        return Err(r.err(key, format!("{shown} is not a regular file")));
    }
    let bytes = std::fs::read(&*path).map_err(|e| {
        // A new user who printed the sample config into an empty folder lands here first.
        let hint = (e.kind() == std::io::ErrorKind::NotFound).then_some(INIT_HINT);
        let hint = hint.unwrap_or_default();
        r.err(key, format!("cannot read {shown}: {e}{hint}"))
    })?;
    check(&String::from_utf8_lossy(&bytes)).map_err(|e| r.err(key, format!("{shown}: {e}")))
}

/// `tcpip-interface` when the key is absent: [`DEFAULT_TCPIP_LISTEN`], except
/// - beside an `interface` on port 0 (tests and tools that ask for free ports): a free port
///   too, so they never take 9598 by accident;
/// - beside an `interface` on port 9598 (REF's sample configs used it for the driver's one
///   listener): off, with a warning, so such a config starts as it did before.
fn default_tcpip_listen(listen: SocketAddr, r: &mut Reader) -> Option<SocketAddr> {
    match listen.port() {
        0 => Some(SocketAddr::new(DEFAULT_TCPIP_LISTEN.ip(), 0)),
        port if port == DEFAULT_TCPIP_LISTEN.port() => {
            r.warn(format!(
                "interface uses port {port}, the tcp/ip default: the tcp/ip link interface is off; \
                 set tcpip-interface to turn it on elsewhere"
            ));
            None
        }
        _ => Some(DEFAULT_TCPIP_LISTEN),
    }
}

/// Parses `interface`: `PORT`, `HOST`, `HOST:PORT`, `[v6]:PORT`, `[v6]`, a bare IPv6 address,
/// each optionally prefixed by `tcp://` or `ws://` and followed by one `/`.
///
/// A bare port listens on loopback, like REF's default `localhost`; write `0.0.0.0:PORT` to
/// listen on every interface. Host names other than `localhost` are refused rather than
/// resolved: a listen address must be a local address, and DNS at start-up would make the
/// bind address depend on resolver state.
fn parse_interface(text: &str) -> Result<SocketAddr, String> {
    parse_listen(text, DEFAULT_PORT).map(|(addr, _)| addr)
}

/// A client listener's address and whether its scheme asks for TLS: `wss://` or `stcp://` (the
/// seed's prefixes), or `ssl://`, `tls://`, `https://`, on either listener; `tcp://`, `ws://`,
/// `http://` or none is plain.
fn parse_listen(text: &str, default_port: u16) -> Result<(SocketAddr, bool), String> {
    let (scheme, host, port) = vscp_config::split_address(text)?;
    let text = text.trim();
    let tls = match scheme.as_str() {
        "" | "tcp" | "ws" | "http" => false,
        "wss" | "stcp" | "ssl" | "tls" | "https" => true,
        _ => {
            return Err(format!(
                "{text:?}: unsupported scheme {scheme:?}; expected tcp:// or ws://, or wss:// or \
                 stcp:// for TLS"
            ))
        }
    };
    let ip = match host {
        "" => {
            return Err(format!(
                "{text:?}: missing host; write 0.0.0.0:PORT to listen on every interface"
            ))
        }
        // A bare port: loopback.
        _ if port.is_none() && host.bytes().all(|b| b.is_ascii_digit()) => {
            let port = vscp_config::parse_port(host, text)?;
            return Ok((SocketAddr::new(LOCALHOST, port), tls));
        }
        _ if host.eq_ignore_ascii_case("localhost") => LOCALHOST,
        _ => host.parse::<IpAddr>().map_err(|_| {
            format!("{text:?}: {host:?} is not an IP address or localhost (host names are not resolved)")
        })?,
    };
    Ok((SocketAddr::new(ip, port.unwrap_or(default_port)), tls))
}

/// Reads the interface GUID. Stricter than [`Guid::parse`], which (like REF) fills missing
/// trailing bytes with 0 and ignores extra ones: a config value is written once by a person, so a
/// wrong byte count is more likely a typo than shorthand. Token syntax is `Guid::parse`'s.
/// Empty or `-` means all zero (derive one, see [`Config::interface_guid`]).
fn parse_guid(text: &str) -> Result<[u8; 16], String> {
    let text = text.trim();
    if text.is_empty() || text == "-" {
        return Ok([0; 16]);
    }
    let count = text.split(':').count();
    if count != 16 {
        return Err(format!(
            "{text:?} has {count} bytes; expected 16 colon-separated hex bytes, e.g. \
             FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01"
        ));
    }
    Guid::parse(text)
        .map(|g| g.0)
        .map_err(|e| format!("{e}; expected 16 colon-separated hex bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const KEY_HEX: &str = "2DBB079A38985AF00EBEEFE22F9FFA0E";
    const KEY: [u8; 16] = [
        0x2D, 0xBB, 0x07, 0x9A, 0x38, 0x98, 0x5A, 0xF0, 0x0E, 0xBE, 0xEF, 0xE2, 0x2F, 0x9F, 0xFA,
        0x0E,
    ];

    /// A fresh folder under the system temp dir holding `vscp.key` and `users.json`.
    /// Removed on drop so repeated test runs don't pile up folders.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "vscp-websocksrv-config-{}-{}-{tag}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("vscp.key"), format!("{KEY_HEX}{KEY_HEX}\n")).unwrap();
            std::fs::write(dir.join("users.json"), r#"{"users":[]}"#).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn inline(dir: &TempDir, json: &str) -> Result<(Config, Vec<String>), ConfigError> {
        Config::from_json_str(json, &dir.0, "<inline>")
    }

    fn key_error(r: Result<(Config, Vec<String>), ConfigError>) -> (String, String, String) {
        match r {
            Err(ConfigError::Key { file, key, reason }) => (file, key, reason),
            other => panic!("expected a key error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let dir = TempDir::new("defaults");
        let cfg = Config::samples(&dir.0).unwrap();
        assert_eq!(cfg.source, None);
        assert_eq!(cfg.listen, "127.0.0.1:8884".parse().unwrap());
        assert_eq!(cfg.url_ws1, "/ws1");
        assert_eq!(cfg.url_ws2, "/ws2");
        assert!(cfg.enable_ws1 && cfg.enable_ws2);
        assert_eq!(cfg.key, KEY);
        assert_eq!(cfg.key_file, dir.0.join("vscp.key"));
        assert_eq!(cfg.users_file, dir.0.join("users.json"));
        assert_eq!(cfg.guid, [0; 16]);
        assert_eq!(cfg.max_in_queue, 32_000);
        assert_eq!(cfg.max_out_queue, 32_000);
        assert!(!cfg.receive_sent_events);
        assert_eq!(cfg.in_filter, Filter::ALL_PASS);
        assert_eq!(cfg.out_filter, Filter::ALL_PASS);
        assert_eq!(cfg.max_clients, 100);
        assert_eq!(cfg.max_message_bytes, 65_536);
        assert_eq!(cfg.auth_timeout, Duration::from_secs(30));
        assert_eq!(cfg.idle_timeout, Duration::ZERO);
        // Pings off, keepalive on: a vanished peer is found within 2 minutes.
        assert_eq!(cfg.ws_ping_interval, Duration::ZERO);
        assert_eq!(cfg.ws_pong_timeout, Duration::from_secs(20));
        assert_eq!(cfg.keepalive(), KeepaliveSettings::DEFAULT);
        assert!(!cfg.ws2_accept_client_iv);
        assert_eq!(cfg.shards, None);
        assert!(!cfg.debug);
        let log = &cfg.logging;
        assert!(log.console_enable && !log.file_enable);
        assert_eq!(log.console_level, LogLevel::Info);
        assert_eq!(log.file_level, LogLevel::Info);
        assert_eq!(log.file_max_size, 5_242_880);
        assert_eq!(log.file_max_files, 7);
        assert_eq!(log.file_path, PathBuf::from("/tmp/vscp-websocksrv.log"));
    }

    #[test]
    fn derived_interface_guid() {
        let dir = TempDir::new("guid");
        let mut cfg = Config::samples(&dir.0).unwrap();
        assert_eq!(
            Guid(cfg.interface_guid()).to_string(),
            "FF:FF:FF:FF:FF:FF:FF:FD:7F:00:00:01:00:00:00:00"
        );
        cfg.listen = "[::1]:8884".parse().unwrap();
        assert_eq!(
            Guid(cfg.interface_guid()).to_string(),
            "FF:FF:FF:FF:FF:FF:FF:FD:00:00:00:00:00:00:00:00"
        );
        let (cfg, _) = inline(
            &dir,
            r#"{"guid":"FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01"}"#,
        )
        .unwrap();
        assert_eq!(
            Guid(cfg.interface_guid()).to_string(),
            "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01"
        );
        let (_, key, _) = key_error(inline(&dir, r#"{"guid":"FF:FF:01"}"#));
        assert_eq!(key, "guid");
        let (_, key, _) = key_error(inline(
            &dir,
            r#"{"guid":"FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:XY"}"#,
        ));
        assert_eq!(key, "guid");
    }

    #[test]
    fn vscpd_conf_entry_supplies_path_config_guid_and_mqtt() {
        let dir = TempDir::new("vscpd");
        std::fs::write(dir.0.join("vscp.key"), "2DBB079A38985AF00EBEEFE22F9FFA0E").unwrap();
        std::fs::write(dir.0.join("users.json"), r#"{"users":[]}"#).unwrap();
        std::fs::write(
            dir.0.join("websocksrv.json"),
            r#"{"interface":"127.0.0.1:9598"}"#,
        )
        .unwrap();
        let conf = dir.0.join("vscpd.conf");
        std::fs::write(
            &conf,
            r#"{"drivers":{"level2":[
                {"enable":true,"name":"other","path-config":"nope.json"},
                {"enable":false,"name":"websocket-srv","path-driver":"/x.so",
                 "path-config":"websocksrv.json","guid":"FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01",
                 "mqtt":{"host":"127.0.0.1","port":1883}}]}}"#,
        )
        .unwrap();
        let (cfg, w) = Config::from_vscpd(&conf, "websocket-srv").unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:9598");
        assert_eq!(cfg.guid[8..10], [0x02, 0x88]);
        assert_eq!(cfg.mqtt.as_ref().unwrap()["port"], 1883);
        // The second: `interface` took 9598, so the tcp/ip link interface is off.
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("drivers.level2[1].enable"));
        assert_eq!(cfg.tcpip_listen, None);
        // Inline path-config, as vscpd allows.
        std::fs::write(
            &conf,
            r#"{"drivers":{"level2":[{"name":"ws","path-config":"{\"interface\":\"9001\"}"}]}}"#,
        )
        .unwrap();
        let (cfg, _) = Config::from_vscpd(&conf, "ws").unwrap();
        assert_eq!(cfg.listen.port(), 9001);
        match Config::from_vscpd(&conf, "missing") {
            Err(ConfigError::Key { key, .. }) => assert_eq!(key, "drivers.level2"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metrics_interface_default_port_and_off() {
        let dir = TempDir::new("metrics-iface");
        let (cfg, w) = inline(&dir, "{}").unwrap();
        assert!(w.is_empty());
        assert_eq!(cfg.metrics_listen, Some(DEFAULT_METRICS_LISTEN));
        let (cfg, _) = inline(&dir, r#"{"metrics-interface":"0.0.0.0"}"#).unwrap();
        assert_eq!(cfg.metrics_listen.unwrap().to_string(), "0.0.0.0:9884");
        let (cfg, _) = inline(&dir, r#"{"metrics-interface":"  "}"#).unwrap();
        assert_eq!(cfg.metrics_listen, None);
        let (_, key, _) = key_error(inline(&dir, r#"{"metrics-interface":"wss://x:1"}"#));
        assert_eq!(key, "metrics-interface");
    }

    #[test]
    fn interface_forms() {
        let ok = |s: &str| parse_interface(s).unwrap().to_string();
        assert_eq!(ok("9598"), "127.0.0.1:9598");
        assert_eq!(ok("0.0.0.0:8884"), "0.0.0.0:8884");
        assert_eq!(ok("192.168.1.7:1234"), "192.168.1.7:1234");
        assert_eq!(ok("localhost:9000"), "127.0.0.1:9000");
        assert_eq!(ok("LOCALHOST"), "127.0.0.1:8884");
        assert_eq!(ok("10.0.0.1"), "10.0.0.1:8884");
        assert_eq!(ok("[::1]:8885"), "[::1]:8885");
        assert_eq!(ok("[::]"), "[::]:8884");
        assert_eq!(ok("::1"), "[::1]:8884");
        assert_eq!(ok("tcp://localhost:9598"), "127.0.0.1:9598");
        assert_eq!(ok("ws://localhost:8884"), "127.0.0.1:8884");
        assert_eq!(ok("ws://localhost"), "127.0.0.1:8884");
        assert_eq!(ok("ws://[::1]:9/"), "[::1]:9");
        assert_eq!(ok("  WS://0.0.0.0:80  "), "0.0.0.0:80");
        assert_eq!(ok("127.0.0.1:0"), "127.0.0.1:0");

        for bad in [
            "",
            "example.com:80",
            "127.0.0.1:65536",
            "127.0.0.1:x",
            ":8884",
            "[::1",
            "[::1]x",
            "ws://127.0.0.1:8884/ws1",
            "ftp://127.0.0.1:21",
        ] {
            assert!(parse_interface(bad).is_err(), "{bad:?} should fail");
        }

        // And through the config, so the error names the key.
        let dir = TempDir::new("iface");
        let (cfg, w) = inline(&dir, r#"{"interface":"ws://[::1]:9001"}"#).unwrap();
        assert_eq!(cfg.listen, "[::1]:9001".parse().unwrap());
        assert!(w.is_empty());
        let (file, key, _) = key_error(inline(&dir, r#"{"interface":"nope.example:1"}"#));
        assert_eq!((file.as_str(), key.as_str()), ("<inline>", "interface"));
    }

    #[test]
    fn tls_schemes_turn_tls_on_and_need_a_certificate() {
        let dir = TempDir::new("tls");
        let pki = vscp_testkit::tls::Pki::new(&dir.0);
        for (iface, tcpip, on) in [
            ("wss://127.0.0.1:0", "", (true, false)),
            ("ws://127.0.0.1:0", "stcp://127.0.0.1:0", (false, true)),
            ("https://127.0.0.1:0", "tls://127.0.0.1:0", (true, true)),
            ("stcp://127.0.0.1:0", "ssl://127.0.0.1:0", (true, true)),
        ] {
            let json = format!(
                r#"{{"interface":"{iface}","tcpip-interface":"{tcpip}","ssl_certificate":"server.pem"}}"#
            );
            let (cfg, w) = inline(&dir, &json).unwrap();
            assert!(w.is_empty(), "{w:?}");
            assert_eq!((cfg.listen_tls, cfg.tcpip_tls), on, "{json}");
            assert!(cfg.tls.is_some());
        }
        // The certificate is read when the config is: a missing one names its key.
        let (_, key, reason) = key_error(inline(&dir, r#"{"interface":"wss://127.0.0.1:0"}"#));
        assert_eq!(key, "ssl_certificate");
        assert!(reason.contains("/srv/vscp/certs/server.pem"), "{reason}");
        let (_, key, _) = key_error(inline(
            &dir,
            r#"{"interface":"wss://127.0.0.1:0","tls":{"certificate":"ca.pem"}}"#,
        ));
        assert_eq!(key, "tls.certificate");
        // The metrics endpoint stays plain.
        let (_, key, reason) =
            key_error(inline(&dir, r#"{"metrics-interface":"https://127.0.0.1"}"#));
        assert_eq!(key, "metrics-interface");
        assert!(reason.contains("no TLS"), "{reason}");
        drop(pki);
    }

    #[test]
    fn relative_paths_resolve_against_config_folder() {
        let dir = TempDir::new("relative");
        std::fs::create_dir_all(dir.0.join("sub")).unwrap();
        std::fs::write(dir.0.join("sub/k.key"), KEY_HEX).unwrap();
        std::fs::write(dir.0.join("sub/u.json"), "{}").unwrap();
        let path = dir.write(
            "websocksrv.json",
            r#"{"key-file":"sub/k.key","path-users":"sub/u.json",
                "logging":{"file-path":"logs/x.log"}}"#,
        );
        let (cfg, warnings) = Config::load(&path).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(cfg.source.as_deref(), Some(path.as_path()));
        assert_eq!(cfg.key_file, dir.0.join("sub/k.key"));
        assert_eq!(cfg.users_file, dir.0.join("sub/u.json"));
        assert_eq!(cfg.logging.file_path, dir.0.join("logs/x.log"));
        assert_eq!(cfg.key, KEY);

        // Absolute paths are used as given, whatever the base folder.
        let abs_users = dir.0.join("users.json");
        let abs_key = dir.0.join("vscp.key");
        let json = serde_json::json!({
            "path-users": abs_users.to_str().unwrap(),
            "key-file": abs_key.to_str().unwrap(),
        })
        .to_string();
        let (cfg, _) = Config::from_json_str(&json, Path::new("/nonexistent"), "<inline>").unwrap();
        assert_eq!(cfg.users_file, abs_users);
        assert_eq!(cfg.key_file, abs_key);
    }

    #[test]
    fn mqtt_block_is_kept_raw_and_must_be_an_object() {
        let dir = TempDir::new("mqtt");
        let (cfg, w) = inline(&dir, r#"{"mqtt":{"host":"h","anything":1}}"#).unwrap();
        assert!(w.is_empty(), "the mqtt crate reports its own keys: {w:?}");
        assert_eq!(cfg.mqtt.as_ref().unwrap()["host"], "h");
        assert!(
            !format!("{cfg:?}").contains("\"h\""),
            "the block is redacted"
        );
        let (cfg, _) = inline(&dir, r#"{"mqtt":null}"#).unwrap();
        assert!(cfg.mqtt.is_none());
        match inline(&dir, r#"{"mqtt":"tcp://h"}"#) {
            Err(ConfigError::Key { key, .. }) => assert_eq!(key, "mqtt"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_and_unused_keys_warn_once() {
        let dir = TempDir::new("unknown");
        let (_, w) = inline(
            &dir,
            r#"{"frobnicate":1,"write":true,"tls":{"colour":1},"rx-filter":"",
                "logging":{"colour":true,"file-enable":false},
                "filter":{"in-filter":"","extra":""}}"#,
        )
        .unwrap();
        let count = |needle: &str| w.iter().filter(|s| s.contains(needle)).count();
        assert_eq!(count("unknown key \"frobnicate\""), 1, "{w:?}");
        assert_eq!(count("unknown key \"logging.colour\""), 1, "{w:?}");
        assert_eq!(count("unknown key \"filter.extra\""), 1, "{w:?}");
        assert_eq!(count("\"write\" accepted but not used"), 1, "{w:?}");
        assert_eq!(count("unknown key \"tls.colour\""), 1, "{w:?}");
        assert_eq!(count("\"rx-filter\" accepted but not used"), 1, "{w:?}");
        assert_eq!(w.len(), 6, "{w:?}");
        assert!(w.iter().all(|s| s.starts_with("<inline>: ")));
    }

    #[test]
    fn a_misspelt_key_gets_the_nearest_known_one_of_its_block() {
        let dir = TempDir::new("near");
        let (cfg, w) = inline(
            &dir,
            r#"{"max-clientz":5,"ssl-verify-peer":false,"logging":{"console-log-levl":"off"},
                "filter":{"in-filtr":""},"tls":{"certifcate":""}}"#,
        )
        .unwrap();
        let said = |needle: &str| w.iter().any(|s| s.contains(needle));
        assert!(
            said(r#""max-clientz" ignored; did you mean "max-clients"?"#),
            "{w:?}"
        );
        assert!(said(r#"did you mean "ssl_verify_peer"?"#), "{w:?}");
        assert!(
            said(r#"did you mean "logging.console-log-level"?"#),
            "{w:?}"
        );
        assert!(said(r#"did you mean "filter.in-filter"?"#), "{w:?}");
        assert!(said(r#"did you mean "tls.certificate"?"#), "{w:?}");
        // The key is still ignored, not guessed: the default stays.
        assert_eq!(cfg.max_clients, 100);
    }

    #[test]
    fn wrong_type_names_key_and_file() {
        let dir = TempDir::new("wrongtype");
        let path = dir.write("bad.json", r#"{"logging":{"file-max-size":"big"}}"#);
        let err = Config::load(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert!(text.contains("key \"logging.file-max-size\""), "{text}");

        let (_, key, _) = key_error(inline(&dir, r#"{"debug":"yes"}"#));
        assert_eq!(key, "debug");
        let (_, key, _) = key_error(inline(&dir, r#"{"max-clients":1.5}"#));
        assert_eq!(key, "max-clients");
        let (_, key, _) = key_error(inline(&dir, r#"{"logging":[]}"#));
        assert_eq!(key, "logging");
        let (_, key, _) = key_error(inline(&dir, r#"{"filter":{"out-mask":0}}"#));
        assert_eq!(key, "filter.out-mask");
        let (_, key, _) = key_error(inline(&dir, r#"{"logging":{"console-log-level":"loud"}}"#));
        assert_eq!(key, "logging.console-log-level");
        let (_, key, _) = key_error(inline(&dir, "[1,2]"));
        assert_eq!(key, "<root>");
    }

    /// The value rules shared with the mqtt block (docs/config.md "Value types").
    #[test]
    fn unified_value_rules() {
        let dir = TempDir::new("rules");
        // Booleans: 1/0 as well as true/false; other numbers are refused.
        let (cfg, _) = inline(&dir, r#"{"debug":1,"enable-ws2":0}"#).unwrap();
        assert!(cfg.debug && !cfg.enable_ws2);
        let (_, key, reason) = key_error(inline(&dir, r#"{"debug":2}"#));
        assert_eq!(key, "debug");
        assert!(reason.contains("expected true or false"), "{reason}");
        // null is the same as absent, for every key.
        let (cfg, w) = inline(&dir, r#"{"max-clients":null,"url-ws1":null}"#).unwrap();
        assert_eq!(
            (cfg.max_clients, cfg.url_ws1.as_str(), w.len()),
            (100, "/ws1", 0)
        );
        // A block must be an object, not its fields in an array.
        let (_, key, _) = key_error(inline(&dir, r#"{"logging":[true]}"#));
        assert_eq!(key, "logging");
        // Wrong values are quoted as written.
        let (_, _, reason) = key_error(inline(&dir, r#"{"max-clients":"ten"}"#));
        assert!(reason.contains("found \"ten\""), "{reason}");
    }

    #[test]
    fn invalid_json_names_file() {
        let dir = TempDir::new("json");
        let path = dir.write("bad.json", "{ \"debug\": true,");
        match Config::load(&path) {
            Err(ConfigError::Json { file, .. }) => assert_eq!(file, path),
            other => panic!("{other:?}"),
        }
        match Config::load(&dir.0.join("missing.json")) {
            Err(ConfigError::Io { file, .. }) => assert_eq!(file, dir.0.join("missing.json")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn out_of_range_values() {
        let dir = TempDir::new("range");
        for (json, want) in [
            (r#"{"max-in-queue":0}"#, "max-in-queue"),
            (r#"{"max-out-queue":1000001}"#, "max-out-queue"),
            (r#"{"max-out-queue":-1}"#, "max-out-queue"),
            (r#"{"max-message-size":100}"#, "max-message-size"),
            (r#"{"max-message-size":16777217}"#, "max-message-size"),
            (r#"{"auth-timeout":86401}"#, "auth-timeout"),
            (r#"{"ws-pong-timeout":0}"#, "ws-pong-timeout"),
            (r#"{"ws-ping-interval":86401}"#, "ws-ping-interval"),
            (r#"{"tcp-keepalive-idle":32768}"#, "tcp-keepalive-idle"),
            (r#"{"tcp-keepalive-interval":0}"#, "tcp-keepalive-interval"),
            (r#"{"tcp-keepalive-count":128}"#, "tcp-keepalive-count"),
            (r#"{"tcp-keepalive-count":0}"#, "tcp-keepalive-count"),
            (r#"{"shards":5000}"#, "shards"),
            (
                r#"{"logging":{"file-max-files":0}}"#,
                "logging.file-max-files",
            ),
        ] {
            let (file, key, reason) = key_error(inline(&dir, json));
            assert_eq!(key, want, "{json}");
            assert_eq!(file, "<inline>");
            assert!(reason.contains("out of range"), "{json}: {reason}");
        }
        // Edges are inclusive.
        let (cfg, _) = inline(
            &dir,
            r#"{"max-in-queue":1,"max-out-queue":1000000,"max-message-size":512,
                "max-clients":0,"shards":0,"idle-timeout":86400}"#,
        )
        .unwrap();
        assert_eq!(cfg.max_in_queue, 1);
        assert_eq!(cfg.max_out_queue, 1_000_000);
        assert_eq!(cfg.max_message_bytes, 512);
        assert_eq!(cfg.max_clients, 0);
        assert_eq!(cfg.shards, None);
        assert_eq!(cfg.idle_timeout, Duration::from_secs(86_400));
        let (cfg, _) = inline(&dir, r#"{"shards":4}"#).unwrap();
        assert_eq!(cfg.shards, Some(4));
        let (cfg, w) = inline(
            &dir,
            r#"{"ws-ping-interval":1,"ws-pong-timeout":86400,"tcp-keepalive-idle":0,
                "tcp-keepalive-interval":32767,"tcp-keepalive-count":127}"#,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(cfg.ws_ping_interval, Duration::from_secs(1));
        assert_eq!(cfg.ws_pong_timeout, Duration::from_secs(86_400));
        assert!(!cfg.keepalive().is_on());
        assert_eq!(cfg.keepalive().interval, Duration::from_secs(32_767));
        assert_eq!(cfg.keepalive().count, 127);
    }

    #[test]
    fn missing_users_file() {
        let dir = TempDir::new("nousers");
        let (file, key, reason) = key_error(inline(&dir, r#"{"path-users":"nope.json"}"#));
        assert_eq!((file.as_str(), key.as_str()), ("<inline>", "path-users"));
        assert!(reason.contains("nope.json"), "{reason}");

        // Defaulted path: the message says it was a default.
        std::fs::remove_file(dir.0.join("users.json")).unwrap();
        let (_, key, reason) = key_error(inline(&dir, "{}"));
        assert_eq!(key, "path-users");
        assert!(reason.contains("default"), "{reason}");

        // A folder is not a users file.
        let (_, key, _) = key_error(inline(&dir, r#"{"path-users":"."}"#));
        assert_eq!(key, "path-users");
    }

    #[test]
    fn key_file_rules() {
        let dir = TempDir::new("key");
        // Leading whitespace skipped, lower case fine, the rest of the file ignored.
        dir.write(
            "ws.key",
            &format!("  \n{}\ntrailing text", KEY_HEX.to_lowercase()),
        );
        let (cfg, _) = inline(&dir, r#"{"key-file":"ws.key"}"#).unwrap();
        assert_eq!(cfg.key, KEY);

        dir.write("short.key", &KEY_HEX[..31]);
        let (_, key, reason) = key_error(inline(&dir, r#"{"key-file":"short.key"}"#));
        assert_eq!(key, "key-file");
        assert!(reason.contains("short.key"), "{reason}");
        let (_, key, _) = key_error(inline(&dir, r#"{"key-file":"missing.key"}"#));
        assert_eq!(key, "key-file");
        let (_, key, _) = key_error(inline(&dir, r#"{"key-file":""}"#));
        assert_eq!(key, "key-file");
    }

    #[test]
    fn urls_get_a_leading_slash_and_must_differ() {
        let dir = TempDir::new("urls");
        let (cfg, _) = inline(&dir, r#"{"url-ws1":"a","url-ws2":"/b/c"}"#).unwrap();
        assert_eq!((cfg.url_ws1.as_str(), cfg.url_ws2.as_str()), ("/a", "/b/c"));
        let (_, key, _) = key_error(inline(&dir, r#"{"url-ws1":"x","url-ws2":"/x"}"#));
        assert_eq!(key, "url-ws2");
        let (_, key, _) = key_error(inline(&dir, r#"{"url-ws1":"/a b"}"#));
        assert_eq!(key, "url-ws1");
        // Same path is fine when one endpoint is off.
        assert!(inline(
            &dir,
            r#"{"url-ws1":"/x","url-ws2":"/x","enable-ws2":false}"#
        )
        .is_ok());
        let (_, w) = inline(&dir, r#"{"enable-ws1":false,"enable-ws2":false}"#).unwrap();
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn logging_block_and_alias() {
        let dir = TempDir::new("logging");
        let (cfg, w) = inline(
            &dir,
            r#"{"logging":{"file-enable":true,"file-log-level":"ERR","console-log-level":"critical",
                "console-enable-log":false,"file-max-size":1048576,"file-max-files":3,
                "file-pattern":"%v"}}"#,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        let log = &cfg.logging;
        assert!(log.file_enable && !log.console_enable);
        assert_eq!(log.file_level, LogLevel::Error);
        assert_eq!(log.console_level, LogLevel::Critical);
        assert_eq!(
            log.console_level.to_level_filter(),
            tracing::level_filters::LevelFilter::ERROR
        );
        assert_eq!((log.file_max_size, log.file_max_files), (1_048_576, 3));
        assert_eq!(log.file_pattern, "%v");

        let (cfg, w) = inline(
            &dir,
            r#"{"logging":{"file-enable":true,"file-enable-log":false}}"#,
        )
        .unwrap();
        assert!(!cfg.logging.file_enable);
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn filter_block_is_parsed() {
        let dir = TempDir::new("filter");
        let (cfg, _) = inline(
            &dir,
            r#"{"filter":{"in-filter":"0,10,6,-","in-mask":"0,0xffff,0xffff,-",
                "out-filter":"1,2,3,FF:00"}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.in_filter,
            Filter::from_strings("0,10,6,-", "0,0xffff,0xffff,-").unwrap()
        );
        assert_eq!(cfg.in_filter.filter_class, 10);
        assert_eq!(cfg.in_filter.mask_type, 0xFFFF);
        assert_eq!(cfg.out_filter.filter_priority, 1);
        assert_eq!(cfg.out_filter.filter_guid.0[0], 0xFF);
        assert_eq!(cfg.out_filter.mask_class, 0);

        let (file, key, _) = key_error(inline(&dir, r#"{"filter":{"in-mask":"0,zz,0,-"}}"#));
        assert_eq!(
            (file.as_str(), key.as_str()),
            ("<inline>", "filter.in-mask")
        );
        let (_, key, _) = key_error(inline(&dir, r#"{"filter":{"out-filter":"0,0,0,XY:1"}}"#));
        assert_eq!(key, "filter.out-filter");
        // REF's documentation placeholder text is not a filter.
        let (_, key, _) = key_error(inline(
            &dir,
            r#"{"filter":{"in-filter":"incoming filter on string form"}}"#,
        ));
        assert_eq!(key, "filter.in-filter");
    }

    #[test]
    fn debug_output_hides_key() {
        let dir = TempDir::new("debug");
        let cfg = Config::samples(&dir.0).unwrap();
        let text = format!("{cfg:?}");
        assert!(text.contains("<redacted>"));
        assert!(
            !text.contains("2DBB") && !text.contains("45, 187"),
            "{text}"
        );
    }

    /// The seed README's sample, with its paths pointed at files that exist and its placeholder
    /// filter texts replaced by real ones.
    #[test]
    fn seed_sample_loads_with_warnings() {
        let dir = TempDir::new("seed");
        let json = r#"{
  "debug" : true,
  "write" : false,
  "key-file" : "vscp.key",
  "max-out-queue" : 32000,
  "max-in-queue" : 32000,
  "interface" : "9598",
  "encryption" : "aes256",
  "path-users" : "users.json",
  "receive-sent-events" : true,
  "tls" : {
    "certificate" : "",
    "certificate-chain" : "",
    "verify-peer" : false,
    "ca-path" : "",
    "ca-file" : "",
    "verify-depth" : 9,
    "default-verify-paths" : true,
    "cipher-list" : "DES-CBC3-SHA:AES128-SHA:AES128-GCM-SHA256",
    "protocol-version" : 3,
    "short-trust" : false
  },
  "logging" : {
    "file-enable-log": true,
    "file-log-level" : "debug",
    "file-pattern" : "[vcpl2drv-websocksrv %c] [%^%l%$] %v",
    "file-path" : "/tmp/vscpl2drv-websocksrv.log",
    "file-max-size" : 5242880,
    "file-max-files" : 7,
    "console-enable-log": true,
    "console-log-level" : "debug",
    "console-pattern" : "[vcpl2drv-websocksrv %c] [%^%l%$] %v"
  },
  "filter" : {
    "in-filter" : "0,0,0,-",
    "in-mask" : "0,0,0,-",
    "out-filter" : "0,0,0,-",
    "out-mask" : "0,0,0,-"
  }
}"#;
        let path = dir.write("websocksrv.json", json);
        let (cfg, w) = Config::load(&path).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9598".parse().unwrap());
        assert!(cfg.debug && cfg.receive_sent_events);
        assert!(cfg.logging.file_enable);
        assert_eq!(cfg.logging.file_level, LogLevel::Debug);
        assert_eq!(
            cfg.logging.file_path,
            PathBuf::from("/tmp/vscpl2drv-websocksrv.log")
        );
        assert_eq!(cfg.key, KEY);
        for key in ["write", "encryption"] {
            assert!(
                w.iter()
                    .any(|s| s.contains(&format!("\"{key}\" accepted but not used"))),
                "{key}: {w:?}"
            );
        }
        // And: the seed's `interface` 9598 leaves the tcp/ip link interface off.
        // The tls block is read, but with no TLS listener its (empty) settings say nothing.
        assert!(w[2].contains("tcp/ip link interface is off"), "{w:?}");
        assert_eq!(w.len(), 3, "{w:?}");
    }

    #[test]
    fn embedded_sample_is_the_deploy_file() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
        let (cfg, w) = Config::from_json_str(SAMPLE_CONFIG, &deploy, "<sample>").unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(cfg.listen, DEFAULT_LISTEN);
    }

    /// deploy/ carries the shipped sample; it must load cleanly and use the shipped key.
    #[test]
    fn deploy_sample_loads_cleanly() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
        let (cfg, w) = Config::load(&deploy.join("websocksrv.json")).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(cfg.key, KEY);
        assert_eq!(cfg.users_file, deploy.join("users.json"));
        let defaults = Config::samples(&deploy).unwrap();
        // The sample documents the defaults, so it must agree with them.
        macro_rules! same {
            ($($field:ident),*) => {$(assert_eq!(cfg.$field, defaults.$field, stringify!($field));)*};
        }
        same!(listen, max_in_queue, max_out_queue, max_clients);
        same!(max_message_bytes, auth_timeout, idle_timeout, shards);
        same!(ws_ping_interval, ws_pong_timeout, tcp_keepalive_idle);
        same!(tcp_keepalive_interval, tcp_keepalive_count);
        same!(logging, in_filter, out_filter, guid);
        same!(
            handshake_timeout,
            login_failure_budget,
            login_failure_refill
        );
        same!(login_failure_cooldown, connection_rate, connection_burst);
        same!(
            max_clients_per_address,
            max_unauthenticated,
            max_unauthenticated_per_address
        );
        same!(address_table_size, proxy_protocol_from);
    }
}
