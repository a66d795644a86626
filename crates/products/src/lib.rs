//! Gureum's product catalogue: deposit products (demand deposit, term deposit, installment
//! savings) and loan products (unsecured personal credit loans), with rates (base + spread,
//! tiers by term and credit grade), fees, amount and term bounds, repayment methods and
//! eligibility — versioned with effective dates and a draft → published → retired lifecycle,
//! so a contract always points at the exact terms it was signed under.
//!
//! - [`model`]: the pure rules (validation per kind, the legal rate cap for loans, rate
//!   lookup, which version is in force on a day, the lifecycle).
//! - [`service`]: storage and outbox events.
//! - [`api`]: the routes under `/v1/products`.
//!
//! **Never** changes a published version: a change is a new version.

pub mod api;
pub mod model;
pub mod service;

pub use service::{MIGRATIONS, Products, SERVICE};
