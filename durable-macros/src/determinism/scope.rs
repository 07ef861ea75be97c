//! The scope model: what a name written in an orchestrator's body stands for.
//!
//! One resolver serves every rule. It knows
//! - the file the orchestrator is in: its `use` items (renames and globs included), its items
//!   (`fn`, `struct`, `static`, `thread_local!`, ...) and its inline modules, each with its own
//!   scope (`FileScope`);
//! - a stack of block scopes inside the body (`Resolver`): local bindings (`let`, parameters,
//!   `for` / `match` / `if let` / `while let` patterns) and the items and imports declared in
//!   each block.
//!
//! A path is looked up by its first segment, innermost scope first, in the namespace Rust would
//! use (a single-segment expression is a value, the first segment of a longer path is a type or
//! module). What it finds decides everything: a local or an item of the user's is never
//! forbidden; an import, or a type alias of a path, is followed to that path; a name found
//! nowhere is, at the head of a longer path, an extern crate (`rand::random`, `std::fs::read`).
//! `crate::` paths are the user's own; `self::` and `super::` are followed through this file's
//! modules. Only a path that ends up outside the user's crate is matched against the rules
//! (`rules.rs`).

use super::declare::declare_block_items;
use super::rules;
use quote::ToTokens;
use syn::{Stmt, Type};

/// Index of a module in `FileScope::modules`; 0 is the file itself.
pub(crate) type ModuleId = usize;
/// Index of a file-level static in `FileScope::statics`.
pub(crate) type StaticId = usize;

/// Rust's namespaces, as far as lookups care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ns {
    Type,
    Value,
    Macro,
}

/// What the check follows through bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tracked {
    /// A `HashMap` or `HashSet`: iterating it visits entries in a per-process order.
    HashCollection,
    /// A clock reading (`Instant`, `SystemTime`): `.elapsed()` on it reads the clock again.
    Time,
}

/// A `use` path, resolved when looked up, from the module it was written in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct UsePath {
    pub(crate) leading_colon: bool,
    pub(crate) segments: Vec<String>,
    pub(crate) module: ModuleId,
}

/// What a name is bound to in one scope.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Entry {
    /// A local variable or parameter (invisible inside nested `fn` items).
    Local(Option<Tracked>),
    /// An item the user declared (a static in the body carries its type's tracking).
    Item(Option<Tracked>),
    /// An inline module of this file, whose contents are visible.
    Module(ModuleId),
    /// A static declared in this file, outside the body.
    Static(StaticId),
    /// An import, followed when looked up.
    Import(UsePath),
    /// A type alias of a path (`type Clock = std::time::SystemTime;`), followed when looked up
    /// like an import of that path.
    Alias(UsePath),
}

/// What a path resolves to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Target {
    /// An item outside the user's crate, by its path after imports are followed (not yet
    /// canonical: `durable_runtime::Uuid::new_v4` stays as written).
    External(Vec<String>),
    Local(Option<Tracked>),
    /// Something of the user's: an item, a `crate::` path, a member of the user's type.
    User(Option<Tracked>),
    Module(ModuleId),
    Static(StaticId),
    /// Found nowhere the macro can see (a prelude name, or a glob of a module it cannot read).
    Unresolved,
}

/// The names one scope declares, in order: a later binding of a name shadows an earlier one.
#[derive(Default, Debug)]
pub(crate) struct Names {
    bindings: Vec<(String, Ns, Entry)>,
    pub(crate) globs: Vec<UsePath>,
}

impl Names {
    pub(crate) fn add(&mut self, name: impl ToString, ns: Ns, entry: Entry) {
        self.bindings.push((name.to_string(), ns, entry));
    }

    pub(crate) fn add_import(&mut self, name: String, path: UsePath) {
        // An import brings the name in every namespace it exists in; which those are is only
        // known to rustc, so all three.
        for ns in [Ns::Type, Ns::Value, Ns::Macro] {
            self.add(&name, ns, Entry::Import(path.clone()));
        }
    }

    /// What `name` is bound to in `ns`: the latest binding, except that an import gives way
    /// to an item or binding of the same name wherever it is written. (An import is entered in
    /// every namespace; where the item really is in one, rustc would refuse the import there,
    /// so the import does not bring that namespace: `use std::env;` and `fn env()`.)
    fn get(&self, name: &str, ns: Ns, skip: Option<&UsePath>) -> Option<&Entry> {
        let mut found = self
            .bindings
            .iter()
            .rev()
            .filter(|(n, s, _)| n == name && *s == ns)
            .map(|(_, _, entry)| entry);
        let mut import = None;
        for entry in &mut found {
            match entry {
                Entry::Import(path) if skip == Some(path) => {}
                Entry::Import(_) => {
                    import.get_or_insert(entry);
                }
                _ => return Some(entry),
            }
        }
        import
    }
}

/// How a static declared in the file can make a replay differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StaticKind {
    /// `static mut`, or a type with interior mutability.
    Mutable,
    /// Declared with `thread_local!`.
    ThreadLocal,
    /// Immutable: only its initializer can be a problem.
    Plain,
}

/// An `#[orchestrator]` fn found in the file.
pub(crate) struct Orchestrator {
    pub(crate) module: ModuleId,
    pub(crate) name: String,
    /// Its body, as text.
    pub(crate) body: String,
}

/// A static declared in the file.
pub(crate) struct FileStatic {
    pub(crate) kind: StaticKind,
    pub(crate) ty: Option<Type>,
    pub(crate) init: Option<syn::Expr>,
    pub(crate) module: ModuleId,
}

pub(crate) struct Module {
    pub(crate) parent: Option<ModuleId>,
    pub(crate) names: Names,
}

/// What the file around the orchestrator declares.
pub(crate) struct FileScope {
    pub(crate) modules: Vec<Module>,
    pub(crate) statics: Vec<FileStatic>,
    /// Each `#[orchestrator]` fn in the file (in a module, or declared inside a function of
    /// one): its module, its name and its body as text (to tell which one is being expanded).
    pub(crate) orchestrators: Vec<Orchestrator>,
    /// The modules a glob lookup is going through, innermost last.
    pub(crate) searching: std::cell::RefCell<Vec<ModuleId>>,
}

impl Default for FileScope {
    fn default() -> Self {
        FileScope::from_items(&[])
    }
}

/// Beyond this many steps a chain of imports is given up on (it would be a cycle).
const MAX_DEPTH: usize = 16;

impl FileScope {
    /// The module of the orchestrator `name` whose body is `block` (the file itself if
    /// unsure). Found by its name first: the body the macro is handed can differ from the
    /// file's text when another attribute macro (`#[tracing::instrument]`) ran before it.
    pub(crate) fn module_of(&self, name: &str, block: &syn::Block) -> ModuleId {
        let named: Vec<&Orchestrator> = self
            .orchestrators
            .iter()
            .filter(|o| o.name == name)
            .collect();
        let mut modules: Vec<ModuleId> = named.iter().map(|o| o.module).collect();
        modules.dedup();
        if let [only] = modules.as_slice() {
            return *only;
        }
        // Several of that name (in different modules), or none found: by the body.
        let body = block.to_token_stream().to_string();
        let candidates = if named.is_empty() {
            self.orchestrators.iter().collect()
        } else {
            named
        };
        candidates
            .iter()
            .find(|o| o.body == body)
            .map_or(0, |o| o.module)
    }

    /// Looks `name` up among `names`: its own bindings first, then what its globs bring.
    pub(crate) fn lookup_in(
        &self,
        names: &Names,
        name: &str,
        ns: Ns,
        depth: usize,
    ) -> Option<Target> {
        if let Some(entry) = names.get(name, ns, None) {
            return Some(self.entry_target(entry, ns, depth));
        }
        names
            .globs
            .iter()
            .find_map(|glob| self.lookup_in_glob(glob, name, ns, depth))
    }

    fn lookup_in_module(
        &self,
        module: ModuleId,
        name: &str,
        ns: Ns,
        depth: usize,
    ) -> Option<Target> {
        self.lookup_in(&self.modules[module].names, name, ns, depth)
    }

    fn lookup_in_glob(&self, glob: &UsePath, name: &str, ns: Ns, depth: usize) -> Option<Target> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.resolve_use(glob, Ns::Type, depth + 1) {
            Target::Module(id) => {
                // Globs between modules can form cycles (`use super::*;` both ways): a module
                // already being searched is not searched again.
                if self.searching.borrow().contains(&id) {
                    return None;
                }
                self.searching.borrow_mut().push(id);
                let found = self.lookup_in_module(id, name, ns, depth + 1);
                self.searching.borrow_mut().pop();
                found
            }
            Target::External(mut path) => {
                rules::glob_brings(&rules::canonical(&path), name).then(|| {
                    path.push(name.to_string());
                    Target::External(path)
                })
            }
            _ => None,
        }
    }

    fn entry_target(&self, entry: &Entry, ns: Ns, depth: usize) -> Target {
        match entry {
            Entry::Local(tracked) => Target::Local(*tracked),
            Entry::Item(tracked) => Target::User(*tracked),
            Entry::Module(id) => Target::Module(*id),
            Entry::Static(id) => Target::Static(*id),
            Entry::Import(path) => self.resolve_use(path, ns, depth + 1),
            Entry::Alias(path) => self.resolve_use(path, Ns::Type, depth + 1),
        }
    }

    /// Where a `use` path leads.
    fn resolve_use(&self, path: &UsePath, ns: Ns, depth: usize) -> Target {
        if depth > MAX_DEPTH {
            return Target::Unresolved;
        }
        let Some((first, rest)) = path.segments.split_first() else {
            return Target::Unresolved;
        };
        if path.leading_colon {
            return Target::External(path.segments.clone());
        }
        let start = match first.as_str() {
            "crate" => return Target::User(None),
            "self" => Target::Module(path.module),
            "super" => match self.modules[path.module].parent {
                Some(parent) => Target::Module(parent),
                None => return Target::User(None),
            },
            _ => {
                let first_ns = if rest.is_empty() { ns } else { Ns::Type };
                // The head of an import is an item or another explicit import of the module
                // (not the import itself, not a glob), or else an extern crate.
                match self.modules[path.module]
                    .names
                    .get(first, first_ns, Some(path))
                {
                    Some(entry) => self.entry_target(entry, first_ns, depth + 1),
                    None => Target::External(vec![first.clone()]),
                }
            }
        };
        self.walk(start, rest, ns, depth + 1)
    }

    /// Follows the remaining segments of a path from what its head resolved to.
    pub(crate) fn walk(&self, mut target: Target, rest: &[String], ns: Ns, depth: usize) -> Target {
        for (i, segment) in rest.iter().enumerate() {
            let segment_ns = if i + 1 == rest.len() { ns } else { Ns::Type };
            target = match target {
                Target::External(mut path) => {
                    path.push(segment.clone());
                    Target::External(path)
                }
                Target::Module(id) => self
                    .lookup_in_module(id, segment, segment_ns, depth + 1)
                    .unwrap_or(Target::User(None)),
                Target::Unresolved => Target::Unresolved,
                _ => Target::User(None),
            };
        }
        target
    }

    pub(crate) fn parent(&self, module: ModuleId) -> Option<ModuleId> {
        self.modules[module].parent
    }
}

/// One scope of the body: a block, a closure, an arm, a loop, a nested fn.
struct Scope {
    names: Names,
    /// A nested `fn` item: the locals of enclosing scopes are not visible from here on.
    boundary: bool,
}

/// The body's stack of scopes over the file's: resolves what a path names at the point the
/// visitor has reached.
pub(crate) struct Resolver<'a> {
    pub(crate) file: &'a FileScope,
    /// The module the orchestrator (or a file-level static's initializer) is in.
    pub(crate) module: ModuleId,
    scopes: Vec<Scope>,
    /// How many type aliases of the body deep a lookup is (aliases naming each other end).
    alias_depth: std::cell::Cell<usize>,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(file: &'a FileScope, module: ModuleId) -> Self {
        Resolver {
            file,
            module,
            scopes: vec![Scope {
                names: Names::default(),
                boundary: false,
            }],
            alias_depth: std::cell::Cell::new(0),
        }
    }

    pub(crate) fn push(&mut self, boundary: bool) {
        self.scopes.push(Scope {
            names: Names::default(),
            boundary,
        });
    }

    pub(crate) fn pop(&mut self) {
        self.scopes.pop();
    }

    fn top(&mut self) -> &mut Names {
        &mut self
            .scopes
            .last_mut()
            .expect("the outermost scope is never popped")
            .names
    }

    /// Binds a local variable or parameter from here to the end of the current scope.
    pub(crate) fn bind(&mut self, name: &syn::Ident, tracked: Option<Tracked>) {
        self.top().add(name, Ns::Value, Entry::Local(tracked));
    }

    /// Declares an item in the current scope.
    pub(crate) fn declare(&mut self, name: &syn::Ident, ns: Ns, entry: Entry) {
        self.top().add(name, ns, entry);
    }

    /// Declares the items and imports of a block's statements, visible in all of the block.
    pub(crate) fn declare_block(&mut self, stmts: &[Stmt]) {
        let module = self.module;
        declare_block_items(stmts, module, self.top());
    }

    /// What `name` means here, looked up innermost scope first, then in the module.
    pub(crate) fn lookup(&self, name: &str, ns: Ns) -> Option<Target> {
        let mut crossed_fn = false;
        for scope in self.scopes.iter().rev() {
            let found = scope.names.get(name, ns, None);
            match found {
                Some(Entry::Local(_)) if crossed_fn => {}
                // An alias declared in the body names what its path names from here.
                Some(Entry::Alias(path)) => return Some(self.resolve_alias(path)),
                Some(entry) => return Some(self.file.entry_target(entry, ns, 0)),
                None => {}
            }
            if let Some(target) = scope
                .names
                .globs
                .iter()
                .find_map(|glob| self.file.lookup_in_glob(glob, name, ns, 0))
            {
                return Some(target);
            }
            crossed_fn |= scope.boundary;
        }
        self.file.lookup_in_module(self.module, name, ns, 0)
    }

    fn resolve_alias(&self, path: &UsePath) -> Target {
        let depth = self.alias_depth.get();
        if depth > MAX_DEPTH {
            return Target::Unresolved;
        }
        self.alias_depth.set(depth + 1);
        let target = self.resolve(path.leading_colon, &path.segments, Ns::Type);
        self.alias_depth.set(depth);
        target
    }

    /// What a path written at this point names. `ns` is the namespace of its last segment.
    pub(crate) fn resolve(&self, leading_colon: bool, segments: &[String], ns: Ns) -> Target {
        let Some((first, rest)) = segments.split_first() else {
            return Target::Unresolved;
        };
        if leading_colon {
            return Target::External(segments.to_vec());
        }
        let first_ns = if rest.is_empty() { ns } else { Ns::Type };
        let start = match first.as_str() {
            "crate" | "Self" => return Target::User(None),
            "self" => Target::Module(self.module),
            "super" => match self.file.parent(self.module) {
                Some(parent) => Target::Module(parent),
                None => return Target::User(None),
            },
            _ => match self.lookup(first, first_ns) {
                Some(target) => target,
                // At the head of a longer path, a name bound nowhere is an extern crate.
                None if !rest.is_empty() => Target::External(vec![first.clone()]),
                // `thread_local!` is std's unless something else is in scope.
                None if ns == Ns::Macro && first == "thread_local" => {
                    Target::External(vec!["std".to_string(), first.clone()])
                }
                None => Target::Unresolved,
            },
        };
        self.file.walk(start, rest, ns, 0)
    }

    pub(crate) fn resolve_path(&self, path: &syn::Path, ns: Ns) -> Target {
        self.resolve(path.leading_colon.is_some(), &path_segments(path), ns)
    }

    /// The canonical path of the external type a type path names (`None` for the user's own
    /// types, and for types that are not paths).
    pub(crate) fn external_type(&self, ty: &Type) -> Option<Vec<String>> {
        match ty {
            Type::Path(ty) if ty.qself.is_none() => match self.resolve_path(&ty.path, Ns::Type) {
                Target::External(path) => Some(rules::canonical(&path)),
                _ => None,
            },
            Type::Paren(ty) => self.external_type(&ty.elem),
            Type::Group(ty) => self.external_type(&ty.elem),
            _ => None,
        }
    }
}

pub(crate) fn path_segments(path: &syn::Path) -> Vec<String> {
    path.segments.iter().map(|s| s.ident.to_string()).collect()
}
