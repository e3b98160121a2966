//! A real Kubernetes control plane for tests: etcd and kube-apiserver on loopback ports, a kubeconfig for them,
//! and a TCP proxy to cut a client off the apiserver.
//!
//! The binaries: `$KUBE_APISERVER`, else `scripts/kube-apiserver` (builds the pinned release from the
//! `k8s.io/kubernetes` Go module into a cache, once per machine); `$ETCD`, else `scripts/etcd` (Debian's
//! `etcd-server`). Without them a local run skips the Kubernetes tests with a loud message; in CI (`CI=true`)
//! they fail instead.
//!
//! The apiserver runs with what a test needs and nothing more: RBAC authorization (the static admin token is in
//! `system:masters`, so it may do anything; a ServiceAccount's token gets what its roles grant), a service-account
//! key from `openssl` (TokenRequest works), its self-signed serving certificate in a temporary `--cert-dir`, and no
//! ServiceAccount admission (no controller-manager creates service accounts here). Everything is stopped when the
//! [`Cluster`] is dropped; a process outlives a killed test process only if `setpriv` is missing.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use e2e::{free_port, http_request, workspace_root};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const START_TIMEOUT: Duration = Duration::from_secs(90);
const TOKEN: &str = "pilotfish-test-token";
const LOG_LINES: usize = 60;

/// The binaries the cluster runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
}

/// The binaries, found or built once per test process; `None` (after a loud message) when they cannot be had
/// outside CI.
pub fn binaries() -> Result<Option<Binaries>> {
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    let found = BINARIES.get_or_init(|| locate().map_err(|e| format!("{e:#}"))).clone();
    match found {
        Ok(binaries) => Ok(Some(binaries)),
        Err(error) if in_ci() => bail!("the Kubernetes tests need kube-apiserver and etcd: {error}"),
        Err(error) => {
            static WARNED: OnceLock<()> = OnceLock::new();
            WARNED.get_or_init(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n**********\n** SKIPPING the Kubernetes tests: {error}\n** (with CI=true this fails)\n**********\n"
                );
            });
            Ok(None)
        }
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn locate() -> Result<Binaries> {
    let script = |name: &str, var: &str| -> Result<PathBuf> {
        if let Some(path) = std::env::var_os(var) {
            let path = PathBuf::from(path);
            ensure!(path.is_file(), "{var}={} is not a file", path.display());
            return Ok(path);
        }
        let script = workspace_root().join("scripts").join(name);
        let _ = writeln!(std::io::stderr(), "kubernetes tests: running {} (may build it once)", script.display());
        let output = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("could not run {}", script.display()))?;
        ensure!(
            output.status.success(),
            "{} failed ({}); set {var} to use a binary of yours",
            script.display(),
            output.status
        );
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        ensure!(path.is_file(), "{} printed {}, which is not a file", script.display(), path.display());
        Ok(path)
    };
    Ok(Binaries { kube_apiserver: script("kube-apiserver", "KUBE_APISERVER")?, etcd: script("etcd", "ETCD")? })
}

// === impl Process ===

/// A child process with its output in a file, killed when dropped.
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &str, program: &Path, args: &[String], log: PathBuf) -> Result<Process> {
        let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        // Killed with the test process if that dies without dropping us (setpriv: util-linux).
        let mut command = if Path::new("/usr/bin/setpriv").is_file() {
            let mut command = Command::new("/usr/bin/setpriv");
            command.args(["--pdeathsig", "KILL", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("could not start {}", program.display()))?;
        Ok(Process { name: name.to_owned(), child, log })
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status}):\n{}", self.name, self.log_tail())),
            _ => None,
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_LINES)..].join("\n")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

// === impl Cluster ===

/// etcd and kube-apiserver, on loopback, stopped on drop.
pub struct Cluster {
    binaries: Binaries,
    dir: TempDir,
    etcd: Process,
    etcd_addr: SocketAddr,
    apiserver: Option<Process>,
    apiserver_addr: SocketAddr,
    extra_args: Vec<String>,
    /// kube-apiserver starts so far, to name their logs.
    starts: u32,
}

impl Cluster {
    /// Starts a cluster with these kube-apiserver flags on top of the harness's, or returns `None` when the
    /// binaries cannot be had outside CI (see [`binaries`]).
    pub async fn start_with(extra_args: &[&str]) -> Result<Option<Cluster>> {
        let Some(binaries) = tokio::task::spawn_blocking(binaries).await?? else { return Ok(None) };
        let started = Instant::now();
        // etcd syncs every write: memory-backed storage keeps that fast.
        let dir = match Path::new("/dev/shm").is_dir() {
            true => tempfile::Builder::new().prefix("pilotfish-kube-").tempdir_in("/dev/shm")?,
            false => tempfile::Builder::new().prefix("pilotfish-kube-").tempdir()?,
        };
        let (client_port, peer_port) = (free_port(), free_port());
        let etcd_addr = SocketAddr::from(([127, 0, 0, 1], client_port));
        let client_url = format!("http://{etcd_addr}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args: Vec<String> = [
            "--name=test",
            &format!("--data-dir={}", dir.path().join("etcd").display()),
            &format!("--listen-client-urls={client_url}"),
            &format!("--advertise-client-urls={client_url}"),
            &format!("--listen-peer-urls={peer_url}"),
            &format!("--initial-advertise-peer-urls={peer_url}"),
            &format!("--initial-cluster=test={peer_url}"),
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut etcd = Process::spawn("etcd", &binaries.etcd, &etcd_args, dir.path().join("etcd.log"))?;
        wait_for_etcd(&mut etcd, etcd_addr).await?;

        openssl(&["genrsa", "-out", &dir.path().join("sa.key").display().to_string(), "2048"])?;
        fs::write(dir.path().join("tokens.csv"), format!("{TOKEN},admin,admin,system:masters\n"))?;
        let mut cluster = Cluster {
            binaries,
            dir,
            etcd,
            etcd_addr,
            apiserver: None,
            apiserver_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            starts: 0,
        };
        cluster.start_apiserver().await?;
        fs::write(cluster.kubeconfig_path(), cluster.kubeconfig(cluster.apiserver_addr))?;
        eprintln!("kubernetes tests: etcd and kube-apiserver ready in {:?}", started.elapsed());
        Ok(Some(cluster))
    }

    pub fn apiserver_addr(&self) -> SocketAddr {
        self.apiserver_addr
    }

    /// Starts kube-apiserver (again) on the same port and etcd, and waits until it is ready.
    pub async fn start_apiserver(&mut self) -> Result<()> {
        ensure!(self.apiserver.is_none(), "kube-apiserver is running already");
        let dir = self.dir.path();
        let key = dir.join("sa.key").display().to_string();
        let mut args: Vec<String> = vec![
            format!("--etcd-servers=http://{}", self.etcd_addr),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", self.apiserver_addr.port()),
            format!("--cert-dir={}", dir.join("certs").display()),
            "--service-cluster-ip-range=10.96.0.0/16".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!("--service-account-key-file={key}"),
            format!("--service-account-signing-key-file={key}"),
            format!("--token-auth-file={}", dir.join("tokens.csv").display()),
            "--authorization-mode=RBAC".to_owned(),
            "--disable-admission-plugins=ServiceAccount".to_owned(),
            "--enable-priority-and-fairness=false".to_owned(),
            "--profiling=false".to_owned(),
        ];
        args.extend(self.extra_args.iter().cloned());
        self.starts += 1;
        let log = dir.join(format!("kube-apiserver.{}.log", self.starts));
        let mut apiserver = Process::spawn("kube-apiserver", &self.binaries.kube_apiserver, &args, log)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = anyhow!("not tried");
        loop {
            if let Some(exited) = apiserver.exited() {
                bail!("{exited}");
            }
            match self.readyz().await {
                Ok(()) => break,
                Err(err) => last = err,
            }
            if Instant::now() >= deadline {
                bail!("kube-apiserver not ready after {START_TIMEOUT:?}: {last:#}\n{}", apiserver.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.apiserver = Some(apiserver);
        Ok(())
    }

    /// Kills kube-apiserver (etcd keeps running).
    pub fn stop_apiserver(&mut self) {
        if let Some(mut apiserver) = self.apiserver.take() {
            apiserver.stop();
        }
    }

    async fn readyz(&self) -> Result<()> {
        let client = self.client_via(self.apiserver_addr).await?;
        let request = http::Request::get("/readyz").body(Vec::new())?;
        let text = client.request_text(request).await?;
        ensure!(text.trim() == "ok", "/readyz: {text}");
        Ok(())
    }

    /// A kubeconfig for the apiserver at `server` (the apiserver itself, or a proxy in front of it).
    pub fn kubeconfig(&self, server: SocketAddr) -> String {
        self.kubeconfig_with_token(server, TOKEN)
    }

    /// A kubeconfig for the apiserver at `server` that authenticates with `token` (e.g. a ServiceAccount's).
    pub fn kubeconfig_with_token(&self, server: SocketAddr, token: &str) -> String {
        let ca = self.dir.path().join("certs").join("apiserver.crt");
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: test, cluster: {{server: 'https://{server}', certificate-authority: '{}'}}}}]\n\
             users: [{{name: admin, user: {{token: '{token}'}}}}]\n\
             contexts: [{{name: test, context: {{cluster: test, user: admin}}}}]\n\
             current-context: test\n",
            ca.display()
        )
    }

    /// The kubeconfig file for the apiserver, as `KUBECONFIG` would name it.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A client configured from [`Cluster::kubeconfig_path`], as kube reads `KUBECONFIG`.
    pub async fn client(&self) -> Result<Client> {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig_path())?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// A client that authenticates with `token` instead of the admin's.
    pub async fn client_with_token(&self, token: &str) -> Result<Client> {
        let kubeconfig = Kubeconfig::from_yaml(&self.kubeconfig_with_token(self.apiserver_addr, token))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// A client reaching the apiserver through `server` (e.g. a [`Proxy`]).
    pub async fn client_via(&self, server: SocketAddr) -> Result<Client> {
        let kubeconfig = Kubeconfig::from_yaml(&self.kubeconfig(server))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// Compacts etcd's history up to its current revision, so a watch from any older resourceVersion gets
    /// 410 Gone. Returns the revision.
    pub async fn compact_etcd(&self) -> Result<i64> {
        let header = [("content-type", "application/json")];
        let reply =
            http_request("POST", self.etcd_addr, "127.0.0.1", "/v3/kv/range", &header, r#"{"key":"AA=="}"#).await?;
        let range: serde_json::Value = serde_json::from_str(&reply.body).context("etcd range reply")?;
        let revision: i64 = range["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .with_context(|| format!("no revision in {}", reply.body))?;
        let body = format!(r#"{{"revision":"{revision}","physical":true}}"#);
        let reply = http_request("POST", self.etcd_addr, "127.0.0.1", "/v3/kv/compaction", &header, &body).await?;
        ensure!(reply.status == 200, "etcd compaction: {} {}", reply.status, reply.body);
        Ok(revision)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for process in self.apiserver.iter().chain([&self.etcd]) {
                eprintln!(
                    "===== {} (test panicked): last {LOG_LINES} lines =====\n{}",
                    process.name,
                    process.log_tail()
                );
            }
        }
        self.stop_apiserver();
        self.etcd.stop();
    }
}

async fn wait_for_etcd(etcd: &mut Process, addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(exited) = etcd.exited() {
            bail!("{exited}");
        }
        if let Ok(reply) = http_request("GET", addr, "127.0.0.1", "/health", &[], "").await
            && reply.body.contains("true")
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("etcd not healthy after {START_TIMEOUT:?}:\n{}", etcd.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn openssl(args: &[&str]) -> Result<()> {
    let output = Command::new("openssl").args(args).output().context("could not run openssl")?;
    ensure!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

/// Creates the CustomResourceDefinitions `pilotfish crds` prints and waits until the apiserver serves them.
pub async fn install_crds(client: &Client, only: &[&str]) -> Result<()> {
    let text = controlplane::crds::yaml()?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let crd: CustomResourceDefinition = serde::Deserialize::deserialize(document)?;
        if !only.is_empty() && !only.contains(&crd.spec.names.kind.as_str()) {
            continue;
        }
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &crd).await.with_context(|| format!("creating CRD {name}"))?;
        names.push(name);
    }
    for name in names {
        e2e::eventually(Duration::from_secs(30), &format!("CRD {name} established"), || async {
            let crd = api.get(&name).await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            ensure!(established, "not established yet");
            Ok(())
        })
        .await?;
    }
    Ok(())
}

// === impl Proxy ===

/// A TCP proxy to the apiserver that can cut every connection through it, and refuse new ones until restored.
pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let open = Arc::new(watch::channel(true).0);
        let task = tokio::spawn({
            let open = Arc::clone(&open);
            async move {
                while let Ok((mut downstream, _)) = listener.accept().await {
                    let mut is_open = open.subscribe();
                    if !*is_open.borrow_and_update() {
                        continue; // dropped: connection refused, in effect
                    }
                    tokio::spawn(async move {
                        let Ok(mut upstream) = TcpStream::connect(target).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream) => {}
                            _ = is_open.wait_for(|open| !*open) => {}
                        }
                    });
                }
            }
        });
        Ok(Proxy { addr, open, task })
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}
