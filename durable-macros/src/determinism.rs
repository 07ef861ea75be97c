//! The determinism check: finds code in an orchestrator body that would make a replay differ
//! from the first run, and says what to use instead.
//!
//! It is syntactic: paths are resolved through `use` items in the body and at the top of the
//! file (aliases included), and suffixes like `SystemTime::now` are matched even when the import
//! is not visible. A call hidden inside a helper function defined elsewhere cannot be seen; the
//! runtime's replay check is the backstop for those.

use quote::ToTokens;
use std::collections::{HashMap, HashSet};
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Attribute, Expr, Item, Macro, Pat, Stmt, Type, UseTree};

/// The escape hatch: `#[durable::allow_nondeterministic("reason")]` on a statement or
/// expression skips the check for it.
pub(crate) const ESCAPE_HATCH: &str = "allow_nondeterministic";

/// What the enclosing file declares at its top level, as far as the check cares.
#[derive(Default)]
pub(crate) struct FileScope {
    /// `use` items: local name → full path.
    aliases: HashMap<String, Vec<String>>,
    /// Glob imports' prefixes (`use std::thread::*` → `std::thread`).
    globs: Vec<Vec<String>>,
    /// Statics that can change: `static mut`, or with interior mutability.
    mutable_statics: HashSet<String>,
}

impl FileScope {
    /// Reads the file the macro is invoked in. Nothing is lost if it cannot: only imports at
    /// the top of the file go unseen.
    pub(crate) fn of_invocation() -> Self {
        let Some(path) = proc_macro::Span::call_site().local_file() else {
            return FileScope::default();
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return FileScope::default();
        };
        match syn::parse_file(&text) {
            Ok(file) => FileScope::from_items(&file.items),
            Err(_) => FileScope::default(),
        }
    }

    pub(crate) fn from_items(items: &[Item]) -> Self {
        let mut scope = FileScope::default();
        for item in items {
            match item {
                Item::Use(item) => {
                    collect_use(&item.tree, Vec::new(), &mut scope.aliases, &mut scope.globs)
                }
                Item::Static(item)
                    if matches!(item.mutability, syn::StaticMutability::Mut(_))
                        || has_interior_mutability(&item.ty) =>
                {
                    scope.mutable_statics.insert(item.ident.to_string());
                }
                _ => {}
            }
        }
        scope
    }
}

fn has_interior_mutability(ty: &Type) -> bool {
    let text = ty.to_token_stream().to_string();
    ["Atomic", "Mutex", "RwLock", "RefCell", "Cell <", "Cell<"]
        .iter()
        .any(|marker| text.contains(marker))
}

fn collect_use(
    tree: &UseTree,
    mut prefix: Vec<String>,
    aliases: &mut HashMap<String, Vec<String>>,
    globs: &mut Vec<Vec<String>>,
) {
    match tree {
        UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            collect_use(&path.tree, prefix, aliases, globs);
        }
        UseTree::Name(name) => {
            let ident = name.ident.to_string();
            if ident == "self" {
                if let Some(last) = prefix.last().cloned() {
                    aliases.insert(last, prefix);
                }
            } else {
                prefix.push(ident.clone());
                aliases.insert(ident, prefix);
            }
        }
        UseTree::Rename(rename) => {
            let original = rename.ident.to_string();
            if original != "self" {
                prefix.push(original);
            }
            aliases.insert(rename.rename.to_string(), prefix);
        }
        UseTree::Glob(_) => globs.push(prefix),
        UseTree::Group(group) => {
            for tree in &group.items {
                collect_use(tree, prefix.clone(), aliases, globs);
            }
        }
    }
}

/// A family of non-deterministic constructs, with what to use instead.
#[derive(Clone, Copy)]
enum Category {
    Clock,
    Random,
    Sleep,
    Spawn,
    Io,
    Environment,
}

impl Category {
    /// The message for `subject`, already quoted (`` `nap` (`tokio::time::sleep`) ``).
    fn explain(self, subject: &str) -> String {
        let written = subject;
        match self {
            Category::Clock => format!(
                "{written} reads the wall clock, which differs when the orchestrator is replayed: \
                 use `ctx.current_utc_datetime()`"
            ),
            Category::Random => format!(
                "{written} is random, so a replay would see other values: \
                 use `ctx.random_u64()` or `ctx.new_guid()`"
            ),
            Category::Sleep => format!(
                "{written} is not durable and stalls replay: \
                 use a durable timer, `ctx.sleep(duration)` or `ctx.create_timer(at)`"
            ),
            Category::Spawn => format!(
                "{written} runs work outside the orchestration's history: \
                 use `ctx.call_activity(..)`, and `ctx.when_all(..)` to run activities in parallel"
            ),
            Category::Io => format!(
                "{written} does I/O, whose result can differ on replay: \
                 move it into an #[activity] and call it with `ctx.call_activity(..)`"
            ),
            Category::Environment => format!(
                "{written} reads the process environment, which can differ between processes: \
                 pass the value in the orchestrator's input, or read it in an #[activity]"
            ),
        }
    }
}

/// Paths whose last segments identify the call wherever it was imported from.
const SUFFIX_RULES: &[(&[&str], Category)] = &[
    (&["SystemTime", "now"], Category::Clock),
    (&["Instant", "now"], Category::Clock),
    (&["Utc", "now"], Category::Clock),
    (&["Local", "now"], Category::Clock),
    (&["OffsetDateTime", "now_utc"], Category::Clock),
    (&["OffsetDateTime", "now_local"], Category::Clock),
    (&["thread_rng"], Category::Random),
    (&["Uuid", "new_v4"], Category::Random),
    (&["Uuid", "now_v7"], Category::Random),
    (&["OsRng"], Category::Random),
    (&["File", "open"], Category::Io),
    (&["File", "create"], Category::Io),
    (&["TcpStream", "connect"], Category::Io),
    (&["TcpListener", "bind"], Category::Io),
    (&["UdpSocket", "bind"], Category::Io),
    (&["Command", "new"], Category::Io),
];

/// Modules and crates everything under which is refused.
const PREFIX_RULES: &[(&[&str], Category)] = &[
    (&["rand"], Category::Random),
    (&["fastrand"], Category::Random),
    (&["getrandom"], Category::Random),
    (&["std", "thread", "sleep"], Category::Sleep),
    (&["tokio", "time"], Category::Sleep),
    (&["async_std", "task", "sleep"], Category::Sleep),
    (&["std", "thread", "spawn"], Category::Spawn),
    (&["std", "thread", "scope"], Category::Spawn),
    (&["std", "thread", "Builder"], Category::Spawn),
    (&["tokio", "spawn"], Category::Spawn),
    (&["tokio", "task", "spawn"], Category::Spawn),
    (&["tokio", "task", "spawn_blocking"], Category::Spawn),
    (&["tokio", "task", "spawn_local"], Category::Spawn),
    (&["tokio", "task", "block_in_place"], Category::Spawn),
    (&["std", "fs"], Category::Io),
    (&["tokio", "fs"], Category::Io),
    (&["std", "net"], Category::Io),
    (&["tokio", "net"], Category::Io),
    (&["std", "process"], Category::Io),
    (&["tokio", "process"], Category::Io),
    (&["std", "io", "stdin"], Category::Io),
    (&["reqwest"], Category::Io),
    (&["hyper"], Category::Io),
    (&["ureq"], Category::Io),
    (&["surf"], Category::Io),
    (&["isahc"], Category::Io),
    (&["std", "env"], Category::Environment),
];

/// Standard modules often used unqualified after `use std::{fs, env, ...}`: when the import
/// is not visible, a path starting with one of these is taken to mean the std module.
const STD_MODULES: &[&str] = &["fs", "env", "net", "process", "thread", "time"];

/// Methods that iterate a map or set (in its hash order).
const ITERATING_METHODS: &[&str] = &[
    "iter",
    "iter_mut",
    "into_iter",
    "keys",
    "values",
    "values_mut",
    "into_keys",
    "into_values",
    "drain",
];

/// Checks an orchestrator's body; one error per offending expression.
pub(crate) fn check(
    block: &syn::Block,
    inputs: &[&syn::PatType],
    file: &FileScope,
) -> Vec<syn::Error> {
    let mut checker = Checker {
        file,
        local_aliases: HashMap::new(),
        local_globs: Vec::new(),
        hash_collections: HashSet::new(),
        errors: Vec::new(),
    };
    for input in inputs {
        if is_hash_collection_type(&input.ty)
            && let Pat::Ident(ident) = &*input.pat
        {
            checker.hash_collections.insert(ident.ident.to_string());
        }
    }
    // Imports anywhere in the body apply to all of it (as far as this check is concerned).
    let mut uses = UseCollector::default();
    uses.visit_block(block);
    checker.local_aliases = uses.aliases;
    checker.local_globs = uses.globs;
    checker.visit_block(block);
    checker.errors
}

#[derive(Default)]
struct UseCollector {
    aliases: HashMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
}

impl<'ast> Visit<'ast> for UseCollector {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        collect_use(&item.tree, Vec::new(), &mut self.aliases, &mut self.globs);
    }
}

struct Checker<'a> {
    file: &'a FileScope,
    local_aliases: HashMap<String, Vec<String>>,
    local_globs: Vec<Vec<String>>,
    /// Local names known to hold a `HashMap` or `HashSet`.
    hash_collections: HashSet<String>,
    errors: Vec<syn::Error>,
}

impl Checker<'_> {
    /// An error covering all of `tokens` (not just their first token).
    fn error(&mut self, tokens: &dyn ToTokens, message: String) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// The path with its first segment expanded through the visible imports.
    fn resolve(&self, segments: &[String]) -> Vec<Vec<String>> {
        let Some(first) = segments.first() else {
            return Vec::new();
        };
        let rest = &segments[1..];
        let expand =
            |prefix: &Vec<String>| -> Vec<String> { prefix.iter().chain(rest).cloned().collect() };
        if let Some(full) = self
            .local_aliases
            .get(first)
            .or_else(|| self.file.aliases.get(first))
        {
            return vec![expand(full)];
        }
        let mut candidates = vec![segments.to_vec()];
        if STD_MODULES.contains(&first.as_str()) {
            candidates.push(
                std::iter::once("std".to_string())
                    .chain(segments.iter().cloned())
                    .collect(),
            );
        }
        for glob in self.local_globs.iter().chain(&self.file.globs) {
            candidates.push(glob.iter().chain(segments).cloned().collect());
        }
        candidates
    }

    fn check_path(&mut self, path: &syn::Path) {
        let segments: Vec<String> = path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .filter(|s| s != "crate" && s != "self" && s != "super")
            .collect();
        if segments.is_empty() {
            return;
        }
        let written = path_text(path);
        if segments.len() == 1 && self.file.mutable_statics.contains(&segments[0]) {
            let message = format!(
                "`{written}` is a mutable static: its value can differ between the first run and a \
                 replay. Keep state in local variables or in the orchestrator's input"
            );
            self.error(path, message);
            return;
        }
        for candidate in self.resolve(&segments) {
            if let Some(category) = classify(&candidate) {
                // Name what an alias stands for, so `nap(..)` is not a mystery.
                let subject = if candidate == segments || candidate.ends_with(&segments) {
                    format!("`{written}`")
                } else {
                    format!("`{written}` (`{}`)", candidate.join("::"))
                };
                self.error(path, category.explain(&subject));
                return;
            }
        }
    }

    fn check_macro(&mut self, mac: &Macro) {
        let segments: Vec<String> = mac
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        let resolved = self
            .resolve(&segments)
            .into_iter()
            .next()
            .unwrap_or_default();
        let name = segments.last().map(String::as_str).unwrap_or_default();
        let from = resolved.first().map(String::as_str).unwrap_or_default();
        let written = path_text(&mac.path);
        match name {
            "select" if from == "futures" => self.error(
                &mac.path,
                format!(
                    "`{written}!` picks among ready branches at random, so a replay can take another \
                     branch: use `ctx.when_any(..)`, which picks by history order"
                ),
            ),
            "select" => {
                let biased = mac.tokens.to_string().trim_start().starts_with("biased");
                if !biased {
                    self.error(
                        &mac.path,
                        format!(
                            "`{written}!` polls its branches in random order, so a replay can take \
                             another branch: add `biased;` as its first line, or use `ctx.when_any(..)`"
                        ),
                    );
                }
            }
            "thread_local" => self.error(
                &mac.path,
                "thread-local state can differ between the first run and a replay: keep state in \
                 local variables or in the orchestrator's input"
                    .to_string(),
            ),
            _ => {
                // Look inside `format!`, `println!`, `vec!`, ... when the tokens are expressions.
                if let Ok(args) = mac.parse_body_with(Punctuated::<Expr, syn::Token![,]>::parse_terminated) {
                    for arg in &args {
                        self.visit_expr(arg);
                    }
                }
            }
        }
    }

    fn check_escape_hatch(&mut self, attrs: &[Attribute]) -> bool {
        let Some(attr) = attrs.iter().find(|a| is_escape_hatch(a)) else {
            return false;
        };
        let reason = attr.parse_args::<syn::LitStr>();
        match reason {
            Ok(reason) if !reason.value().trim().is_empty() => {}
            _ => self.error(
                attr,
                "say why this is safe: #[durable::allow_nondeterministic(\"reason\")]".to_string(),
            ),
        }
        true
    }
}

fn classify(path: &[String]) -> Option<Category> {
    let matches_suffix = |rule: &[&str]| {
        path.len() >= rule.len()
            && path[path.len() - rule.len()..]
                .iter()
                .zip(rule)
                .all(|(a, b)| a == b)
    };
    let matches_prefix =
        |rule: &[&str]| path.len() >= rule.len() && path.iter().zip(rule).all(|(a, b)| a == b);
    SUFFIX_RULES
        .iter()
        .find(|(rule, _)| matches_suffix(rule))
        .or_else(|| PREFIX_RULES.iter().find(|(rule, _)| matches_prefix(rule)))
        .map(|(_, category)| *category)
}

fn path_text(path: &syn::Path) -> String {
    let text: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let lead = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{lead}{}", text.join("::"))
}

pub(crate) fn is_escape_hatch(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == ESCAPE_HATCH)
}

fn is_hash_collection_type(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "HashMap" || s.ident == "HashSet"),
        Type::Reference(reference) => is_hash_collection_type(&reference.elem),
        _ => false,
    }
}

/// Does this expression build a `HashMap` / `HashSet` (`HashMap::new()`, `.collect::<HashSet<_>>()`)?
fn builds_hash_collection(expr: &Expr) -> bool {
    match expr {
        Expr::Call(call) => match &*call.func {
            Expr::Path(path) => path
                .path
                .segments
                .iter()
                .any(|s| s.ident == "HashMap" || s.ident == "HashSet"),
            _ => false,
        },
        Expr::MethodCall(call) if call.method == "collect" => {
            call.turbofish.as_ref().is_some_and(|t| {
                t.args.iter().any(|arg| match arg {
                    syn::GenericArgument::Type(ty) => is_hash_collection_type(ty),
                    _ => false,
                })
            })
        }
        _ => false,
    }
}

/// The local variable an expression names, looking through `&`, `&mut` and parentheses.
fn named_local(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(path) if path.path.segments.len() == 1 => {
            Some(path.path.segments[0].ident.to_string())
        }
        Expr::Reference(reference) => named_local(&reference.expr),
        Expr::Paren(paren) => named_local(&paren.expr),
        _ => None,
    }
}

const HASH_ITERATION: &str = "iterating a `HashMap` or `HashSet` visits entries in a different order in \
     every process, so a replay can diverge: use a `BTreeMap` or `BTreeSet`";

impl<'ast> Visit<'ast> for Checker<'_> {
    fn visit_stmt(&mut self, stmt: &'ast Stmt) {
        let attrs: &[Attribute] = match stmt {
            Stmt::Local(local) => &local.attrs,
            Stmt::Macro(mac) => &mac.attrs,
            Stmt::Expr(expr, _) => expr_attrs(expr),
            Stmt::Item(_) => &[],
        };
        if self.check_escape_hatch(attrs) {
            return;
        }
        syn::visit::visit_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'ast Expr) {
        if self.check_escape_hatch(expr_attrs(expr)) {
            return;
        }
        syn::visit::visit_expr(self, expr);
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        let (name, annotated) = match &local.pat {
            Pat::Ident(ident) => (Some(ident.ident.to_string()), None),
            Pat::Type(typed) => match &*typed.pat {
                Pat::Ident(ident) => (Some(ident.ident.to_string()), Some(&*typed.ty)),
                _ => (None, None),
            },
            _ => (None, None),
        };
        if let Some(name) = name {
            let is_hash = annotated.is_some_and(is_hash_collection_type)
                || local
                    .init
                    .as_ref()
                    .is_some_and(|init| builds_hash_collection(&init.expr));
            if is_hash {
                self.hash_collections.insert(name);
            } else {
                self.hash_collections.remove(&name);
            }
        }
        syn::visit::visit_local(self, local);
    }

    fn visit_expr_for_loop(&mut self, expr: &'ast syn::ExprForLoop) {
        if let Some(name) = named_local(&expr.expr)
            && self.hash_collections.contains(&name)
        {
            self.error(&expr.expr, HASH_ITERATION.to_string());
        }
        syn::visit::visit_expr_for_loop(self, expr);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if ITERATING_METHODS.contains(&call.method.to_string().as_str())
            && let Some(name) = named_local(&call.receiver)
            && self.hash_collections.contains(&name)
        {
            self.error(&call.method, HASH_ITERATION.to_string());
        }
        syn::visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_path(&mut self, expr: &'ast syn::ExprPath) {
        self.check_path(&expr.path);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        self.check_macro(mac);
    }

    fn visit_item_static(&mut self, item: &'ast syn::ItemStatic) {
        if matches!(item.mutability, syn::StaticMutability::Mut(_))
            || has_interior_mutability(&item.ty)
        {
            self.error(
                &item.ident,
                format!(
                    "`{}` is a mutable static: its value can differ between the first run and a \
                     replay. Keep state in local variables or in the orchestrator's input",
                    item.ident
                ),
            );
        }
    }

    fn visit_item_use(&mut self, _: &'ast syn::ItemUse) {}
}

/// The attribute list of the expression kinds that can carry ours (one list serves both the
/// check and the stripping).
macro_rules! expr_attrs_of {
    ($expr:expr, $($ref:tt)+) => {
        match $expr {
            Expr::Array(e) => Some($($ref)+ e.attrs),
            Expr::Assign(e) => Some($($ref)+ e.attrs),
            Expr::Async(e) => Some($($ref)+ e.attrs),
            Expr::Await(e) => Some($($ref)+ e.attrs),
            Expr::Binary(e) => Some($($ref)+ e.attrs),
            Expr::Block(e) => Some($($ref)+ e.attrs),
            Expr::Call(e) => Some($($ref)+ e.attrs),
            Expr::Cast(e) => Some($($ref)+ e.attrs),
            Expr::Closure(e) => Some($($ref)+ e.attrs),
            Expr::Field(e) => Some($($ref)+ e.attrs),
            Expr::ForLoop(e) => Some($($ref)+ e.attrs),
            Expr::If(e) => Some($($ref)+ e.attrs),
            Expr::Index(e) => Some($($ref)+ e.attrs),
            Expr::Loop(e) => Some($($ref)+ e.attrs),
            Expr::Macro(e) => Some($($ref)+ e.attrs),
            Expr::Match(e) => Some($($ref)+ e.attrs),
            Expr::MethodCall(e) => Some($($ref)+ e.attrs),
            Expr::Paren(e) => Some($($ref)+ e.attrs),
            Expr::Path(e) => Some($($ref)+ e.attrs),
            Expr::Reference(e) => Some($($ref)+ e.attrs),
            Expr::Return(e) => Some($($ref)+ e.attrs),
            Expr::Struct(e) => Some($($ref)+ e.attrs),
            Expr::Try(e) => Some($($ref)+ e.attrs),
            Expr::Tuple(e) => Some($($ref)+ e.attrs),
            Expr::Unary(e) => Some($($ref)+ e.attrs),
            Expr::Unsafe(e) => Some($($ref)+ e.attrs),
            Expr::While(e) => Some($($ref)+ e.attrs),
            _ => None,
        }
    };
}

/// The attributes written on an expression (for the kinds that can carry ours).
fn expr_attrs(expr: &Expr) -> &[Attribute] {
    expr_attrs_of!(expr, &).map_or(&[], Vec::as_slice)
}

/// Removes the escape-hatch attributes so the compiler never sees them.
pub(crate) fn strip_escape_hatches(block: &mut syn::Block) {
    struct Stripper;
    impl syn::visit_mut::VisitMut for Stripper {
        fn visit_local_mut(&mut self, local: &mut syn::Local) {
            local.attrs.retain(|attr| !is_escape_hatch(attr));
            syn::visit_mut::visit_local_mut(self, local);
        }
        fn visit_expr_mut(&mut self, expr: &mut Expr) {
            strip_expr_attrs(expr);
            syn::visit_mut::visit_expr_mut(self, expr);
        }
        fn visit_stmt_macro_mut(&mut self, mac: &mut syn::StmtMacro) {
            mac.attrs.retain(|attr| !is_escape_hatch(attr));
            syn::visit_mut::visit_stmt_macro_mut(self, mac);
        }
    }
    syn::visit_mut::VisitMut::visit_block_mut(&mut Stripper, block);
}

fn strip_expr_attrs(expr: &mut Expr) {
    if let Some(attrs) = expr_attrs_of!(expr, &mut) {
        attrs.retain(|a| !is_escape_hatch(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn messages(block: syn::Block) -> Vec<String> {
        check(&block, &[], &FileScope::default())
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn messages_with_file(block: syn::Block, file: syn::File) -> Vec<String> {
        check(&block, &[], &FileScope::from_items(&file.items))
            .iter()
            .map(|e| e.to_string())
            .collect()
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
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("`std::time::SystemTime::now` reads the wall clock"));
        assert!(found[0].contains("ctx.current_utc_datetime()"));
        assert_eq!(messages(parse_quote!({ Instant::now() })).len(), 1);
        assert_eq!(messages(parse_quote!({ chrono::Utc::now() })).len(), 1);
    }

    #[test]
    fn aliases_in_the_body_and_the_file_are_followed() {
        let found = messages(parse_quote!({
            use std::time::SystemTime as Clock;
            Clock::now()
        }));
        assert_eq!(found.len(), 1, "{found:?}");
        let file: syn::File = parse_quote! { use tokio::time::sleep as nap; };
        let found = messages_with_file(parse_quote!({ nap(d).await }), file);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("ctx.sleep"));
        let file: syn::File = parse_quote! { use std::thread::*; };
        assert_eq!(
            messages_with_file(parse_quote!({ spawn(|| ()) }), file).len(),
            1
        );
    }

    #[test]
    fn each_family_is_caught() {
        for (block, needle) in [
            (parse_quote!({ rand::random::<u8>() }), "ctx.random_u64()"),
            (parse_quote!({ uuid::Uuid::new_v4() }), "ctx.new_guid()"),
            (parse_quote!({ std::thread::sleep(d) }), "ctx.sleep"),
            (
                parse_quote!({ tokio::spawn(async {}) }),
                "ctx.call_activity",
            ),
            (parse_quote!({ std::fs::read("x") }), "#[activity]"),
            (parse_quote!({ fs::read("x") }), "#[activity]"),
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
                    let m = HashMap::new();
                    for x in &m {}
                }),
                "BTreeMap",
            ),
            (
                parse_quote!({
                    let s: HashSet<u8> = x;
                    s.iter().count()
                }),
                "BTreeMap",
            ),
            (
                parse_quote!({ println!("{:?}", Instant::now()) }),
                "current_utc_datetime",
            ),
        ] {
            let found = messages(block);
            assert_eq!(found.len(), 1, "{needle}: {found:?}");
            assert!(found[0].contains(needle), "{found:?}");
        }
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
                let m = HashMap::new();
                m.get(&1)
            }))
            .is_empty()
        );
    }

    #[test]
    fn file_level_mutable_statics_are_caught() {
        let file: syn::File = parse_quote! {
            static mut COUNT: u32 = 0;
            static FLAG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            static NAME: &str = "fine";
        };
        let found = messages_with_file(
            parse_quote!({
                FLAG.load(o);
                unsafe { COUNT += 1 };
                NAME
            }),
            file,
        );
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn the_escape_hatch_needs_a_reason() {
        assert!(
            messages(parse_quote!({
                #[durable::allow_nondeterministic("only logged, never decides anything")]
                let t = std::time::Instant::now();
            }))
            .is_empty()
        );
        let found = messages(parse_quote!({
            #[durable::allow_nondeterministic]
            let t = std::time::Instant::now();
        }));
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("say why"));
    }

    #[test]
    fn stripping_removes_only_the_escape_hatch() {
        let mut block: syn::Block = parse_quote!({
            #[durable::allow_nondeterministic("x")]
            #[allow(unused)]
            let t = 1;
        });
        strip_escape_hatches(&mut block);
        let text = block.to_token_stream().to_string();
        assert!(!text.contains("allow_nondeterministic"));
        assert!(text.contains("allow (unused)"));
    }
}
