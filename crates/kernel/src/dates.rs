//! Calendar arithmetic banks share: business dates in Seoul, a term's maturity, an
//! instalment's due date.

use time::{Date, Month, UtcOffset};

/// Korean Standard Time, in which business dates are counted.
pub const KST: UtcOffset = time::macros::offset!(+9);

/// `months` after `start`, on the same day of the month or, in a shorter month, its last day
/// (2026-01-31 + 1 month = 2026-02-28). `None` past the calendar's range.
pub fn add_months(start: Date, months: u32) -> Option<Date> {
    let index =
        start.year() * 12 + i32::from(start.month() as u8) - 1 + i32::try_from(months).ok()?;
    let year = index.div_euclid(12);
    let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    let day = start.day().min(time::util::days_in_month(month, year));
    Date::from_calendar_date(year, month, day).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn months_keep_the_day_or_take_the_month_end() {
        assert_eq!(
            add_months(date!(2026 - 01 - 31), 1),
            Some(date!(2026 - 02 - 28))
        );
        assert_eq!(
            add_months(date!(2026 - 01 - 31), 2),
            Some(date!(2026 - 03 - 31))
        );
        assert_eq!(
            add_months(date!(2027 - 11 - 30), 3),
            Some(date!(2028 - 02 - 29))
        );
        assert_eq!(
            add_months(date!(2026 - 11 - 27), 12),
            Some(date!(2027 - 11 - 27))
        );
        assert_eq!(
            add_months(date!(2026 - 11 - 27), 0),
            Some(date!(2026 - 11 - 27))
        );
    }
}
