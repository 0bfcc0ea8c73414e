//! Packs in an OCI registry: `osprey pack push` and `osprey plugin install oci://...`, over
//! oci-client.
//!
//! A pushed pack is a CNCF wasm OCI artifact, so other wasm tooling can pull its component,
//! with the pack's own files as extra layers beside it:
//!
//! ```text
//! config   application/vnd.wasm.config.v0+json                   {"architecture":"wasm","os":"wasip2","layerDigests":[…]}
//! layer    application/wasm                                      the component (first)
//! layer    application/vnd.osprey.pack.manifest.v1+json          osprey-pack.json, what the signature covers
//! layer    application/vnd.osprey.pack.signature.v1+minisign     osprey-pack.json.minisig (if signed)
//! layer    application/vnd.osprey.pack.public-key.v1+minisign    osprey-pack.pub (if the signer put it in)
//! layer    application/vnd.osprey.pack.file.v1                   plugin.toml, README.md
//! ```
//!
//! Every layer carries its file name as `org.opencontainers.image.title`. Pulling rebuilds
//! the very pack that was pushed and checks it as a pack file is checked
//! ([`Pack::from_entries`]); the caller then judges its signature as for a file.
//!
//! Nothing is allocated for a registry's say-so: the manifest is read up to the pack
//! manifest's limit (oci-client reads a manifest whole, so that one GET is ours, with the
//! token oci-client negotiated), a manifest whose layers are not what Osprey pushes is
//! refused before any blob is fetched, every layer's size is held to the pack limits before
//! it is fetched and while it streams, and oci-client checks every blob against its digest.

use crate::pack::format::{MANIFEST, PUBLIC_KEY, SIGNATURE};
use crate::pack::{FormatError, Limits, Pack};
use futures::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The config media type of a wasm OCI artifact (CNCF TAG Runtime's layout).
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The annotation that names a layer's file.
const TITLE: &str = "org.opencontainers.image.title";
/// The scheme of an OCI reference on Osprey's command line.
pub const SCHEME: &str = "oci://";

/// The kinds of layer Osprey pushes: a closed set; any other layer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Component,
    PackManifest,
    Signature,
    PublicKey,
    File,
}

impl Layer {
    const ALL: [Layer; 5] = [
        Layer::Component,
        Layer::PackManifest,
        Layer::Signature,
        Layer::PublicKey,
        Layer::File,
    ];

    fn media_type(self) -> &'static str {
        match self {
            Layer::Component => "application/wasm",
            Layer::PackManifest => "application/vnd.osprey.pack.manifest.v1+json",
            Layer::Signature => "application/vnd.osprey.pack.signature.v1+minisign",
            Layer::PublicKey => "application/vnd.osprey.pack.public-key.v1+minisign",
            Layer::File => "application/vnd.osprey.pack.file.v1",
        }
    }

    fn of(media_type: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.media_type() == media_type)
    }

    /// The file name of a layer the pack names itself.
    fn fixed_name(self) -> Option<&'static str> {
        match self {
            Layer::PackManifest => Some(MANIFEST),
            Layer::Signature => Some(SIGNATURE),
            Layer::PublicKey => Some(PUBLIC_KEY),
            Layer::Component | Layer::File => None,
        }
    }
}

/// Why a push or a pull failed. Each says which reference and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(
        "'{text}' is not an OCI reference Osprey reads: {reason} (write oci://HOST[:PORT]/REPO:TAG or oci://HOST[:PORT]/REPO@sha256:DIGEST)"
    )]
    BadReference { text: String, reason: String },
    #[error("--username needs its password in the environment variable OSPREY_REGISTRY_PASSWORD")]
    NoPassword,
    #[error("the registry of {reference} refused or failed")]
    Registry {
        reference: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    #[error(
        "the registry of {reference} wants a sign-in, or refused this one: give --username NAME with the password in the environment variable OSPREY_REGISTRY_PASSWORD"
    )]
    SignIn {
        reference: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    #[error("cannot reach the registry of {reference}")]
    Http {
        reference: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the registry answered {status} for the manifest of {reference}: {body}")]
    Status {
        reference: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error(
        "{what} of {reference} is larger than a pack may be ({max} bytes at most): refused before reading it"
    )]
    TooLarge {
        reference: String,
        what: String,
        max: u64,
    },
    #[error("{what} of {reference} is longer than the {size} bytes its manifest says: refused")]
    Longer {
        reference: String,
        what: String,
        size: u64,
    },
    #[error(
        "{what} of {reference} is not the one its digest names (expected {expected}, got {actual}): it was changed in the registry or on the way; refused"
    )]
    DigestMismatch {
        reference: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what} of {reference} failed its digest check or could not be read")]
    Blob {
        reference: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{reference} is not an Osprey pack: {reason}")]
    NotAPack { reference: String, reason: String },
    #[error("{reference} is refused")]
    Pack {
        reference: String,
        #[source]
        source: FormatError,
    },
}

/// How to reach a registry: plain HTTP only to loopback or when asked, and who to be.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Plain HTTP to a registry that is not on loopback.
    pub insecure: bool,
    pub username: Option<String>,
    /// From the environment, never from the command line.
    pub password: Option<String>,
}

/// A reference as written on Osprey's command line: `oci://HOST[:PORT]/REPO:TAG` or
/// `oci://HOST[:PORT]/REPO@sha256:DIGEST`.
#[derive(Debug, Clone)]
pub struct OciRef {
    reference: Reference,
    text: String,
    loopback: bool,
}

impl std::fmt::Display for OciRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl OciRef {
    /// Whether `text` is written as an OCI reference (`oci://`), to tell it from a path.
    pub fn is_oci(text: &str) -> bool {
        text.starts_with(SCHEME)
    }

    pub fn parse(text: &str) -> Result<OciRef, OciError> {
        let bad = |reason: &str| OciError::BadReference {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it does not start with oci://"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no repository after the host"))?;
        if host.is_empty() {
            return Err(bad("it names no registry host"));
        }
        let url = url::Url::parse(&format!("http://{host}/"))
            .map_err(|_| bad("its host is not HOST or HOST:PORT"))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let last = path.rsplit('/').next().unwrap_or(path);
        if !path.contains('@') && !last.contains(':') {
            return Err(bad("it names no tag (:TAG) or digest (@sha256:DIGEST)"));
        }
        let reference: Reference = rest
            .parse()
            .map_err(|e: oci_client::ParseError| bad(&e.to_string()))?;
        if reference.registry() != host {
            return Err(bad("its host is not read as the registry"));
        }
        Ok(OciRef {
            reference,
            text: text.to_owned(),
            loopback,
        })
    }

    /// The digest the reference pins (`@sha256:...`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// The same repository at `digest`: what to install to get exactly this push.
    pub fn at_digest(&self, digest: &str) -> String {
        format!(
            "{SCHEME}{}/{}@{digest}",
            self.reference.registry(),
            self.reference.repository()
        )
    }

    fn scheme(&self, access: &Access) -> &'static str {
        if self.loopback || access.insecure {
            "http"
        } else {
            "https"
        }
    }
}

/// The registry's layers of `files`, each named by its title annotation.
fn image_layers(files: &[(Layer, &str, &[u8])]) -> Vec<ImageLayer> {
    files
        .iter()
        .map(|(kind, name, bytes)| {
            ImageLayer::new(
                bytes.to_vec(),
                kind.media_type().to_owned(),
                Some(BTreeMap::from([(TITLE.to_owned(), (*name).to_owned())])),
            )
        })
        .collect()
}

/// The pack's files as pushed: (kind, file name, bytes), the component first.
fn layers_of<'p>(pack: &'p Pack, component: &str) -> Vec<(Layer, &'p str, &'p [u8])> {
    let mut out = Vec::new();
    out.extend(
        pack.files()
            .filter(|(p, _)| *p == component)
            .map(|(p, b)| (Layer::Component, p, b)),
    );
    out.push((Layer::PackManifest, MANIFEST, pack.manifest_bytes()));
    if let Some(sig) = pack.signature() {
        out.push((Layer::Signature, SIGNATURE, sig.as_bytes()));
    }
    if let Some(key) = pack.public_key() {
        out.push((Layer::PublicKey, PUBLIC_KEY, key.as_bytes()));
    }
    out.extend(
        pack.files()
            .filter(|(p, _)| *p != component)
            .map(|(p, b)| (Layer::File, p, b)),
    );
    out
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One file a manifest's layer holds, checked against the layout and the limits.
struct Planned<'m> {
    name: String,
    descriptor: &'m OciDescriptor,
    size: u64,
}

/// The layers of a pulled manifest, if they are what Osprey pushes and within the limits:
/// refused before any blob is fetched.
fn plan<'m>(manifest: &'m OciImageManifest, limits: &Limits) -> Result<Vec<Planned<'m>>, String> {
    if manifest.schema_version != 2 {
        return Err(format!(
            "its manifest's schemaVersion is {}, not 2",
            manifest.schema_version
        ));
    }
    if let Some(mt) = &manifest.media_type
        && mt != OCI_IMAGE_MEDIA_TYPE
    {
        return Err(format!("its manifest is a {mt}, not an OCI image manifest"));
    }
    if manifest.config.media_type != WASM_CONFIG {
        return Err(format!(
            "its config is a {}, not {WASM_CONFIG}",
            manifest.config.media_type
        ));
    }
    if manifest.layers.len() > limits.max_entries {
        return Err(format!(
            "it has {} layers; a pack has at most {}",
            manifest.layers.len(),
            limits.max_entries
        ));
    }
    let mut out = Vec::with_capacity(manifest.layers.len());
    let mut names = BTreeSet::new();
    let mut count = BTreeMap::new();
    let mut total = 0u64;
    for d in &manifest.layers {
        let kind = Layer::of(&d.media_type).ok_or_else(|| {
            format!(
                "it has a layer of type '{}', which Osprey does not push",
                d.media_type
            )
        })?;
        *count.entry(kind.media_type()).or_insert(0usize) += 1;
        let title = d.annotations.as_ref().and_then(|a| a.get(TITLE));
        let name = match (kind.fixed_name(), title) {
            (Some(fixed), Some(t)) if t != fixed => {
                return Err(format!(
                    "its {} layer is titled '{t}', not '{fixed}'",
                    d.media_type
                ));
            }
            (Some(fixed), _) => fixed.to_owned(),
            (None, Some(t)) => t.clone(),
            (None, None) => {
                return Err(format!(
                    "its {} layer {} has no {TITLE} annotation naming its file",
                    d.media_type, d.digest
                ));
            }
        };
        if kind.fixed_name().is_none() && Layer::ALL.iter().any(|l| l.fixed_name() == Some(name.as_str())) {
            return Err(format!(
                "its {} layer is titled '{name}', a name the pack keeps for itself",
                d.media_type
            ));
        }
        if kind == Layer::Component && !name.ends_with(".wasm") {
            return Err(format!(
                "its application/wasm layer is titled '{name}', not a .wasm file"
            ));
        }
        if d.urls.as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(format!("its layer '{name}' points to other URLs"));
        }
        if !names.insert(name.clone()) {
            return Err(format!("it holds '{name}' twice"));
        }
        let size = u64::try_from(d.size).map_err(|_| format!("its layer '{name}' has a negative size"))?;
        let max = limits.entry_limit(&name);
        if size > max {
            return Err(format!(
                "its layer '{name}' is {size} bytes, over the limit of {max}"
            ));
        }
        total += size;
        if total > limits.max_total_bytes {
            return Err(format!(
                "its layers add up to more than {} bytes",
                limits.max_total_bytes
            ));
        }
        out.push(Planned {
            name,
            descriptor: d,
            size,
        });
    }
    for (kind, at_least, at_most) in [
        (Layer::Component, 1, 1),
        (Layer::PackManifest, 1, 1),
        (Layer::Signature, 0, 1),
        (Layer::PublicKey, 0, 1),
    ] {
        let n = count.get(kind.media_type()).copied().unwrap_or(0);
        if n < at_least || n > at_most {
            return Err(format!(
                "it has {n} layers of type {}, where a pack has {}",
                kind.media_type(),
                if at_least == at_most {
                    "exactly one"
                } else {
                    "at most one"
                }
            ));
        }
    }
    Ok(out)
}

/// A client of one registry. oci-client is built without a TLS provider: ring, as for
/// reqwest everywhere in Osprey.
struct Session<'a> {
    client: Client,
    auth: RegistryAuth,
    oci: &'a OciRef,
    access: &'a Access,
}

impl<'a> Session<'a> {
    fn new(oci: &'a OciRef, access: &'a Access) -> Result<Session<'a>, OciError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let auth = match (&access.username, &access.password) {
            (Some(user), Some(password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            (Some(_), None) => return Err(OciError::NoPassword),
            (None, _) => RegistryAuth::Anonymous,
        };
        let protocol = if oci.scheme(access) == "http" {
            ClientProtocol::HttpsExcept(vec![oci.reference.registry().to_owned()])
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            user_agent: concat!("osprey/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        });
        Ok(Session {
            client,
            auth,
            oci,
            access,
        })
    }

    fn registry_error(&self, source: oci_client::errors::OciDistributionError) -> OciError {
        use oci_client::errors::OciDistributionError as E;
        let reference = self.oci.text.clone();
        match source {
            E::ServerError { code: 401 | 403, .. }
            | E::UnauthorizedError { .. }
            | E::AuthenticationFailure(_) => OciError::SignIn { reference, source },
            source => OciError::Registry { reference, source },
        }
    }

    fn too_large(&self, what: String, max: u64) -> OciError {
        OciError::TooLarge {
            reference: self.oci.text.clone(),
            what,
            max,
        }
    }

    /// The manifest and its digest, read no further than `max` bytes, checked against the
    /// digest the reference pins and the one the registry names.
    async fn manifest(&self, max: u64) -> Result<(OciImageManifest, String), OciError> {
        let r = &self.oci.reference;
        let token = self
            .client
            .auth(r, &self.auth, RegistryOperation::Pull)
            .await
            .map_err(|e| self.registry_error(e))?;
        let url = format!(
            "{}://{}/v2/{}/manifests/{}",
            self.oci.scheme(self.access),
            r.registry(),
            r.repository(),
            r.digest().or(r.tag()).unwrap_or("latest")
        );
        let http_error = |source| OciError::Http {
            reference: self.oci.text.clone(),
            source,
        };
        // Built as oci-client builds its own (rustls with the platform's verifier).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(3))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("osprey/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(http_error)?;
        let mut request = http
            .get(&url)
            .header(reqwest::header::ACCEPT, OCI_IMAGE_MEDIA_TYPE);
        request = match (token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        };
        let mut response = request.send().await.map_err(http_error)?;
        let what = || "the manifest".to_owned();
        if !response.status().is_success() {
            let status = response.status();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(http_error)? {
                body.extend_from_slice(&chunk[..chunk.len().min(1024 - body.len().min(1024))]);
                if body.len() >= 1024 {
                    break;
                }
            }
            let body = String::from_utf8_lossy(&body).trim().to_owned();
            if matches!(status.as_u16(), 401 | 403) {
                return Err(OciError::SignIn {
                    reference: self.oci.text.clone(),
                    source: oci_client::errors::OciDistributionError::ServerError {
                        code: status.as_u16(),
                        url,
                        message: body,
                    },
                });
            }
            return Err(OciError::Status {
                reference: self.oci.text.clone(),
                status,
                body,
            });
        }
        if response.content_length().is_some_and(|n| n > max) {
            return Err(self.too_large(what(), max));
        }
        let named = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http_error)? {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(self.too_large(what(), max));
            }
            body.extend_from_slice(&chunk);
        }
        let digest = sha256_digest(&body);
        for expected in [r.digest().map(str::to_owned), named].into_iter().flatten() {
            if expected != digest {
                return Err(OciError::DigestMismatch {
                    reference: self.oci.text.clone(),
                    what: what(),
                    expected,
                    actual: digest,
                });
            }
        }
        let manifest = serde_json::from_slice(&body).map_err(|e| OciError::NotAPack {
            reference: self.oci.text.clone(),
            reason: format!("its manifest is not an OCI image manifest: {e}"),
        })?;
        Ok((manifest, digest))
    }

    /// One layer's bytes: no more than its descriptor's size, checked against its digest by
    /// oci-client as it streams.
    async fn layer(&self, planned: &Planned<'_>) -> Result<Vec<u8>, OciError> {
        let what = || format!("layer '{}' ({})", planned.name, planned.descriptor.digest);
        let mut stream = self
            .client
            .pull_blob_stream(&self.oci.reference, planned.descriptor)
            .await
            .map_err(|e| self.registry_error(e))?;
        let mut bytes = Vec::with_capacity(planned.size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| OciError::Blob {
                reference: self.oci.text.clone(),
                what: what(),
                source,
            })?;
            if (bytes.len() + chunk.len()) as u64 > planned.size {
                return Err(OciError::Longer {
                    reference: self.oci.text.clone(),
                    what: what(),
                    size: planned.size,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.len() as u64 != planned.size {
            return Err(OciError::Blob {
                reference: self.oci.text.clone(),
                what: what(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{} of {} bytes", bytes.len(), planned.size),
                ),
            });
        }
        Ok(bytes)
    }
}

/// Push `pack` to `oci` (which names a tag), its component being the file `component`.
/// Returns the manifest's digest: `oci.at_digest(digest)` pulls exactly this push.
pub async fn push(pack: &Pack, component: &str, oci: &OciRef, access: &Access) -> Result<String, OciError> {
    if oci.reference.digest().is_some() {
        return Err(OciError::BadReference {
            text: oci.text.clone(),
            reason: "a push names a tag (:TAG), not a digest".into(),
        });
    }
    let session = Session::new(oci, access)?;
    let files = layers_of(pack, component);
    if !files.iter().any(|(kind, ..)| *kind == Layer::Component) {
        return Err(OciError::NotAPack {
            reference: oci.text.clone(),
            reason: format!("the pack holds no component '{component}'"),
        });
    }
    let layers = image_layers(&files);
    // The wasm config names the component's layer; no timestamps, so the same pack pushes
    // the same manifest.
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layers[0].sha256_digest()],
    });
    let config = Config::new(
        serde_json::to_vec(&config).expect("JSON serializes"),
        WASM_CONFIG.to_owned(),
        None,
    );
    let m = pack.manifest();
    let manifest = OciImageManifest::build(
        &layers,
        &config,
        Some(BTreeMap::from([
            ("org.opencontainers.image.title".to_owned(), m.name.clone()),
            ("org.opencontainers.image.version".to_owned(), m.version.clone()),
        ])),
    );
    let manifest_bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let digest = sha256_digest(&manifest_bytes);
    let r = &oci.reference;
    session
        .client
        .auth(r, &session.auth, RegistryOperation::Push)
        .await
        .map_err(|e| session.registry_error(e))?;
    for (layer, descriptor) in layers.iter().zip(&manifest.layers) {
        session
            .client
            .push_blob(r, layer.data.clone(), &descriptor.digest)
            .await
            .map_err(|e| session.registry_error(e))?;
    }
    session
        .client
        .push_blob(r, config.data.clone(), &manifest.config.digest)
        .await
        .map_err(|e| session.registry_error(e))?;
    session
        .client
        .push_manifest_raw(
            r,
            manifest_bytes,
            http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
        )
        .await
        .map_err(|e| session.registry_error(e))?;
    Ok(digest)
}

/// Pull the pack at `oci` and check it as a pack file is checked (not its signature: the
/// caller judges that). Returns the pack and the manifest's digest.
pub async fn pull(oci: &OciRef, access: &Access, limits: &Limits) -> Result<(Pack, String), OciError> {
    let session = Session::new(oci, access)?;
    let (manifest, digest) = session.manifest(limits.entry_limit(MANIFEST)).await?;
    let planned = plan(&manifest, limits).map_err(|reason| OciError::NotAPack {
        reference: oci.text.clone(),
        reason,
    })?;
    let mut entries = BTreeMap::new();
    for p in &planned {
        entries.insert(p.name.clone(), session.layer(p).await?);
    }
    let pack = Pack::from_entries(entries).map_err(|source| OciError::Pack {
        reference: oci.text.clone(),
        source,
    })?;
    Ok((pack, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack() -> Pack {
        Pack::build(
            "echo",
            "0.1.0",
            vec![
                ("plugin.toml".into(), b"name = \"echo\"\n".to_vec()),
                ("echo.wasm".into(), vec![0, 97, 115, 109]),
                ("README.md".into(), b"# echo\n".to_vec()),
            ],
            &Limits::default(),
        )
        .unwrap()
    }

    /// The manifest `push` would make of `pack`.
    fn manifest_of(pack: &Pack) -> OciImageManifest {
        let layers = image_layers(&layers_of(pack, "echo.wasm"));
        OciImageManifest::build(
            &layers,
            &Config::new(b"{}".to_vec(), WASM_CONFIG.into(), None),
            None,
        )
    }

    #[test]
    fn references_name_a_host_a_repository_and_a_tag_or_digest() {
        let r = OciRef::parse("oci://127.0.0.1:5000/acme/ipinfo:0.1.0").unwrap();
        assert_eq!(r.reference.registry(), "127.0.0.1:5000");
        assert_eq!(r.reference.repository(), "acme/ipinfo");
        assert_eq!(r.reference.tag(), Some("0.1.0"));
        assert!(r.loopback);
        let digest = format!("sha256:{}", "ab".repeat(32));
        let r = OciRef::parse(&format!("oci://registry.example.com/ipinfo@{digest}")).unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));
        assert!(!r.loopback);
        assert_eq!(r.scheme(&Access::default()), "https");
        let insecure = Access {
            insecure: true,
            ..Access::default()
        };
        assert_eq!(r.scheme(&insecure), "http");
        assert_eq!(
            r.at_digest(&digest),
            format!("oci://registry.example.com/ipinfo@{digest}")
        );
        assert_eq!(
            OciRef::parse("oci://localhost:5000/x:1")
                .unwrap()
                .scheme(&Access::default()),
            "http"
        );
        for (text, says) in [
            ("registry.example.com/ipinfo:1", "oci://"),
            ("oci://registry.example.com", "no repository"),
            ("oci:///ipinfo:1", "no registry host"),
            ("oci://registry.example.com/ipinfo", "no tag"),
            ("oci://registry.example.com:5000/ipinfo", "no tag"),
            ("oci://registry.example.com/Bad Repo:1", "REPO"),
        ] {
            let e = OciRef::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn the_layout_osprey_pushes_plans_every_file_of_the_pack() {
        let mut p = pack();
        p.set_signature("sig".into(), Some("key".into())).unwrap();
        let m = manifest_of(&p);
        assert_eq!(m.layers[0].media_type, "application/wasm");
        let planned = plan(&m, &Limits::default()).unwrap();
        let names: Vec<&str> = planned.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "echo.wasm",
                MANIFEST,
                SIGNATURE,
                PUBLIC_KEY,
                "README.md",
                "plugin.toml"
            ]
        );
    }

    #[test]
    fn manifests_that_osprey_does_not_push_are_refused_before_any_blob() {
        let good = manifest_of(&pack());
        let refused = |change: &dyn Fn(&mut OciImageManifest), says: &str| {
            let mut m = good.clone();
            change(&mut m);
            let e = plan(&m, &Limits::default())
                .err()
                .unwrap_or_else(|| panic!("{says}: planned"));
            assert!(e.contains(says), "{says}: {e}");
        };
        refused(
            &|m| m.config.media_type = "application/vnd.oci.image.config.v1+json".into(),
            "its config is a",
        );
        refused(
            &|m| m.layers[2].media_type = "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            "which Osprey does not push",
        );
        refused(&|m| drop(m.layers.remove(0)), "0 layers of type application/wasm");
        refused(
            &|m| drop(m.layers.remove(1)),
            "0 layers of type application/vnd.osprey.pack.manifest",
        );
        refused(
            &|m| m.layers[2].annotations = None,
            "no org.opencontainers.image.title",
        );
        refused(
            &|m| m.layers[2].annotations = Some(BTreeMap::from([(TITLE.into(), SIGNATURE.into())])),
            "a name the pack keeps for itself",
        );
        refused(
            &|m| m.layers[2].annotations = Some(BTreeMap::from([(TITLE.into(), "plugin.toml".into())])),
            "holds 'plugin.toml' twice",
        );
        refused(&|m| m.layers[0].size = 1 << 40, "over the limit of 67108864");
        refused(&|m| m.layers[1].size = 70_000, "over the limit of 65536");
        refused(&|m| m.layers[0].size = -1, "negative size");
        refused(
            &|m| m.layers[0].urls = Some(vec!["https://elsewhere".into()]),
            "other URLs",
        );
        refused(
            &|m| {
                let extra = m.layers[3].clone();
                m.layers.extend(std::iter::repeat_n(extra, 20));
            },
            "a pack has at most 16",
        );
        let tight = Limits {
            max_entries: 16,
            max_file_bytes: 100,
            max_total_bytes: 10,
        };
        let e = plan(&good, &tight).err().unwrap();
        assert!(e.contains("add up to more than 10 bytes"), "{e}");
    }
}
