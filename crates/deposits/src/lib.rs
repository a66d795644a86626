//! Gureum's deposit accounts: a customer's demand deposit, term deposit or installment savings,
//! opened under the product version in force, its money held in the ledger.
//!
//! - [`model`]: the pure rules — the chart of accounts on the ledger, amounts, eligibility,
//!   interest accrual in exact integers truncated to the won, statements.
//! - [`service`]: accounts in SQL, movements through the ledger (idempotent by key), holds,
//!   closing, statements; `eod.rs`: end of day (daily accrual, month-end posting).
//! - [`api`]: the routes under `/v1/deposits`.
//!
//! **Never** keeps a balance of its own: the ledger's is the only one.

pub mod api;
mod eod;
pub mod model;
pub mod service;

pub use peers::Peers;
pub use service::{Deposits, MIGRATIONS, SERVICE};
