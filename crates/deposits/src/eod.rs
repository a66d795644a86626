//! End of day for deposits: daily accrual on each account's end-of-day balance, paid in on a
//! month's last day. Every ledger step has an id derived from (purpose, account, date), and an
//! account's progress (`accrued_through`) moves by compare-and-set, so a repeated or crashed
//! run resumes without moving money twice.

use crate::model::{self, Accrual, LEDGER_KRW, bank, transfer_code};
use crate::service::{
    Account, DepositError, Deposits, EodReport, PERMISSION_EOD, corrupt, read_account, record,
    select_account,
};
use kernel::event::TraceParent;
use kernel::http::Caller;
use ledger::{CreateTransferResult as TR, Transfer, TransferEvent, TransferFlags};
use serde_json::json;
use sqlx::Row;
use store::sql::now_us;
use time::Date;

/// Accounts read per page by end of day.
const EOD_PAGE: i64 = 500;

impl Deposits {
    /// End of day for business date `date`: every open account accrues interest for each day
    /// up to `date` it has not accrued yet, and on a month's last day the month's interest is
    /// paid in. Idempotent per date and account-day; a crashed run resumes where it stopped.
    pub async fn end_of_day(
        &self,
        caller: &Caller,
        date: Date,
        trace: Option<TraceParent>,
    ) -> Result<EodReport, DepositError> {
        if !caller.may(PERMISSION_EOD) {
            return Err(DepositError::Forbidden(PERMISSION_EOD));
        }
        if date >= (self.today)() {
            return Err(DepositError::BusinessDateNotOver(date));
        }
        let Some(lease) = self.store.try_lease("deposits-eod").await? else {
            return Err(DepositError::EodInProgress);
        };
        let report = self.accrue_all(date, trace).await;
        lease.release().await;
        report
    }

    /// End of day's work, under the lease.
    async fn accrue_all(
        &self,
        date: Date,
        trace: Option<TraceParent>,
    ) -> Result<EodReport, DepositError> {
        self.bank_accounts().await?;
        let started = now_us();
        sqlx::query(
            "INSERT INTO eod_runs (business_date, started_at_us, accounts, accrued, posted) \
             VALUES ($1, $2, 0, '0', '0') ON CONFLICT (business_date) DO UPDATE SET started_at_us = $2",
        )
        .bind(date.to_string())
        .bind(started)
        .execute(self.store.writer())
        .await?;
        let mut report = EodReport {
            business_date: date.to_string(),
            ..EodReport::default()
        };
        let mut after = String::new();
        loop {
            let rows = sqlx::query(concat!(
                select_account!(),
                " WHERE status = 'open' AND opened_on <= $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(date.to_string())
            .bind(&after)
            .bind(EOD_PAGE)
            .fetch_all(self.store.reader())
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("id")?;
            for row in &rows {
                let account = read_account(row)?;
                self.accrue_account(account, date, &mut report, trace)
                    .await?;
            }
        }
        sqlx::query(
            "UPDATE eod_runs SET finished_at_us = $2, accounts = $3, accrued = $4, posted = $5 WHERE business_date = $1",
        )
        .bind(date.to_string())
        .bind(now_us())
        .bind(i64::try_from(report.accounts).unwrap_or(i64::MAX))
        .bind(report.accrued.to_string())
        .bind(report.posted.to_string())
        .execute(self.store.writer())
        .await?;
        Ok(report)
    }

    async fn accrue_account(
        &self,
        mut account: Account,
        date: Date,
        report: &mut EodReport,
        trace: Option<TraceParent>,
    ) -> Result<(), DepositError> {
        let first = account
            .accrued_through
            .and_then(|d| d.next_day())
            .unwrap_or(account.opened_on);
        if first > date {
            return Ok(());
        }
        let rate = model::rate_micro(account.rate).ok_or_else(|| corrupt("rate"))?;
        for day in model::days(first, date) {
            let balance = self
                .ledger
                .balances_at(account.ledger_id(), model::end_of_day_ns(day))
                .await?
                .map(|b| model::posted(&b))
                .unwrap_or(0);
            let (mut next, delta) = account.accrual.day(balance, rate);
            let posting = model::is_posting_day(day);
            let mut chain = Vec::new();
            if delta > 0 {
                chain.push(Transfer {
                    id: kernel::derived_id("deposits", "accrual", &account.id, day),
                    debit_account_id: bank::INTEREST_EXPENSE_ID,
                    credit_account_id: account.interest_ledger_id,
                    amount: delta,
                    ledger: LEDGER_KRW,
                    code: transfer_code::INTEREST_ACCRUAL,
                    ..Transfer::default()
                });
            }
            let posting_id = kernel::derived_id("deposits", "posting", &account.id, day);
            if posting {
                chain.push(Transfer {
                    id: posting_id,
                    debit_account_id: account.interest_ledger_id,
                    credit_account_id: account.ledger_id(),
                    amount: model::AMOUNT_MAX * 1_000,
                    ledger: LEDGER_KRW,
                    code: transfer_code::INTEREST_POSTING,
                    flags: TransferFlags::BALANCING_DEBIT,
                    ..Transfer::default()
                });
            }
            if chain.len() == 2 {
                chain[0].flags = TransferFlags::LINKED;
            }
            let events = chain
                .into_iter()
                .map(|transfer| TransferEvent {
                    transfer,
                    metadata: None,
                })
                .collect::<Vec<_>>();
            if !events.is_empty() {
                let results = self.ledger.create_transfers(events).await?;
                if results.iter().any(|r| {
                    matches!(
                        r,
                        TR::DebitAccountAlreadyClosed | TR::CreditAccountAlreadyClosed
                    )
                }) {
                    // Being closed right now: the close pays what has accrued.
                    report.skipped += 1;
                    return Ok(());
                }
                if let Some(r) = results.iter().find(|r| !matches!(r, TR::Ok | TR::Exists)) {
                    return Err(DepositError::LedgerRefused(r.name()));
                }
            }
            let paid = if posting {
                self.ledger
                    .transfer(posting_id)
                    .await?
                    .map_or(0, |v| v.transfer.amount)
            } else {
                0
            };
            if posting {
                next = Accrual::default();
            }
            let now = now_us();
            let mut tx = self.store.begin().await?;
            let moved = sqlx::query(
                "UPDATE accounts SET accrued_through = $2, month_numerator = $3, month_accrued = $4, updated_at_us = $5 \
                 WHERE id = $1 AND status = 'open' AND COALESCE(accrued_through, '') = $6",
            )
            .bind(&account.id)
            .bind(day.to_string())
            .bind(next.numerator.to_string())
            .bind(i64::try_from(next.accrued).unwrap_or(i64::MAX))
            .bind(now)
            .bind(account.accrued_through.map(|d| d.to_string()).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 0 {
                // Another runner (or a close) got here first: its record stands.
                tx.rollback().await?;
                report.skipped += 1;
                return Ok(());
            }
            sqlx::query(
                "INSERT INTO accruals (account_id, business_date, balance, accrued, posted) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&account.id)
            .bind(day.to_string())
            .bind(balance.to_string())
            .bind(i64::try_from(delta).unwrap_or(i64::MAX))
            .bind(i64::try_from(paid).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
            if paid > 0 {
                record(
                    &mut tx,
                    "deposits.interest.posted",
                    &account.id,
                    json!({
                        "account_id": account.id,
                        "business_date": day.to_string(),
                        "amount": paid.to_string(),
                        "currency": account.currency,
                    }),
                    trace,
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            report.days += 1;
            report.accrued += delta;
            report.posted += paid;
            account.accrued_through = Some(day);
            account.accrual = next;
        }
        report.accounts += 1;
        Ok(())
    }
}
