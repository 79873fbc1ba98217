//! What both configuration readers share: the driver config (`vscp_websocksrv::config`) and
//! the MQTT block (`vscp_mqtt::config`). [`Reader::read`] deserializes a block straight into the
//! caller's structs: `serde_path_to_error` makes every error name the dotted key
//! (`mqtt.publish[2].qos`), `serde_ignored` yields one warning per unknown key. The value rules
//! (booleans, whole numbers, `null`) are the same for both: docs/config.md "Value types".
//! [`config_block!`] declares a block with each key's reader and default on the key's line.
//!
//! Its own crate because `vscp-mqtt` must not depend on the root crate, which depends on it.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod keys;
pub mod pem;

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use vscp_proto::number::read_u64;

/// Why a configuration could not be loaded. Every variant names the file (or a label such as
/// `<inline>`) and, where one is to blame, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file itself could not be read.
    // The cause is part of the message and deliberately not an error `source`: printed as a
    // chain (`{:#}`), it would otherwise appear twice.
    #[error("{}: cannot read: {cause}", .file.display())]
    Io {
        /// The config file.
        file: PathBuf,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// The config text is not JSON.
    #[error("{}: not valid JSON: {cause}", .file.display())]
    Json {
        /// The config file (or the label of inline text).
        file: PathBuf,
        /// The parser's complaint, with line and column.
        cause: serde_json::Error,
    },
    /// A key has a wrong type or an unacceptable value, or a file it names cannot be used.
    #[error("{file}: key \"{key}\": {reason}")]
    Key {
        /// The config file, `<inline>` or `<built-in defaults>`.
        file: String,
        /// Dotted key path, e.g. `logging.file-max-size`; `<root>` for the whole file.
        key: String,
        /// What is wrong and, where useful, what is expected.
        reason: String,
    },
}

impl ConfigError {
    /// The dotted key a [`ConfigError::Key`] names.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Reads and parses a JSON file; errors name the file.
pub fn read_json_file(path: &Path) -> Result<Value, ConfigError> {
    let file = path.to_path_buf();
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Io { file, cause })?;
    parse_json(&text, &path.display().to_string())
}

/// Parses JSON text; `file` labels the error.
pub fn parse_json(text: &str, file: &str) -> Result<Value, ConfigError> {
    let file = file.into();
    serde_json::from_str(text).map_err(|cause| ConfigError::Json { file, cause })
}

/// Where a block comes from: the file label that starts every message, and the block's dotted
/// key in that file (empty for the file itself, `mqtt` for the bridge block). Kept by validated
/// configs whose checks finish later (the MQTT topics and TLS files).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The file, or a label such as `<inline>`.
    pub file: String,
    /// Dotted key of the block.
    pub prefix: String,
}

impl Origin {
    /// The full dotted key of `key` inside this block; `""` is the block itself.
    pub fn key(&self, key: &str) -> String {
        match (self.prefix.as_str(), key) {
            ("", "") => "<root>".into(),
            ("", k) => k.into(),
            (p, "") => p.into(),
            (p, k) => format!("{p}.{k}"),
        }
    }

    /// An error naming this file and `key` (relative to the block).
    pub fn err(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        let (file, key, reason) = (self.file.clone(), self.key(key), reason.into());
        ConfigError::Key { file, key, reason }
    }
}

/// Deserializes one block and collects the warnings of it and of its validation.
#[derive(Debug)]
pub struct Reader {
    /// File and block every message names.
    pub origin: Origin,
    /// Warnings so far, each starting with the file; the caller logs them once logging is up.
    pub warnings: Vec<String>,
}

impl Reader {
    /// A reader for the block at `prefix` (empty: the whole file) of `file`.
    pub fn new(file: &str, prefix: &str) -> Reader {
        let (file, prefix) = (file.into(), prefix.into());
        let origin = Origin { file, prefix };
        let warnings = Vec::new();
        Reader { origin, warnings }
    }

    /// See [`Origin::err`].
    pub fn err(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        self.origin.err(key, reason)
    }

    /// Adds a warning; the file is put in front.
    pub fn warn(&mut self, message: impl fmt::Display) {
        self.warnings
            .push(format!("{}: {message}", self.origin.file));
    }

    /// Deserializes `value` three times, as `T` (a public struct), `U` and `V` (the keys `T` has
    /// no field for; [`Nothing`] where none are left). `null` counts as absent. An error names
    /// the dotted key of the offending value; a key none knows gets one warning, or for keys in
    /// `unused` (lines of `dotted.key: reason`) a warning that says why it has no effect.
    pub fn read<T: DeserializeOwned, U: DeserializeOwned, V: DeserializeOwned>(
        &mut self,
        value: &Value,
        unused: &str,
    ) -> Result<(T, U, V), ConfigError> {
        let value = &without_nulls(value);
        let ((t, a), (u, b), (v, c)) = (self.de(value)?, self.de(value)?, self.de(value)?);
        // Known to one means known; a key another skipped whole (with all inside) is unknown.
        let skipped = |by: &Vec<String>, key: &String| {
            let below = |p: &String| {
                key.strip_prefix(p.as_str())
                    .map(|r| r.starts_with(['.', '[']))
            };
            by.iter().any(|p| p == key || below(p) == Some(true))
        };
        let ignored = [a, b, c];
        let mut unknown: Vec<&String> = Vec::new();
        for key in ignored.iter().flatten() {
            if ignored.iter().all(|by| skipped(by, key)) && !unknown.contains(&key) {
                unknown.push(key);
            }
        }
        // Only worked out when needed: a walk over the structs.
        let walks = [
            keys::known_keys::<T>,
            keys::known_keys::<U>,
            keys::known_keys::<V>,
        ];
        let walks = walks.iter().filter(|_| !unknown.is_empty());
        let known: Vec<String> = walks.flat_map(|walk| walk()).collect();
        for relative in unknown {
            let key = self.origin.key(relative);
            let why = unused
                .lines()
                .find_map(|l| l.strip_prefix(&key)?.strip_prefix(": "));
            let near = keys::closest(relative, known.iter().map(String::as_str));
            match (why, near) {
                (Some(why), _) => {
                    self.warn(format_args!("key \"{key}\" accepted but not used: {why}"))
                }
                (None, Some(near)) => self.warn(format_args!(
                    "unknown key \"{key}\" ignored; did you mean \"{}\"?",
                    self.origin.key(&near)
                )),
                (None, None) => self.warn(format_args!("unknown key \"{key}\" ignored")),
            }
        }
        Ok((t, u, v))
    }

    /// `T` from `value`, with the keys it ignored (relative to the block).
    fn de<T: DeserializeOwned>(&self, value: &Value) -> Result<(T, Vec<String>), ConfigError> {
        let mut ignored = Vec::new();
        let mut on_ignored = |path: serde_ignored::Path<'_>| ignored.push(dotted(&path));
        let de = serde_ignored::Deserializer::new(value, &mut on_ignored);
        let parsed = serde_path_to_error::deserialize(de).map_err(|e| {
            // An empty path (the block itself has the wrong type) displays as ".".
            let key = (e.path().iter().next()).map_or(String::new(), |_| e.path().to_string());
            self.err(&key, e.into_inner().to_string())
        });
        parsed.map(|b: Block<T>| (b.0, ignored))
    }
}

/// The third struct of [`Reader::read`] for a block whose keys two structs cover: knows no key.
#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// `value` with every object member that is `null` left out.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => (map.iter().filter(|(_, v)| !v.is_null()))
            .map(|(k, v)| (k.clone(), without_nulls(v)))
            .collect(),
        Value::Array(items) => items.iter().map(without_nulls).collect(),
        v => v.clone(),
    }
}

/// The path serde_ignored reports, in the same dotted form as serde_path_to_error's.
fn dotted(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", dotted(parent)),
        P::Map { parent, key } => match dotted(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            dotted(parent)
        }
    }
}

/// Splits an address as both readers take it: optional `scheme://` (returned lower-cased, `""`
/// without one), then `host[:port]`, `[IPv6][:port]` or a bare IPv6 address, then at most one
/// `/`. The host may be empty; what it may be and which schemes count is the caller's rule.
pub fn split_address(text: &str) -> Result<(String, &str, Option<u16>), String> {
    let text = text.trim();
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => (String::new(), text),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err(format!("{text:?}: a path is not allowed here"));
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(inner) => match inner.split_once(']') {
            None => return Err(format!("{text:?}: missing ']' after the IPv6 address")),
            Some((host, "")) => (host, None),
            Some((host, after)) => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("{text:?}: expected ':PORT' after ']'")),
            },
        },
        // More than one colon without brackets is a bare IPv6 address.
        None => match rest.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            _ => (rest, None),
        },
    };
    Ok((scheme, host, port.map(|p| parse_port(p, text)).transpose()?))
}

/// A port number in 0..=65535; `whole` is the address it came from, quoted in the error.
pub fn parse_port(port: &str, whole: &str) -> Result<u16, String> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{whole:?}: {port:?} is not a port number"));
    }
    (port.parse()).map_err(|_| format!("{whole:?}: port {port} is out of range 0..=65535"))
}

/// A value that `Debug` shows as `<redacted>` (the shared key, the raw `mqtt` block with its
/// password), so `{:?}` of a config never leaks it into a log line.
#[derive(Clone, Default)]
pub struct Redacted<T>(pub T);

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> std::ops::Deref for Redacted<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: PartialEq> PartialEq<T> for Redacted<T> {
    fn eq(&self, other: &T) -> bool {
        self.0 == *other
    }
}

/// Makes a parser of a deserialized value (a `String`, a `serde_json::Value`, ...) a
/// `Deserialize` impl (`Type => parser`) or a `deserialize_with` function (`fn name -> Type =
/// parser`), so its error names the key like every other one.
#[macro_export]
macro_rules! parsed_by {
    ($(fn $name:ident -> $t:ty = $parse:expr;)*) => {$(
        fn $name<'de, D: $crate::serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
            $crate::parse(d, $parse)
        }
    )*};
    ($($t:ty => $parse:expr),* $(,)?) => {$(
        impl<'de> $crate::serde::Deserialize<'de> for $t {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::parse(d, $parse)
            }
        }
    )*};
}

/// Config blocks whose keys each take one line: `[#[attr]] [pub] name: Type [= default]
/// [, key "key"] [, with "reader"];` becomes a field of a serde-derived struct (key: the field
/// name in kebab-case unless `key` says otherwise; `with`: the `deserialize_with` function, such
/// as `"Int::<1, 100>::de"`) and the default goes into the struct's `Default`, which a missing
/// key takes (no `= default`: the type's own).
#[macro_export]
macro_rules! config_block {
    (@default) => { ::core::default::Default::default() };
    (@default $d:expr) => { $d };
    ($($(#[$m:meta])* $vis:vis struct $name:ident { $(
        $(#[$fm:meta])* $fv:vis $f:ident: $t:ty $(= $d:expr)? $(, key $k:literal)? $(, with $w:literal)?;
    )* })*) => {$(
        $(#[$m])*
        #[derive($crate::serde::Deserialize)]
        #[serde(default, rename_all = "kebab-case")]
        $vis struct $name { $(
            $(#[$fm])* $(#[serde(rename = $k)])? $(#[serde(deserialize_with = $w)])? $fv $f: $t,
        )* }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                $name { $($f: $crate::config_block!(@default $($d)?),)* }
            }
        }
    )*};
}

#[doc(hidden)]
pub use serde;

#[doc(hidden)]
pub fn parse<'de, D, V, T, E>(d: D, parse: impl FnOnce(V) -> Result<T, E>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
    E: fmt::Display,
{
    parse(V::deserialize(d)?).map_err(de::Error::custom)
}

/// A block that must be a JSON object: a derived struct alone would also take an array, its
/// fields in order, which no config file means.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Block<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for V<T> {
            type Value = Block<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            // Through the caller's `MapAccess`, so paths and unknown keys are still tracked.
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Block<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Block)
            }
        }
        // As a struct with `T`'s fields (a JSON value still needs an object: `V` takes no
        // sequence), so `keys::known_keys` sees through the block.
        let fields = keys::struct_fields::<T>();
        d.deserialize_struct("block", fields, V(PhantomData))
    }
}

/// A boolean: `true`/`false`, or `1`/`0`, which REF samples write for some flags. One rule for
/// every boolean of both readers; [`flag`] for a `bool` field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

/// A whole number in `MIN..=MAX`. With `TEXT`, a string in any notation
/// `vscp_proto::number::read_u64` reads (`"0xFFFF"`) is taken too, as REF reads filter values.
/// [`Int::de`] for a field of another type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int<const MIN: u64, const MAX: u64, const TEXT: bool = false>(pub u64);

/// A string; a number or boolean is taken as its JSON text (values that end up in topics and
/// MQTT properties, where they are text anyway).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

/// `#[serde(deserialize_with = "flag")]`: a [`Flag`] into a `bool`.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Flag::deserialize(d).map(|f| f.0)
}

/// `#[serde(deserialize_with = "block")]`: a [`Block`] into its struct.
pub fn block<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    Block::deserialize(d).map(|b| b.0)
}

impl<const MIN: u64, const MAX: u64, const TEXT: bool> Int<MIN, MAX, TEXT> {
    /// `#[serde(deserialize_with = "Int::<MIN, MAX>::de")]`: into an integer type that holds MAX.
    pub fn de<'de, T: TryFrom<u64>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let n = Self::deserialize(d)?.0;
        T::try_from(n).map_err(|_| de::Error::custom(format!("{n} does not fit")))
    }

    /// `#[serde(deserialize_with = "Int::<MIN, MAX>::secs")]`: seconds into a `Duration`.
    pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Self::deserialize(d).map(|n| Duration::from_secs(n.0))
    }

    /// Milliseconds into a `Duration`, as [`Int::secs`].
    pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Self::deserialize(d).map(|n| Duration::from_millis(n.0))
    }
}

// The three go through `Value` (every config is one already) so that a wrong value is quoted
// as written: `expected true or false (or 1/0), found "yes"`, one wording for both readers.

fn wrong(expected: &str, found: &Value) -> String {
    format!("expected {expected}, found {found}")
}

parsed_by!(
    Flag => |v: Value| match v {
        Value::Bool(b) => Ok(Flag(b)),
        Value::Number(n) if n.as_u64().is_some_and(|n| n <= 1) => Ok(Flag(n.as_u64() == Some(1))),
        v => Err(wrong("true or false (or 1/0)", &v)),
    },
    Text => |v: Value| match v {
        Value::String(s) => Ok(Text(s)),
        v @ (Value::Number(_) | Value::Bool(_)) => Ok(Text(v.to_string())),
        v => Err(wrong("a string", &v)),
    },
);

impl<'de, const MIN: u64, const MAX: u64, const TEXT: bool> Deserialize<'de>
    for Int<MIN, MAX, TEXT>
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse(d, |v: Value| {
            let n = match &v {
                Value::Number(n) if n.is_i64() || n.is_u64() => n.as_u64(),
                Value::String(s) if TEXT => Some(read_u64("number", s).map_err(|e| e.to_string())?),
                _ => return Err(wrong(&format!("a whole number in {MIN}..={MAX}"), &v)),
            };
            // `None`: a negative number.
            let range = format!("{v} is out of range {MIN}..={MAX}");
            n.filter(|n| (MIN..=MAX).contains(n)).map(Int).ok_or(range)
        })
    }
}
