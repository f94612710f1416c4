//! Builds the tiny C shim that gives HINCRBYFLOAT Redis's `long double` arithmetic.
fn main() {
    println!("cargo:rerun-if-changed=csrc/longdouble.c");
    cc::Build::new()
        .file("csrc/longdouble.c")
        .warnings(true)
        .compile("hashkv_longdouble");
}
