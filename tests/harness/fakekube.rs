//! A small fake Kubernetes API server for discovery and port-forward tests.
//!
//! No Kubernetes API server can be installed on this machine, so the tests serve what the
//! plugins ask of one from this in-process HTTP/1.1 server, shaped exactly like a real cluster's:
//!
//! - `GET /api/v1/namespaces/{ns}/pods?labelSelector=…` and `GET /api/v1/nodes?labelSelector=…`:
//!   kubeadm's etcd mirror pods with their annotations; RKE1/k3s nodes with the
//!   `node-role.kubernetes.io/etcd` label. The equality label selector is applied as the API
//!   server applies it.
//! - `GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=P` upgraded to a WebSocket, as
//!   the API server proxies it to kubelet's streaming server: RFC 6455 handshake
//!   (`Sec-WebSocket-Accept`), subprotocol `v4.channel.k8s.io` chosen from the client's offer,
//!   binary frames whose first byte is the channel (port i: data `2i`, errors `2i+1`), each
//!   channel opened by the port number as two little-endian bytes, as kubelet's
//!   `portforward/websocket.go` writes them. kubelet dials the port in the pod's network
//!   namespace when the stream opens; kubeadm's etcd pods use the host network, so here that is
//!   `127.0.0.1:P`. A refused dial is reported on the error channel in containerd's words and
//!   the socket closed; otherwise bytes are relayed both ways until either side closes.
//!   Client frames must be masked (RFC 6455 §5.3); pings are answered.
//! - `GET`, `POST` and `PUT` of namespaced `serviceaccounts` (core v1) and `cronjobs`
//!   (batch/v1), as the API server stores objects: `POST` of an existing name is 409
//!   `AlreadyExists`, `PUT` needs the stored `metadata.resourceVersion` (422 without it, 409
//!   `Conflict` when stale), each write bumps it; `GET` of a missing name is 404 `NotFound`.
//! - `GET /api/v1/namespaces/{ns}/pods/{name}/log?container=&previous=&sinceSeconds=&limitBytes=
//!   &tailLines=&timestamps=`, as the API server validates it (`PodLogOptions`: 422 `Invalid` for
//!   `sinceSeconds`/`limitBytes` < 1, `tailLines` < 0; 400 `container X is not valid for pod Y`)
//!   and kubelet serves it from the container status of the pod's kubelet emulation
//!   ([`FakeKube::serve_logs`]; `kubelet_pods.go` `validateContainerLogStatus` and
//!   `kuberuntime/logs`): `previous=true` is the last terminated container's log, else the
//!   running container's, else (waiting in back-off) the last terminated one's; 400 `previous
//!   terminated container "etcd" in pod "P" not found` / `container "etcd" in pod "P" is waiting
//!   to start: ContainerCreating` otherwise, passed on by the API server as `BadRequest`. Only
//!   the container's live log file is read (kubelet reads no rotated part); CRI lines are
//!   unwrapped, `P` parts joined, lines older than `sinceSeconds` skipped, `timestamps=true`
//!   prefixes each with its time, and the body is cut at `limitBytes`. `text/plain`.
//! - 401 without the kubeconfig's bearer token, as an API server without anonymous access;
//!   403 `Status` objects, as RBAC returns them, when [`Behaviour::forbid_portforward`] is set;
//!   404 for anything else.
//!
//! Every request is recorded so tests can check what was asked; [`Behaviour::cut_after`]
//! breaks tunnels mid-stream (the socket dropped, no close frame), as a network failure does;
//! [`Behaviour::endless_pod_list`] and [`Behaviour::pod_list_padding`] make pod lists endless
//! or long.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// What the fake does besides answering (changeable while it runs).
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Answer every port-forward with RBAC's 403.
    pub forbid_portforward: AtomicBool,
    /// Break each tunnel once this many bytes have come from the pod (0: never).
    pub cut_after: AtomicU64,
    /// Answer the etcd pod list without end: the pods again and again, chunked, until the
    /// client goes (an API server gone wrong, or a hostile one).
    pub endless_pod_list: AtomicBool,
    /// Add this many small pods (`{"metadata":{"name":"pad-N"}}`) to every pod list.
    pub pod_list_padding: AtomicU64,
    /// Answer every `pods/log` with RBAC's 403.
    pub forbid_log: AtomicBool,
}

/// Container statuses by `namespace/pod`, from the kubelet emulations.
type Statuses = Mutex<std::collections::BTreeMap<String, Arc<Mutex<crate::kubelet::ContainerStatus>>>>;

/// A running fake API server.
pub struct FakeKube {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Requests seen (`METHOD path?query`).
    pub requests: Arc<Mutex<Vec<String>>>,
    /// Knobs for failure tests.
    pub behaviour: Arc<Behaviour>,
    pods: Arc<Mutex<Vec<Value>>>,
    /// Stored objects by `collection path/name` (`apis/batch/v1/namespaces/ns/cronjobs/x`).
    pub objects: Arc<Mutex<std::collections::BTreeMap<String, Value>>>,
    statuses: Arc<Statuses>,
}

fn matches(labels: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let term = term.trim();
        if let Some((k, v)) = term.split_once('=') {
            labels.get(k.trim_end_matches('=')).and_then(|x| x.as_str()) == Some(v)
        } else {
            labels.get(term).is_some()
        }
    })
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn status(code: u16, reason: &str, message: &str) -> (String, String) {
    let line = match code {
        401 => "401 Unauthorized",
        403 => "403 Forbidden",
        404 => "404 Not Found",
        405 => "405 Method Not Allowed",
        409 => "409 Conflict",
        422 => "422 Unprocessable Entity",
        500 => "500 Internal Server Error",
        _ => "400 Bad Request",
    };
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    (line.to_string(), body.to_string())
}

/// One WebSocket frame from the client: (opcode, unmasked payload); `None` at EOF or on a
/// protocol error.
fn read_frame(r: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).ok()?;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let mut len = (h[1] & 0x7f) as u64;
    if len == 126 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b).ok()?;
        len = u16::from_be_bytes(b) as u64;
    } else if len == 127 {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).ok()?;
        len = u64::from_be_bytes(b);
    }
    if !masked || len > 16 << 20 {
        return None; // RFC 6455: a server must close on an unmasked client frame.
    }
    let mut key = [0u8; 4];
    r.read_exact(&mut key).ok()?;
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).ok()?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
    Some((opcode, payload))
}

/// Writes one unmasked server frame.
fn write_frame(w: &Mutex<TcpStream>, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n < 65536 => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    w.lock().unwrap().write_all(&f)
}

/// The upgraded port-forward stream to `port` of `pod`, played as kubelet plays it.
fn port_forward(client: TcpStream, pod: &str, port: u16, behaviour: &Behaviour) {
    let writer = Arc::new(Mutex::new(client.try_clone().unwrap()));
    let mut reader = client;
    let p = port.to_le_bytes();
    // Both channels of the port open with its number.
    let _ = write_frame(&writer, 2, &[0, p[0], p[1]]);
    let _ = write_frame(&writer, 2, &[1, p[0], p[1]]);
    let target = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(t) => t,
        Err(e) => {
            let msg = format!(
                "error forwarding port {port} to pod {pod}, uid : failed to connect to localhost:{port} inside namespace \"{pod}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: {}",
                if e.kind() == std::io::ErrorKind::ConnectionRefused { "connection refused".to_string() } else { e.to_string() }
            );
            let mut frame = vec![1u8];
            frame.extend_from_slice(msg.as_bytes());
            let _ = write_frame(&writer, 2, &frame);
            let _ = write_frame(&writer, 8, &[]);
            return;
        }
    };
    let _ = target.set_nodelay(true);
    let cut_after = behaviour.cut_after.load(Ordering::SeqCst);
    let mut from_pod = target.try_clone().unwrap();
    let to_client = writer.clone();
    let raw = reader.try_clone().unwrap();
    let pump = std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        let mut sent = 0u64;
        loop {
            let n = match from_pod.read(&mut buf[1..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf[0] = 0;
            if write_frame(&to_client, 2, &buf[..n + 1]).is_err() {
                break;
            }
            sent += n as u64;
            if cut_after > 0 && sent >= cut_after {
                // A broken network: the socket goes, no close frame.
                let _ = raw.shutdown(Shutdown::Both);
                let _ = from_pod.shutdown(Shutdown::Both);
                return;
            }
        }
        let _ = write_frame(&to_client, 8, &[]);
    });
    let mut to_pod = target;
    while let Some((opcode, payload)) = read_frame(&mut reader) {
        match opcode {
            2 | 0 if payload.first() == Some(&0) && to_pod.write_all(&payload[1..]).is_err() => break,
            8 => {
                let _ = write_frame(&writer, 8, &[]);
                break;
            }
            9 => {
                let _ = write_frame(&writer, 10, &payload);
            }
            _ => {}
        }
    }
    let _ = to_pod.shutdown(Shutdown::Both);
    let _ = pump.join();
    let _ = reader.shutdown(Shutdown::Both);
}

impl FakeKube {
    /// Serves `pods` (in their namespaces) and `nodes` until the test process ends.
    pub fn start(pods: Vec<Value>, nodes: Vec<Value>) -> FakeKube {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Behaviour::default());
        let (seen, knobs) = (requests.clone(), behaviour.clone());
        let (pods, nodes) = (Arc::new(Mutex::new(pods)), Arc::new(nodes));
        let objects = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        let (served, stored) = (pods.clone(), objects.clone());
        let statuses: Arc<Statuses> = Arc::default();
        let kubelets = statuses.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, knobs, pods, nodes, stored, kubelets) =
                    (seen.clone(), knobs.clone(), served.clone(), nodes.clone(), stored.clone(), kubelets.clone());
                std::thread::spawn(move || {
                    let pods = pods.lock().unwrap().clone();
                    serve(stream, &seen, &knobs, &pods, &nodes, &stored, &kubelets)
                });
            }
        });
        FakeKube { url, requests, behaviour, pods, objects, statuses }
    }

    /// `pods/log` of `namespace/pod` is served from this kubelet emulation's container status
    /// (see [`crate::Cluster::container_status`]).
    pub fn serve_logs(&self, pod: &str, status: Arc<Mutex<crate::kubelet::ContainerStatus>>) {
        self.statuses.lock().unwrap().insert(pod.to_string(), status);
    }

    /// The `pods/log` requests seen (`path?query`), in order.
    pub fn log_requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| r.split_whitespace().nth(1))
            .filter(|t| t.split('?').next().is_some_and(|p| p.ends_with("/log")))
            .map(String::from)
            .collect()
    }

    /// A pod appears (kubelet on a new node started its static pod).
    pub fn add_pod(&self, pod: Value) {
        self.pods.lock().unwrap().push(pod);
    }

    /// The port-forward requests seen (`pod:ports`), in order.
    pub fn port_forwards(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| {
                let path = r.split_whitespace().nth(1)?;
                let (path, query) = path.split_once('?').unwrap_or((path, ""));
                let pod = path.strip_suffix("/portforward")?.rsplit('/').next()?;
                let ports = query.split('&').find_map(|kv| kv.strip_prefix("ports=")).map(decode).unwrap_or_default();
                Some(format!("{pod}:{ports}"))
            })
            .collect()
    }
}

/// The API server's handling of a stored object: `GET` one, `POST` to the collection, `PUT` one.
fn store(
    objects: &Mutex<std::collections::BTreeMap<String, Value>>,
    method: &str,
    collection: &str,
    name: Option<&str>,
    body: &[u8],
) -> Result<Value, (String, String)> {
    let mut objects = objects.lock().unwrap();
    let parsed = || serde_json::from_slice::<Value>(body).map_err(|e| status(400, "BadRequest", &e.to_string()));
    match (method, name) {
        ("GET", Some(n)) => objects
            .get(&format!("{collection}/{n}"))
            .cloned()
            .ok_or_else(|| status(404, "NotFound", &format!("{collection} \"{n}\" not found"))),
        ("POST", None) => {
            let mut obj = parsed()?;
            let n = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let key = format!("{collection}/{n}");
            if objects.contains_key(&key) {
                return Err(status(409, "AlreadyExists", &format!("{collection} \"{n}\" already exists")));
            }
            obj["metadata"]["resourceVersion"] = json!("1");
            obj["metadata"]["uid"] = json!(format!("uid-{}", objects.len() + 1));
            objects.insert(key, obj.clone());
            Ok(obj)
        }
        ("PUT", Some(n)) => {
            let mut obj = parsed()?;
            let key = format!("{collection}/{n}");
            let Some(cur) = objects.get(&key) else {
                return Err(status(404, "NotFound", &format!("{collection} \"{n}\" not found")));
            };
            let rv = cur["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
            match obj["metadata"]["resourceVersion"].as_str() {
                None | Some("") => {
                    return Err(status(422, "Invalid", "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"))
                }
                Some(v) if v != rv => {
                    return Err(status(409, "Conflict", &format!("Operation cannot be fulfilled on {collection} \"{n}\": the object has been modified; please apply your changes to the latest version and try again")))
                }
                _ => {}
            }
            obj["metadata"]["resourceVersion"] = json!((rv.parse::<u64>().unwrap_or(0) + 1).to_string());
            obj["metadata"]["uid"] = cur["metadata"]["uid"].clone();
            objects.insert(key, obj.clone());
            Ok(obj)
        }
        _ => Err(status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")),
    }
}

fn serve(
    mut stream: TcpStream,
    seen: &Mutex<Vec<String>>,
    knobs: &Behaviour,
    pods: &[Value],
    nodes: &[Value],
    objects: &Mutex<std::collections::BTreeMap<String, Value>>,
    statuses: &Statuses,
) {
    // As Go servers do (the API server and kubelet): no Nagle delay on small frames.
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    // kubectl's own check of who asks: no Authorization, no answer (401), as an API server
    // without anonymous access does.
    if header("authorization") != Some("Bearer test-token") {
        let (status, body) = status(401, "Unauthorized", "Unauthorized");
        let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        return;
    }
    seen.lock().unwrap().push(format!("{} {}", line.split_whitespace().next().unwrap_or(""), target));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let param = |name: &str| query.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}="))).map(decode);
    let selector = param("labelSelector").unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = line.split_whitespace().next().unwrap_or("").to_string();
    let mut request_body = vec![0u8; header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0)];
    if reader.read_exact(&mut request_body).is_err() {
        return;
    }
    let body = match parts.as_slice() {
        ["api", "v1", "namespaces", ns, "serviceaccounts", rest @ ..]
        | ["apis", "batch", "v1", "namespaces", ns, "cronjobs", rest @ ..]
            if rest.len() <= 1 =>
        {
            let resource = if parts[0] == "api" { "serviceaccounts" } else { "cronjobs" };
            let group = if parts[0] == "api" { "api/v1" } else { "apis/batch/v1" };
            store(
                objects,
                &method,
                &format!("{group}/namespaces/{ns}/{resource}"),
                rest.first().copied(),
                &request_body,
            )
        }
        ["api", "v1", "namespaces", ns, "pods"] => {
            let items: Vec<Value> = pods
                .iter()
                .filter(|p| p["metadata"]["namespace"].as_str() == Some(ns))
                .filter(|p| matches(&p["metadata"]["labels"], &selector))
                .cloned()
                .collect();
            if knobs.endless_pod_list.load(Ordering::SeqCst) {
                endless_list(stream, &items);
                return;
            }
            let padding = knobs.pod_list_padding.load(Ordering::SeqCst);
            if padding > 0 {
                // Written as text: a Value of this many items takes seconds in a debug build.
                let mut body = format!(
                    "{{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"items\":{}",
                    Value::Array(items)
                );
                body.pop(); // the items' "]"
                for i in 0..padding {
                    body.push_str(&format!(",{{\"metadata\":{{\"name\":\"pad-{i}\"}}}}"));
                }
                body.push_str("]}");
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                return;
            }
            Ok(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "12345"}, "items": items}))
        }
        ["api", "v1", "nodes"] => {
            let items: Vec<Value> =
                nodes.iter().filter(|n| matches(&n["metadata"]["labels"], &selector)).cloned().collect();
            Ok(
                json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "12345"}, "items": items}),
            )
        }
        ["api", "v1", "namespaces", ns, "pods", name, "log"] => {
            let pod = pods.iter().find(|p| {
                p["metadata"]["namespace"].as_str() == Some(ns) && p["metadata"]["name"].as_str() == Some(name)
            });
            let status = statuses.lock().unwrap().get(&format!("{ns}/{name}")).cloned();
            match pod_log(pod, ns, name, &param, knobs, status) {
                Ok(text) => {
                    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", text.len());
                    let _ = stream.write_all(&text);
                    return;
                }
                Err(e) => Err(e),
            }
        }
        ["api", "v1", "namespaces", ns, "pods", name, "portforward"] => {
            let exists = pods.iter().any(|p| {
                p["metadata"]["namespace"].as_str() == Some(ns) && p["metadata"]["name"].as_str() == Some(name)
            });
            let port = param("ports").and_then(|p| p.split(',').next().and_then(|p| p.trim().parse::<u16>().ok()));
            let offered = header("sec-websocket-protocol").unwrap_or("");
            if knobs.forbid_portforward.load(Ordering::SeqCst) {
                Err(status(403, "Forbidden", &format!("pods \"{name}\" is forbidden: User \"alice\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"{ns}\"")))
            } else if !exists {
                Err(status(404, "NotFound", &format!("pods \"{name}\" not found")))
            } else if header("upgrade").map(|u| u.eq_ignore_ascii_case("websocket")) != Some(true)
                || !offered.split(',').any(|p| p.trim() == "v4.channel.k8s.io")
            {
                Err(status(400, "BadRequest", "Upgrade request required"))
            } else if let (Some(port), Some(key)) = (port, header("sec-websocket-key")) {
                use sha1::Digest;
                let accept = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    sha1::Sha1::digest(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes()),
                );
                let _ = write!(stream, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n");
                port_forward(stream, name, port, knobs);
                return;
            } else {
                Err(status(400, "BadRequest", "query parameter \"ports\" is required"))
            }
        }
        _ => Err(status(404, "NotFound", "the server could not find the requested resource")),
    };
    let (status, body) = match body {
        Ok(b) if method == "POST" => ("201 Created".to_string(), b.to_string()),
        Ok(b) => ("200 OK".to_string(), b.to_string()),
        Err(e) => e,
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// `pods/log` as the API server validates it and kubelet serves it (see the module doc).
fn pod_log(
    pod: Option<&Value>,
    ns: &str,
    name: &str,
    param: &dyn Fn(&str) -> Option<String>,
    knobs: &Behaviour,
    kubelet: Option<Arc<Mutex<crate::kubelet::ContainerStatus>>>,
) -> Result<Vec<u8>, (String, String)> {
    if knobs.forbid_log.load(Ordering::SeqCst) {
        return Err(status(403, "Forbidden", &format!("pods \"{name}\" is forbidden: User \"alice\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"{ns}\"")));
    }
    let Some(pod) = pod else { return Err(status(404, "NotFound", &format!("pods \"{name}\" not found"))) };
    let int = |k: &str| param(k).map(|v| v.parse::<i64>().map_err(|_| v));
    let invalid = |field: &str, v: &str, why: &str| {
        status(422, "Invalid", &format!("PodLogOptions \"{name}\" is invalid: {field}: Invalid value: {v}: {why}"))
    };
    let mut opts = std::collections::BTreeMap::new();
    for (k, min) in [("sinceSeconds", 1), ("limitBytes", 1), ("tailLines", 0)] {
        match int(k) {
            None => {}
            Some(Err(v)) => return Err(status(400, "BadRequest", &format!("couldn't decode {k}={v:?}"))),
            Some(Ok(v)) if v < min => {
                let why = if min == 0 { "must be greater than or equal to 0" } else { "must be greater than 0" };
                return Err(invalid(k, &v.to_string(), why));
            }
            Some(Ok(v)) => {
                opts.insert(k, v);
            }
        }
    }
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let container = match param("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(&c.as_str()) => c,
        Some(c) => return Err(status(400, "BadRequest", &format!("container {c} is not valid for pod {name}"))),
        None if containers.len() == 1 => containers[0].to_string(),
        None => {
            return Err(status(
                400,
                "BadRequest",
                &format!("a container name must be specified for pod {name}, choose one of: {containers:?}"),
            ))
        }
    };
    let previous = param("previous").as_deref() == Some("true");
    let st = kubelet.map(|s| s.lock().unwrap().clone()).unwrap_or_default();
    let path = if previous {
        st.last_terminated.ok_or_else(|| {
            status(
                400,
                "BadRequest",
                &format!("previous terminated container \"{container}\" in pod \"{name}\" not found"),
            )
        })?
    } else {
        st.running.or(st.last_terminated).ok_or_else(|| {
            status(
                400,
                "BadRequest",
                &format!("container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"),
            )
        })?
    };
    let text = std::fs::read(&path)
        .map_err(|e| status(500, "InternalError", &format!("failed to open log file {:?}: {e}", path.display())))?;
    let now = time::OffsetDateTime::now_utc();
    let since = opts.get("sinceSeconds").map(|s| now - time::Duration::seconds(*s));
    let timestamps = param("timestamps").as_deref() == Some("true");
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for line in text.split_inclusive(|b| *b == b'\n') {
        // <time> <stream> <tag> <content>
        let mut it = line.splitn(4, |b| *b == b' ');
        let (Some(t), Some(_stream), Some(tag), Some(content)) = (it.next(), it.next(), it.next(), it.next()) else {
            continue;
        };
        let Ok(at) =
            time::OffsetDateTime::parse(&String::from_utf8_lossy(t), &time::format_description::well_known::Rfc3339)
        else {
            continue;
        };
        if since.is_some_and(|s| at < s) {
            continue;
        }
        let mut m = Vec::new();
        if timestamps {
            m.extend_from_slice(t);
            m.push(b' ');
        }
        // A partial line's newline is the CRI format's, not the container's: the parts join.
        let content = if tag.first() == Some(&b'P') { content.strip_suffix(b"\n").unwrap_or(content) } else { content };
        m.extend_from_slice(content);
        messages.push(m);
    }
    if let Some(n) = opts.get("tailLines") {
        let n = usize::try_from(*n).unwrap_or(0);
        messages.drain(..messages.len().saturating_sub(n));
    }
    let mut body: Vec<u8> = messages.concat();
    if let Some(n) = opts.get("limitBytes") {
        body.truncate(usize::try_from(*n).unwrap_or(usize::MAX));
    }
    Ok(body)
}

/// A PodList that never ends: HTTP/1.1 chunks of `items` (a kubeadm pod when empty), over and
/// over, until the client closes the connection.
fn endless_list(mut stream: TcpStream, items: &[Value]) {
    let mut chunk = String::new();
    let pod =
        items.first().cloned().unwrap_or_else(|| kubeadm_pod("cp-1", &[], "https://127.0.0.1:2379", true, "127.0.0.1"));
    while chunk.len() < 64 * 1024 {
        chunk.push_str(&pod.to_string());
        chunk.push(',');
    }
    let head = "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"12345\"},\"items\":[";
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{head}\r\n",
        head.len()
    );
    let body = format!("{:x}\r\n{chunk}\r\n", chunk.len());
    loop {
        out.push_str(&body);
        if stream.write_all(out.as_bytes()).is_err() {
            return;
        }
        out.clear();
    }
}

impl FakeKube {
    /// Writes a kubeconfig for this server into `dir` and returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: {}\n  name: fake\ncontexts:\n- context:\n    cluster: fake\n    user: admin\n  name: fake-admin@fake\ncurrent-context: fake-admin@fake\nusers:\n- name: admin\n  user:\n    token: test-token\n",
            self.url
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Writes a kubeconfig at `path` whose one context, cluster and user are all named `name`,
/// for the API server at `server` (the token this fake expects).
pub fn write_kubeconfig(path: &Path, name: &str, server: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: {server}\n  name: {name}\ncontexts:\n- context:\n    cluster: {name}\n    user: {name}\n  name: {name}\ncurrent-context: {name}\nusers:\n- name: {name}\n  user:\n    token: test-token\n"
    );
    std::fs::write(path, text).unwrap();
}

/// An API server that is gone dead: the kernel completes the TCP handshake (the listener's
/// backlog) but nothing ever accepts or answers, so every request waits for its deadline.
/// Dead while the listener lives.
pub fn dead_api_server() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// A kubeadm etcd static pod as the API server returns it (mirror pod), for a node whose etcd
/// flags are `flags`. `annotate` adds kubeadm's advertise-client-urls annotation.
pub fn kubeadm_pod(node: &str, flags: &[(String, String)], client_url: &str, annotate: bool, pod_ip: &str) -> Value {
    let mut command = vec!["etcd".to_string()];
    command.extend(flags.iter().filter(|(k, _)| k != "logger" && k != "log-level").map(|(k, v)| format!("--{k}={v}")));
    let mut annotations = json!({
        "kubernetes.io/config.hash": "a1b2c3d4e5f6",
        "kubernetes.io/config.mirror": "a1b2c3d4e5f6",
        "kubernetes.io/config.seen": "2026-11-20T10:00:00.000000000Z",
        "kubernetes.io/config.source": "file"
    });
    if annotate {
        annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"] = json!(client_url);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("etcd-{node}"),
            "namespace": "kube-system",
            "uid": "6f1c8f3e-0000-4000-8000-000000000000",
            "labels": {"component": "etcd", "tier": "control-plane"},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": "00000000-0000-4000-8000-000000000001", "controller": true}]
        },
        "spec": {
            "containers": [{
                "name": "etcd",
                "image": "registry.k8s.io/etcd:3.5.15-0",
                "command": command,
                "imagePullPolicy": "IfNotPresent",
                "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}
            }],
            "hostNetwork": true,
            "nodeName": node,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical"
        },
        "status": {"phase": "Running", "podIP": pod_ip, "hostIP": pod_ip, "podIPs": [{"ip": pod_ip}]}
    })
}

/// The mirror pods of a cluster's members, as the API server lists them: kubeadm's pods (with
/// its advertise-client-urls annotation when `annotate`; without `--advertise-client-urls` in the
/// command unless `with_flag`).
pub fn cluster_pods(c: &crate::Cluster, annotate: bool, with_flag: bool) -> Vec<Value> {
    c.nodes
        .iter()
        .map(|n| {
            let flags: Vec<(String, String)> =
                n.flags.iter().filter(|(k, _)| with_flag || k != "advertise-client-urls").cloned().collect();
            kubeadm_pod(&n.name, &flags, &n.client_url(), annotate, "127.0.0.1")
        })
        .collect()
}

/// The etcd pods as the API lists them, their file paths kubeadm's (`/etc/kubernetes/…`,
/// `/var/lib/etcd`), which do not exist on this "workstation": nothing can be read from a node.
pub fn workstation_pods(c: &crate::Cluster) -> Vec<Value> {
    c.nodes
        .iter()
        .map(|n| {
            let root = n.root.display().to_string();
            let flags: Vec<(String, String)> = n
                .flags
                .iter()
                .map(|(k, v)| {
                    let v = v
                        .replace(&format!("{root}/pki"), "/etc/kubernetes/pki")
                        .replace(&format!("{root}/data"), "/var/lib/etcd");
                    (k.clone(), v)
                })
                .collect();
            kubeadm_pod(&n.name, &flags, &n.client_url(), true, "127.0.0.1")
        })
        .collect()
}

/// A node as RKE1 or k3s labels its etcd nodes.
pub fn etcd_node(name: &str, internal_ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "node-role.kubernetes.io/etcd": "true",
                "node-role.kubernetes.io/controlplane": "true"
            }
        },
        "status": {"addresses": [{"type": "InternalIP", "address": internal_ip}, {"type": "Hostname", "address": name}]}
    })
}
