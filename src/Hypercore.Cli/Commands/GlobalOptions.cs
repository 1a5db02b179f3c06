using System.CommandLine;
using Hypercore.Client;

namespace Hypercore.Cli.Commands;

/// <summary>Options every command takes; declared once on the root and inherited (Recursive).</summary>
internal sealed class GlobalOptions
{
    public const string HostVariable = "VIS_HOST";

    public const string TlsCaVariable = "VIS_TLS_CA";
    public const string TlsCertVariable = "VIS_TLS_CERT";
    public const string TlsKeyVariable = "VIS_TLS_KEY";
    public const string TokenFileVariable = "VIS_TOKEN_FILE";

    public Option<string?> Host { get; } = new("--host")
    {
        Description = "vistarad gRPC address: host:port, http(s)://host:port or unix:///path " +
            $"[default: ${HostVariable}, else {HypercoreAddress.DefaultSocket} if it exists and is usable, else {HypercoreAddress.DefaultHost}]",
        HelpName = "address",
        Recursive = true,
    };

    public Option<string?> TlsCa { get; } = new("--tls-ca")
    {
        Description = $"PEM CA the daemon's TLS certificate must chain to; implies https [default: ${TlsCaVariable}]",
        HelpName = "file.pem",
        Recursive = true,
    };

    public Option<string?> TlsCert { get; } = new("--tls-cert")
    {
        Description = $"PEM client certificate (with --tls-key); implies https [default: ${TlsCertVariable}]",
        HelpName = "file.pem",
        Recursive = true,
    };

    public Option<string?> TlsKey { get; } = new("--tls-key")
    {
        Description = $"PEM key of --tls-cert [default: ${TlsKeyVariable}]",
        HelpName = "file.pem",
        Recursive = true,
    };

    public Option<string?> TokenFile { get; } = new("--token-file")
    {
        Description = $"file whose first word is the token sent as authorization: Bearer [default: ${TokenFileVariable}]",
        HelpName = "file",
        Recursive = true,
    };

    public Option<string?> Namespace { get; } = new("--namespace", "-n")
    {
        Description = "Namespace of the microvm [default: create in \"default\"; find by id in any namespace; list all]",
        HelpName = "namespace",
        Recursive = true,
    };

    public Option<string> Output { get; } = new Option<string>("--output", "-o")
    {
        Description = "Output format",
        DefaultValueFactory = _ => "table",
        Recursive = true,
    }.AcceptOnlyFromAmong("table", "json", "yaml");

    public void AddTo(RootCommand root)
    {
        root.Add(Host);
        root.Add(TlsCa);
        root.Add(TlsCert);
        root.Add(TlsKey);
        root.Add(TokenFile);
        root.Add(Namespace);
        root.Add(Output);
    }
}

/// <summary>Options several commands share; each command gets its own instances.</summary>
internal static class SharedOptions
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(3);

    /// <summary>--timeout; read it with <see cref="GetTimeout"/>, which applies the default.</summary>
    public static Option<TimeSpan?> Timeout() => new("--timeout")
    {
        Description = $"How long a wait may take, e.g. 90s, 5m, 1h30m [default: {Durations.Format(DefaultTimeout)}]",
        HelpName = "duration",
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            if (Durations.TryParse(text, out var value))
            {
                return value;
            }

            result.AddError($"--timeout: \"{text}\" is not a positive duration like 90s, 5m or 1h30m");
            return default;
        },
    };

    public static TimeSpan GetTimeout(this ParseResult parse, Option<TimeSpan?> timeout) => parse.GetValue(timeout) ?? DefaultTimeout;

    /// <summary>
    /// An integer option whose parse error says what was expected in the user's terms (<paramref name="what"/>, e.g.
    /// "a whole number of MiB") instead of System.CommandLine's "as expected type 'System.Nullable`1[System.Int32]'".
    /// Range checks stay with the command, which knows what a value means.
    /// </summary>
    public static Option<int?> WholeNumber(string name, string what, string description, string? helpName = null) => new(name)
    {
        Description = description,
        HelpName = helpName,
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            if (int.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var value))
            {
                return value;
            }

            result.AddError($"{name}: expected {what}, got '{text}'");
            return null;
        },
    };

    public static Argument<string> Id() => new("id") { Description = "MicroVM id" };
}
