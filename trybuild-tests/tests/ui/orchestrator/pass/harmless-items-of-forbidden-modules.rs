//! Plain values inside forbidden modules are allowed: `tokio::time::Duration` (std's),
//! `tokio::time::MissedTickBehavior`, `std::env::consts::*` (constants of the build) and the
//! `std::net` address types (pure values; resolving a host name is what does I/O).
#![deny(warnings)]
use durable_runtime::prelude::*;
use std::env::consts::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[orchestrator]
async fn workflow(ctx: OrchestrationContext) -> Result<String, OrchestrationError> {
    let pause = tokio::time::Duration::from_millis(5);
    ctx.sleep(pause).await;
    let _ticks = tokio::time::MissedTickBehavior::Skip;
    let local = Ipv4Addr::new(127, 0, 0, 1);
    let addr = SocketAddr::new(IpAddr::V4(local), 8080);
    let v6 = "::1".parse::<Ipv6Addr>().map(|ip| ip.is_loopback()).unwrap_or(false);
    let v4 = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 80);
    Ok(format!("{} {ARCH} {FAMILY} {addr} {v4} {v6}", std::env::consts::OS))
}

fn main() {}
