//! Console logging from the config's `logging` block (the seed's keys). `RUST_LOG`, when set,
//! overrides the configured level.

use crate::config::LoggingConfig;
use tracing_subscriber::EnvFilter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up logging: {0}")]
pub struct LoggingError(String);

/// Installs the global subscriber. `debug` (the config's `debug` flag) lowers the console
/// level to at least `debug`.
pub fn init(cfg: &LoggingConfig, debug: bool) -> Result<(), LoggingError> {
    if !cfg.console_enable {
        return Ok(());
    }
    let mut level = directive(&cfg.console_level);
    if debug && (level == "info" || level == "warn" || level == "error" || level == "off") {
        level = "debug";
    }
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v).map_err(|e| LoggingError(e.to_string()))?,
        _ => EnvFilter::new(level),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| LoggingError(e.to_string()))
}

/// Maps the seed's level names (spdlog's) onto tracing's.
fn directive(level: &str) -> &'static str {
    match level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "warn" | "warning" => "warn",
        "err" | "error" | "critical" => "error",
        "off" => "off",
        _ => "info",
    }
}
