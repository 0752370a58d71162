//! HMAC-SHA256 request signatures: the sender signs the exact body with the source's
//! secret and sends `X-Tocsin-Signature: sha256=<hex>` (GitHub's `X-Hub-Signature-256`
//! form is accepted too, as many webhook senders can produce it).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Headers that may carry the signature, in order of preference.
pub const HEADERS: [&str; 2] = ["x-tocsin-signature", "x-hub-signature-256"];

/// The signature header value for `body` (what a sender computes).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body`; compared in constant time.
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let sig = sign("s3cret", b"{\"a\":1}");
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), 7 + 64);
        assert!(verify("s3cret", b"{\"a\":1}", &sig));
        assert!(!verify("s3cret", b"{\"a\":2}", &sig));
        assert!(!verify("other", b"{\"a\":1}", &sig));
        assert!(!verify("s3cret", b"{\"a\":1}", "sha256=zz"));
        assert!(!verify("s3cret", b"{\"a\":1}", &sig[7..]));
    }
}
