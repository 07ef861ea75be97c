//! The visitor: walks an orchestrator's body in order, keeping the scope model in step
//! (bindings come into scope where Rust brings them in), and reports what the rules refuse.

use super::escape_hatch::{expr_attrs, item_attrs};
use super::rules;
use super::scope::{
    Entry, FileScope, ModuleId, Ns, Resolver, StaticKind, Target, Tracked, path_segments,
};
use quote::ToTokens;
use std::collections::HashSet;
use syn::visit::{self, Visit};
use syn::{Expr, Pat, Stmt, Type};

pub(crate) struct Checker<'a> {
    pub(crate) resolver: Resolver<'a>,
    pub(crate) errors: Vec<syn::Error>,
    /// What each error is about, as the user wrote it (`` `SystemTime::now` ``), in step with
    /// `errors`: a static's initializer is explained by its first offender.
    pub(crate) offenders: Vec<String>,
    /// Hash-collection iterations whose order cannot show (`.count()`, collected into a set).
    pub(crate) order_free: HashSet<usize>,
    /// How many static initializers deep this check is (a cycle of statics ends here).
    depth: usize,
    /// Every value path visited and what it resolved to, for the resolver's tests.
    #[cfg(test)]
    pub(crate) trace: Vec<(String, Target)>,
}

const MUTABLE_STATIC: &str = "is a mutable static: its value can differ between the first run and \
     a replay. Keep state in local variables or in the orchestrator's input";

impl<'a> Checker<'a> {
    pub(crate) fn new(file: &'a FileScope, module: ModuleId) -> Self {
        Checker {
            resolver: Resolver::new(file, module),
            errors: Vec::new(),
            offenders: Vec::new(),
            order_free: HashSet::new(),
            depth: 0,
            #[cfg(test)]
            trace: Vec::new(),
        }
    }

    /// An error covering all of `tokens` (not just their first token).
    pub(crate) fn error(&mut self, tokens: &dyn ToTokens, message: String, offender: String) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
        self.offenders.push(offender);
    }

    /// Checks a path used as a value: a function, a constant, a static, the head of a call.
    pub(crate) fn check_path(&mut self, path: &syn::Path) {
        let written = path_segments(path);
        let lead = path.leading_colon.is_some();
        let target = self.resolver.resolve(lead, &written, Ns::Value);
        #[cfg(test)]
        self.trace.push((path_text(lead, &written), target.clone()));
        match target {
            Target::External(resolved) => self.check_external(path, lead, &written, &resolved),
            Target::Static(id) => self.check_static_use(path, &path_text(lead, &written), id),
            _ => {}
        }
    }

    /// Refuses an item outside the user's crate if the rules do.
    pub(crate) fn check_external(
        &mut self,
        tokens: &dyn ToTokens,
        lead: bool,
        written: &[String],
        resolved: &[String],
    ) {
        if let Some(category) = rules::forbidden(&rules::canonical(resolved)) {
            let text = path_text(lead, written);
            // Name what an alias stands for, so `nap(..)` is not a mystery.
            let subject = if resolved.ends_with(written) {
                format!("`{text}`")
            } else {
                format!("`{text}` (`{}`)", resolved.join("::"))
            };
            self.error(tokens, category.explain(&subject), format!("`{text}`"));
        }
    }

    fn check_static_use(&mut self, tokens: &dyn ToTokens, written: &str, id: usize) {
        let file = self.resolver.file;
        let item = &file.statics[id];
        match item.kind {
            StaticKind::Mutable => self.error(
                tokens,
                format!("`{written}` {MUTABLE_STATIC}"),
                format!("`{written}`"),
            ),
            StaticKind::ThreadLocal => self.error(
                tokens,
                format!(
                    "`{written}` is thread-local state (declared with `thread_local!`), which can \
                     differ between the first run and a replay: keep state in local variables or \
                     in the orchestrator's input"
                ),
                format!("`{written}`"),
            ),
            StaticKind::Plain => {
                let Some(init) = item.init.as_ref().filter(|_| self.depth < 4) else {
                    return;
                };
                let mut initializer = Checker::new(file, item.module);
                initializer.depth = self.depth + 1;
                initializer.visit_expr(init);
                if let Some(offender) = initializer.offenders.first() {
                    self.error(
                        tokens,
                        format!(
                            "`{written}` is initialized with {offender} when it is first read, so \
                             its value differs between processes and a replay can see another \
                             one: compute it in an #[activity] and pass it in, or take it from \
                             `ctx`"
                        ),
                        format!("`{written}`"),
                    );
                }
            }
        }
    }

    /// Binds the names a pattern introduces, following a hash collection or clock reading
    /// into the binding when the type or the initializer says so.
    pub(crate) fn bind_pat(&mut self, pat: &Pat, init: Option<&Expr>, ty: Option<&Type>) {
        match pat {
            Pat::Ident(ident) => {
                // A written type decides (`let m: HashMap<K, V, Fixed> = HashMap::default();`
                // has a fixed hasher); without one, or with `_`, the initializer does.
                let tracked = match ty {
                    Some(ty) if !matches!(ty, Type::Infer(_)) => self.tracked_type(ty),
                    _ => init.and_then(|init| self.tracked_expr(init)),
                };
                if let Some((_, sub)) = &ident.subpat {
                    self.bind_pat(sub, None, None);
                }
                self.resolver.bind(&ident.ident, tracked);
            }
            Pat::Type(typed) => self.bind_pat(&typed.pat, init, Some(&typed.ty)),
            Pat::Paren(paren) => self.bind_pat(&paren.pat, init, ty),
            Pat::Tuple(tuple) => {
                for (i, elem) in tuple.elems.iter().enumerate() {
                    let init = match init {
                        Some(Expr::Tuple(init)) => init.elems.iter().nth(i),
                        _ => None,
                    };
                    let ty = match ty {
                        Some(Type::Tuple(ty)) => ty.elems.iter().nth(i),
                        _ => None,
                    };
                    self.bind_pat(elem, init, ty);
                }
            }
            Pat::Reference(reference) => self.bind_pat(&reference.pat, None, None),
            Pat::Struct(pat) => {
                for field in &pat.fields {
                    self.bind_pat(&field.pat, None, None);
                }
            }
            Pat::TupleStruct(pat) => {
                for elem in &pat.elems {
                    self.bind_pat(elem, None, None);
                }
            }
            Pat::Slice(pat) => {
                for elem in &pat.elems {
                    self.bind_pat(elem, None, None);
                }
            }
            // Every alternative binds the same names.
            Pat::Or(pat) => {
                if let Some(first) = pat.cases.first() {
                    self.bind_pat(first, None, None);
                }
            }
            _ => {}
        }
    }

    /// What a type says about a binding: a hash collection, a clock reading, or neither.
    /// References and smart pointers are looked through.
    pub(crate) fn tracked_type(&self, ty: &Type) -> Option<Tracked> {
        match ty {
            Type::Reference(reference) => self.tracked_type(&reference.elem),
            Type::Paren(paren) => self.tracked_type(&paren.elem),
            Type::Path(path) => {
                let last = path.path.segments.last()?;
                if ["Box", "Rc", "Arc", "LazyLock", "LazyCell"]
                    .contains(&last.ident.to_string().as_str())
                    && let syn::PathArguments::AngleBracketed(args) = &last.arguments
                    && let Some(syn::GenericArgument::Type(inner)) = args.args.first()
                {
                    return self.tracked_type(inner);
                }
                let resolved = self.resolver.external_type(ty)?;
                if rules::is_one_of(&resolved, rules::HASH_COLLECTION_TYPES) {
                    (!self.has_fixed_hasher(last, &resolved)).then_some(Tracked::HashCollection)
                } else if rules::is_one_of(&resolved, rules::TIME_TYPES) {
                    Some(Tracked::Time)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// What an initializer says about a binding.
    pub(crate) fn tracked_expr(&self, expr: &Expr) -> Option<Tracked> {
        if self.is_hash_collection(expr) {
            Some(Tracked::HashCollection)
        } else if self.is_clock_reading(expr, true) {
            Some(Tracked::Time)
        } else {
            None
        }
    }

    /// What a single-name expression is bound to, if it is a tracked local, item or static.
    pub(crate) fn tracked_name(&self, expr: &Expr) -> Option<Tracked> {
        let Expr::Path(path) = expr else {
            return None;
        };
        if path.qself.is_some() || path.path.segments.len() != 1 {
            return None;
        }
        match self.resolver.resolve_path(&path.path, Ns::Value) {
            Target::Local(tracked) | Target::User(tracked) => tracked,
            Target::Static(id) => {
                let item = &self.resolver.file.statics[id];
                let ty = item.ty.as_ref()?;
                // The static's type is written in its own module.
                let in_module = Checker::new(self.resolver.file, item.module);
                in_module.tracked_type(ty)
            }
            _ => None,
        }
    }

    fn bind_fn_inputs<'i>(&mut self, inputs: impl IntoIterator<Item = &'i syn::FnArg>) {
        for input in inputs {
            if let syn::FnArg::Typed(typed) = input {
                self.bind_pat(&typed.pat, None, Some(&typed.ty));
            }
        }
    }

    fn visit_fn_body(&mut self, sig: &syn::Signature, block: &syn::Block) {
        // A nested fn sees the block's items, not its locals.
        self.resolver.push(true);
        self.bind_fn_inputs(&sig.inputs);
        self.visit_block(block);
        self.resolver.pop();
    }

    /// Declares a block's statics with what their types say (a `static` in the body holding a
    /// `HashMap` is iterated like a local one).
    fn declare_block_statics(&mut self, stmts: &[Stmt]) {
        for stmt in stmts {
            if let Stmt::Item(syn::Item::Static(item)) = stmt {
                let tracked = self.tracked_type(&item.ty);
                self.resolver
                    .declare(&item.ident, Ns::Value, Entry::Item(tracked));
            }
        }
    }
}

pub(crate) fn path_text(lead: bool, segments: &[String]) -> String {
    format!("{}{}", if lead { "::" } else { "" }, segments.join("::"))
}

impl<'ast> Visit<'ast> for Checker<'_> {
    fn visit_block(&mut self, block: &'ast syn::Block) {
        self.resolver.push(false);
        self.resolver.declare_block(&block.stmts);
        self.declare_block_statics(&block.stmts);
        self.note_collected_then_sorted(&block.stmts);
        for stmt in &block.stmts {
            self.visit_stmt(stmt);
        }
        self.resolver.pop();
    }

    fn visit_stmt(&mut self, stmt: &'ast Stmt) {
        let attrs = match stmt {
            Stmt::Local(local) => &local.attrs,
            Stmt::Macro(mac) => &mac.attrs,
            Stmt::Expr(expr, _) => expr_attrs(expr),
            Stmt::Item(item) => item_attrs(item),
        };
        if self.escaped(attrs) {
            // Not checked, but its bindings still shadow what is outside (and a clock reading
            // made under the escape hatch is still one).
            if let Stmt::Local(local) = stmt {
                let init = local.init.as_ref().map(|init| &*init.expr);
                self.bind_pat(&local.pat, init, None);
            }
            return;
        }
        visit::visit_stmt(self, stmt);
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let Some(init) = &local.init {
            if let Pat::Type(typed) = &local.pat {
                self.note_collected_into(&typed.ty, &init.expr);
            }
            // The initializer is checked before the new binding takes the name: in
            // `let m = m.into_iter();` the `m` iterated is the one from before.
            self.visit_expr(&init.expr);
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        let init = local.init.as_ref().map(|init| &*init.expr);
        self.bind_pat(&local.pat, init, None);
    }

    fn visit_expr(&mut self, expr: &'ast Expr) {
        if self.escaped(expr_attrs(expr)) {
            return;
        }
        visit::visit_expr(self, expr);
    }

    fn visit_expr_closure(&mut self, closure: &'ast syn::ExprClosure) {
        self.resolver.push(false);
        for input in &closure.inputs {
            self.bind_pat(input, None, None);
        }
        self.visit_expr(&closure.body);
        self.resolver.pop();
    }

    fn visit_expr_for_loop(&mut self, expr: &'ast syn::ExprForLoop) {
        self.check_for_loop(&expr.expr);
        self.visit_expr(&expr.expr);
        self.resolver.push(false);
        self.bind_pat(&expr.pat, None, None);
        self.visit_block(&expr.body);
        self.resolver.pop();
    }

    fn visit_expr_if(&mut self, expr: &'ast syn::ExprIf) {
        // `if let` bindings (and let chains) are in scope in the condition's rest and the
        // `then` block only.
        self.resolver.push(false);
        self.visit_expr(&expr.cond);
        self.visit_block(&expr.then_branch);
        self.resolver.pop();
        if let Some((_, otherwise)) = &expr.else_branch {
            self.visit_expr(otherwise);
        }
    }

    fn visit_expr_while(&mut self, expr: &'ast syn::ExprWhile) {
        self.resolver.push(false);
        self.visit_expr(&expr.cond);
        self.visit_block(&expr.body);
        self.resolver.pop();
    }

    fn visit_expr_let(&mut self, expr: &'ast syn::ExprLet) {
        self.visit_expr(&expr.expr);
        self.bind_pat(&expr.pat, None, None);
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        if self.escaped(&arm.attrs) {
            return;
        }
        self.resolver.push(false);
        self.bind_pat(&arm.pat, None, None);
        if let Some((_, guard)) = &arm.guard {
            self.visit_expr(guard);
        }
        self.visit_expr(&arm.body);
        self.resolver.pop();
    }

    fn visit_expr_path(&mut self, expr: &'ast syn::ExprPath) {
        match &expr.qself {
            None => self.check_path(&expr.path),
            // `<std::time::SystemTime>::now()`: the type, then the rest of the path.
            Some(qself) if qself.position == 0 => {
                if let Type::Path(ty) = &*qself.ty
                    && let Target::External(mut resolved) =
                        self.resolver.resolve_path(&ty.path, Ns::Type)
                {
                    let mut written = path_segments(&ty.path);
                    let rest = path_segments(&expr.path);
                    resolved.extend(rest.iter().cloned());
                    written.extend(rest);
                    self.check_external(expr, false, &written, &resolved);
                }
            }
            Some(_) => {}
        }
    }

    fn visit_expr_struct(&mut self, expr: &'ast syn::ExprStruct) {
        for field in &expr.fields {
            self.visit_expr(&field.expr);
        }
        if let Some(rest) = &expr.rest {
            self.visit_expr(rest);
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        self.note_order_free(call);
        self.check_method_iteration(call);
        self.check_elapsed(call);
        visit::visit_expr_method_call(self, call);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.check_macro(mac);
    }

    fn visit_item(&mut self, item: &'ast syn::Item) {
        if self.escaped(item_attrs(item)) {
            return;
        }
        visit::visit_item(self, item);
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.visit_fn_body(&item.sig, &item.block);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if self.escaped(&item.attrs) {
            return;
        }
        self.visit_fn_body(&item.sig, &item.block);
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        if let Some(block) = &item.default
            && !self.escaped(&item.attrs)
        {
            self.visit_fn_body(&item.sig, block);
        }
    }

    fn visit_item_static(&mut self, item: &'ast syn::ItemStatic) {
        if matches!(item.mutability, syn::StaticMutability::Mut(_))
            || super::declare::has_interior_mutability(&item.ty)
        {
            self.error(
                &item.ident,
                format!("`{}` {MUTABLE_STATIC}", item.ident),
                format!("`{}`", item.ident),
            );
        }
        // Its initializer runs once per process, when first read: what it calls counts.
        self.visit_expr(&item.expr);
    }

    fn visit_item_const(&mut self, item: &'ast syn::ItemConst) {
        self.visit_expr(&item.expr);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if let Some((_, items)) = &item.content {
            self.resolver.push(true);
            let stmts: Vec<Stmt> = items.iter().cloned().map(Stmt::Item).collect();
            self.resolver.declare_block(&stmts);
            for item in items {
                self.visit_item(item);
            }
            self.resolver.pop();
        }
    }

    fn visit_item_use(&mut self, _: &'ast syn::ItemUse) {}

    // Types and patterns hold no calls; their paths are resolved where a binding needs them.
    fn visit_type(&mut self, _: &'ast Type) {}

    fn visit_pat(&mut self, _: &'ast Pat) {}
}
