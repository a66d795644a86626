//! The engine's behaviour: what a bank's honest clients send passes, attacks in every place a
//! request carries text are found, and the knobs (paranoia, detect-only, exclusions, the
//! inspection cap) do what they say.

use waf::{Config, ConfigError, Engine, Exclusion, Family, Mode, Request, Verdict};

fn engine() -> Engine {
    Engine::new(Config::default()).unwrap()
}

fn inspect(
    engine: &Engine,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Verdict {
    engine.inspect(&Request {
        method,
        target,
        headers,
        body: body.as_bytes(),
    })
}

fn json_post(engine: &Engine, target: &str, body: &str) -> Verdict {
    inspect(
        engine,
        "POST",
        target,
        &[
            ("Host", "api.bank.example"),
            ("Content-Type", "application/json"),
            ("User-Agent", "bank-app/4.2 (iOS 19.1; ko-KR)"),
        ],
        body,
    )
}

#[test]
fn what_a_banks_clients_send_is_not_flagged() {
    let engine = engine();
    let bodies = [
        r#"{"name": "O'Brien", "given_name": "Seán", "family_name": "D'Angelo-Smith"}"#,
        r#"{"name": "홍길동", "address": "서울특별시 강남구 테헤란로 123, 101동 1001호", "phone": "010-1234-5678"}"#,
        r#"{"memo": "11월 월세 (관리비 포함) - 감사합니다!"}"#,
        r#"{"memo": "Dinner & drinks; split 3 ways"}"#,
        r#"{"memo": "Invoice #2026-11-0042 paid in full, thanks"}"#,
        r#"{"memo": "Rent for 12/2026 - unit 3B"}"#,
        r#"{"memo": "50% deposit, rest on delivery"}"#,
        r#"{"memo": "Tom's birthday gift :) see you at 7"}"#,
        r#"{"memo": "Lunch; time to pay you back"}"#,
        r#"{"memo": "Order (2 items) - select size M"}"#,
        r#"{"memo": "Union dues for November, from payroll"}"#,
        r#"{"memo": "Reimbursement: taxi + train, see receipt"}"#,
        r#"{"memo": "Payment for \"premium\" plan"}"#,
        r#"{"memo": "Transfer to savings -- emergency fund"}"#,
        r#"{"email": "kim.minsu+bank@example.co.kr", "website": "https://www.example.com/about?lang=ko"}"#,
        r#"{"employer": "Smith & Sons Ltd.", "job_title": "Senior Engineer (Backend)"}"#,
        r#"{"note": "Customer asked: can I change my PIN? Told them: use the app -> Settings"}"#,
        r#"[{"id":"1700000000000000001","debit_account_id":"100000000000000000001","credit_account_id":"100000000000000000002","amount":"4294967296","ledger":410,"code":1,"flags":["linked"]}]"#,
        r#"{"principal": "10000000", "annual_rate": "0.055", "term_months": 12, "method": "equal_payment", "grace_months": 0, "start_date": "2026-01-15"}"#,
        r#"{"income": "52000000", "employment_months": 38, "purpose": "전세 보증금 (Jeonse deposit)"}"#,
    ];
    for body in bodies {
        let verdict = json_post(&engine, "/v1/customers", body);
        assert!(!verdict.attack, "{body} was flagged: {:?}", verdict.matches);
    }
    let targets = [
        "/v1/ledger/accounts/100000000000000000001/transfers?limit=50&after=1700000000000000001&reverse=true",
        "/v1/customers?name=O%27Brien&page=2",
        "/v1/customers?name=%ED%99%8D%EA%B8%B8%EB%8F%99",
        "/v1/loans/quote",
        "/.well-known/openid-configuration",
        "/v1/audit/events?action=customer.read&since=2026-11-01T00:00:00Z",
    ];
    for target in targets {
        let verdict = inspect(&engine, "GET", target, &[("Host", "api.bank.example")], "");
        assert!(
            !verdict.attack,
            "{target} was flagged: {:?}",
            verdict.matches
        );
    }
}

#[test]
fn attacks_are_found_in_every_place_a_request_carries_text() {
    let engine = engine();
    let found = |v: Verdict, family: Family, location: &str| {
        assert!(v.attack && v.blocked, "{location}: {v:?}");
        assert!(
            v.matches
                .iter()
                .any(|m| m.family == family && m.location == location),
            "{location}: {:?}",
            v.matches
        );
    };
    found(
        inspect(
            &engine,
            "GET",
            "/v1/customers?name=x%27%20OR%201%3D1--",
            &[],
            "",
        ),
        Family::Sqli,
        "arg:name",
    );
    found(
        json_post(
            &engine,
            "/v1/customers",
            r#"{"profile": {"bio": "<script>alert(1)</script>"}}"#,
        ),
        Family::Xss,
        "json:/profile/bio",
    );
    // The float that hangs some parsers, as text and as a JSON number (which the walk reads
    // back in its shortest form).
    for body in [
        r#"{"rate": "2.2250738585072011e-308"}"#,
        r#"{"rate": 2.2250738585072011e-308}"#,
    ] {
        found(
            json_post(&engine, "/v1/products", body),
            Family::Sqli,
            "json:/rate",
        );
    }
    found(
        inspect(
            &engine,
            "GET",
            "/v1/files?path=..%2F..%2Fetc%2Fpasswd",
            &[],
            "",
        ),
        Family::Lfi,
        "arg:path",
    );
    found(
        inspect(
            &engine,
            "POST",
            "/v1/reports",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "host=example.com%3Bcat+/etc/passwd",
        ),
        Family::Rce,
        "body:host",
    );
    found(
        inspect(
            &engine,
            "GET",
            "/v1/x",
            &[(
                "Cookie",
                "theme=dark; sid=1' union select password from users--",
            )],
            "",
        ),
        Family::Sqli,
        "cookie:sid",
    );
    found(
        inspect(
            &engine,
            "GET",
            "/v1/x",
            &[("User-Agent", "() { :; }; /bin/bash -c id")],
            "",
        ),
        Family::Rce,
        "header:user-agent",
    );
    found(
        json_post(
            &engine,
            "/v1/webhooks",
            r#"{"callback_url": "http://169.254.169.254/latest/meta-data/iam"}"#,
        ),
        Family::Ssrf,
        "json:/callback_url",
    );
    found(
        inspect(
            &engine,
            "POST",
            "/v1/documents",
            &[("Content-Type", "multipart/form-data; boundary=XyZ")],
            "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n<img src=x onerror=alert(1)>\r\n--XyZ--\r\n",
        ),
        Family::Xss,
        "part:title",
    );
    found(
        inspect(
            &engine,
            "GET",
            "/v1/x?q=%253Cscript%253Ealert(1)%253C/script%253E",
            &[],
            "",
        ),
        Family::Xss,
        "arg:q",
    );
}

#[test]
fn request_framing_attacks_are_found() {
    let engine = engine();
    let smuggling = inspect(
        &engine,
        "POST",
        "/v1/x",
        &[("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
        "",
    );
    assert!(smuggling.attack);
    assert_eq!(smuggling.matches[0].rule, "921170");
    assert_eq!(smuggling.matches[0].location, "request");
    let splitting = inspect(
        &engine,
        "GET",
        "/v1/x?next=%0d%0aSet-Cookie:%20sid=evil",
        &[],
        "",
    );
    assert!(splitting.matches.iter().any(|m| m.rule == "921120"));
    let bad_escape = inspect(&engine, "GET", "/v1/x?q=100%zz", &[], "");
    assert_eq!(bad_escape.matches.len(), 1);
    assert_eq!(bad_escape.matches[0].rule, "920220");
    // A warning alone stays under the threshold.
    assert_eq!(bad_escape.score, 3);
    assert!(!bad_escape.attack);
}

#[test]
fn detect_only_reports_the_attack_without_blocking() {
    let engine = Engine::new(Config {
        mode: Mode::DetectOnly,
        ..Config::default()
    })
    .unwrap();
    let v = inspect(
        &engine,
        "GET",
        "/v1/x?q=%3Cscript%3Ealert(1)%3C/script%3E",
        &[],
        "",
    );
    assert!(v.attack);
    assert!(!v.blocked);
    assert!(v.score >= 5);
}

#[test]
fn an_exclusion_lets_one_field_of_one_route_hold_such_text() {
    let body = r#"{"query": "select name from customers where id = 1 union select 2"}"#;
    let strict = engine();
    assert!(json_post(&strict, "/v1/analytics/queries", body).attack);
    let relaxed = Engine::new(Config {
        exclusions: vec![Exclusion {
            path_prefix: "/v1/analytics/".into(),
            locations: vec!["json:/query".into()],
            rules: vec!["sqli".into()],
        }],
        ..Config::default()
    })
    .unwrap();
    let v = json_post(&relaxed, "/v1/analytics/queries", body);
    assert!(!v.attack, "{:?}", v.matches);
    // The same text elsewhere, or on another route, is still caught.
    assert!(
        json_post(
            &relaxed,
            "/v1/analytics/queries",
            r#"{"title": "1 union select 2 from users"}"#
        )
        .attack
    );
    assert!(json_post(&relaxed, "/v1/customers", body).attack);
}

#[test]
fn a_verdict_names_where_but_never_what() {
    let secret = "900101-1234567' OR '1'='1";
    let v = json_post(
        &engine(),
        "/v1/customers",
        &format!(r#"{{"rrn": "{secret}"}}"#),
    );
    assert!(v.attack);
    let shown = serde_json::to_string(&v).unwrap();
    assert!(!shown.contains("900101"), "{shown}");
    assert!(shown.contains("json:/rrn"));
}

#[test]
fn inspection_stops_at_the_cap_and_says_so() {
    let engine = Engine::new(Config {
        inspect_bytes_max: 64,
        ..Config::default()
    })
    .unwrap();
    let filler = "a".repeat(100);
    let body = format!(r#"{{"a": "{filler}", "b": "<script>alert(1)</script>"}}"#);
    let v = json_post(&engine, "/v1/x", &body);
    assert!(v.truncated);
    assert_eq!(v.inspected_bytes, 64);
    assert!(!v.attack);
}

#[test]
fn higher_paranoia_counts_weak_sqli_fingerprints() {
    let value = "/v1/x?q=1611-IioXXIG1ti8rspL2vbXFy--";
    assert!(!inspect(&engine(), "GET", value, &[], "").attack);
    let paranoid = Engine::new(Config {
        paranoia: 2,
        ..Config::default()
    })
    .unwrap();
    assert!(inspect(&paranoid, "GET", value, &[], "").attack);
}

#[test]
fn bad_configurations_are_refused() {
    let refused = |config: Config| Engine::new(config).err();
    assert_eq!(
        refused(Config {
            paranoia: 5,
            ..Config::default()
        }),
        Some(ConfigError::Paranoia(5))
    );
    assert_eq!(
        refused(Config {
            threshold: 0,
            ..Config::default()
        }),
        Some(ConfigError::Threshold)
    );
    assert_eq!(
        refused(Config {
            exclusions: vec![Exclusion {
                path_prefix: "/".into(),
                locations: vec![],
                rules: vec!["999999".into()],
            }],
            ..Config::default()
        }),
        Some(ConfigError::UnknownRule("999999".into()))
    );
}

#[test]
fn binary_batches_are_not_read_as_text_but_json_under_their_type_is() {
    let engine = engine();
    let binary = |body: &[u8]| {
        engine.inspect(&Request {
            method: "POST",
            target: "/v1/ledger/transfers",
            headers: &[("Content-Type", "application/octet-stream")],
            body,
        })
    };
    // Bytes of the ledger's batch encoding that happen to spell shell and SQL syntax.
    let mut bytes = vec![0u8, 0, 0, 2, 0xff, 0xfe];
    bytes.extend_from_slice(b"$(cat /etc/passwd)' OR 1=1--");
    bytes.extend_from_slice(&[0x80, 0x81, 0]);
    let verdict = binary(&bytes);
    assert_eq!((verdict.attack, verdict.matches.len()), (false, 0));
    // The same type cannot smuggle JSON past the rules: services read JSON whatever its type.
    let verdict = binary(br#"[{"memo": "' UNION SELECT password FROM users--"}]"#);
    assert!(verdict.blocked, "{verdict:?}");
    assert!(
        verdict.matches.iter().any(|m| m.location == "json:/0/memo"),
        "{verdict:?}"
    );
    // Without a type (or any other), such bytes are read as text.
    let verdict = engine.inspect(&Request {
        method: "POST",
        target: "/v1/ledger/transfers",
        headers: &[],
        body: &bytes,
    });
    assert!(verdict.attack, "{verdict:?}");
}

#[test]
fn a_value_seen_before_gets_the_same_verdict_as_the_first_time() {
    let engine = engine();
    let fresh = || Engine::new(Config::default()).unwrap();
    let requests: Vec<String> = [
        "x' UNION SELECT password FROM users--",
        "<script>alert(1)</script>",
        "; cat /etc/passwd",
        "O'Brien",
        "김하늘 (구름은행)",
        "../../etc/shadow",
        "plain memo",
    ]
    .iter()
    .map(|v| {
        format!(
            r#"[{{"memo": {}, "code": 1}}]"#,
            serde_json::to_string(v).unwrap()
        )
    })
    .collect();
    let verdicts = |engine: &Engine| -> Vec<Verdict> {
        requests
            .iter()
            .map(|body| json_post(engine, "/v1/ledger/transfers", body))
            .collect()
    };
    let first = verdicts(&engine);
    assert_eq!(first, verdicts(&fresh()));
    // Again (now remembered), and after the memo filled up and started over.
    assert_eq!(verdicts(&engine), first);
    for n in 0..5000 {
        json_post(&engine, "/v1/x", &format!(r#"{{"k{n}": "v{n}"}}"#));
    }
    assert_eq!(verdicts(&engine), first);
    assert!(first[0].blocked && first[1].blocked && !first[3].attack && !first[6].attack);
}
