//! User right bits and the `rights` key of users.json (users.md §4).
//!
//! Rights are a 64-bit value of which only the low 32 bits are defined. The websocket server
//! looks at [`SEND_EVENTS`], [`L1CTRL_EVENTS`], [`L2CTRL_EVENTS`], [`HLO_EVENTS`],
//! [`RECEIVE_EVENTS`] and [`SET_FILTER`]; the others are parsed and shown in AUTH1 only.

/// May use the TCP/IP link interface (`tcpip`).
pub const TCPIP: u64 = 0x0000_0001;
/// May use websockets (`ws`, `ws1`, `ws2`). Not checked by REF; see users.md §4.
pub const WS: u64 = 0x0000_0002;
/// Web interface. The token `web` is the composite [`WEB`], so this bit has no own token.
pub const WEB_INTERFACE: u64 = 0x0000_0004;
/// REST interface (see [`REST`] for the token).
pub const REST_INTERFACE: u64 = 0x0000_0008;
/// UDP interface (see [`UDP`] for the token).
pub const UDP_INTERFACE: u64 = 0x0000_0010;
/// MQTT interface (see [`MQTT`] for the token).
pub const MQTT_INTERFACE: u64 = 0x0000_0020;
/// Multicast (`multicast`).
pub const MULTICAST: u64 = 0x0000_0040;
/// Required to send any event (`send-events`).
pub const SEND_EVENTS: u64 = 0x0001_0000;
/// Required to send class 0 and class 512 events (`l1ctrl-events`).
pub const L1CTRL_EVENTS: u64 = 0x0002_0000;
/// Required to send class 1024 events (`l2ctrl-events`).
pub const L2CTRL_EVENTS: u64 = 0x0004_0000;
/// Required to send class 1028 (HLO) events (`hlo-events`).
pub const HLO_EVENTS: u64 = 0x0008_0000;
/// Required to receive events (`receive-events`).
pub const RECEIVE_EVENTS: u64 = 0x0010_0000;
/// Required for SETFILTER/SF (`set-filter`).
pub const SET_FILTER: u64 = 0x0400_0000;
/// `set-guid` (not used by the websocket server).
pub const SET_GUID: u64 = 0x0800_0000;
/// `test`.
pub const TEST: u64 = 0x1000_0000;
/// `interface`.
pub const INTERFACE: u64 = 0x2000_0000;
/// `restart`.
pub const RESTART: u64 = 0x4000_0000;
/// `shutdown`.
pub const SHUTDOWN: u64 = 0x8000_0000;

/// Composite `admin`: every bit, including the undefined high ones (REF value).
pub const ADMIN: u64 = u64::MAX;
/// Composite `user`: interfaces, multicast, send, receive, l1ctrl, l2ctrl — no set-filter, no HLO.
pub const USER: u64 = 0x0017_007F;
/// Composite `driver`: send, receive, l1ctrl, l2ctrl.
pub const DRIVER: u64 = 0x0017_0000;
/// Composite `tcp`: driver + tcpip.
pub const TCP: u64 = DRIVER | TCPIP;
/// Composite `websockets`: driver + websockets.
pub const WEBSOCKETS: u64 = DRIVER | WS;
/// Composite `web`: driver + web interface.
pub const WEB: u64 = DRIVER | WEB_INTERFACE;
/// Composite `rest`: driver + REST.
pub const REST: u64 = DRIVER | REST_INTERFACE;
/// Composite `udp`: driver + UDP.
pub const UDP: u64 = DRIVER | UDP_INTERFACE;
/// Composite `mqtt`: driver + MQTT.
pub const MQTT: u64 = DRIVER | MQTT_INTERFACE;

/// Token table. Composites and single bits share one namespace, so the order does not matter
/// (REF checks composites first only because its lookup is a chain of `if`s).
const TOKENS: &[(&str, u64)] = &[
    ("admin", ADMIN),
    ("user", USER),
    ("driver", DRIVER),
    ("tcp", TCP),
    ("websockets", WEBSOCKETS),
    ("web", WEB),
    ("rest", REST),
    ("udp", UDP),
    ("mqtt", MQTT),
    ("tcpip", TCPIP),
    ("ws", WS),
    ("ws1", WS),
    ("ws2", WS),
    ("multicast", MULTICAST),
    ("send-events", SEND_EVENTS),
    ("l1ctrl-events", L1CTRL_EVENTS),
    ("l2ctrl-events", L2CTRL_EVENTS),
    ("hlo-events", HLO_EVENTS),
    ("receive-events", RECEIVE_EVENTS),
    ("set-filter", SET_FILTER),
    ("set-guid", SET_GUID),
    ("test", TEST),
    ("interface", INTERFACE),
    ("restart", RESTART),
    ("shutdown", SHUTDOWN),
];

/// Reads the rights of one user.
///
/// Each item is one JSON array element, or the whole value when `rights` is a string; every item is
/// further split on `,`, `/` and whitespace, so `"user/set-filter"`, `"user, set-filter"` and
/// `["user", "set-filter"]` are the same (REC; REF splits on `/` only and collapses arrays to 0).
///
/// Tokens are case-insensitive words from users.md §4 or numbers (decimal, `0x`, `0o`, `0b`),
/// all OR-ed together. An unknown word is an error naming it, because REF's silent "adds 0" turns a
/// typo into a user without rights.
///
/// No tokens at all (absent key, `""`, `[]`, `["", ""]`) give [`USER`]: users.md says an absent
/// value means `user`, and an empty one is treated alike so that a blank template field does not
/// silently lock a user out. An explicit `"0"` is the way to grant nothing.
pub fn parse_rights<'a, I>(items: I) -> Result<u64, String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut rights = 0u64;
    let mut any = false;
    for item in items {
        for token in item
            .split(|c: char| c == ',' || c == '/' || c.is_whitespace())
            .filter(|t| !t.is_empty())
        {
            any = true;
            rights |= parse_token(token)?;
        }
    }
    Ok(if any { rights } else { USER })
}

fn parse_token(token: &str) -> Result<u64, String> {
    if let Some(&(_, bits)) = TOKENS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(token))
    {
        return Ok(bits);
    }
    parse_number(token).ok_or_else(|| format!("unknown right {token:?}"))
}

/// The AUTH1 `rights` field.
///
/// Chosen form (ws1.md Q7): the *intended* 32 characters `0`/`1`, most significant bit first, of
/// the low 32 rights bits — e.g. `admin` → 32 ones, `user` → `00000000000101110000000001111111`.
/// REF's XOR bug prints a near-constant string that carries no information; no known client parses
/// the field, so the meaningful form is the better compatibility trade.
pub fn rights_bit_string(rights: u64) -> String {
    format!("{:032b}", rights & 0xFFFF_FFFF)
}

/// The crate number reader (decimal, `0x`/`0o`/`0b`), except that an empty token is not 0:
/// in users.json an empty class or type is a mistake, not "zero".
pub(crate) fn parse_number(text: &str) -> Option<u64> {
    if text.trim().is_empty() {
        return None;
    }
    crate::number::read_u64("users.json", text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composites_match_spec_values() {
        assert_eq!(USER, 0x0017_007F);
        assert_eq!(DRIVER, 0x0017_0000);
        assert_eq!(TCP, 0x0017_0001);
        assert_eq!(WEBSOCKETS, 0x0017_0002);
        assert_eq!(WEB, 0x0017_0004);
        assert_eq!(REST, 0x0017_0008);
        assert_eq!(UDP, 0x0017_0010);
        assert_eq!(MQTT, 0x0017_0020);
        assert_eq!(USER & SET_FILTER, 0);
        assert_eq!(USER & HLO_EVENTS, 0);
    }

    #[test]
    fn admin_and_user() {
        assert_eq!(parse_rights(["admin"]), Ok(ADMIN));
        assert_eq!(parse_rights(["ADMIN"]), Ok(ADMIN));
        assert_eq!(parse_rights(["user"]), Ok(USER));
        assert_eq!(parse_rights(["User"]), Ok(USER));
    }

    #[test]
    fn separators() {
        let want = USER | SET_FILTER;
        assert_eq!(parse_rights(["user/set-filter"]), Ok(want));
        assert_eq!(parse_rights(["user,set-filter"]), Ok(want));
        assert_eq!(parse_rights([" user  set-filter "]), Ok(want));
        assert_eq!(parse_rights(["user, / set-filter,"]), Ok(want));
    }

    #[test]
    fn arrays_are_element_wise() {
        assert_eq!(parse_rights(["user", "set-filter"]), Ok(USER | SET_FILTER));
        // Sample user `special1` (`["user",""]`) has no rights in REF; REC reads it as `user`.
        assert_eq!(parse_rights(["user", ""]), Ok(USER));
        assert_eq!(
            parse_rights(["send-events", "receive-events"]),
            Ok(SEND_EVENTS | RECEIVE_EVENTS)
        );
    }

    #[test]
    fn empty_means_user() {
        assert_eq!(parse_rights([""]), Ok(USER));
        assert_eq!(parse_rights(std::iter::empty()), Ok(USER));
        assert_eq!(parse_rights(["", " "]), Ok(USER));
    }

    #[test]
    fn numbers_are_ored() {
        assert_eq!(parse_rights(["0"]), Ok(0));
        assert_eq!(parse_rights(["0x10000"]), Ok(SEND_EVENTS));
        assert_eq!(
            parse_rights(["65536/1048576"]),
            Ok(SEND_EVENTS | RECEIVE_EVENTS)
        );
        assert_eq!(
            parse_rights(["driver", "0X04000000"]),
            Ok(DRIVER | SET_FILTER)
        );
        assert_eq!(parse_rights(["0b11"]), Ok(TCPIP | WS));
    }

    #[test]
    fn every_single_token() {
        for (name, bits) in TOKENS {
            assert_eq!(parse_rights([*name]), Ok(*bits), "{name}");
            assert_eq!(
                parse_rights([name.to_uppercase().as_str()]),
                Ok(*bits),
                "{name}"
            );
        }
        assert_eq!(parse_rights(["ws1"]), Ok(WS));
        assert_eq!(parse_rights(["hlo-events"]), Ok(HLO_EVENTS));
    }

    #[test]
    fn unknown_word_is_an_error_naming_it() {
        let err = parse_rights(["user/foo"]).unwrap_err();
        assert_eq!(err, "unknown right \"foo\"");
        assert!(parse_rights(["lsctrl-events"]).is_err());
        assert!(parse_rights(["-1"]).is_err());
        assert!(parse_rights(["+5"]).is_err());
        assert!(parse_rights(["0x"]).is_err());
    }

    #[test]
    fn bit_string() {
        assert_eq!(rights_bit_string(ADMIN), "1".repeat(32));
        assert_eq!(rights_bit_string(USER), "00000000000101110000000001111111");
        assert_eq!(rights_bit_string(0), "0".repeat(32));
        assert_eq!(rights_bit_string(SHUTDOWN), format!("1{}", "0".repeat(31)));
    }

    #[test]
    fn number_reader() {
        assert_eq!(parse_number("10"), Some(10));
        assert_eq!(parse_number(" 0x1E "), Some(30));
        assert_eq!(parse_number("0o17"), Some(15));
        assert_eq!(parse_number("0B101"), Some(5));
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("1a"), None);
        assert_eq!(parse_number("0x-1"), None);
        assert_eq!(parse_number("99999999999999999999999"), None);
    }
}
