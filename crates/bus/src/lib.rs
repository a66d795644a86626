//! The event bus, the same contract in both of Gureum's shapes:
//!
//! - [`embedded`]: a durable log in one SQLite file, in process (`gureum up`);
//! - [`nats`]: NATS JetStream (`gureum serve`): a stream per service, durable pull consumers,
//!   explicit acks, `Nats-Msg-Id` deduplication within an explicit window.
//!
//! On top of either: [`relay`] publishes a service's outbox in order, and [`consume`] runs an
//! idempotent consumer (processed-event table, redelivery with backoff, dead letters after
//! `max_deliver` attempts).
//!
//! Delivery is at least once. A publish returns only once the bus has stored the event; a
//! message is redelivered until its consumer acknowledges it. Every event is a
//! [`CloudEvent`] whose `type` is its subject.

use std::time::Duration;

use kernel::event::{CloudEvent, EncodedEvent};

pub mod consume;
pub mod embedded;
pub mod nats;
pub mod relay;
#[cfg(feature = "testing")]
pub mod testing;

pub use consume::{Handler, HandlerError, run_consumer};
pub use relay::Relay;

/// The stream dead letters go to; its subjects are `deadletter.<stream>.<consumer>`.
pub const DEAD_LETTER_STREAM: &str = "deadletter";

/// How long a publish of the same event id is recognised as a duplicate, unless a stream says
/// otherwise. Longer than any relay retry loop.
pub const DUPLICATE_WINDOW_DEFAULT: Duration = Duration::from_secs(120);

/// How long a stream keeps messages, unless it says otherwise.
pub const MAX_AGE_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most messages one fetch returns.
pub const FETCH_MAX: usize = 256;

/// A stream: where the events of some subjects are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    /// `[a-z0-9_-]+`, e.g. the service's name.
    pub name: String,
    /// Subject filters the stream captures, e.g. `customers.>`.
    pub subjects: Vec<String>,
    /// Publishes with an event id seen within this window are acknowledged as duplicates and
    /// not stored again.
    pub duplicate_window: Duration,
    /// Messages older than this are removed.
    pub max_age: Duration,
    /// Copies kept (JetStream only): 1 on a laptop, 3 across zones.
    pub replicas: usize,
}

impl StreamSpec {
    /// The stream of a service: every subject under `<service>.`.
    pub fn for_service(service: &str) -> StreamSpec {
        StreamSpec {
            name: service.to_owned(),
            subjects: vec![format!("{service}.>")],
            duplicate_window: DUPLICATE_WINDOW_DEFAULT,
            max_age: MAX_AGE_DEFAULT,
            replicas: 1,
        }
    }

    /// The dead-letter stream.
    pub fn dead_letters() -> StreamSpec {
        StreamSpec::for_service(DEAD_LETTER_STREAM)
    }
}

/// A durable consumer: its name, what it reads, and how deliveries are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// The stream it reads.
    pub stream: String,
    /// Durable name, `[a-z0-9_-]+`; the bus remembers its progress under it.
    pub durable: String,
    /// Subject filter, e.g. `ledger.transfer.*` or `ledger.>`.
    pub filter_subject: String,
    /// An unacknowledged delivery is redelivered after this long.
    pub ack_wait: Duration,
    /// After this many failed attempts an event goes to the dead-letter stream.
    pub max_deliver: u32,
    /// Delay before attempt n + 1 after failed attempt n (the last entry repeats).
    pub backoff: Vec<Duration>,
}

impl ConsumerSpec {
    /// A consumer with Gureum's defaults: 30 s ack wait, 5 attempts, backoff 1 s, 5 s, 30 s, 2 min.
    pub fn new(stream: &str, durable: &str, filter_subject: &str) -> ConsumerSpec {
        ConsumerSpec {
            stream: stream.to_owned(),
            durable: durable.to_owned(),
            filter_subject: filter_subject.to_owned(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            backoff: [1, 5, 30, 120].map(Duration::from_secs).to_vec(),
        }
    }

    /// The delay before retrying after failed attempt `attempt` (1-based).
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let index = (attempt.max(1) - 1) as usize;
        self.backoff
            .get(index)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// The subject this consumer's dead letters are published on.
    pub fn dead_letter_subject(&self) -> String {
        format!("{DEAD_LETTER_STREAM}.{}.{}", self.stream, self.durable)
    }
}

/// What the bus said to a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The message's position in its stream.
    pub sequence: u64,
    /// The event id was already stored within the duplicate window; nothing new was stored.
    pub duplicate: bool,
}

/// Bus failures.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No stream captures the subject.
    #[error("no stream captures subject {0}")]
    NoStream(String),
    /// A name or subject is not usable.
    #[error("invalid {what}: {value:?}")]
    Invalid {
        /// What was checked.
        what: &'static str,
        /// The refused value.
        value: String,
    },
    /// The embedded bus's storage failed.
    #[error("embedded bus storage: {0}")]
    Store(#[from] store::StoreError),
    /// NATS or JetStream failed (connection, publish, consumer, ack).
    #[error("NATS JetStream: {0}")]
    Nats(String),
}

impl From<sqlx::Error> for BusError {
    fn from(e: sqlx::Error) -> BusError {
        BusError::Store(e.into())
    }
}

/// A bus: embedded or JetStream. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Bus {
    /// In process, on SQLite.
    Embedded(embedded::EmbeddedBus),
    /// NATS JetStream.
    Nats(nats::NatsBus),
}

impl Bus {
    /// Creates the stream, or updates its limits if it exists.
    pub async fn ensure_stream(&self, spec: &StreamSpec) -> Result<(), BusError> {
        check_name("stream name", &spec.name)?;
        for subject in &spec.subjects {
            check_subject(subject, true)?;
        }
        match self {
            Bus::Embedded(bus) => bus.ensure_stream(spec).await,
            Bus::Nats(bus) => bus.ensure_stream(spec).await,
        }
    }

    /// Stores `event` on the subject of its type, deduplicated by its id. Returns once stored.
    pub async fn publish(&self, event: &CloudEvent) -> Result<Published, BusError> {
        self.publish_on(&event.event_type, event).await
    }

    /// Stores `event` on `subject` (dead letters use their own subjects).
    pub async fn publish_on(
        &self,
        subject: &str,
        event: &CloudEvent,
    ) -> Result<Published, BusError> {
        check_subject(subject, false)?;
        let message = vec![(subject.to_owned(), event.id.clone(), event.to_json())];
        let published = match self {
            Bus::Embedded(bus) => bus.publish_all(message).await?,
            Bus::Nats(bus) => bus.publish_all(message).await?,
        };
        Ok(published[0])
    }

    /// Stores every event on the subject of its type, in order, deduplicated by id; returns
    /// once all are stored. Faster than one [`Bus::publish`] each.
    pub async fn publish_batch(&self, events: &[CloudEvent]) -> Result<Vec<Published>, BusError> {
        self.publish_encoded(events.iter().map(EncodedEvent::from).collect())
            .await
    }

    /// [`Bus::publish_batch`] for events already in their JSON form (see [`EncodedEvent`]).
    pub async fn publish_encoded(
        &self,
        events: Vec<EncodedEvent>,
    ) -> Result<Vec<Published>, BusError> {
        let messages = events
            .into_iter()
            .map(|e| {
                check_subject(&e.event_type, false)?;
                Ok((e.event_type, e.id, e.json))
            })
            .collect::<Result<Vec<_>, BusError>>()?;
        match self {
            Bus::Embedded(bus) => bus.publish_all(messages).await,
            Bus::Nats(bus) => bus.publish_all(messages).await,
        }
    }

    /// The position a named reader saved (see [`Bus::save_cursor`]), if any.
    pub async fn load_cursor(&self, name: &str) -> Result<Option<u64>, BusError> {
        check_name("cursor name", name)?;
        match self {
            Bus::Embedded(bus) => bus.load_cursor(name).await,
            Bus::Nats(bus) => bus.load_cursor(name).await,
        }
    }

    /// Saves how far a relay that reads another log (the ledger's journal) has published.
    pub async fn save_cursor(&self, name: &str, position: u64) -> Result<(), BusError> {
        check_name("cursor name", name)?;
        match self {
            Bus::Embedded(bus) => bus.save_cursor(name, position).await,
            Bus::Nats(bus) => bus.save_cursor(name, position).await,
        }
    }

    /// Opens (creating if needed) the durable consumer.
    pub async fn consumer(&self, spec: &ConsumerSpec) -> Result<Consumer, BusError> {
        check_name("stream name", &spec.stream)?;
        check_name("consumer name", &spec.durable)?;
        check_subject(&spec.filter_subject, true)?;
        if spec.max_deliver == 0 {
            return Err(BusError::Invalid {
                what: "max_deliver",
                value: "0".into(),
            });
        }
        match self {
            Bus::Embedded(bus) => Ok(Consumer::Embedded(bus.consumer(spec).await?)),
            Bus::Nats(bus) => Ok(Consumer::Nats(Box::new(bus.consumer(spec).await?))),
        }
    }
}

/// A durable consumer's handle.
#[derive(Debug)]
pub enum Consumer {
    /// On the embedded bus.
    Embedded(embedded::EmbeddedConsumer),
    /// On JetStream.
    Nats(Box<nats::NatsConsumer>),
}

impl Consumer {
    /// Up to `max` deliveries (new messages and redeliveries), waiting up to `wait` for the
    /// first. An empty answer means nothing arrived in time.
    pub async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let max = max.clamp(1, FETCH_MAX);
        match self {
            Consumer::Embedded(c) => c.fetch(max, wait).await,
            Consumer::Nats(c) => c.fetch(max, wait).await,
        }
    }
}

/// One delivery of one message to a consumer.
#[derive(Debug)]
pub struct Delivery {
    /// The subject it was published on.
    pub subject: String,
    /// The payload as stored.
    pub payload: String,
    /// 1 for the first delivery, 2 for the first redelivery, …
    pub attempt: u32,
    acker: Acker,
}

#[derive(Debug)]
enum Acker {
    Embedded {
        bus: embedded::EmbeddedBus,
        stream: String,
        consumer: String,
        seq: i64,
    },
    Nats(Box<async_nats::jetstream::Message>),
}

impl Delivery {
    /// The payload as a CloudEvent, or why it is not one.
    pub fn event(&self) -> Result<CloudEvent, kernel::event::EventError> {
        CloudEvent::from_json(self.payload.as_bytes())
    }

    /// Done with it: never deliver it to this consumer again.
    pub async fn ack(self) -> Result<(), BusError> {
        match self.acker {
            Acker::Embedded {
                bus,
                stream,
                consumer,
                seq,
            } => bus.ack(&stream, &consumer, seq).await,
            Acker::Nats(message) => nats::ack(&message).await,
        }
    }

    /// Not done: deliver it again after `delay`.
    pub async fn nak(self, delay: Duration) -> Result<(), BusError> {
        match self.acker {
            Acker::Embedded {
                bus,
                stream,
                consumer,
                seq,
            } => bus.nak(&stream, &consumer, seq, delay).await,
            Acker::Nats(message) => nats::nak(&message, delay).await,
        }
    }
}

/// Stream and consumer names: `[a-z0-9_-]`, 1 to 64 bytes.
fn check_name(what: &'static str, name: &str) -> Result<(), BusError> {
    checked(what, name, name.len() <= 64 && is_token(name))
}

/// Subjects: dot-separated tokens of `[a-z0-9_-]`; a filter may also use `*` (one token) and
/// `>` (the rest, last token only).
fn check_subject(subject: &str, filter: bool) -> Result<(), BusError> {
    let tokens: Vec<&str> = subject.split('.').collect();
    let ok = subject.len() <= 255
        && tokens.iter().enumerate().all(|(i, token)| {
            let wildcard = filter && (*token == "*" || (*token == ">" && i == tokens.len() - 1));
            wildcard || is_token(token)
        });
    checked(
        if filter { "subject filter" } else { "subject" },
        subject,
        ok,
    )
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn checked(what: &'static str, value: &str, ok: bool) -> Result<(), BusError> {
    if ok {
        Ok(())
    } else {
        Err(BusError::Invalid {
            what,
            value: value.to_owned(),
        })
    }
}

/// Whether `subject` matches `filter` (NATS wildcard rules: `*` one token, `>` one or more).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut filter_tokens = filter.split('.');
    let mut subject_tokens = subject.split('.');
    loop {
        match (filter_tokens.next(), subject_tokens.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(f), Some(s)) if f == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_matching_follows_nats_wildcards() {
        assert!(subject_matches("ledger.>", "ledger.transfer.committed"));
        assert!(subject_matches(
            "ledger.*.committed",
            "ledger.transfer.committed"
        ));
        assert!(subject_matches(
            "ledger.transfer.committed",
            "ledger.transfer.committed"
        ));
        assert!(!subject_matches("ledger.>", "ledger"));
        assert!(!subject_matches("ledger.*", "ledger.transfer.committed"));
        assert!(!subject_matches(
            "ledger.transfer",
            "ledger.transfer.committed"
        ));
        assert!(!subject_matches("customers.>", "ledger.transfer.committed"));
    }

    #[test]
    fn names_and_subjects_are_checked() {
        assert!(check_subject("ledger.>", true).is_ok());
        assert!(check_subject("ledger.>", false).is_err());
        assert!(check_subject("ledger.>.x", true).is_err());
        assert!(check_subject("ledger..x", false).is_err());
        assert!(check_subject("Ledger.x", false).is_err());
        assert!(check_name("consumer name", "lending-eod_1").is_ok());
        assert!(check_name("consumer name", "a.b").is_err());
        assert!(check_name("consumer name", "").is_err());
    }

    #[test]
    fn backoff_repeats_its_last_step() {
        let spec = ConsumerSpec::new("ledger", "lending", "ledger.>");
        let steps: Vec<u64> = (1..=6).map(|a| spec.backoff_after(a).as_secs()).collect();
        assert_eq!(steps, vec![1, 5, 30, 120, 120, 120]);
        assert_eq!(spec.dead_letter_subject(), "deadletter.ledger.lending");
    }
}
