//! End-to-end: the edge in front of `gureum up` — every route × every role against the one
//! permission table, credentials, the firewall in the request path, security headers.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, Staff};

/// A concrete path for a pattern: every `{…}` segment an id nothing has.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|segment| match segment {
            "{code}" => "NO-SUCH-PRODUCT",
            "{version}" | "{hold_id}" => "1",
            "{purpose}" => "marketing",
            "{id}" if pattern.starts_with("/v1/auth/") => "0000000000000000",
            s if s.starts_with('{') => "1",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap()
}

#[test]
fn every_route_answers_every_role_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let staff = Staff::new(&server);
    let anonymous = support::Http::new(&server.url);
    let mut checked = 0;
    for route in edge::access::ROUTES {
        let path = concrete(route.path);
        // Without credentials: public routes answer, every other one is 401.
        let (status, answer) = anonymous.call(method(route.method), &path, &[], None);
        match route.access {
            edge::Access::Public => assert_eq!(status, 200, "{} {path}: {answer}", route.method),
            _ => assert_eq!(
                (status, answer["code"].as_str()),
                (401, Some("unauthenticated")),
                "{} {path} without a key",
                route.method
            ),
        }
        // `service` is the split shape's service key alone; `gureum up` has none.
        for role in edge::Role::ALL
            .into_iter()
            .filter(|r| *r != edge::Role::Service)
        {
            // A customer comes through its own-records routes too (and is then told its own
            // records alone: see the next test).
            let allowed = route.access.grant_to(role) != edge::Grant::None;
            // No body: a write that is let through is refused as invalid or not found (ids
            // nothing has), so walking the matrix changes nothing.
            let (status, answer) = staff.call(role.name(), method(route.method), &path, None);
            let denied = status == 403 && answer["code"] == "permission_denied";
            assert_eq!(
                denied,
                !allowed,
                "{} {path} as {}: {status} {answer}",
                route.method,
                role.name()
            );
            assert_ne!(status, 401, "{} {path} as {}", route.method, role.name());
            if allowed {
                assert_ne!(answer["code"], "waf-blocked", "{} {path}", route.method);
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        edge::access::ROUTES.len() * (edge::Role::ALL.len() - 1)
    );
    // An unknown /v1 route is not even confirmed missing without credentials.
    let (status, _) = anonymous.call(Method::GET, "/v1/no-such-thing", &[], None);
    assert_eq!(status, 401);
    let (status, answer) = staff.call("auditor", Method::GET, "/v1/no-such-thing", None);
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("route_not_found"))
    );
}

#[test]
fn credentials_are_checked_without_hints_and_keys_are_shown_once_and_revocable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.http();
    let anonymous = support::Http::new(&server.url);

    let (status, made) = admin.call(
        Method::POST,
        "/v1/auth/api-keys",
        &[],
        Some(json!({"name": "branch 12 teller", "roles": ["teller"]})),
    );
    assert_eq!(status, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("gureum_{id}_")));
    assert_eq!(made["roles"], json!(["teller"]));
    // Lists never show a key again.
    let (_, listed) = admin.call(Method::GET, "/v1/auth/api-keys", &[], None);
    let text = listed.to_string();
    assert!(!text.contains(&key[key.len() - 20..]), "{text}");
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed["keys"][0]["bootstrap"], true);

    let teller = server.http_as(&key);
    let (status, me) = teller.call(Method::GET, "/v1/auth/whoami", &[], None);
    assert_eq!(
        (status, me["principal"].as_str(), me["roles"].clone()),
        (200, Some(format!("key:{id}").as_str()), json!(["teller"]))
    );
    // Permissions a client writes itself are dropped: only the gate says what a caller holds.
    let (status, answer) = teller.call(
        Method::GET,
        "/v1/auth/api-keys",
        &[
            ("gureum-permissions", "auth:keys"),
            ("gureum-principal", "key:admin"),
        ],
        None,
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("permission_denied"))
    );
    // HEAD needs what GET needs.
    let (status, _) = teller.call(Method::HEAD, "/v1/auth/api-keys", &[], None);
    assert_eq!(status, 403);
    // Nobody grants more than they hold.
    let (status, answer) = admin.call(
        Method::POST,
        "/v1/auth/api-keys",
        &[],
        Some(json!({"name": "x", "roles": ["root"]})),
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_api_key_request"))
    );

    // Every way of failing gets the same answer.
    let (status, revoked) = admin.call(
        Method::DELETE,
        &format!("/v1/auth/api-keys/{id}"),
        &[],
        None,
    );
    assert_eq!(status, 200);
    assert!(revoked["revoked_at_us"].is_string(), "{revoked}");
    let mut wrong = key.clone();
    wrong.replace_range(key.len() - 3.., "AAA");
    let mut answers = Vec::new();
    for authorization in [
        None,
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some("Bearer not-a-key".to_owned()),
        Some(format!("Bearer {wrong}")),
        Some(format!("Bearer {key}")),
        Some(format!("Bearer {}", server.key.to_uppercase())),
    ] {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let (status, headers, body) = anonymous.raw(Method::GET, "/v1/ledger/accounts/1", &headers);
        assert_eq!(status, 401);
        assert_eq!(headers["www-authenticate"], "Bearer realm=\"gureum\"");
        answers.push(body);
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "the answers differ"
    );
    let problem: Value = serde_json::from_slice(&answers[0]).unwrap();
    assert_eq!(
        (problem["type"].as_str(), problem["status"].as_u64()),
        (
            Some("https://gureum.dev/problems/unauthenticated"),
            Some(401)
        )
    );
}

#[test]
fn the_firewall_blocks_attacks_in_the_request_path_and_lets_customers_names_through() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let staff = Staff::new(&server);
    for (name, rrn) in [
        ("O'Brien", "900101-1234568"),
        ("D'Angelo-Smith", "850505-2345674"),
        ("김하늘", "770707-1122333"),
        ("Jean-Luc -- Picard (주)", "010203-3123451"),
    ] {
        let (status, created) = staff.call(
            "teller",
            Method::POST,
            "/v1/customers",
            Some(json!({"name": name, "rrn": rrn, "phone": "010-1234-5678"})),
        );
        assert_eq!(status, 201, "{name}: {created}");
    }
    let (_, before) = staff.call("teller", Method::GET, "/v1/customers", None);
    for attack in [
        "x' UNION SELECT password FROM users--",
        "<script>alert(document.cookie)</script>",
        "; cat /etc/passwd",
    ] {
        let (status, answer) = staff.call(
            "teller",
            Method::POST,
            "/v1/customers",
            Some(json!({"name": attack, "rrn": "900101-1234568"})),
        );
        assert_eq!(status, 403, "{attack}: {answer}");
        assert_eq!(
            answer["type"].as_str(),
            Some("https://gureum.dev/problems/waf-blocked")
        );
        let incident = answer["incident"].as_str().unwrap();
        assert_eq!(
            uuid::Uuid::parse_str(incident).unwrap().get_version_num(),
            7
        );
        assert!(answer["detail"].as_str().unwrap().contains(incident));
        assert!(!answer.to_string().contains("passwd") && !answer.to_string().contains("UNION"));
    }
    // Nothing was created by the blocked requests.
    let (_, after) = staff.call("teller", Method::GET, "/v1/customers", None);
    assert_eq!(after, before);
    // In the query string and the path, too.
    let (status, answer) = staff.call(
        "teller",
        Method::GET,
        "/v1/customers?name=1%27%20OR%20%271%27%3D%271",
        None,
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("waf-blocked"))
    );
    let (status, _) = staff.call(
        "teller",
        Method::GET,
        "/v1/deposits/..%2f..%2fetc%2fpasswd",
        None,
    );
    assert_eq!(status, 403);
}

#[test]
fn every_answer_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let anonymous = support::Http::new(&server.url);
    for (path, status) in [("/healthz", 200), ("/v1/ledger/accounts/1", 401)] {
        let (got, headers, _) = anonymous.raw(Method::GET, path, &[]);
        assert_eq!(got, status);
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(headers[name], value, "{path}: {name}");
        }
        // Plain HTTP on loopback: no HSTS promise the server could not keep.
        assert!(headers.get("strict-transport-security").is_none());
    }
}

#[test]
fn every_request_is_audited_in_a_chain_that_verify_checks_and_export_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let staff = Staff::new(&server);
    let anonymous = support::Http::new(&server.url);
    let (_, me) = staff.call("teller", Method::GET, "/v1/auth/whoami", None);
    let teller = me["principal"].as_str().unwrap().to_owned();
    let (status, created) = staff.call(
        "teller",
        Method::POST,
        "/v1/customers",
        Some(json!({"name": "김하늘", "rrn": "900101-1234568"})),
    );
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap();
    let (status, _) = staff.call(
        "teller",
        Method::GET,
        &format!("/v1/customers/{id}?unmask=rrn&purpose=real-name%20check"),
        None,
    );
    assert_eq!(status, 200);
    let (status, blocked) = staff.call(
        "teller",
        Method::GET,
        "/v1/customers?name=1%27%20OR%20%271%27%3D%271",
        None,
    );
    assert_eq!(status, 403);
    // A wrong secret for a real key id: recorded as a claim, never as the key.
    let wrong = format!("Bearer gureum_{}_{}", &teller[4..], "A".repeat(43));
    let (status, _, _) = anonymous.raw(
        Method::GET,
        "/v1/ledger/accounts/1",
        &[
            ("authorization", wrong.as_str()),
            ("user-agent", "curl/8.5"),
        ],
    );
    assert_eq!(status, 401);
    let (status, _) = staff.call("teller", Method::GET, "/v1/audit/events", None);
    assert_eq!(status, 403, "a teller does not read the trail");

    // The auditor reads what happened (the writer appends in the background: wait for it).
    let page = |query: &str, at_least: usize| {
        let mut last = Value::Null;
        for _ in 0..50 {
            let (status, page) = staff.call(
                "auditor",
                Method::GET,
                &format!("/v1/audit/events?{query}"),
                None,
            );
            assert_eq!(status, 200, "{page}");
            last = page;
            if last["events"]
                .as_array()
                .is_some_and(|e| e.len() >= at_least)
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        last
    };
    let mine = page(&format!("principal={teller}"), 5);
    let events = mine["events"].as_array().unwrap();
    let summary: Vec<(String, u64, String)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_u64().unwrap(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("GET /v1/auth/whoami", 200, "request"),
            ("POST /v1/customers", 201, "request"),
            ("GET /v1/customers/{id}", 200, "regulated_read"),
            ("GET /v1/customers", 403, "request"),
            ("GET /v1/audit/events", 403, "request"),
        ]
        .map(|(a, o, k)| (a.to_owned(), o, k.to_owned()))
    );
    assert_eq!(events[0]["roles"], json!(["teller"]));
    assert_eq!(events[3]["incident"], blocked["incident"]);
    assert_eq!(events[2]["resource"], format!("/v1/customers/{id}"));
    // Nothing regulated in the trail: no registration number, no query string.
    let text = mine.to_string();
    assert!(
        !text.contains("1234568") && !text.contains("unmask"),
        "{text}"
    );
    let claims = page("principal=anonymous&outcome=401", 1);
    let claim = claims["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["claimed"] == teller.as_str())
        .unwrap_or_else(|| panic!("{claims}"));
    assert_eq!(claim["user_agent"], "curl/8.5");
    assert!(!claims.to_string().contains(&"A".repeat(43)));
    let (status, problem) = staff.call("auditor", Method::GET, "/v1/audit/events?limit=0", None);
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_query"))
    );

    // Stopped cleanly, every queued entry is written; the chain verifies and exports.
    assert!(server.stop().success());
    let verify = |json: bool| {
        let mut command = support::gureum();
        command
            .args(["audit", "verify", "--data-dir"])
            .arg(dir.path());
        if json {
            command.arg("--json");
        }
        command.output().unwrap()
    };
    let out = verify(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = report["entries"].as_u64().unwrap();
    assert!(entries >= 10, "{report}");
    let export = support::gureum()
        .args(["audit", "export", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(export.status.success());
    let lines: Vec<Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, entries);
    assert_eq!(lines.last().unwrap()["hash"], report["head"]);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], (i + 1).to_string());
    }

    // One edited outcome is found, by number.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = store::Store::open(&store::SqlConfig::Sqlite {
            path: dir.path().join("audit.sqlite"),
        })
        .await
        .unwrap();
        let mut tx = store.begin().await.unwrap();
        sqlx::query("UPDATE audit_events SET body = replace(body, '\"outcome\":', '\"outcome\":1') WHERE seq = 4")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        store.close().await;
    });
    let out = verify(false);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("entry 4"), "{said}");
}

#[test]
fn the_detectors_watch_every_request_and_auditors_read_their_findings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let staff = Staff::new(&server);
    let (_, me) = staff.call("teller", Method::GET, "/v1/auth/whoami", None);
    let teller = me["principal"].as_str().unwrap().to_owned();
    // A teller tries to make itself an admin key.
    let (status, _) = staff.call(
        "teller",
        Method::POST,
        "/v1/auth/api-keys",
        Some(json!({"name": "mine", "roles": ["admin"]})),
    );
    assert_eq!(status, 403);
    let (status, page) = staff.call("teller", Method::GET, "/v1/guard/findings", None);
    assert_eq!(status, 403, "{page}");
    let (status, page) = staff.call("auditor", Method::GET, "/v1/guard/findings", None);
    assert_eq!(status, 200);
    let findings = page["findings"].as_array().unwrap();
    let of = |kind: &str| {
        findings
            .iter()
            .filter(|f| f["kind"] == kind)
            .collect::<Vec<_>>()
    };
    let escalation = of("privilege_escalation");
    assert_eq!(escalation.len(), 1, "{page}");
    assert_eq!(escalation[0]["principal"], teller.as_str());
    assert_eq!(escalation[0]["severity"], "high");
    // The bootstrap admin key made the staff keys: break-glass use, one finding, counted.
    let glass = of("break_glass");
    assert_eq!(glass.len(), 1, "{page}");
    assert_eq!(glass[0]["severity"], "critical");
    assert!(glass[0]["count"].as_u64().unwrap() >= 2, "{page}");
    // It made them from this address and they were first used from it: the maker granted
    // itself those roles, as far as the edge can tell. (The auditor key's first use was the
    // read above, judged after its answer: read again.)
    let (_, me) = staff.call("auditor", Method::GET, "/v1/auth/whoami", None);
    let (_, page) = staff.call("auditor", Method::GET, "/v1/guard/findings", None);
    let mut selves: Vec<(&str, &str)> = page["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "self_granted_role")
        .map(|f| {
            (
                f["principal"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
            )
        })
        .collect();
    selves.sort();
    let mut expected = vec![
        (teller.as_str(), "medium"),
        (me["principal"].as_str().unwrap(), "medium"),
    ];
    expected.sort();
    assert_eq!(selves, expected, "{page}");
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../edge/tests/fixtures")
        .join(name)
}

#[test]
fn https_with_the_given_certificate_and_openid_connect_tokens_beside_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, jwks) = (
        fixture("tls-cert.pem"),
        fixture("tls-key.pem"),
        fixture("oidc-jwks.json"),
    );
    let server = Server::start_with(
        dir.path(),
        &[
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
            "--oidc-issuer".as_ref(),
            "https://id.example-bank.kr".as_ref(),
            "--oidc-audience".as_ref(),
            "gureum".as_ref(),
            "--oidc-jwks".as_ref(),
            jwks.as_os_str(),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let trusted =
        reqwest::Certificate::from_pem(&std::fs::read(fixture("tls-ca.pem")).unwrap()).unwrap();
    let client = |credential: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {credential}").parse().unwrap(),
        );
        reqwest::blocking::Client::builder()
            .add_root_certificate(trusted.clone())
            .default_headers(headers)
            .build()
            .unwrap()
    };
    let get = |credential: &str, path: &str| {
        let response = client(credential)
            .get(format!("{}{path}", server.url))
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let hsts = response
            .headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            status,
            hsts,
            response.json::<Value>().unwrap_or(Value::Null),
        )
    };
    // The admin key over HTTPS; every answer tells browsers to stay on HTTPS.
    let (status, hsts, me) = get(&server.key, "/v1/auth/whoami");
    assert_eq!(status, 200, "{me}");
    assert_eq!(hsts.as_deref(), Some("max-age=31536000; includeSubDomains"));
    assert_eq!(me["roles"], json!(["admin"]));
    // Plain HTTP to the same port gets no answer.
    let plain = server.url.replace("https://", "http://");
    assert!(
        reqwest::blocking::get(format!("{plain}/healthz"))
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );

    // A teller's token from the identity provider.
    let now = jsonwebtoken::get_current_timestamp();
    let token = |roles: Value| {
        let claims = json!({
            "iss": "https://id.example-bank.kr", "aud": "gureum", "sub": "alice",
            "iat": now, "exp": now + 600, "roles": roles,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("rsa-1".to_owned());
        let signing = jsonwebtoken::EncodingKey::from_rsa_pem(
            &std::fs::read(fixture("oidc-rsa.pem")).unwrap(),
        )
        .unwrap();
        jsonwebtoken::encode(&header, &claims, &signing).unwrap()
    };
    let teller = token(json!(["teller"]));
    let (status, _, me) = get(&teller, "/v1/auth/whoami");
    assert_eq!(status, 200);
    assert_eq!(me["principal"], "oidc:alice");
    assert_eq!(me["roles"], json!(["teller"]));
    let (status, _, body) = get(&teller, "/v1/ledger/accounts/77");
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("account_not_found"))
    );
    // Without a role, authenticated but not allowed; a bad token, not authenticated.
    let (status, _, body) = get(&token(json!([])), "/v1/ledger/accounts/77");
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("permission_denied"))
    );
    let mut forged = teller.clone();
    forged.pop();
    forged.push(if teller.ends_with('A') { 'B' } else { 'A' });
    let (status, _, body) = get(&forged, "/v1/auth/whoami");
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    assert!(server.stop().success());
}

/// `gureum up` with `args` on the data folder `dir` fails to start; what it said.
fn up_refused(dir: &std::path::Path, args: &[&str]) -> String {
    let output = support::gureum()
        .arg("up")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("GUREUM_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_rates_of_a_key_and_of_an_address_are_set_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = up_refused(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--principal-rate", "0"],
    );
    assert!(
        stderr.contains("--principal-rate must be a positive number, not 0"),
        "{stderr}"
    );
    let args: Vec<&std::ffi::OsStr> = [
        "--principal-rate",
        "0.1",
        "--principal-burst",
        "3",
        "--address-rate",
        "0.1",
        "--address-burst",
        "5",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .collect();
    let server = Server::start_with(dir.path(), &args);
    let http = server.http();
    for _ in 0..3 {
        assert_eq!(
            http.call(Method::GET, "/v1/ledger/accounts/1", &[], None).0,
            404
        );
    }
    let (status, problem) = http.call(Method::GET, "/v1/ledger/accounts/1", &[], None);
    assert_eq!(
        (status, problem["code"].as_str()),
        (429, Some("rate_limited"))
    );
    assert_eq!(
        problem["detail"],
        "this key sent more requests than its rate allows; retry after 10 s"
    );
    // The refused request spent nothing of the address's five: two more, on a public route.
    for _ in 0..2 {
        assert_eq!(http.call(Method::GET, "/healthz", &[], None).0, 200);
    }
    let (status, problem) = http.call(Method::GET, "/healthz", &[], None);
    assert_eq!(status, 429);
    assert_eq!(
        problem["detail"],
        "this address sent more requests than its rate allows; retry after 10 s"
    );
}

#[test]
fn plain_http_off_loopback_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = up_refused(dir.path(), &["--listen", "0.0.0.0:0"]);
    assert!(stderr.contains("is not a loopback address"), "{stderr}");
    assert!(
        !dir.path().join("admin.key").exists(),
        "nothing opened before the refusal"
    );
}

#[test]
fn a_customer_s_key_reads_its_own_records_and_no_one_else_s() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = server.http();
    let today = store::sql::today_kst().to_string();
    support::publish_demand_deposit(&http);
    let customer = |name: &str, rrn: &str| {
        let id = support::verified_customer(&http, name, rrn);
        let (status, a) = http.call(
            Method::POST,
            "/v1/deposits",
            &[("idempotency-key", &format!("open-{id}"))],
            Some(json!({"customer_id": id, "product_code": "DEP-FREE"})),
        );
        assert_eq!(status, 201, "{a}");
        (id, a["id"].as_str().unwrap().to_owned())
    };
    let (alice, alice_account) = customer("김하늘", "900101-1234568");
    let (bob, bob_account) = customer("이바다", "850505-2345674");

    let key =
        server.key_with(json!({"name": "alice's app", "roles": ["customer"], "customer": alice}));
    let me = server.http_as(&key);
    let (status, who) = me.call(Method::GET, "/v1/auth/whoami", &[], None);
    assert_eq!(
        (status, who["customer"].as_str()),
        (200, Some(alice.as_str()))
    );
    let get = |path: &str| {
        let (status, body) = me.call(Method::GET, path, &[], None);
        (status, body)
    };
    // Her own records.
    let (status, c) = get(&format!("/v1/customers/{alice}"));
    assert_eq!(
        (status, c["id"].as_str()),
        (200, Some(alice.as_str())),
        "{c}"
    );
    assert_eq!(get(&format!("/v1/customers/{alice}/consents")).0, 200);
    let (status, list) = get(&format!("/v1/deposits?customer_id={alice}"));
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![alice_account.as_str()]);
    assert_eq!(get(&format!("/v1/deposits/{alice_account}")).0, 200);
    let period = format!("from={today}&to={today}");
    assert_eq!(
        get(&format!("/v1/deposits/{alice_account}/statement?{period}")).0,
        200
    );
    let (status, loans) = get("/v1/loans");
    assert_eq!(
        (status, loans["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    // Bob's: not found, as if they did not exist; his listing is empty.
    for path in [
        format!("/v1/customers/{bob}"),
        format!("/v1/customers/{bob}/consents"),
        format!("/v1/deposits/{bob_account}"),
        format!("/v1/deposits/{bob_account}/statement?{period}"),
    ] {
        let (status, body) = get(&path);
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, list) = get(&format!("/v1/deposits?customer_id={bob}"));
    assert_eq!(
        (status, list["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, list) = get(&format!("/v1/loans?customer_id={bob}"));
    assert_eq!(
        (status, list["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    // Nothing beyond reading: no movements, no other customer's search, no ledger.
    let (status, body) = me.call(
        Method::POST,
        &format!("/v1/deposits/{alice_account}/deposit"),
        &[("idempotency-key", "x")],
        Some(json!({"amount": "1000"})),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("permission_denied"))
    );
    for path in ["/v1/customers?limit=10", "/v1/ledger/accounts/1"] {
        assert_eq!(get(path).0, 403, "{path}");
    }
    // A customer key must name its customer.
    let (status, body) = http.call(
        Method::POST,
        "/v1/auth/api-keys",
        &[],
        Some(json!({"name": "nobody's", "roles": ["customer"]})),
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn findings_outlive_the_process_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    // The bootstrap key makes the keys (break-glass); a teller asks for an admin key
    // (privilege escalation).
    let auditor_key = server.key_for(&["auditor"]);
    let teller = server.http_as(&server.key_for(&["teller"]));
    let (status, _) = teller.call(
        Method::POST,
        "/v1/auth/api-keys",
        &[],
        Some(json!({"name": "mine", "roles": ["admin"]})),
    );
    assert_eq!(status, 403);
    let kinds = |page: &Value| -> Vec<String> {
        page["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, before) =
        server
            .http_as(&auditor_key)
            .call(Method::GET, "/v1/guard/findings", &[], None);
    let first = kinds(&before);
    assert!(first.contains(&"break_glass".to_owned()), "{before}");
    assert!(
        first.contains(&"privilege_escalation".to_owned()),
        "{before}"
    );
    assert!(server.stop().success());

    // Another process over the same data folder lists them, a page at a time.
    let server = Server::start(dir.path());
    let auditor = server.http_as(&auditor_key);
    let mut seen = Vec::new();
    let mut path = "/v1/guard/findings?limit=1".to_owned();
    loop {
        let (status, page) = auditor.call(Method::GET, &path, &[], None);
        assert_eq!(status, 200, "{page}");
        assert!(kinds(&page).len() <= 1);
        seen.extend(kinds(&page));
        match page["next"].as_str() {
            Some(cursor) => path = format!("/v1/guard/findings?limit=1&after={cursor}"),
            None => break,
        }
    }
    // What the first process found is all there (the new one adds its own).
    for kind in &first {
        assert!(seen.contains(kind), "{kind} missing from {seen:?}");
    }
    assert!(seen.len() >= first.len());
    let (status, page) = auditor.call(Method::GET, "/v1/guard/findings?after=nonsense", &[], None);
    assert_eq!(
        (status, page["code"].as_str()),
        (400, Some("invalid_query"))
    );
    assert!(server.stop().success());
}
