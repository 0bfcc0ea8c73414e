//! A deliberately hostile test plugin. Each action attacks the sandbox in one way.

use osprey_sdk::prelude::*;
use std::hint::black_box;

#[derive(Deserialize, JsonSchema)]
struct Empty {}

#[derive(Serialize, JsonSchema)]
struct Nothing {}

#[derive(Deserialize, JsonSchema)]
struct Url {
    url: String,
    /// How many times to send it (fetch-many).
    #[serde(default)]
    count: Option<u32>,
    /// Headers to send, such as ones the host forbids.
    #[serde(default)]
    headers: Vec<(String, String)>,
}

#[derive(Serialize, JsonSchema)]
struct Fetched {
    status: u16,
    location: Option<String>,
    body: String,
    requests: u32,
}

#[derive(Deserialize, JsonSchema)]
struct Name {
    name: String,
}

#[derive(Serialize, JsonSchema)]
struct Stolen {
    value: String,
}

#[derive(Deserialize, JsonSchema)]
struct Path {
    path: String,
}

#[derive(Serialize, JsonSchema)]
struct Environment {
    vars: Vec<(String, String)>,
    args: Vec<String>,
    stdin: String,
}

#[derive(Deserialize, JsonSchema)]
struct Size {
    mib: u32,
}

#[derive(Serialize, JsonSchema)]
struct Blob {
    data: String,
}

fn spin(_: &Context, _: Empty) -> Result<Nothing> {
    let mut x: u64 = 0;
    loop {
        x = black_box(x.wrapping_add(1));
    }
}

fn sleep(_: &Context, _: Empty) -> Result<Nothing> {
    // Blocks in the host, not in wasm: only a wall-clock deadline outside the guest stops it.
    std::thread::sleep(std::time::Duration::from_secs(3600));
    Ok(Nothing {})
}

fn memory_bomb(_: &Context, _: Empty) -> Result<Nothing> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xAB; 1 << 20]);
        black_box(&hoard);
    }
}

fn fetch(_: &Context, input: Url) -> Result<Fetched> {
    let count = input.count.unwrap_or(1).max(1);
    let mut last = None;
    for _ in 0..count {
        let request = input
            .headers
            .iter()
            .fold(http::Request::get(&input.url), |r, (k, v)| {
                r.header(k, v.as_str())
            });
        last = Some(request.send()?);
    }
    let resp = last.expect("at least one request");
    Ok(Fetched {
        status: resp.status,
        location: resp.header("location").map(str::to_owned),
        body: resp.text().chars().take(1000).collect(),
        requests: count,
    })
}

#[derive(Deserialize, JsonSchema)]
struct Upload {
    url: String,
    mib: u32,
}

fn upload(_: &Context, input: Upload) -> Result<Fetched> {
    let body = vec![b'u'; input.mib as usize * 1024 * 1024];
    let resp = http::Request::post(&input.url).body(body).send()?;
    Ok(Fetched {
        status: resp.status,
        location: None,
        body: resp.text(),
        requests: 1,
    })
}

fn print_flood(_: &Context, _: Empty) -> Result<Nothing> {
    let line = "p".repeat(1000);
    for _ in 0..1000 {
        println!("{line}");
    }
    Ok(Nothing {})
}

fn steal_secret(_: &Context, input: Name) -> Result<Stolen> {
    Ok(Stolen {
        value: secrets::get(&input.name)?.expose().to_owned(),
    })
}

fn read_file(_: &Context, input: Path) -> Result<Blob> {
    match std::fs::read_to_string(&input.path) {
        Ok(data) => Ok(Blob { data }),
        Err(e) => Err(Error::denied(format!("filesystem: {e}"))),
    }
}

fn list_dir(_: &Context, input: Path) -> Result<Blob> {
    match std::fs::read_dir(&input.path) {
        Ok(entries) => Ok(Blob {
            data: entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }),
        Err(e) => Err(Error::denied(format!("filesystem: {e}"))),
    }
}

fn write_file(_: &Context, input: Path) -> Result<Nothing> {
    match std::fs::write(&input.path, b"owned") {
        Ok(()) => Ok(Nothing {}),
        Err(e) => Err(Error::denied(format!("filesystem: {e}"))),
    }
}

fn environment(_: &Context, _: Empty) -> Result<Environment> {
    let mut stdin = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut stdin);
    Ok(Environment {
        vars: std::env::vars().collect(),
        args: std::env::args().collect(),
        stdin,
    })
}

fn huge_output(_: &Context, input: Size) -> Result<Blob> {
    Ok(Blob {
        data: "A".repeat(input.mib as usize * 1024 * 1024),
    })
}

fn panic(_: &Context, _: Empty) -> Result<Nothing> {
    panic!("hostile plugin panicked on purpose");
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    black_box(recurse(black_box(depth + 1))) + 1
}

fn stack_overflow(_: &Context, _: Empty) -> Result<Nothing> {
    black_box(recurse(0));
    Ok(Nothing {})
}

fn log_flood(_: &Context, _: Empty) -> Result<Nothing> {
    let line = "x".repeat(100_000);
    for i in 0..10_000 {
        log::info(&line, &[("i", &i.to_string())]);
    }
    Ok(Nothing {})
}

fn kv_flood(_: &Context, _: Empty) -> Result<Nothing> {
    let chunk = vec![7u8; 1024];
    for i in 0.. {
        kv::set(&format!("flood-{i}"), &chunk, None)?;
    }
    Ok(Nothing {})
}

#[derive(Deserialize, JsonSchema)]
struct Raw {
    /// Set as the authority of a request built with `wasi:http` directly, not the SDK.
    authority: String,
    /// Then a path of this many bytes.
    #[serde(default)]
    path_bytes: Option<usize>,
}

/// Builds a request past the SDK, with a malformed authority or an over-long path: the
/// host refuses it before it could be sent, and must count that like a denial.
fn raw_request(_: &Context, input: Raw) -> Result<Nothing> {
    use osprey_sdk::bindings::wasi::http::types::{Fields, OutgoingRequest};
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_authority(Some(&input.authority))
        .map_err(|()| Error::invalid_input(format!("authority '{}' refused", input.authority)))?;
    if let Some(n) = input.path_bytes {
        let path = format!("/{}", "a".repeat(n.saturating_sub(1)));
        request
            .set_path_with_query(Some(&path))
            .map_err(|()| Error::invalid_input(format!("a path of {n} bytes refused")))?;
    }
    Ok(Nothing {})
}

#[derive(Deserialize, JsonSchema)]
struct Targets {
    /// A host name to look up.
    name: String,
    /// An address (`IP:PORT`) to connect to over TCP.
    tcp: String,
    /// An address (`IP:PORT`) to send a UDP datagram to.
    udp: String,
}

#[derive(Serialize, JsonSchema)]
struct Attempt {
    what: String,
    /// `ok` if it got through, otherwise the error's kind.
    outcome: String,
    message: String,
}

#[derive(Serialize, JsonSchema)]
struct Attempts {
    attempts: Vec<Attempt>,
}

fn attempt<T: std::fmt::Debug>(what: &str, result: std::io::Result<T>) -> Attempt {
    let (outcome, message) = match result {
        Ok(v) => ("ok".to_owned(), format!("{v:?}")),
        Err(e) => (format!("{:?}", e.kind()), e.to_string()),
    };
    Attempt {
        what: what.to_owned(),
        outcome,
        message,
    }
}

/// Reaches for the network past `wasi:http`: `std::net` on wasm32-wasip2 goes through
/// wasi-libc to `wasi:sockets` (ip-name-lookup, tcp, udp). Reports how each attempt ended.
fn sockets(_: &Context, input: Targets) -> Result<Attempts> {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
    let attempts = vec![
        attempt(
            "lookup",
            (input.name.as_str(), 443)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>()),
        ),
        attempt(
            "tcp-connect",
            TcpStream::connect(&input.tcp).and_then(|mut s| s.write_all(b"escaped")),
        ),
        attempt("tcp-listen", TcpListener::bind("127.0.0.1:0")),
        attempt(
            "udp-send",
            UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"escaped", &input.udp)),
        ),
    ];
    Ok(Attempts { attempts })
}

fn plugin() -> Plugin {
    Plugin::new("test-hostile", env!("CARGO_PKG_VERSION"), "Hostile test plugin")
        .action("spin", "An infinite loop", spin)
        .action("sleep", "Blocks for an hour", sleep)
        .action("memory-bomb", "Allocates until it dies", memory_bomb)
        .action("fetch", "GETs a URL (count times)", fetch)
        .action("upload", "POSTs mib MiB to a URL", upload)
        .action(
            "raw-request",
            "Sets a request's authority and path past the SDK",
            raw_request,
        )
        .action("print-flood", "Prints 1 MB to stdout", print_flood)
        .action(
            "steal-secret",
            "Reads a secret and returns its value",
            steal_secret,
        )
        .action("read-file", "Reads a file", read_file)
        .action("list-dir", "Lists a directory", list_dir)
        .action("write-file", "Writes a file", write_file)
        .action(
            "environment",
            "Reads the environment, arguments and stdin",
            environment,
        )
        .action("huge-output", "Returns a huge string", huge_output)
        .action("panic", "Panics", panic)
        .action("stack-overflow", "Recurses forever", stack_overflow)
        .action("log-flood", "Writes 10,000 huge log lines", log_flood)
        .action("kv-flood", "Writes kv entries until refused", kv_flood)
        .action(
            "sockets",
            "Looks up a name, connects TCP, listens, sends UDP past wasi:http",
            sockets,
        )
}

osprey_sdk::export_plugin!(plugin);
