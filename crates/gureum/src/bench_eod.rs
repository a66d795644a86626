//! `gureum bench eod`: the end of day over a loan portfolio — every loan's accrual, late
//! interest, billing, days past due and status ([`lending::eod::close_day`] on every core) and
//! the resulting transfers posted to a ledger engine with its journal on disk, durable.
//!
//! By default the loans stay in memory, which measures the arithmetic and the ledger alone.
//! With `--store` the portfolio is imported into the lending service's own store (SQLite,
//! every loan sealed) and each day is closed by the service itself — `Lending::end_of_day`,
//! what `gureum eod` runs: loading and opening every loan, planning on every core, the pending
//! steps, the ledger, the commits and the notices. That is the target's measure.

use crate::Error;
use ledger::engine::{Engine, EngineConfig};
use ledger::{Account, AccountEvent, CreateAccountResult, CreateTransferResult, TransferEvent};
use lending::books;
use lending::schedule::Terms;
use lending::servicing::{Loan, Policy};
use products::model::RepaymentMethod;
use rust_decimal::Decimal;
use serde::Serialize;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use time::{Date, Duration};

/// Arguments of `gureum bench eod`.
#[derive(clap::Args, Clone)]
pub struct EodBenchArgs {
    /// Active loans.
    #[arg(long, default_value_t = 1_000_000)]
    loans: usize,
    /// Business days to close, one after another.
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Keep the loans in the lending service's store and close the days through the service
    /// (what `gureum eod` runs), instead of in memory.
    #[arg(long)]
    store: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One day's end.
#[derive(Serialize)]
struct Day {
    date: String,
    seconds: f64,
    /// In memory: the time computing, before posting.
    compute_seconds: Option<f64>,
    /// In memory: the transfers posted.
    transfers: Option<usize>,
    /// In memory: loans with something past due after the day.
    loans_past_due: Option<usize>,
    /// Stored: the service's report.
    report: Option<lending::loans::EodReport>,
}

#[derive(Serialize)]
struct Report {
    loans: usize,
    threads: usize,
    days: Vec<Day>,
    /// The slowest day's loans per second.
    loans_per_second: f64,
    /// Every transfer was acknowledged after its journal record was fsynced.
    durable: bool,
    /// Where the loans were kept: `memory`, or `sqlite` (sealed, closed by the service).
    loan_storage: &'static str,
    /// Stored: seconds to import the portfolio (not measured in the days).
    import_seconds: Option<f64>,
}

/// The bank's cash (deposits' account), the other side of the disbursements.
const CASH: u128 = deposits::model::bank::CASH_ID;

/// Runs the end-of-day benchmark.
pub fn eod(args: EodBenchArgs) -> Result<ExitCode, Error> {
    if args.loans == 0 || args.days == 0 {
        return Err("--loans and --days must be at least 1".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let policy = Policy::default();
    let first_day = time::macros::date!(2026 - 06 - 01);
    let (mut loans, disbursements) = portfolio(args.loans, first_day);
    // Bring every loan to the eve of the first measured day, without posting (not measured).
    let earliest = loans
        .iter()
        .map(|(_, l)| l.open_day())
        .min()
        .unwrap_or(first_day);
    let mut day = earliest;
    while day < first_day {
        lending::eod::close_day(&mut loans, day, &policy, CASH, threads)
            .map_err(|(id, e)| format!("loan {id}: {e}"))?;
        day += Duration::days(1);
    }
    let dir = tempfile::tempdir()?;
    let (engine, _) = Engine::open(EngineConfig::new(dir.path().join("ledger")))?;
    let engine = Arc::new(engine);
    let report = runtime.block_on(async {
        setup(&engine, &loans, disbursements).await?;
        if args.store {
            return stored(&args, &engine, loans, first_day, dir.path(), threads).await;
        }
        let mut days = Vec::new();
        for n in 0..args.days {
            let date = first_day + Duration::days(i64::from(n));
            let started = Instant::now();
            let transfers = lending::eod::close_day(&mut loans, date, &policy, CASH, threads)
                .map_err(|(id, e)| format!("loan {id}: {e}"))?;
            let compute_seconds = started.elapsed().as_secs_f64();
            let count = transfers.len();
            post(&engine, transfers).await?;
            days.push(Day {
                date: date.to_string(),
                seconds: started.elapsed().as_secs_f64(),
                compute_seconds: Some(compute_seconds),
                transfers: Some(count),
                loans_past_due: Some(loans.iter().filter(|(_, l)| l.days_past_due() > 0).count()),
                report: None,
            });
        }
        let slowest = days.iter().map(|d| d.seconds).fold(0.0, f64::max);
        Ok::<_, Error>(Report {
            loans: args.loans,
            threads,
            loans_per_second: args.loans as f64 / slowest,
            days,
            durable: true,
            loan_storage: "memory",
            import_seconds: None,
        })
    })?;
    if let Ok(engine) = Arc::try_unwrap(engine) {
        engine.shutdown()?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("loans                 {}", report.loans);
        println!("threads               {}", report.threads);
        if let Some(s) = report.import_seconds {
            println!("import                {s:.1} s (not measured)");
        }
        for d in &report.days {
            match &d.report {
                Some(r) => println!(
                    "{}            {:.3} s: {} loans, {} loan-days, {} billed, {} status changes, {} failed",
                    d.date, d.seconds, r.loans, r.days, r.billed, r.status_changes, r.failed
                ),
                None => println!(
                    "{}            {:.3} s ({:.3} s computing), {} transfers, {} loans past due",
                    d.date,
                    d.seconds,
                    d.compute_seconds.unwrap_or_default(),
                    d.transfers.unwrap_or_default(),
                    d.loans_past_due.unwrap_or_default()
                ),
            }
        }
        println!("loans/s (slowest day) {:.0}", report.loans_per_second);
        println!("loan storage          {}", report.loan_storage);
    }
    Ok(ExitCode::SUCCESS)
}

/// `n` loans of every method, rate and term, disbursed over the 30 days before `first_day`
/// (so about one in thirty falls due on any day), one in twenty a month earlier and never
/// paid (past due, accruing late interest); with the disbursements' transfers.
fn portfolio(n: usize, first_day: Date) -> (Vec<(String, Loan)>, Vec<TransferEvent>) {
    let methods = [
        RepaymentMethod::EqualPayment,
        RepaymentMethod::EqualPrincipal,
        RepaymentMethod::Bullet,
    ];
    let mut disbursements = Vec::with_capacity(n);
    let loans = (0..n)
        .map(|i| {
            let offset = (i % 30) as i64 + if i % 20 == 0 { 35 } else { 1 };
            let terms = Terms {
                principal: 1_000_000 + (i as u128 % 50) * 1_000_000,
                annual_rate: Decimal::new(40_000 + (i as i64 % 110) * 1_000, 6),
                term_months: 12 + (i % 5) as u32 * 12,
                method: methods[i % 3],
                grace_months: if i % 7 == 0 { 3 } else { 0 },
                start_date: first_day - Duration::days(offset),
            };
            let (loan, postings) =
                Loan::disburse(terms, Decimal::new(12, 3)).expect("the generated terms are valid");
            let id = format!("bench-{i}");
            disbursements.extend(books::transfers(&id, "disburse", &postings, CASH));
            (id, loan)
        })
        .collect();
    (loans, disbursements)
}

/// The ledger accounts (the bank's, cash, four per loan) and the disbursements.
async fn setup(
    engine: &Arc<Engine>,
    loans: &[(String, Loan)],
    disbursements: Vec<TransferEvent>,
) -> Result<(), Error> {
    let mut accounts = books::bank_accounts();
    accounts.push(AccountEvent {
        account: Account {
            id: CASH,
            ledger: books::LEDGER_KRW,
            code: 1000,
            ..Account::default()
        },
        metadata: None,
    });
    for (id, _) in loans {
        accounts.extend(books::loan_accounts(id, 0));
    }
    for batch in lending::eod::batches(
        &accounts,
        lending::eod::account_linked,
        ledger::BATCH_EVENTS_MAX,
    ) {
        let results = engine.create_accounts(batch.to_vec()).await?;
        if let Some(r) = results.iter().find(|r| **r != CreateAccountResult::Ok) {
            return Err(format!("the ledger refused a bench account: {}", r.name()).into());
        }
    }
    post(engine, disbursements).await
}

/// Posts transfers in batches cut at chain ends, all in flight at once (the engine gathers
/// them into group commits); every one must be accepted.
async fn post(engine: &Arc<Engine>, transfers: Vec<TransferEvent>) -> Result<(), Error> {
    let mut pending = Vec::new();
    for batch in lending::eod::batches(
        &transfers,
        lending::eod::transfer_linked,
        ledger::BATCH_EVENTS_MAX,
    ) {
        let engine = engine.clone();
        let batch = batch.to_vec();
        pending.push(tokio::spawn(
            async move { engine.create_transfers(batch).await },
        ));
    }
    for task in pending {
        let results = task.await??;
        if let Some(r) = results.iter().find(|r| **r != CreateTransferResult::Ok) {
            return Err(format!("the ledger refused an end-of-day transfer: {}", r.name()).into());
        }
    }
    Ok(())
}

/// The days closed by the lending service over its own store: the portfolio imported (sealed,
/// one row per loan), then `Lending::end_of_day` for each date, today being the day after.
async fn stored(
    args: &EodBenchArgs,
    engine: &Arc<Engine>,
    loans: Vec<(String, Loan)>,
    first_day: Date,
    dir: &std::path::Path,
    threads: usize,
) -> Result<Report, Error> {
    use std::sync::atomic::{AtomicI32, Ordering};
    let store = store::Store::open(&store::SqlConfig::Sqlite {
        path: dir.join("lending.sqlite"),
    })
    .await?;
    let keyring = customers::vault::FileKeyring::open_or_create(
        &dir.join("lending.toml"),
        &kernel::event::format_time_us(store::sql::now_us()).unwrap_or_default(),
    )?;
    let clock = Arc::new(AtomicI32::new(first_day.to_julian_day()));
    let today = clock.clone();
    // End of day asks no other service; the peers are never called.
    let lending = lending::Lending::open(
        store,
        customers::vault::Vault::from_keyring(keyring),
        peers::Peers::http(&kernel::http::Upstream::new("http://127.0.0.1:9", None))?,
        lending::credit::Model::parse(lending::credit::DEFAULT_MODEL)?,
    )
    .await?
    .with_ledger(ledger::client::LedgerClient::Local(engine.clone()))
    .with_today(Arc::new(move || {
        Date::from_julian_day(today.load(Ordering::SeqCst)).expect("a valid day")
    }));
    let started = Instant::now();
    let rows = loans
        .into_iter()
        .map(|(id, loan)| {
            (
                id,
                "bench-customer".to_owned(),
                "bench-account".to_owned(),
                loan,
            )
        })
        .collect();
    lending.import_loans("BENCH-LOAN", 1, rows).await?;
    let import_seconds = started.elapsed().as_secs_f64();
    let caller = kernel::http::Caller::new("bench", &[lending::loans::PERMISSION_EOD]);
    let mut days = Vec::new();
    for n in 0..args.days {
        let date = first_day + Duration::days(i64::from(n));
        clock.store((date + Duration::days(1)).to_julian_day(), Ordering::SeqCst);
        let started = Instant::now();
        let report = lending
            .end_of_day(&caller, date, None)
            .await
            .map_err(|e| format!("end of day {date}: {e}"))?;
        if report.failed > 0 || report.loans != args.loans as u64 {
            return Err(format!("end of day {date} did not close every loan: {report:?}").into());
        }
        days.push(Day {
            date: date.to_string(),
            seconds: started.elapsed().as_secs_f64(),
            compute_seconds: None,
            transfers: None,
            loans_past_due: None,
            report: Some(report),
        });
    }
    let slowest = days.iter().map(|d| d.seconds).fold(0.0, f64::max);
    Ok(Report {
        loans: args.loans,
        threads,
        loans_per_second: args.loans as f64 / slowest,
        days,
        durable: true,
        loan_storage: "sqlite",
        import_seconds: Some(import_seconds),
    })
}
