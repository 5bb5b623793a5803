fn main() -> std::process::ExitCode {
    logbus_ingest::r#gen::cli_main()
}
