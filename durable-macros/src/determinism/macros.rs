//! Macro invocations: the few macros that are rules of their own (`tokio::select!`,
//! `futures::select!`, `thread_local!`), and looking inside every other one.
//!
//! A macro's arguments are checked like the body when they parse as Rust: a comma-separated
//! list of expressions (`format!`, `assert!`, `println!`, most user macros), `vec![x; n]`, or
//! statements. `matches!` (and `assert_matches!`) is read with its own grammar: its pattern
//! binds names for the guard and calls nothing. The branches of `select!` are parsed with its
//! own grammar, so each branch's future, guard and handler are checked, in a biased select too.
//! Anything else (a DSL) is scanned token by token for paths of two or more segments that
//! resolve to a refused item.

use super::rules;
use super::scope::{Ns, Target, path_segments};
use super::visitor::{Checker, path_text};
use proc_macro2::{TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Expr, Macro, Pat, Token};

/// One branch of `select!`: `pattern = future, if guard => handler`, or `else => handler`.
struct Branch {
    pattern: Option<Pat>,
    future: Option<Expr>,
    guard: Option<Expr>,
    handler: Expr,
}

impl Checker<'_> {
    pub(crate) fn check_macro(&mut self, mac: &Macro) {
        let target = self.resolver.resolve_path(&mac.path, Ns::Macro);
        let resolved = match &target {
            Target::External(path) => rules::canonical(path),
            _ => Vec::new(),
        };
        let is = |name: &str| rules::is_one_of(&resolved, &[name]);
        let written = path_text(mac.path.leading_colon.is_some(), &path_segments(&mac.path));
        if is("tokio::select") {
            let parsed = parse_select.parse2(mac.tokens.clone());
            let biased = match &parsed {
                Ok((biased, _)) => *biased,
                Err(_) => mac.tokens.to_string().trim_start().starts_with("biased"),
            };
            if !biased {
                self.error(
                    &mac.path,
                    format!(
                        "`{written}!` polls its branches in random order, so a replay can take \
                         another branch: add `biased;` as its first line, or use `ctx.when_any(..)`"
                    ),
                    format!("`{written}!`"),
                );
            }
            self.check_branches(parsed.ok(), &mac.tokens);
        } else if is("futures::select") {
            self.error(
                &mac.path,
                format!(
                    "`{written}!` picks among ready branches at random, so a replay can take \
                     another branch: use `ctx.when_any(..)`, which picks by history order"
                ),
                format!("`{written}!`"),
            );
            self.check_branches(parse_select.parse2(mac.tokens.clone()).ok(), &mac.tokens);
        } else if is("futures::select_biased") {
            self.check_branches(parse_select.parse2(mac.tokens.clone()).ok(), &mac.tokens);
        } else if is("std::thread_local") {
            self.error(
                &mac.path,
                "thread-local state can differ between the first run and a replay: keep state in \
                 local variables or in the orchestrator's input"
                    .to_string(),
                "`thread_local!`".to_string(),
            );
        } else if is_matches(mac, &target, &resolved)
            && let Ok(matches) = parse_matches.parse2(mac.tokens.clone())
        {
            self.check_matches(&matches);
        } else if mac.path.is_ident("macro_rules") {
            // What a macro declared in the body expands to is code of the body.
            self.scan_tokens(mac.tokens.clone());
        } else {
            self.look_inside(&mac.tokens);
        }
    }

    fn check_branches(&mut self, parsed: Option<(bool, Vec<Branch>)>, tokens: &TokenStream) {
        let Some((_, branches)) = parsed else {
            self.scan_tokens(tokens.clone());
            return;
        };
        for branch in &branches {
            if let Some(future) = &branch.future {
                self.visit_expr(future);
            }
            if let Some(guard) = &branch.guard {
                self.visit_expr(guard);
            }
            self.resolver.push(false);
            if let Some(pattern) = &branch.pattern {
                self.bind_pat(pattern, None, None);
            }
            self.visit_expr(&branch.handler);
            self.resolver.pop();
        }
    }

    /// `matches!(value, pattern if guard)`: the value and the guard are code, the pattern
    /// binds names for the guard (it calls nothing).
    fn check_matches(&mut self, matches: &Matches) {
        self.visit_expr(&matches.value);
        self.resolver.push(false);
        self.bind_pat(&matches.pattern, None, None);
        if let Some(guard) = &matches.guard {
            self.visit_expr(guard);
        }
        self.resolver.pop();
        for arg in &matches.rest {
            self.visit_expr(arg);
        }
    }

    /// Checks a macro's arguments as Rust, when they are.
    fn look_inside(&mut self, tokens: &TokenStream) {
        let list = Punctuated::<Expr, Token![,]>::parse_terminated;
        if let Ok(args) = list.parse2(tokens.clone()) {
            for arg in &args {
                self.visit_expr(arg);
            }
            return;
        }
        let repeat = |input: ParseStream| -> syn::Result<(Expr, Expr)> {
            let value: Expr = input.parse()?;
            input.parse::<Token![;]>()?;
            Ok((value, input.parse()?))
        };
        if let Ok((value, count)) = repeat.parse2(tokens.clone()) {
            self.visit_expr(&value);
            self.visit_expr(&count);
            return;
        }
        if let Ok(stmts) = syn::Block::parse_within.parse2(tokens.clone()) {
            self.visit_block(&syn::Block {
                brace_token: Default::default(),
                stmts,
            });
            return;
        }
        self.scan_tokens(tokens.clone());
    }

    /// Finds paths like `std::time::Instant::now` among tokens that are not Rust syntax. Only
    /// paths of two or more segments: a lone name in a DSL can mean anything.
    pub(crate) fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            if let TokenTree::Group(group) = &tokens[i] {
                self.scan_tokens(group.stream());
                i += 1;
                continue;
            }
            match path_at(&tokens, i) {
                Some((path, end)) => {
                    if path.segments.len() >= 2 {
                        self.check_path(&path);
                    }
                    i = end;
                }
                None => i += 1,
            }
        }
    }
}

fn is_punct(token: Option<&TokenTree>, ch: char) -> bool {
    matches!(token, Some(TokenTree::Punct(p)) if p.as_char() == ch)
}

fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    is_punct(tokens.get(i), ':') && is_punct(tokens.get(i + 1), ':')
}

/// The path starting at `tokens[i]`, and where it ends; none after `.` (a method or field)
/// or `$` (a macro variable), or when the tokens there are not a path.
fn path_at(tokens: &[TokenTree], i: usize) -> Option<(syn::Path, usize)> {
    if i > 0 && (is_punct(tokens.get(i - 1), '.') || is_punct(tokens.get(i - 1), '$')) {
        return None;
    }
    let mut end = i;
    if is_path_sep(tokens, end) {
        end += 2;
    }
    if !matches!(tokens.get(end), Some(TokenTree::Ident(_))) {
        return None;
    }
    end += 1;
    while is_path_sep(tokens, end) && matches!(tokens.get(end + 2), Some(TokenTree::Ident(_))) {
        end += 3;
    }
    let path: TokenStream = tokens[i..end].iter().cloned().collect();
    syn::parse2::<syn::Path>(path).ok().map(|path| (path, end))
}

/// The arguments of `matches!` and `assert_matches!`: `value, pattern [if guard]`, then (for
/// the assertion) a message and its arguments.
struct Matches {
    value: Expr,
    pattern: Pat,
    guard: Option<Expr>,
    rest: Vec<Expr>,
}

/// Is `mac` std's `matches!`, `assert_matches!` or `debug_assert_matches!` (from the prelude,
/// or named by its path), not a macro of the user's with that name?
fn is_matches(mac: &Macro, target: &Target, resolved: &[String]) -> bool {
    const NAMES: &[&str] = &["matches", "assert_matches", "debug_assert_matches"];
    let std = match target {
        Target::Unresolved => true,
        Target::External(_) => resolved.first().is_some_and(|krate| krate == "std"),
        _ => false,
    };
    std && mac
        .path
        .segments
        .last()
        .is_some_and(|last| NAMES.contains(&last.ident.to_string().as_str()))
}

fn parse_matches(input: ParseStream) -> syn::Result<Matches> {
    let value: Expr = input.parse()?;
    input.parse::<Token![,]>()?;
    let pattern = Pat::parse_multi_with_leading_vert(input)?;
    let guard = if input.peek(Token![if]) {
        input.parse::<Token![if]>()?;
        Some(input.parse()?)
    } else {
        None
    };
    let mut rest = Vec::new();
    while input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
        rest.push(input.parse()?);
    }
    if !input.is_empty() {
        return Err(input.error("unexpected tokens after the pattern"));
    }
    Ok(Matches {
        value,
        pattern,
        guard,
        rest,
    })
}

/// `select!`'s grammar (tokio's and futures'): `[biased;]` then branches
/// `pattern = future [, if guard] => handler[,]`, `else => handler`, and futures'
/// `default => ..` / `complete => ..`.
fn parse_select(input: ParseStream) -> syn::Result<(bool, Vec<Branch>)> {
    let biased = input.peek(syn::Ident)
        && input.peek2(Token![;])
        && input.fork().parse::<syn::Ident>()? == "biased";
    if biased {
        input.parse::<syn::Ident>()?;
        input.parse::<Token![;]>()?;
    }
    let mut branches = Vec::new();
    while !input.is_empty() {
        let fallback = input.peek(Token![else])
            || (input.peek(syn::Ident)
                && input.peek2(Token![=>])
                && ["default", "complete"]
                    .contains(&input.fork().parse::<syn::Ident>()?.to_string().as_str()));
        let (pattern, future, guard) = if fallback {
            input.parse::<proc_macro2::TokenTree>()?;
            (None, None, None)
        } else {
            let pattern = Pat::parse_multi_with_leading_vert(input)?;
            input.parse::<Token![=]>()?;
            let future: Expr = input.parse()?;
            let guard = if input.peek(Token![,]) && input.peek2(Token![if]) {
                input.parse::<Token![,]>()?;
                input.parse::<Token![if]>()?;
                Some(input.parse()?)
            } else {
                None
            };
            (Some(pattern), Some(future), guard)
        };
        input.parse::<Token![=>]>()?;
        let handler = Expr::parse_with_earlier_boundary_rule(input)?;
        // Commas are checked by the macro itself; here they only separate.
        input.parse::<Option<Token![,]>>()?;
        branches.push(Branch {
            pattern,
            future,
            guard,
            handler,
        });
    }
    Ok((biased, branches))
}
