//! End to end on the real binary: `gureum up` serves the customers service next to the
//! ledger; a customer is onboarded, read masked and unmasked, survives a master-key rotation
//! done by `gureum keys rotate` while the server runs, and is erased — with its events on the
//! embedded bus carrying no regulated value.

mod support;

use serde_json::{Value, json};
use support::{Server, Staff, bus_messages, gureum};

fn keys(data_dir: &std::path::Path, args: &[&str]) -> Value {
    let out = gureum()
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn gureum_up_onboards_unmasks_rotates_and_erases_a_customer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let staff = Staff::new(&server);
    let call = |method: reqwest::Method, path: &str, role: &str, body: Option<Value>| {
        staff.call(role, method, path, body)
    };
    use reqwest::Method;

    let (status, created) = call(
        Method::POST,
        "/v1/customers",
        "teller",
        Some(
            json!({"name": "김하늘", "rrn": "900101-1234568", "phone": "010-9876-5432", "employer": "구름은행연구소"}),
        ),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (created["rrn"].as_str(), created["phone"].as_str()),
        (Some("900101-1******"), Some("010-****-5432"))
    );
    let keyring = dir.path().join("keys/vault.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&keyring).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let unmask = format!("/v1/customers/{id}?unmask=rrn,employer&purpose=credit%20review");
    assert_eq!(call(Method::GET, &unmask, "auditor", None).0, 403);
    let (status, plain) = call(Method::GET, &unmask, "teller", None);
    assert_eq!(
        (status, plain["rrn"].as_str(), plain["employer"].as_str()),
        (200, Some("900101-1234568"), Some("구름은행연구소"))
    );

    // Rotation while the server runs: every data key moves to the new master key, and the
    // running server keeps reading (it picks the new keyring up by itself).
    let before = keys(dir.path(), &["status"]);
    let rotated = keys(dir.path(), &["rotate"]);
    assert_eq!(rotated["previous"], before["current"]);
    assert_ne!(rotated["current"], before["current"]);
    assert_eq!(rotated["rewrapped"], 1);
    assert_eq!(
        rotated["data_keys"],
        json!([{"master_key_id": rotated["current"], "data_keys": 1}])
    );
    assert_eq!(
        rotated["retire_when_older_backups_expire"],
        json!([before["current"]])
    );
    let (status, plain) = call(Method::GET, &unmask, "teller", None);
    assert_eq!(
        (status, plain["rrn"].as_str()),
        (200, Some("900101-1234568"))
    );
    let retired = keys(dir.path(), &["retire", before["current"].as_str().unwrap()]);
    assert_eq!(retired["retired"], before["current"]);
    let (status, created_after) = call(
        Method::POST,
        "/v1/customers",
        "teller",
        Some(json!({"name": "김바다", "rrn": "850315-2345678"})),
    );
    assert_eq!(status, 201, "{created_after}");
    let status_after = keys(dir.path(), &["status"]);
    assert_eq!(status_after["master_keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        status_after["master_keys"][0]["data_keys"], 2,
        "new customers use the new key: {status_after}"
    );

    assert_eq!(
        call(
            Method::DELETE,
            &format!("/v1/customers/{id}"),
            "admin",
            None
        )
        .0,
        204
    );
    let (status, problem) = call(Method::GET, &unmask, "teller", None);
    assert_eq!(
        (status, problem["code"].as_str()),
        (410, Some("customer_erased"))
    );

    let messages = bus_messages(dir.path(), 5);
    let subjects: Vec<&str> = messages.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "customers.customer.created",
            "customers.customer.unmasked",
            "customers.customer.unmasked",
            "customers.customer.created",
            "customers.customer.erased",
        ]
    );
    for (_, _, payload) in &messages {
        // What the service wrote, without what is generated (ids, times): a time's microseconds
        // or an id's hex may hold a secret's digits by chance.
        let mut event: Value = serde_json::from_str(payload).unwrap();
        for field in ["id", "time", "subject"] {
            event.as_object_mut().unwrap().remove(field);
        }
        if let Some(data) = event["data"].as_object_mut() {
            data.retain(|key, _| !key.ends_with("_id"));
        }
        let payload = event.to_string();
        for secret in [
            "1234568",
            "9876",
            "5432",
            "구름은행연구소",
            "김하늘",
            "2345678",
        ] {
            assert!(!payload.contains(secret), "`{secret}` in {payload}");
        }
    }
    assert_eq!(server.stop().code(), Some(0));
}
