//! Tells the linker where libportico is.
//!
//! PORTICO_LIB_DIR: the directory holding libportico.so (a meson build
//! directory, or an install's lib directory); it is also put in the
//! binaries' run path so tests run without LD_LIBRARY_PATH. Without it,
//! pkg-config's portico.pc is asked, then the linker's default paths.
//! PORTICO_LIB_NAME: the library to link, "portico" by default.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PORTICO_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PORTICO_LIB_NAME");
    println!("cargo:rerun-if-changed=build.rs");

    let name = env::var("PORTICO_LIB_NAME").unwrap_or_else(|_| "portico".to_owned());
    println!("cargo:rustc-link-lib=dylib={}", name);

    let dirs = match env::var("PORTICO_LIB_DIR") {
        Ok(dir) if !dir.is_empty() => vec![dir],
        _ => pkg_config_lib_dirs(),
    };
    for dir in dirs {
        println!("cargo:rustc-link-search=native={}", dir);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
    }
}

/// The -L directories of `pkg-config --libs portico`, if it is installed.
fn pkg_config_lib_dirs() -> Vec<String> {
    let output = match Command::new("pkg-config")
        .args(["--libs-only-L", "portico"])
        .output()
    {
        Ok(output) if output.status.success() => output,
        _ => return Vec::new(),
    };
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-L"))
        .map(str::to_owned)
        .collect()
}
