//! Bad input from Rust: errors with a status and a message that names the
//! problem, never a crash.

mod support;

use std::path::PathBuf;

use portico::{Action, Error, Filter, Gateway, GatewayOptions, Status};
use support::config;

fn scratch_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portico-rust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn json_that_is_not_json_is_refused_with_where() {
    let e = Gateway::new("{\n  \"listeners\": [\n    {\"port\": 0,,}\n  ]\n}", None).unwrap_err();
    assert_eq!(e.status(), Status::InvalidJson);
    assert!(e.message().contains("line 3"), "{}", e);
    assert_eq!(
        Gateway::new("", None).unwrap_err().status(),
        Status::InvalidJson
    );
    assert_eq!(
        Gateway::check("[1,", None).unwrap_err().status(),
        Status::InvalidJson
    );
}

#[test]
fn an_invalid_configuration_lists_every_problem_by_path() {
    let cfg = config(
        r#"{"name": "svc", "urls": ["http://127.0.0.1:1"], "retries": {"max_retries": 11}}"#,
        r#"{"name": "r", "paths": ["/a/{id"], "service": "svc"},
           {"name": "s", "paths": ["/b"], "service": "missing"}"#,
    );
    let e = Gateway::new(&cfg, None).unwrap_err();
    assert_eq!(e.status(), Status::InvalidConfig);
    for needle in [
        "services[0].retries.max_retries",
        "routes[0].paths[0]",
        "routes[1].service",
    ] {
        assert!(e.message().contains(needle), "no {} in {}", needle, e);
    }
    assert!(e.message().lines().count() >= 3, "{}", e);
    assert_eq!(
        Gateway::check(&cfg, None).unwrap_err().status(),
        Status::InvalidConfig
    );
    // A misspelt key is an error, not silently ignored.
    let e = Gateway::check(r#"{"admin": {"prot": 1}}"#, None).unwrap_err();
    assert!(e.message().contains("admin.prot"), "{}", e);
}

#[test]
fn names_a_configuration_uses_must_be_registered() {
    let cfg = config(
        r#"{"name": "svc", "handler": "nobody"}"#,
        r#"{"name": "r", "paths": ["/a"], "service": "svc", "plugins": [{"name": "unknown-filter"}]}"#,
    );
    let e = Gateway::check(&cfg, None).unwrap_err();
    assert_eq!(e.status(), Status::InvalidConfig, "{}", e);
    assert!(e.message().contains("nobody"), "{}", e);
    assert!(e.message().contains("unknown-filter"), "{}", e);

    let mut options = GatewayOptions::new().unwrap();
    options
        .add_filter(Filter::new("unknown-filter").on_request(|_| Action::Continue))
        .unwrap()
        .add_handler("nobody", |_| Action::Continue)
        .unwrap();
    Gateway::check(&cfg, Some(&options)).unwrap();
}

#[test]
fn registrations_are_checked() {
    let mut options = GatewayOptions::new().unwrap();
    // A built-in policy's name.
    let e = options
        .add_filter(Filter::new("rate-limit").on_request(|_| Action::Continue))
        .err()
        .unwrap();
    assert_eq!(e.status(), Status::Conflict, "{}", e);
    assert!(e.message().contains("rate-limit"), "{}", e);
    // Neither phase.
    assert!(options.add_filter(Filter::new("empty")).is_err());
    // Twice the same name.
    options.add_handler("h", |_| Action::Continue).unwrap();
    assert_eq!(
        options
            .add_handler("h", |_| Action::Continue)
            .err()
            .unwrap()
            .status(),
        Status::Conflict
    );
    assert!(options.add_handler("", |_| Action::Continue).is_err());
}

#[test]
fn files_are_read_and_their_problems_reported() {
    let missing = std::env::temp_dir().join("portico-rust-no-such-file.json");
    let e = Gateway::from_file(&missing, None).unwrap_err();
    assert_eq!(e.status(), Status::Io, "{}", e);
    assert!(
        e.message().contains("portico-rust-no-such-file.json"),
        "{}",
        e
    );

    let bad = scratch_file("bad.json", "{ not json");
    assert_eq!(
        Gateway::from_file(&bad, None).unwrap_err().status(),
        Status::InvalidJson
    );

    let good = scratch_file("good.json", &config("", ""));
    let gateway = Gateway::from_file(&good, None).unwrap();
    gateway.start().unwrap();
    std::fs::write(&good, "{ broken").unwrap();
    assert_eq!(
        gateway.reload_file().unwrap_err().status(),
        Status::InvalidJson
    );
    assert_eq!(gateway.generation().unwrap(), 0);
    gateway.stop(std::time::Duration::from_secs(1)).unwrap();
}

#[cfg(unix)]
#[test]
fn a_path_that_is_not_utf8_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/tmp/caf\xe9.json"));
    let e = Gateway::from_file(path, None).unwrap_err();
    assert_eq!(e.status(), Status::InvalidUtf8, "{}", e);
}

#[test]
fn errors_are_std_errors_with_status_and_message() {
    let e = Gateway::new("{", None).unwrap_err();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e.clone());
    assert!(boxed.source().is_none());
    let text = boxed.to_string();
    assert!(text.starts_with("PORTICO_ERR_INVALID_JSON: "), "{}", text);
    assert_eq!(e.status().code(), portico::sys::PORTICO_ERR_INVALID_JSON);
    assert_eq!(Status::from_code(0), None);
    assert_eq!(Status::from_code(99), Some(Status::Unknown(99)));
    assert_eq!(Status::Unknown(99).name(), "PORTICO_ERR_UNKNOWN");
    let made = Error::new(Status::NotFound, "");
    assert_eq!(made.to_string(), "PORTICO_ERR_NOT_FOUND");

    // `?` works in functions returning Box<dyn Error>.
    fn build() -> Result<Gateway, Box<dyn std::error::Error>> {
        Ok(Gateway::new("{\"services\": 3}", None)?)
    }
    assert!(build().unwrap_err().to_string().contains("services"));
}

#[test]
fn errors_stay_on_their_thread() {
    // The last error is per thread: a failure on one thread does not change
    // the message another thread reads for its own failure.
    std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            (0..50)
                .map(|_| Gateway::new("{", None).unwrap_err().status())
                .all(|s| s == Status::InvalidJson)
        });
        let b = scope.spawn(|| {
            (0..50)
                .map(|_| portico::Breaker::new(r#"{"window": "x"}"#).unwrap_err())
                .all(|e| e.status() == Status::InvalidConfig && e.message().contains("window"))
        });
        assert!(a.join().unwrap());
        assert!(b.join().unwrap());
    });
}
