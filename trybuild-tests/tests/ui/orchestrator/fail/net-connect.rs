use durable_runtime::prelude::*;

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<(), OrchestrationError> {
    let _ = &ctx;
    let _socket = std::net::TcpStream::connect("127.0.0.1:80");
    Ok(())
}

fn main() {}
