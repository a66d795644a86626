//! `gureum cluster up`: the split shape on one machine. Each service runs as its own
//! `gureum serve` process on a 127.0.0.1 port, against the local NATS JetStream, with the edge
//! in front answering at `--listen` exactly as `gureum up` does:
//!
//! - `ledger-a` and `ledger-b`: the ledger on a replicated journal (one leads, one stands by);
//! - `customers`: on the local PostgreSQL — a database of its own (`--postgres-url`, created
//!   if missing), the role `gureum_customers` owning the schema `customers` (provisioned at
//!   start, its password kept in `DATA_DIR/secrets/`), the vault keyring in `DATA_DIR/keys/`,
//!   events on NATS;
//! - `products`: the catalogue, the same way (role `gureum_products`, schema `products`);
//! - `edge`: the gate (API keys in `DATA_DIR/edge/edge.sqlite`, the bootstrap admin key in
//!   `DATA_DIR/edge/admin.key`), then routes `/v1/…` to the node that serves; the services
//!   call each other through it with a service key the launcher makes for the run;
//! - `deposits`: deposit accounts (role `gureum_deposits`, schema `deposits`), reaching the
//!   ledger, customers and products through the edge;
//! - `contracts`: contract documents (role `gureum_contracts`; the documents in
//!   `DATA_DIR/objects/contracts`, standing in for S3), customers and products through the edge;
//! - `lending`: credit evaluations, applications and loans (role `gureum_lending`, its keyring
//!   in `DATA_DIR/keys/lending.toml`), reaching customers, products, contracts, deposits and
//!   the ledger through the edge.
//!
//! The launcher supervises them: a process that dies is started again (a killed ledger leader
//! comes back as the new standby). SIGINT or SIGTERM stops them all; they are in the
//! launcher's process group, and each also gets SIGTERM if the launcher itself dies.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::Error;

/// The key the services of this run send the edge (random, per launcher run, in memory).
static SERVICE_KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// The secret the edge signs caller headers with and the services check (see
/// `kernel::caller_key`): the services listen on local ports anyone on the machine can reach.
static CALLER_KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How often the launcher checks its processes.
const SUPERVISE_EVERY: Duration = Duration::from_millis(200);
/// How long a process may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long processes get to stop after SIGTERM before they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Restarts of one process allowed within [`RESTART_WINDOW`] before the launcher gives up.
const RESTARTS_MAX: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Arguments of `gureum cluster up`.
#[derive(clap::Args)]
pub struct ClusterUpArgs {
    /// Where the processes' configuration files go (created if missing).
    #[arg(long, default_value = "./gureum-cluster")]
    data_dir: PathBuf,
    /// The address the edge serves on.
    #[arg(long, default_value_t = crate::default_listen())]
    listen: SocketAddr,
    /// NATS with JetStream (comma-separated servers).
    #[arg(long, default_value = "nats://127.0.0.1:4222", env = "GUREUM_NATS_URL")]
    nats_url: String,
    /// JetStream replicas of the ledger's journal (3 needs a 3-node NATS cluster).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// PostgreSQL, as an administrator, with the database the services use (created if
    /// missing; each service gets its own role and schema in it).
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/gureum",
        env = "GUREUM_ADMIN_POSTGRES_URL"
    )]
    postgres_url: String,
}

/// `gureum cluster …`.
#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Start the local multi-process deployment and supervise it until SIGINT/SIGTERM.
    Up(ClusterUpArgs),
}

/// One supervised process.
struct Process {
    name: &'static str,
    service: &'static str,
    config: PathBuf,
    child: Child,
    url: String,
    restarts: Vec<Instant>,
}

/// Runs `gureum cluster up`.
pub fn run(command: ClusterCommand) -> Result<ExitCode, Error> {
    let ClusterCommand::Up(args) = command;
    crate::server::init_tracing();
    std::fs::create_dir_all(&args.data_dir)?;
    let ports = [free_port()?, free_port()?];
    let ledger_urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut processes = Vec::new();
    for (name, port) in [("ledger-a", ports[0]), ("ledger-b", ports[1])] {
        let config = write_config(
            &args.data_dir,
            name,
            &format!(
                "listen = \"127.0.0.1:{port}\"\n\n[ledger]\njournal = \"jetstream\"\nnats_url = \"{}\"\n\
                 replicas = {}\nlease_ttl_ms = 2000\nnode = \"{name}\"\ndata_dir = \"{}\"\n\
                 snapshot_after_mib = 64\n\n[objects]\nkind = \"local\"\nroot = \"{}\"\n",
                args.nats_url,
                args.replicas,
                args.data_dir.join(name).display(),
                args.data_dir.join("objects").display()
            ),
        )?;
        processes.push(start(name, "ledger", config)?);
    }
    let customers = start(
        "customers",
        "customers",
        sql_service_config(&args, customers::SERVICE, free_port()?, "")?,
    )?;
    let customers_url = customers.url.clone();
    processes.push(customers);
    let products = start(
        "products",
        "products",
        sql_service_config(&args, products::SERVICE, free_port()?, "")?,
    )?;
    let products_url = products.url.clone();
    processes.push(products);
    let deposits_port = free_port()?;
    let contracts_port = free_port()?;
    let lending_port = free_port()?;
    let edge_config = write_config(
        &args.data_dir,
        "edge",
        &format!(
            "listen = \"{}\"\n\n[edge]\nledger = [{}]\ncustomers = [\"{customers_url}\"]\n\
             products = [\"{products_url}\"]\ndeposits = [\"http://127.0.0.1:{deposits_port}\"]\n\
             contracts = [\"http://127.0.0.1:{contracts_port}\"]\n\
             lending = [\"http://127.0.0.1:{lending_port}\"]\ndata_dir = \"{}\"\n",
            args.listen,
            ledger_urls
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", "),
            args.data_dir.join("edge").display()
        ),
    )?;
    let edge = start("edge", "edge", edge_config)?;
    // Deposits reaches the ledger, customers and products through the edge.
    let deposits = start(
        "deposits",
        "deposits",
        sql_service_config(
            &args,
            deposits::SERVICE,
            deposits_port,
            &format!("[upstream]\nurl = \"{}\"\n\n", edge.url),
        )?,
    )?;
    let contracts = start(
        "contracts",
        "contracts",
        sql_service_config(
            &args,
            contracts::SERVICE,
            contracts_port,
            &format!(
                "[upstream]\nurl = \"{}\"\n\n[objects]\nkind = \"local\"\nroot = \"{}\"\n\n",
                edge.url,
                args.data_dir.join("objects").join("contracts").display()
            ),
        )?,
    )?;
    let lending = start(
        "lending",
        "lending",
        sql_service_config(
            &args,
            lending::SERVICE,
            lending_port,
            &format!("[upstream]\nurl = \"{}\"\n\n", edge.url),
        )?,
    )?;
    // Scripts and tests wait for this line, as with `gureum up`.
    println!("gureum listening on {}", edge.url);
    processes.push(edge);
    processes.push(deposits);
    processes.push(contracts);
    processes.push(lending);
    for p in &processes {
        eprintln!("  {:<9} pid {:<7} {}", p.name, p.child.id(), p.url);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let flag = stop.clone();
    std::thread::spawn(move || {
        runtime.block_on(crate::server::shutdown_signal());
        flag.store(true, Ordering::Relaxed);
    });
    let outcome = supervise(&mut processes, &stop);
    stop_all(&mut processes);
    outcome
}

fn supervise(processes: &mut [Process], stop: &AtomicBool) -> Result<ExitCode, Error> {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(SUPERVISE_EVERY);
        for p in processes.iter_mut() {
            let Some(status) = p.child.try_wait()? else {
                continue;
            };
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let now = Instant::now();
            p.restarts
                .retain(|at| now.duration_since(*at) < RESTART_WINDOW);
            if p.restarts.len() >= RESTARTS_MAX {
                return Err(format!(
                    "{} exited ({status}) {RESTARTS_MAX} times within a minute; stopping",
                    p.name
                )
                .into());
            }
            tracing::warn!(process = p.name, %status, "exited; starting it again");
            let again = start(p.name, p.service, p.config.clone())?;
            p.child = again.child;
            p.restarts.push(now);
        }
    }
    tracing::info!("stopping every process");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM to each, then SIGKILL to whatever has not stopped in time.
fn stop_all(processes: &mut [Process]) {
    for p in processes.iter() {
        // SAFETY: kill(2) on a child's pid we still own (not yet reaped).
        unsafe { libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM) };
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for p in processes.iter_mut() {
        while p.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = p.child.kill();
                let _ = p.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Provisions a SQL service on PostgreSQL and writes its configuration (mode 0600: it holds
/// the role's password). The password is made once per data folder and kept; the customers
/// service also gets the vault keyring.
fn sql_service_config(
    args: &ClusterUpArgs,
    service: &'static str,
    port: u16,
    extra: &str,
) -> Result<PathBuf, Error> {
    let secret = args
        .data_dir
        .join("secrets")
        .join(format!("postgres-{service}.password"));
    let password = match std::fs::read_to_string(&secret) {
        Ok(text) => text.trim().to_owned(),
        Err(_) => {
            let password = customers::vault::random_password();
            write_private(&secret, &password)?;
            password
        }
    };
    // Customers and lending each seal with a keyring of their own.
    let keyring = match service {
        customers::SERVICE => Some(crate::services::KEYRING_FILE),
        lending::SERVICE => Some(crate::services::LENDING_KEYRING_FILE),
        _ => None,
    };
    let vault = match keyring {
        Some(file) => {
            let keyring = args.data_dir.join(file);
            customers::vault::FileKeyring::open_or_create(
                &keyring,
                &crate::services::now_rfc3339(),
            )?;
            format!("[vault]\nkeyring = \"{}\"\n\n", keyring.display())
        }
        None => String::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sql = runtime.block_on(async {
        store::sql::ensure_postgres_database(&args.postgres_url).await?;
        store::sql::provision_postgres(&args.postgres_url, service, &password).await
    })?;
    let store::SqlConfig::Postgres { url, schema } = sql else {
        return Err("provisioning returned a non-PostgreSQL configuration".into());
    };
    let text = format!(
        "listen = \"127.0.0.1:{}\"\n\n[database]\nurl = \"{url}\"\nschema = \"{schema}\"\n\n\
         {vault}{extra}[bus]\nnats_url = \"{}\"\nreplicas = {}\n",
        port, args.nats_url, args.replicas,
    );
    let path = args.data_dir.join(format!("{service}.toml"));
    write_private(&path, &text)?;
    Ok(path)
}

/// Writes a file only its owner can read, in a folder made if missing.
fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn write_config(dir: &Path, name: &str, text: &str) -> Result<PathBuf, Error> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `gureum serve <service> --config <config>` and waits for its listening line.
fn start(name: &'static str, service: &'static str, config: PathBuf) -> Result<Process, Error> {
    let mut command = Command::new(std::env::current_exe()?);
    // The services reach each other through the edge with this run's service key.
    let service_key = SERVICE_KEY.get_or_init(customers::vault::random_password);
    command
        .args(["serve", service, "--config"])
        .arg(&config)
        .env("GUREUM_SERVICE_KEY", service_key)
        .env("GUREUM_API_KEY", service_key)
        .env(
            kernel::caller_key::CALLER_KEY_ENV,
            CALLER_KEY.get_or_init(customers::vault::random_password),
        )
        .stdout(Stdio::piped());
    // SAFETY: prctl(2) in the child between fork and exec only sets its parent-death signal:
    // if the launcher dies, even by SIGKILL, the child gets SIGTERM and stops.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads the listening line, then keeps draining the child's stdout to ours.
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = tx.send(first);
        for line in lines.map_while(Result::ok) {
            eprintln!("[{name}] {line}");
        }
    });
    let line = rx
        .recv_timeout(START_TIMEOUT)
        .map_err(|_| format!("{name} did not start listening within {START_TIMEOUT:?}"))?;
    let url = line
        .strip_prefix("gureum listening on ")
        .ok_or_else(|| format!("{name} did not start (see its errors above)"))?
        .to_owned();
    Ok(Process {
        name,
        service,
        config,
        child,
        url,
        restarts: Vec::new(),
    })
}
