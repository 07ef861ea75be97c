use durable_runtime::prelude::*;

#[activity]
async fn say_hello(city: String) -> String {
    format!("Hello {city}!")
}

#[allow(dead_code)]
async fn start(client: Client) -> Result<String, durable_runtime::Error> {
    client.start(say_hello, "Oslo".to_string()).await
}

fn main() {}
