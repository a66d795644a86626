//! Gureum's edge: the one door every `/v1/…` request passes, in both shapes.
//!
//! - [`access`]: the permission each route needs (one table, rendered into docs/SECURITY.md)
//!   and the roles that grant them; deny by default.
//! - [`keys`]: API keys — random, shown once, stored hashed, scoped to roles, expirable,
//!   revocable — and the bootstrap admin key.
//! - [`oidc`]: OpenID Connect bearer tokens (RS256/ES256 JWTs checked against a JWKS file or
//!   URL), beside API keys.
//! - [`gate`]: the middleware: authentication, authorization, the firewall (the `waf`
//!   crate) in the request path, size and time limits, security headers.
//! - [`limits`]: rate limits (token buckets per principal, and per address for failed
//!   authentications).
//! - [`blocks`]: the optional automatic response — an address or principal blocked for a
//!   while after a finding.
//! - [`proxies`]: trusted proxies — the client's address from `X-Forwarded-For` when a load
//!   balancer or an ingress stands in front.
//! - [`api`]: `/v1/auth/…` (who am I; create, list and revoke keys) and `/v1/audit/events`.
//!
//! Services behind the edge never authenticate: they read the principal and its permissions
//! from the headers the gate sets (and drops when a client sends them).

pub mod access;
pub mod api;
pub mod blocks;
pub mod findings;
pub mod gate;
pub mod keys;
pub mod limits;
pub mod oidc;
pub mod proxies;

pub use access::{Access, Grant, Role};
pub use gate::{Detectors, Gate, GateConfig};
pub use keys::{Bootstrapped, Keys, Principal};
pub use oidc::{JwksSource, Oidc, OidcConfig};
pub use proxies::TrustedProxies;
