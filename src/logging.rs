//! Logging from the config's `logging` block (the old driver's keys): a console output and a
//! file output, each with its own level and spdlog-style pattern, and size-based rotation of
//! the file. `RUST_LOG`, when set, overrides the console level. SIGHUP may change both levels
//! ([`reload_levels`]); where the output goes is fixed until a restart.
//!
//! The REF driver logged through spdlog, so its patterns are spdlog patterns. We interpret the
//! flags people actually use (see [`Pattern`]) and print anything else literally, so an existing
//! pattern keeps working.
//!
//! Rotation follows spdlog's rotating sink: `file-path` is the live file; when a write would
//! take it past `file-max-size` it becomes `name.1.ext`, the previous `name.1.ext` becomes
//! `name.2.ext`, and so on; at most `file-max-files` rotated files are kept.

use crate::config::{LogLevel, LoggingConfig};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("logging.file-path: cannot open {path}: {source}")]
    File { path: PathBuf, source: io::Error },
    #[error("RUST_LOG: {0}")]
    Filter(String),
    #[error("cannot install the logger: {0}")]
    Install(String),
    #[error("logging levels not changed: {0}")]
    Reload(String),
}

/// Sets the console and file levels of the installed logger from `cfg` (the rules of
/// [`init`]); once per reload, outside any hot path.
type Reloader = Box<dyn Fn(&LoggingConfig, bool) -> Result<(), LoggingError> + Send + Sync>;
static RELOAD: std::sync::OnceLock<Reloader> = std::sync::OnceLock::new();

/// The console and file levels as `debug` adjusts them (see [`init`]).
fn level(l: LogLevel, debug: bool) -> tracing::level_filters::LevelFilter {
    let f = l.to_level_filter();
    if debug && f < tracing::level_filters::LevelFilter::DEBUG && l != LogLevel::Off {
        tracing::level_filters::LevelFilter::DEBUG
    } else {
        f
    }
}

/// Applies `cfg`'s console and file levels (and `debug`) to the running logger. `RUST_LOG`,
/// when set, keeps the console's filter. Outputs enabled or disabled, a new file path or
/// pattern take a restart.
pub fn reload_levels(cfg: &LoggingConfig, debug: bool) -> Result<(), LoggingError> {
    match RELOAD.get() {
        Some(reload) => reload(cfg, debug),
        None => Err(LoggingError::Reload("no logger installed".into())),
    }
}

/// Installs the global subscriber. `debug` (the config's `debug` flag) lowers both levels to at
/// least `debug`, as the driver's `debug` key did.
pub fn init(cfg: &LoggingConfig, debug: bool) -> Result<(), LoggingError> {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let mut console_handle = None;
    let console = if cfg.console_enable {
        let filter = match &rust_log {
            Some(v) => EnvFilter::try_new(v).map_err(|e| LoggingError::Filter(e.to_string()))?,
            None => EnvFilter::default().add_directive(level(cfg.console_level, debug).into()),
        };
        let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
        console_handle = Some(handle);
        let colour = io::IsTerminal::is_terminal(&io::stderr());
        Some(
            tracing_subscriber::fmt::layer()
                .with_writer(io::stderr)
                .event_format(Pattern::new(&cfg.console_pattern, colour))
                .with_filter(filter),
        )
    } else {
        None
    };
    let mut file_handle = None;
    let file = if cfg.file_enable {
        let sink = RotatingFile::open(&cfg.file_path, cfg.file_max_size, cfg.file_max_files)
            .map_err(|source| LoggingError::File {
                path: cfg.file_path.clone(),
                source,
            })?;
        let (filter, handle) = tracing_subscriber::reload::Layer::new(level(cfg.file_level, debug));
        file_handle = Some(handle);
        Some(
            tracing_subscriber::fmt::layer()
                .with_writer(Mutex::new(sink))
                .with_ansi(false)
                .event_format(Pattern::new(&cfg.file_pattern, false))
                .with_filter(filter),
        )
    } else {
        None
    };
    let subscriber = tracing_subscriber::registry().with(console).with(file);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| LoggingError::Install(e.to_string()))?;
    let _ = RELOAD.set(Box::new(move |cfg: &LoggingConfig, debug: bool| {
        let failed = |e: tracing_subscriber::reload::Error| LoggingError::Reload(e.to_string());
        if let (Some(h), None) = (&console_handle, &rust_log) {
            let f = EnvFilter::default().add_directive(level(cfg.console_level, debug).into());
            h.reload(f).map_err(failed)?;
        }
        if let Some(h) = &file_handle {
            h.reload(level(cfg.file_level, debug)).map_err(failed)?;
        }
        Ok(())
    }));
    Ok(())
}

/// A log file that rotates by size, keeping a bounded number of old files.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_size: u64,
    max_files: usize,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens (appending to) `path`.
    pub fn open(path: &Path, max_size: u64, max_files: usize) -> io::Result<RotatingFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_size,
            max_files,
            file,
            size,
        })
    }

    /// `name.N.ext` (spdlog's naming).
    pub fn rotated_name(path: &Path, n: usize) -> PathBuf {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match path.extension() {
            Some(ext) => format!("{stem}.{n}.{}", ext.to_string_lossy()),
            None => format!("{stem}.{n}"),
        };
        path.with_file_name(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let _ = std::fs::remove_file(Self::rotated_name(&self.path, self.max_files));
        for n in (1..self.max_files).rev() {
            let from = Self::rotated_name(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, Self::rotated_name(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, Self::rotated_name(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A line is never split across files; a single line longer than the limit gets a file
        // of its own.
        if self.size > 0 && self.size + buf.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// An spdlog pattern. Supported flags: `%v` message (with fields), `%l` level, `%L` level
/// letter, `%n` logger name, `%c` date and time (`Thu Nov 26 02:34:36 2026`), `%Y %m %d %H %M
/// %S`, `%e` milliseconds, `%f` microseconds, `%t` thread id, `%P` process id, `%^`/`%$` colour
/// range (console only), `%%`. Any other flag is printed as written.
#[derive(Debug, Clone)]
pub struct Pattern {
    pattern: String,
    colour: bool,
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Pattern {
    pub fn new(pattern: &str, colour: bool) -> Pattern {
        Pattern {
            pattern: pattern.to_string(),
            colour,
        }
    }

    /// Renders one line (without the newline) for `level` and an already formatted message.
    pub fn render(
        &self,
        level: Level,
        message: &str,
        now: std::time::SystemTime,
        out: &mut String,
    ) {
        let since = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs();
        let dt = vscp_proto::DateTime::from_unix_secs(secs);
        let mut chars = self.pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let Some(flag) = chars.next() else {
                out.push('%');
                break;
            };
            match flag {
                'v' => out.push_str(message),
                'l' => out.push_str(level_name(level)),
                'L' => out.push(
                    level_name(level)
                        .chars()
                        .next()
                        .unwrap_or('?')
                        .to_ascii_uppercase(),
                ),
                'n' => out.push_str("vscp-websocksrv"),
                'c' => {
                    let _ = write!(
                        out,
                        "{} {} {:2} {:02}:{:02}:{:02} {}",
                        DAYS[((secs / 86_400) % 7) as usize],
                        MONTHS[usize::from(dt.month.clamp(1, 12)) - 1],
                        dt.day,
                        dt.hour,
                        dt.minute,
                        dt.second,
                        dt.year
                    );
                }
                'Y' => {
                    let _ = write!(out, "{:04}", dt.year);
                }
                'm' => {
                    let _ = write!(out, "{:02}", dt.month);
                }
                'd' => {
                    let _ = write!(out, "{:02}", dt.day);
                }
                'H' => {
                    let _ = write!(out, "{:02}", dt.hour);
                }
                'M' => {
                    let _ = write!(out, "{:02}", dt.minute);
                }
                'S' => {
                    let _ = write!(out, "{:02}", dt.second);
                }
                'e' => {
                    let _ = write!(out, "{:03}", since.subsec_millis());
                }
                'f' => {
                    let _ = write!(out, "{:06}", since.subsec_micros());
                }
                't' => {
                    let _ = write!(out, "{:?}", std::thread::current().id());
                }
                'P' => {
                    let _ = write!(out, "{}", std::process::id());
                }
                '^' => {
                    if self.colour {
                        out.push_str(level_colour(level));
                    }
                }
                '$' => {
                    if self.colour {
                        out.push_str("\x1b[0m");
                    }
                }
                '%' => out.push('%'),
                other => {
                    out.push('%');
                    out.push(other);
                }
            }
        }
    }
}

/// spdlog's level names (what REF's log lines said).
fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warning",
        Level::ERROR => "error",
    }
}

fn level_colour(level: Level) -> &'static str {
    match level {
        Level::TRACE => "\x1b[37m",
        Level::DEBUG => "\x1b[36m",
        Level::INFO => "\x1b[32m",
        Level::WARN => "\x1b[33m\x1b[1m",
        Level::ERROR => "\x1b[31m\x1b[1m",
    }
}

impl<S, N> FormatEvent<S, N> for Pattern
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        // The message and its fields, rendered by the subscriber's field formatter; the span
        // context (shard, conn, …) goes in front of it so `%v` carries everything.
        let mut message = String::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                message.push_str(span.name());
                message.push(' ');
            }
        }
        ctx.field_format()
            .format_fields(Writer::new(&mut message), event)?;
        let target = event.metadata().target();
        if !target.starts_with("vscp_websocksrv") && !target.starts_with("vscp_") {
            let _ = write!(message, " ({target})");
        }
        let mut line = String::with_capacity(message.len() + 48);
        self.render(
            *event.metadata().level(),
            &message,
            std::time::SystemTime::now(),
            &mut line,
        );
        writeln!(writer, "{line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn renders_the_seed_pattern() {
        let p = Pattern::new("[vcpl2drv-websocksrv %c] [%^%l%$] %v", false);
        let mut out = String::new();
        // 2026-11-26T02:34:36Z is a Thursday.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_660_476);
        p.render(Level::WARN, "hello", t, &mut out);
        assert_eq!(
            out,
            "[vcpl2drv-websocksrv Thu Nov 26 02:34:36 2026] [warning] hello"
        );
        let mut out = String::new();
        Pattern::new("%Y-%m-%dT%H:%M:%S.%e %L %q 100%%", false).render(
            Level::INFO,
            "x",
            t,
            &mut out,
        );
        assert_eq!(out, "2026-11-26T02:34:36.000 I %q 100%");
    }

    #[test]
    fn file_rotates_at_size_and_keeps_max_files() {
        let dir = std::env::temp_dir().join(format!("vscp-log-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("server.log");
        let mut f = RotatingFile::open(&path, 1000, 3).unwrap();
        let line = [b'x'; 99];
        for i in 0..100 {
            let mut l = line.to_vec();
            l[0] = b'0' + (i % 10) as u8;
            l.push(b'\n');
            f.write_all(&l).unwrap();
        }
        f.flush().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // The live file plus at most 3 rotated files, each at most 1000 bytes.
        assert_eq!(
            names,
            ["server.1.log", "server.2.log", "server.3.log", "server.log"]
        );
        for n in &names {
            let len = std::fs::metadata(dir.join(n)).unwrap().len();
            assert!(len <= 1000, "{n} is {len} bytes");
            assert_eq!(len % 100, 0, "{n}: lines are never split");
        }
        // 100 lines of 100 bytes, 10 per file: the live file holds the last 10 lines, and
        // server.1.log the 10 before them.
        let live = std::fs::read_to_string(&path).unwrap();
        assert_eq!(live.lines().count(), 10);
        let older = std::fs::read_to_string(dir.join("server.1.log")).unwrap();
        assert_eq!(older.lines().count(), 10);
        // Re-opening appends to the live file.
        let f2 = RotatingFile::open(&path, 1000, 3).unwrap();
        assert_eq!(f2.size, 1000);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
