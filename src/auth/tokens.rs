//! JWTs for access and refresh. HS256 only: the algorithm is pinned on both sides, so a
//! token claiming `none` or any other algorithm is refused, whatever its signature.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// What a token says. `typ` keeps an access token from being used as a refresh token and
/// the other way round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The customer id.
    pub sub: String,
    pub role: String,
    /// `access` or `refresh`.
    pub typ: String,
    /// The session (refresh-token family) this token belongs to.
    pub fam: String,
    /// Unique id of this token.
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
}

/// Issues and checks tokens with one secret.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Tokens whose signature checked out, by their exact text: a shopper sends the same
    /// token with every request, and checking it again (base64, HMAC, JSON) was ~5% of
    /// the CPU of a durable add-to-cart. Expiry is still checked on every use.
    verified: Mutex<HashMap<Box<str>, Claims>>,
}

/// Most tokens remembered as verified (~0.5 KB each); past it the expired are forgotten,
/// and if that is not enough, all.
const VERIFIED_CAPACITY: usize = 16_384;

/// A fresh random id (128 bits, hex).
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn now_secs() -> u64 {
    ecommesh_persistence::now_ms() / 1000
}

impl Tokens {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a token of type `typ` for `sub` in session `fam`.
    pub fn issue(&self, typ: &str, sub: &str, role: &str, fam: &str, jti: &str) -> String {
        let ttl = if typ == "refresh" {
            self.refresh_ttl
        } else {
            self.access_ttl
        };
        let iat = now_secs();
        let claims = Claims {
            sub: sub.into(),
            role: role.into(),
            typ: typ.into(),
            fam: fam.into(),
            jti: jti.into(),
            iat,
            exp: iat + ttl.as_secs(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding cannot fail")
    }

    /// Checks signature, algorithm, expiry and type.
    pub fn verify(&self, token: &str, typ: &str) -> Result<Claims, String> {
        self.verify_at(token, typ, now_secs())
    }

    fn verify_at(&self, token: &str, typ: &str, now: u64) -> Result<Claims, String> {
        let known = self.verified.lock().get(token).cloned();
        let claims = match known {
            // As jsonwebtoken decides it, with no leeway.
            Some(c) if c.exp < now => return Err("ExpiredSignature".into()),
            Some(c) => c,
            None => {
                let claims = decode::<Claims>(token, &self.decoding, &self.validation)
                    .map_err(|e| e.to_string())?
                    .claims;
                self.remember(token, &claims, now);
                claims
            }
        };
        if claims.typ != typ {
            return Err(format!("not an {typ} token"));
        }
        Ok(claims)
    }

    fn remember(&self, token: &str, claims: &Claims, now: u64) {
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, c| c.exp >= now);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(token.into(), claims.clone());
    }
}

/// The signing secret: the configured one, or one generated once and kept in the data
/// directory (readable by its owner only) so tokens survive restarts.
pub fn load_secret(configured: &str, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read(&path) {
        if existing.len() >= 32 {
            return Ok(existing);
        }
        return Err(anyhow!(
            "{} is shorter than 32 bytes; delete it to generate a new one",
            path.display()
        ));
    }
    let mut secret = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut secret);
    let hex = hex::encode(secret).into_bytes();
    write_private(&path, &hex).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(hex)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn a_token_round_trips_and_keeps_its_type() {
        let t = tokens();
        let access = t.issue("access", "u1", "customer", "f1", "j1");
        let c = t.verify(&access, "access").unwrap();
        assert_eq!(
            (c.sub.as_str(), c.role.as_str(), c.fam.as_str()),
            ("u1", "customer", "f1")
        );
        assert!(t.verify(&access, "refresh").is_err());
    }

    #[test]
    fn none_other_algorithms_tampering_and_other_secrets_are_refused() {
        let t = tokens();
        let good = t.issue("access", "u1", "customer", "f1", "j1");
        let claims = t.verify(&good, "access").unwrap();
        // alg: none, with the payload of a good token and no signature.
        let mut parts = good.split('.');
        let (_, payload) = (parts.next().unwrap(), parts.next().unwrap());
        let encode_url = |b: &[u8]| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        let none = format!(
            "{}.{payload}.",
            encode_url(br#"{"alg":"none","typ":"JWT"}"#)
        );
        assert!(t.verify(&none, "access").is_err());
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(t.verify(&hs512, "access").is_err(), "algorithm switching");
        let other = Tokens::new(
            b"another secret of thirty-two bytes",
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        assert!(t
            .verify(&other.issue("access", "u1", "admin", "f", "j"), "access")
            .is_err());
        let tampered = good.replacen(payload, &encode_url(br#"{"sub":"u2","role":"admin","typ":"access","fam":"f1","jti":"j1","iat":1,"exp":99999999999}"#), 1);
        assert!(t.verify(&tampered, "access").is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let t = tokens();
        let mut c = t
            .verify(&t.issue("access", "u", "customer", "f", "j"), "access")
            .unwrap();
        c.exp = now_secs() - 1;
        let expired = encode(&Header::new(Algorithm::HS256), &c, &t.encoding).unwrap();
        assert!(t.verify(&expired, "access").unwrap_err().contains("xpired"));
    }

    #[test]
    fn a_remembered_token_still_expires_and_keeps_its_type() {
        let t = tokens();
        let access = t.issue("access", "u", "customer", "f", "j");
        let c = t.verify(&access, "access").unwrap();
        assert!(t.verified.lock().contains_key(access.as_str()));
        assert_eq!(t.verify(&access, "access").unwrap(), c, "remembered");
        assert!(t.verify(&access, "refresh").is_err());
        assert!(t.verify_at(&access, "access", c.exp).is_ok());
        let late = t.verify_at(&access, "access", c.exp + 1).unwrap_err();
        assert!(late.contains("xpired"), "{late}");
    }

    #[test]
    fn remembered_tokens_stay_bounded_and_refused_ones_are_never_remembered() {
        let t = tokens();
        let good = t.issue("access", "u", "customer", "f", "j");
        assert!(t.verify(&format!("{good}x"), "access").is_err());
        assert!(t.verified.lock().is_empty());
        for i in 0..VERIFIED_CAPACITY + 10 {
            let token = t.issue("access", &format!("u{i}"), "customer", "f", "j");
            t.verify(&token, "access").unwrap();
        }
        let n = t.verified.lock().len();
        assert!((1..=VERIFIED_CAPACITY).contains(&n), "{n}");
    }

    #[test]
    fn a_generated_secret_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = load_secret("", dir.path()).unwrap();
        let b = load_secret("", dir.path()).unwrap();
        assert_eq!(a, b);
        let mode = std::fs::metadata(dir.path().join("jwt-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        assert_eq!(
            load_secret("configured-secret-of-32-bytes-min", dir.path()).unwrap(),
            b"configured-secret-of-32-bytes-min"
        );
    }
}
