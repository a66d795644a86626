//! Every detector on a synthetic audit stream: quiet below its threshold, a finding at it,
//! the finding updated (not repeated) while the window holds, quiet again once it empties.

use audit::{Kind, Record};
use guard::{Guard, Rules, Severity};

const T0: i64 = 1_764_000_000_000_000;
const S: i64 = 1_000_000;

fn event(
    at: i64,
    principal: &str,
    client: &str,
    action: &str,
    resource: &str,
    outcome: u16,
) -> Record {
    Record {
        at_us: T0 + at,
        kind: Kind::Request,
        principal: principal.to_owned(),
        claimed: None,
        roles: if principal == "anonymous" {
            vec![]
        } else {
            vec!["teller".to_owned()]
        },
        action: action.to_owned(),
        resource: resource.to_owned(),
        outcome,
        client: client.to_owned(),
        user_agent: None,
        trace_id: None,
        incident: None,
    }
}

fn failed_login(at: i64, claimed: &str, client: &str) -> Record {
    Record {
        claimed: Some(claimed.to_owned()),
        ..event(
            at,
            "anonymous",
            client,
            "GET /v1/ledger/accounts/{id}",
            "/v1/ledger/accounts/1",
            401,
        )
    }
}

fn kinds(guard: &mut Guard, stream: &[Record]) -> Vec<(&'static str, usize)> {
    let mut seen = Vec::new();
    for r in stream {
        for f in guard.observe(r) {
            seen.push((f.kind, f.count));
        }
    }
    seen
}

#[test]
fn brute_force_on_one_key() {
    let mut guard = Guard::default();
    // 9 failures in 5 minutes: nothing; the 10th: a finding; the 11th: the same one, updated.
    let stream: Vec<Record> = (0..11)
        .map(|i| failed_login(i * 10 * S, "key:0123456789abcdef", "198.51.100.7"))
        .collect();
    let seen = kinds(&mut guard, &stream);
    let brute: Vec<_> = seen.iter().filter(|(k, _)| *k == "brute_force").collect();
    assert_eq!(brute, vec![&("brute_force", 10), &("brute_force", 11)]);
    let findings: Vec<_> = guard
        .findings()
        .iter()
        .filter(|f| f.kind == "brute_force")
        .collect();
    assert_eq!(findings.len(), 1);
    assert_eq!(
        (
            findings[0].severity,
            findings[0].principal.as_deref(),
            findings[0].first_seen_us,
            findings[0].last_seen_us
        ),
        (
            Severity::High,
            Some("key:0123456789abcdef"),
            T0,
            T0 + 100 * S
        )
    );
    // Spread over more than the window: never ten at once, never a finding.
    let mut slow = Guard::default();
    let stream: Vec<Record> = (0..30)
        .map(|i| failed_login(i * 60 * S, "key:0123456789abcdef", "198.51.100.7"))
        .collect();
    assert!(
        kinds(&mut slow, &stream)
            .iter()
            .all(|(k, _)| *k != "brute_force")
    );
}

#[test]
fn credential_stuffing_from_one_address() {
    let mut guard = Guard::default();
    let stream: Vec<Record> = (0..5)
        .map(|i| failed_login(i * S, &format!("key:{i:016x}"), "203.0.113.9"))
        .collect();
    let seen = kinds(&mut guard, &stream);
    assert_eq!(seen, vec![("credential_stuffing", 5)]);
    assert_eq!(guard.findings()[0].address.as_deref(), Some("203.0.113.9"));
    // The same key five times from one address is brute force's business, not stuffing's.
    let mut other = Guard::default();
    let stream: Vec<Record> = (0..5)
        .map(|i| failed_login(i * S, "key:0000000000000001", "203.0.113.9"))
        .collect();
    assert!(kinds(&mut other, &stream).is_empty());
}

#[test]
fn one_key_from_many_addresses() {
    let mut guard = Guard::default();
    let stream: Vec<Record> = (0..6)
        .map(|i| {
            event(
                i * 60 * S,
                "key:a",
                &format!("198.51.100.{i}"),
                "GET /v1/loans",
                "/v1/loans",
                200,
            )
        })
        .collect();
    assert_eq!(
        kinds(&mut guard, &stream),
        vec![("key_many_addresses", 5), ("key_many_addresses", 6)]
    );
    // Many requests from one address: nothing.
    let mut quiet = Guard::default();
    let stream: Vec<Record> = (0..50)
        .map(|i| {
            event(
                i * S,
                "key:a",
                "198.51.100.1",
                "GET /v1/loans",
                "/v1/loans",
                200,
            )
        })
        .collect();
    assert!(kinds(&mut quiet, &stream).is_empty());
}

#[test]
fn bulk_reads_of_regulated_data() {
    let rules = Rules {
        bulk_regulated_reads: guard_window(3600, 3, Severity::High),
        ..Rules::default()
    };
    let mut guard = Guard::new(rules);
    let read = |i: i64| Record {
        kind: Kind::RegulatedRead,
        ..event(
            i * S,
            "key:t",
            "10.0.0.5",
            "GET /v1/customers/{id}",
            &format!("/v1/customers/{i}"),
            200,
        )
    };
    let stream: Vec<Record> = (0..3).map(read).collect();
    assert_eq!(
        kinds(&mut guard, &stream),
        vec![("bulk_regulated_reads", 3)]
    );
}

fn guard_window(seconds: i64, threshold: usize, severity: Severity) -> guard::Window {
    guard::Window {
        span_us: seconds * S,
        threshold,
        severity,
    }
}

#[test]
fn enumeration_of_ids() {
    let mut guard = Guard::default();
    let stream: Vec<Record> = (0..30)
        .map(|i| {
            event(
                i * S,
                "key:t",
                "10.0.0.5",
                "GET /v1/loans/{id}",
                &format!("/v1/loans/{i}"),
                404,
            )
        })
        .collect();
    assert_eq!(kinds(&mut guard, &stream), vec![("enumeration", 30)]);
    // The same missing id thirty times is not enumeration.
    let mut quiet = Guard::default();
    let stream: Vec<Record> = (0..30)
        .map(|i| {
            event(
                i * S,
                "key:t",
                "10.0.0.5",
                "GET /v1/loans/{id}",
                "/v1/loans/7",
                404,
            )
        })
        .collect();
    assert!(kinds(&mut quiet, &stream).is_empty());
}

#[test]
fn privilege_escalation_attempts_and_break_glass_use() {
    let mut guard = Guard::default();
    let refused = event(
        0,
        "key:t",
        "10.0.0.5",
        "POST /v1/auth/api-keys",
        "/v1/auth/api-keys",
        403,
    );
    assert_eq!(
        kinds(&mut guard, &[refused]),
        vec![("privilege_escalation", 1)]
    );
    let glass = event(
        S,
        "key:environment",
        "10.0.0.9",
        "POST /v1/auth/api-keys",
        "/v1/auth/api-keys",
        201,
    );
    let findings = guard.observe(&glass);
    assert_eq!(findings.len(), 1);
    assert_eq!(
        (findings[0].kind, findings[0].severity),
        ("break_glass", Severity::Critical)
    );
    // Again within the hour: the same finding, counted.
    let again = guard.observe(&Record {
        at_us: T0 + 60 * S,
        ..glass.clone()
    });
    assert_eq!((again[0].kind, again[0].count), ("break_glass", 2));
    assert_eq!(guard.findings().len(), 2);
    // A permitted key creation by a named admin is neither.
    let fine = event(
        2 * S,
        "key:admin",
        "10.0.0.9",
        "POST /v1/auth/api-keys",
        "/v1/auth/api-keys",
        201,
    );
    assert!(guard.observe(&fine).is_empty());
}

#[test]
fn waf_block_bursts() {
    let mut guard = Guard::default();
    let stream: Vec<Record> = (0..5)
        .map(|i| Record {
            incident: Some(format!("incident-{i}")),
            ..event(
                i * S,
                "key:t",
                "192.0.2.66",
                "GET /v1/customers",
                "/v1/customers",
                403,
            )
        })
        .collect();
    let seen = kinds(&mut guard, &stream);
    assert!(seen.contains(&("waf_burst", 5)), "{seen:?}");
}

#[test]
fn an_admin_key_from_a_network_it_never_used() {
    let mut guard = Guard::default();
    let admin = |at: i64, client: &str| Record {
        roles: vec!["admin".to_owned()],
        ..event(
            at,
            "key:ops",
            client,
            "GET /v1/auth/api-keys",
            "/v1/auth/api-keys",
            200,
        )
    };
    // Its first network is its history; the same /24 later is fine; another one is reported once.
    let stream = [
        admin(0, "10.1.2.3"),
        admin(S, "10.1.2.99"),
        admin(2 * S, "203.0.113.4"),
        admin(3 * S, "203.0.113.5"),
    ];
    assert_eq!(
        kinds(&mut guard, &stream),
        vec![("new_network_privileged", 1)]
    );
    assert!(guard.findings()[0].evidence.contains("203.0.113.0/24"));
}

#[test]
fn a_key_its_maker_uses_from_their_own_address_is_a_self_granted_role() {
    let mut guard = Guard::default();
    let read = |at: i64, principal: &str, client: &str| {
        event(
            at,
            principal,
            client,
            "GET /v1/ledger/accounts/{id}",
            "/v1/ledger/accounts/1",
            200,
        )
    };
    // Alice (a token) makes herself a teller key and uses it from her own address.
    guard.granted(
        T0,
        "oidc:alice",
        "198.51.100.7",
        "key:aaaa",
        &["teller".to_owned()],
    );
    let seen = guard.observe(&read(60 * S, "key:aaaa", "198.51.100.7"));
    assert_eq!(seen.len(), 1);
    let f = &seen[0];
    assert_eq!(
        (f.kind, f.severity),
        ("self_granted_role", Severity::Medium)
    );
    assert_eq!(f.principal.as_deref(), Some("key:aaaa"));
    assert_eq!(f.address.as_deref(), Some("198.51.100.7"));
    assert!(f.evidence.contains("oidc:alice"), "{}", f.evidence);
    // Only the first use counts.
    assert!(
        guard
            .observe(&read(61 * S, "key:aaaa", "198.51.100.7"))
            .is_empty()
    );

    // An admin key for oneself: high.
    guard.granted(
        T0,
        "key:root",
        "198.51.100.9",
        "key:bbbb",
        &["admin".to_owned()],
    );
    let seen = guard.observe(&read(2 * S, "key:bbbb", "198.51.100.9"));
    assert_eq!(seen[0].severity, Severity::High);

    // A key handed to someone else (first used elsewhere), or first used after a day: quiet.
    guard.granted(
        T0,
        "key:root",
        "198.51.100.9",
        "key:cccc",
        &["teller".to_owned()],
    );
    assert!(
        guard
            .observe(&read(3 * S, "key:cccc", "203.0.113.5"))
            .is_empty()
    );
    guard.granted(
        T0,
        "key:root",
        "198.51.100.9",
        "key:dddd",
        &["teller".to_owned()],
    );
    assert!(
        guard
            .observe(&read(25 * 3600 * S, "key:dddd", "198.51.100.9"))
            .is_empty()
    );
    assert_eq!(
        guard
            .findings()
            .iter()
            .filter(|f| f.kind == "self_granted_role")
            .count(),
        2
    );
}
