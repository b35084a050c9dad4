fn main() -> std::process::ExitCode {
    logward::cli::main()
}
