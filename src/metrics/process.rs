//! The agent's own process, read from `/proc/self` at each scrape: resident memory, CPU time
//! and open descriptors (`logward_process_*`, the standard process metrics under logward's
//! prefix). Nothing here runs between scrapes; on a system without `/proc` the metrics are
//! left out, never reported as zero.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug)]
pub struct Process;

/// What `/proc/self/stat` says of the process.
#[derive(Debug, PartialEq)]
struct Stat {
    /// User plus system time, in clock ticks.
    cpu_ticks: u64,
    /// Resident set, in pages.
    rss_pages: u64,
}

impl Stat {
    /// Parses the one line of `/proc/self/stat`. The command name (field 2) is in parentheses
    /// and may hold spaces and parentheses itself: fields are counted after its last `)`.
    fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): field N is fields[N - 3].
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            cpu_ticks: field(14)? + field(15)?,
            rss_pages: field(24)?,
        })
    }
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| Stat::parse(&t))
        {
            // SAFETY: sysconf reads a constant of the system; it has no preconditions.
            let (page, ticks) = unsafe {
                (
                    libc::sysconf(libc::_SC_PAGESIZE),
                    libc::sysconf(libc::_SC_CLK_TCK),
                )
            };
            let rss = ConstGauge::new(stat.rss_pages as f64 * page.max(0) as f64);
            rss.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory of the logward process (RSS)",
                None,
                rss.metric_type(),
            )?)?;
            let cpu = ConstCounter::new(stat.cpu_ticks as f64 / ticks.max(1) as f64);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "CPU time the logward process has used, user and system",
                None,
                cpu.metric_type(),
            )?)?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let open = ConstGauge::new(i64::try_from(fds.count()).unwrap_or(i64::MAX));
            open.encode(encoder.encode_descriptor(
                "process_open_fds",
                "File descriptors the logward process holds open",
                None,
                open.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_counts_fields_after_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (log (ward) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 150 50 0 0 20 0 6 0 \
                    98765 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                cpu_ticks: 200,
                rss_pages: 2048
            })
        );
    }

    #[test]
    fn stat_of_this_process_parses() {
        let text = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
        let stat = Stat::parse(&text).expect("parses");
        assert!(stat.rss_pages > 0, "{text}");
    }
}
