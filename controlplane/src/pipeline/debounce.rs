//! Debounce: a burst of changes becomes one translation.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// Debounce settings.
#[derive(Clone, Copy, Debug)]
pub struct Debounce {
    /// Translate once nothing changed for this long.
    pub quiet: Duration,
    /// ... but no later than this after the first change of a burst.
    pub max_delay: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce { quiet: Duration::from_millis(100), max_delay: Duration::from_secs(1) }
    }
}

impl Debounce {
    /// Waits out a burst whose first change just arrived: returns once `changes` has been quiet for `quiet`, or
    /// `max_delay` after the burst began, whichever comes first. Returns how long the burst lasted.
    pub async fn settle(&self, changes: &mut mpsc::UnboundedReceiver<()>) -> Duration {
        let burst_started = Instant::now();
        let deadline = burst_started + self.max_delay;
        loop {
            let quiet_until = (Instant::now() + self.quiet).min(deadline);
            match tokio::time::timeout_at(quiet_until, changes.recv()).await {
                Ok(Some(())) if Instant::now() < deadline => continue,
                _ => break,
            }
        }
        burst_started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debounce() -> Debounce {
        Debounce { quiet: Duration::from_millis(100), max_delay: Duration::from_secs(1) }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_period_ends_the_burst() {
        let (send, mut changes) = mpsc::unbounded_channel();
        let sender = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = send.send(());
            }
            // Keep the channel open past the quiet period.
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let burst = debounce().settle(&mut changes).await;
        assert_eq!(burst, Duration::from_millis(250), "3 changes 50 ms apart, then 100 ms of quiet");
        sender.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_that_never_quiets_ends_at_the_maximum_delay() {
        let (send, mut changes) = mpsc::unbounded_channel();
        let sender = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if send.send(()).is_err() {
                    return;
                }
            }
        });
        let burst = debounce().settle(&mut changes).await;
        assert_eq!(burst, Duration::from_secs(1));
        sender.abort();
    }
}
