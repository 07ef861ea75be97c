//! The check end to end: a body (and the file around it) in, messages out.

use super::{FileScope, check, strip_escape_hatches};
use quote::ToTokens;
use syn::parse_quote;

fn messages(block: syn::Block) -> Vec<String> {
    messages_with_file(block, parse_quote! {})
}

fn messages_with_file(block: syn::Block, file: syn::File) -> Vec<String> {
    check(
        &parse_quote!(workflow),
        &block,
        &[],
        &FileScope::from_items(&file.items),
    )
    .iter()
    .map(|e| e.to_string())
    .collect()
}

fn assert_one(found: &[String], needle: &str) {
    assert_eq!(found.len(), 1, "{needle}: {found:?}");
    assert!(found[0].contains(needle), "{needle}: {found:?}");
}

#[test]
fn deterministic_code_passes() {
    let block = parse_quote!({
        let now = ctx.current_utc_datetime();
        let mut map = std::collections::BTreeMap::new();
        map.insert(1, now);
        for (k, v) in &map {
            let _ = (k, v);
        }
        let x = ctx.call_activity(work, 3).await?;
        println!("{x}");
    });
    assert!(messages(block).is_empty());
}

#[test]
fn wall_clock_is_refused_with_the_alternative() {
    let found = messages(parse_quote!({
        let t = std::time::SystemTime::now();
    }));
    assert_one(&found, "`std::time::SystemTime::now` reads the wall clock");
    assert!(found[0].contains("ctx.current_utc_datetime()"));
    assert_one(
        &messages(parse_quote!({ std::time::Instant::now() })),
        "wall clock",
    );
    assert_one(
        &messages(parse_quote!({ chrono::Utc::now() })),
        "wall clock",
    );
}

#[test]
fn aliases_in_the_body_and_the_file_are_followed() {
    let found = messages(parse_quote!({
        use std::time::SystemTime as Clock;
        Clock::now()
    }));
    assert_one(&found, "`Clock::now` (`std::time::SystemTime::now`)");
    let file: syn::File = parse_quote! { use tokio::time::sleep as nap; };
    assert_one(
        &messages_with_file(parse_quote!({ nap(d).await }), file),
        "ctx.sleep",
    );
    let file: syn::File = parse_quote! { use std::thread::*; };
    assert_one(
        &messages_with_file(parse_quote!({ spawn(|| ()) }), file),
        "ctx.call_activity",
    );
}

#[test]
fn each_family_is_caught() {
    for (block, needle) in [
        (parse_quote!({ rand::random::<u8>() }), "ctx.random_u64()"),
        (parse_quote!({ uuid::Uuid::new_v4() }), "ctx.new_guid()"),
        (
            parse_quote!({ durable_runtime::Uuid::new_v4() }),
            "ctx.new_guid()",
        ),
        (parse_quote!({ std::thread::sleep(d) }), "ctx.sleep"),
        (
            parse_quote!({ tokio::spawn(async {}) }),
            "ctx.call_activity",
        ),
        (parse_quote!({ std::fs::read("x") }), "#[activity]"),
        (
            parse_quote!({
                use std::fs;
                fs::read("x")
            }),
            "#[activity]",
        ),
        (parse_quote!({ reqwest::get(url) }), "#[activity]"),
        (parse_quote!({ std::env::var("X") }), "orchestrator's input"),
        (
            parse_quote!({
                tokio::select! { _ = a => {} }
            }),
            "biased",
        ),
        (
            parse_quote!({
                futures::select! { _ = a => {} }
            }),
            "ctx.when_any",
        ),
        (
            parse_quote!({
                static mut N: u32 = 0;
            }),
            "mutable static",
        ),
        (
            parse_quote!({
                let m = std::collections::HashMap::new();
                for x in &m {}
            }),
            "BTreeMap",
        ),
        (
            parse_quote!({
                let s: std::collections::HashSet<u8> = x;
                s.iter().count();
                s.iter().map(f).count()
            }),
            "BTreeMap",
        ),
        (
            parse_quote!({ println!("{:?}", std::time::Instant::now()) }),
            "current_utc_datetime",
        ),
        (
            parse_quote!({ tokio::time::timeout(d, work).await }),
            "ctx.when_any2(task, ctx.sleep(duration))",
        ),
        (
            parse_quote!({ tokio::time::interval(d) }),
            "ctx.sleep(period)",
        ),
        (
            parse_quote!({ std::collections::hash_map::RandomState::new() }),
            "seeds hashing at random",
        ),
        (parse_quote!({ tokio::io::stdin() }), "#[activity]"),
        (
            parse_quote!({ tokio::task::JoinSet::new() }),
            "ctx.when_all",
        ),
        (
            parse_quote!({ tokio::task::spawn_blocking(f) }),
            "ctx.when_all",
        ),
    ] {
        assert_one(&messages(block), needle);
    }
}

#[test]
fn spawning_through_a_runtime_handle_and_other_clocks_are_caught() {
    for (block, needle) in [
        (
            parse_quote!({ tokio::runtime::Handle::current().spawn(work) }),
            "`tokio::runtime::Handle::current` runs work outside the orchestration's history",
        ),
        (
            parse_quote!({
                use tokio::runtime::Handle;
                Handle::current().spawn_blocking(f)
            }),
            "ctx.call_activity",
        ),
        (
            parse_quote!({ tokio::runtime::Runtime::new() }),
            "ctx.call_activity",
        ),
        (
            parse_quote!({ async_std::task::spawn(work) }),
            "ctx.call_activity",
        ),
        (parse_quote!({ smol::spawn(work) }), "ctx.call_activity"),
        (
            parse_quote!({ jiff::Timestamp::now() }),
            "ctx.current_utc_datetime()",
        ),
        (
            parse_quote!({
                use jiff::Zoned;
                Zoned::now()
            }),
            "ctx.current_utc_datetime()",
        ),
        (
            parse_quote!({ time::UtcDateTime::now() }),
            "ctx.current_utc_datetime()",
        ),
    ] {
        assert_one(&messages(block), needle);
    }
    // What a runtime handle's module holds besides is not reached for in an orchestrator,
    // and jiff's and time's values built from what the code passes in are fine.
    assert!(
        messages(parse_quote!({
            jiff::Timestamp::from_second(0);
            time::OffsetDateTime::from_unix_timestamp(0);
        }))
        .is_empty()
    );
}

#[test]
fn nested_blocks_closures_and_async_blocks_are_checked() {
    let found = messages(parse_quote!({
        let read = |path: &str| async move { std::fs::read(path) };
        if true {
            loop {
                let _ = async { tokio::spawn(async {}) };
                break;
            }
        }
    }));
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn biased_select_and_hash_lookups_are_fine() {
    assert!(
        messages(parse_quote!({
            tokio::select! { biased; _ = a => {} }
        }))
        .is_empty()
    );
    assert!(
        messages(parse_quote!({
            let m = std::collections::HashMap::new();
            m.get(&1)
        }))
        .is_empty()
    );
}

#[test]
fn file_level_statics_are_caught_where_they_are_read() {
    let file: syn::File = parse_quote! {
        static mut COUNT: u32 = 0;
        static FLAG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        static NAME: &str = "fine";
        static STARTED: std::sync::LazyLock<std::time::SystemTime> =
            std::sync::LazyLock::new(std::time::SystemTime::now);
        thread_local! { static SEEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) }; }
    };
    let found = messages_with_file(
        parse_quote!({
            FLAG.load(o);
            unsafe { COUNT += 1 };
            SEEN.with(|s| s.get());
            let t = *STARTED;
            NAME
        }),
        file,
    );
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(
        found[2].contains("`SEEN` is thread-local state"),
        "{found:?}"
    );
    assert!(
        found[3].contains("`STARTED` is initialized with `std::time::SystemTime::now`"),
        "{found:?}"
    );
}

#[test]
fn statics_in_the_body_have_their_initializers_checked() {
    assert_one(
        &messages(parse_quote!({
            static STARTED: std::sync::LazyLock<std::time::SystemTime> =
                std::sync::LazyLock::new(std::time::SystemTime::now);
        })),
        "reads the wall clock",
    );
}

#[test]
fn macro_arguments_are_checked() {
    let found = messages(parse_quote!({
        let v = vec![std::time::Instant::now(); 2];
        let s = format!("{:?}", std::env::var("X"));
        assert!(rand::random::<bool>(), "{}", 1);
        my_macro!(std::thread::sleep(d));
        tokio::select! {
            biased;
            _ = tokio::time::sleep(d) => {},
            x = ctx.sleep(d), if rand::random::<bool>() => { std::fs::read(x) }
            else => {}
        }
        json!({ "at": std::time::SystemTime::now() });
    }));
    assert_eq!(found.len(), 8, "{found:?}");
}

#[test]
fn patterns_in_matches_bind_names_and_are_not_calls() {
    let file: syn::File = parse_quote! { use tokio::spawn; use std::env::*; };
    let found = messages_with_file(
        parse_quote!({
            let ok = matches!(job, Some(spawn) if spawn > 2);
            assert!(matches!(lookup(), Ok(var) | Err(var) if !var.is_empty()));
            debug_assert_matches!(next, Some(var));
            // The scrutinee and the guard are still checked.
            matches!(std::env::var("X"), Ok(v) if v == format!("{:?}", std::time::Instant::now()));
            // A pattern binding does not leak out of the macro.
            spawn(async {});
        }),
        file,
    );
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("`std::env::var`"), "{found:?}");
    assert!(found[1].contains("`std::time::Instant::now`"), "{found:?}");
    assert!(found[2].starts_with("`spawn` runs work"), "{found:?}");
}

#[test]
fn hash_collections_are_followed_through_bindings() {
    let file: syn::File = parse_quote! { use std::collections::{BTreeSet, HashMap, HashSet}; };
    let found = messages_with_file(
        parse_quote!({
            let a: HashSet<u32> = x;
            let b = HashSet::from([1, 2]);
            for x in a.union(&b) {}
            let c = a.clone();
            for x in c {}
            for x in HashMap::from([(1, 2)]).keys() {}
            let a = a.into_iter();
            fn helper(m: &HashMap<u8, u8>) {
                for x in m {}
            }
            v.extend(&b);
        }),
        file,
    );
    assert_eq!(found.len(), 6, "{found:?}");
}

#[test]
fn order_free_uses_of_hash_collections_pass() {
    let file: syn::File = parse_quote! { use std::collections::{BTreeSet, HashMap, HashSet}; };
    let found = messages_with_file(
        parse_quote!({
            let a: HashSet<u32> = x;
            let b: HashSet<u32> = y;
            let n = a.intersection(&b).count();
            let all: HashSet<u32> = a.union(&b).cloned().collect();
            let sorted: BTreeSet<u32> = a.iter().copied().collect();
            let also = a.iter().cloned().collect::<BTreeSet<_>>();
            let mut c = HashSet::new();
            c.extend(&a);
            let a = 3;
            for x in [a] {}
        }),
        file,
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn collecting_a_hash_iteration_then_sorting_it_at_once_passes() {
    let file: syn::File = parse_quote! { use std::collections::{HashMap, HashSet}; };
    let found = messages_with_file(
        parse_quote!({
            let m: HashMap<String, u32> = x;
            let s: HashSet<u32> = y;
            let mut keys: Vec<_> = m.keys().cloned().collect();
            keys.sort();
            let mut pairs = m.clone().into_iter().collect::<Vec<(String, u32)>>();
            pairs.sort_unstable();
            let ordered: Vec<u32> = s.iter().copied().sorted().collect();
            (keys, pairs, ordered)
        }),
        file.clone(),
    );
    assert!(found.is_empty(), "{found:?}");
    // Sorted later, by a key that can tie, or another binding: the order can show.
    let found = messages_with_file(
        parse_quote!({
            let m: HashMap<String, u32> = x;
            let mut later: Vec<_> = m.keys().collect();
            println!("{later:?}");
            later.sort();
            let mut by_key: Vec<_> = m.iter().collect();
            by_key.sort_by_key(|(_, v)| **v);
            let mut other: Vec<_> = m.values().collect();
            by_key.sort();
            let mut mapped: Vec<_> = m.keys().map(|k| k.len()).collect();
            mapped.sort();
        }),
        file,
    );
    assert_eq!(found.len(), 4, "{found:?}");
}

#[test]
fn a_hash_collection_with_a_fixed_hasher_iterates_in_a_fixed_order() {
    // What the message about `RandomState` advises must then pass.
    let file: syn::File = parse_quote! {
        use std::collections::{HashMap, HashSet};
        use std::collections::hash_map::{DefaultHasher, RandomState};
        use std::hash::BuildHasherDefault;
        type Fixed = BuildHasherDefault<DefaultHasher>;
    };
    let found = messages_with_file(
        parse_quote!({
            let a: HashMap<u32, u32, BuildHasherDefault<DefaultHasher>> = HashMap::default();
            let b = HashSet::<u32, Fixed>::default();
            let c: HashMap<u32, u32, Fixed> = HashMap::with_hasher(Fixed::default());
            for x in &a {}
            for x in b.iter() {}
            for x in c.keys() {}
        }),
        file.clone(),
    );
    assert!(found.is_empty(), "{found:?}");
    // `RandomState` spelled out is the default's random order.
    let found = messages_with_file(
        parse_quote!({
            let d: HashMap<u32, u32, RandomState> = x;
            let e = HashSet::<u32, std::hash::RandomState>::default();
            for x in &d {}
            for x in &e {}
        }),
        file,
    );
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn elapsed_reads_the_clock_again() {
    let found = messages(parse_quote!({
        std::time::SystemTime::UNIX_EPOCH.elapsed();
        std::time::UNIX_EPOCH.elapsed();
        let t = ctx.current_utc_datetime();
        t.elapsed();
        std::time::Instant::now().elapsed();
        other.elapsed();
    }));
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found[2].contains("`t.elapsed()`"), "{found:?}");
}

#[test]
fn harmless_items_of_forbidden_modules_pass() {
    let file: syn::File = parse_quote! { use std::env::consts::*; use tokio::time::*; };
    let found = messages_with_file(
        parse_quote!({
            let d = tokio::time::Duration::from_secs(1);
            let e = Duration::from_millis(1);
            let os = std::env::consts::OS;
            let arch = ARCH;
            let ip = std::net::Ipv4Addr::new(127, 0, 0, 1);
            let addr = std::net::SocketAddr::from((ip, 80));
        }),
        file,
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn the_escape_hatch_needs_a_reason_and_a_place() {
    assert!(
        messages(parse_quote!({
            #[durable::allow_nondeterministic("only logged, never decides anything")]
            let t = std::time::Instant::now();
            #[durable::allow_nondeterministic("a helper used only for logging")]
            fn helper() -> std::time::Instant {
                std::time::Instant::now()
            }
            #[durable::allow_nondeterministic("set once at startup, never changed")]
            static STARTED: std::sync::LazyLock<std::time::Instant> =
                std::sync::LazyLock::new(std::time::Instant::now);
        }))
        .is_empty()
    );
    assert_one(
        &messages(parse_quote!({
            #[durable::allow_nondeterministic]
            let t = std::time::Instant::now();
        })),
        "say why",
    );
    assert_one(
        &messages(parse_quote!({
            let f = |#[durable::allow_nondeterministic("x")] a: u32| a;
        })),
        "cannot go on a parameter",
    );
}

#[test]
fn stripping_removes_only_the_escape_hatch() {
    let mut block: syn::Block = parse_quote!({
        #[durable::allow_nondeterministic("x")]
        #[allow(unused)]
        let t = 1;
        #[durable::allow_nondeterministic("y")]
        fn helper() {}
        println!(
            "{}",
            #[durable::allow_nondeterministic("z")]
            1
        );
    });
    strip_escape_hatches(&mut block);
    let text = block.to_token_stream().to_string();
    assert!(!text.contains("allow_nondeterministic"), "{text}");
    assert!(text.contains("allow (unused)"));
}
