//! Gureum's shared vocabulary: what every service speaks the same way.
//!
//! - [`problem`]: RFC 9457 `application/problem+json` errors with stable type URIs.
//! - [`event`]: the CloudEvents 1.0 envelope every service publishes, with W3C trace context.
//! - [`http`]: JSON bodies parsed with errors that never echo a value, and the [`http::Caller`]
//!   the edge established.
//! - [`decimal`]: serde codecs for integers that travel as decimal strings (ids, amounts),
//!   because JSON numbers lose precision past 2^53 in most clients.
//!
//! This crate must never do I/O of its own or depend on a service crate.

pub mod dates;
pub mod decimal;
pub mod event;
pub mod http;
pub mod problem;

pub use problem::Problem;

/// Lowercase hexadecimal of `bytes` (hashes, trace ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
