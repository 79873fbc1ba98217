//! Reading the PEM files that config keys name: certificates, CA folders and private keys.
//! Shared by the MQTT bridge's TLS client (`mqtt.tls`) and the server's TLS listeners
//! (`ssl_*`), so both read a file the same way and report its problems in the same words.
//! Errors are plain text naming the file; the caller puts the key in front.

use std::path::Path;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every certificate in a PEM file, in file order (other PEM sections, such as a key in the
/// same file, are skipped).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    certificates_in(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every certificate in PEM text.
pub fn certificates_in(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1). Encrypted keys are refused
/// by name: rustls-pemfile would silently skip them and report "no key".
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    private_key_in(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

/// The first private key in PEM text; see [`private_key`].
pub fn private_key_in(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(
            "the key is encrypted, which is not supported; decrypt it (openssl pkey -in key.pem -out plain.pem)"
                .into(),
        );
    }
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no PEM private key in the file".into())
}

/// The certificates of an OpenSSL-style CA folder (`c_rehash` links, one certificate per
/// file): every readable PEM certificate in its files. Whatever is not one (the hash links to
/// files already read, keys, notes) is skipped; an unreadable folder is an error.
pub fn folder_certificates(dir: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    // A stable order, so two reads of one folder give one result.
    paths.sort();
    let mut all = Vec::new();
    for path in paths.iter().filter(|p| p.is_file()) {
        if let Ok(certs) = certificates(path) {
            all.extend(certs);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";

    #[test]
    fn certificates_and_keys_from_text() {
        let both =
            format!("{CERT}-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n");
        assert_eq!(certificates_in(both.as_bytes()).unwrap().len(), 1);
        assert!(private_key_in(both.as_bytes()).is_ok());
        assert_eq!(
            private_key_in(CERT.as_bytes()).unwrap_err(),
            "no PEM private key in the file"
        );
        let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAMCAQA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(private_key_in(enc.as_bytes())
            .unwrap_err()
            .contains("encrypted"));
        assert!(certificates_in(b"").unwrap().is_empty());
    }

    #[test]
    fn missing_files_and_folders_name_the_path() {
        let e = certificates(Path::new("/nonexistent/x.pem")).unwrap_err();
        assert!(e.starts_with("/nonexistent/x.pem: "), "{e}");
        let e = folder_certificates(Path::new("/nonexistent/dir")).unwrap_err();
        assert!(e.starts_with("/nonexistent/dir: "), "{e}");
    }
}
