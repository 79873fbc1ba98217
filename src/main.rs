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
    #[arg(long, short, conflicts_with = "vscpd_config", global = true)]
    config: Option<PathBuf>,
    /// Start from a VSCP daemon configuration instead (vscpd.conf): the `drivers.level2[]`
    /// entry named by --driver supplies path-config, guid and mqtt, as vscpd would.
    #[arg(long, requires = "driver", global = true)]
    vscpd_config: Option<PathBuf>,
    /// Name of the level2 driver entry in --vscpd-config (e.g. "websocket-srv").
    #[arg(long, global = true)]
    driver: Option<String>,
    /// Number of shards (executors pinned to cores). Default: one per CPU.
    #[arg(long)]
    shards: Option<usize>,
    /// Start even though the sample key or a sample password is in use on an interface that
    /// is not loopback (anyone who has read the README could log in).
    #[arg(long, global = true)]
    allow_sample_credentials: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the `SALT;HASH` value to put in users.json as the user's password.
    Mkpasswd { user: String, password: String },
    /// Print the sample configuration file.
    PrintDefaultConfig,
    /// Write a configuration to start from into DIR (created if missing): the sample
    /// websocksrv.json, a fresh random vscp.key and a users.json whose `admin` has a random
    /// password, which is printed once. Files that already exist are kept.
    Init { dir: PathBuf },
    /// Check a configuration (--config or --vscpd-config/--driver) and every file it names
    /// (key, users, the mqtt block's TLS files) without starting: the same errors and warnings
    /// as at start-up, exit status 0 when it would start. Use it before a SIGHUP or a restart.
    CheckConfig,
    /// Log in (ws1 over ws:// or wss://, the tcp/ip link over tcp:// or stcp://) and print every
    /// event the user receives, one line each (the event string, without ws1's `E;`, or JSON
    /// with --json).
    Sub {
        #[command(flatten)]
        login: LoginArgs,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Print events as ws2-style JSON objects.
        #[arg(long)]
        json: bool,
        /// Session filter as FILTER;MASK in ws1 `C;SF` form, e.g. "0,10,6,-;0,0xFFFF,0xFF,-"
        /// (over tcp/ip it is sent as `setfilter` and `setmask`).
        #[arg(long)]
        filter: Option<String>,
    },
    /// Log in (as `sub` does) and send events (event strings without ws1's `E;`, e.g.
    /// 0,20,3,,,,-,0,1,35), from the arguments or, without any, one per line from stdin.
    /// Prints each reply; exits 0 only if every event was acknowledged.
    Pub {
        #[command(flatten)]
        login: LoginArgs,
        events: Vec<String>,
    },
    /// Print the ws1 line that logs in on a session whose greeting was `+;AUTH0;SID`, for
    /// typing into wscat (log in within the server's auth-timeout, 30 s by default).
    AuthLine {
        /// The 32 hex digits after `+;AUTH0;`.
        #[arg(long)]
        sid: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        #[command(flatten)]
        key: KeyArgs,
    },
}

/// The server and the credentials the clients log in with.
#[derive(clap::Args, Debug)]
struct LoginArgs {
    /// ws://HOST:PORT/ws1 or wss://… (ws1), tcp://HOST:PORT or stcp://… (the tcp/ip link
    /// interface, port 9598 by default). In a config file, `interface` with tcp:// means the
    /// websocket listener, for compatibility with the old driver; here it means tcp/ip.
    #[arg(long, default_value = "ws://127.0.0.1:8884/ws1")]
    url: String,
    #[arg(long)]
    user: String,
    #[arg(long)]
    password: String,
    #[command(flatten)]
    key: KeyArgs,
    /// wss:// and stcp://: PEM file of the CA that signed the server's certificate (default:
    /// the system's CA bundle).
    #[arg(long)]
    cafile: Option<PathBuf>,
    /// wss:// and stcp://: PEM file with this client's certificate and private key, for a
    /// server with ssl_verify_peer.
    #[arg(long)]
    client_cert: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct KeyArgs {
    /// The server's AES-128 key as 32 hex digits (its key file's content).
    #[arg(long, conflicts_with = "key_file")]
    key: Option<String>,
    /// The server's key file. Default: the SAMPLE key (deploy/vscp.key), which only a server
    /// running on the sample settings uses.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

impl KeyArgs {
    fn read(&self) -> Result<[u8; 16]> {
        let file = self
            .key_file
            .clone()
            .unwrap_or_else(|| sample_dir().join("vscp.key"));
        vscp_websocksrv::clients::read_key(self.key.as_deref(), &file)
    }
}

impl LoginArgs {
    fn login(&self) -> Result<vscp_websocksrv::clients::Login> {
        Ok(vscp_websocksrv::clients::Login {
            url: self.url.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            key: self.key.read()?,
            tls: vscp_websocksrv::clients::TlsArgs {
                cafile: self.cafile.clone(),
                client_cert: self.client_cert.clone(),
            },
        })
    }
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

/// A configuration read and checked, with everything it names: what the server starts from,
/// and all that `check-config` checks.
struct Loaded {
    cfg: Config,
    warnings: Vec<String>,
    samples: bool,
    uplink: Option<Box<dyn vscp_websocksrv::uplink::Uplink>>,
    users: vscp_proto::UserDb,
}

/// SIGHUP: reads the config (and the users file it names) again, as at start-up. When all of
/// it is valid, the users, `max-clients`, the driver filters and the log levels take effect;
/// other changed keys are named as needing a restart. When anything is invalid nothing
/// changes and the error (key and file) is logged.
fn reload(cli: &Cli, running: &mut Config, server: &vscp_websocksrv::ServerHandle) {
    if cli.config.is_none() && cli.vscpd_config.is_none() {
        warn!("SIGHUP: running on built-in sample settings; there is no config file to re-read");
        return;
    }
    let loaded = match load(cli) {
        Ok(l) => l,
        Err(e) => {
            error!("SIGHUP: config not reloaded, the running one stays: {e:#}");
            server.config_reloaded(false);
            return;
        }
    };
    let new = loaded.cfg;
    for w in &loaded.warnings {
        warn!("{w}");
    }
    info!(users = loaded.users.len(), file = %new.users_file.display(), "users reloaded");
    server.reload_users(loaded.users);
    for change in server.reconfigure(&new) {
        info!("SIGHUP: {change}");
    }
    if let Err(e) = vscp_websocksrv::logging::reload_levels(&new.logging, new.debug) {
        error!("SIGHUP: {e}");
    }
    // Everything else is compared with what runs: the reloadable keys are taken over first.
    let mut want = new.clone();
    take_reloadable(&mut want, running);
    want.shards = running.shards; // --shards may have overridden the file
    let differs = format!("{want:?}") != format!("{running:?}")
        || want.mqtt.as_ref().map(|m| &m.0) != running.mqtt.as_ref().map(|m| &m.0)
        || want.key.0 != running.key.0;
    if differs {
        warn!("SIGHUP: other keys changed (listeners, queues, timeouts, the mqtt block, the key, ...); they take effect after a restart");
    }
    take_reloadable(running, &new);
    server.config_reloaded(true);
}

/// Copies the keys a SIGHUP applies (see [`reload`]) from `from` into `to`.
fn take_reloadable(to: &mut Config, from: &Config) {
    to.max_clients = from.max_clients;
    to.in_filter = from.in_filter;
    to.out_filter = from.out_filter;
    to.logging.console_level = from.logging.console_level;
    to.logging.file_level = from.logging.file_level;
    to.debug = from.debug;
    to.users_file = from.users_file.clone();
    // Abuse limits (all but address-table-size, which sizes a table built at start).
    to.handshake_timeout = from.handshake_timeout;
    to.login_failure_budget = from.login_failure_budget;
    to.login_failure_refill = from.login_failure_refill;
    to.login_failure_cooldown = from.login_failure_cooldown;
    to.connection_rate = from.connection_rate;
    to.connection_burst = from.connection_burst;
    to.max_clients_per_address = from.max_clients_per_address;
    to.max_unauthenticated = from.max_unauthenticated;
    to.max_unauthenticated_per_address = from.max_unauthenticated_per_address;
    to.proxy_protocol_from = from.proxy_protocol_from.clone();
}

fn load(cli: &Cli) -> Result<Loaded> {
    let (cfg, mut warnings, samples) = match (&cli.config, &cli.vscpd_config) {
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
    let users_text = std::fs::read_to_string(&cfg.users_file)
        .with_context(|| format!("{}: cannot read the users file", cfg.users_file.display()))?;
    let users = vscp_proto::UserDb::from_json(&users_text)
        .with_context(|| format!("{}: invalid users file", cfg.users_file.display()))?;
    for key in users.unknown_keys() {
        warnings.push(format!(
            "{}: users file: unknown key {key:?} ignored",
            cfg.users_file.display()
        ));
    }
    let samples_found = sample_credentials(&cfg, &users);
    if !samples && !samples_found.is_empty() && !cfg.listen.ip().is_loopback() {
        let what = samples_found.join(" and ");
        if !cli.allow_sample_credentials {
            anyhow::bail!(
                "refusing to start: {what}, and `interface` {} is not a loopback address, so \
                 anyone who has read the README could log in. Make a key of your own (32 random \
                 hex digits in {}: `openssl rand -hex 16`) and passwords of your own \
                 (`vscp-websocksrv mkpasswd USER PASSWORD` into users.json), or pass \
                 --allow-sample-credentials if this is really what you want",
                cfg.listen,
                cfg.key_file.display()
            );
        }
        warnings.push(format!(
            "{what} on the non-loopback interface {} (--allow-sample-credentials)",
            cfg.listen
        ));
    }
    Ok(Loaded {
        cfg,
        warnings,
        samples,
        uplink,
        users,
    })
}

/// The AES key of deploy/vscp.key and the password of the sample users in deploy/users.json.
const SAMPLE_KEY: &str = "2DBB079A38985AF00EBEEFE22F9FFA0E";
const SAMPLE_USERS: [&str; 2] = ["admin", "user"];
const SAMPLE_PASSWORD: &str = "secret";

/// Which sample credentials the configuration uses (empty: none). Only the sample user names
/// are tried, so this costs at most two password checks at start-up.
fn sample_credentials(cfg: &Config, users: &vscp_proto::UserDb) -> Vec<String> {
    let mut found = Vec::new();
    if vscp_proto::auth::hex_upper(&cfg.key[..]) == SAMPLE_KEY {
        found.push(format!(
            "the key file {} holds the SAMPLE key",
            cfg.key_file.display()
        ));
    }
    for name in SAMPLE_USERS {
        if users
            .get(name)
            .is_some_and(|u| u.verify_password(SAMPLE_PASSWORD))
        {
            found.push(format!("user {name:?} has the SAMPLE password"));
        }
    }
    found
}

/// `init DIR`: the three files a server needs, the secrets fresh, nothing overwritten.
fn init(dir: &std::path::Path) -> Result<()> {
    use std::io::Write;
    use vscp_proto::{auth::hex_upper, password};
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let random = || {
        password::random_salt()
            .map_err(|_| anyhow::anyhow!("the OS random number generator failed"))
    };
    // Private files are created 0600 (owner only), as they hold the secrets.
    let write = |name: &str, text: &str, private: bool| -> Result<bool> {
        let path = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&path) {
            Ok(mut f) => {
                f.write_all(text.as_bytes())
                    .with_context(|| format!("{}: cannot write", path.display()))?;
                println!("wrote {}", path.display());
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                println!("kept {} (it exists)", path.display());
                Ok(false)
            }
            Err(e) => Err(anyhow::anyhow!("{}: cannot create: {e}", path.display())),
        }
    };
    write(
        "websocksrv.json",
        vscp_websocksrv::config::SAMPLE_CONFIG,
        false,
    )?;
    write("vscp.key", &format!("{}\n", hex_upper(&random()?)), true)?;
    let pass = hex_upper(&random()?[..12]).to_ascii_lowercase();
    let users = serde_json::json!({"users": [{
        "name": "admin",
        "password": password::mkpasswd("admin", &pass, random()?),
        "full-name": "Administrator",
        "rights": "admin",
        "remotes": "",
        "allow-events": "",
        "filter": "",
        "mask": "",
        "note": "Written by `vscp-websocksrv init`; add users with `vscp-websocksrv mkpasswd USER PASSWORD`."
    }]});
    let users = serde_json::to_string_pretty(&users)? + "\n";
    if write("users.json", &users, true)? {
        println!("the user admin has the password {pass} (it is not stored anywhere else)");
    }
    let config = dir.join("websocksrv.json");
    println!(
        "start the server with: vscp-websocksrv --config {}",
        config.display()
    );
    Ok(())
}

/// `pub`: every event acknowledged, or an error naming how many were not.
fn publish(login: &LoginArgs, events: Vec<String>) -> Result<()> {
    let mut s = vscp_websocksrv::clients::Session::login(&login.login()?)?;
    let lines: Box<dyn Iterator<Item = String>> = if events.is_empty() {
        use std::io::BufRead;
        Box::new(std::io::stdin().lock().lines().map_while(|l| l.ok()))
    } else {
        Box::new(events.into_iter())
    };
    let (mut sent, mut refused) = (0u64, 0u64);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let reply = s.publish(&line)?;
        println!("{}", reply.text);
        sent += 1;
        if !reply.ok {
            refused += 1;
        }
    }
    s.close();
    if refused > 0 {
        anyhow::bail!("{refused} of {sent} events were not acknowledged");
    }
    Ok(())
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
        Some(Command::Init { dir }) => return init(&dir),
        Some(Command::Sub {
            login,
            count,
            json,
            filter,
        }) => {
            let mut s = vscp_websocksrv::clients::Session::login(&login.login()?)?;
            s.subscribe(
                filter.as_deref(),
                json,
                count,
                &mut std::io::stdout().lock(),
            )?;
            s.close();
            return Ok(());
        }
        Some(Command::Pub { login, events }) => return publish(&login, events),
        Some(Command::AuthLine {
            sid,
            user,
            password,
            key,
        }) => {
            let line = vscp_websocksrv::clients::auth_line(&sid, &user, &password, &key.read()?)?;
            println!("{line}");
            return Ok(());
        }
        Some(Command::CheckConfig) => {
            if cli.config.is_none() && cli.vscpd_config.is_none() {
                anyhow::bail!(
                    "check-config needs --config FILE (or --vscpd-config FILE --driver NAME)"
                );
            }
            let loaded = load(&cli)?;
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: OK ({} warning{})",
                cli.config
                    .as_ref()
                    .or(cli.vscpd_config.as_ref())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                loaded.warnings.len(),
                if loaded.warnings.len() == 1 { "" } else { "s" }
            );
            return Ok(());
        }
        None => {}
    }

    let Loaded {
        mut cfg,
        warnings,
        samples,
        uplink,
        users,
    } = load(&cli)?;
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
    let path = |on: bool, p: &str| if on { p.to_string() } else { "off".to_string() };
    info!(
        %addr,
        shards = server.shards(),
        ws1 = %path(cfg.enable_ws1, &cfg.url_ws1),
        ws2 = %path(cfg.enable_ws2, &cfg.url_ws2),
        tcpip = %server.tcpip_addr().map_or("off".to_string(), |a| format!("tcp://{a}")),
        metrics = %server.metrics_addr().map_or("off".to_string(), |a| format!("http://{a}/metrics")),
        "vscp-websocksrv {} ready",
        env!("CARGO_PKG_VERSION")
    );

    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot install signal handlers")?;
    for sig in signals.forever() {
        if sig == SIGHUP {
            reload(&cli, &mut cfg, &server);
            // The certificate files too, with or without ssl_short_trust: new connections get
            // the new certificate, open sessions keep theirs.
            match server.reload_tls() {
                Ok(false) => {}
                Ok(true) => info!("TLS certificate files reloaded"),
                Err(e) => {
                    error!(error = %e, "TLS certificate files not reloaded; keeping the previous certificate")
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
