//! Gureum's consumer lending. Today: repayment schedules and the quote API; credit evaluation,
//! origination, servicing, collections and end of day follow (issue 5).
//!
//! - [`schedule`]: the pure schedule arithmetic (equal payment, equal principal, bullet,
//!   grace), exact to the won.
//! - [`api`]: `POST /v1/loans/quote`.

pub mod api;
pub mod schedule;
