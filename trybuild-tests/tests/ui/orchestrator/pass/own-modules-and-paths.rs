//! The user's own modules named like std's (`mod process`, `mod time`, `mod env`, `mod fs`),
//! and paths through `crate::`, `self::` and `super::`, are never refused.
#![deny(warnings)]
use durable_runtime::prelude::*;

mod process {
    pub fn normalize(s: &str) -> String {
        s.trim().to_string()
    }
}

mod time {
    pub fn now() -> u64 {
        7
    }
}

mod env {
    pub fn var(_: &str) -> Option<String> {
        None
    }
}

mod fs {
    pub fn read_to_string(_: &str) -> String {
        String::new()
    }
}

#[orchestrator]
async fn workflow(ctx: OrchestrationContext, name: String) -> Result<String, OrchestrationError> {
    let _ = &ctx;
    let a = crate::process::normalize(&name);
    let b = self::process::normalize(&a);
    let c = process::normalize(&b);
    let t = time::now() + crate::time::now() + self::time::now();
    let v = env::var("X").unwrap_or_default();
    let f = fs::read_to_string("config");
    Ok(format!("{c}{t}{v}{f}"))
}

mod flows {
    use durable_runtime::prelude::*;

    #[orchestrator]
    pub async fn nested(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
        let _ = &ctx;
        Ok(super::process::normalize(" x ") + &super::time::now().to_string())
    }
}

fn main() {
    let _ = flows::nested;
}
