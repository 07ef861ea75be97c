//! The resolver, tested directly: what each value path in a `parse_quote!` block resolves to,
//! at the point where it is written.

use super::scope::{FileScope, Target, Tracked};
use super::visitor::Checker;
use syn::parse_quote;
use syn::visit::Visit;

/// Every value path of `block`, in order, with what it resolved to.
fn resolutions(file: syn::File, block: syn::Block) -> Vec<(String, Target)> {
    resolutions_in("workflow", file, block)
}

/// [`resolutions`] of the body of the orchestrator `name`.
fn resolutions_in(name: &str, file: syn::File, block: syn::Block) -> Vec<(String, Target)> {
    let scope = FileScope::from_items(&file.items);
    let mut checker = Checker::new(&scope, scope.module_of(name, &block));
    checker.visit_block(&block);
    checker.trace
}

/// What each occurrence of `name` resolved to, in order.
fn of(trace: &[(String, Target)], name: &str) -> Vec<Target> {
    trace
        .iter()
        .filter(|(written, _)| written == name)
        .map(|(_, target)| target.clone())
        .collect()
}

fn external(path: &str) -> Target {
    Target::External(path.split("::").map(str::to_string).collect())
}

const LOCAL: Target = Target::Local(None);
const USER: Target = Target::User(None);

#[test]
fn a_let_shadows_an_import_from_its_statement_on() {
    let trace = resolutions(
        parse_quote! { use rand::random; },
        parse_quote!({
            let first = random();
            let random = first;
            let again = random;
        }),
    );
    assert_eq!(of(&trace, "random"), [external("rand::random"), LOCAL]);
}

#[test]
fn destructuring_parameters_and_closure_parameters_bind() {
    let trace = resolutions(
        parse_quote! { use std::env::var as env; use tokio::spawn; use tokio::time::sleep; },
        parse_quote!({
            let (env, Point { x: spawn, .. }) = pair;
            let _ = (env, spawn);
            fn helper(sleep: u32) -> u32 {
                sleep
            }
            let twice = |sleep: u32| sleep * 2;
            sleep
        }),
    );
    assert_eq!(of(&trace, "env"), [LOCAL]);
    assert_eq!(of(&trace, "spawn"), [LOCAL]);
    assert_eq!(
        of(&trace, "sleep"),
        [LOCAL, LOCAL, external("tokio::time::sleep")]
    );
}

#[test]
fn loop_match_and_if_let_patterns_bind_only_in_their_scope() {
    let trace = resolutions(
        parse_quote! { use rand::random; },
        parse_quote!({
            for random in xs {
                random;
            }
            match x {
                Some(random) if random > 1 => random,
                _ => random,
            };
            if let Some(random) = y {
                random;
            } else {
                random;
            }
            while let Some(random) = it.next() {
                random;
            }
            random
        }),
    );
    let r = external("rand::random");
    assert_eq!(
        of(&trace, "random"),
        [
            LOCAL,
            LOCAL,
            LOCAL,
            r.clone(),
            LOCAL,
            r.clone(),
            LOCAL,
            r.clone()
        ]
    );
}

#[test]
fn items_in_the_body_and_the_file_are_the_users() {
    let trace = resolutions(
        parse_quote! {
            mod process { pub fn normalize() {} }
            mod time { pub fn now() {} }
            struct Command;
            struct Instant;
        },
        parse_quote!({
            fn random() {}
            random();
            process::normalize();
            time::now();
            Command::new();
            Instant::now();
        }),
    );
    assert_eq!(of(&trace, "random"), [USER]);
    assert_eq!(of(&trace, "process::normalize"), [USER]);
    assert_eq!(of(&trace, "time::now"), [USER]);
    assert_eq!(of(&trace, "Command::new"), [USER]);
    assert_eq!(of(&trace, "Instant::now"), [USER]);
}

#[test]
fn crate_self_and_super_paths_go_through_the_users_modules() {
    let trace = resolutions(
        parse_quote! {
            use std::process;
            mod env { pub fn var() {} }
            mod clock { pub use std::time::Instant; }
        },
        parse_quote!({
            crate::process::normalize();
            self::env::var();
            self::clock::Instant::now();
            process::Command::new("ls");
        }),
    );
    assert_eq!(of(&trace, "crate::process::normalize"), [USER]);
    assert_eq!(of(&trace, "self::env::var"), [USER]);
    assert_eq!(
        of(&trace, "self::clock::Instant::now"),
        [external("std::time::Instant::now")]
    );
    assert_eq!(
        of(&trace, "process::Command::new"),
        [external("std::process::Command::new")]
    );
}

#[test]
fn extern_crates_are_heads_of_paths_found_nowhere_else() {
    let trace = resolutions(
        parse_quote! { use rand; },
        parse_quote!({
            rand::random();
            ::rand::random();
            random();
        }),
    );
    assert_eq!(of(&trace, "rand::random"), [external("rand::random")]);
    assert_eq!(of(&trace, "::rand::random"), [external("rand::random")]);
    assert_eq!(of(&trace, "random"), [Target::Unresolved]);
}

#[test]
fn globs_bring_only_the_known_items_of_known_modules() {
    let trace = resolutions(
        parse_quote! {
            use rand::prelude::*;
            use tokio::time::*;
            use durable_runtime::prelude::*;
        },
        parse_quote!({
            let n = thread_rng();
            sleep(d);
            Duration::from_secs(1);
            ctx.call_activity(work, n);
            Ok(())
        }),
    );
    assert_eq!(
        of(&trace, "thread_rng"),
        [external("rand::prelude::thread_rng")]
    );
    assert_eq!(of(&trace, "sleep"), [external("tokio::time::sleep")]);
    assert_eq!(
        of(&trace, "Duration::from_secs"),
        [external("tokio::time::Duration::from_secs")]
    );
    assert_eq!(of(&trace, "ctx"), [Target::Unresolved]);
    assert_eq!(of(&trace, "Ok"), [Target::Unresolved]);
    assert_eq!(of(&trace, "work"), [Target::Unresolved]);
}

#[test]
fn a_glob_of_a_module_in_the_file_is_followed() {
    let trace = resolutions(
        parse_quote! {
            mod helpers { pub use std::time::Instant; pub fn tidy() {} }
            use helpers::*;
        },
        parse_quote!({
            Instant::now();
            tidy();
        }),
    );
    assert_eq!(
        of(&trace, "Instant::now"),
        [external("std::time::Instant::now")]
    );
    assert_eq!(of(&trace, "tidy"), [USER]);
}

#[test]
fn imports_in_a_block_apply_to_the_block_and_follow_renames() {
    let trace = resolutions(
        parse_quote! {},
        parse_quote!({
            {
                use std::time::SystemTime as Clock;
                Clock::now();
            }
            Clock::now();
        }),
    );
    assert_eq!(
        of(&trace, "Clock::now"),
        [
            external("std::time::SystemTime::now"),
            external("Clock::now")
        ]
    );
}

#[test]
fn a_nested_fn_does_not_see_the_bodys_locals() {
    let trace = resolutions(
        parse_quote! { use rand::random; },
        parse_quote!({
            let random = 1;
            fn helper() -> u8 {
                random()
            }
            random
        }),
    );
    assert_eq!(of(&trace, "random"), [external("rand::random"), LOCAL]);
}

#[test]
fn the_orchestrators_own_module_is_the_scope() {
    let file: syn::File = parse_quote! {
        use std::time::Instant as Elsewhere;
        mod flows {
            use std::time::Instant;
            #[orchestrator]
            async fn workflow(ctx: OrchestrationContext) {
                Instant::now();
            }
        }
    };
    let trace = resolutions(
        file,
        parse_quote!({
            Instant::now();
        }),
    );
    assert_eq!(
        of(&trace, "Instant::now"),
        [external("std::time::Instant::now")]
    );
}

#[test]
fn the_module_is_found_by_name_when_another_macro_rewrote_the_body() {
    let file: syn::File = parse_quote! {
        #[orchestrator]
        async fn at_the_root(ctx: OrchestrationContext) {}
        mod flows {
            use std::time::Instant;
            #[tracing::instrument(skip(ctx))]
            #[orchestrator]
            async fn traced(ctx: OrchestrationContext) {
                Instant::now();
            }
            fn nested() {
                #[orchestrator]
                async fn inner(ctx: OrchestrationContext) {
                    Instant::now();
                    1;
                }
            }
        }
    };
    // What `#[tracing::instrument]` hands on is not the body written in the file.
    let trace = resolutions_in(
        "traced",
        file.clone(),
        parse_quote!({
            let span = tracing::span!(tracing::Level::INFO, "traced");
            async move {
                Instant::now();
            }
            .await
        }),
    );
    assert_eq!(
        of(&trace, "Instant::now"),
        [external("std::time::Instant::now")]
    );
    // An orchestrator declared inside a function of the module.
    let trace = resolutions_in(
        "inner",
        file,
        parse_quote!({
            Instant::now();
            1;
        }),
    );
    assert_eq!(
        of(&trace, "Instant::now"),
        [external("std::time::Instant::now")]
    );
}

#[test]
fn an_item_wins_over_an_import_of_its_name_wherever_it_is_written() {
    // `use std::env;` brings a module (type namespace); the fn is the value `env`, whether it
    // is written before or after the import.
    let trace = resolutions(
        parse_quote! {
            fn env(name: &str) -> Option<String> { None }
            use std::env;
            use std::thread;
            fn thread() {}
        },
        parse_quote!({
            env("X");
            thread();
            env::var("X");
            {
                fn time() {}
                use std::time;
                time();
            }
        }),
    );
    assert_eq!(of(&trace, "env"), [USER]);
    assert_eq!(of(&trace, "thread"), [USER]);
    assert_eq!(of(&trace, "env::var"), [external("std::env::var")]);
    assert_eq!(of(&trace, "time"), [USER]);
}

#[test]
fn type_aliases_are_followed_to_what_they_name() {
    let trace = resolutions(
        parse_quote! {
            use std::collections::HashMap;
            type Clock = std::time::SystemTime;
            pub type Cache<V> = HashMap<String, V>;
            type Own = crate::clock::Clock;
            type Callback = fn() -> u32;
        },
        parse_quote!({
            Clock::now();
            let c: Cache<u32> = Cache::new();
            Own::now();
            {
                use std::time::Instant;
                type Moment = Instant;
                Moment::now();
            }
            c;
        }),
    );
    assert_eq!(
        of(&trace, "Clock::now"),
        [external("std::time::SystemTime::now")]
    );
    assert_eq!(
        of(&trace, "Cache::new"),
        [external("std::collections::HashMap::new")]
    );
    assert_eq!(
        of(&trace, "c"),
        [Target::Local(Some(Tracked::HashCollection))]
    );
    assert_eq!(of(&trace, "Own::now"), [USER]);
    assert_eq!(
        of(&trace, "Moment::now"),
        [external("std::time::Instant::now")]
    );
}

#[test]
fn aliases_that_name_each_other_end() {
    let trace = resolutions(
        parse_quote! { type A = B; type B = A; type C = C; },
        parse_quote!({
            A::x();
            C::x();
        }),
    );
    assert_eq!(of(&trace, "A::x"), [Target::Unresolved]);
    assert_eq!(of(&trace, "C::x"), [Target::Unresolved]);
}

#[test]
fn bindings_carry_what_their_type_or_initializer_says() {
    let trace = resolutions(
        parse_quote! { use std::collections::{BTreeMap, HashMap}; use std::time::Instant; },
        parse_quote!({
            let a: HashMap<u8, u8> = x;
            let b = HashMap::new();
            let c = a.clone();
            let d: BTreeMap<u8, u8> = x;
            let e = ctx.current_utc_datetime();
            fn f(g: &Instant, h: &mut HashMap<u8, u8>) {
                (g, h);
            }
            (a, b, c, d, e);
        }),
    );
    const HASH: Target = Target::Local(Some(Tracked::HashCollection));
    const TIME: Target = Target::Local(Some(Tracked::Time));
    assert_eq!(of(&trace, "a"), [HASH, HASH]);
    assert_eq!(of(&trace, "b"), [HASH]);
    assert_eq!(of(&trace, "c"), [HASH]);
    assert_eq!(of(&trace, "d"), [LOCAL]);
    assert_eq!(of(&trace, "e"), [TIME]);
    assert_eq!(of(&trace, "g"), [TIME]);
    assert_eq!(of(&trace, "h"), [HASH]);
}

#[test]
fn cycles_of_imports_and_globs_end() {
    let trace = resolutions(
        parse_quote! {
            use self::a as b;
            use self::b as a;
            mod m { pub use super::*; pub use std::time::Instant; }
            mod n { pub use super::*; pub use super::m::*; }
            use m::*;
            use n::*;
        },
        parse_quote!({
            a::x();
            Instant::now();
            missing();
        }),
    );
    assert_eq!(of(&trace, "a::x"), [Target::Unresolved]);
    assert_eq!(
        of(&trace, "Instant::now"),
        [external("std::time::Instant::now")]
    );
    assert_eq!(of(&trace, "missing"), [Target::Unresolved]);
}
