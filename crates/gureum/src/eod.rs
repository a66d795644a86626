//! `gureum eod [--date D]`: end of day for a business date, run by the service that owns the
//! data (today: deposits — daily interest accrual and month-end posting) through the API, so
//! it works against `gureum up` and the split shape alike. Idempotent per date: running a date
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
}

/// Runs end of day and prints what it did.
pub fn run(args: EodArgs) -> Result<ExitCode, Error> {
    let date = match &args.date {
        Some(d) => products::service::parse_date(d)
            .ok_or_else(|| format!("--date {d}: dates are YYYY-MM-DD"))?,
        None => yesterday(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/v1/deposits/eod",
                args.server.trim_end_matches('/')
            ))
            // Until the edge authenticates (issue 6), the caller states its permissions.
            .header(kernel::http::PRINCIPAL_HEADER, "gureum-eod")
            .header(kernel::http::PERMISSIONS_HEADER, "deposits:eod")
            .json(&serde_json::json!({"date": date.to_string()}))
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", args.server))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok::<_, Error>((status, body))
    })?;
    if !status.is_success() {
        let detail = body["detail"].as_str().unwrap_or("");
        let code = body["code"].as_str().unwrap_or("");
        return Err(format!("end of day for {date} failed: {status} {code}: {detail}").into());
    }
    if args.json {
        println!("{body}");
    } else {
        println!(
            "end of day {}: deposits — {} accounts, {} account-days accrued, {} won accrued, {} won of interest paid, {} skipped",
            body["business_date"].as_str().unwrap_or(""),
            body["accounts"],
            body["days"],
            body["accrued"].as_str().unwrap_or("0"),
            body["posted"].as_str().unwrap_or("0"),
            body["skipped"],
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn yesterday() -> Date {
    store::sql::today_kst() - Duration::days(1)
}
