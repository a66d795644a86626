//! The replicated journal on NATS JetStream, against a current nats-server each test starts
//! (`bus::testing`; fails, never skips, without one): a follower rebuilds the leader's exact state,
//! a sealed journal fences the old writer off, and a partial group a dead leader left is cut
//! off by the seal.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use bus::testing::NatsCluster;

mod support;
use ledger::engine::{Engine, EngineConfig};
use ledger::journal::{JournalEncoder, JournalError, RecordKind};
use ledger::replicated::{self, Follower, Lease, OFFSET_HEADER, ReplicationConfig, SnapshotStore};
use ledger::*;
use support::{accounts, transfers};

async fn jetstream() -> (NatsCluster, jetstream::Context) {
    let nats = NatsCluster::single().await;
    let client = async_nats::connect(nats.urls()).await.unwrap();
    (nats, jetstream::new(client))
}

fn config() -> ReplicationConfig {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    ReplicationConfig {
        shard: (nanos % 1_000_000_000) as u32 + std::process::id(),
        replicas: 1,
        lease_ttl: Duration::from_millis(800),
        node: "test".into(),
    }
}

async fn cleanup(js: &jetstream::Context, config: &ReplicationConfig) {
    js.delete_stream(config.stream_name()).await.unwrap();
    js.delete_key_value(config.lease_bucket()).await.unwrap();
}

/// Seals a fresh follower and starts an engine that writes after it.
async fn leader(js: &jetstream::Context, config: &ReplicationConfig) -> Arc<Engine> {
    let mut follower = Follower::new(js, config).await.unwrap();
    loop {
        follower.catch_up().await.unwrap();
        if follower.seal(js, config).await.unwrap() {
            break;
        }
    }
    let (ledger, position, sink) =
        follower.into_writer(js.clone(), config, tokio::runtime::Handle::current());
    let dir = std::env::temp_dir();
    Arc::new(
        Engine::open_replicated(EngineConfig::new(dir), ledger, position, Box::new(sink)).unwrap(),
    )
}

fn body(ledger: &Ledger) -> Vec<u8> {
    let mut out = Vec::new();
    ledger::snapshot::encode_body(ledger, &mut out).unwrap();
    out
}

async fn shutdown(engine: Arc<Engine>) {
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_rebuilds_the_leaders_exact_state_from_the_stream() {
    let (_nats, js) = jetstream().await;
    let config = config();
    replicated::ensure_stream(&js, &config).await.unwrap();
    let engine = leader(&js, &config).await;
    assert!(
        engine
            .create_accounts(accounts(1..=3))
            .await
            .unwrap()
            .iter()
            .all(|r| *r == CreateAccountResult::Ok)
    );
    // Big enough batches that a group spans several messages.
    for b in 0..4u128 {
        let batch = transfers(1_000 + b * 8_000..1_000 + (b + 1) * 8_000);
        let results = engine.create_transfers(batch).await.unwrap();
        assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
    }
    let leader_body = engine.query(body).await.unwrap();

    let mut follower = Follower::new(&js, &config).await.unwrap();
    let applied = follower.catch_up().await.unwrap();
    assert!(
        applied >= 6,
        "{applied} messages: the seal, the accounts and 4 groups of 1 MiB each or more"
    );
    assert_eq!(follower.ledger().transfer_count(), 32_000);
    assert_eq!(follower.ledger().check_invariants(), Ok(()));
    assert_eq!(
        body(follower.ledger()),
        leader_body,
        "replay must give the leader's state byte for byte"
    );
    shutdown(engine).await;
    cleanup(&js, &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_journal_fences_the_old_leader_off_and_loses_nothing_it_acknowledged() {
    let (_nats, js) = jetstream().await;
    let config = config();
    replicated::ensure_stream(&js, &config).await.unwrap();
    let old = leader(&js, &config).await;
    old.create_accounts(accounts(1..=3)).await.unwrap();
    old.create_transfers(transfers(10..20)).await.unwrap();

    // A new leader takes over while the old one still runs (it was paused, say).
    let new = leader(&js, &config).await;
    let refused = old.create_transfers(transfers(20..30)).await;
    assert!(
        refused.is_err(),
        "the fenced leader must not acknowledge: {refused:?}"
    );
    assert!(old.is_failed());
    let results = new.create_transfers(transfers(20..30)).await.unwrap();
    assert!(
        results.iter().all(|r| *r == CreateTransferResult::Ok),
        "{results:?}"
    );
    let ids: Vec<u128> = new
        .query(|l| (10..30).filter(|id| l.transfer(*id).is_some()).collect())
        .await
        .unwrap();
    assert_eq!(ids, (10..30).collect::<Vec<_>>());

    let mut follower = Follower::new(&js, &config).await.unwrap();
    follower.catch_up().await.unwrap();
    assert_eq!(follower.ledger().transfer_count(), 20);
    assert_eq!(body(follower.ledger()), new.query(body).await.unwrap());
    shutdown(new).await;
    let _ = tokio::task::spawn_blocking(move || old.shutdown())
        .await
        .unwrap();
    cleanup(&js, &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seal_cuts_off_a_partial_group_a_dead_leader_left() {
    let (_nats, js) = jetstream().await;
    let config = config();
    replicated::ensure_stream(&js, &config).await.unwrap();
    let engine = leader(&js, &config).await;
    engine.create_accounts(accounts(1..=3)).await.unwrap();
    engine.create_transfers(transfers(10..20)).await.unwrap();
    shutdown(engine).await;

    // The first part of a group whose other parts never arrived: a whole record, then the
    // first half of the next one.
    let mut follower = Follower::new(&js, &config).await.unwrap();
    follower.catch_up().await.unwrap();
    let end = follower.position().offset;
    let last = follower.stream_seq();
    let mut encoder = JournalEncoder::new(follower.position());
    let batch = transfers(100..110);
    encoder.append(RecordKind::Transfers, 2_000_000_000_000_000_000, |out| {
        codec::encode_transfer_batch(&batch, out)
    });
    let whole = encoder.position().offset - end;
    encoder.append(RecordKind::Transfers, 2_000_000_000_000_000_001, |out| {
        codec::encode_transfer_batch(&batch, out)
    });
    let bytes = encoder.take(Vec::new());
    let torn = PublishMessage::build()
        .payload(bytes[..whole as usize + 700].to_vec().into())
        .header(OFFSET_HEADER, end.to_string().as_str())
        .expected_last_sequence(last);
    js.send_publish(config.subject(), torn)
        .await
        .unwrap()
        .await
        .unwrap();

    let engine = leader(&js, &config).await;
    let results = engine.create_transfers(transfers(20..25)).await.unwrap();
    assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
    let mut fresh = Follower::new(&js, &config).await.unwrap();
    fresh.catch_up().await.unwrap();
    // The whole record stays (it was stored, though never acknowledged: like a journal write
    // that reached the disk just before a crash); the half record is gone.
    assert_eq!(fresh.ledger().transfer_count(), 25);
    assert!(fresh.ledger().transfer(105).is_some());
    assert_eq!(body(fresh.ledger()), engine.query(body).await.unwrap());
    shutdown(engine).await;

    // A message that starts past the end of the journal is corruption, not a torn tail.
    let end = fresh.position().offset;
    let gap = PublishMessage::build()
        .payload(vec![1; 10].into())
        .header(OFFSET_HEADER, (end + 5).to_string().as_str())
        .expected_last_sequence(fresh.stream_seq());
    js.send_publish(config.subject(), gap)
        .await
        .unwrap()
        .await
        .unwrap();
    match fresh.catch_up().await {
        Err(JournalError::Corrupt { offset, .. }) => assert_eq!(offset, end),
        other => panic!("{other:?}"),
    }
    cleanup(&js, &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_has_one_holder_and_ages_out_when_not_renewed() {
    let (_nats, js) = jetstream().await;
    let config = config();
    replicated::ensure_stream(&js, &config).await.unwrap();
    let mut held = Lease::try_acquire(&js, &config)
        .await
        .unwrap()
        .expect("free lease");
    assert!(Lease::try_acquire(&js, &config).await.unwrap().is_none());
    for _ in 0..4 {
        tokio::time::sleep(config.renew_every()).await;
        held.renew().await.unwrap();
    }
    assert!(
        Lease::try_acquire(&js, &config).await.unwrap().is_none(),
        "renewed, so still held"
    );
    // Not renewed: gone after the time to live.
    tokio::time::sleep(config.lease_ttl + Duration::from_millis(700)).await;
    let taken = Lease::try_acquire(&js, &config).await.unwrap();
    assert!(taken.is_some(), "an expired lease is free");
    assert!(
        held.renew().await.is_err(),
        "the old holder's renewal fails"
    );
    taken.unwrap().release().await.unwrap();
    assert!(
        Lease::try_acquire(&js, &config).await.unwrap().is_some(),
        "a released lease is free at once"
    );
    cleanup(&js, &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_starts_from_the_latest_snapshot_in_object_storage() {
    let (_nats, js) = jetstream().await;
    let config = config();
    replicated::ensure_stream(&js, &config).await.unwrap();
    let engine = leader(&js, &config).await;
    engine.create_accounts(accounts(1..=3)).await.unwrap();
    // Past two sealed chunks of 65,536 transfers, so the snapshot has chunk files.
    for b in 0..17u128 {
        let batch = transfers(1_000 + b * 8_000..1_000 + (b + 1) * 8_000);
        assert!(
            engine
                .create_transfers(batch)
                .await
                .unwrap()
                .iter()
                .all(|r| *r == CreateTransferResult::Ok)
        );
    }
    let s3 = store::testing::S3Server::start("gureum").await;
    let local = tempfile::tempdir().unwrap();
    let stores = [
        store::Objects::open(&store::ObjectsConfig::Local {
            root: local.path().join("objects"),
        })
        .unwrap(),
        s3.objects("gureum", "prod"),
    ];
    for objects in stores {
        let cache = tempfile::tempdir().unwrap();
        let mut snapshots = SnapshotStore::new(objects.clone(), config.shard, cache.path());
        let mut standby = snapshots.follower(&js, &config).await.unwrap();
        assert_eq!(standby.stream_seq(), 0, "no snapshot yet: from the start");
        standby.catch_up().await.unwrap();
        let manifest = snapshots
            .save(&standby)
            .await
            .unwrap()
            .expect("a whole-record boundary");
        assert_eq!(manifest.stream_seq, standby.stream_seq());
        assert_eq!(manifest.chunks, 2);
        assert!(objects.list("ledger").await.unwrap().contains(&format!(
            "ledger/shard-{}/chunks/chunk-0000000001.gt",
            config.shard
        )));

        // A node with an empty cache starts from that snapshot and reads only what follows.
        let fresh_cache = tempfile::tempdir().unwrap();
        let mut fresh = SnapshotStore::new(objects.clone(), config.shard, fresh_cache.path());
        let mut node = fresh.follower(&js, &config).await.unwrap();
        assert_eq!(node.stream_seq(), manifest.stream_seq);
        let expected = engine.query(|l| l.transfer_count()).await.unwrap();
        assert!(expected >= 136_000);
        assert_eq!(node.ledger().transfer_count(), expected);
        assert_eq!(node.catch_up().await.unwrap(), 0);
        assert_eq!(body(node.ledger()), engine.query(body).await.unwrap());
        let more = engine
            .create_transfers(transfers(
                200_000 + manifest.stream_seq as u128 * 10
                    ..200_010 + manifest.stream_seq as u128 * 10,
            ))
            .await
            .unwrap();
        assert!(more.iter().all(|r| *r == CreateTransferResult::Ok));
        assert!(node.catch_up().await.unwrap() >= 1);
        assert_eq!(body(node.ledger()), engine.query(body).await.unwrap());

        // Saving again (also at the same position) keeps the newest two state files.
        snapshots.save(&standby).await.unwrap();
        standby.catch_up().await.unwrap();
        let newest = snapshots.save(&standby).await.unwrap().unwrap();
        let states = objects
            .list(&format!("ledger/shard-{}/snapshots", config.shard))
            .await
            .unwrap();
        assert_eq!(states.len(), 2, "{states:?}");
        assert!(states.iter().any(|s| s.ends_with(&newest.state)));

        // A damaged chunk in object storage is refused, not loaded.
        let key = format!("ledger/shard-{}/chunks/chunk-0000000000.gt", config.shard);
        let mut chunk = objects.get(&key).await.unwrap().unwrap().to_vec();
        chunk[100] ^= 1;
        objects.put(&key, chunk.into()).await.unwrap();
        let broken = tempfile::tempdir().unwrap();
        let refused = SnapshotStore::new(objects.clone(), config.shard, broken.path())
            .follower(&js, &config)
            .await;
        assert!(
            matches!(refused, Err(JournalError::Corrupt { .. })),
            "{:?}",
            refused.err()
        );
    }
    shutdown(engine).await;
    cleanup(&js, &config).await;
}
