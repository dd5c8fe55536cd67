fn main() -> std::process::ExitCode {
    ebmc::cli::main()
}
