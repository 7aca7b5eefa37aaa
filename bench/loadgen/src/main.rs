//! An open-loop load generator for the benchmark harness's latency runs.
//!
//! wrk measures throughput at saturation, where latency is mostly queueing; what a
//! service's users see is latency at a sustainable rate. This sends a fixed rate over
//! keep-alive connections and measures every request from the moment it was *scheduled*,
//! so a stalled server is charged for the requests that waited behind the stall
//! (coordinated omission corrected) — the figure wrk2 reports, built from what this
//! machine's registries offer. One thread, no allocation per request, so a single core
//! drives far more load than the server under test can take.
//!
//! ```text
//! bench-loadgen --url http://127.0.0.1:8080/auth/token --method POST \
//!   --header 'Authorization: Basic …' --body grant_type=client_credentials \
//!   --rate 20000 --duration 10 --connections 32
//! ```
//! prints one JSON object: requests, achieved rate, non-2xx count, errors, and latency
//! percentiles in milliseconds.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    host: String,
    request: Vec<u8>,
    rate: f64,
    duration: Duration,
    connections: usize,
}

fn parse_args() -> Args {
    let mut url = None;
    let (mut method, mut headers, mut body) = ("GET".to_owned(), Vec::new(), String::new());
    let (mut rate, mut duration, mut connections) = (1000.0, 10.0, 32);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--url" => url = Some(value()),
            "--method" => method = value(),
            "--header" => headers.push(value()),
            "--body" => body = value(),
            "--rate" => rate = value().parse().expect("--rate is a number"),
            "--duration" => duration = value().parse().expect("--duration is seconds"),
            "--connections" => connections = value().parse().expect("--connections is a number"),
            other => panic!("unknown argument {other}"),
        }
    }
    let url = url.expect("--url is required");
    let rest = url.strip_prefix("http://").expect("only http:// URLs");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for h in &headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    Args {
        host: host.to_owned(),
        request: request.into_bytes(),
        rate,
        duration: Duration::from_secs_f64(duration),
        connections,
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    non_2xx: u64,
    errors: u64,
}

/// Reads one response; returns its status. Keeps any bytes past it in `buf`.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(std::io::Error::other)?;
            let status: u16 = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other("bad status line"))?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())
                        .flatten()
                })
                .unwrap_or(0);
            let total = end + 4 + length;
            while buf.len() < total {
                read_more(stream, buf).await?;
            }
            buf.drain(..total);
            return Ok(status);
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::Error::other("connection closed"));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Waits until `at` with microsecond precision: tokio's timer has a 1 ms granularity,
/// which would show up as a millisecond of made-up latency, so the last stretch is spent
/// yielding (the load core is dedicated to this process anyway).
async fn wait_until(at: Instant) {
    let coarse = Duration::from_micros(1500);
    if let Some(early) = at.checked_duration_since(Instant::now())
        && early > coarse
    {
        tokio::time::sleep_until((at - Duration::from_millis(1)).into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// One connection's share: requests `index`, `index + connections`, … of the schedule.
async fn connection(args: &Args, index: usize, start: Instant) -> Tally {
    let mut tally = Tally::default();
    let interval = Duration::from_secs_f64(args.connections as f64 / args.rate);
    let offset = Duration::from_secs_f64(index as f64 / args.rate);
    let mut stream = None;
    let mut buf = Vec::with_capacity(8192);
    let mut k = 0u32;
    loop {
        let scheduled = start + offset + interval * k;
        k += 1;
        if scheduled >= start + args.duration {
            return tally;
        }
        wait_until(scheduled).await;
        if stream.is_none() {
            match TcpStream::connect(&args.host).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                    buf.clear();
                }
                Err(_) => {
                    tally.errors += 1;
                    continue;
                }
            }
        }
        let s = stream.as_mut().expect("connected");
        let outcome = async {
            s.write_all(&args.request).await?;
            read_response(s, &mut buf).await
        }
        .await;
        match outcome {
            Ok(status) => {
                let micros = scheduled.elapsed().as_micros().min(u128::from(u32::MAX));
                tally.latencies_us.push(micros as u32);
                if !(200..300).contains(&status) {
                    tally.non_2xx += 1;
                }
            }
            Err(_) => {
                tally.errors += 1;
                stream = None;
            }
        }
    }
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let args = &args;
    let tallies = runtime.block_on(async move {
        let start = Instant::now() + Duration::from_millis(50);
        let connections = (0..args.connections).map(|i| connection(args, i, start));
        let results = futures_util::future::join_all(connections).await;
        (results, start.elapsed())
    });
    let (tallies, elapsed) = tallies;
    let mut latencies: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (latencies.len() - 1) as f64).round() as usize;
        f64::from(latencies[i]) / 1000.0
    };
    let requests = latencies.len();
    println!(
        "{{\"rate\":{},\"requests\":{},\"achieved_rps\":{:.1},\"non_2xx\":{},\"errors\":{},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
        args.rate,
        requests,
        requests as f64 / elapsed.as_secs_f64().max(1e-9),
        tallies.iter().map(|t| t.non_2xx).sum::<u64>(),
        tallies.iter().map(|t| t.errors).sum::<u64>(),
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        pct(100.0),
    );
}
