//! `vscp-websocksrv`: run the server, or create a password hash for users.json.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tracing::{error, info, warn};
use vscp_websocksrv::config::Config;

#[derive(Parser, Debug)]
#[command(version, about = "VSCP ws1/ws2 websocket server")]
struct Cli {
    /// Driver configuration file (JSON, the vscpl2drv-websocksrv layout). Without it the server
    /// starts on built-in SAMPLE settings: 127.0.0.1:8884, sample users and key.
    #[arg(long, short, conflicts_with = "vscpd_config")]
    config: Option<PathBuf>,
    /// Start from a VSCP daemon configuration instead (vscpd.conf): the `drivers.level2[]`
    /// entry named by --driver supplies path-config, guid and mqtt, as vscpd would.
    #[arg(long, requires = "driver")]
    vscpd_config: Option<PathBuf>,
    /// Name of the level2 driver entry in --vscpd-config (e.g. "websocket-srv").
    #[arg(long)]
    driver: Option<String>,
    /// Number of shards (executors pinned to cores). Default: one per CPU.
    #[arg(long)]
    shards: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the `SALT;HASH` value to put in users.json as the user's password.
    Mkpasswd { user: String, password: String },
    /// Print the sample configuration file.
    PrintDefaultConfig,
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("vscp-websocksrv: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Where the sample key and users live: `./deploy` when run from a checkout, else the
/// checkout the binary was built from.
fn sample_dir() -> PathBuf {
    let here = PathBuf::from("deploy");
    if here.join("users.json").exists() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy"))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Mkpasswd { user, password }) => {
            let salt = vscp_proto::password::random_salt()
                .map_err(|_| anyhow::anyhow!("the OS random number generator failed"))?;
            println!("{}", vscp_proto::password::mkpasswd(&user, &password, salt));
            return Ok(());
        }
        Some(Command::PrintDefaultConfig) => {
            print!("{}", vscp_websocksrv::config::SAMPLE_CONFIG);
            return Ok(());
        }
        None => {}
    }

    let (mut cfg, mut warnings, samples) = match (&cli.config, &cli.vscpd_config) {
        (Some(path), _) => {
            let (cfg, warnings) = Config::load(path)?;
            (cfg, warnings, false)
        }
        (None, Some(path)) => {
            let driver = cli.driver.as_deref().unwrap_or_default();
            let (cfg, warnings) = Config::from_vscpd(path, driver)?;
            (cfg, warnings, false)
        }
        (None, None) => (Config::samples(&sample_dir())?, Vec::new(), true),
    };
    // The `mqtt` block is validated before anything starts; its errors name key and file.
    let uplink: Option<Box<dyn vscp_websocksrv::uplink::Uplink>> = match &cfg.mqtt {
        None => None,
        Some(block) => {
            let (mqtt, mqtt_warnings) = vscp_websocksrv::mqtt::MqttUplink::new(block, &cfg)?;
            warnings.extend(mqtt_warnings);
            Some(Box::new(mqtt))
        }
    };
    if let Some(n) = cli.shards {
        cfg.shards = Some(n);
    }
    vscp_websocksrv::logging::init(&cfg.logging, cfg.debug)?;
    for w in &warnings {
        warn!("{w}");
    }
    if samples {
        warn!(
            "NO --config GIVEN: running on built-in SAMPLE settings (users admin/secret and user/secret, \
             the sample key). Anyone who has read the README can log in. Use --config for real deployments."
        );
    }
    let users_text = std::fs::read_to_string(&cfg.users_file)
        .with_context(|| format!("{}: cannot read the users file", cfg.users_file.display()))?;
    let users = vscp_proto::UserDb::from_json(&users_text)
        .with_context(|| format!("{}: invalid users file", cfg.users_file.display()))?;
    for key in users.unknown_keys() {
        warn!(file = %cfg.users_file.display(), "users file: unknown key {key:?} ignored");
    }
    let ceiling = vscp_websocksrv::limits::raise_nofile();
    info!(
        open_files = ceiling,
        "file descriptor limit (sessions per process are bounded by it)"
    );

    let bridged = uplink.is_some();
    let server = vscp_websocksrv::start_with_uplink(&cfg, users, uplink)
        .context("cannot start the server")?;
    if bridged {
        info!("MQTT bridge enabled (see the mqtt block of the config)");
    }
    let addr = server.local_addr();
    info!(
        %addr,
        shards = server.shards(),
        ws1 = ?cfg.enable_ws1.then_some(&cfg.url_ws1),
        ws2 = ?cfg.enable_ws2.then_some(&cfg.url_ws2),
        "vscp-websocksrv {} ready",
        env!("CARGO_PKG_VERSION")
    );

    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot install signal handlers")?;
    for sig in signals.forever() {
        if sig == SIGHUP {
            match std::fs::read_to_string(&cfg.users_file)
                .map_err(anyhow::Error::from)
                .and_then(|t| vscp_proto::UserDb::from_json(&t).map_err(anyhow::Error::from))
            {
                Ok(db) => {
                    info!(users = db.len(), "users file reloaded");
                    server.reload_users(db);
                }
                Err(e) => {
                    error!(file = %cfg.users_file.display(), error = %e, "users file not reloaded; keeping the old one")
                }
            }
            continue;
        }
        info!("signal received, shutting down");
        break;
    }
    server.shutdown();
    info!("stopped");
    Ok(())
}
