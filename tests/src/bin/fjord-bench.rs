//! End-to-end benchmark: a realistic payment log of N MB is read from its start by the real
//! agent (default rule packs) and shipped to the real aggregator, until the last batch is
//! acknowledged. Prints agent CPU seconds, MB per agent CPU-second, peak RSS of both
//! processes and stored bytes per raw byte.
//!
//! Run: `cargo build --release --workspace && target/release/fjord-bench --mb 256`

use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use fjord_e2e::{agent_config, cpu_seconds, gen, peak_rss_kib, start_agent, wait_for, Aggregator};

#[derive(Parser)]
#[command(about = "fjord end-to-end throughput benchmark")]
struct Args {
    /// Size of the generated log in MB (10^6 bytes).
    #[arg(long, default_value_t = 256)]
    mb: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("logs"))?;
    let log = dir.path().join("logs/app.log");
    let (lines, bytes) = gen::write_log(
        &mut BufWriter::new(std::fs::File::create(&log)?),
        args.seed,
        args.mb * 1_000_000,
    )?;
    eprintln!("generated {lines} lines, {bytes} bytes");

    let agg = Aggregator::start(dir.path());
    let cfg = agent_config(dir.path(), &agg.url(), "");
    let started = Instant::now();
    let mut agent = start_agent(dir.path(), &cfg);
    let (mut agent_cpu, mut agent_rss, mut agg_rss) = (0.0, 0, 0);
    wait_for("every line acknowledged", Duration::from_secs(3600), || {
        // Sample before checking, so the figures include the whole run.
        agent_cpu = cpu_seconds(agent.pid()).unwrap_or(agent_cpu);
        agent_rss = peak_rss_kib(agent.pid()).unwrap_or(agent_rss);
        agg_rss = peak_rss_kib(agg.proc.pid()).unwrap_or(agg_rss);
        if let Ok(Some(st)) = agent.child.try_wait() {
            panic!("the agent exited early ({st}); see its log in the temp dir");
        }
        agg.stored_records() >= lines
    });
    let wall = started.elapsed().as_secs_f64();
    agent_cpu = cpu_seconds(agent.pid()).unwrap_or(agent_cpu);
    let agg_cpu = cpu_seconds(agg.proc.pid()).unwrap_or(0.0);
    let stored = dir_bytes(&agg.data);
    let mb = bytes as f64 / 1e6;
    println!("raw_mb                 {mb:.1}");
    println!("lines                  {lines}");
    println!("wall_s                 {wall:.2}");
    println!("agent_cpu_s            {agent_cpu:.2}");
    println!("agent_mb_per_cpu_s     {:.1}", mb / agent_cpu.max(0.01));
    println!("agent_peak_rss_mib     {:.1}", agent_rss as f64 / 1024.0);
    println!("aggregator_cpu_s       {agg_cpu:.2}");
    println!("aggregator_peak_rss_mib {:.1}", agg_rss as f64 / 1024.0);
    println!("stored_bytes_per_raw   {:.3}", stored as f64 / bytes as f64);
    Ok(())
}
