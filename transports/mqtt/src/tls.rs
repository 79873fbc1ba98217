//! TLS to the broker: turns a [`TlsConfig`] into a rustls client configuration.
//!
//! This is the only place that reads the certificate and key files, and it runs when the bridge
//! is created (start-up), so a missing or unreadable file stops start-up with the key named
//! instead of failing every reconnect later. The connection itself is made in `runtime`.
//!
//! Security choices (docs/mqtt.md "TLS"):
//! - rustls with the ring provider: TLS 1.2 and 1.3 only, modern AEAD suites only;
//! - trust anchors are `cafile`/`capath` when given, else the OS store — never both, so a
//!   private CA cannot be bypassed by a public one;
//! - `no-hostname-checking` keeps the full chain check and skips only the name match;
//! - `cert-reqs: 0` accepts any certificate (the handshake signature is still checked, which
//!   proves nothing about who the peer is). Config reading already warned about both.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::config::{TlsConfig, TlsVerify, TlsVersion};
use crate::error::ConfigError;

/// What the runtime needs for a TLS connection: the rustls configuration and the name the
/// broker's certificate must carry.
#[derive(Clone, Debug)]
pub struct TlsSetup {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

/// An error naming the file of the `tls` block and `key` (a full dotted key).
fn err(tls: &TlsConfig, key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        file: tls.origin.file.clone(),
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// Builds the client configuration; `host` is the broker host (name or address) the
/// certificate is checked against. `host_key` names the `host` key for errors.
pub fn setup(tls: &TlsConfig, host: &str, host_key: &str) -> Result<TlsSetup, ConfigError> {
    let key = |k: &str| tls.origin.key(k);
    let server_name = ServerName::try_from(host.to_owned()).map_err(|e| {
        err(
            tls,
            host_key,
            format!("{host:?} cannot be checked against a TLS certificate: {e}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| err(tls, &key("version"), e.to_string()))?;

    let builder = match tls.verify {
        TlsVerify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RelaxedVerifier {
                chain: None,
                provider,
            })),
        TlsVerify::Full | TlsVerify::ChainOnly => {
            let roots = Arc::new(trust_anchors(tls)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| err(tls, &tls.origin.prefix, format!("trust anchors: {e}")))?;
            if tls.verify == TlsVerify::Full {
                builder.with_webpki_verifier(webpki)
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(RelaxedVerifier {
                        chain: Some(webpki),
                        provider,
                    }))
            }
        }
    };

    let config = match &tls.client_auth {
        None => builder.with_no_client_auth(),
        Some((certfile, keyfile)) => {
            let chain = certificates(certfile).map_err(|r| err(tls, &key("certfile"), r))?;
            if chain.is_empty() {
                return Err(err(
                    tls,
                    &key("certfile"),
                    format!("{}: no PEM certificate in the file", certfile.display()),
                ));
            }
            let private = private_key(keyfile).map_err(|r| err(tls, &key("keyfile"), r))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| err(tls, &key("keyfile"), format!("{}: {e}", keyfile.display())))?
        }
    };
    Ok(TlsSetup {
        config: Arc::new(config),
        server_name,
    })
}

/// `cafile` and `capath` when given, otherwise the OS store.
fn trust_anchors(tls: &TlsConfig) -> Result<RootCertStore, ConfigError> {
    let key = |k: &str| tls.origin.key(k);
    let mut roots = RootCertStore::empty();
    if let Some(file) = &tls.ca_file {
        let certs = certificates(file).map_err(|r| err(tls, &key("cafile"), r))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(err(
                tls,
                &key("cafile"),
                format!("{}: no usable PEM certificate in the file", file.display()),
            ));
        }
    }
    if let Some(dir) = &tls.ca_path {
        // An OpenSSL CA directory also holds hash links and other files; whatever is not a
        // readable PEM certificate is skipped.
        let certs =
            vscp_config::pem::folder_certificates(dir).map_err(|r| err(tls, &key("capath"), r))?;
        let added = roots.add_parsable_certificates(certs).0;
        if added == 0 {
            return Err(err(
                tls,
                &key("capath"),
                format!("{}: no PEM certificate in the directory", dir.display()),
            ));
        }
    }
    if tls.ca_file.is_none() && tls.ca_path.is_none() {
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            return Err(err(
                tls,
                &key("cafile"),
                "no tls.cafile/capath given and no trust anchors found in the OS store",
            ));
        }
    }
    Ok(roots)
}

use vscp_config::pem::{certificates, private_key};

/// The two relaxed server checks. The handshake signatures are verified in both, with the
/// presented key and the provider's algorithms (exactly what WebPKI's own verifier does), which
/// keeps the TLS state machine honest.
#[derive(Debug)]
struct RelaxedVerifier {
    /// `Some`: `no-hostname-checking`, the full WebPKI check except that a certificate issued
    /// for another name is accepted. `None`: `cert-reqs: 0`, any certificate is accepted,
    /// which authenticates no one.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

/// rustls's TLS 1.2 and 1.3 signature checks take the same arguments.
type VerifySignature = fn(
    &[u8],
    &CertificateDer<'_>,
    &DigitallySignedStruct,
    &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error>;

impl RelaxedVerifier {
    /// The handshake signature is always checked, whatever `verify` says of the certificate.
    fn verify_signature(
        &self,
        verify: VerifySignature,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
}

impl ServerCertVerifier for RelaxedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the chain (and validity, usage) before the name, so reaching the
            // name error means everything else passed.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(rustls::crypto::verify_tls12_signature, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(rustls::crypto::verify_tls13_signature, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("vscp-mqtt-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    /// A CA (ca.pem) and a client certificate and key signed by it (client.pem, client.key).
    fn pki(d: &Path) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["client".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(d.join("client.pem"), cert.pem()).unwrap();
        std::fs::write(d.join("client.key"), key.serialize_pem()).unwrap();
    }

    fn cfg(d: &Path) -> TlsConfig {
        TlsConfig {
            origin: vscp_config::Origin {
                file: "<test>".into(),
                prefix: "mqtt.tls".into(),
            },
            ca_file: Some(d.join("ca.pem")),
            ca_path: None,
            client_auth: None,
            verify: TlsVerify::Full,
            min_version: TlsVersion::Tls12,
        }
    }

    fn key_of(r: Result<TlsSetup, ConfigError>) -> String {
        match r {
            Err(e) => e.key().unwrap_or_default().to_owned(),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn builds_every_verification_mode_and_client_auth() {
        let d = dir("ok");
        pki(&d.0);
        for verify in [TlsVerify::Full, TlsVerify::ChainOnly, TlsVerify::None] {
            for min_version in [TlsVersion::Tls12, TlsVersion::Tls13] {
                let t = TlsConfig {
                    verify,
                    min_version,
                    client_auth: Some((d.0.join("client.pem"), d.0.join("client.key"))),
                    ..cfg(&d.0)
                };
                let s = setup(&t, "127.0.0.1", "mqtt.host").unwrap();
                assert!(matches!(s.server_name, ServerName::IpAddress(_)));
            }
        }
        let s = setup(&cfg(&d.0), "broker.example", "mqtt.host").unwrap();
        assert!(matches!(s.server_name, ServerName::DnsName(_)));
        // capath: the directory's PEM files (the key and client files are skipped or added).
        let t = TlsConfig {
            ca_file: None,
            ca_path: Some(d.0.clone()),
            ..cfg(&d.0)
        };
        assert!(setup(&t, "localhost", "mqtt.host").is_ok());
    }

    #[test]
    fn file_errors_name_the_key() {
        let d = dir("bad");
        pki(&d.0);
        let missing = TlsConfig {
            ca_file: Some(d.0.join("nope.pem")),
            ..cfg(&d.0)
        };
        assert_eq!(key_of(setup(&missing, "h", "mqtt.host")), "mqtt.tls.cafile");
        std::fs::write(d.0.join("empty.pem"), "").unwrap();
        let empty = TlsConfig {
            ca_file: Some(d.0.join("empty.pem")),
            ..cfg(&d.0)
        };
        assert_eq!(key_of(setup(&empty, "h", "mqtt.host")), "mqtt.tls.cafile");
        let empty_dir = dir("emptydir");
        let no_certs = TlsConfig {
            ca_file: None,
            ca_path: Some(empty_dir.0.clone()),
            ..cfg(&d.0)
        };
        assert_eq!(
            key_of(setup(&no_certs, "h", "mqtt.host")),
            "mqtt.tls.capath"
        );

        std::fs::write(
            d.0.join("enc.key"),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let encrypted = TlsConfig {
            client_auth: Some((d.0.join("client.pem"), d.0.join("enc.key"))),
            ..cfg(&d.0)
        };
        match setup(&encrypted, "h", "mqtt.host") {
            Err(e) => {
                assert_eq!(e.key(), Some("mqtt.tls.keyfile"));
                assert!(e.to_string().contains("encrypted"), "{e}");
            }
            Ok(_) => panic!("an encrypted key must be refused"),
        }
        let no_key = TlsConfig {
            client_auth: Some((d.0.join("client.pem"), d.0.join("ca.pem"))),
            ..cfg(&d.0)
        };
        assert_eq!(key_of(setup(&no_key, "h", "mqtt.host")), "mqtt.tls.keyfile");
        let no_cert = TlsConfig {
            client_auth: Some((d.0.join("client.key"), d.0.join("client.key"))),
            ..cfg(&d.0)
        };
        assert_eq!(
            key_of(setup(&no_cert, "h", "mqtt.host")),
            "mqtt.tls.certfile"
        );
        assert_eq!(
            key_of(setup(&cfg(&d.0), "bad name!", "mqtt.host")),
            "mqtt.host"
        );
    }
}
