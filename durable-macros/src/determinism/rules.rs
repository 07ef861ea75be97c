//! What is refused, why, and what to write instead: the table every rule reads.
//!
//! Rules are written against *resolved* paths: the scope model (`scope.rs`) has already turned
//! what the user wrote (`nap`, `Clock::now`, `thread_rng` brought in by a glob) into the path of
//! the item it names (`tokio::time::sleep`, `std::time::SystemTime::now`,
//! `rand::prelude::thread_rng`). A path the resolver attributes to the user's own crate never
//! reaches this table.
//!
//! # Which items of a forbidden module are harmless
//!
//! Some modules are refused as a whole (`std::fs`, `std::net`, `std::env`, `tokio::time`,
//! `tokio::io`, `rand`, ...), because nearly everything in them talks to the world outside the
//! orchestration. An item inside such a module is nevertheless allowed when it is a **plain value
//! type, a constant or an error type whose every value is built from what the code passes in**:
//! nothing about it reads the clock, the file system, the network, the process environment or a
//! random source, and nothing about it waits. That admits
//!
//! - `tokio::time::Duration` (it *is* `std::time::Duration`), `tokio::time::MissedTickBehavior`,
//!   `tokio::time::Instant` as a type (only `Instant::now` reads the clock, as for std's),
//!   `tokio::time::error`;
//! - `std::env::consts::*` (`OS`, `ARCH`, ...: compile-time constants of the build);
//! - the `std::net` address types (`IpAddr`, `Ipv4Addr`, `Ipv6Addr`, `SocketAddr`,
//!   `SocketAddrV4`, `SocketAddrV6`, `Shutdown`, `AddrParseError`): parsing or building an
//!   address is pure, resolving a host name (`ToSocketAddrs`) is not and stays refused;
//! - `tokio::io::{Error, ErrorKind, Result}` (std's I/O error types, re-exported).
//!
//! Types whose purpose is I/O stay refused even where a constructor looks pure (`File`,
//! `TcpStream`, `Command`, `JoinSet`): building one is the first step of doing the I/O.

/// A family of non-deterministic constructs, each with its own explanation and alternative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Clock,
    Elapsed,
    Random,
    RandomHashing,
    Sleep,
    Timeout,
    Interval,
    Spawn,
    Io,
    Environment,
}

impl Category {
    /// The message for `subject`, already quoted (`` `nap` (`tokio::time::sleep`) ``).
    pub(crate) fn explain(self, subject: &str) -> String {
        match self {
            Category::Clock => format!(
                "{subject} reads the wall clock, which differs when the orchestrator is replayed: \
                 use `ctx.current_utc_datetime()`"
            ),
            Category::Elapsed => format!(
                "{subject} reads the wall clock to measure how long ago that was, which differs \
                 when the orchestrator is replayed: measure against the recorded time, \
                 `ctx.current_utc_datetime().duration_since(start)`"
            ),
            Category::Random => format!(
                "{subject} is random, so a replay would see other values: \
                 use `ctx.random_u64()` or `ctx.new_guid()`"
            ),
            Category::RandomHashing => format!(
                "{subject} seeds hashing at random in every process, so iteration order and hash \
                 values differ on replay: use a `BTreeMap` or `BTreeSet`, or a fixed hasher such as \
                 `BuildHasherDefault<DefaultHasher>`"
            ),
            Category::Sleep => format!(
                "{subject} is not durable and stalls replay: \
                 use a durable timer, `ctx.sleep(duration)` or `ctx.create_timer(at)`"
            ),
            Category::Timeout => format!(
                "{subject} times out on the wall clock, which a replay does not live through \
                 again: race the work against a durable timer, \
                 `ctx.when_any2(task, ctx.sleep(duration))`"
            ),
            Category::Interval => format!(
                "{subject} ticks on the wall clock and is not durable: loop on a durable timer, \
                 `ctx.sleep(period).await`"
            ),
            Category::Spawn => format!(
                "{subject} runs work outside the orchestration's history: \
                 use `ctx.call_activity(..)`, and `ctx.when_all(..)` to run activities in parallel"
            ),
            Category::Io => format!(
                "{subject} does I/O, whose result can differ on replay: \
                 move it into an #[activity] and call it with `ctx.call_activity(..)`"
            ),
            Category::Environment => format!(
                "{subject} reads the process environment, which can differ between processes: \
                 pass the value in the orchestrator's input, or read it in an #[activity]"
            ),
        }
    }
}

/// What the table says of a resolved path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Forbidden(Category),
    Harmless,
}

use Category::*;
use Verdict::{Forbidden as F, Harmless as H};

/// Patterns over resolved paths. A pattern matches a path that starts with it; `..` stands for
/// any number of segments (`chrono::..::Utc::now` covers `chrono::Utc::now` and
/// `chrono::prelude::Utc::now`). When several match, the one with the most named segments wins,
/// so a harmless item overrides the module it lives in.
const RULES: &[(&str, Verdict)] = &[
    // Wall-clock time.
    ("std::time::SystemTime::now", F(Clock)),
    ("std::time::Instant::now", F(Clock)),
    ("std::time::SystemTime::elapsed", F(Elapsed)),
    ("std::time::Instant::elapsed", F(Elapsed)),
    ("chrono::..::Utc::now", F(Clock)),
    ("chrono::..::Local::now", F(Clock)),
    ("time::..::OffsetDateTime::now_utc", F(Clock)),
    ("time::..::OffsetDateTime::now_local", F(Clock)),
    ("time::..::UtcDateTime::now", F(Clock)),
    ("jiff::..::Timestamp::now", F(Clock)),
    ("jiff::..::Zoned::now", F(Clock)),
    // Randomness.
    ("rand", F(Random)),
    ("fastrand", F(Random)),
    ("getrandom", F(Random)),
    ("uuid::..::Uuid::new_v4", F(Random)),
    ("uuid::..::Uuid::now_v1", F(Random)),
    ("uuid::..::Uuid::now_v6", F(Random)),
    ("uuid::..::Uuid::now_v7", F(Random)),
    ("std::collections::hash_map::RandomState", F(RandomHashing)),
    ("std::hash::RandomState", F(RandomHashing)),
    // Sleeping and timers.
    ("std::thread::sleep", F(Sleep)),
    ("std::thread::sleep_ms", F(Sleep)),
    ("std::thread::park_timeout", F(Sleep)),
    ("async_std::task::sleep", F(Sleep)),
    ("tokio::time", F(Sleep)),
    ("tokio::time::timeout", F(Timeout)),
    ("tokio::time::timeout_at", F(Timeout)),
    ("tokio::time::interval", F(Interval)),
    ("tokio::time::interval_at", F(Interval)),
    ("tokio::time::Instant", H),
    ("tokio::time::Instant::now", F(Clock)),
    ("tokio::time::Instant::elapsed", F(Elapsed)),
    ("tokio::time::Duration", H),
    ("tokio::time::MissedTickBehavior", H),
    ("tokio::time::error", H),
    // Spawning.
    ("std::thread::spawn", F(Spawn)),
    ("std::thread::scope", F(Spawn)),
    ("std::thread::Builder", F(Spawn)),
    ("tokio::spawn", F(Spawn)),
    ("tokio::task::spawn", F(Spawn)),
    ("tokio::task::spawn_blocking", F(Spawn)),
    ("tokio::task::spawn_local", F(Spawn)),
    ("tokio::task::block_in_place", F(Spawn)),
    ("tokio::task::JoinSet", F(Spawn)),
    ("tokio::task::LocalSet", F(Spawn)),
    // A runtime, or a handle to the current one, spawns and blocks like `tokio::spawn`.
    ("tokio::runtime", F(Spawn)),
    ("async_std::task::spawn", F(Spawn)),
    ("async_std::task::spawn_blocking", F(Spawn)),
    ("async_std::task::spawn_local", F(Spawn)),
    ("smol::spawn", F(Spawn)),
    // I/O.
    ("std::fs", F(Io)),
    ("tokio::fs", F(Io)),
    ("std::net", F(Io)),
    ("std::net::IpAddr", H),
    ("std::net::Ipv4Addr", H),
    ("std::net::Ipv6Addr", H),
    ("std::net::SocketAddr", H),
    ("std::net::SocketAddrV4", H),
    ("std::net::SocketAddrV6", H),
    ("std::net::Shutdown", H),
    ("std::net::AddrParseError", H),
    ("tokio::net", F(Io)),
    ("std::process", F(Io)),
    ("std::process::id", F(Environment)),
    ("tokio::process", F(Io)),
    ("std::io::stdin", F(Io)),
    ("tokio::io", F(Io)),
    ("tokio::io::Error", H),
    ("tokio::io::ErrorKind", H),
    ("tokio::io::Result", H),
    ("reqwest", F(Io)),
    ("hyper", F(Io)),
    ("ureq", F(Io)),
    ("surf", F(Io)),
    ("isahc", F(Io)),
    // Environment.
    ("std::env", F(Environment)),
    ("std::env::consts", H),
];

/// What a glob import of a known module brings into scope, as far as the rules care: its
/// forbidden items, the harmless items next to them, and the types the check tracks
/// (`HashMap`, `Instant`, ...). A glob of any other module brings nothing the check can name.
const GLOB_NAMES: &[(&str, &[&str])] = &[
    (
        "std::time",
        &["Instant", "SystemTime", "UNIX_EPOCH", "Duration"],
    ),
    (
        "std::thread",
        &[
            "sleep",
            "sleep_ms",
            "spawn",
            "scope",
            "Builder",
            "park_timeout",
        ],
    ),
    (
        "std::fs",
        &[
            "File",
            "OpenOptions",
            "DirBuilder",
            "read",
            "read_to_string",
            "read_dir",
            "read_link",
            "write",
            "copy",
            "rename",
            "remove_file",
            "remove_dir",
            "remove_dir_all",
            "create_dir",
            "create_dir_all",
            "metadata",
            "symlink_metadata",
            "canonicalize",
            "hard_link",
            "set_permissions",
            "exists",
        ],
    ),
    (
        "std::env",
        &[
            "var",
            "vars",
            "var_os",
            "vars_os",
            "args",
            "args_os",
            "current_dir",
            "current_exe",
            "home_dir",
            "temp_dir",
            "set_var",
            "remove_var",
            "set_current_dir",
            "split_paths",
            "join_paths",
            "consts",
        ],
    ),
    (
        "std::net",
        &[
            "TcpStream",
            "TcpListener",
            "UdpSocket",
            "ToSocketAddrs",
            "IpAddr",
            "Ipv4Addr",
            "Ipv6Addr",
            "SocketAddr",
            "SocketAddrV4",
            "SocketAddrV6",
            "Shutdown",
            "AddrParseError",
        ],
    ),
    (
        "std::process",
        &["Command", "Stdio", "Child", "exit", "abort", "id", "Output"],
    ),
    ("std::io", &["stdin"]),
    (
        "std::collections",
        &["HashMap", "HashSet", "hash_map", "hash_set"],
    ),
    ("std::collections::hash_map", &["HashMap", "RandomState"]),
    ("std::collections::hash_set", &["HashSet"]),
    ("std::hash", &["RandomState"]),
    (
        "tokio",
        &[
            "spawn", "select", "time", "task", "fs", "net", "io", "process", "runtime",
        ],
    ),
    (
        "tokio::time",
        &[
            "sleep",
            "sleep_until",
            "interval",
            "interval_at",
            "timeout",
            "timeout_at",
            "Instant",
            "Duration",
            "MissedTickBehavior",
            "Sleep",
            "Interval",
            "Timeout",
            "error",
        ],
    ),
    (
        "tokio::task",
        &[
            "spawn",
            "spawn_blocking",
            "spawn_local",
            "block_in_place",
            "JoinSet",
            "LocalSet",
        ],
    ),
    (
        "tokio::io",
        &[
            "stdin",
            "stdout",
            "stderr",
            "copy",
            "copy_bidirectional",
            "empty",
            "sink",
            "split",
            "BufReader",
            "BufWriter",
            "AsyncReadExt",
            "AsyncWriteExt",
            "AsyncBufReadExt",
            "Error",
            "ErrorKind",
            "Result",
        ],
    ),
    (
        "tokio::fs",
        &[
            "File",
            "OpenOptions",
            "read",
            "read_to_string",
            "read_dir",
            "write",
            "copy",
            "rename",
            "remove_file",
            "remove_dir",
            "create_dir",
            "create_dir_all",
            "metadata",
        ],
    ),
    (
        "tokio::net",
        &["TcpStream", "TcpListener", "UdpSocket", "lookup_host"],
    ),
    ("tokio::process", &["Command", "Child"]),
    ("rand", RAND_NAMES),
    ("rand::prelude", RAND_NAMES),
    ("rand::rngs", &["StdRng", "SmallRng", "ThreadRng", "OsRng"]),
    ("tokio::runtime", &["Handle", "Runtime", "Builder"]),
    ("jiff", &["Timestamp", "Zoned"]),
    ("chrono", &["Utc", "Local"]),
    ("chrono::prelude", &["Utc", "Local"]),
    ("chrono::offset", &["Utc", "Local"]),
    ("uuid", &["Uuid"]),
    ("durable_runtime", &["Uuid"]),
    ("hashbrown", &["HashMap", "HashSet"]),
];

const RAND_NAMES: &[&str] = &[
    "random",
    "random_range",
    "random_bool",
    "random_iter",
    "rng",
    "thread_rng",
    "fill",
    "Rng",
    "RngCore",
    "SeedableRng",
    "CryptoRng",
    "StdRng",
    "SmallRng",
    "ThreadRng",
    "OsRng",
    "Distribution",
    "SliceRandom",
    "IteratorRandom",
    "IndexedRandom",
];

/// Re-exports whose canonical path the rules are written against.
const REEXPORTS: &[(&str, &str)] = &[
    ("durable_runtime::Uuid", "uuid::Uuid"),
    ("durable_runtime::prelude::Duration", "std::time::Duration"),
    ("std::time::SystemTime::UNIX_EPOCH", "std::time::UNIX_EPOCH"),
    (
        "std::collections::hash_map::HashMap",
        "std::collections::HashMap",
    ),
    (
        "std::collections::hash_set::HashSet",
        "std::collections::HashSet",
    ),
];

fn segments(pattern: &str) -> impl Iterator<Item = &str> {
    pattern.split("::")
}

/// The path the rules are written against: `core::`/`alloc::` are `std::`, and known
/// re-exports are replaced by the item they re-export.
pub(crate) fn canonical(path: &[String]) -> Vec<String> {
    let mut path = path.to_vec();
    if let Some(first) = path.first_mut()
        && (first == "core" || first == "alloc")
    {
        *first = "std".to_string();
    }
    for (from, to) in REEXPORTS {
        let from: Vec<&str> = segments(from).collect();
        if path.len() >= from.len() && path.iter().zip(&from).all(|(a, b)| a == b) {
            let rest = path.split_off(from.len());
            path = segments(to).map(str::to_string).chain(rest).collect();
        }
    }
    path
}

/// Does `pattern` (with `..` wildcards) match a prefix of `path`?
fn matches(pattern: &[&str], path: &[String]) -> bool {
    match pattern.split_first() {
        None => true,
        Some((&"..", rest)) => (0..=path.len()).any(|skip| matches(rest, &path[skip..])),
        Some((head, rest)) => path
            .split_first()
            .is_some_and(|(first, tail)| first == head && matches(rest, tail)),
    }
}

/// The verdict of the most specific rule matching a canonical path, if any.
pub(crate) fn verdict(path: &[String]) -> Option<Verdict> {
    RULES
        .iter()
        .filter_map(|(pattern, verdict)| {
            let pattern: Vec<&str> = segments(pattern).collect();
            matches(&pattern, path)
                .then(|| (pattern.iter().filter(|s| **s != "..").count(), *verdict))
        })
        .max_by_key(|(specificity, _)| *specificity)
        .map(|(_, verdict)| verdict)
}

/// The category to report for a canonical path, if it is forbidden.
pub(crate) fn forbidden(path: &[String]) -> Option<Category> {
    match verdict(path) {
        Some(Verdict::Forbidden(category)) => Some(category),
        _ => None,
    }
}

/// Does a glob import of the (canonical) module `module` bring `name` into scope, as far as
/// the check can tell?
pub(crate) fn glob_brings(module: &[String], name: &str) -> bool {
    GLOB_NAMES.iter().any(|(prefix, names)| {
        segments(prefix).eq(module.iter().map(String::as_str)) && names.contains(&name)
    })
}

/// Canonical paths of the types the check follows through bindings.
pub(crate) const HASH_COLLECTION_TYPES: &[&str] = &[
    "std::collections::HashMap",
    "std::collections::HashSet",
    "hashbrown::HashMap",
    "hashbrown::HashSet",
];

/// Canonical paths of clock readings, whose `.elapsed()` reads the clock again.
pub(crate) const TIME_TYPES: &[&str] = &[
    "std::time::Instant",
    "std::time::SystemTime",
    "tokio::time::Instant",
];

/// Is `path` exactly one of `list`?
pub(crate) fn is_one_of(path: &[String], list: &[&str]) -> bool {
    list.iter()
        .any(|item| segments(item).eq(path.iter().map(String::as_str)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<String> {
        canonical(&text.split("::").map(str::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn the_most_specific_rule_wins() {
        assert_eq!(forbidden(&path("tokio::time::sleep")), Some(Sleep));
        assert_eq!(forbidden(&path("tokio::time::timeout")), Some(Timeout));
        assert_eq!(verdict(&path("tokio::time::Duration::from_secs")), Some(H));
        assert_eq!(verdict(&path("std::env::consts::OS")), Some(H));
        assert_eq!(forbidden(&path("std::env::var")), Some(Environment));
        assert_eq!(verdict(&path("std::net::Ipv4Addr::new")), Some(H));
        assert_eq!(forbidden(&path("std::net::ToSocketAddrs")), Some(Io));
        assert_eq!(forbidden(&path("tokio::time::Instant::now")), Some(Clock));
    }

    #[test]
    fn wildcards_and_reexports() {
        assert_eq!(forbidden(&path("chrono::Utc::now")), Some(Clock));
        assert_eq!(forbidden(&path("chrono::prelude::Utc::now")), Some(Clock));
        assert_eq!(forbidden(&path("chrono::Utc::today")), None);
        assert_eq!(
            forbidden(&path("durable_runtime::Uuid::new_v4")),
            Some(Random)
        );
        assert_eq!(forbidden(&path("core::time::Instant::now")), Some(Clock));
        assert_eq!(forbidden(&path("core::thread::sleep")), Some(Sleep));
        assert_eq!(forbidden(&path("std::time::Duration::from_secs")), None);
        assert_eq!(forbidden(&path("std::time::SystemTime::UNIX_EPOCH")), None);
    }

    #[test]
    fn globs_bring_only_known_names() {
        assert!(glob_brings(&path("rand::prelude"), "thread_rng"));
        assert!(!glob_brings(&path("rand::prelude"), "ctx"));
        assert!(glob_brings(&path("tokio::time"), "Duration"));
        assert!(!glob_brings(&path("serde"), "Serialize"));
    }
}
