//! The wall clock as the wire counts time: Unix epoch nanoseconds, the unit of push
//! timestamps, receipts and ledger rows, in both binaries.

/// Now, in Unix epoch nanoseconds (0 before 1970; saturating past year 2262).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
