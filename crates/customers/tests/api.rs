//! The customers HTTP contract: status codes, problem codes, masking and unmasking through
//! the caller's permissions, erasure answering 410 — and no regulated value in any error
//! body, event or log line (this binary captures every log line of every level).

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use store::Backend;
use support::*;
use tower::ServiceExt;

/// Every log line written while these tests run.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(|| Capture)
        .with_ansi(false)
        .try_init();
}

struct Api {
    router: axum::Router,
    fixture: Fixture,
}

impl Api {
    async fn new() -> Api {
        capture_logs();
        let fixture = Fixture::new(Backend::Sqlite).await;
        let router = customers::api::router(Arc::new(fixture.replica().await));
        Api { router, fixture }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        permissions: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value, String) {
        self.call_with(method, uri, permissions, &[], body).await
    }

    async fn call_with(
        &self,
        method: &str,
        uri: &str,
        permissions: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (StatusCode, Value, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("gureum-principal", "staff-3")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            );
        if !permissions.is_empty() {
            request = request.header("gureum-permissions", permissions);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_owned())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                content_type, "application/problem+json",
                "{method} {uri} answered {status} with {text:?}"
            );
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, value, text)
    }
}

const PERSON: &str = r#"{"name": "김하늘", "rrn": "900101-1234568", "phone": "010-9876-5432",
    "address": "서울특별시 강남구 테헤란로 427 구름빌딩 12층", "income": "73500000",
    "employer": "구름은행연구소", "credit": {"bureau": "NICE", "score": 912}}"#;

#[tokio::test]
async fn the_customer_contract_from_onboarding_to_erasure() {
    let api = Api::new().await;
    let (status, created, _) = api.call("POST", "/v1/customers", "", Some(PERSON)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["rrn"], "900101-1******");
    assert_eq!(created["phone"], "010-****-5432");
    assert_eq!(created["kind"], "individual");
    assert_eq!(created["kyc_status"], "pending");
    assert_eq!(created["unmasked"], json!([]));

    let (status, got, _) = api
        .call("GET", &format!("/v1/customers/{id}"), "", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created);

    // Unmasking needs the permission, then a purpose.
    let uri = format!("/v1/customers/{id}?unmask=rrn&purpose=loan%20review");
    let (status, problem, _) = api.call("GET", &uri, "customers:read", None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("permission_denied"))
    );
    let (status, problem, _) = api
        .call(
            "GET",
            &format!("/v1/customers/{id}?unmask=rrn"),
            "customers:unmask",
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("purpose_required"))
    );
    let (status, problem, _) = api
        .call(
            "GET",
            &format!("/v1/customers/{id}?unmask=salary&purpose=x"),
            "customers:unmask",
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_unmask"))
    );
    let (status, plain, _) = api.call("GET", &uri, "customers:unmask", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plain["rrn"], "900101-1234568");
    assert_eq!(plain["phone"], "010-****-5432");
    assert_eq!(plain["unmasked"], json!(["rrn"]));
    let (_, all, _) = api
        .call(
            "GET",
            &format!("/v1/customers/{id}?unmask=all&purpose=export"),
            "customers:unmask",
            None,
        )
        .await;
    assert_eq!(all["employer"], EMPLOYER);
    assert_eq!(all["income"], INCOME);
    assert_eq!(all["credit"], json!({"bureau": "NICE", "score": 912}));

    let (status, log, _) = api
        .call(
            "GET",
            &format!("/v1/customers/{id}/access-log"),
            "customers:audit",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let entries: Vec<(&str, &str)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["purpose"].as_str().unwrap(),
                e["trace_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("loan review", "0af7651916cd43dd8448eb211c80319c"),
            ("export", "0af7651916cd43dd8448eb211c80319c")
        ]
    );

    // Search by POST body; a changed phone; KYC; consents.
    let (status, found, _) = api
        .call(
            "POST",
            "/v1/customers/search",
            "",
            Some(r#"{"rrn": "9001011234568"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["items"][0]["id"], id.as_str());
    let (status, problem, _) = api
        .call(
            "POST",
            "/v1/customers/search",
            "",
            Some(r#"{"rrn": "9001011234568", "phone": "01098765432"}"#),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_search"))
    );
    let (status, updated, _) = api
        .call(
            "PATCH",
            &format!("/v1/customers/{id}"),
            "",
            Some(r#"{"phone": "010-2222-3333", "employer": null}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A change based on version 1 (the ETag of the first read) is refused now.
    let stale = r#"{"name": "김구름"}"#;
    let uri_id = format!("/v1/customers/{id}");
    let (status, problem, _) = api
        .call_with("PATCH", &uri_id, "", &[("if-match", "\"1\"")], Some(stale))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("version_mismatch"))
    );
    let (status, problem, _) = api
        .call_with(
            "PATCH",
            &uri_id,
            "",
            &[("if-match", "yesterday")],
            Some(stale),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_if_match"))
    );
    assert_eq!(
        (
            updated["phone"].as_str(),
            updated["employer"].clone(),
            updated["version"].as_i64()
        ),
        (Some("010-****-3333"), Value::Null, Some(2))
    );
    let (status, kyc, _) = api
        .call(
            "POST",
            &format!("/v1/customers/{id}/kyc"),
            "",
            Some(r#"{"status": "verified", "reason": "mobile ID"}"#),
        )
        .await;
    assert_eq!(
        (status, kyc["kyc_status"].as_str()),
        (StatusCode::OK, Some("verified"))
    );
    let (status, problem, _) = api
        .call(
            "POST",
            &format!("/v1/customers/{id}/kyc"),
            "",
            Some(r#"{"status": "pending"}"#),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_kyc_transition"))
    );
    let (_, kyc, _) = api
        .call("GET", &format!("/v1/customers/{id}/kyc"), "", None)
        .await;
    assert_eq!(kyc["status"], "verified");
    assert_eq!(kyc["history"].as_array().unwrap().len(), 2);
    let (status, consent, _) = api
        .call(
            "PUT",
            &format!("/v1/customers/{id}/consents/marketing"),
            "",
            Some(r#"{"granted": true, "channel": "app"}"#),
        )
        .await;
    assert_eq!(
        (status, consent["granted"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, problem, _) = api
        .call(
            "PUT",
            &format!("/v1/customers/{id}/consents/spam"),
            "",
            Some(r#"{"granted": true, "channel": "app"}"#),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_consent_purpose"))
    );
    let (_, consents, _) = api
        .call("GET", &format!("/v1/customers/{id}/consents"), "", None)
        .await;
    assert_eq!(consents["current"][0]["purpose"], "marketing");

    // The data-subject export: everything, in the clear, audited like any unmasked read.
    let export = format!("/v1/customers/{id}/export?purpose=DSAR%202026-118");
    let (status, problem, _) = api.call("GET", &export, "customers:read", None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("permission_denied"))
    );
    let (status, all, _) = api.call("GET", &export, "customers:unmask", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["customer"]["rrn"], "900101-1234568");
    assert_eq!(all["customer"]["phone"], "01022223333");
    assert_eq!(all["kyc"].as_array().unwrap().len(), 2);
    assert_eq!(all["consents"]["current"][0]["purpose"], "marketing");

    // Erasure: permission, then 204 (twice), then 410 for every read.
    let (status, problem, _) = api
        .call(
            "DELETE",
            &format!("/v1/customers/{id}"),
            "customers:unmask",
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("permission_denied"))
    );
    for _ in 0..2 {
        let (status, _, body) = api
            .call(
                "DELETE",
                &format!("/v1/customers/{id}"),
                "customers:erase",
                None,
            )
            .await;
        assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    }
    for uri in [
        uri.clone(),
        format!("/v1/customers/{id}"),
        format!("/v1/customers/{id}/kyc"),
    ] {
        let (status, problem, _) = api.call("GET", &uri, "customers:unmask", None).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::GONE, Some("customer_erased")),
            "{uri}"
        );
    }
    let (_, found, _) = api
        .call(
            "POST",
            "/v1/customers/search",
            "",
            Some(r#"{"rrn": "900101-1234568"}"#),
        )
        .await;
    assert_eq!(found["items"], json!([]));
    let (status, log, _) = api
        .call(
            "GET",
            &format!("/v1/customers/{id}/access-log"),
            "customers:audit",
            None,
        )
        .await;
    assert_eq!(
        (status, log["items"].as_array().unwrap().len()),
        (StatusCode::OK, 3),
        "the audit trail (two reads, one export) outlives the data"
    );
    api.fixture.db.cleanup().await;
}

#[tokio::test]
async fn bad_input_gets_a_problem_that_never_repeats_the_value() {
    let api = Api::new().await;
    let cases = [
        (
            r#"{"name": "a", "rrn": "900101-1234567"}"#,
            422,
            "invalid_rrn",
        ),
        (
            r#"{"name": "a", "rrn": "900101-1234568", "phone": "9876-5432"}"#,
            422,
            "invalid_phone",
        ),
        (r#"{"name": "a"}"#, 422, "rrn_required"),
        (
            r#"{"name": "a", "rrn": 9001011234567}"#,
            400,
            "invalid_body",
        ),
        (
            r#"{"name": "a", "rrn": "900101-1234568", "income": 73500000}"#,
            400,
            "invalid_body",
        ),
        (
            r#"{"name": "a", "rrn": "900101-1234568", "rrn2": "9876-5432"}"#,
            400,
            "invalid_body",
        ),
        (
            r#"{"name": "a", "rrn": "900101-1234568""#,
            400,
            "invalid_body",
        ),
        (
            r#"{"kind": "business", "name": "a", "business_registration_number": "220-81-23454"}"#,
            422,
            "invalid_business_registration_number",
        ),
    ];
    for (body, status, code) in cases {
        let (got, problem, text) = api.call("POST", "/v1/customers", "", Some(body)).await;
        assert_eq!(
            (got.as_u16(), problem["code"].as_str()),
            (status, Some(code)),
            "{body} → {text}"
        );
        for secret in ["1234567", "1234568", "9876-5432", "73500000"] {
            assert!(!text.contains(secret), "{body} → {text}");
        }
    }
    let (status, _, _) = api.call("POST", "/v1/customers", "", Some(PERSON)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem, text) = api.call("POST", "/v1/customers", "", Some(PERSON)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("customer_exists"))
    );
    assert!(!text.contains("900101"));
    let (status, problem, _) = api.call("GET", "/v1/customers/not-a-uuid", "", None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_id"))
    );
    let (status, problem, _) = api
        .call(
            "GET",
            "/v1/customers/0190f1c2-0000-7000-8000-000000000000",
            "",
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("customer_not_found"))
    );
    let (status, problem, _) = api
        .call("GET", "/v1/customers?kyc_status=unknown", "", None)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_kyc_status"))
    );
    let big = format!(r#"{{"name": "{}"}}"#, "가".repeat(70_000));
    let (status, problem, _) = api.call("POST", "/v1/customers", "", Some(&big)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );
    api.fixture.db.cleanup().await;
}

/// Drives a full flow (errors included), then reads every line logged so far in this binary,
/// the other tests' lines included.
#[tokio::test]
async fn no_log_line_at_any_level_carries_a_regulated_value() {
    let api = Api::new().await;
    let (_, created, _) = api.call("POST", "/v1/customers", "", Some(PERSON)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    api.call(
        "GET",
        &format!("/v1/customers/{id}?unmask=all&purpose=check"),
        "customers:unmask",
        None,
    )
    .await;
    api.call("POST", "/v1/customers", "", Some(PERSON)).await;
    api.call(
        "POST",
        "/v1/customers",
        "",
        Some(r#"{"name": "x", "rrn": "900101-1234567"}"#),
    )
    .await;
    api.call(
        "POST",
        "/v1/customers/search",
        "",
        Some(r#"{"phone": "010-9876-5432"}"#),
    )
    .await;
    api.call(
        "PATCH",
        &format!("/v1/customers/{id}"),
        "",
        Some(r#"{"address": "부산광역시 해운대구 우동 1"}"#),
    )
    .await;
    api.call(
        "DELETE",
        &format!("/v1/customers/{id}"),
        "customers:erase",
        None,
    )
    .await;
    let logs = String::from_utf8(LOGS.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("customer created"),
        "the capture works: {logs:.400}"
    );
    assert!(logs.contains("unmasked read"));
    for secret in SECRETS
        .iter()
        .chain(&["해운대구", "김하늘", INCOME, "1234567"])
    {
        assert!(!logs.contains(secret), "`{secret}` was logged");
    }
    api.fixture.db.cleanup().await;
}
