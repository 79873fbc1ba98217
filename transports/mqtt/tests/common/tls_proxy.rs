//! TLS for the end-to-end tests with nothing installed: a throw-away CA and broker certificate
//! (rcgen), and a TLS-terminating proxy (rustls on std threads) in front of the test broker's
//! plain listener. The bridge speaks TLS to the proxy exactly as it would to a TLS broker.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and a broker certificate for `localhost` and 127.0.0.1, signed by it, as PEM files.
pub struct Pki {
    pub ca_file: PathBuf,
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: Vec<u8>,
}

impl Pki {
    /// Writes `ca.pem` into `dir`; `name` is the CA's common name (two calls make two
    /// unrelated CAs).
    pub fn generate(dir: &Path, name: &str) -> Pki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");

        let key = KeyPair::generate().expect("server key");
        let mut srv =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        srv.distinguished_name
            .push(DnType::CommonName, "test broker");
        let cert = srv
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("server certificate");

        let ca_file = dir.join(format!("{name}.pem"));
        std::fs::write(&ca_file, ca_cert.pem()).expect("write CA");
        Pki {
            ca_file,
            server_chain: vec![cert.der().clone()],
            server_key: key.serialize_der(),
        }
    }

    /// Writes another CA (same name) whose key signed nothing the proxy presents.
    pub fn unrelated_ca(dir: &Path) -> PathBuf {
        Pki::generate(dir, "unrelated-ca").ca_file
    }
}

/// Accepts TLS on `public` and forwards the plaintext to `upstream`, one thread per
/// connection. Stopped (listener and every connection) on drop.
pub struct TlsProxy {
    pub public: SocketAddr,
    running: Arc<AtomicBool>,
    /// Completed handshakes.
    pub handshakes: Arc<AtomicU64>,
    /// Failed handshakes (the client rejected our certificate, or sent garbage).
    pub handshake_failures: Arc<AtomicU64>,
    /// The client address of every accepted connection (checks `bind`).
    pub peers: Arc<Mutex<Vec<SocketAddr>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl TlsProxy {
    pub fn start(pki: &Pki, upstream: SocketAddr) -> TlsProxy {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(pki.server_chain.clone(), key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("tls proxy bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let public = listener.local_addr().expect("addr");
        let running = Arc::new(AtomicBool::new(true));
        let handshakes = Arc::new(AtomicU64::new(0));
        let handshake_failures = Arc::new(AtomicU64::new(0));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let (r, ok, bad, seen) = (
            running.clone(),
            handshakes.clone(),
            handshake_failures.clone(),
            peers.clone(),
        );
        let acceptor = std::thread::spawn(move || {
            while r.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((down, peer)) => {
                        seen.lock().expect("peers").push(peer);
                        let (config, r, ok, bad) =
                            (config.clone(), r.clone(), ok.clone(), bad.clone());
                        std::thread::spawn(move || {
                            let _ = serve(down, upstream, config, &r, &ok, &bad);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TlsProxy {
            public,
            running,
            handshakes,
            handshake_failures,
            peers,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// One connection: a single thread alternates between the two sockets with short read
/// timeouts (rustls's connection is not split across threads), so forwarding costs at most a
/// few milliseconds of latency.
fn serve(
    mut down: TcpStream,
    upstream: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    running: &AtomicBool,
    handshakes: &AtomicU64,
    failures: &AtomicU64,
) -> std::io::Result<()> {
    let mut tls = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let r = pipe(&mut down, upstream, &mut tls, running, handshakes);
    // A client that rejects our certificate may send an alert (an error above) or just close;
    // either way the connection ended before the handshake did.
    if tls.is_handshaking() {
        failures.fetch_add(1, Ordering::SeqCst);
    }
    r
}

fn pipe(
    down: &mut TcpStream,
    upstream: SocketAddr,
    tls: &mut rustls::ServerConnection,
    running: &AtomicBool,
    handshakes: &AtomicU64,
) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream)?;
    let tick = Some(Duration::from_millis(2));
    down.set_nonblocking(false)?;
    down.set_read_timeout(tick)?;
    up.set_read_timeout(tick)?;
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut was_handshaking = true;
    while running.load(Ordering::SeqCst) {
        // Broker side: TLS records in, plaintext to the broker.
        match down.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut slice = &buf[..n];
                while !slice.is_empty() {
                    tls.read_tls(&mut slice)?;
                    if let Err(e) = tls.process_new_packets() {
                        // Tell the client why (alert), then give up on the connection.
                        let _ = tls.write_tls(down);
                        return Err(std::io::Error::other(e));
                    }
                }
                loop {
                    match tls.reader().read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => up.write_all(&buf[..n])?,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
        if was_handshaking && !tls.is_handshaking() {
            was_handshaking = false;
            handshakes.fetch_add(1, Ordering::SeqCst);
        }
        // Broker to client: plaintext in, TLS records out (only once the handshake is done;
        // rustls would buffer it anyway).
        match up.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => tls.writer().write_all(&buf[..n])?,
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
        while tls.wants_write() {
            tls.write_tls(down)?;
        }
    }
    tls.send_close_notify();
    let _ = tls.write_tls(down);
    Ok(())
}
