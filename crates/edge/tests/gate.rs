//! The gate over a small router: limits, detect-only, what reaches the service.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use edge::{Gate, GateConfig, Keys, Role};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn gate(dir: &std::path::Path, config: GateConfig) -> (Arc<Gate>, String) {
    let store = store::Store::open(&store::SqlConfig::Sqlite {
        path: dir.join("edge.sqlite"),
    })
    .await
    .unwrap();
    let keys = Arc::new(Keys::open(store).await.unwrap());
    let file = dir.join("admin.key");
    keys.bootstrap(Some(&file), None).await.unwrap();
    let key = std::fs::read_to_string(file).unwrap().trim().to_owned();
    (Arc::new(Gate::new(keys, config, None).unwrap()), key)
}

/// A router whose ledger route echoes what the gate passed on, and whose transfers route is
/// slow.
fn router() -> Router {
    Router::new()
        .route(
            "/v1/ledger/accounts/{id}",
            get(|headers: axum::http::HeaderMap| async move {
                let text = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
                axum::Json(serde_json::json!({
                    "principal": text("gureum-principal"),
                    "permissions": text("gureum-permissions"),
                    "forwarded": text("x-forwarded-for"),
                }))
            }),
        )
        .route(
            "/v1/ledger/transfers",
            post(|body: axum::body::Bytes| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                body.len().to_string()
            }),
        )
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, value)
}

#[tokio::test]
async fn the_service_sees_only_what_the_gate_established() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, key) = gate(dir.path(), GateConfig::default()).await;
    let app = gate.protect(router());
    let (status, seen) = send(
        &app,
        "GET",
        "/v1/ledger/accounts/1",
        &key,
        &[
            ("gureum-principal", "key:someone-else"),
            ("gureum-permissions", "nothing"),
            ("x-forwarded-for", "203.0.113.66"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let admin = edge::access::permissions_of(&[Role::Admin]);
    assert!(seen["principal"].as_str().unwrap().starts_with("key:"));
    assert_ne!(seen["principal"], "key:someone-else");
    assert_eq!(
        seen["permissions"].as_str().unwrap(),
        admin.into_iter().collect::<Vec<_>>().join(",")
    );
    assert_eq!(seen["forwarded"], serde_json::Value::Null);
}

#[tokio::test]
async fn bodies_past_the_limit_and_requests_past_the_time_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = GateConfig {
        body_bytes_max: 1024,
        request_timeout: Duration::from_millis(100),
        ..GateConfig::default()
    };
    let (gate, key) = gate(dir.path(), config).await;
    let app = gate.protect(router());
    let (status, problem) = send(
        &app,
        "POST",
        "/v1/ledger/transfers",
        &key,
        &[],
        vec![b'7'; 1025],
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let (status, problem) = send(
        &app,
        "POST",
        "/v1/ledger/transfers",
        &key,
        &[],
        vec![b'7'; 1024],
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (504, Some("request_timeout"))
    );
}

#[tokio::test]
async fn detect_only_lets_an_attack_through_and_block_mode_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, key) = gate(dir.path(), GateConfig::default()).await;
    let (status, problem) = send(
        &gate.protect(router()),
        "GET",
        ATTACK,
        &key,
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (403, Some("waf-blocked"))
    );
    let detect = GateConfig {
        waf: waf::Config {
            mode: waf::Mode::DetectOnly,
            ..waf::Config::default()
        },
        ..GateConfig::default()
    };
    let other = tempfile::tempdir().unwrap();
    let (gate, key) = self::gate(other.path(), detect).await;
    let (status, _) = send(
        &gate.protect(router()),
        "GET",
        ATTACK,
        &key,
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn docs_security_md_shows_the_table_as_it_is() {
    let docs = include_str!("../../../docs/SECURITY.md");
    let table = edge::access::render_markdown();
    assert!(
        docs.contains(&table),
        "docs/SECURITY.md must hold the route table exactly as edge::access::render_markdown() \
         renders it (`gureum routes` prints it):\n{table}"
    );
}

#[tokio::test]
async fn keys_work_the_same_on_postgresql_shared_by_two_edges() {
    let db = store::testing::TestDb::new(store::Backend::Postgres).await;
    let one = Keys::open(db.open().await).await.unwrap();
    let two = Keys::open(db.open().await).await.unwrap();
    // No data folder: without GUREUM_ADMIN_KEY and without a stored admin key, refused.
    assert!(one.bootstrap(None, None).await.is_err());
    let env = "k2Jq8vX0nY4tR7wB1cZ5mA9sD3fG6hL2pQ";
    one.bootstrap(None, Some(env)).await.unwrap();
    let admin = one.authenticate(env, store::sql::now_us()).unwrap();
    let made = one
        .create(&admin, "desk", &["teller".into()], None, None)
        .await
        .unwrap();
    // The other edge knows the key once it reloads, and forgets it once revoked there.
    assert!(two.authenticate(&made.key, store::sql::now_us()).is_none());
    two.refresh().await.unwrap();
    assert_eq!(
        two.authenticate(&made.key, store::sql::now_us())
            .unwrap()
            .roles,
        vec![Role::Teller]
    );
    two.revoke(&made.record.id, &admin).await.unwrap();
    one.refresh().await.unwrap();
    assert!(one.authenticate(&made.key, store::sql::now_us()).is_none());
    db.cleanup().await;
}

#[tokio::test]
async fn a_key_past_its_rate_and_an_address_that_keeps_failing_wait() {
    let dir = tempfile::tempdir().unwrap();
    let config = GateConfig {
        limits: edge::limits::LimitsConfig {
            principal: edge::limits::Rate {
                per_second: 1.0,
                burst: 3.0,
            },
            failures: edge::limits::Rate {
                per_second: 0.1,
                burst: 2.0,
            },
            ..edge::limits::LimitsConfig::default()
        },
        ..GateConfig::default()
    };
    let (gate, key) = gate(dir.path(), config).await;
    let app = gate.protect(router());
    let get = |key: String| {
        let app = app.clone();
        async move {
            let request = Request::builder()
                .uri("/v1/ledger/accounts/1")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), retry)
        }
    };
    for _ in 0..3 {
        assert_eq!(get(key.clone()).await, (200, None));
    }
    assert_eq!(get(key.clone()).await, (429, Some("1".to_owned())));
    // Requests without any credential are not guesses: they do not count against the address.
    for _ in 0..5 {
        let response = app
            .clone()
            .oneshot(
                Request::builder()
                    .uri("/v1/ledger/accounts/1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Two wrong keys spend the address's budget; then even a good key waits.
    let wrong = format!("{}AAAA", &key[..key.len() - 4]);
    assert_eq!(get(wrong.clone()).await.0, 401);
    assert_eq!(get(wrong.clone()).await.0, 401);
    assert_eq!(get(wrong).await, (429, Some("10".to_owned())));
    assert_eq!(get(key).await, (429, Some("10".to_owned())));
}

#[tokio::test]
async fn an_address_past_its_rate_waits_whatever_keys_it_uses_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let config = GateConfig {
        limits: edge::limits::LimitsConfig {
            address: edge::limits::Rate {
                per_second: 0.1,
                burst: 4.0,
            },
            ..edge::limits::LimitsConfig::default()
        },
        ..GateConfig::default()
    };
    let (gate, admin, teller) = gate_with_teller(dir.path(), config).await;
    let app = gate.protect(router());
    let benign = "/v1/ledger/accounts/1";
    let address = "198.51.100.7";
    // Four requests from one address, with two keys and with none (a public path): its burst.
    assert_eq!(from(&app, &admin, address, benign).await.0, 200);
    assert_eq!(from(&app, &teller, address, benign).await.0, 200);
    assert_eq!(from(&app, "", address, "/healthz").await.0, 404);
    assert_eq!(from(&app, &teller, address, benign).await.0, 200);
    // The fifth waits, whichever key it carries and whether it carries one.
    for key in [admin.as_str(), teller.as_str()] {
        assert_eq!(
            from(&app, key, address, benign).await,
            (429, Some("10".to_owned()), "rate_limited".to_owned())
        );
    }
    assert_eq!(from(&app, "", address, "/healthz").await.0, 429);
    let (_, _, body) = ask(&app, &teller, address, None, benign).await;
    assert_eq!(
        body["detail"],
        "this address sent more requests than its rate allows; retry after 10 s"
    );
    // Another address has its own budget.
    assert_eq!(from(&app, &teller, "198.51.100.8", benign).await.0, 200);
}

/// GET `path` with `key` from the peer `peer`, with `X-Forwarded-For: forwarded` if given;
/// the status, `Retry-After` and the body.
async fn ask(
    app: &Router,
    key: &str,
    peer: &str,
    forwarded: Option<&str>,
    path: &str,
) -> (u16, Option<String>, serde_json::Value) {
    let mut request = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {key}"));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let mut request = request.body(Body::empty()).unwrap();
    let peer: std::net::SocketAddr = format!("{peer}:40000").parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_default();
    (status, retry, body)
}

/// GET `path` with `key` from `address`; the status, `Retry-After` and the problem's code.
async fn from(app: &Router, key: &str, address: &str, path: &str) -> (u16, Option<String>, String) {
    let (status, retry, body) = ask(app, key, address, None, path).await;
    let code = body["code"].as_str().unwrap_or("").to_owned();
    (status, retry, code)
}

/// GET `path` with `key` from the peer `peer` carrying `X-Forwarded-For: forwarded`; the
/// status, the problem's code and the `X-Forwarded-For` the route saw.
async fn via(
    app: &Router,
    key: &str,
    peer: &str,
    forwarded: &str,
    path: &str,
) -> (u16, String, Option<String>) {
    let (status, _, body) = ask(app, key, peer, Some(forwarded), path).await;
    (
        status,
        body["code"].as_str().unwrap_or("").to_owned(),
        body["forwarded"].as_str().map(str::to_owned),
    )
}

/// A request the firewall blocks at paranoia 1 (SQL injection in the query).
const ATTACK: &str = "/v1/ledger/accounts/1?q=1%27%20UNION%20SELECT%20password%20FROM%20users--";

/// Five firewall blocks of `key`'s requests from `address`: a `waf_burst` finding.
async fn waf_burst(app: &Router, key: &str, address: &str) {
    for _ in 0..5 {
        assert_eq!(from(app, key, address, ATTACK).await.2, "waf-blocked");
    }
}

/// A gate configuration whose findings block (for 60 s), trusting `proxies`.
fn responding(proxies: &[&str]) -> GateConfig {
    let mut config = GateConfig::default();
    config.response.enabled = true;
    config.response.block_for = Duration::from_secs(60);
    config.trusted_proxies = edge::TrustedProxies::parse(proxies).unwrap();
    config
}

/// A gate whose findings block (for 60 s), trusting `proxies`; its admin key and a teller's.
async fn responding_gate(dir: &std::path::Path, proxies: &[&str]) -> (Arc<Gate>, String, String) {
    gate_with_teller(dir, responding(proxies)).await
}

/// A gate configured so; its admin key and a teller's.
async fn gate_with_teller(
    dir: &std::path::Path,
    config: GateConfig,
) -> (Arc<Gate>, String, String) {
    let (gate, admin) = gate(dir, config).await;
    let teller = teller_key(gate.keys(), &admin).await;
    (gate, admin, teller)
}

/// A new teller's key, made by the admin key `admin`.
async fn teller_key(keys: &Keys, admin: &str) -> String {
    let by = keys.authenticate(admin, store::sql::now_us()).unwrap();
    keys.create(&by, "teller", &["teller".to_owned()], None, None)
        .await
        .unwrap()
        .key
}

#[tokio::test]
async fn with_the_response_on_findings_block_their_address_or_key_until_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, admin, teller) = responding_gate(dir.path(), &[]).await;
    let app = gate.protect(router());
    let benign = "/v1/ledger/accounts/1";

    // Five firewall blocks from one address within a minute: a burst; the address waits.
    waf_burst(&app, &teller, "198.51.100.7").await;
    let (status, retry, code) = from(&app, &teller, "198.51.100.7", benign).await;
    assert_eq!((status, code.as_str()), (403, "temporarily_blocked"));
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry), "{retry}");
    // The key itself is not blocked: from elsewhere it works.
    assert_eq!(from(&app, &teller, "198.51.100.8", benign).await.0, 200);
    let blocks = gate.blocks().list(store::sql::now_us());
    let subjects: Vec<(&str, &str)> = blocks
        .iter()
        .map(|b| (b.subject.as_str(), b.kind.as_str()))
        .collect();
    assert_eq!(subjects, vec![("address:198.51.100.7", "waf_burst")]);
    assert!(
        gate.blocks()
            .lift("address:198.51.100.7", store::sql::now_us())
    );
    assert_eq!(from(&app, &teller, "198.51.100.7", benign).await.0, 200);

    // One key from five addresses within the hour (two seen above): the key waits, wherever
    // it calls from.
    for address in ["198.51.100.9", "198.51.100.10", "198.51.100.11"] {
        assert_eq!(from(&app, &teller, address, benign).await.0, 200);
    }
    let (status, _, code) = from(&app, &teller, "198.51.100.8", benign).await;
    assert_eq!((status, code.as_str()), (403, "temporarily_blocked"));
    let teller_id = format!("principal:key:{}", edge::keys::parse_id(&teller).unwrap());
    assert!(
        gate.blocks()
            .list(store::sql::now_us())
            .iter()
            .any(|b| b.subject == teller_id && b.kind == "key_many_addresses")
    );
    // The bootstrap admin key is never blocked (its use is reported as break-glass instead).
    for n in 1..=7 {
        assert_eq!(
            from(&app, &admin, &format!("192.0.2.{n}"), benign).await.0,
            200
        );
    }
}

#[tokio::test]
async fn a_block_one_edge_puts_in_force_is_enforced_by_another_on_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let (one, _, teller) = responding_gate(dir.path(), &[]).await;
    // A second edge replica on the same database, with the same configuration.
    let store = store::Store::open(&store::SqlConfig::Sqlite {
        path: dir.path().join("edge.sqlite"),
    })
    .await
    .unwrap();
    let two = Arc::new(
        Gate::new(
            Arc::new(Keys::open(store).await.unwrap()),
            responding(&[]),
            None,
        )
        .unwrap(),
    );
    let (app_one, app_two) = (one.protect(router()), two.protect(router()));
    let benign = "/v1/ledger/accounts/1";

    waf_burst(&app_one, &teller, "198.51.100.7").await;
    assert_eq!(from(&app_one, &teller, "198.51.100.7", benign).await.0, 403);
    // The other edge saw none of it; once both have shared their blocks, it refuses too.
    assert_eq!(from(&app_two, &teller, "198.51.100.7", benign).await.0, 200);
    let now = store::sql::now_us();
    one.blocks().sync(one.keys().store(), now).await.unwrap();
    two.blocks().sync(two.keys().store(), now).await.unwrap();
    let (status, retry, code) = from(&app_two, &teller, "198.51.100.7", benign).await;
    assert_eq!((status, code.as_str()), (403, "temporarily_blocked"));
    assert!(retry.is_some());

    // Lifted at the second edge: the first lets the address in after its next sync.
    assert!(
        two.blocks()
            .lift_everywhere(two.keys().store(), "address:198.51.100.7", now)
            .await
            .unwrap()
    );
    assert_eq!(from(&app_two, &teller, "198.51.100.7", benign).await.0, 200);
    one.blocks()
        .sync(one.keys().store(), store::sql::now_us())
        .await
        .unwrap();
    assert_eq!(from(&app_one, &teller, "198.51.100.7", benign).await.0, 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_told_apart_and_the_proxy_never_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, admin, teller) = responding_gate(dir.path(), &["10.0.0.0/8"]).await;
    let app = gate.protect(router());
    let benign = "/v1/ledger/accounts/1";

    // The service sees the client the proxy named, not the proxy and not what the client
    // wrote left of it.
    let seen = via(
        &app,
        &teller,
        "10.0.0.5",
        "203.0.113.66, 198.51.100.7",
        benign,
    )
    .await;
    assert_eq!(seen, (200, String::new(), Some("198.51.100.7".to_owned())));
    // A firewall burst from one client behind the proxy blocks that client alone.
    for _ in 0..5 {
        let (_, code, _) = via(&app, &teller, "10.0.0.5", "198.51.100.7", ATTACK).await;
        assert_eq!(code, "waf-blocked");
    }
    let (status, code, _) = via(&app, &teller, "10.0.0.5", "198.51.100.7", benign).await;
    assert_eq!((status, code.as_str()), (403, "temporarily_blocked"));
    assert_eq!(
        via(&app, &teller, "10.0.0.5", "198.51.100.8", benign)
            .await
            .0,
        200
    );
    let subjects: Vec<String> = gate
        .blocks()
        .list(store::sql::now_us())
        .into_iter()
        .map(|b| b.subject)
        .collect();
    assert_eq!(subjects, vec!["address:198.51.100.7".to_owned()]);
    // A peer that is no proxy cannot name another client: its own address is the one seen.
    let seen = via(&app, &teller, "203.0.113.9", "198.51.100.8", benign).await;
    assert_eq!(seen, (200, String::new(), Some("203.0.113.9".to_owned())));
    // Attacks from the proxy itself (no client named) are findings, never a block of it.
    for _ in 0..6 {
        let (_, code, _) = via(&app, &admin, "10.0.0.6", "10.0.0.6", ATTACK).await;
        assert_eq!(code, "waf-blocked");
    }
    assert!(
        gate.findings()
            .iter()
            .any(|f| f.kind == "waf_burst" && f.address.as_deref() == Some("10.0.0.6"))
    );
    assert_eq!(
        via(&app, &admin, "10.0.0.6", "10.0.0.6", benign).await.0,
        200
    );
    assert!(
        !gate
            .blocks()
            .list(store::sql::now_us())
            .iter()
            .any(|b| b.subject.contains("10.0.0.6"))
    );
}

#[tokio::test]
async fn with_the_response_off_findings_only_report() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, admin) = gate(dir.path(), GateConfig::default()).await;
    let app = gate.protect(router());
    for _ in 0..6 {
        assert_eq!(
            from(&app, &admin, "198.51.100.7", ATTACK).await.2,
            "waf-blocked"
        );
    }
    assert_eq!(
        from(&app, &admin, "198.51.100.7", "/v1/ledger/accounts/1")
            .await
            .0,
        200
    );
    assert!(gate.findings().iter().any(|f| f.kind == "waf_burst"));
    assert!(gate.blocks().list(store::sql::now_us()).is_empty());
}

/// Redis for the shared-limit tests: `GUREUM_REDIS_URL`, else 127.0.0.1:6379. CI starts it;
/// these tests fail when it is missing.
fn redis_url() -> String {
    std::env::var("GUREUM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[tokio::test]
async fn two_edges_sharing_redis_spend_one_budget_and_fall_back_when_it_stalls() {
    let prefix = format!(
        "gureum-test:{}:{}:",
        std::process::id(),
        store::sql::now_us()
    );
    let shared = || async {
        edge::limits::Shared::connect(&redis_url(), &prefix)
            .await
            .expect("Redis is reachable (set GUREUM_REDIS_URL or start redis-server)")
    };
    let config = GateConfig {
        limits: edge::limits::LimitsConfig {
            principal: edge::limits::Rate {
                per_second: 0.5,
                burst: 3.0,
            },
            address: edge::limits::Rate {
                per_second: 0.1,
                burst: 30.0,
            },
            ..edge::limits::LimitsConfig::default()
        },
        ..GateConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (one, key) = gate(dir.path(), config.clone()).await;
    let one = Arc::new(
        Arc::into_inner(one)
            .unwrap()
            .with_shared_limits(shared().await),
    );
    // The second edge over the same keys (the same database).
    let store = store::Store::open(&store::SqlConfig::Sqlite {
        path: dir.path().join("edge.sqlite"),
    })
    .await
    .unwrap();
    let keys = Arc::new(Keys::open(store).await.unwrap());
    let two = Arc::new(
        Gate::new(keys, config.clone(), None)
            .unwrap()
            .with_shared_limits(shared().await),
    );
    let (a, b) = (one.protect(router()), two.protect(router()));
    let path = "/v1/ledger/accounts/1";
    assert_eq!(from(&a, &key, "192.0.2.1", path).await.0, 200);
    assert_eq!(from(&b, &key, "192.0.2.1", path).await.0, 200);
    assert_eq!(from(&a, &key, "192.0.2.1", path).await.0, 200);
    // Three spent between them: the burst. A fourth, at either edge, waits for the refill.
    let (status, retry, body) = ask(&b, &key, "192.0.2.1", None, path).await;
    assert_eq!(
        (status, &body["code"]),
        (429, &serde_json::json!("rate_limited"))
    );
    assert_eq!(retry.as_deref(), Some("2"));
    assert_eq!(
        body["detail"],
        "this key sent more requests than its rate allows; retry after 2 s"
    );
    assert_eq!(from(&a, &key, "192.0.2.1", path).await.0, 429);

    // An address that failed to authenticate too often (20 at once by default) waits at every
    // edge — with a good key too, whose budget is spent in the same script call.
    let teller = teller_key(one.keys(), &key).await;
    two.keys().refresh().await.unwrap();
    assert_eq!(from(&b, &teller, "192.0.2.9", path).await.0, 200);
    let wrong = format!("{}x", &teller[..teller.len() - 1]);
    for _ in 0..20 {
        assert_eq!(from(&a, &wrong, "192.0.2.9", path).await.0, 401);
    }
    assert_eq!(from(&b, &wrong, "192.0.2.9", path).await.0, 429);
    let (status, _, body) = ask(&b, &teller, "192.0.2.9", None, path).await;
    assert_eq!(status, 429);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("too many failed authentications"),
        "{body}"
    );
    // From another address the good key goes on.
    assert_eq!(from(&a, &teller, "192.0.2.10", path).await.0, 200);

    // One address's requests, with no key (a public path), spend one budget at every edge:
    // thirty between them, then it waits at either.
    for n in 0..30 {
        let app = if n % 2 == 0 { &a } else { &b };
        assert_eq!(from(app, "", "192.0.2.20", "/healthz").await.0, 404);
    }
    let (status, retry, body) = ask(&a, "", "192.0.2.20", None, "/healthz").await;
    assert_eq!((status, retry.as_deref()), (429, Some("10")));
    assert_eq!(
        body["detail"],
        "this address sent more requests than its rate allows; retry after 10 s"
    );
    assert_eq!(from(&b, &key, "192.0.2.20", path).await.0, 429);

    // Redis busy (a script spinning for ~400 ms): the edges answer from their own buckets
    // within the timeout instead of waiting — edge two has spent none of its own yet.
    let mut blocker = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let spin = tokio::spawn(async move {
        let script = "local t0 = redis.call('TIME') local start = t0[1] * 1000000 + t0[2] \
                      while true do local t = redis.call('TIME') \
                      if t[1] * 1000000 + t[2] - start > 400000 then break end end return 1";
        let _: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .query_async(&mut blocker)
            .await;
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    assert_eq!(from(&b, &key, "192.0.2.1", path).await.0, 200);
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    spin.await.unwrap();
}

/// The `n`th request of a teller's key from 198.51.100.7, answered `outcome`; with an
/// incident id when `blocked` (the firewall's).
fn trail_record(n: i64, outcome: u16, blocked: bool) -> audit::Record {
    audit::Record {
        at_us: store::sql::now_us() + n,
        kind: audit::Kind::Request,
        principal: "key:0123456789abcdef".to_owned(),
        claimed: None,
        roles: vec!["teller".to_owned()],
        action: "GET /v1/ledger/accounts/{id}".to_owned(),
        resource: format!("/v1/ledger/accounts/{n}"),
        outcome,
        client: "198.51.100.7".to_owned(),
        user_agent: None,
        trace_id: None,
        incident: blocked.then(|| format!("incident-{n}")),
    }
}

/// The trail of the test gate in `dir` (SQLite) and its store.
async fn trail(dir: &std::path::Path) -> (store::Store, audit::log::AuditLog) {
    let store = store::Store::open(&store::SqlConfig::Sqlite {
        path: dir.join("audit.sqlite"),
    })
    .await
    .unwrap();
    let log = audit::log::AuditLog::open(store.clone()).await.unwrap();
    (store, log)
}

/// Writes entry `seq` into the trail's table past the appender: it cannot carry the chain's
/// hashes.
async fn forge_entry(store: &store::Store, seq: i64) {
    sqlx::query(
        "INSERT INTO audit_events (seq, at_us, principal, action, outcome, kind, body, \
         prev_hash, hash) VALUES ($1, 1, 'key:x', 'GET /', 200, 'request', '{}', $2, $2)",
    )
    .bind(seq)
    .bind(vec![0u8; 32])
    .execute(store.writer())
    .await
    .unwrap();
}

#[tokio::test]
async fn the_chain_watch_reports_an_entry_written_around_the_appender() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, _) = gate(dir.path(), GateConfig::default()).await;
    let (store, log) = trail(dir.path()).await;
    let record = |n: i64| trail_record(n, 200, false);
    log.append(&[record(1), record(2)]).await.unwrap();
    let watching = tokio::spawn(
        gate.clone()
            .watch_chain(log.clone(), Duration::from_millis(20)),
    );
    let broken = || {
        gate.findings()
            .into_iter()
            .filter(|f| f.kind == "audit_chain_broken")
            .collect::<Vec<_>>()
    };
    log.append(&[record(3), record(4)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(broken().is_empty(), "an intact chain is quiet");
    // Someone writes an entry of their own into the table, past the appender.
    forge_entry(&store, 5).await;
    for _ in 0..100 {
        if !broken().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let found = broken();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, guard::Severity::Critical);
    assert!(
        found[0].evidence.starts_with("entry 5:"),
        "{}",
        found[0].evidence
    );
    // The watch stops at the first break.
    tokio::time::timeout(Duration::from_secs(2), watching)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn findings_of_two_edges_are_kept_updated_and_listed_together_on_both_backends() {
    for backend in [store::Backend::Postgres, store::Backend::Sqlite] {
        let db = store::testing::TestDb::new(backend).await;
        let edge = || async {
            let store = db.open().await;
            let keys = Arc::new(Keys::open(store.clone()).await.unwrap());
            let gate = Arc::new(Gate::new(keys, GateConfig::default(), None).unwrap());
            let kept = edge::findings::Findings::new(store);
            (gate, kept)
        };
        let ((one, kept_one), (two, kept_two)) = (edge().await, edge().await);
        let finding = |kind: &'static str, first: i64, count: usize| guard::Finding {
            kind,
            severity: guard::Severity::High,
            principal: Some("key:0123456789abcdef".to_owned()),
            address: Some("198.51.100.7".to_owned()),
            evidence: format!("{count} seen"),
            first_seen_us: first,
            last_seen_us: first + count as i64,
            count,
        };
        one.report(finding("waf_burst", 10, 5));
        two.report(finding("enumeration", 20, 30));
        kept_one.flush(&one).await.unwrap();
        kept_two.flush(&two).await.unwrap();
        // Nothing changed since: a second flush writes nothing and fails nothing.
        kept_one.flush(&one).await.unwrap();
        let (all, next) = kept_two.list(None, 1000).await.unwrap();
        let kinds: Vec<(&str, i64)> = all.iter().map(|f| (f.kind.as_str(), f.count)).collect();
        assert_eq!(
            kinds,
            vec![("waf_burst", 5), ("enumeration", 30)],
            "{backend:?}"
        );
        assert_eq!(next, None);
        assert_eq!(all[0].severity, "high");
        // A page of one, then the rest.
        let (page, next) = kept_one.list(None, 1).await.unwrap();
        assert_eq!(page.len(), 1);
        let cursor = edge::findings::cursor(&next.unwrap()).unwrap();
        let (rest, _) = kept_one.list(Some(cursor), 1).await.unwrap();
        assert_eq!(rest[0].kind, "enumeration");
        // The same finding, later (same kind, whom, where and first event): updated in place.
        one.report(finding("waf_burst", 10, 9));
        kept_one.flush(&one).await.unwrap();
        let (all, _) = kept_two.list(None, 1000).await.unwrap();
        let kinds: Vec<(&str, i64, i64)> = all
            .iter()
            .map(|f| (f.kind.as_str(), f.count, f.last_seen_us))
            .collect();
        assert_eq!(kinds, vec![("waf_burst", 9, 19), ("enumeration", 30, 50)]);
        // The other edge, which began counting later, found less of the same: nothing is
        // taken back.
        two.report(finding("waf_burst", 10, 7));
        kept_two.flush(&two).await.unwrap();
        let (all, _) = kept_one.list(None, 1000).await.unwrap();
        assert_eq!(
            (all[0].count, all[0].last_seen_us, all[0].evidence.as_str()),
            (9, 19, "9 seen")
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn edges_reading_the_shared_trail_count_an_attack_spread_over_them_whole() {
    let db = store::testing::TestDb::new(store::Backend::Postgres).await;
    let admin_secret = "k2Jq8vX0nY4tR7wB1cZ5mA9sD3fG6hL2pQ";
    let mut config = GateConfig {
        detectors: edge::Detectors::SharedTrail,
        ..GateConfig::default()
    };
    // The bootstrap key's every use is a finding; the test's calls use a teller's key.
    config.response.enabled = false;
    let edge = || async {
        let store = db.open().await;
        let keys = Arc::new(Keys::open(store.clone()).await.unwrap());
        keys.bootstrap(None, Some(admin_secret)).await.unwrap();
        let log = audit::log::AuditLog::open(store).await.unwrap();
        let (auditor, writer) = audit::writer::Auditor::start(log.clone());
        let gate = Arc::new(Gate::new(keys, config.clone(), Some(auditor)).unwrap());
        (gate, log, writer)
    };
    let (one, log_one, _writer_one) = edge().await;
    let (two, log_two, _writer_two) = edge().await;
    let teller = teller_key(one.keys(), admin_secret).await;
    two.keys().refresh().await.unwrap();
    let watching = [
        tokio::spawn(one.clone().watch_chain(log_one, Duration::from_millis(20))),
        tokio::spawn(two.clone().watch_chain(log_two, Duration::from_millis(20))),
    ];
    // Let both watches read the trail's head before the attack.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (app_one, app_two) = (one.protect(router()), two.protect(router()));
    // Five firewall blocks from one address within the minute make a burst: three reach one
    // edge and two the other. Neither saw five itself.
    for _ in 0..3 {
        assert_eq!(
            from(&app_one, &teller, "198.51.100.7", ATTACK).await.2,
            "waf-blocked"
        );
    }
    for _ in 0..2 {
        assert_eq!(
            from(&app_two, &teller, "198.51.100.7", ATTACK).await.2,
            "waf-blocked"
        );
    }
    let bursts = |gate: &Gate| {
        gate.findings()
            .into_iter()
            .filter(|f| f.kind == "waf_burst")
            .map(|f| (f.address, f.count))
            .collect::<Vec<_>>()
    };
    let expected = vec![(Some("198.51.100.7".to_owned()), 5)];
    for _ in 0..250 {
        if bursts(&one) == expected && bursts(&two) == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        bursts(&one),
        expected,
        "the first edge counts both edges' blocks"
    );
    assert_eq!(bursts(&two), expected, "so does the second");
    // Both keep it under one id: listed once, with its count.
    let kept = edge::findings::Findings::new(one.keys().store().clone());
    kept.flush(&one).await.unwrap();
    edge::findings::Findings::new(two.keys().store().clone())
        .flush(&two)
        .await
        .unwrap();
    let (listed, _) = kept.list(None, 1000).await.unwrap();
    let listed: Vec<(&str, Option<&str>, i64)> = listed
        .iter()
        .filter(|f| f.kind == "waf_burst")
        .map(|f| (f.kind.as_str(), f.address.as_deref(), f.count))
        .collect();
    assert_eq!(listed, vec![("waf_burst", Some("198.51.100.7"), 5)]);
    for watch in watching {
        watch.abort();
    }
    db.cleanup().await;
}

#[tokio::test]
async fn detectors_reading_the_trail_keep_reading_it_after_the_chain_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let config = GateConfig {
        detectors: edge::Detectors::SharedTrail,
        ..GateConfig::default()
    };
    let (gate, _) = gate(dir.path(), config).await;
    let (store, log) = trail(dir.path()).await;
    let blocked = |n: i64| trail_record(n, 403, true);
    log.append(&[blocked(1)]).await.unwrap();
    let watching = tokio::spawn(
        gate.clone()
            .watch_chain(log.clone(), Duration::from_millis(20)),
    );
    let found = |kind: &str| gate.findings().iter().filter(|f| f.kind == kind).count();
    // Two blocked requests read from the trail, checked.
    log.append(&[blocked(2), blocked(3)]).await.unwrap();
    // Then someone writes an entry of their own past the appender, breaking the chain.
    forge_entry(&store, 4).await;
    for _ in 0..100 {
        if found("audit_chain_broken") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(found("audit_chain_broken"), 1);
    assert_eq!(found("waf_burst"), 0, "two blocks are not a burst");
    // Three more blocks from the same address: the detectors still read them, unchecked.
    log.append(&[blocked(5), blocked(6), blocked(7)])
        .await
        .unwrap();
    for _ in 0..100 {
        if found("waf_burst") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bursts: Vec<(Option<String>, usize)> = gate
        .findings()
        .into_iter()
        .filter(|f| f.kind == "waf_burst")
        .map(|f| (f.address, f.count))
        .collect();
    assert_eq!(bursts, vec![(Some("198.51.100.7".to_owned()), 5)]);
    assert!(!watching.is_finished(), "the watch goes on");
    watching.abort();
}
