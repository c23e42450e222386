//! A gateway with one Rust filter: requests without the right API key are
//! answered 401; the others reach an in-process handler.
//! `cargo run --example key_gateway`, then `curl -H 'x-api-key: secret'
//! localhost:8080/hello`.
use portico::{Action, Filter, Gateway, GatewayOptions, Response};

const CONFIG: &str = r#"{
  "services": [{"name": "hello", "handler": "hello"}],
  "routes": [{"name": "hello", "paths": ["/**"], "service": "hello",
              "plugins": [{"name": "require-key"}]}]
}"#;

fn main() -> Result<(), portico::Error> {
    let mut options = GatewayOptions::new()?;
    options.add_filter(Filter::new("require-key").on_request(
        |req| match req.header("x-api-key") {
            Some(b"secret") => Action::Continue,
            _ => Action::Respond(Response::new(401).body("missing or wrong x-api-key\n")),
        },
    ))?;
    options.add_handler("hello", |req| {
        Action::Respond(Response::new(200).body(format!("hello from {}\n", req.path())))
    })?;
    let gateway = Gateway::new(CONFIG, Some(&options))?;
    gateway.run() // serves on 127.0.0.1:8080 until stopped
}
