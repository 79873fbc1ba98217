//! The TLS keys of the driver config: the seed's top-level `ssl_*` keys and the `tls` block of
//! its sample file (`tls.certificate` is `ssl_certificate`, and so on), read into one validated
//! [`TlsSettings`]. Which listeners use TLS is said by their address (`wss://`, `stcp://`);
//! these keys say with what. Meanings, defaults and what differs from the old driver:
//! docs/config.md "TLS".

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vscp_config::{ConfigError, Flag, Int, Reader};

/// `ssl_certificate` when not given (the seed's documented default).
pub const DEFAULT_CERTIFICATE: &str = "/srv/vscp/certs/server.pem";
/// `ssl_verify_depth` when not given (the seed's default).
pub const DEFAULT_VERIFY_DEPTH: usize = 9;
/// The highest `ssl_verify_depth` taken: longer chains than this are not a deployment.
pub const MAX_VERIFY_DEPTH: u64 = 100;
/// `ssl_protocol_version` when not given: TLS 1.2 (the seed's default, 4).
const DEFAULT_PROTOCOL_VERSION: u64 = 4;

/// The lowest TLS version a listener accepts. rustls speaks only TLS 1.2 and 1.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

/// Validated TLS settings: paths resolved against the config file's folder, each with the key
/// that named it (errors when the files are read, also at a reload, name that key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The config file (or label) errors start with.
    pub origin: String,
    /// PEM with the private key and the certificate (and possibly its chain).
    pub certificate: Keyed<PathBuf>,
    /// More chain certificates, sent after those in `certificate`.
    pub certificate_chain: Option<Keyed<PathBuf>>,
    /// Ask for and require a client certificate signed by `ca_file`/`ca_path`.
    pub verify_peer: bool,
    pub ca_file: Option<Keyed<PathBuf>>,
    pub ca_path: Option<Keyed<PathBuf>>,
    /// Most intermediate certificates a client's chain may have.
    pub verify_depth: usize,
    pub min_version: MinVersion,
    /// The suites `ssl_cipher_list` selected, as rustls names them; `None`: rustls's defaults.
    pub cipher_suites: Option<Vec<String>>,
    /// Re-read the files when they change (checked every second), not only at SIGHUP.
    pub short_trust: bool,
}

/// A value and the dotted key it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyed<T> {
    pub value: T,
    pub key: String,
}

impl TlsSettings {
    /// An error about `key` in this config.
    pub fn err(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            file: self.origin.clone(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The keys as the `tls` block writes them (and, through [`TopKeys`], the `ssl_*` ones).
/// Empty strings are "not given": the seed's sample leaves its paths empty.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct TlsKeys {
    certificate: Option<String>,
    certificate_chain: Option<String>,
    verify_peer: Option<Flag>,
    ca_path: Option<String>,
    ca_file: Option<String>,
    verify_depth: Option<Int<0, MAX_VERIFY_DEPTH>>,
    default_verify_paths: Option<Flag>,
    cipher_list: Option<String>,
    protocol_version: Option<Int<0, 255>>,
    short_trust: Option<Flag>,
}

/// The seed's top-level keys (docs/config.md "TLS"). The config reader has them beside its
/// other keys (so unknown keys are still reported) and hands them over in this.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct TopKeys {
    pub ssl_certificate: Option<String>,
    pub ssl_certificate_chain: Option<String>,
    pub ssl_verify_peer: Option<Flag>,
    pub ssl_ca_path: Option<String>,
    pub ssl_ca_file: Option<String>,
    pub ssl_verify_depth: Option<Int<0, MAX_VERIFY_DEPTH>>,
    pub ssl_default_verify_paths: Option<Flag>,
    pub ssl_cipher_list: Option<String>,
    pub ssl_protocol_version: Option<Int<0, 255>>,
    pub ssl_short_trust: Option<Flag>,
}

impl TopKeys {
    fn into_keys(self) -> TlsKeys {
        TlsKeys {
            certificate: self.ssl_certificate,
            certificate_chain: self.ssl_certificate_chain,
            verify_peer: self.ssl_verify_peer,
            ca_path: self.ssl_ca_path,
            ca_file: self.ssl_ca_file,
            verify_depth: self.ssl_verify_depth,
            default_verify_paths: self.ssl_default_verify_paths,
            cipher_list: self.ssl_cipher_list,
            protocol_version: self.ssl_protocol_version,
            short_trust: self.ssl_short_trust,
        }
    }
}

/// One setting given either way: the value and the key it was written under. The same value
/// under both names is fine (a config moving to the documented keys); two different values
/// are an error naming both, never a silent choice.
fn pick<T: Clone + PartialEq>(
    r: &Reader,
    name: &str,
    top: &Option<T>,
    block: &Option<T>,
) -> Result<Option<Keyed<T>>, ConfigError> {
    let top_key = format!("ssl_{}", name.replace('-', "_"));
    let block_key = format!("tls.{name}");
    Ok(match (top, block) {
        (Some(a), Some(b)) if a != b => {
            return Err(r.err(
                &block_key,
                format!("contradicts \"{top_key}\"; give the setting once"),
            ))
        }
        (Some(a), _) => Some(Keyed {
            value: a.clone(),
            key: top_key,
        }),
        (None, Some(b)) => Some(Keyed {
            value: b.clone(),
            key: block_key,
        }),
        (None, None) => None,
    })
}

/// Reads the TLS keys. `used`: some listener has a TLS address; without one the keys are
/// checked for type only, `None` is returned and a certificate that was set gets a warning
/// (someone expecting TLS should hear that nothing uses it).
pub fn read(
    r: &mut Reader,
    top: TopKeys,
    block: Option<TlsKeys>,
    base_dir: &Path,
    used: bool,
) -> Result<Option<TlsSettings>, ConfigError> {
    let top = top.into_keys();
    let block = block.unwrap_or_default();
    let path = |k: Option<Keyed<String>>| {
        k.filter(|k| !k.value.trim().is_empty()).map(|k| Keyed {
            value: base_dir.join(k.value.trim()),
            key: k.key,
        })
    };
    let certificate = path(pick(
        r,
        "certificate",
        &top.certificate,
        &block.certificate,
    )?);
    let certificate_chain = path(pick(
        r,
        "certificate-chain",
        &top.certificate_chain,
        &block.certificate_chain,
    )?);
    let ca_file = path(pick(r, "ca-file", &top.ca_file, &block.ca_file)?);
    let ca_path = path(pick(r, "ca-path", &top.ca_path, &block.ca_path)?);
    let verify_peer = pick(r, "verify-peer", &top.verify_peer, &block.verify_peer)?;
    let depth = pick(r, "verify-depth", &top.verify_depth, &block.verify_depth)?;
    let default_paths = pick(
        r,
        "default-verify-paths",
        &top.default_verify_paths,
        &block.default_verify_paths,
    )?;
    let ciphers = pick(r, "cipher-list", &top.cipher_list, &block.cipher_list)?;
    let version = pick(
        r,
        "protocol-version",
        &top.protocol_version,
        &block.protocol_version,
    )?;
    let short_trust = pick(r, "short-trust", &top.short_trust, &block.short_trust)?;
    if !used {
        // The default written out (the shipped sample does) says nothing.
        if let Some(c) = certificate
            .as_ref()
            .filter(|c| c.value != Path::new(DEFAULT_CERTIFICATE))
        {
            r.warn(format_args!(
                "key \"{}\" has no effect: no listener uses TLS (give interface or \
                 tcpip-interface a wss:// or stcp:// address)",
                c.key
            ));
        }
        return Ok(None);
    }

    let min_version = match version.map(|v| (v.value.0, v.key)) {
        None => min_version(DEFAULT_PROTOCOL_VERSION),
        Some((v @ 0..=3, key)) => {
            r.warn(format_args!(
                "key \"{key}\": {v} allows protocols older than TLS 1.2, which rustls does not \
                 have; TLS 1.2 is the minimum"
            ));
            MinVersion::Tls12
        }
        Some((v, _)) => min_version(v),
    };
    let verify_peer_on = verify_peer.as_ref().is_some_and(|f| f.value.0);
    if verify_peer_on && ca_file.is_none() && ca_path.is_none() {
        let key = verify_peer.map(|k| k.key).unwrap_or_default();
        return Err(r.err(
            &key,
            "needs ssl_ca_file or ssl_ca_path: client certificates are checked against those \
             CAs only",
        ));
    }
    if verify_peer_on && default_paths.as_ref().is_none_or(|f| f.value.0) {
        let key = default_paths.map_or("ssl_default_verify_paths".into(), |k| k.key);
        r.warn(format_args!(
            "key \"{key}\" (default true) accepted but not used: client certificates are \
             checked against ssl_ca_file/ssl_ca_path only, never the system's public CAs; set \
             it to false to silence this"
        ));
    }
    if !verify_peer_on {
        for k in [&ca_file, &ca_path].into_iter().flatten() {
            r.warn(format_args!(
                "key \"{}\" has no effect while ssl_verify_peer is false (client certificates \
                 are not asked for)",
                k.key
            ));
        }
    }
    let cipher_suites = match ciphers {
        None => None,
        Some(k) => cipher_suites(r, &k),
    };
    Ok(Some(TlsSettings {
        origin: r.origin.file.clone(),
        certificate: certificate.unwrap_or_else(|| Keyed {
            value: PathBuf::from(DEFAULT_CERTIFICATE),
            key: "ssl_certificate".into(),
        }),
        certificate_chain,
        verify_peer: verify_peer_on,
        ca_file,
        ca_path,
        verify_depth: depth.map_or(DEFAULT_VERIFY_DEPTH, |d| d.value.0 as usize),
        min_version,
        cipher_suites,
        short_trust: short_trust.is_some_and(|f| f.value.0),
    }))
}

fn min_version(v: u64) -> MinVersion {
    if v <= 4 {
        MinVersion::Tls12
    } else {
        MinVersion::Tls13
    }
}

/// OpenSSL cipher names (and IANA names) of the suites rustls has, with the rustls name of
/// each. Everything else rustls lacks on purpose: no RSA key exchange, no CBC, no 3DES.
pub const CIPHER_NAMES: [(&str, &str); 9] = [
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// The rustls suites an OpenSSL cipher list names, in its order. Entries are separated by
/// colons, commas or spaces; OpenSSL's operators (`!`, `-`, `+`, `@`) and group words (`ALL`,
/// `HIGH`, `AES128`) have nothing to select among rustls's few suites and count as names it
/// lacks. One warning says what was left out; when nothing is left, rustls's defaults are used
/// (the seed's default list, `DES-CBC3-SHA:AES128-SHA:AES128-GCM-SHA256`, is such a list).
fn cipher_suites(r: &mut Reader, list: &Keyed<String>) -> Option<Vec<String>> {
    let mut chosen = Vec::new();
    let mut missing = Vec::new();
    for name in list
        .value
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let found = CIPHER_NAMES.iter().find(|(openssl, iana)| {
            let iana_12 = iana.replace("TLS13_", "TLS_");
            [*openssl, *iana, iana_12.as_str()]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
        });
        match found {
            Some((_, rustls)) if !chosen.iter().any(|c| c == rustls) => {
                chosen.push(rustls.to_string())
            }
            Some(_) => {}
            None => missing.push(name),
        }
    }
    let key = &list.key;
    if chosen.is_empty() {
        r.warn(format_args!(
            "key \"{key}\": none of {:?} is a cipher rustls has (TLS 1.2/1.3 ECDHE with AES-GCM \
             or ChaCha20-Poly1305 only); using rustls's defaults",
            list.value
        ));
        return None;
    }
    if !missing.is_empty() {
        r.warn(format_args!(
            "key \"{key}\": {} not available in rustls, left out",
            missing.join(", ")
        ));
    }
    Some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_json(
        top: serde_json::Value,
        block: Option<serde_json::Value>,
        used: bool,
    ) -> (Result<Option<TlsSettings>, ConfigError>, Vec<String>) {
        let mut r = Reader::new("<inline>", "");
        let top: TopKeys = serde_json::from_value(top).unwrap();
        let block = block.map(|b| serde_json::from_value(b).unwrap());
        let got = read(&mut r, top, block, Path::new("/etc/vscp"), used);
        (got, r.warnings)
    }

    #[test]
    fn defaults_are_the_seeds() {
        let (s, w) = read_json(json!({}), None, true);
        let s = s.unwrap().unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.certificate.value, PathBuf::from(DEFAULT_CERTIFICATE));
        assert_eq!(s.certificate.key, "ssl_certificate");
        assert_eq!(s.verify_depth, 9);
        assert_eq!(s.min_version, MinVersion::Tls12);
        assert!(!s.verify_peer && !s.short_trust);
        assert_eq!(s.cipher_suites, None);
        let (s, _) = read_json(json!({}), None, false);
        assert_eq!(s.unwrap(), None);
    }

    #[test]
    fn the_seed_sample_block_starts_with_two_warnings() {
        let block = json!({
            "certificate": "", "certificate-chain": "", "verify-peer": false,
            "ca-path": "", "ca-file": "", "verify-depth": 9, "default-verify-paths": true,
            "cipher-list": "DES-CBC3-SHA:AES128-SHA:AES128-GCM-SHA256",
            "protocol-version": 3, "short-trust": false
        });
        let (s, w) = read_json(json!({}), Some(block.clone()), true);
        let s = s.unwrap().unwrap();
        assert_eq!(s.min_version, MinVersion::Tls12);
        assert_eq!(s.cipher_suites, None);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("\"tls.protocol-version\": 3"), "{w:?}");
        assert!(w[1].contains("\"tls.cipher-list\""), "{w:?}");
        // Without a TLS listener: nothing to say (the paths are empty).
        let (s, w) = read_json(json!({}), Some(block), false);
        assert_eq!((s.unwrap(), w.len()), (None, 0));
    }

    #[test]
    fn protocol_versions() {
        for (v, want, warns) in [
            (0, MinVersion::Tls12, 1),
            (4, MinVersion::Tls12, 0),
            (5, MinVersion::Tls13, 0),
            (255, MinVersion::Tls13, 0),
        ] {
            let (s, w) = read_json(json!({ "ssl_protocol_version": v }), None, true);
            assert_eq!(s.unwrap().unwrap().min_version, want, "{v}");
            assert_eq!(w.len(), warns, "{v}: {w:?}");
        }
    }

    #[test]
    fn cipher_lists() {
        let suites = |list: &str| {
            let (s, w) = read_json(json!({ "ssl_cipher_list": list }), None, true);
            (s.unwrap().unwrap().cipher_suites, w)
        };
        let (s, w) = suites("ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA, tls_aes_256_gcm_sha384");
        assert_eq!(
            s.unwrap(),
            [
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS13_AES_256_GCM_SHA384"
            ]
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("AES128-SHA not available"), "{w:?}");
        let (s, w) = suites("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
        assert_eq!(
            s.unwrap(),
            ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"]
        );
        assert!(w.is_empty());
        let (s, w) = suites("ALL:!eNULL");
        assert_eq!((s, w.len()), (None, 1));
    }

    #[test]
    fn client_certificates_need_a_ca_of_our_own() {
        let (e, _) = read_json(json!({ "ssl_verify_peer": true }), None, true);
        match e {
            Err(ConfigError::Key { key, .. }) => assert_eq!(key, "ssl_verify_peer"),
            other => panic!("{other:?}"),
        }
        let (s, w) = read_json(
            json!({ "ssl_verify_peer": true, "ssl_ca_file": "ca.pem" }),
            None,
            true,
        );
        let s = s.unwrap().unwrap();
        assert_eq!(s.ca_file.unwrap().value, PathBuf::from("/etc/vscp/ca.pem"));
        assert_eq!(w.len(), 1, "default-verify-paths is not used: {w:?}");
        let (_, w) = read_json(
            json!({ "ssl_verify_peer": true, "ssl_ca_path": "/cas",
                    "ssl_default_verify_paths": false }),
            None,
            true,
        );
        assert!(w.is_empty(), "{w:?}");
        let (_, w) = read_json(json!({ "ssl_ca_file": "ca.pem" }), None, true);
        assert!(
            w[0].contains("no effect while ssl_verify_peer is false"),
            "{w:?}"
        );
    }

    #[test]
    fn both_spellings() {
        let (s, _) = read_json(
            json!({ "ssl_certificate": "a.pem" }),
            Some(json!({ "certificate": "a.pem", "short-trust": 1 })),
            true,
        );
        let s = s.unwrap().unwrap();
        assert_eq!(s.certificate.value, PathBuf::from("/etc/vscp/a.pem"));
        assert!(s.short_trust);
        let (e, _) = read_json(
            json!({ "ssl_certificate": "a.pem" }),
            Some(json!({ "certificate": "b.pem" })),
            true,
        );
        match e {
            Err(ConfigError::Key { key, reason, .. }) => {
                assert_eq!(key, "tls.certificate");
                assert!(reason.contains("ssl_certificate"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let (s, w) = read_json(json!({ "ssl_certificate": "a.pem" }), None, false);
        assert_eq!(s.unwrap(), None);
        assert!(w[0].contains("no listener uses TLS"), "{w:?}");
    }
}
