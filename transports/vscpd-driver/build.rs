//! Link the shared object with `-z nodelete`: vscpd `dlclose()`s the driver after `VSCPClose`,
//! and unmapping Rust code is unsafe once it has registered thread-local destructors on a host
//! thread or left lazily initialised statics (glommio's reactor registry, the tracing
//! subscriber) pointing into its own data. With NODELETE the library stays mapped until the
//! process exits; a later `dlopen` of the same path gets the same copy back, which is what
//! the handle registry expects anyway.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
}
