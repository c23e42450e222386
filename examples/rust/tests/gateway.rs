//! A gateway with Rust filters and handlers, serving real requests over
//! loopback TCP on ephemeral ports.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portico::{Action, Filter, Gateway, GatewayOptions, Request, Response, Status};
use support::{config, exchange, get, request};

const DRAIN: Duration = Duration::from_secs(2);

/// The handler the tests route to: says what it was given.
fn echo(req: &mut Request<'_>) -> Action {
    let header = |name| {
        req.header_str(name)
            .ok()
            .flatten()
            .unwrap_or("-")
            .to_owned()
    };
    let body = format!(
        "method={} path={} id={} tag={} query={} body={}\n",
        req.method(),
        req.path(),
        header("x-item-id"),
        header("x-tag"),
        String::from_utf8_lossy(req.query()),
        String::from_utf8_lossy(req.body()),
    );
    Action::Respond(
        Response::new(200)
            .header("content-type", "text/plain")
            .body(body),
    )
}

/// A filter that wants an API key, tags the request with its plugin entry's
/// "label", and stamps every response.
fn key_filter() -> Filter {
    Filter::new("require-key")
        .priority(500)
        .on_request(|req| {
            if !matches!(req.header("x-api-key"), Some(b"secret")) {
                return Action::Respond(
                    Response::new(401)
                        .header("www-authenticate", "ApiKey")
                        .body("missing or wrong x-api-key\n"),
                );
            }
            // Path parameters are the filter's to read: pass one on.
            if let Some(id) = req.param("id").map(str::to_owned) {
                if let Err(e) = req.set_header("x-item-id", id) {
                    return Action::Respond(Response::new(500).body(e.to_string()));
                }
            }
            let label = if req.plugin_config().contains("\"blue\"") {
                "blue"
            } else {
                "plain"
            };
            match req.set_header("x-tag", label) {
                Ok(()) => Action::Continue,
                Err(e) => Action::Respond(Response::new(500).body(e.to_string())),
            }
        })
        .on_response(|req| {
            let status = req.response_status().unwrap_or(0);
            let _ = req.set_response_header("x-served-by", format!("rust/{}", status));
            Action::Continue
        })
}

fn started(config_json: &str, options: &GatewayOptions) -> (Gateway, u16) {
    let gateway = Gateway::new(config_json, Some(options)).unwrap_or_else(|e| panic!("{}", e));
    gateway.start().unwrap();
    let port = gateway.port(0).unwrap();
    assert_ne!(port, 0);
    (gateway, port)
}

#[test]
fn a_rust_filter_and_handler_serve_real_requests() {
    let mut options = GatewayOptions::new().unwrap();
    options
        .add_filter(key_filter())
        .unwrap()
        .add_handler("echo", echo)
        .unwrap();
    let cfg = config(
        r#"{"name": "echo", "handler": "echo"}"#,
        r#"{"name": "items", "paths": ["/items/{id}"], "service": "echo",
            "plugins": [{"name": "require-key", "config": {"label": "blue"}}]},
           {"name": "other", "paths": ["/other"], "service": "echo",
            "plugins": [{"name": "require-key"}]}"#,
    );
    let (gateway, port) = started(&cfg, &options);
    drop(options); // the gateway keeps the closures alive

    let reply = get(port, "/items/42?colour=red", &[("X-API-Key", "secret")]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.text();
    assert!(body.contains("method=GET"), "{}", body);
    assert!(body.contains("id=42"), "{}", body);
    assert!(body.contains("tag=blue"), "{}", body);
    assert!(body.contains("query=colour=red"), "{}", body);
    assert_eq!(reply.header("x-served-by"), Some(&b"rust/200"[..]));

    let reply = get(port, "/other", &[("X-API-Key", "secret")]);
    assert_eq!(reply.status, 200);
    assert!(reply.text().contains("tag=plain"), "{}", reply.text());

    let reply = get(port, "/items/42", &[("X-API-Key", "wrong")]);
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("www-authenticate"), Some(&b"ApiKey"[..]));
    assert_eq!(reply.text(), "missing or wrong x-api-key\n");

    let reply = request(
        port,
        "POST",
        "/items/7",
        &[("X-API-Key", "secret")],
        b"hello body",
    );
    assert_eq!(reply.status, 200);
    assert!(reply.text().contains("body=hello body"), "{}", reply.text());

    // No route: the gateway's own 404, the filter never ran.
    assert_eq!(get(port, "/nowhere", &[]).status, 404);

    let metrics = gateway.metrics().unwrap();
    assert!(!metrics.is_empty());
    gateway.stop(DRAIN).unwrap();
}

#[test]
fn requests_from_many_clients_at_once_all_pass_through_the_closures() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut options = GatewayOptions::new().unwrap();
    options
        .add_filter(Filter::new("count").on_request(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
            Action::Continue
        }))
        .unwrap()
        .add_handler("echo", echo)
        .unwrap();
    let cfg = config(
        r#"{"name": "echo", "handler": "echo"}"#,
        r#"{"name": "items", "paths": ["/items/{id}"], "service": "echo", "plugins": [{"name": "count"}]}"#,
    );
    let (gateway, port) = started(&cfg, &options);
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                for i in 0..25 {
                    let reply = get(port, &format!("/items/{}-{}", t, i), &[]);
                    assert_eq!(reply.status, 200);
                    assert!(reply.text().contains(&format!("path=/items/{}-{}", t, i)));
                }
            });
        }
    });
    assert_eq!(calls.load(Ordering::Relaxed), 100);
    gateway.stop(DRAIN).unwrap();
}

/// Options whose error reports are collected, with the echo handler.
fn reporting_options(reports: &Arc<Mutex<Vec<String>>>) -> GatewayOptions {
    let mut options = GatewayOptions::new().unwrap();
    let sink = reports.clone();
    options.on_error(move |message| sink.lock().unwrap().push(message.to_owned()));
    options.add_handler("echo", echo).unwrap();
    options
}

/// The panics this file causes on purpose print nothing; others as usual.
fn quiet_expected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("boom from a") {
            default(info)
        }
    }));
}

fn reported(reports: &Arc<Mutex<Vec<String>>>, needle: &str) -> bool {
    times_reported(reports, needle) > 0
}

fn times_reported(reports: &Arc<Mutex<Vec<String>>>, needle: &str) -> usize {
    reports
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains(needle))
        .count()
}

#[test]
fn a_panicking_filter_answers_500_and_the_gateway_keeps_serving() {
    quiet_expected_panics();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let mut options = reporting_options(&reports);
    options
        .add_filter(Filter::new("explode").on_request(|req| {
            if req.header("x-boom").is_some() {
                panic!("boom from a filter");
            }
            Action::Continue
        }))
        .unwrap()
        .add_handler("explode-handler", |_| -> Action {
            panic!("boom from a handler")
        })
        .unwrap();
    let cfg = config(
        r#"{"name": "echo", "handler": "echo"}, {"name": "bad", "handler": "explode-handler"}"#,
        r#"{"name": "items", "paths": ["/items/{id}"], "service": "echo", "plugins": [{"name": "explode"}]},
           {"name": "bad", "paths": ["/bad"], "service": "bad"}"#,
    );
    let (gateway, port) = started(&cfg, &options);
    for round in 0..3 {
        let reply = get(port, "/items/1", &[("X-Boom", "1")]);
        assert_eq!(reply.status, 500, "round {}", round);
        let reply = get(port, "/items/2", &[]);
        assert_eq!(reply.status, 200, "round {}: {}", round, reply.text());
        assert_eq!(get(port, "/bad", &[]).status, 500);
    }
    assert!(
        reported(&reports, "filter 'explode' panicked: boom from a filter"),
        "{:?}",
        reports
    );
    assert!(
        reported(
            &reports,
            "handler 'explode-handler' panicked: boom from a handler"
        ),
        "{:?}",
        reports
    );
    gateway.stop(DRAIN).unwrap();
}

#[test]
fn callbacks_that_misbehave_answer_500_and_are_reported() {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let mut options = reporting_options(&reports);
    options
        .add_handler("silent", |_| Action::Continue)
        .unwrap()
        .add_handler("bad-status", |_| Action::Respond(Response::new(42)))
        .unwrap()
        .add_filter(Filter::new("bad-header").on_request(|req| {
            // CR LF in a value would split the header: refused.
            match req.set_header("x-injected", "a\r\nevil: 1") {
                Err(e) => Action::Respond(Response::new(400).body(e.status().name())),
                Ok(()) => Action::Continue,
            }
        }))
        .unwrap()
        .add_filter(Filter::new("late-answer").on_response(|_| Action::Respond(Response::new(418))))
        .unwrap()
        .add_filter(Filter::new("teapot").on_response(|req| {
            // 1xx is never a final status: refused; 418 replaces the 200.
            match req.set_response_status(199) {
                Err(e) if e.status() == Status::InvalidArgument => {}
                _ => return Action::Respond(Response::new(200)), // reported: fails the test
            }
            req.set_response_status(418).unwrap();
            Action::Continue
        }))
        .unwrap();
    let cfg = config(
        r#"{"name": "echo", "handler": "echo"}, {"name": "silent", "handler": "silent"},
           {"name": "bad-status", "handler": "bad-status"}"#,
        r#"{"name": "silent", "paths": ["/silent"], "service": "silent"},
           {"name": "bad-status", "paths": ["/bad-status"], "service": "bad-status"},
           {"name": "bad-header", "paths": ["/bad-header"], "service": "echo", "plugins": [{"name": "bad-header"}]},
           {"name": "late", "paths": ["/late"], "service": "echo", "plugins": [{"name": "late-answer"}]},
           {"name": "teapot", "paths": ["/teapot"], "service": "echo", "plugins": [{"name": "teapot"}]}"#,
    );
    let (gateway, port) = started(&cfg, &options);
    assert_eq!(get(port, "/silent", &[]).status, 500);
    assert!(
        reported(&reports, "handler 'silent' returned Action::Continue"),
        "{:?}",
        reports
    );
    assert_eq!(get(port, "/bad-status", &[]).status, 500);
    assert!(
        reported(&reports, "handler 'bad-status' could not respond"),
        "{:?}",
        reports
    );
    let reply = get(port, "/bad-header", &[]);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.text(), "PORTICO_ERR_INVALID_ARGUMENT");
    // Answering is not possible once the upstream has answered: 500, and
    // reported once (by the binding, which sets the status itself).
    let reply = get(port, "/late", &[]);
    assert_eq!(reply.status, 500);
    assert_eq!(
        times_reported(&reports, "filter 'late-answer'"),
        1,
        "{:?}",
        reports
    );
    // The response phase may replace the status.
    assert_eq!(get(port, "/teapot", &[]).status, 418);
    assert!(!reported(&reports, "teapot"), "{:?}", reports);
    // Still serving.
    assert_eq!(get(port, "/bad-header", &[]).status, 400);
    gateway.stop(DRAIN).unwrap();
}

#[test]
fn header_values_that_are_not_utf8_reach_the_filter_as_bytes() {
    let mut options = GatewayOptions::new().unwrap();
    options
        .add_filter(Filter::new("raw").on_request(|req| {
            let bytes = req.header("x-raw").map(<[u8]>::to_vec).unwrap_or_default();
            let as_text = match req.header_str("x-raw") {
                Ok(Some(_)) => "utf8".to_owned(),
                Ok(None) => "absent".to_owned(),
                Err(e) => e.status().name().to_owned(),
            };
            let hex: String = bytes.iter().map(|b| format!("{:02x}", b)).collect();
            Action::Respond(
                Response::new(200)
                    .header("x-raw-echo", bytes)
                    .body(format!("{} {}", hex, as_text)),
            )
        }))
        .unwrap()
        .add_handler("echo", echo)
        .unwrap();
    let cfg = config(
        r#"{"name": "echo", "handler": "echo"}"#,
        r#"{"name": "raw", "paths": ["/raw"], "service": "echo", "plugins": [{"name": "raw"}]}"#,
    );
    let (gateway, port) = started(&cfg, &options);
    let reply = exchange(
        port,
        b"GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Raw: caf\xe9 \xff\r\n\r\n",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "636166e920ff PORTICO_ERR_INVALID_UTF8");
    assert_eq!(reply.header("x-raw-echo"), Some(&b"caf\xe9 \xff"[..]));
    let reply = get(port, "/raw", &[("X-Raw", "plain")]);
    assert_eq!(reply.text(), "706c61696e utf8");
    assert_eq!(get(port, "/raw", &[]).text(), " absent");
    // A path with raw non-ASCII bytes never reaches a filter: 400.
    let reply = exchange(
        port,
        b"GET /raw\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(reply.status, 400);
    gateway.stop(DRAIN).unwrap();
}

#[test]
fn run_blocks_until_asked_to_stop_from_another_thread() {
    let mut options = GatewayOptions::new().unwrap();
    options.add_handler("echo", echo).unwrap();
    let cfg = config(
        r#"{"name": "echo", "handler": "echo"}"#,
        r#"{"name": "items", "paths": ["/items/{id}"], "service": "echo"}"#,
    );
    let gateway = Gateway::new(&cfg, Some(&options)).unwrap();
    std::thread::scope(|scope| {
        let runner = scope.spawn(|| gateway.run());
        // Wait (bounded) for the listener to be bound.
        let mut port = None;
        for _ in 0..200 {
            if let Ok(p) = gateway.port(0) {
                port = Some(p);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let port = port.expect("the gateway started within 2 s");
        assert_eq!(get(port, "/items/9", &[]).status, 200);
        gateway.request_stop().unwrap();
        assert_eq!(runner.join().unwrap(), Ok(()));
    });
}

#[test]
fn the_lifecycle_is_checked() {
    let mut options = GatewayOptions::new().unwrap();
    options.add_handler("echo", echo).unwrap();
    let routes = r#"{"name": "items", "paths": ["/items/{id}"], "service": "echo"}"#;
    let cfg = config(r#"{"name": "echo", "handler": "echo"}"#, routes);
    let gateway = Gateway::new(&cfg, Some(&options)).unwrap();
    assert_eq!(gateway.port(0).unwrap_err().status(), Status::State);
    gateway.start().unwrap();
    assert_eq!(gateway.start().unwrap_err().status(), Status::State);
    assert_eq!(gateway.port(1).unwrap_err().status(), Status::NotFound);
    assert_eq!(gateway.admin_port().unwrap(), 0);
    let port = gateway.port(0).unwrap();
    assert_eq!(gateway.generation().unwrap(), 0);

    // A bad reload leaves the running configuration in place.
    let e = gateway.reload("{\"routes\": [").unwrap_err();
    assert_eq!(e.status(), Status::InvalidJson, "{}", e);
    assert_eq!(gateway.generation().unwrap(), 0);
    assert_eq!(get(port, "/items/1", &[]).status, 200);

    // A good one swaps in: the route moves.
    let moved = config(
        r#"{"name": "echo", "handler": "echo"}"#,
        r#"{"name": "things", "paths": ["/things/{id}"], "service": "echo"}"#,
    );
    gateway.reload(&moved).unwrap();
    assert_eq!(gateway.generation().unwrap(), 1);
    assert_eq!(get(port, "/things/1", &[]).status, 200);
    assert_eq!(get(port, "/items/1", &[]).status, 404);

    gateway.stop(DRAIN).unwrap();
    gateway.stop(DRAIN).unwrap(); // idempotent
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after stop"
    );
}
