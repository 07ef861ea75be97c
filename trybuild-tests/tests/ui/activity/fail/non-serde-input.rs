use durable_runtime::prelude::*;

pub struct Email {
    pub to: String,
}

#[activity]
async fn send(email: Email) -> String {
    email.to
}

fn main() {}
