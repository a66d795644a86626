//! Contract tests: the embedded bus and NATS JetStream behave the same for every operation —
//! publish with deduplication, durable consumers, acks, redelivery, the consumer loop with
//! dead letters — and the outbox relay delivers every recorded event in order, in both shapes
//! (SQLite + embedded bus; PostgreSQL + JetStream). NATS must be reachable at
//! `GUREUM_TEST_NATS_URL` (default `nats://127.0.0.1:4222`): the tests fail, never skip.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bus::consume::{Outcome, process};
use bus::embedded::EmbeddedBus;
use bus::nats::NatsBus;
use bus::{Bus, BusError, ConsumerSpec, Handler, HandlerError, Relay, StreamSpec};
use kernel::event::CloudEvent;
use serde_json::json;
use sqlx::{Any, Transaction};
use store::outbox::{self, NewEvent};
use store::sql::now_us;
use store::testing::{TestDb, unique_name};
use store::{Backend, Store};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Embedded,
    Nats,
}

const KINDS: [Kind; 2] = [Kind::Embedded, Kind::Nats];

impl Kind {
    /// The store a service has in the same shape as this bus.
    fn store_backend(self) -> Backend {
        match self {
            Kind::Embedded => Backend::Sqlite,
            Kind::Nats => Backend::Postgres,
        }
    }
}

struct TestBus {
    bus: Bus,
    streams: Vec<String>,
    _db: Option<TestDb>,
}

impl TestBus {
    async fn new(kind: Kind) -> TestBus {
        match kind {
            Kind::Embedded => {
                let db = TestDb::new(Backend::Sqlite).await;
                let bus = EmbeddedBus::open(db.open().await).await.unwrap();
                TestBus {
                    bus: Bus::Embedded(bus),
                    streams: Vec::new(),
                    _db: Some(db),
                }
            }
            Kind::Nats => {
                let url = std::env::var("GUREUM_TEST_NATS_URL")
                    .unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
                let bus = NatsBus::connect(&url).await.unwrap_or_else(|e| {
                    panic!(
                        "NATS with JetStream is required for this test and is not reachable at {url}: {e}. \
                         Start it (nats-server -js) or set GUREUM_TEST_NATS_URL."
                    )
                });
                TestBus {
                    bus: Bus::Nats(bus),
                    streams: Vec::new(),
                    _db: None,
                }
            }
        }
    }

    /// A fresh service stream with its own subjects.
    async fn stream(&mut self, configure: impl FnOnce(&mut StreamSpec)) -> String {
        let service = unique_name("svc");
        let mut spec = StreamSpec::for_service(&service);
        configure(&mut spec);
        self.bus.ensure_stream(&spec).await.unwrap();
        self.streams.push(service.clone());
        service
    }

    async fn cleanup(self) {
        if let Bus::Nats(nats) = &self.bus {
            for stream in &self.streams {
                nats.context().delete_stream(stream).await.unwrap();
            }
        }
    }
}

fn event(service: &str, what: &str, aggregate: &str, n: u64) -> CloudEvent {
    CloudEvent::new(
        format!("{}-{aggregate}-{n}", unique_name("e")),
        service,
        format!("{service}.{what}"),
        Some(aggregate.into()),
        now_us(),
        json!({ "n": n }),
        None,
    )
    .unwrap()
}

fn quick(stream: &str, durable: &str, filter: &str) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(stream, durable, filter);
    spec.ack_wait = Duration::from_secs(1);
    spec.max_deliver = 3;
    spec.backoff = vec![Duration::from_millis(100)];
    spec
}

fn numbers(deliveries: &[bus::Delivery]) -> Vec<u64> {
    deliveries
        .iter()
        .map(|d| d.event().unwrap().data["n"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn publish_stores_once_per_event_id_and_needs_a_stream() {
    for kind in KINDS {
        let mut t = TestBus::new(kind).await;
        let service = t.stream(|_| {}).await;
        let e = event(&service, "account.opened", "account/1", 1);
        let first = t.bus.publish(&e).await.unwrap();
        assert!(!first.duplicate, "{kind:?}");
        let again = t.bus.publish(&e).await.unwrap();
        assert_eq!(
            again,
            bus::Published {
                sequence: first.sequence,
                duplicate: true
            },
            "{kind:?}"
        );
        let other = t
            .bus
            .publish(&event(&service, "account.opened", "account/2", 2))
            .await
            .unwrap();
        assert_eq!(other.sequence, first.sequence + 1, "{kind:?}");

        let orphan = event(&unique_name("nostream"), "x.y", "a/1", 1);
        match t.bus.publish(&orphan).await {
            Err(BusError::NoStream(subject)) => assert_eq!(subject, orphan.event_type),
            other => panic!("{kind:?}: {other:?}"),
        }
        t.cleanup().await;
    }
}

#[tokio::test]
async fn durable_consumers_each_get_every_matching_event_in_order_and_keep_their_place() {
    for kind in KINDS {
        let mut t = TestBus::new(kind).await;
        let service = t.stream(|_| {}).await;
        for n in 1..=5 {
            t.bus
                .publish(&event(&service, "account.opened", "account/1", n))
                .await
                .unwrap();
            t.bus
                .publish(&event(&service, "transfer.made", "account/1", 100 + n))
                .await
                .unwrap();
        }
        let all_filter = format!("{service}.>");
        let opened_filter = format!("{service}.account.*");
        let mut all = t
            .bus
            .consumer(&quick(&service, "all", &all_filter))
            .await
            .unwrap();
        let mut opened = t
            .bus
            .consumer(&quick(&service, "opened", &opened_filter))
            .await
            .unwrap();

        let got = opened.fetch(10, Duration::from_secs(2)).await.unwrap();
        assert_eq!(numbers(&got), vec![1, 2, 3, 4, 5], "{kind:?}");
        assert!(
            got.iter()
                .all(|d| d.attempt == 1 && d.subject == format!("{service}.account.opened"))
        );
        for d in got {
            d.ack().await.unwrap();
        }
        let first = all.fetch(4, Duration::from_secs(2)).await.unwrap();
        assert_eq!(numbers(&first), vec![1, 101, 2, 102], "{kind:?}");
        for d in first {
            d.ack().await.unwrap();
        }
        drop(all);
        // Reopening the durable consumer continues after what it acknowledged.
        let mut all = t
            .bus
            .consumer(&quick(&service, "all", &all_filter))
            .await
            .unwrap();
        let mut rest = Vec::new();
        while rest.len() < 6 {
            let got = all.fetch(10, Duration::from_secs(2)).await.unwrap();
            assert!(!got.is_empty(), "{kind:?}: expected more");
            rest.extend(got);
        }
        assert_eq!(numbers(&rest), vec![3, 103, 4, 104, 5, 105], "{kind:?}");
        for d in rest {
            d.ack().await.unwrap();
        }
        assert!(
            opened
                .fetch(10, Duration::from_millis(300))
                .await
                .unwrap()
                .is_empty(),
            "{kind:?}"
        );
        assert!(
            all.fetch(10, Duration::from_millis(300))
                .await
                .unwrap()
                .is_empty(),
            "{kind:?}"
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn unacknowledged_deliveries_come_back_after_the_ack_wait_or_the_nak_delay() {
    for kind in KINDS {
        let mut t = TestBus::new(kind).await;
        let service = t.stream(|_| {}).await;
        t.bus
            .publish(&event(&service, "a.b", "a/1", 1))
            .await
            .unwrap();
        t.bus
            .publish(&event(&service, "a.b", "a/1", 2))
            .await
            .unwrap();
        let mut consumer = t
            .bus
            .consumer(&quick(&service, "c", &format!("{service}.>")))
            .await
            .unwrap();
        let got = consumer.fetch(2, Duration::from_secs(2)).await.unwrap();
        assert_eq!(numbers(&got), vec![1, 2]);
        let mut got = got.into_iter();
        let (one, two) = (got.next().unwrap(), got.next().unwrap());
        one.nak(Duration::from_millis(200)).await.unwrap();
        drop(two); // neither acked nor naked: the ack wait (1 s) brings it back

        let started = std::time::Instant::now();
        let again = consumer.fetch(1, Duration::from_secs(3)).await.unwrap();
        assert_eq!(numbers(&again), vec![1], "{kind:?}");
        assert_eq!(again[0].attempt, 2, "{kind:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "{kind:?}: {:?}",
            started.elapsed()
        );
        again.into_iter().next().unwrap().ack().await.unwrap();

        let late = consumer.fetch(1, Duration::from_secs(3)).await.unwrap();
        assert_eq!(numbers(&late), vec![2], "{kind:?}");
        assert_eq!(late[0].attempt, 2, "{kind:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(700),
            "{kind:?}: {:?}",
            started.elapsed()
        );
        late.into_iter().next().unwrap().ack().await.unwrap();
        assert!(
            consumer
                .fetch(5, Duration::from_millis(1_500))
                .await
                .unwrap()
                .is_empty(),
            "{kind:?}"
        );
        t.cleanup().await;
    }
}

/// Counts what it applies in the consumer's own table; fails the first `fail_first` attempts
/// of every event, or always for events whose `n` is 13.
struct Counting {
    fail_first: u32,
    attempts: AtomicU32,
    permanent_for_13: bool,
}

impl Counting {
    fn new(fail_first: u32, permanent_for_13: bool) -> Counting {
        Counting {
            fail_first,
            attempts: AtomicU32::new(0),
            permanent_for_13,
        }
    }
}

impl Handler for Counting {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &CloudEvent,
    ) -> Result<(), HandlerError> {
        let n = event.data["n"].as_i64().unwrap();
        sqlx::query("INSERT INTO applied (n) VALUES ($1)")
            .bind(n)
            .execute(&mut **tx)
            .await?;
        if n == 13 {
            return Err(if self.permanent_for_13 {
                HandlerError::permanent("13 is refused")
            } else {
                HandlerError::transient("13 keeps failing")
            });
        }
        if self.attempts.fetch_add(1, Ordering::SeqCst) < self.fail_first {
            return Err(HandlerError::transient("dependency unavailable"));
        }
        Ok(())
    }
}

const APPLIED: store::MigrationSet = store::MigrationSet {
    name: "consumer",
    migrations: &[store::Migration {
        version: 1,
        description: "applied",
        sql: "CREATE TABLE applied (n BIGINT NOT NULL)",
    }],
};

async fn applied(store: &Store) -> Vec<i64> {
    sqlx::query_scalar("SELECT n FROM applied ORDER BY n")
        .fetch_all(store.reader())
        .await
        .unwrap()
}

async fn settle(
    t: &TestBus,
    consumer: &mut bus::Consumer,
    store: &Store,
    spec: &ConsumerSpec,
    handler: &Counting,
    expected: usize,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for _ in 0..40 {
        for d in consumer
            .fetch(10, Duration::from_millis(300))
            .await
            .unwrap()
        {
            outcomes.push(process(&t.bus, store, spec, handler, d).await.unwrap());
        }
        if outcomes.len() >= expected {
            break;
        }
    }
    outcomes
}

#[tokio::test]
async fn the_consumer_loop_retries_applies_once_and_dead_letters_what_keeps_failing() {
    for kind in KINDS {
        let mut t = TestBus::new(kind).await;
        t.bus
            .ensure_stream(&StreamSpec::dead_letters())
            .await
            .unwrap();
        let service = t.stream(|_| {}).await;
        let db = TestDb::new(kind.store_backend()).await;
        let store = db.open().await;
        store.migrate(&APPLIED).await.unwrap();
        let spec = quick(&service, "worker", &format!("{service}.>"));
        let mut consumer = t.bus.consumer(&spec).await.unwrap();
        let dl_spec = quick(
            bus::DEAD_LETTER_STREAM,
            &unique_name("dl"),
            &spec.dead_letter_subject(),
        );
        let mut dead_letters = t.bus.consumer(&dl_spec).await.unwrap();

        // One transient failure, then success: applied exactly once (the failed attempt's
        // insert was rolled back).
        let handler = Counting::new(1, false);
        t.bus
            .publish(&event(&service, "a.b", "a/1", 1))
            .await
            .unwrap();
        let outcomes = settle(&t, &mut consumer, &store, &spec, &handler, 2).await;
        assert_eq!(
            outcomes,
            vec![
                Outcome::Retrying {
                    attempt: 1,
                    delay: Duration::from_millis(100)
                },
                Outcome::Applied
            ],
            "{kind:?}"
        );
        assert_eq!(applied(&store).await, vec![1], "{kind:?}");

        // Always failing: dead-lettered after max_deliver (3) attempts, with its payload.
        let doomed = event(&service, "a.b", "a/13", 13);
        t.bus.publish(&doomed).await.unwrap();
        let outcomes = settle(&t, &mut consumer, &store, &spec, &handler, 3).await;
        assert_eq!(outcomes.len(), 3, "{kind:?}: {outcomes:?}");
        assert_eq!(
            outcomes[2],
            Outcome::DeadLettered {
                reason: "failed 3 attempts; last: 13 keeps failing".into()
            },
            "{kind:?}"
        );
        assert_eq!(
            applied(&store).await,
            vec![1],
            "{kind:?}: nothing of the failed event stays"
        );
        let letters = dead_letters.fetch(5, Duration::from_secs(2)).await.unwrap();
        assert_eq!(letters.len(), 1, "{kind:?}");
        let letter = letters[0].event().unwrap();
        assert_eq!(letter.event_type, spec.dead_letter_subject());
        assert_eq!(letter.data["attempts"], 3);
        assert_eq!(letter.data["consumer"], "worker");
        assert_eq!(
            CloudEvent::from_json(letter.data["payload"].as_str().unwrap().as_bytes()).unwrap(),
            doomed
        );

        // A permanent failure is dead-lettered at once.
        let strict = Counting::new(0, true);
        t.bus
            .publish(&event(&service, "a.b", "a/13", 13))
            .await
            .unwrap();
        let outcomes = settle(&t, &mut consumer, &store, &spec, &strict, 1).await;
        assert_eq!(
            outcomes,
            vec![Outcome::DeadLettered {
                reason: "permanent failure: 13 is refused".into()
            }]
        );

        assert_eq!(applied(&store).await, vec![1], "{kind:?}");
        store.close().await;
        db.cleanup().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn an_event_stored_twice_is_applied_once() {
    for kind in KINDS {
        let mut t = TestBus::new(kind).await;
        let service = t
            .stream(|s| s.duplicate_window = Duration::from_millis(200))
            .await;
        let db = TestDb::new(kind.store_backend()).await;
        let store = db.open().await;
        store.migrate(&APPLIED).await.unwrap();
        let spec = quick(&service, "worker", &format!("{service}.>"));
        let mut consumer = t.bus.consumer(&spec).await.unwrap();
        let e = event(&service, "a.b", "a/7", 7);
        assert!(!t.bus.publish(&e).await.unwrap().duplicate);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            !t.bus.publish(&e).await.unwrap().duplicate,
            "{kind:?}: past the window it is stored again"
        );
        let handler = Counting::new(0, false);
        let outcomes = settle(&t, &mut consumer, &store, &spec, &handler, 2).await;
        assert_eq!(
            outcomes,
            vec![Outcome::Applied, Outcome::Duplicate],
            "{kind:?}"
        );
        assert_eq!(applied(&store).await, vec![7], "{kind:?}");
        store.close().await;
        db.cleanup().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn the_relay_publishes_every_committed_event_in_order_per_aggregate_in_both_shapes() {
    for kind in KINDS {
        let mut t = TestBus::new(kind).await;
        let db = TestDb::new(kind.store_backend()).await;
        let store = db.open().await;
        let service = unique_name("svc");
        let relay = Relay::new(store.clone(), t.bus.clone());

        // Recorded before the stream exists: the relay fails, marks nothing, loses nothing.
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let store = store.clone();
                let service = service.clone();
                tokio::spawn(async move {
                    for n in 0..25u64 {
                        let mut tx = store.begin().await.unwrap();
                        for aggregate in [format!("account/{w}"), "account/shared".to_owned()] {
                            let e = NewEvent {
                                event_type: format!("{service}.account.changed"),
                                aggregate,
                                data: json!({ "writer": w, "n": n }),
                                traceparent: None,
                            };
                            outbox::record(&mut tx, &service, e, now_us())
                                .await
                                .unwrap();
                        }
                        if n % 5 == 4 {
                            tx.rollback().await.unwrap(); // never published
                        } else {
                            tx.commit().await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        assert!(
            matches!(relay.publish_pending().await, Err(BusError::NoStream(_))),
            "{kind:?}"
        );
        assert_eq!(
            outbox::unpublished(&store, 1_000).await.unwrap().len(),
            160,
            "{kind:?}"
        );

        t.bus
            .ensure_stream(&StreamSpec::for_service(&service))
            .await
            .unwrap();
        t.streams.push(service.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(relay.clone().run(stop_rx));

        let mut consumer = t
            .bus
            .consumer(&quick(&service, "reader", &format!("{service}.>")))
            .await
            .unwrap();
        let received = Mutex::new(BTreeMap::<String, Vec<u64>>::new());
        let mut total = 0;
        for _ in 0..50 {
            for d in consumer
                .fetch(100, Duration::from_millis(200))
                .await
                .unwrap()
            {
                let e = d.event().unwrap();
                let key = format!("{}:{}", e.subject.clone().unwrap(), e.data["writer"]);
                received
                    .lock()
                    .unwrap()
                    .entry(key)
                    .or_default()
                    .push(e.data["n"].as_u64().unwrap());
                total += 1;
                d.ack().await.unwrap();
            }
            if total >= 160 {
                break;
            }
        }
        stop_tx.send(true).unwrap();
        running.await.unwrap().unwrap();
        assert_eq!(total, 160, "{kind:?}");
        // Per aggregate (and per writer within the shared one), exactly the committed events,
        // in the order they were recorded.
        let committed: Vec<u64> = (0..25).filter(|n| n % 5 != 4).collect();
        let received = received.into_inner().unwrap();
        assert_eq!(received.len(), 8, "{kind:?}");
        for (key, ns) in &received {
            assert_eq!(ns, &committed, "{kind:?} {key}");
        }
        assert!(
            outbox::unpublished(&store, 1_000).await.unwrap().is_empty(),
            "{kind:?}"
        );
        store.close().await;
        db.cleanup().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn batches_are_stored_in_order_with_dedup_and_cursors_persist() {
    for kind in KINDS {
        let mut t = TestBus::new(kind).await;
        let service = t.stream(|_| {}).await;
        let events: Vec<CloudEvent> = (1..=5).map(|n| event(&service, "a.b", "a/1", n)).collect();
        let first = t.bus.publish_batch(&events[..3]).await.unwrap();
        assert!(first.iter().all(|p| !p.duplicate), "{kind:?}");
        assert!(
            first.windows(2).all(|w| w[1].sequence == w[0].sequence + 1),
            "{kind:?}"
        );
        let second = t.bus.publish_batch(&events).await.unwrap();
        let duplicates: Vec<bool> = second.iter().map(|p| p.duplicate).collect();
        assert_eq!(duplicates, vec![true, true, true, false, false], "{kind:?}");
        let sequences = |p: &[bus::Published]| p.iter().map(|p| p.sequence).collect::<Vec<_>>();
        assert_eq!(
            sequences(&second[..3]),
            sequences(&first),
            "{kind:?}: a duplicate answers the original's sequence"
        );
        let mut consumer = t
            .bus
            .consumer(&quick(&service, "c", &format!("{service}.>")))
            .await
            .unwrap();
        let got = consumer.fetch(10, Duration::from_secs(2)).await.unwrap();
        assert_eq!(numbers(&got), vec![1, 2, 3, 4, 5], "{kind:?}");

        let cursor = format!("cur-{service}");
        assert_eq!(t.bus.load_cursor(&cursor).await.unwrap(), None, "{kind:?}");
        t.bus.save_cursor(&cursor, 41).await.unwrap();
        t.bus
            .save_cursor(&cursor, u64::from(u32::MAX) * 7)
            .await
            .unwrap();
        assert_eq!(
            t.bus.load_cursor(&cursor).await.unwrap(),
            Some(u64::from(u32::MAX) * 7),
            "{kind:?}"
        );
        assert!(matches!(
            t.bus.save_cursor("bad name", 1).await,
            Err(BusError::Invalid { .. })
        ));
        t.cleanup().await;
    }
}
