//! Options, several inputs, a plain return type, and starting by handle.
use durable_runtime::prelude::*;

#[orchestrator(name = "orders.process", version = "3")]
async fn process(ctx: OrchestrationContext, id: u32, note: String) -> String {
    format!("{} {id} {note}", ctx.instance_id())
}

#[allow(dead_code)]
async fn start(client: Client) -> Result<String, durable_runtime::Error> {
    client.start(process, (7, "rush".to_string())).await
}

fn main() {
    let registered =
        durable_runtime::registry::registered_orchestrator(process).expect("registered");
    assert_eq!(registered.name, "orders.process");
    assert_eq!(registered.version, Some("3"));
}
