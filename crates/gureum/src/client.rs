//! `gureum ledger …`: a command-line client for the ledger API, and `verify`.

use crate::Error;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `gureum ledger`.
#[derive(Args)]
pub struct LedgerArgs {
    /// The Gureum server.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "GUREUM_SERVER"
    )]
    server: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// How to authenticate.
    #[command(flatten)]
    credentials: crate::credentials::Credentials,
    #[command(subcommand)]
    command: LedgerCommand,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Create one account.
    CreateAccount {
        /// Decimal account id.
        #[arg(long)]
        id: String,
        /// Ledger (currency) number.
        #[arg(long)]
        ledger: u32,
        /// Account code.
        #[arg(long)]
        code: u16,
        /// Comma-separated flag names (e.g. history,debits_must_not_exceed_credits).
        #[arg(long, value_delimiter = ',')]
        flags: Vec<String>,
        /// Decimal user_data_128.
        #[arg(long)]
        user_data_128: Option<String>,
        /// Metadata as a JSON object.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Submit one transfer.
    Transfer {
        /// Decimal transfer id.
        #[arg(long)]
        id: String,
        /// Decimal debit account id (omit for a post or void).
        #[arg(long)]
        debit: Option<String>,
        /// Decimal credit account id (omit for a post or void).
        #[arg(long)]
        credit: Option<String>,
        /// Decimal amount in minor units.
        #[arg(long)]
        amount: Option<String>,
        /// Ledger number (omit for a post or void).
        #[arg(long)]
        ledger: Option<u32>,
        /// Transfer code (omit for a post or void).
        #[arg(long)]
        code: Option<u16>,
        /// Comma-separated flag names (e.g. pending, post_pending_transfer).
        #[arg(long, value_delimiter = ',')]
        flags: Vec<String>,
        /// The pending transfer a post or void settles.
        #[arg(long)]
        pending_id: Option<String>,
        /// Seconds until a pending transfer expires.
        #[arg(long)]
        timeout: Option<u32>,
        /// Metadata as a JSON object.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Submit accounts or transfers from a JSONL file (one JSON object a line), in batches.
    Submit {
        /// What the file holds.
        #[arg(value_enum)]
        kind: Kind,
        /// The JSONL file (`-` for standard input).
        #[arg(long)]
        file: PathBuf,
        /// Events per request (1 to 8190).
        #[arg(long, default_value_t = 8190)]
        batch: usize,
    },
    /// Show an account and its balances.
    Account {
        /// Decimal account id.
        id: String,
    },
    /// Show a transfer.
    GetTransfer {
        /// Decimal transfer id.
        id: String,
    },
    /// List the transfers touching an account.
    History {
        /// Decimal account id.
        id: String,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Cursor from a previous page.
        #[arg(long)]
        after: Option<String>,
        /// Newest first.
        #[arg(long)]
        reverse: bool,
    },
    /// List an account's balance after each change (accounts flagged `history`).
    Balances {
        /// Decimal account id.
        id: String,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Cursor from a previous page.
        #[arg(long)]
        after: Option<String>,
        /// Newest first.
        #[arg(long)]
        reverse: bool,
    },
    /// Check a data folder offline: the journal's checksums and hash chain, a full replay, the
    /// books' balance, and that the snapshot equals the replayed state.
    Verify {
        /// The data folder.
        #[arg(long, default_value = crate::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum Kind {
    Accounts,
    Transfers,
}

/// Runs a `gureum ledger` command.
pub fn run(args: LedgerArgs) -> Result<ExitCode, Error> {
    if let LedgerCommand::Verify { data_dir } = &args.command {
        return verify(data_dir, args.json);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_remote(args))
}

fn metadata(text: &Option<String>) -> Result<Option<Value>, Error> {
    match text {
        None => Ok(None),
        Some(t) => Ok(Some(
            serde_json::from_str(t).map_err(|e| format!("--metadata is not JSON: {e}"))?,
        )),
    }
}

fn insert_some(object: &mut Value, key: &str, value: Option<Value>) {
    if let (Some(v), Value::Object(map)) = (value, object) {
        map.insert(key.to_owned(), v);
    }
}

async fn run_remote(args: LedgerArgs) -> Result<ExitCode, Error> {
    let client = Client {
        http: args.credentials.client()?,
        server: args.server.trim_end_matches('/').to_owned(),
    };
    let json = args.json;
    match args.command {
        LedgerCommand::CreateAccount {
            id,
            ledger,
            code,
            flags,
            user_data_128,
            metadata: meta,
        } => {
            let mut account = json!({"id": id, "ledger": ledger, "code": code, "flags": flags});
            insert_some(
                &mut account,
                "user_data_128",
                user_data_128.map(Value::String),
            );
            insert_some(&mut account, "metadata", metadata(&meta)?);
            let results = client
                .post("/v1/ledger/accounts", &Value::Array(vec![account]))
                .await?;
            print_results(&results, json)
        }
        LedgerCommand::Transfer {
            id,
            debit,
            credit,
            amount,
            ledger,
            code,
            flags,
            pending_id,
            timeout,
            metadata: meta,
        } => {
            let mut transfer = json!({"id": id, "flags": flags});
            insert_some(&mut transfer, "debit_account_id", debit.map(Value::String));
            insert_some(
                &mut transfer,
                "credit_account_id",
                credit.map(Value::String),
            );
            insert_some(&mut transfer, "amount", amount.map(Value::String));
            insert_some(&mut transfer, "ledger", ledger.map(Value::from));
            insert_some(&mut transfer, "code", code.map(Value::from));
            insert_some(&mut transfer, "pending_id", pending_id.map(Value::String));
            insert_some(&mut transfer, "timeout", timeout.map(Value::from));
            insert_some(&mut transfer, "metadata", metadata(&meta)?);
            let results = client
                .post("/v1/ledger/transfers", &Value::Array(vec![transfer]))
                .await?;
            print_results(&results, json)
        }
        LedgerCommand::Submit { kind, file, batch } => {
            submit(&client, kind, &file, batch, json).await
        }
        LedgerCommand::Account { id } => {
            let account = client.get(&format!("/v1/ledger/accounts/{id}")).await?;
            print_objects(&[account], ACCOUNT_COLUMNS, json);
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::GetTransfer { id } => {
            let transfer = client.get(&format!("/v1/ledger/transfers/{id}")).await?;
            print_objects(&[transfer], TRANSFER_COLUMNS, json);
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::History {
            id,
            limit,
            after,
            reverse,
        } => {
            let path = page_path(
                &format!("/v1/ledger/accounts/{id}/transfers"),
                limit,
                after,
                reverse,
            );
            let page = client.get(&path).await?;
            print_page(&page, "transfers", TRANSFER_COLUMNS, json);
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Balances {
            id,
            limit,
            after,
            reverse,
        } => {
            let path = page_path(
                &format!("/v1/ledger/accounts/{id}/balances"),
                limit,
                after,
                reverse,
            );
            let page = client.get(&path).await?;
            print_page(&page, "balances", BALANCE_COLUMNS, json);
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Verify { .. } => unreachable!("handled before the runtime starts"),
    }
}

fn page_path(base: &str, limit: u32, after: Option<String>, reverse: bool) -> String {
    let mut path = format!("{base}?limit={limit}&reverse={reverse}");
    if let Some(after) = after {
        path.push_str(&format!("&after={after}"));
    }
    path
}

struct Client {
    http: reqwest::Client,
    server: String,
}

/// Why `server` could not be reached, with every cause (a refused connection, a certificate
/// the system does not trust — `SSL_CERT_FILE` names a private CA's — …): reqwest's own message
/// says only that sending failed.
pub fn unreachable(server: &str, error: &reqwest::Error) -> String {
    let mut message = format!("cannot reach {server}: {error}");
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        message.push_str(&format!(": {e}"));
        cause = e.source();
    }
    message
}

impl Client {
    async fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        let response = self
            .http
            .post(format!("{}{path}", self.server))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body)?)
            .send()
            .await
            .map_err(|e| unreachable(&self.server, &e))?;
        answer(response).await
    }

    async fn get(&self, path: &str) -> Result<Value, Error> {
        let response = self
            .http
            .get(format!("{}{path}", self.server))
            .send()
            .await
            .map_err(|e| unreachable(&self.server, &e))?;
        answer(response).await
    }
}

/// The body of a success, or the problem's title and detail as the error.
async fn answer(response: reqwest::Response) -> Result<Value, Error> {
    let status = response.status();
    let body: Value = serde_json::from_slice(&response.bytes().await?)
        .map_err(|e| format!("the server answered {status} with a body that is not JSON: {e}"))?;
    if status.is_success() {
        return Ok(body);
    }
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Err(format!(
        "{status}: {} ({}): {}",
        field("title"),
        field("code"),
        field("detail")
    )
    .into())
}

async fn submit(
    client: &Client,
    kind: Kind,
    file: &PathBuf,
    batch: usize,
    json: bool,
) -> Result<ExitCode, Error> {
    if batch == 0 || batch > ledger::BATCH_EVENTS_MAX {
        return Err(format!("--batch must be between 1 and {}", ledger::BATCH_EVENTS_MAX).into());
    }
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file)
                .map_err(|e| format!("cannot open {}: {e}", file.display()))?,
        ))
    };
    let path = match kind {
        Kind::Accounts => "/v1/ledger/accounts",
        Kind::Transfers => "/v1/ledger/transfers",
    };
    let mut pending: Vec<Value> = Vec::new();
    let mut all: Vec<Value> = Vec::new();
    let mut line_number = 0usize;
    let mut lines = reader.lines();
    loop {
        let line = lines.next().transpose()?;
        if let Some(line) = &line {
            line_number += 1;
            if !line.trim().is_empty() {
                pending.push(
                    serde_json::from_str(line)
                        .map_err(|e| format!("{}:{line_number}: not JSON: {e}", file.display()))?,
                );
            }
        }
        if pending.len() == batch || (line.is_none() && !pending.is_empty()) {
            let offset = all.len();
            let results = client
                .post(path, &Value::Array(std::mem::take(&mut pending)))
                .await?;
            for mut r in results.as_array().cloned().unwrap_or_default() {
                if let Some(i) = r.get("index").and_then(Value::as_u64) {
                    r["index"] = Value::from(i + offset as u64);
                }
                all.push(r);
            }
        }
        if line.is_none() {
            break;
        }
    }
    print_results(&Value::Array(all), json)
}

/// Prints per-event results; fails (exit 1) unless every one is `ok` or `exists`.
fn print_results(results: &Value, json: bool) -> Result<ExitCode, Error> {
    let items = results.as_array().cloned().unwrap_or_default();
    let accepted = |r: &Value| {
        matches!(
            r.get("result").and_then(Value::as_str),
            Some("ok" | "exists")
        )
    };
    if json {
        println!("{results}");
    } else {
        print_table(&items, &[("index", "INDEX"), ("result", "RESULT")]);
        let ok = items.iter().filter(|r| accepted(r)).count();
        println!("{ok} of {} accepted", items.len());
    }
    Ok(if items.iter().all(accepted) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

const ACCOUNT_COLUMNS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("ledger", "LEDGER"),
    ("code", "CODE"),
    ("flags", "FLAGS"),
    ("debits_pending", "DEBITS_PENDING"),
    ("debits_posted", "DEBITS_POSTED"),
    ("credits_pending", "CREDITS_PENDING"),
    ("credits_posted", "CREDITS_POSTED"),
    ("timestamp", "TIMESTAMP"),
];

const TRANSFER_COLUMNS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("debit_account_id", "DEBIT"),
    ("credit_account_id", "CREDIT"),
    ("amount", "AMOUNT"),
    ("ledger", "LEDGER"),
    ("code", "CODE"),
    ("flags", "FLAGS"),
    ("pending_id", "PENDING_ID"),
    ("pending_status", "STATUS"),
    ("timestamp", "TIMESTAMP"),
];

const BALANCE_COLUMNS: &[(&str, &str)] = &[
    ("timestamp", "TIMESTAMP"),
    ("transfer_id", "TRANSFER"),
    ("debits_pending", "DEBITS_PENDING"),
    ("debits_posted", "DEBITS_POSTED"),
    ("credits_pending", "CREDITS_PENDING"),
    ("credits_posted", "CREDITS_POSTED"),
];

fn print_objects(items: &[Value], columns: &[(&str, &str)], json: bool) {
    if json {
        for item in items {
            println!("{item}");
        }
    } else {
        print_table(items, columns);
    }
}

fn print_page(page: &Value, key: &str, columns: &[(&str, &str)], json: bool) {
    if json {
        println!("{page}");
        return;
    }
    let items = page
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    print_table(&items, columns);
    match page.get("next").and_then(Value::as_str) {
        Some(next) => println!("more: --after {next}"),
        None => println!("({} shown, no more)", items.len()),
    }
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".into(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

fn print_table(items: &[Value], columns: &[(&str, &str)]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(key, _)| cell(item.get(*key)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, title))| {
            rows.iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(title.len())
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(columns.iter().map(|(_, title)| *title).collect());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn verify(data_dir: &std::path::Path, json: bool) -> Result<ExitCode, Error> {
    let report = ledger::verify::verify(data_dir)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("journal records   {}", report.records);
        println!("accounts          {}", report.accounts);
        println!("transfers         {}", report.transfers);
        println!("head hash         {}", report.head_hash);
        println!(
            "snapshot          {}",
            match report.snapshot_seq {
                Some(seq) => format!("matches the replayed state at record {seq}"),
                None => "none".into(),
            }
        );
        if let Some(torn) = &report.torn_tail {
            println!("torn tail         {torn} (never acknowledged; cut off at the next start)");
        }
        println!("books             balanced; every limit holds");
    }
    Ok(ExitCode::SUCCESS)
}
