//! `rvsadm`: ipvsadm's command language for the rvs director. See the `rvsadm` library.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = rvsadm::run(
        &args,
        std::env::var("RVS_SOCKET").ok(),
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code);
}
