//! Embeds the git commit and the build date, which `logward version` and
//! `logward_build_info` report (both "unknown" outside a git checkout), and
//! the bundled pattern library under `patterns/`, so the binary carries it.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    // SOURCE_DATE_EPOCH makes package builds reproducible.
    let date = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => Command::new("date")
            .args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%d"])
            .output(),
        Err(_) => Command::new("date").args(["-u", "+%Y-%m-%d"]).output(),
    }
    .ok()
    .and_then(|o| String::from_utf8(o.stdout).ok())
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| "unknown".into());
    bundle_patterns();
    println!("cargo:rustc-env=LOGWARD_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=LOGWARD_BUILD_DATE={date}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}

/// Writes `bundled_patterns.rs`: every `patterns/*.toml`, in file-name order.
fn bundle_patterns() {
    // Read when the script runs, not when it was compiled: a build script compiled for one
    // checkout is reused by another that shares the target directory.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(&manifest).join("patterns");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => panic!(
            "cannot read the bundled pattern library {}: {e}",
            dir.display()
        ),
    };
    assert!(
        !files.is_empty(),
        "{} holds no *.toml: the binary would ship without its pattern library",
        dir.display()
    );
    files.sort();
    let mut out = String::from(
        "/// The bundled pattern library: (file name, contents).\npub const BUNDLED_FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            f.display().to_string()
        ));
    }
    out.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(
        std::path::Path::new(&out_dir).join("bundled_patterns.rs"),
        out,
    )
    .expect("write bundled_patterns.rs");
}
