//! What `--events` names, and the decoded-event JSON lines format.
//!
//! One line per event, in the reference interpreter's shape (`../shared/protocol.md` §8.1), so
//! events captured for the reference can be replayed as they are:
//!
//! ```text
//! {"event_type":"ore::RoundState","slot":12,"signature":"5x..","write_version":3,"timestamp":1700000000,
//!  "data":{"id":7,"__account_address":"Hk..", ...}}
//! {"event_type":"ore::DeployIxState","slot":12,"signature":"5x..","txn_index":4,"timestamp":1700000000,
//!  "data":{"data":{"amount":10},"accounts":{"round":"Hk..", ...}}}
//! ```
//!
//! Account events (`…State`) carry `write_version`, instruction events (`…IxState`) carry
//! `txn_index`; that index and the slot make the mutation's `seq`. `signature` may be omitted for
//! accounts. `timestamp` (unix seconds) may be omitted and is then 0: the engine has no clock, so
//! a replay never reads the time of the machine it runs on. Blank lines are ignored.

use serde_json::{Map, Value};

/// Where the events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSpec {
    /// `synthetic:SEED:COUNT`: COUNT updates from the synthetic chain seeded with SEED.
    Synthetic { seed: u64, count: u64 },
    /// A file: decoded-event JSON lines, or a `--record` recording (told apart by its header).
    File(String),
}

impl InputSpec {
    /// Reads the `--events` argument. `Err` says what is wrong with a `synthetic:` form.
    pub fn parse(s: &str) -> Result<InputSpec, String> {
        let Some(rest) = s.strip_prefix("synthetic:") else {
            return Ok(InputSpec::File(s.to_string()));
        };
        let (seed, count) = rest
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected synthetic:SEED:COUNT"))?;
        let seed = seed
            .parse()
            .map_err(|_| format!("`{s}`: SEED must be an unsigned integer"))?;
        let count = count
            .parse()
            .map_err(|_| format!("`{s}`: COUNT must be an unsigned integer"))?;
        Ok(InputSpec::Synthetic { seed, count })
    }
}

/// Which index orders the event within its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventIndex {
    /// An account update: its `write_version`.
    WriteVersion(u64),
    /// An instruction: its transaction's `txn_index`.
    TxnIndex(u64),
}

/// One decoded event, as a JSON line gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonEvent {
    /// `"{program}::{Account}State"` or `"{program}::{Instruction}IxState"`.
    pub event_type: String,
    pub slot: u64,
    /// Empty when the line has none.
    pub signature: String,
    pub index: EventIndex,
    /// Unix seconds; 0 when the line has none.
    pub timestamp: i64,
    /// The decoded account fields (+ `__account_address`), or `{"data":{..},"accounts":{..}}`.
    pub data: Value,
}

impl JsonEvent {
    /// Parses one line. `Ok(None)` for a blank line; `Err` says what is wrong (the caller adds the
    /// line number).
    pub fn parse_line(line: &str) -> Result<Option<JsonEvent>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(mut o) = v else {
            return Err("expected a JSON object".into());
        };
        let event_type = match o.remove("event_type") {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(_) => return Err("`event_type` must be a non-empty string".into()),
            None => return Err("missing `event_type`".into()),
        };
        let slot = required_u64(&o, "slot")?;
        let signature = match o.get("signature") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("`signature` must be a string".into()),
        };
        let timestamp = match o.get("timestamp") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_i64()
                .ok_or("`timestamp` must be an integer (unix seconds)")?,
        };
        let is_ix = event_type.ends_with("IxState");
        let index = match (
            optional_u64(&o, "write_version")?,
            optional_u64(&o, "txn_index")?,
        ) {
            (Some(_), Some(_)) => {
                return Err("has both `write_version` and `txn_index`; an event has one".into())
            }
            (Some(w), None) if !is_ix => EventIndex::WriteVersion(w),
            (None, Some(t)) if is_ix => EventIndex::TxnIndex(t),
            (Some(_), None) => {
                return Err(format!(
                    "`{event_type}` is an instruction: it needs `txn_index`, not `write_version`"
                ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "`{event_type}` is an account: it needs `write_version`, not `txn_index`"
                ))
            }
            (None, None) if is_ix => return Err("missing `txn_index`".into()),
            (None, None) => return Err("missing `write_version`".into()),
        };
        let data = match o.remove("data") {
            Some(d @ Value::Object(_)) => d,
            Some(_) => return Err("`data` must be a JSON object".into()),
            None => return Err("missing `data`".into()),
        };
        if is_ix && !data.get("data").is_some_and(Value::is_object) {
            return Err("instruction `data` must hold `{\"data\":{..},\"accounts\":{..}}`".into());
        }
        Ok(Some(JsonEvent {
            event_type,
            slot,
            signature,
            index,
            timestamp,
            data,
        }))
    }
}

fn required_u64(o: &Map<String, Value>, k: &str) -> Result<u64, String> {
    optional_u64(o, k)?.ok_or_else(|| format!("missing `{k}`"))
}

fn optional_u64(o: &Map<String, Value>, k: &str) -> Result<Option<u64>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("`{k}` must be an unsigned integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn synthetic_spec_is_parsed_and_anything_else_is_a_file() {
        assert_eq!(
            InputSpec::parse("synthetic:7:1000"),
            Ok(InputSpec::Synthetic {
                seed: 7,
                count: 1000
            })
        );
        assert_eq!(
            InputSpec::parse("events.jsonl"),
            Ok(InputSpec::File("events.jsonl".into()))
        );
        assert!(InputSpec::parse("synthetic:7").is_err());
        assert!(InputSpec::parse("synthetic:x:1").is_err());
        assert!(InputSpec::parse("synthetic:1:-2").is_err());
    }

    #[test]
    fn account_and_instruction_lines_are_read_in_the_reference_shape() {
        let a = JsonEvent::parse_line(
            r#"{"event_type":"launchpad::BondingCurveState","slot":5,"write_version":2,"timestamp":9,"data":{"mint":"M"}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.index, EventIndex::WriteVersion(2));
        assert_eq!((a.slot, a.timestamp, a.signature.as_str()), (5, 9, ""));
        assert_eq!(a.data, json!({"mint": "M"}));

        let i = JsonEvent::parse_line(
            r#"{"event_type":"launchpad::BuyIxState","slot":5,"signature":"s","txn_index":1,"data":{"data":{},"accounts":{}}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(i.index, EventIndex::TxnIndex(1));
        assert_eq!(i.timestamp, 0, "no timestamp: 0, never the wall clock");
        assert_eq!(JsonEvent::parse_line("   ").unwrap(), None);
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let cases = [
            ("{", "not JSON"),
            ("[1]", "JSON object"),
            (r#"{"slot":1,"write_version":1,"data":{}}"#, "event_type"),
            (
                r#"{"event_type":"p::AState","write_version":1,"data":{}}"#,
                "`slot`",
            ),
            (
                r#"{"event_type":"p::AState","slot":-1,"write_version":1,"data":{}}"#,
                "`slot`",
            ),
            (
                r#"{"event_type":"p::AState","slot":1,"data":{}}"#,
                "write_version",
            ),
            (
                r#"{"event_type":"p::AIxState","slot":1,"write_version":1,"data":{"data":{}}}"#,
                "txn_index",
            ),
            (
                r#"{"event_type":"p::AState","slot":1,"txn_index":1,"data":{}}"#,
                "write_version",
            ),
            (
                r#"{"event_type":"p::AState","slot":1,"write_version":1}"#,
                "`data`",
            ),
            (
                r#"{"event_type":"p::AIxState","slot":1,"txn_index":1,"data":{"x":1}}"#,
                "accounts",
            ),
            (
                r#"{"event_type":"p::AState","slot":1,"write_version":1,"timestamp":"x","data":{}}"#,
                "timestamp",
            ),
        ];
        for (line, needle) in cases {
            let err = JsonEvent::parse_line(line).expect_err(line);
            assert!(
                err.contains(needle),
                "{line}: `{err}` should mention {needle}"
            );
        }
    }
}
