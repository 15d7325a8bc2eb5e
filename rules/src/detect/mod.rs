//! Built-in detectors: a regex that finds candidates and, where the kind of number has one,
//! a validator that accepts only candidates whose check digits hold.

use crate::validate;

/// A built-in detector, named in rule packs by its `detector = "<name>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    /// E-mail addresses.
    Email,
    /// Payment card numbers: 13–19 digits with optional single spaces or dashes, Luhn-valid.
    Card,
}

impl Detector {
    /// Every detector, for listings and error messages.
    pub const ALL: &'static [Detector] = &[Detector::Email, Detector::Card];

    /// The name used in rule files.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Card => "card",
        }
    }

    /// Looks a detector up by its rule-file name.
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.iter().copied().find(|d| d.name() == name)
    }

    /// The candidate pattern. Word boundaries are ASCII-only (`(?-u:\b)`), which keeps the
    /// automaton small and fast.
    pub fn pattern(self) -> &'static str {
        match self {
            Detector::Email => {
                r"(?-u:\b)[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?-u:\b)"
            }
            Detector::Card => r"(?-u:\b)[2-6]\d{3}(?:[ -]?\d){9,15}(?-u:\b)",
        }
    }

    /// The validator a candidate must pass, if the kind has one.
    pub fn validator(self) -> Option<fn(&str) -> bool> {
        match self {
            Detector::Email => None,
            Detector::Card => Some(validate::card_number),
        }
    }
}
