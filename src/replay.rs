//! `stackcore replay`: run a stack file over events, offline, and print or check what comes out.
//!
//! Stack authors test a stack without a chain: the command is the engine alone, driven from a
//! file — no sockets, no threads, no clock — so the same input gives byte-identical output on any
//! machine.
//!
//! ```text
//!  --events INPUT                     --out mutations: one JSON line per mutation
//!  (JSON lines | synthetic | record)        {"entity","key","patch","append","seq"}
//!        │                                  ▲
//!        ▼                                  │
//!   VmContext ── Mutation ──────────────────┤
//!                   │                       │
//!                   └──► Views + one subscriber of --view ──► --out frames: the frames it gets,
//!                                                             snapshot then live
//!  --expect FILE: every output line is compared, as JSON, with the same line of FILE; the first
//!                 differences are printed (output line, event, entity, key, JSON path, both values)
//! ```
//!
//! Inputs (`--events`):
//! - decoded-event JSON lines in the reference interpreter's shape (see [`input`]), so events
//!   captured for the reference replay as they are;
//! - `synthetic:SEED:COUNT`: COUNT updates of the synthetic chain for the stack's IDLs;
//! - a recording made with `--record` (told apart by its header): raw upstream messages, converted
//!   and deduplicated the way ingest does it (receive time as the clock, re-sent messages after a
//!   reconnect marker dropped), then decoded with the stack's IDLs. A truncated or corrupt
//!   recording is replayed up to the bad record, which is reported.
//!
//! Events are applied one at a time by the engine's `VmContext` (`apply_json` for decoded events,
//! `apply` for raw updates); with `--out frames` each mutation then goes through the engine's
//! `Views`, where one subscription (`--view`, `--key`) was made before the first event or after
//! `--subscribe-after N` events. Memory stays bounded by the engine's own bounds: nothing is
//! buffered beyond one event's output, and `--expect` is read alongside, line by line.
//!
//! Exit codes: **0** the run completed (and matched `--expect` if given); **1** the output differs
//! from `--expect`; **2** bad input — an unreadable or invalid stack, events or expect file, an
//! unknown view, or (with `--strict`) a malformed event line or record. Without `--strict` a
//! malformed line, or an event the stack cannot take, is reported on stderr with its line number
//! (or record offset) and skipped; an event the stack's handlers reject is always only reported.

pub mod diff;
pub mod input;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

pub use input::{EventIndex, InputSpec, JsonEvent};

/// How many differences `--expect` prints before it only counts.
pub const MAX_REPORTED_DIFFERENCES: usize = 10;
/// How many differing JSON paths are listed for one output line.
const MAX_PATHS_PER_LINE: usize = 5;
/// Values in a diff report are cut to about this many characters.
const MAX_VALUE_CHARS: usize = 160;

/// The options of `stackcore replay`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ReplayArgs {
    /// The stack file (`*.stack.json`); the embedded demo stack when omitted.
    #[arg(long, value_name = "FILE")]
    pub stack: Option<PathBuf>,
    /// JSON lines of decoded events, a `--record` recording, or `synthetic:SEED:COUNT`.
    #[arg(long, value_name = "INPUT")]
    pub events: String,
    /// What to print: the mutations, or the frames a subscriber of `--view` receives.
    #[arg(long, value_enum, default_value_t = OutKind::Mutations)]
    pub out: OutKind,
    /// The view to subscribe to with `--out frames` (e.g. `Token/list`, `OreRound/latest`).
    #[arg(long, value_name = "VIEW")]
    pub view: Option<String>,
    /// The subscription's key (needed for state views; a filter on list views).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Subscribe after this many events instead of before the first, so the snapshot has rows
    /// (malformed lines are not events).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub subscribe_after: u64,
    /// Compare the output with this file's lines instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// A malformed event line is fatal (exit 2) instead of reported and skipped.
    #[arg(long)]
    pub strict: bool,
}

impl ReplayArgs {
    /// Mutations of `events` through the embedded demo stack, printed.
    pub fn new(events: impl Into<String>) -> Self {
        ReplayArgs {
            stack: None,
            events: events.into(),
            out: OutKind::Mutations,
            view: None,
            key: None,
            subscribe_after: 0,
            expect: None,
            strict: false,
        }
    }
}

/// What `replay` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutKind {
    /// One JSON line per mutation: `{"entity","key","patch","append","seq"}`.
    Mutations,
    /// The payload of every frame the `--view` subscriber receives, one per line.
    Frames,
}

/// Why a replay could not run to the end. Every variant is exit code 2: the caller fixes the
/// named file or argument and runs again; nothing was compared.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The stack file cannot be read or is not a valid stack.
    #[error("stack {path}: {message}")]
    Stack { path: String, message: String },
    /// `--events` cannot be opened or read, or names an input this build cannot replay.
    #[error("events {input}: {message}")]
    Events { input: String, message: String },
    /// With `--strict`: a malformed event line, or an event the stack cannot take.
    #[error("{at}: {message} (--strict)")]
    BadLine {
        /// `FILE:LINE`, or `INPUT (event N)` for inputs without lines.
        at: String,
        message: String,
    },
    /// `--view` is missing for `--out frames`, or names no view of the stack.
    #[error("view: {0}")]
    View(String),
    /// The `--expect` file cannot be read, or a line of it is not JSON.
    #[error("expect {path}: {message}")]
    Expect { path: String, message: String },
    /// Writing the output failed (e.g. a closed pipe).
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
}

/// Where an output line came from, for diff reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The `index`-th event of the input (0-based; malformed lines are not events), read from
    /// `line` (1-based) of a JSON-lines input.
    Event { index: u64, line: Option<usize> },
    /// The subscription's own frames (`subscribed`, snapshot), sent after `after` events.
    Subscribe { after: u64 },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Event {
                index,
                line: Some(l),
            } => write!(f, "event {index}, input line {l}"),
            Origin::Event { index, line: None } => write!(f, "event {index}"),
            Origin::Subscribe { after } => write!(f, "subscription after {after} events"),
        }
    }
}

/// One mutation as `--out mutations` prints it (field order fixed).
#[derive(Serialize)]
struct MutationLine<'a> {
    entity: &'a str,
    key: &'a Value,
    patch: &'a stackcore_engine::Patch,
    append: &'a [String],
    seq: String,
}

/// Runs `stackcore replay`; returns the exit code (0 ok, 1 differs from `--expect`, 2 bad input).
/// Output goes to `stdout`; reports of skipped lines, errors and diffs summaries to `stderr`
/// (the diff itself goes to `stdout`).
pub fn run(args: ReplayArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    match run_inner(&args, stdout, stderr) {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Differs) => 1,
        Err(e) => {
            let _ = writeln!(stderr, "replay: {e}");
            2
        }
    }
}

enum Outcome {
    Done,
    Differs,
}

fn run_inner(
    args: &ReplayArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<Outcome, ReplayError> {
    let input = InputSpec::parse(&args.events).map_err(|message| ReplayError::Events {
        input: args.events.clone(),
        message,
    })?;
    let stack_bytes = match &args.stack {
        Some(p) => std::fs::read(p).map_err(|e| ReplayError::Stack {
            path: p.display().to_string(),
            message: e.to_string(),
        })?,
        None => crate::stacks::LAUNCHPAD.as_bytes().to_vec(),
    };
    let stack_name = args
        .stack
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(embedded demo)".into());
    let mut engine =
        engine::Engine::load(&stack_bytes, args).map_err(|message| ReplayError::Stack {
            path: stack_name,
            message,
        })?;
    if args.out == OutKind::Frames && args.view.is_none() {
        return Err(ReplayError::View("--out frames needs --view VIEW".into()));
    }

    let mut sink = Sink::new(args)?;
    let mut events = events::open(&input, &engine)?;
    // Events read so far (malformed lines are not events); `index` names the next one.
    let mut index = 0u64;
    let mut lines: Vec<(String, Value)> = Vec::new();
    let frames = args.out == OutKind::Frames;
    if frames && args.subscribe_after == 0 {
        engine.subscribe(args, &mut lines)?;
        sink.take(&mut lines, Origin::Subscribe { after: 0 }, stdout)?;
    }
    while let Some(next) = events.next() {
        let (event, line) = match next {
            Ok(ev) => ev,
            Err(events::Skip { at, message }) => {
                skip(args, at, message, true, stderr)?;
                continue;
            }
        };
        match engine.apply(&event, args, &mut lines) {
            Ok(()) => sink.take(&mut lines, Origin::Event { index, line }, stdout)?,
            Err(e) => {
                let at = match line {
                    Some(l) => format!("{}:{l}", args.events),
                    None => format!("{} (event {index})", args.events),
                };
                skip(args, at, e.message, e.bad_input, stderr)?;
            }
        }
        index += 1;
        if frames && index == args.subscribe_after {
            engine.subscribe(args, &mut lines)?;
            sink.take(&mut lines, Origin::Subscribe { after: index }, stdout)?;
        }
    }
    if let Some(err) = events.error() {
        return Err(err);
    }
    if frames && args.subscribe_after > index {
        engine.subscribe(args, &mut lines)?;
        sink.take(&mut lines, Origin::Subscribe { after: index }, stdout)?;
    }
    sink.finish(stdout, stderr)
}

/// Reports an event that produced nothing. Bad input is fatal with `--strict`; an event the
/// stack's own handlers reject (as the reference would) is only reported.
fn skip(
    args: &ReplayArgs,
    at: String,
    message: String,
    bad_input: bool,
    stderr: &mut dyn Write,
) -> Result<(), ReplayError> {
    if bad_input && args.strict {
        return Err(ReplayError::BadLine { at, message });
    }
    writeln!(stderr, "replay: {at}: {message} (skipped)")?;
    Ok(())
}

/// Output lines go either straight to stdout or through the `--expect` comparison.
enum Sink {
    Print,
    Compare(Comparison),
}

impl Sink {
    fn new(args: &ReplayArgs) -> Result<Sink, ReplayError> {
        match &args.expect {
            None => Ok(Sink::Print),
            Some(p) => Ok(Sink::Compare(Comparison::open(p)?)),
        }
    }

    /// Consumes `lines` (rendered text and its JSON value), printing or comparing each.
    fn take(
        &mut self,
        lines: &mut Vec<(String, Value)>,
        origin: Origin,
        stdout: &mut dyn Write,
    ) -> Result<(), ReplayError> {
        for (text, value) in lines.drain(..) {
            match self {
                Sink::Print => {
                    stdout.write_all(text.as_bytes())?;
                    stdout.write_all(b"\n")?;
                }
                Sink::Compare(c) => c.compare(&value, origin, stdout)?,
            }
        }
        Ok(())
    }

    fn finish(
        self,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> Result<Outcome, ReplayError> {
        match self {
            Sink::Print => {
                stdout.flush()?;
                Ok(Outcome::Done)
            }
            Sink::Compare(c) => c.finish(stdout, stderr),
        }
    }
}

/// Streams the expected file alongside the output: memory stays bounded by one line and the
/// first [`MAX_REPORTED_DIFFERENCES`] reports.
struct Comparison {
    path: String,
    reader: BufReader<File>,
    /// 1-based line number in the expected file of the last line read.
    expected_line: usize,
    /// Output lines compared so far.
    compared: u64,
    differing: u64,
    reported: usize,
    header_written: bool,
}

impl Comparison {
    fn open(p: &std::path::Path) -> Result<Comparison, ReplayError> {
        let path = p.display().to_string();
        let f = File::open(p).map_err(|e| ReplayError::Expect {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(Comparison {
            path,
            reader: BufReader::new(f),
            expected_line: 0,
            compared: 0,
            differing: 0,
            reported: 0,
            header_written: false,
        })
    }

    /// The next non-blank expected line as JSON, `None` at the end of the file.
    fn next_expected(&mut self) -> Result<Option<Value>, ReplayError> {
        let mut buf = String::new();
        loop {
            buf.clear();
            let n = self
                .reader
                .read_line(&mut buf)
                .map_err(|e| ReplayError::Expect {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.expected_line += 1;
            if buf.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(&buf)
                .map(Some)
                .map_err(|e| ReplayError::Expect {
                    path: self.path.clone(),
                    message: format!("line {}: not JSON: {e}", self.expected_line),
                });
        }
    }

    fn header(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            writeln!(out, "replay: output differs from {}:", self.path)?;
        }
        Ok(())
    }

    fn compare(
        &mut self,
        actual: &Value,
        origin: Origin,
        out: &mut dyn Write,
    ) -> Result<(), ReplayError> {
        self.compared += 1;
        let expected = self.next_expected()?;
        if expected.as_ref() == Some(actual) {
            return Ok(());
        }
        self.differing += 1;
        if self.reported >= MAX_REPORTED_DIFFERENCES {
            return Ok(());
        }
        self.reported += 1;
        self.header(out)?;
        let n = self.compared;
        let from = origin;
        let what = describe(actual);
        match expected {
            None => writeln!(
                out,
                "  output line {n} ({from}){what}: not expected (the expected file has {} lines): {}",
                n - 1,
                diff::short(actual, MAX_VALUE_CHARS)
            )?,
            Some(exp) => {
                writeln!(out, "  output line {n} ({from}){what}:")?;
                for d in diff::diff_values(&exp, actual, MAX_PATHS_PER_LINE) {
                    let show = |v: &Option<Value>| match v {
                        Some(v) => diff::short(v, MAX_VALUE_CHARS),
                        None => "(absent)".to_string(),
                    };
                    let path = if d.path.is_empty() { "(whole line)" } else { &d.path };
                    writeln!(
                        out,
                        "    {path}: expected {}, got {}",
                        show(&d.expected),
                        show(&d.actual)
                    )?;
                }
            }
        }
        Ok(())
    }

    fn finish(mut self, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome, ReplayError> {
        let mut missing = 0u64;
        let mut first_missing = None;
        while let Some(v) = self.next_expected()? {
            if first_missing.is_none() {
                first_missing = Some((self.expected_line, v));
            }
            missing += 1;
        }
        if missing > 0 {
            self.header(out)?;
            if let Some((line, v)) = first_missing {
                writeln!(
                    out,
                    "  output ended after {} lines; {missing} expected line(s) missing, the first (expected line {line}){}: {}",
                    self.compared,
                    describe(&v),
                    diff::short(&v, MAX_VALUE_CHARS)
                )?;
            }
        }
        out.flush()?;
        if self.differing == 0 && missing == 0 {
            writeln!(err, "replay: {} lines match {}", self.compared, self.path)?;
            return Ok(Outcome::Done);
        }
        let more = self.differing.saturating_sub(self.reported as u64);
        if more > 0 {
            writeln!(out, "  … and {more} more differing line(s)")?;
        }
        writeln!(
            err,
            "replay: {} of {} output lines differ from {}, {missing} expected line(s) missing",
            self.differing, self.compared, self.path
        )?;
        Ok(Outcome::Differs)
    }
}

/// `, entity X, key K` for a mutation line or a frame, empty for anything else.
fn describe(v: &Value) -> String {
    let entity = v.get("entity").and_then(Value::as_str);
    let key = v.get("key").filter(|k| !k.is_null());
    match (entity, key) {
        (Some(e), Some(k)) => format!(", entity {e}, key {k}"),
        (Some(e), None) => format!(", entity {e}"),
        _ => String::new(),
    }
}

/// Renders one mutation line (`--out mutations`).
fn mutation_line(m: &stackcore_engine::Mutation) -> (String, Value) {
    let line = MutationLine {
        entity: &m.entity,
        key: &m.key,
        patch: &m.patch,
        append: &m.append,
        seq: m.seq.to_string(),
    };
    let text = serde_json::to_string(&line).expect("a mutation line always serializes");
    // The value compared with `--expect` is read back from the text, so that both sides go
    // through the same number parsing (serde_json's float parsing is not exactly round-trip).
    let value = serde_json::from_str(&text).expect("a mutation line reads back");
    (text, value)
}

/// Reads payload bytes of a frame as text, gunzipping snapshot frames.
fn frame_text(payload: &[u8]) -> Result<String, String> {
    if payload.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::GzDecoder::new(payload)
            .read_to_string(&mut s)
            .map_err(|e| format!("bad gzip frame: {e}"))?;
        Ok(s)
    } else {
        String::from_utf8(payload.to_vec()).map_err(|e| format!("frame is not UTF-8: {e}"))
    }
}

mod events {
    //! The event sources behind `--events`, as one iterator of [`Event`]s.

    use std::collections::VecDeque;

    use stackcore_io::config::Commitment;
    use stackcore_io::ingest::resume::Resume;
    use stackcore_io::ingest::{record, Converter, IngestLimits};

    use super::*;

    /// One event to apply.
    pub enum Event {
        /// A decoded event from a JSON line.
        Json(JsonEvent),
        /// A raw upstream update (synthetic chain), decoded by the engine with the stack's IDLs.
        Update(stackcore_engine::Update),
    }

    /// Input that could not be read as an event: reported (or fatal with `--strict`).
    pub struct Skip {
        /// `FILE:LINE`, or `FILE (record at byte N)`.
        pub at: String,
        pub message: String,
    }

    pub enum Events {
        Lines {
            reader: Box<dyn BufRead>,
            line: usize,
            error: Option<ReplayError>,
            input: String,
        },
        Synthetic {
            gen: Box<stackcore_engine::synth::Generator>,
            left: u64,
        },
        Recording(Box<Recording>),
    }

    /// A `--record` recording, read the way ingest replays it: every record through the same
    /// conversion (receive time as the ingest clock) and the same dedup after "resumed" markers.
    pub struct Recording {
        input: String,
        reader: record::Reader,
        converter: Converter,
        resume: Resume,
        /// Updates of the last message not handed out yet (one message's worth at most).
        pending: VecDeque<stackcore_engine::Update>,
        scratch: Vec<stackcore_engine::Update>,
        /// A bad record ended the recording; nothing after it is read.
        ended: bool,
    }

    impl Recording {
        fn next(&mut self) -> Option<Result<(Event, Option<usize>), Skip>> {
            loop {
                if let Some(u) = self.pending.pop_front() {
                    return Some(Ok((Event::Update(u), None)));
                }
                if self.ended {
                    return None;
                }
                let offset = self.reader.offset();
                let at = format!("{} (record at byte {offset})", self.input);
                match self.reader.next_record() {
                    Ok(None) => return None,
                    Ok(Some(record::Record::Resumed { .. })) => self.resume.resumed(),
                    Ok(Some(record::Record::Update {
                        recv_unix_nanos,
                        update,
                    })) => {
                        let now_unix = (recv_unix_nanos / 1_000_000_000) as i64;
                        self.scratch.clear();
                        if let Err(e) = self.converter.convert(&update, now_unix, &mut self.scratch)
                        {
                            return Some(Err(Skip {
                                at,
                                message: format!("malformed upstream update: {e}"),
                            }));
                        }
                        for (i, u) in self.scratch.drain(..).enumerate() {
                            if self.resume.admit(&u, i) {
                                self.pending.push_back(u);
                            }
                        }
                    }
                    Err(e) => {
                        self.ended = true;
                        return Some(Err(Skip {
                            at,
                            message: format!("{e}; the recording is replayed up to there"),
                        }));
                    }
                }
            }
        }
    }

    pub fn open(input: &InputSpec, engine: &engine::Engine) -> Result<Events, ReplayError> {
        match input {
            InputSpec::Synthetic { seed, count } => Ok(Events::Synthetic {
                gen: Box::new(engine.synthetic(*seed)),
                left: *count,
            }),
            InputSpec::File(path) => {
                let io_err = |e: std::io::Error| ReplayError::Events {
                    input: path.clone(),
                    message: e.to_string(),
                };
                let mut reader = BufReader::new(File::open(path).map_err(io_err)?);
                if reader
                    .fill_buf()
                    .map_err(io_err)?
                    .starts_with(RECORDING_MAGIC)
                {
                    let reader = record::Reader::open(std::path::Path::new(path)).map_err(|e| {
                        ReplayError::Events {
                            input: path.clone(),
                            message: e.to_string(),
                        }
                    })?;
                    return Ok(Events::Recording(Box::new(Recording {
                        input: path.clone(),
                        reader,
                        converter: Converter::new(engine.program_ids(), Commitment::Processed),
                        resume: Resume::new(IngestLimits::default().dedup_capacity),
                        pending: VecDeque::new(),
                        scratch: Vec::new(),
                        ended: false,
                    })));
                }
                Ok(Events::Lines {
                    reader: Box::new(reader),
                    line: 0,
                    error: None,
                    input: path.clone(),
                })
            }
        }
    }

    /// The first bytes of a `--record` recording (`SCREC`, then a version).
    const RECORDING_MAGIC: &[u8] = b"SCREC";

    impl Events {
        /// The next event with its input line, input to skip, or `None` at the end.
        #[allow(clippy::type_complexity)]
        pub fn next(&mut self) -> Option<Result<(Event, Option<usize>), Skip>> {
            match self {
                Events::Synthetic { gen, left } => {
                    if *left == 0 {
                        return None;
                    }
                    *left -= 1;
                    Some(Ok((Event::Update(gen.next_update()), None)))
                }
                Events::Recording(r) => r.next(),
                Events::Lines {
                    reader,
                    line,
                    error,
                    input,
                } => {
                    let mut buf = String::new();
                    loop {
                        buf.clear();
                        match reader.read_line(&mut buf) {
                            Ok(0) => return None,
                            Ok(_) => {}
                            Err(e) => {
                                *error = Some(ReplayError::Events {
                                    input: input.clone(),
                                    message: format!("line {}: {e}", *line + 1),
                                });
                                return None;
                            }
                        }
                        *line += 1;
                        match JsonEvent::parse_line(&buf) {
                            Ok(None) => continue,
                            Ok(Some(ev)) => return Some(Ok((Event::Json(ev), Some(*line)))),
                            Err(message) => {
                                return Some(Err(Skip {
                                    at: format!("{input}:{line}"),
                                    message,
                                }))
                            }
                        }
                    }
                }
            }
        }

        /// An I/O error that ended the input early.
        pub fn error(&mut self) -> Option<ReplayError> {
            match self {
                Events::Lines { error, .. } => error.take(),
                _ => None,
            }
        }
    }
}

mod engine {
    //! The engine behind the replay: a loaded stack, one VM, and (for `--out frames`) the views
    //! with one subscriber.

    use super::*;
    use stackcore_engine::frame::Mode;
    use stackcore_engine::synth::{Generator, SynthConfig};
    use stackcore_engine::view::{Output, SubId, Subscription, ViewId, Views};
    use stackcore_engine::vm::{ApplyError, EventContext};
    use stackcore_engine::{EntityCacheConfig, Mutation, Stack, VmContext};

    /// The one subscription a frames replay has.
    const SUB: SubId = SubId(1);

    /// Why an event produced nothing.
    pub struct Rejected {
        pub message: String,
        /// The event itself is wrong (cannot be decoded, unknown to the stack, malformed): fatal
        /// with `--strict`. Otherwise the stack's handlers rejected it, as the reference would.
        pub bad_input: bool,
    }

    pub struct Engine {
        stack: Stack,
        vm: VmContext,
        views: Option<Views>,
        mutations: Vec<Mutation>,
        outputs: Vec<Output>,
        /// The subscribed view and its mode, once subscribed.
        view: Option<(ViewId, Mode)>,
    }

    impl Engine {
        pub fn load(bytes: &[u8], args: &ReplayArgs) -> Result<Engine, String> {
            let stack = Stack::from_json(bytes).map_err(|e| e.to_string())?;
            let views = match args.out {
                OutKind::Frames => Some(
                    Views::try_new(stack.entity_views(), EntityCacheConfig::default())
                        .map_err(|e| e.to_string())?,
                ),
                OutKind::Mutations => None,
            };
            Ok(Engine {
                stack,
                vm: VmContext::new(),
                views,
                mutations: Vec::new(),
                outputs: Vec::new(),
                view: None,
            })
        }

        /// The programs whose updates a recording's transactions are searched for.
        pub fn program_ids(&self) -> Vec<stackcore_engine::Pubkey> {
            self.stack.program_ids()
        }

        /// The synthetic chain for this stack's IDLs, seeded.
        pub fn synthetic(&self, seed: u64) -> Generator {
            let cfg = SynthConfig {
                seed,
                ..Default::default()
            };
            Generator::new(self.stack.idls(), cfg)
        }

        /// Applies one event; pushes the rendered output lines.
        pub fn apply(
            &mut self,
            event: &events::Event,
            args: &ReplayArgs,
            lines: &mut Vec<(String, Value)>,
        ) -> Result<(), Rejected> {
            self.vm.recycle_mutations(&mut self.mutations);
            let r = match event {
                events::Event::Update(u) => self.vm.apply(&self.stack, u, &mut self.mutations),
                events::Event::Json(ev) => {
                    let (index, is_account) = match ev.index {
                        EventIndex::WriteVersion(w) => (w, true),
                        EventIndex::TxnIndex(t) => (t, false),
                    };
                    let ctx = EventContext {
                        slot: ev.slot,
                        index,
                        signature: (!ev.signature.is_empty()).then(|| ev.signature.clone()),
                        timestamp: ev.timestamp,
                        is_account,
                    };
                    self.vm.apply_json(
                        &self.stack,
                        &ev.event_type,
                        &ev.data,
                        &ctx,
                        &mut self.mutations,
                    )
                }
            };
            if let Err(e) = r {
                return Err(Rejected {
                    bad_input: !matches!(e, ApplyError::Handler { .. }),
                    message: e.to_string(),
                });
            }
            match args.out {
                OutKind::Mutations => lines.extend(self.mutations.iter().map(mutation_line)),
                OutKind::Frames => {
                    let views = self.views.as_mut().expect("a frames replay has views");
                    for m in &self.mutations {
                        views.apply(m, &mut self.outputs);
                    }
                    self.deliver(args, lines).map_err(|message| Rejected {
                        message,
                        bad_input: false,
                    })?;
                }
            }
            Ok(())
        }

        /// Subscribes the one subscriber to `--view`; pushes its `subscribed` frame and snapshot.
        pub fn subscribe(
            &mut self,
            args: &ReplayArgs,
            lines: &mut Vec<(String, Value)>,
        ) -> Result<(), ReplayError> {
            let views = self.views.as_mut().expect("a frames replay has views");
            let req = Subscription {
                view: args.view.clone().unwrap_or_default(),
                key: args.key.clone(),
                ..Default::default()
            };
            let id = views
                .subscribe(SUB, &req, &mut self.outputs)
                .map_err(|e| ReplayError::View(e.to_string()))?;
            let mode = views.mode(id).unwrap_or(Mode::List);
            self.view = Some((id, mode));
            self.deliver(args, lines)
                .map_err(|e| ReplayError::View(format!("{}: {e}", req.view)))
        }

        /// Keeps the outputs our one subscriber receives, as lines: frames addressed to it, and
        /// broadcasts of its view that its key admits (list/append: no key or the same key;
        /// state: the same key).
        fn deliver(
            &mut self,
            args: &ReplayArgs,
            lines: &mut Vec<(String, Value)>,
        ) -> Result<(), String> {
            for o in self.outputs.drain(..) {
                let frame = match o {
                    Output::To { sub, frame } if sub == SUB => frame,
                    Output::Broadcast { view, key, frame } => match self.view {
                        Some((id, mode)) if id == view => {
                            let admitted = match (mode, args.key.as_deref()) {
                                (Mode::State, k) => k == Some(&*key),
                                (_, None) => true,
                                (_, Some(k)) => k == &*key,
                            };
                            if !admitted {
                                continue;
                            }
                            frame
                        }
                        _ => continue,
                    },
                    _ => continue,
                };
                let text = frame_text(frame.payload())?;
                let value: Value =
                    serde_json::from_str(&text).map_err(|e| format!("frame is not JSON: {e}"))?;
                lines.push((text, value));
            }
            Ok(())
        }
    }
}
