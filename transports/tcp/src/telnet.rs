//! Telnet command bytes in a command line (tcp.md §1.1, REC): a person may connect with
//! `telnet`, which sends option negotiations and, on Ctrl-C, IP. They are removed; nothing is
//! ever answered, so telnet keeps its defaults (local echo, line mode).
//!
//! Applied to one line at a time (the bytes before its LF), so a broken sequence can never
//! swallow later lines.

/// Interpret As Command.
const IAC: u8 = 0xFF;
/// Subnegotiation begin / end.
const SB: u8 = 0xFA;
const SE: u8 = 0xF0;
/// WILL, WONT, DO, DONT: followed by one option byte.
const WILL: u8 = 0xFB;
const DONT: u8 = 0xFE;

/// Removes telnet commands from `line` in place; returns the length of what is left.
///
/// - `IAC IAC` is one data byte 0xFF;
/// - `IAC WILL|WONT|DO|DONT opt` is removed (3 bytes);
/// - `IAC SB … IAC SE` is removed, and an SB without its SE removes the rest of the line;
/// - `IAC x` for any other `x` (NOP, DM, BRK, IP, AO, AYT, EC, EL, GA) is removed (2 bytes);
/// - an `IAC` as the last byte is removed.
pub fn strip(line: &mut [u8]) -> usize {
    let len = line.len();
    let (mut r, mut w) = (0, 0);
    while r < len {
        let b = line[r];
        if b != IAC {
            line[w] = b;
            w += 1;
            r += 1;
            continue;
        }
        r = match line.get(r + 1).copied() {
            None => len,
            Some(IAC) => {
                line[w] = IAC;
                w += 1;
                r + 2
            }
            Some(WILL..=DONT) => (r + 3).min(len),
            Some(SB) => line[r + 2..]
                .windows(2)
                .position(|p| p == [IAC, SE])
                .map_or(len, |j| r + 2 + j + 2),
            Some(_) => r + 2,
        };
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(bytes: &[u8]) -> Vec<u8> {
        let mut v = bytes.to_vec();
        let n = strip(&mut v);
        v.truncate(n);
        v
    }

    #[test]
    fn every_kind_of_sequence() {
        assert_eq!(stripped(b"noop"), b"noop");
        assert_eq!(stripped(b"\xFF\xFB\x18\xFF\xFD\x03noop"), b"noop");
        assert_eq!(
            stripped(b"no\xFF\xF4op"),
            b"noop",
            "IP (Ctrl-C) closes nothing"
        );
        assert_eq!(stripped(b"no\xFF\xFA\x18\x00xterm\xFF\xF0op"), b"noop");
        assert_eq!(
            stripped(b"noop\xFF\xFA\x18\x00xterm"),
            b"noop",
            "SB without SE"
        );
        assert_eq!(stripped(b"noop\xFF\xFF"), b"noop\xFF");
        assert_eq!(stripped(b"noop\xFF"), b"noop");
        assert_eq!(stripped(b"noop\xFF\xFD"), b"noop", "cut option");
        assert_eq!(stripped(b"\xFF\xFA\xFF\xF0"), b"");
        assert_eq!(stripped(b""), b"");
    }
}
