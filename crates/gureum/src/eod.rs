//! `gureum eod [--date D]`: end of day for a business date, run by the services that own the
//! data through the API — deposits (daily interest accrual, month-end posting), then loans
//! (accrual, late interest, instalments falling due, delinquency and notices) — so it works
//! against `gureum up` and the split shape alike. Idempotent per date: running a date
//! again does nothing new, and a run that stopped part-way resumes where it stopped.

use crate::Error;
use serde_json::Value;
use std::process::ExitCode;
use time::{Date, Duration};

/// Arguments of `gureum eod`.
#[derive(clap::Args)]
pub struct EodArgs {
    /// The business date (YYYY-MM-DD, Seoul) to close; default: yesterday.
    #[arg(long)]
    date: Option<String>,
    /// The Gureum server (or the edge).
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "GUREUM_SERVER")]
    server: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// How to authenticate (a key whose roles grant `deposits:eod` and `loans:eod`).
    #[command(flatten)]
    credentials: crate::credentials::Credentials,
}

/// Runs end of day — deposits, then loans — and prints what it did.
pub fn run(args: EodArgs) -> Result<ExitCode, Error> {
    let date = match &args.date {
        Some(d) => products::service::parse_date(d)
            .ok_or_else(|| format!("--date {d}: dates are YYYY-MM-DD"))?,
        None => yesterday(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = args.server.trim_end_matches('/').to_owned();
    let (deposits, loans) = runtime.block_on(async {
        let http = args.credentials.client()?;
        let deposits = close(&http, &server, "deposits", date).await?;
        let loans = close(&http, &server, "loans", date).await?;
        Ok::<_, Error>((deposits, loans))
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"deposits": deposits, "loans": loans})
        );
    } else {
        println!(
            "end of day {}: deposits — {} accounts, {} account-days accrued, {} won accrued, {} won of interest paid, {} skipped",
            deposits["business_date"].as_str().unwrap_or(""),
            deposits["accounts"],
            deposits["days"],
            deposits["accrued"].as_str().unwrap_or("0"),
            deposits["posted"].as_str().unwrap_or("0"),
            deposits["skipped"],
        );
        println!(
            "end of day {}: loans — {} loans, {} loan-days closed, {} instalments billed, {} status changes, {} failed",
            loans["business_date"].as_str().unwrap_or(""),
            loans["loans"],
            loans["days"],
            loans["billed"],
            loans["status_changes"],
            loans["failed"],
        );
    }
    if loans["failed"].as_u64().unwrap_or(0) > 0 {
        eprintln!("some loans could not be closed; the lending service's log names them");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `POST /v1/<service>/eod` for `date`; the report, or an error naming the problem.
async fn close(
    http: &reqwest::Client,
    server: &str,
    service: &str,
    date: Date,
) -> Result<Value, Error> {
    let response = http
        .post(format!("{server}/v1/{service}/eod"))
        .json(&serde_json::json!({"date": date.to_string()}))
        .send()
        .await
        .map_err(|e| crate::client::unreachable(server, &e))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let detail = body["detail"].as_str().unwrap_or("");
        let code = body["code"].as_str().unwrap_or("");
        return Err(
            format!("end of day for {date} failed ({service}): {status} {code}: {detail}").into(),
        );
    }
    Ok(body)
}

fn yesterday() -> Date {
    store::sql::today_kst() - Duration::days(1)
}
