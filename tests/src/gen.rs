//! A deterministic generator of realistic payment-service logs: plain application lines,
//! access-log lines and JSON lines, a few per cent of which carry PII of each kind (emails,
//! Luhn-valid card numbers, mod-97-valid IBANs, phone numbers, mod-11-valid Norwegian
//! national ids, IP addresses, JWTs, API keys). The same seed always gives the same bytes.

use std::io::Write;

/// xorshift64*: fast, deterministic, good enough for synthetic logs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
    fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| char::from(A[self.below(A.len() as u64) as usize]))
            .collect()
    }
}

/// A Luhn-valid Visa-style 16-digit card number.
pub fn card(r: &mut Rng) -> String {
    let mut d: Vec<u32> = std::iter::once(4)
        .chain((0..14).map(|_| r.below(10) as u32))
        .collect();
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 0 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    d.push((10 - sum % 10) % 10);
    d.iter()
        .map(|x| char::from_digit(*x, 10).unwrap_or('0'))
        .collect()
}

/// A mod-97-valid Norwegian IBAN (NO + 2 check digits + 11 digits).
pub fn iban(r: &mut Rng) -> String {
    let bban = r.digits(11);
    // Move "NO00" to the end: N=23, O=24.
    let s = format!("{bban}232400");
    let rem = s
        .bytes()
        .fold(0u64, |acc, b| (acc * 10 + u64::from(b - b'0')) % 97);
    format!("NO{:02}{bban}", 98 - rem)
}

/// A mod-11-valid Norwegian fødselsnummer.
pub fn fnr(r: &mut Rng) -> String {
    loop {
        let day = 1 + r.below(28);
        let month = 1 + r.below(12);
        let year = r.below(100);
        let ind = r.below(500);
        let base = format!("{day:02}{month:02}{year:02}{ind:03}");
        let d: Vec<u64> = base.bytes().map(|b| u64::from(b - b'0')).collect();
        let w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
        let k1 = 11 - d.iter().zip(w1).map(|(a, b)| a * b).sum::<u64>() % 11;
        let k1 = if k1 == 11 { 0 } else { k1 };
        if k1 == 10 {
            continue;
        }
        let w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
        let k2 = 11
            - d.iter()
                .chain(std::iter::once(&k1))
                .zip(w2)
                .map(|(a, b)| a * b)
                .sum::<u64>()
                % 11;
        let k2 = if k2 == 11 { 0 } else { k2 };
        if k2 == 10 {
            continue;
        }
        return format!("{base}{k1}{k2}");
    }
}

const NAMES: &[&str] = &[
    "kari.nordmann",
    "ola",
    "anna.berg",
    "mikko.virtanen",
    "freja.jensen",
    "lars.olsen",
];
const DOMAINS: &[&str] = &["example.no", "example.se", "mail.example.fi", "example.dk"];
const PATHS: &[&str] = &[
    "/v1/payments",
    "/v1/refunds",
    "/v1/customers/me",
    "/health",
    "/v1/payments/authorize",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];

/// One line of PII-free or PII-carrying payment-service log. About 2 % of lines carry each
/// PII kind.
pub fn line(r: &mut Rng, seq: u64) -> String {
    let ts = format!(
        "2026-11-26T10:{:02}:{:02}.{:03}Z",
        (seq / 60_000) % 60,
        (seq / 1000) % 60,
        seq % 1000
    );
    let order = r.digits(10);
    let trace = r.hex(32);
    let amount = format!("{}.{:02}", r.below(5000), r.below(100));
    let pii = match r.below(50) {
        0 => format!(" customer_email={}@{}", r.pick(NAMES), r.pick(DOMAINS)),
        1 => format!(" card={}", card(r)),
        2 => format!(" iban={}", iban(r)),
        3 => format!(" phone=+47 {} {} {}", r.digits(3), r.digits(2), r.digits(3)),
        4 => format!(" national_id={}", fnr(r)),
        5 => format!(
            " client_ip=10.{}.{}.{}",
            r.below(256),
            r.below(256),
            r.below(256)
        ),
        6 => format!(
            " auth=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ{}.{}",
            r.alnum(24),
            r.alnum(43)
        ),
        7 => format!(" api_key=sk_live_{}", r.alnum(24)),
        _ => String::new(),
    };
    match r.below(3) {
        0 => format!(
            "{ts} {} payment-service [{}] order={order} amount={amount} currency=NOK trace={trace} status={}{pii}",
            r.pick(LEVELS),
            r.pick(&["worker-1", "worker-2", "http-nio-8080-exec-3"]),
            r.pick(&["authorized", "captured", "declined", "pending"]),
        ),
        1 => format!(
            "10.0.{}.{} - - [{ts}] \"{} {} HTTP/1.1\" {} {} {}ms trace={trace}{pii}",
            r.below(256),
            r.below(256),
            r.pick(&["GET", "POST", "PUT"]),
            r.pick(PATHS),
            r.pick(&["200", "200", "201", "400", "402", "500"]),
            r.below(20_000),
            r.below(900),
        ),
        _ => format!(
            "{{\"ts\":\"{ts}\",\"level\":\"{}\",\"msg\":\"payment event\",\"order_id\":\"{order}\",\"amount\":{amount},\"trace_id\":\"{trace}\",\"seq\":{seq},\"detail\":\"{}\"}}",
            r.pick(LEVELS).to_ascii_lowercase(),
            pii.trim(),
        ),
    }
}

/// Writes about `bytes` of log lines to `w`; returns (lines, bytes written).
pub fn write_log(w: &mut impl Write, seed: u64, bytes: u64) -> std::io::Result<(u64, u64)> {
    let mut r = Rng::new(seed);
    let (mut n, mut written) = (0u64, 0u64);
    while written < bytes {
        let mut l = line(&mut r, n);
        l.push('\n');
        w.write_all(l.as_bytes())?;
        written += l.len() as u64;
        n += 1;
    }
    Ok((n, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_valid_check_digits() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_log(&mut a, 7, 100_000).unwrap();
        write_log(&mut b, 7, 100_000).unwrap();
        assert_eq!(a, b);
        let mut r = Rng::new(3);
        for _ in 0..100 {
            let c = card(&mut r);
            assert_eq!(c.len(), 16);
            let ib = iban(&mut r);
            // mod-97 of the rearranged IBAN is 1.
            let re = format!("{}{}", &ib[4..], "2324");
            let s = format!("{re}{}", &ib[2..4]);
            assert_eq!(
                s.bytes()
                    .fold(0u64, |acc, b| (acc * 10 + u64::from(b - b'0')) % 97),
                1,
                "{ib}"
            );
            assert_eq!(fnr(&mut r).len(), 11);
        }
    }
}
