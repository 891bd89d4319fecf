//! A scripted HTTP/1.1 server for testing clients of remote APIs (LLM providers) byte for byte.
//!
//! Each test scripts the replies in order: a full response with exact headers and body, a raw
//! byte string written as is (a truncated body, a broken stream), or a stall that never answers.
//! Every request is recorded with its method, path, headers and exact body, so a test can assert
//! what went over the wire. Plain `std::net` with one thread per connection: a handful of
//! requests per test needs nothing more, and a client under test cannot tell the difference.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::error::{TestkitError, TestkitResult};

/// What the server does with the next request.
#[derive(Debug, Clone)]
pub enum MockReply {
    /// A complete response: `content-length` is added from the body.
    Respond {
        /// HTTP status code.
        status: u16,
        /// Extra headers, in order.
        headers: Vec<(String, String)>,
        /// Exact body bytes.
        body: Vec<u8>,
    },
    /// These bytes (status line, headers and all) are written, then the connection is closed.
    Raw(Vec<u8>),
    /// Nothing is answered for this long, then the connection is closed.
    Stall(Duration),
}

impl MockReply {
    /// A JSON response with `content-type: application/json`.
    pub fn json(status: u16, body: &str) -> Self {
        Self::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// A complete server-sent-events response: `body` is the `event:`/`data:` text.
    pub fn event_stream(body: &str) -> Self {
        Self::Respond {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// Adds a header to a [`MockReply::Respond`] (other replies are returned unchanged).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Self::Respond { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// Path and query, e.g. `/v1/messages`.
    pub path: String,
    /// Headers with lowercased names, in the order received.
    pub headers: Vec<(String, String)>,
    /// Exact body bytes.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug, Default)]
struct Script {
    replies: VecDeque<MockReply>,
    requests: Vec<RecordedRequest>,
}

/// A scripted HTTP server on a free `127.0.0.1` port; it stops when dropped.
///
/// With no reply left in the script it answers `599` with a JSON body saying so, which no
/// client treats as success, so a test that sends more requests than it scripted fails.
#[derive(Debug)]
pub struct MockHttpServer {
    port: u16,
    script: Arc<Mutex<Script>>,
    stopping: Arc<AtomicBool>,
}

impl MockHttpServer {
    /// Starts a server with an empty script.
    ///
    /// # Errors
    /// [`TestkitError::Io`] when no port can be bound.
    pub fn start() -> TestkitResult<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|err| TestkitError::io("binding a mock HTTP server to 127.0.0.1:0", err))?;
        let port =
            listener.local_addr().map_err(|err| TestkitError::io("reading the mock server's address", err))?.port();
        let script = Arc::new(Mutex::new(Script::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (accept_script, accept_stopping) = (Arc::clone(&script), Arc::clone(&stopping));
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let script = Arc::clone(&accept_script);
                thread::spawn(move || serve_connection(stream, &script));
            }
        });
        Ok(Self { port, script, stopping })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Appends a reply to the script.
    pub fn push(&self, reply: MockReply) {
        lock(&self.script).replies.push_back(reply);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.script).requests.clone()
    }

    /// Replies scripted but not used yet.
    pub fn pending_replies(&self) -> usize {
        lock(&self.script).replies.len()
    }
}

impl Drop for MockHttpServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and ends.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

fn lock(script: &Mutex<Script>) -> MutexGuard<'_, Script> {
    script.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serve_connection(stream: TcpStream, script: &Mutex<Script>) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let reply = {
            let mut script = lock(script);
            script.requests.push(request);
            script.replies.pop_front()
        };
        let keep_open = match reply {
            Some(MockReply::Respond { status, headers, body }) => write_response(&mut writer, status, &headers, &body),
            Some(MockReply::Raw(bytes)) => {
                let _ = writer.write_all(&bytes);
                false
            }
            Some(MockReply::Stall(duration)) => {
                thread::sleep(duration);
                false
            }
            None => write_response(
                &mut writer,
                599,
                &[("content-type".into(), "application/json".into())],
                br#"{"error":"the mock server has no scripted reply left"}"#,
            ),
        };
        if !keep_open {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn write_response(writer: &mut TcpStream, status: u16, headers: &[(String, String)], body: &[u8]) -> bool {
    let mut head = format!("HTTP/1.1 {status} {}\r\ncontent-length: {}\r\n", reason(status), body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(body)).and_then(|()| writer.flush()).is_ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// Reads one request; `None` at end of stream or on a request this server cannot parse.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<RecordedRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize =
        headers.iter().find(|(name, _)| name == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(RecordedRequest { method, path, headers, body })
}
