namespace Hypercore.Cli.Output;

internal enum OutputFormat
{
    Table,
    Json,
    Yaml,
}
