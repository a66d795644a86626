//! `ledger.transfer.committed`: every committed transfer becomes one event, in order, on both
//! buses; the relay resumes from its saved cursor, and republishing is harmless.

use std::sync::Arc;
use std::time::Duration;

use bus::embedded::EmbeddedBus;
use bus::nats::NatsBus;
use bus::testing::NatsCluster;
use bus::{Bus, ConsumerSpec};
use ledger::engine::{Engine, EngineConfig};
use ledger::events::{EventRelay, TRANSFER_COMMITTED};
use ledger::*;
use store::testing::TestDb;

/// All 60 transfers, published a second time from cursor 0.
const EVENTS_REPUBLISHED: usize = 60;

mod support;
use support::{accounts, transfers};

async fn engine(dir: &std::path::Path) -> Arc<Engine> {
    let (engine, _) = Engine::open(EngineConfig::new(dir)).unwrap();
    let engine = Arc::new(engine);

    engine.create_accounts(accounts(1..=3)).await.unwrap();
    engine
}

async fn shutdown(engine: Arc<Engine>) {
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .unwrap()
        .unwrap();
}

async fn events_in_order(bus: &Bus) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let results = engine.create_transfers(transfers(100..150)).await.unwrap();
    assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
    // A refused transfer (unknown account) commits nothing and publishes nothing.
    let mut refused = transfers(150..151);
    refused[0].transfer.credit_account_id = 99;
    engine.create_transfers(refused).await.unwrap();

    let relay = EventRelay::new(engine.clone(), bus.clone(), 0);
    relay.ensure_stream(1).await.unwrap();
    let (cursor, published) = relay.publish_after(0).await.unwrap();
    assert_eq!(published, 50);
    assert_eq!(
        bus.load_cursor("ledger-events-0").await.unwrap(),
        Some(cursor)
    );
    assert_eq!(
        relay.publish_after(cursor).await.unwrap(),
        (cursor, 0),
        "nothing new"
    );

    engine.create_transfers(transfers(150..160)).await.unwrap();
    // A relay started afresh resumes from the saved cursor: only the ten new ones.
    let again = EventRelay::new(engine.clone(), bus.clone(), 0);
    let saved = bus.load_cursor("ledger-events-0").await.unwrap().unwrap();
    let (_, more) = again.publish_after(saved).await.unwrap();
    assert_eq!(more, 10);
    // Publishing from the start again (a crash before the cursor was saved) is deduplicated.
    assert_eq!(relay.publish_after(0).await.unwrap().1, EVENTS_REPUBLISHED);

    let mut consumer = bus
        .consumer(&ConsumerSpec::new("ledger", "reader", "ledger.transfer.*"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let got = consumer
            .fetch(100, Duration::from_millis(300))
            .await
            .unwrap();
        if got.is_empty() && seen.len() >= 60 {
            break;
        }
        for d in got {
            let event = d.event().unwrap();
            assert_eq!(event.event_type, TRANSFER_COMMITTED);
            assert_eq!(event.source, "/gureum/ledger");
            let id: u128 = event.data["id"].as_str().unwrap().parse().unwrap();
            assert_eq!(event.id, format!("transfer-{id}"));
            assert_eq!(
                event.subject.as_deref(),
                Some(format!("transfer/{id}").as_str())
            );
            assert_eq!(event.data["amount"], id.to_string());
            assert_eq!(event.data["debit_account_id"], (1 + id % 3).to_string());
            seen.push(id);
            d.ack().await.unwrap();
        }
    }
    assert_eq!(
        seen,
        (100..160).collect::<Vec<_>>(),
        "every committed transfer once, in commit order"
    );
    shutdown(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transfers_are_published_once_in_order_on_the_embedded_bus() {
    let db = TestDb::new(store::Backend::Sqlite).await;
    let bus = Bus::Embedded(EmbeddedBus::open(db.open().await).await.unwrap());
    events_in_order(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transfers_are_published_once_in_order_on_jetstream() {
    let nats = NatsCluster::single().await;
    let bus = Bus::Nats(NatsBus::connect(&nats.urls()).await.unwrap());
    events_in_order(&bus).await;
}

/// A relay whose stop sender is gone stops too, instead of waking at once forever: a node
/// whose server loop ended must be able to exit (a spinning relay once kept an orphaned node
/// alive, burning a core).
#[tokio::test]
async fn the_relay_stops_when_its_stop_sender_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let db = TestDb::new(store::Backend::Sqlite).await;
    let bus = Bus::Embedded(EmbeddedBus::open(db.open().await).await.unwrap());
    let relay = EventRelay::new(engine.clone(), bus, 0);
    relay.ensure_stream(1).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(relay.run(stopped));
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stop);
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the relay stops once nobody can stop it")
        .unwrap();
    shutdown(engine).await;
}
