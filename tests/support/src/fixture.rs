//! The sample credentials and the files a server reads at start-up.

use std::path::{Path, PathBuf};

/// The sample key in deploy/vscp.key (first 16 bytes).
pub const KEY: [u8; 16] = [
    0x2D, 0xBB, 0x07, 0x9A, 0x38, 0x98, 0x5A, 0xF0, 0x0E, 0xBE, 0xEF, 0xE2, 0x2F, 0x9F, 0xFA, 0x0E,
];

/// [`KEY`] as the key file holds it.
pub const KEY_FILE: &str = "2DBB079A38985AF00EBEEFE22F9FFA0E\n";

/// A users.json with one user, admin/secret (PBKDF2).
pub const ADMIN_USERS_JSON: &str = r#"{"users":[
 {"name":"admin","password":"487636FDE3637C7C853AAC9EAF6FA062;357C71CA59F760C08C4125C444A22A91FD1FE1FB0E5628771A572BAF6F61B71F",
  "rights":"admin","full-name":"Admin","note":"test admin"}
]}"#;

/// A directory of its own under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    /// Where it is.
    pub dir: PathBuf,
}

impl ScratchDir {
    /// An empty directory whose name carries `tag`, the process id and the time, so that
    /// tests running at once never share one.
    pub fn new(tag: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!(
            "vscp-it-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        ScratchDir { dir }
    }

    /// A directory holding `vscp.key` ([`KEY_FILE`]) and `users.json` (`users_json`), the
    /// relative paths a test config names.
    pub fn with_key_and_users(tag: &str, users_json: &str) -> ScratchDir {
        let d = ScratchDir::new(tag);
        std::fs::write(d.dir.join("vscp.key"), KEY_FILE).expect("write vscp.key");
        std::fs::write(d.dir.join("users.json"), users_json).expect("write users.json");
        d
    }

    /// `name` inside the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes `base` with the top-level keys of `extra` put over it (a key in both takes
/// `extra`'s value) to `path`, pretty-printed.
pub fn write_config(path: &Path, mut base: serde_json::Value, extra: serde_json::Value) {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    let text = serde_json::to_string_pretty(&base).expect("a JSON value serialises");
    std::fs::write(path, text).expect("write the config file");
}
