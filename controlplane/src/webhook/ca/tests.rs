use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::*;

/// Verifies `certificate` for `name` against `ca` at `now`, as the apiserver's TLS client does with the caBundle.
fn verify(ca: &Ca, certificate: &CertificateDer<'static>, name: &str, now: SystemTime) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    let der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).map_err(|e| e.to_string())?;
    roots.add(der).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let now = UnixTime::since_unix_epoch(now.duration_since(SystemTime::UNIX_EPOCH).map_err(|e| e.to_string())?);
    verifier.verify_server_cert(certificate, &[], &name, &[], now).map(|_| ()).map_err(|e| e.to_string())
}

fn names() -> Vec<String> {
    crate::webhook::serving_names("pilotfish", "pilotfish-system", Some("127.0.0.1:15017".parse().expect("address")))
}

#[test]
fn a_serving_certificate_verifies_for_the_service_names_and_the_address_listened_on() {
    let now = SystemTime::now();
    let ca = Ca::generate(now).expect("a CA");
    let serving = ca.issue(&names(), now).expect("a certificate");
    let certificate = &serving.key.cert[0];
    for name in ["pilotfish.pilotfish-system.svc", "pilotfish.pilotfish-system.svc.cluster.local", "127.0.0.1"] {
        verify(&ca, certificate, name, now).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let error = verify(&ca, certificate, "other.pilotfish-system.svc", now).expect_err("another name");
    assert!(error.contains("not valid for name"), "{error}");
    assert_eq!(serving.renew_at, now + SERVING_VALIDITY / 2, "renewed half way");
    let expired = verify(&ca, certificate, "127.0.0.1", now + SERVING_VALIDITY + Duration::from_secs(60));
    let expired = expired.expect_err("expired");
    assert!(expired.contains("expired"), "{expired}");
}

#[test]
fn a_ca_read_back_from_its_pem_signs_what_the_first_one_verifies() {
    let now = SystemTime::now();
    let ca = Ca::generate(now).expect("a CA");
    let stored = Ca::from_pem(ca.cert_pem(), &ca.key_pem(), now + Duration::from_secs(86_400)).expect("reads back");
    assert_eq!(stored.cert_pem(), ca.cert_pem(), "the same caBundle");
    let serving = stored.issue(&names(), now).expect("a certificate");
    verify(&ca, &serving.key.cert[0], "pilotfish.pilotfish-system.svc", now).expect("the original CA trusts it");
}

#[test]
fn a_stored_ca_that_does_not_hold_together_is_refused_with_the_reason() {
    let now = SystemTime::now();
    let (one, two) = (Ca::generate(now).expect("a CA"), Ca::generate(now).expect("a CA"));
    let error = Ca::from_pem(one.cert_pem(), &two.key_pem(), now).expect_err("another key").to_string();
    assert!(
        error.starts_with("failed to verify the stored CA") && error.contains("not a CA pilotfish made"),
        "{error}"
    );
    let error = Ca::from_pem("not a certificate", &one.key_pem(), now).expect_err("garbage").to_string();
    assert!(error.contains("the certificate"), "{error}");
    let error = Ca::from_pem(one.cert_pem(), "not a key", now).expect_err("garbage").to_string();
    assert!(error.contains("the key"), "{error}");
}

#[test]
fn a_certificate_names_the_service_and_only_a_specific_address() {
    let any = crate::webhook::serving_names("pilotfish", "lab", Some("0.0.0.0:15017".parse().expect("address")));
    assert_eq!(any, ["pilotfish.lab.svc", "pilotfish.lab.svc.cluster.local", "pilotfish.lab", "pilotfish"]);
    let loopback = crate::webhook::serving_names("pilotfish", "lab", Some("[::1]:15017".parse().expect("address")));
    assert_eq!(loopback.last().map(String::as_str), Some("::1"));
}
