//! Test helpers: a moto EC2 server per test, seeding through boto3, a tiny HTTP server under the
//! test's control (for error answers and the metadata service), and running the CLI.
//!
//! Everything listens on 127.0.0.1 only.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `moto_server` executable: `RMPI_MOTO_SERVER`, else the venv of `scripts/setup-moto.sh`
/// (installed on first use). Panics with instructions when it cannot be had: these tests never
/// pass silently without the emulator.
pub fn moto_server_path() -> PathBuf {
    if let Ok(path) = std::env::var("RMPI_MOTO_SERVER") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "RMPI_MOTO_SERVER={} does not exist", path.display());
        return path;
    }
    let venv = std::env::var("RMPI_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target/moto-venv"));
    let server = venv.join("bin/moto_server");
    if server.is_file() {
        return server;
    }
    let script = repo_root().join("scripts/setup-moto.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("RMPI_MOTO_VENV", &venv)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success() && server.is_file(),
        "{} failed (needs python3 with venv and pip, and access to PyPI):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    server
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A moto server in server mode on 127.0.0.1, killed (by PID) on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT/`
    pub endpoint: String,
    python: PathBuf,
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts a server on a free port and waits (up to 60 s) until it answers.
    pub fn start() -> Self {
        let server = moto_server_path();
        let python = server.with_file_name("python");
        let log = tempfile::NamedTempFile::new().unwrap();
        let port = free_port();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        let moto = Self { child, endpoint: format!("http://127.0.0.1:{port}/"), python, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Any HTTP answer means the server is up (`/` is cheap, unlike the data dumps).
            if http_request(port, "GET", "/", b"").is_ok_and(|r| r.starts_with("HTTP/1.")) {
                return moto;
            }
            assert!(Instant::now() < deadline, "moto did not answer within 60 s:\n{}", moto.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn port(&self) -> u16 {
        self.endpoint.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Forgets every resource (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let reply = http_request(self.port(), "POST", "/moto-api/reset", b"").unwrap();
        assert!(reply.contains(" 200 "), "reset failed: {reply}");
    }

    /// Runs `fixtures/SCRIPT ENDPOINT` with the venv's Python, `input` as JSON on its standard
    /// input; returns its standard output parsed as JSON. Panics with its stderr if it fails.
    fn script<T: serde::de::DeserializeOwned>(&self, script: &str, input: &serde_json::Value) -> T {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(script);
        let mut child = Command::new(&self.python)
            .arg(&path)
            .arg(&self.endpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.python.display()));
        child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
        let out = wait_output(child, Duration::from_secs(60));
        assert!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Launches instances through boto3 (see `fixtures/seed_moto.py`); returns, per requested
    /// instance in order, what DescribeInstances says about it.
    pub fn seed(&self, spec: &serde_json::Value) -> Vec<serde_json::Value> {
        self.script("seed_moto.py", spec)
    }

    /// Makes boto3 calls (see `fixtures/boto_calls.py`): `[(method, kwargs)]`; returns the
    /// responses in order.
    pub fn boto(&self, calls: &[(&str, serde_json::Value)]) -> Vec<serde_json::Value> {
        let calls: Vec<serde_json::Value> = calls
            .iter()
            .map(|(method, kwargs)| serde_json::json!({"method": method, "kwargs": kwargs}))
            .collect();
        self.script("boto_calls.py", &serde_json::Value::from(calls))
    }

    /// One boto3 call.
    pub fn boto1(&self, method: &str, kwargs: serde_json::Value) -> serde_json::Value {
        self.boto(&[(method, kwargs)]).remove(0)
    }

    /// The port it listens on.
    pub fn port_number(&self) -> u16 {
        self.port()
    }
}

/// Sends `req` on to the real server on 127.0.0.1:`port` with `body` instead of its own body
/// (headers kept, so the signature's credential scope still names the region) and returns the
/// server's answer.
pub fn forward(port: u16, req: &SeenRequest, body: &str) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if !matches!(k.as_str(), "host" | "content-length" | "connection") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "host: 127.0.0.1:{port}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(502);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Reply { status, body: if chunked { dechunk(body) } else { body.to_string() } }
}

/// Decodes a chunked HTTP/1.1 body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A form body with parameter `name` set to `value` (others kept in order).
pub fn with_param(body: &str, name: &str, value: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(body.as_bytes()) {
        out.append_pair(&k, if k == name { value } else { &v });
    }
    out.finish()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One blocking HTTP/1.1 request with `Connection: close`; returns the whole reply.
pub fn http_request(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Waits for a child with a deadline (killing it when the deadline passes), reading its
/// output pipes meanwhile so that it cannot block on a full pipe.
pub fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap();
            panic!(
                "child did not finish within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// A request as the stub server saw it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// `GET`, `PUT`, `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes as text.
    pub body: String,
}

impl SeenRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A form parameter of the body.
    pub fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A reply: status, content type, body.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Self {
        Self { status: 200, body: body.into() }
    }

    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self { status, body: body.into() }
    }
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

/// A small HTTP/1.1 server on 127.0.0.1 whose answers the test decides. Records every request.
pub struct Stub {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    port: u16,
}

impl Stub {
    /// Starts serving `handler`.
    pub fn start(handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (seen, handler) = (seen.clone(), handler.clone());
                    std::thread::spawn(move || serve(stream, &seen, &*handler));
                }
            })
        };
        Self { url: format!("http://127.0.0.1:{port}"), seen, stop, thread: Some(thread), port }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<SeenRequest>>, handler: &Handler) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) =
            (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = SeenRequest {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let reply = handler(&request);
        seen.lock().unwrap().push(request);
        let text = format!(
            "HTTP/1.1 {} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{}",
            reply.status,
            reply.body.len(),
            reply.body
        );
        if writer.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// An EC2 error document.
pub fn ec2_error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>{message}</Message></Error></Errors><RequestID>req-1</RequestID></Response>"
    )
}

/// A DescribeInstances page with one running instance per `(id, type, private ip)`.
pub fn describe_instances_body(instances: &[(&str, &str, &str)], tags: &[(&str, &str)]) -> String {
    let tag_xml: String = tags
        .iter()
        .map(|(k, v)| format!("<item><key>{k}</key><value>{v}</value></item>"))
        .collect();
    let items: String = instances
        .iter()
        .map(|(id, ty, ip)| {
            format!(
                "<item><reservationId>r-{id}</reservationId><instancesSet><item>\
                 <instanceId>{id}</instanceId><instanceType>{ty}</instanceType>\
                 <instanceState><code>16</code><name>running</name></instanceState>\
                 <privateIpAddress>{ip}</privateIpAddress>\
                 <launchTime>2026-01-01T00:00:00.000Z</launchTime>\
                 <tagSet>{tag_xml}</tagSet></item></instancesSet></item>"
            )
        })
        .collect();
    format!(
        "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>r</requestId><reservationSet>{items}</reservationSet></DescribeInstancesResponse>"
    )
}

/// The path of the CLI binary under test.
pub fn cli_path() -> &'static str {
    env!("CARGO_BIN_EXE_rmpi-ec2")
}

/// A command for the CLI with an empty environment except `HOME` (an empty temp dir, so no
/// `~/.aws` of the machine leaks in) and the metadata service disabled; add what a test needs.
pub fn cli(home: &Path) -> Command {
    let mut cmd = Command::new(cli_path());
    cmd.env_clear()
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs a command to completion (60 s at most).
pub fn run(cmd: &mut Command) -> Output {
    wait_output(cmd.spawn().unwrap(), Duration::from_secs(60))
}

/// Stdout and stderr as text.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running CLI whose standard error is watched line by line while it runs.
pub struct Watched {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

impl Watched {
    /// Spawns `cmd` (whose stderr must be piped).
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd.spawn().unwrap();
        let pipe = child.stderr.take().expect("stderr must be piped");
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let reader = {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    stderr.lock().unwrap().push_str(&format!("{line}\n"));
                    let _ = tx.send(line);
                }
            })
        };
        Self { child, lines, stderr, reader }
    }

    /// Blocks until a stderr line contains `needle`; panics after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!(
                    "no stderr line containing {needle:?} within {timeout:?}; stderr so far:\n{}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Waits for the exit (at most `timeout`); returns the status, stdout and all of stderr.
    pub fn finish(self, timeout: Duration) -> (std::process::ExitStatus, String, String) {
        let out = wait_output(self.child, timeout);
        let _ = self.reader.join();
        let stderr = self.stderr.lock().unwrap().clone();
        (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    }
}
