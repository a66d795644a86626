//! End to end on the real binary: `gureum up` issues a contract for a customer under the
//! product version in force, records the customer's signature against the document's SHA-256
//! (with where it came from), serves the PDF with its digest — and refuses to serve it once the
//! stored file has been altered.

mod support;

use reqwest::Method;
use serde_json::json;
use support::Server;

#[test]
fn gureum_up_issues_signs_and_guards_a_contract_document() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = server.http();
    let today = store::sql::today_kst().to_string();
    let (status, _) = http.call(
        Method::POST,
        "/v1/products",
        &[],
        Some(json!({"code": "DEP-TERM-12", "kind": "term_deposit", "name": "구름 정기예금", "effective_from": today,
                    "terms": {"currency": "KRW", "rates": {"base": "0.025", "spread": "0.008"},
                              "amount": {"min": "1000000", "max": "1000000000"}, "term_months": {"min": 6, "max": 36},
                              "fees": [{"code": "early_termination", "rate": "0.5"}],
                              "eligibility": {"min_age": 17, "kyc_verified": false}}})),
    );
    assert_eq!(status, 201);
    http.call(
        Method::POST,
        "/v1/products/DEP-TERM-12/versions/1/publish",
        &[],
        None,
    );
    let (_, customer) = http.call(
        Method::POST,
        "/v1/customers",
        &[],
        Some(json!({"name": "김하늘", "rrn": "900101-1234568"})),
    );
    let customer_id = customer["id"].as_str().unwrap();

    let issue = json!({"customer_id": customer_id, "product_code": "DEP-TERM-12",
                       "particulars": {"amount": "5000000", "term_months": 12}});
    let (status, issued) = http.call(Method::POST, "/v1/contracts", &[], Some(issue));
    assert_eq!(status, 201, "{issued}");
    assert_eq!(
        (
            issued["status"].as_str(),
            issued["product_version"].as_i64(),
            issued["particulars"]["annual_rate"].as_str()
        ),
        (Some("issued"), Some(1), Some("0.033"))
    );
    let id = issued["id"].as_str().unwrap();
    let sha256 = issued["document_sha256"].as_str().unwrap();

    let (status, problem) = http.call(
        Method::POST,
        "/v1/contracts",
        &[],
        Some(json!({"customer_id": customer_id, "product_code": "DEP-TERM-12", "particulars": {"amount": "5000000", "term_months": 48}})),
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("invalid_term"))
    );
    let sign = |hash: &str| {
        http.call(
            Method::POST,
            &format!("/v1/contracts/{id}/signatures"),
            &[("user-agent", "GureumApp/1.0")],
            Some(json!({"role": "customer", "signer": customer_id, "method": "app", "document_sha256": hash})),
        )
    };
    let (status, problem) = sign(&"ab".repeat(32));
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("hash_mismatch"))
    );
    let (status, signed) = sign(sha256);
    assert_eq!(
        (status, signed["status"].as_str()),
        (200, Some("signed")),
        "{signed}"
    );
    let signature = &signed["signatures"][0];
    assert_eq!(
        (
            signature["client_address"].as_str(),
            signature["user_agent"].as_str(),
            signature["document_sha256"].as_str()
        ),
        (Some("127.0.0.1"), Some("GureumApp/1.0"), Some(sha256))
    );
    let (_, listed) = http.call(
        Method::GET,
        &format!("/v1/contracts?customer_id={customer_id}&status=signed&from={today}&to={today}"),
        &[],
        None,
    );
    assert_eq!(listed["items"][0]["id"], issued["id"]);

    // The document, with its digest; then altered on disk, and refused.
    let (status, headers, pdf) = http.get_raw(&format!("/v1/contracts/{id}/document"));
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/pdf");
    assert!(
        headers["repr-digest"]
            .to_str()
            .unwrap()
            .starts_with("sha-256=:")
    );
    assert!(pdf.starts_with(b"%PDF-"));
    let stored =
        find_pdf(&dir.path().join("objects").join("contracts"), id).expect("the stored document");
    assert_eq!(std::fs::read(&stored).unwrap(), pdf);
    let mut altered = pdf.clone();
    let at = altered.len() / 2;
    altered[at] ^= 0x20;
    std::fs::write(&stored, altered).unwrap();
    let (status, headers, body) = http.get_raw(&format!("/v1/contracts/{id}/document"));
    assert_eq!(status, 500);
    assert_eq!(headers["content-type"], "application/problem+json");
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], "document_tampered");
    assert!(server.stop().success());
}

fn find_pdf(root: &std::path::Path, id: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_pdf(&path, id) {
                return Some(found);
            }
        } else if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy() == format!("{id}.pdf"))
        {
            return Some(path);
        }
    }
    None
}
