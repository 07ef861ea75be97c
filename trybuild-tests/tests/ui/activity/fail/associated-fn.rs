use durable_runtime::prelude::*;

struct Mailer;

impl Mailer {
    #[activity]
    async fn send(to: String) -> String {
        to
    }
}

fn main() {}
