//! The webhook's certificate authority and the serving certificates it signs.
//!
//! The apiserver trusts the CA (the MutatingWebhookConfiguration's `caBundle`); each pilotfish process signs its
//! own serving certificate with it, for the Service's DNS names. Replicas and restarts share the CA (it is kept in
//! a Secret, see [`super::cluster`]), so the `caBundle` stays the same while pilotfish pods come and go, and no
//! two pods ever fight over it.
//!
//! Only a CA this module made can be loaded back: its subject is fixed ([`CA_NAME`]) and rebuilt from that, not
//! parsed from the certificate (which would take an X.509 parser). [`Ca::from_pem`] proves the pair works before
//! using it: it signs a certificate and verifies it against the stored CA certificate, as a TLS client would.
//! Pure: the clock is a parameter.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

/// The CA certificate's subject common name.
pub const CA_NAME: &str = "pilotfish injection webhook CA";
/// How long a new CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a serving certificate is valid; pilotfish signs a new one after half of that.
pub const SERVING_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates start to be valid this long before they are made, for clocks a little behind ours.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Failures of the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("failed to make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("failed to read the stored CA: {0}")]
    Read(String),
    #[error("failed to verify the stored CA: {0}")]
    Verify(String),
    #[error("failed to load the serving certificate into TLS: {0}")]
    Tls(#[source] rustls::Error),
}

/// A CA that can sign serving certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// A serving certificate and its key, for rustls, and when it should be replaced.
#[derive(Debug)]
pub struct Serving {
    pub key: Arc<CertifiedKey>,
    pub renew_at: SystemTime,
}

impl Ca {
    /// A new CA, valid from `now` (less a little clock skew) for [`CA_VALIDITY`].
    pub fn generate(now: SystemTime) -> Result<Ca, CaError> {
        let key = KeyPair::generate()?;
        let params = ca_params(now);
        let cert = params.self_signed(&key)?;
        let cert_der = cert.der().clone();
        Ok(Ca { params, key, cert_pem: cert.pem(), cert_der })
    }

    /// The CA kept as PEM (certificate and PKCS#8 key), as [`Ca::cert_pem`] and [`Ca::key_pem`] wrote it.
    pub fn from_pem(cert_pem: &str, key_pem: &str, now: SystemTime) -> Result<Ca, CaError> {
        let key = KeyPair::from_pem(key_pem).map_err(|err| CaError::Read(format!("the key: {err}")))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|err| CaError::Read(format!("the certificate: {err}")))?;
        let ca = Ca { params: ca_params(now), key, cert_pem: cert_pem.to_owned(), cert_der };
        ca.check(now)?;
        Ok(ca)
    }

    /// The CA certificate, PEM: what the apiserver is given as `caBundle`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A serving certificate for `names` (DNS names, or IP addresses), signed by this CA, valid from `now` for
    /// [`SERVING_VALIDITY`].
    pub fn issue(&self, names: &[String], now: SystemTime) -> Result<Serving, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names.first().map(String::as_str).unwrap_or("pilotfish"));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = at(now.checked_sub(CLOCK_SKEW).unwrap_or(now));
        params.not_after = at(now + SERVING_VALIDITY);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(vec![cert.der().clone()], private, &provider).map_err(CaError::Tls)?;
        Ok(Serving { key: Arc::new(certified), renew_at: now + SERVING_VALIDITY / 2 })
    }

    /// Signs a certificate and verifies it against the CA certificate as a TLS client would: the key, the subject
    /// and the validity must all be right.
    fn check(&self, now: SystemTime) -> Result<(), CaError> {
        const NAME: &str = "check.pilotfish.invalid";
        let serving = self.issue(&[NAME.to_owned()], now)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert_der.clone()).map_err(|err| CaError::Verify(format!("the CA certificate: {err}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|err| CaError::Verify(err.to_string()))?;
        let name = ServerName::try_from(NAME).map_err(|err| CaError::Verify(err.to_string()))?;
        verifier
            .verify_server_cert(&serving.key.cert[0], &[], &name, &[], UnixTime::since_unix_epoch(since_epoch(now)))
            .map_err(|err| {
                CaError::Verify(format!(
                    "a certificate it signs does not verify against its certificate ({err}); it is not a CA \
                     pilotfish made"
                ))
            })?;
        Ok(())
    }
}

/// The CA's parameters; the subject is fixed so that a stored CA can sign again without parsing its certificate.
/// (The validity of a stored CA is not read back either: it was [`CA_VALIDITY`] from when it was made.)
fn ca_params(now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = at(now.checked_sub(CLOCK_SKEW).unwrap_or(now));
    params.not_after = at(now + CA_VALIDITY);
    params
}

fn since_epoch(time: SystemTime) -> Duration {
    time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

fn at(time: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(time)
}

#[cfg(test)]
mod tests;
