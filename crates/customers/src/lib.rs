//! Gureum's customers service: customers, KYC status and consents, and the regulated-data
//! vault that keeps resident registration numbers, phone numbers, addresses, income,
//! employer and personal credit information encrypted per customer, masked on read, audited
//! when read in the clear, searchable by blind index, and erasable by crypto-shredding.
//!
//! - [`identifiers`], [`model`]: the pure rules (validation, check digits, masking, KYC
//!   transitions). No I/O.
//! - [`vault`]: envelope encryption (AES-256-GCM data keys wrapped by master keys) and blind
//!   indexes (HMAC-SHA256).
//! - [`service`]: the shell — storage, sealing, audit records and outbox events.
//! - [`api`]: the HTTP routes under `/v1/customers` and their OpenAPI document.
//!
//! **Never** logs, returns or publishes a regulated value, except the plain values of an
//! unmasked read that was permitted and recorded first.

pub mod api;
pub mod identifiers;
pub mod model;
pub mod service;
pub mod vault;

pub use service::{Customers, MIGRATIONS, SERVICE};
