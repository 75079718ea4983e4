//! A GitHub App's JWT: what `app/hook` (the App's own webhook) is called with.
//!
//! GitHub asks for a JWT signed by the App's private key
//! (docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app):
//! header `{"alg":"RS256","typ":"JWT"}`, claims `iat` (60 s in the past, against clock drift),
//! `exp` (at most 10 minutes after `iat`) and `iss` (the App's client ID or App ID), signed
//! RSASSA-PKCS1-v1_5 with SHA-256, each part base64url without padding. The key is the PEM GitHub
//! hands out (PKCS#1, `BEGIN RSA PRIVATE KEY`) or its PKCS#8 form (`BEGIN PRIVATE KEY`).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::client::{ApiError, Bearer, Credential};

/// `iat` lies this far in the past, as GitHub advises for clocks that drift.
pub const BACKDATE_SECS: i64 = 60;
/// `exp` lies this far ahead: `exp - iat` is 10 minutes, GitHub's limit.
pub const EXPIRES_IN_SECS: i64 = 9 * 60;
/// A JWT this old is replaced before the next request, so one sent (with the request timeout of
/// 30 s) never arrives expired even when a run waits on rate limits for minutes.
pub const RENEW_AFTER_SECS: i64 = 8 * 60;
/// A JWT sent at the last moment it is kept is valid for longer than a request may take (30 s).
const _: () = assert!(RENEW_AFTER_SECS + 30 < EXPIRES_IN_SECS);

/// Mints JWTs for one App. `Debug` shows the App's id only, never the key or a JWT.
pub struct GithubAppJwt {
    app_id: String,
    key: RsaKeyPair,
    /// The JWT last minted and when (seconds since the epoch).
    current: Option<(i64, String)>,
}

impl std::fmt::Debug for GithubAppJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubAppJwt")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl GithubAppJwt {
    /// The App `app_id` (its client ID or App ID) with the private key PEM `private_key`.
    pub fn new(app_id: &str, private_key: &Credential) -> Result<Self, ApiError> {
        Ok(Self {
            app_id: app_id.to_owned(),
            key: parse_private_key(private_key.secret())?,
            current: None,
        })
    }

    /// A new JWT issued at `now` (seconds), backdated by `BACKDATE_SECS`.
    fn mint(&self, now: i64) -> Result<String, ApiError> {
        let header = br#"{"alg":"RS256","typ":"JWT"}"#;
        let iat = now - BACKDATE_SECS;
        let claims = serde_json::json!({
            "iat": iat,
            "exp": now + EXPIRES_IN_SECS,
            "iss": self.app_id,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| ApiError::Credential("signing the GitHub App JWT failed".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

impl Bearer for GithubAppJwt {
    /// The JWT to send at `now` (seconds): the last one while it is young enough, else a new one.
    fn current(&mut self, now: i64) -> Result<&str, ApiError> {
        // A clock set back is no reason to keep a JWT issued "in the future".
        let age = self.current.as_ref().map(|(minted, _)| now - minted);
        if !age.is_some_and(|age| (0..RENEW_AFTER_SECS).contains(&age)) {
            self.current = Some((now, self.mint(now)?));
        }
        Ok(self.current.as_ref().map_or("", |(_, jwt)| jwt.as_str()))
    }
}

const NOT_A_KEY: &str = "the GitHub App private key is not an RSA key in PEM (expected the unencrypted key GitHub gives: -----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----)";

/// The RSA key of a PEM: PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`). Errors never
/// repeat any of the text.
pub fn parse_private_key(pem: &str) -> Result<RsaKeyPair, ApiError> {
    let not_a_key = || ApiError::Credential(NOT_A_KEY.into());
    // A PEM kept on one line (an environment variable, a CI secret) often has `\n` for newlines.
    let text = pem.replace("\\n", "\n");
    let (label, der) = pem_block(text.trim()).ok_or_else(not_a_key)?;
    let parsed = match label {
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        _ => return Err(not_a_key()),
    };
    // The reason is one of aws-lc's fixed words (InvalidEncoding, TooSmall, ...).
    parsed.map_err(|rejected| ApiError::Credential(format!("{NOT_A_KEY}: {rejected}")))
}

/// The label and the decoded body of the single PEM block `text` is.
fn pem_block(text: &str) -> Option<(&str, Vec<u8>)> {
    let (label, rest) = text.strip_prefix("-----BEGIN ")?.split_once("-----")?;
    let (body, tail) = rest.split_once(&format!("-----END {label}-----"))?;
    if !tail.trim().is_empty() {
        return None;
    }
    // Encrypted PKCS#1 keys carry `Proc-Type:` headers: not base64, so refused here.
    let body: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(body).ok()?;
    Some((label, der))
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::OnceLock;

    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    use super::*;

    const NOW: i64 = 1_700_000_000;
    const APP_ID: &str = "Iv23liTestClientId";

    /// A test key, generated for these tests only: (PKCS#8 DER, public key).
    pub(in crate::reconcile) fn test_key() -> &'static (Vec<u8>, Vec<u8>) {
        static KEY: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
        KEY.get_or_init(|| {
            let key = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
            let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key)
                .expect("PKCS#8 of the test key")
                .as_ref()
                .to_vec();
            (pkcs8, key.public_key().as_ref().to_vec())
        })
    }

    pub(in crate::reconcile) fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// One DER element at the start of `der`: (tag, contents, the rest).
    fn der_element(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1]);
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            let len = der[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
            (len, 2 + n)
        };
        (tag, &der[header..header + len], &der[header + len..])
    }

    /// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (its OCTET STRING), the form
    /// GitHub hands out.
    fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
        let (_, info, _) = der_element(pkcs8);
        let (_, _version, rest) = der_element(info);
        let (_, _algorithm, rest) = der_element(rest);
        let (tag, key, _) = der_element(rest);
        assert_eq!(tag, 0x04, "an OCTET STRING");
        key.to_vec()
    }

    pub(in crate::reconcile) fn decode_json(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    }

    fn check_jwt(jwt: &str, issued_at: i64) {
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "header.claims.signature");
        assert!(!jwt.contains('='), "no padding");
        assert_eq!(
            decode_json(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT"})
        );
        let claims = decode_json(parts[1]);
        assert_eq!(
            claims,
            serde_json::json!({"iat": issued_at - 60, "exp": issued_at + 540, "iss": APP_ID})
        );
        let (iat, exp) = (
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert!(exp - iat <= 600, "GitHub's 10 minute limit");
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
        let (_, public_key) = test_key();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("the signature verifies with the App's public key");
    }

    #[test]
    fn jwt_from_a_pkcs1_key_is_signed_rs256_with_the_claims_github_asks_for() {
        let (pkcs8, _) = test_key();
        let key = Credential::new(pem("RSA PRIVATE KEY", &pkcs1_of(pkcs8)));
        let mut app = GithubAppJwt::new(APP_ID, &key).unwrap();
        let jwt = app.current(NOW).unwrap().to_owned();
        check_jwt(&jwt, NOW);
    }

    #[test]
    fn jwt_from_a_pkcs8_key_and_from_a_one_line_pem() {
        let (pkcs8, _) = test_key();
        let key = Credential::new(pem("PRIVATE KEY", pkcs8));
        let jwt = GithubAppJwt::new(APP_ID, &key)
            .unwrap()
            .current(NOW)
            .unwrap()
            .to_owned();
        check_jwt(&jwt, NOW);
        // The same PEM as an environment variable often holds it: `\n` escapes on one line.
        let one_line = Credential::new(pem("PRIVATE KEY", pkcs8).replace('\n', "\\n"));
        let jwt = GithubAppJwt::new(APP_ID, &one_line)
            .unwrap()
            .current(NOW + 5)
            .unwrap()
            .to_owned();
        check_jwt(&jwt, NOW + 5);
    }

    #[test]
    fn a_jwt_is_kept_for_8_minutes_then_minted_again() {
        let (pkcs8, _) = test_key();
        let mut app =
            GithubAppJwt::new(APP_ID, &Credential::new(pem("PRIVATE KEY", pkcs8))).unwrap();
        let first = app.current(NOW).unwrap().to_owned();
        assert_eq!(app.current(NOW + RENEW_AFTER_SECS - 1).unwrap(), first);
        let renewed = app.current(NOW + RENEW_AFTER_SECS).unwrap().to_owned();
        assert_ne!(renewed, first);
        check_jwt(&renewed, NOW + RENEW_AFTER_SECS);
        // A clock set back is no reason to keep one issued "in the future".
        let back = app.current(NOW).unwrap().to_owned();
        check_jwt(&back, NOW);
    }

    #[test]
    fn what_is_not_an_rsa_private_key_pem_is_refused_without_echo() {
        let (pkcs8, _) = test_key();
        let marker = "U2VjcmV0S2V5TWF0ZXJpYWw";
        let public_key = pem("PUBLIC KEY", &test_key().1);
        let truncated = pem("RSA PRIVATE KEY", &pkcs1_of(pkcs8)[..200]);
        let garbage_body = format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{marker}{marker}\n-----END RSA PRIVATE KEY-----"
        );
        let encrypted = format!(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n{marker}\n-----END RSA PRIVATE KEY-----"
        );
        let pkcs8_labelled_pkcs1 = pem("RSA PRIVATE KEY", pkcs8);
        for bad in [
            format!("ghp_{marker}"),
            String::new(),
            public_key,
            truncated,
            garbage_body,
            encrypted,
            pkcs8_labelled_pkcs1,
            pem("EC PRIVATE KEY", b"x"),
        ] {
            let error = GithubAppJwt::new(APP_ID, &Credential::new(bad.clone())).unwrap_err();
            let text = error.to_string();
            assert!(
                text.starts_with("the GitHub App private key is not an RSA key in PEM"),
                "{text}"
            );
            assert!(!text.contains(marker), "{text}");
            let body_line = bad.lines().nth(1).unwrap_or("");
            assert!(body_line.len() < 8 || !text.contains(body_line), "{text}");
            assert!(error.stops_the_run());
        }
    }

    #[test]
    fn debug_shows_no_key_and_no_jwt() {
        let (pkcs8, _) = test_key();
        let key_pem = pem("PRIVATE KEY", pkcs8);
        let mut app = GithubAppJwt::new(APP_ID, &Credential::new(key_pem.clone())).unwrap();
        let jwt = app.current(NOW).unwrap().to_owned();
        let shown = format!("{app:?}");
        assert_eq!(shown, format!("GithubAppJwt {{ app_id: {APP_ID:?}, .. }}"));
        assert!(!shown.contains(&jwt));
        assert!(!shown.contains(key_pem.lines().nth(1).unwrap()));
    }
}
