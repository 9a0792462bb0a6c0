//! Money as the user types it: a decimal string of 元 parsed exactly into integer 分 (cents).
//! One rule everywhere (CLI, FFI, server): digits, an optional `.` and at most two decimals;
//! no sign, exponent, separator or third decimal (a sub-分 amount is refused, never rounded).

/// The largest amount accepted: 10,000,000.00 元 (1,000,000,000 分), as a receipt line.
pub const MAX_CENTS: i64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("`{0}` is not an amount: digits with at most two decimals, like 80 or 80.50")]
    Malformed(String),
    #[error("`{0}` has more than two decimals; amounts are exact to the 分 (0.01)")]
    SubCent(String),
    #[error("`{0}` is more than 10,000,000.00")]
    TooLarge(String),
}

/// Parses `12`, `12.3`, `12.34` (元) into 分: 1200, 1230, 1234.
pub fn parse_cents(text: &str) -> Result<i64, Error> {
    let t = text.trim();
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || (t.contains('.') && frac.is_empty()) {
        return Err(Error::Malformed(text.to_string()));
    }
    if frac.len() > 2 {
        return Err(Error::SubCent(text.to_string()));
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > 9 {
        return Err(Error::TooLarge(text.to_string()));
    }
    let yuan: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| Error::Malformed(text.to_string()))? };
    let cents: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().map_err(|_| Error::Malformed(text.to_string()))? * 10,
        _ => frac.parse().map_err(|_| Error::Malformed(text.to_string()))?,
    };
    let total = yuan * 100 + cents;
    if total > MAX_CENTS {
        return Err(Error::TooLarge(text.to_string()));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_and_sub_cent_input_is_refused() {
        // The inputs binary floating point got wrong.
        for (s, c) in [("0.01", 1), ("0.29", 29), ("1.1", 110), ("2.67", 267), ("1.00", 100), ("80", 8000), ("007.5", 750), ("10000000", MAX_CENTS)] {
            assert_eq!(parse_cents(s), Ok(c), "{s}");
        }
        for s in ["0.005", "0.015", "1.005", "2.675", "0.285"] {
            assert!(matches!(parse_cents(s), Err(Error::SubCent(_))), "{s}");
        }
        for s in ["", ".5", "5.", "-1", "+1", "1e3", "1,000", "NaN", "inf", "1.2.3", " 1 2"] {
            assert!(matches!(parse_cents(s), Err(Error::Malformed(_))), "{s:?}");
        }
        assert!(matches!(parse_cents("10000000.01"), Err(Error::TooLarge(_))));
        assert!(matches!(parse_cents("99999999999999999999"), Err(Error::TooLarge(_))));
    }
}
