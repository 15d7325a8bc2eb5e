//! `fjord-dist DIR`: writes the man pages and shell completions of `fjord-agent` and
//! `fjord-aggregator` into `DIR`, generated from the very clap definitions the binaries
//! parse with, so the package's documentation cannot drift from the flags.
//!
//! Layout (what `[package.metadata.deb]` in aggregator/Cargo.toml installs):
//! `DIR/man/<page>.1.gz` (one page per command and subcommand, e.g.
//! `fjord-aggregator-serve.1.gz`, gzipped as Debian policy asks, without a name or time in the
//! gzip header),
//! `DIR/completions/bash/<bin>`, `DIR/completions/zsh/_<bin>`,
//! `DIR/completions/fish/<bin>.fish`. The output is deterministic: no dates, no paths, the
//! same bytes on every run for the same source.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: fjord-dist OUT_DIR");
    };
    let written = generate(Path::new(&out))?;
    println!(
        "wrote {} files to {}",
        written.len(),
        Path::new(&out).display()
    );
    Ok(())
}

/// The two binaries' command lines.
fn commands() -> [clap::Command; 2] {
    [
        fjord_agent::cli::command(),
        fjord_aggregator::cli::command(),
    ]
}

/// Writes every man page and completion under `out`; returns the files written.
pub fn generate(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man = out.join("man");
    fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    for cmd in commands() {
        let mut cmd = cmd;
        // Fills in the subcommands' display names (`fjord-agent-run`) and the help flags.
        cmd.build();
        let source = format!(
            "{} {}",
            cmd.get_name(),
            cmd.get_version().unwrap_or_default()
        );
        man_pages(&cmd, &source, &man, &mut written)?;
        let bin = cmd.get_name().to_owned();
        for (shell, dir, file) in [
            (Shell::Bash, "bash", bin.clone()),
            (Shell::Zsh, "zsh", format!("_{bin}")),
            (Shell::Fish, "fish", format!("{bin}.fish")),
        ] {
            let dir = out.join("completions").join(dir);
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(file);
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, &bin, &mut buf);
            fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The page of `cmd` and, recursively, of each visible subcommand (`help` has none: it is
/// the pages themselves).
/// `source` (the binary and its version) heads every page of that binary, subcommands
/// included, which have no version of their own.
fn man_pages(
    cmd: &clap::Command,
    source: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned();
    let path = dir.join(format!("{name}.1.gz"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .source(source.to_owned())
        .manual("fjord manual".to_owned())
        .render(&mut buf)
        .with_context(|| format!("rendering {name}.1"))?;
    // mtime 0 and no file name: the same page gives the same bytes.
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&buf)
        .and_then(|()| gz.finish())
        .and_then(|z| fs::write(&path, z))
        .with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        man_pages(sub, source, dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn every_command_gets_a_page_and_every_shell_a_completion() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        for want in [
            "man/fjord-agent.1.gz",
            "man/fjord-agent-check-config.1.gz",
            "man/fjord-aggregator.1.gz",
            "man/fjord-aggregator-serve.1.gz",
            "man/fjord-aggregator-check-config.1.gz",
            "completions/bash/fjord-agent",
            "completions/zsh/_fjord-aggregator",
            "completions/fish/fjord-aggregator.fish",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("-help.1")), "{names:?}");
        let mut serve = String::new();
        flate2::read::GzDecoder::new(
            fs::File::open(dir.path().join("man/fjord-aggregator-serve.1.gz")).unwrap(),
        )
        .read_to_string(&mut serve)
        .unwrap();
        assert!(serve.contains("listen"), "{serve}");
        let bash =
            fs::read_to_string(dir.path().join("completions/bash/fjord-aggregator")).unwrap();
        assert!(bash.contains("check-config"), "{bash}");
    }

    #[test]
    fn output_is_deterministic() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let fa = generate(a.path()).unwrap();
        generate(b.path()).unwrap();
        for f in fa {
            let rel = f.strip_prefix(a.path()).unwrap();
            assert_eq!(
                fs::read(&f).unwrap(),
                fs::read(b.path().join(rel)).unwrap(),
                "{}",
                rel.display()
            );
        }
    }
}
