//! Properties of the frame decoder (RFC 6455 §5) over generated client streams: whole messages,
//! fragmented at random with control frames between the fragments, masked with random keys,
//! then cut into reads at random points.
//!
//! - Any split of a valid byte stream into reads yields the same messages, in order, with
//!   nothing left over.
//! - Fragments reassemble into the message, whatever the fragment sizes and the control frames
//!   between them; a data frame inside a fragmented message, or a continuation without a
//!   start, is refused; text that goes bad is refused at the fragment that makes it bad.
//! - Masking: any masking key gives back the payload; any unmasked frame is refused; control
//!   frames over 125 bytes or fragmented are refused.

use proptest::prelude::*;
use vscp_transport::WireError;
use vscp_ws::framing::{Decoded, Decoder, Incoming};

const MAX: usize = 1 << 20;

/// What a decoded stream held, for comparison.
#[derive(Clone, Debug, PartialEq)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(Option<(u16, String)>),
}

/// One client frame: FIN, opcode, payload, masking key (`None`: unmasked).
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![(fin as u8) << 7 | opcode];
    let bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        f.push(bit | len as u8);
    } else if len <= 0xFFFF {
        f.push(bit | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(bit | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// A generated message and how it goes on the wire.
#[derive(Clone, Debug)]
struct Planned {
    msg: Msg,
    /// Fragment boundaries (data messages only): cut points into the payload.
    cuts: Vec<usize>,
    /// A ping sent between the fragments, after this many of them.
    ping_after: Option<(usize, Vec<u8>)>,
    key: [u8; 4],
}

fn planned() -> impl Strategy<Value = Planned> {
    let msg = prop_oneof![
        ".{0,200}".prop_map(Msg::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Msg::Binary),
        // Over 125 and over 65535 bytes: the 16- and 64-bit length forms.
        (126usize..70_000).prop_map(|n| Msg::Binary(vec![0xA5; n])),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Msg::Ping),
        Just(Msg::Pong),
        Just(Msg::Close(None)),
        (1000u16..=1003, ".{0,30}").prop_map(|(c, r)| Msg::Close(Some((c, r)))),
    ];
    (
        msg,
        proptest::collection::vec(any::<usize>(), 0..4),
        proptest::option::of((
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 0..10),
        )),
        any::<[u8; 4]>(),
    )
        .prop_map(|(msg, cuts, ping_after, key)| Planned {
            msg,
            cuts,
            ping_after,
            key,
        })
}

/// The frames of `p`, and what decoding them yields (a ping between fragments comes first).
fn encode(p: &Planned) -> (Vec<u8>, Vec<Msg>) {
    let key = Some(p.key);
    let (opcode, payload) = match &p.msg {
        Msg::Text(t) => (1, t.as_bytes().to_vec()),
        Msg::Binary(b) => (2, b.clone()),
        Msg::Ping(b) => return (frame(true, 9, b, key), vec![p.msg.clone()]),
        Msg::Pong => return (frame(true, 10, b"", key), vec![Msg::Pong]),
        Msg::Close(c) => {
            let mut body = Vec::new();
            if let Some((code, reason)) = c {
                body.extend_from_slice(&code.to_be_bytes());
                body.extend_from_slice(reason.as_bytes());
            }
            if body.len() > 125 {
                return (frame(true, 8, b"", key), vec![Msg::Close(None)]);
            }
            return (frame(true, 8, &body, key), vec![p.msg.clone()]);
        }
    };
    let mut cuts: Vec<usize> = p.cuts.iter().map(|c| c % (payload.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut from = 0;
    for c in cuts {
        pieces.push(&payload[from..c]);
        from = c;
    }
    pieces.push(&payload[from..]);
    let mut out = Vec::new();
    let mut expect = Vec::new();
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter().enumerate() {
        let op = if i == 0 { opcode } else { 0 };
        out.extend(frame(i == last, op, piece, key));
        if let Some((after, ping)) = &p.ping_after {
            if i < last && *after % pieces.len() == i {
                out.extend(frame(true, 9, ping, key));
                expect.push(Msg::Ping(ping.clone()));
            }
        }
    }
    expect.push(p.msg.clone());
    (out, expect)
}

/// Decodes `stream` delivered in reads that end at `cuts`, as the server's driver does: every
/// whole frame of a read, the rest kept for the next one.
fn decode(stream: &[u8], cuts: &[usize]) -> Result<Vec<Msg>, WireError> {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    ends.push(stream.len());
    ends.sort_unstable();
    let mut d = Decoder::default();
    let mut pending = Vec::new();
    let mut got = Vec::new();
    let mut from = 0;
    for end in ends {
        pending.extend_from_slice(&stream[from..end]);
        from = end;
        loop {
            match d.decode(&mut pending, MAX)? {
                Decoded::Incomplete => break,
                Decoded::Frame { used, msg } => {
                    if let Some(m) = msg {
                        got.push(match m {
                            Incoming::Text(t) => Msg::Text(String::from_utf8(t.to_vec()).unwrap()),
                            Incoming::Binary(b) => Msg::Binary(b.to_vec()),
                            Incoming::Ping(p) => Msg::Ping(p.to_vec()),
                            Incoming::Pong => Msg::Pong,
                            Incoming::Close(c) => Msg::Close(c.map(|(c, r)| (c, r.to_string()))),
                        });
                    }
                    pending.drain(..used);
                }
            }
        }
    }
    assert!(pending.is_empty(), "{} bytes left over", pending.len());
    Ok(got)
}

fn data_opcode() -> impl Strategy<Value = u8> {
    prop_oneof![Just(1u8), Just(2)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_split_yields_the_same_messages(
        plan in proptest::collection::vec(planned(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut stream = Vec::new();
        let mut expect = Vec::new();
        for p in &plan {
            let (bytes, msgs) = encode(p);
            stream.extend(bytes);
            expect.extend(msgs);
        }
        prop_assert_eq!(&decode(&stream, &[])?, &expect);
        prop_assert_eq!(&decode(&stream, &cuts)?, &expect);
        // Byte by byte at the start: every incomplete state of the first frames is seen.
        let every: Vec<usize> = (0..stream.len().min(4000)).collect();
        prop_assert_eq!(&decode(&stream, &every)?, &expect);
    }

    #[test]
    fn unmasked_frames_are_refused(
        first in planned(),
        opcode in prop_oneof![Just(1u8), Just(2), Just(8), Just(9), Just(10)],
        payload in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let (mut stream, _) = encode(&first);
        stream.extend(frame(true, opcode, &payload, None));
        prop_assert_eq!(
            decode(&stream, &[]).err(),
            Some(WireError::Protocol("unmasked frame from a client"))
        );
    }

    #[test]
    fn a_data_frame_inside_a_fragmented_message_is_refused(
        key in any::<[u8; 4]>(),
        first in ".{0,20}",
        opcode in data_opcode(),
        inner in data_opcode(),
        fin in any::<bool>(),
    ) {
        let mut stream = frame(false, opcode, first.as_bytes(), Some(key));
        stream.extend(frame(fin, inner, b"x", Some(key)));
        prop_assert_eq!(
            decode(&stream, &[]).err(),
            Some(WireError::Protocol("new message inside a fragmented one"))
        );
    }

    #[test]
    fn a_continuation_without_a_start_is_refused(
        plan in proptest::collection::vec(planned(), 0..4),
        key in any::<[u8; 4]>(),
        fin in any::<bool>(),
    ) {
        let mut stream: Vec<u8> = plan.iter().flat_map(|p| encode(p).0).collect();
        stream.extend(frame(fin, 0, b"more", Some(key)));
        prop_assert_eq!(
            decode(&stream, &[]).err(),
            Some(WireError::Protocol("continuation without a start"))
        );
    }

    #[test]
    fn bad_text_is_refused_at_its_fragment(
        key in any::<[u8; 4]>(),
        good in ".{0,40}",
        cut in any::<usize>(),
        bad in prop_oneof![Just(&b"\xFF"[..]), Just(&b"\xC0\xAF"[..]), Just(&b"\xED\xA0\x80"[..]), Just(&b"\xF4\x90\x80\x80"[..])],
    ) {
        // Valid text cut anywhere (even inside a character) into two fragments, then a
        // fragment with an invalid sequence: refused when that fragment arrives, though the
        // message never ends.
        let cut = cut % (good.len() + 1);
        let mut stream = frame(false, 1, &good.as_bytes()[..cut], Some(key));
        stream.extend(frame(false, 0, &good.as_bytes()[cut..], Some(key)));
        prop_assert_eq!(decode(&stream, &[]), Ok(vec![]));
        stream.extend(frame(false, 0, bad, Some(key)));
        prop_assert_eq!(decode(&stream, &[]), Err(WireError::BadUtf8));
    }

    #[test]
    fn control_frames_must_be_short_and_whole(
        key in any::<[u8; 4]>(),
        opcode in prop_oneof![Just(8u8), Just(9), Just(10)],
        len in 0usize..300,
        fin in any::<bool>(),
    ) {
        // A valid close payload, so only the length and FIN rules can refuse it.
        let mut payload = vec![b'a'; len];
        if opcode == 8 && len >= 2 {
            payload[..2].copy_from_slice(&1000u16.to_be_bytes());
        }
        let stream = frame(fin, opcode, &payload, Some(key));
        let got = decode(&stream, &[]);
        if !fin {
            prop_assert_eq!(got.err(), Some(WireError::Protocol("fragmented control frame")));
        } else if len > 125 {
            prop_assert_eq!(got.err(), Some(WireError::Protocol("control frame over 125 bytes")));
        } else if opcode == 8 && len == 1 {
            prop_assert_eq!(
                got.err(),
                Some(WireError::Protocol("close frame with a 1-byte payload"))
            );
        } else {
            prop_assert_eq!(got.map(|m| m.len()), Ok(1));
        }
    }
}
