//! End-to-end benchmark: a realistic payment log of N MB is read from its start by the real
//! agent (default rule packs) and shipped to the real aggregator, until the last batch is
//! acknowledged. Prints agent CPU seconds, MB per agent CPU-second, peak RSS of both
//! processes, the aggregator's ingest MB per CPU-second, a `|=` scan over everything stored
//! through the query API, and stored bytes per raw byte.
//!
//! Run: `cargo build --release --workspace && target/release/fjord-bench --mb 256`
//! (`--tls`: over the aggregator's TLS listener, the agent verifying it with `ca_file`).
//!
//! With `--store postgres`, the aggregator stores into a PostgreSQL the harness starts
//! (Debian's `postgresql`, fsync on), and `--replicas N` runs N aggregator replicas over it
//! behind a round-robin TCP front; PostgreSQL's CPU (postmaster and every child) is counted
//! beside the replicas'.
//!
//! With `--outage-s N`, it measures backpressure instead: the agent starts with no
//! aggregator listening, the app writes `--write-mb-per-s` for N seconds, the agent's RSS is
//! sampled every 5 s, then the aggregator starts and the time to drain is reported.

use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use fjord_e2e::postgres::Postgres;
use fjord_e2e::round_robin::RoundRobin;
use fjord_e2e::{agent_config, cpu_seconds, gen, peak_rss_kib, start_agent, wait_for, Aggregator};

/// Declared by every aggregator the bench starts.
const EEA: [&str; 4] = ["--region", "eu-north-1", "--jurisdiction", "EEA"];
/// The scan's line filter: it matches no generated line, so every stored chunk is read.
const SCAN_QUERY: &str = r#"{team="payments"} |= "no-such-needle""#;
/// Scans run after ingest: wall time is their median, CPU their mean (a scan of 128 MB
/// takes a few of `/proc`'s 10 ms clock ticks).
const SCAN_RUNS: usize = 5;
/// The scan's range reaches this far back: everything the aggregator accepts (it refuses
/// entries older than 7 days by default).
const SCAN_SINCE: Duration = Duration::from_secs(8 * 86_400);
/// The scan's range reaches this far ahead, past any clock skew the aggregator accepts.
const SCAN_AHEAD: Duration = Duration::from_secs(3600);
/// Bytes of every table, partition, TOAST table and index of the aggregator's schema (not
/// the WAL): the plain tables, day partitions included, each with its TOAST table and
/// indexes (`pg_total_relation_size`). A partitioned table or index has no storage of its
/// own (its size is 0), so summing the leaves counts everything once.
const PG_STORED_BYTES_SQL: &str = "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'public' AND c.relkind = 'r'";

/// Where the aggregator keeps what it stores.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Store {
    /// One SQLite file in the aggregator's data directory (the default).
    Sqlite,
    /// A PostgreSQL the bench starts (fsync on), shared by `--replicas` aggregators.
    Postgres,
}

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
    /// The aggregator's store.
    #[arg(long, value_enum, default_value_t = Store::Sqlite)]
    store: Store,
    /// Aggregator replicas over the one PostgreSQL, behind a round-robin TCP front
    /// (`--store postgres` only).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=8))]
    replicas: u64,
    /// Put the round-robin front before the aggregator even when there is one, so that one
    /// replica and `--replicas N` are compared on the same path (always on with N > 1).
    #[arg(long)]
    round_robin: bool,
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

/// The CPU seconds of every store process: the replicas and, on PostgreSQL, the server.
#[derive(Clone, Copy, Default)]
struct StoreCpu {
    replicas: f64,
    postgres: f64,
}

impl StoreCpu {
    fn sample(replicas: &[Aggregator], pg: Option<&Postgres>) -> StoreCpu {
        StoreCpu {
            replicas: replicas
                .iter()
                .filter_map(|a| cpu_seconds(a.proc.pid()))
                .sum(),
            postgres: pg.and_then(Postgres::cpu_seconds).unwrap_or(0.0),
        }
    }

    fn since(self, before: StoreCpu) -> StoreCpu {
        StoreCpu {
            replicas: self.replicas - before.replicas,
            postgres: self.postgres - before.postgres,
        }
    }

    fn total(self) -> f64 {
        self.replicas + self.postgres
    }
}

/// One `|=` scan through the query API.
struct Scan {
    wall_s: f64,
    cpu: StoreCpu,
}

/// `query_range` with [`SCAN_QUERY`] over everything stored, through `agg`'s HTTP API.
fn scan(agg: &Aggregator, replicas: &[Aggregator], pg: Option<&Postgres>) -> anyhow::Result<Scan> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let end = (now + SCAN_AHEAD).as_nanos();
    let start = (now.saturating_sub(SCAN_SINCE)).as_nanos();
    let path = format!(
        "/loki/api/v1/query_range?query={}&start={start}&end={end}&limit=5000&direction=forward",
        url_encode(SCAN_QUERY)
    );
    let before = StoreCpu::sample(replicas, pg);
    let started = Instant::now();
    let (status, body) = agg.get(&path)?;
    let wall_s = started.elapsed().as_secs_f64();
    let cpu = StoreCpu::sample(replicas, pg).since(before);
    anyhow::ensure!(status == 200, "scan answered {status}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body)?;
    anyhow::ensure!(
        v["data"]["result"].as_array().is_some_and(|r| r.is_empty()),
        "the scan's needle matched stored lines: {body}"
    );
    Ok(Scan { wall_s, cpu })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.replicas > 1 && args.store != Store::Postgres {
        eprintln!("fjord-bench: --replicas needs --store postgres");
        std::process::exit(64);
    }
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

    let pg = match args.store {
        Store::Sqlite => None,
        Store::Postgres => Some(
            Postgres::builder()
                .fsync(true)
                .start()
                .map_err(anyhow::Error::msg)?,
        ),
    };
    let mut extra = args.agent_config.clone();
    let mut replica_args: Vec<String> = EEA.iter().map(|a| a.to_string()).collect();
    if let Some(pg) = &pg {
        replica_args.extend(["--store".to_owned(), pg.dsn()]);
    }
    let tls = if args.tls {
        let ca = fjord_e2e::certs::Ca::new("fjord bench CA");
        let ca_file = ca.write(&dir.path().join("ca.pem"));
        let (cert, key) = ca.server().write(dir.path(), "server");
        extra.push_str(&format!("\nca_file = \"{}\"\n", ca_file.display()));
        replica_args.extend([
            "--tls-cert".to_owned(),
            cert.display().to_string(),
            "--tls-key".to_owned(),
            key.display().to_string(),
        ]);
        Some(fjord_e2e::tls::ClientTls::ca(ca_file))
    } else {
        None
    };
    let replica_args: Vec<&str> = replica_args.iter().map(String::as_str).collect();
    let mut replicas = Vec::new();
    for r in 0..args.replicas {
        let home = if args.replicas == 1 {
            dir.path().to_owned()
        } else {
            dir.path().join(format!("replica-{r}"))
        };
        std::fs::create_dir_all(&home)?;
        replicas.push(match &tls {
            // `start_tls` declares EEA itself; the TLS flags are in `replica_args`.
            Some(client) => {
                Aggregator::start_tls(&home, &replica_args[EEA.len()..], client.clone())
            }
            None => Aggregator::start_on(&home, fjord_e2e::free_port(), &replica_args),
        });
    }
    let front = if replicas.len() > 1 || args.round_robin {
        Some(RoundRobin::start(
            replicas.iter().map(|a| a.addr).collect(),
        )?)
    } else {
        None
    };
    let url = match &front {
        Some(f) => format!("{}://{}", if args.tls { "https" } else { "http" }, f.addr),
        None => replicas[0].url(),
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
    let cfg = agent_config(dir.path(), &url, &extra);
    let store_before = StoreCpu::sample(&replicas, pg.as_ref());
    let bench_pid = std::process::id() as i32;
    let bench_before = cpu_seconds(bench_pid).unwrap_or(0.0);
    let started = Instant::now();
    let mut agent = start_agent(dir.path(), &cfg);
    let (mut agent_cpu, mut agent_rss) = (0.0, 0);
    let mut agg_rss = vec![0; replicas.len()];
    // Done when the agent has every record acknowledged: its own counter, so that the wait
    // costs the store nothing. The stored count is checked once after.
    wait_for("every line acknowledged", Duration::from_secs(3600), || {
        // Sample before checking, so the figures include the whole run.
        agent_cpu = cpu_seconds(agent.pid()).unwrap_or(agent_cpu);
        agent_rss = peak_rss_kib(agent.pid()).unwrap_or(agent_rss);
        for (rss, a) in agg_rss.iter_mut().zip(&replicas) {
            *rss = peak_rss_kib(a.proc.pid()).unwrap_or(*rss);
        }
        if let Ok(Some(st)) = agent.child.try_wait() {
            panic!("the agent exited early ({st}); see its log in the temp dir");
        }
        fjord_e2e::agent_metric(&cfg, "fjord_agent_records_acked_total")
            .is_some_and(|n| n >= lines as f64)
    });
    let wall = started.elapsed().as_secs_f64();
    let ingest = StoreCpu::sample(&replicas, pg.as_ref()).since(store_before);
    // The bench's own CPU while it waits: its polling, and with replicas the round-robin
    // front copying every byte the agent sends.
    let bench_cpu = cpu_seconds(bench_pid).unwrap_or(0.0) - bench_before;
    agent_cpu = cpu_seconds(agent.pid()).unwrap_or(agent_cpu);
    let stored_records = replicas[0].stored_records();
    anyhow::ensure!(
        stored_records == lines,
        "{stored_records} records stored of {lines}"
    );
    let sent =
        fjord_e2e::agent_metric(&cfg, "fjord_agent_compressed_bytes_acked_total").unwrap_or(0.0);
    let raw_acked =
        fjord_e2e::agent_metric(&cfg, "fjord_agent_raw_bytes_acked_total").unwrap_or(0.0);
    // Retries (429, 503, a dropped connection) lengthen the wall time, not the CPU.
    let retried = fjord_e2e::agent_metric(&cfg, "fjord_agent_batches_retried_total").unwrap_or(0.0);
    drop(agent);
    drop(front);

    let mut scans = Vec::new();
    for _ in 0..SCAN_RUNS {
        scans.push(scan(&replicas[0], &replicas, pg.as_ref())?);
    }

    let stored = match &pg {
        Some(pg) => {
            let number = |sql: &str| -> anyhow::Result<u64> {
                let out = pg.psql(sql).map_err(anyhow::Error::msg)?;
                Ok(out.trim().parse()?)
            };
            let tables = number(PG_STORED_BYTES_SQL)?;
            let database = number("SELECT pg_database_size(current_database())")?;
            let empty = number("SELECT pg_database_size('template1')")?;
            eprintln!(
                "postgres: tables, TOAST and indexes {tables} bytes; the database {database} \
                 bytes, an empty one {empty}"
            );
            tables
        }
        None => {
            // Stopped, the aggregator checkpoints and removes its WAL: what is left is what
            // the data takes.
            let agg = replicas.remove(0);
            let data = agg.data.clone();
            agg.proc.terminate();
            dir_bytes(&data)
        }
    };

    let mb = bytes as f64 / 1e6;
    println!("cpu                    {}", cpu());
    println!(
        "transport              {}",
        if args.tls { "https" } else { "http" }
    );
    println!(
        "store                  {}",
        match args.store {
            Store::Sqlite => "sqlite",
            Store::Postgres => "postgres",
        }
    );
    println!("replicas               {}", args.replicas);
    println!("raw_mb                 {mb:.1}");
    println!("lines                  {lines}");
    println!("wall_s                 {wall:.2}");
    println!("agent_cpu_s            {agent_cpu:.2}");
    println!("agent_mb_per_cpu_s     {:.1}", mb / agent_cpu.max(0.01));
    println!("agent_peak_rss_mib     {:.1}", agent_rss as f64 / 1024.0);
    println!("aggregator_cpu_s       {:.2}", ingest.replicas);
    println!("postgres_cpu_s         {:.2}", ingest.postgres);
    println!("bench_cpu_s            {bench_cpu:.2}");
    println!(
        "ingest_mb_per_replica_cpu_s {:.1}",
        mb / ingest.replicas.max(0.01)
    );
    println!(
        "ingest_mb_per_store_cpu_s   {:.1}",
        mb / ingest.total().max(0.01)
    );
    for (r, rss) in agg_rss.iter().enumerate() {
        println!(
            "aggregator_peak_rss_mib {:.1} (replica {r})",
            *rss as f64 / 1024.0
        );
    }
    let scan_wall = median(scans.iter().map(|s| s.wall_s).collect());
    println!("scan_wall_s            {scan_wall:.3}");
    println!("scan_mb_per_s          {:.1}", mb / scan_wall.max(0.001));
    let scan_cpu = scans.iter().fold(StoreCpu::default(), |t, s| StoreCpu {
        replicas: t.replicas + s.cpu.replicas / SCAN_RUNS as f64,
        postgres: t.postgres + s.cpu.postgres / SCAN_RUNS as f64,
    });
    println!("scan_replica_cpu_s     {:.3}", scan_cpu.replicas);
    println!("scan_postgres_cpu_s    {:.3}", scan_cpu.postgres);
    println!(
        "scan_mb_per_store_cpu_s {:.1}",
        mb / scan_cpu.total().max(0.001)
    );
    println!("stored_bytes_per_raw   {:.3}", stored as f64 / bytes as f64);
    println!("wire_bytes_per_raw     {:.3}", sent / raw_acked.max(1.0));
    println!("batches_retried        {retried}");
    Ok(())
}
