//! The server's current TLS configuration, shared by every shard, and its reload.
//!
//! Each accepted TLS connection takes the configuration current at that moment (an `Arc`
//! clone under an uncontended read lock, once per connection, never per event) and keeps it
//! for its whole life: a reload changes what *new* connections get and never touches
//! sessions already open.
//!
//! Reloads come from SIGHUP (always) and, with `ssl_short_trust`, from a check every
//! [`WATCH_INTERVAL`] of the files' identity (device, inode, size, modification time): the
//! rename-into-place the seed recommends gives the file a new inode, an in-place rewrite a new
//! time. A reload that fails (a half-written file, a key that does not match) keeps the old
//! configuration, is logged and counted, and is tried again when the files change again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use vscp_config::ConfigError;

use super::build::{build, Built};
use super::settings::TlsSettings;

/// How often `ssl_short_trust` looks at the files: "within seconds" for a new certificate,
/// a handful of stat(2) calls a second on one core.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// No `notAfter` known.
const UNKNOWN: i64 = i64::MIN;

/// The configuration new TLS connections get, and how it is reloaded.
#[derive(Debug)]
pub struct TlsStore {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
    not_after: AtomicI64,
    /// The files' identities at the last load attempt; held while reloading, so a SIGHUP and
    /// the watcher never build at the same time.
    stamps: Mutex<Vec<Stamp>>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

/// What identifies one version of a file: `None` when it cannot be looked at (missing).
type Stamp = (PathBuf, Option<(u64, u64, u64, i64, i64)>);

impl TlsStore {
    /// Builds the first configuration; errors name the key and the file.
    pub fn new(settings: TlsSettings) -> Result<Arc<TlsStore>, ConfigError> {
        let stamps = stamps(&settings);
        let Built { config, not_after } = build(&settings)?;
        Ok(Arc::new(TlsStore {
            settings,
            current: RwLock::new(config),
            not_after: AtomicI64::new(not_after.unwrap_or(UNKNOWN)),
            stamps: Mutex::new(stamps),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }))
    }

    /// The configuration for a connection accepted now.
    pub fn config(&self) -> Arc<ServerConfig> {
        // A panic while holding the lock cannot leave the Arc half-written: take it anyway.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `ssl_short_trust` is on (the files are watched).
    pub fn short_trust(&self) -> bool {
        self.settings.short_trust
    }

    /// Reads the files again and, if they make a configuration, serves it to new connections.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        *stamps = self::stamps(&self.settings);
        self.rebuild()
    }

    /// [`TlsStore::reload`] if any file changed since the last attempt; `None` if none did.
    pub fn reload_if_changed(&self) -> Option<Result<(), ConfigError>> {
        let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        let now = self::stamps(&self.settings);
        if now == *stamps {
            return None;
        }
        *stamps = now;
        Some(self.rebuild())
    }

    fn rebuild(&self) -> Result<(), ConfigError> {
        match build(&self.settings) {
            Ok(Built { config, not_after }) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
                self.not_after
                    .store(not_after.unwrap_or(UNKNOWN), Ordering::Relaxed);
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Seconds until the served certificate expires (negative once it has), at `now_unix`.
    pub fn expiry_seconds(&self, now_unix: i64) -> Option<i64> {
        match self.not_after.load(Ordering::Relaxed) {
            UNKNOWN => None,
            t => Some(t - now_unix),
        }
    }

    /// Reloads that succeeded and that failed.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
        )
    }
}

/// The identities of every file the settings name; a CA folder by each of its entries.
fn stamps(s: &TlsSettings) -> Vec<Stamp> {
    let mut files: Vec<PathBuf> = [
        &Some(s.certificate.clone()),
        &s.certificate_chain,
        &s.ca_file,
    ]
    .into_iter()
    .flatten()
    .map(|k| k.value.clone())
    .collect();
    if let Some(dir) = &s.ca_path {
        files.push(dir.value.clone());
        if let Ok(entries) = std::fs::read_dir(&dir.value) {
            let mut inside: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            inside.sort();
            files.extend(inside);
        }
    }
    files
        .into_iter()
        .map(|p| {
            let id = identity(&p);
            (p, id)
        })
        .collect()
}

fn identity(path: &Path) -> Option<(u64, u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    // Follows symlinks: a certificate managed through a link (certbot's live/) changes when
    // the link's target does.
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::settings::Keyed;
    use vscp_testkit::tls::Pki;
    use vscp_testkit::ScratchDir;

    #[test]
    fn reloads_when_the_files_change_and_keeps_the_old_on_errors() {
        let d = ScratchDir::new("tls-store");
        let pki = Pki::new(&d.dir);
        let settings = TlsSettings {
            origin: "<test>".into(),
            certificate: Keyed {
                value: d.dir.join("server.pem"),
                key: "ssl_certificate".into(),
            },
            certificate_chain: None,
            verify_peer: false,
            ca_file: None,
            ca_path: None,
            verify_depth: 9,
            min_version: super::super::settings::MinVersion::Tls12,
            cipher_suites: None,
            short_trust: true,
        };
        let store = TlsStore::new(settings).unwrap();
        assert!(store.short_trust());
        let first = store.config();
        assert!(store.reload_if_changed().is_none(), "nothing changed");
        assert!(Arc::ptr_eq(&first, &store.config()));
        // Renamed into place: a new inode.
        pki.reissue_server();
        assert!(matches!(store.reload_if_changed(), Some(Ok(()))));
        let second = store.config();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(store.reload_if_changed().is_none());
        // Garbage written in place: the error once, the old configuration kept.
        std::fs::write(d.dir.join("server.pem"), "garbage and more garbage").unwrap();
        assert!(matches!(store.reload_if_changed(), Some(Err(_))));
        assert!(Arc::ptr_eq(&second, &store.config()));
        assert!(store.reload_if_changed().is_none(), "tried once per change");
        assert_eq!(store.reloads(), (1, 1));
        // An explicit reload (SIGHUP) tries even without a change.
        assert!(store.reload().is_err());
        assert_eq!(store.reloads(), (1, 2));
        assert!(store.expiry_seconds(0).is_some_and(|s| s > 0));
    }
}
