//! End-to-end benchmark: a realistic payment log of N MB is read from its start by the real
//! agent (default rule packs) and shipped to the real aggregator, until the last batch is
//! acknowledged. Prints agent CPU seconds, MB per agent CPU-second, peak RSS of both
//! processes and stored bytes per raw byte.
//!
//! Run: `cargo build --release --workspace && target/release/fjord-bench --mb 256`
//! (`--tls`: over the aggregator's TLS listener, the agent verifying it with `ca_file`).
//!
//! With `--outage-s N`, it measures backpressure instead: the agent starts with no
//! aggregator listening, the app writes `--write-mb-per-s` for N seconds, the agent's RSS is
//! sampled every 5 s, then the aggregator starts and the time to drain is reported.

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
    /// Backpressure mode: keep the aggregator down for this many seconds while writing.
    #[arg(long, default_value_t = 0)]
    outage_s: u64,
    /// Write rate during the outage, MB per second.
    #[arg(long, default_value_t = 2.0)]
    write_mb_per_s: f64,
    /// Spread the log over this many files (each a different seed), to measure the tailer
    /// with many small files instead of one large one.
    #[arg(long, default_value_t = 1)]
    files: u64,
    /// Ship over TLS: the aggregator with a certificate from a CA made for the run, the
    /// agent trusting that CA with `ca_file`.
    #[arg(long)]
    tls: bool,
    /// Run the agent with no redaction rules at all (an explicit
    /// `unsafe_disable_baseline`), to measure tailing, batching and shipping alone.
    #[arg(long)]
    no_rules: bool,
    /// Extra agent config lines (TOML), e.g. 'zstd_level = 1'.
    #[arg(long, default_value = "")]
    agent_config: String,
}

/// Current RSS (VmRSS) of a process in KiB.
fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn outage(args: &Args) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("logs"))?;
    let log = dir.path().join("logs/app.log");
    let port = fjord_e2e::free_port();
    let cfg = agent_config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        &args.agent_config,
    );
    let agent = start_agent(dir.path(), &cfg);
    let mut w = BufWriter::new(std::fs::File::create(&log)?);
    let mut rng = gen::Rng::new(args.seed);
    let started = Instant::now();
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut next_sample = 0u64;
    while started.elapsed() < Duration::from_secs(args.outage_s) {
        let due = (started.elapsed().as_secs_f64() * args.write_mb_per_s * 1e6) as u64;
        while bytes < due {
            let l = gen::line(&mut rng, lines);
            writeln!(w, "{l}")?;
            bytes += l.len() as u64 + 1;
            lines += 1;
        }
        w.flush()?;
        let t = started.elapsed().as_secs();
        if t >= next_sample {
            let rss = rss_kib(agent.pid()).unwrap_or(0);
            eprintln!(
                "t={t:>4}s written={:.0}MB agent_rss={:.1}MiB",
                bytes as f64 / 1e6,
                rss as f64 / 1024.0
            );
            samples.push((t, rss));
            next_sample = t + 5;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(w);
    let agg = Aggregator::start_on(
        dir.path(),
        port,
        &["--region", "eu-north-1", "--jurisdiction", "EEA"],
    );
    let up = Instant::now();
    wait_for("every line acknowledged", Duration::from_secs(3600), || {
        agg.stored_records() >= lines
    });
    let rss: Vec<u64> = samples.iter().skip(1).map(|s| s.1).collect();
    let (min, max) = (
        rss.iter().copied().min().unwrap_or(0),
        rss.iter().copied().max().unwrap_or(0),
    );
    println!("outage_s               {}", args.outage_s);
    println!("written_mb             {:.1}", bytes as f64 / 1e6);
    println!("agent_rss_min_mib      {:.1}", min as f64 / 1024.0);
    println!("agent_rss_max_mib      {:.1}", max as f64 / 1024.0);
    println!(
        "agent_peak_rss_mib     {:.1}",
        peak_rss_kib(agent.pid()).unwrap_or(0) as f64 / 1024.0
    );
    println!("drain_s                {:.1}", up.elapsed().as_secs_f64());
    Ok(())
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

/// The CPU the figures were taken on: its model and the instruction sets the hot paths pick
/// at run time. Hosts of one machine kind differ, and so do the figures: the agent measured
/// 1.7x more MB per CPU-second on one host than on another in November 2026.
fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let flags = field("flags");
    let have: Vec<&str> = ["avx2", "bmi2", "avx512bw", "sha_ni"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    let model = field("model name");
    let model = if model.is_empty() { "unknown" } else { &model };
    format!("{model} ({})", have.join(" "))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.outage_s > 0 {
        return outage(&args);
    }
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("logs"))?;
    let (mut lines, mut bytes) = (0, 0);
    let files = args.files.max(1);
    for f in 0..files {
        let log = dir.path().join(format!("logs/app-{f:05}.log"));
        let (l, b) = gen::write_log(
            &mut BufWriter::new(std::fs::File::create(&log)?),
            args.seed + f,
            args.mb * 1_000_000 / files,
        )?;
        lines += l;
        bytes += b;
    }
    eprintln!("generated {lines} lines, {bytes} bytes in {files} file(s)");

    let mut extra = args.agent_config.clone();
    let agg = if args.tls {
        let ca = fjord_e2e::certs::Ca::new("fjord bench CA");
        let ca_file = ca.write(&dir.path().join("ca.pem"));
        let (cert, key) = ca.server().write(dir.path(), "server");
        extra.push_str(&format!("\nca_file = \"{}\"\n", ca_file.display()));
        Aggregator::start_tls(
            dir.path(),
            &[
                "--tls-cert",
                &cert.display().to_string(),
                "--tls-key",
                &key.display().to_string(),
            ],
            fjord_e2e::tls::ClientTls::ca(ca_file),
        )
    } else {
        Aggregator::start(dir.path())
    };
    if args.no_rules {
        let rules = dir.path().join("rules");
        std::fs::create_dir_all(&rules)?;
        std::fs::write(
            rules.join("none.toml"),
            "name = \"none\"\nextends = []\nunsafe_disable_baseline = true\n",
        )?;
        extra.push_str(&format!("\nrules_dir = \"{}\"\n", rules.display()));
    }
    let cfg = agent_config(dir.path(), &agg.url(), &extra);
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
    let sent =
        fjord_e2e::agent_metric(&cfg, "fjord_agent_compressed_bytes_acked_total").unwrap_or(0.0);
    let raw_acked =
        fjord_e2e::agent_metric(&cfg, "fjord_agent_raw_bytes_acked_total").unwrap_or(0.0);
    let mb = bytes as f64 / 1e6;
    println!("cpu                    {}", cpu());
    println!(
        "transport              {}",
        if args.tls { "https" } else { "http" }
    );
    println!("raw_mb                 {mb:.1}");
    println!("lines                  {lines}");
    println!("wall_s                 {wall:.2}");
    println!("agent_cpu_s            {agent_cpu:.2}");
    println!("agent_mb_per_cpu_s     {:.1}", mb / agent_cpu.max(0.01));
    println!("agent_peak_rss_mib     {:.1}", agent_rss as f64 / 1024.0);
    println!("aggregator_cpu_s       {agg_cpu:.2}");
    println!("aggregator_peak_rss_mib {:.1}", agg_rss as f64 / 1024.0);
    println!("stored_bytes_per_raw   {:.3}", stored as f64 / bytes as f64);
    println!("wire_bytes_per_raw     {:.3}", sent / raw_acked.max(1.0));
    Ok(())
}
