//! The user database loaded from users.json (users.md).
//!
//! REC behaviour throughout: every user must load cleanly or the whole file is rejected with an
//! error naming the user and the key (REF skips bad users and keeps running with whoever is left,
//! which turns a typo into a silent lock-out or, worse, a user with unexpected rights).
//!
//! Accepted keys per user: `name` (alias `user`), `password`, `full-name` (alias `fullname`),
//! `note`, `filter`, `mask`, `rights`, `remotes`, `allow-events` (alias `events`) and
//! `max-priority`. Other keys are ignored but reported by [`UserDb::unknown_keys`] so the caller
//! can warn once; that includes `credentials`, whose documented format was never implemented.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::allow::AllowEvents;
use crate::auth::trim_c;
use crate::filter::Filter;
use crate::password::PasswordHash;
use crate::remotes::Remotes;
use crate::rights::{self, rights_bit_string};

/// Keys this module reads; anything else ends up in [`UserDb::unknown_keys`].
const KNOWN_KEYS: &[&str] = &[
    "name",
    "user",
    "password",
    "full-name",
    "fullname",
    "note",
    "filter",
    "mask",
    "rights",
    "remotes",
    "allow-events",
    "events",
    "max-priority",
];

/// One user record.
#[derive(Debug, Clone)]
pub struct User {
    /// 0-based position in users.json (the AUTH1 `userid`).
    pub id: u32,
    /// Trimmed name as written: the login lookup key and the PBKDF2 input.
    pub name: String,
    /// `name` with each of `; : ' " ,` and space replaced by `_`: shown in AUTH1, MD5 input.
    pub sanitised_name: String,
    pub password: PasswordHash,
    pub full_name: String,
    pub note: String,
    /// Receive filter installed on successful AUTH.
    pub filter: Filter,
    pub rights: u64,
    pub remotes: Remotes,
    pub allow_events: AllowEvents,
    /// `max-priority` 0..=7; `None` is no limit.
    pub max_priority: Option<u8>,
}

/// Why a client may not send an event (ws1.md §6 steps 2 and 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendDenied {
    /// No `send-events` right: ws1 `-;7;Not allowed to do that (check privileges)`.
    NoSendRight,
    /// Class 0/512/1024/1028 without the matching control right: ws1 `-;6;…`.
    ClassRight,
    /// Not in the user's allowed-event list: ws1 `-;6;…`.
    NotAllowed,
}

impl User {
    /// Checks a login password against the stored hash (constant time).
    pub fn verify_password(&self, password: &str) -> bool {
        self.password
            .verify(&self.name, &self.sanitised_name, password)
    }

    /// True for PBKDF2 hashes, which should be verified off the I/O path.
    pub fn password_is_slow(&self) -> bool {
        self.password.is_slow()
    }

    /// May a client at `ip` log in as this user?
    pub fn allows_remote(&self, ip: IpAddr) -> bool {
        self.remotes.allows(ip)
    }

    /// Has the `receive-events` right.
    pub fn can_receive(&self) -> bool {
        self.rights & rights::RECEIVE_EVENTS != 0
    }

    /// Has the right and the event passes the RX part of the allowed-event list.
    pub fn can_receive_event(&self, class: u16, vscp_type: u16) -> bool {
        self.can_receive() && self.allow_events.allows_receive(class, vscp_type)
    }

    /// Has the `set-filter` right.
    pub fn can_set_filter(&self) -> bool {
        self.rights & rights::SET_FILTER != 0
    }

    /// May this user send an event of `class`/`vscp_type`? The order follows REF so the error
    /// code a client sees is the same.
    pub fn check_send(&self, class: u16, vscp_type: u16) -> Result<(), SendDenied> {
        if self.rights & rights::SEND_EVENTS == 0 {
            return Err(SendDenied::NoSendRight);
        }
        let needed = match class {
            0 | 512 => rights::L1CTRL_EVENTS,
            1024 => rights::L2CTRL_EVENTS,
            1028 => rights::HLO_EVENTS,
            _ => 0,
        };
        if self.rights & needed != needed {
            return Err(SendDenied::ClassRight);
        }
        if !self.allow_events.allows(class, vscp_type) {
            return Err(SendDenied::NotAllowed);
        }
        Ok(())
    }

    /// Applies `max-priority` to an outgoing event head (users.md §8). Priority 0 is the highest,
    /// so a numerically *smaller* priority than the limit is raised to it.
    pub fn cap_priority(&self, head: u16) -> u16 {
        match self.max_priority {
            Some(max) if (head >> 5) & 7 < u16::from(max) => {
                (head & !0x00E0) | (u16::from(max) << 5)
            }
            _ => head,
        }
    }

    /// Appends the AUTH1 fields after `+;AUTH1;` (ws1.md §4.3):
    /// `userid;name;pwmask;fullname;filter;mask;rights;remotes;events;note`.
    ///
    /// The password field is a star mask, never the hash. Rights use the intended bit string
    /// (see [`rights_bit_string`]). Full name is sent as written, like REF, so a `;` in it would
    /// shift the fields for a naive client — the note is base64 for exactly that reason.
    pub fn write_auth1_fields(&self, out: &mut String) {
        use fmt::Write as _;
        // Writing into a String cannot fail.
        let _ = write!(out, "{};{};", self.id, self.sanitised_name);
        out.extend(std::iter::repeat_n('*', self.password.stored_len()));
        out.push(';');
        out.push_str(&self.full_name);
        out.push(';');
        self.filter.write_filter_half(out);
        out.push(';');
        self.filter.write_mask_half(out);
        out.push(';');
        out.push_str(&rights_bit_string(self.rights));
        let _ = write!(out, ";{};{};", self.remotes, self.allow_events);
        base64::engine::general_purpose::STANDARD.encode_string(self.note.as_bytes(), out);
    }
}

/// REF `fixName`: characters that would break the `;`/`,`/`:` separated protocol lines.
pub fn sanitise_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ';' | ':' | '\'' | '"' | ',' | ' ' => '_',
            c => c,
        })
        .collect()
}

/// A users.json load error naming where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersError {
    /// Position in the `users` array; `None` for errors about the file as a whole.
    pub index: Option<usize>,
    /// The user's name when it was already read.
    pub user: Option<String>,
    /// The offending key; empty when the error is about the whole user or file.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(i) = self.index {
            write!(f, "users[{i}]")?;
            if let Some(name) = &self.user {
                write!(f, " ({name:?})")?;
            }
            sep = ": ";
        }
        if !self.key.is_empty() {
            write!(f, "{sep}key {:?}", self.key)?;
            sep = ": ";
        }
        write!(f, "{sep}{}", self.reason)
    }
}

impl std::error::Error for UsersError {}

/// All users, in file order, with a name index.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    users: Vec<Arc<User>>,
    by_name: HashMap<String, usize>,
    unknown_keys: Vec<String>,
}

impl UserDb {
    /// Parses and validates a whole users.json text.
    pub fn from_json(text: &str) -> Result<UserDb, UsersError> {
        let file_err = |key: &str, reason: String| UsersError {
            index: None,
            user: None,
            key: key.to_owned(),
            reason,
        };
        let root: Value =
            serde_json::from_str(text).map_err(|e| file_err("", format!("invalid JSON: {e}")))?;
        let root = root
            .as_object()
            .ok_or_else(|| file_err("", "top level must be a JSON object".into()))?;
        let list = match root.get("users") {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(file_err("users", "must be an array".into())),
            None => return Err(file_err("users", "missing".into())),
        };

        let mut db = UserDb::default();
        let mut unknown = BTreeSet::new();
        for (index, item) in list.iter().enumerate() {
            let mut ctx = Ctx { index, user: None };
            let obj = item
                .as_object()
                .ok_or_else(|| ctx.err("", "must be a JSON object"))?;
            unknown.extend(
                obj.keys()
                    .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
                    .cloned(),
            );
            let user = parse_user(obj, &mut ctx)?;
            if let Some(&first) = db.by_name.get(&user.name) {
                return Err(ctx.err(
                    "name",
                    format!("duplicate user name (first at users[{first}])"),
                ));
            }
            db.by_name.insert(user.name.clone(), db.users.len());
            db.users.push(Arc::new(user));
        }
        db.unknown_keys = unknown.into_iter().collect();
        Ok(db)
    }

    /// Looks a user up by exact (case-sensitive, trimmed) name.
    pub fn get(&self, name: &str) -> Option<&Arc<User>> {
        self.by_name.get(name).and_then(|&i| self.users.get(i))
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Users in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<User>> {
        self.users.iter()
    }

    /// Keys that were present in some user object but are not read, sorted, each once.
    pub fn unknown_keys(&self) -> Vec<String> {
        self.unknown_keys.clone()
    }
}

/// Where we are while reading one user, for error messages.
struct Ctx {
    index: usize,
    user: Option<String>,
}

impl Ctx {
    fn err(&self, key: &str, reason: impl Into<String>) -> UsersError {
        UsersError {
            index: Some(self.index),
            user: self.user.clone(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

fn parse_user(obj: &Map<String, Value>, ctx: &mut Ctx) -> Result<User, UsersError> {
    let name = match read_key(obj, ctx, "name", Some("user"), as_string)? {
        Some((_, n)) => trim_c(n).to_owned(),
        None => return Err(ctx.err("name", "missing")),
    };
    if name.is_empty() {
        return Err(ctx.err("name", "must not be empty"));
    }
    ctx.user = Some(name.clone());
    let id = u32::try_from(ctx.index).map_err(|_| ctx.err("", "too many users"))?;

    let password = match read_key(obj, ctx, "password", None, as_string)? {
        Some((_, p)) if !trim_c(p).is_empty() => {
            PasswordHash::parse(trim_c(p)).map_err(|e| ctx.err("password", e))?
        }
        Some(_) => return Err(ctx.err("password", "must not be empty")),
        None => return Err(ctx.err("password", "missing")),
    };

    let full_name = read_key(obj, ctx, "full-name", Some("fullname"), as_string)?
        .map_or_else(String::new, |(_, s)| s.to_owned());
    let note = read_key(obj, ctx, "note", None, as_string)?
        .map_or_else(String::new, |(_, s)| s.to_owned());

    let filter_text = read_key(obj, ctx, "filter", None, as_string)?.map_or("", |(_, s)| s);
    let mask_text = read_key(obj, ctx, "mask", None, as_string)?.map_or("", |(_, s)| s);
    // Parse the halves separately first so the error can name the right key.
    Filter::parse_filter_half(filter_text).map_err(|e| ctx.err("filter", e.to_string()))?;
    Filter::parse_filter_half(mask_text).map_err(|e| ctx.err("mask", e.to_string()))?;
    let filter = Filter::from_strings(filter_text, mask_text)
        .map_err(|e| ctx.err("filter", e.to_string()))?;

    let rights = match read_key(obj, ctx, "rights", None, as_list)? {
        Some((key, items)) => rights::parse_rights(items).map_err(|e| ctx.err(key, e))?,
        None => rights::USER,
    };
    let remotes = match read_key(obj, ctx, "remotes", None, as_list)? {
        Some((key, items)) => Remotes::parse_items(items).map_err(|e| ctx.err(key, e))?,
        None => Remotes::default(),
    };
    let allow_events = match read_key(obj, ctx, "allow-events", Some("events"), as_list)? {
        Some((key, items)) => AllowEvents::parse_items(items).map_err(|e| ctx.err(key, e))?,
        None => AllowEvents::default(),
    };
    let max_priority = read_key(obj, ctx, "max-priority", None, as_priority)?.map(|(_, p)| p);

    Ok(User {
        id,
        sanitised_name: sanitise_name(&name),
        name,
        password,
        full_name,
        note,
        filter,
        rights,
        remotes,
        allow_events,
        max_priority,
    })
}

/// Looks up `key` or its alias and reads its value with `read`; an error names the key that was
/// present. Both present with different values is an error rather than a silent pick (STYLE:
/// never quietly ignore one of two overlapping fields). `null` is absent.
fn read_key<'a, T>(
    obj: &'a Map<String, Value>,
    ctx: &Ctx,
    key: &'static str,
    alias: Option<&'static str>,
    read: fn(&'a Value) -> Result<T, &'static str>,
) -> Result<Option<(&'static str, T)>, UsersError> {
    let main = obj.get(key).filter(|v| !v.is_null()).map(|v| (key, v));
    let alt = alias.and_then(|a| obj.get(a).filter(|v| !v.is_null()).map(|v| (a, v)));
    let found = match (main, alt) {
        (Some((_, a)), Some((alias, b))) if a != b => {
            return Err(ctx.err(
                key,
                format!("conflicts with its alias {alias:?}; give only one of them"),
            ))
        }
        (Some(m), _) => Some(m),
        (None, alt) => alt,
    };
    found
        .map(|(k, v)| read(v).map(|t| (k, t)).map_err(|e| ctx.err(k, e)))
        .transpose()
}

fn as_string(v: &Value) -> Result<&str, &'static str> {
    v.as_str().ok_or("must be a string")
}

/// A key that takes a string or an array of strings.
fn as_list(v: &Value) -> Result<Vec<&str>, &'static str> {
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().ok_or("array elements must be strings"))
            .collect(),
        _ => Err("must be a string or an array of strings"),
    }
}

/// `max-priority`: a number 0..7, or a string `parse_number` reads as one.
fn as_priority(v: &Value) -> Result<u8, &'static str> {
    let value = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => rights::parse_number(s),
        _ => None,
    };
    match value {
        Some(p) if p <= 7 => Ok(p as u8),
        _ => Err("must be a number 0..7"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// users.md §9.
    const EXAMPLE: &str = r#"{
  "users": [
    {
      "name": "admin",
      "password": "487636FDE3637C7C853AAC9EAF6FA062;357C71CA59F760C08C4125C444A22A91FD1FE1FB0E5628771A572BAF6F61B71F",
      "full-name": "Miss. Super User",
      "rights": "admin",
      "remotes": ["+127.0.0.0/8", "+192.168.0.0/16"],
      "allow-events": "",
      "filter": "",
      "mask": "",
      "note": "username='admin' password='secret'"
    },
    {
      "name": "user",
      "password": "8c3088f1b27432344f14d82033749797",
      "full-name": "Mr. Sample User",
      "rights": "user/set-filter",
      "remotes": "",
      "allow-events": ["10:*", "30:9", "20:3"],
      "filter": "0,0,0,-",
      "mask": "0,0,0,-",
      "note": "username='user' password='secret' (MD5 form)"
    }
  ]
}"#;

    /// The `admin` entry of the driver's debug/users.json as vectors.md V1 describes it.
    const V1_USERS: &str = r#"{
  "users": [
    {
      "name": "admin",
      "password": "2d1e4f91dae49cd08eaba2293e422273",
      "rights": "admin",
      "remotes": ["+127.0.0.0/24", "+192.168.0.0/16"],
      "events": "",
      "filter": "",
      "mask": "",
      "note": "A normal user. username='admin' password='secret'"
    }
  ]
}"#;

    const ZERO_HALF: &str = "0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00";

    fn one_user(fields: &str) -> Result<UserDb, UsersError> {
        UserDb::from_json(&format!(
            r#"{{"users":[{{"name":"bob","password":"8c3088f1b27432344f14d82033749797"{fields}}}]}}"#
        ))
    }

    fn bob(fields: &str) -> Arc<User> {
        one_user(fields).unwrap().get("bob").unwrap().clone()
    }

    #[test]
    fn example_loads() {
        let db = UserDb::from_json(EXAMPLE).unwrap();
        assert_eq!(db.len(), 2);
        assert!(db.unknown_keys().is_empty());

        let admin = db.get("admin").unwrap();
        assert_eq!(admin.id, 0);
        assert_eq!(admin.rights, rights::ADMIN);
        assert_eq!(admin.full_name, "Miss. Super User");
        assert!(admin.password_is_slow());
        assert!(admin.verify_password("secret"));
        assert!(!admin.verify_password("wrong"));
        assert!(admin.allows_remote("127.1.2.3".parse().unwrap()));
        assert!(!admin.allows_remote("10.0.0.1".parse().unwrap()));
        assert!(admin.allow_events.is_empty());
        assert_eq!(admin.filter, Filter::default());

        let user = db.get("user").unwrap();
        assert_eq!(user.id, 1);
        assert_eq!(user.rights, rights::USER | rights::SET_FILTER);
        assert!(user.can_set_filter());
        assert!(!user.password_is_slow());
        assert!(user.verify_password("secret"));
        assert!(user.remotes.is_empty());
        assert_eq!(user.allow_events.to_string(), "000A:*/001E:0009/0014:0003");
        assert!(db.get("nobody").is_none());
        assert!(db.get("Admin").is_none());
        assert_eq!(
            db.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
            ["admin", "user"]
        );
    }

    #[test]
    fn v1_auth1_fields() {
        let db = UserDb::from_json(V1_USERS).unwrap();
        let admin = db.get("admin").unwrap();
        assert!(admin.verify_password("secret"));
        let mut out = String::new();
        admin.write_auth1_fields(&mut out);
        // vectors.md V1 with the intended rights bit string in place of REF's XOR artefact.
        let want = format!(
            "0;admin;{};;{ZERO_HALF};{ZERO_HALF};{};+127.0.0.0/24,+192.168.0.0/16;;{}",
            "*".repeat(32),
            "1".repeat(32),
            "QSBub3JtYWwgdXNlci4gdXNlcm5hbWU9J2FkbWluJyBwYXNzd29yZD0nc2VjcmV0Jw=="
        );
        assert_eq!(out, want);
    }

    #[test]
    fn auth1_fields_of_user_with_everything() {
        let db = UserDb::from_json(EXAMPLE).unwrap();
        let mut out = String::new();
        db.get("user").unwrap().write_auth1_fields(&mut out);
        let fields: Vec<&str> = out.split(';').collect();
        assert_eq!(fields.len(), 10);
        assert_eq!(fields[0], "1");
        assert_eq!(fields[2].len(), 32);
        assert_eq!(fields[3], "Mr. Sample User");
        assert_eq!(fields[6], "00000100000101110000000001111111");
        assert_eq!(fields[8], "000A:*/001E:0009/0014:0003");

        let mut out = String::new();
        db.get("admin").unwrap().write_auth1_fields(&mut out);
        let fields: Vec<&str> = out.split(';').collect();
        // PBKDF2 stored value is 97 characters; the hash itself never appears.
        assert_eq!(fields[2], "*".repeat(97));
        assert!(!out.contains("487636"));
    }

    #[test]
    fn user_note_base64() {
        let u = bob(r#","note":"A normal user. username='user' password='secret'""#);
        let mut out = String::new();
        u.write_auth1_fields(&mut out);
        assert!(out.ends_with(";QSBub3JtYWwgdXNlci4gdXNlcm5hbWU9J3VzZXInIHBhc3N3b3JkPSdzZWNyZXQn"));
    }

    #[test]
    fn aliases() {
        let db = UserDb::from_json(
            r#"{"users":[{"user":" carol ","password":"8c3088f1b27432344f14d82033749797",
                "fullname":"Carol C","events":["10:*"]}]}"#,
        )
        .unwrap();
        let u = db.get("carol").unwrap();
        assert_eq!(u.full_name, "Carol C");
        assert!(u.allow_events.allows(10, 1));
        assert!(!u.allow_events.allows(11, 1));
        // Same value under both names is fine; different values are refused.
        assert!(one_user(r#","full-name":"X","fullname":"X""#).is_ok());
        let e = one_user(r#","full-name":"X","fullname":"Y""#).unwrap_err();
        assert_eq!(e.key, "full-name");
    }

    #[test]
    fn sanitised_name() {
        assert_eq!(sanitise_name("a;b:c'd\"e,f g"), "a_b_c_d_e_f_g");
        let db = UserDb::from_json(
            r#"{"users":[{"name":"o'neil x","password":"00000000000000000000000000000000"}]}"#,
        )
        .unwrap();
        let u = db.get("o'neil x").unwrap();
        assert_eq!(u.sanitised_name, "o_neil_x");
        let mut out = String::new();
        u.write_auth1_fields(&mut out);
        assert!(out.starts_with("0;o_neil_x;"));
    }

    #[test]
    fn defaults() {
        let u = bob("");
        assert_eq!(u.rights, rights::USER);
        assert!(u.remotes.is_empty());
        assert!(u.allow_events.is_empty());
        assert_eq!(u.max_priority, None);
        assert_eq!(u.full_name, "");
        assert_eq!(u.note, "");
        assert_eq!(u.filter, Filter::default());
        assert!(u.can_receive());
        assert!(!u.can_set_filter());
        // Explicit nulls behave as absent.
        let u = bob(r#","rights":null,"remotes":null,"note":null"#);
        assert_eq!(u.rights, rights::USER);
    }

    #[test]
    fn filter_and_mask() {
        let u = bob(r#","filter":"0,10,6,-","mask":"0,0xFFFF,0xFFFF,-""#);
        assert_eq!(u.filter.filter_class, 10);
        assert_eq!(u.filter.mask_type, 0xFFFF);
        let mut out = String::new();
        u.write_auth1_fields(&mut out);
        let fields: Vec<&str> = out.split(';').collect();
        assert_eq!(
            fields[4],
            "0,10,6,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"
        );
        assert_eq!(
            fields[5],
            "0,65535,65535,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"
        );
    }

    #[test]
    fn check_send_control_classes() {
        let user = bob(r#","rights":"user""#);
        let admin = bob(r#","rights":"admin""#);
        for class in [0u16, 512, 1024, 10, 20] {
            assert_eq!(admin.check_send(class, 1), Ok(()), "{class}");
        }
        assert_eq!(admin.check_send(1028, 1), Ok(()));
        // `user` has l1ctrl and l2ctrl but no HLO right.
        assert_eq!(user.check_send(0, 1), Ok(()));
        assert_eq!(user.check_send(512, 1), Ok(()));
        assert_eq!(user.check_send(1024, 1), Ok(()));
        assert_eq!(user.check_send(1028, 1), Err(SendDenied::ClassRight));
        assert_eq!(user.check_send(10, 6), Ok(()));

        let sender = bob(r#","rights":"send-events""#);
        assert_eq!(sender.check_send(10, 6), Ok(()));
        assert_eq!(sender.check_send(0, 1), Err(SendDenied::ClassRight));
        assert_eq!(sender.check_send(512, 1), Err(SendDenied::ClassRight));
        assert_eq!(sender.check_send(1024, 1), Err(SendDenied::ClassRight));
        assert_eq!(sender.check_send(1028, 1), Err(SendDenied::ClassRight));

        let mute = bob(r#","rights":"receive-events/l1ctrl-events""#);
        assert_eq!(mute.check_send(10, 6), Err(SendDenied::NoSendRight));
        assert_eq!(mute.check_send(0, 6), Err(SendDenied::NoSendRight));
        assert!(mute.can_receive());

        let listed = bob(r#","rights":"user","allow-events":"10:*,*:9""#);
        assert_eq!(listed.check_send(10, 1), Ok(()));
        assert_eq!(listed.check_send(30, 9), Ok(()));
        assert_eq!(listed.check_send(30, 8), Err(SendDenied::NotAllowed));
        // Class rights are checked before the list.
        let listed = bob(r#","rights":"send-events","allow-events":"*:*""#);
        assert_eq!(listed.check_send(1028, 1), Err(SendDenied::ClassRight));
    }

    #[test]
    fn receive_allow_list() {
        let u = bob(r#","allow-events":["RX;10;-1"]"#);
        assert!(u.can_receive_event(10, 6));
        assert!(!u.can_receive_event(20, 3));
        assert_eq!(u.check_send(20, 3), Ok(()));
        let u = bob(r#","rights":"send-events","allow-events":["RX;-1;-1"]"#);
        assert!(!u.can_receive_event(10, 6));
    }

    #[test]
    fn cap_priority() {
        let u = bob(r#","max-priority":3"#);
        assert_eq!(u.max_priority, Some(3));
        assert_eq!(u.cap_priority(0x0000), 0x0060); // priority 0 → 3
        assert_eq!(u.cap_priority(0x0020), 0x0060); // 1 → 3
        assert_eq!(u.cap_priority(0x0060), 0x0060); // 3 stays
        assert_eq!(u.cap_priority(0x00E0), 0x00E0); // 7 stays
        assert_eq!(u.cap_priority(0x0108), 0x0168); // other head bits kept
        let u = bob("");
        assert_eq!(u.cap_priority(0x0000), 0x0000);
        assert_eq!(bob(r#","max-priority":"7""#).max_priority, Some(7));
        assert_eq!(bob(r#","max-priority":0"#).cap_priority(0x0000), 0x0000);
    }

    #[test]
    fn unknown_keys_are_collected() {
        let db = UserDb::from_json(
            r#"{"users":[
                {"name":"a","password":"00000000000000000000000000000000","credentials":"x","zz":1},
                {"name":"b","password":"00000000000000000000000000000000","credentials":"y"}]}"#,
        )
        .unwrap();
        assert_eq!(db.unknown_keys(), ["credentials", "zz"]);
    }

    fn load_err(fields: &str) -> UsersError {
        one_user(fields).unwrap_err()
    }

    #[test]
    fn malformed_users_name_the_key() {
        let e = load_err(r#","rights":"user/foo""#);
        assert_eq!(
            e.to_string(),
            r#"users[0] ("bob"): key "rights": unknown right "foo""#
        );
        assert_eq!(e.index, Some(0));
        assert_eq!(e.user.as_deref(), Some("bob"));

        for (fields, key) in [
            (r#","rights":5"#, "rights"),
            (r#","rights":["user",5]"#, "rights"),
            (r#","remotes":"127.0.0.1""#, "remotes"),
            (r#","remotes":["+fe80::/129"]"#, "remotes"),
            (r#","allow-events":"10""#, "allow-events"),
            (r#","events":["TX;10;6;2"]"#, "events"),
            (r#","filter":"0,zz,0,-""#, "filter"),
            (r#","mask":"0,0,0,GG""#, "mask"),
            (r#","filter":7"#, "filter"),
            (r#","note":["x"]"#, "note"),
            (r#","full-name":true"#, "full-name"),
            (r#","max-priority":8"#, "max-priority"),
            (r#","max-priority":-1"#, "max-priority"),
            (r#","max-priority":1.5"#, "max-priority"),
            (r#","max-priority":"high""#, "max-priority"),
        ] {
            let e = load_err(fields);
            assert_eq!(e.key, key, "{fields}: {e}");
            assert!(e.to_string().starts_with("users[0] (\"bob\"): key"), "{e}");
        }
    }

    #[test]
    fn name_and_password_are_required() {
        let e = UserDb::from_json(r#"{"users":[{"password":"00000000000000000000000000000000"}]}"#)
            .unwrap_err();
        assert_eq!(e.to_string(), r#"users[0]: key "name": missing"#);
        let e = UserDb::from_json(
            r#"{"users":[{"name":"  ","password":"00000000000000000000000000000000"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.key, "name");
        let e = UserDb::from_json(r#"{"users":[{"name":5,"password":"x"}]}"#).unwrap_err();
        assert_eq!(e.key, "name");
        let e = UserDb::from_json(r#"{"users":[{"name":"a"}]}"#).unwrap_err();
        assert_eq!(e.to_string(), r#"users[0] ("a"): key "password": missing"#);
        let e = UserDb::from_json(r#"{"users":[{"name":"a","password":" "}]}"#).unwrap_err();
        assert_eq!(e.key, "password");
        let e = UserDb::from_json(r#"{"users":[{"name":"a","password":"secret"}]}"#).unwrap_err();
        assert_eq!(e.key, "password");
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn duplicates_are_refused() {
        let e = UserDb::from_json(
            r#"{"users":[
                {"name":"a","password":"00000000000000000000000000000000"},
                {"name":"b","password":"00000000000000000000000000000000"},
                {"name":" a","password":"00000000000000000000000000000000"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.index, Some(2));
        assert_eq!(e.key, "name");
        assert!(e.reason.contains("users[0]"), "{e}");
    }

    #[test]
    fn file_level_errors() {
        for (text, key) in [
            ("", ""),
            ("[]", ""),
            ("{}", "users"),
            (r#"{"users":{}}"#, "users"),
            (r#"{"users":[1]}"#, ""),
        ] {
            let e = UserDb::from_json(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
        let e = UserDb::from_json("{}").unwrap_err();
        assert_eq!(e.to_string(), r#"key "users": missing"#);
        assert!(UserDb::from_json(r#"{"users":[]}"#).unwrap().is_empty());
    }
}
