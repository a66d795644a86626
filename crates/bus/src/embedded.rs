//! The embedded bus: JetStream's contract (streams, dedup window, durable pull consumers,
//! explicit ack, redelivery after the ack wait or a nak's delay) on one SQLite file, for the
//! one-process shape. Nothing acknowledged to a publisher is lost in a crash: a publish
//! returns after its commit, and SQLite commits are durable (`synchronous = FULL`).
//!
//! It runs on SQLite only: there a single writer connection assigns message numbers in commit
//! order, which is what lets a consumer keep a simple cursor (on PostgreSQL a lower number
//! could commit after a higher one and be skipped).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};
use store::sql::now_us;
use store::{Backend, Migration, MigrationSet, Store};
use tokio::sync::Notify;

use crate::{Acker, BusError, ConsumerSpec, Delivery, Published, StreamSpec, subject_matches};

/// The embedded bus's tables.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    name: "bus",
    migrations: &[
        Migration {
            version: 1,
            description: "message log and consumers",
            sql: include_str!("../migrations/0001_log.sql"),
        },
        Migration {
            version: 2,
            description: "cursors",
            sql: include_str!("../migrations/0002_cursors.sql"),
        },
    ],
};

/// Messages a consumer's cursor examines per fetch when looking for matching subjects.
const SCAN_MAX: i64 = 1_024;
/// How often a waiting fetch looks again without being woken (redeliveries come due).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Messages per duplicate check and multi-row insert (5 parameters a row; SQLite allows
/// 32,766 per statement).
const PUBLISH_CHUNK: usize = 512;
/// How often publishing also prunes messages past their stream's maximum age.
const PRUNE_EVERY_US: u64 = 60_000_000;

#[derive(Clone, Debug)]
struct StreamRow {
    name: String,
    subjects: Vec<String>,
    duplicate_window_us: i64,
    max_age_us: i64,
}

/// The embedded bus. Cheap to clone; clones share the store and wake each other's consumers.
#[derive(Clone, Debug)]
pub struct EmbeddedBus {
    store: Store,
    published: Arc<Notify>,
    streams: Arc<RwLock<Vec<StreamRow>>>,
    /// When messages were last pruned (microseconds since the epoch).
    pruned_at_us: Arc<AtomicU64>,
}

impl EmbeddedBus {
    /// Opens the bus on a SQLite store (its tables are created if missing).
    pub async fn open(store: Store) -> Result<EmbeddedBus, BusError> {
        if store.backend() != Backend::Sqlite {
            return Err(BusError::Invalid {
                what: "embedded bus backend",
                value: "postgres".into(),
            });
        }
        store.migrate(&MIGRATIONS).await?;
        let bus = EmbeddedBus {
            store,
            published: Arc::new(Notify::new()),
            streams: Arc::default(),
            pruned_at_us: Arc::default(),
        };
        bus.load_streams().await?;
        Ok(bus)
    }

    async fn load_streams(&self) -> Result<(), BusError> {
        let rows =
            sqlx::query("SELECT name, subjects, duplicate_window_us, max_age_us FROM bus_streams")
                .fetch_all(self.store.reader())
                .await?;
        let streams = rows
            .iter()
            .map(|r| {
                let subjects: String = r.try_get("subjects")?;
                Ok(StreamRow {
                    name: r.try_get("name")?,
                    subjects: subjects.split(' ').map(str::to_owned).collect(),
                    duplicate_window_us: r.try_get("duplicate_window_us")?,
                    max_age_us: r.try_get("max_age_us")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        *self.streams.write().expect("streams lock") = streams;
        Ok(())
    }

    pub(crate) async fn ensure_stream(&self, spec: &StreamSpec) -> Result<(), BusError> {
        {
            let streams = self.streams.read().expect("streams lock");
            for other in streams.iter().filter(|s| s.name != spec.name) {
                if spec
                    .subjects
                    .iter()
                    .any(|a| other.subjects.iter().any(|b| overlaps(a, b)))
                {
                    return Err(BusError::Invalid {
                        what: "stream subjects (overlap another stream's)",
                        value: spec.subjects.join(" "),
                    });
                }
            }
        }
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO bus_streams (name, subjects, duplicate_window_us, max_age_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET subjects = excluded.subjects, \
             duplicate_window_us = excluded.duplicate_window_us, max_age_us = excluded.max_age_us",
        )
        .bind(&spec.name)
        .bind(spec.subjects.join(" "))
        .bind(micros(spec.duplicate_window))
        .bind(micros(spec.max_age))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.load_streams().await
    }

    /// Stores every message in one transaction, in order; each is deduplicated by its id.
    /// Messages go in chunks of [`PUBLISH_CHUNK`]: one query finds the chunk's duplicates and
    /// one multi-row insert stores the rest (each statement is a round trip to SQLite's thread).
    pub(crate) async fn publish_all(
        &self,
        messages: Vec<(String, String, String)>,
    ) -> Result<Vec<Published>, BusError> {
        let now = now_us();
        let streams = self.streams.read().expect("streams lock").clone();
        let mut routed = Vec::with_capacity(messages.len());
        for (subject, msg_id, payload) in messages {
            let stream = streams
                .iter()
                .find(|s| s.subjects.iter().any(|f| subject_matches(f, &subject)))
                .ok_or_else(|| BusError::NoStream(subject.clone()))?;
            routed.push((stream, subject, msg_id, payload));
        }
        let mut out = Vec::with_capacity(routed.len());
        let mut tx = self.store.begin().await?;
        // Ids stored by this call, for a message repeated within the batch.
        let mut stored_now: HashMap<(String, String), i64> = HashMap::new();
        let mut rest = routed.as_slice();
        while !rest.is_empty() {
            // A run of one stream, at most a chunk long.
            let stream = rest[0].0;
            let len = rest
                .iter()
                .take(PUBLISH_CHUNK)
                .take_while(|m| m.0.name == stream.name)
                .count();
            let (chunk, after) = rest.split_at(len);
            rest = after;
            let mut seen: HashMap<String, i64> = HashMap::new();
            // Anonymous `?` parameters here: SQLite looks a named one up by scanning the list of
            // names, which costs quadratic time in statements with hundreds of parameters.
            let sql = format!(
                "SELECT msg_id, MIN(seq) AS seq FROM bus_messages WHERE stream = ? AND stored_at_us >= ? \
                 AND msg_id IN ({}) GROUP BY msg_id",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(&stream.name)
                .bind(now - stream.duplicate_window_us);
            for m in chunk {
                query = query.bind(&m.2);
            }
            for row in query.fetch_all(&mut *tx).await? {
                seen.insert(row.try_get("msg_id")?, row.try_get("seq")?);
            }
            // Each message is a duplicate of one stored before (or earlier in this call), or
            // fresh; fresh ones are inserted together, numbered in order.
            let mut fresh: Vec<&(&StreamRow, String, String, String)> = Vec::new();
            let mut fresh_index: HashMap<&str, usize> = HashMap::new();
            let mut answers: Vec<Answer> = Vec::with_capacity(chunk.len());
            for m in chunk {
                let key = (stream.name.clone(), m.2.clone());
                if let Some(&seq) = seen.get(&m.2).or_else(|| stored_now.get(&key)) {
                    answers.push(Answer::Stored(seq));
                } else if let Some(&i) = fresh_index.get(m.2.as_str()) {
                    answers.push(Answer::SameAs(i));
                } else {
                    fresh_index.insert(&m.2, fresh.len());
                    answers.push(Answer::Fresh(fresh.len()));
                    fresh.push(m);
                }
            }
            let mut seqs: Vec<i64> = Vec::new();
            if !fresh.is_empty() {
                let sql = format!(
                    "INSERT INTO bus_messages (stream, subject, msg_id, payload, stored_at_us) VALUES {} RETURNING seq",
                    vec!["(?, ?, ?, ?, ?)"; fresh.len()].join(", ")
                );
                let mut insert = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
                for m in &fresh {
                    insert = insert
                        .bind(&m.0.name)
                        .bind(&m.1)
                        .bind(&m.2)
                        .bind(&m.3)
                        .bind(now);
                }
                seqs = insert.fetch_all(&mut *tx).await?;
                // One writer: the rows got consecutive numbers in the order of the VALUES list.
                seqs.sort_unstable();
                for (m, seq) in fresh.iter().zip(&seqs) {
                    stored_now.insert((stream.name.clone(), m.2.clone()), *seq);
                }
            }
            out.extend(answers.into_iter().map(|answer| match answer {
                Answer::Stored(seq) => Published {
                    sequence: seq as u64,
                    duplicate: true,
                },
                Answer::Fresh(i) => Published {
                    sequence: seqs[i] as u64,
                    duplicate: false,
                },
                Answer::SameAs(i) => Published {
                    sequence: seqs[i] as u64,
                    duplicate: true,
                },
            }));
        }
        tx.commit().await?;
        self.published.notify_waiters();
        let last = self.pruned_at_us.load(Ordering::Relaxed);
        if (now as u64).saturating_sub(last) >= PRUNE_EVERY_US
            && self
                .pruned_at_us
                .compare_exchange(last, now as u64, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.prune(now).await?;
        }
        Ok(out)
    }

    pub(crate) async fn load_cursor(&self, name: &str) -> Result<Option<u64>, BusError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM bus_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(self.store.reader())
                .await?;
        Ok(position.map(|p| p as u64))
    }

    pub(crate) async fn save_cursor(&self, name: &str, position: u64) -> Result<(), BusError> {
        let position = i64::try_from(position).map_err(|_| BusError::Invalid {
            what: "cursor",
            value: position.to_string(),
        })?;
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO bus_cursors (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        )
        .bind(name)
        .bind(position)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes messages past their stream's maximum age, and deliveries of them.
    pub async fn prune(&self, now_us: i64) -> Result<u64, BusError> {
        let streams = self.streams.read().expect("streams lock").clone();
        let mut removed = 0;
        let mut tx = self.store.begin().await?;
        for stream in streams {
            let done =
                sqlx::query("DELETE FROM bus_messages WHERE stream = $1 AND stored_at_us < $2")
                    .bind(&stream.name)
                    .bind(now_us - stream.max_age_us)
                    .execute(&mut *tx)
                    .await?;
            removed += done.rows_affected();
            // Messages go in age order, so deliveries of removed ones are those numbered below
            // the oldest message left (or all of them, if none is left).
            sqlx::query(
                "DELETE FROM bus_pending WHERE stream = $1 AND seq < \
                 COALESCE((SELECT MIN(seq) FROM bus_messages WHERE stream = $1), 9223372036854775807)",
            )
            .bind(&stream.name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    pub(crate) async fn consumer(&self, spec: &ConsumerSpec) -> Result<EmbeddedConsumer, BusError> {
        if !self
            .streams
            .read()
            .expect("streams lock")
            .iter()
            .any(|s| s.name == spec.stream)
        {
            return Err(BusError::NoStream(spec.stream.clone()));
        }
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO bus_consumers (stream, name, filter_subject, delivered_seq) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (stream, name) DO UPDATE SET filter_subject = excluded.filter_subject",
        )
        .bind(&spec.stream)
        .bind(&spec.durable)
        .bind(&spec.filter_subject)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(EmbeddedConsumer {
            bus: self.clone(),
            spec: spec.clone(),
        })
    }

    pub(crate) async fn ack(&self, stream: &str, consumer: &str, seq: i64) -> Result<(), BusError> {
        let mut tx = self.store.begin().await?;
        sqlx::query("DELETE FROM bus_pending WHERE stream = $1 AND consumer = $2 AND seq = $3")
            .bind(stream)
            .bind(consumer)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn nak(
        &self,
        stream: &str,
        consumer: &str,
        seq: i64,
        delay: Duration,
    ) -> Result<(), BusError> {
        let mut tx = self.store.begin().await?;
        sqlx::query("UPDATE bus_pending SET due_at_us = $1 WHERE stream = $2 AND consumer = $3 AND seq = $4")
            .bind(now_us() + micros(delay))
            .bind(stream)
            .bind(consumer)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.published.notify_waiters();
        Ok(())
    }
}

/// What became of one message of a batch.
enum Answer {
    /// A duplicate of the message stored under this number.
    Stored(i64),
    /// Stored now, as the i-th fresh message of its chunk.
    Fresh(usize),
    /// A repeat of the i-th fresh message of its chunk.
    SameAs(usize),
}

/// A durable consumer on the embedded bus.
#[derive(Debug)]
pub struct EmbeddedConsumer {
    bus: EmbeddedBus,
    spec: ConsumerSpec,
}

impl EmbeddedConsumer {
    pub(crate) async fn fetch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register for a wake-up before looking, so a publish in between is not missed.
            let woken = self.bus.published.notified();
            let deliveries = self.take(max).await?;
            let now = tokio::time::Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            let nap = POLL_INTERVAL.min(deadline - now);
            let _ = tokio::time::timeout(nap, woken).await;
        }
    }

    /// Claims due redeliveries, then new matching messages, in one transaction.
    async fn take(&self, max: usize) -> Result<Vec<Delivery>, BusError> {
        let (stream, name) = (&self.spec.stream, &self.spec.durable);
        let now = now_us();
        let due_again = now + micros(self.spec.ack_wait);
        let mut tx = self.bus.store.begin().await?;
        let mut out = Vec::new();

        let redeliveries = sqlx::query(
            "SELECT p.seq, p.deliveries, m.subject, m.payload FROM bus_pending p \
             JOIN bus_messages m ON m.stream = p.stream AND m.seq = p.seq \
             WHERE p.stream = $1 AND p.consumer = $2 AND p.due_at_us <= $3 ORDER BY p.seq LIMIT $4",
        )
        .bind(stream)
        .bind(name)
        .bind(now)
        .bind(max as i64)
        .fetch_all(&mut *tx)
        .await?;
        for row in redeliveries {
            let seq: i64 = row.try_get("seq")?;
            let deliveries: i64 = row.try_get::<i64, _>("deliveries")? + 1;
            sqlx::query(
                "UPDATE bus_pending SET deliveries = $1, due_at_us = $2 \
                 WHERE stream = $3 AND consumer = $4 AND seq = $5",
            )
            .bind(deliveries)
            .bind(due_again)
            .bind(stream)
            .bind(name)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            out.push(self.delivery(
                seq,
                deliveries,
                row.try_get("subject")?,
                row.try_get("payload")?,
            ));
        }

        if out.len() < max {
            let cursor: i64 = sqlx::query_scalar(
                "SELECT delivered_seq FROM bus_consumers WHERE stream = $1 AND name = $2",
            )
            .bind(stream)
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            let fresh = sqlx::query(
                "SELECT seq, subject, payload FROM bus_messages WHERE stream = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(stream)
            .bind(cursor)
            .bind(SCAN_MAX)
            .fetch_all(&mut *tx)
            .await?;
            let mut new_cursor = cursor;
            for row in fresh {
                if out.len() == max {
                    break;
                }
                let seq: i64 = row.try_get("seq")?;
                new_cursor = seq;
                let subject: String = row.try_get("subject")?;
                if !subject_matches(&self.spec.filter_subject, &subject) {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO bus_pending (stream, consumer, seq, deliveries, due_at_us) VALUES ($1, $2, $3, 1, $4)",
                )
                .bind(stream)
                .bind(name)
                .bind(seq)
                .bind(due_again)
                .execute(&mut *tx)
                .await?;
                out.push(self.delivery(seq, 1, subject, row.try_get("payload")?));
            }
            sqlx::query(
                "UPDATE bus_consumers SET delivered_seq = $1 WHERE stream = $2 AND name = $3",
            )
            .bind(new_cursor)
            .bind(stream)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    fn delivery(&self, seq: i64, deliveries: i64, subject: String, payload: String) -> Delivery {
        Delivery {
            subject,
            payload,
            attempt: u32::try_from(deliveries).unwrap_or(u32::MAX),
            acker: Acker::Embedded {
                bus: self.bus.clone(),
                stream: self.spec.stream.clone(),
                consumer: self.spec.durable.clone(),
                seq,
            },
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Whether two subject filters can match a common subject.
fn overlaps(a: &str, b: &str) -> bool {
    let (mut x, mut y) = (a.split('.'), b.split('.'));
    loop {
        match (x.next(), y.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(p), Some(q)) if p == q || p == "*" || q == "*" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}
