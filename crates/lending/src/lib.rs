//! Gureum's consumer lending: credit evaluation (stored, replayable), applications and their
//! decisions, offers, loans from disbursement to payoff posted to the ledger, end of day,
//! collections, and the quote API.
//!
//! - [`credit`]: the pure credit evaluation — an explainable, versioned scorecard (score
//!   1–1000, grade, probability of default, adverse reasons) and the debt service ratio.
//! - [`decision`]: the pure credit decision — approve (limit, rate from the product's grid
//!   for the grade), refer to a loan officer, or decline, with reason codes.
//! - [`schedule`]: the pure schedule arithmetic (equal payment, equal principal, bullet,
//!   grace), exact to the won.
//! - [`servicing`]: the pure loan servicing — end of day (accrual, late interest, instalments
//!   falling due, days past due, status), repayment allocation, prepayment with its fee,
//!   restructuring, write-off and recovery — each step returning the ledger postings that keep
//!   a loan's books equal to its state.
//! - [`collections`]: the pure collections rules — the queue's order, the playbook by bucket,
//!   promises to pay kept or broken.
//! - [`books`]: the chart of accounts on the ledger — each loan's receivable accounts, the
//!   bank's — and a step's postings as linked ledger transfers with derived ids.
//! - [`service`]: credit evaluations stored sealed with their model version, replayable;
//!   applications.
//! - [`loans`]: the loan shell — offer, acceptance and contract, disbursement, repayments,
//!   prepayments, restructuring, write-off, end of day, collections — every money step
//!   pending → posted → committed.
//! - [`links`]: contracts and deposits as lending asks them.
//! - [`api`], [`loans_api`]: `POST /v1/loans/quote`, `/v1/credit…`, `/v1/loans…`.

pub mod api;
pub mod books;
pub mod collections;
pub mod credit;
pub mod decision;
pub mod eod;
pub mod links;
pub mod loans;
pub mod loans_api;
pub mod schedule;
pub mod service;
pub mod servicing;

pub use service::{Lending, MIGRATIONS, SERVICE};
