//! Process metrics read from `/proc/self` at scrape time: CPU seconds, resident memory and
//! open file descriptors, named like the Prometheus client libraries' `process_*` series
//! under the registering binary's prefix (`fjord_agent_`, `fjord_aggregator_`). One
//! collector for both binaries, so their process series mean exactly the same. Linux only;
//! elsewhere the collector is not registered, and a value that cannot be read at a scrape is
//! left out of that scrape rather than shown as 0.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads the running process's own figures on every scrape; register it with
/// `Registry::register_collector` under the binary's prefix.
#[derive(Debug)]
pub struct ProcessCollector;

/// User plus system CPU time, in clock ticks, from the text of `/proc/self/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and `)`, so
/// fields are counted from the last `)`: utime and stime are fields 14 and 15.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Resident pages, the second field of `/proc/self/statm`.
pub fn resident_pages(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

fn cpu_seconds() -> Option<f64> {
    let ticks = cpu_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    Some(ticks as f64 / sysconf(libc::_SC_CLK_TCK)? as f64)
}

fn resident_bytes() -> Option<i64> {
    let pages = resident_pages(&std::fs::read_to_string("/proc/self/statm").ok()?)?;
    i64::try_from(pages.checked_mul(sysconf(libc::_SC_PAGESIZE)?)?).ok()
}

fn open_fds() -> Option<i64> {
    // The directory handle used to list it is counted too, as other exporters do.
    i64::try_from(std::fs::read_dir("/proc/self/fd").ok()?.count()).ok()
}

fn encode_one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(s) = cpu_seconds() {
            encode_one(
                &mut encoder,
                "process_cpu_seconds",
                "User and system CPU time of the process, in seconds",
                &ConstCounter::new(s),
            )?;
        }
        if let Some(b) = resident_bytes() {
            encode_one(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory of the process",
                &ConstGauge::new(b),
            )?;
        }
        if let Some(n) = open_fds() {
            encode_one(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors of the process",
                &ConstGauge::new(n),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_counts_fields_after_the_command_name() {
        let stat = "4242 (fjord agent) (x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                    150 25 0 0 20 0 9 0 100 1000000 500 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(175));
        assert_eq!(cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn resident_pages_is_the_second_field() {
        assert_eq!(resident_pages("5000 1234 300 10 0 900 0\n"), Some(1234));
        assert_eq!(resident_pages("5000"), None);
    }
}
