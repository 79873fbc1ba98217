//! AUTH credential crypto shared by ws1 and ws2 (ws1.md §4, vectors.md A).
//!
//! The client sends `HEX(AES-128-CBC(key, IV = SID, user ":" password + padding))`. There is no
//! MAC: the SID is the only replay protection, and a wrong key simply yields garbage credentials
//! that fail the user lookup. Decryption therefore never distinguishes "bad key" from "bad user".

use std::fmt;

use aes::Aes128;
use cbc::cipher::{Array, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use thiserror::Error;

use crate::hex;

type Aes128CbcDec = cbc::Decryptor<Aes128>;
type Aes128CbcEnc = cbc::Encryptor<Aes128>;

const BLOCK: usize = 16;

/// Why the `key-file` could not provide an AES-128 key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The file does not start (after leading whitespace) with 32 hex digits.
    #[error("key file must start with at least 32 hex digits (AES-128 key), found {hex_digits}")]
    TooShort { hex_digits: usize },
}

/// Reads the shared key: the first 32 hex digits after leading whitespace (ws1.md §4.1 REC).
/// Longer keys (vscpd uses 32 bytes) are allowed and the rest of the file is ignored, because the
/// same file serves other VSCP components that use more of it.
pub fn parse_key_file(text: &str) -> Result<[u8; 16], KeyError> {
    let text = text.trim_start();
    let hex_digits = text
        .bytes()
        .take(32)
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    text.get(..32)
        .and_then(hex::decode::<16>)
        .ok_or(KeyError::TooShort { hex_digits })
}

/// Decrypted login credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// The password must never reach a log line, even at debug level.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// AUTH failures, mapped by the dialects to `1 Syntax error.` and `5 Not authorised.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AuthError {
    /// Malformed arguments (length, hex).
    #[error("syntax error")]
    Syntax,
    /// The plaintext is not `user:password`, or the user/password/remote check failed.
    #[error("not authorised")]
    NotAuthorised,
}

/// Decrypts the AUTH `crypto` argument with `key` and the session SID as `iv`.
///
/// REC extensions over REF: any non-zero multiple of 32 hex digits (multi-block credentials),
/// PKCS#7 padding accepted besides zero/space padding, split at the **first** `:` so passwords
/// may contain `:`.
///
/// Padding is ambiguous by nature: an unpadded plaintext that ends in bytes 0x01..0x10 forming a
/// valid PKCS#7 tail is cut. Such bytes are control characters that no real password ends with.
pub fn decrypt_credentials(
    key: &[u8; 16],
    iv: &[u8; 16],
    crypto_hex: &str,
) -> Result<Credentials, AuthError> {
    let hex = crypto_hex.as_bytes();
    if hex.is_empty() || !hex.len().is_multiple_of(2 * BLOCK) {
        return Err(AuthError::Syntax);
    }
    let mut buf = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        match (hex::digit(pair[0]), hex::digit(pair[1])) {
            (Some(h), Some(l)) => buf.push((h << 4) | l),
            _ => return Err(AuthError::Syntax),
        }
    }

    let mut dec = Aes128CbcDec::new(&Array::from(*key), &Array::from(*iv));
    for chunk in buf.chunks_exact_mut(BLOCK) {
        let mut block = Array::<u8, _>::default();
        block.copy_from_slice(chunk);
        dec.decrypt_block(&mut block);
        chunk.copy_from_slice(&block);
    }

    let mut plain: &[u8] = &buf;
    if let Some(&n) = plain.last() {
        let n = usize::from(n);
        if (1..=BLOCK).contains(&n)
            && plain[plain.len() - n..]
                .iter()
                .all(|&b| usize::from(b) == n)
        {
            plain = &plain[..plain.len() - n];
        }
    }
    // REF reads the plaintext as a C string; a NUL can never be part of the credentials.
    if let Some(nul) = plain.iter().position(|&b| b == 0) {
        plain = &plain[..nul];
    }

    let text = std::str::from_utf8(plain).map_err(|_| AuthError::NotAuthorised)?;
    let (user, password) = trim_c(text)
        .split_once(':')
        .ok_or(AuthError::NotAuthorised)?;
    Ok(Credentials {
        user: trim_c(user).to_owned(),
        password: trim_c(password).to_owned(),
    })
}

/// Encrypts `user:password` the way the REF test clients do (zero padding, no extra block when
/// aligned; an empty plaintext still yields one block) and returns upper-case hex.
pub fn encrypt_credentials(key: &[u8; 16], iv: &[u8; 16], user: &str, password: &str) -> String {
    let mut buf = format!("{user}:{password}").into_bytes();
    let padded = buf.len().div_ceil(BLOCK).max(1) * BLOCK;
    buf.resize(padded, 0);
    let mut enc = Aes128CbcEnc::new(&Array::from(*key), &Array::from(*iv));
    for chunk in buf.chunks_exact_mut(BLOCK) {
        let mut block = Array::<u8, _>::default();
        block.copy_from_slice(chunk);
        enc.encrypt_block(&mut block);
        chunk.copy_from_slice(&block);
    }
    hex_upper(&buf)
}

/// Decodes a SID/IV: exactly 32 hex digits, either case.
pub fn hex_decode_16(s: &str) -> Option<[u8; 16]> {
    hex::decode::<16>(s)
}

/// Upper-case hex without separators.
pub fn hex_upper(bytes: &[u8]) -> String {
    hex::upper(bytes)
}

/// C `isspace` trimming (space, TAB, LF, VT, FF, CR), as REF's `vscp_trim`. Rust's `trim` would
/// also strip Unicode spaces, which REF keeps as part of a name or password.
pub(crate) fn trim_c(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY_DRIVER: &str = "2DBB079A38985AF00EBEEFE22F9FFA0E";
    const KEY_DEFAULT: &str = "A4A86F7D7E119BA3F0CD06881E371B98";

    struct Vector {
        name: &'static str,
        key: &'static str,
        iv: &'static str,
        user: &'static str,
        password: &'static str,
        crypto: &'static str,
        /// Zero-padded, so `encrypt_credentials` must reproduce it.
        zero_padded: bool,
    }

    const VECTORS: &[Vector] = &[
        Vector {
            name: "A1",
            key: KEY_DRIVER,
            iv: "55BCA4DC7C1FD9C3E6967F37C8747698",
            user: "admin",
            password: "secret",
            crypto: "42273E9F3440DABA5B0CC05242F742B2",
            zero_padded: true,
        },
        Vector {
            name: "A2",
            key: KEY_DEFAULT,
            iv: "5A475C082C80DCDF7F2DFBD976253B24",
            user: "admin",
            password: "secret",
            crypto: "69B1180D2F4809D39BE34E19C750107F",
            zero_padded: false, // space padding
        },
        Vector {
            name: "A3",
            key: KEY_DEFAULT,
            iv: "5A475C082C80DCDF7F2DFBD976253B24",
            user: "admin",
            password: "secret",
            crypto: "970D3420B8637365544D87181249793A",
            zero_padded: true,
        },
        Vector {
            name: "A4",
            key: KEY_DRIVER,
            iv: "000102030405060708090A0B0C0D0E0F",
            user: "user",
            password: "secret",
            crypto: "881B903B72E0F227769C006A2262EBF6",
            zero_padded: true,
        },
        Vector {
            name: "A5",
            key: KEY_DRIVER,
            iv: "00112233445566778899AABBCCDDEEFF",
            user: "admin",
            password: "secret1234",
            crypto: "69BC20DE9399FE3B7C0A020103165BFA",
            zero_padded: true,
        },
        Vector {
            name: "A6",
            key: KEY_DRIVER,
            iv: "00112233445566778899AABBCCDDEEFF",
            user: "special1",
            password: "secret",
            crypto: "324A14583077824F85B35050CBC2D2D4",
            zero_padded: true,
        },
        Vector {
            name: "A7",
            key: KEY_DRIVER,
            iv: "00112233445566778899AABBCCDDEEFF",
            user: "special1",
            password: "verylongsecret",
            crypto: "912A2A8124DE400EE62F1D07A0499D589606D1322A8879BE2754186B6125B9C9",
            zero_padded: true,
        },
        Vector {
            name: "A8",
            key: KEY_DRIVER,
            iv: "55BCA4DC7C1FD9C3E6967F37C8747698",
            user: "admin",
            password: "secret",
            crypto: "4A0D96DBF9F49C50C92B5378E978B97D",
            zero_padded: false, // PKCS#7
        },
    ];

    fn k(s: &str) -> [u8; 16] {
        hex_decode_16(s).unwrap()
    }

    #[test]
    fn vectors_decrypt() {
        for v in VECTORS {
            let c = decrypt_credentials(&k(v.key), &k(v.iv), v.crypto)
                .unwrap_or_else(|e| panic!("{}: {e}", v.name));
            assert_eq!(c.user, v.user, "{}", v.name);
            assert_eq!(c.password, v.password, "{}", v.name);
            // The server upper-cases nothing; lower-case hex must work too.
            let lower = decrypt_credentials(&k(v.key), &k(v.iv), &v.crypto.to_lowercase()).unwrap();
            assert_eq!(lower, c, "{}", v.name);
        }
    }

    #[test]
    fn vectors_encrypt() {
        for v in VECTORS.iter().filter(|v| v.zero_padded) {
            assert_eq!(
                encrypt_credentials(&k(v.key), &k(v.iv), v.user, v.password),
                v.crypto,
                "{}",
                v.name
            );
        }
    }

    #[test]
    fn a1_plaintext_is_zero_padded() {
        let mut block = Array::<u8, _>::default();
        block.copy_from_slice(&k("42273E9F3440DABA5B0CC05242F742B2"));
        let mut dec = Aes128CbcDec::new(
            &Array::from(k(KEY_DRIVER)),
            &Array::from(k("55BCA4DC7C1FD9C3E6967F37C8747698")),
        );
        dec.decrypt_block(&mut block);
        assert_eq!(hex_upper(&block), "61646D696E3A73656372657400000000");
    }

    #[test]
    fn syntax_errors() {
        let key = k(KEY_DRIVER);
        let iv = k("55BCA4DC7C1FD9C3E6967F37C8747698");
        for bad in [
            "",
            "42273E9F3440DABA5B0CC05242F742B",
            "42273E9F3440DABA5B0CC05242F742B2AA",
            "42273E9F3440DABA5B0CC05242F742BG",
            "42273E9F3440DABA5B0CC05242F742 2",
            "+2273E9F3440DABA5B0CC05242F742B2",
        ] {
            assert_eq!(
                decrypt_credentials(&key, &iv, bad),
                Err(AuthError::Syntax),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn wrong_iv_or_key_is_not_authorised_or_garbage() {
        // A wrong IV only garbles the first block; the result must not be admin:secret.
        let r = decrypt_credentials(
            &k(KEY_DRIVER),
            &k("00000000000000000000000000000000"),
            "42273E9F3440DABA5B0CC05242F742B2",
        );
        assert!(r.map_or(true, |c| c.user != "admin" || c.password != "secret"));
    }

    #[test]
    fn no_colon_is_not_authorised() {
        let key = k(KEY_DRIVER);
        let iv = k("00112233445566778899AABBCCDDEEFF");
        let crypto = encrypt_credentials(&key, &iv, "admin", "x");
        // Encrypt "adminsecret" (no colon) by hand via a user containing the whole string.
        let no_colon = {
            let mut buf = b"adminsecret".to_vec();
            buf.resize(16, 0);
            let mut enc = Aes128CbcEnc::new(&Array::from(key), &Array::from(iv));
            let mut block = Array::<u8, _>::default();
            block.copy_from_slice(&buf);
            enc.encrypt_block(&mut block);
            hex_upper(&block)
        };
        assert!(decrypt_credentials(&key, &iv, &crypto).is_ok());
        assert_eq!(
            decrypt_credentials(&key, &iv, &no_colon),
            Err(AuthError::NotAuthorised)
        );
    }

    #[test]
    fn password_may_contain_colon_and_is_trimmed() {
        let key = k(KEY_DRIVER);
        let iv = k("00112233445566778899AABBCCDDEEFF");
        let c = decrypt_credentials(
            &key,
            &iv,
            &encrypt_credentials(&key, &iv, " admin ", " a:b:c "),
        )
        .unwrap();
        assert_eq!(c.user, "admin");
        assert_eq!(c.password, "a:b:c");
    }

    #[test]
    fn invalid_utf8_is_not_authorised() {
        let key = k(KEY_DRIVER);
        let iv = k("00112233445566778899AABBCCDDEEFF");
        let mut enc = Aes128CbcEnc::new(&Array::from(key), &Array::from(iv));
        let mut block = Array::<u8, _>::default();
        block.copy_from_slice(b"a:\xff\xfe\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00");
        enc.encrypt_block(&mut block);
        assert_eq!(
            decrypt_credentials(&key, &iv, &hex_upper(&block)),
            Err(AuthError::NotAuthorised)
        );
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials {
            user: "admin".into(),
            password: "hunter2".into(),
        };
        let s = format!("{c:?}");
        assert!(s.contains("admin") && !s.contains("hunter2"), "{s}");
    }

    #[test]
    fn key_file() {
        let key = k(KEY_DRIVER);
        assert_eq!(parse_key_file("2DBB079A38985AF00EBEEFE22F9FFA0E"), Ok(key));
        assert_eq!(
            parse_key_file("  \n2dbb079a38985af00ebeefe22f9ffa0e\n"),
            Ok(key)
        );
        // vscpd's 32-byte key: the extra bytes are ignored.
        assert_eq!(
            parse_key_file("2DBB079A38985AF00EBEEFE22F9FFA0E0123456789ABCDEF0123456789ABCDEF\n"),
            Ok(key)
        );
        assert_eq!(
            parse_key_file("2DBB079A38985AF00EBEEFE22F9FFA0E trailing junk"),
            Ok(key)
        );
        assert_eq!(
            parse_key_file(""),
            Err(KeyError::TooShort { hex_digits: 0 })
        );
        assert_eq!(
            parse_key_file("2DBB079A38985AF00EBEEFE22F9FFA0"),
            Err(KeyError::TooShort { hex_digits: 31 })
        );
        assert_eq!(
            parse_key_file("2DBB079A 38985AF00EBEEFE22F9FFA0E"),
            Err(KeyError::TooShort { hex_digits: 8 })
        );
        assert!(parse_key_file("ééééééééééééééééééééé").is_err());
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(hex_upper(&[0x00, 0xAB, 0x5f]), "00AB5F");
        assert_eq!(
            hex_decode_16("000102030405060708090a0b0c0d0e0f"),
            Some(core::array::from_fn(|i| i as u8))
        );
        assert_eq!(hex_decode_16("000102030405060708090A0B0C0D0E0"), None);
        assert_eq!(hex_decode_16("000102030405060708090A0B0C0D0E0F0"), None);
        assert_eq!(hex_decode_16("000102030405060708090A0B0C0D0E0G"), None);
    }

    fn user_strategy() -> impl Strategy<Value = String> {
        // No ':' (the split point), no NUL, no control characters (see the padding note on
        // decrypt_credentials), no surrounding whitespace.
        "[^:\\p{Cc}\\s]([^:\\p{Cc}]{0,30}[^:\\p{Cc}\\s])?"
    }

    fn password_strategy() -> impl Strategy<Value = String> {
        "([^\\p{Cc}\\s]([^\\p{Cc}]{0,60}[^\\p{Cc}\\s])?)?"
    }

    proptest! {
        #[test]
        fn decrypt_never_panics(crypto in "[0-9A-Fa-f]{0,160}", key: [u8; 16], iv: [u8; 16]) {
            let _ = decrypt_credentials(&key, &iv, &crypto);
        }

        #[test]
        fn decrypt_never_panics_on_any_string(crypto in "\\PC{0,100}", key: [u8; 16], iv: [u8; 16]) {
            let _ = decrypt_credentials(&key, &iv, &crypto);
        }

        #[test]
        fn encrypt_decrypt_round_trip(
            user in user_strategy(),
            password in password_strategy(),
            key: [u8; 16],
            iv: [u8; 16],
        ) {
            let crypto = encrypt_credentials(&key, &iv, &user, &password);
            let c = decrypt_credentials(&key, &iv, &crypto).unwrap();
            prop_assert_eq!(c.user, user);
            prop_assert_eq!(c.password, password);
        }
    }
}
