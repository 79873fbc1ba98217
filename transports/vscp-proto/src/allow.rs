//! Per-user allowed-event list, users.json key `allow-events` (alias `events`), users.md §6.
//!
//! Two entry grammars are accepted:
//!
//! * REF: `*:*`, `<class>:*`, `*:<type>`, `<class>:<type>` (numbers decimal or `0x`…). These
//!   restrict **sending** only. Unlike REF, `*:<type>` actually matches.
//! * Driver docs / SPEC: `TX|RX|BOTH;<class>;<type>[;<priority>]` with `-1` (or `*`) as wildcard
//!   and an empty direction meaning BOTH. TX and BOTH entries restrict sending like REF entries;
//!   RX and BOTH entries form a separate receive allow-list.
//!
//! Each list is independent: a list with no entries of its direction allows everything in that
//! direction, so a user with only RX entries may still send anything.

use std::fmt;

use crate::rights::parse_number;

/// Which list an entry belongs to, and which grammar it was written in (kept for display).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// REF `class:type` grammar — sending only.
    Send,
    /// `TX;…` — sending only.
    Tx,
    /// `RX;…` — receiving only.
    Rx,
    /// `BOTH;…` (or an empty direction) — both lists.
    Both,
}

impl Direction {
    fn sends(self) -> bool {
        matches!(self, Direction::Send | Direction::Tx | Direction::Both)
    }

    fn receives(self) -> bool {
        matches!(self, Direction::Rx | Direction::Both)
    }
}

/// One allowed class/type pattern; `None` is the wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowEntry {
    pub direction: Direction,
    pub class: Option<u16>,
    pub vscp_type: Option<u16>,
}

impl AllowEntry {
    fn matches(&self, class: u16, vscp_type: u16) -> bool {
        self.class.is_none_or(|c| c == class) && self.vscp_type.is_none_or(|t| t == vscp_type)
    }
}

/// The parsed `allow-events` value. The default (empty) allows everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowEvents {
    entries: Vec<AllowEntry>,
}

impl AllowEvents {
    /// Parses the string form: comma-separated entries, trimmed, empty entries skipped.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_items([text])
    }

    /// Parses the array form (one entry per element; elements are also split on `,`).
    pub fn parse_items<'a, I>(items: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut entries = Vec::new();
        for item in items {
            for entry in item.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                entries.push(parse_entry(entry)?);
            }
        }
        Ok(Self { entries })
    }

    /// The entries in file order.
    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    /// True when no entry of any direction is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// May the user send an event of this class/type? (Checked after the right bits.)
    pub fn allows(&self, class: u16, vscp_type: u16) -> bool {
        Self::check(
            self.entries.iter().filter(|e| e.direction.sends()),
            class,
            vscp_type,
        )
    }

    /// May the user receive an event of this class/type? Only RX/BOTH entries restrict this.
    pub fn allows_receive(&self, class: u16, vscp_type: u16) -> bool {
        Self::check(
            self.entries.iter().filter(|e| e.direction.receives()),
            class,
            vscp_type,
        )
    }

    fn check<'a>(
        mut list: impl Iterator<Item = &'a AllowEntry>,
        class: u16,
        vscp_type: u16,
    ) -> bool {
        let mut empty = true;
        let hit = list.any(|e| {
            empty = false;
            e.matches(class, vscp_type)
        });
        hit || empty
    }
}

fn parse_entry(entry: &str) -> Result<AllowEntry, String> {
    if entry.contains(';') {
        parse_directional(entry)
    } else {
        parse_ref(entry)
    }
}

fn parse_ref(entry: &str) -> Result<AllowEntry, String> {
    let bad = || format!("invalid allowed event {entry:?} (expected class:type, `*` as wildcard)");
    let (class, vscp_type) = entry.split_once(':').ok_or_else(bad)?;
    let field = |s: &str| -> Result<Option<u16>, String> {
        match s.trim() {
            "*" => Ok(None),
            n => read_u16(n).map(Some).ok_or_else(bad),
        }
    };
    Ok(AllowEntry {
        direction: Direction::Send,
        class: field(class)?,
        vscp_type: field(vscp_type)?,
    })
}

fn parse_directional(entry: &str) -> Result<AllowEntry, String> {
    let bad = || {
        format!(
            "invalid allowed event {entry:?} (expected TX|RX|BOTH;class;type[;priority], -1 as wildcard)"
        )
    };
    let parts: Vec<&str> = entry.split(';').map(str::trim).collect();
    if !(3..=4).contains(&parts.len()) {
        return Err(bad());
    }
    let direction = match parts[0].to_ascii_uppercase().as_str() {
        "TX" => Direction::Tx,
        "RX" => Direction::Rx,
        "BOTH" | "" => Direction::Both,
        _ => return Err(bad()),
    };
    let field = |s: &str| -> Result<Option<u16>, String> {
        match s {
            "*" | "-1" => Ok(None),
            n => read_u16(n).map(Some).ok_or_else(bad),
        }
    };
    // The documented priority field has no defined meaning (neither a match condition nor a cap
    // is described, and no implementation exists). Guessing either way could widen what a user
    // may send, so only the wildcard is accepted; `max-priority` covers the documented intent.
    if let Some(prio) = parts.get(3) {
        if !matches!(*prio, "" | "*" | "-1") {
            return Err(format!(
                "allowed event {entry:?}: a per-entry priority is not supported (use \"max-priority\")"
            ));
        }
    }
    Ok(AllowEntry {
        direction,
        class: field(parts[1])?,
        vscp_type: field(parts[2])?,
    })
}

fn read_u16(text: &str) -> Option<u16> {
    parse_number(text).and_then(|n| u16::try_from(n).ok())
}

impl fmt::Display for AllowEntry {
    /// REF entries in REF's normalised `%04X:%04X` form; directional ones with a `TX:`/`RX:`/`BOTH:`
    /// prefix and `:` separators, because `;` would split the AUTH1 line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.direction {
            Direction::Send => {}
            Direction::Tx => f.write_str("TX:")?,
            Direction::Rx => f.write_str("RX:")?,
            Direction::Both => f.write_str("BOTH:")?,
        }
        match self.class {
            Some(c) => write!(f, "{c:04X}:")?,
            None => f.write_str("*:")?,
        }
        match self.vscp_type {
            Some(t) => write!(f, "{t:04X}"),
            None => f.write_str("*"),
        }
    }
}

/// Entries joined with `/`, the AUTH1 `events` field (`000A:*/001E:0009`).
impl fmt::Display for AllowEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{entry}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_allows_all() {
        for a in [
            AllowEvents::parse("").unwrap(),
            AllowEvents::parse(" , ,").unwrap(),
            AllowEvents::parse_items([]).unwrap(),
            AllowEvents::default(),
        ] {
            assert!(a.is_empty());
            assert!(a.allows(0, 0));
            assert!(a.allows(65535, 65535));
            assert!(a.allows_receive(10, 6));
            assert_eq!(a.to_string(), "");
        }
    }

    #[test]
    fn star_star() {
        let a = AllowEvents::parse("*:*").unwrap();
        assert!(a.allows(1024, 3));
        assert_eq!(a.to_string(), "*:*");
    }

    #[test]
    fn class_star() {
        let a = AllowEvents::parse("10:*").unwrap();
        assert!(a.allows(10, 0));
        assert!(a.allows(10, 6));
        assert!(!a.allows(11, 6));
        assert_eq!(a.to_string(), "000A:*");
    }

    #[test]
    fn star_type_works() {
        let a = AllowEvents::parse("*:9").unwrap();
        assert!(a.allows(30, 9));
        assert!(a.allows(1040, 9));
        assert!(!a.allows(30, 8));
        assert_eq!(a.to_string(), "*:0009");
    }

    #[test]
    fn class_type() {
        let a = AllowEvents::parse_items(["10:*", "30:9", "0x14:0x3"]).unwrap();
        assert!(a.allows(30, 9));
        assert!(!a.allows(30, 10));
        assert!(a.allows(20, 3));
        assert!(!a.allows(20, 4));
        assert!(a.allows(10, 99));
        assert_eq!(a.to_string(), "000A:*/001E:0009/0014:0003");
        // REF grammar never restricts receiving.
        assert!(a.allows_receive(1, 1));
    }

    #[test]
    fn string_form_is_comma_separated() {
        let a = AllowEvents::parse(" 10:* , 30 : 9 ").unwrap();
        assert_eq!(a.to_string(), "000A:*/001E:0009");
        assert_eq!(a.entries().len(), 2);
    }

    #[test]
    fn directional_form() {
        let a = AllowEvents::parse_items(["TX;10;-1", "rx;20;3", "BOTH;30;*;-1"]).unwrap();
        assert!(a.allows(10, 6));
        assert!(a.allows(30, 1));
        assert!(!a.allows(20, 3)); // RX only
        assert!(a.allows_receive(20, 3));
        assert!(a.allows_receive(30, 5));
        assert!(!a.allows_receive(10, 6)); // TX only
        assert_eq!(a.to_string(), "TX:000A:*/RX:0014:0003/BOTH:001E:*");

        // Only RX entries: sending stays unrestricted.
        let a = AllowEvents::parse("RX;-1;-1").unwrap();
        assert!(a.allows(1, 2));
        assert!(a.allows_receive(1, 2));
        let a = AllowEvents::parse(";10;6").unwrap();
        assert_eq!(a.entries()[0].direction, Direction::Both);
    }

    #[test]
    fn malformed_entries_are_errors() {
        for bad in [
            "10",
            "10:",
            ":5",
            "x:*",
            "10:0x10000",
            "65536:*",
            "-1:*",
            "10:5:3",
            "UP;10;6",
            "TX;10",
            "TX;10;6;1;2",
            "TX;10;6;3",
            "TX;ten;6",
            "TX;-2;6",
        ] {
            let err = AllowEvents::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
        assert!(AllowEvents::parse_items(["10:*", "bogus"]).is_err());
    }
}
