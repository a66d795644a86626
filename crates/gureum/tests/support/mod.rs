//! Starting and stopping a real `gureum up` or `gureum serve` for end-to-end tests.

#![allow(dead_code)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// The binary under test.
pub fn gureum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gureum"))
}

/// The customer a test's `customer` key belongs to (unless it says otherwise).
pub const TEST_CUSTOMER: &str = "customer-under-test";

/// A running `gureum up`.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// The bootstrap admin key `gureum up` wrote to its data folder (empty for other
    /// servers).
    pub key: String,
}

impl Server {
    /// Starts `gureum up` on a free port over `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// Starts `gureum up` with `args` besides the listen address and data folder.
    pub fn start_with(data_dir: &Path, args: &[&std::ffi::OsStr]) -> Server {
        let child = gureum()
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("GUREUM_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("gureum up starts");
        Server::wait_listening(child).with_key_from(data_dir)
    }

    /// Reads the bootstrap admin key `gureum up` wrote before it began to listen.
    fn with_key_from(mut self, data_dir: &Path) -> Server {
        let key = std::fs::read_to_string(data_dir.join("admin.key")).expect("admin.key written");
        self.key = key.trim().to_owned();
        self
    }

    /// An async HTTP client sending the admin key.
    pub fn client(&self) -> ::reqwest::Client {
        client_with_key(&self.key)
    }

    /// A blocking JSON client for this server, sending the admin key.
    pub fn http(&self) -> Http {
        self.http_as(&self.key)
    }

    /// A blocking JSON client for this server, sending `key`.
    pub fn http_as(&self, key: &str) -> Http {
        Http {
            client: client_with_key(key),
            ..Http::new(&self.url)
        }
    }

    /// A new API key with `roles`, made with the admin key (a `customer` key belongs to
    /// customer [`TEST_CUSTOMER`]).
    pub fn key_for(&self, roles: &[&str]) -> String {
        let mut request =
            serde_json::json!({"name": format!("test {}", roles.join("+")), "roles": roles});
        if roles == ["customer"] {
            request["customer"] = TEST_CUSTOMER.into();
        }
        self.key_with(request)
    }

    /// A new API key as `request` describes it, made with the admin key.
    pub fn key_with(&self, request: serde_json::Value) -> String {
        let (status, made) = self.http().call(
            ::reqwest::Method::POST,
            "/v1/auth/api-keys",
            &[],
            Some(request),
        );
        assert_eq!(status, 201, "{made}");
        made["key"].as_str().unwrap().to_owned()
    }

    /// Starts `gureum serve <service> --config <config>` and waits until it listens.
    pub fn serve(service: &str, config: &Path) -> Server {
        let child = gureum()
            .args(["serve", service, "--config"])
            .arg(config)
            .env("GUREUM_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("gureum serve starts");
        Server::wait_listening(child)
    }

    /// Starts `gureum up` whose files may not grow past `kib` KiB (`ulimit -f`, with SIGXFSZ
    /// ignored so a write past it fails with EFBIG instead of killing the process): a disk that
    /// fills up, on demand.
    pub fn start_with_file_size_limit(data_dir: &Path, kib: u32) -> Server {
        let script = format!(
            "trap '' XFSZ; ulimit -f {kib}; exec \"$0\" up --listen 127.0.0.1:0 --data-dir \"$1\""
        );
        let child = Command::new("bash")
            .args(["-c", &script, env!("CARGO_BIN_EXE_gureum")])
            .arg(data_dir)
            .env("GUREUM_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .expect("bash starts gureum up");
        Server::wait_listening(child).with_key_from(data_dir)
    }

    /// Reads the child's first line, `gureum listening on URL`.
    fn wait_listening(mut child: Child) -> Server {
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("gureum listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server {
            child,
            url,
            key: String::new(),
        }
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        std::mem::forget(self);
        exit
    }

    /// SIGKILL: a crash.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::forget(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `gureum ledger …` against `server`, with its admin key.
pub fn ledger_cli(server: &Server, args: &[&str]) -> Output {
    gureum()
        .arg("ledger")
        .args(args)
        .args(["--server", &server.url])
        .env("GUREUM_API_KEY", &server.key)
        .output()
        .unwrap()
}

/// An async HTTP client sending `key` as a bearer credential.
pub fn client_with_key(key: &str) -> ::reqwest::Client {
    let mut headers = ::reqwest::header::HeaderMap::new();
    headers.insert(
        ::reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    ::reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Whether the server at `url` answers `/readyz` with 200.
pub async fn ready(http: &::reqwest::Client, url: &str) -> bool {
    http.get(format!("{url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Waits until `url` is ready; returns how long it took. Panics after `limit`.
pub async fn wait_ready(
    http: &::reqwest::Client,
    url: &str,
    limit: std::time::Duration,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    while !ready(http, url).await {
        assert!(started.elapsed() < limit, "{url} not ready after {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// GETs `url` and parses the JSON answer.
pub async fn get_json(http: &::reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Minimal blocking GET for tests that do not run an async runtime.
pub mod reqwest {
    /// GETs `url` and returns the body as text.
    pub fn blocking_get(url: &str) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async { ::reqwest::get(url).await.unwrap().text().await.unwrap() })
    }
}

/// The messages on a `gureum up` data folder's embedded bus, in order: (subject, message id,
/// payload), waiting up to five seconds for at least `at_least` of them.
pub fn bus_messages(data_dir: &Path, at_least: usize) -> Vec<(String, String, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bus = data_dir.join("bus.sqlite");
    let read = || {
        runtime.block_on(async {
            let store = store::Store::open(&store::SqlConfig::Sqlite { path: bus.clone() })
                .await
                .unwrap();
            let rows: Vec<(String, String, String)> =
                sqlx::query_as("SELECT subject, msg_id, payload FROM bus_messages ORDER BY seq")
                    .fetch_all(store.reader())
                    .await
                    .unwrap();
            store.close().await;
            rows
        })
    };
    let mut messages = Vec::new();
    for _ in 0..50 {
        messages = read();
        if messages.len() >= at_least {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    messages
}

/// Clients for a `gureum up` by role: each role's key is made (with the admin key) the first
/// time it is asked for.
pub struct Staff<'a> {
    server: &'a Server,
    clients: std::cell::RefCell<std::collections::HashMap<String, std::rc::Rc<Http>>>,
}

impl<'a> Staff<'a> {
    /// No keys yet.
    pub fn new(server: &'a Server) -> Staff<'a> {
        Staff {
            server,
            clients: Default::default(),
        }
    }

    /// A client whose key has `roles` (comma-separated; `admin` is the bootstrap key).
    pub fn client(&self, roles: &str) -> std::rc::Rc<Http> {
        let mut clients = self.clients.borrow_mut();
        clients
            .entry(roles.to_owned())
            .or_insert_with(|| {
                let key = if roles == "admin" {
                    self.server.key.clone()
                } else {
                    let roles: Vec<&str> = roles.split(',').collect();
                    self.server.key_for(&roles)
                };
                std::rc::Rc::new(self.server.http_as(&key))
            })
            .clone()
    }

    /// Sends a request as a holder of `roles`; returns the status and the JSON answer.
    pub fn call(
        &self,
        roles: &str,
        method: ::reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.client(roles).call(method, path, &[], body)
    }
}

/// A blocking JSON client for end-to-end tests that do not run an async runtime.
pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: ::reqwest::Client,
    base: String,
}

impl Http {
    /// A client for the server at `base`.
    pub fn new(base: &str) -> Http {
        Http {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: ::reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    /// Sends a request with these headers and JSON body; returns the status and the JSON
    /// answer (`null` for an empty one).
    pub fn call(
        &self,
        method: ::reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let value = if text.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            };
            (status, value)
        })
    }

    /// Sends a request without a body; returns the status, the headers and the body.
    pub fn raw(
        &self,
        method: ::reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, ::reqwest::header::HeaderMap, Vec<u8>) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap().to_vec();
            (status, headers, body)
        })
    }

    /// GETs `path`; returns the status, the headers and the body as bytes.
    pub fn get_raw(&self, path: &str) -> (u16, ::reqwest::header::HeaderMap, Vec<u8>) {
        self.raw(::reqwest::Method::GET, path, &[])
    }
}

/// A customer `name` with registration number `rrn`, created and verified (KYC) with `http`;
/// their id.
pub fn verified_customer(http: &Http, name: &str, rrn: &str) -> String {
    let (status, c) = http.call(
        ::reqwest::Method::POST,
        "/v1/customers",
        &[],
        Some(serde_json::json!({"name": name, "rrn": rrn})),
    );
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    let (status, _) = http.call(
        ::reqwest::Method::POST,
        &format!("/v1/customers/{id}/kyc"),
        &[],
        Some(serde_json::json!({"status": "verified", "reason": "mobile ID"})),
    );
    assert_eq!(status, 200);
    id
}

/// Creates and publishes `DEP-FREE`, a demand deposit (2% a year, verified customers of 19 or
/// more), in force from today.
pub fn publish_demand_deposit(http: &Http) {
    let today = store::sql::today_kst().to_string();
    let (status, _) = http.call(
        ::reqwest::Method::POST,
        "/v1/products",
        &[],
        Some(serde_json::json!({"code": "DEP-FREE", "kind": "demand_deposit", "name": "구름 통장", "effective_from": today,
                    "terms": {"currency": "KRW", "rates": {"base": "0.015", "spread": "0.005"},
                              "amount": {"min": "1", "max": "1000000000000"},
                              "eligibility": {"min_age": 19, "kyc_verified": true}}})),
    );
    assert_eq!(status, 201);
    let (status, _) = http.call(
        ::reqwest::Method::POST,
        "/v1/products/DEP-FREE/versions/1/publish",
        &[],
        None,
    );
    assert_eq!(status, 200);
}
