//! Clock readings: `Instant::now()` and `SystemTime::now()` are refused where they are written
//! (`rules.rs`); this follows the readings that are allowed, `ctx.current_utc_datetime()`,
//! `UNIX_EPOCH`, or a reading made under the escape hatch, to an `.elapsed()`, which reads
//! the clock again.

use super::rules::{self, Category};
use super::scope::{Ns, Target, Tracked};
use super::visitor::{Checker, path_text};
use syn::{Expr, ExprMethodCall};

const EPOCH: &[&str] = &["std::time::UNIX_EPOCH"];
const NOW: &[&str] = &[
    "std::time::Instant::now",
    "std::time::SystemTime::now",
    "tokio::time::Instant::now",
];

impl Checker<'_> {
    /// Is `expr` a clock reading? `with_now` counts `Instant::now()` itself, which is refused
    /// on its own (so `Instant::now().elapsed()` is reported once, at `Instant::now`).
    pub(crate) fn is_clock_reading(&self, expr: &Expr, with_now: bool) -> bool {
        match expr {
            Expr::Path(path) => {
                self.tracked_name(expr) == Some(Tracked::Time)
                    || (path.qself.is_none()
                        && matches!(
                            self.resolver.resolve_path(&path.path, Ns::Value),
                            Target::External(p) if rules::is_one_of(&rules::canonical(&p), EPOCH)
                        ))
            }
            Expr::Call(call) if with_now => match &*call.func {
                Expr::Path(func) if func.qself.is_none() => matches!(
                    self.resolver.resolve_path(&func.path, Ns::Value),
                    Target::External(p) if rules::is_one_of(&rules::canonical(&p), NOW)
                ),
                _ => false,
            },
            Expr::MethodCall(call) if call.method == "current_utc_datetime" => true,
            Expr::MethodCall(call) if call.method == "clone" => {
                self.is_clock_reading(&call.receiver, with_now)
            }
            Expr::Binary(binary)
                if matches!(binary.op, syn::BinOp::Add(_) | syn::BinOp::Sub(_)) =>
            {
                self.is_clock_reading(&binary.left, with_now)
            }
            Expr::Paren(paren) => self.is_clock_reading(&paren.expr, with_now),
            Expr::Reference(reference) => self.is_clock_reading(&reference.expr, with_now),
            Expr::Group(group) => self.is_clock_reading(&group.expr, with_now),
            _ => false,
        }
    }

    /// `.elapsed()` on a clock reading.
    pub(crate) fn check_elapsed(&mut self, call: &ExprMethodCall) {
        if call.method != "elapsed"
            || !call.args.is_empty()
            || !self.is_clock_reading(&call.receiver, false)
        {
            return;
        }
        let subject = match &*call.receiver {
            Expr::Path(path) if path.qself.is_none() => {
                let segments: Vec<String> = path
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                format!(
                    "`{}.elapsed()`",
                    path_text(path.path.leading_colon.is_some(), &segments)
                )
            }
            _ => "`.elapsed()`".to_string(),
        };
        self.error(call, Category::Elapsed.explain(&subject), subject.clone());
    }
}
