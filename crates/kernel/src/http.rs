//! What every service's HTTP layer does the same way: reading a JSON body into a typed request
//! with problem+json errors that never echo the values a client sent (a request may carry a
//! resident registration number; a parser's "invalid type: string \"900101-…\"" would put it in
//! a response and from there in a log), and knowing who is calling.

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::rejection::BytesRejection;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::convert::Infallible;

use crate::Problem;

/// A body that could not be read: larger than `body_bytes_max`, or the connection failed.
pub fn body_problem(rejection: BytesRejection, body_bytes_max: usize) -> Problem {
    if rejection.status().as_u16() == 413 {
        Problem::new(413, "body_too_large", "The request body is too large").with_detail(format!(
            "a request body holds at most {body_bytes_max} bytes"
        ))
    } else {
        Problem::new(400, "unreadable_body", "The request body could not be read")
            .with_detail(rejection.body_text())
    }
}

/// Parses a JSON body into `T`. Errors name the place (line and column, or the field's path)
/// and never the value found there.
///
/// ```
/// #[derive(serde::Deserialize, Debug)]
/// #[serde(deny_unknown_fields)]
/// struct Req { rrn: String }
/// let p = kernel::http::parse_json::<Req>(br#"{"rrn": 9001011234567}"#).unwrap_err();
/// assert_eq!(p.code, "invalid_body");
/// assert!(!p.detail.unwrap().contains("9001011234567"));
/// ```
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let not_json = |e: &serde_json::Error| {
        Problem::new(400, "invalid_body", "The request body is not valid").with_detail(format!(
            "the body is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return not_json(inner);
        }
        let path = e.path().to_string();
        let message = inner.to_string();
        // These two name fields, never values, so they are safe to pass on.
        let names_only = message.starts_with("missing field") || message.starts_with("unknown field");
        let detail = if names_only {
            let message = message.split(" at line ").next().unwrap_or_default();
            if path == "." { message.to_owned() } else { format!("`{path}`: {message}") }
        } else if path == "." {
            "the body does not have the expected shape (see the OpenAPI document)".to_owned()
        } else {
            format!(
                "`{path}` is missing, unknown, or has the wrong type or format (see the OpenAPI document)"
            )
        };
        Problem::new(400, "invalid_body", "The request body is not valid").with_detail(detail)
    })?;
    deserializer.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

/// Reads and parses a JSON body (see [`parse_json`]).
pub fn json_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    body_bytes_max: usize,
) -> Result<T, Problem> {
    let body = body.map_err(|r| body_problem(r, body_bytes_max))?;
    parse_json(&body)
}

/// 400 `invalid_query` for a query string that does not parse.
pub fn query_problem(rejection: axum::extract::rejection::QueryRejection) -> Problem {
    Problem::new(400, "invalid_query", "The query string is not valid")
        .with_detail(rejection.body_text())
}

/// 400 `code` for a path segment that does not parse.
pub fn path_problem(rejection: axum::extract::rejection::PathRejection, code: &str) -> Problem {
    Problem::new(400, code, "The path is not valid").with_detail(rejection.body_text())
}

/// The request's W3C trace context, if it carries a valid `traceparent`.
pub fn trace_parent(headers: &axum::http::HeaderMap) -> Option<crate::event::TraceParent> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Where a service of the split shape reaches the others — the edge — and the key it sends
/// there (`GUREUM_API_KEY`: the edge's service key). Debug output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Upstream {
    /// e.g. `http://edge:8080`, without a trailing slash.
    pub url: String,
    /// Sent as `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
}

impl Upstream {
    /// The edge at `url`, reached with `api_key`.
    pub fn new(url: &str, api_key: Option<String>) -> Upstream {
        Upstream {
            url: url.trim_end_matches('/').to_owned(),
            api_key,
        }
    }

    /// The headers every call carries: the credential, marked sensitive (so an HTTP client's
    /// debug output leaves it out).
    pub fn headers(&self) -> axum::http::HeaderMap {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(key) = &self.api_key
            && let Ok(mut value) = axum::http::HeaderValue::from_str(&format!("Bearer {key}"))
        {
            value.set_sensitive(true);
            headers.insert(axum::http::header::AUTHORIZATION, value);
        }
        headers
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The header naming the authenticated principal of a request.
pub const PRINCIPAL_HEADER: &str = "gureum-principal";
/// The header listing the principal's permissions, comma-separated.
pub const PERMISSIONS_HEADER: &str = "gureum-permissions";
/// The header naming the customer a customer's credential belongs to: set by the edge for a
/// principal with the `customer` role, whose every read is limited to that customer's records.
pub const CUSTOMER_HEADER: &str = "gureum-customer";
/// The principal of a request that carries none.
pub const ANONYMOUS: &str = "anonymous";

/// Whose records a read may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Everyone's (the caller holds the permission itself).
    All,
    /// Only this customer's (the caller holds the permission's `:own` form and is this
    /// customer).
    Customer(&'a str),
}

impl Scope<'_> {
    /// Whether a record of `customer_id` is in scope.
    pub fn covers(&self, customer_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Customer(own) => *own == customer_id,
        }
    }

    /// The customer filter a listing runs with, given the one the query asked for (`None`:
    /// everyone's) — or `None` when a customer asked for someone else's: nothing to list.
    pub fn narrow<'q>(&'q self, asked: Option<&'q str>) -> Option<Option<&'q str>> {
        match (self, asked) {
            (Scope::All, asked) => Some(asked),
            (Scope::Customer(own), None) => Some(Some(own)),
            (Scope::Customer(own), Some(asked)) if *own == asked => Some(Some(own)),
            (Scope::Customer(_), Some(_)) => None,
        }
    }
}

/// Who is calling and what they may do, as the edge established it.
///
/// Services never authenticate: the edge does, and passes the result on in
/// [`PRINCIPAL_HEADER`] and [`PERMISSIONS_HEADER`]. A request without them is
/// [`ANONYMOUS`] with no permissions. The edge drops these headers when a client sends them,
/// so only what it established arrives (see docs/SECURITY.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The principal's id (an API key's id, a token's subject), or [`ANONYMOUS`].
    pub principal: String,
    /// Permission names, e.g. `customers:unmask`.
    pub permissions: BTreeSet<String>,
    /// For a customer's credential, the customer it belongs to ([`CUSTOMER_HEADER`]).
    pub customer: Option<String>,
}

/// Principal names and permission lists are bounded, so a header cannot grow memory.
const CALLER_HEADER_BYTES_MAX: usize = 4096;

impl Caller {
    /// A caller with these permissions (for tests and in-process calls).
    pub fn new(principal: &str, permissions: &[&str]) -> Caller {
        Caller {
            principal: principal.to_owned(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            customer: None,
        }
    }

    /// This caller as customer `customer_id`'s own credential.
    pub fn for_customer(mut self, customer_id: &str) -> Caller {
        self.customer = Some(customer_id.to_owned());
        self
    }

    /// Whose records a read needing `permission` may see: only the customer's own when this
    /// is a customer's credential without `permission` (it came through the route's `:own`
    /// form, which the edge checked), else everyone's. Services narrow what they answer to
    /// it: another customer's record is `404`, a listing holds only the customer's.
    pub fn scope(&self, permission: &str) -> Scope<'_> {
        match &self.customer {
            Some(customer) if !self.may(permission) => Scope::Customer(customer),
            _ => Scope::All,
        }
    }

    /// 403 unless the caller holds `permission` or, being a customer, its `:own` form.
    pub fn require_or_own(&self, permission: &str) -> Result<Scope<'_>, Problem> {
        if self.may(permission) {
            return Ok(Scope::All);
        }
        match &self.customer {
            Some(customer) if self.may(&format!("{permission}:own")) => {
                Ok(Scope::Customer(customer))
            }
            _ => self.require(permission).map(|()| Scope::All),
        }
    }

    /// Whether the caller holds `permission`.
    pub fn may(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// 403 `permission_denied` unless the caller holds `permission`.
    pub fn require(&self, permission: &str) -> Result<(), Problem> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(Problem::new(403, "permission_denied", "Permission denied")
                .with_detail(format!("this action needs the permission `{permission}`")))
        }
    }

    /// Reads the caller from request headers.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Caller {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= CALLER_HEADER_BYTES_MAX)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        Caller {
            principal: text(PRINCIPAL_HEADER).unwrap_or(ANONYMOUS).to_owned(),
            permissions: text(PERMISSIONS_HEADER)
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            customer: text(CUSTOMER_HEADER).map(str::to_owned),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, Infallible> {
        Ok(Caller::from_headers(&parts.headers))
    }
}

/// Where a request came from: the last `X-Forwarded-For` entry (the address the edge saw, which
/// the edge appends) or else the connection's peer address; `unknown` when neither is known.
/// The edge drops a client's own `X-Forwarded-For`, so what arrives is the edge's.
pub fn client_address(parts: &axum::http::request::Parts) -> String {
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|a| !a.is_empty() && a.len() <= 64);
    if let Some(address) = forwarded {
        return address.to_owned();
    }
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_sends_its_key_and_never_prints_it() {
        let upstream = Upstream::new("http://edge:8080/", Some("s3cr3t-service-key".into()));
        assert_eq!(upstream.url, "http://edge:8080");
        let headers = upstream.headers();
        assert_eq!(headers["authorization"], "Bearer s3cr3t-service-key");
        assert!(headers["authorization"].is_sensitive());
        assert!(!format!("{upstream:?}").contains("s3cr3t"));
        assert!(Upstream::new("http://edge", None).headers().is_empty());
    }

    #[test]
    fn the_client_address_is_the_last_forwarded_hop_or_the_peer() {
        let parts = |xff: Option<&str>, peer: Option<&str>| {
            let mut request = axum::http::Request::builder();
            if let Some(v) = xff {
                request = request.header("x-forwarded-for", v);
            }
            let (mut parts, ()) = request.body(()).unwrap().into_parts();
            if let Some(p) = peer {
                parts.extensions.insert(axum::extract::ConnectInfo(
                    p.parse::<std::net::SocketAddr>().unwrap(),
                ));
            }
            parts
        };
        assert_eq!(
            client_address(&parts(
                Some("198.51.100.1, 203.0.113.7"),
                Some("10.0.0.5:40000")
            )),
            "203.0.113.7"
        );
        assert_eq!(
            client_address(&parts(None, Some("10.0.0.5:40000"))),
            "10.0.0.5"
        );
        assert_eq!(client_address(&parts(None, None)), "unknown");
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        name: String,
        income: Option<u64>,
    }

    #[test]
    fn parse_errors_name_the_field_and_never_the_value() {
        let p = parse_json::<Req>(br#"{"name": "x", "income": "secret-income-7"}"#).unwrap_err();
        let detail = p.detail.unwrap();
        assert!(detail.contains("`income`"), "{detail}");
        assert!(!detail.contains("secret-income-7"), "{detail}");
        let p = parse_json::<Req>(br#"{"name": "x", "rrn_typo": "900101"}"#).unwrap_err();
        assert!(!p.detail.unwrap().contains("900101"));
        let p = parse_json::<Req>(br#"{"income": 1}"#).unwrap_err();
        assert_eq!(p.detail.unwrap(), "missing field `name`");
        let p = parse_json::<Req>(br#"{"name": "secret-name" "#).unwrap_err();
        assert_eq!(p.status, 400);
        assert!(!p.detail.unwrap().contains("secret-name"));
        let p = parse_json::<Req>(br#"{"name": "x"} trailing"#).unwrap_err();
        assert_eq!(p.code, "invalid_body");
    }

    #[test]
    fn caller_comes_from_the_edge_headers_and_defaults_to_anonymous() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(Caller::from_headers(&headers), Caller::new(ANONYMOUS, &[]));
        headers.insert(PRINCIPAL_HEADER, "key-7".parse().unwrap());
        headers.insert(
            PERMISSIONS_HEADER,
            " customers:read, customers:unmask ,".parse().unwrap(),
        );
        let caller = Caller::from_headers(&headers);
        assert_eq!(
            caller,
            Caller::new("key-7", &["customers:read", "customers:unmask"])
        );
        assert!(caller.require("customers:unmask").is_ok());
        assert_eq!(caller.require("ledger:write").unwrap_err().status, 403);
        assert_eq!(caller.scope("customers:read"), Scope::All);
        assert_eq!(caller.require_or_own("customers:read"), Ok(Scope::All));
    }

    #[test]
    fn a_customer_s_scope_is_their_own_records_and_nothing_without_the_own_permission() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(PRINCIPAL_HEADER, "key-9".parse().unwrap());
        headers.insert(PERMISSIONS_HEADER, "loans:read:own".parse().unwrap());
        headers.insert(CUSTOMER_HEADER, "c-1".parse().unwrap());
        let customer = Caller::from_headers(&headers);
        assert_eq!(customer.customer.as_deref(), Some("c-1"));
        let scope = customer.require_or_own("loans:read").unwrap();
        assert_eq!(scope, Scope::Customer("c-1"));
        assert_eq!(customer.scope("loans:read"), Scope::Customer("c-1"));
        assert!(scope.covers("c-1") && !scope.covers("c-2"));
        assert_eq!(scope.narrow(None), Some(Some("c-1")));
        assert_eq!(scope.narrow(Some("c-1")), Some(Some("c-1")));
        assert_eq!(scope.narrow(Some("c-2")), None);
        assert_eq!(Scope::All.narrow(Some("c-2")), Some(Some("c-2")));
        assert_eq!(Scope::All.narrow(None), Some(None));
        // The own permission of another kind of record grants nothing here.
        let err = customer.require_or_own("deposits:read").unwrap_err();
        assert_eq!(err.status, 403);
        // Without a customer, the own permission alone grants nothing.
        let stray = Caller::new("key-3", &["loans:read:own"]);
        assert_eq!(stray.require_or_own("loans:read").unwrap_err().status, 403);
        assert_eq!(stray.scope("loans:read"), Scope::All);
    }
}
