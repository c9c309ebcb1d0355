//! Which PostgreSQL server, and how to reach it: a `postgres://` URL (config.yaml's
//! `backend.url`, or `CHECKLIST_DATABASE_URL`) completed the way libpq completes it —
//! the `PG*` environment variables for what the URL leaves out, the password file for a
//! password — and TLS through rustls with libpq's `sslmode` semantics
//! (docs/decisions/0022-postgres-backend.md).
//!
//! A password is used to connect and never shown: [`Server::display`] and
//! [`Server::url_without_password`] leave it out, and so does every message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{SslMode as WireSslMode, TargetSessionAttrs};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a connection attempt may take when neither the URL nor `PGCONNECT_TIMEOUT`
/// says (libpq waits forever; a command that hangs on a dead server helps nobody).
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// libpq's `sslmode`, all six of them (tokio-postgres knows three; verification is the
/// connector's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// No TLS.
    Disable,
    /// Plain first, TLS if the server insists (treated as `prefer`: tokio-postgres
    /// cannot retry the other way round).
    Allow,
    /// TLS if the server offers it, without verifying it unless a root certificate is
    /// given.
    Prefer,
    /// TLS, without verifying the server unless a root certificate is given.
    Require,
    /// TLS, the server's certificate chain checked against the root certificate.
    VerifyCa,
    /// TLS, the chain checked and the host name matched.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

/// Where the connection settings come from besides the URL: the process environment
/// in the product, a map in tests.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for [`Server::resolve`].
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// A server to connect to, resolved: the connection settings with the password, the
/// TLS connector, and the forms that may be shown.
#[derive(Clone)]
pub(crate) struct Server {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    ssl_mode: SslMode,
    display: String,
    url_without_password: String,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("server", &self.display)
            .field("sslmode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

/// What a `postgres://` URL says, decoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Url {
    user: Option<String>,
    password: Option<String>,
    /// `(host, port)` pairs; either may be empty.
    hosts: Vec<(Option<String>, Option<u16>)>,
    dbname: Option<String>,
    params: Vec<(String, String)>,
}

impl Url {
    fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or_else(|| "it does not start with postgres:// or postgresql://".to_owned())?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        let mut parsed = Self::default();
        let hosts = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                parsed.user = Some(decode(user, "the user name")?).filter(|u| !u.is_empty());
                parsed.password = password.map(|p| decode(p, "the password")).transpose()?;
                hosts
            }
            None => authority,
        };
        if !hosts.is_empty() {
            for host in hosts.split(',') {
                parsed.hosts.push(parse_host(host)?);
            }
        }
        parsed.dbname = Some(decode(path, "the database name")?).filter(|d| !d.is_empty());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            parsed
                .params
                .push((decode(key, "a parameter")?, decode(value, "a parameter")?));
        }
        Ok(parsed)
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn decode(text: &str, what: &str) -> Result<String, String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{what} is not UTF-8 once percent-decoded"))
}

fn parse_host(spec: &str) -> Result<(Option<String>, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = spec.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("the host {spec:?} opens a bracket it does not close"))?;
        (host.to_owned(), after.strip_prefix(':'))
    } else {
        match spec.rsplit_once(':') {
            Some((host, port)) => (decode(host, "a host")?, Some(port)),
            None => (decode(spec, "a host")?, None),
        }
    };
    let port = match port.filter(|p| !p.is_empty()) {
        Some(port) => Some(
            port.parse::<u16>()
                .map_err(|_| format!("the port {port:?} is not a number from 1 to 65535"))?,
        ),
        None => None,
    };
    Ok((Some(host).filter(|h| !h.is_empty()), port))
}

/// The URL's parameters this module understands; anything else is refused by name,
/// as libpq refuses an unknown keyword.
const KNOWN_PARAMS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "connect_timeout",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "options",
    "passfile",
];

impl Server {
    /// Resolves `url` (`None`: the environment alone) as libpq would: the URL first, then
    /// `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGSSLMODE`,
    /// `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`,
    /// `PGTARGETSESSIONATTRS`, then the password file (`PGPASSFILE`, else
    /// `~/.pgpass`), then the defaults (a local socket, port 5432, the OS user).
    ///
    /// # Errors
    /// One sentence saying what in the URL or the environment is wrong; it never
    /// contains the password.
    pub(crate) fn resolve(url: Option<&str>, env: Env<'_>, application_name: &str) -> Result<Self, String> {
        let parsed = match url {
            Some(url) => Url::parse(url).map_err(|why| format!("the database URL is not valid: {why}"))?,
            None => Url::default(),
        };
        for (key, _) in &parsed.params {
            if !KNOWN_PARAMS.contains(&key.as_str()) {
                return Err(format!(
                    "the database URL has the parameter {key:?}, which is not one this client understands ({})",
                    KNOWN_PARAMS.join(", ")
                ));
            }
        }
        let setting = |param: &str, var: &str| parsed.param(param).map(str::to_owned).or_else(|| env(var));
        let mut config = tokio_postgres::Config::new();

        // Hosts and ports: the URL's authority, its `host`/`port` parameters, PGHOST/PGPORT.
        let mut hosts: Vec<String> = parsed.hosts.iter().filter_map(|(h, _)| h.clone()).collect();
        if hosts.is_empty()
            && let Some(list) = setting("host", "PGHOST")
        {
            hosts = list.split(',').map(str::to_owned).collect();
        }
        if hosts.is_empty() {
            hosts.push(default_host());
        }
        let mut ports: Vec<u16> = parsed.hosts.iter().filter_map(|(_, p)| *p).collect();
        if ports.is_empty()
            && let Some(list) = setting("port", "PGPORT")
        {
            for port in list.split(',') {
                ports.push(
                    port.parse()
                        .map_err(|_| format!("the port {port:?} is not a number from 1 to 65535"))?,
                );
            }
        }
        if ports.is_empty() {
            ports.push(5432);
        }
        if ports.len() != 1 && ports.len() != hosts.len() {
            return Err(format!(
                "the database URL names {} hosts but {} ports; give one port, or one per host",
                hosts.len(),
                ports.len()
            ));
        }
        for host in &hosts {
            if host.starts_with('/') {
                #[cfg(unix)]
                config.host_path(host);
                #[cfg(not(unix))]
                return Err(format!(
                    "the host {host:?} is a Unix socket directory, which this platform has not"
                ));
            } else {
                config.host(host);
            }
        }
        for port in &ports {
            config.port(*port);
        }
        let user = parsed
            .user
            .clone()
            .or_else(|| setting("user", "PGUSER"))
            .unwrap_or_else(os_user);
        config.user(&user);
        let dbname = parsed
            .dbname
            .clone()
            .or_else(|| setting("dbname", "PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        config.dbname(&dbname);
        config.application_name(
            setting("application_name", "PGAPPNAME").unwrap_or_else(|| application_name.to_owned()),
        );
        if let Some(options) = parsed.param("options") {
            config.options(options);
        }
        let connect_timeout = match setting("connect_timeout", "PGCONNECT_TIMEOUT") {
            Some(seconds) => Duration::from_secs(
                seconds
                    .parse::<u64>()
                    .map_err(|_| format!("connect_timeout {seconds:?} is not a number of seconds"))?
                    .max(2),
            ),
            None => DEFAULT_CONNECT_TIMEOUT,
        };
        config.connect_timeout(connect_timeout);
        // A server that vanishes without closing the socket (a partition, a half-open
        // connection) is noticed by the kernel rather than waited for forever.
        config.keepalives(true);
        config.keepalives_idle(seconds_param(&parsed, "keepalives_idle")?.unwrap_or(Duration::from_secs(15)));
        config.keepalives_interval(
            seconds_param(&parsed, "keepalives_interval")?.unwrap_or(Duration::from_secs(5)),
        );
        if let Some(count) = parsed.param("keepalives_count") {
            config.keepalives_retries(
                count
                    .parse()
                    .map_err(|_| format!("keepalives_count {count:?} is not a number"))?,
            );
        } else {
            config.keepalives_retries(3);
        }
        if parsed.param("keepalives") == Some("0") {
            config.keepalives(false);
        }
        config
            .tcp_user_timeout(seconds_param(&parsed, "tcp_user_timeout")?.unwrap_or(Duration::from_secs(30)));
        if let Some(attrs) = setting("target_session_attrs", "PGTARGETSESSIONATTRS") {
            config.target_session_attrs(match attrs.as_str() {
                "any" => TargetSessionAttrs::Any,
                "read-write" => TargetSessionAttrs::ReadWrite,
                "read-only" => TargetSessionAttrs::ReadOnly,
                other => {
                    return Err(format!(
                        "target_session_attrs {other:?} is not one of any, read-write, read-only"
                    ));
                }
            });
        }

        let password = parsed
            .password
            .clone()
            .or_else(|| parsed.param("password").map(str::to_owned))
            .or_else(|| env("PGPASSWORD"))
            .or_else(|| {
                let file = parsed
                    .param("passfile")
                    .map(PathBuf::from)
                    .or_else(|| env("PGPASSFILE").map(PathBuf::from))
                    .or_else(|| home_dir().map(|home| home.join(".pgpass")))?;
                pgpass_password(&file, &hosts[0], ports[0], &dbname, &user)
            });
        if let Some(password) = &password {
            config.password(password.as_bytes());
        }

        let ssl_mode =
            SslMode::parse(&setting("sslmode", "PGSSLMODE").unwrap_or_else(|| "prefer".to_owned()))?;
        let root = setting("sslrootcert", "PGSSLROOTCERT")
            .map(PathBuf::from)
            .or_else(|| default_client_file("root.crt"));
        let client_cert = setting("sslcert", "PGSSLCERT")
            .map(PathBuf::from)
            .or_else(|| default_client_file("postgresql.crt"));
        let client_key = setting("sslkey", "PGSSLKEY")
            .map(PathBuf::from)
            .or_else(|| default_client_file("postgresql.key"));
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => WireSslMode::Disable,
            SslMode::Allow | SslMode::Prefer => WireSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireSslMode::Require,
        });
        let tls = tls_connector(
            ssl_mode,
            root.as_deref(),
            client_cert.as_deref(),
            client_key.as_deref(),
        )?;

        let host_list = hosts
            .iter()
            .zip(ports.iter().cycle())
            .map(|(host, port)| {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        let display = format!("postgres://{user}@{host_list}/{dbname}");
        let url_without_password = match url {
            Some(url) => strip_password(url),
            None => display.clone(),
        };
        Ok(Self {
            config,
            tls,
            ssl_mode,
            display,
            url_without_password,
        })
    }

    /// The server as messages name it: `postgres://user@host:port/db`, never a password.
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// The URL as given, with any password removed: what config.yaml keeps.
    pub(crate) fn url_without_password(&self) -> &str {
        &self.url_without_password
    }

    /// The connection settings, password included, for connecting.
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector for [`config`](Self::config)'s `sslmode`.
    pub(crate) fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }
}

fn seconds_param(url: &Url, key: &str) -> Result<Option<Duration>, String> {
    url.param(key)
        .map(|value| {
            value
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| format!("{key} {value:?} is not a number of seconds"))
        })
        .transpose()
}

/// libpq's default host: the first Unix socket directory Debian and the upstream
/// builds use that exists, else `localhost`.
fn default_host() -> String {
    ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|dir| Path::new(dir).is_dir() && cfg!(unix))
        .map_or_else(|| "localhost".to_owned(), str::to_owned)
}

fn os_user() -> String {
    whoami_user().unwrap_or_else(|| "postgres".to_owned())
}

fn whoami_user() -> Option<String> {
    process_env("USER").or_else(|| process_env("USERNAME"))
}

fn home_dir() -> Option<PathBuf> {
    process_env("HOME")
        .or_else(|| process_env("USERPROFILE"))
        .map(PathBuf::from)
}

/// `~/.postgresql/<name>` when it exists: libpq's default place for the root and
/// client certificates.
fn default_client_file(name: &str) -> Option<PathBuf> {
    let path = home_dir()?.join(".postgresql").join(name);
    path.is_file().then_some(path)
}

/// `url` with the password left out of its user info and its parameters.
pub(crate) fn strip_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (before_query, None),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{user}@{hosts}")
        }
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}");
    if let Some(path) = path {
        out.push('/');
        out.push_str(path);
    }
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.starts_with("password=") && !pair.is_empty())
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

/// The password the password file gives `host:port:dbname:user` (`*` matches
/// anything; `\:` and `\\` are a literal colon and backslash), as libpq reads it: a
/// file others can read is ignored, with a warning.
fn pgpass_password(file: &Path, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(file).ok()?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %file.display(),
                "the password file can be read by others, so it is ignored (chmod 0600 it)"
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(file).ok()?;
    // libpq matches a socket host as `localhost`.
    let host = if host.starts_with('/') { "localhost" } else { host };
    let port = port.to_string();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .find_map(|line| {
            let fields = split_pgpass_line(line);
            let [h, p, d, u, password] = fields.as_slice() else {
                return None;
            };
            let matches = |pattern: &String, value: &str| pattern == "*" || pattern == value;
            (matches(h, host) && matches(p, &port) && matches(d, dbname) && matches(u, user))
                .then(|| password.clone())
        })
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field at least").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field at least").push(c),
        }
    }
    fields
}

/// The rustls connector for `mode`: verification where libpq verifies (`verify-ca`,
/// `verify-full`, and `require`/`prefer` when a root certificate is there), a client
/// certificate when both its files are given.
fn tls_connector(
    mode: SslMode,
    root: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
) -> Result<MakeRustlsConnect, String> {
    // ring, not aws-lc-rs: it builds without CMake or a C toolchain beyond cc
    // (docs/decisions/0022-postgres-backend.md). rustls deprecates it for lacking
    // post-quantum key exchange, which only matters against a server that offers one.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS could not be set up: {e}"))?;
    let roots = match root {
        Some(path) => Some(load_roots(path)?),
        None if mode.verifies() => {
            return Err(
                "sslmode verify-ca and verify-full need the server's root certificate: set sslrootcert in the \
                 database URL or PGSSLROOTCERT (libpq also reads ~/.postgresql/root.crt)"
                    .to_owned(),
            );
        }
        None => None,
    };
    let webpki = roots
        .map(|roots| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| format!("the root certificate cannot verify servers: {e}"))
        })
        .transpose()?;
    let verifier: Arc<dyn ServerCertVerifier> = Arc::new(Verifier {
        webpki,
        check_name: mode == SslMode::VerifyFull,
        provider,
    });
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let config = match (client_cert, client_key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| format!("the client certificate {} cannot be read: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("the client key {} cannot be read: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("the client certificate and key do not go together: {e}"))?
        }
        (Some(cert), None) => {
            return Err(format!(
                "the client certificate {} has no key: set sslkey or PGSSLKEY",
                cert.display()
            ));
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("the root certificate {} cannot be read: {e}", path.display()))?;
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{} holds no usable root certificate", path.display()));
    }
    Ok(roots)
}

/// Verifies the chain against the root certificate, when there is one, and the host
/// name too for `verify-full`, not for `verify-ca` (libpq's difference between them).
/// Without a root certificate (`require`, `prefer`) the connection is encrypted but
/// the server not authenticated, exactly libpq's behaviour; the handshake's signatures
/// are checked either way.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn a_url_is_parsed_and_the_environment_fills_the_rest() {
        let env = env_of(&[
            ("PGPORT", "6000"),
            ("PGDATABASE", "ignored"),
            ("PGSSLMODE", "disable"),
        ]);
        let server =
            Server::resolve(Some("postgres://ann:s%40cret@db.example:5433/team"), &env, "t").unwrap();
        assert_eq!(server.display(), "postgres://ann@db.example:5433/team");
        assert_eq!(server.config().get_password(), Some(&b"s@cret"[..]));
        assert_eq!(
            server.url_without_password(),
            "postgres://ann@db.example:5433/team"
        );
        assert!(!format!("{server:?}").contains("cret"));

        let server =
            Server::resolve(Some("postgresql://db.example/team?sslmode=disable"), &env, "t").unwrap();
        assert_eq!(server.config().get_ports(), [6000]);
        let env = env_of(&[
            ("PGHOST", "h1"),
            ("PGUSER", "bo"),
            ("PGPASSWORD", "pw"),
            ("PGSSLMODE", "disable"),
        ]);
        let server = Server::resolve(None, &env, "t").unwrap();
        assert_eq!(server.display(), "postgres://bo@h1:5432/bo");
        assert_eq!(server.config().get_password(), Some(&b"pw"[..]));
    }

    #[test]
    fn passwords_never_reach_the_forms_that_are_shown() {
        for url in [
            "postgres://u:hunter2@h/db",
            "postgres://u@h/db?password=hunter2&sslmode=disable",
            "postgres://u:hunter2@h1:1,h2:2/db?sslmode=disable",
        ] {
            let server = Server::resolve(Some(url), &env_of(&[]), "t").unwrap();
            assert!(!server.url_without_password().contains("hunter2"), "{url}");
            assert!(!server.display().contains("hunter2"), "{url}");
        }
        assert_eq!(
            strip_password("postgres://u:p@h/db?sslmode=disable&password=p"),
            "postgres://u@h/db?sslmode=disable"
        );
    }

    #[test]
    fn bad_urls_and_settings_are_refused_by_name() {
        let env = env_of(&[]);
        for (url, says) in [
            ("mysql://h/db", "postgres://"),
            ("postgres://h:99999/db", "port"),
            ("postgres://h/db?frobnicate=1", "frobnicate"),
            ("postgres://h/db?sslmode=sometimes", "sslmode"),
            ("postgres://h/db?sslmode=verify-full", "root certificate"),
        ] {
            let error = Server::resolve(Some(url), &env, "t").unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
        }
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:nope\nh:*:db:u\\:x:colon\nh:5432:*:u:right\n*:*:*:*:fallback\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(
            pgpass_password(&file, "h", 5432, "db", "u").as_deref(),
            Some("right")
        );
        assert_eq!(
            pgpass_password(&file, "h", 5432, "db", "u:x").as_deref(),
            Some("colon")
        );
        assert_eq!(
            pgpass_password(&file, "z", 1, "d", "v").as_deref(),
            Some("fallback")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(
                pgpass_password(&file, "h", 5432, "db", "u"),
                None,
                "a readable file is ignored"
            );
        }
    }

    #[test]
    fn hosts_ipv6_and_several_of_them() {
        let env = env_of(&[("PGSSLMODE", "disable")]);
        let server = Server::resolve(Some("postgres://u@[::1]:5433,h2:5434/db"), &env, "t").unwrap();
        assert_eq!(server.display(), "postgres://u@[::1]:5433,h2:5434/db");
        assert_eq!(server.config().get_ports(), [5433, 5434]);
    }
}
