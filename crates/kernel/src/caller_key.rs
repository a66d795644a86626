//! The edge's signature on the caller headers, for the split shape.
//!
//! Services trust [`crate::http::PRINCIPAL_HEADER`], [`crate::http::PERMISSIONS_HEADER`],
//! [`crate::http::CUSTOMER_HEADER`] and `X-Forwarded-For` because only the edge sets them. Where
//! something other than the edge can reach a service (the local processes of
//! `gureum cluster up`, a cluster without network policies), the edge and the services share a
//! secret ([`CALLER_KEY_ENV`]): the edge signs what it sets, with the method, the path
//! (percent-decoded: an HTTP client may encode it differently on the way), the query (as sent:
//! the edge signs the target it hands its HTTP client, after that client's own encoding) and
//! the time ([`CALLER_SIGNATURE_HEADER`], HMAC-SHA256) on every request it passes on, and a service
//! holding the key refuses any request whose signature is missing, made for another request
//! or older than [`SIGNATURE_MAX_AGE_SECONDS`] (`401 unsigned_caller`) — anonymous ones too:
//! not every route of a service checks a permission itself (the edge's route table does).
//! Only `/healthz` and `/readyz` answer unsigned.
//!
//! What it does not cover: the body (a process that can read the traffic between edge and
//! service could send another body under a signature it saw, to the same path and query within
//! the minute — on one machine, such a process can read the key too; across machines, TLS
//! between them closes it).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use std::sync::Arc;

use crate::Problem;
use crate::http::{CUSTOMER_HEADER, PERMISSIONS_HEADER, PRINCIPAL_HEADER};

/// The environment variable holding the shared secret (at least [`KEY_BYTES_MIN`] bytes).
pub const CALLER_KEY_ENV: &str = "GUREUM_CALLER_KEY";
/// The header holding the edge's signature: `<unix seconds>.<hex HMAC-SHA256>`.
pub const CALLER_SIGNATURE_HEADER: &str = "gureum-caller-signature";
/// How old a signature may be (either way: the clocks of two machines differ).
pub const SIGNATURE_MAX_AGE_SECONDS: i64 = 60;
/// The shortest secret accepted.
pub const KEY_BYTES_MIN: usize = 32;

type HmacSha256 = Hmac<sha2_hmac::Sha256>;

/// The secret the edge signs caller headers with and services check them against.
#[derive(Clone)]
pub struct CallerKey(Arc<[u8]>);

impl std::fmt::Debug for CallerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerKey(…)")
    }
}

/// Why a secret is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{CALLER_KEY_ENV} must hold at least {KEY_BYTES_MIN} bytes")]
pub struct KeyTooShort;

impl CallerKey {
    /// A key from `secret`.
    pub fn new(secret: &[u8]) -> Result<CallerKey, KeyTooShort> {
        if secret.len() < KEY_BYTES_MIN {
            return Err(KeyTooShort);
        }
        Ok(CallerKey(secret.into()))
    }

    /// The key in [`CALLER_KEY_ENV`], if it is set and not empty.
    pub fn from_env() -> Result<Option<CallerKey>, KeyTooShort> {
        match std::env::var(CALLER_KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => CallerKey::new(v.trim().as_bytes()).map(Some),
            _ => Ok(None),
        }
    }

    fn mac(&self, target: &Target<'_>, at: i64, headers: &HeaderMap) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(b"gureum-caller-v2\n");
        let path: Vec<u8> = percent_encoding::percent_decode_str(target.path).collect();
        for part in [target.method.as_bytes(), &path, at.to_string().as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        // `?` with nothing after it and no `?` at all are one request to a service.
        let query = target.query.unwrap_or("").as_bytes();
        mac.update(&(query.len() as u64).to_be_bytes());
        mac.update(query);
        for name in SIGNED {
            // Each value with its length, so no two header sets sign alike.
            let value = headers.get(name).map_or(&b""[..], HeaderValue::as_bytes);
            let present = u8::from(headers.contains_key(name));
            mac.update(&[present]);
            mac.update(&(value.len() as u64).to_be_bytes());
            mac.update(value);
        }
        mac
    }

    /// The signature of `headers`' caller headers for `target` at `at` (unix seconds).
    pub fn sign(&self, target: &Target<'_>, at: i64, headers: &HeaderMap) -> HeaderValue {
        let tag = self.mac(target, at, headers).finalize().into_bytes();
        HeaderValue::from_str(&format!("{at}.{}", crate::hex(&tag)))
            .expect("digits, a dot and hex make a header value")
    }

    /// Whether `headers` carry this key's signature of their caller headers for `target`,
    /// made within [`SIGNATURE_MAX_AGE_SECONDS`] of `now` (unix seconds).
    pub fn verify(&self, target: &Target<'_>, now: i64, headers: &HeaderMap) -> bool {
        let Some((at, tag)) = headers
            .get(CALLER_SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once('.'))
        else {
            return false;
        };
        let (Ok(at), Some(tag)) = (at.parse::<i64>(), unhex(tag)) else {
            return false;
        };
        if (now - at).abs() > SIGNATURE_MAX_AGE_SECONDS {
            return false;
        }
        self.mac(target, at, headers).verify_slice(&tag).is_ok()
    }
}

/// What a signature is for: one request's method, path and query.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path (compared percent-decoded).
    pub path: &'a str,
    /// The query, exactly as the request carries it (no `?`; a bare `?` is none).
    pub query: Option<&'a str>,
}

/// The headers signed, in this order.
const SIGNED: [&str; 4] = [
    PRINCIPAL_HEADER,
    PERMISSIONS_HEADER,
    CUSTOMER_HEADER,
    "x-forwarded-for",
];

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A service's middleware: every request but health and readiness must carry the edge's
/// signature (see the module's documentation); else `401 unsigned_caller`.
pub async fn require_signed(
    State(key): State<CallerKey>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let open = matches!(path, "/healthz" | "/readyz");
    if !open
        && !key.verify(
            &Target {
                method: request.method().as_str(),
                path,
                query: request.uri().query(),
            },
            unix_now(),
            request.headers(),
        )
    {
        tracing::warn!(
            method = %request.method(),
            path = %path,
            "a request without the edge's valid signature refused"
        );
        return Problem::new(401, "unsigned_caller", "Unsigned caller")
            .with_detail(
                "this service answers only requests the edge signed; send the request through \
                 the edge",
            )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<'a>(method: &'a str, path: &'a str, query: Option<&'a str>) -> Target<'a> {
        Target {
            method,
            path,
            query,
        }
    }

    fn caller() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(PRINCIPAL_HEADER, HeaderValue::from_static("key:k-1"));
        h.insert(
            PERMISSIONS_HEADER,
            HeaderValue::from_static("ledger:read,ledger:write"),
        );
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        h
    }

    #[test]
    fn a_signature_holds_for_its_request_only_and_for_a_minute() {
        let key = CallerKey::new(&[7; 32]).unwrap();
        let mut h = caller();
        let at = 1_800_000_000;
        h.insert(
            CALLER_SIGNATURE_HEADER,
            key.sign(&t("POST", "/v1/ledger/transfers", None), at, &h),
        );
        assert!(key.verify(&t("POST", "/v1/ledger/transfers", None), at, &h));
        assert!(key.verify(&t("POST", "/v1/ledger/transfers", None), at + 60, &h));
        assert!(key.verify(&t("POST", "/v1/ledger/transfers", None), at - 60, &h));
        assert!(!key.verify(&t("POST", "/v1/ledger/transfers", None), at + 61, &h));
        assert!(!key.verify(&t("GET", "/v1/ledger/transfers", None), at, &h));
        assert!(!key.verify(&t("POST", "/v1/ledger/accounts", None), at, &h));
        assert!(!key.verify(&t("POST", "/v1/ledger/transfers/1", None), at, &h));
        // The query is signed as sent: another query, or one added, is another request.
        let mut q = caller();
        q.insert(
            CALLER_SIGNATURE_HEADER,
            key.sign(&t("GET", "/v1/customers/c-1", Some("unmask=name")), at, &q),
        );
        assert!(key.verify(&t("GET", "/v1/customers/c-1", Some("unmask=name")), at, &q));
        for other in [None, Some("unmask=rrn"), Some("unmask=name&unmask=rrn")] {
            assert!(
                !key.verify(&t("GET", "/v1/customers/c-1", other), at, &q),
                "{other:?}"
            );
        }
        // A bare `?` is no query.
        assert!(key.verify(&t("POST", "/v1/ledger/transfers", Some("")), at, &h));
        // The path as signed, however the client on the way encoded it.
        assert!(key.verify(&t("POST", "/v1/ledger/%74ransfers", None), at, &h));
        // Another key, or any signed header changed, added or removed: refused.
        assert!(!CallerKey::new(&[8; 32]).unwrap().verify(
            &t("POST", "/v1/ledger/transfers", None),
            at,
            &h
        ));
        for (name, value) in [
            (PRINCIPAL_HEADER, "key:k-2"),
            (PERMISSIONS_HEADER, "ledger:read,ledger:write,audit:read"),
            (CUSTOMER_HEADER, "c-1"),
            ("x-forwarded-for", "203.0.113.1"),
        ] {
            let mut changed = h.clone();
            changed.insert(name, HeaderValue::from_static(value));
            assert!(
                !key.verify(&t("POST", "/v1/ledger/transfers", None), at, &changed),
                "{name}"
            );
        }
        let mut removed = h.clone();
        removed.remove("x-forwarded-for");
        assert!(!key.verify(&t("POST", "/v1/ledger/transfers", None), at, &removed));
        // Malformed signatures.
        for bad in ["", "1800000000", "x.00", "1800000000.zz", "1800000000.00"] {
            let mut forged = h.clone();
            forged.insert(CALLER_SIGNATURE_HEADER, HeaderValue::from_static(bad));
            assert!(
                !key.verify(&t("POST", "/v1/ledger/transfers", None), at, &forged),
                "{bad:?}"
            );
        }
        assert!(CallerKey::new(&[7; 31]).is_err());
    }
}
