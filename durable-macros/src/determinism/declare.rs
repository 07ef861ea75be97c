//! Building the scope model: what the file and each block of the body declare.

use super::scope::{
    Entry, FileScope, FileStatic, Module, ModuleId, Names, Ns, Orchestrator, StaticId, StaticKind,
    UsePath,
};
use quote::ToTokens;
use syn::visit::Visit;
use syn::{Item, Stmt, Type, UseTree};

impl FileScope {
    /// Reads the file the macro is invoked in. Nothing is lost if it cannot: only the file's
    /// imports and items go unseen.
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
        let mut file = FileScope {
            modules: vec![Module {
                parent: None,
                names: Names::default(),
            }],
            statics: Vec::new(),
            orchestrators: Vec::new(),
            searching: Default::default(),
        };
        file.declare_module(0, items);
        file
    }

    fn declare_module(&mut self, id: ModuleId, items: &[Item]) {
        let mut names = Names::default();
        for item in items {
            match item {
                Item::Mod(module) => match &module.content {
                    Some((_, content)) => {
                        let child = self.modules.len();
                        self.modules.push(Module {
                            parent: Some(id),
                            names: Names::default(),
                        });
                        self.declare_module(child, content);
                        names.add(&module.ident, Ns::Type, Entry::Module(child));
                    }
                    None => names.add(&module.ident, Ns::Type, Entry::Item(None)),
                },
                Item::Static(item) => {
                    let kind = if matches!(item.mutability, syn::StaticMutability::Mut(_))
                        || has_interior_mutability(&item.ty)
                    {
                        StaticKind::Mutable
                    } else {
                        StaticKind::Plain
                    };
                    let sid = self.add_static(
                        kind,
                        Some((*item.ty).clone()),
                        Some(*item.expr.clone()),
                        id,
                    );
                    names.add(&item.ident, Ns::Value, Entry::Static(sid));
                }
                Item::Macro(item) if is_thread_local(&item.mac) => {
                    for name in thread_local_names(&item.mac) {
                        let sid = self.add_static(StaticKind::ThreadLocal, None, None, id);
                        names.add(name, Ns::Value, Entry::Static(sid));
                    }
                }
                Item::Fn(item) => {
                    self.note_orchestrators(id, item);
                    names.add(&item.sig.ident, Ns::Value, Entry::Item(None));
                }
                Item::Impl(item) => {
                    let mut finder = NestedOrchestrators(Vec::new());
                    finder.visit_item_impl(item);
                    self.add_orchestrators(id, finder.0);
                }
                other => declare_item(other, id, &mut names),
            }
        }
        self.modules[id].names = names;
    }

    /// Notes `item` if it is an orchestrator, and the orchestrators declared inside its body
    /// (a test function often holds one), which see the names of module `id`.
    fn note_orchestrators(&mut self, id: ModuleId, item: &syn::ItemFn) {
        let mut finder = NestedOrchestrators(Vec::new());
        finder.visit_item_fn(item);
        self.add_orchestrators(id, finder.0);
    }

    fn add_orchestrators(&mut self, id: ModuleId, found: Vec<&syn::ItemFn>) {
        self.orchestrators
            .extend(found.into_iter().map(|item| Orchestrator {
                module: id,
                name: item.sig.ident.to_string(),
                body: item.block.to_token_stream().to_string(),
            }));
    }

    fn add_static(
        &mut self,
        kind: StaticKind,
        ty: Option<Type>,
        init: Option<syn::Expr>,
        module: ModuleId,
    ) -> StaticId {
        self.statics.push(FileStatic {
            kind,
            ty,
            init,
            module,
        });
        self.statics.len() - 1
    }
}

/// The `#[orchestrator]` fns in an item, its own and those declared in function bodies (not in
/// inline modules: those are modules of the file, declared on their own).
struct NestedOrchestrators<'ast>(Vec<&'ast syn::ItemFn>);

impl<'ast> Visit<'ast> for NestedOrchestrators<'ast> {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if item.attrs.iter().any(|attr| {
            attr.path()
                .segments
                .last()
                .is_some_and(|s| s.ident == "orchestrator")
        }) {
            self.0.push(item);
        }
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}
}

/// Declares an item the same way in a module and in a block: imports, and user items in the
/// namespaces Rust puts them in.
pub(crate) fn declare_item(item: &Item, module: ModuleId, names: &mut Names) {
    let user = Entry::Item(None);
    match item {
        Item::Use(item) => collect_use(
            &item.tree,
            Vec::new(),
            item.leading_colon.is_some(),
            module,
            names,
        ),
        Item::Fn(item) => names.add(&item.sig.ident, Ns::Value, user),
        Item::Const(item) => names.add(&item.ident, Ns::Value, user),
        Item::Static(item) => names.add(&item.ident, Ns::Value, user),
        Item::Struct(item) => {
            if !matches!(item.fields, syn::Fields::Named(_)) {
                names.add(&item.ident, Ns::Value, user.clone());
            }
            names.add(&item.ident, Ns::Type, user);
        }
        Item::Enum(item) => names.add(&item.ident, Ns::Type, user),
        Item::Type(item) => {
            let entry = match &*item.ty {
                Type::Path(ty) if ty.qself.is_none() => Entry::Alias(UsePath {
                    leading_colon: ty.path.leading_colon.is_some(),
                    segments: super::scope::path_segments(&ty.path),
                    module,
                }),
                _ => user,
            };
            names.add(&item.ident, Ns::Type, entry);
        }
        Item::Trait(item) => names.add(&item.ident, Ns::Type, user),
        Item::TraitAlias(item) => names.add(&item.ident, Ns::Type, user),
        Item::Union(item) => names.add(&item.ident, Ns::Type, user),
        Item::Mod(item) => names.add(&item.ident, Ns::Type, user),
        Item::Macro(item) => {
            if let Some(ident) = &item.ident {
                names.add(ident, Ns::Macro, user);
            } else if is_thread_local(&item.mac) {
                for name in thread_local_names(&item.mac) {
                    names.add(name, Ns::Value, Entry::Item(None));
                }
            }
        }
        Item::ExternCrate(item) => {
            let name = item
                .rename
                .as_ref()
                .map_or(&item.ident, |(_, rename)| rename);
            let entry = if item.ident == "self" {
                user
            } else {
                Entry::Import(UsePath {
                    leading_colon: true,
                    segments: vec![item.ident.to_string()],
                    module,
                })
            };
            names.add(name, Ns::Type, entry);
        }
        _ => {}
    }
}

/// Declares what a block's statements declare for the whole block: its items and imports,
/// and the statics of a `thread_local!` written in it.
pub(crate) fn declare_block_items(stmts: &[Stmt], module: ModuleId, names: &mut Names) {
    for stmt in stmts {
        match stmt {
            Stmt::Item(item) => declare_item(item, module, names),
            Stmt::Macro(stmt) if is_thread_local(&stmt.mac) => {
                for name in thread_local_names(&stmt.mac) {
                    names.add(name, Ns::Value, Entry::Item(None));
                }
            }
            _ => {}
        }
    }
}

fn collect_use(
    tree: &UseTree,
    mut prefix: Vec<String>,
    leading_colon: bool,
    module: ModuleId,
    names: &mut Names,
) {
    let path = |segments: Vec<String>| UsePath {
        leading_colon,
        segments,
        module,
    };
    match tree {
        UseTree::Path(tree) => {
            prefix.push(tree.ident.to_string());
            collect_use(&tree.tree, prefix, leading_colon, module, names);
        }
        UseTree::Name(name) => {
            let ident = name.ident.to_string();
            if ident == "self" {
                if let Some(last) = prefix.last().cloned() {
                    names.add_import(last, path(prefix));
                }
            } else {
                prefix.push(ident.clone());
                names.add_import(ident, path(prefix));
            }
        }
        UseTree::Rename(rename) => {
            if rename.rename == "_" {
                return;
            }
            if rename.ident != "self" {
                prefix.push(rename.ident.to_string());
            }
            names.add_import(rename.rename.to_string(), path(prefix));
        }
        UseTree::Glob(_) => names.globs.push(path(prefix)),
        UseTree::Group(group) => {
            for tree in &group.items {
                collect_use(tree, prefix.clone(), leading_colon, module, names);
            }
        }
    }
}

pub(crate) fn is_thread_local(mac: &syn::Macro) -> bool {
    mac.path
        .segments
        .last()
        .is_some_and(|s| s.ident == "thread_local")
}

/// The names of the statics a `thread_local! { static NAME: T = ..; }` declares.
fn thread_local_names(mac: &syn::Macro) -> Vec<syn::Ident> {
    let tokens: Vec<proc_macro2::TokenTree> = mac.tokens.clone().into_iter().collect();
    tokens
        .windows(2)
        .filter_map(|pair| match pair {
            [
                proc_macro2::TokenTree::Ident(kw),
                proc_macro2::TokenTree::Ident(name),
            ] if kw == "static" => Some(name.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn has_interior_mutability(ty: &Type) -> bool {
    let text = ty.to_token_stream().to_string();
    [
        "Atomic", "Mutex", "RwLock", "RefCell", "Cell <", "Cell<", "OnceLock",
    ]
    .iter()
    .any(|marker| text.contains(marker))
}
