//! When a read must stop: the server's `query_timeout` as the store's loops see it.
//!
//! Invariant: a loop over stored lines checks its [`Watch`] before each chunk and for every
//! line, and the watch reads the clock every [`CHECK_EVERY_LINES`] lines, so a read stops
//! within that many lines of its deadline, whatever the line filters drop and however much
//! a pipeline costs per line.

use std::time::{Duration, Instant};

use super::StoreError;

/// Lines between two readings of the clock.
pub const CHECK_EVERY_LINES: u32 = 64;

/// A read's deadline, or none.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Option<Instant>,
    /// What the deadline was set to, for the error.
    limit: Duration,
}

impl Deadline {
    /// No deadline: offline commands and benchmarks.
    pub const NONE: Deadline = Deadline {
        at: None,
        limit: Duration::ZERO,
    };

    /// `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(limit),
            limit,
        }
    }

    /// [`StoreError::DeadlineExceeded`] once the deadline has passed.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.at {
            Some(at) if Instant::now() >= at => {
                Err(StoreError::DeadlineExceeded { limit: self.limit })
            }
            _ => Ok(()),
        }
    }

    /// A watch for one loop over lines.
    pub fn watch(&self) -> Watch {
        Watch {
            deadline: *self,
            lines: 0,
            passed: false,
        }
    }
}

/// A deadline checked while lines go by: [`Watch::passed`] for each line (cheap: the clock
/// is read every [`CHECK_EVERY_LINES`]), then [`Watch::result`] after the loop.
#[derive(Debug)]
pub struct Watch {
    deadline: Deadline,
    lines: u32,
    passed: bool,
}

impl Watch {
    /// Whether the deadline has passed: once it has, every later line is skipped.
    pub fn passed(&mut self) -> bool {
        if !self.passed && self.deadline.at.is_some() {
            self.lines += 1;
            if self.lines >= CHECK_EVERY_LINES {
                self.lines = 0;
                self.passed = self.deadline.check().is_err();
            }
        }
        self.passed
    }

    /// The error, when the deadline passed during the loop.
    pub fn result(&self) -> Result<(), StoreError> {
        if self.passed {
            self.deadline.check()
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_deadline_stops_a_loop_within_the_check_interval() {
        let d = Deadline::after(Duration::ZERO);
        assert!(matches!(
            d.check(),
            Err(StoreError::DeadlineExceeded { .. })
        ));
        let mut w = d.watch();
        let seen = (0..10 * CHECK_EVERY_LINES).filter(|_| !w.passed()).count();
        assert_eq!(seen, CHECK_EVERY_LINES as usize - 1);
        assert!(w.result().is_err());

        let mut none = Deadline::NONE.watch();
        assert!((0..10 * CHECK_EVERY_LINES).all(|_| !none.passed()));
        assert!(none.result().is_ok() && Deadline::NONE.check().is_ok());
        let far = Deadline::after(Duration::from_secs(3600));
        let mut w = far.watch();
        assert!((0..10 * CHECK_EVERY_LINES).all(|_| !w.passed()));
    }
}
