//! The function keeps its name in the value namespace: a local, a parameter or a closure
//! argument named like an activity, a parameter named like its own function, and a module of
//! the same name all compile, as they do for a plain `async fn`.
#![deny(warnings)]
use durable_runtime::prelude::*;

#[activity]
async fn greeting(name: String) -> String {
    format!("hello {name}")
}

#[activity]
async fn total(values: Vec<u32>) -> u32 {
    values.iter().sum()
}

#[activity]
async fn city(city: String) -> String {
    city.to_uppercase()
}

#[activity]
async fn double(n: u64) -> u64 {
    n * 2
}

mod send_email {
    use durable_runtime::prelude::*;

    #[activity]
    pub async fn send_email(to: String) -> String {
        format!("sent to {to}")
    }
}
pub use send_email::send_email;

#[orchestrator]
async fn shadowing(ctx: OrchestrationContext, name: String) -> Result<String, OrchestrationError> {
    let greeting = ctx.call_activity(greeting, name).await?;
    let total = ctx.call_activity(total, vec![1, 2]).await?;
    let cities = ctx
        .when_all(["oslo"].map(|city| ctx.call_activity(self::city, city.to_string())))
        .await;
    let sent = ctx.call_activity(send_email, "ada".to_string()).await?;
    Ok(format!("{greeting} {total} {} {sent}", cities.len()))
}

#[orchestrator]
async fn parameter(ctx: OrchestrationContext, total: u32) -> Result<u32, OrchestrationError> {
    Ok(total + ctx.call_activity(self::total, vec![total]).await?)
}

#[allow(dead_code)]
async fn start(client: Client) -> Result<(), durable_runtime::Error> {
    client.start(shadowing, "ada".to_string()).await?;
    client.start(parameter, 1).await?;
    Ok(())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let total = total(vec![2, 3]).await;
        assert_eq!(total, 5);
        let city = city("rome".into()).await;
        assert_eq!(city, "ROME");
        assert_eq!(futures::future::join_all([1, 2].map(double)).await, [2, 4]);
        assert_eq!(send_email("bo".into()).await, "sent to bo");
        assert_eq!(greeting("al".into()).await, "hello al");
    });
}
