//! [`TlsSettings`] → a rustls server configuration: the certificate files read, the client
//! certificate check, the versions and suites. This is the only place the files are read, at
//! start-up (and by `check-config`) and at every reload, so a bad file is reported the same way
//! each time: an error naming the key and the config file.
//!
//! Security choices (docs/config.md "TLS"): rustls with the ring provider, TLS 1.2 and 1.3
//! only, ECDHE with AEAD suites only; client certificates are checked against
//! `ssl_ca_file`/`ssl_ca_path` alone, never a public store, so no public CA can vouch for a
//! device.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use vscp_config::pem;
use vscp_config::ConfigError;

use super::settings::{MinVersion, TlsSettings};

/// A built configuration and what the metrics show of it.
#[derive(Debug)]
pub struct Built {
    pub config: Arc<ServerConfig>,
    /// `notAfter` of the served certificate, seconds since the Unix epoch (`None`: unreadable).
    pub not_after: Option<i64>,
}

/// Reads the files `s` names and builds the server configuration.
pub fn build(s: &TlsSettings) -> Result<Built, ConfigError> {
    let cert = &s.certificate;
    let shown = cert.value.display();
    let pem_text = std::fs::read(&cert.value)
        .map_err(|e| s.err(&cert.key, format!("cannot read {shown}: {e}")))?;
    let mut chain =
        pem::certificates_in(&pem_text).map_err(|e| s.err(&cert.key, format!("{shown}: {e}")))?;
    if chain.is_empty() {
        return Err(s.err(
            &cert.key,
            format!("{shown}: no PEM certificate; the file must hold the private key and the certificate"),
        ));
    }
    let key = pem::private_key_in(&pem_text).map_err(|e| {
        s.err(
            &cert.key,
            format!("{shown}: {e}; the file must hold the private key and the certificate"),
        )
    })?;
    if let Some(more) = &s.certificate_chain {
        let certs = pem::certificates(&more.value).map_err(|e| s.err(&more.key, e))?;
        if certs.is_empty() {
            let shown = more.value.display();
            return Err(s.err(&more.key, format!("{shown}: no PEM certificate")));
        }
        chain.extend(certs);
    }
    let not_after = super::x509::not_after(&chain[0]);

    let provider = Arc::new(provider(s));
    let versions: &[&rustls::SupportedProtocolVersion] = match s.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| s.err("ssl_cipher_list", format!("no usable cipher suite: {e}")))?;
    let builder = if s.verify_peer {
        builder.with_client_cert_verifier(client_verifier(s, provider)?)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| s.err(&cert.key, format!("{shown}: {e}")))?;
    // Plain http/1.1 websocket upgrades only; no ALPN is chosen, as before TLS.
    config.alpn_protocols.clear();
    Ok(Built {
        config: Arc::new(config),
        not_after,
    })
}

/// The ring provider with the suites `ssl_cipher_list` selected: those named for TLS 1.2 and
/// for 1.3, each version keeping all of rustls's suites when the list names none of its own
/// (OpenSSL too sets the two separately).
fn provider(s: &TlsSettings) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if let Some(names) = &s.cipher_suites {
        let named = |suite: &rustls::SupportedCipherSuite| {
            let name = format!("{:?}", suite.suite());
            names.iter().position(|n| *n == name)
        };
        for tls13 in [true, false] {
            let of_version = |suite: &rustls::SupportedCipherSuite| {
                matches!(suite, rustls::SupportedCipherSuite::Tls13(_)) == tls13
            };
            if p.cipher_suites
                .iter()
                .any(|c| of_version(c) && named(c).is_some())
            {
                p.cipher_suites
                    .retain(|c| !of_version(c) || named(c).is_some());
            }
        }
        // The list's order is the server's preference.
        p.cipher_suites
            .sort_by_key(|c| named(c).unwrap_or(usize::MAX));
    }
    p
}

/// The client certificate check: WebPKI against our CAs, then the depth.
fn client_verifier(
    s: &TlsSettings,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, ConfigError> {
    let mut roots = RootCertStore::empty();
    let mut add = |key: &str, certs: Vec<CertificateDer<'static>>, what: &str| {
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(s.err(key, format!("{what}: no usable PEM CA certificate")));
        }
        Ok(())
    };
    if let Some(f) = &s.ca_file {
        let certs = pem::certificates(&f.value).map_err(|e| s.err(&f.key, e))?;
        add(&f.key, certs, &f.value.display().to_string())?;
    }
    if let Some(d) = &s.ca_path {
        let certs = pem::folder_certificates(&d.value).map_err(|e| s.err(&d.key, e))?;
        add(&d.key, certs, &d.value.display().to_string())?;
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| s.err("ssl_ca_file", format!("client certificate check: {e}")))?;
    Ok(Arc::new(DepthLimited {
        inner,
        depth: s.verify_depth,
    }))
}

/// `ssl_verify_depth`: a client whose chain has more intermediates than this is refused.
/// webpki has no such setting; counting what the client sends is the bound OpenSSL's depth
/// puts on the built chain, since webpki builds the chain from those certificates only.
#[derive(Debug)]
struct DepthLimited {
    inner: Arc<dyn ClientCertVerifier>,
    depth: usize,
}

impl ClientCertVerifier for DepthLimited {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if intermediates.len() > self.depth {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::settings::Keyed;
    use std::path::{Path, PathBuf};
    use vscp_testkit::tls::Pki;
    use vscp_testkit::ScratchDir;

    pub(crate) fn settings(dir: &Path) -> TlsSettings {
        let keyed = |name: &str, key: &str| Keyed {
            value: dir.join(name),
            key: key.into(),
        };
        TlsSettings {
            origin: "<test>".into(),
            certificate: keyed("server.pem", "ssl_certificate"),
            certificate_chain: None,
            verify_peer: false,
            ca_file: Some(keyed("ca.pem", "ssl_ca_file")),
            ca_path: None,
            verify_depth: 9,
            min_version: MinVersion::Tls12,
            cipher_suites: None,
            short_trust: false,
        }
    }

    fn key_of(r: Result<Built, ConfigError>) -> (String, String) {
        match r {
            Err(ConfigError::Key { key, reason, .. }) => (key, reason),
            other => panic!("expected a key error, got {other:?}"),
        }
    }

    #[test]
    fn builds_with_and_without_client_certificates() {
        let d = ScratchDir::new("tls-build");
        let _pki = Pki::new(&d.dir);
        let s = settings(&d.dir);
        let built = build(&s).unwrap();
        assert!(built.not_after.is_some_and(|t| t > 2_000_000_000));
        for (verify_peer, min_version) in [(true, MinVersion::Tls12), (true, MinVersion::Tls13)] {
            let s = TlsSettings {
                verify_peer,
                min_version,
                ..settings(&d.dir)
            };
            build(&s).unwrap();
        }
        // The CA folder form.
        let s = TlsSettings {
            verify_peer: true,
            ca_file: None,
            ca_path: Some(Keyed {
                value: d.dir.clone(),
                key: "ssl_ca_path".into(),
            }),
            ..settings(&d.dir)
        };
        build(&s).unwrap();
        // A chain file: its certificates follow the server's.
        let s = TlsSettings {
            certificate_chain: Some(Keyed {
                value: d.dir.join("ca.pem"),
                key: "ssl_certificate_chain".into(),
            }),
            ..settings(&d.dir)
        };
        build(&s).unwrap();
    }

    #[test]
    fn file_problems_name_their_key() {
        let d = ScratchDir::new("tls-build-bad");
        let _pki = Pki::new(&d.dir);
        let with_cert = |name: &str| TlsSettings {
            certificate: Keyed {
                value: PathBuf::from(name),
                key: "tls.certificate".into(),
            },
            ..settings(&d.dir)
        };
        let (key, reason) = key_of(build(&with_cert("/nonexistent.pem")));
        assert_eq!(key, "tls.certificate");
        assert!(reason.contains("cannot read /nonexistent.pem"), "{reason}");
        // A certificate without its key, a key without its certificate.
        let (_, reason) = key_of(build(&with_cert(d.dir.join("ca.pem").to_str().unwrap())));
        assert!(reason.contains("no PEM private key"), "{reason}");
        let (_, reason) = key_of(build(&with_cert(
            d.dir.join("client.key").to_str().unwrap(),
        )));
        assert!(reason.contains("no PEM certificate"), "{reason}");
        // A key that is not the certificate's.
        let mixed = d.dir.join("mixed.pem");
        let cert = std::fs::read_to_string(d.dir.join("client.pem")).unwrap();
        let key = std::fs::read_to_string(d.dir.join("stranger.key")).unwrap();
        std::fs::write(&mixed, format!("{key}{cert}")).unwrap();
        let (key, _) = key_of(build(&with_cert(mixed.to_str().unwrap())));
        assert_eq!(key, "tls.certificate");
        // Client certificates against a file without a CA.
        let s = TlsSettings {
            verify_peer: true,
            ca_file: Some(Keyed {
                value: d.dir.join("client.key"),
                key: "ssl_ca_file".into(),
            }),
            ..settings(&d.dir)
        };
        let (key, reason) = key_of(build(&s));
        assert_eq!(key, "ssl_ca_file");
        assert!(reason.contains("no usable PEM CA certificate"), "{reason}");
        let s = TlsSettings {
            certificate_chain: Some(Keyed {
                value: d.dir.join("client.key"),
                key: "ssl_certificate_chain".into(),
            }),
            ..settings(&d.dir)
        };
        assert_eq!(key_of(build(&s)).0, "ssl_certificate_chain");
    }

    /// Runs a handshake between a server with `server` and a client with `client` in memory
    /// (both sides are sans-IO); the first error either side reports.
    fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<rustls::ClientConfig>,
    ) -> Result<(), rustls::Error> {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = rustls::ClientConnection::new(client, name)?;
        let mut s = rustls::ServerConnection::new(server)?;
        for _ in 0..20 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                s.read_tls(&mut &buf[..]).unwrap();
                s.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                c.read_tls(&mut &buf[..]).unwrap();
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn client_chains_are_checked_against_our_ca_and_the_depth() {
        let d = ScratchDir::new("tls-depth");
        let pki = Pki::new(&d.dir);
        // A device certificate signed by an intermediate CA under ours: the client sends both.
        let inter = pki.ca.intermediate("intermediate");
        let (_, key_pem, leaf) = inter.issue(&["device-3"]);
        let chain = vec![
            CertificateDer::from(leaf),
            CertificateDer::from(inter.der()),
        ];
        let client = |chain: Option<Vec<CertificateDer<'static>>>| {
            let mut roots = RootCertStore::empty();
            for c in pem::certificates(&d.dir.join("ca.pem")).unwrap() {
                roots.add(c).unwrap();
            }
            let b = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
            Arc::new(match chain {
                None => b.with_no_client_auth(),
                Some(chain) => {
                    let key = pem::private_key_in(key_pem.as_bytes()).unwrap();
                    b.with_client_auth_cert(chain, key).unwrap()
                }
            })
        };
        let server = |depth: usize| {
            let s = TlsSettings {
                verify_peer: true,
                verify_depth: depth,
                ..settings(&d.dir)
            };
            build(&s).unwrap().config
        };
        assert!(handshake(server(1), client(Some(chain.clone()))).is_ok());
        match handshake(server(0), client(Some(chain))) {
            Err(rustls::Error::InvalidCertificate(_)) => {}
            other => panic!("depth 0 let an intermediate through: {other:?}"),
        }
        assert!(matches!(
            handshake(server(9), client(None)),
            Err(rustls::Error::NoCertificatesPresented)
        ));
    }

    #[test]
    fn a_cipher_list_restricts_its_own_version_only() {
        let d = ScratchDir::new("tls-ciphers");
        let names = |p: &CryptoProvider| -> Vec<String> {
            p.cipher_suites
                .iter()
                .map(|c| format!("{:?}", c.suite()))
                .collect()
        };
        let all = names(&provider(&settings(&d.dir)));
        assert_eq!(all.len(), 9, "{all:?}");
        let s = TlsSettings {
            cipher_suites: Some(vec![
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256".into(),
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
            ]),
            ..settings(&d.dir)
        };
        let got = names(&provider(&s));
        // The named TLS 1.2 suites first, in the list's order; every TLS 1.3 suite kept.
        assert_eq!(
            got[..2],
            [
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got.iter().filter(|n| n.starts_with("TLS13_")).count(), 3);
        let s = TlsSettings {
            cipher_suites: Some(vec!["TLS13_AES_256_GCM_SHA384".into()]),
            ..settings(&d.dir)
        };
        let got = names(&provider(&s));
        assert_eq!(got.len(), 7, "{got:?}");
        assert_eq!(got[0], "TLS13_AES_256_GCM_SHA384");
    }
}
