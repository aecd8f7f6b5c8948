//! TLS 1.3 for the bulk channel (docs/wire.md, "Bulk data channel").
//!
//! Both ends present a certificate as libp2p-tls builds it: a fresh ECDSA P-256 certificate key,
//! self-signed, with the libp2p extension holding the node's libp2p public key and that key's
//! signature over the certificate key. The verifier accepts exactly one such certificate and
//! reads the peer id from it; the fetcher also requires the peer id it meant to reach. Cipher
//! suites: TLS 1.3 only, AES-GCM first on CPUs with AES instructions (libp2p-tls puts
//! ChaCha20-Poly1305 first, which costs about 4× here), ChaCha20-Poly1305 first elsewhere.
//! No session resumption: every connection runs the full handshake with both certificates.

use std::sync::Arc;

use libp2p::identity::Keypair;
use libp2p::tls::certificate;
use libp2p::PeerId;
use lien_protocol::bulk::ALPN;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::aws_lc_rs::cipher_suite::{
    TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Why the channel's TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The certificate could not be generated.
    #[error("cannot make the bulk channel certificate: {0}")]
    Certificate(String),
    /// rustls refused the configuration.
    #[error("bulk channel TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// This node's certificate and certificate key for the channel, made once per node.
pub struct Identity {
    certified: Arc<rustls::sign::CertifiedKey>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// A certificate for `keypair` (the node's libp2p identity).
    pub fn new(keypair: &Keypair) -> Result<Identity, TlsSetupError> {
        let (cert, key) = certificate::generate(keypair).map_err(|e| TlsSetupError::Certificate(e.to_string()))?;
        let signing_key: Arc<dyn rustls::sign::SigningKey> = provider().key_provider.load_private_key(key)?;
        Ok(Identity { certified: Arc::new(rustls::sign::CertifiedKey::new(vec![cert], signing_key)) })
    }

    /// The server side: any peer with a valid libp2p certificate completes the handshake (its
    /// peer id is then read with [`peer_of`]); a client without one is refused.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(PeerVerifier { expected: None }))
            .with_cert_resolver(Arc::new(Resolver(self.certified.clone())));
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    /// The client side, accepting only `server`'s certificate.
    pub fn client_config(&self, server: PeerId) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerVerifier { expected: Some(server) }))
            .with_client_cert_resolver(Arc::new(Resolver(self.certified.clone())));
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        config.enable_sni = false;
        Ok(Arc::new(config))
    }
}

/// The server name a fetcher gives rustls (no SNI is sent; the certificate check is by peer id).
pub fn server_name(ip: std::net::IpAddr) -> ServerName<'static> {
    ServerName::IpAddress(ip.into())
}

/// The peer id in the certificate the other end presented (after a completed handshake).
pub fn peer_of(state: &rustls::CommonState) -> Option<PeerId> {
    let cert = state.peer_certificates()?.first()?;
    certificate::parse(cert).ok().map(|c| c.peer_id())
}

/// The crypto provider: aws-lc-rs, TLS 1.3 suites in this CPU's order of speed.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = if has_aes_instructions() {
        vec![TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256]
    } else {
        vec![TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384]
    };
    Arc::new(provider)
}

/// Whether this CPU has AES and carry-less multiply instructions (AES-GCM in hardware).
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub fn has_aes_instructions() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

/// Whether this CPU has AES and carry-less multiply instructions (AES-GCM in hardware).
#[cfg(target_arch = "aarch64")]
pub fn has_aes_instructions() -> bool {
    std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull")
}

/// Whether this CPU has AES and carry-less multiply instructions (AES-GCM in hardware).
#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
pub fn has_aes_instructions() -> bool {
    false
}

/// Always presents this node's certificate (rustls's own loaders parse the certificate with
/// webpki, which refuses the libp2p extension because it is marked critical).
#[derive(Debug)]
struct Resolver(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for Resolver {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts exactly one valid libp2p certificate, and with `expected` only that peer's.
#[derive(Debug)]
struct PeerVerifier {
    expected: Option<PeerId>,
}

/// The handshake signatures a libp2p certificate key may make (libp2p-tls makes P-256).
const SCHEMES: &[SignatureScheme] =
    &[SignatureScheme::ECDSA_NISTP384_SHA384, SignatureScheme::ECDSA_NISTP256_SHA256, SignatureScheme::ED25519];

impl PeerVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General("exactly one certificate expected".into()));
        }
        let peer = certificate::parse(end_entity)?.peer_id();
        match self.expected {
            Some(expected) if expected != peer => {
                Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
            }
            _ => Ok(()),
        }
    }

    fn tls13_signature(
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        certificate::parse(cert)?.verify_signature(dss.scheme, message, dss.signature())?;
        Ok(HandshakeSignatureValid::assertion())
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}
