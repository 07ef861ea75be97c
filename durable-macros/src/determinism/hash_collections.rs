//! `HashMap` / `HashSet` iteration: the order differs in every process, so whatever the loop
//! does happens in another order on replay.
//!
//! A hash collection with a hasher that is not seeded at random (`HashMap<K, V,
//! BuildHasherDefault<DefaultHasher>>`) iterates in the same order in every process, and is
//! not followed. A value is known to be a hash collection (with the default, random hasher)
//! when it is
//! - a binding whose type says so (`let m: HashMap<..>`, a parameter of the orchestrator, of a
//!   nested fn or of a closure, a `static`), references and smart pointers looked through;
//! - a binding whose initializer builds one (`HashMap::new()`, `HashSet::from([..])`,
//!   `HashMap::from_iter(..)`, `.collect::<HashSet<_>>()`, `other.clone()`);
//! - such an expression written in place (`for x in HashSet::from([1, 2])`).
//!
//! It is iterated by `for`, by the iterating methods (`iter`, `keys`, `values`, `drain`, ...,
//! and the set operations `union`, `intersection`, `difference`, `symmetric_difference`, which
//! return iterators in hash order), and by handing it to `extend` / `chain` / `zip`. An
//! iteration whose order cannot show is allowed: one that goes, through `cloned()` / `copied()`
//! only, into `count()`, `len()`, `min()`, `max()`, `sorted()`, `collect()` into a set or map,
//! or `collect()` into a binding that the very next statement sorts (`v.sort()`,
//! `v.sort_unstable()`).

use super::rules;
use super::scope::{Ns, Target, Tracked};
use super::visitor::Checker;
use syn::{Expr, ExprMethodCall, Pat, Stmt, Type};

pub(crate) const HASH_ITERATION: &str = "iterating a `HashMap` or `HashSet` visits entries in a \
     different order in every process, so a replay can diverge: use a `BTreeMap` or `BTreeSet`";

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
    "extract_if",
    "union",
    "intersection",
    "difference",
    "symmetric_difference",
];

/// Methods that take an iterable argument and consume it in its order.
const CONSUMING_ARGUMENT: &[&str] = &["extend", "chain", "zip"];

/// Associated functions of `HashMap` / `HashSet` that build one with the default, random
/// hasher. (`with_hasher(..)` takes one: a `RandomState` passed there is refused on its own.)
const CONSTRUCTORS: &[&str] = &["new", "with_capacity", "default", "from", "from_iter"];

/// Hashers seeded at random in every process: with one of these (the default), a hash
/// collection iterates in a different order in every process. With any other (a fixed hasher
/// such as `BuildHasherDefault<DefaultHasher>`), the order is the same in every process.
const RANDOM_HASHERS: &[&str] = &[
    "std::collections::hash_map::RandomState",
    "std::hash::RandomState",
    "hashbrown::DefaultHashBuilder",
    "hashbrown::hash_map::DefaultHashBuilder",
    "foldhash::fast::RandomState",
    "foldhash::quality::RandomState",
    "ahash::RandomState",
];

/// Iterator steps that pass items through unchanged and run no code of the user's.
const PLAIN_ADAPTERS: &[&str] = &["cloned", "copied"];

/// Consumers whose result does not depend on the order they see items in (`sorted` is
/// itertools', a full sort).
const ORDER_FREE_SINKS: &[&str] = &["count", "len", "min", "max", "sorted", "sorted_unstable"];

/// Sorts of a whole `Vec` by its elements' own order: afterwards, the order the elements
/// were collected in cannot show (a sort by a key could keep ties in that order).
const FULL_SORTS: &[&str] = &["sort", "sort_unstable"];

/// Collections whose contents do not depend on the order they were filled in.
const SETS_AND_MAPS: &[&str] = &[
    "std::collections::HashMap",
    "std::collections::HashSet",
    "std::collections::BTreeMap",
    "std::collections::BTreeSet",
    "hashbrown::HashMap",
    "hashbrown::HashSet",
];

impl Checker<'_> {
    /// Is `expr` a hash collection (or a reference to one)?
    pub(crate) fn is_hash_collection(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Path(_) => self.tracked_name(expr) == Some(Tracked::HashCollection),
            Expr::Reference(reference) => self.is_hash_collection(&reference.expr),
            Expr::Paren(paren) => self.is_hash_collection(&paren.expr),
            Expr::Group(group) => self.is_hash_collection(&group.expr),
            Expr::MethodCall(call) if call.method == "clone" || call.method == "to_owned" => {
                self.is_hash_collection(&call.receiver)
            }
            Expr::MethodCall(call) if call.method == "collect" => collect_target(call)
                .is_some_and(|ty| self.tracked_type(ty) == Some(Tracked::HashCollection)),
            Expr::Call(call) => {
                let Expr::Path(func) = &*call.func else {
                    return false;
                };
                if func.qself.is_some() {
                    return false;
                }
                let Target::External(path) = self.resolver.resolve_path(&func.path, Ns::Value)
                else {
                    return false;
                };
                let path = rules::canonical(&path);
                // `HashSet::<u32, Fixed>::default()`: the hasher named on the type's segment.
                let type_segment = func.path.segments.iter().rev().nth(1);
                path.split_last().is_some_and(|(last, ty)| {
                    CONSTRUCTORS.contains(&last.as_str())
                        && rules::is_one_of(ty, rules::HASH_COLLECTION_TYPES)
                        && !type_segment.is_some_and(|segment| self.has_fixed_hasher(segment, ty))
                })
            }
            _ => false,
        }
    }

    /// Does this `HashMap<K, V, S>` / `HashSet<T, S>` (its path's last segment, and what it
    /// resolves to) name a hasher that is not seeded at random?
    pub(crate) fn has_fixed_hasher(&self, segment: &syn::PathSegment, resolved: &[String]) -> bool {
        let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
            return false;
        };
        let position = match resolved.last().map(String::as_str) {
            Some("HashMap") => 2,
            Some("HashSet") => 1,
            _ => return false,
        };
        let hasher = args
            .args
            .iter()
            .filter_map(|arg| match arg {
                syn::GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .nth(position);
        match hasher {
            // Not written (the default), or left to inference: as random as the default.
            None | Some(Type::Infer(_)) => false,
            Some(hasher) => !self
                .resolver
                .external_type(hasher)
                .is_some_and(|path| rules::is_one_of(&path, RANDOM_HASHERS)),
        }
    }

    /// `for .. in <expr>` over a hash collection.
    pub(crate) fn check_for_loop(&mut self, iterated: &Expr) {
        if self.is_hash_collection(iterated) {
            self.error(
                iterated,
                HASH_ITERATION.to_string(),
                "the iteration of a `HashMap` or `HashSet`".to_string(),
            );
        }
    }

    /// `.iter()`, `.keys()`, `.union(..)`, ... on a hash collection, or one handed to
    /// `extend` / `chain` / `zip`.
    pub(crate) fn check_method_iteration(&mut self, call: &ExprMethodCall) {
        let method = call.method.to_string();
        if ITERATING_METHODS.contains(&method.as_str())
            && !self.order_free.contains(&address(call))
            && self.is_hash_collection(&call.receiver)
        {
            self.error(
                &call.method,
                HASH_ITERATION.to_string(),
                format!("`.{method}()` on a `HashMap` or `HashSet`"),
            );
        } else if CONSUMING_ARGUMENT.contains(&method.as_str())
            && let Some(argument) = call.args.first()
            && self.is_hash_collection(argument)
            // Extending one hash collection with another: the result has no order either.
            && !(method == "extend" && self.is_hash_collection(&call.receiver))
        {
            self.error(
                argument,
                HASH_ITERATION.to_string(),
                format!("a `HashMap` or `HashSet` handed to `.{method}(..)`"),
            );
        }
    }

    /// Called on every method call before its receiver is visited: if it consumes an
    /// iteration in a way whose order cannot show, the iteration is let through.
    pub(crate) fn note_order_free(&mut self, call: &ExprMethodCall) {
        let method = call.method.to_string();
        let sink = (ORDER_FREE_SINKS.contains(&method.as_str()) && call.args.is_empty())
            || (method == "collect"
                && collect_target(call).is_some_and(|ty| self.is_set_or_map(ty)));
        if sink {
            self.mark_iteration_order_free(&call.receiver);
        }
    }

    /// `let s: BTreeSet<_> = m.keys().cloned().collect();`: the binding's type is the
    /// collection collected into.
    pub(crate) fn note_collected_into(&mut self, ty: &Type, init: &Expr) {
        if let Expr::MethodCall(call) = init
            && call.method == "collect"
            && call.turbofish.is_none()
            && self.is_set_or_map(ty)
        {
            self.mark_iteration_order_free(&call.receiver);
        }
    }

    /// `let mut keys: Vec<_> = m.keys().cloned().collect(); keys.sort();`: an iteration
    /// collected into a binding that the very next statement sorts fully. Called on a block's
    /// statements before they are visited.
    pub(crate) fn note_collected_then_sorted(&mut self, stmts: &[Stmt]) {
        for pair in stmts.windows(2) {
            let [
                Stmt::Local(local),
                Stmt::Expr(Expr::MethodCall(sort), Some(_)),
            ] = pair
            else {
                continue;
            };
            let Some(init) = &local.init else { continue };
            let (Expr::MethodCall(collect), None) = (&*init.expr, &init.diverge) else {
                continue;
            };
            let name = match &local.pat {
                Pat::Ident(ident) => &ident.ident,
                Pat::Type(typed) => match &*typed.pat {
                    Pat::Ident(ident) => &ident.ident,
                    _ => continue,
                },
                _ => continue,
            };
            let sorts_it = FULL_SORTS.contains(&sort.method.to_string().as_str())
                && sort.args.is_empty()
                && matches!(&*sort.receiver, Expr::Path(path)
                    if path.qself.is_none() && path.path.is_ident(name));
            if collect.method == "collect" && collect.args.is_empty() && sorts_it {
                self.mark_iteration_order_free(&collect.receiver);
            }
        }
    }

    fn mark_iteration_order_free(&mut self, mut expr: &Expr) {
        while let Expr::MethodCall(call) = expr {
            let method = call.method.to_string();
            if PLAIN_ADAPTERS.contains(&method.as_str()) {
                expr = &call.receiver;
            } else {
                if ITERATING_METHODS.contains(&method.as_str()) {
                    self.order_free.insert(address(call));
                }
                return;
            }
        }
    }

    fn is_set_or_map(&self, ty: &Type) -> bool {
        self.resolver
            .external_type(ty)
            .is_some_and(|path| rules::is_one_of(&path, SETS_AND_MAPS))
    }
}

/// The type in `.collect::<T>()`.
fn collect_target(call: &ExprMethodCall) -> Option<&Type> {
    call.turbofish
        .as_ref()?
        .args
        .iter()
        .find_map(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
}

fn address(call: &ExprMethodCall) -> usize {
    std::ptr::from_ref(call) as usize
}
