//! Command-line flags (`--name value` pairs after the stack path).

use anyhow::{bail, Context};

pub struct Args {
    pub stack: String,
    pub port: u16,
    pub rate: u64,
    pub seconds: u64,
    pub clients: usize,
    pub threads: usize,
    pub views: Vec<String>,
    pub seed: u64,
    pub serve_only: bool,
    /// Serve without a feed when the engine cannot generate updates (idle-memory runs).
    pub allow_no_feed: bool,
}

impl Args {
    pub fn parse(mut it: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        let mut a = Args {
            stack: String::new(),
            port: 0,
            rate: 10_000,
            seconds: 15,
            clients: 1_000,
            threads: 2,
            views: vec!["OreRound/list".into()],
            seed: 1,
            serve_only: false,
            allow_no_feed: false,
        };
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--port" => a.port = value("--port")?.parse()?,
                "--rate" => a.rate = value("--rate")?.parse()?,
                "--seconds" => a.seconds = value("--seconds")?.parse()?,
                "--clients" => a.clients = value("--clients")?.parse()?,
                "--threads" => a.threads = value("--threads")?.parse()?,
                "--view" => a.views = value("--view")?.split(',').map(String::from).collect(),
                "--seed" => a.seed = value("--seed")?.parse()?,
                "--serve-only" => a.serve_only = true,
                "--allow-no-feed" => a.allow_no_feed = true,
                s if s.starts_with("--") => bail!("unknown flag {s}"),
                s => a.stack = s.to_string(),
            }
        }
        if a.stack.is_empty() {
            bail!("usage: reference-peer STACK.json [--port P] [--rate N] [--seconds S] [--clients C] [--threads T] [--view V,..] [--seed N] [--serve-only] [--allow-no-feed]");
        }
        Ok(a)
    }
}
