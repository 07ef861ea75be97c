//! Retention: purges finished instances older than a configured age, in the background.
//!
//! Driven by the runtime's clock, not by Tokio's: it waits on the clock's timer, at most
//! [`MAX_TIMER_SLEEP`](super::timer::MAX_TIMER_SLEEP) before it reads the clock again, and sweeps when a
//! sweep is due by that clock, so a clock that jumps (or a test's clock) is followed within a
//! second. A sweep purges, a batch per transaction, every finished instance last updated more
//! than the age ago. It reads the instances table without an index on the update time (one
//! would cost every step an index write): sweeps are spaced by a tenth of the age (at least a
//! second, at most an hour) to keep that cheap.

use super::{Shared, StopSignal, stopping};
use crate::store::PurgeFilter;
use std::sync::Arc;
use std::time::Duration;

/// Runs until the runtime stops.
pub(crate) async fn run(shared: Arc<Shared>, age: Duration, mut stopped: StopSignal) -> bool {
    let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    let every_ms = (age_ms / 10).clamp(1_000, 3_600_000);
    let mut next_ms = shared.clock.now_ms();
    let mut timer = shared.clock.timer();
    loop {
        let now = shared.clock.now_ms();
        if now >= next_ms {
            let filter = PurgeFilter {
                updated_to_ms: Some(now.saturating_sub(age_ms)),
                ..PurgeFilter::default()
            };
            let sweep = crate::client::purge_matching(&shared, &filter);
            let swept = tokio::select! {
                biased;
                _ = stopping(&mut stopped) => return true,
                swept = sweep => swept,
            };
            match swept {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "retention purged finished instances"),
                // Tried again at the next sweep.
                Err(err) => tracing::warn!(error = %err, "retention sweep failed"),
            }
            next_ms = now.saturating_add(every_ms);
        }
        timer.reset(now, Some(next_ms), super::timer::MAX_TIMER_SLEEP);
        tokio::select! {
            biased;
            _ = stopping(&mut stopped) => return true,
            () = timer.fired() => {}
        }
    }
}
