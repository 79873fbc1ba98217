//! `vscp_config::keys`: the keys of config structs read through serde, and the suggestions for
//! misspelt ones.

use serde::Deserialize;
use vscp_config::keys::{closest, known_keys};
use vscp_config::Block;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
struct Inner {
    file_log_level: String,
    console_pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
struct Top {
    max_clients: u64,
    #[serde(rename = "ssl_verify_peer")]
    verify: bool,
    logging: Block<Inner>,
    tls: Option<Block<Inner>>,
    #[serde(deserialize_with = "vscp_config::flag")]
    flag: bool,
    publish: Vec<Block<Inner>>,
}

#[test]
fn keys_are_read_through_blocks_options_lists_and_custom_readers() {
    let keys = known_keys::<Top>();
    for k in [
        "max-clients",
        "ssl_verify_peer",
        "logging",
        "logging.file-log-level",
        "logging.console-pattern",
        "tls.file-log-level",
        "flag",
        "publish.console-pattern",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
    }
    assert_eq!(keys.len(), 12, "{keys:?}");
}

#[test]
fn suggestions_are_siblings_within_a_third_of_the_letters() {
    let keys = known_keys::<Top>();
    let closest = |k| closest(k, keys.iter().map(String::as_str));
    assert_eq!(closest("max-clientz").as_deref(), Some("max-clients"));
    assert_eq!(
        closest("ssl-verify-peer").as_deref(),
        Some("ssl_verify_peer")
    );
    assert_eq!(
        closest("logging.file-log-levl").as_deref(),
        Some("logging.file-log-level")
    );
    assert_eq!(
        closest("publish[3].console-patern").as_deref(),
        Some("publish[3].console-pattern")
    );
    // A sibling of another block is no suggestion, nor is a word that is merely short.
    assert_eq!(closest("file-log-level"), None);
    assert_eq!(closest("frobnicate"), None);
    assert_eq!(closest("x"), None);
}
