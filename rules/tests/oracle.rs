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

/// One kind of national id: idsmith's generator and validator for it, ours, and the written
/// forms to plant for a generated id (given its birth year).
struct NationalId {
    rule: &'static str,
    seed: u64,
    years: std::ops::RangeInclusive<u16>,
    generate: fn(&GenOptions, &mut StdRng) -> String,
    theirs: fn(&str) -> bool,
    ours: fn(&str) -> bool,
    forms: fn(&str, u16, &mut StdRng) -> Vec<String>,
}

/// Generates [`PER_KIND`] ids with idsmith: both validators accept each, and every written
/// form is masked.
fn national(k: NationalId) {
    let r = redactor();
    let mut rng = StdRng::seed_from_u64(k.seed);
    let mut recall = Recall::new(k.rule);
    for _ in 0..PER_KIND {
        let o = opts(&mut rng, k.years.clone());
        let id = (k.generate)(&o, &mut rng);
        assert!((k.theirs)(&id), "{id}");
        assert!((k.ours)(&id), "{id}");
        let year = o.year.unwrap_or(2000);
        for written in (k.forms)(&id, year, &mut rng) {
            recall.check(&r, &written, k.rule);
        }
    }
    recall.assert();
}

#[test]
fn idsmith_norwegian_ids_are_masked() {
    national(NationalId {
        rule: "no-fnr",
        seed: 0x0f0d_5e15,
        years: 1900..=2030,
        generate: personal_id::no::generate,
        theirs: personal_id::no::validate,
        ours: validate::no_fnr,
        forms: |id, _, _| vec![id.to_owned(), format!("{} {}", &id[..6], &id[6..])],
    });
}

#[test]
fn idsmith_swedish_ids_are_masked() {
    national(NationalId {
        rule: "se-pnr",
        seed: 46,
        years: 1901..=2024,
        generate: personal_id::se::generate,
        theirs: personal_id::se::validate,
        ours: validate::se_personnummer,
        // As generated (`-`, or `+` at 100 and over), with the century, and compact with
        // the century after a key.
        forms: |id, year, _| {
            let century = year / 100;
            let digits: String = id.chars().filter(char::is_ascii_digit).collect();
            vec![
                id.to_owned(),
                format!("{century}{}-{}", &digits[..6], &digits[6..]),
                format!("personnummer={century}{digits}"),
            ]
        },
    });
}

#[test]
fn idsmith_danish_ids_are_masked() {
    national(NationalId {
        rule: "dk-cpr",
        seed: 45,
        years: 1901..=2024,
        generate: personal_id::dk::generate,
        theirs: personal_id::dk::validate,
        ours: validate::dk_cpr,
        forms: |id, _, _| vec![format!("{}-{}", &id[..6], &id[6..]), format!("cpr={id}")],
    });
}

#[test]
fn idsmith_finnish_ids_are_masked() {
    national(NationalId {
        rule: "fi-hetu",
        seed: 358,
        years: 1860..=2024,
        generate: personal_id::fi::generate,
        theirs: personal_id::fi::validate,
        ours: validate::fi_hetu,
        // As generated, and with another century sign of its century (the 2023 ones).
        forms: |id, _, rng| {
            let other: &[u8] = match id.as_bytes()[6] {
                b'-' => b"UVWXY",
                b'A' => b"BCDEF",
                _ => b"",
            };
            let mut forms = vec![id.to_owned()];
            if let Some(&c) = other.get(rng.gen_range(0..other.len().max(1))) {
                forms.push(format!("{}{}{}", &id[..6], char::from(c), &id[7..]));
            }
            forms
        },
    });
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
