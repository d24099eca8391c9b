//! Generates the gRPC client code for our subset of etcd's v3 API (`proto/etcd.proto`,
//! `proto/mvcc.proto`) with the `protoc` that the `protoc-bin-vendored` crate ships, so a fresh
//! machine builds this crate with cargo alone: no system protoc.

use std::io;

fn main() -> io::Result<()> {
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(|error| {
        io::Error::other(format!("no vendored protoc for this machine: {error}"))
    })?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure().build_server(false).build_transport(false).compile_with_config(
        config,
        &["proto/etcd.proto", "proto/mvcc.proto"],
        &["proto"],
    )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
