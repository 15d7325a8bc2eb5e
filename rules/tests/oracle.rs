//! The detectors against an independent generator: `idsmith` (crates.io) generates
//! checksum-valid Norwegian, Swedish, Danish and Finnish national ids, IBANs for every SEPA
//! country and card numbers of six brands with its own code. Every value it generates must
//! be masked by the default packs, in every written form the docs promise (recall ≥ 99.9 %
//! per kind; in practice all), and our validators must accept what its validators accept.
//! So the tests do not only check fjord's validators against themselves.
//!
//! The generator is seeded, so every run sees the same values.

use fjord_rules::{resolve, validate, Counts, Redactor};
use idsmith::personal_id::{self, GenOptions};
use rand08::rngs::StdRng;
use rand08::{Rng, SeedableRng};

/// Values per kind.
const PER_KIND: usize = 4_000;
/// Minimum share of a kind's values that must be masked.
const MIN_RECALL: f64 = 0.999;

/// The SEPA countries and territories with their own IBAN country code (EU, EEA,
/// Switzerland, the UK, Monaco, San Marino, Vatican City, Andorra, Gibraltar, and since 2024
/// Albania, Moldova, Montenegro and North Macedonia). Territories such as Åland, the Channel
/// Islands or the French overseas departments use their parent's code.
const SEPA: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", "CH", "GB",
    "MC", "SM", "VA", "AD", "GI", "AL", "MD", "ME", "MK",
];

fn redactor() -> Redactor {
    Redactor::new(&resolve(&[]).unwrap(), None).unwrap()
}

/// Counts, for one kind, the written values that a line carrying them leaks; prints the
/// first few misses and asserts the recall. A value masked by another rule (a Swedish
/// `YYMMDD+NNNN` that is also a valid Finnish HETU) has not leaked; it is counted apart.
struct Recall {
    kind: &'static str,
    total: usize,
    by_other_rule: usize,
    missed: Vec<String>,
}

impl Recall {
    fn new(kind: &'static str) -> Recall {
        Recall {
            kind,
            total: 0,
            by_other_rule: 0,
            missed: Vec::new(),
        }
    }

    /// `written` appears in a log line (plain text and JSON); the line must come out
    /// without it.
    fn check(&mut self, r: &Redactor, written: &str, rule: &str) {
        self.total += 1;
        let lines = [
            format!("2026-11-27T10:00:00.123Z INFO lookup {written} ok"),
            format!("{{\"level\":\"info\",\"msg\":\"lookup {written}\",\"n\":1}}"),
        ];
        let mut other = false;
        for line in lines {
            let out = r
                .apply(&line, &mut Counts::default())
                .map(|c| c.into_owned())
                .unwrap_or_default();
            if out.contains(written) || !out.contains("[REDACTED:") {
                self.missed.push(format!("{line}\n   -> {out}"));
                return;
            }
            other |= !out.contains(&format!("[REDACTED:{rule}]"));
        }
        self.by_other_rule += usize::from(other);
    }

    fn assert(self) {
        let recall = 1.0 - self.missed.len() as f64 / self.total as f64;
        println!(
            "oracle {}: {} values, {} leaked, {} masked by another rule, recall {:.3} %",
            self.kind,
            self.total,
            self.missed.len(),
            self.by_other_rule,
            recall * 100.0
        );
        assert!(
            recall >= MIN_RECALL,
            "{}: recall {recall} below {MIN_RECALL}; first misses:\n{}",
            self.kind,
            self.missed[..self.missed.len().min(10)].join("\n")
        );
    }
}

fn opts(rng: &mut StdRng, years: std::ops::RangeInclusive<u16>) -> GenOptions {
    GenOptions {
        year: Some(rng.gen_range(years)),
        ..GenOptions::default()
    }
}

#[test]
fn idsmith_norwegian_ids_are_masked() {
    let r = redactor();
    let mut rng = StdRng::seed_from_u64(0x0f0d_5e15);
    let mut recall = Recall::new("no-fnr");
    for _ in 0..PER_KIND {
        let o = opts(&mut rng, 1900..=2030);
        let id = personal_id::no::generate(&o, &mut rng);
        assert!(personal_id::no::validate(&id));
        assert!(validate::no_fnr(&id), "{id}");
        recall.check(&r, &id, "no-fnr");
        recall.check(&r, &format!("{} {}", &id[..6], &id[6..]), "no-fnr");
    }
    recall.assert();
}

/// Every 11-digit number idsmith's validator accepts (today's rule) and whose DDMM is a
/// date, D-number day or not, is accepted by ours: ours only adds the 2032 rule.
#[test]
fn no_fnr_accepts_everything_the_classic_rule_accepts() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut seen = 0;
    for _ in 0..400_000 {
        let day: u32 = rng.gen_range(1..=28) + if rng.gen_bool(0.3) { 40 } else { 0 };
        let n = format!(
            "{day:02}{:02}{:07}",
            rng.gen_range(1..=12),
            rng.gen_range(0..10_000_000)
        );
        if personal_id::no::validate(&n) {
            seen += 1;
            assert!(validate::no_fnr(&n), "{n}");
        }
    }
    assert!(seen > 2_000, "{seen}");
}

#[test]
fn idsmith_swedish_ids_are_masked() {
    let r = redactor();
    let mut rng = StdRng::seed_from_u64(46);
    let mut recall = Recall::new("se-pnr");
    for _ in 0..PER_KIND {
        let o = opts(&mut rng, 1901..=2024);
        let century = o.year.unwrap_or(2000) / 100;
        let id = personal_id::se::generate(&o, &mut rng);
        assert!(personal_id::se::validate(&id));
        assert!(validate::se_personnummer(&id), "{id}");
        recall.check(&r, &id, "se-pnr");
        // With the century, and compact after a key.
        let digits: String = id.chars().filter(char::is_ascii_digit).collect();
        recall.check(
            &r,
            &format!("{century}{}-{}", &digits[..6], &digits[6..]),
            "se-pnr",
        );
        recall.check(&r, &format!("personnummer={century}{digits}"), "se-pnr");
    }
    recall.assert();
}

#[test]
fn idsmith_danish_ids_are_masked() {
    let r = redactor();
    let mut rng = StdRng::seed_from_u64(45);
    let mut recall = Recall::new("dk-cpr");
    for _ in 0..PER_KIND {
        let o = opts(&mut rng, 1901..=2024);
        let id = personal_id::dk::generate(&o, &mut rng);
        assert!(personal_id::dk::validate(&id));
        assert!(validate::dk_cpr(&id), "{id}");
        recall.check(&r, &format!("{}-{}", &id[..6], &id[6..]), "dk-cpr");
        recall.check(&r, &format!("cpr={id}"), "dk-cpr");
    }
    recall.assert();
}

#[test]
fn idsmith_finnish_ids_are_masked() {
    let r = redactor();
    let mut rng = StdRng::seed_from_u64(358);
    let mut recall = Recall::new("fi-hetu");
    for _ in 0..PER_KIND {
        let o = opts(&mut rng, 1860..=2024);
        let id = personal_id::fi::generate(&o, &mut rng);
        assert!(personal_id::fi::validate(&id));
        assert!(validate::fi_hetu(&id), "{id}");
        recall.check(&r, &id, "fi-hetu");
        // The same number with the other century signs of its century (2023 reform).
        let other = match id.as_bytes()[6] {
            b'-' => b"UVWXY".as_slice(),
            b'A' => b"BCDEF".as_slice(),
            _ => b"".as_slice(),
        };
        if let Some(&c) = other.get(rng.gen_range(0..other.len().max(1))) {
            let mut alt = id.clone().into_bytes();
            alt[6] = c;
            let alt = String::from_utf8(alt).unwrap();
            recall.check(&r, &alt, "fi-hetu");
        }
    }
    recall.assert();
}

#[test]
fn idsmith_ibans_of_every_sepa_country_are_masked() {
    let r = redactor();
    let mut rng = StdRng::seed_from_u64(97);
    let mut recall = Recall::new("iban");
    for cc in SEPA {
        for _ in 0..PER_KIND / SEPA.len() + 1 {
            let compact = idsmith::iban::generate_iban(Some(cc), &mut rng).unwrap();
            assert_eq!(
                validate::iban_length(cc.as_bytes()),
                Some(compact.len()),
                "{cc}: length table differs from idsmith's registry"
            );
            assert!(validate::iban(&compact), "{compact}");
            let grouped = idsmith::iban::format_iban(&compact);
            for written in [
                compact.clone(),
                grouped.clone(),
                compact.to_ascii_lowercase(),
                grouped.to_ascii_lowercase(),
            ] {
                recall.check(&r, &written, "iban");
            }
        }
    }
    recall.assert();
}

#[test]
fn idsmith_cards_are_masked() {
    let r = redactor();
    let mut rng = StdRng::seed_from_u64(4111);
    let mut recall = Recall::new("card");
    let cards = idsmith::credit_cards();
    for brand in ["visa", "mastercard", "amex", "discover", "jcb", "diners"] {
        let o = idsmith::credit_card::GenOptions {
            brand: Some(brand.into()),
            current_year: Some(26),
        };
        for _ in 0..PER_KIND / 6 {
            let c = cards.generate(&o, &mut rng).unwrap();
            assert!(cards.validate(&c.number));
            assert!(validate::card_number(&c.number), "{}", c.number);
            for written in [
                c.number.clone(),
                c.formatted.clone(),
                c.formatted.replace(' ', "-"),
            ] {
                recall.check(&r, &written, "card");
            }
        }
    }
    recall.assert();
}
