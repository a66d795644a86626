//! OpenID Connect bearer tokens: every check a token must pass, key rotation, and tokens at
//! the gate beside API keys. The keys in `fixtures/` are test keys made for these tests only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use base64::Engine as _;
use edge::access::permissions_of;
use edge::{Gate, GateConfig, JwksSource, Keys, Oidc, OidcConfig, Role};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::ServiceExt;

const ISSUER: &str = "https://id.example-bank.kr";
const AUDIENCE: &str = "gureum";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Claims that pass every check: alice, a teller, for ten minutes.
fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "preferred_username": "Alice Kim",
        "iat": now(),
        "exp": now() + 600,
        "roles": ["teller"],
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(&std::fs::read(fixture("oidc-rsa.pem")).unwrap())
        }
        Algorithm::ES256 => {
            EncodingKey::from_ec_pem(&std::fs::read(fixture("oidc-ec.pem")).unwrap())
        }
        other => panic!("no test key for {other:?}"),
    };
    sign_with(alg, kid, claims, &key.unwrap())
}

fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

/// A copy of the fixture JWKS in `dir` (so a test may rewrite it).
fn jwks_file(dir: &Path) -> PathBuf {
    let path = dir.join("jwks.json");
    std::fs::copy(fixture("oidc-jwks.json"), &path).unwrap();
    path
}

async fn open(dir: &Path) -> Oidc {
    Oidc::open(OidcConfig::new(
        ISSUER,
        AUDIENCE,
        JwksSource::File(jwks_file(dir)),
    ))
    .await
    .unwrap()
}

#[tokio::test]
async fn a_good_token_of_either_algorithm_is_its_subject_with_its_roles() {
    let dir = tempfile::tempdir().unwrap();
    let oidc = open(dir.path()).await;
    for (alg, kid) in [(Algorithm::RS256, "rsa-1"), (Algorithm::ES256, "ec-1")] {
        let token = sign(alg, Some(kid), &claims());
        let principal = oidc.authenticate(&token).await.expect("accepted");
        assert_eq!(principal.id, "oidc:alice");
        assert_eq!(principal.name, "Alice Kim");
        assert_eq!(principal.roles, vec![Role::Teller]);
        assert_eq!(principal.permissions, permissions_of(&[Role::Teller]));
        assert!(!principal.bootstrap);
        // Again, from what was remembered.
        assert_eq!(oidc.authenticate(&token).await.unwrap().id, "oidc:alice");
    }
}

#[tokio::test]
async fn every_broken_check_refuses_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let oidc = open(dir.path()).await;
    let rsa = |c: &Value| sign(Algorithm::RS256, Some("rsa-1"), c);
    let stranger =
        EncodingKey::from_ec_pem(&std::fs::read(fixture("oidc-ec-stranger.pem")).unwrap()).unwrap();
    let public_as_secret =
        EncodingKey::from_secret(&std::fs::read(fixture("oidc-jwks.json")).unwrap()).unwrap();
    let good = rsa(&claims());
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let admin_payload = b64(&with(claims(), "roles", json!(["admin"])));
    let refused: Vec<(&str, String)> = vec![
        (
            "another issuer",
            rsa(&with(claims(), "iss", json!("https://evil.example"))),
        ),
        ("no issuer", rsa(&without(claims(), "iss"))),
        (
            "another audience",
            rsa(&with(claims(), "aud", json!("someone-else"))),
        ),
        ("no audience", rsa(&without(claims(), "aud"))),
        (
            "expired past the skew",
            rsa(&with(claims(), "exp", json!(now() - 120))),
        ),
        ("no expiry", rsa(&without(claims(), "exp"))),
        (
            "not yet valid",
            rsa(&with(claims(), "nbf", json!(now() + 120))),
        ),
        (
            "issued in the future",
            rsa(&with(claims(), "iat", json!(now() + 120))),
        ),
        ("no subject", rsa(&without(claims(), "sub"))),
        ("an empty subject", rsa(&with(claims(), "sub", json!("")))),
        (
            "a subject with a space",
            rsa(&with(claims(), "sub", json!("alice kim"))),
        ),
        (
            "a subject with a line break",
            rsa(&with(claims(), "sub", json!("alice\r\nx: y"))),
        ),
        (
            "an unknown key id",
            sign(Algorithm::RS256, Some("rsa-9"), &claims()),
        ),
        (
            "the RSA key id on an ES256 token",
            sign(Algorithm::ES256, Some("rsa-1"), &claims()),
        ),
        (
            "another signer under a known id",
            sign_with(Algorithm::ES256, Some("ec-1"), &claims(), &stranger),
        ),
        (
            "HS256 keyed with public material",
            sign_with(
                Algorithm::HS256,
                Some("rsa-1"),
                &claims(),
                &public_as_secret,
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": "rsa-1"})),
                b64(&claims())
            ),
        ),
        (
            "a payload changed after signing",
            format!("{head}.{admin_payload}.{signature}"),
        ),
        ("no signature", format!("{head}.{}.", b64(&claims()))),
        ("two parts", format!("{head}.{}", b64(&claims()))),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (why, token) in refused {
        assert!(
            oidc.authenticate(&token).await.is_none(),
            "accepted a token with {why}"
        );
    }
    // Within the skew: a token that expired 30 s ago, one valid from 30 s from now.
    for (name, at) in [
        ("exp", now() - 30),
        ("nbf", now() + 30),
        ("iat", now() + 30),
    ] {
        let token = rsa(&with(claims(), name, json!(at)));
        assert!(
            oidc.authenticate(&token).await.is_some(),
            "{name} within the skew"
        );
    }
}

#[tokio::test]
async fn roles_come_from_the_configured_claim_and_only_gureum_s_user_roles_count() {
    let dir = tempfile::tempdir().unwrap();
    let oidc = open(dir.path()).await;
    let token = |roles: Value| {
        sign(
            Algorithm::ES256,
            Some("ec-1"),
            &with(claims(), "roles", roles),
        )
    };
    let roles = async |roles: Value| {
        oidc.authenticate(&token(roles))
            .await
            .unwrap()
            .roles
            .clone()
    };
    assert_eq!(
        roles(json!([
            "auditor",
            "service",
            "superuser",
            "auditor",
            "teller"
        ]))
        .await,
        vec![Role::Auditor, Role::Teller]
    );
    assert_eq!(
        roles(json!("loan_officer risk_analyst")).await,
        vec![Role::LoanOfficer, Role::RiskAnalyst]
    );
    assert_eq!(roles(json!(42)).await, Vec::<Role>::new());
    let nobody = oidc
        .authenticate(&sign(
            Algorithm::ES256,
            Some("ec-1"),
            &without(claims(), "roles"),
        ))
        .await
        .unwrap();
    assert!(nobody.roles.is_empty() && nobody.permissions.is_empty());

    // A customer's token names its customer and is then that customer alone; without the
    // claim the role goes.
    let with_customer = with(
        with(claims(), "roles", json!(["customer", "teller"])),
        "customer_id",
        json!("c-9"),
    );
    let customer = oidc
        .authenticate(&sign(Algorithm::ES256, Some("ec-1"), &with_customer))
        .await
        .unwrap();
    assert_eq!(
        (customer.roles.clone(), customer.customer.as_deref()),
        (vec![Role::Customer], Some("c-9"))
    );
    assert_eq!(
        roles(json!(["customer", "teller"])).await,
        vec![Role::Teller]
    );

    let mut config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File(jwks_file(dir.path())));
    config.roles_claim = "realm_access.roles".to_owned();
    let nested = Oidc::open(config).await.unwrap();
    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &with(claims(), "realm_access", json!({"roles": ["admin"]})),
    );
    assert_eq!(
        nested.authenticate(&token).await.unwrap().roles,
        vec![Role::Admin]
    );
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_file_stops_its_tokens_at_the_next_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let oidc = open(dir.path()).await;
    let rsa = sign(Algorithm::RS256, Some("rsa-1"), &claims());
    let ec = sign(Algorithm::ES256, Some("ec-1"), &claims());
    assert!(oidc.authenticate(&rsa).await.is_some());
    let mut jwks: Value =
        serde_json::from_slice(&std::fs::read(fixture("oidc-jwks.json")).unwrap()).unwrap();
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] == "ec-1");
    std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
    oidc.refresh().await.unwrap();
    assert!(
        oidc.authenticate(&rsa).await.is_none(),
        "a remembered token of a removed key"
    );
    assert!(oidc.authenticate(&ec).await.is_some());
    // A key without an id serves tokens naming none, when it is the only one of its kind.
    jwks["keys"][0].as_object_mut().unwrap().remove("kid");
    std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
    oidc.refresh().await.unwrap();
    assert!(
        oidc.authenticate(&sign(Algorithm::ES256, None, &claims()))
            .await
            .is_some()
    );
    // An unreadable file later leaves the keys in force.
    std::fs::write(dir.path().join("jwks.json"), "{").unwrap();
    assert!(oidc.refresh().await.is_err());
    assert!(
        oidc.authenticate(&sign(Algorithm::ES256, None, &claims()))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn unusable_settings_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = jwks_file(dir.path());
    let mut skewed = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File(file.clone()));
    skewed.leeway_seconds = 301;
    assert!(Oidc::open(skewed).await.is_err());
    assert!(
        Oidc::open(OidcConfig::new(
            "",
            AUDIENCE,
            JwksSource::File(file.clone())
        ))
        .await
        .is_err()
    );
    assert!(
        Oidc::open(OidcConfig::new(ISSUER, "", JwksSource::File(file)))
            .await
            .is_err()
    );
    let missing = JwksSource::File(dir.path().join("missing.json"));
    assert!(
        Oidc::open(OidcConfig::new(ISSUER, AUDIENCE, missing))
            .await
            .is_err()
    );
    // Only a symmetric key and an encryption key: nothing to verify signatures with.
    let useless = dir.path().join("useless.json");
    let jwks: Value =
        serde_json::from_slice(&std::fs::read(fixture("oidc-jwks.json")).unwrap()).unwrap();
    let mut encryption = jwks["keys"][0].clone();
    encryption["use"] = json!("enc");
    let document = json!({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}, encryption]});
    std::fs::write(&useless, document.to_string()).unwrap();
    let error = Oidc::open(OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File(useless)))
        .await
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("no RS256 or ES256 signing key"),
        "{error}"
    );
}

/// A JWKS served over HTTP on loopback, whose keys the test changes, counting fetches.
struct Provider {
    url: String,
    jwks: Arc<std::sync::Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

async fn provider(jwks: Value) -> Provider {
    let shared = Arc::new(std::sync::Mutex::new(jwks));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (served, counted) = (shared.clone(), fetches.clone());
    let app = Router::new().route(
        "/jwks",
        get(move || {
            let (served, counted) = (served.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::Json(served.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Provider {
        url,
        jwks: shared,
        fetches,
    }
}

#[tokio::test]
async fn a_jwks_url_is_fetched_again_for_a_new_key_id_but_not_for_every_unknown_one() {
    let all: Value =
        serde_json::from_slice(&std::fs::read(fixture("oidc-jwks.json")).unwrap()).unwrap();
    let mut rsa_only = all.clone();
    rsa_only["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] == "rsa-1");
    let idp = provider(rsa_only).await;
    let mut config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::parse(&idp.url));
    config.unknown_kid_refetch = Duration::from_millis(200);
    let oidc = Oidc::open(config).await.unwrap();
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    assert!(
        oidc.authenticate(&sign(Algorithm::RS256, Some("rsa-1"), &claims()))
            .await
            .is_some()
    );

    // The provider rotates in its EC key; the first token naming it brings it in.
    *idp.jwks.lock().unwrap() = all;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let ec = sign(Algorithm::ES256, Some("ec-1"), &claims());
    assert!(oidc.authenticate(&ec).await.is_some());
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // Unknown ids in a burst cost one fetch, not one each.
    tokio::time::sleep(Duration::from_millis(250)).await;
    for n in 0..20 {
        let kid = format!("made-up-{n}");
        assert!(
            oidc.authenticate(&sign(Algorithm::ES256, Some(&kid), &claims()))
                .await
                .is_none()
        );
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 3);
}

async fn call(app: &Router, credential: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .uri("/v1/ledger/accounts/1")
        .header("authorization", format!("Bearer {credential}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn at_the_gate_tokens_and_keys_work_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::open(&store::SqlConfig::Sqlite {
        path: dir.path().join("edge.sqlite"),
    })
    .await
    .unwrap();
    let keys = Arc::new(Keys::open(store).await.unwrap());
    let file = dir.path().join("admin.key");
    keys.bootstrap(Some(&file), None).await.unwrap();
    let admin_key = std::fs::read_to_string(file).unwrap().trim().to_owned();
    let oidc = Arc::new(open(dir.path()).await);
    let gate = Arc::new(
        Gate::new(keys, GateConfig::default(), None)
            .unwrap()
            .with_tokens(oidc),
    );
    let app = gate.protect(Router::new().route(
        "/v1/ledger/accounts/{id}",
        get(|headers: axum::http::HeaderMap| async move {
            axum::Json(json!({"principal": headers["gureum-principal"].to_str().unwrap()}))
        }),
    ));
    let teller = sign(Algorithm::RS256, Some("rsa-1"), &claims());
    let (status, body) = call(&app, &teller).await;
    assert_eq!(
        (status, body["principal"].as_str()),
        (StatusCode::OK, Some("oidc:alice"))
    );
    let (status, _) = call(&app, &admin_key).await;
    assert_eq!(status, StatusCode::OK);
    // A token without roles authenticates but may not read accounts.
    let (status, body) = call(
        &app,
        &sign(Algorithm::RS256, Some("rsa-1"), &without(claims(), "roles")),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("permission_denied"))
    );
    // A bad token is answered exactly like a bad key.
    let expired = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &with(claims(), "exp", json!(now() - 3600)),
    );
    let (status, bad_token) = call(&app, &expired).await;
    let (_, bad_key) = call(&app, &format!("{}x", &admin_key[..admin_key.len() - 1])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad_token, bad_key);
}
