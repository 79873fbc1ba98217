//! Stored password formats of users.json and their verification (users.md §3).
//!
//! * `SALT;HASH` — PBKDF2-HMAC-SHA256 over `name:password`, 16-byte salt, 70000 rounds, 32 bytes,
//!   upper-case hex (the samples and the historical `vscp_makePasswordHash`). Hashed with the name
//!   **as written** (trimmed, not sanitised): the samples contain nothing sanitising would change,
//!   and the historical helper had no sanitised name to use.
//! * 32 hex digits — legacy MD5 over `sanitised_name:password` (what REF 15.2.0 actually checks).
//!   Hex is accepted in either case (REF: lower-case only).
//!
//! Both comparisons are constant-time so that a failed login leaks nothing about the stored hash.

use std::fmt;
use std::num::NonZeroU32;

use md5::{Digest, Md5};
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

use crate::hex;

/// PBKDF2 rounds of the `SALT;HASH` format.
pub const PBKDF2_ITERATIONS: u32 = 70_000;

// Evaluated at compile time, so the `panic!` can only ever be a build error.
const PBKDF2_ROUNDS: NonZeroU32 = match NonZeroU32::new(PBKDF2_ITERATIONS) {
    Some(n) => n,
    None => panic!("PBKDF2_ITERATIONS must be non-zero"),
};

/// A parsed stored password.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `SALT;HASH` (97 characters stored).
    Pbkdf2 { salt: [u8; 16], hash: [u8; 32] },
    /// Legacy MD5 hex (32 characters stored).
    Md5([u8; 16]),
}

/// Hash bytes stay out of logs (STYLE: never log auth hashes); only the kind is shown.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Pbkdf2 { .. } => f.write_str("Pbkdf2(..)"),
            PasswordHash::Md5(_) => f.write_str("Md5(..)"),
        }
    }
}

impl PasswordHash {
    /// Reads the users.json `password` value (surrounding whitespace ignored).
    pub fn parse(stored: &str) -> Result<Self, String> {
        let stored = stored.trim();
        if let Some((salt_hex, hash_hex)) = stored.split_once(';') {
            let salt = hex::decode::<16>(salt_hex);
            let hash = hex::decode::<32>(hash_hex);
            return match (salt, hash) {
                (Some(salt), Some(hash)) => Ok(PasswordHash::Pbkdf2 { salt, hash }),
                _ => Err(
                    "expected SALT;HASH with 32 and 64 hex digits, or 32 hex digits (MD5)".into(),
                ),
            };
        }
        hex::decode::<16>(stored)
            .map(PasswordHash::Md5)
            .ok_or_else(|| {
                format!(
                    "expected 32 hex digits (MD5) or SALT;HASH, got {} characters",
                    stored.chars().count()
                )
            })
    }

    /// Checks a login password. `name` is the trimmed name as written (PBKDF2 input),
    /// `sanitised_name` the REF-sanitised one (MD5 input).
    pub fn verify(&self, name: &str, sanitised_name: &str, password: &str) -> bool {
        match self {
            PasswordHash::Pbkdf2 { salt, hash } => {
                let secret = format!("{name}:{password}");
                pbkdf2::verify(
                    pbkdf2::PBKDF2_HMAC_SHA256,
                    PBKDF2_ROUNDS,
                    salt,
                    secret.as_bytes(),
                    hash,
                )
                .is_ok()
            }
            PasswordHash::Md5(stored) => {
                let mut md5 = Md5::new();
                md5.update(sanitised_name.as_bytes());
                md5.update(b":");
                md5.update(password.as_bytes());
                let digest: [u8; 16] = md5.finalize().into();
                ct_eq(&digest, stored)
            }
        }
    }

    /// PBKDF2 costs milliseconds; callers run it off the I/O path and rate-limit failures.
    pub fn is_slow(&self) -> bool {
        matches!(self, PasswordHash::Pbkdf2 { .. })
    }

    /// Length of the stored text, for the AUTH1 password mask (one `*` per character).
    pub fn stored_len(&self) -> usize {
        match self {
            PasswordHash::Pbkdf2 { .. } => 32 + 1 + 64,
            PasswordHash::Md5(_) => 32,
        }
    }
}

/// Produces the `SALT;HASH` value for users.json (upper-case hex, 97 characters).
pub fn mkpasswd(user: &str, password: &str, salt: [u8; 16]) -> String {
    let mut dk = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        PBKDF2_ROUNDS,
        &salt,
        format!("{user}:{password}").as_bytes(),
        &mut dk,
    );
    format!("{};{}", hex::upper(&salt), hex::upper(&dk))
}

/// A fresh salt from the OS CSPRNG. Fails only when the OS cannot provide randomness, which the
/// caller should treat as fatal rather than fall back to a weak salt.
pub fn random_salt() -> Result<[u8; 16], ring::error::Unspecified> {
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt)?;
    Ok(salt)
}

/// Constant-time equality of equal-length byte arrays. `black_box` keeps the optimiser from
/// turning the fold into an early-exit loop.
fn ct_eq<const N: usize>(a: &[u8; N], b: &[u8; N]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "487636FDE3637C7C853AAC9EAF6FA062;357C71CA59F760C08C4125C444A22A91FD1FE1FB0E5628771A572BAF6F61B71F";
    const H2: &str = "0839DD1BE692164847B601E6520CE23B;3E1B4D950F04EA3BFA2C43160B9D98ECC76B249F79A1062F041C526978591BA3";
    const H3: &str = "7B79EF5A2532F9B46DFEC501BAD16C35;100943D7C2C1C9AE99AE4F2287241DA7EAC3969EDDED50AFF3FB4EAD33C1BAD9";
    const H4: &str = "000102030405060708090A0B0C0D0E0F;738FD0337D61B913EA96F1F4CA030269D2D7E5C41AF6C7AD3F6505AC3E211E58";
    const H5_HASH: &str = "5316E1EBC4E6DBC235078BF63D5CFA0485551E3242C26CC2EF5D6DDEF78D09B8";

    fn pbkdf2_ok(user: &str, pw: &str, stored: &str) -> bool {
        let h = PasswordHash::parse(stored).unwrap();
        assert!(h.is_slow());
        assert_eq!(h.stored_len(), 97);
        h.verify(user, user, pw)
    }

    #[test]
    fn h1_to_h4_verify() {
        assert!(pbkdf2_ok("admin", "secret", H1));
        assert!(pbkdf2_ok("user", "secret", H2));
        assert!(pbkdf2_ok("special1", "secret", H3));
        assert!(pbkdf2_ok("vscp", "secret", H4));
        assert!(!pbkdf2_ok("admin", "Secret", H1));
        assert!(!pbkdf2_ok("user", "secret", H1));
    }

    #[test]
    fn h5_password_alone_does_not_match() {
        // H5 is PBKDF2("secret") with H1's salt: it proves the `user:` prefix. Stored as its own
        // entry, the `admin:secret` check must fail.
        let stored = format!("487636FDE3637C7C853AAC9EAF6FA062;{H5_HASH}");
        assert!(!pbkdf2_ok("admin", "secret", &stored));
        // …and it is what hashing the password alone yields (vscp-mkpasswd style).
        let salt = hex::decode::<16>("487636FDE3637C7C853AAC9EAF6FA062").unwrap();
        let mut dk = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            PBKDF2_ROUNDS,
            &salt,
            b"secret",
            &mut dk,
        );
        assert_eq!(hex::upper(&dk), H5_HASH);
    }

    #[test]
    fn mkpasswd_reproduces_samples() {
        let salt = hex::decode::<16>("487636FDE3637C7C853AAC9EAF6FA062").unwrap();
        assert_eq!(mkpasswd("admin", "secret", salt), H1);
        let salt: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(mkpasswd("vscp", "secret", salt), H4);
    }

    #[test]
    fn random_salts_differ() {
        let a = random_salt().unwrap();
        let b = random_salt().unwrap();
        assert_ne!(a, b);
        let stored = mkpasswd("x", "y", a);
        assert!(pbkdf2_ok("x", "y", &stored));
    }

    #[test]
    fn md5_table() {
        for (user, stored) in [
            ("admin", "2d1e4f91dae49cd08eaba2293e422273"),
            ("user", "8c3088f1b27432344f14d82033749797"),
            ("vscp", "8c92432a556d8dc0b97e9c34fc79725e"),
            ("special1", "a0ba1374b1844b64f56c5a95fb64c602"),
        ] {
            let h = PasswordHash::parse(stored).unwrap();
            assert!(!h.is_slow());
            assert_eq!(h.stored_len(), 32);
            assert!(h.verify(user, user, "secret"), "{user}");
            assert!(!h.verify(user, user, "secret "), "{user}");
            // Upper-case hex is accepted too (REF would reject it).
            let upper = PasswordHash::parse(&stored.to_uppercase()).unwrap();
            assert!(upper.verify(user, user, "secret"));
        }
        // The sample file's special1 value is not md5("special1:secret").
        let wrong = PasswordHash::parse("52af526e3b91fbf9fe1f9447808b0902").unwrap();
        assert!(!wrong.verify("special1", "special1", "secret"));
    }

    #[test]
    fn md5_uses_sanitised_name() {
        let mut md5 = Md5::new();
        md5.update(b"a_b:pw");
        let digest: [u8; 16] = md5.finalize().into();
        let h = PasswordHash::Md5(digest);
        assert!(h.verify("a b", "a_b", "pw"));
        assert!(!h.verify("a_b", "a b", "pw"));
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "",
            "secret",
            "2d1e4f91dae49cd08eaba2293e42227",
            "2d1e4f91dae49cd08eaba2293e4222733",
            "2d1e4f91dae49cd08eaba2293e42227g",
            "487636FDE3637C7C853AAC9EAF6FA062;",
            ";357C71CA59F760C08C4125C444A22A91FD1FE1FB0E5628771A572BAF6F61B71F",
            "487636FDE3637C7C853AAC9EAF6FA062;357C71CA59F760C08C4125C444A22A91FD1FE1FB0E5628771A572BAF6F61B71F;",
            "487636FDE3637C7C853AAC9EAF6FA06;357C71CA59F760C08C4125C444A22A91FD1FE1FB0E5628771A572BAF6F61B71F",
        ] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PasswordHash::parse(&format!("  {H1}\n")).is_ok());
    }

    #[test]
    fn debug_hides_hash() {
        let h = PasswordHash::parse(H1).unwrap();
        let s = format!("{h:?}");
        assert!(!s.contains("357C") && !s.contains("53"), "{s}");
    }
}
