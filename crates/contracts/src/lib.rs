//! Gureum's contracts: a document generated from the exact product version, the customer and
//! the particulars; kept in object storage with its SHA-256; signed (who, when, from where,
//! which hash); looked up by customer, product, status or date; and never served if the stored
//! file no longer matches its hash.
//!
//! - [`document`]: the pure part — the contract's text and its PDF.
//! - [`service`]: object storage, SQL, signatures, outbox events.
//! - [`api`]: the routes under `/v1/contracts`.

pub mod api;
pub mod document;
pub mod service;

pub use service::{Contracts, MIGRATIONS, SERVICE};
