//! loadgen's proxies against an embedded pilotfish: every protocol mix subscribes, ACKs and sees each change.
//! Checks behaviour only (every proxy got each change, with the right content, in one response); no timing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench::driver::{self, Change, ChangeFn, Changed, Mix, Settings};
use bench::world;
use controlplane::ControlPlane;

const SERVICES: usize = 5;
const PROXIES: usize = 6;
const CHANGES: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_mix_converges_on_each_change_with_one_response_per_proxy() -> anyhow::Result<()> {
    for mix in [Mix::Sotw, Mix::Delta, Mix::Mixed] {
        let control_plane = Arc::new(ControlPlane::start().await?);
        control_plane.apply("gateway", world::gateway_yaml())?;
        for index in 0..SERVICES {
            control_plane.apply(&world::service_name(index), &world::service_yaml(index, world::INITIAL_WEIGHT))?;
        }
        let weights = Mutex::new(HashMap::<usize, u32>::new());
        let apply: ChangeFn = Arc::new({
            let control_plane = Arc::clone(&control_plane);
            move |number| {
                let index = number % SERVICES;
                let mut weights = weights.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let weight = world::next_weight(*weights.get(&index).unwrap_or(&world::INITIAL_WEIGHT));
                control_plane.apply(&world::service_name(index), &world::service_yaml(index, weight))?;
                weights.insert(index, weight);
                Ok(Changed { at: None, expect: Some((world::host(index), weight)) })
            }
        });
        let settings = Settings {
            server: "embedded".to_owned(),
            target: control_plane.xds_address(),
            proxies: PROXIES,
            classes: 3,
            mix,
            connections: 2,
            changes: CHANGES,
            change: Change::Function { services: SERVICES, apply },
            settle: Duration::from_millis(100),
            timeout: Duration::from_secs(60),
            server_pid: None,
            admin: Some(control_plane.admin_address()),
            debounce: Duration::ZERO,
            min_available: 0,
        };
        let results = driver::run(&settings).await?;
        assert_eq!((results.missed, results.wrong_content), (0, 0), "{mix:?}");
        assert_eq!(results.acked_ms.samples, PROXIES * CHANGES, "{mix:?}: every proxy ACKs every change");
        assert_eq!(results.responses_per_change, PROXIES as f64, "{mix:?}: a weight shift is one RDS push per proxy");
        assert_eq!(results.translations_per_change, Some(3.0), "{mix:?}: one translation per connected class");
    }
    Ok(())
}
