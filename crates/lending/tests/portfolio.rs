//! Five years of a small loan portfolio on the real ledger: loans paid on time, late, in part,
//! prepaid, paid off, restructured, defaulted, written off and recovered, every servicing step
//! posted to a ledger engine with its journal on disk, and the books reconciled against the
//! loans every month.

use ledger::engine::{Engine, EngineConfig};
use ledger::{
    Account, AccountEvent, AccountFlags, CreateAccountResult, CreateTransferResult, TransferEvent,
};
use lending::books::{self, LEDGER_KRW};
use lending::schedule::Terms;
use lending::servicing::{Loan, Policy, Restructuring, Status};
use products::model::RepaymentMethod;
use rust_decimal::Decimal;
use time::macros::date;
use time::{Date, Duration};

/// The bank's cash, the other side of every disbursement and payment here.
const CASH: u128 = 4_100_000_001;

/// How a borrower behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Borrower {
    /// Pays what is due on the day it falls due.
    Punctual,
    /// Pays everything due once it is 20 days past due.
    Late,
    /// Pays half of what is due on the due date, the rest 10 days later.
    InHalves,
    /// Punctual; prepays a third of the principal after a year, pays off after two.
    Prepays,
    /// Stops paying after 5 instalments; restructured at 75 days past due, then punctual.
    Restructured,
    /// Stops paying after 3 instalments; written off at 180 days past due, then repays
    /// 100,000 won a month as recoveries.
    Defaults,
}

struct Position {
    id: String,
    loan: Option<Loan>,
    terms: Terms,
    borrower: Borrower,
    restructured: bool,
}

fn portfolio() -> Vec<Position> {
    let methods = [
        RepaymentMethod::EqualPayment,
        RepaymentMethod::EqualPrincipal,
        RepaymentMethod::Bullet,
    ];
    let borrowers = [
        Borrower::Punctual,
        Borrower::Late,
        Borrower::InHalves,
        Borrower::Prepays,
        Borrower::Restructured,
        Borrower::Defaults,
    ];
    (0..18u32)
        .map(|i| {
            let term_months = [12, 24, 36, 48][i as usize % 4];
            Position {
                id: format!("loan-{i}"),
                loan: None,
                terms: Terms {
                    principal: 3_000_000 + u128::from(i) * 1_234_567,
                    annual_rate: Decimal::new(45_000 + i64::from(i) * 7_250, 6),
                    term_months,
                    method: methods[i as usize % 3],
                    grace_months: if i % 5 == 0 { 3 } else { 0 },
                    // Staggered over the first months, month ends included.
                    start_date: date!(2026 - 01 - 01) + Duration::days(i64::from(i) * 17),
                },
                borrower: borrowers[i as usize % 6],
                restructured: false,
            }
        })
        .collect()
}

/// A step's postings as the ledger transfers of that step.
fn post(
    out: &mut Vec<TransferEvent>,
    id: &str,
    step: String,
    postings: &[lending::servicing::Posting],
) {
    if !postings.is_empty() {
        out.extend(books::transfers(id, &step, postings, CASH));
    }
}

/// What the borrower does on the open day `today`, before its end.
fn act(p: &mut Position, today: Date, policy: &Policy, out: &mut Vec<TransferEvent>) {
    let Some(loan) = p.loan.as_mut() else {
        return;
    };
    let id = p.id.clone();
    let dpd = loan.days_past_due();
    let due_today = loan.due.first().is_some_and(|d| d.due_date == today);
    let mut pay = |loan: &mut Loan, amount: u128, what: &str| {
        if amount > 0 {
            let (_, postings) = loan
                .repay(today, amount, policy)
                .expect("a payment of what is due");
            post(out, &id, format!("{what}/{today}"), &postings);
        }
    };
    match p.borrower {
        Borrower::Punctual | Borrower::Prepays if due_today => pay(loan, loan.due_total(), "repay"),
        Borrower::Late if dpd == 20 => pay(loan, loan.due_total(), "repay"),
        Borrower::InHalves if due_today => pay(loan, loan.due_total() / 2, "half"),
        Borrower::InHalves if dpd == 10 => pay(loan, loan.due_total(), "rest"),
        Borrower::Restructured if !p.restructured && loan.billed < 5 && due_today => {
            pay(loan, loan.due_total(), "repay")
        }
        Borrower::Restructured if !p.restructured && dpd == 75 => {
            let new = Restructuring {
                annual_rate: loan.terms.annual_rate,
                term_months: 36,
                method: RepaymentMethod::EqualPayment,
                grace_months: 2,
            };
            let postings = loan.restructure(today, &new, policy).expect("restructured");
            post(out, &id, format!("restructure/{today}"), &postings);
            p.restructured = true;
        }
        Borrower::Restructured if p.restructured && due_today => {
            pay(loan, loan.due_total(), "repay")
        }
        Borrower::Defaults if loan.billed <= 3 && due_today => pay(loan, loan.due_total(), "repay"),
        Borrower::Defaults if loan.status == Status::Default && dpd >= 180 => {
            let postings = loan.write_off(today).expect("written off");
            post(out, &id, format!("write-off/{today}"), &postings);
        }
        Borrower::Defaults if loan.status == Status::WrittenOff && today.day() == 15 => {
            let left = loan.totals.written_off - loan.totals.recovered;
            pay(loan, left.min(100_000), "recovery")
        }
        _ => {}
    }
    if p.borrower == Borrower::Prepays && loan.status != Status::Closed {
        let age = (today - loan.disbursed_on).whole_days();
        if age == 365 && loan.principal_not_billed() > 0 {
            let third = loan.principal_not_billed() / 3;
            let (_, postings) = loan.prepay(today, Some(third), policy).expect("prepaid");
            post(out, &id, format!("prepay/{today}"), &postings);
        }
        if age == 730 {
            let (_, postings) = loan.prepay(today, None, policy).expect("paid off");
            post(out, &id, format!("payoff/{today}"), &postings);
        }
    }
}

async fn submit(engine: &Engine, transfers: Vec<TransferEvent>) {
    for chunk in transfers.chunks(ledger::BATCH_EVENTS_MAX) {
        let results = engine.create_transfers(chunk.to_vec()).await.unwrap();
        for (t, r) in chunk.iter().zip(&results) {
            assert_eq!(*r, CreateTransferResult::Ok, "{:?}", t.transfer);
        }
    }
}

async fn balance(engine: &Engine, id: u128) -> i128 {
    let account = engine
        .query(move |l| l.account(id).map(|(a, _)| *a))
        .await
        .unwrap()
        .expect("the account exists");
    account.debits_posted as i128 - account.credits_posted as i128
}

/// Every loan's receivables on the ledger equal its state, and the bank's books equal what
/// the loans say became of the money.
async fn reconcile(engine: &Engine, positions: &[Position]) {
    let mut income_expected = 0i128;
    let mut cash_expected = 0i128;
    let (mut written_off, mut recovered) = (0i128, 0i128);
    for p in positions {
        let Some(loan) = &p.loan else { continue };
        for (book, amount) in loan.receivables() {
            let id = books::account_id(&p.id, book, CASH);
            assert_eq!(
                balance(engine, id).await,
                amount as i128,
                "{} {book:?}",
                p.id
            );
        }
        let t = loan.totals;
        let paid = t.principal_repaid + t.interest_paid + t.late_interest_paid + t.fees_paid;
        cash_expected += (paid + t.recovered) as i128 - t.disbursed as i128;
        // Income accrued went one of four ways: paid, still receivable, made principal by a
        // restructuring, or written off.
        let receivable: u128 = loan.receivables()[1..].iter().map(|(_, v)| v).sum();
        income_expected += (t.interest_paid + t.late_interest_paid + t.fees_paid) as i128
            + receivable as i128
            + t.capitalised as i128
            + (t.written_off - t.principal_written_off) as i128;
        written_off += t.written_off as i128;
        recovered += t.recovered as i128;
    }
    let income = -(balance(engine, books::bank::INTEREST_INCOME_ID).await
        + balance(engine, books::bank::LATE_INTEREST_INCOME_ID).await
        + balance(engine, books::bank::FEE_INCOME_ID).await);
    assert_eq!(income, income_expected);
    assert_eq!(balance(engine, CASH).await, cash_expected);
    assert_eq!(
        balance(engine, books::bank::CREDIT_LOSS_ID).await,
        written_off
    );
    assert_eq!(balance(engine, books::bank::RECOVERY_ID).await, -recovered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_years_of_a_portfolio_reconcile_with_the_ledger_every_month() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::open(EngineConfig::new(dir.path().join("ledger"))).unwrap();
    let mut accounts = books::bank_accounts();
    accounts.push(AccountEvent {
        account: Account {
            id: CASH,
            ledger: LEDGER_KRW,
            code: 1000,
            flags: AccountFlags::default(),
            ..Account::default()
        },
        metadata: None,
    });
    let mut positions = portfolio();
    for p in &positions {
        accounts.extend(books::loan_accounts(&p.id, 0));
    }
    let results = engine.create_accounts(accounts).await.unwrap();
    assert!(results.iter().all(|r| *r == CreateAccountResult::Ok));

    let policy = Policy::default();
    let first = date!(2026 - 01 - 01);
    let last = date!(2030 - 12 - 31);
    let mut day = first;
    let mut transfers = Vec::new();
    let mut month_end_days = 0;
    while day <= last {
        for p in positions.iter_mut() {
            if p.loan.is_none() && p.terms.start_date == day {
                let (loan, postings) =
                    Loan::disburse(p.terms.clone(), "0.012".parse().unwrap()).unwrap();
                post(&mut transfers, &p.id, format!("disburse/{day}"), &postings);
                p.loan = Some(loan);
            }
            act(p, day, &policy, &mut transfers);
            if let Some(loan) = p.loan.as_mut() {
                let postings = loan.end_of_day(day, &policy).unwrap();
                post(&mut transfers, &p.id, format!("eod/{day}"), &postings);
            }
        }
        let tomorrow = day + Duration::days(1);
        if tomorrow.month() != day.month() {
            let sent = std::mem::take(&mut transfers);
            if day == date!(2027 - 06 - 30) {
                // A month submitted twice (a retry after a crash) moves nothing again.
                submit(&engine, sent.clone()).await;
                let again = engine.create_transfers(sent).await.unwrap();
                assert!(again.iter().all(|r| *r == CreateTransferResult::Exists));
            } else {
                submit(&engine, sent).await;
            }
            reconcile(&engine, &positions).await;
            month_end_days += 1;
        }
        day = tomorrow;
    }
    assert_eq!(month_end_days, 60);

    let by = |b: Borrower| -> Vec<&Loan> {
        positions
            .iter()
            .filter(|p| p.borrower == b)
            .filter_map(|p| p.loan.as_ref())
            .collect()
    };
    // Everyone who paid is repaid and closed; late payers paid late interest.
    for b in [
        Borrower::Punctual,
        Borrower::Late,
        Borrower::InHalves,
        Borrower::Prepays,
    ] {
        for loan in by(b) {
            assert_eq!(loan.status, Status::Closed, "{b:?}");
            assert_eq!(loan.totals.principal_repaid, loan.totals.disbursed);
        }
    }
    assert!(
        by(Borrower::Late)
            .iter()
            .all(|l| l.totals.late_interest_paid > 0)
    );
    assert!(
        by(Borrower::Punctual)
            .iter()
            .all(|l| l.totals.late_interest_paid == 0)
    );
    assert!(by(Borrower::Prepays).iter().all(|l| l.totals.fees_paid > 0));
    for loan in by(Borrower::Restructured) {
        assert_eq!(loan.restructurings, 1);
        assert!(loan.totals.capitalised > 0);
        assert_eq!(loan.status, Status::Closed);
    }
    for loan in by(Borrower::Defaults) {
        assert_eq!(loan.status, Status::WrittenOff);
        assert!(loan.totals.recovered > 0);
        assert_eq!(loan.principal, 0);
    }
    // The books balance, and the journal replays to the same ledger.
    tokio::task::block_in_place(|| engine.shutdown()).unwrap();
    drop(engine);
    let (engine, _) = Engine::open(EngineConfig::new(dir.path().join("ledger"))).unwrap();
    reconcile(&engine, &positions).await;
}
