//! The escape hatch, `#[durable::allow_nondeterministic("reason")]`: on a statement, an
//! expression, an item (a nested `fn`, a `static`, an `impl`, ...) or a match arm inside an
//! orchestrator's body, it skips the check for that piece of code. The reason is required.
//!
//! No crate defines the attribute: `#[orchestrator]` reads it and removes it, wherever it is
//! in the body (macro arguments included), so rustc never looks for a `durable` crate. Where
//! it cannot apply (a parameter, a field, a pattern), the macro says so.

use super::visitor::Checker;
use crate::signature::Kind;
use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::ToTokens;
use std::collections::HashSet;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, Item};

pub(crate) const ESCAPE_HATCH: &str = "allow_nondeterministic";

const MISPLACED: &str = "#[durable::allow_nondeterministic(\"reason\")] goes on a statement, an \
     expression, an item (a nested `fn`, a `static`, ...) or a match arm inside the orchestrator's \
     body: it cannot go on a parameter, a field or a pattern";

pub(crate) fn is_escape_hatch(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == ESCAPE_HATCH)
}

impl Checker<'_> {
    /// Does one of `attrs` open the escape hatch? A hatch without a reason is an error (and
    /// still skips the check, so that is the only error).
    pub(crate) fn escaped(&mut self, attrs: &[Attribute]) -> bool {
        let Some(attr) = attrs.iter().find(|a| is_escape_hatch(a)) else {
            return false;
        };
        match attr.parse_args::<syn::LitStr>() {
            Ok(reason) if !reason.value().trim().is_empty() => {}
            _ => self.error(
                attr,
                "say why this is safe: #[durable::allow_nondeterministic(\"reason\")]".to_string(),
                "#[durable::allow_nondeterministic]".to_string(),
            ),
        }
        true
    }
}

/// The attributes written on an expression.
pub(crate) fn expr_attrs(expr: &Expr) -> &[Attribute] {
    match expr {
        Expr::Array(e) => &e.attrs,
        Expr::Assign(e) => &e.attrs,
        Expr::Async(e) => &e.attrs,
        Expr::Await(e) => &e.attrs,
        Expr::Binary(e) => &e.attrs,
        Expr::Block(e) => &e.attrs,
        Expr::Break(e) => &e.attrs,
        Expr::Call(e) => &e.attrs,
        Expr::Cast(e) => &e.attrs,
        Expr::Closure(e) => &e.attrs,
        Expr::Const(e) => &e.attrs,
        Expr::Continue(e) => &e.attrs,
        Expr::Field(e) => &e.attrs,
        Expr::ForLoop(e) => &e.attrs,
        Expr::Group(e) => &e.attrs,
        Expr::If(e) => &e.attrs,
        Expr::Index(e) => &e.attrs,
        Expr::Infer(e) => &e.attrs,
        Expr::Let(e) => &e.attrs,
        Expr::Lit(e) => &e.attrs,
        Expr::Loop(e) => &e.attrs,
        Expr::Macro(e) => &e.attrs,
        Expr::Match(e) => &e.attrs,
        Expr::MethodCall(e) => &e.attrs,
        Expr::Paren(e) => &e.attrs,
        Expr::Path(e) => &e.attrs,
        Expr::Range(e) => &e.attrs,
        Expr::RawAddr(e) => &e.attrs,
        Expr::Reference(e) => &e.attrs,
        Expr::Repeat(e) => &e.attrs,
        Expr::Return(e) => &e.attrs,
        Expr::Struct(e) => &e.attrs,
        Expr::Try(e) => &e.attrs,
        Expr::TryBlock(e) => &e.attrs,
        Expr::Tuple(e) => &e.attrs,
        Expr::Unary(e) => &e.attrs,
        Expr::Unsafe(e) => &e.attrs,
        Expr::While(e) => &e.attrs,
        Expr::Yield(e) => &e.attrs,
        _ => &[],
    }
}

/// The attributes written on an item.
pub(crate) fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// An error for each escape hatch written where it cannot apply.
pub(crate) fn misplaced(block: &syn::Block) -> Vec<syn::Error> {
    /// Attributes are visited after the node that carries them: the nodes where the escape
    /// hatch applies mark theirs first.
    #[derive(Default)]
    struct Placement {
        allowed: HashSet<usize>,
        errors: Vec<syn::Error>,
    }
    impl Placement {
        fn allow(&mut self, attrs: &[Attribute]) {
            self.allowed
                .extend(attrs.iter().map(|a| std::ptr::from_ref(a) as usize));
        }
    }
    impl<'ast> Visit<'ast> for Placement {
        fn visit_local(&mut self, local: &'ast syn::Local) {
            self.allow(&local.attrs);
            visit::visit_local(self, local);
        }
        fn visit_stmt_macro(&mut self, mac: &'ast syn::StmtMacro) {
            self.allow(&mac.attrs);
            visit::visit_stmt_macro(self, mac);
        }
        fn visit_expr(&mut self, expr: &'ast Expr) {
            self.allow(expr_attrs(expr));
            visit::visit_expr(self, expr);
        }
        fn visit_item(&mut self, item: &'ast Item) {
            self.allow(item_attrs(item));
            visit::visit_item(self, item);
        }
        fn visit_arm(&mut self, arm: &'ast syn::Arm) {
            self.allow(&arm.attrs);
            visit::visit_arm(self, arm);
        }
        fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
            self.allow(&item.attrs);
            visit::visit_impl_item_fn(self, item);
        }
        fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
            self.allow(&item.attrs);
            visit::visit_trait_item_fn(self, item);
        }
        fn visit_attribute(&mut self, attr: &'ast Attribute) {
            if is_escape_hatch(attr) && !self.allowed.contains(&(std::ptr::from_ref(attr) as usize))
            {
                self.errors
                    .push(syn::Error::new_spanned(attr, MISPLACED.to_string()));
            }
        }
    }
    let mut placement = Placement::default();
    placement.visit_block(block);
    placement.errors
}

/// Takes the escape hatches written on the function itself or on its parameters, where they
/// cannot apply, off the function: one error each, saying where they go (the compiler would
/// otherwise look for a crate named `durable`). An escape hatch written *above* the
/// `#[orchestrator]` attribute is resolved by the compiler before the macro runs, so it
/// cannot be caught here.
pub(crate) fn take_from_signature(kind: Kind, item: &mut syn::ItemFn) -> Vec<syn::Error> {
    let mut errors = Vec::new();
    let on_function = match kind {
        Kind::Orchestrator => {
            "#[durable::allow_nondeterministic(\"reason\")] cannot cover a whole orchestrator: put \
             it on the statement, expression or item inside the body that needs it"
        }
        Kind::Activity => {
            "#[durable::allow_nondeterministic(\"reason\")] is for code inside an \
             #[orchestrator]: an activity may do anything, so remove it"
        }
    };
    take(&mut item.attrs, on_function, &mut errors);
    for input in &mut item.sig.inputs {
        let attrs = match input {
            syn::FnArg::Typed(typed) => &mut typed.attrs,
            syn::FnArg::Receiver(receiver) => &mut receiver.attrs,
        };
        take(attrs, MISPLACED, &mut errors);
    }
    errors
}

fn take(attrs: &mut Vec<Attribute>, message: &str, errors: &mut Vec<syn::Error>) {
    attrs.retain(|attr| {
        let hatch = is_escape_hatch(attr);
        if hatch {
            errors.push(syn::Error::new_spanned(attr, message));
        }
        !hatch
    });
}

/// Removes every escape hatch from the body, wherever it is, so the compiler never sees one.
pub(crate) fn strip_escape_hatches(block: &mut syn::Block) {
    let tokens = strip_tokens(block.to_token_stream());
    if let Ok(stripped) = syn::parse2::<syn::Block>(tokens) {
        *block = stripped;
    }
}

fn strip_tokens(tokens: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if let TokenTree::Punct(hash) = &tokens[i]
            && hash.as_char() == '#'
        {
            let inner =
                matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '!');
            let at = if inner { i + 2 } else { i + 1 };
            if let Some(TokenTree::Group(group)) = tokens.get(at)
                && group.delimiter() == Delimiter::Bracket
                && syn::parse2::<syn::Meta>(group.stream()).is_ok_and(|meta| {
                    meta.path()
                        .segments
                        .last()
                        .is_some_and(|s| s.ident == ESCAPE_HATCH)
                })
            {
                i = at + 1;
                continue;
            }
        }
        out.push(match &tokens[i] {
            TokenTree::Group(group) => {
                let mut stripped = Group::new(group.delimiter(), strip_tokens(group.stream()));
                stripped.set_span(group.span());
                TokenTree::Group(stripped)
            }
            other => other.clone(),
        });
        i += 1;
    }
    out.into_iter().collect()
}
