//! TLS for the tests: certificates made with rcgen at test time (nothing secret is committed),
//! a rustls client stream, and the list of addresses that speak TLS, so that the same test
//! code connects with or without it.
//!
//! `VSCP_TEST_TLS=1` (see [`tls_mode`]) makes the root crate's fixture start its servers with
//! `wss://` and `stcp://` listeners; [`crate::connect`] and the tcp/ip client then look up the
//! address they are given in [`register`]'s list and speak TLS to those.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Whether this test run asks for TLS listeners (`VSCP_TEST_TLS` set and not `0`).
pub fn tls_mode() -> bool {
    std::env::var("VSCP_TEST_TLS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A certificate authority that can sign more certificates later.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca")
    }
}

impl Ca {
    /// A fresh self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        let cert = p.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    /// An intermediate CA named `name`, signed by this one.
    pub fn intermediate(&self, name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        let cert = p
            .signed_by(&key, &self.cert, &self.key)
            .expect("intermediate certificate");
        Ca { cert, key }
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses) signed by this CA: (certificate
    /// PEM, key PEM, certificate DER).
    pub fn issue(&self, names: &[&str]) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed certificate");
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// A test PKI in a folder: `ca.pem`, the server's `server.pem` (key and certificate for
/// localhost and 127.0.0.1, as `ssl_certificate` wants them), a client certificate the CA
/// signed (`client.pem`, `client.key`), and a stranger's (`stranger.pem`, `stranger.key`,
/// signed by another CA).
#[derive(Debug)]
pub struct Pki {
    /// The folder the files are in.
    pub dir: PathBuf,
    /// The CA that signed the server's and the client's certificates.
    pub ca: Ca,
}

impl Pki {
    /// Writes the files into `dir` (which must exist).
    pub fn new(dir: &Path) -> Pki {
        let ca = Ca::new("vscp test CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca,
        };
        pki.reissue_server();
        let (cert, key, _) = pki.ca.issue(&["device-1"]);
        std::fs::write(dir.join("client.pem"), cert).expect("write client.pem");
        std::fs::write(dir.join("client.key"), key).expect("write client.key");
        let other = Ca::new("someone else's CA");
        let (cert, key, _) = other.issue(&["device-2"]);
        std::fs::write(dir.join("stranger.pem"), cert).expect("write stranger.pem");
        std::fs::write(dir.join("stranger.key"), key).expect("write stranger.key");
        pki
    }

    /// The path of `name` in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A new server certificate, put in place of `server.pem` the way the seed recommends
    /// (written beside it, then renamed over it); returns its DER, to compare with what a
    /// server presents.
    pub fn reissue_server(&self) -> Vec<u8> {
        let (cert, key, der) = self.ca.issue(&["localhost", "127.0.0.1"]);
        let tmp = self.dir.join("server.pem.new");
        std::fs::write(&tmp, format!("{key}{cert}")).expect("write server.pem.new");
        std::fs::rename(&tmp, self.dir.join("server.pem")).expect("rename server.pem");
        der
    }

    /// A client configuration that trusts this CA, with the client certificate `name`
    /// (`"client"`, `"stranger"`) or none.
    pub fn client_config(&self, name: Option<&str>) -> Arc<ClientConfig> {
        Pki::client_config_for(&self.path("ca.pem"), name.map(|n| self.path(n)).as_deref())
    }

    /// A client configuration that trusts the CA in `ca_pem`, with the client certificate
    /// `<client>.pem` and key `<client>.key` (`client` is a path without the extension).
    pub fn client_config_for(ca_pem: &Path, client: Option<&Path>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        let ca = std::fs::read(ca_pem).expect("read ca.pem");
        for c in rustls_pemfile::certs(&mut &ca[..]) {
            roots.add(c.expect("CA PEM")).expect("CA certificate");
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let pem = std::fs::read(name.with_extension("pem")).expect("client cert");
                let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
                    .collect::<Result<_, _>>()
                    .expect("client cert PEM");
                let key = std::fs::read(name.with_extension("key")).expect("client key");
                let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key[..])
                    .expect("key PEM")
                    .expect("a key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
        };
        Arc::new(config)
    }
}

/// Addresses that speak TLS, with the client configuration to use for each.
static TLS_ADDRS: Mutex<Vec<(SocketAddr, Arc<ClientConfig>)>> = Mutex::new(Vec::new());

/// Says that `addr` speaks TLS: [`Stream::connect`] (and so every client of this crate) uses
/// `config` there from now on.
pub fn register(addr: SocketAddr, config: Arc<ClientConfig>) {
    let mut all = TLS_ADDRS.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|(a, _)| *a != addr);
    all.push((addr, config));
}

/// The client configuration registered for `addr`, if it speaks TLS.
pub fn registered(addr: SocketAddr) -> Option<Arc<ClientConfig>> {
    let all = TLS_ADDRS.lock().unwrap_or_else(|p| p.into_inner());
    all.iter().find(|(a, _)| *a == addr).map(|(_, c)| c.clone())
}

/// A client's byte stream: the socket, or TLS over it.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (rustls).
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// `tcp` as is, or TLS over it when `addr` is registered as a TLS address.
    pub fn over(tcp: TcpStream, addr: SocketAddr) -> Stream {
        match registered(addr) {
            None => Stream::Plain(tcp),
            Some(config) => Stream::tls(tcp, config),
        }
    }

    /// TLS over `tcp` with `config`; the handshake happens with the first read or write. The
    /// server's certificate must be valid for 127.0.0.1.
    pub fn tls(tcp: TcpStream, config: Arc<ClientConfig>) -> Stream {
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let conn = ClientConnection::new(config, name).expect("TLS client");
        Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))
    }

    /// The socket underneath (timeouts, socket options).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }

    /// Completes the TLS handshake now (a no-op for plain TCP); the error a refused
    /// handshake gives.
    pub fn handshake(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(s) => {
                // With TLS 1.3 a refusal of the client's certificate comes after this, with
                // the first read.
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock)?;
                }
                Ok(())
            }
        }
    }

    /// The certificate the server presented (DER), for TLS.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(s) => s
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec()),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.tcp().as_fd()
    }
}
