//! The customers service on both storage backends (PostgreSQL must be reachable: these tests
//! fail, they do not skip): sealing, masking, audited unmasking, blind-index search, key
//! rotation, crypto-shredding, KYC and consents — and the raw storage never holding a
//! registration number in the clear.

mod support;

use customers::model::{Channel, Field, KycStatus, Patch, Purpose, Submitted};
use customers::service::{CustomerError, Search};
use customers::vault::{Keyring, read_keyring, write_keyring};
use kernel::http::Caller;
use serde_json::json;
use sqlx::Row;
use store::testing::BACKENDS;
use store::{Backend, SqlConfig};
use support::*;

fn teller() -> Caller {
    Caller::new("teller-1", &["customers:read"])
}

fn officer() -> Caller {
    Caller::new(
        "officer-7",
        &["customers:unmask", "customers:audit", "customers:erase"],
    )
}

/// Every event the service recorded, as JSON text.
async fn outbox_events(store: &store::Store) -> Vec<String> {
    sqlx::query("SELECT envelope FROM outbox ORDER BY seq")
        .fetch_all(store.reader())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("envelope"))
        .collect()
}

/// Every byte the database keeps on disk for this service: the SQLite file and its WAL, or
/// (read through the server, after a checkpoint) every PostgreSQL relation file of the schema
/// and the current WAL segment.
async fn raw_storage(fixture: &Fixture) -> Vec<u8> {
    match &fixture.db.config {
        SqlConfig::Sqlite { path } => {
            let mut bytes = std::fs::read(path).unwrap();
            let wal = path.with_extension("sqlite-wal");
            if let Ok(more) = std::fs::read(wal) {
                bytes.extend(more);
            }
            bytes
        }
        SqlConfig::Postgres { url, schema } => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query("CHECKPOINT").execute(&mut conn).await.unwrap();
            let files: Vec<String> = sqlx::query_scalar(
                "SELECT pg_relation_filepath(c.oid) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'i', 't') \
                 AND pg_relation_filepath(c.oid) IS NOT NULL",
            )
            .bind(schema)
            .fetch_all(&mut conn)
            .await
            .unwrap();
            assert!(
                files.len() >= 8,
                "the schema's tables and indexes: {files:?}"
            );
            let mut bytes = Vec::new();
            for file in files {
                let content: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT pg_read_binary_file($1, 0, 100000000, true)")
                        .bind(&file)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                bytes.extend(content.unwrap_or_default());
            }
            // The write-ahead log is the whole server's: read only what was written since
            // the fixture was made (other tests write their own values to it).
            let since = fixture
                .wal_start
                .as_deref()
                .expect("a PostgreSQL fixture notes its WAL start");
            let wal: Vec<u8> = sqlx::query_scalar(
                "WITH s AS (SELECT * FROM pg_walfile_name_offset($1::pg_lsn)), \
                      e AS (SELECT * FROM pg_walfile_name_offset(pg_current_wal_lsn())) \
                 SELECT CASE WHEN s.file_name = e.file_name \
                   THEN pg_read_binary_file('pg_wal/' || s.file_name, s.file_offset, e.file_offset - s.file_offset) \
                   ELSE pg_read_binary_file('pg_wal/' || s.file_name, s.file_offset, 16777216 - s.file_offset) \
                        || pg_read_binary_file('pg_wal/' || e.file_name, 0, e.file_offset) END \
                 FROM s, e",
            )
            .bind(since)
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "reading the WAL written since the fixture began (a segment recycled \
                     meanwhile needs a larger wal_keep_size; .ci/run sets 2GB): {e}"
                )
            });
            assert!(
                wal.len() > 4096,
                "the test's own WAL records are scanned too"
            );
            bytes.extend(wal);
            bytes
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn regulated_fields_are_sealed_at_rest_and_read_back_masked() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let created = f.customers.create(&teller(), person(), None).await.unwrap();
        assert_eq!(created.fields["rrn"], "900101-1******");
        assert_eq!(created.fields["phone"], "010-****-5432");
        assert_eq!(created.fields["address"], "서울특별시 강남구 ***");
        assert_eq!(created.fields["income"], "***");
        assert_eq!(created.fields["employer"], "***");
        assert_eq!(created.fields["credit"], "***");
        assert_eq!(created.fields["name"], "김하늘");
        assert_eq!(created.kyc_status, "pending");
        assert!(created.unmasked.is_empty());

        let got = f.customers.get(&created.id).await.unwrap();
        assert_eq!(got, created, "{backend:?}");

        // The registration number, phone, address, employer and name are nowhere in the clear:
        // not in the database files, not in the write-ahead log.
        let raw = raw_storage(&f).await;
        assert!(
            contains(&raw, created.id.as_bytes()),
            "{backend:?}: the scan sees the rows"
        );
        for secret in [
            RRN,
            RRN_DIGITS,
            PHONE_DIGITS,
            PHONE,
            EMPLOYER,
            "테헤란로",
            "김하늘",
            INCOME,
        ] {
            assert!(
                !contains(&raw, secret.as_bytes()),
                "{backend:?}: `{secret}` found in raw storage"
            );
        }
        f.db.cleanup().await;
    }
}

#[tokio::test]
async fn an_unmasked_read_needs_the_permission_and_a_purpose_and_is_audited_first() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let id = f
            .customers
            .create(&teller(), person(), None)
            .await
            .unwrap()
            .id;
        let fields = [Field::Rrn, Field::Phone];

        let denied = f
            .customers
            .get_unmasked(&teller(), &id, &fields, Some("loan review"), None)
            .await;
        assert!(matches!(
            denied,
            Err(CustomerError::Forbidden("customers:unmask"))
        ));
        for purpose in [None, Some("   ")] {
            let refused = f
                .customers
                .get_unmasked(&officer(), &id, &fields, purpose, None)
                .await;
            assert!(matches!(refused, Err(CustomerError::PurposeRequired)));
        }
        assert!(
            f.customers
                .access_log(&officer(), &id)
                .await
                .unwrap()
                .is_empty()
        );

        let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .ok();
        let plain = f
            .customers
            .get_unmasked(&officer(), &id, &fields, Some("loan review #42"), trace)
            .await
            .unwrap();
        assert_eq!(plain.fields["rrn"], RRN);
        assert_eq!(plain.fields["phone"], PHONE_DIGITS);
        assert_eq!(
            plain.fields["address"], "서울특별시 강남구 ***",
            "only the fields asked for"
        );
        assert_eq!(plain.unmasked, vec!["phone", "rrn"]);

        let log = f.customers.access_log(&officer(), &id).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].principal, "officer-7");
        assert_eq!(log[0].fields, vec!["rrn", "phone"]);
        assert_eq!(log[0].purpose, "loan review #42");
        assert_eq!(
            log[0].trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert!(matches!(
            f.customers.access_log(&teller(), &id).await,
            Err(CustomerError::Forbidden("customers:audit"))
        ));

        let events = outbox_events(f.customers.store()).await;
        let unmasked: Vec<serde_json::Value> = events
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap())
            .filter(|e| e["type"] == "customers.customer.unmasked")
            .collect();
        assert_eq!(unmasked.len(), 1);
        assert_eq!(
            unmasked[0]["data"],
            json!({"customer_id": id, "fields": ["rrn", "phone"], "purpose": "loan review #42", "principal": "officer-7"})
        );
        assert_eq!(unmasked[0]["subject"], format!("customer/{id}"));
        f.db.cleanup().await;
    }
}

#[tokio::test]
async fn search_finds_exact_matches_through_blind_indexes_only() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let a = f.customers.create(&teller(), person(), None).await.unwrap();
        let b = f
            .customers
            .create(
                &teller(),
                Submitted {
                    name: "김바다".into(),
                    rrn: Some("850315-2345678".into()),
                    phone: Some("+82 10-9876-5432".into()),
                    ..Submitted::default()
                },
                None,
            )
            .await
            .unwrap();
        let business = f
            .customers
            .create(
                &teller(),
                Submitted {
                    kind: Some("business".into()),
                    name: "구름상사".into(),
                    business_registration_number: Some("2208123455".into()),
                    ..Submitted::default()
                },
                None,
            )
            .await
            .unwrap();

        let ids = |found: Vec<customers::service::CustomerView>| {
            found.into_iter().map(|c| c.id).collect::<Vec<_>>()
        };
        assert_eq!(
            ids(f
                .customers
                .search(Search::Rrn(RRN_DIGITS.into()))
                .await
                .unwrap()),
            vec![a.id.clone()]
        );
        assert_eq!(
            ids(f
                .customers
                .search(Search::Rrn("850315-2345678".into()))
                .await
                .unwrap()),
            vec![b.id.clone()]
        );
        // The shared family phone, written two ways, finds both.
        assert_eq!(
            ids(f
                .customers
                .search(Search::Phone("01098765432".into()))
                .await
                .unwrap()),
            vec![a.id.clone(), b.id.clone()]
        );
        assert_eq!(
            ids(f
                .customers
                .search(Search::BusinessNumber("220-81-23455".into()))
                .await
                .unwrap()),
            vec![business.id.clone()]
        );
        assert!(
            f.customers
                .search(Search::Rrn("800101-1234560".into()))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            f.customers
                .search(Search::Rrn("800101-1234563".into()))
                .await,
            Err(CustomerError::Rule(_))
        ));

        // One customer per registration number, however it is written.
        let again = Submitted {
            rrn: Some(RRN_DIGITS.into()),
            ..person()
        };
        assert!(matches!(
            f.customers.create(&teller(), again, None).await,
            Err(CustomerError::RrnTaken)
        ));
        let twin = Submitted {
            kind: Some("business".into()),
            name: "다른상사".into(),
            business_registration_number: Some("220-81-23455".into()),
            ..Submitted::default()
        };
        assert!(matches!(
            f.customers.create(&teller(), twin, None).await,
            Err(CustomerError::BusinessNumberTaken)
        ));

        // A changed phone moves in the index.
        f.customers
            .update(
                &teller(),
                &a.id,
                Patch {
                    phone: Some(Some("010-1111-2222".into())),
                    ..Patch::default()
                },
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            ids(f
                .customers
                .search(Search::Phone(PHONE.into()))
                .await
                .unwrap()),
            vec![b.id.clone()]
        );
        assert_eq!(
            ids(f
                .customers
                .search(Search::Phone("01011112222".into()))
                .await
                .unwrap()),
            vec![a.id]
        );
        f.db.cleanup().await;
    }
}

#[tokio::test]
async fn rotation_rewraps_every_data_key_while_another_replica_keeps_serving() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let serving = f.replica().await;
        let mut ids = Vec::new();
        for i in 0..7u32 {
            let rrn = rrn_for(i);
            let c = Submitted {
                rrn: Some(rrn),
                phone: None,
                ..person()
            };
            ids.push(f.customers.create(&teller(), c, None).await.unwrap().id);
        }
        let (before, _) = read_keyring(&f.keyring).unwrap();
        let usage = f.customers.key_usage().await.unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            (usage[0].master_key_id.as_str(), usage[0].data_keys),
            (before.current.as_str(), 7)
        );

        // `gureum keys rotate`: a new current master key in the keyring, then re-wrapping.
        let mut keyring: Keyring = before.clone();
        let new_id = keyring.add_master_key("2026-11-28T00:00:00Z");
        write_keyring(&f.keyring, &keyring).unwrap();
        let rotator = f.replica().await;
        assert_eq!(rotator.rewrap_batch().await.unwrap(), 7);
        assert_eq!(rotator.rewrap_batch().await.unwrap(), 0);
        let usage = f.customers.key_usage().await.unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            (usage[0].master_key_id.as_str(), usage[0].data_keys),
            (new_id.as_str(), 7)
        );

        // The replica that was serving all along reads every customer, unmasked too.
        for id in &ids {
            let c = serving
                .get_unmasked(
                    &officer(),
                    id,
                    &[Field::Employer],
                    Some("rotation check"),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(c.fields["employer"], EMPLOYER);
        }
        // And the old master key can go: nothing is wrapped under it.
        keyring.remove_master_key(&before.current).unwrap();
        write_keyring(&f.keyring, &keyring).unwrap();
        let fresh = f.replica().await;
        assert_eq!(fresh.get(&ids[3]).await.unwrap().fields["rrn"], rrn_mask(3));
        f.db.cleanup().await;
    }
}

/// A valid registration number per `i` (born in 1980 + i, January 1st).
fn rrn_for(i: u32) -> String {
    let front = format!("{:02}0101", 80 + i);
    let weights = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];
    let body = format!("{front}112345");
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    format!("{front}-112345{}", (11 - sum % 11) % 10)
}

fn rrn_mask(i: u32) -> String {
    format!("{:02}0101-1******", 80 + i)
}

#[tokio::test]
async fn erasure_shreds_the_data_key_and_leaves_only_a_tombstone() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let keep = f
            .customers
            .create(
                &teller(),
                Submitted {
                    rrn: Some(rrn_for(1)),
                    phone: None,
                    ..person()
                },
                None,
            )
            .await
            .unwrap();
        let gone = f.customers.create(&teller(), person(), None).await.unwrap();
        let (wrapped, sealed_rrn): (Vec<u8>, Vec<u8>) = {
            let row = sqlx::query(
                "SELECT k.wrapped_key, c.rrn_sealed FROM customers c JOIN customer_keys k ON k.customer_id = c.id WHERE c.id = $1",
            )
            .bind(&gone.id)
            .fetch_one(f.customers.store().reader())
            .await
            .unwrap();
            (row.get("wrapped_key"), row.get("rrn_sealed"))
        };

        assert!(matches!(
            f.customers.erase(&teller(), &gone.id, None).await,
            Err(CustomerError::Forbidden(_))
        ));
        f.customers.erase(&officer(), &gone.id, None).await.unwrap();
        f.customers.erase(&officer(), &gone.id, None).await.unwrap();

        assert!(matches!(
            f.customers.get(&gone.id).await,
            Err(CustomerError::Erased)
        ));
        assert!(matches!(
            f.customers
                .get_unmasked(
                    &officer(),
                    &gone.id,
                    &[Field::Rrn],
                    Some("after erasure"),
                    None
                )
                .await,
            Err(CustomerError::Erased)
        ));
        assert!(
            f.customers
                .search(Search::Rrn(RRN.into()))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            f.customers
                .search(Search::Phone(PHONE.into()))
                .await
                .unwrap()
                .is_empty()
        );
        let page = f.customers.list(None, 50, None).await.unwrap();
        assert_eq!(
            page.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            vec![keep.id.clone()]
        );
        assert!(matches!(
            f.customers
                .update(
                    &teller(),
                    &gone.id,
                    Patch {
                        name: Some("x".into()),
                        ..Patch::default()
                    },
                    None,
                    None
                )
                .await,
            Err(CustomerError::Erased)
        ));
        assert!(matches!(
            f.customers
                .set_consent(
                    &teller(),
                    &gone.id,
                    Purpose::Marketing,
                    true,
                    Channel::App,
                    None
                )
                .await,
            Err(CustomerError::Erased)
        ));

        // The tombstone: id and kind stay, nothing personal.
        let row = sqlx::query("SELECT * FROM customers WHERE id = $1")
            .bind(&gone.id)
            .fetch_one(f.customers.store().reader())
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("state"), "erased");
        assert_eq!(row.get::<String, _>("kind"), "individual");
        for column in [
            "name_sealed",
            "rrn_sealed",
            "phone_sealed",
            "address_sealed",
            "income_sealed",
            "employer_sealed",
            "credit_sealed",
            "rrn_index",
            "phone_index",
        ] {
            assert_eq!(row.get::<Option<Vec<u8>>, _>(column), None, "{column}");
        }
        let keys: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM customer_keys WHERE customer_id = $1")
                .bind(&gone.id)
                .fetch_one(f.customers.store().reader())
                .await
                .unwrap();
        assert_eq!(keys, 0);

        // A copy of the sealed value taken before erasure is noise now: its key is gone. On
        // SQLite the files no longer hold the wrapped key or the sealed value at all.
        if backend == Backend::Sqlite {
            let raw = raw_storage(&f).await;
            assert!(
                !contains(&raw, &wrapped),
                "the wrapped data key was left in the SQLite files"
            );
            assert!(
                !contains(&raw, &sealed_rrn),
                "the sealed registration number was left in the SQLite files"
            );
        }

        // The same person can be onboarded again, as a new customer.
        let back = f.customers.create(&teller(), person(), None).await.unwrap();
        assert_ne!(back.id, gone.id);
        let events = outbox_events(f.customers.store()).await;
        assert!(
            events
                .iter()
                .any(|e| e.contains("customers.customer.erased") && e.contains(&gone.id))
        );
        f.db.cleanup().await;
    }
}

#[tokio::test]
async fn kyc_and_consents_keep_their_history() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let id = f
            .customers
            .create(&teller(), person(), None)
            .await
            .unwrap()
            .id;
        let verified = f
            .customers
            .set_kyc(
                &teller(),
                &id,
                KycStatus::Verified,
                Some("ID card + face match"),
                None,
            )
            .await
            .unwrap();
        assert_eq!((verified.kyc_status, verified.version), ("verified", 2));
        assert!(matches!(
            f.customers
                .set_kyc(&teller(), &id, KycStatus::Pending, None, None)
                .await,
            Err(CustomerError::KycTransition {
                from: "verified",
                to: "pending"
            })
        ));
        f.customers
            .set_kyc(
                &teller(),
                &id,
                KycStatus::Expired,
                Some("yearly renewal due"),
                None,
            )
            .await
            .unwrap();
        let history = f.customers.kyc_history(&id).await.unwrap();
        let steps: Vec<(&str, Option<&str>, &str)> = history
            .iter()
            .map(|e| (e.status.as_str(), e.reason.as_deref(), e.actor.as_str()))
            .collect();
        assert_eq!(
            steps,
            vec![
                ("pending", Some("onboarded"), "teller-1"),
                ("verified", Some("ID card + face match"), "teller-1"),
                ("expired", Some("yearly renewal due"), "teller-1"),
            ]
        );
        let page = f
            .customers
            .list(None, 10, Some(KycStatus::Expired))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(
            f.customers
                .list(None, 10, Some(KycStatus::Verified))
                .await
                .unwrap()
                .items
                .is_empty()
        );

        f.customers
            .set_consent(&teller(), &id, Purpose::Marketing, true, Channel::App, None)
            .await
            .unwrap();
        f.customers
            .set_consent(
                &teller(),
                &id,
                Purpose::CreditInquiry,
                true,
                Channel::Branch,
                None,
            )
            .await
            .unwrap();
        f.customers
            .set_consent(
                &teller(),
                &id,
                Purpose::Marketing,
                false,
                Channel::CallCenter,
                None,
            )
            .await
            .unwrap();
        let (current, history) = f.customers.consents(&id).await.unwrap();
        let now: Vec<(&str, bool, &str)> = current
            .iter()
            .map(|c| (c.purpose.as_str(), c.granted, c.channel.as_str()))
            .collect();
        assert_eq!(
            now,
            vec![
                ("credit_inquiry", true, "branch"),
                ("marketing", false, "call_center")
            ]
        );
        assert_eq!(history.len(), 3);
        assert_eq!(history[0].actor.as_deref(), Some("teller-1"));
        assert!(matches!(
            f.customers
                .consents("0190f1c2-0000-7000-8000-000000000000")
                .await,
            Err(CustomerError::NotFound)
        ));
        f.db.cleanup().await;
    }
}

#[tokio::test]
async fn pages_walk_every_customer_once_in_creation_order() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let mut created = Vec::new();
        for i in 0..5 {
            created.push(
                f.customers
                    .create(
                        &teller(),
                        Submitted {
                            rrn: Some(rrn_for(i)),
                            ..person()
                        },
                        None,
                    )
                    .await
                    .unwrap()
                    .id,
            );
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = f.customers.list(after.as_deref(), 2, None).await.unwrap();
            seen.extend(page.items.iter().map(|c| c.id.clone()));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, created);
        f.db.cleanup().await;
    }
}

#[tokio::test]
async fn events_name_fields_and_ids_but_never_carry_a_regulated_value() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let id = f
            .customers
            .create(&teller(), person(), None)
            .await
            .unwrap()
            .id;
        f.customers
            .update(
                &teller(),
                &id,
                Patch {
                    address: Some(Some("부산광역시 해운대구 우동 1".into())),
                    ..Patch::default()
                },
                None,
                None,
            )
            .await
            .unwrap();
        f.customers
            .get_unmasked(
                &officer(),
                &id,
                &[Field::Rrn, Field::Phone, Field::Employer],
                Some("check"),
                None,
            )
            .await
            .unwrap();
        f.customers
            .set_kyc(&teller(), &id, KycStatus::Verified, None, None)
            .await
            .unwrap();
        f.customers
            .set_consent(
                &teller(),
                &id,
                Purpose::ThirdPartySharing,
                true,
                Channel::Web,
                None,
            )
            .await
            .unwrap();
        f.customers.erase(&officer(), &id, None).await.unwrap();
        let events = outbox_events(f.customers.store()).await;
        let types: Vec<String> = events
            .iter()
            .map(|e| {
                serde_json::from_str::<serde_json::Value>(e).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            types,
            vec![
                "customers.customer.created",
                "customers.customer.updated",
                "customers.customer.unmasked",
                "customers.customer.kyc_changed",
                "customers.customer.consent_changed",
                "customers.customer.erased",
            ]
        );
        for event in &events {
            for secret in SECRETS.iter().chain(&["해운대구", "김하늘", INCOME]) {
                assert!(
                    !event.contains(secret),
                    "{backend:?}: `{secret}` in {event}"
                );
            }
        }
        f.db.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_changes_to_different_fields_both_apply_and_if_match_refuses_a_stale_one() {
    for backend in BACKENDS {
        let f = Fixture::new(backend).await;
        let other = f.replica().await;
        let id = f
            .customers
            .create(&teller(), person(), None)
            .await
            .unwrap()
            .id;
        // Twenty changes from two replicas at once, half to the phone, half to the address.
        let mut tasks = Vec::new();
        for i in 0..10u32 {
            let (a, b) = (f.replica().await, other.clone());
            let (id_a, id_b) = (id.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let phone = Patch {
                    phone: Some(Some(format!("010-5555-{:04}", i))),
                    ..Patch::default()
                };
                a.update(&teller(), &id_a, phone, None, None)
                    .await
                    .map(|_| ())
            }));
            tasks.push(tokio::spawn(async move {
                let address = Patch {
                    address: Some(Some(format!("부산광역시 해운대구 {i}"))),
                    ..Patch::default()
                };
                b.update(&teller(), &id_b, address, None, None)
                    .await
                    .map(|_| ())
            }));
        }
        let mut applied = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => applied += 1,
                Err(CustomerError::Contended) => {}
                Err(e) => panic!("{backend:?}: {e}"),
            }
        }
        let now = f.customers.get(&id).await.unwrap();
        assert_eq!(
            now.version,
            1 + applied,
            "{backend:?}: every applied change is one version"
        );
        assert!(applied >= 2, "{backend:?}: {applied}");
        let plain = f
            .customers
            .get_unmasked(
                &officer(),
                &id,
                &[Field::Phone, Field::Address],
                Some("check"),
                None,
            )
            .await
            .unwrap();
        assert!(
            plain.fields["phone"]
                .as_str()
                .unwrap()
                .starts_with("0105555"),
            "{backend:?}: the phone change survived"
        );
        assert!(
            plain.fields["address"]
                .as_str()
                .unwrap()
                .starts_with("부산광역시"),
            "{backend:?}: the address change survived"
        );

        // If-Match: a change based on an old version is refused, and changes nothing.
        let stale = now.version - 1;
        let refused = f
            .customers
            .update(
                &teller(),
                &id,
                Patch {
                    name: Some("김구름".into()),
                    ..Patch::default()
                },
                Some(stale),
                None,
            )
            .await;
        assert!(
            matches!(refused, Err(CustomerError::VersionMismatch { current }) if current == now.version)
        );
        let fresh = f
            .customers
            .update(
                &teller(),
                &id,
                Patch {
                    name: Some("김구름".into()),
                    ..Patch::default()
                },
                Some(now.version),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            (fresh.version, fresh.fields["name"].as_str()),
            (now.version + 1, Some("김구름"))
        );
        f.db.cleanup().await;
    }
}
