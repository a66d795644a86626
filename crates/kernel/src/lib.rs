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

pub mod caller_key;
pub mod dates;
pub mod decimal;
pub mod event;
pub mod http;
pub mod problem;

pub use problem::Problem;

/// A ledger id derived from what it is for — `service`'s step `purpose` for `owner` (an account,
/// a loan), the `which`th (a date, an attempt): a retry of the same step computes the same id,
/// so the ledger answers `exists` instead of moving money twice.
///
/// ```
/// let a = kernel::derived_id("deposits", "accrual", "acc-1", "2026-11-27");
/// assert_eq!(a, kernel::derived_id("deposits", "accrual", "acc-1", "2026-11-27"));
/// assert_ne!(a, kernel::derived_id("lending", "accrual", "acc-1", "2026-11-27"));
/// ```
pub fn derived_id(
    service: &str,
    purpose: &str,
    owner: &str,
    which: impl std::fmt::Display,
) -> u128 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("gureum/{service}/{purpose}/{owner}/{which}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // 0 and 2^128-1 are not ids; a digest lands there with probability 2^-127.
    u128::from_be_bytes(bytes).clamp(1, u128::MAX - 1)
}

/// The ledger that holds Korean won (ISO 4217 numeric code); amounts on it are whole won.
/// Every service that moves won uses it, so their accounts can be debited against each other.
pub const LEDGER_KRW: u32 = 410;

/// Lowercase hexadecimal of `bytes` (hashes, trace ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
