//! Abuse resistance (RFC 6819, RFC 9700): brute force and credential stuffing meet rate
//! limits, slow clients cannot starve fast ones, and a server under load survives a
//! disabled client, a key rotation and SIGTERM without a 5xx or a dropped request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use moneykit_auth::engine::ratelimit::Rate;
use tokio::io::AsyncWriteExt;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brute_force_from_one_address_is_limited_and_others_are_unaffected() {
    let _load = heavy_load().await;
    let db = TestDb::new().await;
    let (_, id, secret) = cli_app_and_client(&db.url, "B");
    let server = ServerProcess::start(
        &db.url,
        &[
            "--auth-failures-per-address",
            "50",
            "--auth-failures-per-client",
            "20",
            "--client-ip-header",
            "x-forwarded-for",
        ],
    )
    .await;
    let token_from = |address: &str, secret: &str| {
        reqwest::Client::new()
            .post(server.url("/auth/token"))
            .header("x-forwarded-for", address)
            .header("authorization", basic(&id, secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
    };
    let attacker = "203.0.113.9";
    let rss_before = server.rss_kib();
    let (unauthorized, limited) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let http = reqwest::Client::new();
    let mut workers = Vec::new();
    for w in 0..16 {
        let (http, url, id) = (http.clone(), server.url("/auth/token"), id.clone());
        let (unauthorized, limited) = (unauthorized.clone(), limited.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..625 {
                // Half against the real client id, half against random ones.
                let target = if i % 2 == 0 {
                    id.clone()
                } else {
                    format!("live_{w}_{i}")
                };
                let response = http
                    .post(&url)
                    .header("x-forwarded-for", attacker)
                    .header("authorization", basic(&target, "mks_wrong"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    401 => unauthorized.fetch_add(1, Ordering::Relaxed),
                    429 => {
                        assert!(response.headers().contains_key("retry-after"));
                        limited.fetch_add(1, Ordering::Relaxed)
                    }
                    other => panic!("unexpected {other}"),
                };
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let (unauthorized, limited) = (
        unauthorized.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    );
    let rss_after = server.rss_kib();
    println!(
        "10000 wrong secrets from one address in {elapsed:?}: {unauthorized} × 401, {limited} × 429; server RSS {rss_before} → {rss_after} KiB",
    );
    assert_eq!(unauthorized + limited, 10_000);
    // The configured budget, 50 failures a minute: within a minute, at most 50 at once
    // plus a minute's refill can get through, whatever the bucket's exact arithmetic.
    assert!(
        elapsed < Duration::from_secs(60),
        "the flood took {elapsed:?}"
    );
    assert!(
        unauthorized <= 100,
        "limited after the budget of 50 a minute: {unauthorized} got through in {elapsed:?}"
    );
    // Memory stays flat: 10 000 attempts, 5 000 distinct client ids.
    assert!(
        rss_after.saturating_sub(rss_before) < 8 * 1024,
        "server RSS grew {} KiB",
        rss_after.saturating_sub(rss_before)
    );

    // The attacker is refused even with the right secret… The address budget refills a
    // little while the test runs (50 a minute), so first spend any refill on a wrong
    // secret; straight after a 429 the right secret must be refused too.
    let mut refused = None;
    for _ in 0..5 {
        if token_from(attacker, "mks_wrong").await.unwrap().status() != 429 {
            continue;
        }
        let response = token_from(attacker, &secret).await.unwrap();
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
    }
    let refused =
        refused.expect("an address over its failure budget is refused, right secret or not");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_error(refused, 429, "api_error.rate_limit_exceeded", None).await;
    // …while the real client, from its own address, is not.
    assert_eq!(
        token_from("198.51.100.7", &secret).await.unwrap().status(),
        201
    );
    // Its id's failure budget only turns wrong secrets into 429s: spent from anywhere, it
    // stops the guessing, but the right secret still works.
    let mut guesses = 0;
    let stopped_with = loop {
        let status = token_from("198.51.100.7", "mks_wrong")
            .await
            .unwrap()
            .status();
        if status != 401 {
            break status;
        }
        guesses += 1;
        assert!(
            guesses <= 20,
            "the id's budget of 20 failures a minute holds"
        );
    };
    assert_eq!(
        stopped_with, 429,
        "the guessing ends in a 429, after {guesses} × 401"
    );
    assert_eq!(
        token_from("198.51.100.8", &secret).await.unwrap().status(),
        201
    );
}

#[tokio::test]
async fn a_proxy_in_front_without_client_ip_header_is_pointed_out_once() {
    let db = TestDb::new().await;
    let warnings = |server: &ServerProcess| server.log().matches("forwarding header").count();
    let http = reqwest::Client::new();
    let get = |server: &ServerProcess, forwarded: Option<&str>| {
        let request = http.get(server.url("/healthz/live"));
        match forwarded {
            Some(address) => request.header("x-forwarded-for", address),
            None => request,
        }
        .send()
    };

    let direct = ServerProcess::start(&db.url, &[]).await;
    get(&direct, None).await.unwrap();
    for _ in 0..3 {
        get(&direct, Some("203.0.113.9")).await.unwrap();
    }
    wait_until(Duration::from_secs(5), || warnings(&direct) > 0)
        .await
        .expect("the forwarding header is pointed out");
    let log = direct.log();
    assert_eq!(warnings(&direct), 1, "once per process: {log}");
    assert!(log.contains("--client-ip-header x-forwarded-for"), "{log}");
    assert!(!log.contains("203.0.113.9"), "{log}");

    let proxied = ServerProcess::start(&db.url, &["--client-ip-header", "x-forwarded-for"]).await;
    get(&proxied, Some("203.0.113.9")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(warnings(&proxied), 0, "{}", proxied.log());
}

#[tokio::test]
async fn token_issuance_is_limited_per_client() {
    let app = spawn_app_with(|s| {
        s.rate_limits.issuance_per_client = Rate {
            per_second: 0.5,
            burst: 3.0,
        };
    })
    .await;
    let (a, a_secret) = app.create_client("x", None).await;
    let (b, b_secret) = app.create_client("x", None).await;
    for _ in 0..3 {
        app.token(&a.id, &a_secret, None).await;
    }
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &a.id),
        ("client_secret", &a_secret),
    ]);
    let limited = app.post_token(&body, None).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_error(limited, 429, "api_error.rate_limit_exceeded", None).await;
    let standard = app
        .http
        .post(app.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(standard.status(), 429, "the same budget on every surface");
    app.token(&b.id, &b_secret, None).await; // other clients are unaffected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_header_senders_do_not_stop_normal_clients() {
    let _load = heavy_load().await;
    let app = spawn_app_with(|s| {
        s.connection.header_read_timeout = Duration::from_secs(3);
    })
    .await;
    let (client, secret) = app.create_client("a", None).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // 300 connections that send their headers a byte a second.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
                return 0;
            };
            let head = b"POST /auth/token HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
            let mut sent = 0;
            for byte in head {
                if stream.write_all(&[*byte]).await.is_err() {
                    break; // closed by the server
                }
                sent += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        app.token(&client.id, &secret, None).await;
        slowest = slowest.max(t.elapsed());
    }
    println!(
        "50 tokens beside 300 slow connections in {:?} (slowest {slowest:?})",
        started.elapsed()
    );
    // Served well before the slow ones' header timeout: they do not queue normal clients
    // behind them.
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    // The slow connections are cut off at the header-read timeout, not served forever.
    let sent: Vec<usize> = futures_util::future::join_all(slow)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // Cut off at the 3 s header timeout (a byte a second), with a busy machine's margin;
    // never served to the end of their 40-byte head.
    assert!(
        sent.iter().all(|&n| n <= 7),
        "cut off after about 3 s: {sent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_drains_behind_readiness_and_drops_no_request() {
    let _load = heavy_load().await;
    let db = TestDb::new().await;
    let (app_id, steady, steady_secret) = cli_app_and_client(&db.url, "Load");
    let (doomed, doomed_secret) = cli_client(&db.url, &app_id);
    // The disabled client keeps hammering from the same address as the steady one; this
    // test is about shutdown, not the failure budget.
    let mut server = ServerProcess::start(
        &db.url,
        &[
            "--token-rate-per-client",
            "0",
            "--auth-failures-per-address",
            "0",
            "--auth-failures-per-client",
            "0",
            "--shutdown-delay",
            "2s",
        ],
    )
    .await;
    let base = server.base.clone();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    // The load balancer: it polls readiness and stops sending new requests here once it
    // answers 503. Until then every request must be answered.
    // Kept-alive connections, as real clients use them: at SIGTERM each is either inside
    // a request or between two, and neither may end in a reset.
    let http = reqwest::Client::new();

    #[derive(Default)]
    struct Tally {
        ok: AtomicUsize,
        unauthorized: AtomicUsize,
        server_errors: AtomicUsize,
        other: AtomicUsize,
        refused: AtomicUsize,
        dropped: AtomicUsize,
    }
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for (id, secret) in [
        (steady.clone(), steady_secret.clone()),
        (steady.clone(), steady_secret.clone()),
        (doomed.clone(), doomed_secret.clone()),
        (doomed.clone(), doomed_secret.clone()),
    ] {
        let (http, url, tally, stop) = (
            http.clone(),
            format!("{base}/auth/token"),
            tally.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            // Bounded in time by `stop`, and in count.
            for _ in 0..200_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let sent = http
                    .post(&url)
                    .header("authorization", basic(&id, &secret))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_server_error() => &tally.server_errors,
                    Ok(r) if r.status() == 401 => &tally.unauthorized,
                    Ok(r) if r.status() == 201 => {
                        // The whole body arrives: nothing is cut off mid-response.
                        match r.bytes().await {
                            Ok(b) if b.starts_with(b"{\"access_token\"") => &tally.ok,
                            _ => &tally.dropped,
                        }
                    }
                    Ok(_) => &tally.other,
                    // Only a connection the server no longer accepts counts as refused.
                    // A request sent on an open connection and then reset, or closed
                    // unanswered, was dropped in flight.
                    Err(e) if e.is_connect() => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        &tally.refused
                    }
                    Err(e) => {
                        eprintln!("dropped in flight: {e:?}");
                        &tally.dropped
                    }
                }
                .fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        cli_async(&db.url, &["clients", "disable", &doomed])
            .await
            .status
            .success()
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        cli_async(&db.url, &["keys", "rotate", "--now"])
            .await
            .status
            .success()
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A request in flight when SIGTERM arrives: headers and half the body now, the rest
    // after the signal. Graceful shutdown must let it finish.
    let body =
        format!("grant_type=client_credentials&client_id={steady}&client_secret={steady_secret}");
    let mut in_flight = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first_half, second_half) = body.as_bytes().split_at(body.len() / 2);
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(first_half).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok_before_term = tally.ok.load(Ordering::Relaxed);
    let balancer = {
        let (http, url, stop) = (
            reqwest::Client::new(),
            format!("{base}/healthz/ready"),
            stop.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            // Bounded: 10 s of polls every 50 ms.
            while started.elapsed() < Duration::from_secs(10) {
                let status = http
                    .get(&url)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                if status != 200 {
                    stop.store(true, Ordering::Relaxed);
                    return Some((started.elapsed(), status));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None
        })
    };
    let pid = server.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    in_flight.write_all(second_half).await.unwrap();
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut in_flight, &mut response)
        .await
        .unwrap();
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "the request in flight at SIGTERM was answered: {response:?}"
    );
    assert!(response.contains("access_token"));
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "a stopping server says so before closing: {response:?}"
    );
    let (noticed, readiness) = balancer
        .await
        .unwrap()
        .expect("readiness turned 503 after SIGTERM");
    let (exited, server) = tokio::task::spawn_blocking(move || {
        let exited = server.child.wait().unwrap();
        (exited, server)
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(readiness, 503, "readiness says 503 while draining");
    assert!(
        noticed < Duration::from_secs(1),
        "readiness turned 503 at once: {noticed:?}"
    );
    let log = server.log();
    assert!(
        log.lines().last().is_some_and(|l| l.contains("stopped")),
        "a final log line: {log}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the stopped server accepts no connection"
    );
    let t = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    println!(
        "load: {} × 201 ({ok_before_term} before SIGTERM), {} × 401 after the disable, {} refused after shutdown, {} × 5xx, {} dropped; exit {exited}",
        t(&tally.ok),
        t(&tally.unauthorized),
        t(&tally.refused),
        t(&tally.server_errors),
        t(&tally.dropped)
    );
    assert!(exited.success(), "a clean exit on SIGTERM");
    assert!(ok_before_term > 100, "there was load");
    assert!(
        t(&tally.unauthorized) > 0,
        "the disabled client was refused"
    );
    assert_eq!(
        t(&tally.refused),
        0,
        "the listener kept accepting until the balancer had moved away"
    );
    assert_eq!(t(&tally.server_errors), 0, "no 5xx");
    assert_eq!(t(&tally.other), 0, "only 201 and 401");
    assert_eq!(t(&tally.dropped), 0, "no request cut off in flight");
}

#[tokio::test]
async fn the_client_ip_header_counts_only_from_trusted_proxies() {
    let db = TestDb::new().await;
    let server = ServerProcess::spawn_with_env(
        &db.url,
        &[
            "--client-ip-header",
            "x-forwarded-for",
            "--auth-failures-per-address",
            "3",
            "--auth-failures-per-client",
            "0",
        ],
        &[("MONEYKIT_AUTH_TRUSTED_PROXY", "127.0.0.2/32,::1/128")],
        TEST_SECRET,
        "warn",
    );
    server.wait_for("/healthz/live").await;
    let url = server.url("/auth/token");
    let wrong_secret_from = |peer: [u8; 4], forwarded: String| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(peer))
            .build()
            .unwrap()
            .post(&url)
            .header("x-forwarded-for", forwarded)
            .header("authorization", basic("live_nobody", "mks_wrong"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
    };
    // Through the trusted proxy, each forwarded address has a budget of its own.
    for i in 0..6 {
        let response = wrong_secret_from([127, 0, 0, 2], format!("203.0.113.{i}"))
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "forwarded address {i}");
    }
    // From any other peer the header is ignored: a new spoofed address on every request
    // still spends that peer's one budget.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let response = wrong_secret_from([127, 0, 0, 1], format!("198.51.100.{i}"))
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429], "{}", server.log());
}
