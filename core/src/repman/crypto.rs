//! replication-manager's body encryption (PROTOCOL.md §6.2).
//!
//! Every body the agent posts is `{"data":"<base64>"}`, the base64 of a JSON object encrypted
//! with AES-256-CBC, key SHA-256(secret), IV MD5(secret), no salt, PKCS#7 padding. The secret
//! is the database password replication-manager holds for this server. replication-manager
//! before mid 2026 decrypts with `openssl enc -d -a` without `-A`, which silently truncates a
//! single base64 line longer than about 1 KB, so the base64 is wrapped at 64 columns (the
//! newlines travel as `\n` inside the JSON string).
//!
//! The cipher, the hashes and the base64 are RustCrypto's and the base64 crate's: nothing of
//! the recipe is written by hand but the wrapping.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256};

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// Columns of one base64 line: what `openssl enc -a` writes itself, and what it reads back
/// whole.
pub const BASE64_COLUMNS: usize = 64;

/// The key and IV derived from the secret, kept so that the secret itself is not.
#[derive(Clone)]
pub struct BodyCipher {
    key: [u8; 32],
    iv: [u8; 16],
}

impl std::fmt::Debug for BodyCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyCipher(..)")
    }
}

impl BodyCipher {
    /// The cipher for `secret` (key = SHA-256, IV = MD5 of its bytes).
    pub fn new(secret: &str) -> Self {
        BodyCipher {
            key: Sha256::digest(secret.as_bytes()).into(),
            iv: Md5::digest(secret.as_bytes()).into(),
        }
    }

    /// The key in hex, as `openssl -K` takes it (for the test stand-in's decryption).
    pub fn key_hex(&self) -> String {
        hex(&self.key)
    }

    /// The IV in hex, as `openssl -iv` takes it.
    pub fn iv_hex(&self) -> String {
        hex(&self.iv)
    }

    /// `plaintext` encrypted and base64-encoded, wrapped at [`BASE64_COLUMNS`].
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let sealed = Encryptor::new(&self.key.into(), &self.iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        wrap(&base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    /// The body replication-manager expects: `{"data":"<encrypted JSON>"}`.
    pub fn body(&self, plaintext: &serde_json::Value) -> String {
        let data = self.encrypt(plaintext.to_string().as_bytes());
        serde_json::json!({ "data": data }).to_string()
    }

    /// The inverse of [`Self::encrypt`] (newlines in the base64 are ignored); `None` when the
    /// text is not base64 of a message encrypted with this key.
    pub fn decrypt(&self, base64_text: &str) -> Option<Vec<u8>> {
        let compact: String = base64_text.split_whitespace().collect();
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .ok()?;
        Decryptor::new(&self.key.into(), &self.iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&sealed)
            .ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `text` cut into lines of [`BASE64_COLUMNS`] characters joined by `\n` (base64 is ASCII).
fn wrap(text: &str) -> String {
    text.as_bytes()
        .chunks(BASE64_COLUMNS)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_iv_are_the_hashes_of_the_secret() {
        let c = BodyCipher::new("secret");
        // sha256sum / md5sum of the bytes "secret".
        assert_eq!(
            c.key_hex(),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
        assert_eq!(c.iv_hex(), "5ebe2294ecd0e0f08eab7690d2a6ee69");
    }

    #[test]
    fn round_trip_and_wrapping() {
        let c = BodyCipher::new("pa\"ss");
        let long = "x".repeat(2000);
        let text = c.encrypt(long.as_bytes());
        assert!(text.lines().count() > 40);
        assert!(text.lines().all(|l| l.len() <= BASE64_COLUMNS));
        assert!(text
            .lines()
            .rev()
            .skip(1)
            .all(|l| l.len() == BASE64_COLUMNS));
        assert_eq!(c.decrypt(&text).unwrap(), long.as_bytes());
        assert!(BodyCipher::new("other").decrypt(&text).is_none());
    }

    #[test]
    fn padding_is_pkcs7_of_whole_blocks() {
        let c = BodyCipher::new("s");
        let one_block = base64::engine::general_purpose::STANDARD
            .decode(c.encrypt(&[b'a'; 16]).replace('\n', ""))
            .unwrap();
        // 16 bytes of text get a whole block of padding.
        assert_eq!(one_block.len(), 32);
    }

    #[test]
    fn body_is_json_with_data() {
        let c = BodyCipher::new("s");
        let body = c.body(&serde_json::json!({"log": "a\nb", "secret": "s"}));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let plain = c.decrypt(v["data"].as_str().unwrap()).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(back["log"], "a\nb");
    }
}
