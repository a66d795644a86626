//! OpenID Connect bearer tokens: a JWT an identity provider signed, accepted beside API keys.
//!
//! A token is accepted when all of these hold (else `401`, the same answer as a bad key):
//!
//! - its header names `RS256` or `ES256` (nothing else: no `none`, no HMAC, so a public key can
//!   never be used as a shared secret), and a key of the JWKS fits it — the key its `kid`
//!   names, or the only key of that algorithm when it names none;
//! - the signature verifies;
//! - `iss` is the configured issuer, `aud` holds the configured audience, `exp` is present and
//!   not past, `nbf` (if present) is not ahead, `iat` (if present) is not in the future — each
//!   time compared with a bounded clock skew (60 s by default, at most 5 minutes);
//! - `sub` is 1–255 visible ASCII characters (the principal is `oidc:<sub>`).
//!
//! Roles come from a claim (`roles` by default; a dotted path such as `realm_access.roles`
//! reaches into nested objects) holding Gureum role names, as an array or a space-separated
//! string. Names that are not Gureum roles are ignored, and so is `service` (only the
//! services' own key holds it). A `customer` token names its customer in `customer_id`
//! (configurable) and then holds that role alone; without the claim the role is dropped. A token without a known role authenticates but may do
//! nothing beyond `GET /v1/auth/whoami`.
//!
//! Keys come from a JWKS file (re-read when it changes) or URL (fetched at start, every five
//! minutes, and — at most every 30 s — when a token names a key id not yet known, so a
//! provider's key rotation is picked up at its first token). A JWKS that cannot be read at
//! start stops the edge; one that cannot be read later leaves the last good keys in force.
//!
//! Verified tokens are remembered (by SHA-256, until they expire, at most
//! [`VERIFIED_MAX`]) so a client sending the same token does not pay a signature check per
//! request; a JWKS change forgets them all.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};

use crate::access::{Role, permissions_of};
use crate::keys::{CUSTOMER_ID_BYTES_MAX, Principal, visible_ascii};

/// The largest clock skew accepted, in seconds.
pub const LEEWAY_SECONDS_MAX: u64 = 300;
/// The clock skew accepted by default, in seconds.
pub const LEEWAY_SECONDS_DEFAULT: u64 = 60;
/// Verified tokens remembered at most.
pub const VERIFIED_MAX: usize = 10_000;
/// How often a JWKS URL is fetched again.
const URL_REFRESH: Duration = Duration::from_secs(300);
/// The shortest time between two fetches of a JWKS URL for an unknown key id, by default.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(30);
/// A JWKS document is at most this large.
const JWKS_BYTES_MAX: usize = 1 << 20;
/// How long fetching a JWKS URL may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `sub` accepted.
const SUBJECT_CHARS_MAX: usize = 255;
/// A name is shown up to this many characters.
const NAME_CHARS_MAX: usize = 100;

/// Where the provider's public keys are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on disk.
    File(PathBuf),
    /// A JWKS document at an `https://` (or, for tests and sidecars, `http://`) URL.
    Url(String),
}

impl JwksSource {
    /// A URL when `text` starts with `http://` or `https://`, else a file path.
    pub fn parse(text: &str) -> JwksSource {
        if text.starts_with("https://") || text.starts_with("http://") {
            JwksSource::Url(text.to_owned())
        } else {
            JwksSource::File(PathBuf::from(text))
        }
    }
}

/// Which tokens the edge accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcConfig {
    /// The `iss` a token must carry.
    pub issuer: String,
    /// The audience `aud` must hold.
    pub audience: String,
    /// The provider's public keys.
    pub jwks: JwksSource,
    /// The claim holding Gureum role names (a dotted path reaches into objects).
    pub roles_claim: String,
    /// The clock skew accepted, in seconds (at most [`LEEWAY_SECONDS_MAX`]).
    pub leeway_seconds: u64,
    /// The shortest time between two fetches of a JWKS URL for a key id not yet known.
    pub unknown_kid_refetch: Duration,
    /// The claim naming the customer a `customer` token belongs to.
    pub customer_claim: String,
}

impl OidcConfig {
    /// Tokens from `issuer` for `audience`, keys from `jwks`, roles in `roles`, 60 s skew.
    pub fn new(issuer: &str, audience: &str, jwks: JwksSource) -> OidcConfig {
        OidcConfig {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks,
            roles_claim: "roles".to_owned(),
            leeway_seconds: LEEWAY_SECONDS_DEFAULT,
            unknown_kid_refetch: UNKNOWN_KID_REFETCH,
            customer_claim: "customer_id".to_owned(),
        }
    }
}

/// What went wrong setting up or refreshing token verification.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The configuration is unusable.
    #[error("oidc: {0}")]
    Config(String),
    /// The JWKS could not be read.
    #[error("oidc: reading the JWKS at {source_name}: {why}")]
    Jwks {
        /// The file or URL.
        source_name: String,
        /// Why.
        why: String,
    },
}

/// One usable public key.
struct Key {
    algorithm: Algorithm,
    decoding: DecodingKey,
}

/// The keys of one JWKS document.
#[derive(Default)]
struct KeySet {
    /// By key id.
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys without an id (usable by a token naming none, when alone for their algorithm).
    anonymous: Vec<Arc<Key>>,
    /// SHA-256 of the document (a re-read that changed nothing keeps what was verified).
    digest: [u8; 32],
}

impl KeySet {
    /// The key a token with `kid` and `algorithm` is checked with.
    fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<Arc<Key>> {
        let key = match kid {
            Some(kid) => self.by_kid.get(kid).cloned()?,
            None => {
                let mut fitting = self
                    .by_kid
                    .values()
                    .chain(self.anonymous.iter())
                    .filter(|k| k.algorithm == algorithm);
                let only = fitting.next()?.clone();
                if fitting.next().is_some() {
                    return None;
                }
                only
            }
        };
        (key.algorithm == algorithm).then_some(key)
    }
}

/// A token checked before: who it is, and its `exp` (Unix seconds).
type Verified = (Arc<Principal>, u64);

/// Verifies bearer tokens against the provider's keys.
pub struct Oidc {
    config: OidcConfig,
    keys: RwLock<Arc<KeySet>>,
    /// Token digest → who it is and when it expires (Unix seconds).
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    http: reqwest::Client,
    /// When the JWKS URL was last fetched (or tried).
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: Option<String>,
    iat: Option<serde_json::Value>,
    preferred_username: Option<String>,
    name: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Oidc {
    /// Reads the JWKS; fails when the configuration or the keys are unusable.
    pub async fn open(config: OidcConfig) -> Result<Oidc, OidcError> {
        if config.issuer.is_empty() || config.audience.is_empty() {
            return Err(OidcError::Config(
                "both an issuer and an audience are needed".to_owned(),
            ));
        }
        if config.leeway_seconds > LEEWAY_SECONDS_MAX {
            return Err(OidcError::Config(format!(
                "the clock skew is at most {LEEWAY_SECONDS_MAX} s, not {}",
                config.leeway_seconds
            )));
        }
        if config.roles_claim.is_empty() {
            return Err(OidcError::Config("the roles claim needs a name".to_owned()));
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| OidcError::Config(format!("an HTTP client: {e}")))?;
        let oidc = Oidc {
            config,
            keys: RwLock::new(Arc::new(KeySet::default())),
            verified: Mutex::new(HashMap::new()),
            http,
            fetched: tokio::sync::Mutex::new(None),
        };
        let document = oidc.read().await?;
        oidc.install(parse_jwks(&document, &oidc.source_name())?);
        *oidc.fetched.lock().await = Some(Instant::now());
        Ok(oidc)
    }

    /// What tokens are checked against.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Reads the JWKS again when it is due (a file every call, a URL every five minutes);
    /// an unreadable JWKS leaves the keys in force as they were.
    pub async fn refresh(&self) -> Result<(), OidcError> {
        if let JwksSource::Url(_) = self.config.jwks {
            let mut fetched = self.fetched.lock().await;
            if fetched.is_some_and(|at| at.elapsed() < URL_REFRESH) {
                return Ok(());
            }
            *fetched = Some(Instant::now());
        }
        self.reload().await
    }

    async fn reload(&self) -> Result<(), OidcError> {
        let document = self.read().await?;
        self.install(parse_jwks(&document, &self.source_name())?);
        Ok(())
    }

    fn install(&self, set: KeySet) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.digest == set.digest {
            return;
        }
        tracing::info!(
            keys = set.by_kid.len() + set.anonymous.len(),
            "oidc: signing keys loaded"
        );
        *keys = Arc::new(set);
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn source_name(&self) -> String {
        match &self.config.jwks {
            JwksSource::File(path) => path.display().to_string(),
            JwksSource::Url(url) => url.clone(),
        }
    }

    async fn read(&self) -> Result<Vec<u8>, OidcError> {
        let failed = |why: String| OidcError::Jwks {
            source_name: self.source_name(),
            why,
        };
        match &self.config.jwks {
            JwksSource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                if bytes.len() > JWKS_BYTES_MAX {
                    return Err(failed(format!("larger than {JWKS_BYTES_MAX} bytes")));
                }
                Ok(bytes)
            }
            JwksSource::Url(url) => {
                let mut response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                if !response.status().is_success() {
                    return Err(failed(format!("answered {}", response.status())));
                }
                let mut bytes = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > JWKS_BYTES_MAX {
                        return Err(failed(format!("larger than {JWKS_BYTES_MAX} bytes")));
                    }
                }
                Ok(bytes)
            }
        }
    }

    /// Whether `credential` looks like a JWT (three dot-separated parts) rather than a key.
    pub fn looks_like_token(credential: &str) -> bool {
        credential.bytes().filter(|b| *b == b'.').count() == 2
    }

    /// The principal `token` establishes, or `None` — for every reason alike.
    pub async fn authenticate(&self, token: &str) -> Option<Arc<Principal>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        if let Some((principal, exp)) = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            && now <= exp.saturating_add(self.config.leeway_seconds)
        {
            return Some(principal.clone());
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return None;
        }
        let kid = header.kid.as_deref();
        let mut key = self.current().find(kid, header.alg);
        if key.is_none()
            && let (Some(kid), JwksSource::Url(_)) = (kid, &self.config.jwks)
            && !self.current().by_kid.contains_key(kid)
        {
            // A key id not seen yet: the provider may have rotated its keys.
            let mut fetched = self.fetched.lock().await;
            if fetched.is_none_or(|at| at.elapsed() >= self.config.unknown_kid_refetch) {
                *fetched = Some(Instant::now());
                if let Err(e) = self.reload().await {
                    tracing::warn!(error = %e, "oidc: refreshing the keys for a new key id");
                }
            }
            drop(fetched);
            key = self.current().find(Some(kid), header.alg);
        }
        let key = key?;
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.config.leeway_seconds;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).ok()?;
        let claims = data.claims;
        if let Some(iat) = &claims.iat {
            let iat = iat
                .as_u64()
                .or_else(|| iat.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))?;
            if iat > now.saturating_add(self.config.leeway_seconds) {
                return None;
            }
        }
        let subject = claims
            .sub
            .as_deref()
            .filter(|s| visible_ascii(s, SUBJECT_CHARS_MAX))?;
        let exp = claims.rest.get("exp").and_then(|v| v.as_u64())?;
        let mut roles = roles_in(&claims.rest, &self.config.roles_claim);
        // A customer's token names its customer, and then holds that role alone; without
        // the claim the role is dropped (it would see nothing anyway).
        let customer = claims
            .rest
            .get(&self.config.customer_claim)
            .and_then(|v| v.as_str())
            .filter(|id| visible_ascii(id, CUSTOMER_ID_BYTES_MAX))
            .map(str::to_owned);
        let customer = match (roles.contains(&Role::Customer), customer) {
            (true, Some(id)) => {
                roles = vec![Role::Customer];
                Some(id)
            }
            (true, None) => {
                roles.retain(|r| *r != Role::Customer);
                None
            }
            (false, _) => None,
        };
        let name = claims
            .preferred_username
            .or(claims.name)
            .unwrap_or_else(|| subject.to_owned())
            .chars()
            .take(NAME_CHARS_MAX)
            .collect();
        let principal = Arc::new(Principal {
            id: format!("oidc:{subject}"),
            name,
            permissions: permissions_of(&roles),
            roles,
            bootstrap: false,
            customer,
        });
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_MAX {
            let leeway = self.config.leeway_seconds;
            verified.retain(|_, (_, exp)| now <= exp.saturating_add(leeway));
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(digest, (principal.clone(), exp));
        Some(principal)
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The subject a token that failed claims (`oidc:<sub>`), for the audit trail; read
    /// without trusting anything in it.
    pub fn claimed(token: &str) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Subject {
            sub: String,
        }
        let claims: Subject = jsonwebtoken::dangerous::insecure_decode_claims(token).ok()?;
        visible_ascii(&claims.sub, SUBJECT_CHARS_MAX).then(|| format!("oidc:{}", claims.sub))
    }
}

/// The Gureum roles named at `path` (dotted) in the claims; unknown names and `service` are
/// ignored.
fn roles_in(claims: &serde_json::Map<String, serde_json::Value>, path: &str) -> Vec<Role> {
    let mut segments = path.split('.');
    let Some(first) = segments.next() else {
        return Vec::new();
    };
    let mut value = claims.get(first);
    for segment in segments {
        value = value.and_then(|v| v.get(segment));
    }
    let names: Vec<&str> = match value {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str()).collect(),
        Some(serde_json::Value::String(text)) => text.split_whitespace().collect(),
        _ => Vec::new(),
    };
    let mut roles: Vec<Role> = names
        .into_iter()
        .filter_map(Role::from_name)
        .filter(|r| *r != Role::Service)
        .collect();
    roles.sort_by_key(|r| r.name());
    roles.dedup();
    roles
}

/// The usable signing keys of a JWKS document: RSA keys for RS256, P-256 keys for ES256;
/// keys for encryption, for other algorithms, symmetric keys and ones that do not parse are
/// left out. At least one must remain.
fn parse_jwks(document: &[u8], source_name: &str) -> Result<KeySet, OidcError> {
    let failed = |why: &str| OidcError::Jwks {
        source_name: source_name.to_owned(),
        why: why.to_owned(),
    };
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let parsed: Document =
        serde_json::from_slice(document).map_err(|_| failed("not a JWKS document"))?;
    let mut set = KeySet {
        digest: Sha256::digest(document).into(),
        ..KeySet::default()
    };
    for value in parsed.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => continue,
        };
        let declared_fits = match jwk.common.key_algorithm {
            None => true,
            Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
            Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
            Some(_) => false,
        };
        if !declared_fits {
            continue;
        }
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let key = Arc::new(Key {
            algorithm,
            decoding,
        });
        match jwk.common.key_id {
            Some(kid) => {
                set.by_kid.insert(kid, key);
            }
            None => set.anonymous.push(key),
        }
    }
    if set.by_kid.is_empty() && set.anonymous.is_empty() {
        return Err(failed("no RS256 or ES256 signing key in it"));
    }
    Ok(set)
}
