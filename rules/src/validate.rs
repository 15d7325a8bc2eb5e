//! Check-digit validators. A candidate only counts as PII when its check digits hold, so
//! order ids, amounts and trace ids that merely look like numbers are left alone.

/// Luhn (mod 10) over the ASCII digits of `s`; other characters are skipped.
/// Returns false when there are no digits.
pub fn luhn(s: &str) -> bool {
    let mut sum = 0u32;
    let mut n = 0usize;
    for b in s.bytes().rev().filter(u8::is_ascii_digit) {
        let mut d = u32::from(b - b'0');
        if n % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        n += 1;
    }
    n > 0 && sum % 10 == 0
}

/// A payment card number: 13–19 digits (separators ignored), a known leading digit range and
/// a valid Luhn check digit.
pub fn card_number(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if !(13..=19).contains(&digits) {
        return false;
    }
    // Issuer identification: 2 (Mastercard 2-series), 3 (Amex/Diners/JCB), 4 (Visa),
    // 5 (Mastercard/Maestro), 6 (Discover/Maestro/UnionPay). 0, 1, 7, 8, 9 are not issued
    // for payment cards, which rules out many order ids.
    match s.bytes().find(u8::is_ascii_digit) {
        Some(b'2'..=b'6') => {}
        _ => return false,
    }
    luhn(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_table() {
        for (input, ok) in [
            ("4111111111111111", true),
            ("4111 1111 1111 1111", true),
            ("4111-1111-1111-1112", false),
            ("79927398713", true),
            ("79927398710", false),
            ("", false),
        ] {
            assert_eq!(luhn(input), ok, "{input}");
        }
    }

    #[test]
    fn card_table() {
        for (input, ok) in [
            ("4111111111111111", true),
            ("5555 5555 5555 4444", true),
            ("3782-822463-10005", true),
            ("4111111111111112", false),
            ("0000000000000000", false),
            ("411111111111", false),
            ("9111111111111111", false),
        ] {
            assert_eq!(card_number(input), ok, "{input}");
        }
    }
}
