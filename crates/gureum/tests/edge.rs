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
            let allowed = match route.access {
                edge::Access::Public | edge::Access::Authenticated => true,
                edge::Access::Permission(p) => role.permissions().contains(&p),
            };
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
