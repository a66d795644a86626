//! The Gureum binary: runs the platform, talks to it, and measures it.
//!
//! - `gureum up`: every service in one process on embedded storage.
//! - `gureum serve <service> --config FILE`: one service per process (scale-out shape).
//! - `gureum cluster up`: that shape on one machine, supervised, the edge in front.
//! - `gureum ledger …`: a client for the ledger API, and `verify` for a data folder.
//! - `gureum keys …`: the vault's master keys (status, rotate, retire).
//! - `gureum eod --date D`: end of day (deposit interest accrual and posting).
//! - `gureum waf eval --corpus FILE`: the web application firewall's rates on a corpus.
//! - `gureum routes`: the edge's route table (what each route needs, which roles may).
//! - `gureum audit verify|export`: the audit trail's hash chain checked, or written as JSONL.
//! - `gureum bench ledger …`: the ledger benchmark; `gureum bench eod …`: lending's end of day;
//!   `gureum bench waf`: the firewall's inspection time.

mod audit_cli;
mod bench;
mod bench_eod;
mod client;
mod cluster;
mod credentials;
mod edge;
mod eod;
mod keys;
mod provision;
mod serve;
mod server;
mod services;
mod tls;
mod waf_cli;

/// mimalloc instead of glibc's allocator: under many threads glibc's spent a fifth of the
/// server's time in `malloc`/`free` and their arena consolidation (profiled with 64 clients).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Gureum (구름): cloud-native core banking.
#[derive(Parser)]
#[command(name = "gureum", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process on embedded storage (a data folder).
    Up(server::UpArgs),
    /// Run one service in its own process (the scale-out shape), configured by a TOML file.
    Serve(serve::ServeArgs),
    /// The split shape on one machine: every service its own process, the edge in front.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Work with the ledger: accounts, transfers, history; verify a data folder.
    Ledger(client::LedgerArgs),
    /// Manage the vault's master keys: status, rotate, retire.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// End of day for a business date: interest accrual and month-end posting.
    Eod(eod::EodArgs),
    /// Prepare infrastructure for the split shape (a PostgreSQL role and schema per service).
    Provision {
        #[command(subcommand)]
        command: provision::ProvisionCommand,
    },
    /// The web application firewall: replay attack and benign corpora through it.
    Waf {
        #[command(subcommand)]
        command: waf_cli::WafCommand,
    },
    /// Print the edge's route table: what every route needs and which roles may (Markdown).
    Routes,
    /// The audit trail: verify its hash chain, export it as JSON Lines.
    Audit {
        #[command(subcommand)]
        command: audit_cli::AuditCommand,
    },
    /// Measure Gureum.
    Bench {
        #[command(subcommand)]
        target: BenchTarget,
    },
}

#[derive(Subcommand)]
enum BenchTarget {
    /// The ledger: transfers per second and batch latency, durable (fsync on).
    Ledger(bench::LedgerBenchArgs),
    /// Lending's end of day over a loan portfolio, posted to the ledger (loans kept in memory).
    Eod(bench_eod::EodBenchArgs),
    /// The web application firewall: inspection time of a typical 2 KiB JSON request.
    Waf(waf_cli::WafBenchArgs),
}

fn main() -> ExitCode {
    // One crypto provider for every TLS connection, in and out (installed once, before any).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => server::up(args),
        Command::Serve(args) => serve::serve(args),
        Command::Cluster { command } => cluster::run(command),
        Command::Provision { command } => provision::run(command),
        Command::Keys { command } => keys::run(command),
        Command::Ledger(args) => client::run(args),
        Command::Eod(args) => eod::run(args),
        Command::Waf { command } => waf_cli::run(command),
        Command::Audit { command } => audit_cli::run(command),
        Command::Routes => {
            print!("{}", ::edge::access::render_markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            target: BenchTarget::Ledger(args),
        } => bench::ledger(args),
        Command::Bench {
            target: BenchTarget::Eod(args),
        } => bench_eod::eod(args),
        Command::Bench {
            target: BenchTarget::Waf(args),
        } => waf_cli::bench(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The default data folder of `gureum up`.
pub const DEFAULT_DATA_DIR: &str = "./gureum-data";

/// The default listen address of `gureum up`.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// Errors the commands report to the user.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The data folder argument, shared by commands that work on one.
#[derive(clap::Args, Clone)]
pub struct DataDir {
    /// The data folder.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}
