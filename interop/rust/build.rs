// Exposes the locked libp2p version to the binary as LIBP2P_VERSION, so that the
// "implementation" field of the dialer's JSON always names the version actually built.
fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut version = String::from("unknown");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"libp2p\"" {
            if let Some(v) = lines.next() {
                version = v
                    .trim()
                    .trim_start_matches("version")
                    .trim_start_matches([' ', '='])
                    .trim_matches('"')
                    .to_string();
            }
            break;
        }
    }
    println!("cargo:rustc-env=LIBP2P_VERSION={version}");
}
