fn main() -> std::process::ExitCode {
    logbus_ingest::cli_main()
}
