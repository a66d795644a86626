//! Gureum's account system: a durable double-entry ledger.
//!
//! - [`types`] and [`state`]: the pure core. A deterministic state machine over batches of
//!   account and transfer events; no I/O, no clock.
//! - [`codec`]: the fixed-size binary encoding shared by the journal, snapshots and the binary API.
//! - [`journal`] and [`snapshot`]: durability. An append-only, checksummed, hash-chained journal
//!   with group commit, and snapshots that bound recovery time.
//! - [`replicated`]: the journal on a NATS JetStream stream, with a fenced single writer,
//!   a lease and a standby that takes over.
//! - [`engine`]: the imperative shell. One thread owns the state and the journal, gathers
//!   waiting batches, applies them, makes them durable with one fsync, then answers.
//! - [`events`]: `ledger.transfer.committed` events, published from the journal to the bus.
//! - [`api`]: the HTTP API (JSON and binary) and its OpenAPI document.
//! - [`client`]: the ledger as other services use it, in process or over HTTP.

pub mod api;
pub mod client;
pub mod codec;
pub mod engine;
pub mod events;
pub mod journal;
pub mod replicated;
pub mod snapshot;
pub mod state;
pub mod types;
pub mod verify;

pub use state::{AccountEvent, Ledger, Page, PageQuery, TransferEvent, TransferView};
pub use types::*;
