//! One shutdown signal for every long-lived task: the servers, the pipeline and the sources.
//!
//! [`channel`] gives the [`Trigger`] to whoever decides (a signal handler, a test, [`crate::ControlPlane`]) and a
//! [`Shutdown`] that every task clones and waits on. Dropping the trigger shuts down too, so a task never outlives
//! what started it.

use tokio::sync::watch;

/// Ends the tasks that watch the paired [`Shutdown`].
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Completes once shutdown is triggered.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Trigger(sender), Shutdown(receiver))
}

impl Trigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Waits until shutdown is triggered (or the trigger is dropped).
    pub async fn wait(&self) {
        let mut receiver = self.0.clone();
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger_and_a_dropped_trigger_counts() {
        let (trigger, shutdown) = channel();
        let waiter = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.wait().await }
        });
        assert!(!shutdown.is_triggered());
        trigger.trigger();
        waiter.await.expect("the waiter ends");
        assert!(shutdown.is_triggered());
        let (trigger, shutdown) = channel();
        drop(trigger);
        shutdown.wait().await;
    }
}
