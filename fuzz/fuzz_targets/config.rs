//! The config readers: the driver config file (src/config.rs, on vscp-config's serde reader)
//! and the MQTT block (vscp-mqtt), on untrusted text. Every error must name a key or say the
//! text is not JSON; nothing may panic.
//!
//! The reader opens the two files the config names (`key-file`, `path-users`). The fuzzer is
//! not let loose on the file system (it would find /dev/zero): those two keys are pointed at
//! sample files in a scratch folder before the text is read, everything else is as fuzzed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use vscp_mqtt::config::MqttConfig;
use vscp_websocksrv::config::Config;

/// A folder with a key file and a users.json, made once per fuzzing process.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vscp-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        std::fs::write(dir.join("vscp.key"), "2DBB079A38985AF00EBEEFE22F9FFA0E\n")
            .expect("the key file");
        std::fs::write(dir.join("users.json"), r#"{"users":[]}"#).expect("users.json");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = scratch();
    let text = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut map)) => {
            // Only names inside the scratch folder, fuzzed or not (a bad type stays bad).
            for key in ["key-file", "path-users"] {
                if let Some(v @ Value::String(_)) = map.get_mut(key) {
                    *v = Value::String(
                        if key == "key-file" {
                            "vscp.key"
                        } else {
                            "users.json"
                        }
                        .into(),
                    );
                }
            }
            if let Some(mqtt) = map.get("mqtt") {
                match MqttConfig::from_value(mqtt, "<fuzz>", "mqtt") {
                    Ok(_) => {}
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
            Value::Object(map).to_string()
        }
        // Not an object: read as it is (no file is named, so none is opened).
        _ => text.to_string(),
    };
    match Config::from_json_str(&text, dir, "<fuzz>") {
        Ok(_) => {}
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
