//! `--name value` flags and `--switch`es for the harness binaries, shared so that every harness
//! (ours and the reference peer) reads the same flags the same way.

use std::collections::BTreeMap;
use std::str::FromStr;

/// A flag that did not parse. The binary prints it with its usage and exits with status 2.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    #[error("--{0} needs a value")]
    MissingValue(String),
    #[error("--{name}: cannot parse {value:?}")]
    Invalid { name: String, value: String },
    #[error("unknown flag --{0}")]
    Unknown(String),
}

/// Parsed command line: positional arguments, `--name value` pairs and `--switch`es.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags {
    pub positional: Vec<String>,
    values: BTreeMap<String, String>,
    switches: Vec<String>,
}

impl Flags {
    /// Parses `args`; `switches` names the flags that take no value, every other `--name` takes
    /// the next argument; `known` lists the value flags (anything else is an error).
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        known: &[&str],
        switches: &[&str],
    ) -> Result<Flags, FlagError> {
        let mut flags = Flags::default();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let Some(name) = arg.strip_prefix("--") else {
                flags.positional.push(arg);
                continue;
            };
            if switches.contains(&name) {
                flags.switches.push(name.to_string());
            } else if known.contains(&name) {
                let value = it
                    .next()
                    .ok_or_else(|| FlagError::MissingValue(name.to_string()))?;
                flags.values.insert(name.to_string(), value);
            } else {
                return Err(FlagError::Unknown(name.to_string()));
            }
        }
        Ok(flags)
    }

    /// The value of `--name`, parsed, or `default` when absent.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, FlagError> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| FlagError::Invalid {
                name: name.to_string(),
                value: v.clone(),
            }),
        }
    }

    /// The raw value of `--name`.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A comma-separated list, or `default` when absent.
    pub fn list(&self, name: &str, default: &[&str]) -> Vec<String> {
        match self.values.get(name) {
            Some(v) => v
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            None => default.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

/// The flags every load harness takes, with their defaults (the standard run).
#[derive(Debug, Clone, PartialEq)]
pub struct RunFlags {
    /// Stack file (default: the ORE stack in `/work/shared/stacks`).
    pub stack: String,
    /// Updates per second fed; 0 = as fast as the server takes them. Default 10,000.
    pub rate: u64,
    /// Measured seconds. Default 15.
    pub seconds: u64,
    /// WebSocket clients. Default 1,000.
    pub clients: usize,
    /// Load generator threads. Default 2.
    pub threads: usize,
    /// Views every client subscribes to. Default `OreRound/list`.
    pub views: Vec<String>,
    /// Seed of the synthetic chain. Default 1.
    pub seed: u64,
}

/// The value flags [`RunFlags`] reads.
pub const RUN_FLAGS: &[&str] = &[
    "stack", "rate", "seconds", "clients", "threads", "view", "seed",
];

/// The ORE stack file shipped with the lab machine.
pub const DEFAULT_STACK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/stacks/OreStream.stack.json"
);

impl RunFlags {
    pub fn from_flags(f: &Flags) -> Result<RunFlags, FlagError> {
        Ok(RunFlags {
            stack: f
                .str("stack")
                .map(String::from)
                .or_else(|| f.positional.first().cloned())
                .unwrap_or_else(|| DEFAULT_STACK.to_string()),
            rate: f.get("rate", 10_000)?,
            seconds: f.get("seconds", 15)?,
            clients: f.get("clients", 1_000)?,
            threads: f.get("threads", 2)?,
            views: f.list("view", &["OreRound/list"]),
            seed: f.get("seed", 1)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn values_switches_and_positionals_are_told_apart() {
        let f = Flags::parse(
            args("stack.json --rate 500 --serve-only --view A/list,B/state"),
            RUN_FLAGS,
            &["serve-only"],
        )
        .unwrap();
        assert_eq!(f.positional, vec!["stack.json"]);
        assert!(f.switch("serve-only"));
        assert!(!f.switch("other"));
        let r = RunFlags::from_flags(&f).unwrap();
        assert_eq!(r.stack, "stack.json");
        assert_eq!(r.rate, 500);
        assert_eq!(r.views, vec!["A/list", "B/state"]);
        assert_eq!(r.clients, 1_000, "absent flags keep their default");
    }

    #[test]
    fn bad_flags_are_typed_errors() {
        assert_eq!(
            Flags::parse(args("--rate"), RUN_FLAGS, &[]),
            Err(FlagError::MissingValue("rate".into()))
        );
        assert_eq!(
            Flags::parse(args("--nope 1"), RUN_FLAGS, &[]),
            Err(FlagError::Unknown("nope".into()))
        );
        let f = Flags::parse(args("--rate fast"), RUN_FLAGS, &[]).unwrap();
        assert_eq!(
            RunFlags::from_flags(&f),
            Err(FlagError::Invalid {
                name: "rate".into(),
                value: "fast".into()
            })
        );
    }
}
